//! Root's builds through the engine's BuildKit, for the one thing the legacy builder cannot do:
//! lend a build step the host's CA bundle as a *build secret* (`RUN --mount=type=secret,
//! id=host-ca`), present while that step runs and in no layer, history entry or cache key of
//! the image. With it a build can use a network whose TLS is intercepted by an egress the host
//! trusts (a corporate proxy, a registry mirror), on the host's network when the config says so.
//!
//! The engine speaks BuildKit's session protocol: the client opens `POST /session`, which the
//! engine upgrades to HTTP/2 with the roles turned around (the engine is the gRPC *client* and
//! asks the session for what the build needs), then starts `POST /build?version=2&session=ID`.
//! bollard has this only behind its `buildkit` feature (tonic, a protobuf build), so the few
//! messages hh needs are written here by hand: the secret (`moby.buildkit.secrets.v1`), the
//! health check the engine polls (`grpc.health.v1`), and the progress the engine streams back
//! (`moby.buildkit.v1.StatusResponse`), read for its vertex names, errors and logs only.
//!
//! The session offers nothing else: no files (the context is the request's tar, the Dockerfile
//! alone), no registry credentials, no SSH agent.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Frame, Incoming},
    header,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::{net::UnixStream, sync::mpsc};

use super::build::BuildStep;
use crate::config::schema::{BuildNetwork, Images};

/// The id under which a stem asks for the host's CA bundle, at `/run/secrets/host-ca`.
pub const HOST_CA_SECRET: &str = "host-ca";

/// The engine API version these requests are written against (Docker 20.10's; newer engines
/// answer it too).
const API: &str = "/v1.41";

const SECRETS_METHOD: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
const HEALTH_METHOD: &str = "/grpc.health.v1.Health/Check";

/// How a root build reaches the network and what it may trust.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootBuild {
    /// The engine's socket.
    pub socket: PathBuf,
    /// Build steps run on the host's network instead of the engine's bridge.
    pub host_network: bool,
    /// The host's CA bundle (PEM), lent to the steps that ask for [`HOST_CA_SECRET`].
    pub host_ca: Option<Vec<u8>>,
}

/// The longest message of the engine's build stream hh reads (a step's log comes in pieces
/// of a few KiB).
const MAX_MESSAGE: usize = 16 << 20;

/// The largest CA bundle lent to a build (Debian's is about 200 KiB).
const MAX_BUNDLE: u64 = 4 << 20;

impl RootBuild {
    /// What the config's `[images]` asks of root's builds; `None` when nothing (they stay
    /// the legacy builder's, on the bridge). The bundle is read now, once, and only from a
    /// regular file root owns that no one else may write: it decides what root's build
    /// steps trust.
    pub fn from_config(images: &Images, socket: PathBuf) -> Result<Option<RootBuild>, String> {
        let host_network = images.build_network == BuildNetwork::Host;
        if !host_network && images.host_ca_bundle.is_none() {
            return Ok(None);
        }
        let host_ca = match &images.host_ca_bundle {
            Some(path) => Some(
                read_bundle(path)
                    .map_err(|why| format!("images.host_ca_bundle {}: {why}", path.display()))?,
            ),
            None => None,
        };
        Ok(Some(RootBuild {
            socket,
            host_network,
            host_ca,
        }))
    }
}

/// A regular file opened without following a link, and what `fstat` says of it: a FIFO or a
/// device neither blocks nor acts on being opened.
fn open_file(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| error.to_string())?;
    let meta = file.metadata().map_err(|error| error.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    Ok((file, meta))
}

