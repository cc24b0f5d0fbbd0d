//! A strict reading of the HTTP/1.1 bytes an upstream receives from hh: the model of every server
//! behind the proxy at once. A message is a [`Read::Request`] only when no server could frame it
//! another way (request smuggling: RFC 9112 §6.3, §11.2); anything that leaves room for a second
//! reading is [`Read::Ambiguous`]:
//!
//! - line ends other than CRLF, obs-fold (RFC 9112 §2.2, §5.2);
//! - a request line that is not `token SP visible-ASCII SP HTTP/1.0|1.1` (§3);
//! - a field name that is not a token, whitespace before its colon, a control byte in a value
//!   (RFC 9110 §5.1, §5.5);
//! - a field whose name some server reads as a framing field although it is none
//!   (`Transfer_Encoding`, `Transfer\Encoding`: PortSwigger's DesyncBox permutations);
//! - `Content-Length` that is not plain digits, `Transfer-Encoding` that is not exactly
//!   `chunked`, either twice, both together, or `Transfer-Encoding` in HTTP/1.0 (RFC 9112 §6.1, §6.3);
//! - no `Host`, or two (RFC 9112 §3.2);
//! - a chunked body with extensions, a bad size line or a missing CRLF.
//!
//! Written apart from hh's own parser (`hh::proxy::http1`), so the corpus test does not grade hh
//! with hh's code. Pure: bytes in, a reading out.

/// A request head's method, target and `Host`, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub host: String,
}

/// What the bytes at the start of a buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Not a whole message yet; the head, once it is whole.
    Incomplete(Option<Head>),
    /// One whole, unambiguous request of `len` bytes.
    Request { head: Head, len: usize },
    /// Bytes that two servers could frame differently, and why.
    Ambiguous(String),
}

/// Longer heads are refused (hh's own bound is 32 KiB).
const MAX_HEAD: usize = 64 * 1024;

