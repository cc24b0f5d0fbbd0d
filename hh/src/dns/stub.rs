//! [`serve`]: the stub's UDP loop — receive a datagram, take a token from the rate cap, [`answer`]
//! it, send the response back to whoever sent it. Only UDP: the kernel lets a session send DNS
//! over UDP only, and no response of the stub is ever larger than 512 bytes, so it never sets TC
//! and no client falls back to TCP.
//!
//! The loop owns no policy: the socket is bound by the caller (inside the session's network
//! namespace), the table is shared with the proxy, and the loop runs until its task is dropped.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::net::UdpSocket;

use super::{Limits, answer::answer, rate::TokenBucket, synthetic::SyntheticAddresses};

/// The largest UDP payload: a longer query cannot arrive, so none is cut short.
const MAX_DATAGRAM: usize = 65_535;

/// After a failed receive, wait this long before the next one, so an error that repeats cannot
/// spin the loop.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What one stub did, for the audit log and tests. Every received datagram lands in exactly one
/// of `answered`, `rate_limited` and `unanswerable`.
#[derive(Debug, Default)]
pub struct StubCounters {
    answered: AtomicU64,
    rate_limited: AtomicU64,
    unanswerable: AtomicU64,
    io_errors: AtomicU64,
}

impl StubCounters {
    /// Datagrams a response was sent for (or attempted: see `io_errors`).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Datagrams dropped because the query-rate cap was reached.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Datagrams dropped because they were no query (too short, or a response).
    pub fn unanswerable(&self) -> u64 {
        self.unanswerable.load(Ordering::Relaxed)
    }

    /// Failed receives and sends.
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves DNS on `socket` until the task is dropped, allocating from `addresses`.
pub async fn serve(socket: UdpSocket, addresses: Arc<SyntheticAddresses>, limits: Limits) {
    serve_counting(socket, addresses, limits, Arc::new(StubCounters::default())).await;
}

/// [`serve`], counting what it does in `counters`.
pub async fn serve_counting(
    socket: UdpSocket,
    addresses: Arc<SyntheticAddresses>,
    limits: Limits,
    counters: Arc<StubCounters>,
) {
    let mut bucket = TokenBucket::new(limits.queries_per_second, limits.burst, Instant::now());
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // E.g. ECONNREFUSED: an ICMP error for an earlier response reported on this socket.
                StubCounters::count(&counters.io_errors);
                tracing::debug!(%error, "dns stub: receive failed");
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                continue;
            }
        };
        // The cap counts every datagram, garbage included: parsing is work too.
        if !bucket.try_take(Instant::now()) {
            StubCounters::count(&counters.rate_limited);
            continue;
        }
        let Some(query) = buffer.get(..length) else {
            continue;
        };
        match answer(query, &addresses, &limits) {
            Some(response) => {
                StubCounters::count(&counters.answered);
                send(&socket, &response, peer, &counters).await;
            }
            None => StubCounters::count(&counters.unanswerable),
        }
    }
}

