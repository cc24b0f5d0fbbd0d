//! `hh doctor` on this host, for real: the success branch is not faked, and each failure branch
//! is reached by pointing a real check at something that really fails.

mod support;

use std::os::unix::process::CommandExt as _;

use serde_json::Value;
use support::{hh, require_root, run_hh};

fn report(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "doctor --json printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks is a list")
        .iter()
        .find(|check| check["name"] == name)
        .unwrap_or_else(|| panic!("no check named {name} in {report}"))
}

#[test]
fn doctor_reports_agent_mode_available_on_this_host() {
    if !require_root("doctor_reports_agent_mode_available_on_this_host") {
        return;
    }
    let output = run_hh(&["doctor", "--json"]);
    let report = report(&output);
    assert_eq!(report["mode"], "agent", "{report:#}");
    assert_eq!(output.status.code(), Some(0));
    for name in [
        "bpf-syscall",
        "cgroup2",
        "programs",
        "sockmap",
        "cgroup-attach",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}");
    }
    // Every program of the embedded object was loaded by the kernel's verifier.
    let programs = check(&report, "programs")["detail"].as_str().unwrap();
    for program in [
        "hh_connect4",
        "hh_connect6",
        "hh_sendmsg4",
        "hh_sock_ops",
        "hh_sk_msg",
    ] {
        assert!(programs.contains(program), "{programs}");
    }
}

#[test]
fn a_cgroup_root_that_does_not_exist_rules_out_agent_mode() {
    let output = run_hh(&[
        "doctor",
        "--json",
        "--cgroup-root",
        "/nonexistent/hh-cgroup",
    ]);
    let report = report(&output);
    assert_ne!(report["mode"], "agent");
    assert_eq!(output.status.code(), Some(1));
    let cgroup = check(&report, "cgroup2");
    assert_eq!(cgroup["status"], "fail");
    assert!(
        cgroup["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/hh-cgroup")
    );
    assert!(cgroup["fix"].is_string());
}

#[test]
fn a_cgroup_root_on_another_filesystem_is_refused_as_not_cgroup2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let output = run_hh(&["doctor", "--json", "--cgroup-root", root]);
    let report = report(&output);
    let cgroup = check(&report, "cgroup2");
    assert_eq!(cgroup["status"], "fail");
    assert!(
        cgroup["detail"]
            .as_str()
            .unwrap()
            .contains("not a cgroup2 filesystem"),
        "{cgroup}"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn an_engine_nobody_answers_rules_out_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}/docker.sock", dir.path().display());
    let output = run_hh(&["doctor", "--json", "--docker-host", &endpoint]);
    let report = report(&output);
    assert_eq!(report["mode"], "none", "{report:#}");
    assert_eq!(check(&report, "docker")["status"], "fail");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn an_unprivileged_user_cannot_run_agent_mode() {
    if !require_root("an_unprivileged_user_cannot_run_agent_mode") {
        return;
    }
    // Drop to `nobody` for real: the kernel, not a flag, refuses what it may not do.
    let output = hh()
        .args(["doctor", "--json"])
        .uid(65_534)
        .gid(65_534)
        .output()
        .expect("hh runs as nobody");
    let report = report(&output);
    assert_ne!(report["mode"], "agent", "{report:#}");
    assert_eq!(output.status.code(), Some(1));
    let refused = ["bpf-syscall", "programs"]
        .iter()
        .any(|name| check(&report, name)["status"] == "fail");
    assert!(refused, "{report:#}");
}

#[test]
fn the_plain_report_says_what_failed_and_how_to_fix_it() {
    let output = run_hh(&["doctor", "--cgroup-root", "/nonexistent/hh-cgroup"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("FAIL cgroup2"), "{text}");
    assert!(text.contains("fix: "), "{text}");
    assert!(text.lines().last().unwrap().starts_with("=> "), "{text}");
}

#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("harness-hat.toml");
    std::fs::write(&config, "version = 1\n").unwrap();
    let unit = hh()
        .arg("--config")
        .arg(&config)
        .args(["service", "unit", "--socket-group", "1000"])
        .output()
        .unwrap();
    assert!(
        unit.status.success(),
        "{}",
        String::from_utf8_lossy(&unit.stderr)
    );
    let text = String::from_utf8_lossy(&unit.stdout).to_string();
    let exec = format!(
        "ExecStart={} --config {} agent --socket-group 1000",
        std::fs::canonicalize(env!("CARGO_BIN_EXE_hh"))
            .unwrap()
            .display(),
        std::fs::canonicalize(&config).unwrap().display()
    );
    assert!(text.contains(&exec), "{text}");
    let path = dir.path().join("hh-agent.service");
    std::fs::write(&path, &text).unwrap();
    // spawns: systemd-analyze
    let verified = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (`cargo xtask setup` installs systemd)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "{said}"
    );
}