/// Whether a file is root's and writable by no one else: what decides root's builds must be.
fn roots_alone(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "owned by uid {} with mode {:o}: what decides root's builds must be root's and \
             writable by no one else",
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The `[images]` of the config at `path`, read and checked through one descriptor (no file
/// swapped in between counts): a config that sets it must be one root alone controls, since
/// it decides what root's build steps reach. `env` expands `~` (root's).
pub fn roots_images(path: &Path, env: &crate::config::Env) -> Result<Images, String> {
    use std::io::Read as _;
    let refuse = |why: String| format!("{}: {why}", path.display());
    let (mut file, meta) = open_file(path).map_err(refuse)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|error| refuse(error.to_string()))?;
    let config = crate::config::load::check(&text, path, env).map_err(|error| error.to_string())?;
    if config.images == Images::default() {
        return Ok(config.images);
    }
    roots_alone(&meta).map_err(|why| refuse(format!("[images] is not taken from it: {why}")))?;
    Ok(config.images)
}

fn read_bundle(path: &Path) -> Result<Vec<u8>, String> {
    use std::{io::Read as _, os::unix::fs::MetadataExt as _};
    // Every directory on the way is root's and no one else may change it (or is sticky, like
    // /tmp, where no one else may replace root's entries): no user can swap the file.
    let parent = path.parent().ok_or("names no file")?;
    let parent = std::fs::canonicalize(parent).map_err(|error| error.to_string())?;
    for dir in parent.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
            return Err(format!(
                "its directory {} is not root's alone (uid {}, mode {:o})",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
    }
    let (file, meta) = open_file(path)?;
    roots_alone(&meta)?;
    let mut bundle = Vec::new();
    file.take(MAX_BUNDLE + 1)
        .read_to_end(&mut bundle)
        .map_err(|error| error.to_string())?;
    if bundle.len() as u64 > MAX_BUNDLE {
        return Err(format!("larger than {MAX_BUNDLE} bytes"));
    }
    let holds = |marker: &[u8]| bundle.windows(marker.len()).any(|window| window == marker);
    if !holds(b"-----BEGIN CERTIFICATE-----") {
        return Err("holds no PEM certificate".into());
    }
    // Lent to every step that asks: a key beside the certificates would be handed out too.
    if holds(b"PRIVATE KEY-----") {
        return Err("holds a private key; lend certificates only".into());
    }
    Ok(bundle)
}

/// Why a BuildKit build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildKitError {
    #[error("cannot reach the Docker engine at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Docker engine: {0}")]
    Http(String),
    #[error("{0}")]
    Engine(String),
    #[error("the engine ended the build without naming the image it made")]
    NoImage,
    #[error("the client that asked for the build went away")]
    ClientGone,
}

fn http(error: impl std::fmt::Display) -> BuildKitError {
    BuildKitError::Http(error.to_string())
}

/// Builds `step` with BuildKit and a session lending the CA bundle, sending what the engine
/// reports to `output` as lines; returns the built image's id. A closed `output` (the client
/// went away) ends the build: its connection closes, and the engine stops it.
pub async fn build(
    root: &RootBuild,
    step: &BuildStep,
    context: Vec<u8>,
    output: &mpsc::Sender<String>,
) -> Result<String, BuildKitError> {
    let session_id = session_id();
    let session = Session::open(&root.socket, &session_id, root.host_ca.clone()).await?;
    let mut response = start_build(root, step, &session_id, context).await?;
    let mut progress = Progress::default();
    let mut pending = BytesMut::new();
    let mut image = None;
    while let Some(frame) = response.body_mut().frame().await {
        let frame = frame.map_err(http)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        // The engine ends every message with a line end; only whole lines are parsed.
        let mut lines = Vec::new();
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line = pending.split_to(end + 1);
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let message: Message = serde_json::from_slice(line)
                .map_err(|error| http(format!("its reply: {error}")))?;
            if let Some(error) = message.error {
                return Err(BuildKitError::Engine(error));
            }
            match (message.id.as_deref(), message.aux) {
                (Some("moby.buildkit.trace"), Some(serde_json::Value::String(trace))) => {
                    lines.extend(progress.read(&trace));
                }
                (Some("moby.image.id"), Some(aux)) => {
                    image = aux.get("ID").and_then(|id| id.as_str()).map(str::to_owned);
                }
                _ => {}
            }
            if let Some(text) = message.stream {
                lines.push(text);
            }
        }
        if pending.len() > MAX_MESSAGE {
            return Err(http(format!(
                "a message of the engine's longer than {MAX_MESSAGE} bytes"
            )));
        }
        for line in lines {
            output
                .send(line)
                .await
                .map_err(|_| BuildKitError::ClientGone)?;
        }
    }
    drop(session);
    image.ok_or(BuildKitError::NoImage)
}

