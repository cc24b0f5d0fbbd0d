//! Reaching an allowed upstream: resolve the name, check every address with the SSRF guard, dial
//! the checked address (never one the client gave, never one re-resolved later), and for HTTPS
//! verify the upstream's certificate for the name.
//!
//! Names are resolved by the test resolver's fixed table (`--resolve NAME=IP`) when listed there,
//! otherwise by the system resolver. The grants ([`DialGrants`]) come from `--dial-grant`; an
//! IP literal that the allowing rule names exactly is dialed too (`named_by_rule`).
//!
//! Deny rules on IP literals hold here too ([`Upstream::with_address_rules`]): an address a deny
//! rule names (`domain=10.0.0.5`, for its port) is never dialed for a name that resolves to it,
//! whatever rule allowed the name, and neither are its IPv4-mapped forms. The request for the
//! literal itself was already decided with every term of the rule.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject as _},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{
    decision::PolicyFn,
    ssrf::{DialGrants, RefusedAddress, check_dial_target, same_host_ipv4},
};
use crate::rules::Host;

/// Why an upstream could not be reached. [`DialError::Refused`] means no packet was sent.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve {host}")]
    Resolve {
        host: Host,
        #[source]
        source: io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: Host },
    #[error("refused to dial {host}: {refused}")]
    Refused { host: Host, refused: RefusedAddress },
    #[error("cannot connect to {host} at {addr}")]
    Connect {
        host: Host,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {host} at {addr} timed out")]
    Timeout { host: Host, addr: SocketAddr },
    #[error("TLS with {host} at {addr} failed")]
    Tls {
        host: Host,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Why the upstream trust roots could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot read upstream CA certificates from {path}")]
pub struct RootsError {
    path: String,
    #[source]
    source: rustls::pki_types::pem::Error,
}

/// Which application protocols a TLS dial offers (ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// `h2` and `http/1.1`: the upstream picks.
    H2OrHttp1,
    /// `http/1.1` only: for a request that switches protocols (WebSocket), which HTTP/2 would
    /// carry differently (RFC 8441).
    Http1,
}

/// Resolves, checks and dials upstreams.
pub struct Upstream {
    /// `--resolve NAME=IP`: names answered without asking the system.
    fixed: HashMap<Host, IpAddr>,
    grants: DialGrants,
    /// Offers `h2` and `http/1.1`.
    tls: TlsConnector,
    /// Offers `http/1.1` only.
    tls_http1: TlsConnector,
    connect_timeout: Duration,
    /// The policy whose deny rules on IP literals hold at dial time.
    address_rules: Option<PolicyFn>,
}

impl Upstream {
    pub fn new(
        fixed: HashMap<Host, IpAddr>,
        grants: DialGrants,
        tls: Arc<ClientConfig>,
        connect_timeout: Duration,
    ) -> Upstream {
        let mut http1 = (*tls).clone();
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        Upstream {
            fixed,
            grants,
            tls: TlsConnector::from(tls),
            tls_http1: TlsConnector::from(Arc::new(http1)),
            connect_timeout,
            address_rules: None,
        }
    }

    /// Consults `policy`'s deny rules for every address before it is dialed (see the module doc).
    pub fn with_address_rules(mut self, policy: PolicyFn) -> Upstream {
        self.address_rules = Some(policy);
        self
    }

    /// The deny rule that names `ip` (or the IPv4 address an IPv4-mapped `ip` reaches) for
    /// `port`, as its origin prints; the literal `host` itself is skipped (decided already).
    fn denying_rule(&self, host: &Host, ip: IpAddr, port: u16) -> Option<String> {
        let policy = (self.address_rules.as_ref()?)();
        let forms = std::iter::once(ip).chain(same_host_ipv4(ip).map(|(_, v4)| IpAddr::V4(v4)));
        forms
            .filter(|form| host.ip() != Some(*form))
            .find_map(|form| policy.deny_naming(form, port).map(ToString::to_string))
    }

    /// A client configuration trusting the webpki roots plus every certificate in `extra` (PEM
    /// files), offering only HTTP/1.1.
    pub fn client_config(extra: &[std::path::PathBuf]) -> Result<Arc<ClientConfig>, RootsError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for path in extra {
            let error = |source| RootsError {
                path: path.display().to_string(),
                source,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(error)? {
                // A certificate rustls cannot use as a root is skipped, as the webpki roots do.
                let _ = roots.add(cert.map_err(error)?);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Why the guard would refuse to dial the literal `ip` when no rule naming it grants the
    /// dial ([`super::decision::Ruling::grants_dial`]); `None` when it would dial it.
    pub fn refuses_literal(&self, ip: IpAddr) -> Option<RefusedAddress> {
        check_dial_target(ip, &self.grants).err()
    }

    /// The address to dial for `host:port`: the first resolved address the SSRF guard passes.
    /// `named_by_rule`: `host` is an IP literal the allowing rule names (see
    /// [`super::decision::Ruling::grants_dial`]), which the guard then lets through.
    pub async fn resolve_checked(
        &self,
        host: &Host,
        port: u16,
        named_by_rule: bool,
    ) -> Result<SocketAddr, DialError> {
        if let (Some(ip), true) = (host.ip(), named_by_rule) {
            if let Some(rule) = self.denying_rule(host, ip, port) {
                return Err(DialError::Refused {
                    host: host.clone(),
                    refused: RefusedAddress::denied_by_rule(ip, rule),
                });
            }
            return Ok(SocketAddr::new(ip, port));
        }
        let candidates: Vec<IpAddr> = if let Some(ip) = host.ip() {
            vec![ip]
        } else if let Some(ip) = self.fixed.get(host) {
            vec![*ip]
        } else {
            // Bounded like the connect: the system resolver runs on the blocking pool, and a
            // name whose servers never answer must not hold a thread there for long.
            tokio::time::timeout(
                self.connect_timeout,
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut)))
            .map_err(|source| DialError::Resolve {
                host: host.clone(),
                source,
            })?
            .map(|addr| addr.ip())
            .collect()
        };
        let mut first_refusal = None;
        for ip in candidates {
            // A deny rule on the address wins over any grant, as deny wins everywhere.
            if let Some(rule) = self.denying_rule(host, ip, port) {
                first_refusal.get_or_insert(RefusedAddress::denied_by_rule(ip, rule));
                continue;
            }
            match check_dial_target(ip, &self.grants) {
                Ok(()) => return Ok(SocketAddr::new(ip, port)),
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                }
            }
        }
        Err(match first_refusal {
            Some(refused) => DialError::Refused {
                host: host.clone(),
                refused,
            },
            None => DialError::NoAddress { host: host.clone() },
        })
    }

    /// A TCP connection to the checked address of `host:port`.
    pub async fn dial_tcp(
        &self,
        host: &Host,
        port: u16,
        named_by_rule: bool,
    ) -> Result<TcpStream, DialError> {
        let addr = self.resolve_checked(host, port, named_by_rule).await?;
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| DialError::Timeout {
                host: host.clone(),
                addr,
            })?
            .map_err(|source| DialError::Connect {
                host: host.clone(),
                addr,
                source,
            })?;
        // Nagle would hold back small writes (a request head) for an ACK.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A TLS connection to `host:port`, its certificate verified for `host`.
    pub async fn dial_tls(
        &self,
        host: &Host,
        port: u16,
        named_by_rule: bool,
        offer: Offer,
    ) -> Result<TlsStream<TcpStream>, DialError> {
        let tcp = self.dial_tcp(host, port, named_by_rule).await?;
        let addr = tcp
            .peer_addr()
            .unwrap_or(SocketAddr::new([0, 0, 0, 0].into(), port));
        let tls_error = |source| DialError::Tls {
            host: host.clone(),
            addr,
            source,
        };
        let name = ServerName::try_from(host.as_str().to_owned())
            .map_err(|error| tls_error(io::Error::new(io::ErrorKind::InvalidInput, error)))?;
        let connector = match offer {
            Offer::H2OrHttp1 => &self.tls,
            Offer::Http1 => &self.tls_http1,
        };
        tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| DialError::Timeout {
                host: host.clone(),
                addr,
            })?
            .map_err(tls_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(fixed: &[(&str, [u8; 4])], grants: DialGrants) -> Upstream {
        let fixed = fixed
            .iter()
            .map(|(name, ip)| (Host::parse(name).unwrap(), IpAddr::from(*ip)))
            .collect();
        let tls = Upstream::client_config(&[]).unwrap();
        Upstream::new(fixed, grants, tls, Duration::from_secs(1))
    }

    #[tokio::test]
    async fn a_metadata_address_is_refused_before_dialing() {
        let upstream = upstream(&[("meta.test", [169, 254, 169, 254])], DialGrants::none());
        let host = Host::parse("meta.test").unwrap();
        let error = upstream.dial_tcp(&host, 80, false).await.unwrap_err();
        assert!(matches!(error, DialError::Refused { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_granted_loopback_address_passes_the_guard() {
        let grant = super::super::ssrf::IpCidr::host([127, 0, 0, 1].into());
        let upstream = upstream(&[("local.test", [127, 0, 0, 1])], DialGrants::new([grant]));
        let host = Host::parse("local.test").unwrap();
        let addr = upstream.resolve_checked(&host, 8080, false).await.unwrap();
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
    }

    #[tokio::test]
    async fn a_name_resolving_to_an_address_a_deny_rule_names_is_refused_whatever_the_grants() {
        use crate::rules::{Action, Layer, LayerRules, Policy, Rule};
        let grant = super::super::ssrf::IpCidr::host([127, 0, 0, 1].into());
        let mut layer = LayerRules::new(Layer::Workspace, "rules.toml");
        layer.push(
            Action::Deny,
            Rule::parse("domain=127.0.0.1").unwrap(),
            "domain=127.0.0.1",
        );
        let policy = Arc::new(Policy::new(vec![layer]));
        let upstream = upstream(
            &[
                ("alias.test", [127, 0, 0, 1]),
                ("other.test", [127, 0, 0, 2]),
            ],
            DialGrants::new([grant, "127.0.0.2".parse().unwrap()]),
        )
        .with_address_rules(Arc::new(move || Arc::clone(&policy)));
        let host = Host::parse("alias.test").unwrap();
        let error = upstream
            .resolve_checked(&host, 8080, false)
            .await
            .unwrap_err();
        let DialError::Refused { refused, .. } = &error else {
            panic!("{error}");
        };
        assert_eq!(
            refused.reason,
            super::super::ssrf::RefusalReason::DeniedByRule
        );
        assert_eq!(
            error.to_string(),
            "refused to dial alias.test: refusing to dial 127.0.0.1: an address a deny rule names \
             (workspace rules.toml denylist[0]: domain=127.0.0.1)"
        );
        // Another address is not touched by it.
        let other = Host::parse("other.test").unwrap();
        assert!(upstream.resolve_checked(&other, 8080, false).await.is_ok());
    }

    #[tokio::test]
    async fn an_ungranted_loopback_literal_is_refused() {
        let upstream = upstream(&[], DialGrants::none());
        let host = Host::parse("127.0.0.1").unwrap();
        let error = upstream
            .resolve_checked(&host, 80, false)
            .await
            .unwrap_err();
        assert!(matches!(error, DialError::Refused { .. }), "{error}");
    }
}
