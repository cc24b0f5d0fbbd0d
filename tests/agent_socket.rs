//! The agent socket's per-user connection cap, on a real agent: an ordinary user who holds
//! [`CONNECTIONS_PER_UID`] connections open gets a readable refusal for the next one, while
//! another user is served as before; once they close, the first user is served again.

mod support;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::Stdio,
};

use hh::api::server::CONNECTIONS_PER_UID;
use support::{require_root, user_world::UserWorld};

/// Holds N subscriptions open as the user, prints `held`, then what one more connection got,
/// then waits for a line on stdin before it closes them all.
const HOLDER: &str = "import socket,sys\n\
path,n=sys.argv[1],int(sys.argv[2])\n\
held=[]\n\
for i in range(n):\n\
\x20   s=socket.socket(socket.AF_UNIX)\n\
\x20   s.settimeout(10)\n\
\x20   s.connect(path)\n\
\x20   s.sendall(b'{\"op\":\"subscribe\"}\\n')\n\
\x20   f=s.makefile()\n\
\x20   line=f.readline()\n\
\x20   assert '\"ok\"' in line, line\n\
\x20   held.append((s,f))\n\
print('held', len(held), flush=True)\n\
extra=socket.socket(socket.AF_UNIX)\n\
extra.settimeout(10)\n\
extra.connect(path)\n\
print(extra.makefile().readline().strip() or 'closed without a word', flush=True)\n\
sys.stdin.readline()\n";

#[test]
fn one_user_cannot_hold_every_connection_of_the_agent() {
    if !require_root("agent socket limits") {
        return;
    }
    let world = UserWorld::new();
    let mut holder = world
        .bob
        .command("python3")
        .args(["-c", HOLDER])
        .arg(&world.socket)
        .arg(CONNECTIONS_PER_UID.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let held = lines.next().unwrap().unwrap();
    assert_eq!(held, format!("held {CONNECTIONS_PER_UID}"));
    let refused = lines.next().unwrap().unwrap();
    assert!(
        refused.contains(&format!("you have {CONNECTIONS_PER_UID} connections")),
        "{refused}"
    );
    // Alice is served meanwhile.
    let listed = world
        .hh(&world.alice, &["session", "list"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // Bob closes them; he is served again.
    writeln!(holder.stdin.take().unwrap()).unwrap();
    holder.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = world.hh(&world.bob, &["session", "list"]).output().unwrap();
        if listed.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob is still refused: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