/// Reads the request at the start of `buf`.
pub fn read_request(buf: &[u8]) -> Read {
    let head_len = match head_len(buf) {
        Ok(Some(len)) => len,
        Ok(None) => return Read::Incomplete(None),
        Err(why) => return Read::Ambiguous(why),
    };
    let (head, framing) = match parse_head(&buf[..head_len - 4]) {
        Ok(parsed) => parsed,
        Err(why) => return Read::Ambiguous(why),
    };
    let body = &buf[head_len..];
    let body_len = match framing {
        Framing::None => Some(0),
        Framing::Length(len) => usize::try_from(len).ok().filter(|&len| body.len() >= len),
        Framing::Chunked => match chunked_len(body) {
            Ok(len) => len,
            Err(why) => return Read::Ambiguous(why),
        },
    };
    match body_len {
        Some(body_len) => Read::Request {
            head,
            len: head_len + body_len,
        },
        None => Read::Incomplete(Some(head)),
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// The head's length up to and including its empty line; bare CR or LF on the way is ambiguous.
fn head_len(buf: &[u8]) -> Result<Option<usize>, String> {
    for (at, &byte) in buf.iter().enumerate().take(MAX_HEAD) {
        match byte {
            b'\n' if at == 0 || buf[at - 1] != b'\r' => return Err(format!("bare LF at {at}")),
            b'\n' if at >= 3 && &buf[at - 3..at] == b"\r\n\r" => return Ok(Some(at + 1)),
            b'\r' if buf.get(at + 1).is_some_and(|&next| next != b'\n') => {
                return Err(format!("bare CR at {at}"));
            }
            _ => {}
        }
    }
    if buf.len() >= MAX_HEAD {
        return Err("head longer than 64 KiB".into());
    }
    Ok(None)
}

/// The request line and the fields (`text` ends before the final CRLF CRLF).
fn parse_head(text: &[u8]) -> Result<(Head, Framing), String> {
    let mut lines = text.split(|&byte| byte == b'\n').map(|line| {
        // Every LF follows a CR here (checked by `head_len`); the last line has neither.
        line.strip_suffix(b"\r").unwrap_or(line)
    });
    let (method, target, http10) = parse_request_line(lines.next().unwrap_or_default())?;
    let mut fields = Vec::new();
    for line in lines {
        fields.push(parse_field(line)?);
    }
    let framing = framing(&fields, http10)?;
    let hosts: Vec<&[u8]> = fields
        .iter()
        .filter(|(name, _)| name == "host")
        .map(|(_, value)| value.as_slice())
        .collect();
    let [host] = hosts.as_slice() else {
        return Err(format!("{} Host fields", hosts.len()));
    };
    let host = lossy(host);
    Ok((
        Head {
            method,
            target,
            host,
        },
        framing,
    ))
}

/// The method, the target and whether the version is HTTP/1.0.
fn parse_request_line(line: &[u8]) -> Result<(String, String, bool), String> {
    let parts: Vec<&[u8]> = line.split(|&byte| byte == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(format!("request line `{}`", lossy(line)));
    };
    let http10 = match *version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(format!("version `{}`", lossy(version))),
    };
    let visible = |bytes: &[u8]| !bytes.is_empty() && bytes.iter().all(u8::is_ascii_graphic);
    if method.is_empty() || !method.iter().all(|&byte| is_tchar(byte)) || !visible(target) {
        return Err(format!("request line `{}`", lossy(line)));
    }
    Ok((lossy(method), lossy(target), http10))
}

/// One field line: its lowercased name and its value without surrounding whitespace.
fn parse_field(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    if line
        .first()
        .is_some_and(|&byte| byte == b' ' || byte == b'\t')
    {
        return Err(format!("obs-fold `{}`", lossy(line)));
    }
    let colon = line
        .iter()
        .position(|&byte| byte == b':')
        .ok_or_else(|| format!("field line without a colon `{}`", lossy(line)))?;
    let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
    if name.is_empty() || !name.iter().all(|&byte| is_tchar(byte)) {
        return Err(format!("field name `{}`", lossy(name)));
    }
    if !value
        .iter()
        .all(|&byte| byte == b'\t' || byte == b' ' || byte.is_ascii_graphic() || byte >= 0x80)
    {
        return Err(format!("control byte in field `{}`", lossy(name)));
    }
    let name = lossy(name).to_ascii_lowercase();
    if is_framing_lookalike(&name) {
        return Err(format!(
            "field `{name}` reads as a framing field to some servers"
        ));
    }
    Ok((name, value.to_vec()))
}

/// A name that is not `transfer-encoding` or `content-length` but becomes one once its
/// punctuation is dropped (`transfer_encoding`, `content.length`), as CGI-style servers do.
fn is_framing_lookalike(name: &str) -> bool {
    let letters: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let framing = ["transfer-encoding", "content-length"];
    ["transferencoding", "contentlength"].contains(&letters.as_str()) && !framing.contains(&name)
}

fn framing(fields: &[(String, Vec<u8>)], http10: bool) -> Result<Framing, String> {
    let values = |wanted: &str| -> Vec<&[u8]> {
        fields
            .iter()
            .filter(|(name, _)| name == wanted)
            .map(|(_, value)| value.as_slice())
            .collect()
    };
    match (
        values("content-length").as_slice(),
        values("transfer-encoding").as_slice(),
    ) {
        ([], []) => Ok(Framing::None),
        ([length], []) => parse_length(length).map(Framing::Length),
        ([], [coding]) if http10 => Err(format!("HTTP/1.0 with `{}`", lossy(coding))),
        ([], [coding]) if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        (lengths, codings) => Err(format!(
            "{} Content-Length and {} Transfer-Encoding ({})",
            lengths.len(),
            codings.len(),
            codings
                .iter()
                .map(|c| lossy(c))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Plain digits without a leading zero: `010` is ten to RFC 9110 §8.6 but eight to a server
/// that reads it as octal (http-garden's `garden-server-32`).
fn parse_length(value: &[u8]) -> Result<u64, String> {
    let digits = !value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit);
    let plain = digits && (value == b"0" || value[0] != b'0');
    match plain {
        true => Ok(lossy(value).parse().unwrap_or(u64::MAX)),
        false => Err(format!("Content-Length `{}`", lossy(value))),
    }
}

/// The length of the chunked body at the start of `body`, trailers included; `None` when it
/// is not all there yet.
fn chunked_len(body: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&body[at..]) else {
            return Ok(None);
        };
        let size_line = &body[at..at + line_end];
        if size_line.is_empty()
            || size_line.len() > 15
            || !size_line.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(format!("chunk size line `{}`", lossy(size_line)));
        }
        let size = usize::from_str_radix(&lossy(size_line), 16).unwrap_or(usize::MAX);
        at += line_end + 2;
        if size == 0 {
            return trailers_len(&body[at..]).map(|len| len.map(|len| at + len));
        }
        let Some(data_end) = at.checked_add(size) else {
            return Err("chunk size overflows".into());
        };
        match body.get(data_end..data_end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => at = data_end + 2,
            Some(_) => return Err("chunk data not followed by CRLF".into()),
        }
    }
}

/// The trailer section after the last chunk, up to and including its empty line.
fn trailers_len(rest: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&rest[at..]) else {
            return Ok(None);
        };
        if line_end == 0 {
            return Ok(Some(at + 2));
        }
        parse_field(&rest[at..at + line_end])?;
        at += line_end + 2;
    }
}

/// Where the next CRLF starts; a bare CR or LF before it is ambiguous too, reported by the
/// caller's size or field check failing on the line that holds it.
fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_strict_reading_frames_plain_messages_and_refuses_every_second_reading() {
    let request = |len| Read::Request {
        head: Head {
            method: "POST".into(),
            target: "/x".into(),
            host: "a".into(),
        },
        len,
    };
    let chunked =
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(read_request(chunked), request(chunked.len()));
    let sized = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
    assert_eq!(read_request(sized), request(sized.len() - 3));
    let partial = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab";
    assert!(matches!(read_request(partial), Read::Incomplete(Some(_))));
    for ambiguous in [
        &b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            [..],
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 03\r\n\r\nabc",
        b"POST /x HTTP/1.1\r\nHost: a\nContent-Length: 3\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\n\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",
    ] {
        assert!(
            matches!(read_request(ambiguous), Read::Ambiguous(_)),
            "{}",
            lossy(ambiguous)
        );
    }
}
