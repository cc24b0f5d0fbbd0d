//! `cargo xtask image`: the local images tests build on.
//!
//! No container registry is reachable, so `hh-test-base` is bootstrapped from the host's own
//! apt sources with mmdebstrap and imported into Docker. The Dockerfiles under `docker/` take
//! their base as `ARG BASE`, so tests build the real stems on top of this image.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::exec;

pub const TEST_BASE: &str = "hh-test-base";

/// What the tests expect inside every container they start.
const TEST_BASE_PACKAGES: &[&str] = &[
    "ca-certificates",
    "curl",
    "python3",
    "iproute2",
    "netcat-openbsd",
    "dnsutils",
    "tmux",
    "git",
];

/// The label that records what the image was made with: a changed package list makes
/// `cargo xtask image` build it again (the machine that runs CI keeps its images between runs).
const CONTENT_LABEL: &str = "dev.hh.test-base-packages";

#[derive(clap::Args, Default)]
pub struct Options {
    /// Build again even if the image exists.
    #[arg(long)]
    rebuild: bool,
}

pub fn run(workspace: &Path, options: &Options) -> Result<()> {
    let wanted = TEST_BASE_PACKAGES.join(",");
    if !options.rebuild && image_label(TEST_BASE, CONTENT_LABEL).as_deref() == Some(&wanted) {
        eprintln!("xtask image: {TEST_BASE} present, reused");
    } else {
        build_test_base()?;
    }
    let agents = agents_content();
    if !options.rebuild && image_label(TEST_AGENTS, AGENTS_LABEL).as_deref() == Some(&agents) {
        eprintln!("xtask image: {TEST_AGENTS} present, reused");
        return Ok(());
    }
    build_test_agents(workspace, &agents)
}

/// The test base with the real coding-agent CLIs the harness tests run (their native
/// binaries, from the npm registry's tarballs: no Node.js needed in the image).
pub const TEST_AGENTS: &str = "hh-test-agents";

/// The pinned CLIs: npm package, version, and the binary's path inside its tarball.
const AGENT_CLIS: &[(&str, &str, &str, &str)] = &[
    (
        "claude",
        "@anthropic-ai/claude-code-linux-x64",
        "2.1.332",
        "package/claude",
    ),
    (
        "codex",
        "@openai/codex",
        "0.171.0-linux-x64",
        "package/vendor/x86_64-unknown-linux-musl/bin/codex",
    ),
];

/// What [`TEST_AGENTS`] was made with (rebuilt when it changes).
const AGENTS_LABEL: &str = "dev.hh.test-agents";

fn agents_content() -> String {
    let clis: Vec<String> = AGENT_CLIS
        .iter()
        .map(|(_, package, version, _)| format!("{package}@{version}"))
        .collect();
    format!("{};{}", clis.join(","), TEST_BASE_PACKAGES.join(","))
}

fn build_test_agents(workspace: &Path, content: &str) -> Result<()> {
    if std::env::consts::ARCH != "x86_64" {
        bail!(
            "the test agents image pins the CLIs' linux-x64 builds; this host is {}",
            std::env::consts::ARCH
        );
    }
    // Under target/, which no other user can write (not a shared temp dir).
    let dir = workspace.join("target/hh-test-agents");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let built = (|| -> Result<()> {
        let mut pack = Command::new("npm");
        pack.args(["pack", "--silent", "--pack-destination"])
            .arg(&dir);
        for (_, package, version, _) in AGENT_CLIS {
            pack.arg(format!("{package}@{version}"));
        }
        exec::run(&mut pack)?;
        let mut dockerfile = format!("FROM {TEST_BASE}\n");
        for (name, package, version, inner) in AGENT_CLIS {
            // `npm pack` names the tarball after the package and version, scope flattened.
            let tarball = format!(
                "{}-{version}.tgz",
                package.trim_start_matches('@').replace('/', "-")
            );
            exec::run(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(dir.join(&tarball))
                    .arg("-C")
                    .arg(&dir)
                    .arg(inner),
            )?;
            std::fs::rename(dir.join(inner), dir.join(name))
                .with_context(|| format!("moving {inner} out of {tarball}"))?;
            std::fs::remove_file(dir.join(&tarball))?;
            dockerfile.push_str(&format!("COPY {name} /usr/local/bin/{name}\n"));
        }
        dockerfile.push_str(&format!("LABEL {AGENTS_LABEL}=\"{content}\"\n"));
        std::fs::write(dir.join("Dockerfile"), dockerfile)?;
        exec::run(
            Command::new("docker")
                .args(["build", "-q", "-t", TEST_AGENTS])
                .arg(&dir),
        )
    })();
    let _ = std::fs::remove_dir_all(&dir);
    built.with_context(|| format!("building {TEST_AGENTS}"))
}

/// The value of `label` on image `name`; `None` when there is no such image or label.
fn image_label(name: &str, label: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
    let output =
        exec::probe(Command::new("docker").args(["image", "inspect", "--format", &format, name]))?;
    let value = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !value.is_empty() && value != "<no value>").then_some(value)
}

fn build_test_base() -> Result<()> {
    let codename = host_codename()?;
    let sources = host_sources(&codename)?;
    let mut bootstrap = Command::new("mmdebstrap");
    bootstrap
        .args(["--variant=minbase", "--quiet"])
        .arg(format!("--include={}", TEST_BASE_PACKAGES.join(",")))
        .args([codename.as_str(), "-"])
        .args(&sources)
        .stdout(Stdio::piped());
    eprintln!(
        "xtask: $ {} | docker import - {TEST_BASE}",
        exec::display(&bootstrap)
    );
    let mut bootstrap = bootstrap.spawn().context("could not start mmdebstrap")?;
    let tarball = bootstrap
        .stdout
        .take()
        .context("mmdebstrap has no stdout")?;
    let imported = Command::new("docker")
        .args(["import", "--change", "CMD [\"/bin/bash\"]"])
        .arg("--change")
        .arg(format!(
            "LABEL {CONTENT_LABEL}={}",
            TEST_BASE_PACKAGES.join(",")
        ))
        .args(["-", TEST_BASE])
        .stdin(tarball)
        .status()
        .context("could not start `docker import`")?;
    let bootstrapped = bootstrap.wait()?;
    if !bootstrapped.success() || !imported.success() {
        bail!("building {TEST_BASE} failed (mmdebstrap {bootstrapped}, docker import {imported})");
    }
    Ok(())
}

fn host_codename() -> Result<String> {
    let os_release =
        std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|value| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME")
}

/// The host's apt source files that serve its own release (third-party repositories, whose
/// suites are named otherwise, are left out). mmdebstrap pastes each into the image.
fn host_sources(codename: &str) -> Result<Vec<PathBuf>> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut listed: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
        listed.sort();
        files.extend(listed);
    }
    let serves_release = |text: &str| {
        text.lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .any(|line| line.split_whitespace().any(|word| word == codename))
    };
    let sources: Vec<PathBuf> = files
        .into_iter()
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "list" || extension == "sources")
        })
        .filter(|path| std::fs::read_to_string(path).is_ok_and(|text| serves_release(&text)))
        .collect();
    if sources.is_empty() {
        bail!("no apt source of this host serves `{codename}`; mmdebstrap needs one");
    }
    Ok(sources)
}
