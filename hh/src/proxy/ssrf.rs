//! The SSRF guard: may the proxy dial this address?
//!
//! Owns one pure decision, [`check_dial_target_among`], made on the address the proxy resolved and
//! is about to dial (never on one taken from the client, never re-resolved afterwards). It refuses
//! every address that is not plainly a public unicast host — loopback, private, CGNAT, link-local,
//! cloud metadata, unique-local, multicast, reserved, documentation — and looks *inside* the IPv6
//! forms that carry an IPv4 address (IPv4-mapped, IPv4-translated, IPv4-compatible, NAT64, 6to4,
//! Teredo), so `::ffff:127.0.0.1` or `64:ff9b::a9fe:a9fe` is judged as the 127.0.0.1 or
//! 169.254.169.254 it reaches. The only way past a refusal is a [`DialGrants`] entry: an address or
//! CIDR that a rule names or that `localhost_forwards` grants.
//!
//! It also refuses the host's own addresses (every address on the proxy host's interfaces, public
//! ones too): a name resolving there reaches the host's own services, which no rule about a
//! remote host means to open. A grant of a whole block does not let one of them through; only a
//! grant of exactly that address does (loopback keeps its own reason and grants as before).
//! [`check_dial_target`] reads the host's addresses ([`super::host_addresses`]); the pure core takes
//! them as an argument. Resolving names and matching rules belong elsewhere.
//!
//! Ranges follow the IANA special-purpose registries:
//! <https://www.iana.org/assignments/iana-ipv4-special-registry/> and
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/>.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an address may not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// `0.0.0.0`, `::`, or anything in `0.0.0.0/8` ("this network").
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and deprecated IPv6 site-local `fec0::/10`.
    Private,
    /// Carrier-grade NAT, `100.64.0.0/10` (RFC 6598).
    Cgnat,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// A cloud instance-metadata endpoint (169.254.169.254, fd00:ec2::254, …).
    Metadata,
    /// IPv6 unique-local, `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation ranges (TEST-NET-1/2/3, `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// Benchmarking ranges (`198.18.0.0/15`, `2001:2::/48`).
    Benchmarking,
    /// NAT64 prefixes `64:ff9b::/96` and `64:ff9b:1::/48`: a translator dials for us.
    Nat64,
    /// 6to4, `2002::/16`: a relay dials for us.
    SixToFour,
    /// Teredo, `2001::/32`: a relay dials for us.
    Teredo,
    /// The discard-only prefix `100::/64` (RFC 6666).
    Discard,
    /// Reserved, deprecated or unassigned space that no public host uses (`240.0.0.0/4`,
    /// IPv4-compatible `::a.b.c.d`, IETF protocol assignments, everything outside `2000::/3`, …).
    Reserved,
    /// An address on one of the proxy host's own interfaces.
    ThisHost,
    /// A deny rule names the address (see [`RefusedAddress::rule`]).
    DeniedByRule,
}

impl RefusalReason {
    fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified (\"this network\") address",
            Self::Loopback => "the loopback of the proxy's host (not the session's own)",
            Self::Private => "a private address",
            Self::Cgnat => "a carrier-grade NAT address",
            Self::LinkLocal => "a link-local address",
            Self::Metadata => "a cloud metadata endpoint",
            Self::UniqueLocal => "a unique-local IPv6 address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Nat64 => "a NAT64 address",
            Self::SixToFour => "a 6to4 address",
            Self::Teredo => "a Teredo address",
            Self::Discard => "a discard-only address",
            Self::Reserved => "a reserved address",
            Self::ThisHost => "an address of the proxy's own host",
            Self::DeniedByRule => "an address a deny rule names",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2).
    Ipv4Mapped,
    /// `::ffff:0:a.b.c.d` (RFC 2765 SIIT).
    Ipv4Translated,
    /// `::a.b.c.d`, deprecated (RFC 4291 §2.5.5.1).
    Ipv4Compatible,
    /// `64:ff9b::a.b.c.d` (RFC 6052).
    Nat64,
    /// `2002:AABB:CCDD::/48` (RFC 3056).
    SixToFour,
    /// `2001:0:SERVER:flags:port:~CLIENT` (RFC 4380); the client address is the destination.
    Teredo,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Translated => "IPv4-translated",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
            Self::Teredo => "Teredo",
        })
    }
}

