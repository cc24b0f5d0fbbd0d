//! One session's life: start (cgroup and programs first, then the container, then its
//! listeners and the canary), adoption by a restarted agent, and teardown.
//!
//! Teardown is one function for every ending (`hh session stop`, `killme`, the container
//! exiting, a failed start, the agent exiting) and tolerates parts that never existed, so a
//! half-started session is cleaned by the same code as a finished one.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    os::unix::fs::{PermissionsExt as _, chown},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, anyhow, bail};
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};
use tracing::Instrument as _;

use super::{
    Agent,
    access::{FileId, Identity, MountCheck},
    container::label,
    control::{self, ControlState},
    forwards,
    placement::Placement,
    plan::{self, SessionPlan},
    published, random_hex, usage,
};
use crate::{
    api::{
        protocol::{Event, SessionInfo, SessionState, StartSession},
        server::Peer,
    },
    audit::AuditLog,
    config::Config,
    dns::{self, SyntheticAddresses},
    enforce::ebpf::unpin_session,
    proxy::{
        decision::{DecisionEngine, EngineSetup, PolicyFn, RulesWriter},
        push_guard::PushGuard,
        secrets::{Secrets, SessionSecret},
        state::{IDLE_TIMEOUT, Proxy, ProxySetup, UPSTREAM_CONNECT_TIMEOUT, UPSTREAM_KEEP},
        tool_calls::ToolCalls,
        transparent::{self, TransparentFront},
        upstream::Upstream,
    },
    rules::{DomainPattern, PolicySources, WatchedPolicy},
    sys::netns,
    tls::leaf::{DEFAULT_CAPACITY, LeafCache},
};

/// A session the agent serves.
pub struct Session {
    pub info: Mutex<SessionInfo>,
    pub placement: Placement,
    control: Arc<ControlState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    /// The session's policy, for a look at its trusted copies now (a rule added or a
    /// version trusted must count from the next request, not the next interval).
    policy: Arc<WatchedPolicy>,
}

impl Session {
    /// Looks at the session's rules now: after a rule was added or a version trusted.
    pub fn reload_rules(&self) {
        drop(self.policy.look_now());
    }

    /// The session as a client sees it, with fresh cgroup figures.
    pub fn snapshot(&self, cgroup_root: &Path) -> SessionInfo {
        let mut info = self
            .info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let dir = self.placement.dir(cgroup_root);
        info.memory_bytes = usage::memory_bytes(&dir, &self.placement.relative);
        info.cpu_usec = usage::cpu_usec(&dir, &self.placement.relative);
        info
    }

    /// Counts one decision of the session's proxy.
    pub fn count(&self, allowed: bool) {
        let mut info = self
            .info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if allowed {
            info.allowed += 1;
        } else {
            info.denied += 1;
        }
    }

    pub fn owner(&self) -> u32 {
        self.info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .owner_uid
    }
}

