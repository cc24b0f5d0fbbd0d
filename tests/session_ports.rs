//! A workspace's `ports`, for real: a server in a session (on its own 127.0.0.1) is reached
//! from the host at the published address — and only there: not on another loopback address,
//! not from inside the session through its own loopback, and not after the session stopped.
//! A host port below 1024 is refused when the config loads. As an ordinary user.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use support::{
    require_root,
    session_world::{World, build_test_stem, wait_until},
};

/// A port nothing on the host's loopback listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` at `addr`: the response, or why there was none.
fn get(addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[test]
fn a_published_port_reaches_the_session_from_the_host_loopback_only() {
    if !require_root("published ports") || !build_test_stem() {
        return;
    }
    let world = World::new("pp");
    let port = free_port();
    world
        .user
        .write_file(world.workspace.join("published-marker.txt"), "x\n");
    let config = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        config.replace(
            "name = \"demo\"\n",
            &format!("name = \"demo\"\nports = [\"{port}:3000\"]\n"),
        ),
    )
    .unwrap();
    let agent = world.agent();
    let (id, said) = world.start_running(
        "demo",
        "test",
        &[
            "python3",
            "-m",
            "http.server",
            "3000",
            "--bind",
            "127.0.0.1",
        ],
    );
    assert!(
        said.contains(&format!(
            "published on the host: 127.0.0.1:{port} -> session port 3000"
        )),
        "{said}"
    );

    // The host reaches the session's server (it lists the workspace).
    let host_addr = format!("127.0.0.1:{port}");
    wait_until("the session's server answers on the published port", || {
        get(&host_addr).is_ok_and(|response| response.contains("published-marker.txt"))
    });
    // Only on the address published: another loopback address of the host is refused.
    assert!(get(&format!("127.0.0.2:{port}")).is_err());
    // The session cannot use it to reach the host: its 127.0.0.1 is its own.
    let (code, out) = world.shell(
        &id,
        &[
            "python3",
            "-c",
            &format!(
                "import socket\ns=socket.socket()\ns.settimeout(3)\n\
                 print('reached' if s.connect_ex(('127.0.0.1',{port}))==0 else 'refused')"
            ),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("refused"), "{out}");

    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success());
    wait_until("the published port closes with the session", || {
        get(&host_addr).is_err()
    });
    agent.terminate();
    world.assert_nothing_left();

    // Port 80 is root's: refused when the config loads, naming the key.
    let low = world.dir.path().join("low-port.toml");
    std::fs::write(
        &low,
        std::fs::read_to_string(&world.config).unwrap().replace(
            &format!("ports = [\"{port}:3000\"]"),
            "ports = [\"80:3000\"]",
        ),
    )
    .unwrap();
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_hh"))
        .args([
            "--config",
            low.to_str().unwrap(),
            "rules",
            "check",
            "--workspace",
            "demo",
        ])
        .args(["GET", "https://a.test/"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stderr).into_owned();
    assert!(!checked.status.success(), "{said}");
    assert!(
        said.contains("ports") && said.contains("below 1024"),
        "{said}"
    );
}