/// The proxy refused to dial `addr`.
///
/// When `addr` is an IPv6 form that carries an IPv4 address and the IPv4 address is what was
/// refused, `embedded` names it and how it was carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to dial {addr}: {}", self.explain())]
pub struct RefusedAddress {
    pub addr: IpAddr,
    pub reason: RefusalReason,
    pub embedded: Option<(Embedding, Ipv4Addr)>,
    /// For [`RefusalReason::DeniedByRule`]: the rule, as its origin prints it.
    pub rule: Option<String>,
}

impl RefusedAddress {
    /// `addr` is denied by `rule` (printed as the audit log and 403s show rules).
    pub fn denied_by_rule(addr: IpAddr, rule: String) -> RefusedAddress {
        RefusedAddress {
            addr,
            reason: RefusalReason::DeniedByRule,
            embedded: None,
            rule: Some(rule),
        }
    }

    fn explain(&self) -> String {
        let mut text = match self.embedded {
            Some((how, v4)) => format!("{how} form of {v4}, {}", self.reason),
            None => self.reason.to_string(),
        };
        if let Some(rule) = &self.rule {
            text.push_str(&format!(" ({rule})"));
        }
        text
    }
}

/// An address block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse or whose prefix is too long for its family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not an IP address or CIDR block")]
    Syntax(String),
    #[error("prefix /{prefix} is longer than {max} bits in `{text}`")]
    PrefixTooLong { text: String, prefix: u8, max: u8 },
}

impl IpCidr {
    /// The block of `prefix` leading bits of `addr`; `None` if the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= max_prefix(addr)).then_some(Self { addr, prefix })
    }

    /// The block holding exactly `addr`.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// Whether `ip` is inside this block (families never mix).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