/// Starts a session for `peer`; returns once it is enforced and ready, or fails with every
/// part it made removed again.
pub async fn start(
    agent: &Arc<Agent>,
    peer: Peer,
    request: StartSession,
) -> anyhow::Result<SessionInfo> {
    let id = random_hex(6)?;
    let token = random_hex(32)?;
    let placement = Placement::new(agent.driver, &agent.settings.cgroup_group, &id);
    let session_dir = agent.session_dir(&id);
    let started_at = unix_now();
    let identity = Identity::of_process(peer.uid, peer.gid, peer.pid);
    // The user's sessions as the config describes them for this user (`~` is their home).
    let for_user = tokio::task::block_in_place(|| agent.config_for(peer.uid))?;
    let config = &for_user.config;
    let agent_config = &agent.settings.config;
    let config_source = agent.settings.config_path.display().to_string();
    // The user's own build of the template's stem, else root's (planning refuses a template
    // that does not exist).
    let image = match config.container_profiles.get(&request.template) {
        Some(profile) => Some(agent.docker.session_image(&profile.image, peer.uid).await?),
        None => None,
    };
    let context = plan::Context {
        id: &id,
        token: &token,
        // What the session files were written for at the agent's start.
        token_var: &agent_config.defaults.control.token_env_var,
        control_port: agent_config.defaults.control.server_port,
        proxy_port: agent.ports.proxy,
        session_files: &agent.session_files,
        session_dir: &session_dir,
        cgroup_parent: &placement.docker_parent,
        group: &agent.settings.cgroup_group,
        started_at,
        config_source: &config_source,
        image: image.as_ref(),
    };
    // Planning checks the requested paths on the filesystem as the user; a path on a FUSE
    // mount the user serves can stall there. Off the async workers' duty meanwhile (the agent's
    // runtime is multi-threaded), so every session's proxy keeps running.
    let plan = tokio::task::block_in_place(|| {
        plan::plan(config, &request, &identity, peer.gid, &context)
    })?;
    tracing::info!(
        id,
        name = plan.name,
        workspace = plan.workspace,
        uid = peer.uid,
        "starting session"
    );
    match build(agent, &plan, &for_user, &placement, &token, peer.gid).await {
        Ok(session) => {
            let mut info = session.snapshot(&agent.cgroup_root);
            agent.emit(Event::SessionStarted(info.clone()));
            info.notices.extend(for_user.stale.clone());
            Ok(info)
        }
        Err(error) => {
            tracing::warn!(
                id,
                error = format!("{error:#}"),
                "session start failed; cleaning up"
            );
            // The container may exist already; it carries the session's label. When Docker
            // cannot say, the session's programs stay attached (fail closed) and the next
            // agent start clears what is left.
            match agent.docker.sessions(&agent.settings.cgroup_group).await {
                Ok(containers) => {
                    let container = containers
                        .iter()
                        .find(|found| found.labels.get(label::SESSION) == Some(&id))
                        .map(|found| found.id.as_str());
                    teardown(agent, &id, &placement, container).await;
                }
                Err(list_error) => {
                    tracing::error!(id, %list_error, "cannot tell whether the failed session's container exists; leaving its programs attached");
                }
            }
            Err(error)
        }
    }
}

