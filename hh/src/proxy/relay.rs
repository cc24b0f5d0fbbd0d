//! Moving bytes between two streams with an idle bound: a side silent for longer than `idle`
//! ends the relay, so a stalled peer cannot hold a connection (and its task) forever.

use std::{
    io,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

const CHUNK: usize = 16 * 1024;

/// Copies `reader` to `writer` until end of stream (then shuts `writer` down), or `limit` bytes
/// when given, adding what it copies to `count` as it goes (so it survives an error). Returns
/// the bytes copied; an idle read is a `TimedOut` error.
pub async fn copy_idle<R, W>(
    reader: &mut R,
    writer: &mut W,
    limit: Option<u64>,
    idle: Duration,
    count: &AtomicU64,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; CHUNK];
    let mut copied = 0u64;
    loop {
        let want = match limit {
            Some(limit) if copied >= limit => break,
            Some(limit) => usize::try_from(limit - copied).map_or(CHUNK, |left| left.min(CHUNK)),
            None => CHUNK,
        };
        let read = tokio::time::timeout(idle, reader.read(&mut buf[..want]))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))??;
        if read == 0 {
            if limit.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed before the end of the body",
                ));
            }
            writer.shutdown().await?;
            break;
        }
        writer.write_all(&buf[..read]).await?;
        copied += read as u64;
        count.fetch_add(read as u64, Ordering::Relaxed);
    }
    writer.flush().await?;
    Ok(copied)
}

/// Relays both directions until both ends close, or one side idles past `idle`, counting the
/// bytes each way into `up` (client to upstream) and `down`.
pub async fn splice<A, B>(
    client: A,
    upstream: B,
    idle: Duration,
    up: &AtomicU64,
    down: &AtomicU64,
) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let (sent, received) = tokio::join!(
        copy_idle(&mut client_read, &mut upstream_write, None, idle, up),
        copy_idle(&mut upstream_read, &mut client_write, None, idle, down),
    );
    sent?;
    received?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limited_copy_stops_at_the_limit() {
        let mut reader: &[u8] = b"hello world";
        let mut out = Vec::new();
        let count = AtomicU64::new(0);
        let copied = copy_idle(
            &mut reader,
            &mut out,
            Some(5),
            Duration::from_secs(1),
            &count,
        )
        .await
        .unwrap();
        assert_eq!((copied, out.as_slice()), (5, b"hello".as_slice()));
        assert_eq!(count.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_limited_copy_refuses_a_short_body() {
        let mut reader: &[u8] = b"hi";
        let mut out = Vec::new();
        let count = AtomicU64::new(0);
        let error = copy_idle(
            &mut reader,
            &mut out,
            Some(5),
            Duration::from_secs(1),
            &count,
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn an_idle_reader_times_out() {
        let (mut silent, _keep) = tokio::io::duplex(64);
        let mut out = Vec::new();
        let count = AtomicU64::new(0);
        let error = copy_idle(
            &mut silent,
            &mut out,
            None,
            Duration::from_millis(20),
            &count,
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
