//! `hh shell [ID] [-- CMD…]` and `hh attach ID`: a shell, a command, or the session's own
//! terminal, in one of your running sessions — through the agent, so you need no access to the
//! Docker socket (which is root on the host); with no id, the list of your sessions.
//!
//! With a terminal on both stdin and stdout, this terminal goes into raw mode and the command
//! gets a terminal of the same size inside the session (resized with this one; Ctrl-C and
//! Ctrl-Z reach the command). Otherwise stdin, stdout and stderr are plain streams. The
//! command's exit status is ours.

use std::{
    io::{IsTerminal as _, Write as _},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::session::{list, print_table};
use crate::api::{
    client::{Client, socket_path},
    exec_stream::{self, CHUNK, Decoder, Frame},
    protocol::ExecRequest,
};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// The session's id or name.
    id: Option<String>,
    /// The command to run (default: bash, else sh).
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct AttachOptions {
    /// The session's id or name.
    id: String,
}

pub fn run(options: &Options) -> anyhow::Result<ExitCode> {
    let Some(wanted) = &options.id else {
        print_table(&mut std::io::stdout().lock(), &list()?)?;
        return Ok(ExitCode::SUCCESS);
    };
    exec_in(wanted, &options.command)
}

/// The session's re-attachable terminal: its tmux session `hh` (made on first attach, so a
/// closed terminal loses nothing); a plain shell where the image has no tmux, saying so.
pub fn attach(options: &AttachOptions) -> anyhow::Result<ExitCode> {
    let command = [
        "sh",
        "-c",
        "if command -v tmux >/dev/null 2>&1; then exec tmux new-session -A -s hh; fi; \
         echo 'hh attach: this session has no tmux; a plain shell instead, which ends with this \
         terminal' >&2; command -v bash >/dev/null && exec bash -l || exec sh -l",
    ];
    exec_in(&options.id, &command.map(str::to_owned))
}

/// Runs `command` (or a login shell) in session `session` (id or name) with this terminal;
/// the command's exit status is ours.
pub(super) fn exec_in(session: &str, command: &[String]) -> anyhow::Result<ExitCode> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (columns, rows) = if tty {
        ratatui::crossterm::terminal::size().unwrap_or((80, 24))
    } else {
        (0, 0)
    };
    let command = if command.is_empty() {
        [
            "sh",
            "-c",
            "command -v bash >/dev/null && exec bash -l || exec sh -l",
        ]
        .map(str::to_owned)
        .to_vec()
    } else {
        command.to_vec()
    };
    let request = ExecRequest {
        session: session.to_owned(),
        command,
        tty,
        columns,
        rows,
        term: tty.then(|| std::env::var("TERM").ok()).flatten(),
    };
    let status = run_relay(request, Input::Stdin, &mut print_output, None)?;
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}

/// Runs `command` in `session` with no input and its output handed to `output` as it comes;
/// its exit status. For commands hh itself runs in a session (`hh run`, tmux checks).
pub(super) fn exec_with_output(
    session: &str,
    command: &[String],
    output: &mut dyn FnMut(OutputStream, &[u8]) -> std::io::Result<()>,
) -> anyhow::Result<i32> {
    exec_with_output_within(session, command, None, output)
}

/// [`exec_with_output`] given at most `limit` (an error after it; the command is left to the
/// session's stop).
pub(super) fn exec_with_output_within(
    session: &str,
    command: &[String],
    limit: Option<Duration>,
    output: &mut dyn FnMut(OutputStream, &[u8]) -> std::io::Result<()>,
) -> anyhow::Result<i32> {
    let request = ExecRequest {
        session: session.to_owned(),
        command: command.to_vec(),
        tty: false,
        columns: 0,
        rows: 0,
        term: None,
    };
    run_relay(request, Input::None, output, limit)
}

/// The most of a git script's output [`exec_captured`] keeps.
const CAPTURED: usize = 64 * 1024;

/// How long one of hh's git scripts may run in a session before hh goes on without it.
pub(super) const GIT_SCRIPT_LIMIT: Duration = Duration::from_secs(60);

/// How long writing the bundle of a session's work may take.
pub(super) const BUNDLE_LIMIT: Duration = Duration::from_secs(300);

/// The largest bundle of a session's work hh takes.
pub(super) const BUNDLE_CAP: u64 = 4 << 30;

/// Runs one of hh's git scripts in `session` ([`crate::git_workspace::session_command`]), for
/// at most [`GIT_SCRIPT_LIMIT`]; its exit status and what it printed (stdout, then stderr; the
/// first 64 KiB of each), as text safe for a terminal.
pub(super) fn exec_captured(
    session: &str,
    script: crate::git_workspace::SessionScript,
    args: &[&str],
) -> anyhow::Result<(i32, String)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let command = crate::git_workspace::session_command(script, args);
    let status = exec_with_output_within(
        session,
        &command,
        Some(GIT_SCRIPT_LIMIT),
        &mut |stream, bytes| {
            let kept = match stream {
                OutputStream::Stdout => &mut out,
                OutputStream::Stderr => &mut err,
            };
            let room = CAPTURED.saturating_sub(kept.len());
            kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
            Ok(())
        },
    )?;
    out.extend_from_slice(&err);
    let text = crate::terminal_text::for_terminal(&out);
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

