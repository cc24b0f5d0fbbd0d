//! `hh init` and loading the config it writes, run as the real binary in temp dirs.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

fn hh(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hh"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("hh runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn init_writes_a_starter_config_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let output = hh(&["init"], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let path = dir.path().join("harness-hat.toml");
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# harness-hat.toml"), "{text}");

    // Loading it through a command that needs it: add a workspace and check against it.
    fs::create_dir(dir.path().join("proj")).unwrap();
    let with_workspace =
        format!("{text}\n[[workspaces]]\nname = \"proj\"\ncanonical_path = \"~/proj\"\n");
    fs::write(&path, with_workspace).unwrap();
    let output = hh(
        &[
            "--config",
            "harness-hat.toml",
            "rules",
            "check",
            "--workspace",
            "proj",
            "GET",
            "https://a.com/",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    fs::write(&path, "# my config\n").unwrap();
    let output = hh(&["init", "mine.toml"], dir.path());
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("already exists; pass --force"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "# my config\n");

    let output = hh(&["init", "--force", "mine.toml"], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        fs::read_to_string(&path)
            .unwrap()
            .starts_with("# harness-hat.toml")
    );
}

#[test]
fn the_default_config_path_follows_xdg_and_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    fs::create_dir_all(xdg.join("harness-hat")).unwrap();
    fs::write(
        xdg.join("harness-hat/harness-hat.toml"),
        "version = 1\n[[workspaces]]\nname = \"keys\"\ncanonical_path = \"~/.ssh\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hh"))
        .args([
            "rules",
            "check",
            "--workspace",
            "keys",
            "GET",
            "https://a.com/",
        ])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(
        message.contains("xdg/harness-hat/harness-hat.toml:4:1: `workspaces[0].canonical_path`"),
        "{message}"
    );
    assert!(message.contains("never hands to a session"), "{message}");

    fs::write(
        xdg.join("harness-hat/harness-hat.toml"),
        "version = 1\n[defaults.proxy]\nstrict_network = true\nstrict_netwrok = false\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hh"))
        .args([
            "rules",
            "check",
            "--workspace",
            "w",
            "GET",
            "https://a.com/",
        ])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    let message = stderr(&output);
    assert!(
        message.contains("harness-hat.toml:4:1: `defaults.proxy.strict_netwrok`: unknown field"),
        "{message}"
    );
}

mod support;

/// A config in `dir` with `extra` appended to a minimal valid one.
fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("harness-hat.toml");
    fs::write(&path, format!("version = 1\n{extra}")).unwrap();
    path
}

#[test]
fn the_terminal_ui_writes_its_log_into_the_configs_log_dir() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("state/logs");
    let config = write_config(dir.path(), &format!("log_dir = \"{}\"\n", logs.display()));
    let command = format!(
        "env -u HH_LOG_FILE HOME={home} HH_AGENT_SOCKET={home}/no-agent.sock {hh} --config {config}",
        home = dir.path().display(),
        hh = env!("CARGO_BIN_EXE_hh"),
        config = config.display(),
    );
    let tmux = support::tmux::Tmux::start(&format!("hhlog{}", std::process::id()), &command);
    tmux.wait_for("agent: down", std::time::Duration::from_secs(20));
    tmux.keys(&["q"]);
    let log = logs.join("tui.log");
    support::session_world::wait_until("the UI's log has its first line", || {
        fs::read_to_string(&log).is_ok_and(|text| text.contains("terminal UI started"))
    });
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&logs), 0o700);
}

#[test]
fn hh_proxy_listens_beyond_loopback_only_when_the_config_allows_remote_control() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    fs::write(&rules, "[network]\nallowlist = []\n").unwrap();
    let state = dir.path().join("state");
    let proxy = |config: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hh"));
        command
            .arg("--config")
            .arg(config)
            .args(["proxy", "--listen", "0.0.0.0:0", "--rules"])
            .arg(&rules)
            .arg("--state-dir")
            .arg(&state);
        command
    };
    let closed = write_config(dir.path(), "");
    let refused = proxy(&closed).output().unwrap();
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("allow_remote_control = true") && message.contains("harness-hat.toml"),
        "{message}"
    );

    let open = write_config(
        dir.path(),
        "[defaults.control]\nallow_remote_control = true\n",
    );
    let (mut child, listening) =
        support::spawn_announcing(proxy(&open).env("HH_LOG", "warn"), "listening on ");
    assert!(listening.starts_with("0.0.0.0:"), "{listening}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_dockerfile_whose_name_is_no_stem_name_is_said_not_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let stems = dir.path().join("stems");
    fs::create_dir(&stems).unwrap();
    fs::write(stems.join("My_Stem.dockerfile"), "FROM x\n").unwrap();
    fs::write(stems.join(".#mine.dockerfile"), "FROM x\n").unwrap();
    fs::write(
        stems.join("mine.dockerfile"),
        "# hh-stem-parent: none\nFROM x\n",
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!("docker_dir = \"{}\"\n", stems.display()),
    );
    let listed = hh(
        &["--config", config.to_str().unwrap(), "image", "list"],
        dir.path(),
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    let said = stderr(&listed);
    assert!(
        said.contains("My_Stem.dockerfile") && said.contains("not a stem, ignored"),
        "{said}"
    );
    // An editor's dotfile is passed over quietly; the valid stem is listed.
    assert!(!said.contains(".#mine"), "{said}");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("mine"));
}
