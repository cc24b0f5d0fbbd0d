//! `hh agent`: the root daemon that owns every session.
//!
//! It loads the eBPF programs once (maps pinned under its bpffs directory), and for each
//! session: creates the session's cgroup and attaches the programs to it (links pinned, so a
//! killed agent leaves sessions cut off, never open), starts the container below that cgroup
//! with `--network none`, opens the session's proxy, DNS and control listeners inside the
//! container's network namespace, and waits for the canary before the session counts as
//! started. Clients reach it on a unix socket ([`crate::api`]).
//!
//! - [`plan`]: a client's request checked and turned into a container plan.
//! - [`access`]: what a client may mount.
//! - [`container`]: Docker calls.
//! - [`placement`]: where a session's cgroup lives, per Docker cgroup driver.
//! - [`session`]: one session's start, adoption after a restart, and teardown.
//! - [`control`]: the in-session control server (`killme`, readiness).
//! - [`exec`]: `hh shell` / `hh attach` run through the agent, relayed over its socket.
//! - [`image_build`]: `hh image build` through the agent, into the caller's own images.
//! - [`forwards`]: `localhost_forwards`, host ports a session reaches on its own loopback.
//! - [`session_files`]: hh-init, killme and the CA, mounted into every session.
//! - [`session_process`]: a session container's first process, held by one handle.
//! - [`seccomp`]: hh's seccomp profile for sessions (Docker's default, narrowed).
//! - [`service`]: the client API's requests, authorized by `SO_PEERCRED`.

pub mod access;
pub mod container;
pub mod control;
pub mod exec;
pub mod forwards;
pub mod image_build;
pub mod live_config;
pub mod placement;
pub mod plan;
pub mod published;
pub mod seccomp;
pub mod service;
pub mod session;
pub mod session_files;
pub mod session_process;
pub mod trusted_rules;
pub mod usage;

use std::{
    collections::HashMap,
    io::Read as _,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use rustls::ClientConfig;
use tokio::sync::broadcast;

use self::{container::Engine, placement::Driver, session::Session};
use crate::{
    api::protocol::Event,
    config::Config,
    enforce::{
        ebpf::{LoadOptions, Ports, Programs},
        kernel_log,
        original_dst::OriginalDst,
    },
    proxy::{
        approvals::{self, Approvals},
        ssrf::DialGrants,
        upstream::Upstream,
    },
    rules::{Host, TrustStore},
    sys::{bpffs, cgroup},
    tls::ca::CertificateAuthority,
};

/// The port of each session's DNS stub on its own 127.0.0.1.
pub const DNS_PORT: u16 = 53;

/// Everything `hh agent` is told.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config: Config,
    /// Where the config was read from (named in rule sources).
    pub config_path: PathBuf,
    pub socket: PathBuf,
    /// The group that may connect to the socket besides root.
    pub socket_gid: Option<u32>,
    pub state_dir: PathBuf,
    pub bpf_dir: PathBuf,
    /// The top-level cgroup sessions go under.
    pub cgroup_group: String,
    pub docker_endpoint: String,
    /// Names the proxy resolves itself (tests).
    pub resolve: HashMap<Host, IpAddr>,
    pub dial_grants: DialGrants,
    pub upstream_ca: Vec<PathBuf>,
    pub ask_timeout: Duration,
    /// How long a new session has to show its canary.
    pub canary_timeout: Duration,
}

/// The running agent.
pub struct Agent {
    pub settings: Settings,
    cgroup_root: PathBuf,
    driver: Driver,
    ports: Ports,
    programs: Mutex<Programs>,
    original_dst: Arc<OriginalDst>,
    ca: Arc<CertificateAuthority>,
    upstream_tls: Arc<ClientConfig>,
    docker: Engine,
    session_files: PathBuf,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Requests held for a person's answer, across every session.
    approvals: Arc<Approvals>,
    events: broadcast::Sender<Event>,
    /// The versions of rules files a person trusted: what every session's policy is read from.
    trust: Arc<TrustStore>,
    /// The uids with an image build running: one build per user at a time.
    building: Mutex<std::collections::HashSet<u32>>,
    /// The config file as requests read it.
    config: Arc<live_config::LiveConfig>,
    /// The latest requests denied for want of a rule, for `hh rules suggest`.
    denials: Mutex<std::collections::VecDeque<Denial>>,
}

/// A request of a session denied for want of a rule: no one answered its prompt, or a person
/// denied it once (not one a rule, a guard or a secret refused).
#[derive(Clone, Debug)]
pub struct Denial {
    pub time_ms: u64,
    pub owner_uid: u32,
    pub workspace: String,
    pub request: crate::rules::Request,
}

/// How many denials the agent remembers (the oldest go first).
const DENIALS_KEPT: usize = 4096;

