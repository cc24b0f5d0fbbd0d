//! `localhost_forwards` end to end: a real agent, a real session. A port the config forwards is
//! the session's own `127.0.0.1:PORT` and reaches the same port on the host's loopback (a local
//! model server, say); a host port it does not forward stays unreachable, and each forwarded
//! connection is an audit line.

mod support;

use support::{
    require_root,
    session_world::{World, build_test_stem},
};

#[test]
fn a_forwarded_host_port_is_the_sessions_own_loopback_port_and_no_other_is() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("f");
    // The upstream's plain-HTTP port stands for the host service (a model server), reached as
    // the session's own 127.0.0.1:11434; its TLS port is one the config does not forward.
    let forwarded = world.upstream.http_port;
    let config = std::fs::read_to_string(&world.config).unwrap();
    let config = config.replacen(
        "[defaults.containers]\n",
        &format!(
            "[defaults.containers]\n\
             localhost_forwards = [{{ container_port = 11434, host_port = {forwarded} }}]\n"
        ),
        1,
    );
    std::fs::write(&world.config, config).unwrap();
    let agent = world.agent();
    let id = world.start_session();

    let url = "http://127.0.0.1:11434/from-the-session";
    let (code, out) = world.shell(&id, &["curl", "-sS", "-m", "10", url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /from-the-session"), "{out}");

    // The host's other loopback ports are not the session's.
    let other = format!("https://127.0.0.1:{}/", world.upstream.tls_port);
    let (code, out) = world.shell(&id, &["curl", "-sS", "-k", "-m", "5", &other]);
    assert_ne!(code, 0, "an unforwarded host port answered: {out}");

    let audit = std::fs::read_to_string(world.state.join("logs/audit.jsonl")).unwrap();
    let line = audit
        .lines()
        .find(|line| line.contains("localhost_forwards"))
        .unwrap_or_else(|| panic!("no audit line for the forwarded connection:\n{audit}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["port"], forwarded);
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["session"], id.as_str());
    assert!(line["bytes_down"].as_u64().unwrap() > 0, "{line}");
    agent.terminate();
    world.assert_nothing_left();
}