impl FromStr for IpCidr {
    type Err = CidrError;

    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a one-address block).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || CidrError::Syntax(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
                // Digits only: `u8::from_str` would also take a leading `+`.
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
                (addr, prefix)
            }
            None => {
                let addr: IpAddr = text.parse().map_err(|_| syntax())?;
                (addr, max_prefix(addr))
            }
        };
        Self::new(addr, prefix).ok_or(CidrError::PrefixTooLong {
            text: text.to_owned(),
            prefix,
            max: max_prefix(addr),
        })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Whether the first `prefix` of the low `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (a >> shift) == (b >> shift)
}

/// Addresses a rule names or `localhost_forwards` grants: the only way past a refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialGrants {
    blocks: Vec<IpCidr>,
}

impl DialGrants {
    /// No grants: every refusable address is refused.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(blocks: impl IntoIterator<Item = IpCidr>) -> Self {
        Self {
            blocks: blocks.into_iter().collect(),
        }
    }

    pub fn grant(&mut self, block: IpCidr) {
        self.blocks.push(block);
    }

    fn covers(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// Whether one grant is exactly `ip` (a one-address block), not a wider block holding it.
    fn names_exactly(&self, ip: IpAddr) -> bool {
        self.blocks.contains(&IpCidr::host(ip))
    }
}

/// [`check_dial_target_among`] with the host's addresses as they are now.
pub fn check_dial_target(addr: IpAddr, grants: &DialGrants) -> Result<(), RefusedAddress> {
    check_dial_target_among(addr, grants, &super::host_addresses::current())
}

/// Decides whether the proxy may dial `addr`, on a host whose interfaces carry `host_addresses`.
///
/// An address of the host itself (not loopback, which is judged as such below) is refused unless
/// a grant is exactly that address; the IPv4-mapped and IPv4-translated forms of one are refused
/// alike. Otherwise a grant covering `addr` itself lets it through. For the IPv4-mapped and
/// IPv4-translated forms, which reach the very same IPv4 host, a grant covering the embedded IPv4
/// address does too. NAT64, 6to4 and Teredo addresses are dialled through a translator or relay, so
/// they are refused even when the IPv4 address they carry is public, unless a grant names the IPv6
/// address itself.
pub fn check_dial_target_among(
    addr: IpAddr,
    grants: &DialGrants,
    host_addresses: &[IpAddr],
) -> Result<(), RefusedAddress> {
    let refuse = |reason, embedded| {
        Err(RefusedAddress {
            addr,
            reason,
            embedded,
            rule: None,
        })
    };
    let forms = std::iter::once((addr, None))
        .chain(same_host_ipv4(addr).map(|(how, v4)| (IpAddr::V4(v4), Some((how, v4)))));
    for (form, embedded) in forms {
        let own = !form.is_loopback() && host_addresses.contains(&form);
        if own && !(grants.names_exactly(addr) || grants.names_exactly(form)) {
            return refuse(RefusalReason::ThisHost, embedded);
        }
    }
    if grants.covers(addr) {
        return Ok(());
    }
    match addr {
        IpAddr::V4(v4) => match classify_v4(v4) {
            Some(reason) => refuse(reason, None),
            None => Ok(()),
        },
        IpAddr::V6(v6) => match classify_v6(v6) {
            V6Verdict::Public => Ok(()),
            V6Verdict::Refused(reason) => refuse(reason, None),
            V6Verdict::Carries { how, v4, outright } => {
                if let Some(reason) = classify_v4(v4) {
                    let same_host =
                        matches!(how, Embedding::Ipv4Mapped | Embedding::Ipv4Translated);
                    if same_host && grants.covers(IpAddr::V4(v4)) {
                        return Ok(());
                    }
                    return refuse(reason, Some((how, v4)));
                }
                match outright {
                    Some(reason) => refuse(reason, None),
                    None => Ok(()),
                }
            }
        },
    }
}

/// The IPv4 address an IPv4-mapped or IPv4-translated `addr` reaches (the very same host).
pub fn same_host_ipv4(addr: IpAddr) -> Option<(Embedding, Ipv4Addr)> {
    let IpAddr::V6(v6) = addr else { return None };
    let bits = v6.to_bits();
    let v4 = Ipv4Addr::from_bits(bits as u32);
    if prefix_eq(0xffff_u128 << 32, bits, 128, 96) {
        Some((Embedding::Ipv4Mapped, v4))
    } else if prefix_eq(0xffff_u128 << 48, bits, 128, 96) {
        Some((Embedding::Ipv4Translated, v4))
    } else {
        None
    }
}

/// The reason to refuse an IPv4 address, or `None` for a public unicast one.
fn classify_v4(ip: Ipv4Addr) -> Option<RefusalReason> {
    use RefusalReason as R;
    let bits = ip.to_bits();
    let within = |net: [u8; 4], prefix: u8| {
        prefix_eq(
            u128::from(Ipv4Addr::from(net).to_bits()),
            u128::from(bits),
            32,
            prefix,
        )
    };
    // Most specific first: the metadata endpoints sit inside wider refused or public blocks.
    const METADATA: [[u8; 4]; 4] = [
        [169, 254, 169, 254], // AWS, GCP, Azure IMDS, OpenStack, …
        [169, 254, 170, 2],   // AWS ECS task metadata
        [100, 100, 100, 200], // Alibaba Cloud
        [192, 0, 0, 192],     // Oracle Cloud
    ];
    if METADATA.iter().any(|m| Ipv4Addr::from(*m) == ip) {
        return Some(R::Metadata);
    }
    let table: [([u8; 4], u8, RefusalReason); 17] = [
        ([0, 0, 0, 0], 8, R::Unspecified),
        ([10, 0, 0, 0], 8, R::Private),
        ([100, 64, 0, 0], 10, R::Cgnat),
        ([127, 0, 0, 0], 8, R::Loopback),
        ([169, 254, 0, 0], 16, R::LinkLocal),
        ([172, 16, 0, 0], 12, R::Private),
        ([192, 0, 0, 0], 24, R::Reserved), // IETF protocol assignments
        ([192, 0, 2, 0], 24, R::Documentation),
        ([192, 31, 196, 0], 24, R::Reserved), // AS112
        ([192, 52, 193, 0], 24, R::Reserved), // AMT
        ([192, 88, 99, 0], 24, R::SixToFour), // deprecated 6to4 relay anycast
        ([192, 168, 0, 0], 16, R::Private),
        ([198, 18, 0, 0], 15, R::Benchmarking),
        ([198, 51, 100, 0], 24, R::Documentation),
        ([203, 0, 113, 0], 24, R::Documentation),
        ([224, 0, 0, 0], 4, R::Multicast),
        ([240, 0, 0, 0], 4, R::Reserved),
    ];
    if ip == Ipv4Addr::BROADCAST {
        return Some(R::Broadcast);
    }
    table
        .iter()
        .find(|(net, prefix, _)| within(*net, *prefix))
        .map(|(_, _, reason)| *reason)
}

enum V6Verdict {
    Public,
    Refused(RefusalReason),
    /// Carries an IPv4 address to judge first; if that one is public, `outright` still refuses.
    Carries {
        how: Embedding,
        v4: Ipv4Addr,
        outright: Option<RefusalReason>,
    },
}

fn classify_v6(ip: Ipv6Addr) -> V6Verdict {
    use RefusalReason as R;
    let bits = ip.to_bits();
    let within = |net: u128, prefix: u8| prefix_eq(net, bits, 128, prefix);
    let low32 = Ipv4Addr::from_bits(bits as u32);
    let carries = |how, v4, outright| V6Verdict::Carries { how, v4, outright };

    if ip == Ipv6Addr::UNSPECIFIED {
        return V6Verdict::Refused(R::Unspecified);
    }
    if ip == Ipv6Addr::LOCALHOST {
        return V6Verdict::Refused(R::Loopback);
    }
    // AWS's IPv6 instance metadata endpoint (inside fc00::/7).
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return V6Verdict::Refused(R::Metadata);
    }
    if within(0xffff_u128 << 32, 96) {
        return carries(Embedding::Ipv4Mapped, low32, None);
    }
    if within(0xffff_u128 << 48, 96) {
        return carries(Embedding::Ipv4Translated, low32, None);
    }
    if within(0, 96) {
        // `::a.b.c.d` is deprecated; no public host is reached this way.
        return carries(Embedding::Ipv4Compatible, low32, Some(R::Reserved));
    }
    if within(0x0064_ff9b_u128 << 96, 96) {
        return carries(Embedding::Nat64, low32, Some(R::Nat64));
    }
    if within((0x0064_ff9b_0001_u128) << 80, 48) {
        // Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's prefix
        // length, so there is nothing reliable to unwrap; refuse it whole.
        return V6Verdict::Refused(R::Nat64);
    }
    if within(0x2002_u128 << 112, 16) {
        let v4 = Ipv4Addr::from_bits((bits >> 80) as u32);
        return carries(Embedding::SixToFour, v4, Some(R::SixToFour));
    }
    if within(0x2001_0000_u128 << 96, 32) {
        // The client address is stored with every bit flipped (RFC 4380 §4).
        return carries(
            Embedding::Teredo,
            Ipv4Addr::from_bits(!(bits as u32)),
            Some(R::Teredo),
        );
    }
    let table: [(u128, u8, RefusalReason); 10] = [
        (0x0100_u128 << 112, 64, R::Discard),
        (0x2001_0002_u128 << 96, 48, R::Benchmarking),
        (0x2001_0db8_u128 << 96, 32, R::Documentation),
        (0x2001_u128 << 112, 23, R::Reserved), // IETF protocol assignments (ORCHID, AMT, AS112, …)
        (0x3fff_u128 << 112, 20, R::Documentation),
        (0x5f00_u128 << 112, 16, R::Reserved), // SRv6 SIDs (RFC 9602)
        (0xfc00_u128 << 112, 7, R::UniqueLocal),
        (0xfe80_u128 << 112, 10, R::LinkLocal),
        (0xfec0_u128 << 112, 10, R::Private), // deprecated site-local
        (0xff00_u128 << 112, 8, R::Multicast),
    ];
    if let Some((_, _, reason)) = table.iter().find(|(net, prefix, _)| within(*net, *prefix)) {
        return V6Verdict::Refused(*reason);
    }
    // Only 2000::/3 is global unicast; everything outside it is reserved or unassigned.
    if !within(0x2000_u128 << 112, 3) {
        return V6Verdict::Refused(R::Reserved);
    }
    V6Verdict::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    use RefusalReason as R;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address parses")
    }

    /// The guard on a host with no address of its own beyond loopback.
    fn check(addr: IpAddr, grants: &DialGrants) -> Result<(), RefusedAddress> {
        check_dial_target_among(addr, grants, &[ip("127.0.0.1"), ip("::1")])
    }

    fn verdict(text: &str) -> Result<(), RefusalReason> {
        check(ip(text), &DialGrants::none()).map_err(|refused| refused.reason)
    }

    #[test]
    fn every_refused_ipv4_block_is_refused_with_its_reason() {
        let cases = [
            ("0.0.0.0", R::Unspecified),
            ("0.1.2.3", R::Unspecified),
            ("10.0.0.1", R::Private),
            ("10.255.255.255", R::Private),
            ("100.64.0.1", R::Cgnat),
            ("100.127.255.254", R::Cgnat),
            ("100.100.100.200", R::Metadata),
            ("127.0.0.1", R::Loopback),
            ("127.255.255.254", R::Loopback),
            ("169.254.0.1", R::LinkLocal),
            ("169.254.169.254", R::Metadata),
            ("169.254.170.2", R::Metadata),
            ("172.16.0.1", R::Private),
            ("172.31.255.255", R::Private),
            ("192.0.0.1", R::Reserved),
            ("192.0.0.192", R::Metadata),
            ("192.0.2.1", R::Documentation),
            ("192.88.99.1", R::SixToFour),
            ("192.168.1.1", R::Private),
            ("198.18.0.1", R::Benchmarking),
            ("198.19.255.255", R::Benchmarking),
            ("198.51.100.7", R::Documentation),
            ("203.0.113.9", R::Documentation),
            ("224.0.0.1", R::Multicast),
            ("239.255.255.250", R::Multicast),
            ("240.0.0.1", R::Reserved),
            ("255.255.255.254", R::Reserved),
            ("255.255.255.255", R::Broadcast),
        ];
        for (addr, reason) in cases {
            assert_eq!(verdict(addr), Err(reason), "{addr}");
        }
    }

    #[test]
    fn public_ipv4_addresses_next_to_refused_blocks_are_allowed() {
        let cases = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ];
        for addr in cases {
            assert_eq!(verdict(addr), Ok(()), "{addr}");
        }
    }

    #[test]
    fn every_refused_ipv6_block_is_refused_with_its_reason() {
        let cases = [
            ("::", R::Unspecified),
            ("::1", R::Loopback),
            ("fd00:ec2::254", R::Metadata),
            ("fd00::1", R::UniqueLocal),
            ("fc00::1", R::UniqueLocal),
            ("fe80::1", R::LinkLocal),
            ("febf:ffff::1", R::LinkLocal),
            ("fec0::1", R::Private),
            ("ff02::1", R::Multicast),
            ("ff0e::1", R::Multicast),
            ("100::", R::Discard),
            ("100::ffff:ffff:ffff:ffff", R::Discard),
            ("2001:db8::1", R::Documentation),
            ("3fff::1", R::Documentation),
            ("2001:2::1", R::Benchmarking),
            ("2001:10::1", R::Reserved),
            ("2001:20::1", R::Reserved),
            ("5f00::1", R::Reserved),
            ("1::1", R::Reserved),
            ("4000::1", R::Reserved),
            ("64:ff9b:1::1", R::Nat64),
            ("64:ff9b:1:ffff::a9fe:a9fe", R::Nat64),
        ];
        for (addr, reason) in cases {
            assert_eq!(verdict(addr), Err(reason), "{addr}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        let cases = [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200e",
            "2001:200::1", // outside 2001::/23
            "3ffe::1",     // below 3fff::/20
        ];
        for addr in cases {
            assert_eq!(verdict(addr), Ok(()), "{addr}");
        }
    }

    #[test]
    fn every_ipv6_form_of_a_refused_ipv4_address_is_refused_as_that_address() {
        let cases = [
            // 127.0.0.1
            (
                "::ffff:127.0.0.1",
                Embedding::Ipv4Mapped,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "::ffff:7f00:1",
                Embedding::Ipv4Mapped,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "::ffff:0:127.0.0.1",
                Embedding::Ipv4Translated,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "::127.0.0.1",
                Embedding::Ipv4Compatible,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "64:ff9b::127.0.0.1",
                Embedding::Nat64,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "64:ff9b::7f00:1",
                Embedding::Nat64,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "2002:7f00:1::",
                Embedding::SixToFour,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "2002:7f00:1:ffff::1",
                Embedding::SixToFour,
                "127.0.0.1",
                R::Loopback,
            ),
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                Embedding::Teredo,
                "127.0.0.1",
                R::Loopback,
            ),
            // 169.254.169.254
            (
                "::ffff:169.254.169.254",
                Embedding::Ipv4Mapped,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "::ffff:a9fe:a9fe",
                Embedding::Ipv4Mapped,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "::ffff:0:a9fe:a9fe",
                Embedding::Ipv4Translated,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "::a9fe:a9fe",
                Embedding::Ipv4Compatible,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "64:ff9b::a9fe:a9fe",
                Embedding::Nat64,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "64:ff9b::169.254.169.254",
                Embedding::Nat64,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "2002:a9fe:a9fe::",
                Embedding::SixToFour,
                "169.254.169.254",
                R::Metadata,
            ),
            (
                "2001:0:1:2:3:4:5601:5601",
                Embedding::Teredo,
                "169.254.169.254",
                R::Metadata,
            ),
            // 10.0.0.1 and friends
            (
                "::ffff:10.0.0.1",
                Embedding::Ipv4Mapped,
                "10.0.0.1",
                R::Private,
            ),
            (
                "::ffff:0:10.0.0.1",
                Embedding::Ipv4Translated,
                "10.0.0.1",
                R::Private,
            ),
            (
                "::10.0.0.1",
                Embedding::Ipv4Compatible,
                "10.0.0.1",
                R::Private,
            ),
            (
                "64:ff9b::10.0.0.1",
                Embedding::Nat64,
                "10.0.0.1",
                R::Private,
            ),
            ("2002:a00:1::", Embedding::SixToFour, "10.0.0.1", R::Private),
            (
                "2001:0:1:2:3:4:f5ff:fffe",
                Embedding::Teredo,
                "10.0.0.1",
                R::Private,
            ),
            (
                "::ffff:192.168.0.1",
                Embedding::Ipv4Mapped,
                "192.168.0.1",
                R::Private,
            ),
            (
                "::ffff:100.64.0.1",
                Embedding::Ipv4Mapped,
                "100.64.0.1",
                R::Cgnat,
            ),
            (
                "::ffff:0.0.0.0",
                Embedding::Ipv4Mapped,
                "0.0.0.0",
                R::Unspecified,
            ),
            (
                "::ffff:255.255.255.255",
                Embedding::Ipv4Mapped,
                "255.255.255.255",
                R::Broadcast,
            ),
            (
                "64:ff9b::224.0.0.1",
                Embedding::Nat64,
                "224.0.0.1",
                R::Multicast,
            ),
        ];
        for (addr, how, v4, reason) in cases {
            let refused =
                check(ip(addr), &DialGrants::none()).expect_err(&format!("{addr} must be refused"));
            assert_eq!(refused.reason, reason, "{addr}");
            assert_eq!(refused.embedded, Some((how, v4.parse().unwrap())), "{addr}");
        }
    }

    #[test]
    fn translators_and_relays_are_refused_even_for_public_ipv4_addresses() {
        let cases = [
            ("64:ff9b::8.8.8.8", R::Nat64),
            ("2002:808:808::1", R::SixToFour),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", R::Teredo),
            ("::8.8.8.8", R::Reserved),
        ];
        for (addr, reason) in cases {
            assert_eq!(verdict(addr), Err(reason), "{addr}");
        }
    }

    #[test]
    fn mapped_and_translated_forms_of_a_public_ipv4_address_are_allowed() {
        for addr in ["::ffff:8.8.8.8", "::ffff:0:1.1.1.1"] {
            assert_eq!(verdict(addr), Ok(()), "{addr}");
        }
    }

    #[test]
    fn a_grant_lets_exactly_the_granted_addresses_through() {
        let grants = DialGrants::new(
            [
                "127.0.0.1",
                "10.1.0.0/16",
                "fd12::/16",
                "64:ff9b::a9fe:a9fe",
            ]
            .map(|text| text.parse::<IpCidr>().unwrap()),
        );
        let cases = [
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("::ffff:127.0.0.1", true),
            ("::ffff:0:127.0.0.1", true),
            ("64:ff9b::127.0.0.1", false), // a NAT64 translator is another host
            ("2002:7f00:1::", false),
            ("10.1.200.3", true),
            ("10.2.0.1", false),
            ("fd12:3456::1", true),
            ("fd13::1", false),
            ("64:ff9b::a9fe:a9fe", true),
            ("169.254.169.254", false),
            ("::1", false),
        ];
        for (addr, allowed) in cases {
            assert_eq!(check(ip(addr), &grants).is_ok(), allowed, "{addr}");
        }
    }

    proptest::proptest! {
        #[test]
        fn mapped_and_translated_forms_are_judged_exactly_like_their_ipv4_address(bits: u32) {
            let v4 = Ipv4Addr::from_bits(bits);
            let plain = check(IpAddr::V4(v4), &DialGrants::none()).map_err(|r| r.reason);
            let mapped = Ipv6Addr::from_bits(0xffff_u128 << 32 | u128::from(bits));
            let translated = Ipv6Addr::from_bits(0xffff_u128 << 48 | u128::from(bits));
            for form in [mapped, translated] {
                let wrapped = check(IpAddr::V6(form), &DialGrants::none()).map_err(|r| r.reason);
                proptest::prop_assert_eq!(wrapped, plain, "{}", form);
            }
        }

        #[test]
        fn translator_and_relay_forms_are_refused_whatever_they_carry(bits: u32) {
            let nat64 = Ipv6Addr::from_bits(0x0064_ff9b_u128 << 96 | u128::from(bits));
            let six_to_four = Ipv6Addr::from_bits(0x2002_u128 << 112 | u128::from(bits) << 80);
            let teredo = Ipv6Addr::from_bits(0x2001_0000_u128 << 96 | u128::from(bits));
            for addr in [nat64, six_to_four, teredo] {
                proptest::prop_assert!(check(IpAddr::V6(addr), &DialGrants::none()).is_err(), "{}", addr);
            }
        }
    }

    #[test]
    fn cidrs_parse_strictly() {
        let cases = [
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            ("127.0.0.1", Some("127.0.0.1/32")),
            ("::1", Some("::1/128")),
            ("fd00::/8", Some("fd00::/8")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("10.0.0.0/33", None),
            ("::/129", None),
            ("10.0.0.0/+8", None),
            ("10.0.0.0/", None),
            ("10.0.0/8", None),
            ("localhost", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = text.parse::<IpCidr>().ok().map(|cidr| cidr.to_string());
            assert_eq!(parsed.as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn the_hosts_own_addresses_are_refused_unless_granted_exactly() {
        let own = [
            ip("127.0.0.1"),
            ip("10.77.0.1"),
            ip("fd77::1"),
            ip("198.51.7.7"),
            ip("::1"),
        ];
        let among = |addr: &str, grants: &DialGrants| {
            check_dial_target_among(ip(addr), grants, &own).map_err(|refused| refused.reason)
        };
        let none = DialGrants::none();
        let blocks = DialGrants::new(
            ["10.0.0.0/8", "fd77::/16", "198.51.0.0/16"].map(|b| b.parse().unwrap()),
        );
        let exact = DialGrants::new(["10.77.0.1", "fd77::1"].map(|b| b.parse().unwrap()));
        let cases = [
            // A public address of the host is refused although it is public.
            ("198.51.7.7", &none, Err(R::ThisHost)),
            ("::ffff:198.51.7.7", &none, Err(R::ThisHost)),
            ("::ffff:0:198.51.7.7", &none, Err(R::ThisHost)),
            ("198.51.7.8", &none, Ok(())),
            // A block grant (a corporate range) does not open the host's own address in it ...
            ("10.77.0.1", &blocks, Err(R::ThisHost)),
            ("::ffff:10.77.0.1", &blocks, Err(R::ThisHost)),
            ("fd77::1", &blocks, Err(R::ThisHost)),
            ("198.51.7.7", &blocks, Err(R::ThisHost)),
            ("10.77.0.2", &blocks, Ok(())),
            ("fd77::2", &blocks, Ok(())),
            // ... a grant of exactly that address does.
            ("10.77.0.1", &exact, Ok(())),
            ("::ffff:10.77.0.1", &exact, Ok(())),
            ("fd77::1", &exact, Ok(())),
            // Loopback keeps its own reason (and its grants).
            ("127.0.0.1", &none, Err(R::Loopback)),
            ("::1", &none, Err(R::Loopback)),
            // Without a grant, a private address of the host is refused as the host's.
            ("10.77.0.1", &none, Err(R::ThisHost)),
        ];
        for (addr, grants, expected) in cases {
            assert_eq!(among(addr, grants), expected, "{addr} with {grants:?}");
        }
        let refused = check_dial_target_among(ip("10.77.0.1"), &blocks, &own).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "refusing to dial 10.77.0.1: an address of the proxy's own host"
        );
    }

    #[test]
    fn the_refusal_message_names_the_address_and_the_embedded_one() {
        let refused = check(ip("::ffff:169.254.169.254"), &DialGrants::none()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "refusing to dial ::ffff:169.254.169.254: IPv4-mapped form of 169.254.169.254, a cloud metadata endpoint"
        );
    }
}
