//! Leaf certificates for intercepted hosts: issued by the installation CA, cached, and made once
//! per name however many connections ask at the same time.
//!
//! Owns issuing (one fresh ECDSA P-256 key per host, exactly one SAN — the DNS name, or an IP SAN
//! for an IP literal — short validity, backdated a day for clients with slow clocks), the LRU
//! cache (1024 hosts by default), and single flight: the first `get` for a host starts one
//! generation on tokio's blocking pool and every concurrent `get` for it waits on that one. The
//! generation runs to the end and fills the cache even if the caller that started it goes away,
//! so a dropped connection never costs a second key. The key is a validated [`Host`]: a raw SNI
//! never reaches the cache or a certificate. Reading the ClientHello (`LazyConfigAcceptor`) and
//! deciding whether to intercept at all are the proxy's job.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::NoServerSessionStorage;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio::sync::watch;

use crate::rules::Host;
use crate::tls::ca::CertificateAuthority;

/// How many hosts' leaves the cache keeps.
pub const DEFAULT_CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// How long a leaf is valid: short, since a new one costs a millisecond.
const LEAF_VALIDITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// A cached leaf this close to its end is issued again.
const LEAF_RENEW_BEFORE: Duration = Duration::from_secs(24 * 60 * 60);
/// Start validity this far back, for clients whose clocks run behind.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);
/// X.509's upper bound on a common name (RFC 5280 appendix A, `ub-common-name`).
const MAX_COMMON_NAME: usize = 64;

/// Why no leaf could be had for a host. Cloned to every caller waiting on the same generation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeafError {
    #[error("cannot issue a certificate for {host}")]
    Issue {
        host: Host,
        #[source]
        source: rcgen::Error,
    },
    #[error("rustls refuses the key issued for {host}")]
    Key {
        host: Host,
        #[source]
        source: rustls::Error,
    },
    #[error("certificate generation for {host} stopped before it finished")]
    Aborted { host: Host },
}

/// A cached leaf and when to stop handing it out.
struct Entry {
    key: Arc<CertifiedKey>,
    renew_at: SystemTime,
}

/// `None` until the generation ends.
type Outcome = Option<Result<Arc<CertifiedKey>, LeafError>>;

/// The cache and the generations under way, under one lock: a caller either finds the leaf, or
/// finds the generation, or starts it, with no gap in between.
struct State {
    cache: LruCache<Host, Entry>,
    in_flight: HashMap<Host, watch::Receiver<Outcome>>,
}

struct Inner {
    ca: Arc<CertificateAuthority>,
    state: Mutex<State>,
    generated: AtomicU64,
    validity: Duration,
    renew_before: Duration,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a panic elsewhere poisons nothing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Issues and caches leaf certificates. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct LeafCache {
    inner: Arc<Inner>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for LeafCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCache")
            .field("generated", &self.generated())
            .finish_non_exhaustive()
    }
}

impl LeafCache {
    /// A cache of at most `capacity` hosts ([`DEFAULT_CAPACITY`] is the proxy's).
    pub fn new(ca: Arc<CertificateAuthority>, capacity: NonZeroUsize) -> Self {
        Self::with_lifetimes(ca, capacity, LEAF_VALIDITY, LEAF_RENEW_BEFORE)
    }

    fn with_lifetimes(
        ca: Arc<CertificateAuthority>,
        capacity: NonZeroUsize,
        validity: Duration,
        renew_before: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                ca,
                state: Mutex::new(State {
                    cache: LruCache::new(capacity),
                    in_flight: HashMap::new(),
                }),
                generated: AtomicU64::new(0),
                validity,
                renew_before,
            }),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    /// The leaf for `host`: from the cache, from a generation already under way, or from a new one
    /// on the blocking pool. Needs a tokio runtime.
    pub async fn get(&self, host: &Host) -> Result<Arc<CertifiedKey>, LeafError> {
        let (mut outcome, flight) = {
            let mut state = self.inner.lock();
            if let Some(entry) = state.cache.get(host)
                && SystemTime::now() < entry.renew_at
            {
                return Ok(Arc::clone(&entry.key));
            }
            match state.in_flight.get(host) {
                Some(outcome) => (outcome.clone(), None),
                None => {
                    let (done, outcome) = watch::channel(None);
                    state.in_flight.insert(host.clone(), outcome.clone());
                    let flight = Flight {
                        inner: Arc::clone(&self.inner),
                        host: host.clone(),
                        done,
                        finished: false,
                    };
                    (outcome, Some(flight))
                }
            }
        };
        if let Some(flight) = flight {
            // Detached: it runs to the end whether or not this caller still waits. Dropped unrun
            // (the runtime shutting down), the flight still clears its entry.
            drop(tokio::task::spawn_blocking(move || flight.run()));
        }
        let aborted = || LeafError::Aborted { host: host.clone() };
        match outcome.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or_else(|| Err(aborted())),
            Err(_) => Err(aborted()),
        }
    }

    /// How many keys have been generated so far (cache misses that reached key generation).
    pub fn generated(&self) -> u64 {
        self.inner.generated.load(Ordering::Relaxed)
    }

    /// A server configuration presenting `key`, offering `alpn` protocols in order (empty: no ALPN),
    /// with rustls's safe defaults on the ring provider.
    pub fn server_config_for(
        &self,
        key: Arc<CertifiedKey>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        // No resumption: a configuration lives as long as its one connection, so a session stored
        // in it could never be resumed, and rustls's default store reserves room for 256 sessions
        // (tens of KB) in every configuration, i.e. in every tunnel. No tickets either: they would
        // name sessions nobody keeps.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }
}