/// Runs the bundle script in `session` with its standard output written to `file` (at most
/// [`BUNDLE_CAP`] bytes, within [`BUNDLE_LIMIT`]); its exit status and its stderr.
pub(super) fn exec_bundle(
    session: &str,
    file: &mut std::fs::File,
) -> anyhow::Result<(i32, String)> {
    let mut err = Vec::new();
    let mut written: u64 = 0;
    let command =
        crate::git_workspace::session_command(crate::git_workspace::SessionScript::Bundle, &[]);
    let status = exec_with_output_within(
        session,
        &command,
        Some(BUNDLE_LIMIT),
        &mut |stream, bytes| match stream {
            OutputStream::Stdout => {
                written += bytes.len() as u64;
                if written > BUNDLE_CAP {
                    return Err(std::io::Error::other(format!(
                        "the session's bundle is larger than {} GiB",
                        BUNDLE_CAP >> 30
                    )));
                }
                file.write_all(bytes)
            }
            OutputStream::Stderr => {
                let room = CAPTURED.saturating_sub(err.len());
                err.extend_from_slice(&bytes[..bytes.len().min(room)]);
                Ok(())
            }
        },
    )?;
    let text = crate::terminal_text::for_terminal(&err);
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

/// [`exec_with_output`] with the output dropped.
pub(super) fn exec_quiet(session: &str, command: &[String]) -> anyhow::Result<i32> {
    exec_with_output(session, command, &mut |_, _| Ok(()))
}

/// Which of the command's streams bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OutputStream {
    Stdout,
    Stderr,
}

/// What the command reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// This process's stdin (and, with a terminal, its window size).
    Stdin,
    /// Nothing: its stdin is closed at once.
    None,
}

/// Writes the command's output to ours, as it comes.
fn print_output(stream: OutputStream, bytes: &[u8]) -> std::io::Result<()> {
    match stream {
        OutputStream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        OutputStream::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(bytes)?;
            err.flush()
        }
    }
}

fn run_relay(
    request: ExecRequest,
    input: Input,
    output: &mut dyn FnMut(OutputStream, &[u8]) -> std::io::Result<()>,
    limit: Option<Duration>,
) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let status = runtime.block_on(async {
        match limit {
            Some(limit) => tokio::time::timeout(limit, relay(request, input, output))
                .await
                .unwrap_or_else(|_| bail!("did not finish within {} s", limit.as_secs())),
            None => relay(request, input, output).await,
        }
    });
    // The stdin reader may sit in a blocking read: do not wait for it.
    runtime.shutdown_background();
    status
}

/// Raw mode for as long as the remote terminal is ours, restored however the relay ends.
struct RawMode;

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        ratatui::crossterm::terminal::enable_raw_mode()
            .context("cannot put the terminal in raw mode")?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = ratatui::crossterm::terminal::disable_raw_mode();
    }
}

async fn relay(
    request: ExecRequest,
    input: Input,
    output: &mut dyn FnMut(OutputStream, &[u8]) -> std::io::Result<()>,
) -> anyhow::Result<i32> {
    let tty = request.tty;
    let client = Client::connect(&socket_path()).await?;
    let (mut from_agent, mut to_agent) = client.exec(request).await?;
    let _raw = tty.then(RawMode::enter).transpose()?;
    if input == Input::None {
        let mut frame = BytesMut::new();
        exec_stream::encode(&Frame::StdinClosed, &mut frame);
        to_agent.write_all(&frame).await?;
        return read_output(&mut from_agent, output).await;
    }

    // This terminal → the command: stdin, then its end; window sizes for as long as it runs.
    tokio::spawn(async move {
        let mut winch = tty
            .then(|| {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
            })
            .flatten();
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; CHUNK];
        let mut stdin_open = true;
        let mut frame = BytesMut::new();
        loop {
            frame.clear();
            tokio::select! {
                read = stdin.read(&mut buf), if stdin_open => match read {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        exec_stream::encode(&Frame::StdinClosed, &mut frame);
                    }
                    Ok(read) => exec_stream::encode(
                        &Frame::Stdin(bytes::Bytes::copy_from_slice(&buf[..read])),
                        &mut frame,
                    ),
                },
                Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => None } } => {
                    let (columns, rows) =
                        ratatui::crossterm::terminal::size().unwrap_or((80, 24));
                    exec_stream::encode(&Frame::Resize { columns, rows }, &mut frame);
                }
                else => return,
            }
            if to_agent.write_all(&frame).await.is_err() {
                return;
            }
        }
    });

    read_output(&mut from_agent, output).await
}

/// The command's output, handed to `output`, until its exit status.
async fn read_output(
    from_agent: &mut (impl tokio::io::AsyncRead + Unpin),
    output: &mut dyn FnMut(OutputStream, &[u8]) -> std::io::Result<()>,
) -> anyhow::Result<i32> {
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; CHUNK];
    loop {
        while let Some(frame) = decoder.next_frame()? {
            match frame {
                Frame::Stdout(bytes) => output(OutputStream::Stdout, &bytes)?,
                Frame::Stderr(bytes) => output(OutputStream::Stderr, &bytes)?,
                Frame::Exit(status) => return Ok(status),
                other => bail!("the agent sent a frame only a client sends: {other:?}"),
            }
        }
        let read = from_agent.read(&mut buf).await?;
        if read == 0 {
            bail!("the agent ended the session's terminal without the command's exit status");
        }
        decoder.extend(&buf[..read]);
    }
}
