//! The process inside a session that made a connection: its pid (as the session sees it and as
//! the host does), its `comm` and its command line, for every audit line and approval prompt of
//! that connection ("curl (curl -s https://example.com/) wants example.com").
//!
//! `connect4` records the connecting task's thread group id and `comm` with the original
//! destination ([`crate::enforce::original_dst::Redirected`]); the command line is read here,
//! once per connection, from `/proc/PID/cmdline` in the host's pid namespace. The front door
//! that accepted the connection runs its task in [`scope`], and the decision reads
//! [`current`]; tasks the connection spawns (HTTP/2 streams, upgrades) keep it through
//! [`super::in_span::spawn`].
//!
//! What is read is what the process says about itself: a process may rewrite its own command
//! line, and its pid may be reused once it exits. So these fields name a process for a person;
//! no decision is ever made on them. A process that is gone, or whose `comm` is no longer the
//! one the kernel recorded at the connect (another program under a reused pid), gets its pid and
//! `comm` but no command line (the `comm` may be a worker thread's: any of the first threads
//! may carry it).

use std::{future::Future, io::Read as _, sync::Arc, time::Duration};

/// The most bytes of a command line kept (the rest is cut, marked with `…`).
pub const MAX_CMDLINE_BYTES: usize = 512;

/// The most `/proc` look-ups running at once, across the agent; a connection that finds them
/// all busy goes on with the kernel's pid and `comm` alone (a session cannot tie up the blocking
/// pool the agent's other work needs by making reads slow).
const MAX_LOOKUPS: usize = 64;

static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LOOKUPS);

/// How many of a process's threads are looked at for the recorded `comm`.
const MAX_THREADS_LOOKED_AT: usize = 64;

/// How long reading `/proc` may take before the connection goes on without a command line
/// (a process holding its memory map's lock stalls `/proc/PID/cmdline`).
const READ_LIMIT: Duration = Duration::from_millis(200);

/// One connecting process, as far as the proxy could learn it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientProcess {
    /// The pid in the session's own pid namespace (what `$$` or `ps` show inside), when known.
    pub pid: Option<u32>,
    /// The pid in the host's pid namespace.
    pub host_pid: u32,
    /// The kernel's `comm` at the connect.
    pub comm: String,
    /// The command line, arguments separated by spaces, made safe for a terminal.
    pub cmdline: Option<String>,
}

tokio::task_local! {
    static CURRENT: Option<Arc<ClientProcess>>;
}

/// Runs `future` (a connection's task) with `process` as its [`current`] process.
pub fn scope<F: Future>(
    process: Option<Arc<ClientProcess>>,
    future: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope(process, future)
}

/// The process of the connection this task serves, if a front door learnt it.
pub fn current() -> Option<Arc<ClientProcess>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

impl ClientProcess {
    /// Looks up `host_pid` (recorded with `comm` at its connect) in `/proc`, off the async
    /// workers and within [`READ_LIMIT`]. `None` when the kernel recorded no process.
    pub async fn look_up(host_pid: u32, comm: String) -> Option<Arc<ClientProcess>> {
        if host_pid == 0 {
            return None;
        }
        let bare = ClientProcess {
            pid: None,
            host_pid,
            comm: crate::terminal_text::text_for_terminal(&comm),
            cmdline: None,
        };
        let Ok(permit) = LOOKUPS.try_acquire() else {
            return Some(Arc::new(bare));
        };
        let reading = bare.clone();
        let read = tokio::time::timeout(
            READ_LIMIT,
            tokio::task::spawn_blocking(move || {
                let process = reading.read_proc();
                drop(permit);
                process
            }),
        )
        .await;
        Some(Arc::new(match read {
            Ok(Ok(process)) => process,
            _ => bare,
        }))
    }

    /// Fills in the session's pid and the command line from `/proc/HOST_PID`, if the process
    /// there is still the one that connected (same `comm`).
    fn read_proc(mut self) -> ClientProcess {
        let dir = format!("/proc/{}", self.host_pid);
        let Ok(status) = std::fs::read_to_string(format!("{dir}/status")) else {
            return self;
        };
        let name = status
            .lines()
            .find_map(|line| line.strip_prefix("Name:"))
            .map(str::trim);
        let leader_named =
            name.map(crate::terminal_text::text_for_terminal) == Some(self.comm.clone());
        if !leader_named && !self.a_thread_is_named(&dir) {
            return self;
        }
        self.pid = innermost_pid(&status);
        self.cmdline = read_cmdline(&format!("{dir}/cmdline"));
        self
    }

