//! Two processes appending "forever" rules to one file at once lose nothing.

use std::{fs, process::Command};

const RULES_PER_PROCESS: usize = 40;

#[test]
fn two_processes_appending_at_once_keep_every_rule_and_every_comment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("harness-rules.toml");
    let header = "# Hand-written rules: keep this comment.\nversion = 1\n\n[network]\n# The allow list.\nallowlist = [\n    \"domain=first.example\", # why: the first\n]\n";
    fs::write(&path, header).unwrap();

    let spawn = |prefix: &str, action: &str| {
        let rules: Vec<String> = (0..RULES_PER_PROCESS)
            .map(|i| format!("domain={prefix}{i}.example"))
            .collect();
        Command::new(env!("CARGO_BIN_EXE_hh"))
            .args(["rules", "add", "--rules", path.to_str().unwrap(), action])
            .args(&rules)
            .spawn()
            .expect("hh starts")
    };
    let mut one = spawn("a", "allow");
    let mut two = spawn("b", "deny");
    assert!(one.wait().unwrap().success());
    assert!(two.wait().unwrap().success());

    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# Hand-written rules: keep this comment.\nversion = 1\n\n[network]\n# The allow list.\nallowlist = [\n    \"domain=first.example\", # why: the first\n"), "{text}");
    let rules = hh::rules::store::load_rules(&path).unwrap();
    assert_eq!(rules.allow.len(), RULES_PER_PROCESS + 1, "{text}");
    assert_eq!(rules.deny.len(), RULES_PER_PROCESS, "{text}");
    for i in 0..RULES_PER_PROCESS {
        assert!(
            text.contains(&format!("\"domain=a{i}.example\"")),
            "a{i} lost:\n{text}"
        );
        assert!(
            text.contains(&format!("\"domain=b{i}.example\"")),
            "b{i} lost:\n{text}"
        );
    }
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
