//! `hh image build [STEM]` and `hh image list`: the session images, built with the Docker CLI
//! so its step-by-step output shows what happens (and its layer cache skips what is current).

use std::{
    io::Write as _,
    path::Path,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};

use crate::image::{build_order, discover, image_name};

#[derive(clap::Args, Debug)]
pub struct Options {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ImageCommand {
    /// Build a stem (default: `default`) and every stem it builds on, in order.
    Build {
        stem: Option<String>,
        /// The image the first stem of the chain builds on (its `ARG BASE`).
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// Passed to every `docker build` of the chain; repeatable.
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
    },
    /// The stems and what each builds on.
    List,
}

pub fn run(options: &Options, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    // A missing config is fine here: the built-in stems need none.
    let docker_dir = super::load_config(config)
        .ok()
        .map(|(config, _)| config.docker_dir);
    let stems = discover(docker_dir.as_deref())?;
    match &options.command {
        ImageCommand::List => {
            let mut out = std::io::stdout().lock();
            for stem in stems.values() {
                let from = stem.parent.as_deref().unwrap_or("(its BASE arg)");
                let source = stem
                    .path
                    .as_ref()
                    .map_or_else(|| "built in".to_owned(), |p| p.display().to_string());
                writeln!(
                    out,
                    "{:<12} {:<16} on {:<16} {source}",
                    stem.name,
                    image_name(&stem.name),
                    from
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Build {
            stem,
            base,
            build_args,
        } => {
            let target = stem.as_deref().unwrap_or("default");
            let chain = build_order(&stems, target)?;
            refuse_without_docker_socket()?;
            let context = tempfile_dir()?;
            let ids = user_ids();
            for (step, stem) in chain.iter().enumerate() {
                let dockerfile = context.join(format!("{}.dockerfile", stem.name));
                std::fs::write(&dockerfile, &stem.text)
                    .with_context(|| format!("cannot write {}", dockerfile.display()))?;
                eprintln!(
                    "hh image: [{}/{}] {} -> {}",
                    step + 1,
                    chain.len(),
                    stem.name,
                    image_name(&stem.name)
                );
                let mut build = Command::new("docker");
                build.args(["build", "-t", &image_name(&stem.name), "-f"]);
                build.arg(&dockerfile);
                let parent_image = match &stem.parent {
                    Some(parent) => Some(image_name(parent)),
                    None => base.clone(),
                };
                if let Some(parent_image) = parent_image {
                    build.args(["--build-arg", &format!("BASE={parent_image}")]);
                }
                for (key, value) in &ids {
                    build.args(["--build-arg", &format!("{key}={value}")]);
                }
                for arg in build_args {
                    build.args(["--build-arg", arg]);
                }
                build.arg(&context);
                let status = build
                    .status()
                    .context("cannot run `docker build` (is the docker CLI installed?)")?;
                if !status.success() {
                    bail!("building stem `{}` failed ({status})", stem.name);
                }
            }
            let _ = std::fs::remove_dir_all(&context);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The invoking user's ids, so the image's `coder` matches them (under sudo: the sudo user's).
fn user_ids() -> Vec<(&'static str, String)> {
    let from_env = |name| std::env::var(name).ok();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let uid = from_env("SUDO_UID").unwrap_or_else(|| uid.to_string());
    let gid = from_env("SUDO_GID").unwrap_or_else(|| gid.to_string());
    if uid == "0" {
        // Root's ids would clash with the image's root; keep the image's default.
        return Vec::new();
    }
    vec![("USER_UID", uid), ("USER_GID", gid)]
}

/// An empty build context: stems copy nothing in, so Docker has nothing to send. A fresh,
/// unguessable directory (created, never reused: another user's file cannot be there).
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hh-image-{}", crate::agent::random_hex(8)?));
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Building talks to the Docker socket, which is root's (and the `docker` group's, which is
/// root on the host): say so before the first step fails with Docker's own words.
fn refuse_without_docker_socket() -> anyhow::Result<()> {
    if std::env::var_os("DOCKER_HOST").is_some() || rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let socket = std::path::Path::new("/var/run/docker.sock");
    let usable = rustix::fs::access(
        socket,
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
    );
    if let Err(errno) = usable {
        bail!(
            "building images needs the Docker socket {} ({}); run `sudo hh --config CONFIG image \
             build` (a member of the `docker` group can too, but that group is root on this host)",
            socket.display(),
            std::io::Error::from(errno)
        );
    }
    Ok(())
}
