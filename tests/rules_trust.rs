//! Trust on change and the root agent's rules writes, against a real agent and two ordinary
//! users (neither root nor in `docker`): `hh rules status|trust|add` through the agent socket.
//!
//! - A user sees, trusts and adds to the rules of their own workspace only; the other user
//!   reads nothing of it through the root agent.
//! - While the user races the agent's writes by swapping their workspace (and its rules file)
//!   for symlinks to another user's rules and to a root-owned file (`renameat2` with
//!   `RENAME_EXCHANGE` in a loop), root never writes, chowns or chmods anything but the user's
//!   own file.

mod support;

use std::{
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Child, Output},
};

use support::{require_root, user_world::UserWorld, users::TestUser};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn hh(world: &UserWorld, user: &TestUser, args: &[&str]) -> Output {
    world.hh(user, args).output().unwrap()
}

/// What a file is, for "never changed": its bytes, owner, group and mode.
fn snapshot(path: &Path) -> (Vec<u8>, u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        meta.uid(),
        meta.gid(),
        meta.mode(),
    )
}

#[test]
fn a_user_sees_trusts_and_adds_to_their_own_workspace_rules_only() {
    if !require_root("agent rules e2e") {
        return;
    }
    let world = UserWorld::new();
    let rules = world.alice.home.join("proj/harness-rules.toml");
    let before = snapshot(&rules);

    // Bob reads nothing of alice's rules through the root agent, and changes nothing.
    let status = hh(
        &world,
        &world.bob,
        &["rules", "status", "--workspace", "demo"],
    );
    let out = text(&status);
    assert_eq!(status.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("not to uid {}", world.bob.uid)),
        "{out}"
    );
    assert!(!out.contains("allowlist"), "bob saw alice's rules: {out}");
    let trust = hh(
        &world,
        &world.bob,
        &["rules", "trust", "--workspace", "demo"],
    );
    assert_ne!(trust.status.code(), Some(0), "{}", text(&trust));
    let add = hh(
        &world,
        &world.bob,
        &["rules", "add", "--workspace", "demo", "allow", "domain=*"],
    );
    assert!(!add.status.success(), "{}", text(&add));
    assert!(text(&add).contains("belongs to uid"), "{}", text(&add));
    assert_eq!(snapshot(&rules), before);

    // Alice: never trusted, then trusted, then a rule added in force, her file still hers.
    let status = hh(
        &world,
        &world.alice,
        &["rules", "status", "--workspace", "demo"],
    );
    let out = text(&status);
    assert_eq!(status.status.code(), Some(1), "{out}");
    assert!(out.contains("NEVER TRUSTED"), "{out}");
    let status = hh(
        &world,
        &world.alice,
        &["rules", "status", "--workspace", "demo", "--json"],
    );
    let args = support::trust_args("demo", &status.stdout);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let trust = hh(&world, &world.alice, &args);
    assert!(trust.status.success(), "{}", text(&trust));
    let status = hh(
        &world,
        &world.alice,
        &["rules", "status", "--workspace", "demo"],
    );
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let add = hh(
        &world,
        &world.alice,
        &[
            "rules",
            "add",
            "--workspace",
            "demo",
            "allow",
            "domain=a.test",
        ],
    );
    assert!(text(&add).contains("(in force)"), "{}", text(&add));
    let after = std::fs::read_to_string(&rules).unwrap();
    assert!(after.contains("domain=a.test"), "{after}");
    let meta = std::fs::metadata(&rules).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (world.alice.uid, world.alice.gid));
    // Still in force as a whole: the add wrote the file and its trusted copy together.
    let status = hh(
        &world,
        &world.alice,
        &["rules", "status", "--workspace", "demo"],
    );
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
}

/// `python3` swapping `a` and `b` with `renameat2(RENAME_EXCHANGE)` as fast as it can, as
/// `user`, until killed.
fn exchange_loop(user: &TestUser, a: &Path, b: &Path) -> Child {
    const SWAP: &str = "import ctypes, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        a, b = sys.argv[1].encode(), sys.argv[2].encode()\n\
        while True:\n    libc.renameat2(-100, a, -100, b, 2)\n";
    user.command("python3")
        .args(["-c", SWAP])
        .arg(a)
        .arg(b)
        .spawn()
        .unwrap()
}