    /// Whether one of the process's first threads has the recorded `comm` (the connect may
    /// come from a named worker thread, not the leader).
    fn a_thread_is_named(&self, dir: &str) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("{dir}/task")) else {
            return false;
        };
        tasks.take(MAX_THREADS_LOOKED_AT).flatten().any(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| {
                crate::terminal_text::text_for_terminal(comm.trim_end_matches('\n')) == self.comm
            })
        })
    }

    /// How a prompt names it: `curl (curl -s https://example.com/)`, or just `curl`.
    pub fn describe(&self) -> String {
        let comm = if self.comm.is_empty() {
            "?"
        } else {
            &self.comm
        };
        let pid = self.pid.unwrap_or(self.host_pid);
        match &self.cmdline {
            Some(cmdline) if !cmdline.is_empty() => format!("{comm} [{pid}] ({cmdline})"),
            _ => format!("{comm} [{pid}]"),
        }
    }
}

/// The last pid of `NSpid:` in a `/proc/PID/status` text: the pid in the process's own (the
/// innermost) pid namespace.
pub fn innermost_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// A `cmdline` file's arguments, NUL-separated, as one line: at most [`MAX_CMDLINE_BYTES`]
/// read, separators turned to spaces, cleaned for a terminal.
fn read_cmdline(path: &str) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::with_capacity(256);
    file.take(MAX_CMDLINE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(cmdline_text(&bytes))
}

/// `cmdline` bytes as one line (see [`read_cmdline`]).
pub fn cmdline_text(bytes: &[u8]) -> String {
    let cut = bytes.len() > MAX_CMDLINE_BYTES;
    let bytes = &bytes[..bytes.len().min(MAX_CMDLINE_BYTES)];
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    let joined: Vec<u8> = bytes
        .iter()
        .map(|&byte| if byte == 0 { b' ' } else { byte })
        .collect();
    let mut text = crate::terminal_text::text_for_terminal(&String::from_utf8_lossy(&joined));
    if cut {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_pid_is_the_last_of_nspid() {
        let status = "Name:\tcurl\nNSpid:\t48211\t37\nPPid:\t1\n";
        assert_eq!(innermost_pid(status), Some(37));
        assert_eq!(innermost_pid("Name:\tinit\nNSpid:\t1\n"), Some(1));
        assert_eq!(innermost_pid("Name:\tx\n"), None);
    }

    #[test]
    fn a_command_line_reads_as_one_cleaned_line() {
        assert_eq!(
            cmdline_text(b"curl\0-s\0https://example.test/\0"),
            "curl -s https://example.test/"
        );
        // A terminal escape an argument carries is not passed to a person's terminal.
        let shown = cmdline_text(b"sh\0-c\0\x1b]0;owned\x07echo\0");
        assert!(!shown.contains('\x1b'), "{shown:?}");
        let long = vec![b'a'; MAX_CMDLINE_BYTES + 10];
        let shown = cmdline_text(&long);
        assert!(shown.ends_with('…'));
        assert_eq!(shown.chars().count(), MAX_CMDLINE_BYTES + 1);
    }

    #[test]
    fn a_prompt_names_the_process_its_pid_and_its_command_line() {
        let mut process = ClientProcess {
            pid: Some(37),
            host_pid: 48211,
            comm: "node".into(),
            cmdline: Some("npm install lodash".into()),
        };
        assert_eq!(process.describe(), "node [37] (npm install lodash)");
        process.cmdline = None;
        process.pid = None;
        assert_eq!(process.describe(), "node [48211]");
    }

    #[tokio::test]
    async fn this_process_is_found_by_its_pid_and_comm() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let comm = status
            .lines()
            .find_map(|line| line.strip_prefix("Name:"))
            .unwrap()
            .trim()
            .to_owned();
        let found = ClientProcess::look_up(std::process::id(), comm.clone())
            .await
            .unwrap();
        assert_eq!(found.pid, Some(std::process::id()));
        assert!(
            found
                .cmdline
                .as_deref()
                .is_some_and(|line| !line.is_empty())
        );
        // Another program's name under the pid: no command line is claimed for it.
        let other = ClientProcess::look_up(std::process::id(), "not-this".into())
            .await
            .unwrap();
        assert_eq!(other.cmdline, None);
        assert_eq!(other.pid, None);
        assert!(ClientProcess::look_up(0, comm).await.is_none());
    }

    #[tokio::test]
    async fn the_scope_gives_its_task_the_process_and_nothing_outside_it() {
        let process = Arc::new(ClientProcess {
            pid: Some(1),
            host_pid: 2,
            comm: "curl".into(),
            cmdline: None,
        });
        assert!(current().is_none());
        let seen = scope(Some(Arc::clone(&process)), async { current() }).await;
        assert_eq!(seen, Some(process));
    }
}