async fn build(
    agent: &Arc<Agent>,
    plan: &SessionPlan,
    for_user: &super::live_config::ForUser,
    placement: &Placement,
    token: &str,
    gid: u32,
) -> anyhow::Result<Arc<Session>> {
    let config = &for_user.config;
    // Rules that do not load stop the start before anything exists.
    let policy = session_policy(agent, plan.policy.clone(), plan.owner_uid)?;
    let session_dir = agent.session_dir(&plan.id);
    std::fs::create_dir_all(&session_dir)
        .with_context(|| format!("cannot create {}", session_dir.display()))?;
    // Entered (not listed) by the session's user, for its seed copies: the session's own
    // directory and the one above it (made 0700 by the agent's umask).
    for dir in [session_dir.parent(), Some(session_dir.as_path())]
        .into_iter()
        .flatten()
    {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot open {} to the session's user", dir.display()))?;
    }
    write_config_snapshot(&session_dir, &for_user.text)?;
    let seed_checks = copy_seeds(plan, &session_dir, gid).await?;
    let mount_checks: Vec<MountCheck> = plan
        .container
        .mount_checks
        .iter()
        .cloned()
        .chain(seed_checks)
        .collect();

    // Enforcement first: the cgroup exists and the programs are attached (and pinned) before
    // any process of the session does.
    let cgroup = placement.create(&agent.cgroup_root).with_context(|| {
        format!(
            "cannot create the session cgroup {}",
            placement.relative.display()
        )
    })?;
    let links = agent
        .programs
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .attach(&cgroup)?;
    links.pin(&agent.pins_dir(&plan.id))?;

    let container_id = agent.docker.create_and_start(&plan.container).await?;
    let info = SessionInfo {
        id: plan.id.clone(),
        name: plan.name.clone(),
        workspace: plan.workspace.clone(),
        template: plan.template.clone(),
        owner_uid: plan.owner_uid,
        container_id: container_id.clone(),
        started_at: unix_now(),
        state: SessionState::Starting,
        memory_bytes: None,
        cpu_usec: None,
        allowed: 0,
        denied: 0,
        protected_paths: plan.protected_paths.clone(),
        git: plan.git.clone(),
        ports: Vec::new(),
        image: plan.image.clone(),
        notices: Vec::new(),
        harness: plan.harness.clone(),
    };
    let (session, canary) = serve(
        agent,
        config,
        info,
        placement.clone(),
        &mount_checks,
        SessionRules {
            policy,
            file: plan.rules_file.clone(),
            secrets: Secrets::new(
                plan.secrets
                    .iter()
                    .map(|secret| {
                        SessionSecret::new(
                            &secret.spec,
                            secret.placeholder.clone(),
                            Some(secret.value.clone()),
                        )
                    })
                    .collect(),
            ),
        },
        token,
    )
    .await?;
    let seen = tokio::time::timeout(agent.settings.canary_timeout, canary.notified()).await;
    if seen.is_err() {
        bail!(
            "the session's traffic is not intercepted: its canary connection never reached the \
             proxy within {:?}. The container runtime may not run the cgroup's eBPF programs \
             (gVisor, Kata and other sandboxed runtimes do not); hh cannot enforce a policy there",
            agent.settings.canary_timeout
        );
    }
    if let Some(command) = &plan.pre_start {
        run_pre_start(agent, &session, &plan.workspace, command).await?;
    }
    session.control.ready.store(true, Ordering::Release);
    set_state(&session, SessionState::Running);
    Ok(session)
}

/// How long a workspace's `pre_start` may take.
const PRE_START_LIMIT: Duration = Duration::from_secs(300);

/// Runs the workspace's `pre_start` in the session (its network enforced, its command not yet
/// started); its failure, with the end of what it printed, fails the start.
async fn run_pre_start(
    agent: &Arc<Agent>,
    session: &Session,
    workspace: &str,
    command: &str,
) -> anyhow::Result<()> {
    let container = session
        .info
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .container_id
        .clone();
    let argv = ["sh", "-c", command].map(str::to_owned).to_vec();
    let ran = tokio::time::timeout(
        PRE_START_LIMIT,
        super::exec::run_captured(agent, &container, argv),
    )
    .await;
    match ran {
        Ok(Ok((0, _))) => Ok(()),
        Ok(Ok((status, said))) => bail!(
            "workspace {workspace}'s pre_start exited {status}: {}",
            crate::terminal_text::text_for_terminal(said.trim())
        ),
        Ok(Err(error)) => Err(error.context(format!("workspace {workspace}'s pre_start"))),
        Err(_) => bail!(
            "workspace {workspace}'s pre_start did not finish within {} s",
            PRE_START_LIMIT.as_secs()
        ),
    }
}

/// The policy a session of `owner_uid`'s runs under: the versions of its rules files a person
/// trusted (and their deny rules as they read), never the files as they read (rules::trust).
fn session_policy(
    agent: &Agent,
    sources: PolicySources,
    owner_uid: u32,
) -> anyhow::Result<WatchedPolicy> {
    WatchedPolicy::load(PolicySources {
        trust: Some(Arc::clone(&agent.trust)),
        owner: super::trusted_rules::owner_for(owner_uid),
        ..sources
    })
    .context("the session's rules do not load")
}

/// What a session's proxy goes by: its policy, the rules file its "forever" answers go to, and
/// the secrets it puts into requests.
struct SessionRules {
    policy: WatchedPolicy,
    file: PathBuf,
    secrets: Secrets,
}

