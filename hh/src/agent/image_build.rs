//! `hh image build` through the agent: the engine builds the chain the client sent into the
//! peer's own images ([`crate::image::build::Builder`] names them by the kernel's word on who
//! asks), and what it prints goes back to the client line by line.

use std::sync::Arc;

use tokio::{net::unix::OwnedWriteHalf, sync::mpsc};

use super::Agent;
use crate::{
    api::{
        protocol::{BuildRequest, Reply},
        server::{Peer, write_line},
    },
    image::build::{self, BuildPlan, Builder},
};

/// How many output chunks may wait for a slow client before the build waits for it.
const OUTPUT_BACKLOG: usize = 64;

pub async fn serve(
    agent: &Arc<Agent>,
    peer: Peer,
    request: BuildRequest,
    write: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    let builder = Builder::of(peer.uid, peer.gid);
    let plan = match BuildPlan::new(&request, builder) {
        Ok(plan) => plan,
        Err(error) => {
            let message = error.to_string();
            return write_line(write, &Reply::Error { message }).await;
        }
    };
    let images: Vec<&str> = plan.steps.iter().map(|step| step.image.as_str()).collect();
    tracing::info!(uid = peer.uid, ?images, "building images");
    let (sender, receiver) = mpsc::channel::<String>(OUTPUT_BACKLOG);
    let docker = agent.docker.client();
    let building = async {
        let result = build::run(docker, &plan, &sender).await;
        drop(sender);
        result
    };
    // Forwards output until the build ends; a client that went away drops the receiver, and
    // the build stops at its next line.
    let forwarding = async {
        // Owned here, so that it is dropped (and the build told) the moment this ends.
        let mut receiver = receiver;
        while let Some(text) = receiver.recv().await {
            write_line(&mut *write, &Reply::BuildOutput { text }).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let (result, forwarded) = tokio::join!(building, forwarding);
    forwarded?;
    let reply = match result {
        Ok(images) => {
            tracing::info!(uid = peer.uid, ?images, "images built");
            Reply::ImagesBuilt { images }
        }
        Err(error) => {
            tracing::info!(uid = peer.uid, %error, "image build failed");
            Reply::Error {
                message: error.to_string(),
            }
        }
    };
    write_line(write, &reply).await
}
