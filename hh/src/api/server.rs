//! The agent's side of the client socket: bind it safely, learn each peer from `SO_PEERCRED`,
//! read one request line, answer one reply line (or stream events for a subscription).
//!
//! What a request may do is the [`Service`]'s business; this file only guarantees that the
//! [`Peer`] it is handed is the kernel's word, that lines are bounded, and that a slow or
//! vanished client costs one task, not the agent.

use std::{
    collections::HashMap,
    fs,
    future::Future,
    io,
    os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _},
    path::Path,
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::broadcast::{self, error::RecvError},
};

use super::protocol::{BuildRequest, ClientRequest, Event, ExecRequest, MAX_LINE, Reply};

/// The client as the kernel reported it when it connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// What the agent (or a standalone proxy) does with requests.
pub trait Service: Send + Sync + 'static {
    /// Answers one request from `peer`. Never called with [`ClientRequest::Subscribe`].
    fn handle(&self, peer: Peer, request: ClientRequest) -> impl Future<Output = Reply> + Send;
    /// A receiver of every event from now on.
    fn events(&self) -> broadcast::Receiver<Event>;
    /// Whether `peer` may see `event` (their own sessions only; root sees all).
    fn may_see(&self, peer: &Peer, event: &Event) -> bool;
    /// Runs `request` for `peer` and carries its terminal over `stream` (the rest of the
    /// connection: [`super::exec_stream`] frames after a `Reply::Ok` line), or refuses with one
    /// `Reply::Error` line. Only the agent runs commands.
    fn exec(
        &self,
        peer: Peer,
        request: ExecRequest,
        stream: ExecStream,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let _ = (peer, request);
        async move {
            let ExecStream { mut write, .. } = stream;
            let reply = Reply::Error {
                message: "this socket runs no commands (it is not an hh agent's)".into(),
            };
            write_line(&mut write, &reply).await
        }
    }

    /// Builds the chain `request` names into `peer`'s images, writing [`Reply::BuildOutput`]
    /// lines as the engine works and one last reply; the rest of the connection is the
    /// build's (its end stops the build). Only the agent builds.
    fn build_image(
        &self,
        peer: Peer,
        request: BuildRequest,
        stream: ExecStream,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let _ = (peer, request);
        async move {
            let ExecStream { mut write, .. } = stream;
            let reply = Reply::Error {
                message: "this socket builds no images (it is not an hh agent's)".into(),
            };
            write_line(&mut write, &reply).await
        }
    }
}

/// The connection of an exec (or build) request, past its request line: bytes the client sent
/// after it are still in `read`'s buffer.
pub struct ExecStream {
    pub read: BufReader<tokio::net::unix::OwnedReadHalf>,
    pub write: tokio::net::unix::OwnedWriteHalf,
}

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections one uid (other than root) may hold open at once: a TUI, its
/// subscription and dozens of shells fit; a user opening thousands cannot take the agent's
/// descriptors, which its proxies need for every other user's sessions.
pub const CONNECTIONS_PER_UID: usize = 128;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: String },
}

/// Binds the socket at `path` with mode 0660 and group `gid` (the invoking user's group), so
/// that only root and that group can connect. A stale socket from an earlier agent is replaced;
/// any other file at `path` is an error, never overwritten. The parent directory is created
/// 0755 when missing.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<UnixListener, BindError> {
    let io_error = |source| BindError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        // Explicitly 0755 whatever the umask (the agent's is 077): clients must reach the socket.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io_error)?;
        fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).map_err(io_error)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path).map_err(io_error)?,
        Ok(_) => {
            return Err(BindError::NotASocket {
                path: path.display().to_string(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(error)),
    }
    let listener = bind_then_place(path, gid).map_err(io_error)?;
    UnixListener::from_std(listener).map_err(io_error)
}

/// Binds a socket in a directory only this process can enter, gives the socket file its mode
/// (0660) and group there, moves it to `path` with one rename, and only then listens: no
/// client can connect before the socket has its final mode and group, and the mode and group
/// are set on a path no other user can change (not on `path`, whose directory may be theirs).
fn bind_then_place(path: &Path, gid: Option<u32>) -> io::Result<std::os::unix::net::UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // An unguessable name: in a directory others may write, they cannot take it first.
    let nonce = {
        use std::hash::{BuildHasher as _, Hasher as _};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let private = parent.join(format!(".hh-bind.{}.{nonce:016x}", std::process::id()));
    fs::DirBuilder::new().mode(0o700).create(&private)?;
    let placed = (|| -> io::Result<std::os::unix::net::UnixListener> {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let staged = private.join("sock");
        rustix::net::bind(&socket, &SocketAddrUnix::new(&staged)?)?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o660))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&staged, None, Some(gid))?;
        }
        fs::rename(&staged, path)?;
        rustix::net::listen(&socket, 1024)?;
        let listener = std::os::unix::net::UnixListener::from(socket);
        listener.set_nonblocking(true)?;
        Ok(listener)
    })();
    let _ = fs::remove_dir_all(&private);
    placed
}