/// Opens the session's listeners inside its container's network namespace, starts serving
/// them, registers the session and watches for its end. Returns the canary's notifier.
/// `mount_checks`: what the container's mounts must be (checked when it was planned; empty for
/// a session adopted after a restart, which was checked when it started).
async fn serve(
    agent: &Arc<Agent>,
    session_config: &Config,
    info: SessionInfo,
    placement: Placement,
    mount_checks: &[MountCheck],
    rules: SessionRules,
    token: &str,
) -> anyhow::Result<(Arc<Session>, Arc<Notify>)> {
    let SessionRules {
        policy,
        file: rules_file,
        secrets,
    } = rules;
    let id = info.id.clone();
    let process = agent
        .docker
        .session_process(&info.container_id, &placement.relative)
        .await?;
    process
        .verify_mounts(mount_checks)
        .context("the container's mounts are not what was checked")?;
    process
        .verify_seccomp_filter()
        .context("the session's container is not confined by hh's seccomp profile")?;
    let netns = process
        .network_namespace()
        .context("cannot open the session's network namespace")?;
    let config = &agent.settings.config.defaults;
    let proxy_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, agent.ports.proxy);
    let control_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, config.control.server_port);
    let dns_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, agent.ports.dns);
    let forwarded = localhost_forwards(session_config, &info.template);
    let ports_netns = netns
        .try_clone()
        .context("cannot hold the session's network namespace")?;
    let published_ports = session_config
        .workspace(&info.workspace)
        .map(|workspace| workspace.ports.clone())
        .unwrap_or_default();
    let published_listeners = published::bind(&published_ports)?;
    let (proxy_listener, control_listener, dns_socket, forward_listeners) =
        tokio::task::spawn_blocking(move || {
            netns::bind_in_namespace(netns, move || {
                let proxy = std::net::TcpListener::bind(proxy_addr)?;
                let control = std::net::TcpListener::bind(control_addr)?;
                let dns = std::net::UdpSocket::bind(dns_addr)?;
                for fd in [&proxy as &dyn SetNonblocking, &control, &dns] {
                    fd.nonblocking()?;
                }
                Ok((proxy, control, dns, forwards::bind(&forwarded)?))
            })
        })
        .await?
        .context("cannot open the session's listeners in its network namespace")?;

    let audit = AuditLog::open(&agent.settings.state_dir.join("logs"))?;
    let workspace = info.workspace.clone();
    let policy = Arc::new(policy);
    let written = Arc::clone(&policy);
    let kept = Arc::clone(&policy);
    let current: PolicyFn = Arc::new(move || policy.current());
    let tool_calls = Arc::new(ToolCalls::default());
    let engine = DecisionEngine::new(EngineSetup {
        tool_calls: Some(Arc::clone(&tool_calls)),
        session: id.clone(),
        policy: Arc::clone(&current),
        approvals: Arc::clone(&agent.approvals),
        rules_file: rules_file.clone(),
        rules_writer: RulesWriter::Trusted {
            store: Arc::clone(&agent.trust),
            owner: super::trusted_rules::owner_for(info.owner_uid),
        },
        rules_target: format!("--workspace {workspace}"),
        audit: Some(audit),
        // A rule written by a "forever" answer counts from the very next request.
        on_rules_written: Some(Arc::new(move || drop(written.look_now()))),
        push_guard: info
            .git
            .as_ref()
            .map(|git| PushGuard::for_origin(git.origin.as_deref())),
    });
    let upstream = Upstream::new(
        agent.settings.resolve.clone(),
        agent.settings.dial_grants.clone(),
        Arc::clone(&agent.upstream_tls),
        UPSTREAM_CONNECT_TIMEOUT,
    );
    let proxy = Arc::new(Proxy::assemble(ProxySetup {
        engine,
        upstream,
        address_rules: current,
        leaves: LeafCache::new(Arc::clone(&agent.ca), DEFAULT_CAPACITY),
        idle_timeout: IDLE_TIMEOUT,
        upstream_keep: UPSTREAM_KEEP,
        secrets,
    }));
    let names = Arc::new(SyntheticAddresses::default());
    let canary = Arc::new(Notify::new());
    let front = Arc::new(TransparentFront {
        proxy,
        original_dst: Arc::clone(&agent.original_dst),
        names: Arc::clone(&names),
        canary: Arc::clone(&canary),
        bypass: bypass_patterns(session_config, &info.template),
    });
    let control = Arc::new(ControlState {
        identity: serde_json::json!({
            "id": info.id, "name": info.name, "workspace": info.workspace, "template": info.template,
        }),
        token: token.to_owned(),
        ready: AtomicBool::new(false),
        kill: Notify::new(),
        tool_calls,
    });
    let proxy_listener = TcpListener::from_std(proxy_listener)?;
    let control_listener = TcpListener::from_std(control_listener)?;
    let dns_socket = tokio::net::UdpSocket::from_std(dns_socket)?;
    // Every line the session's proxy, DNS stub, control server and forwards log says whose
    // it is: `session{id=…}`.
    let span = tracing::info_span!("session", id = %id);
    let mut tasks = vec![
        tokio::spawn(
            async move {
                if let Err(error) = transparent::serve(proxy_listener, front).await {
                    tracing::error!(%error, "session proxy listener failed");
                }
            }
            .instrument(span.clone()),
        ),
        tokio::spawn(
            control::serve(control_listener, Arc::clone(&control)).instrument(span.clone()),
        ),
        tokio::spawn(
            dns::serve(dns_socket, names, dns::Limits::default()).instrument(span.clone()),
        ),
    ];
    let forward_audit = AuditLog::open(&agent.settings.state_dir.join("logs"))?;
    let forward_audit = Some(Arc::new(forward_audit));
    for (ports, listener) in forward_listeners {
        let forward = Arc::new(forwards::Forward {
            session: id.clone(),
            ports,
            audit: forward_audit.clone(),
        });
        let listener = TcpListener::from_std(listener)?;
        tasks.push(tokio::spawn(
            forwards::serve(listener, forward).instrument(span.clone()),
        ));
    }
    for (port, listener) in published_listeners {
        let published = Arc::new(published::Published {
            session: id.clone(),
            port,
            netns: ports_netns
                .try_clone()
                .context("cannot hold the session's network namespace")?,
            audit: forward_audit.clone(),
        });
        tasks.push(tokio::spawn(
            published::serve(listener, published).instrument(span.clone()),
        ));
    }
    let mut info = info;
    info.ports = published_ports.iter().map(ToString::to_string).collect();
    let session = Arc::new(Session {
        info: Mutex::new(info.clone()),
        placement,
        control: Arc::clone(&control),
        tasks: Mutex::new(tasks),
        stopping: AtomicBool::new(false),
        policy: kept,
    });
    agent.sessions().insert(id.clone(), Arc::clone(&session));

    // The session ends when its container does, or when it asks to (killme).
    let watcher_agent = Arc::clone(agent);
    let container_id = info.container_id.clone();
    let watcher = tokio::spawn(async move {
        let reason = tokio::select! {
            () = watcher_agent.docker.wait(&container_id) => "its container exited",
            () = control.kill.notified() => "killme",
        };
        stop(&watcher_agent, &id, reason).await;
    });
    session
        .tasks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(watcher);
    Ok((session, canary))
}