impl Agent {
    /// Loads the programs, the CA and the session files, and adopts sessions a previous agent
    /// left running.
    pub async fn start(settings: Settings) -> anyhow::Result<Arc<Agent>> {
        let (cgroup_root, _) = cgroup::detect_root().context("no cgroup2 hierarchy")?;
        let bpffs_root = settings
            .bpf_dir
            .parent()
            .unwrap_or(Path::new("/sys/fs/bpf"));
        bpffs::ensure_mounted(bpffs_root)
            .with_context(|| format!("cannot mount bpffs at {}", bpffs_root.display()))?;
        let maps_dir = settings.bpf_dir.join("maps");
        std::fs::create_dir_all(&maps_dir)
            .with_context(|| format!("cannot create {}", maps_dir.display()))?;
        let ports = Ports {
            proxy: settings.config.defaults.proxy.proxy_port,
            dns: DNS_PORT,
        };
        let log = kernel_log::wanted_level();
        let options = LoadOptions {
            log,
            maps_dir: Some(maps_dir),
            ..LoadOptions::default()
        };
        let mut programs =
            Programs::load_with(ports, &options).context("cannot load the eBPF programs")?;
        if log.is_some() {
            let logger = programs.kernel_log(kernel_log::TracingLog)?;
            kernel_log::forward(logger).context("cannot read the programs' log records")?;
        }
        let original_dst = Arc::new(programs.original_dst()?);
        // Traversable, not listable: a session's user reaches its own seed staging directory
        // below it; what is secret lives in 0700 directories of its own (ca, trusted, logs).
        std::fs::create_dir_all(&settings.state_dir)
            .and_then(|()| {
                std::fs::set_permissions(
                    &settings.state_dir,
                    std::os::unix::fs::PermissionsExt::from_mode(0o711),
                )
            })
            .with_context(|| format!("cannot prepare {}", settings.state_dir.display()))?;
        let ca = CertificateAuthority::load_or_create(&settings.state_dir.join("ca"))
            .context("cannot load or create the session CA")?;
        let session_files = session_files::write(
            &settings.state_dir.join("session-files"),
            ca.cert_pem(),
            &settings.config.defaults.control.token_env_var,
        )
        .context("cannot write the session files")?;
        let trust = Arc::new(
            TrustStore::open(&settings.state_dir.join("trusted"))
                .context("cannot open the store of trusted rules")?,
        );
        let upstream_tls = Upstream::client_config(&settings.upstream_ca)?;
        let docker = Engine::connect(&settings.docker_endpoint)?;
        let driver = Driver::from_docker(&docker.cgroup_driver().await?);
        let (events, _) = broadcast::channel(1024);
        let approvals = Arc::new(Approvals::new(
            approvals::DEFAULT_CAPACITY,
            settings.ask_timeout,
            events.clone(),
        ));
        let own_env = crate::config::Env::from_process();
        let config = Arc::new(live_config::LiveConfig::new(
            settings.config_path.clone(),
            std::fs::read_to_string(&settings.config_path).ok(),
            &own_env,
        ));
        live_config::watch(config.clone(), own_env, restart_only(&settings.config))
            .context("cannot watch for SIGHUP")?;
        let agent = Arc::new(Agent {
            settings,
            cgroup_root,
            driver,
            ports,
            programs: Mutex::new(programs),
            original_dst,
            ca: Arc::new(ca),
            upstream_tls,
            docker,
            session_files,
            sessions: Mutex::new(HashMap::new()),
            approvals,
            events,
            trust,
            building: Mutex::new(std::collections::HashSet::new()),
            config,
            denials: Mutex::new(std::collections::VecDeque::new()),
        });
        tokio::spawn(count_decisions(
            Arc::downgrade(&agent),
            agent.events.subscribe(),
        ));
        session::adopt_all(&agent).await;
        Ok(agent)
    }

