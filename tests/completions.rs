//! `hh completions SHELL`, for real: bash loads the script and completes a subcommand and a
//! flag from it; the other shells' scripts name every subcommand.

mod support;

use std::process::Command;

use support::run_hh;

/// What bash's completion of `words` (the last one being completed) offers, calling the
/// script's function as bash does (command, word, previous word).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = String::from_utf8(run_hh(&["completions", "bash"]).stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hh.bash");
    std::fs::write(&file, script).unwrap();
    let words_array = words
        .iter()
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let probe = format!(
        "source {file}; COMP_WORDS=({words_array}); COMP_CWORD={}; COMP_LINE='{}'; \
         COMP_POINT=${{#COMP_LINE}}; \
         _hh hh \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words.len() - 1,
        words.join(" "),
        file = file.display(),
    );
    let output = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    assert_eq!(bash_completes(&["hh", "sess"]), ["session"]);
    let flags = bash_completes(&["hh", "session", "start", "--harn"]);
    assert_eq!(flags, ["--harness"], "{flags:?}");
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = run_hh(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for subcommand in ["session", "rules", "image", "approvals", "completions"] {
            assert!(script.contains(subcommand), "{shell}: no `{subcommand}`");
        }
    }
    let unknown = run_hh(&["completions", "tcsh"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("possible values"));
}
