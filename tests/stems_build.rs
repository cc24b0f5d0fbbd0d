//! The shipped stems build (issue 12, item 8): root's `hh image build` through a real agent
//! makes the `base` and `default` stems on the locally made test base, their Node and coding
//! agent CLIs from the npm registry, on the host's network and trusting the host's CA bundle
//! lent as a build secret — in no layer, history entry or config of the images. A user's build
//! through the same agent gets neither the host's network nor the bundle.
//!
//! The bundle is the host's own with one certificate added that exists nowhere else (made
//! here): finding it in a step proves the secret arrived, and not finding it in `docker save`
//! of the images proves nothing kept it.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    os::unix::fs::PermissionsExt as _,
    process::{Command, Output, Stdio},
};

use support::{
    llm::{LlmStandIn, REPLY},
    require_root,
    session_world::build_test_stem,
    user_world::UserWorld,
};

/// The host's trust store, which reaches the registries here (an egress that intercepts TLS).
const HOST_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The CLI versions the build pins (a `latest` would change under CI).
const PINS: &[&str] = &[
    "CLAUDE_CODE_VERSION=2.1.332",
    "CODEX_VERSION=0.171.0",
    "GEMINI_CLI_VERSION=0.61.0",
    "OPENCODE_VERSION=1.18.33",
    "PI_VERSION=0.73.1",
    "PNPM_VERSION=10.28.0",
    "TYPESCRIPT_VERSION=5.9.3",
    "TSX_VERSION=4.23.15",
    "BUN_VERSION=1.4.5",
];

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Removes the images it names when dropped (also when the test fails).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = Command::new("docker")
                .args(["image", "rm", "--force", image])
                .output();
        }
    }
}

/// The name of the HTTPS upstream the runtimes fetch from (through the MITM).
const RUNTIME_HOST: &str = "runtime.test";

