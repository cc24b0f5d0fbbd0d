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

pub fn run(_workspace: &Path, options: &Options) -> Result<()> {
    let wanted = TEST_BASE_PACKAGES.join(",");
    if !options.rebuild && image_label(TEST_BASE, CONTENT_LABEL).as_deref() == Some(&wanted) {
        eprintln!("xtask image: {TEST_BASE} present, reused");
        return Ok(());
    }
    build_test_base()
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
