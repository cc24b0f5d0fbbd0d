//! The audit log: one JSON line per proxy decision, in a file only the agent's user can read.
//!
//! Owns the file and the line format. [`AuditLog::open`] makes the directory 0700 and
//! `audit.jsonl` 0600 through [`crate::private_fs`] (never following a symlink, refusing files
//! others could read), opened `O_APPEND`. [`AuditLog::record`] writes each line with a single
//! `write(2)`: on a regular file opened `O_APPEND`, Linux writes it whole at the end under the
//! inode lock, so lines from concurrent writers never interleave. What is decided, and when to
//! record it, is the proxy's business.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::private_fs::{PrivateDir, PrivateFsError};

/// The log file's name inside the audit directory.
pub const FILE_NAME: &str = "audit.jsonl";

/// What became of a connection or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Ask,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// When the decision was made; written as RFC 3339 in UTC.
    #[serde(serialize_with = "rfc3339_utc")]
    pub time: SystemTime,
    /// The hh session id.
    pub session: String,
    /// The client process's pid as the session sees it, when the proxy could learn it.
    pub client_pid: Option<u32>,
    /// The same process's pid on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_host_pid: Option<u32>,
    /// Its `comm` at the connect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_comm: Option<String>,
    /// Its command line ([`crate::proxy::client_process`]: what the process says of itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cmdline: Option<String>,
    /// The coding agent's tool calls running when the request was made, as its hooks said
    /// ([`crate::proxy::tool_calls`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_use_ids: Vec<String>,
    /// The HTTP method; `None` for a connection decided before any request (CONNECT, SNI, raw TCP).
    pub method: Option<String>,
    /// The canonical host the decision was made on.
    pub host: String,
    /// The normalized path; `None` when there was none to see.
    pub path: Option<String>,
    pub port: u16,
    pub decision: Decision,
    /// The rule that decided, as written; `None` when no rule matched.
    pub rule: Option<String>,
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    pub duration_ms: u64,
}

/// Why the log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log")]
    Open(#[source] PrivateFsError),
    #[error("cannot serialize an audit record")]
    Serialize(#[source] serde_json::Error),
    #[error("cannot write to {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A short write (disk full, quota): retrying would split the line, so it is reported instead.
    #[error("wrote {written} of {len} bytes of an audit line to {}", .path.display())]
    ShortWrite {
        path: PathBuf,
        written: usize,
        len: usize,
    },
}

/// The open audit log. Share it by reference or `Arc`; `record` needs no lock.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    /// Opens (creating as needed) `dir/audit.jsonl` for appending.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        let dir = PrivateDir::open_or_create(dir).map_err(AuditError::Open)?;
        let file = dir
            .open_private_append(FILE_NAME)
            .map_err(AuditError::Open)?;
        Ok(Self {
            path: dir.path().join(FILE_NAME),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one line, in one `write(2)`.
    pub fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(AuditError::Serialize)?;
        line.push(b'\n');
        let written = loop {
            match (&self.file).write(&line) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        }
        .map_err(|source| AuditError::Write {
            path: self.path.clone(),
            source,
        })?;
        if written != line.len() {
            return Err(AuditError::ShortWrite {
                path: self.path.clone(),
                written,
                len: line.len(),
            });
        }
        Ok(())
    }
}

fn rfc3339_utc<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let time = time::OffsetDateTime::from(*time);
    // Milliseconds are enough to order lines and keep them short.
    let time = time
        .replace_millisecond(time.millisecond())
        .map_err(serde::ser::Error::custom)?;
    let text = time
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::private_fs::mode;

    fn record(session: &str, number: u64) -> AuditRecord {
        AuditRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            session: session.to_owned(),
            client_pid: Some(4242),
            client_host_pid: None,
            client_comm: None,
            client_cmdline: None,
            tool_use_ids: Vec::new(),
            method: Some("GET".to_owned()),
            host: "example.com".to_owned(),
            // Long enough that interleaved writes would show.
            path: Some(format!("/{}", "p".repeat(2000))),
            port: 443,
            decision: Decision::Allow,
            rule: Some("allow example.com".to_owned()),
            bytes_up: number,
            bytes_down: 2 * number,
            duration_ms: 7,
        }
    }

    #[test]
    fn the_log_directory_is_0700_and_the_file_0600() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("log");
        let log = AuditLog::open(&dir).unwrap();
        assert_eq!(log.path(), dir.join(FILE_NAME));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
    }

    #[test]
    fn a_record_is_one_json_line_with_every_field() {
        let temp = tempfile::tempdir().unwrap();
        let log = AuditLog::open(temp.path()).unwrap();
        let mut denied = record("s1", 3);
        denied.decision = Decision::Deny;
        denied.client_pid = None;
        denied.method = None;
        denied.path = None;
        denied.rule = None;
        log.record(&denied).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"session\":\"s1\",\"client_pid\":null,\
             \"method\":null,\"host\":\"example.com\",\"path\":null,\"port\":443,\
             \"decision\":\"deny\",\"rule\":null,\"bytes_up\":3,\"bytes_down\":6,\
             \"duration_ms\":7}\n"
        );
    }

    #[test]
    fn reopening_appends_to_the_existing_log() {
        let temp = tempfile::tempdir().unwrap();
        AuditLog::open(temp.path())
            .unwrap()
            .record(&record("a", 1))
            .unwrap();
        AuditLog::open(temp.path())
            .unwrap()
            .record(&record("b", 2))
            .unwrap();
        let text = std::fs::read_to_string(temp.path().join(FILE_NAME)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn unsafe_log_locations_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let victim = temp.path().join("victim");
        std::fs::write(&victim, b"").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();

        let symlinked_file = temp.path().join("symlinked-file");
        std::fs::create_dir(&symlinked_file).unwrap();
        symlink(&victim, symlinked_file.join(FILE_NAME)).unwrap();

        let symlinked_dir = temp.path().join("symlinked-dir");
        symlink(&symlinked_file, &symlinked_dir).unwrap();

        let loose_file = temp.path().join("loose-file");
        std::fs::create_dir(&loose_file).unwrap();
        std::fs::write(loose_file.join(FILE_NAME), b"").unwrap();
        std::fs::set_permissions(
            loose_file.join(FILE_NAME),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();

        let writable_dir = temp.path().join("writable-dir");
        std::fs::create_dir(&writable_dir).unwrap();
        std::fs::set_permissions(&writable_dir, std::fs::Permissions::from_mode(0o770)).unwrap();

        let cases = [
            (&symlinked_file, "is a symbolic link"),
            (&symlinked_dir, "is a symbolic link"),
            (&loose_file, "lets other users read or write it"),
            (&writable_dir, "lets other users write into it"),
        ];
        for (dir, message) in cases {
            let error = AuditLog::open(dir).unwrap_err();
            let chain = format!("{}: {}", error, std::error::Error::source(&error).unwrap());
            assert!(chain.contains(message), "{}: {chain}", dir.display());
        }
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"",
            "nothing written through a symlink"
        );
    }

    #[test]
    fn concurrent_writers_never_interleave_lines() {
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 200;
        let temp = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(temp.path()).unwrap());
        let writers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for number in 0..PER_THREAD {
                        log.record(&record(&format!("t{thread}"), number)).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }

        let text = std::fs::read_to_string(log.path()).unwrap();
        let mut seen = HashSet::new();
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
            let key = (
                value["session"].as_str().unwrap().to_owned(),
                value["bytes_up"].as_u64().unwrap(),
            );
            assert!(seen.insert(key), "each record appears once");
        }
        assert_eq!(seen.len() as u64, THREADS * PER_THREAD);
    }
}