/// In a session of alice's on the built `default` image, a real client of each runtime the
/// image ships fetches from the local HTTPS upstream through the MITM and gets its body; the
/// clients that read the system store do with every CA variable unset too (the bundle is
/// mounted over it) and fail when told to trust only the image's own roots (they verify);
/// Node and Bun, which read no system store, fail without `NODE_EXTRA_CA_CERTS`.
fn runtimes_trust_the_session_ca(world: &UserWorld, port: u16, api_port: u16) {
    let rules = world.alice.home.join("proj/harness-rules.toml");
    world.alice.write_file(
        &rules,
        format!(
            "[network]\nallowlist = [\"domain={RUNTIME_HOST} port={port}\", \
             \"domain=api.gemini.test,api.openai.test port={api_port}\"]\n"
        ),
    );
    world.trust_rules(&world.alice, "demo");
    let id = world.start_detached(&world.alice, "demo", "runtimes");
    let url = format!("https://{RUNTIME_HOST}:{port}/trust");
    let run = |script: &str| {
        let output = world
            .hh(&world.alice, &["shell", &id, "--", "bash", "-c", script])
            .env("HH_TEST_URL", &url)
            .output()
            .unwrap();
        (output.status.success(), text(&output))
    };
    let (made, out) = run("cat /usr/share/ca-certificates/mozilla/*.crt > /tmp/pristine.pem");
    assert!(made, "the image's own roots: {out}");
    let body = "upstream saw GET /trust";
    let fetch = [
        ("curl", format!("curl -sS {url}")),
        (
            "python",
            format!(
                "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"{url}\").read().decode())'"
            ),
        ),
        (
            "node",
            format!("node -e 'fetch(\"{url}\").then(r => r.text()).then(t => console.log(t))'"),
        ),
        (
            "bun",
            format!("bun -e 'console.log(await (await fetch(\"{url}\")).text())'"),
        ),
    ];
    const CA_VARS: &str = "-u SSL_CERT_FILE -u CURL_CA_BUNDLE -u REQUESTS_CA_BUNDLE \
                           -u GIT_SSL_CAINFO -u NODE_EXTRA_CA_CERTS";
    for (runtime, command) in &fetch {
        let (ok, out) = run(command);
        assert!(ok && out.contains(body), "{runtime} in a session: {out}");
        // No CA variable at all: what reads the system store still trusts the session CA
        // (the bundle mounted over it); Node and Bun read none, so the variable is what
        // makes them trust it.
        let (ok, out) = run(&format!("env {CA_VARS} {command}"));
        let reads_system_store = matches!(*runtime, "curl" | "python");
        assert_eq!(
            ok && out.contains(body),
            reads_system_store,
            "{runtime} with no CA variable (the system store alone): {out}"
        );
        if reads_system_store {
            let (ok, out) = run(&format!(
                "env SSL_CERT_FILE=/tmp/pristine.pem CURL_CA_BUNDLE=/tmp/pristine.pem {command}"
            ));
            assert!(
                !ok && !out.contains(body),
                "{runtime} trusting only the image's roots must fail: {out}"
            );
        }
    }
    // git: its request reaches the upstream over verified TLS (the upstream is no git server,
    // so git then says the repository is not one).
    let git = format!("git ls-remote {url}/repo.git");
    let (_, out) = run(&git);
    assert!(
        !out.contains("certificate") && out.contains("trust/repo.git"),
        "git in a session: {out}"
    );
    let (_, out) = run(&format!("env {CA_VARS} {git}"));
    assert!(
        !out.contains("certificate"),
        "git, the system store alone: {out}"
    );
    // (Debian's git reads the CA directory too, where the system bundle also is.)
    let (ok, out) = run(&format!(
        "mkdir -p /tmp/no-ca-dir && env GIT_SSL_CAINFO=/tmp/pristine.pem \
         GIT_SSL_CAPATH=/tmp/no-ca-dir {git}"
    ));
    assert!(
        !ok && out.contains("certificate"),
        "git trusting only the image's roots must fail: {out}"
    );
    // `hh doctor --session` finds the same, each runtime asked for real.
    let doctor = world
        .hh(&world.alice, &["doctor", "--session", &id, "--json"])
        .output()
        .unwrap();
    assert!(
        doctor.status.success(),
        "doctor --session: {}",
        text(&doctor)
    );
    let report: Vec<serde_json::Value> = serde_json::from_slice(&doctor.stdout).unwrap();
    let status_of = |runtime: &str| {
        report
            .iter()
            .find(|entry| entry["runtime"] == runtime)
            .map(|entry| entry["status"].as_str().unwrap().to_owned())
    };
    for runtime in ["curl", "python", "node", "bun", "git"] {
        assert_eq!(
            status_of(runtime).as_deref(),
            Some("trusts"),
            "{runtime}: {report:?}"
        );
    }
    for runtime in ["deno", "ruby", "php"] {
        assert_eq!(
            status_of(runtime).as_deref(),
            Some("absent"),
            "{runtime}: {report:?}"
        );
    }
    let stopped = world
        .hh(&world.alice, &["session", "stop", &id])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "session stop: {}", text(&stopped));
}

/// A phrase of hh's network note for agents ([`hh::harness::NETWORK_NOTE`]).
const NOTE_MARKER: &str = "mediated by hh";

/// The stand-in API names (Gemini's API; the OpenAI-compatible Chat Completions of OpenCode's
/// and pi's configured provider).
const API_HOSTS: &[&str] = &["api.gemini.test", "api.openai.test"];