/// Stops the session `id`: removes its container, programs, cgroup and files. Returns whether
/// there was such a session.
pub async fn stop(agent: &Arc<Agent>, id: &str, reason: &str) -> bool {
    let Some(session) = agent.sessions().get(id).cloned() else {
        return false;
    };
    if session.stopping.swap(true, Ordering::AcqRel) {
        return true;
    }
    set_state(&session, SessionState::Stopping);
    tracing::info!(id, reason, "stopping session");
    let container_id = session
        .info
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .container_id
        .clone();
    teardown(agent, id, &session.placement, Some(&container_id)).await;
    let tasks = std::mem::take(
        &mut *session
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    agent.sessions().remove(id);
    agent.approvals.end_session(id);
    agent.emit(Event::SessionEnded {
        id: id.to_owned(),
        reason: reason.to_owned(),
        owner_uid: session.owner(),
    });
    // Last: this may be running on the watcher task itself.
    for task in tasks {
        task.abort();
    }
    true
}

/// Removes whatever exists of session `id`: container, pinned programs, cgroup, files.
async fn teardown(agent: &Arc<Agent>, id: &str, placement: &Placement, container: Option<&str>) {
    if let Some(container) = container
        && let Err(error) = agent.docker.remove(container).await
    {
        // Its processes may still run: keep the programs attached (cut off, never open); the
        // next agent start finds the container by its label and tries again.
        tracing::error!(id, %error, "cannot remove the session's container; its programs stay attached");
        return;
    }
    let pins = agent.pins_dir(id);
    if pins.exists()
        && let Err(error) = unpin_session(&pins)
    {
        tracing::warn!(id, %error, "cannot unpin the session's programs");
    }
    let root = agent.cgroup_root.clone();
    let placement = placement.clone();
    let removed = tokio::task::spawn_blocking(move || placement.remove(&root)).await;
    if let Ok(Err(error)) = removed {
        tracing::warn!(id, %error, "cannot remove the session's cgroup");
    }
    let dir = agent.session_dir(id);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(id, %error, "cannot remove {}", dir.display());
    }
}

