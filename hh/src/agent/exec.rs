//! `hh shell` and `hh attach` through the agent: the user never needs the Docker socket (whose
//! access is root on the host).
//!
//! The agent finds the caller's session (SO_PEERCRED: only its owner, or root), has Docker run
//! the command in the session's container as the container's own user (the session's uid:gid)
//! in `/workspace`, and relays the command's terminal over the client's connection as
//! [`exec_stream`] frames: stdin and window sizes in, stdout/stderr out, the exit status last.
//! With a TTY the command gets a pseudo-terminal of the client's size, so Ctrl-C and Ctrl-Z
//! reach it through its line discipline; without one, plain streams.
//!
//! When the client goes away, the command's stdin is closed (a shell ends on it); the relay
//! ends when the command's output does.

use std::{io, sync::Arc, time::Duration};

use bytes::BytesMut;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Agent, container::ExecSpec};
use crate::api::{
    exec_stream::{self, CHUNK, Decoder, Frame},
    protocol::{ExecRequest, Reply},
    server::{ExecStream, Peer, write_line},
};

/// How long the agent waits for Docker to report the exit status once the output ended.
const STATUS_WAIT: Duration = Duration::from_secs(5);

/// Serves one exec request on `stream` (see the module doc).
pub async fn serve(
    agent: &Arc<Agent>,
    peer: Peer,
    request: ExecRequest,
    stream: ExecStream,
) -> io::Result<()> {
    let ExecStream {
        mut read,
        mut write,
    } = stream;
    let container = match owned_container(agent, &peer, &request.session) {
        Some(container) => container,
        None => {
            let reply = Reply::Error {
                message: format!(
                    "no running session `{}` of yours (see `hh session list`)",
                    request.session
                ),
            };
            return write_line(&mut write, &reply).await;
        }
    };
    if request.command.is_empty() {
        let reply = Reply::Error {
            message: "no command to run".into(),
        };
        return write_line(&mut write, &reply).await;
    }
    let mut env = Vec::new();
    if request.tty {
        // Only a terminal type that names no path or option: it is copied into the session.
        let term = request
            .term
            .as_deref()
            .filter(|term| {
                !term.is_empty()
                    && term.len() <= 64
                    && term
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
            })
            .unwrap_or("xterm");
        env.push(format!("TERM={term}"));
    }
    let spec = ExecSpec {
        command: request.command.clone(),
        tty: request.tty,
        env,
        // The container's own: where its workspace is (`/workspace`, or its host path).
        working_dir: None,
    };
    let exec = match agent.docker.exec(&container, &spec).await {
        Ok(exec) => exec,
        Err(error) => {
            let reply = Reply::Error {
                message: format!("cannot run the command in the session: {error}"),
            };
            return write_line(&mut write, &reply).await;
        }
    };
    tracing::info!(
        uid = peer.uid,
        session = request.session,
        tty = request.tty,
        "exec started"
    );
    write_line(&mut write, &Reply::Ok).await?;
    if request.tty && request.columns > 0 && request.rows > 0 {
        resize(agent, &exec.id, request.columns, request.rows).await;
    }

    let exec_id = exec.id.clone();
    let mut input = exec.input;
    let mut output = exec.output;
    let input_agent = Arc::clone(agent);
    let input_id = exec_id.clone();
    // Client → command: stdin bytes and window sizes, until the client closes or says so.
    let from_client = tokio::spawn(async move {
        let mut decoder = Decoder::default();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let read = match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            decoder.extend(&buf[..read]);
            loop {
                match decoder.next_frame() {
                    Ok(Some(Frame::Stdin(bytes))) => {
                        if input.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(Frame::StdinClosed)) => {
                        let _ = input.shutdown().await;
                    }
                    Ok(Some(Frame::Resize { columns, rows })) => {
                        resize(&input_agent, &input_id, columns, rows).await;
                    }
                    // Frames only the agent sends, or a broken stream: the client is confused.
                    Ok(Some(_)) | Err(_) => {
                        let _ = input.shutdown().await;
                        return;
                    }
                    Ok(None) => break,
                }
            }
        }
        let _ = input.shutdown().await;
    });
    // Command → client: its output, then its status.
    let mut frame = BytesMut::new();
    while let Some(item) = output.next().await {
        let message = match output_frame(item) {
            Some(Some(frame)) => frame,
            Some(None) => continue,
            None => break,
        };
        frame.clear();
        exec_stream::encode(&message, &mut frame);
        if write.write_all(&frame).await.is_err() {
            // The client left: nothing more to relay.
            from_client.abort();
            return Ok(());
        }
    }
    from_client.abort();
    let status = exit_status(agent, &exec_id).await;
    frame.clear();
    exec_stream::encode(&Frame::Exit(status), &mut frame);
    write.write_all(&frame).await?;
    write.shutdown().await
}