#[test]
fn swapping_the_workspace_for_symlinks_never_makes_root_touch_another_file() {
    if !require_root("agent rules e2e") {
        return;
    }
    let world = UserWorld::new();
    let alice = &world.alice;
    // A root-owned file where a swapped-in symlink points: the global rules of some other
    // config, say. Reachable (0755 directory), not writable by alice.
    let root_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        root_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let canary = root_dir.path().join("harness-rules.toml");
    std::fs::write(&canary, "# root's\n").unwrap();
    std::fs::set_permissions(&canary, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bobs = world.bob.home.join("proj/harness-rules.toml");
    let (canary_before, bobs_before) = (snapshot(&canary), snapshot(&bobs));

    let workspace = alice.home.join("proj");
    let decoy_dir = alice.home.join("proj-decoy");
    std::os::unix::fs::symlink(world.bob.home.join("proj"), &decoy_dir).unwrap();
    let decoy_file = workspace.join("decoy");
    std::os::unix::fs::symlink(&canary, &decoy_file).unwrap();
    for path in [&decoy_dir, &decoy_file] {
        std::os::unix::fs::lchown(path, Some(alice.uid), Some(alice.gid)).unwrap();
    }
    let rules = workspace.join("harness-rules.toml");
    let mut swappers = [
        exchange_loop(alice, &workspace, &decoy_dir),
        exchange_loop(alice, &rules, &decoy_file),
    ];
    let (mut added, mut refused) = (0, Vec::new());
    for n in 0..40 {
        let rule = format!("domain=r{n}.test");
        let add = hh(
            &world,
            alice,
            &["rules", "add", "--workspace", "demo", "allow", &rule],
        );
        if add.status.success() {
            added += 1;
        } else {
            refused.push(text(&add));
        }
    }
    for swapper in &mut swappers {
        swapper.kill().unwrap();
        swapper.wait().unwrap();
    }
    // Put alice's workspace back the right way round, whichever way the loop stopped.
    if std::fs::symlink_metadata(&workspace)
        .unwrap()
        .file_type()
        .is_symlink()
    {
        exchange_once(&workspace, &decoy_dir);
    }

    assert_eq!(snapshot(&canary), canary_before, "root's file changed");
    assert_eq!(snapshot(&bobs), bobs_before, "bob's rules changed");
    assert!(added > 0, "no add got through the race: {refused:?}");
    // Every refusal names what it refused; none is a crash.
    for why in &refused {
        assert!(
            why.contains("symbolic link")
                || why.contains("belongs to uid")
                || why.contains("No such file")
                || why.contains("not a regular file"),
            "{why}"
        );
    }
    eprintln!("{added} adds got through, {} refused", refused.len());
}

fn exchange_once(a: &Path, b: &Path) {
    let a = std::ffi::CString::new(a.as_os_str().as_encoded_bytes()).unwrap();
    let b = std::ffi::CString::new(b.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: two NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_workspace_added_to_the_config_counts_without_restarting_the_agent() {
    if !require_root("agent rules e2e") {
        return;
    }
    let world = UserWorld::new();
    let status = |name: &str| {
        hh(
            &world,
            &world.alice,
            &["rules", "status", "--workspace", name],
        )
    };
    let before = status("later");
    assert!(
        text(&before).contains("no workspace `later`"),
        "{}",
        text(&before)
    );
    let later = world.alice.make_dir("later", 0o755);
    let mut config = std::fs::read_to_string(&world.config).unwrap();
    // `~` is alice's home for alice's requests.
    config.push_str("[[workspaces]]\nname = \"later\"\ncanonical_path = \"~/later\"\n");
    world.alice.write_file(&world.config, &config);
    world.alice.write_file(
        later.join("harness-rules.toml"),
        "[network]\nallowlist = [\"domain=later.test\"]\n",
    );
    let after = status("later");
    let out = text(&after);
    assert!(
        out.contains(&later.join("harness-rules.toml").display().to_string()),
        "{out}"
    );
    assert!(out.contains("NEVER TRUSTED"), "{out}");
    // A config that no longer loads does not lock anyone out: requests use the version that
    // loaded last (agent_config_reload.rs has the rest).
    world
        .alice
        .write_file(&world.config, "version = 1\n[[workspaces]\n");
    let broken = status("later");
    assert!(
        text(&broken).contains(&later.join("harness-rules.toml").display().to_string()),
        "{}",
        text(&broken)
    );
}
