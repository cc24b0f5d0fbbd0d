//! [`Host`]: a canonical host name or IP literal, the only form rules are ever matched against.
//!
//! Only [`Host::parse`] makes one ("parse, don't validate"), so the matcher, the proxy's SNI and
//! the audit log all see the same bytes. Canonical means:
//!
//! - **Names:** IDNA (UTS #46, the WHATWG URL "domain to ASCII" algorithm) maps the name to
//!   lowercase ASCII with Punycode for non-ASCII labels; one trailing dot is stripped. A name that
//!   fails IDNA is refused, never matched raw. Labels are `a-z`, `0-9`, `-`, `_`; none empty, none
//!   longer than 63 bytes, the whole name at most 253 bytes
//!   ([RFC 1035 §2.3.4](https://www.rfc-editor.org/rfc/rfc1035#section-2.3.4)).
//! - **IPv4:** every form the WHATWG URL parser accepts (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`,
//!   `2130706433`) becomes the dotted quad `127.0.0.1`, so a rule written for the plain form
//!   decides for all of them. A name whose last label is numeric but is not a valid IPv4 address
//!   (`1.2.3.256`, `foo.1`) is refused, as the URL standard does
//!   ([URL §3.5 "ends in a number"](https://url.spec.whatwg.org/#ends-in-a-number-checker)).
//! - **IPv6:** with or without brackets; printed in RFC 5952 form without brackets. An
//!   IPv4-mapped address (`::ffff:127.0.0.1`) becomes the IPv4 address it maps, so it cannot slip
//!   past a rule written for `127.0.0.1`.
//!
//! [`Host::as_str`] gives the canonical text (an IPv6 literal without brackets); [`Host::ip`] says
//! whether it is an IP literal.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// The longest name DNS can carry in text form (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;
/// The longest label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// A canonical host: a lowercase ASCII DNS name, or a normalized IP literal.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Host {
    /// The canonical text: the name, the dotted quad, or the RFC 5952 IPv6 text (no brackets).
    text: Box<str>,
    /// `Some` for an IP literal.
    ip: Option<IpAddr>,
}

/// Why a host was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the host is empty")]
    Empty,
    #[error("host `{host}` is not a valid internationalized domain name (IDNA)")]
    Idna { host: String },
    #[error("host `{host}` has an empty label")]
    EmptyLabel { host: String },
    #[error("host `{host}` has a label longer than {MAX_LABEL} bytes")]
    LabelTooLong { host: String },
    #[error("host `{host}` is longer than {MAX_NAME} bytes")]
    NameTooLong { host: String },
    #[error("host `{host}` contains `{character}`, which no host name may contain")]
    BadCharacter { host: String, character: char },
    #[error("host `{host}` ends in a number but is not a valid IPv4 address")]
    BadIpv4 { host: String },
    #[error("host `{host}` is not a valid IPv6 address")]
    BadIpv6 { host: String },
}

impl Host {
    /// Parses and canonicalizes a host as found in a URL, a `Host` header, an SNI or a rule.
    ///
    /// Accepts an IPv6 literal with or without brackets. Does not accept a port.
    pub fn parse(input: &str) -> Result<Host, HostError> {
        if input.is_empty() {
            return Err(HostError::Empty);
        }
        if let Some(inner) = input.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| HostError::BadIpv6 { host: input.into() })?;
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| HostError::BadIpv6 { host: input.into() })?;
            return Ok(Host::from_ip(IpAddr::V6(ip)));
        }
        if input.contains(':') {
            let ip: Ipv6Addr = input
                .parse()
                .map_err(|_| HostError::BadIpv6 { host: input.into() })?;
            return Ok(Host::from_ip(IpAddr::V6(ip)));
        }
        let ascii = idna::domain_to_ascii_cow(input.as_bytes(), idna::AsciiDenyList::URL)
            .map_err(|_| HostError::Idna { host: input.into() })?;
        let name = ascii.strip_suffix('.').unwrap_or(&ascii);
        if name.is_empty() {
            return Err(HostError::Empty);
        }
        if ends_in_a_number(name) {
            let ip = parse_ipv4(name).ok_or_else(|| HostError::BadIpv4 { host: input.into() })?;
            return Ok(Host::from_ip(IpAddr::V4(ip)));
        }
        if name.len() > MAX_NAME {
            return Err(HostError::NameTooLong { host: input.into() });
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(HostError::EmptyLabel { host: input.into() });
            }
            if label.len() > MAX_LABEL {
                return Err(HostError::LabelTooLong { host: input.into() });
            }
            if let Some(character) = label
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
            {
                return Err(HostError::BadCharacter {
                    host: input.into(),
                    character,
                });
            }
        }
        Ok(Host {
            text: name.into(),
            ip: None,
        })
    }

    /// The host for an IP address. An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-translated
    /// (`::ffff:0:a.b.c.d`, RFC 2765) IPv6 address becomes its IPv4 address: both reach that
    /// IPv4 host, so a rule written for it must decide them too.
    pub fn from_ip(ip: IpAddr) -> Host {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.segments() {
                [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => {
                    let [.., a, b, c, d] = v6.octets();
                    IpAddr::V4([a, b, c, d].into())
                }
                _ => IpAddr::V6(v6),
            },
            v4 @ IpAddr::V4(_) => v4,
        };
        Host {
            text: ip.to_string().into(),
            ip: Some(ip),
        }
    }

    /// The canonical text (an IPv6 literal has no brackets).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The address, when this host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// True for a DNS name, false for an IP literal.
    pub fn is_name(&self) -> bool {
        self.ip.is_none()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Host {
    type Err = HostError;

    fn from_str(input: &str) -> Result<Host, HostError> {
        Host::parse(input)
    }
}

/// The WHATWG "ends in a number" check: the last label (ignoring one empty label after a final
/// dot, already stripped here) is all digits or a `0x` hex number.
fn ends_in_a_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The WHATWG IPv4 parser: one to four parts, each decimal, `0x` hex or `0`-prefixed octal; the
/// last part fills the remaining bytes.
fn parse_ipv4(name: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        numbers.push(parse_ipv4_number(part)?);
    }
    let (last, init) = numbers.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let free_bytes = 5 - numbers.len() as u32; // bytes the last part fills: 4, 3, 2 or 1
    if u64::from(*last) >= 1u64 << (8 * free_bytes) {
        return None;
    }
    let mut address = *last;
    for (i, &n) in init.iter().enumerate() {
        address |= n << (8 * (3 - i as u32));
    }
    Some(Ipv4Addr::from(address))
}

