//! What a tunnel carries, told from its first bytes, and a stream that gives the bytes read to
//! tell it back to whoever parses the connection next.
//!
//! Pure except for [`Prefixed`]'s I/O passthrough. The proxy reads until [`classify`] knows:
//!
//! - a TLS handshake record (`0x16`, RFC 8446 §5.1): intercepted;
//! - an HTTP/1.x request line (`token SP target SP HTTP/1.d CRLF`, RFC 9112 §3): parsed, one
//!   decision per request;
//! - anything else (a TLS alert first, `PRI * HTTP/2.0`, SSH's banner, a database's binary
//!   greeting): unparsed, which only a rule for raw TCP admits ([`Policy::decide_raw`]).
//!
//! The line is checked byte by byte, so a non-HTTP stream is known at its first byte that
//! cannot start or continue a request line; a client never has to send more than that.
//!
//! [`Policy::decide_raw`]: crate::rules::Policy::decide_raw

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a connection's first bytes say it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    Tls,
    Http1,
    Unparsed,
}

/// What `prefix` (the connection's first bytes) carries; `None`: not known yet, read more.
/// A request line still valid after `max_line` bytes is HTTP/1 (its parser refuses it with a
/// readable error).
pub fn classify(prefix: &[u8], max_line: usize) -> Option<Carried> {
    let first = *prefix.first()?;
    if first == 0x16 {
        return Some(Carried::Tls);
    }
    match request_line(prefix) {
        Line::Complete => Some(Carried::Http1),
        Line::Invalid => Some(Carried::Unparsed),
        Line::Partial if prefix.len() >= max_line => Some(Carried::Http1),
        Line::Partial => None,
    }
}

enum Line {
    Complete,
    Partial,
    Invalid,
}

/// Checks `bytes` against `method SP target SP HTTP/1.d CRLF`.
fn request_line(bytes: &[u8]) -> Line {
    const VERSION: &[u8] = b"HTTP/1.";
    let mut at = 0;
    let method = bytes.iter().take_while(|&&b| is_tchar(b)).count();
    at += method;
    if at == bytes.len() {
        return Line::Partial;
    }
    if method == 0 || bytes[at] != b' ' {
        return Line::Invalid;
    }
    at += 1;
    let target = bytes[at..]
        .iter()
        .take_while(|&&b| b.is_ascii_graphic())
        .count();
    at += target;
    if at == bytes.len() {
        return Line::Partial;
    }
    if target == 0 || bytes[at] != b' ' {
        return Line::Invalid;
    }
    at += 1;
    let rest = &bytes[at..];
    let version_part = rest.len().min(VERSION.len());
    if rest[..version_part] != VERSION[..version_part] {
        return Line::Invalid;
    }
    if rest.len() <= VERSION.len() {
        return Line::Partial;
    }
    if !rest[VERSION.len()].is_ascii_digit() {
        return Line::Invalid;
    }
    match &rest[VERSION.len() + 1..] {
        [] | [b'\r'] => Line::Partial,
        [b'\r', b'\n', ..] => Line::Complete,
        _ => Line::Invalid,
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A stream whose first reads return `prefix`, then the stream's own bytes. Writes go straight
/// through.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let left = &this.prefix[this.at..];
            let len = left.len().min(buf.remaining());
            buf.put_slice(&left[..len]);
            this.at += len;
            if this.at == this.prefix.len() {
                // Given back in full: its memory is not needed for the connection's life.
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    fn says(bytes: &[u8]) -> Option<Carried> {
        classify(bytes, 8192)
    }

    #[test]
    fn a_handshake_record_is_tls() {
        assert_eq!(says(b"\x16\x03\x01\x02\x00"), Some(Carried::Tls));
        assert_eq!(says(b"\x16"), Some(Carried::Tls));
    }

    #[test]
    fn anything_else_that_is_not_a_request_line_is_unparsed_at_its_first_wrong_byte() {
        // The alert trick: a TLS warning alert, then a handshake of the client's choosing.
        assert_eq!(
            says(b"\x15\x03\x01\x00\x02\x01\x5a"),
            Some(Carried::Unparsed)
        );
        assert_eq!(says(b"\x15"), Some(Carried::Unparsed));
        // HTTP/2 prior knowledge (h2c) is not HTTP/1.
        assert_eq!(says(b"PRI * HTTP/2.0\r\n\r\nSM"), Some(Carried::Unparsed));
        assert_eq!(says(b"PRI * HTTP/2"), Some(Carried::Unparsed));
        assert_eq!(
            says(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
            Some(Carried::Unparsed)
        );
        assert_eq!(
            says(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
            Some(Carried::Unparsed)
        );
        assert_eq!(says(b" GET / HTTP/1.1\r\n"), Some(Carried::Unparsed));
        assert_eq!(says(b"GET  / HTTP/1.1\r\n"), Some(Carried::Unparsed));
        assert_eq!(says(b"GET / HTTP/1.1\n"), Some(Carried::Unparsed));
        assert_eq!(says(b"GET / HTTP/1.x\r\n"), Some(Carried::Unparsed));
        assert_eq!(says(b"GET /\xff HTTP/1.1\r\n"), Some(Carried::Unparsed));
        assert_eq!(says(b"GET / http/1.1\r\n"), Some(Carried::Unparsed));
    }

    #[test]
    fn a_request_line_is_http1_once_whole_and_undecided_before() {
        let line = b"GET /a?b=c HTTP/1.1\r\nHost: a.test\r\n\r\n";
        assert_eq!(says(line), Some(Carried::Http1));
        assert_eq!(says(b"OPTIONS * HTTP/1.0\r\n"), Some(Carried::Http1));
        for end in 1..b"GET /a?b=c HTTP/1.1\r\n".len() {
            assert_eq!(says(&line[..end]), None, "{:?}", &line[..end]);
        }
    }

    #[test]
    fn an_overlong_line_still_valid_goes_to_the_parser() {
        let mut line = b"GET /".to_vec();
        line.resize(100, b'a');
        assert_eq!(classify(&line, 100), Some(Carried::Http1));
        assert_eq!(classify(&line, 101), None);
    }

    #[tokio::test]
    async fn a_prefixed_stream_gives_its_prefix_first() {
        let rest: &[u8] = b" world";
        let mut stream = Prefixed::new(b"hello".to_vec(), rest);
        let mut read = String::new();
        stream.read_to_string(&mut read).await.unwrap();
        assert_eq!(read, "hello world");
    }
}
