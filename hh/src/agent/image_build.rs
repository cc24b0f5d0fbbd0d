//! `hh image build` through the agent: the engine builds the chain the client sent into the
//! peer's own images ([`crate::image::build::Builder`] names them by the kernel's word on who
//! asks), and what it prints goes back to the client line by line.
//!
//! A user's build is held to what the user could do without the engine being root for them:
//! its chain starts from root's `hh-*` images, the user's own, or an image the engine pulled
//! from a registry (never a local image someone built), one build per user runs at a time, and
//! a client that goes away stops its build.

use std::sync::Arc;

use tokio::{io::AsyncReadExt as _, sync::mpsc};

use super::Agent;
use crate::{
    api::{
        protocol::{BuildRequest, Reply},
        server::{ExecStream, Peer, write_line},
    },
    image::{
        build::{self, BuildPlan, Builder},
        buildkit::RootBuild,
    },
};

/// How many output chunks may wait for a slow client before the build waits for it.
const OUTPUT_BACKLOG: usize = 64;

pub async fn serve(
    agent: &Arc<Agent>,
    peer: Peer,
    request: BuildRequest,
    stream: ExecStream,
) -> std::io::Result<()> {
    let ExecStream {
        mut read,
        mut write,
    } = stream;
    let refuse = |message: String| Reply::Error { message };
    let builder = Builder::of(peer.uid, peer.gid);
    let plan = match BuildPlan::new(&request, builder) {
        Ok(plan) => plan,
        Err(error) => return write_line(&mut write, &refuse(error.to_string())).await,
    };
    if let Builder::User { uid, .. } = builder
        && let Some(base) = plan.first_base()
        && let Err(why) = user_may_start_from(agent, &base, uid).await
    {
        return write_line(&mut write, &refuse(why)).await;
    }
    let root = match builder {
        Builder::Root => match root_build(agent) {
            Ok(root) => root,
            Err(why) => return write_line(&mut write, &refuse(why)).await,
        },
        Builder::User { .. } => None,
    };
    let Some(_running) = BuildSlot::take(agent, peer.uid) else {
        let message = "a build of yours is running; one at a time".to_owned();
        return write_line(&mut write, &refuse(message)).await;
    };
    let images: Vec<&str> = plan.steps.iter().map(|step| step.image.as_str()).collect();
    tracing::info!(uid = peer.uid, ?images, "building images");
    let (sender, receiver) = mpsc::channel::<String>(OUTPUT_BACKLOG);
    let docker = agent.docker.client();
    let building = async {
        let result = build::run(docker, &plan, &sender, root.as_ref()).await;
        drop(sender);
        result
    };
    // Forwards output until the build ends; a client that went away drops the receiver, and
    // the build stops at its next line.
    let forwarding = async {
        // Owned here, so that it is dropped (and the build told) the moment this ends.
        let mut receiver = receiver;
        while let Some(text) = receiver.recv().await {
            write_line(&mut write, &Reply::BuildOutput { text }).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // A client sends nothing after its request; the end of its side is its going away, which
    // stops a build that prints nothing (a `RUN sleep` …) as well.
    let client_gone = async {
        let mut byte = [0u8; 1];
        while read.read(&mut byte).await.is_ok_and(|read| read > 0) {}
    };
    let (result, forwarded) = tokio::select! {
        done = async { tokio::join!(building, forwarding) } => done,
        () = client_gone => {
            tracing::info!(uid = peer.uid, "image build stopped: its client went away");
            return Ok(());
        }
    };
    forwarded?;
    let reply = match result {
        Ok(images) => {
            tracing::info!(uid = peer.uid, ?images, "images built");
            Reply::ImagesBuilt { images }
        }
        Err(error) => {
            tracing::info!(uid = peer.uid, %error, "image build failed");
            refuse(error.to_string())
        }
    };
    write_line(&mut write, &reply).await
}

/// How root's builds reach the network, from the agent's config as it reads now
/// (`[images]`, taken only from a config root alone controls: a user who can edit the agent's
/// config must not put root's build steps on the host's network); `None`: the legacy builder
/// on the bridge, like every user's.
fn root_build(agent: &Agent) -> Result<Option<RootBuild>, String> {
    let env = super::user_env(0).map_err(|error| format!("{error:#}"))?;
    let images = crate::image::buildkit::roots_images(&agent.settings.config_path, &env)
        .map_err(|why| format!("the agent's config {why}"))?;
    let socket = crate::image::docker_socket(Some(&agent.settings.docker_endpoint))?;
    RootBuild::from_config(&images, socket)
}

/// Whether user `uid`'s chain may start from `base`: root's `hh-*` images and the user's own
/// by name; any other image only when it is not on the engine yet (it will be pulled) or came
/// from a registry (it has a repository digest). A local image without one was built or
/// imported on this host, by root: not the user's to read.
async fn user_may_start_from(agent: &Agent, base: &str, uid: u32) -> Result<(), String> {
    match build::user_base_by_name(base, uid) {
        Some(true) => return Ok(()),
        Some(false) => {
            return Err(format!(
                "`{base}` is another user's image; your chain may start from root's hh images, \
                 your own, or a registry's"
            ));
        }
        None => {}
    }
    match agent.docker.client().inspect_image(base).await {
        Ok(image) if image.repo_digests.as_ref().is_some_and(|d| !d.is_empty()) => Ok(()),
        Ok(_) => Err(format!(
            "`{base}` is an image built on this host, not pulled from a registry: your chain may \
             start from root's hh images (`hh-STEM`), your own, or a registry's image"
        )),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(error) => Err(format!("cannot inspect the base image `{base}`: {error}")),
    }
}

/// One running build of a uid; released when dropped.
struct BuildSlot<'a> {
    agent: &'a Agent,
    uid: u32,
}

impl<'a> BuildSlot<'a> {
    fn take(agent: &'a Agent, uid: u32) -> Option<BuildSlot<'a>> {
        let inserted = agent
            .building
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(uid);
        // Made only once the lock is released and only when taken: a slot made and dropped
        // for a refusal would lock `building` again under the same lock (a deadlock of the
        // worker thread) and free the running build's slot.
        inserted.then(|| BuildSlot { agent, uid })
    }
}

impl Drop for BuildSlot<'_> {
    fn drop(&mut self) {
        self.agent
            .building
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.uid);
    }
}