fn parse_ipv4_number(part: &str) -> Option<u32> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0); // "0x" alone is zero in the URL standard
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expect = fn(&HostError) -> bool;

    #[test]
    fn names_are_lowercased_stripped_of_one_trailing_dot_and_idna_encoded() {
        let cases = [
            ("API.GitHub.com", "api.github.com"),
            ("example.com.", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example.", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("ｅｘａｍｐｌｅ.com", "example.com"),
            ("_acme.example.com", "_acme.example.com"),
            ("localhost", "localhost"),
        ];
        for (input, canonical) in cases {
            let host = Host::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(host.as_str(), canonical, "{input}");
            assert!(host.is_name(), "{input}");
        }
    }

    #[test]
    fn every_ipv4_form_becomes_the_dotted_quad() {
        let cases = [
            ("127.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0177.0.0.01", "127.0.0.1"),
            ("169.254.169.254.", "169.254.169.254"),
            ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254"),
            ("０x7f.1", "127.0.0.1"),
            ("0", "0.0.0.0"),
        ];
        for (input, canonical) in cases {
            let host = Host::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(host.as_str(), canonical, "{input}");
            assert!(host.ip().is_some(), "{input}");
        }
    }

    #[test]
    fn ipv6_literals_are_normalized_and_mapped_ipv4_becomes_ipv4() {
        let cases = [
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("[0:0:0:0:0:0:0:1]", "::1"),
            ("[2001:DB8::1]", "2001:db8::1"),
            ("[::ffff:127.0.0.1]", "127.0.0.1"),
            ("[::ffff:7f00:1]", "127.0.0.1"),
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("[::ffff:0:cb00:7108]", "203.0.113.8"),
            ("::ffff:0:169.254.169.254", "169.254.169.254"),
        ];
        for (input, canonical) in cases {
            assert_eq!(
                Host::parse(input).map(|h| h.to_string()),
                Ok(canonical.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn invalid_hosts_are_refused_with_the_reason() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        let cases: [(&str, Expect); 13] = [
            ("", |e| matches!(e, HostError::Empty)),
            (".", |e| matches!(e, HostError::Empty)),
            ("a..b", |e| matches!(e, HostError::EmptyLabel { .. })),
            ("example.com..", |e| {
                matches!(e, HostError::EmptyLabel { .. })
            }),
            (&long_label, |e| matches!(e, HostError::LabelTooLong { .. })),
            (&long_name, |e| matches!(e, HostError::NameTooLong { .. })),
            ("exa mple.com", |e| matches!(e, HostError::Idna { .. })),
            ("*.example.com", |e| {
                matches!(e, HostError::Idna { .. } | HostError::BadCharacter { .. })
            }),
            ("1.2.3.256", |e| matches!(e, HostError::BadIpv4 { .. })),
            ("foo.1", |e| matches!(e, HostError::BadIpv4 { .. })),
            ("1.2.3.4.5", |e| matches!(e, HostError::BadIpv4 { .. })),
            ("[::1", |e| matches!(e, HostError::BadIpv6 { .. })),
            ("[1.2.3.4]", |e| matches!(e, HostError::BadIpv6 { .. })),
        ];
        for (input, expected) in cases {
            match Host::parse(input) {
                Ok(host) => panic!("{input:?} was accepted as {host}"),
                Err(error) => assert!(expected(&error), "{input:?}: {error:?}"),
            }
        }
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_host() {
        for input in [
            "Example.COM.",
            "bücher.example",
            "0x7f.1",
            "[::ffff:1.2.3.4]",
            "[2001:db8::1]",
        ] {
            let host = Host::parse(input).unwrap();
            assert_eq!(Host::parse(host.as_str()), Ok(host.clone()), "{input}");
        }
    }
}