/// Keeps the config text the session starts with ([`super::live_config::SNAPSHOT`]): root's,
/// 0600, in the session's directory (root's; the session's user may enter it, not write it).
fn write_config_snapshot(session_dir: &Path, text: &str) -> anyhow::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let path = session_dir.join(super::live_config::SNAPSHOT);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Serves the sessions a previous agent left running, and clears what is left of the others:
/// the pinned programs kept them cut off meanwhile (fail closed).
pub async fn adopt_all(agent: &Arc<Agent>) {
    let found = match agent.docker.sessions(&agent.settings.cgroup_group).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "cannot list session containers; none adopted");
            return;
        }
    };
    for container in found {
        let Some(id) = container.labels.get(label::SESSION).cloned() else {
            continue;
        };
        let placement = Placement::new(agent.driver, &agent.settings.cgroup_group, &id);
        if !valid_id(&id) || agent.settings.cgroup_group.is_empty() {
            continue;
        }
        if container.running && agent.pins_dir(&id).is_dir() {
            match adopt(
                agent,
                &id,
                &container.id,
                &container.labels,
                placement.clone(),
            )
            .await
            {
                Ok(()) => {
                    tracing::info!(id, "adopted a running session");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(
                        id,
                        error = format!("{error:#}"),
                        "cannot adopt session; removing it"
                    );
                }
            }
        }
        teardown(agent, &id, &placement, Some(&container.id)).await;
    }
    // Pins whose container is gone.
    let adopted: Vec<String> = agent.sessions().keys().cloned().collect();
    if let Ok(entries) = std::fs::read_dir(agent.settings.bpf_dir.join("sessions")) {
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if valid_id(&id) && !adopted.contains(&id) {
                let placement = Placement::new(agent.driver, &agent.settings.cgroup_group, &id);
                teardown(agent, &id, &placement, None).await;
            }
        }
    }
}

