//! `hh image build` through the agent, as ordinary users (in the socket group, not in `docker`):
//! a user's build makes images of their own, their sessions run them, and no user's build can
//! replace an image that root's or another user's sessions run.

mod support;

use std::{io::Write as _, process::Output, process::Stdio};

use support::{require_root, session_world::build_test_stem, user_world::UserWorld};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The engine's id of `image`, or `None` when there is none.
fn image_id(image: &str) -> Option<String> {
    let output = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn remove_image(image: &str) {
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", "--force", image])
        .output();
}

/// Starts a detached session of `workspace` as `user`; its id and what start printed.
fn start(world: &UserWorld, user: &support::users::TestUser, workspace: &str) -> (String, String) {
    let output = world
        .hh(
            user,
            &[
                "session",
                "start",
                "--detach",
                "--workspace",
                workspace,
                "--template",
                "test",
            ],
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "session start: {}", text(&output));
    let id = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    (id, text(&output))
}

/// One raw request line on the agent socket as `user`; the agent's reply lines, until it
/// closes the connection (this side stays open: a build's client that closes is gone).
fn raw_request(world: &UserWorld, user: &support::users::TestUser, line: &str) -> String {
    let script = "import socket,sys\n\
                  s=socket.socket(socket.AF_UNIX)\n\
                  s.connect(sys.argv[1])\n\
                  s.sendall(sys.stdin.buffer.read())\n\
                  out=b''\n\
                  while True:\n\
                  \x20   chunk=s.recv(65536)\n\
                  \x20   if not chunk: break\n\
                  \x20   out+=chunk\n\
                  sys.stdout.write(out.decode())\n";
    let mut child = user
        .command("python3")
        .args(["-c", script])
        .arg(&world.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_users_build_is_theirs_alone_and_replaces_nobody_elses_image() {
    if !require_root("agent image build e2e") || !build_test_stem() {
        return;
    }
    let world = UserWorld::new();
    let alices = format!("hh-test:u{}", world.alice.uid);
    let bobs = format!("hh-test:u{}", world.bob.uid);
    remove_image(&alices);
    remove_image(&bobs);
    let roots = image_id("hh-test").expect("root's hh-test");

    // Alice's own `test` stem, in her docker_dir (the config's default, under her home): it
    // marks the image as hers.
    let stems = world.alice.make_dir(".config/harness-hat/docker", 0o755);
    world.alice.write_file(
        stems.join("test.dockerfile"),
        "# hh-stem-parent: none\nARG BASE=hh-test-base\nFROM ${BASE}\n\
         RUN echo alice > /built-by\n",
    );
    let build = world
        .hh(
            &world.alice,
            &["image", "build", "test", "--base", "hh-test-base"],
        )
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    // The engine's own step output reaches her, and she is told what her sessions run now.
    assert!(text(&build).contains("Step 1/"), "{}", text(&build));
    assert!(
        text(&build).contains(&format!("your sessions of stem `test` run {alices}")),
        "{}",
        text(&build)
    );
    let built = image_id(&alices).expect("alice's image");
    assert_eq!(
        support::docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.hh.built-by-uid\"}}",
            &alices
        ])
        .trim(),
        world.alice.uid.to_string()
    );
    // Root's image, which every other user's sessions run, is the one it was.
    assert_eq!(image_id("hh-test").as_deref(), Some(roots.as_str()));

    // Her sessions run her image; bob's (who built none) run root's.
    let (alice_session, started) = start(&world, &world.alice, "demo");
    assert!(
        started.contains(&format!("runs image {alices}\n")),
        "{started}"
    );
    let marker = world
        .hh(
            &world.alice,
            &["shell", &alice_session, "--", "cat", "/built-by"],
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&marker.stdout),
        "alice\n",
        "{}",
        text(&marker)
    );
    // Bob's own seed and global rules, which the config names under his home.
    world
        .bob
        .write_file(world.bob.home.join("seed.txt"), "bob's seed\n");
    world.bob.write_file(
        world.bob.home.join("global-rules.toml"),
        "[network]\nallowlist = []\n",
    );
    let (bob_session, started) = start(&world, &world.bob, "bobs");
    assert!(started.contains("runs image hh-test\n"), "{started}");
    let marker = world
        .hh(
            &world.bob,
            &["shell", &bob_session, "--", "cat", "/built-by"],
        )
        .output()
        .unwrap();
    assert!(
        !marker.status.success(),
        "bob runs alice's image: {}",
        text(&marker)
    );
    let listed = world
        .hh(&world.alice, &["session", "list"])
        .output()
        .unwrap();
    assert!(text(&listed).contains(&alice_session), "{}", text(&listed));

    // Bob, on the socket itself, tries to write alice's or root's name (through the stem's
    // name, the base, the build args), to read alice's image or a local one of root's, or to
    // have the engine act for him as root. Each is refused before the engine sees it.
    let private = format!("hhtestprivate/p{}:local", std::process::id());
    support::docker(&["tag", "hh-test-base", &private]);
    let request = |name: &str, text: &str, base: Option<&str>, args: &[&str]| {
        serde_json::json!({
            "op": "build_image",
            "stems": [{"name": name, "text": format!("# hh-stem-parent: none\n{text}")}],
            "base": base,
            "build_args": args,
        })
    };
    let own = "ARG BASE=hh-test-base\nFROM ${BASE}\nRUN echo bob > /built-by\n";
    for (attempt, refusal) in [
        (
            request(&format!("test:u{}", world.alice.uid), own, None, &[]),
            "cannot name a stem",
        ),
        (request("test:latest", own, None, &[]), "cannot name a stem"),
        (request("../test", own, None, &[]), "cannot name a stem"),
        (
            request("test", own, None, &["BASE=hh-test-base"]),
            "set by hh",
        ),
        (
            request("test", own, Some(&alices), &[]),
            "another user's image",
        ),
        (
            request("test", own, Some(&private), &[]),
            "built on this host",
        ),
        (
            request("test", &format!("FROM {alices}\n"), None, &[]),
            "a user's stem builds on its BASE",
        ),
        (
            request(
                "test",
                &format!("FROM ${{BASE}}\nCOPY --from={alices} / /a\n"),
                None,
                &[],
            ),
            "copies out of another image",
        ),
        (
            request(
                "test",
                "FROM ${BASE}\nADD http://127.0.0.1:9/x /x\n",
                None,
                &[],
            ),
            "fetched by the engine",
        ),
        (
            request("test", own, None, &["HTTP_PROXY=http://127.0.0.1:9"]),
            "root's to set",
        ),
        (
            serde_json::json!({
                "op": "build_image",
                "stems": [{"name": "test", "text": own}],
                "tag": alices,
            }),
            "unknown field",
        ),
    ] {
        let reply = raw_request(&world, &world.bob, &attempt.to_string());
        assert!(
            reply.contains("\"reply\":\"error\"") && reply.contains(refusal),
            "{attempt}: {reply}"
        );
    }
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", &private])
        .output();
    // What bob can build is his own: his name, his ids, nobody else's image touched.
    let reply = raw_request(
        &world,
        &world.bob,
        &request("test", own, None, &[]).to_string(),
    );
    assert!(reply.contains("\"reply\":\"images_built\""), "{reply}");
    assert!(reply.contains(&bobs), "{reply}");
    assert_eq!(image_id(&alices).as_deref(), Some(built.as_str()));
    assert_eq!(image_id("hh-test").as_deref(), Some(roots.as_str()));
    assert_eq!(
        support::docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.hh.built-by-uid\"}}",
            &bobs
        ])
        .trim(),
        world.bob.uid.to_string()
    );
    // Alice's running session still runs what it started from, and her next one too.
    let marker = world
        .hh(
            &world.alice,
            &["shell", &alice_session, "--", "cat", "/built-by"],
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&marker.stdout), "alice\n");
    for session in [&alice_session, &bob_session] {
        let _ = world
            .hh(&world.alice, &["session", "stop", session])
            .output();
        let _ = world.hh(&world.bob, &["session", "stop", session]).output();
    }
    remove_image(&alices);
    remove_image(&bobs);
}

