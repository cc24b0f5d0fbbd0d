//! An idle bound for connections whose bytes hyper moves itself (HTTP/2 to the client): hyper's
//! HTTP/2 server has no idle timeout of its own, and its pings keep a silent but living peer
//! connected forever. [`Watched`] records when the connection last moved a byte either way;
//! [`serve_until_idle`] shuts the connection down gracefully once nothing moved for the bound.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// When a [`Watched`] stream last moved a byte, shared with whoever enforces the bound.
#[derive(Clone)]
pub struct Activity {
    origin: Instant,
    /// Milliseconds since `origin`.
    last: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// When the last byte moved.
    pub fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Wraps `inner` so that every byte it moves counts as activity.
    pub fn watch<T>(&self, inner: T) -> Watched<T> {
        Watched {
            inner,
            activity: self.clone(),
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A stream that records its activity.
pub struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled
            && *written > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Drives `connection` to its end; once `activity` shows nothing moved for `idle`, asks it to
/// close gracefully with `shutdown` (streams in flight finish; each has its own idle bound), and
/// drops it if it has not ended another `idle` later (`None`).
pub async fn serve_until_idle<C: Future>(
    connection: C,
    shutdown: impl FnOnce(Pin<&mut C>),
    activity: &Activity,
    idle: Duration,
) -> Option<C::Output> {
    tokio::pin!(connection);
    loop {
        tokio::select! {
            done = connection.as_mut() => return Some(done),
            () = tokio::time::sleep_until(activity.last() + idle) => {
                if activity.last().elapsed() >= idle {
                    break;
                }
            }
        }
    }
    shutdown(connection.as_mut());
    tokio::time::timeout(idle, connection).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn bytes_either_way_count_as_activity() {
        let activity = Activity::new();
        let (near, mut far) = tokio::io::duplex(64);
        let mut watched = activity.watch(near);
        tokio::time::advance(Duration::from_secs(5)).await;
        watched.write_all(b"up").await.unwrap();
        assert_eq!(activity.last().elapsed(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(5)).await;
        far.write_all(b"down").await.unwrap();
        let mut buf = [0u8; 4];
        watched.read_exact(&mut buf).await.unwrap();
        assert_eq!(activity.last().elapsed(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(activity.last().elapsed(), Duration::from_secs(3));
    }
}
