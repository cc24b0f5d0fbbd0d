//! hh: hand a coding agent a real shell without handing it the machine or the network.
//!
//! `main.rs` only parses flags and calls [`cli::run`]; everything else is reachable from here so
//! tests, benches and fuzz targets use the same code as the binary.
//!
//! # Layout
//! - [`agent`]: `hh agent`, root: sessions (plan, container, cgroup, seeds, protected paths),
//!   their proxies, the trusted rules, and the answers on the client socket.
//! - [`api`]: what clients and the agent say on the unix socket: protocol, client, server.
//! - [`audit`]: the audit log, one JSON line per proxy decision, 0600.
//! - [`cli`]: one module per subcommand; the only place that prints for a person.
//! - [`config`]: `harness-hat.toml`, the manager's config: load, expand, validate; the `hh init` starter.
//! - [`dns`]: the per-session DNS stub: synthetic A answers that map back to the name, no upstream.
//! - [`doctor`]: checks whether this host can run hh, and in which mode.
//! - [`enforce`]: how a session's traffic is forced through the proxy (eBPF in agent mode).
//! - [`git_identity`]: the user's git author and committer in their sessions.
//! - [`git_workspace`]: git mode: a session works on its own clone; its work comes back as
//!   branches.
//! - [`harness`]: the coding agents sessions run (`--harness`): commands, credentials, policy layer.
//! - [`image`]: session images: the Dockerfile stems under `docker/` and their build order.
//! - [`private_fs`]: 0700 directories and 0600 files opened without following symlinks.
//! - [`proxy`]: the MITM proxy: SSRF guard, strict HTTP/1 parsing, the one decision per request,
//!   and the explicit-proxy front door (`hh proxy`).
//! - [`rules`]: `harness-rules.toml`, the policy: grammar, canonical hosts and paths, decisions,
//!   and the trusted copies sessions run under.
//! - [`sensitive`]: the workspace's files whose names say they hold secrets, found before a start.
//! - [`sys`]: thin wrappers over the syscalls and kernel files hh reads (cgroup, bpf), and the
//!   descriptor-relative file work root does in users' directories.
//! - [`terminal_text`]: text from a session made safe for a terminal.
//! - [`tls`]: the installation CA and the per-host leaf certificates the proxy presents.
//! - [`tui`]: `hh` with no arguments: the terminal UI, a client of the agent.

// Every `unsafe` block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod agent;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod dns;
pub mod doctor;
pub mod enforce;
pub mod git_identity;
pub mod git_workspace;
pub mod harness;
pub mod image;
pub mod private_fs;
pub mod proxy;
pub mod rules;
pub mod sensitive;
pub mod sys;
pub mod terminal_text;
pub mod tls;
pub mod tui;
