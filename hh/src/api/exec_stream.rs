//! The byte stream of `hh shell` / `hh attach` on the agent socket, after the `exec` request
//! line and the agent's `ok`: length-prefixed frames both ways, so a terminal's bytes, its
//! window size and the command's end each travel as what they are.
//!
//! A frame is one kind byte, a 4-byte big-endian length, and that many payload bytes (at most
//! [`MAX_PAYLOAD`]). From the client: [`Frame::Stdin`] bytes, [`Frame::StdinClosed`] once its
//! input ended, [`Frame::Resize`] (columns, rows as two big-endian `u16`) whenever its terminal
//! changed size. From the agent: [`Frame::Stdout`], [`Frame::Stderr`] (only without a TTY: a
//! TTY has one stream) and, last, [`Frame::Exit`] with the command's status as a big-endian
//! `i32` (128 + N for a command killed by signal N, as a shell reports it).
//!
//! Pure framing: [`encode`] and [`Decoder`] hold no socket, so both ends and the tests share
//! them.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

/// The largest payload one frame carries; more is an error (the peer is confused or hostile).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The most a reader hands to one frame it sends (a write of this size is one frame).
pub const CHUNK: usize = 32 * 1024;

const HEADER: usize = 5;

/// One frame of an exec stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Stdin(Bytes),
    StdinClosed,
    Resize { columns: u16, rows: u16 },
    Stdout(Bytes),
    Stderr(Bytes),
    Exit(i32),
}

/// A stream that does not follow the framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("exec stream: unknown frame kind {0}")]
    Kind(u8),
    #[error("exec stream: a frame of {0} bytes is larger than {MAX_PAYLOAD}")]
    TooLarge(usize),
    #[error("exec stream: a {kind} frame has {len} payload bytes, not {want}")]
    Length {
        kind: &'static str,
        len: usize,
        want: usize,
    },
}

mod kind {
    pub const STDIN: u8 = 0;
    pub const STDIN_CLOSED: u8 = 1;
    pub const RESIZE: u8 = 2;
    pub const STDOUT: u8 = 3;
    pub const STDERR: u8 = 4;
    pub const EXIT: u8 = 5;
}

/// Appends `frame` to `out`.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    let (code, payload): (u8, &[u8]) = match frame {
        Frame::Stdin(bytes) => (kind::STDIN, bytes),
        Frame::StdinClosed => (kind::STDIN_CLOSED, &[]),
        Frame::Stdout(bytes) => (kind::STDOUT, bytes),
        Frame::Stderr(bytes) => (kind::STDERR, bytes),
        Frame::Resize { columns, rows } => {
            out.put_u8(kind::RESIZE);
            out.put_u32(4);
            out.put_u16(*columns);
            out.put_u16(*rows);
            return;
        }
        Frame::Exit(status) => {
            out.put_u8(kind::EXIT);
            out.put_u32(4);
            out.put_i32(*status);
            return;
        }
    };
    out.put_u8(code);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
}

/// Frames out of a byte stream that arrives in pieces.
#[derive(Default)]
pub struct Decoder {
    buffer: BytesMut,
}

impl Decoder {
    /// Adds bytes read from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.len() < HEADER {
            return Ok(None);
        }
        let code = self.buffer[0];
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        if self.buffer.len() < HEADER + len {
            return Ok(None);
        }
        self.buffer.advance(HEADER);
        let mut payload = self.buffer.split_to(len).freeze();
        let exact = |kind: &'static str, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(FrameError::Length { kind, len, want })
            }
        };
        let frame = match code {
            kind::STDIN => Frame::Stdin(payload),
            kind::STDIN_CLOSED => {
                exact("stdin-closed", 0)?;
                Frame::StdinClosed
            }
            kind::STDOUT => Frame::Stdout(payload),
            kind::STDERR => Frame::Stderr(payload),
            kind::RESIZE => {
                exact("resize", 4)?;
                Frame::Resize {
                    columns: payload.get_u16(),
                    rows: payload.get_u16(),
                }
            }
            kind::EXIT => {
                exact("exit", 4)?;
                Frame::Exit(payload.get_i32())
            }
            other => return Err(FrameError::Kind(other)),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Frame> {
        vec![
            Frame::Stdin(Bytes::from_static(b"ls\r")),
            Frame::StdinClosed,
            Frame::Resize {
                columns: 132,
                rows: 43,
            },
            Frame::Stdout(Bytes::from_static(b"\x1b[1mhi\x1b[0m")),
            Frame::Stderr(Bytes::new()),
            Frame::Exit(-1),
            Frame::Exit(137),
        ]
    }

    #[test]
    fn frames_round_trip_whatever_the_pieces_the_bytes_arrive_in() {
        let mut wire = BytesMut::new();
        for frame in every_kind() {
            encode(&frame, &mut wire);
        }
        for piece in [1, 2, 3, 7, wire.len()] {
            let mut decoder = Decoder::default();
            let mut decoded = Vec::new();
            for chunk in wire.chunks(piece) {
                decoder.extend(chunk);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    decoded.push(frame);
                }
            }
            assert_eq!(decoded, every_kind(), "pieces of {piece}");
        }
    }

    #[test]
    fn unknown_kinds_oversized_and_misshapen_frames_are_errors() {
        let decode = |bytes: &[u8]| {
            let mut decoder = Decoder::default();
            decoder.extend(bytes);
            decoder.next_frame()
        };
        assert_eq!(decode(&[9, 0, 0, 0, 0]), Err(FrameError::Kind(9)));
        assert_eq!(
            decode(&[0, 0x7f, 0, 0, 0]),
            Err(FrameError::TooLarge(0x7f00_0000))
        );
        assert!(matches!(
            decode(&[2, 0, 0, 0, 3, 1, 2, 3]),
            Err(FrameError::Length { kind: "resize", .. })
        ));
        assert_eq!(decode(&[0, 0, 0, 0, 4, 1]), Ok(None));
    }
}