/// One line of the engine's build stream.
#[derive(Deserialize)]
struct Message {
    id: Option<String>,
    aux: Option<serde_json::Value>,
    stream: Option<String>,
    error: Option<String>,
}

fn session_id() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn engine_connection(
    socket: &Path,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, BuildKitError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| BuildKitError::Connect {
            path: socket.to_owned(),
            source,
        })?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

async fn start_build(
    root: &RootBuild,
    step: &BuildStep,
    session_id: &str,
    context: Vec<u8>,
) -> Result<Response<Incoming>, BuildKitError> {
    let json = |map: &std::collections::BTreeMap<String, String>| {
        serde_json::to_string(map).expect("a map of strings")
    };
    let mut query = vec![
        ("version", "2".to_owned()),
        ("session", session_id.to_owned()),
        ("dockerfile", "Dockerfile".to_owned()),
        ("t", step.image.clone()),
        ("rm", "1".to_owned()),
        ("forcerm", "1".to_owned()),
        ("buildargs", json(&step.build_args)),
        ("labels", json(&step.labels)),
    ];
    if root.host_network {
        query.push(("networkmode", "host".to_owned()));
    }
    let query: Vec<String> = query
        .into_iter()
        .map(|(key, value)| format!("{key}={}", percent_encode(&value)))
        .collect();
    let request = Request::post(format!("{API}/build?{}", query.join("&")))
        .header(header::HOST, "docker")
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Full::new(Bytes::from(context)))
        .map_err(http)?;
    let mut sender = engine_connection(&root.socket).await?;
    let response = sender.send_request(request).await.map_err(http)?;
    if !response.status().is_success() {
        return Err(BuildKitError::Engine(engine_error(response).await));
    }
    Ok(response)
}

/// The engine's `{"message": …}` of a refused request.
async fn engine_error(response: Response<Incoming>) -> String {
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    #[derive(Deserialize)]
    struct Refusal {
        message: String,
    }
    match serde_json::from_slice::<Refusal>(&body) {
        Ok(refusal) => refusal.message,
        Err(_) => format!("{status}: {}", String::from_utf8_lossy(&body).trim()),
    }
}

/// Everything but unreserved characters percent-encoded (RFC 3986).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A session the engine asks for secrets; it ends when dropped.
struct Session {
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Session {
    async fn open(
        socket: &Path,
        id: &str,
        host_ca: Option<Vec<u8>>,
    ) -> Result<Session, BuildKitError> {
        let mut sender = engine_connection(socket).await?;
        let request = Request::post(format!("{API}/session"))
            .header(header::HOST, "docker")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "h2c")
            .header("X-Docker-Expose-Session-Uuid", id)
            .header("X-Docker-Expose-Session-Name", "hh")
            .header("X-Docker-Expose-Session-Sharedkey", "")
            .header("X-Docker-Expose-Session-Grpc-Method", SECRETS_METHOD)
            .header("X-Docker-Expose-Session-Grpc-Method", HEALTH_METHOD)
            .body(Full::new(Bytes::new()))
            .map_err(http)?;
        let response = sender.send_request(request).await.map_err(http)?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(BuildKitError::Engine(format!(
                "the engine opened no build session: {}",
                engine_error(response).await
            )));
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(http)?;
        let host_ca = host_ca.map(Bytes::from);
        let serving = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let host_ca = host_ca.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(request, host_ca).await) }
            });
            let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(upgraded, service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "build session ended");
            }
        });
        Ok(Session { serving })
    }
}

type GrpcBody = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>>,
>;

