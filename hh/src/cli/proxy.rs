//! `hh proxy`: the MITM proxy standalone, as an explicit HTTP proxy (CONNECT and absolute-form).
//!
//! Prints `listening on ADDR` on stdout once it accepts connections (so `--listen 127.0.0.1:0`
//! is usable from scripts and tests), then serves until killed. The CA (`ca.pem`, the file
//! clients must trust) and the audit log (`audit.jsonl`) live in `--state-dir`. An unknown
//! request waits `--ask-timeout` seconds for an answer, then is denied; with `--api-socket PATH`
//! a person answers it with `hh approvals` (`HH_AGENT_SOCKET=PATH`). An answer "forever"
//! appends to the first `--rules` file.

use std::{
    collections::HashMap,
    io::Write as _,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::broadcast;

use crate::{
    api,
    audit::AuditLog,
    proxy::{
        approvals::{self, Approvals},
        approvals_api::ApprovalsService,
        decision::{DecisionEngine, EngineSetup, PolicyFn, RulesWriter, RulesWrittenFn},
        explicit,
        ssrf::{DialGrants, IpCidr},
        state::{IDLE_TIMEOUT, Proxy, ProxySetup, UPSTREAM_CONNECT_TIMEOUT, UPSTREAM_KEEP},
        upstream::Upstream,
    },
    rules::{Host, Layer, Policy, PolicySources, WatchedPolicy, store},
    tls::{
        ca::CertificateAuthority,
        leaf::{DEFAULT_CAPACITY, LeafCache},
    },
};

/// The session name the standalone proxy's requests carry in prompts and audit lines.
const STANDALONE_SESSION: &str = "standalone";

/// Events kept for a slow subscriber before it is told it missed some.
const EVENT_BUFFER: usize = 1024;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// A rules file (harness-rules.toml); repeat for several. One file is reloaded when it changes.
    /// An approval "forever" appends to the first.
    #[arg(long = "rules", value_name = "FILE", required = true)]
    pub rules: Vec<PathBuf>,
    /// Where the CA (ca.pem, ca.key) and the audit log (audit.jsonl) live.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// How long an unknown request waits for an answer before it is denied.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ask_timeout: u64,
    /// Resolve NAME to IP instead of asking the system resolver (tests); repeatable.
    #[arg(long = "resolve", value_name = "NAME=IP")]
    pub resolve: Vec<String>,
    /// Let the proxy dial this private or loopback block (the SSRF guard refuses it otherwise),
    /// whatever name resolves there; repeatable. A rule naming an IP literal
    /// (`domain=10.0.0.5`) already grants that address to requests for that literal.
    #[arg(long = "dial-grant", value_name = "CIDR")]
    pub dial_grant: Vec<IpCidr>,
    /// How long a client or upstream may stay silent (a request head, a body, a tunnel, an idle
    /// kept-alive or HTTP/2 connection) before the proxy closes it.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = IDLE_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub idle_timeout: u64,
    /// How long a tunnel keeps an unused upstream connection open for its next request.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = UPSTREAM_KEEP.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub upstream_keep: u64,
    /// Serve approvals on this unix socket (for `hh approvals` with HH_AGENT_SOCKET=PATH).
    #[arg(long = "api-socket", value_name = "PATH")]
    pub api_socket: Option<PathBuf>,
    /// Also trust this PEM file's certificates for upstream TLS (besides the webpki roots).
    #[arg(long = "upstream-ca", value_name = "PEM")]
    pub upstream_ca: Vec<PathBuf>,
}

pub fn run(options: &Options, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    refuse_remote_listen(options.listen, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(options))
}

/// A listener on anything but loopback serves whoever reaches this host's interfaces: only when
/// the config says so (`allow_remote_control = true` in `[defaults.control]`).
fn refuse_remote_listen(
    listen: SocketAddr,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    let (config, path) = super::load_config(config).with_context(|| {
        format!("--listen {listen} is not loopback, and no config says it may be")
    })?;
    if !config.defaults.control.allow_remote_control {
        bail!(
            "--listen {listen} would serve every host that reaches this one; set \
             `allow_remote_control = true` in [defaults.control] of {} to allow it, or listen \
             on 127.0.0.1",
            path.display()
        );
    }
    Ok(())
}