    /// Stops every session (the agent is exiting normally).
    pub async fn stop_all(self: &Arc<Agent>) {
        let ids: Vec<String> = self.sessions().keys().cloned().collect();
        for id in ids {
            session::stop(self, &id, "the agent stopped").await;
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    fn pins_dir(&self, id: &str) -> PathBuf {
        self.settings.bpf_dir.join("sessions").join(id)
    }

    /// The config as it describes `uid`'s sessions: the agent's config file read now (a
    /// workspace added since the agent started counts), with `~` and `$HOME` meaning that
    /// user's home (from the passwd database), never root's. A file that no longer loads
    /// gives the last version that did, saying why ([`live_config`]); when none loads, an
    /// error naming the line and key. Running sessions are not touched by either.
    pub fn config_for(&self, uid: u32) -> anyhow::Result<live_config::ForUser> {
        let env = user_env(uid)?;
        self.config.for_user(&env).with_context(|| {
            format!(
                "the agent's config {} no longer loads (fix it; running sessions keep running)",
                self.settings.config_path.display()
            )
        })
    }

    /// The config a session of `uid` started with ([`live_config::SNAPSHOT`]), checked again
    /// for that user; `None` when the session has none (started by an older agent).
    fn session_config(&self, id: &str, uid: u32) -> anyhow::Result<Option<Config>> {
        let path = self.session_dir(id).join(live_config::SNAPSHOT);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let config = crate::config::load::check(&text, &self.settings.config_path, &user_env(uid)?)
            .with_context(|| format!("the config session {id} started with no longer loads"))?;
        Ok(Some(config))
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.settings.state_dir.join("sessions").join(id)
    }
}

/// The config environment of `uid`: `~` and `$HOME` are their home (passwd), never root's.
fn user_env(uid: u32) -> anyhow::Result<crate::config::Env> {
    let home = crate::sys::users::home_of(uid)
        .with_context(|| format!("cannot find the home directory of uid {uid}"))?;
    Ok(crate::config::Env {
        home: Some(home),
        xdg_config_home: None,
    })
}

/// What of the config the agent applied at start and cannot change while it runs (the ports
/// its listeners are bound to, the session files written for the control token's variable):
/// which of them a new version changes.
fn restart_only(started: &Config) -> impl Fn(&Config) -> Vec<String> + Send + 'static {
    let was = started.defaults.clone();
    move |now: &Config| {
        let now = &now.defaults;
        let mut changed = Vec::new();
        if now.proxy.proxy_port != was.proxy.proxy_port {
            changed.push("defaults.proxy.proxy_port".to_owned());
        }
        if now.control.server_port != was.control.server_port {
            changed.push("defaults.control.server_port".to_owned());
        }
        if now.control.token_env_var != was.control.token_env_var {
            changed.push("defaults.control.token_env_var".to_owned());
        }
        changed
    }
}

/// Keeps each session's allowed/denied counts (what `hh session list` and the TUI show) from
/// the decisions its proxy reports, until the agent goes away.
async fn count_decisions(agent: std::sync::Weak<Agent>, mut events: broadcast::Receiver<Event>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "decision counter lagged");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Event::Decision(decision) = event else {
            continue;
        };
        let Some(agent) = agent.upgrade() else {
            return;
        };
        let Some(session) = agent.sessions().get(&decision.session).cloned() else {
            continue;
        };
        session.count(decision.decision == "allow");
        if let Some(request) = wanting_a_rule(&decision) {
            let (owner_uid, workspace) = {
                let info = session
                    .info
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                (info.owner_uid, info.workspace.clone())
            };
            let mut denials = agent
                .denials
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if denials.len() == DENIALS_KEPT {
                denials.pop_front();
            }
            denials.push_back(Denial {
                time_ms: decision.time_ms,
                owner_uid,
                workspace,
                request,
            });
        }
    }
}

/// The request of a denial that no rule decided (a prompt unanswered, denied once, or not
/// asked for too many waiting), as the proxy decided it; `None` for any other decision.
fn wanting_a_rule(decision: &crate::api::protocol::DecisionEvent) -> Option<crate::rules::Request> {
    use crate::proxy::decision::{ASK_DENIED_ONCE, ASK_QUEUE_FULL, ASK_TIMED_OUT};
    use crate::rules::{Host, HttpTarget, Method, NormPath, Request};
    let asked = decision
        .rule
        .as_deref()
        .is_some_and(|rule| [ASK_TIMED_OUT, ASK_DENIED_ONCE, ASK_QUEUE_FULL].contains(&rule));
    if decision.decision != "deny" || !asked {
        return None;
    }
    let http = match (&decision.method, &decision.path) {
        (Some(method), Some(path)) => Some(HttpTarget {
            method: Method::parse(method).ok()?,
            path: NormPath::parse(path).ok()?,
        }),
        _ => None,
    };
    Some(Request {
        host: Host::parse(&decision.host).ok()?,
        port: decision.port,
        http,
    })
}

impl Agent {
    /// The rules that would have admitted `workspace`'s requests of `uid`'s sessions (root:
    /// everyone's) denied for want of one since `since_ms`.
    pub fn suggest_rules(
        &self,
        uid: Option<u32>,
        workspace: &str,
        since_ms: u64,
    ) -> Vec<crate::rules::suggest::Suggestion> {
        let denied: Vec<crate::rules::Request> = self
            .denials
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|denial| {
                denial.workspace == workspace
                    && denial.time_ms >= since_ms
                    && uid.is_none_or(|uid| denial.owner_uid == uid)
            })
            .map(|denial| denial.request.clone())
            .collect();
        crate::rules::suggest::suggest(&denied)
    }
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