/// One gRPC call of the engine's.
async fn answer(request: Request<Incoming>, host_ca: Option<Bytes>) -> Response<GrpcBody> {
    let method = request.uri().path().to_owned();
    // A secret's id and its annotations: a few bytes.
    let body = http_body_util::Limited::new(request.into_body(), 64 << 10)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let message = grpc::unframe(&body);
    let reply = match method.as_str() {
        HEALTH_METHOD => Ok(grpc::health_serving()),
        SECRETS_METHOD => match message.and_then(grpc::secret_id) {
            Some(id) if id == HOST_CA_SECRET => match &host_ca {
                Some(bundle) => Ok(grpc::secret_data(bundle)),
                None => Err((grpc::NOT_FOUND, "no host CA bundle is configured")),
            },
            Some(_) => Err((grpc::NOT_FOUND, "hh lends a build only the secret host-ca")),
            None => Err((grpc::INVALID_ARGUMENT, "a secret request without an id")),
        },
        _ => Err((grpc::UNIMPLEMENTED, "not offered by this session")),
    };
    grpc::response(reply)
}

/// gRPC over HTTP/2 as far as the session needs it, and the protobuf of its messages.
mod grpc {
    use super::*;

    pub const INVALID_ARGUMENT: u32 = 3;
    pub const NOT_FOUND: u32 = 5;
    pub const UNIMPLEMENTED: u32 = 12;

    /// The message of a unary call's body: an uncompressed length-prefixed frame.
    pub fn unframe(body: &[u8]) -> Option<&[u8]> {
        let (&compressed, rest) = body.split_first()?;
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        (compressed == 0).then_some(())?;
        rest.get(4..4usize.checked_add(length)?)
    }

    fn frame(message: &[u8]) -> Bytes {
        let mut framed = Vec::with_capacity(5 + message.len());
        framed.push(0);
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        framed.into()
    }

    /// `GetSecretRequest.ID` (field 1).
    pub fn secret_id(message: &[u8]) -> Option<String> {
        super::protobuf::fields(message)
            .find_map(|field| match field {
                Ok((1, super::protobuf::Value::Bytes(id))) => Some(Some(id)),
                Err(super::protobuf::Malformed) => Some(None),
                _ => None,
            })
            .flatten()
            .and_then(|id| String::from_utf8(id.to_vec()).ok())
    }

    /// `GetSecretResponse { data = 1 }`.
    pub fn secret_data(data: &[u8]) -> Vec<u8> {
        let mut message = vec![0x0a];
        super::protobuf::put_varint(&mut message, data.len() as u64);
        message.extend_from_slice(data);
        message
    }

    /// `HealthCheckResponse { status = SERVING }`.
    pub fn health_serving() -> Vec<u8> {
        vec![0x08, 0x01]
    }

    pub fn response(reply: Result<Vec<u8>, (u32, &str)>) -> Response<GrpcBody> {
        let mut trailers = hyper::HeaderMap::new();
        let mut frames = Vec::new();
        match reply {
            Ok(message) => {
                frames.push(Ok(Frame::data(frame(&message))));
                trailers.insert("grpc-status", 0.into());
            }
            Err((status, why)) => {
                trailers.insert("grpc-status", status.into());
                trailers.insert(
                    "grpc-message",
                    header::HeaderValue::from_str(why).expect("an ASCII message"),
                );
            }
        }
        frames.push(Ok(Frame::trailers(trailers)));
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .expect("a valid response")
    }
}

/// Protobuf's wire format, read field by field (no schema), and the one varint writer.
mod protobuf {
    /// A message that does not parse; its fields end there.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Malformed;

    #[derive(Debug, PartialEq, Eq)]
    pub enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        /// Fixed 32- and 64-bit fields, skipped.
        Fixed,
    }

    fn varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().ok_or(Malformed)?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed)
    }

    pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// The message's fields in order; an `Err` ends a malformed message.
    pub fn fields(mut buf: &[u8]) -> impl Iterator<Item = Result<(u64, Value<'_>), Malformed>> {
        let mut failed = false;
        std::iter::from_fn(move || {
            if buf.is_empty() || failed {
                return None;
            }
            let field = (|| {
                let key = varint(&mut buf)?;
                let value = match key & 7 {
                    0 => Value::Varint(varint(&mut buf)?),
                    1 | 5 => {
                        let width = if key & 7 == 1 { 8 } else { 4 };
                        buf = buf.get(width..).ok_or(Malformed)?;
                        Value::Fixed
                    }
                    2 => {
                        let length = usize::try_from(varint(&mut buf)?).map_err(|_| Malformed)?;
                        let bytes = buf.get(..length).ok_or(Malformed)?;
                        let rest = &buf[length..];
                        buf = rest;
                        Value::Bytes(bytes)
                    }
                    _ => return Err(Malformed),
                };
                Ok((key >> 3, value))
            })();
            failed = field.is_err();
            Some(field)
        })
    }
}

