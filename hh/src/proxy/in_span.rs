//! Tasks that keep the span they were started in: tokio's `spawn` starts a task with no span,
//! so a proxy log line from an HTTP/2 stream or an upstream connection would no longer say
//! which session and connection it belongs to (and a decision in it which process made it).

use std::future::Future;

use tracing::Instrument as _;

/// `tokio::spawn`, in the current span and with the current connection's client process
/// ([`super::client_process`]).
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let process = super::client_process::current();
    tokio::spawn(super::client_process::scope(process, future).in_current_span())
}

/// hyper's executor (HTTP/2 streams, client connections), spawning in the current span.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanExecutor;

impl<F> hyper::rt::Executor<F> for SpanExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        spawn(future);
    }
}