/// One item of an exec's output as the frame a client gets: `Some(None)` for nothing to pass
/// on (an echo of its input), `None` once the output ended with an error.
fn output_frame(
    item: Result<bollard::container::LogOutput, bollard::errors::Error>,
) -> Option<Option<Frame>> {
    match item {
        Ok(bollard::container::LogOutput::StdErr { message }) => Some(Some(Frame::Stderr(message))),
        Ok(
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message },
        ) => Some(Some(Frame::Stdout(message))),
        Ok(bollard::container::LogOutput::StdIn { .. }) => Some(None),
        Err(error) => {
            tracing::debug!(%error, "exec output ended with an error");
            None
        }
    }
}

/// The most of a command's output [`run_captured`] keeps: its last 4 KiB.
const CAPTURED_TAIL: usize = 4096;

/// Runs `command` in `container` as its own user, in its working directory, with no input;
/// its exit status and the end of what it printed (stdout and stderr as they came).
pub async fn run_captured(
    agent: &Agent,
    container: &str,
    command: Vec<String>,
) -> anyhow::Result<(i32, String)> {
    let spec = ExecSpec {
        command,
        tty: false,
        env: Vec::new(),
        working_dir: None,
    };
    let exec = agent.docker.exec(container, &spec).await?;
    let mut input = exec.input;
    let _ = input.shutdown().await;
    let mut output = exec.output;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(item) = output.next().await {
        let bytes = match output_frame(item) {
            Some(Some(Frame::Stdout(bytes) | Frame::Stderr(bytes))) => bytes,
            Some(_) => continue,
            None => break,
        };
        tail.extend_from_slice(&bytes);
        if tail.len() > CAPTURED_TAIL {
            tail.drain(..tail.len() - CAPTURED_TAIL);
        }
    }
    let status = exit_status(agent, &exec.id).await;
    Ok((status, String::from_utf8_lossy(&tail).into_owned()))
}

/// The container of `session` (id or name), when it is the peer's (or the peer is root).
fn owned_container(agent: &Agent, peer: &Peer, session: &str) -> Option<String> {
    agent.sessions().values().find_map(|found| {
        let info = found
            .info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let named = info.id == session || info.name == session;
        (named && (peer.is_root() || peer.uid == info.owner_uid)).then(|| info.container_id.clone())
    })
}

async fn resize(agent: &Agent, exec: &str, columns: u16, rows: u16) {
    if let Err(error) = agent.docker.resize_exec(exec, columns, rows).await {
        tracing::debug!(%error, "cannot resize the exec's terminal");
    }
}

/// The command's exit status as a shell reports it; 255 when Docker cannot say.
async fn exit_status(agent: &Agent, exec: &str) -> i32 {
    let deadline = tokio::time::Instant::now() + STATUS_WAIT;
    loop {
        match agent.docker.exec_status(exec).await {
            Ok(Some(code)) => return i32::try_from(code).unwrap_or(255),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(None) => return 255,
            Err(error) => {
                tracing::debug!(%error, "cannot read the exec's status");
                return 255;
            }
        }
    }
}
