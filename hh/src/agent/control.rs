//! The control server inside a session's network namespace (`127.0.0.1:server_port`), what the
//! session's own tools talk to:
//!
//! - `GET /ready`: 200 once the agent confirmed the session is enforced, else 503 (hh-init
//!   waits for it; no token needed, it reveals nothing).
//! - `GET /session`: the session's identity as JSON (bearer token).
//! - `POST /killme`: stop this session (bearer token); 202, then the agent stops it.
//! - `POST /tool/start/ID`, `POST /tool/end/ID`: the coding agent's hook says a tool call
//!   started or ended (bearer token); 204. Audit lines name the calls running
//!   ([`crate::proxy::tool_calls`]).
//!
//! The token is the session's own secret (in its environment), compared in constant time.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq as _;
use tokio::{net::TcpListener, sync::Notify};

use crate::proxy::tool_calls::ToolCalls;

/// One session's control state.
pub struct ControlState {
    pub identity: serde_json::Value,
    pub token: String,
    pub ready: AtomicBool,
    /// Notified when the session asked to be stopped.
    pub kill: Notify,
    /// The tool calls the session's agent reports running.
    pub tool_calls: Arc<ToolCalls>,
}

/// The most control connections one session holds open at once; past it, new ones wait in
/// the listen backlog (a session must not exhaust the agent's descriptors through here).
const MAX_CONNECTIONS: usize = 16;

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<ControlState>) {
    crate::sys::accept::serve_bounded(listener, MAX_CONNECTIONS, |stream, _| {
        let state = Arc::clone(&state);
        async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

fn handle(state: &ControlState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/ready") => {
            if state.ready.load(Ordering::Acquire) {
                reply(StatusCode::OK, "ready\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (&Method::GET, "/session") if authorized(state, request) => {
            reply(StatusCode::OK, format!("{}\n", state.identity))
        }
        (&Method::POST, "/killme") if authorized(state, request) => {
            state.kill.notify_one();
            reply(StatusCode::ACCEPTED, "stopping\n")
        }
        (&Method::GET, "/session") | (&Method::POST, "/killme") => unauthorized(),
        (&Method::POST, path) if path.starts_with("/tool/") => {
            if !authorized(state, request) {
                return unauthorized();
            }
            tool_call(state, path)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "hh control: GET /ready, GET /session, POST /killme, POST /tool/start|end/ID\n",
        ),
    }
}

/// `/tool/start/ID` or `/tool/end/ID` (authorized already).
fn tool_call(state: &ControlState, path: &str) -> Response<Full<Bytes>> {
    if let Some(id) = path.strip_prefix("/tool/start/") {
        if state.tool_calls.start(id) {
            return reply(StatusCode::NO_CONTENT, "");
        }
    } else if let Some(id) = path.strip_prefix("/tool/end/") {
        state.tool_calls.end(id);
        return reply(StatusCode::NO_CONTENT, "");
    }
    reply(
        StatusCode::BAD_REQUEST,
        "hh control: POST /tool/start/ID or /tool/end/ID, ID of A-Z a-z 0-9 _ - (at most 128)\n",
    )
}

fn unauthorized() -> Response<Full<Bytes>> {
    reply(
        StatusCode::UNAUTHORIZED,
        "hh control: bad or missing bearer token\n",
    )
}

/// Whether the request carries the session's bearer token (compared in constant time).
fn authorized(state: &ControlState, request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|given| bool::from(given.ct_eq(state.token.as_bytes())))
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}
