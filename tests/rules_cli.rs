//! `hh rules check` and `hh rules add`, run as the real binary in temp dirs.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

fn hh(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hh"))
        .args(args)
        .env("HOME", home)
        // No agent answers there: `rules add` writes the file itself.
        .env("HH_AGENT_SOCKET", home.join("no-agent.sock"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("hh runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const RULES: &str = r#"version = 1
[network]
allowlist = ["method=GET,POST domain=api.github.com path=/repos/* port=443", "domain=*.crates.io"]
denylist  = ["domain=*.evil.example"]
"#;

#[test]
fn check_prints_the_verdict_and_rule_and_exits_0_1_or_2() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("harness-rules.toml");
    fs::write(&rules, RULES).unwrap();
    let rules = rules.to_str().unwrap();
    let cases = [
        (
            "GET",
            "https://api.github.com/repos/a/b",
            0,
            "allow by workspace",
        ),
        (
            "GET",
            "https://API.GITHUB.COM./repos/a/../b?x=1",
            0,
            "allowlist[0]: method=GET,POST",
        ),
        (
            "DELETE",
            "https://api.github.com/repos/a/b",
            2,
            "ask (no rule matched)",
        ),
        (
            "GET",
            "https://static.crates.io/x",
            0,
            "allowlist[1]: domain=*.crates.io",
        ),
        ("GET", "https://crates.io/", 2, "ask"),
        ("GET", "http://static.crates.io:8080/", 2, "ask"),
        ("GET", "https://x.evil.example/", 1, "deny by workspace"),
        (
            "GET",
            "http://x.evil.example:22/",
            1,
            "denylist[0]: domain=*.evil.example",
        ),
    ];
    for (method, url, code, message) in cases {
        let output = hh(
            &["rules", "check", "--rules", rules, method, url],
            dir.path(),
        );
        assert_eq!(
            output.status.code(),
            Some(code),
            "{method} {url}: {}{}",
            stdout(&output),
            stderr(&output)
        );
        assert!(
            stdout(&output).contains(message),
            "{method} {url}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn check_with_several_rules_files_lets_a_deny_in_any_win() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    fs::write(&a, "[network]\nallowlist = [\"domain=*\"]\n").unwrap();
    fs::write(&b, "[network]\ndenylist = [\"domain=127.0.0.1\"]\n").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for url in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let output = hh(
            &["rules", "check", "--rules", a, "--rules", b, "GET", url],
            dir.path(),
        );
        assert_eq!(output.status.code(), Some(1), "{url}: {}", stdout(&output));
    }
    let output = hh(
        &[
            "rules",
            "check",
            "--rules",
            a,
            "--rules",
            b,
            "GET",
            "https://a.com/",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn check_refuses_bad_input_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.toml");
    fs::write(
        &rules,
        "[network]\nallowlist = [\"domain=a.com\",\n  \"domian=b.com\"]\n",
    )
    .unwrap();
    let output = hh(
        &[
            "rules",
            "check",
            "--rules",
            rules.to_str().unwrap(),
            "GET",
            "https://a.com/",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("r.toml:3:4: `network.allowlist[1]`: rule `domian=b.com`"),
        "{}",
        stderr(&output)
    );

    fs::write(&rules, RULES).unwrap();
    let rules = rules.to_str().unwrap();
    for url in [
        "https://exa mple.com/",
        "https://a.com/%00",
        "ftp://a.com/",
        "https://a.com:99999/",
    ] {
        let output = hh(
            &["rules", "check", "--rules", rules, "GET", url],
            dir.path(),
        );
        assert_eq!(output.status.code(), Some(3), "{url}");
    }
    let output = hh(&["rules", "check", "GET", "https://a.com/"], dir.path());
    assert_eq!(output.status.code(), Some(3));
}

fn write_config(home: &Path, workspace: &Path) -> std::path::PathBuf {
    let config = home.join("harness-hat.toml");
    fs::write(
        &config,
        format!(
            "version = 1\n[manager]\nglobal_rules_file = \"~/global-rules.toml\"\n\
             [container_profiles.rust]\nimage = \"rust\"\nstarter_network_allowlist = [\"domain=*.crates.io\"]\n\
             [[workspaces]]\nname = \"proj\"\ncanonical_path = \"{}\"\n",
            workspace.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn add_appends_to_the_workspace_file_and_check_sees_every_layer() {
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("proj");
    fs::create_dir(&workspace).unwrap();
    let config = write_config(home.path(), &workspace);
    let config = config.to_str().unwrap();
    fs::write(
        workspace.join("harness-rules.toml"),
        "# Project rules.\nversion = 1\n",
    )
    .unwrap();
    // Where earlier versions kept them: still read.
    fs::create_dir(workspace.join(".hh")).unwrap();
    fs::write(
        workspace.join(".hh/harness-rules.toml"),
        "[network]\ndenylist = [\"domain=legacy.test\"]\n",
    )
    .unwrap();
    fs::write(
        home.path().join("global-rules.toml"),
        "[network]\ndenylist = [\"domain=bad.crates.io\"]\n",
    )
    .unwrap();

    let check = |url: &str, profile: bool| {
        let mut args = vec!["--config", config, "rules", "check", "--workspace", "proj"];
        if profile {
            args.extend(["--profile", "rust"]);
        }
        args.extend(["GET", url]);
        let output = hh(&args, home.path());
        (output.status.code(), stdout(&output))
    };
    assert_eq!(check("https://a.com/", false).0, Some(2));
    assert_eq!(check("https://legacy.test/", false).0, Some(1));
    assert_eq!(check("https://static.crates.io/", false).0, Some(2));
    let (code, out) = check("https://static.crates.io/", true);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("template container_profiles.rust.starter_network_allowlist allowlist[0]"),
        "{out}"
    );
    let (code, out) = check("https://bad.crates.io/", true);
    assert_eq!(code, Some(1));
    assert!(out.contains("deny by global"), "{out}");

    let output = hh(
        &[
            "--config",
            config,
            "rules",
            "add",
            "--workspace",
            "proj",
            "allow",
            "domain=A.com",
            "port=22 domain=b.com",
        ],
        home.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // Written, and said plainly that sessions run a version a person trusted.
    assert!(
        stderr(&output).contains("no agent answered") && stderr(&output).contains("hh rules trust"),
        "{}",
        stderr(&output)
    );
    assert_eq!(check("https://a.com/", false).0, Some(0));
    let output = hh(
        &[
            "--config",
            config,
            "rules",
            "add",
            "--workspace",
            "proj",
            "deny",
            "domain=a.com path=/admin/*",
        ],
        home.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        check("https://a.com/admin/%2e%2e/admin/x", false).0,
        Some(1)
    );

    let text = fs::read_to_string(workspace.join("harness-rules.toml")).unwrap();
    assert_eq!(
        text,
        "# Project rules.\nversion = 1\n\n[network]\nallowlist = [\"domain=a.com\", \"domain=b.com port=22\"]\ndenylist = [\"domain=a.com path=/admin/*\"]\n"
    );
}

#[test]
fn add_refuses_an_invalid_rule_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let rules = home.path().join("harness-rules.toml");
    let output = hh(
        &[
            "rules",
            "add",
            "--rules",
            rules.to_str().unwrap(),
            "allow",
            "domain=a.com",
            "domain=*.*.com",
        ],
        home.path(),
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("rule `domain=*.*.com`"),
        "{}",
        stderr(&output)
    );
    assert!(!rules.exists());
    let output = hh(
        &[
            "rules",
            "add",
            "--workspace",
            "nope",
            "allow",
            "domain=a.com",
        ],
        home.path(),
    );
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn migrate_moves_the_legacy_rules_file_to_the_workspace_root_and_never_overwrites() {
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("proj");
    fs::create_dir_all(workspace.join(".hh")).unwrap();
    let config = write_config(home.path(), &workspace);
    let config = config.to_str().unwrap();
    let legacy = workspace.join(".hh/harness-rules.toml");
    let root = workspace.join("harness-rules.toml");
    fs::write(
        &legacy,
        "# kept\n[network]\nallowlist = [\"domain=a.com\"]\n",
    )
    .unwrap();
    let migrate = [
        "--config",
        config,
        "rules",
        "migrate",
        "--workspace",
        "proj",
    ];

    fs::write(&root, "# already here\n").unwrap();
    let output = hh(&migrate, home.path());
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("exists already"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read_to_string(&root).unwrap(), "# already here\n");

    fs::remove_file(&root).unwrap();
    let output = hh(&migrate, home.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("hh rules trust --workspace proj"));
    assert!(!legacy.exists());
    assert!(fs::read_to_string(&root).unwrap().starts_with("# kept\n"));
    let output = hh(&migrate, home.path());
    assert!(
        stdout(&output).contains("nothing to migrate"),
        "{}",
        stdout(&output)
    );
}