/// What the engine's progress stream says, as the lines `docker build --progress=plain` would
/// print: each step's name when it starts, `CACHED`, its output, its error.
#[derive(Default)]
struct Progress {
    /// Step number by vertex digest, and whether its start was said.
    steps: HashMap<Vec<u8>, (usize, bool)>,
    /// The number of each step name said (the engine reports some steps under two digests).
    names: HashMap<String, usize>,
    numbered: usize,
}

impl Progress {
    /// The lines of one `moby.buildkit.trace` message (a base64 `StatusResponse`).
    fn read(&mut self, trace: &str) -> Vec<String> {
        use base64::Engine as _;
        let Ok(status) = base64::engine::general_purpose::STANDARD.decode(trace) else {
            return vec!["hh image: a progress message that is not base64\n".into()];
        };
        let mut lines = Vec::new();
        for field in protobuf::fields(&status) {
            match field {
                Ok((1, protobuf::Value::Bytes(vertex))) => self.vertex(vertex, &mut lines),
                Ok((3, protobuf::Value::Bytes(log))) => self.log(log, &mut lines),
                Ok(_) => {}
                Err(protobuf::Malformed) => {
                    lines.push("hh image: a progress message hh cannot read\n".into());
                }
            }
        }
        lines
    }

    fn number(&mut self, digest: &[u8]) -> &mut (usize, bool) {
        self.steps.entry(digest.to_vec()).or_insert_with(|| {
            self.numbered += 1;
            (self.numbered, false)
        })
    }

    /// `Vertex { digest = 1; name = 3; cached = 4; started = 5; error = 7 }`.
    fn vertex(&mut self, vertex: &[u8], lines: &mut Vec<String>) {
        let (mut digest, mut name, mut cached, mut started, mut error) =
            (&[][..], String::new(), false, false, String::new());
        for field in protobuf::fields(vertex).map_while(Result::ok) {
            match field {
                (1, protobuf::Value::Bytes(bytes)) => digest = bytes,
                (3, protobuf::Value::Bytes(bytes)) => name = String::from_utf8_lossy(bytes).into(),
                (4, protobuf::Value::Varint(value)) => cached = value != 0,
                (5, protobuf::Value::Bytes(_)) => started = true,
                (7, protobuf::Value::Bytes(bytes)) => {
                    error = String::from_utf8_lossy(bytes).into();
                }
                _ => {}
            }
        }
        if !self.steps.contains_key(digest)
            && let Some(&number) = self.names.get(&name)
        {
            self.steps.insert(digest.to_vec(), (number, true));
        }
        let entry = self.number(digest);
        let number = entry.0;
        if (started || cached) && !entry.1 {
            entry.1 = true;
            self.names.insert(name.clone(), number);
            lines.push(format!("#{number} {name}\n"));
        }
        if cached {
            lines.push(format!("#{number} CACHED\n"));
        }
        if !error.is_empty() {
            lines.push(format!("#{number} ERROR: {error}\n"));
        }
    }