async fn serve(options: &Options) -> anyhow::Result<ExitCode> {
    let (policy, on_rules_written) = policy(&options.rules)?;
    let ca = CertificateAuthority::load_or_create(&options.state_dir)
        .with_context(|| format!("cannot load the CA in {}", options.state_dir.display()))?;
    let audit = AuditLog::open(&options.state_dir).with_context(|| {
        format!(
            "cannot open the audit log in {}",
            options.state_dir.display()
        )
    })?;
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let approvals = Arc::new(Approvals::new(
        approvals::DEFAULT_CAPACITY,
        Duration::from_secs(options.ask_timeout),
        events,
    ));
    if let Some(path) = &options.api_socket {
        let listener = api::server::bind(path, None)
            .with_context(|| format!("cannot serve the API on {}", path.display()))?;
        let owner_uid = rustix::process::geteuid().as_raw();
        let service = Arc::new(ApprovalsService::new(Arc::clone(&approvals), owner_uid));
        tokio::spawn(async move {
            if let Err(error) = api::server::serve(listener, service).await {
                tracing::error!(%error, "the API socket stopped");
            }
        });
    }
    let rules_file = options.rules[0].clone();
    let engine = DecisionEngine::new(EngineSetup {
        session: STANDALONE_SESSION.into(),
        policy: Arc::clone(&policy),
        approvals,
        rules_target: format!("--rules {}", rules_file.display()),
        rules_file,
        rules_writer: RulesWriter::Live,
        audit: Some(audit),
        on_rules_written,
        tool_calls: None,
        push_guard: None,
    });
    let tls = Upstream::client_config(&options.upstream_ca)?;
    let upstream = Upstream::new(
        resolve_table(&options.resolve)?,
        DialGrants::new(options.dial_grant.iter().copied()),
        tls,
        UPSTREAM_CONNECT_TIMEOUT,
    );
    let proxy = Arc::new(Proxy::assemble(ProxySetup {
        engine,
        upstream,
        address_rules: policy,
        leaves: LeafCache::new(Arc::new(ca), DEFAULT_CAPACITY),
        idle_timeout: Duration::from_secs(options.idle_timeout),
        upstream_keep: Duration::from_secs(options.upstream_keep),
        secrets: crate::proxy::secrets::Secrets::default(),
    }));
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    explicit::serve(listener, proxy)
        .await
        .context("the proxy stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// One file: watched and reloaded on change (at once after an approval "forever" wrote it).
/// Several: each a workspace layer, loaded at startup and after an approval "forever".
fn policy(files: &[PathBuf]) -> anyhow::Result<(PolicyFn, Option<RulesWrittenFn>)> {
    // The store reads a missing file as "no rules"; at startup that is more likely a typo.
    for file in files {
        if !file.exists() {
            bail!(
                "rules file {} does not exist (create it with `hh rules add --rules FILE allow RULE`)",
                file.display()
            );
        }
    }
    if let [file] = files {
        let sources = PolicySources {
            workspace: vec![file.clone()],
            ..PolicySources::default()
        };
        let watched = Arc::new(
            WatchedPolicy::load(sources)
                .with_context(|| format!("cannot load rules from {}", file.display()))?,
        );
        let written = Arc::clone(&watched);
        return Ok((
            Arc::new(move || watched.current()),
            Some(Arc::new(move || drop(written.look_now()))),
        ));
    }
    let policy = Arc::new(RwLock::new(Arc::new(load_layers(files)?)));
    let current = Arc::clone(&policy);
    let files = files.to_vec();
    // Only an approval "forever" (appending to the first file) reloads them.
    let reload = move || match load_layers(&files) {
        Ok(loaded) => {
            *policy
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
        }
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "cannot reload the rules"),
    };
    Ok((
        Arc::new(move || {
            Arc::clone(
                &current
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            )
        }),
        Some(Arc::new(reload)),
    ))
}

/// Each file a workspace layer.
fn load_layers(files: &[PathBuf]) -> anyhow::Result<Policy> {
    let mut layers = Vec::new();
    for file in files {
        let rules = store::load_rules(file)
            .with_context(|| format!("cannot load rules from {}", file.display()))?;
        layers.push(rules.into_layer(Layer::Workspace, &file.display().to_string()));
    }
    Ok(Policy::new(layers))
}

pub(super) fn resolve_table(entries: &[String]) -> anyhow::Result<HashMap<Host, IpAddr>> {
    let mut table = HashMap::new();
    for entry in entries {
        let (name, ip) = entry
            .split_once('=')
            .ok_or_else(|| anyhow!("--resolve `{entry}`: expected NAME=IP"))?;
        let host = Host::parse(name).with_context(|| format!("--resolve `{entry}`"))?;
        let ip: IpAddr = ip
            .parse()
            .with_context(|| format!("--resolve `{entry}`: `{ip}` is not an IP address"))?;
        if table.insert(host, ip).is_some() {
            bail!("--resolve names {name} twice");
        }
    }
    Ok(table)
}