/// One generation under way: runs on the blocking pool, fills the cache, wakes the waiters.
struct Flight {
    inner: Arc<Inner>,
    host: Host,
    done: watch::Sender<Outcome>,
    finished: bool,
}

impl Flight {
    fn run(mut self) {
        self.inner.generated.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let issued = issue(&self.inner.ca, &self.host, now, self.inner.validity);
        {
            let mut state = self.inner.lock();
            if let Ok(key) = &issued {
                let renew_at = (now + self.inner.validity)
                    .checked_sub(self.inner.renew_before)
                    .unwrap_or(now);
                let entry = Entry {
                    key: Arc::clone(key),
                    renew_at,
                };
                state.cache.put(self.host.clone(), entry);
            }
            state.in_flight.remove(&self.host);
        }
        self.finished = true;
        // Nobody waiting any more is fine: the cache has it.
        let _ = self.done.send(Some(issued));
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Never ran, or panicked: clear our own entry (not a newer flight's) so the next `get`
        // starts again; waiters see the sender go and report `Aborted`.
        let mut state = self.inner.lock();
        let ours = state
            .in_flight
            .get(&self.host)
            .is_some_and(|outcome| outcome.same_channel(&self.done.subscribe()));
        if ours {
            state.in_flight.remove(&self.host);
        }
    }
}

/// Generates a key and a certificate for `host` signed by `ca`.
fn issue(
    ca: &CertificateAuthority,
    host: &Host,
    now: SystemTime,
    validity: Duration,
) -> Result<Arc<CertifiedKey>, LeafError> {
    let rcgen_error = |source| LeafError::Issue {
        host: host.clone(),
        source,
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;

    let mut params = CertificateParams::default();
    let san = match host.ip() {
        Some(ip) => SanType::IpAddress(ip),
        None => SanType::DnsName(host.as_str().try_into().map_err(rcgen_error)?),
    };
    params.subject_alt_names = vec![san];
    // Clients match the SAN; the CN is for people reading the certificate. A name too long for a
    // CN goes without one (rcgen then marks the SAN critical, as RFC 5280 §4.2.1.6 asks).
    let mut name = DistinguishedName::new();
    if host.as_str().len() <= MAX_COMMON_NAME {
        name.push(DnType::CommonName, host.as_str());
    }
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    params.not_after = (now + validity).into();
    let cert = params.signed_by(&key, ca.issuer()).map_err(rcgen_error)?;

    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer =
        rustls::crypto::ring::sign::any_ecdsa_type(&der).map_err(|source| LeafError::Key {
            host: host.clone(),
            source,
        })?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Instant;

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};
    use x509_parser::extensions::GeneralName;

    use super::*;

    fn ca() -> (tempfile::TempDir, Arc<CertificateAuthority>) {
        let temp = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(temp.path()).unwrap();
        (temp, Arc::new(ca))
    }

    fn host(text: &str) -> Host {
        Host::parse(text).unwrap()
    }

    /// Serves one TLS connection on loopback with `config`, echoing one line back.
    async fn serve_once(config: Arc<ServerConfig>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                return;
            };
            let mut buf = [0_u8; 5];
            if tls.read_exact(&mut buf).await.is_ok() {
                let _ = tls.write_all(&buf).await;
                let _ = tls.shutdown().await;
            }
        });
        addr
    }

    /// A client that trusts only `ca`, connecting as `name`; `Ok` after an echoed round trip.
    async fn connect(
        ca: &CertificateAuthority,
        addr: std::net::SocketAddr,
        name: &str,
    ) -> std::io::Result<()> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = connector.connect(server_name, tcp).await?;
        tls.write_all(b"hello").await?;
        let mut echoed = [0_u8; 5];
        tls.read_exact(&mut echoed).await?;
        assert_eq!(&echoed, b"hello");
        Ok(())
    }

    #[tokio::test]
    async fn a_client_trusting_only_the_ca_completes_a_handshake_and_verifies_the_name() {
        let (_dir, ca) = ca();
        let leaves = LeafCache::new(Arc::clone(&ca), DEFAULT_CAPACITY);
        let cases = [
            ("test.example", "test.example", true),
            ("test.example", "other.example", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
        ];
        for (leaf_for, client_asks, completes) in cases {
            let key = leaves.get(&host(leaf_for)).await.unwrap();
            let config = leaves.server_config_for(key, &[b"http/1.1"]).unwrap();
            let addr = serve_once(config).await;
            let result = connect(&ca, addr, client_asks).await;
            assert_eq!(
                result.is_ok(),
                completes,
                "leaf for {leaf_for}, client asks {client_asks}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_leaf_carries_exactly_one_san_and_a_short_backdated_validity() {
        let (_dir, ca) = ca();
        let leaves = LeafCache::new(Arc::clone(&ca), DEFAULT_CAPACITY);
        let long_name = format!("{}.example", "a".repeat(60));
        let cases = [
            ("test.example", GeneralName::DNSName("test.example"), true),
            (
                "xn--caf-dma.example",
                GeneralName::DNSName("xn--caf-dma.example"),
                true,
            ),
            ("10.0.0.1", GeneralName::IPAddress(&[10, 0, 0, 1]), true),
            (
                long_name.as_str(),
                GeneralName::DNSName(long_name.as_str()),
                false,
            ),
        ];
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        for (text, expected_san, has_common_name) in cases {
            let key = leaves.get(&host(text)).await.unwrap();
            assert_eq!(key.cert.len(), 1, "{text}: the chain is the leaf alone");
            let (_, cert) = x509_parser::parse_x509_certificate(&key.cert[0]).unwrap();
            let san = cert.subject_alternative_name().unwrap().unwrap();
            assert_eq!(san.value.general_names, vec![expected_san], "{text}");
            assert_eq!(san.critical, !has_common_name, "{text}");
            assert_eq!(
                cert.subject().iter_common_name().next().is_some(),
                has_common_name,
                "{text}"
            );
            assert!(!cert.is_ca(), "{text}");
            assert_eq!(cert.issuer(), ca_cert.subject(), "{text}");

            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let not_before = cert.validity().not_before.timestamp();
            let not_after = cert.validity().not_after.timestamp();
            assert!(not_before <= now - 23 * 3600, "{text}: backdated");
            assert!(not_after <= now + 8 * 24 * 3600, "{text}: short");
        }
    }

    #[tokio::test]
    async fn the_1025th_name_evicts_the_first_from_a_cache_of_1024() {
        let (_dir, ca) = ca();
        let leaves = LeafCache::new(ca, DEFAULT_CAPACITY);
        let names: Vec<Host> = (0..=1024)
            .map(|i| host(&format!("host{i}.example")))
            .collect();
        let started = Instant::now();
        for name in &names[..1024] {
            leaves.get(name).await.unwrap();
        }
        let per_leaf = started.elapsed() / 1024;
        assert_eq!(leaves.generated(), 1024);

        let started = Instant::now();
        leaves.get(&names[0]).await.unwrap(); // a hit, and now the most recent
        let per_hit = started.elapsed();
        assert_eq!(leaves.generated(), 1024, "still cached");
        assert!(
            per_hit < per_leaf,
            "a hit ({per_hit:?}) is cheaper than a leaf ({per_leaf:?})"
        );

        leaves.get(&names[1024]).await.unwrap(); // evicts names[1], the least recent
        assert_eq!(leaves.generated(), 1025);
        leaves.get(&names[0]).await.unwrap();
        assert_eq!(
            leaves.generated(),
            1025,
            "the refreshed first name survived"
        );
        leaves.get(&names[1]).await.unwrap();
        assert_eq!(
            leaves.generated(),
            1026,
            "the least recent name was evicted and made again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_hundred_concurrent_first_requests_for_one_name_make_one_key() {
        let (_dir, ca) = ca();
        let leaves = LeafCache::new(ca, DEFAULT_CAPACITY);
        let name = host("same.example");
        let barrier = Arc::new(tokio::sync::Barrier::new(100));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (leaves, name, barrier) = (leaves.clone(), name.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    leaves.get(&name).await.unwrap()
                })
            })
            .collect();
        let mut keys = Vec::new();
        for task in tasks {
            keys.push(task.await.unwrap());
        }
        assert_eq!(leaves.generated(), 1);
        assert!(keys.iter().all(|key| Arc::ptr_eq(key, &keys[0])));
    }

    #[tokio::test]
    async fn a_generation_whose_caller_went_away_still_fills_the_cache() {
        let (_dir, ca) = ca();
        let leaves = LeafCache::new(ca, DEFAULT_CAPACITY);
        let name = host("dropped.example");
        let started = leaves.get(&name);
        // Poll once so the generation starts, then drop the caller.
        let _ = tokio::time::timeout(Duration::from_millis(0), started).await;
        leaves.get(&name).await.unwrap();
        leaves.get(&name).await.unwrap();
        assert_eq!(leaves.generated(), 1);
    }

    #[tokio::test]
    async fn a_leaf_near_its_end_is_issued_again() {
        let (_dir, ca) = ca();
        // Renew-before longer than validity: every cached leaf is already due.
        let leaves = LeafCache::with_lifetimes(
            ca,
            DEFAULT_CAPACITY,
            Duration::from_secs(3600),
            Duration::from_secs(7200),
        );
        let name = Host::from_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let first = leaves.get(&name).await.unwrap();
        let second = leaves.get(&name).await.unwrap();
        assert_eq!(leaves.generated(), 2);
        assert!(!Arc::ptr_eq(&first, &second));
    }
}