    /// `VertexLog { vertex = 1; msg = 4 }`: the step's output, line by line.
    fn log(&mut self, log: &[u8], lines: &mut Vec<String>) {
        let (mut digest, mut message) = (&[][..], &[][..]);
        for field in protobuf::fields(log).map_while(Result::ok) {
            match field {
                (1, protobuf::Value::Bytes(bytes)) => digest = bytes,
                (4, protobuf::Value::Bytes(bytes)) => message = bytes,
                _ => {}
            }
        }
        let number = self.number(digest).0;
        for line in String::from_utf8_lossy(message).lines() {
            lines.push(format!("#{number} {line}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        protobuf::put_varint(&mut out, number << 3 | 2);
        protobuf::put_varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_secret_request_names_its_id_and_the_reply_carries_the_bundle() {
        let request = [field(1, b"host-ca"), field(2, b"\x0a\x01k\x12\x01v")].concat();
        let mut body = vec![0];
        body.extend_from_slice(&(request.len() as u32).to_be_bytes());
        body.extend_from_slice(&request);
        let message = grpc::unframe(&body).unwrap();
        assert_eq!(grpc::secret_id(message).as_deref(), Some("host-ca"));
        let bundle = vec![b'x'; 300];
        assert_eq!(grpc::secret_data(&bundle), field(1, &bundle));
        // A frame cut short, compressed or with a length past its end is no message.
        assert_eq!(grpc::unframe(&body[..body.len() - 1]), None);
        assert_eq!(grpc::unframe(&[1, 0, 0, 0, 0]), None);
        assert_eq!(grpc::secret_id(&[0x0a, 0x05, b'a']), None);
    }

    #[test]
    fn malformed_protobuf_ends_the_fields_without_a_panic() {
        for bytes in [&[0x0a, 0xff][..], &[0x80; 11], &[0x0b], &[0x09, 1, 2]] {
            assert!(
                protobuf::fields(bytes).any(|field| field.is_err()),
                "{bytes:?}"
            );
        }
        let mut progress = Progress::default();
        assert_eq!(progress.read("not base64!").len(), 1);
    }

    #[test]
    fn progress_reads_as_plain_build_output() {
        use base64::Engine as _;
        let started = [
            field(1, b"sha256:a"),
            field(3, b"[1/2] RUN echo hi"),
            field(5, b"\x08\x01"),
        ]
        .concat();
        let cached = [
            field(1, b"sha256:b"),
            field(3, b"[2/2] RUN true"),
            vec![0x20, 1],
        ]
        .concat();
        let failed = [field(1, b"sha256:a"), field(7, b"exit code: 1")].concat();
        let log = [field(1, b"sha256:a"), field(4, b"hi\nthere\n")].concat();
        let again = [
            field(1, b"sha256:c"),
            field(3, b"[1/2] RUN echo hi"),
            field(5, b"\x08\x02"),
        ]
        .concat();
        let status = [
            field(1, &started),
            field(1, &again),
            field(1, &cached),
            field(3, &log),
            field(1, &failed),
        ]
        .concat();
        let trace = base64::engine::general_purpose::STANDARD.encode(status);
        let lines = Progress::default().read(&trace);
        assert_eq!(
            lines,
            [
                "#1 [1/2] RUN echo hi\n",
                "#2 [2/2] RUN true\n",
                "#2 CACHED\n",
                "#1 hi\n",
                "#1 there\n",
                "#1 ERROR: exit code: 1\n"
            ]
        );
    }

    #[test]
    fn a_bundle_is_lent_only_from_a_file_root_alone_controls() {
        use std::os::unix::fs::PermissionsExt as _;
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the unit tests as root"
            );
            eprintln!("skipping: the ownership checks need root to make root's files");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let good = dir.path().join("good.pem");
        std::fs::write(&good, certificate).unwrap();
        assert!(read_bundle(&good).is_ok());
        let keyed = dir.path().join("keyed.pem");
        std::fs::write(
            &keyed,
            format!("{certificate}-----BEGIN PRIVATE KEY-----\n"),
        )
        .unwrap();
        assert!(read_bundle(&keyed).unwrap_err().contains("private key"));
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(read_bundle(&link).is_err(), "a link is not followed");
        let fifo = dir.path().join("fifo.pem");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        assert!(read_bundle(&fifo).unwrap_err().contains("regular file"));
        let writable = dir.path().join("writable.pem");
        std::fs::write(&writable, certificate).unwrap();
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            read_bundle(&writable)
                .unwrap_err()
                .contains("writable by no one else")
        );
        let open_dir = dir.path().join("open");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(open_dir.join("ca.pem"), certificate).unwrap();
        let error = read_bundle(&open_dir.join("ca.pem")).unwrap_err();
        assert!(error.contains("not root's alone"), "{error}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"{"A":"b c&d"}"#),
            "%7B%22A%22%3A%22b%20c%26d%22%7D"
        );
    }
}
