//! The client's side of the agent socket: one request, one reply; or a subscription that
//! yields events.

use std::{
    io,
    path::{Path, PathBuf},
};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader, Lines},
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
};

use super::{
    protocol::{
        BuildRequest, BuiltImage, ClientRequest, DEFAULT_SOCKET, Event, ExecRequest, Reply,
        SOCKET_ENV,
    },
    server::write_line,
};

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no hh agent answers at {path}: {source}\n  start it with `sudo hh agent` (or set {SOCKET_ENV} to its socket)"
    )]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the agent connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("the agent closed the connection without an answer")]
    Closed,
    #[error(
        "the agent sent something this hh does not understand ({0}); are both the same version?"
    )]
    Protocol(serde_json::Error),
    #[error("{0}")]
    Refused(String),
}

/// The socket to use: `$HH_AGENT_SOCKET`, else the default.
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// A connection to the agent.
pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (read, write) = stream.into_split();
        Ok(Client {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    /// Sends `request` and returns the agent's reply; [`Reply::Error`] becomes
    /// [`ClientError::Refused`].
    pub async fn call(&mut self, request: &ClientRequest) -> Result<Reply, ClientError> {
        write_line(&mut self.write, request).await?;
        match self.next_line::<Reply>().await? {
            Reply::Error { message } => Err(ClientError::Refused(message)),
            reply => Ok(reply),
        }
    }

    /// Runs a command in a session: once the agent said yes, the connection's two halves carry
    /// its [`super::exec_stream`] frames (bytes the agent sent after its `ok` line are still in
    /// the reader's buffer).
    pub async fn exec(
        mut self,
        request: ExecRequest,
    ) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf), ClientError> {
        self.call(&ClientRequest::Exec(request)).await?;
        Ok((self.lines.into_inner(), self.write))
    }

    /// Builds the chain `request` names, handing the engine's output to `output` as it comes;
    /// what each stem was built into once done.
    pub async fn build_image(
        &mut self,
        request: BuildRequest,
        mut output: impl FnMut(&str),
    ) -> Result<Vec<BuiltImage>, ClientError> {
        write_line(&mut self.write, &ClientRequest::BuildImage(request)).await?;
        loop {
            match self.next_line::<Reply>().await? {
                Reply::BuildOutput { text } => output(&text),
                Reply::ImagesBuilt { images } => return Ok(images),
                Reply::Error { message } => return Err(ClientError::Refused(message)),
                other => {
                    return Err(ClientError::Refused(format!(
                        "unexpected reply to a build: {other:?}"
                    )));
                }
            }
        }
    }

    /// Turns this connection into a subscription.
    pub async fn subscribe(mut self) -> Result<Subscription, ClientError> {
        self.call(&ClientRequest::Subscribe {}).await?;
        Ok(Subscription { client: self })
    }

    async fn next_line<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        let line = self.lines.next_line().await?.ok_or(ClientError::Closed)?;
        serde_json::from_str(&line).map_err(ClientError::Protocol)
    }
}

/// Events from the agent, in order.
pub struct Subscription {
    client: Client,
}

impl Subscription {
    /// The next event; [`ClientError::Closed`] when the agent went away.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        self.client.next_line().await
    }
}
