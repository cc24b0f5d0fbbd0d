//! [`Metered`]: a message body passed through frame by frame (never collected), counted for the
//! audit line, and cut off when it stalls longer than the idle bound.

use std::{
    error::Error,
    future::Future as _,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::decision::Ticket;

type BoxError = Box<dyn Error + Send + Sync>;

/// Why a metered body ended early.
#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?}")]
pub struct BodyIdle(Duration);

/// `inner`, counted into `count`, failing after `idle` without a frame. Holds the audit
/// [`Ticket`] when given, so the line is written once the body is done (or dropped).
pub struct Metered<B> {
    inner: B,
    count: Arc<AtomicU64>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _ticket: Option<Ticket>,
}

impl<B> Metered<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>, idle: Duration, ticket: Option<Ticket>) -> Self {
        Metered {
            inner,
            count,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _ticket: ticket,
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                let next = Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt as _, Full};

    use super::*;

    #[tokio::test]
    async fn a_metered_body_counts_what_passes_and_keeps_its_length() {
        let count = Arc::new(AtomicU64::new(0));
        let body = Metered::new(
            Full::new(Bytes::from_static(b"hello")),
            Arc::clone(&count),
            Duration::from_secs(1),
            None,
        );
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(
            (bytes.as_ref(), count.load(Ordering::Relaxed)),
            (b"hello".as_ref(), 5)
        );
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_idle_bound() {
        let body = Metered::new(
            Stalled,
            Arc::new(AtomicU64::new(0)),
            Duration::from_millis(20),
            None,
        );
        let error = body.collect().await.unwrap_err();
        assert!(error.is::<BodyIdle>(), "{error}");
    }

    /// A body that never yields a frame.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }
}
