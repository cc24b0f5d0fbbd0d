//! Real kernel fixtures for the enforcement tests: a fresh network namespace (loopback only, so
//! nothing could leave even if a redirect failed), a throwaway cgroup v2 directory, servers bound
//! inside the namespace, and a client process run inside both.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use hh::{enforce::original_dst::OriginalDst, sys};
use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A unique name for this run (pid and start time) and test.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        super::leftovers::run_tag(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `command` to completion; panics with its stderr when it fails.
pub fn run(command: &mut Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A named network namespace with only `lo`, up. Deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> Self {
        let name = unique("hh-t");
        super::leftovers::record(super::leftovers::Made::NetNs(&name));
        run(Command::new("ip").args(["netns", "add", &name]));
        run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A cgroup v2 directory below the detected root. Removed on drop (once its processes exited).
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new() -> Self {
        let (root, _) = sys::cgroup::detect_root().expect("cgroup2 is mounted");
        let path = root.join(unique("hh-test"));
        super::leftovers::record(super::leftovers::Made::Cgroup(&path));
        std::fs::create_dir(&path).expect("create test cgroup");
        Self { path }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Serves, inside `netns`, what a session's listeners would: the proxy on 127.0.0.1:`proxy`
/// answers each connection with one line, `{tag} ORIG a.b.c.d:p` (original destination
/// recovered) or `{tag} DIRECT`; a local dev server on 127.0.0.1:8080 answers `LOCAL`; the DNS
/// stub on 127.0.0.1:`dns` answers each datagram with `{tag} DNS {payload}`.
pub fn serve_session(
    netns: &Path,
    tag: &'static str,
    proxy: u16,
    dns: u16,
    original: Arc<OriginalDst>,
) {
    let (proxy_listener, local, stub) = sys::netns::bind_in(netns, move || {
        Ok((
            TcpListener::bind(("127.0.0.1", proxy))?,
            TcpListener::bind(("127.0.0.1", 8080))?,
            UdpSocket::bind(("127.0.0.1", dns))?,
        ))
    })
    .expect("bind listeners inside the namespace");
    std::thread::spawn(move || {
        for stream in proxy_listener.incoming().flatten() {
            let mut stream = stream;
            let peer = stream.peer_addr().expect("peer address");
            let line = match original.take(&stream, peer) {
                Ok(Some(redirected)) => format!("{tag} ORIG {}\n", redirected.destination),
                Ok(None) => format!("{tag} DIRECT\n"),
                Err(error) => format!("{tag} ERROR {error}\n"),
            };
            let _ = stream.write_all(line.as_bytes());
        }
    });
    std::thread::spawn(move || {
        for mut stream in local.incoming().flatten() {
            let _ = stream.write_all(b"LOCAL\n");
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = stub.recv_from(&mut buf) {
            let reply = format!("{tag} DNS {}", String::from_utf8_lossy(&buf[..len]));
            let _ = stub.send_to(reply.as_bytes(), from);
        }
    });
}

/// Runs the socket client inside `netns`, and inside `cgroup` when given (the process moves
/// itself there before `exec`, so every socket it creates belongs to the session). Returns one
/// JSON result per operation.
pub fn client(netns: &NetNs, cgroup: Option<&Path>, ops: &Value) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/netclient.py");
    let mut command = Command::new("ip");
    command.args([
        "netns",
        "exec",
        &netns.name,
        "python3",
        script,
        &ops.to_string(),
    ]);
    let procs = cgroup.map(|cgroup| {
        File::options()
            .write(true)
            .open(cgroup.join("cgroup.procs"))
            .expect("open cgroup.procs")
    });
    if let Some(procs) = &procs {
        let fd = procs.as_raw_fd();
        // SAFETY: only write(2) runs between fork and exec; `procs` outlives the spawn.
        unsafe {
            command.pre_exec(move || {
                // "0" moves the writing process itself.
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let output = command.output().expect("client runs");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "client printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `len` frame bytes for round `seed`: a byte sequence that differs from round to round and
/// within a frame, so any reordering, loss or duplication shows (netclient.py makes the same).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|i| ((seed + i) % 251) as u8).collect()
}

/// The reply length that asks [`serve_frames`] to stop reading for [`STALL_FOR`] and then
/// close: a proxy stalled (say, on an approval prompt) while its client keeps sending.
pub const STALL: u32 = u32::MAX;
pub const STALL_FOR: Duration = Duration::from_secs(3);

/// The stand-in proxy of the splice test and bench: on each accepted connection, after
/// `first_read_delay` (so the client's first bytes wait for it), it reads request frames
/// (request and reply length as big-endian u32s, then the request bytes, checked against
/// [`pattern`]) and answers each with the reply bytes of round + `reply_seed` (or [`STALL`]s).
/// Each connection's outcome, rounds served or what went wrong, arrives on the returned
/// channel.
pub fn serve_frames(
    listener: TcpListener,
    reply_seed: u64,
    first_read_delay: Duration,
) -> mpsc::Receiver<Result<u64, String>> {
    let (sender, outcomes) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sender = sender.clone();
            std::thread::spawn(move || {
                std::thread::sleep(first_read_delay);
                let _ = sender.send(serve_connection(stream, reply_seed));
            });
        }
    });
    outcomes
}

fn serve_connection(mut stream: TcpStream, reply_seed: u64) -> Result<u64, String> {
    for round in 0.. {
        let mut header = [0u8; 8];
        match stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(round),
            Err(error) => return Err(format!("round {round}: header: {error}")),
        }
        let [request, reply] =
            [&header[..4], &header[4..]].map(|half| u32::from_be_bytes(half.try_into().unwrap()));
        if reply == STALL {
            std::thread::sleep(STALL_FOR);
            return Ok(round);
        }
        let (request, reply) = (request as usize, reply as usize);
        let mut bytes = vec![0u8; request];
        stream
            .read_exact(&mut bytes)
            .map_err(|error| format!("round {round}: request: {error}"))?;
        if bytes != pattern(request, round) {
            return Err(format!("round {round}: request bytes out of order"));
        }
        stream
            .write_all(&pattern(reply, round + reply_seed))
            .map_err(|error| format!("round {round}: reply: {error}"))?;
    }
    unreachable!("the loop ends by returning")
}

/// One round with [`serve_frames`] from a client: sends the request, reads and checks the
/// reply. A failure says how far the round got (bytes sent and received), so a stuck or lost
/// message shows where it stopped; give the stream read and write timeouts to bound the wait.
pub fn request_frame(
    stream: &mut TcpStream,
    round: u64,
    request: usize,
    reply: usize,
    reply_seed: u64,
) -> Result<(), String> {
    let mut frame = Vec::with_capacity(8 + request);
    frame.extend_from_slice(&(request as u32).to_be_bytes());
    frame.extend_from_slice(&(reply as u32).to_be_bytes());
    frame.extend_from_slice(&pattern(request, round));
    let mut bytes = vec![0u8; reply];
    let (mut sent, mut received) = (0, 0);
    let progress = |sent: usize, received: usize, what: String| {
        format!(
            "round {round}: sent {sent} of {} bytes, received {received} of {reply}: {what}",
            frame.len()
        )
    };
    while sent < frame.len() {
        match stream.write(&frame[sent..]) {
            Ok(0) => return Err(progress(sent, received, "the socket took no bytes".into())),
            Ok(written) => sent += written,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(progress(sent, received, format!("write: {error}"))),
        }
    }
    while received < reply {
        match stream.read(&mut bytes[received..]) {
            Ok(0) => return Err(progress(sent, received, "end of stream".into())),
            Ok(read) => received += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(progress(sent, received, format!("read: {error}"))),
        }
    }
    if bytes != pattern(reply, round + reply_seed) {
        return Err(progress(sent, received, "reply bytes out of order".into()));
    }
    Ok(())
}

/// Closes with RST (SO_LINGER 0): no TIME_WAIT, so thousands of rounds do not exhaust ports,
/// and the peer sees a reset.
pub fn close_with_rst(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid `linger` of the size passed, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
}