/// `hh run --harness gemini|opencode|pi` as alice on the built `default` image: each real CLI
/// (as `base` installs it from the npm registry) answers one prompt from the local stand-in of
/// its API, through the MITM, with its key; the setup script writes what points each at the
/// stand-in (the config a user would have in their home).
fn gemini_opencode_and_pi_answer_a_prompt(world: &UserWorld, standin: &LlmStandIn) {
    let port = standin.tls_port;
    let gemini_setup = r#"mkdir -p ~/.gemini && cat > ~/.gemini/settings.json <<'EOF'
{"security": {"auth": {"selectedType": "gemini-api-key"}},
 "privacy": {"usageStatisticsEnabled": false},
 "model": {"name": "gemini-2.5-flash"}}
EOF"#
        .to_owned();
    let opencode_setup = format!(
        r#"mkdir -p ~/.config/opencode/node_modules && cd ~/.config/opencode &&
echo '{{"dependencies":{{"@opencode-ai/plugin":"*"}}}}' > package.json &&
echo '{{"lockfileVersion":3,"packages":{{"":{{"dependencies":{{"@opencode-ai/plugin":"*"}}}}}}}}' > package-lock.json &&
cat > opencode.json <<'EOF'
{{"model": "standin/test-model", "small_model": "standin/test-model", "autoupdate": false,
 "share": "disabled",
 "provider": {{"standin": {{"npm": "@ai-sdk/openai-compatible", "name": "Stand-in",
   "options": {{"baseURL": "https://api.openai.test:{port}/v1", "apiKey": "{{env:OPENAI_API_KEY}}"}},
   "models": {{"test-model": {{"name": "Test Model"}}}}}}}}}}
EOF"#
    );
    let pi_setup = format!(
        r#"mkdir -p ~/.pi/agent && cd ~/.pi/agent &&
cat > models.json <<'EOF'
{{"providers": {{"standin": {{"baseUrl": "https://api.openai.test:{port}/v1",
  "api": "openai-completions", "apiKey": "OPENAI_API_KEY",
  "models": [{{"id": "test-model", "name": "Test Model", "reasoning": false, "input": ["text"],
    "contextWindow": 128000, "maxTokens": 16384}}]}}}}}}
EOF
echo '{{"defaultProvider": "standin", "defaultModel": "test-model", "quietStartup": true}}' > settings.json"#
    );
    let runs = [
        (
            "gemini",
            gemini_setup,
            vec![
                ("GEMINI_API_KEY", "gemini-test-key".to_owned()),
                (
                    "GOOGLE_GEMINI_BASE_URL",
                    format!("https://api.gemini.test:{port}"),
                ),
            ],
            "gemini-test-key",
        ),
        (
            "opencode",
            opencode_setup,
            vec![("OPENAI_API_KEY", "sk-opencode-test".to_owned())],
            "sk-opencode-test",
        ),
        (
            "pi",
            pi_setup,
            vec![("OPENAI_API_KEY", "sk-pi-test".to_owned())],
            "sk-pi-test",
        ),
    ];
    for (harness, setup, env, key) in runs {
        let before = standin.seen().len();
        let mut command = world.hh(
            &world.alice,
            &[
                "run",
                "--workspace",
                "demo",
                "--template",
                "runtimes",
                "--harness",
                harness,
                "--timeout",
                "180",
                "--setup-script",
                &setup,
                "Say the magic word.",
            ],
        );
        for (name, value) in &env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let out = text(&output);
        assert!(output.status.success(), "hh run --harness {harness}: {out}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(REPLY),
            "{harness} printed the stand-in's reply: {out}"
        );
        let seen = standin.seen();
        let asked: Vec<_> = seen[before..].iter().collect();
        assert!(
            asked
                .iter()
                .any(|request| request.key.as_deref().is_some_and(|k| k.contains(key))),
            "{harness} called its API with its key: {asked:?}"
        );
        // What hh told the agent about its network reached the model with the prompt.
        assert!(
            asked
                .iter()
                .any(|request| request.body.contains(NOTE_MARKER)),
            "{harness}'s request carries hh's network note"
        );
    }
}

/// A certificate no one else has, and the line of its base64 that marks it.
fn marker_certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["bundle-marker.test".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    let line = pem
        .lines()
        .nth(3)
        .expect("a PEM body of several lines")
        .to_owned();
    (pem, line)
}

/// Serves one fixed line to every connection on the host's 127.0.0.1 until the test ends.
fn loopback_marker() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ =
                stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\nhost-loopback-ok");
        }
    });
    port
}

/// Whether `needle` occurs in what `docker save IMAGE` writes (every layer, the config with
/// its history and build args), read as it streams.
fn saved_image_contains(image: &str, needle: &[u8]) -> bool {
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = save.stdout.take().unwrap();
    let mut window: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut found = false;
    loop {
        let read = stdout.read(&mut chunk).unwrap();
        if read == 0 {
            break;
        }
        window.extend_from_slice(&chunk[..read]);
        if window.windows(needle.len()).any(|w| w == needle) {
            found = true;
            break;
        }
        let keep = window.len().saturating_sub(needle.len());
        window.drain(..keep);
    }
    drop(stdout);
    let status = save.wait().unwrap();
    assert!(found || status.success(), "docker save {image} failed");
    found
}