/// `command`'s output, or a panic with what it printed so far when it runs past `limit`.
fn output_within(command: &mut std::process::Command, limit: std::time::Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}", text(&output));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Containers whose command runs `needle` (a build step's, here).
fn containers_running(needle: &str) -> Vec<String> {
    support::docker(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        .lines()
        .filter(|line| line.contains(needle))
        .map(|line| line.split(' ').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn one_build_per_user_at_a_time_and_a_build_stops_when_its_client_goes() {
    if !require_root("agent image build e2e") || !build_test_stem() {
        return;
    }
    let world = UserWorld::new();
    let stems = world.alice.make_dir(".config/harness-hat/docker", 0o755);
    // A step that takes long enough to be seen running, and a marker unique to this run.
    let marker = format!("sleep 3{}", std::process::id() % 100 + 100);
    world.alice.write_file(
        stems.join("slow.dockerfile"),
        format!("# hh-stem-parent: none\nARG BASE=hh-test-base\nFROM ${{BASE}}\nRUN {marker}\n"),
    );
    let log = world.alice.home.join("build.log");
    let mut first = world
        .hh(
            &world.alice,
            &["image", "build", "slow", "--base", "hh-test-base"],
        )
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while containers_running(&marker).is_empty() {
        if std::time::Instant::now() > deadline || first.try_wait().unwrap().is_some() {
            let _ = first.kill();
            panic!(
                "no build step running `{marker}`; the build said:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A second build of hers while the first runs is refused at once, saying why.
    let second = output_within(
        &mut world.hh(
            &world.alice,
            &["image", "build", "slow", "--base", "hh-test-base"],
        ),
        std::time::Duration::from_secs(20),
    );
    assert!(!second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("a build of yours is running; one at a time"),
        "{}",
        text(&second)
    );
    // Bob is not held up by alice's build.
    let bobs = world.hh(&world.bob, &["session", "list"]).output().unwrap();
    assert!(bobs.status.success(), "{}", text(&bobs));

    // The client goes away: the build, and its step's container, stop.
    first.kill().unwrap();
    first.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !containers_running(&marker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build went on without its client: {:?}",
            containers_running(&marker)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // And the slot is free again: the next build starts (and is stopped the same way).
    let mut third = world
        .hh(
            &world.alice,
            &["image", "build", "slow", "--base", "hh-test-base"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while containers_running(&marker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot stayed taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    third.kill().unwrap();
    third.wait().unwrap();
}
