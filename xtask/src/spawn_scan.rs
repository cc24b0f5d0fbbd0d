//! The check that keeps [`crate::setup::HOST_PROGRAMS`] whole: it scans the code for every
//! program it spawns and fails when one is missing from the list, so a fresh host never lacks
//! what CI ran with (a `dig` that only the CI machine had).
//!
//! How the scan finds spawns: `Command::new("literal")` (std and tokio), and the project's
//! wrappers that take a program name (`as_root("…")`, `TestUser::command("…")`,
//! `run_program("…")`). A spawn of a computed program (`Command::new(path)`) must name what it
//! runs in a `// spawns: a, b` comment on its line or the three lines above; programs handed to
//! another program (`nsenter … iptables`) are named the same way, on a line of their own. A
//! wrapper listed in `SPAWN_CALLS` marks its own `Command::new(program)` with
//! `// spawns: the caller's program`.

use std::path::{Path, PathBuf};

use crate::setup::{apt_packages, lookup};

/// One place the code starts a program, as the scan found it.
#[derive(Debug)]
struct Spawn {
    file: PathBuf,
    line: usize,
    programs: Vec<String>,
}

/// Where the scan looks: everything that runs on the host in a build, test or bench.
const SCANNED: &[&str] = &["hh/src", "hh/benches", "hh/build.rs", "tests", "xtask/src"];

/// What a wrapper of [`SPAWN_CALLS`] writes as its `spawns:` (its callers name the program).
const WRAPPER: &str = "the caller's program";

/// The calls that start the program named by their first argument.
const SPAWN_CALLS: &[&str] = &["Command::new(", "as_root(", ".command(", "run_program("];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path.to_path_buf());
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        rust_files(&entry.path(), found);
    }
}

/// The programs a `// spawns: a, b` comment names.
fn named_in_comment(line: &str) -> Option<Vec<String>> {
    let (_, names) = line.split_once("// spawns:")?;
    Some(
        names
            .split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect(),
    )
}

/// Every spawn in `text`; `Err` names a spawn of a computed program with no `spawns:`.
fn spawns_in(file: &Path, text: &str) -> Result<Vec<Spawn>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut spawns = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        // `// spawns:` on a line of its own also names programs handed to another one.
        if code.trim().is_empty() {
            if let Some(programs) = named_in_comment(line).filter(|names| names != &[WRAPPER]) {
                spawns.push(Spawn {
                    file: file.to_path_buf(),
                    line: index + 1,
                    programs,
                });
            }
            continue;
        }
        for call in SPAWN_CALLS {
            let mut rest = code;
            while let Some(at) = rest.find(call) {
                let argument = rest[at + call.len()..].trim_start();
                rest = &rest[at + call.len()..];
                // A definition (`fn as_root(program: &str)`) spawns nothing by itself.
                if code.trim_start().starts_with("fn ")
                    || code.contains(&format!("fn {}", call.trim_start_matches('.')))
                {
                    continue;
                }
                // A binary of this workspace, by cargo's path to it.
                let literal = argument
                    .strip_prefix("env!(\"CARGO_BIN_EXE_")
                    .or_else(|| argument.strip_prefix('"'));
                if let Some(literal) = literal {
                    let name = literal.split('"').next().unwrap_or("");
                    spawns.push(Spawn {
                        file: file.to_path_buf(),
                        line: index + 1,
                        programs: vec![name.to_owned()],
                    });
                    continue;
                }
                if *call != "Command::new(" {
                    // A wrapper passed a variable: its caller is the spawn, scanned there.
                    continue;
                }
                let named = (index.saturating_sub(3)..=index)
                    .rev()
                    .find_map(|at| named_in_comment(lines[at]));
                match named {
                    // A wrapper of SPAWN_CALLS: its callers name the program, and are scanned.
                    Some(programs) if programs == [WRAPPER] => {}
                    Some(programs) => spawns.push(Spawn {
                        file: file.to_path_buf(),
                        line: index + 1,
                        programs,
                    }),
                    None => {
                        return Err(format!(
                            "{}:{}: `Command::new` of a computed program; name what it runs \
                             in a `// spawns: PROGRAM` comment (on the line or the three \
                             above) so the host-program list can be checked",
                            file.display(),
                            index + 1
                        ));
                    }
                }
            }
        }
    }
    Ok(spawns)
}

fn every_spawn() -> Vec<Spawn> {
    let root = workspace();
    let mut files = Vec::new();
    for dir in SCANNED {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "the scan found too few files: {files:?}");
    let mut spawns = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        // This file's own tests name examples.
        if file.ends_with("xtask/src/spawn_scan.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        match spawns_in(&file, &text) {
            Ok(found) => spawns.extend(found),
            Err(error) => errors.push(error),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    spawns
}

#[test]
fn every_program_the_code_spawns_is_on_the_list() {
    let spawns = every_spawn();
    // The scan must see the spawns it is meant to see.
    for known in ["dig", "docker", "tmux", "mmdebstrap"] {
        assert!(
            spawns
                .iter()
                .any(|spawn| spawn.programs.iter().any(|p| p == known)),
            "the scan missed `{known}`"
        );
    }
    let missing: Vec<String> = spawns
        .iter()
        .flat_map(|spawn| {
            spawn
                .programs
                .iter()
                .filter(|program| lookup(program).is_none())
                .map(move |program| format!("{}:{}: `{program}`", spawn.file.display(), spawn.line))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "programs the code spawns that `HOST_PROGRAMS` in xtask/src/setup.rs does not list (add each \
         with the Debian package setup installs it from):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scan_reads_literals_wrappers_and_comments() {
    let text = r#"
        let a = Command::new("dig");
        let b = tokio::process::Command::new("cp").arg("-P");
        let c = exec::as_root("apt-get");
        let d = user.command("id");
        // spawns: iptables, ip6tables
        let e = nsenter(program);
        let f = Command::new(path); // spawns: mitmdump
        pub fn as_root(program: &str) -> Command {
    "#;
    let spawns = spawns_in(Path::new("x.rs"), text).unwrap();
    let names: Vec<&str> = spawns
        .iter()
        .flat_map(|spawn| spawn.programs.iter().map(String::as_str))
        .collect();
    assert_eq!(
        names,
        [
            "dig",
            "cp",
            "apt-get",
            "id",
            "iptables",
            "ip6tables",
            "mitmdump"
        ]
    );
    let unnamed = spawns_in(Path::new("y.rs"), "let x = Command::new(path);\n");
    assert!(unnamed.unwrap_err().contains("y.rs:1"));
}

#[test]
fn readme_lists_every_package_setup_installs() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let (_, section) = readme
        .split_once("## What setup installs")
        .expect("README has a `What setup installs` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let missing: Vec<&str> = apt_packages()
        .into_iter()
        .map(|(package, _)| package)
        .chain(["docker.io"])
        .filter(|package| !section.contains(&format!("`{package}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README's `What setup installs` does not name: {missing:?}"
    );
}

#[test]
fn packages_are_listed_once_in_order() {
    let packages = apt_packages();
    assert_eq!(packages.first().map(|p| p.0), Some("rustc-web"));
    let mut names: Vec<&str> = packages.iter().map(|p| p.0).collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total);
    assert!(names.contains(&"dnsutils"));
}
