//! The one accept loop every TCP listener of hh runs (the proxy's front doors, the control
//! server): a bound on connections served at once, and accept errors that never end the loop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tracing::Instrument as _;

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

/// Accepts on `listener` forever and runs `handle` for each connection on a task of its own,
/// at most `limit` at once; past that, new connections wait in the listen backlog. A failed
/// accept (out of descriptors, a client gone before accept) pauses briefly and goes on.
pub async fn serve_bounded<F, Fut>(listener: TcpListener, limit: usize, handle: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limit));
    loop {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let served = handle(stream, peer);
        // In the listener's span (the session's), so each connection's lines say whose it is.
        tokio::spawn(
            async move {
                served.await;
                drop(slot);
            }
            .in_current_span(),
        );
    }
}