async fn send(socket: &UdpSocket, response: &[u8], peer: SocketAddr, counters: &StubCounters) {
    let sent: io::Result<usize> = socket.send_to(response, peer).await;
    if let Err(error) = sent {
        StubCounters::count(&counters.io_errors);
        tracing::debug!(%error, %peer, "dns stub: send failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::{net::Ipv4Addr, process::Command};

    use hickory_proto::{
        op::{Message, Query, ResponseCode},
        rr::{Name, RData, RecordType, rdata::A},
    };
    use tokio::task::JoinHandle;

    use crate::rules::host::Host;

    const WAIT: Duration = Duration::from_secs(5);

    struct Running {
        port: u16,
        addresses: Arc<SyntheticAddresses>,
        counters: Arc<StubCounters>,
        task: JoinHandle<()>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn start(limits: Limits) -> Running {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let addresses = Arc::new(SyntheticAddresses::default());
        let counters = Arc::new(StubCounters::default());
        let task = tokio::spawn(serve_counting(
            socket,
            Arc::clone(&addresses),
            limits,
            Arc::clone(&counters),
        ));
        Running {
            port,
            addresses,
            counters,
            task,
        }
    }

    async fn client(port: u16) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(("127.0.0.1", port)).await.unwrap();
        socket
    }

    fn query(id: u16, name: &str, query_type: RecordType) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), query_type));
        message.to_vec().unwrap()
    }

    async fn exchange(socket: &UdpSocket, bytes: &[u8]) -> Message {
        socket.send(bytes).await.unwrap();
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let length = tokio::time::timeout(WAIT, socket.recv(&mut buffer))
            .await
            .expect("the stub answers in time")
            .unwrap();
        Message::from_vec(&buffer[..length]).unwrap()
    }

    fn only_a(message: &Message) -> Ipv4Addr {
        match message.answers.as_slice() {
            [record] => match record.data {
                RData::A(A(ip)) => ip,
                ref other => panic!("not an A record: {other:?}"),
            },
            other => panic!("expected one answer, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_a_query_over_udp_gets_a_synthetic_address_the_proxy_can_name() {
        let stub = start(Limits::default()).await;
        let socket = client(stub.port).await;
        let response = exchange(&socket, &query(41, "api.example.test.", RecordType::A)).await;
        assert_eq!(response.metadata.id, 41);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        let ip = only_a(&response);
        assert!(stub.addresses.contains(ip));
        assert_eq!(
            stub.addresses.name_of(ip),
            Some(Host::parse("api.example.test").unwrap())
        );
        assert_eq!(stub.counters.answered(), 1);
    }

    #[tokio::test]
    async fn aaaa_https_and_svcb_over_udp_get_nodata() {
        let stub = start(Limits::default()).await;
        let socket = client(stub.port).await;
        for query_type in [RecordType::AAAA, RecordType::HTTPS, RecordType::SVCB] {
            let response = exchange(&socket, &query(7, "example.test.", query_type)).await;
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NoError,
                "{query_type}"
            );
            assert!(response.answers.is_empty(), "{query_type}");
        }
        assert!(stub.addresses.is_empty());
    }

    #[tokio::test]
    async fn garbage_is_dropped_and_the_stub_keeps_serving() {
        let stub = start(Limits::default()).await;
        let socket = client(stub.port).await;
        let mut response_bit = query(1, "x.test.", RecordType::A);
        response_bit[2] |= 0x80;
        for garbage in [vec![], vec![0xff; 5], response_bit] {
            socket.send(&garbage).await.unwrap();
        }
        let response = exchange(&socket, &query(2, "after.test.", RecordType::A)).await;
        assert_eq!(response.metadata.id, 2);
        assert!(stub.addresses.contains(only_a(&response)));
        assert_eq!(stub.counters.unanswerable(), 3);
        assert_eq!(stub.counters.answered(), 1);
    }

    #[tokio::test]
    async fn a_blast_of_queries_is_capped_at_burst_plus_rate_times_elapsed() {
        let limits = Limits {
            queries_per_second: 50,
            burst: 20,
            ..Limits::default()
        };
        let stub = start(limits).await;
        let socket = client(stub.port).await;
        let sent = 300u16;
        let start = Instant::now();
        for id in 0..sent {
            socket
                .send(&query(id, "blast.test.", RecordType::A))
                .await
                .unwrap();
        }
        let mut answered = 0u64;
        let mut last_answer = start;
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        while let Ok(received) =
            tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buffer)).await
        {
            received.unwrap();
            answered += 1;
            last_answer = Instant::now();
        }
        // Every answer was sent before it was received, and the bucket held at most `burst`
        // tokens when the blast started.
        let elapsed = last_answer.duration_since(start).as_secs_f64();
        let bound = f64::from(limits.burst) + f64::from(limits.queries_per_second) * elapsed;
        assert!(
            answered as f64 <= bound + 1.0,
            "{answered} answers in {elapsed:.3} s, bound {bound:.1}"
        );
        assert!(answered >= 1);
        assert_eq!(answered, stub.counters.answered());
        assert!(stub.counters.rate_limited() > 0);
        // The kernel may drop datagrams when the receive buffer is full; none is counted twice.
        let counted = stub.counters.answered() + stub.counters.rate_limited();
        assert!(counted <= u64::from(sent), "{counted} counted, {sent} sent");
    }

    /// `dig` is the client people and CI will use; its output is what a shell sees.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dig_gets_a_synthetic_address_and_no_aaaa() {
        if let Err(error) = Command::new("dig").arg("-v").output() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but dig cannot run ({error}); CI installs dnsutils"
            );
            eprintln!("skipped: dig cannot run ({error}); install dnsutils to run this test");
            return;
        }
        let stub = start(Limits::default()).await;
        let dig = |query_type: &'static str| {
            let port = stub.port.to_string();
            tokio::task::spawn_blocking(move || {
                let output = Command::new("dig")
                    .args(["@127.0.0.1", "-p", &port, "example.test", query_type])
                    .args(["+short", "+time=2", "+tries=1"])
                    .output()
                    .unwrap();
                assert!(output.status.success(), "dig {query_type}: {output:?}");
                String::from_utf8(output.stdout).unwrap()
            })
        };
        let a = dig("A").await.unwrap();
        let ip: Ipv4Addr = a
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("dig A said {a:?}"));
        assert!(stub.addresses.contains(ip), "{ip}");
        assert_eq!(
            stub.addresses.name_of(ip),
            Some(Host::parse("example.test").unwrap())
        );
        assert_eq!(dig("AAAA").await.unwrap().trim(), "");
        assert_eq!(dig("HTTPS").await.unwrap().trim(), "");
    }
}