/// Serves clients until the listener fails; each client on its own task, at most
/// [`CONNECTIONS_PER_UID`] at once per uid (root has no limit).
pub async fn serve<S: Service>(listener: UnixListener, service: Arc<S>) -> io::Result<()> {
    let open: OpenCounts = Arc::default();
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "agent socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(cred) = stream.peer_cred() else {
            continue;
        };
        let Some(slot) = ConnectionSlot::take(&open, cred.uid()) else {
            tracing::warn!(
                uid = cred.uid(),
                "agent socket: too many connections from one uid"
            );
            let reply = Reply::Error {
                message: format!(
                    "you have {CONNECTIONS_PER_UID} connections to the agent open; close some"
                ),
            };
            // Best effort, and never waiting on this client: it is refused either way.
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), write_line(&mut stream, &reply))
                        .await;
            });
            continue;
        };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = serve_client(stream, service).await {
                tracing::debug!(%error, "agent socket: client ended with an error");
            }
        });
    }
}

/// Open connections per uid.
type OpenCounts = Arc<std::sync::Mutex<HashMap<u32, usize>>>;

/// One open connection of a uid, counted until dropped.
struct ConnectionSlot {
    open: OpenCounts,
    uid: u32,
}

impl ConnectionSlot {
    fn take(open: &OpenCounts, uid: u32) -> Option<Self> {
        let mut counts = open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(uid).or_default();
        if uid != 0 && *count >= CONNECTIONS_PER_UID {
            return None;
        }
        *count += 1;
        drop(counts);
        Some(ConnectionSlot {
            open: Arc::clone(open),
            uid,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

async fn serve_client<S: Service>(stream: UnixStream, service: Arc<S>) -> io::Result<()> {
    let cred = stream.peer_cred()?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match tokio::time::timeout(REQUEST_TIMEOUT, read_line(&mut reader)).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(error)) => {
                let reply = Reply::Error {
                    message: error.to_string(),
                };
                write_line(&mut write, &reply).await?;
                return Ok(());
            }
            // An idle client between requests is fine; one that never sends anything is closed.
            Err(_) => return Ok(()),
        };
        let request = match serde_json::from_str::<ClientRequest>(&line) {
            Ok(request) => request,
            Err(error) => {
                let reply = Reply::Error {
                    message: format!("bad request: {error}"),
                };
                write_line(&mut write, &reply).await?;
                continue;
            }
        };
        if let ClientRequest::Subscribe {} = request {
            write_line(&mut write, &Reply::Ok).await?;
            return stream_events(&mut reader, &mut write, &*service, peer).await;
        }
        if let ClientRequest::Exec(exec) = request {
            tracing::debug!(uid = peer.uid, op = "exec", "agent socket request");
            let stream = ExecStream {
                read: reader,
                write,
            };
            return service.exec(peer, exec, stream).await;
        }
        if let ClientRequest::BuildImage(build) = request {
            tracing::debug!(uid = peer.uid, op = "build_image", "agent socket request");
            let stream = ExecStream {
                read: reader,
                write,
            };
            return service.build_image(peer, build, stream).await;
        }
        // The operation only: a request may carry the client's environment values.
        tracing::debug!(uid = peer.uid, op = request.op(), "agent socket request");
        let reply = service.handle(peer, request).await;
        write_line(&mut write, &reply).await?;
    }
}

/// Writes the peer's events until it goes away. A subscriber too slow to keep up is
/// disconnected rather than holding the agent back or silently missing a prompt: a client
/// subscribes again and re-lists what is pending (the TUI does so on its own).
async fn stream_events<S: Service>(
    read: &mut (impl tokio::io::AsyncRead + Unpin),
    write: &mut (impl tokio::io::AsyncWrite + Unpin),
    service: &S,
    peer: Peer,
) -> io::Result<()> {
    let mut events = service.events();
    // A subscriber says nothing more (what it sends is ignored); its end of stream ends the
    // subscription at once, rather than at the next event's failed write: a client gone frees
    // its connection slot and its task.
    let mut ignored = [0u8; 64];
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            read = read.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        match event {
            Ok(event) => {
                if service.may_see(&peer, &event) {
                    write_line(write, &event).await?;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    uid = peer.uid,
                    missed,
                    "subscriber lagged; disconnecting it"
                );
                return Ok(());
            }
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

/// One request line, or `None` at a clean end of stream. A line past [`MAX_LINE`] is an error.
async fn read_line(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request line not ended",
                ))
            };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("request line longer than {MAX_LINE} bytes"),
            ));
        }
        if done {
            line.pop();
            return String::from_utf8(line)
                .map(Some)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request is not UTF-8"));
        }
    }
}

pub async fn write_line(
    write: &mut (impl tokio::io::AsyncWrite + Unpin),
    value: &impl serde::Serialize,
) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[tokio::test]
    async fn the_socket_listens_only_with_its_mode_and_group_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let gid = fs::metadata(dir.path()).unwrap().gid();
        let listener = bind(&path, Some(gid)).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let (connected, accepted) = tokio::join!(UnixStream::connect(&path), listener.accept());
        connected.unwrap();
        accepted.unwrap();
        drop(listener);
        // A stale socket is replaced; any other file is refused and left alone.
        bind(&path, None).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            bind(&file, None),
            Err(BindError::NotASocket { .. })
        ));
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }
}