async fn adopt(
    agent: &Arc<Agent>,
    id: &str,
    container_id: &str,
    labels: &std::collections::HashMap<String, String>,
    placement: Placement,
) -> anyhow::Result<()> {
    let get = |key: &str| {
        labels
            .get(key)
            .cloned()
            .ok_or_else(|| anyhow!("label {key} missing"))
    };
    let workspace = get(label::WORKSPACE)?;
    let template = get(label::TEMPLATE)?;
    let owner_uid: u32 = get(label::OWNER_UID)?.parse().context("owner uid label")?;
    // The config it started with; the file as it reads now only for a session an older
    // agent started.
    let config = &match tokio::task::block_in_place(|| agent.session_config(id, owner_uid))? {
        Some(config) => config,
        None => {
            let for_user = tokio::task::block_in_place(|| agent.config_for(owner_uid))?;
            if let Some(why) = &for_user.stale {
                tracing::warn!(why, "adopting a session with the config that loaded last");
            }
            for_user.config
        }
    };
    let harness = match labels.get(label::HARNESS).map(String::as_str) {
        None | Some("") => None,
        Some(name) => Some(crate::harness::find(name, &config.harnesses)?),
    };
    let (policy, rules_file) = plan::policy_sources(
        config,
        &workspace,
        &template,
        harness.clone(),
        &agent.settings.config_path.display().to_string(),
    )?;
    let token_var = format!("{}=", agent.settings.config.defaults.control.token_env_var);
    let environment = agent.docker.env(container_id).await?;
    let token = environment
        .iter()
        .find_map(|entry| entry.strip_prefix(&token_var).map(str::to_owned))
        .ok_or_else(|| anyhow!("the container has no control token"))?;
    let info = SessionInfo {
        id: id.to_owned(),
        name: get(label::NAME)?,
        workspace,
        template,
        owner_uid,
        container_id: container_id.to_owned(),
        started_at: get(label::STARTED_AT)?.parse().unwrap_or(0),
        state: SessionState::Running,
        memory_bytes: None,
        cpu_usec: None,
        allowed: 0,
        denied: 0,
        protected_paths: labels
            .get(label::PROTECTED)
            .map(|joined| {
                joined
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        image: labels.get(label::IMAGE).cloned().unwrap_or_default(),
        git: match (
            labels.get(label::GIT_CLONE),
            labels.get(label::GIT_REPOSITORY),
        ) {
            (Some(clone), Some(repository)) if !clone.is_empty() => {
                Some(crate::api::protocol::GitClone {
                    clone: clone.into(),
                    repository: repository.into(),
                    origin: labels
                        .get(label::GIT_ORIGIN)
                        .filter(|origin| !origin.is_empty())
                        .cloned(),
                })
            }
            _ => None,
        },
        ports: Vec::new(),
        notices: Vec::new(),
        harness: harness.map(|harness| harness.name.to_owned()),
    };
    let policy = session_policy(agent, policy, owner_uid)?;
    let secrets = adopted_secrets(config, labels, &environment);
    let (session, _canary) = serve(
        agent,
        config,
        info,
        placement,
        &[],
        SessionRules {
            policy,
            file: rules_file,
            secrets,
        },
        &token,
    )
    .await?;
    session.control.ready.store(true, Ordering::Release);
    Ok(())
}

/// The secrets of a session adopted after a restart: its placeholders (from its container's
/// environment, for the secrets its label names), without their values, which the agent kept in
/// memory only: a request that carries one is refused, saying so.
fn adopted_secrets(
    config: &Config,
    labels: &std::collections::HashMap<String, String>,
    environment: &[String],
) -> Secrets {
    let named = labels.get(label::SECRETS).map_or("", String::as_str);
    let secrets = named
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(name, variable)| {
            let spec = config.secrets.iter().find(|spec| spec.name == name)?;
            let prefix = format!("{variable}=");
            let placeholder = environment
                .iter()
                .find_map(|entry| entry.strip_prefix(&prefix))?;
            Some(SessionSecret::new(spec, placeholder.to_owned(), None))
        })
        .collect();
    Secrets::new(secrets)
}

/// The hosts a session's proxy splices without terminating TLS: the config's and the
/// template's `bypass_proxy` (both checked when the config loaded).
fn bypass_patterns(config: &Config, template: &str) -> Vec<DomainPattern> {
    let profile = config
        .container_profiles
        .get(template)
        .map(|profile| profile.bypass_proxy.as_slice())
        .unwrap_or_default();
    config
        .defaults
        .containers
        .bypass_proxy
        .iter()
        .chain(profile)
        .filter_map(|text| DomainPattern::parse(text).ok())
        .collect()
}

/// The config's and the template's `localhost_forwards` (checked when the config loaded).
fn localhost_forwards(
    config: &Config,
    template: &str,
) -> Vec<crate::config::schema::LocalhostForward> {
    let profile = config
        .container_profiles
        .get(template)
        .map(|profile| profile.localhost_forwards.as_slice())
        .unwrap_or_default();
    config
        .defaults
        .containers
        .localhost_forwards
        .iter()
        .chain(profile)
        .copied()
        .collect()
}

/// Session ids are the agent's own hex; anything else under its directories is not touched.
fn valid_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn set_state(session: &Session, state: SessionState) {
    session
        .info
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .state = state;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Under a session's directory: where the user's `cp` writes the seed copies.
const SEEDS_STAGING_DIR: &str = "seeds-staging";

/// How long copying one session's seeds may take.
const SEED_TIMEOUT: Duration = Duration::from_secs(120);

/// Makes the per-session copies of `seed = true` mounts, and returns what the container must
/// then show at each. The copy runs as the session's user (never as root): it reads only what
/// that user may read, whatever links, devices or FIFOs the tree holds, and `cp -P` copies
/// symlinks as links instead of following them. It writes into a staging directory the user
/// owns; each copy is then moved (`renameat` on descriptors) into the seeds directory, which
/// is root's: Docker, as root, resolves only paths no user can change, and a copy the user
/// swapped for a symlink in the meantime is refused.
async fn copy_seeds(
    plan: &SessionPlan,
    session_dir: &Path,
    gid: u32,
) -> anyhow::Result<Vec<MountCheck>> {
    let Some(first) = plan.seeds.first() else {
        return Ok(Vec::new());
    };
    let seeds_dir = first.copy.parent().unwrap_or(session_dir).to_path_buf();
    let staging = session_dir.join(SEEDS_STAGING_DIR);
    // Both 0700: the copies are the user's files, for no other user to read; Docker is root.
    for (dir, mode) in [(&seeds_dir, 0o700), (&staging, 0o700)] {
        std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    // Inside the session's own directory (root's, 0711): no user can swap these paths.
    chown(&staging, Some(plan.owner_uid), Some(gid))?;
    let mut checks = Vec::new();
    for seed in &plan.seeds {
        let name = seed
            .copy
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| anyhow!("bad seed copy path {}", seed.copy.display()))?;
        let copying = tokio::process::Command::new("cp")
            .args(["-R", "-P", "--preserve=mode,timestamps", "--"])
            .arg(&seed.source)
            .arg(staging.join(name))
            .uid(plan.owner_uid)
            .gid(gid)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(SEED_TIMEOUT, copying)
            .await
            .map_err(|_| {
                anyhow!(
                    "copying {} took longer than {SEED_TIMEOUT:?}",
                    seed.source.display()
                )
            })?
            .context("cannot run cp")?;
        if !output.status.success() {
            bail!(
                "cannot copy {} for the session: {}",
                seed.source.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let (dev, ino) = tokio::task::block_in_place(|| {
            crate::sys::owned_dir::move_entry(&staging, &seeds_dir, name)
        })
        .with_context(|| format!("cannot take the copy of {}", seed.source.display()))?;
        checks.push(MountCheck {
            container: seed.container.clone(),
            file: FileId { dev, ino },
        });
    }
    Ok(checks)
}

/// `set_nonblocking` for the three socket types bound in a session's namespace.
trait SetNonblocking {
    fn nonblocking(&self) -> std::io::Result<()>;
}

impl SetNonblocking for std::net::TcpListener {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(true)
    }
}

impl SetNonblocking for std::net::UdpSocket {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(true)
    }
}
