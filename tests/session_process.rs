//! Every connection tied to the process that made it (issue 19): a real agent, a real session,
//! real curl. The eBPF connect path records the connecting process; the audit line names its
//! `comm`, its command line and its pid as the session sees it (and as the host does), and the
//! approval prompt says which process asks.

mod support;

use support::{
    require_root,
    session_world::{World, build_test_stem, wait_until},
};

#[test]
fn the_audit_line_and_the_prompt_name_the_process_that_connected() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("p");
    let agent = world.agent_asking(60);
    let id = world.start_session();

    // The shell says its pid, then becomes curl: curl's pid is the one printed.
    let url = world.url("allowed.test", "/who-made-this");
    let script = format!("echo pid=$$; exec curl -sS -m 10 -H 'X-Test: process' {url}");
    let (code, out) = world.shell(&id, &["sh", "-c", &script]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /who-made-this"), "{out}");
    let pid: u32 = out
        .lines()
        .find_map(|line| line.strip_prefix("pid="))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out}"));

    let audit = world.state.join("logs/audit.jsonl");
    let mut line = serde_json::Value::Null;
    wait_until("the request's audit line", || {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        match text.lines().find(|line| line.contains("/who-made-this")) {
            Some(found) => {
                line = serde_json::from_str(found).unwrap();
                true
            }
            None => false,
        }
    });
    assert_eq!(line["client_comm"], "curl", "{line}");
    assert_eq!(line["client_pid"], pid, "{line}");
    let cmdline = line["client_cmdline"].as_str().unwrap_or_default();
    assert!(
        cmdline.starts_with("curl -sS -m 10 -H X-Test: process https://allowed.test:"),
        "{line}"
    );
    // The host's pid of the same process is another number (the session has its own pid
    // namespace).
    let host_pid = line["client_host_pid"].as_u64().unwrap_or(0);
    assert!(host_pid > 0 && host_pid != u64::from(pid), "{line}");

    // A request no rule decides: the prompt says who asks.
    let (mut curl, pending) = world.held_request(&id, "/asked-by");
    let process = pending[0]["process"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        process.starts_with("curl [") && process.contains("(curl -sS -m 30 https://unknown.test:"),
        "{pending:?}"
    );
    let listed = world.hh(&["approvals"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(&format!("asked by {process}")), "{text}");
    let approval = pending[0]["id"].to_string();
    let answered = world.hh(&["approvals", "deny", &approval]);
    assert!(answered.status.success(), "{answered:?}");
    let _ = curl.wait();

    agent.terminate();
    world.assert_nothing_left();
}
