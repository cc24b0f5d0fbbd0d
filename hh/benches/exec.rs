//! `cargo xtask bench exec`: what running a command through the agent (`hh shell`, relayed over
//! the agent's socket) costs against `docker exec` into the same session container, in the same
//! run (root, Docker, the local test stem):
//!
//! - keystroke echo: on a terminal (a pty the bench holds), one key typed into `cat` and its echo
//!   read back, one key at a time; p50 and p99 of the round trip;
//! - throughput: `head -c 100MiB /dev/zero` read to the end through plain streams.
//!
//! `hh shell` runs as an ordinary user (the session's owner); `docker exec` as root, the way
//! only root or the `docker` group could. Rounds alternate the two; every read has a deadline.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::{
    io::{Read as _, Write as _},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::session_world::{World, build_test_stem};

const KEYS: usize = 300;
const STREAM_BYTES: u64 = 100 * 1024 * 1024;
const STREAM_ROUNDS: usize = 3;
/// The longest any one read may wait before the bench reports what it waited for.
const DEADLINE: Duration = Duration::from_secs(20);

fn main() {
    if !support::require_root("bench exec") || !build_test_stem() {
        return;
    }
    let world = World::new("e");
    let agent = world.agent();
    let id = world.start_session();
    let container = world
        .sessions()
        .into_iter()
        .find(|session| session["id"] == id.as_str())
        .and_then(|session| session["container_id"].as_str().map(str::to_owned))
        .expect("the session's container");

    let hh_shell = |command: &[&str]| {
        let mut args = vec!["shell", id.as_str(), "--"];
        args.extend_from_slice(command);
        world.hh_command(&args)
    };
    let docker_exec = |tty: bool, command: &[&str]| {
        let mut docker = Command::new("docker");
        docker.arg("exec");
        if tty {
            docker.arg("-it");
        }
        docker.arg(&container).args(command);
        docker
    };

    let mut hh_keys = Vec::new();
    let mut docker_keys = Vec::new();
    for _ in 0..2 {
        hh_keys.extend(keystrokes("hh shell", hh_shell(&["cat"]), KEYS / 2));
        docker_keys.extend(keystrokes(
            "docker exec",
            docker_exec(true, &["cat"]),
            KEYS / 2,
        ));
    }

    let count = STREAM_BYTES.to_string();
    let stream = ["head", "-c", count.as_str(), "/dev/zero"];
    let mut hh_rates = Vec::new();
    let mut docker_rates = Vec::new();
    for round in 0..STREAM_ROUNDS {
        let hh = throughput(hh_shell(&stream));
        let plain = throughput(docker_exec(false, &stream));
        eprintln!("stream round {round}: hh {hh:.0} MiB/s, docker exec {plain:.0} MiB/s");
        hh_rates.push(hh);
        docker_rates.push(plain);
    }
    let _ = world.hh(&["session", "stop", &id]);
    agent.terminate();

    let (hh50, hh99) = percentiles(&mut hh_keys);
    let (docker50, docker99) = percentiles(&mut docker_keys);
    let hh_rate = median(&mut hh_rates);
    let docker_rate = median(&mut docker_rates);
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "\n| case | keystroke echo p50 | p99 | 100 MiB through stdout (median of {STREAM_ROUNDS}) |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| docker exec (root) | {:.0} µs | {:.0} µs | {docker_rate:.0} MiB/s |",
        micros(docker50),
        micros(docker99)
    );
    println!(
        "| hh shell (the user, through the agent) | {:.0} µs ({:.2}×) | {:.0} µs ({:.2}×) | {hh_rate:.0} MiB/s ({:.2}×) |",
        micros(hh50),
        micros(hh50) / micros(docker50),
        micros(hh99),
        micros(hh99) / micros(docker99),
        hh_rate / docker_rate
    );
    println!("\n({KEYS} keys each, typed one at a time into `cat` on a terminal, echo read back.)");
}

/// Types `keys` keys into `command` (run on a fresh pty) one at a time and times each echo.
fn keystrokes(what: &str, mut command: Command, keys: usize) -> Vec<Duration> {
    let (master, slave) = open_pty();
    let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    command
        .stdin(stdio(&slave))
        .stdout(stdio(&slave))
        .stderr(stdio(&slave));
    let mut child = command.spawn().unwrap();
    drop(slave);
    let mut terminal = std::fs::File::from(master);
    // The command is up once a key comes back.
    let started = Instant::now();
    loop {
        terminal.write_all(b"r").unwrap();
        if read_until(&mut terminal, b'r', Duration::from_millis(500)).is_ok() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: no echo within {DEADLINE:?} of starting"
        );
    }
    let mut times = Vec::with_capacity(keys);
    for index in 0..keys {
        let key = b'a' + (index % 26) as u8;
        let sent = Instant::now();
        terminal.write_all(&[key]).unwrap();
        if let Err(seen) = read_until(&mut terminal, key, DEADLINE) {
            let _ = child.kill();
            panic!(
                "{what}: key {index} ({}) not echoed within {DEADLINE:?}; read {seen:?} meanwhile",
                key as char
            );
        }
        times.push(sent.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    times
}

/// Reads from `terminal` until `byte` arrives; what was read instead when `deadline` passes.
fn read_until(terminal: &mut std::fs::File, byte: u8, deadline: Duration) -> Result<(), Vec<u8>> {
    let until = Instant::now() + deadline;
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: terminal.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis() as i32) };
        if ready <= 0 {
            return Err(seen);
        }
        let read = terminal.read(&mut buf).map_err(|_| seen.clone())?;
        if read == 0 {
            return Err(seen);
        }
        if buf[..read].contains(&byte) {
            return Ok(());
        }
        seen.extend_from_slice(&buf[..read]);
    }
}

/// Runs `command` with stdout piped, reads it all; MiB/s.
fn throughput(mut command: Command) -> f64 {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut poll = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, DEADLINE.as_millis() as i32) };
        assert!(
            ready > 0,
            "{command:?}: no byte for {DEADLINE:?} after {total} of {STREAM_BYTES} bytes"
        );
        let read = out.read(&mut buf).unwrap();
        if read == 0 {
            break;
        }
        total += read as u64;
        assert!(
            started.elapsed() < DEADLINE * 6,
            "{command:?}: {total} of {STREAM_BYTES} bytes after {:?}",
            started.elapsed()
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{command:?}: {status}");
    assert_eq!(total, STREAM_BYTES, "{command:?}");
    total as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64()
}

/// A pty pair, 80×24: (master, slave).
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to two ints; no name buffer; termios default; a valid winsize.
    let result = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(result, 0, "openpty: {}", std::io::Error::last_os_error());
    // Raw from the start: an echo the local line discipline made (before the client set raw
    // mode itself) would time nothing but this pty.
    // SAFETY: a zeroed termios is filled by tcgetattr on the valid slave descriptor before use.
    unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave, &mut termios), 0);
        libc::cfmakeraw(&mut termios);
        assert_eq!(libc::tcsetattr(slave, libc::TCSANOW, &termios), 0);
    }
    // SAFETY: openpty returned two fresh descriptors this function now owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
