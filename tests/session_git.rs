//! git mode, for real: a workspace with `mode = "git"` is worked on in a clone the client
//! makes as the user; the host repository's `.git` is nowhere in the session, whatever the
//! session writes into its own `.git` never runs on the host, snapshots, restores and diffs
//! work inside the session, and when it stops its work comes back as branch
//! `hh/NAME/main` of the repository without touching the repository's working tree, index or
//! `HEAD` — pushed to `origin` when the workspace says so, and kept with a bundle when the
//! push fails. A clone pointed at another of the user's repositories brings nothing of it
//! back. The session pushes to its origin and to no other repository of the same server (a
//! real `git http-backend`). The agent refuses to mount a git-mode workspace itself. All of it
//! as an ordinary user, with real git, a real agent and real containers.

mod support;

use std::path::{Path, PathBuf};

use support::{
    require_root,
    session_world::{World, build_test_stem},
};

/// Runs `git ARGS` in `dir` as the world's user; its stdout (it must succeed).
fn git(world: &World, dir: &Path, args: &[&str]) -> String {
    let output = world
        .user
        .command("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The user's repository: one commit of `a.txt`, a config line only the host's `.git` has,
/// and the workspace's rules.
fn host_repository(world: &World, name: &str) -> PathBuf {
    let repo = world.user.make_dir(format!("src/{name}"), 0o755);
    git(world, &repo, &["init", "--quiet", "-b", "main"]);
    git(world, &repo, &["config", "hhtest.marker", "host-only"]);
    git(world, &repo, &["config", "user.name", "Ada Tester"]);
    git(world, &repo, &["config", "user.email", "ada@example.test"]);
    world.user.write_file(repo.join("a.txt"), "one\n");
    world.user.write_file(
        repo.join("harness-rules.toml"),
        "[network]\nallowlist = []\n",
    );
    git(world, &repo, &["add", "-A"]);
    git(world, &repo, &["commit", "--quiet", "-m", "start"]);
    repo
}

/// A bare repository `src/NAME` of the user's, made `repo`'s origin with its `main` pushed.
fn bare_origin(world: &World, repo: &Path, name: &str) -> PathBuf {
    let origin = world.user.home.join("src").join(name);
    git(
        world,
        &world.user.home,
        &["init", "--quiet", "--bare", origin.to_str().unwrap()],
    );
    git(
        world,
        repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(world, repo, &["push", "--quiet", "origin", "main"]);
    origin
}

fn add_workspace(world: &World, name: &str, repo: &Path, extra: &str) {
    let config = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        format!(
            "{config}[[workspaces]]\nname = \"{name}\"\ncanonical_path = \"{}\"\nmode = \"git\"\n{extra}",
            repo.display()
        ),
    )
    .unwrap();
}

fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn session_name(world: &World, id: &str) -> String {
    world
        .sessions()
        .iter()
        .find(|session| session["id"] == id)
        .and_then(|session| session["name"].as_str().map(str::to_owned))
        .unwrap()
}

#[test]
fn a_git_mode_session_works_on_its_own_clone_and_its_work_comes_back_as_a_branch() {
    if !require_root("git-mode sessions") || !build_test_stem() {
        return;
    }
    let world = World::new("gm");
    let repo = host_repository(&world, "gitproj");
    let head_before = git(&world, &repo, &["rev-parse", "HEAD"]);
    // What host git would run if it ever ran in the session's clone, or read its config.
    let canary = PathBuf::from(format!("/tmp/hh-git-canary-{}", std::process::id()));
    let _ = std::fs::remove_file(&canary);
    add_workspace(
        &world,
        "gitws",
        &repo,
        "commit_on_exit = true\ncommit_message = \"hh: {session} of {workspace}\"\n",
    );
    let agent = world.agent();
    let (id, start_said) = world.start_in("gitws", "test");
    assert!(
        start_said.contains("works on its own clone of") && start_said.contains("hh/"),
        "{start_said}"
    );
    let name = session_name(&world, &id);
    let info = world
        .sessions()
        .into_iter()
        .find(|session| session["id"] == id.as_str())
        .unwrap();
    let clone = PathBuf::from(info["git"]["clone"].as_str().unwrap());
    assert_eq!(info["git"]["repository"], repo.to_str().unwrap());
    assert!(clone.starts_with(&world.user.home), "{clone:?}");

    // The clone, not the host's .git: the history is there, the host-only config is not.
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "git log --format=%s; git rev-parse --verify --quiet refs/hh/base >/dev/null && \
             echo base-recorded; git config hhtest.marker || echo no-host-config; cat a.txt",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("start"), "{out}");
    assert!(out.contains("base-recorded"), "{out}");
    assert!(
        out.contains("no-host-config") && !out.contains("host-only"),
        "{out}"
    );

    // Snapshot, change, diff, restore — all inside the session.
    let (code, out) = world.shell(&id, &["sh", "-c", "echo two >> a.txt"]);
    assert_eq!(code, 0, "{out}");
    let snapshot = world.hh(&["snapshot", &id, "one"]);
    assert!(snapshot.status.success(), "{}", said(&snapshot));
    let (code, out) = world.shell(&id, &["sh", "-c", "echo three >> a.txt; echo new > b.txt"]);
    assert_eq!(code, 0, "{out}");
    let stat = world.hh(&["diff", &id, "one", "--stat"]);
    let stat_said = said(&stat);
    assert!(stat.status.success(), "{stat_said}");
    assert!(
        stat_said.contains("a.txt") && stat_said.contains("b.txt"),
        "{stat_said}"
    );
    let since_start = world.hh(&["diff", &id]);
    let since_start = String::from_utf8_lossy(&since_start.stdout).into_owned();
    assert!(
        since_start.contains("+two") && since_start.contains("+three"),
        "{since_start}"
    );
    let restore = world.hh(&["restore", &id, "one"]);
    assert!(restore.status.success(), "{}", said(&restore));
    let (_, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "cat a.txt; test -e b.txt && echo b-still-there || echo b-gone",
        ],
    );
    assert!(
        out.starts_with("one\ntwo\n") && !out.contains("three"),
        "{out}"
    );
    assert!(out.contains("b-gone"), "{out}");
    let unknown = world.hh(&["restore", &id, "never-made"]);
    assert!(!unknown.status.success(), "{}", said(&unknown));
    assert!(said(&unknown).contains("no snapshot named never-made"));

    // The session makes its own .git hostile: a host git that ran in the clone, or served it,
    // would run these.
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            &format!(
                "git config core.fsmonitor 'touch {c}; true' && \
                 git config uploadpack.packObjectsHook 'touch {c}; exec \"$@\"' && \
                 git config core.sshCommand 'touch {c}; true' && \
                 mkdir -p .git/hooks && printf '#!/bin/sh\\ntouch {c}\\n' > .git/hooks/reference-transaction && \
                 chmod +x .git/hooks/reference-transaction && echo hostile",
                c = canary.display()
            ),
        ],
    );
    assert!(out.contains("hostile"), "{code} {out}");

    let stopped = world.hh(&["session", "stop", &id]);
    let stop_said = said(&stopped);
    assert!(stopped.status.success(), "{stop_said}");
    assert!(
        stop_said.contains("commit on exit: committed"),
        "{stop_said}"
    );
    let branch = format!("hh/{name}/main");
    assert!(stop_said.contains(&branch), "{stop_said}");

    // The work is a branch of the repository; its working tree, index and HEAD are as they were.
    assert_eq!(
        git(&world, &repo, &["log", "-1", "--format=%s", &branch]).trim(),
        format!("hh: {name} of gitws")
    );
    assert_eq!(
        git(&world, &repo, &["show", &format!("{branch}:a.txt")]),
        "one\ntwo\n"
    );
    assert_eq!(git(&world, &repo, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "one\n"
    );
    assert_eq!(git(&world, &repo, &["status", "--porcelain"]), "");
    git(&world, &repo, &["fsck", "--no-progress"]);
    assert!(
        !canary.exists(),
        "host git ran what the session wrote into its .git"
    );
    // Everything it did is in the branch: its clone is gone.
    assert!(!clone.exists(), "{clone:?} left behind: {stop_said}");

    // The agent will not mount a git-mode workspace itself, whatever a client asks.
    let plain_config = world.dir.path().join("client-without-git-mode.toml");
    std::fs::write(
        &plain_config,
        std::fs::read_to_string(&world.config)
            .unwrap()
            .replace("mode = \"git\"\n", "")
            .replace("commit_on_exit = true\n", ""),
    )
    .unwrap();
    std::fs::set_permissions(
        &plain_config,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let refused = world
        .user
        .command(env!("CARGO_BIN_EXE_hh"))
        .env("HH_AGENT_SOCKET", &world.socket)
        .arg("--config")
        .arg(&plain_config)
        .args([
            "session",
            "start",
            "--detach",
            "--workspace",
            "gitws",
            "--template",
            "test",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(
        said(&refused).contains("is in git mode"),
        "{}",
        said(&refused)
    );
    agent.terminate();
    world.assert_nothing_left();
}

#[test]
fn push_on_exit_pushes_to_origin_and_a_failed_push_keeps_the_branch_and_a_bundle() {
    if !require_root("git-mode pushes") || !build_test_stem() {
        return;
    }
    let world = World::new("gp");
    let repo = host_repository(&world, "pushproj");
    let origin = bare_origin(&world, &repo, "origin.git");
    add_workspace(
        &world,
        "pushws",
        &repo,
        "commit_on_exit = true\npush_on_exit = true\n",
    );
    let agent = world.agent();

    // Pushed: origin has the session's branch.
    let (id, _) = world.start_in("pushws", "test");
    let name = session_name(&world, &id);
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "git remote get-url origin; echo pushed >> a.txt",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(origin.to_str().unwrap()),
        "origin is the repository's: {out}"
    );
    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success(), "{}", said(&stopped));
    assert!(
        said(&stopped).contains("pushed them to origin"),
        "{}",
        said(&stopped)
    );
    let branch = format!("hh/{name}/main");
    assert_eq!(
        git(&world, &origin, &["show", &format!("{branch}:a.txt")]),
        "one\npushed\n"
    );

    // A branch that changes what a code host runs on a push is not pushed: it stays here.
    let (id, _) = world.start_in("pushws", "test");
    let name = session_name(&world, &id);
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let stopped = world.hh(&["session", "stop", &id]);
    let stop_said = said(&stopped);
    assert!(stopped.status.success(), "{stop_said}");
    assert!(
        stop_said.contains("not pushed") && stop_said.contains(".github/workflows/ci.yml"),
        "{stop_said}"
    );
    let branch = format!("hh/{name}/main");
    git(&world, &repo, &["rev-parse", "--verify", &branch]);
    let on_origin = world
        .user
        .command("git")
        .arg("-C")
        .arg(&origin)
        .args(["rev-parse", "--verify", "--quiet", &branch])
        .output()
        .unwrap();
    assert!(!on_origin.status.success(), "pushed: {stop_said}");

    // origin gone: the push fails, the branch stays, a bundle of its commits is saved.
    std::fs::rename(&origin, origin.with_extension("moved")).unwrap();
    let (id, _) = world.start_in("pushws", "test");
    let name = session_name(&world, &id);
    let (code, out) = world.shell(&id, &["sh", "-c", "echo kept >> a.txt"]);
    assert_eq!(code, 0, "{out}");
    let stopped = world.hh(&["session", "stop", &id]);
    let stop_said = said(&stopped);
    assert!(stopped.status.success(), "{stop_said}");
    let branch = format!("hh/{name}/main");
    assert_eq!(
        git(&world, &repo, &["show", &format!("{branch}:a.txt")]),
        "one\nkept\n"
    );
    let bundle = stop_said
        .split_whitespace()
        .find(|word| word.ends_with(".bundle"))
        .unwrap_or_else(|| panic!("no bundle named: {stop_said}"));
    assert!(stop_said.contains("the branches stay"), "{stop_said}");
    let verified = git(&world, &repo, &["bundle", "list-heads", bundle]);
    assert!(verified.contains(&branch), "{verified}");
    agent.terminate();
    world.assert_nothing_left();
}

/// `hh run --json` in git mode says each step of the work's way as a `git` event with its kind:
/// the clone made, the commit on exit, the branches back in the repository, the push.
#[test]
fn hh_run_in_git_mode_reports_each_git_step_as_a_json_event() {
    if !require_root("git-mode hh run") || !build_test_stem() {
        return;
    }
    let world = World::new("gr");
    let repo = host_repository(&world, "runproj");
    let origin = bare_origin(&world, &repo, "run-origin.git");
    add_workspace(
        &world,
        "runws",
        &repo,
        "commit_on_exit = true\npush_on_exit = true\n",
    );
    // A harness whose one-shot command runs the prompt as a shell script.
    let config = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        format!(
            "{config}[harnesses.scripted]\ntitle = \"Scripted\"\ninteractive = [\"sh\"]\n\
             one_shot = [\"sh\", \"-c\"]\n"
        ),
    )
    .unwrap();
    let agent = world.agent();
    let output = world.hh(&[
        "run",
        "--workspace",
        "runws",
        "--template",
        "test",
        "--harness",
        "scripted",
        "--json",
        "--timeout",
        "60",
        "echo run >> a.txt",
    ]);
    let text = said(&output);
    assert!(output.status.success(), "{text}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .filter(|event| event["event"] == "git")
        .filter_map(|event| event["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "clone_started",
            "clone_finished",
            "commit",
            "branches_back",
            "push_succeeded"
        ],
        "{text}"
    );
    let order: Vec<&str> = events
        .iter()
        .filter_map(|event| event["event"].as_str())
        .collect();
    let started = order.iter().position(|event| *event == "started").unwrap();
    let first_git = order.iter().position(|event| *event == "git").unwrap();
    assert!(
        first_git < started,
        "the clone comes before the session: {order:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "finished", "{text}");
    let pushed = git(
        &world,
        &origin,
        &["for-each-ref", "--format=%(refname)", "refs/heads/hh/"],
    );
    let branch = pushed
        .trim()
        .strip_prefix("refs/heads/")
        .unwrap_or_else(|| panic!("{pushed}"));
    assert_eq!(
        git(&world, &origin, &["show", &format!("{branch}:a.txt")]),
        "one\nrun\n"
    );
    agent.terminate();
    world.assert_nothing_left();
}

/// The session points its clone's `.git` at another of the user's repositories — by a
/// symlink, a gitfile, `commondir` or `objects/info/alternates`, each naming the host path —
/// hoping the host's git reads that repository when it takes the work back: its commits would
/// land in the workspace's repository (and its origin, and every later session). None of them
/// may, and the repository stays sound.
#[test]
fn a_clone_pointed_at_another_repository_brings_nothing_of_it_back() {
    if !require_root("git-mode bring-back") || !build_test_stem() {
        return;
    }
    let world = World::new("gx");
    let repo = host_repository(&world, "victim");
    let secret = world.user.make_dir("src/secret", 0o755);
    git(&world, &secret, &["init", "--quiet", "-b", "main"]);
    world
        .user
        .write_file(secret.join("TOPSECRET"), "the user's private work\n");
    git(&world, &secret, &["add", "-A"]);
    git(
        &world,
        &secret,
        &[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@b",
            "commit",
            "--quiet",
            "-m",
            "secret",
        ],
    );
    let secret_commit = git(&world, &secret, &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    let secret_git = secret.join(".git");
    add_workspace(&world, "victimws", &repo, "");
    let agent = world.agent();
    let redirects = [
        format!("rm -rf .git && ln -s {} .git", secret_git.display()),
        format!(
            "rm -rf .git && echo 'gitdir: {}' > .git",
            secret_git.display()
        ),
        format!("echo {} > .git/commondir", secret_git.display()),
        format!(
            "echo {}/objects > .git/objects/info/alternates && echo {secret_commit} > .git/refs/heads/stolen",
            secret_git.display()
        ),
    ];
    for redirect in &redirects {
        let (id, _) = world.start_in("victimws", "test");
        let (code, out) = world.shell(&id, &["sh", "-c", redirect]);
        assert_eq!(code, 0, "{redirect}: {out}");
        let stopped = world.hh(&["session", "stop", &id]);
        let stop_said = said(&stopped);
        assert!(stopped.status.success(), "{redirect}: {stop_said}");
        let found = world
            .user
            .command("git")
            .arg("-C")
            .arg(&repo)
            .args(["cat-file", "-e", &format!("{secret_commit}^{{commit}}")])
            .output()
            .unwrap();
        assert!(
            !found.status.success(),
            "{redirect}: the other repository's commit reached the workspace's: {stop_said}"
        );
        let listed = git(&world, &repo, &["log", "--all", "--name-only", "--format="]);
        assert!(!listed.contains("TOPSECRET"), "{redirect}: {listed}");
        git(&world, &repo, &["fsck", "--no-progress"]);
    }
    agent.terminate();
    world.assert_nothing_left();
}

/// A smart-HTTP git server on the host's loopback (`git http-backend`), hosting `ada/project`
/// and `eve/copy`; killed when dropped.
struct GitServer {
    child: std::process::Child,
    port: u16,
}

impl GitServer {
    fn start(world: &World, root: &Path) -> GitServer {
        use std::io::BufRead as _;
        let mut child = world
            .user
            .command("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/support/git_http.py"
            ))
            .arg(root)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .parse()
            .unwrap();
        GitServer { child, port }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In git mode a session pushes to its workspace's origin, and to no other repository of the
/// same server, whatever its rules allow: the rules admit the whole host, yet the push to
/// `eve/copy` is refused (403, audited with why) and reads of it still work.
#[test]
fn a_git_mode_session_pushes_to_its_origin_and_to_no_other_repository() {
    if !require_root("git-mode push guard") || !build_test_stem() {
        return;
    }
    let world = World::new("gh");
    let served = world.user.make_dir("served", 0o755);
    for repository in ["ada/project.git", "eve/copy.git"] {
        let bare = served.join(repository);
        git(
            &world,
            &world.user.home,
            &["init", "--quiet", "--bare", bare.to_str().unwrap()],
        );
        git(&world, &bare, &["config", "http.receivepack", "true"]);
    }
    let server = GitServer::start(&world, &served);
    let origin = format!("http://allowed.test:{}/ada/project.git", server.port);
    let repo = host_repository(&world, "guarded");
    git(&world, &repo, &["remote", "add", "origin", &origin]);
    let bare_origin = served.join("ada/project.git");
    git(
        &world,
        &repo,
        &["push", "--quiet", bare_origin.to_str().unwrap(), "main"],
    );
    add_workspace(&world, "guardedws", &repo, "");
    // The whole host is allowed: only the guard stands between the session and eve's copy.
    let config = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        format!(
            "{config}[container_profiles.gitpush]\nimage = \"test\"\nmemory = \"256m\"\n\
             starter_network_allowlist = [\"domain=allowed.test port={}\"]\n",
            server.port
        ),
    )
    .unwrap();
    let agent = world.agent();
    let (id, _) = world.start_in("guardedws", "gitpush");
    let push = |target: &str, branch: &str| {
        world.shell(
            &id,
            &[
                "sh",
                "-c",
                &format!(
                    "echo {branch} >> a.txt && git add a.txt && git commit --quiet -m {branch} && \
                     git push --quiet {target} HEAD:refs/heads/{branch} 2>&1; echo \"pushed=$?\""
                ),
            ],
        )
    };
    let (_, out) = push("origin", "from-session");
    assert!(out.contains("pushed=0"), "the push to the origin: {out}");
    let other = format!("http://allowed.test:{}/eve/copy.git", server.port);
    let (_, out) = push(&other, "stolen");
    assert!(
        !out.contains("pushed=0"),
        "the push to another repository: {out}"
    );
    // Reads of it stay as the rules say.
    let (code, out) = world.shell(&id, &["git", "ls-remote", &other]);
    assert_eq!(code, 0, "{out}");

    let heads = |bare: &str| {
        git(
            &world,
            &served.join(bare),
            &["for-each-ref", "--format=%(refname)"],
        )
    };
    assert!(heads("ada/project.git").contains("refs/heads/from-session"));
    assert!(
        !heads("eve/copy.git").contains("stolen"),
        "{}",
        heads("eve/copy.git")
    );
    let audit = std::fs::read_to_string(world.state.join("logs/audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|line| line.contains("/eve/copy.git/git-receive-pack")
                && line.contains("\"deny\"")
                && line.contains("pushes only to its workspace's origin")),
        "{audit}"
    );
    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success(), "{}", said(&stopped));
    agent.terminate();
    world.assert_nothing_left();
    drop(server);
}

/// A git-mode workspace with `git_url`, `branch` and `clone_depth`: the first start clones the
/// repository to the workspace's path (as the user), the session starts on that branch with
/// that much history, and its work comes back onto a branch named after it.
#[test]
fn a_workspace_cloned_from_a_url_starts_its_sessions_on_the_branch_and_depth_it_names() {
    if !require_root("git-mode clones from a URL") || !build_test_stem() {
        return;
    }
    let world = World::new("gu");
    let upstream = host_repository(&world, "upstream");
    git(&world, &upstream, &["switch", "--quiet", "-c", "dev"]);
    for n in 1..=3 {
        world
            .user
            .write_file(upstream.join("a.txt"), format!("dev {n}\n"));
        git(
            &world,
            &upstream,
            &["commit", "--quiet", "-am", &format!("dev {n}")],
        );
    }
    git(&world, &upstream, &["switch", "--quiet", "main"]);
    let workspace = world.user.home.join("src/from-url");
    add_workspace(
        &world,
        "urlws",
        &workspace,
        &format!(
            "git_url = \"file://{}\"\nbranch = \"dev\"\nclone_depth = 1\ncommit_on_exit = true\n",
            upstream.display()
        ),
    );
    let agent = world.agent();
    let (id, start_said) = world.start_in("urlws", "test");
    assert!(
        start_said.contains("works on its own clone"),
        "{start_said}"
    );
    // The workspace's repository was made as the user, from the URL.
    assert_eq!(
        git(&world, &workspace, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "dev"
    );
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "git rev-parse --abbrev-ref HEAD; git rev-list --count HEAD; cat a.txt; echo more >> a.txt",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>()[..3],
        ["dev", "1", "dev 3"],
        "{out}"
    );
    let name = session_name(&world, &id);
    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success(), "{}", said(&stopped));
    let branch = format!("hh/{name}/dev");
    assert_eq!(
        git(&world, &workspace, &["show", &format!("{branch}:a.txt")]),
        "dev 3\nmore\n"
    );
    agent.terminate();
    world.assert_nothing_left();
}
