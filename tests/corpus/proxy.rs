//! `hh proxy` for the corpus tests, and the three ways a client sends it bytes: absolute-form
//! plain HTTP, and a CONNECT tunnel carrying plain HTTP or TLS.
//!
//! The proxy listens on 127.0.0.1:0, every name it is given is pinned to 127.0.0.1 by
//! `--resolve`, and `--dial-grant 127.0.0.1/32` lets it dial the loopback upstream: no traffic
//! leaves the host.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpStream},
    path::PathBuf,
    process::Child,
    sync::Arc,
    time::Duration,
};

use rustls::pki_types::ServerName;

use crate::support;

/// How long a client waits for the proxy: far past `--idle-timeout`, so only a proxy that never
/// closes a connection reaches it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `hh proxy`, killed on drop.
pub struct RunningProxy {
    child: Child,
    pub addr: SocketAddr,
    /// hh's CA, for TLS clients in a tunnel.
    tls: Arc<rustls::ClientConfig>,
    _dir: tempfile::TempDir,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningProxy {
    /// Starts `hh proxy` with `rules` (a `harness-rules.toml` text), `names` pinned to 127.0.0.1
    /// and `upstream_ca` trusted for upstream TLS. A short idle timeout ends tunnels whose
    /// client waits for an answer to an incomplete request.
    pub fn start(rules: &str, names: &[String], upstream_ca: &str) -> RunningProxy {
        let dir = tempfile::tempdir().unwrap();
        let rules_file = dir.path().join("rules.toml");
        std::fs::write(&rules_file, rules).unwrap();
        let ca = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca, upstream_ca).unwrap();
        let state: PathBuf = dir.path().join("state");
        let mut command = support::hh();
        // Hostile payloads are the point here: hh's warnings about refusing them are expected.
        command.env("HH_LOG", "error");
        command.args(["proxy", "--listen", "127.0.0.1:0", "--ask-timeout", "1"]);
        command.args(["--idle-timeout", "2", "--dial-grant", "127.0.0.1/32"]);
        command.arg("--rules").arg(&rules_file);
        command.arg("--state-dir").arg(&state);
        command.arg("--upstream-ca").arg(&ca);
        for name in names {
            // One argument: a name may start with `-` (`-x`, a WPT vector).
            command.arg(format!("--resolve={name}=127.0.0.1"));
        }
        let (child, addr) = support::spawn_announcing(&mut command, "listening on ");
        let tls = client_config(&std::fs::read(state.join("ca.pem")).unwrap());
        RunningProxy {
            child,
            addr: addr.parse().unwrap(),
            tls,
            _dir: dir,
        }
    }

    /// Sends `bytes` as they are (an absolute-form request), shuts the write side (nothing more
    /// will come, so the proxy never waits for a body) and reads until the proxy closes.
    pub fn absolute_form(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(Shutdown::Write);
        read_all(&mut stream)
    }

    /// Opens a CONNECT tunnel to `target` (`host:port`) and sends `bytes` in it as they are;
    /// reads until the proxy closes. The answer to the CONNECT itself when it is not a `200`.
    pub fn connect_plain(&self, target: &str, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        if let Err(refused) = open_tunnel(&mut stream, target) {
            return refused;
        }
        let _ = stream.write_all(bytes);
        read_all(&mut stream)
    }

    /// [`RunningProxy::connect_plain`] with TLS in the tunnel: SNI `sni`, hh's CA trusted,
    /// `http/1.1` offered.
    pub fn connect_tls(&self, target: &str, sni: &str, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        if let Err(refused) = open_tunnel(&mut stream, target) {
            return refused;
        }
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        let connection = rustls::ClientConnection::new(Arc::clone(&self.tls), name).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let _ = tls.write_all(bytes).and_then(|()| tls.flush());
        read_all(&mut tls)
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        // A TLS handshake is several small writes in a row: with Nagle's algorithm each waits
        // for the peer's delayed ACK (40 ms).
        stream.set_nodelay(true).unwrap();
        stream
    }
}

/// Sends `CONNECT target` and reads the answer's head; `Err` with the answer unless it is `200`.
fn open_tunnel(stream: &mut TcpStream, target: &str) -> Result<(), Vec<u8>> {
    let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(connect.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be taken from the tunnel.
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return Err(head),
        }
    }
    if head.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        head.extend(read_all(stream));
        Err(head)
    }
}

/// Everything until the peer closes; a reset or a TLS error ends it with what arrived before.
fn read_all(stream: &mut impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(read) => out.extend_from_slice(&chunk[..read]),
        }
    }
}

/// A TLS client configuration trusting hh's CA (`ca_pem`) and offering only `http/1.1`.
fn client_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    crate::support::upstream::client_trusting(ca_pem, &[b"http/1.1"])
}
