//! `hh image build [STEM]` and `hh image list`: the session images. The client reads the stems
//! (as the user) and the agent builds them into the user's own images (root's: the images
//! every user's sessions run by default); the engine's step-by-step output is shown as it
//! comes, and its layer cache skips what is current.

use std::{io::Write as _, path::Path, process::ExitCode};

use anyhow::{Context as _, bail};

use crate::{
    api::{
        client::{Client, socket_path},
        protocol::{BuildRequest, BuiltImage, StemText},
    },
    config::schema::Images,
    image::{
        build::{BuildPlan, Builder},
        build_order,
        buildkit::RootBuild,
        discover,
    },
};

#[derive(clap::Args, Debug)]
pub struct Options {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ImageCommand {
    /// Build a stem (default: `default`) and every stem it builds on, in order, through the
    /// agent: root's builds are `hh-STEM` (every user's default), a user's are `hh-STEM:uUID`,
    /// which only that user's sessions run. Without an agent, root builds with Docker directly.
    Build {
        stem: Option<String>,
        /// The image the first stem of the chain builds on (its `ARG BASE`).
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// Passed to every build step of the chain; repeatable.
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
    },
    /// The stems and what each builds on.
    List,
}

pub fn run(options: &Options, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    // A missing config is fine here (the built-in stems need none); a broken one is not.
    let (docker_dir, images) = match super::load_config(config) {
        Ok((config, path)) => (Some(config.docker_dir), images_of(config.images, &path)?),
        Err(error) if is_missing_config(&error) => (None, Images::default()),
        Err(error) => return Err(error),
    };
    let stems = discover(docker_dir.as_deref())?;
    match &options.command {
        ImageCommand::List => {
            // The names this user's builds make (and their sessions look for first).
            let builder = Builder::of(
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            let mut out = std::io::stdout().lock();
            for stem in stems.values() {
                let from = stem.parent.as_deref().unwrap_or("(its BASE arg)");
                let source = stem
                    .path
                    .as_ref()
                    .map_or_else(|| "built in".to_owned(), |p| p.display().to_string());
                writeln!(
                    out,
                    "{:<12} {:<20} on {:<16} {source}",
                    stem.name,
                    builder.image(&stem.name),
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
            let request = BuildRequest {
                stems: chain
                    .iter()
                    .map(|stem| StemText {
                        name: stem.name.clone(),
                        text: stem.text.clone(),
                    })
                    .collect(),
                base: base.clone(),
                build_args: sudo_user_ids()
                    .into_iter()
                    .chain(build_args.iter().cloned())
                    .collect(),
            };
            let images = super::client_runtime()?.block_on(build(request, &images))?;
            for image in &images {
                eprintln!("hh image: {} is {}", image.image, image.id);
            }
            if let Some(last) = images.last()
                && !rustix::process::geteuid().is_root()
            {
                eprintln!(
                    "hh image: your sessions of stem `{}` run {} from now on (other users' \
                     sessions are not affected)",
                    last.stem, last.image
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Builds through the agent, which names the images for the user it sees on its socket; where
/// no agent answers, with the Docker engine directly — which only root (or the `docker` group,
/// which is root on the host) may use; root's builds then follow this config's `[images]`
/// (through the agent, the agent's config decides).
async fn build(request: BuildRequest, images: &Images) -> anyhow::Result<Vec<BuiltImage>> {
    let print = |text: &str| {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    };
    let socket = socket_path();
    let no_agent = match Client::connect(&socket).await {
        Ok(mut client) => return Ok(client.build_image(request, print).await?),
        Err(error) => error,
    };
    if !may_use_docker() {
        bail!(
            "{no_agent}\n  (building images needs the agent, or the Docker socket, which is \
             root's: `sudo hh --config CONFIG image build`)"
        );
    }
    eprintln!(
        "hh image: no agent answers at {}; building with the Docker engine directly",
        socket.display()
    );
    let docker =
        bollard::Docker::connect_with_local_defaults().context("cannot reach the Docker engine")?;
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let builder = Builder::of(uid, gid);
    let plan = BuildPlan::new(&request, builder)?;
    let root = match builder {
        Builder::Root => {
            let socket = crate::image::docker_socket(None).map_err(anyhow::Error::msg)?;
            RootBuild::from_config(images, socket).map_err(anyhow::Error::msg)?
        }
        Builder::User { .. } => None,
    };
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(64);
    let printing = async move {
        while let Some(text) = receiver.recv().await {
            print(&text);
        }
    };
    let building = async {
        let built = crate::image::build::run(&docker, &plan, &sender, root.as_ref()).await;
        drop(sender);
        built
    };
    let (built, ()) = tokio::join!(building, printing);
    Ok(built?)
}

/// The config's `[images]`, which only root's builds use: as root, read again through one
/// descriptor and taken only from a file root alone controls (under sudo, `$HOME` may still be
/// the user's, and a user's file must not put root's build steps on the host's network).
fn images_of(images: Images, path: &Path) -> anyhow::Result<Images> {
    if !rustix::process::geteuid().is_root() || images == Images::default() {
        return Ok(images);
    }
    crate::image::buildkit::roots_images(path, &crate::config::Env::from_process())
        .map_err(|why| anyhow::anyhow!("{why}; pass such a file with --config"))
}

/// Whether loading the config failed only because there is none.
fn is_missing_config(error: &anyhow::Error) -> bool {
    use crate::config::ConfigError;
    match error.downcast_ref::<ConfigError>() {
        Some(ConfigError::NoDefaultPath) => true,
        Some(ConfigError::Read { reason, .. }) => reason.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Under sudo, the ids of the user who ran it, so that the `coder` of root's images matches
/// them; a user's own builds get the user's ids from the builder, whatever is sent.
fn sudo_user_ids() -> Vec<String> {
    if !rustix::process::geteuid().is_root() {
        return Vec::new();
    }
    match (std::env::var("SUDO_UID"), std::env::var("SUDO_GID")) {
        // Root's ids would clash with the image's root; keep the image's default.
        (Ok(uid), Ok(gid)) if uid != "0" => {
            vec![format!("USER_UID={uid}"), format!("USER_GID={gid}")]
        }
        _ => Vec::new(),
    }
}

/// Whether this process may use the Docker engine itself: root, or someone whose
/// `DOCKER_HOST` or access to the default socket says so.
fn may_use_docker() -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || rustix::process::geteuid().is_root()
        || rustix::fs::access(
            "/var/run/docker.sock",
            rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
        )
        .is_ok()
}
