//! `sudo hh agent`: the host agent. Serves its socket until SIGTERM or SIGINT, then stops its
//! sessions and exits. Killed (SIGKILL), it leaves every session cut off; started again, it
//! adopts them.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    agent::{Agent, Settings, placement::GROUP, service::AgentService},
    api::{protocol::DEFAULT_SOCKET, server},
    proxy::ssrf::{DialGrants, IpCidr},
};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// The client socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The group allowed on the socket besides root, by GID or name (default: $SUDO_GID, the
    /// invoking user's).
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Where the CA, the audit log and per-session files live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/hh")]
    pub state_dir: PathBuf,
    /// Where programs, maps and session links are pinned (on bpffs).
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/hh")]
    pub bpf_dir: PathBuf,
    /// The cgroup sessions are placed under (tests run agents side by side).
    #[arg(long, value_name = "NAME", default_value = GROUP)]
    pub cgroup_group: String,
    /// The Docker engine's socket.
    #[arg(
        long,
        value_name = "URL",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// How long an unknown request waits for an answer before it is denied.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ask_timeout: u64,
    /// Resolve NAME to IP instead of asking the system resolver (tests); repeatable.
    #[arg(long = "resolve", value_name = "NAME=IP")]
    pub resolve: Vec<String>,
    /// Let the proxy dial this private or loopback block; repeatable.
    #[arg(long = "dial-grant", value_name = "CIDR")]
    pub dial_grant: Vec<IpCidr>,
    /// Also trust this PEM file's certificates for upstream TLS; repeatable.
    #[arg(long = "upstream-ca", value_name = "PEM")]
    pub upstream_ca: Vec<PathBuf>,
}

pub fn run(options: &Options, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if !rustix::process::geteuid().is_root() {
        bail!("hh agent needs root (cgroups, eBPF, network namespaces): run `sudo hh agent`");
    }
    raise_open_files_limit();
    // Nothing the agent creates is for others unless it says so (socket, state, logs).
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    if options.cgroup_group.is_empty()
        || !options
            .cgroup_group
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        bail!("--cgroup-group must be lowercase letters and digits");
    }
    let (config, config_path) = super::load_config(config)?;
    let resolve = super::proxy::resolve_table(&options.resolve)?;
    let socket_gid = match &options.socket_group {
        Some(group) => Some(
            crate::sys::users::resolve_group(group)
                .with_context(|| format!("--socket-group {group}"))?,
        ),
        None => std::env::var("SUDO_GID")
            .ok()
            .and_then(|gid| gid.parse().ok()),
    };
    let settings = Settings {
        config,
        config_path,
        socket: options.socket.clone(),
        socket_gid,
        state_dir: options.state_dir.clone(),
        bpf_dir: options.bpf_dir.clone(),
        cgroup_group: options.cgroup_group.clone(),
        docker_endpoint: options.docker_host.clone(),
        resolve,
        dial_grants: DialGrants::new(options.dial_grant.iter().copied()),
        upstream_ca: options.upstream_ca.clone(),
        ask_timeout: Duration::from_secs(options.ask_timeout),
        canary_timeout: Duration::from_secs(10),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let socket = settings.socket.clone();
    let gid = settings.socket_gid;
    let agent = Agent::start(settings).await?;
    let listener = server::bind(&socket, gid)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "hh agent: listening on {}", socket.display())?;
    stdout.flush()?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let service = Arc::new(AgentService(Arc::clone(&agent)));
    tokio::select! {
        served = server::serve(listener, service) => served.context("the agent socket failed")?,
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("stopping every session");
    agent.stop_all().await;
    let _ = std::fs::remove_file(&socket);
    Ok(ExitCode::SUCCESS)
}

/// Raises the soft limit on open files to the hard one: every session holds listeners and
/// up to hundreds of proxied connections, and the common default soft limit (1024) would let
/// a few busy sessions starve every other one of descriptors.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("cannot raise the open-files limit");
            }
        }
    }
}