#[test]
fn the_shipped_base_and_default_stems_build_with_the_hosts_ca_lent_and_kept_by_no_image() {
    if !require_root("building the shipped stems through the agent") || !build_test_stem() {
        return;
    }
    let tag = support::leftovers::run_tag();
    let (marker_pem, marker_line) = marker_certificate();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = dir.path().join("bundle.pem");
    let mut host = std::fs::read_to_string(HOST_BUNDLE).expect("the host's CA bundle");
    host.push_str(&marker_pem);
    let bundle_sha256: String = ring::digest::digest(&ring::digest::SHA256, host.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    std::fs::write(&bundle, host).unwrap();
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = loopback_marker();
    let upstream = support::upstream::start_upstream(&[RUNTIME_HOST]);
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &upstream.ca_pem).unwrap();
    let standin = LlmStandIn::start(API_HOSTS, std::time::Duration::ZERO);
    let standin_ca = dir.path().join("standin-ca.pem");
    std::fs::write(&standin_ca, &standin.ca_pem).unwrap();
    let base = format!("t{tag}-base");
    let default = format!("t{tag}-default");
    let probe = format!("t{tag}-probe");

    let world = UserWorld::with(
        &[
            "--resolve",
            &format!("{RUNTIME_HOST}=127.0.0.1"),
            "--upstream-ca",
            &upstream_ca.display().to_string(),
            "--resolve",
            "api.gemini.test=127.0.0.1",
            "--resolve",
            "api.openai.test=127.0.0.1",
            "--upstream-ca",
            &standin_ca.display().to_string(),
        ],
        &format!(
            "[images]\nbuild_network = \"host\"\nhost_ca_bundle = \"{}\"\n\
             [container_profiles.runtimes]\nimage = \"{default}\"\n",
            bundle.display()
        ),
    );
    // [images] counts only in an agent config root alone controls.
    std::os::unix::fs::chown(&world.config, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&world.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Root's client reads the stems from a config of its own: the shipped base and default,
    // under names of this run (their images must not replace a real hh-base), and a probe.
    let stems = dir.path().join("stems");
    std::fs::create_dir(&stems).unwrap();
    let shipped_default = include_str!("../docker/default.dockerfile").replace(
        "# hh-stem-parent: base",
        &format!("# hh-stem-parent: {base}"),
    );
    assert!(shipped_default.contains(&base), "default names its parent");
    std::fs::write(
        stems.join(format!("{base}.dockerfile")),
        include_str!("../docker/base.dockerfile"),
    )
    .unwrap();
    std::fs::write(stems.join(format!("{default}.dockerfile")), shipped_default).unwrap();
    std::fs::write(
        stems.join(format!("{probe}.dockerfile")),
        format!(
            "# hh-stem-parent: none\nARG BASE=hh-test-base\nFROM ${{BASE}}\n\
             RUN --mount=type=secret,id=host-ca sha256sum /run/secrets/host-ca \
             && curl -s --max-time 5 http://127.0.0.1:{port}/ && echo\n"
        ),
    )
    .unwrap();
    let root_config = dir.path().join("root.toml");
    std::fs::write(
        &root_config,
        format!("version = 1\ndocker_dir = \"{}\"\n", stems.display()),
    )
    .unwrap();
    let _images = Images(
        [&base, &default, &probe]
            .iter()
            .map(|stem| format!("hh-{stem}"))
            .collect(),
    );
    let root_build = |stem: &str, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hh"));
        command
            .env("HH_AGENT_SOCKET", &world.socket)
            .arg("--config")
            .arg(&root_config)
            .args(["image", "build", stem, "--base", "hh-test-base"]);
        for arg in extra {
            command.args(["--build-arg", arg]);
        }
        command.output().unwrap()
    };

    // The probe: its step sees the lent bundle (the very file) and the host's loopback.
    let probed = root_build(&probe, &[]);
    let out = text(&probed);
    assert!(probed.status.success(), "root's probe build: {out}");
    assert!(
        !out.contains("building with the Docker engine directly"),
        "the agent built it: {out}"
    );
    assert!(out.contains(&bundle_sha256), "the bundle lent: {out}");
    assert!(out.contains("host-loopback-ok"), "host network: {out}");

    // The shipped stems.
    let built = root_build(&default, PINS);
    let out = text(&built);
    assert!(
        built.status.success(),
        "root's build of base and default: {out}"
    );
    let image = format!("hh-{default}");
    let versions = Command::new("docker")
        .args(["run", "--rm", "--network", "none", &image, "bash", "-lc"])
        .arg(
            "set -e; node --version; npm --version; claude --version; codex --version; \
             gemini --version; opencode --version; pi --version; pnpm --version; \
             tsc --version; bun --version; id -un; \
             test ! -e /run/secrets/host-ca && echo no-secret-left",
        )
        .output()
        .unwrap();
    let out = text(&versions);
    assert!(versions.status.success(), "the CLIs in {image}: {out}");
    for expected in [
        "v22.12.0",
        "10.9.2",
        "2.1.332",
        "0.171.0",
        "0.61.0",
        "1.18.33",
        "0.73.1",
        "10.28.0",
        "5.9.3",
        "1.4.5",
        "coder",
        "no-secret-left",
    ] {
        assert!(out.contains(expected), "{expected} in {image}: {out}");
    }
    for stem in [&base, &default, &probe] {
        let image = format!("hh-{stem}");
        assert!(
            !saved_image_contains(&image, marker_line.as_bytes()),
            "the lent bundle is in {image}"
        );
    }

    // Every runtime of the image trusts the session CA in a session of alice's.
    runtimes_trust_the_session_ca(&world, upstream.tls_port, standin.tls_port);
    // The CLIs the image ships answer a prompt through the MITM.
    gemini_opencode_and_pi_answer_a_prompt(&world, &standin);

    // Alice's build through the same agent: the legacy builder on the bridge, no bundle (the
    // step's request for it is dropped) and no host loopback.
    let alice_stems = world.alice.make_dir(".config/harness-hat/docker", 0o755);
    world.alice.write_file(
        alice_stems.join("test.dockerfile"),
        format!(
            "# hh-stem-parent: none\nARG BASE=hh-test-base\nFROM ${{BASE}}\n\
             RUN --mount=type=secret,id=host-ca test ! -e /run/secrets/host-ca \
             && ! curl -s --max-time 5 http://127.0.0.1:{port}/ && echo user-build-isolated\n"
        ),
    );
    let alices = world
        .hh(
            &world.alice,
            &["image", "build", "test", "--base", "hh-test-base"],
        )
        .output()
        .unwrap();
    let _alices = Images(vec![format!("hh-test:u{}", world.alice.uid)]);
    let out = text(&alices);
    assert!(alices.status.success(), "alice's build: {out}");
    assert!(out.contains("user-build-isolated"), "alice's build: {out}");
    assert!(!out.contains("host-loopback-ok"), "alice's build: {out}");

    // An agent config a user can change gives root's builds nothing of [images].
    std::os::unix::fs::chown(&world.config, Some(world.alice.uid), None).unwrap();
    let refused = root_build(&probe, &[]);
    let out = text(&refused);
    assert!(!refused.status.success(), "a user's agent config: {out}");
    assert!(
        out.contains("[images]") && out.contains(&format!("uid {}", world.alice.uid)),
        "the refusal names the config's owner: {out}"
    );
    std::os::unix::fs::chown(&world.config, Some(0), None).unwrap();

    // A bundle another user could write is not what root's builds trust.
    std::os::unix::fs::chown(&bundle, Some(world.alice.uid), None).unwrap();
    let refused = root_build(&probe, &[]);
    let out = text(&refused);
    assert!(!refused.status.success(), "a user's bundle was lent: {out}");
    assert!(
        out.contains("images.host_ca_bundle") && out.contains(&format!("uid {}", world.alice.uid)),
        "the refusal names the key and the owner: {out}"
    );
}

/// Root's `hh image build` does not take `[images]` from a config another user can change (under
/// sudo, `$HOME` may still be the user's): their file must not put root's build steps on the
/// host's network.
#[test]
fn root_takes_images_only_from_a_config_root_alone_controls() {
    if !require_root("root's image build reading a user's config") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("users.toml");
    std::fs::write(&config, "version = 1\n[images]\nbuild_network = \"host\"\n").unwrap();
    // nobody's file, as a user's config under sudo would be that user's.
    std::os::unix::fs::chown(&config, Some(65534), Some(65534)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hh"))
        .env("HH_AGENT_SOCKET", dir.path().join("no-agent.sock"))
        .arg("--config")
        .arg(&config)
        .args(["image", "build", "default"])
        .output()
        .unwrap();
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("[images]") && out.contains("uid 65534"),
        "the refusal says why: {out}"
    );
    assert!(!out.contains("hh image: ["), "nothing was built: {out}");
}
