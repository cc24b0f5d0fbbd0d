//! Turning a client's [`StartSession`] into what the agent builds: the container's
//! [`ContainerPlan`], the files to seed, and the session's policy sources.
//!
//! Everything a client names is checked here, against the agent's config and the client's own
//! permissions ([`super::access`]); the rest of the agent trusts a [`SessionPlan`].

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{
    access::{AccessError, FileId, Identity, MountCheck, check_mountable},
    container::{ContainerPlan, SessionImage, label},
};
use crate::{
    api::protocol::{GitClone, StartSession},
    config::{
        Config, WorkspaceMode,
        schema::{Mount, MountMode},
    },
    rules::PolicySources,
    sys::owned_dir::OwnedDir,
};

/// Where the agent's session files (init, killme, CA) appear in every container.
pub const SESSION_FILES_MOUNT: &str = "/opt/hh";
/// Under a session's own directory: the per-session copies of `seed = true` mounts.
pub const SEEDS_DIR: &str = "seeds";
/// Where the workspace appears.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// The session user's home: a tmpfs of their own (0700), gone when the session stops, so that
/// every CLI has somewhere to write its config and cache whatever the image's users are (an
/// image rarely has the host user's uid). A template's `env` may set another `HOME`.
pub const SESSION_HOME: &str = "/home/hh";

/// `PATH` for an image that sets none (Docker's own default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The session files' copy of [`crate::harness::NETWORK_NOTE`].
pub const NETWORK_NOTE_FILE: &str = "network-note.md";

/// The session files' bundle: the session CA, then the host's roots.
pub const SESSION_BUNDLE: &str = "ca-bundle.pem";

/// The system trust stores the bundle is mounted over: Debian, Ubuntu and Alpine's; Fedora,
/// RHEL and Amazon Linux's.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Variables that make common tools trust a CA bundle (the session CA plus the host's roots).
const CA_BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "DENO_CERT",
    "AWS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
    "PIP_CERT",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("no workspace `{0}` in the agent's config (add it under [[workspaces]])")]
    UnknownWorkspace(String),
    #[error("no template `{0}` in the agent's config (add [container_profiles.{0}])")]
    UnknownTemplate(String),
    #[error("session name `{0}` may only contain a-z, 0-9, `-` and `_` (at most 40)")]
    BadName(String),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    UnknownHarness(#[from] crate::harness::UnknownHarness),
    #[error(
        "{mount} would be writable in the session and contains {protected}: a session may not \
         write hh's config or rules (mount it read-only, or move the workspace)"
    )]
    ExposesRules { mount: PathBuf, protected: PathBuf },
    #[error("mount {path}: a path with `:` or `,` cannot be handed to Docker unambiguously")]
    AmbiguousPath { path: PathBuf },
    #[error(
        "workspace {path} cannot be mounted at its host path: {reason} (set \
         mount_at_host_path = false to see it at /workspace)"
    )]
    HostPathReserved { path: PathBuf, reason: &'static str },
    #[error(
        "protected path {path}: {reason} (list it out of the workspace's protected_paths to \
         start anyway)"
    )]
    Protected { path: PathBuf, reason: String },
    #[error(
        "workspace {workspace} is in git mode: its sessions work on a clone, which hh session \
         start makes (a client that does not know git mode cannot start it; `--git` asks for one)"
    )]
    GitModeNeedsClone { workspace: String },
    #[error("git clone {path}: {reason}")]
    GitClone { path: PathBuf, reason: String },
    #[error("git origin: not one line of plain text of at most 2048 bytes")]
    GitOrigin,
    #[error("no secret `{0}` in the agent's config ([[secrets]])")]
    UnknownSecret(String),
    #[error("secret `{0}`: its value must be one line of at most 8 KiB")]
    BadSecret(String),
    #[error(
        "seed_harness_config copies your coding agent's own config into the session, login \
         included, which [[secrets]] keep out of it: turn one of them off"
    )]
    SecretsWithSeeds,
}

/// A copy of a host path made for one session (`seed = true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub source: PathBuf,
    /// Under the session's own directory.
    pub copy: PathBuf,
    /// Where the session sees it.
    pub container: PathBuf,
}

/// Everything needed to start one session.
#[derive(Clone, Debug)]
pub struct SessionPlan {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub template: String,
    pub owner_uid: u32,
    pub container: ContainerPlan,
    pub seeds: Vec<Seed>,
    pub policy: PolicySources,
    /// Where "forever" answers append.
    pub rules_file: PathBuf,
    /// The workspace's protected paths made read-only in the session.
    pub protected_paths: Vec<String>,
    /// git mode: the clone mounted instead of the workspace, and the repository.
    pub git: Option<GitClone>,
    /// The workspace's `pre_start`, run in the session before it is ready.
    pub pre_start: Option<String>,
    /// The secrets the client gave, with the placeholders the session has instead.
    pub secrets: Vec<PlannedSecret>,
    /// The image's name as found (its id is in the container plan).
    pub image: String,
    pub harness: Option<String>,
}

/// What the agent adds that is not in the config.
pub struct Context<'a> {
    pub id: &'a str,
    pub token: &'a str,
    pub token_var: &'a str,
    pub control_port: u16,
    pub proxy_port: u16,
    /// The agent's session files directory (bind-mounted read-only).
    pub session_files: &'a Path,
    /// This session's own directory (seed copies live here).
    pub session_dir: &'a Path,
    pub cgroup_parent: &'a str,
    /// The agent instance's cgroup group, labelled so each agent finds its own sessions.
    pub group: &'a str,
    pub started_at: u64,
    pub config_source: &'a str,
    /// The image the template's stem resolved to for this user (`None` only when the template
    /// does not exist, which planning refuses).
    pub image: Option<&'a SessionImage>,
}

pub fn plan(
    config: &Config,
    request: &StartSession,
    identity: &Identity,
    gid: u32,
    context: &Context<'_>,
) -> Result<SessionPlan, PlanError> {
    let workspace = config
        .workspace(&request.workspace)
        .ok_or_else(|| PlanError::UnknownWorkspace(request.workspace.clone()))?;
    let profile = config
        .container_profiles
        .get(&request.template)
        .ok_or_else(|| PlanError::UnknownTemplate(request.template.clone()))?;
    let harness = request
        .harness
        .as_deref()
        .map(|name| crate::harness::find(name, &config.harnesses))
        .transpose()?;
    let name = match &request.name {
        Some(name) => {
            let valid = !name.is_empty()
                && name.len() <= 40
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                return Err(PlanError::BadName(name.clone()));
            }
            name.clone()
        }
        None => format!("{}-{}", slug(&workspace.name), &context.id[..6]),
    };

    let workspace_checked = check_mountable(&workspace.canonical_path, identity)?;
    let workspace_dir = workspace_checked.path.clone();
    // git mode: the session's own clone where the workspace would be, the host's `.git` nowhere.
    let git = match (&request.git_clone, workspace.mode) {
        (Some(clone), _) => Some(check_clone(clone, &workspace_dir, identity)?),
        (None, WorkspaceMode::Git) => {
            return Err(PlanError::GitModeNeedsClone {
                workspace: workspace.name.clone(),
            });
        }
        (None, WorkspaceMode::Bind) => None,
    };
    let (mounted, mounted_file) = match &git {
        Some((clone, file)) => (clone.clone(), *file),
        None => (workspace_dir.clone(), workspace_checked.file),
    };
    let at_host_path = workspace
        .mount_at_host_path
        .or(profile.mount_at_host_path)
        .unwrap_or(false);
    let inside = if at_host_path {
        workspace_inside_at(&workspace_dir)?
    } else {
        PathBuf::from(WORKSPACE_MOUNT)
    };
    // What the started container must show where the user's own paths are mounted.
    let mut mount_checks = vec![MountCheck {
        container: inside.clone(),
        file: mounted_file,
    }];
    // What no session may write: the config, the global rules, and other workspaces' rules.
    // Its own rules are in its read-write workspace: a session may edit them, as a proposal
    // that takes no effect until a person trusts it (`rules::trust`).
    let mut protected = vec![
        config.manager.global_rules_file.clone(),
        PathBuf::from(context.config_source),
    ];
    protected.extend(
        config
            .workspaces
            .iter()
            .filter(|other| other.name != workspace.name)
            .flat_map(|other| other.rules_files()),
    );
    let protected: Vec<PathBuf> = protected
        .iter()
        .map(|path| std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
        .collect();
    refuse_exposing(&mounted, &protected)?;
    let mut binds = vec![
        bind(&mounted, &inside, MountMode::ReadWrite)?,
        bind(
            context.session_files,
            Path::new(SESSION_FILES_MOUNT),
            MountMode::ReadOnly,
        )?,
    ];
    // The session CA in the system trust store too, for every client that reads only that
    // (OpenSSL's default, Python's ssl, Go, Ruby, git, rustls-native-certs) or runs with its
    // environment cleared: the bundle, read-only, over the distributions' own paths. Nothing
    // in the image is written, and no user needs to be root for it.
    for store in SYSTEM_BUNDLES {
        binds.push(bind(
            &context.session_files.join(SESSION_BUNDLE),
            Path::new(store),
            MountMode::ReadOnly,
        )?);
    }
    // The coding agents' guards, where they read a policy the session's user cannot change.
    if config.defaults.containers.agent_guards {
        binds.push(bind(
            &context
                .session_files
                .join(super::session_files::CLAUDE_SETTINGS_FILE),
            Path::new(super::session_files::CLAUDE_MANAGED_SETTINGS),
            MountMode::ReadOnly,
        )?);
    }
    // The workspace's protected paths, then the template's that it does not list already.
    let mut wanted = workspace.protected_paths.clone();
    for path in &profile.protected_paths {
        if !wanted.contains(path) {
            wanted.push(path.clone());
        }
    }
    // A clone's `.git` is the session's own: nothing of it reaches a host tool.
    let protected_paths = if git.is_some() {
        Vec::new()
    } else {
        protect(
            &workspace_dir,
            &inside,
            &wanted,
            &mut binds,
            &mut mount_checks,
        )?
    };
    let origin = match &request.git_origin {
        Some(origin) if git.is_some() => Some(check_origin(origin)?),
        _ => None,
    };
    let git = git.map(|(clone, _)| GitClone {
        clone,
        repository: workspace_dir.clone(),
        origin,
    });
    let mut seeds = Vec::new();
    let home = profile
        .env
        .get("HOME")
        .map_or_else(|| PathBuf::from(SESSION_HOME), PathBuf::from);
    let harness_seeds = harness_config_seeds(
        config.defaults.containers.seed_harness_config,
        harness.as_ref(),
        identity.uid,
        &home,
    );
    let mounts = config
        .defaults
        .containers
        .mounts
        .iter()
        .chain(&profile.mounts)
        .chain(&harness_seeds);
    for mount in mounts {
        let checked = check_mountable(&mount.host, identity)?;
        let source = checked.path;
        if mount.mode == MountMode::ReadWrite && !mount.seed {
            refuse_exposing(&source, &protected)?;
        }
        if mount.seed {
            let copy = context
                .session_dir
                .join(SEEDS_DIR)
                .join(seeds.len().to_string());
            binds.push(bind(&copy, &mount.container, mount.mode)?);
            seeds.push(Seed {
                source,
                copy,
                container: mount.container.clone(),
            });
        } else {
            binds.push(bind(&source, &mount.container, mount.mode)?);
            mount_checks.push(MountCheck {
                container: mount.container.clone(),
                file: checked.file,
            });
        }
    }

    let mut env: Vec<String> = Vec::new();
    // The client's values, for the names the config passes through; never the agent's own.
    // The harness's credentials reach sessions of that harness only.
    let harness_env = harness
        .as_ref()
        .map_or(&[][..], |harness| harness.auth_env.as_slice());
    let passed = config
        .defaults
        .containers
        .env_passthrough
        .iter()
        .chain(harness_env)
        .map(String::as_str);
    let identity_names = config
        .defaults
        .containers
        .git_identity
        .then_some(crate::git_identity::VARIABLES)
        .into_iter()
        .flatten();
    let passed = passed.chain(identity_names);
    let mut seen = std::collections::BTreeSet::new();
    for key in passed {
        // git's identity variables only as plain text, however they are passed.
        if let Some(value) = request.env.get(key)
            && (!crate::git_identity::VARIABLES.contains(&key)
                || crate::git_identity::is_plain(value))
            && seen.insert(key)
        {
            env.push(format!("{key}={value}"));
        }
    }
    if let Some(harness) = &harness {
        env.push(format!("HH_HARNESS={}", harness.name));
        if let Some(note) = &harness.global_instructions {
            env.push(format!("HH_HARNESS_NOTE={note}"));
        }
        env.extend(
            harness
                .fixed_env
                .iter()
                .map(|(key, value)| format!("{key}={value}")),
        );
    }
    env.extend(
        profile
            .env
            .iter()
            .map(|(key, value)| format!("{key}={value}")),
    );
    let bundle = format!("{SESSION_FILES_MOUNT}/{SESSION_BUNDLE}");
    env.extend(CA_BUNDLE_VARS.iter().map(|var| format!("{var}={bundle}")));
    env.push(format!("NODE_EXTRA_CA_CERTS={SESSION_FILES_MOUNT}/ca.pem"));
    env.push(format!("HH_SESSION_ID={}", context.id));
    env.push(format!("HH_WORKSPACE={}", inside.display()));
    env.push(format!("HH_CONTROL_PORT={}", context.control_port));
    env.push(format!("HH_PROXY_PORT={}", context.proxy_port));
    // The image's own PATH (a stem may add its toolchain), with the agent's tools in front.
    let image_path = context
        .image
        .and_then(|image| image.path.as_deref())
        .unwrap_or(DEFAULT_PATH);
    env.push(format!("PATH={SESSION_FILES_MOUNT}/bin:{image_path}"));
    env.push(format!("{}={}", context.token_var, context.token));
    if !profile.env.contains_key("HOME") {
        env.push(format!("HOME={SESSION_HOME}"));
    }

    let secrets = plan_secrets(config, request, &mut env)?;
    // A seeded CLI config holds that CLI's own login (`~/.claude.json`'s key): it would carry
    // the very value the secrets keep out.
    if !secrets.is_empty() && !harness_seeds.is_empty() {
        return Err(PlanError::SecretsWithSeeds);
    }
    let image_name = context.image.map_or_else(
        || crate::image::image_name(&profile.image),
        |image| image.name.clone(),
    );
    let labels = HashMap::from([
        (label::SESSION.to_owned(), context.id.to_owned()),
        (label::NAME.to_owned(), name.clone()),
        (label::WORKSPACE.to_owned(), workspace.name.clone()),
        (label::TEMPLATE.to_owned(), request.template.clone()),
        (label::OWNER_UID.to_owned(), identity.uid.to_string()),
        (label::STARTED_AT.to_owned(), context.started_at.to_string()),
        (label::GROUP.to_owned(), context.group.to_owned()),
        (label::PROTECTED.to_owned(), protected_paths.join(",")),
        (label::IMAGE.to_owned(), image_name.clone()),
        (
            label::GIT_CLONE.to_owned(),
            git.as_ref()
                .map_or_else(String::new, |git| git.clone.display().to_string()),
        ),
        (
            label::GIT_REPOSITORY.to_owned(),
            git.as_ref()
                .map_or_else(String::new, |git| git.repository.display().to_string()),
        ),
        (
            label::SECRETS.to_owned(),
            secrets
                .iter()
                .map(|secret| format!("{}={}", secret.spec.name, secret.spec.env))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            label::GIT_ORIGIN.to_owned(),
            git.as_ref()
                .and_then(|git| git.origin.clone())
                .unwrap_or_default(),
        ),
        (
            label::HARNESS.to_owned(),
            harness
                .as_ref()
                .map_or_else(String::new, |harness| harness.name.clone()),
        ),
    ]);

    let command = if request.command.is_empty() {
        vec!["sleep".into(), "infinity".into()]
    } else {
        request.command.clone()
    };
    let container = ContainerPlan {
        name: format!("hh-{}-{}", name, context.id),
        // By id: what the engine had under the name when the session was asked for.
        image: context.image.map_or_else(
            || crate::image::image_name(&profile.image),
            |image| image.id.clone(),
        ),
        user: format!("{}:{gid}", identity.uid),
        env,
        binds,
        mount_checks,
        entrypoint: vec![format!("{SESSION_FILES_MOUNT}/bin/hh-init")],
        command,
        labels,
        cgroup_parent: context.cgroup_parent.to_owned(),
        memory_bytes: profile
            .memory
            .map(|m| i64::try_from(m.0).unwrap_or(i64::MAX)),
        nano_cpus: profile.cpus.map(|c| (c.0 * 1e9) as i64),
        working_dir: inside.to_string_lossy().into_owned(),
        tmpfs: vec![(
            SESSION_HOME.to_owned(),
            format!("uid={},gid={gid},mode=0700", identity.uid),
        )],
    };
    let (policy, rules_file) = policy_sources(
        config,
        &workspace.name,
        &request.template,
        harness.clone(),
        context.config_source,
    )?;
    Ok(SessionPlan {
        id: context.id.to_owned(),
        name,
        workspace: workspace.name.clone(),
        template: request.template.clone(),
        owner_uid: identity.uid,
        container,
        seeds,
        policy,
        rules_file,
        protected_paths,
        git,
        pre_start: workspace.pre_start.clone(),
        secrets,
        image: image_name,
        harness: harness.map(|harness| harness.name),
    })
}

/// A secret of the config the client gave a value for, and the session's placeholder.
#[derive(Clone, Debug)]
pub struct PlannedSecret {
    pub spec: crate::config::SecretSpec,
    pub placeholder: String,
    pub value: crate::api::protocol::SecretValue,
}

/// The `[[secrets]]` the client gave values for: each gets a fresh placeholder, which is what
/// the session's variable holds (whatever the passthrough, the harness or the template put
/// there). A config secret's variable never carries a client's value into the session.
fn plan_secrets(
    config: &Config,
    request: &StartSession,
    env: &mut Vec<String>,
) -> Result<Vec<PlannedSecret>, PlanError> {
    if let Some(unknown) = request
        .secrets
        .keys()
        .find(|name| !config.secrets.iter().any(|spec| &spec.name == *name))
    {
        return Err(PlanError::UnknownSecret(unknown.clone()));
    }
    let mut planned = Vec::new();
    for spec in &config.secrets {
        let prefix = format!("{}=", spec.env);
        env.retain(|entry| !entry.starts_with(&prefix));
        let Some(value) = request.secrets.get(&spec.name) else {
            continue;
        };
        if value.0.is_empty()
            || value.0.len() > crate::proxy::secrets::MAX_VALUE
            || value.0.chars().any(char::is_control)
        {
            return Err(PlanError::BadSecret(spec.name.clone()));
        }
        let random = super::random_hex(16).map_err(|_| PlanError::BadSecret(spec.name.clone()))?;
        let placeholder = format!("hh-placeholder-{}-{random}", spec.name);
        env.push(format!("{prefix}{placeholder}"));
        planned.push(PlannedSecret {
            spec: spec.clone(),
            placeholder,
            value: value.clone(),
        });
    }
    // Nor under another name (a harness's second credential variable holding the same key).
    env.retain(|entry| {
        let value = entry.split_once('=').map_or("", |(_, value)| value);
        !planned
            .iter()
            .any(|secret| value.contains(secret.value.0.as_str()))
    });
    Ok(planned)
}

/// The origin a client names for its git-mode session's push guard: one line of plain text.
fn check_origin(origin: &str) -> Result<String, PlanError> {
    if origin.is_empty() || origin.len() > 2048 || origin.chars().any(char::is_control) {
        return Err(PlanError::GitOrigin);
    }
    Ok(origin.to_owned())
}

/// Checks the clone a client made for a git-mode session: a directory of the caller's own
/// that they can read, with a `.git` directory, apart from the workspace (neither inside the
/// other: the point is that the host's `.git` is not in the session). Its path and identity.
fn check_clone(
    clone: &Path,
    workspace_dir: &Path,
    identity: &Identity,
) -> Result<(PathBuf, FileId), PlanError> {
    let refused = |reason: String| PlanError::GitClone {
        path: clone.to_path_buf(),
        reason,
    };
    if !clone.is_absolute() {
        return Err(refused("not an absolute path".into()));
    }
    let checked = check_mountable(clone, identity)?;
    let meta = std::fs::symlink_metadata(&checked.path).map_err(|e| refused(e.to_string()))?;
    if !meta.is_dir() {
        return Err(refused("not a directory".into()));
    }
    // What was looked at is what was checked readable (and is what the mount is checked to be).
    let looked_at = FileId {
        dev: std::os::unix::fs::MetadataExt::dev(&meta),
        ino: std::os::unix::fs::MetadataExt::ino(&meta),
    };
    if looked_at != checked.file {
        return Err(refused("changed while it was checked".into()));
    }
    if identity.uid != 0 && std::os::unix::fs::MetadataExt::uid(&meta) != identity.uid {
        return Err(refused("not yours".into()));
    }
    if checked.path.starts_with(workspace_dir) || workspace_dir.starts_with(&checked.path) {
        return Err(refused(format!(
            "overlaps the workspace {}",
            workspace_dir.display()
        )));
    }
    let dot_git = std::fs::symlink_metadata(checked.path.join(".git"));
    if !dot_git.is_ok_and(|meta| meta.is_dir()) {
        return Err(refused("has no .git directory".into()));
    }
    Ok((checked.path, checked.file))
}

/// The rules a session of `workspace` with `template` runs under (global file, the
/// template's starter allowlist, the workspace's file), and the file "forever" answers go to.
pub fn policy_sources(
    config: &Config,
    workspace: &str,
    template: &str,
    harness: Option<crate::harness::Harness>,
    config_source: &str,
) -> Result<(PolicySources, PathBuf), PlanError> {
    let workspace = config
        .workspace(workspace)
        .ok_or_else(|| PlanError::UnknownWorkspace(workspace.to_owned()))?;
    let profile = config
        .container_profiles
        .get(template)
        .ok_or_else(|| PlanError::UnknownTemplate(template.to_owned()))?;
    let rules_file = workspace.rules_file();
    let policy = PolicySources {
        global: Some(config.manager.global_rules_file.clone()),
        workspace: workspace.rules_files(),
        trust: None,
        owner: None,
        harness,
        template: Some((
            format!("{config_source} container_profiles.{template}.starter_network_allowlist"),
            profile.starter_network_allowlist.clone(),
        )),
    };
    Ok((policy, rules_file))
}

/// Makes each of the workspace's `protected` paths (relative) read-only in the session, and
/// every directory on the way to it a mount point of itself: a mount point cannot be renamed
/// or removed from inside, so the session can neither write `.git/config` nor move `.git`
/// aside and make a new one. Paths are walked on descriptors without following a symlink; a
/// protected path that is a symlink stops the start; a missing one is skipped (nothing there
/// for a host tool to run). Returns the paths made read-only.
fn protect(
    workspace_dir: &Path,
    inside: &Path,
    protected: &[String],
    binds: &mut Vec<String>,
    mount_checks: &mut Vec<MountCheck>,
) -> Result<Vec<String>, PlanError> {
    let failed = |path: &str, reason: String| PlanError::Protected {
        path: workspace_dir.join(path),
        reason,
    };
    let root = OwnedDir::open(workspace_dir, None).map_err(|e| failed("", e.to_string()))?;
    let mut pinned: Vec<PathBuf> = Vec::new();
    let mut done = Vec::new();
    'paths: for path in protected {
        let parts: Vec<&str> = path.split('/').collect();
        let (last, dirs) = parts.split_last().expect("validated: not empty");
        let mut dir_chain: Vec<(PathBuf, (u64, u64))> = Vec::new();
        let mut dir = None::<OwnedDir>;
        let mut relative = PathBuf::new();
        for part in dirs {
            relative.push(part);
            let parent = dir.as_ref().unwrap_or(&root);
            match parent.subdir_owned_by(part, None) {
                Ok(Some(next)) => {
                    let id = next.id().map_err(|e| failed(path, e.to_string()))?;
                    dir_chain.push((relative.clone(), id));
                    dir = Some(next);
                }
                Ok(None) => continue 'paths,
                Err(error) => return Err(failed(path, error.to_string())),
            }
        }
        let parent = dir.as_ref().unwrap_or(&root);
        let entry = match parent.entry(last) {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(error) => return Err(failed(path, error.to_string())),
        };
        if entry.kind == rustix::fs::FileType::Symlink {
            return Err(failed(
                path,
                "it is a symbolic link; hh will not mount through it".into(),
            ));
        }
        for (relative, (dev, ino)) in dir_chain {
            if pinned.contains(&relative) {
                continue;
            }
            binds.push(bind(
                &workspace_dir.join(&relative),
                &inside.join(&relative),
                MountMode::ReadWrite,
            )?);
            mount_checks.push(MountCheck {
                container: inside.join(&relative),
                file: FileId { dev, ino },
            });
            pinned.push(relative);
        }
        binds.push(bind(
            &workspace_dir.join(path),
            &inside.join(path),
            MountMode::ReadOnly,
        )?);
        mount_checks.push(MountCheck {
            container: inside.join(path),
            file: FileId {
                dev: entry.dev,
                ino: entry.ino,
            },
        });
        done.push(path.clone());
    }
    Ok(done)
}

/// Refuses a read-write mount of `source` that contains (or is) one of `protected`.
fn refuse_exposing(source: &Path, protected: &[PathBuf]) -> Result<(), PlanError> {
    match protected.iter().find(|path| path.starts_with(source)) {
        Some(path) => Err(PlanError::ExposesRules {
            mount: source.to_path_buf(),
            protected: path.clone(),
        }),
        None => Ok(()),
    }
}

/// With `seed_harness_config`, a per-session copy of each of the harness's `seed` paths the
/// user has under their home, at the same place under the session's home.
fn harness_config_seeds(
    wanted: bool,
    harness: Option<&crate::harness::Harness>,
    uid: u32,
    session_home: &Path,
) -> Vec<Mount> {
    let Some(harness) = harness.filter(|_| wanted) else {
        return Vec::new();
    };
    let Ok(home) = crate::sys::users::home_of(uid) else {
        return Vec::new();
    };
    harness
        .seed
        .iter()
        // Only what exists (a user without that CLI's config starts from nothing); the
        // checks of every other mount then apply.
        .filter(|path| std::fs::symlink_metadata(home.join(path)).is_ok())
        .map(|path| Mount {
            host: home.join(path),
            container: session_home.join(path),
            mode: MountMode::ReadWrite,
            seed: true,
        })
        .collect()
}

/// Where a workspace mounted at its host path appears: `dir` itself, unless that would cover
/// or sit in what the session needs of its own (the image's system directories, the session's
/// home and hh's files) or in a kernel filesystem.
fn workspace_inside_at(dir: &Path) -> Result<PathBuf, PlanError> {
    let reserved = |reason| PlanError::HostPathReserved {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_absolute() || dir.parent().is_none() {
        return Err(reserved("it is not a directory below /"));
    }
    const SYSTEM: &[&str] = &[
        "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
        "/sbin", "/sys", "/usr", "/var", "/opt/hh",
    ];
    if SYSTEM.iter().any(|system| dir.starts_with(system)) {
        return Err(reserved("it is in a system directory of the container"));
    }
    if dir.starts_with(SESSION_HOME) || Path::new(SESSION_HOME).starts_with(dir) {
        return Err(reserved("it is or holds the session's own home"));
    }
    if dir == Path::new("/home") || dir == Path::new("/opt") || dir == Path::new("/tmp") {
        return Err(reserved("it would cover a directory the image itself uses"));
    }
    Ok(dir.to_path_buf())
}

/// A Docker bind spec; refuses paths Docker would split wrongly.
fn bind(host: &Path, container: &Path, mode: MountMode) -> Result<String, PlanError> {
    for path in [host, container] {
        let text = path.to_string_lossy();
        if text.contains([':', ',']) {
            return Err(PlanError::AmbiguousPath {
                path: path.to_path_buf(),
            });
        }
    }
    let suffix = match mode {
        MountMode::ReadOnly => ":ro",
        MountMode::ReadWrite => "",
    };
    Ok(format!(
        "{}:{}{suffix}",
        host.display(),
        container.display()
    ))
}

/// A name fit for a container name: lowercase letters, digits and dashes.
fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    if slug.is_empty() {
        "session".into()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Env, load::parse};

    fn config(workspace: &Path, extra: &str) -> Config {
        let text = format!(
            r#"
version = 1
[defaults.containers]
env_passthrough = ["TERM"]
[container_profiles.test]
image = "test"
memory = "512m"
cpus = "1.5"
starter_network_allowlist = ["domain=allowed.test"]
{extra}
[[workspaces]]
name = "demo"
canonical_path = "{}"
"#,
            workspace.display()
        );
        let env = Env {
            home: Some(PathBuf::from("/home/someone")),
            xdg_config_home: None,
        };
        parse(&text, Path::new("/etc/hh/harness-hat.toml"), &env).unwrap()
    }

    fn context<'a>(dir: &'a Path) -> Context<'a> {
        Context {
            id: "0123456789ab",
            token: "secret",
            token_var: "HARNESS_HAT_TOKEN",
            control_port: 7878,
            proxy_port: 28781,
            session_files: dir,
            session_dir: dir,
            cgroup_parent: "/hh/0123456789ab",
            group: "hh",
            started_at: 1,
            config_source: "/etc/hh/harness-hat.toml",
            image: Some(Box::leak(Box::new(SessionImage {
                name: "hh-test:u1000".into(),
                id: "sha256:0123".into(),
                path: Some("/home/coder/.cargo/bin:/usr/bin".into()),
            }))),
        }
    }

    fn request() -> StartSession {
        StartSession {
            workspace: "demo".into(),
            template: "test".into(),
            name: None,
            command: vec![],
            env: BTreeMap::from([
                ("TERM".into(), "xterm".into()),
                ("SECRET".into(), "leak".into()),
                ("ANTHROPIC_API_KEY".into(), "sk-ant".into()),
                ("OPENAI_API_KEY".into(), "sk-openai".into()),
            ]),
            harness: None,
            git_clone: None,
            git_origin: None,
            secrets: BTreeMap::new(),
        }
    }

    fn root() -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }

    /// A workspace that is a repository, and a clone of it beside it.
    fn repository_and_clone() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("repo");
        let clone = dir.path().join("clone");
        for path in [&workspace, &clone] {
            std::fs::create_dir_all(path.join(".git/hooks")).unwrap();
            std::fs::write(path.join(".git/config"), "[core]\n").unwrap();
        }
        (dir, workspace, clone)
    }

    #[test]
    fn a_git_mode_session_mounts_its_clone_and_nothing_of_the_repository() {
        let (dir, workspace, clone) = repository_and_clone();
        let config = config(&workspace, "");
        let mut request = request();
        request.git_clone = Some(clone.clone());
        let planned = plan(&config, &request, &root(), 0, &context(dir.path())).unwrap();
        let binds = &planned.container.binds;
        assert!(
            binds.contains(&format!("{}:/workspace", clone.display())),
            "{binds:?}"
        );
        assert!(
            !binds
                .iter()
                .any(|b| b.starts_with(&*workspace.to_string_lossy())),
            "the repository is not mounted: {binds:?}"
        );
        assert!(planned.protected_paths.is_empty());
        assert_eq!(
            planned.git,
            Some(GitClone {
                clone: clone.clone(),
                repository: workspace.clone(),
                origin: None,
            })
        );
        assert_eq!(
            planned.container.labels.get(label::GIT_CLONE),
            Some(&clone.display().to_string())
        );
    }

    #[test]
    fn a_git_mode_workspace_is_never_mounted_itself() {
        let (dir, workspace, _) = repository_and_clone();
        let mut config = config(&workspace, "");
        config.workspaces[0].mode = WorkspaceMode::Git;
        assert_eq!(
            plan(&config, &request(), &root(), 0, &context(dir.path())).unwrap_err(),
            PlanError::GitModeNeedsClone {
                workspace: "demo".into()
            }
        );
    }

    #[test]
    fn a_clone_that_is_not_one_apart_from_the_workspace_is_refused() {
        let (dir, workspace, clone) = repository_and_clone();
        let config = config(&workspace, "");
        let refused = |path: PathBuf, identity: &Identity| {
            let mut request = request();
            request.git_clone = Some(path);
            match plan(&config, &request, identity, 0, &context(dir.path())) {
                Err(PlanError::GitClone { reason, .. }) => reason,
                other => panic!("not refused as a clone: {other:?}"),
            }
        };
        // The workspace itself, a directory inside it, or one around it.
        assert!(refused(workspace.clone(), &root()).contains("overlaps"));
        std::fs::create_dir_all(workspace.join("inner/.git")).unwrap();
        assert!(refused(workspace.join("inner"), &root()).contains("overlaps"));
        assert!(refused(dir.path().to_path_buf(), &root()).contains("overlaps"));
        // Not a repository; relative.
        std::fs::remove_dir_all(clone.join(".git")).unwrap();
        assert!(refused(clone.clone(), &root()).contains("no .git"));
        assert!(refused(PathBuf::from("clone"), &root()).contains("absolute"));
        // Someone else's (root's, asked for by a user who may read it).
        std::fs::create_dir_all(clone.join(".git")).unwrap();
        let user = Identity {
            uid: 4242,
            gid: 4242,
            groups: vec![4242],
        };
        {
            use std::os::unix::fs::PermissionsExt as _;
            for path in [dir.path(), &workspace, &clone] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        // Reading as another user takes root (the check takes on the user's ids); CI is root.
        if rustix::process::geteuid().is_root() {
            assert!(
                check_clone(&clone, &workspace, &user).is_err_and(|error| matches!(
                    error,
                    PlanError::GitClone { ref reason, .. } if reason == "not yours"
                ))
            );
        }
    }

    #[test]
    fn a_git_identity_passes_only_as_plain_text_and_only_when_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut request = request();
        request.env.insert("GIT_AUTHOR_NAME".into(), "Ada".into());
        request
            .env
            .insert("GIT_COMMITTER_NAME".into(), "Ada\nSigned-off-by: x".into());
        let plan_env = |identity: bool| {
            let mut config = config(dir.path(), "");
            config.defaults.containers.git_identity = identity;
            plan(&config, &request, &root(), 0, &context(dir.path()))
                .unwrap()
                .container
                .env
        };
        let env = plan_env(true);
        assert!(env.contains(&"GIT_AUTHOR_NAME=Ada".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("GIT_COMMITTER_NAME=")));
        let off = plan_env(false);
        assert!(!off.iter().any(|e| e.starts_with("GIT_AUTHOR_NAME=")));
    }

    #[test]
    fn a_workspace_at_its_host_path_may_not_cover_what_the_session_needs() {
        for reserved in [
            "/",
            "/usr/src/x",
            "/etc/p",
            "/home",
            "/tmp",
            "/opt/hh/x",
            "/home/hh",
            "/home/hh/p",
            "/proc/1",
            "/var/lib/x",
        ] {
            assert!(
                workspace_inside_at(Path::new(reserved)).is_err(),
                "{reserved} was allowed"
            );
        }
        for fine in [
            "/home/alice/src/proj",
            "/srv/work",
            "/tmp/proj",
            "/opt/code",
        ] {
            assert_eq!(
                workspace_inside_at(Path::new(fine)).unwrap(),
                Path::new(fine)
            );
        }
    }

    #[test]
    fn a_session_gets_the_workspace_limits_ca_and_only_passed_through_env() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(
            &config(dir.path(), ""),
            &request(),
            &root(),
            0,
            &context(dir.path()),
        )
        .unwrap();
        let c = &plan.container;
        let workspace = dir.path().canonicalize().unwrap();
        assert_eq!(c.binds[0], format!("{}:/workspace", workspace.display()));
        // No bind over its rules: a session's edit of them is only a proposal (rules::trust).
        assert!(c.binds[1].ends_with(":/opt/hh:ro"));
        // The system trust store is the session's bundle, read-only.
        for store in SYSTEM_BUNDLES {
            assert!(
                c.binds
                    .iter()
                    .any(|bind| bind.ends_with(&format!("/ca-bundle.pem:{store}:ro"))),
                "{store} in {:?}",
                c.binds
            );
        }
        assert_eq!(c.memory_bytes, Some(512 * 1024 * 1024));
        assert_eq!(c.nano_cpus, Some(1_500_000_000));
        assert!(c.env.contains(&"TERM=xterm".to_owned()));
        assert!(!c.env.iter().any(|e| e.starts_with("SECRET=")));
        // No harness, no harness credentials.
        assert!(!c.env.iter().any(|e| e.contains("sk-")));
        assert!(c.env.contains(&"HOME=/home/hh".to_owned()));
        assert_eq!(
            c.tmpfs,
            [("/home/hh".to_owned(), "uid=0,gid=0,mode=0700".to_owned())]
        );
        assert!(plan.policy.harness.is_none());
        assert!(
            c.env
                .contains(&"SSL_CERT_FILE=/opt/hh/ca-bundle.pem".to_owned())
        );
        assert!(
            c.env
                .contains(&"NODE_EXTRA_CA_CERTS=/opt/hh/ca.pem".to_owned())
        );
        assert!(c.env.contains(&"HARNESS_HAT_TOKEN=secret".to_owned()));
        assert!(
            c.env
                .contains(&"PATH=/opt/hh/bin:/home/coder/.cargo/bin:/usr/bin".to_owned())
        );
        assert_eq!(c.image, "sha256:0123");
        assert_eq!(plan.image, "hh-test:u1000");
        assert_eq!(c.labels[label::IMAGE], "hh-test:u1000");
        assert_eq!(c.cgroup_parent, "/hh/0123456789ab");
        assert_eq!(plan.name, format!("{}-012345", slug("demo")));
        assert_eq!(plan.rules_file, dir.path().join("harness-rules.toml"));
        assert_eq!(
            plan.policy.workspace,
            [
                dir.path().join("harness-rules.toml"),
                dir.path().join(".hh/harness-rules.toml")
            ]
        );
    }

    #[test]
    fn a_harness_session_gets_that_harness_credentials_only_and_its_policy_layer() {
        let dir = tempfile::tempdir().unwrap();
        let request = StartSession {
            harness: Some("claude".into()),
            ..request()
        };
        let plan = plan(
            &config(dir.path(), ""),
            &request,
            &root(),
            0,
            &context(dir.path()),
        )
        .unwrap();
        let env = &plan.container.env;
        assert!(env.contains(&"ANTHROPIC_API_KEY=sk-ant".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("OPENAI_API_KEY=")));
        assert!(env.contains(&"HH_HARNESS=claude".to_owned()));
        assert!(env.contains(&"HH_HARNESS_NOTE=.claude/CLAUDE.md".to_owned()));
        assert!(env.contains(&"DISABLE_AUTOUPDATER=1".to_owned()));
        assert_eq!(plan.container.labels[label::HARNESS], "claude");
        assert_eq!(
            plan.policy.harness.map(|h| h.name).as_deref(),
            Some("claude")
        );
        let unknown = StartSession {
            harness: Some("clod".into()),
            ..request
        };
        let error = super::plan(
            &config(dir.path(), ""),
            &unknown,
            &root(),
            0,
            &context(dir.path()),
        )
        .unwrap_err();
        assert!(error.to_string().contains("no harness `clod`"), "{error}");
    }

    #[test]
    fn git_config_and_hooks_are_read_only_and_git_itself_cannot_be_moved() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().canonicalize().unwrap();
        let plan_for = |config: &Config| plan(config, &request(), &root(), 0, &context(&workspace));
        std::fs::create_dir_all(workspace.join(".git/hooks")).unwrap();
        std::fs::write(workspace.join(".git/config"), "[core]\n").unwrap();
        let planned = plan_for(&config(&workspace, "")).unwrap();
        let binds = &planned.container.binds;
        let w = workspace.display();
        for expected in [
            format!("{w}/.git:/workspace/.git"),
            format!("{w}/.git/config:/workspace/.git/config:ro"),
            format!("{w}/.git/hooks:/workspace/.git/hooks:ro"),
        ] {
            assert_eq!(
                binds.iter().filter(|b| **b == expected).count(),
                1,
                "{expected} in {binds:?}"
            );
        }
        assert_eq!(planned.protected_paths, [".git/config", ".git/hooks"]);
        let checked: Vec<_> = planned
            .container
            .mount_checks
            .iter()
            .map(|check| check.container.display().to_string())
            .collect();
        assert!(
            checked.contains(&"/workspace/.git/config".to_owned()),
            "{checked:?}"
        );
        assert!(
            checked.contains(&"/workspace/.git".to_owned()),
            "{checked:?}"
        );

        // A template adds its own.
        std::fs::write(workspace.join(".envrc"), "export X=1\n").unwrap();
        let mut with_envrc = config(&workspace, "");
        let test = with_envrc.container_profiles.get_mut("test").unwrap();
        test.protected_paths = vec![".envrc".into(), ".git/hooks".into()];
        let planned = plan_for(&with_envrc).unwrap();
        assert_eq!(
            planned.protected_paths,
            [".git/config", ".git/hooks", ".envrc"]
        );
        assert!(
            planned
                .container
                .binds
                .contains(&format!("{w}/.envrc:/workspace/.envrc:ro"))
        );

        // Opting out is explicit.
        let mut open = config(&workspace, "");
        open.workspaces[0].protected_paths.clear();
        let planned = plan_for(&open).unwrap();
        assert!(planned.protected_paths.is_empty());
        assert!(!planned.container.binds.iter().any(|b| b.contains(".git")));

        // A protected path that is a symlink is not mounted through.
        std::fs::remove_file(workspace.join(".git/config")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", workspace.join(".git/config")).unwrap();
        let error = plan_for(&config(&workspace, "")).unwrap_err();
        assert!(matches!(error, PlanError::Protected { .. }), "{error}");

        // No .git: nothing to protect, nothing mounted.
        std::fs::remove_dir_all(workspace.join(".git")).unwrap();
        let planned = plan_for(&config(&workspace, "")).unwrap();
        assert!(planned.protected_paths.is_empty());
    }

    #[test]
    fn unknown_names_and_bad_session_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "");
        let mut bad = request();
        bad.workspace = "nope".into();
        assert_eq!(
            plan(&config, &bad, &root(), 0, &context(dir.path())).unwrap_err(),
            PlanError::UnknownWorkspace("nope".into())
        );
        let mut bad = request();
        bad.template = "nope".into();
        assert!(matches!(
            plan(&config, &bad, &root(), 0, &context(dir.path())),
            Err(PlanError::UnknownTemplate(_))
        ));
        let mut bad = request();
        bad.name = Some("../x".into());
        assert!(matches!(
            plan(&config, &bad, &root(), 0, &context(dir.path())),
            Err(PlanError::BadName(_))
        ));
    }

    #[test]
    fn seeded_mounts_point_at_a_per_session_copy() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("gitconfig");
        std::fs::write(&seed, "x").unwrap();
        let extra = format!(
            "[[container_profiles.test.mounts]]\nhost = \"{}\"\ncontainer = \"/home/x/.gitconfig\"\nmode = \"rw\"\nseed = true\n",
            seed.display()
        );
        let session_dir = dir.path().join("session");
        let mut context = context(dir.path());
        context.session_dir = &session_dir;
        let plan = plan(
            &config(dir.path(), &extra),
            &request(),
            &root(),
            0,
            &context,
        )
        .unwrap();
        assert_eq!(plan.seeds.len(), 1);
        assert_eq!(plan.seeds[0].source, seed.canonicalize().unwrap());
        assert!(plan.seeds[0].copy.starts_with(&session_dir));
        assert!(plan.container.binds.contains(&format!(
            "{}:/home/x/.gitconfig",
            plan.seeds[0].copy.display()
        )));
    }

    #[test]
    fn a_writable_mount_exposing_hh_config_or_rules_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".config")).unwrap();
        let extra = format!(
            "[[container_profiles.test.mounts]]\nhost = \"{}\"\ncontainer = \"/home/x\"\nmode = \"rw\"\n",
            home.display()
        );
        let mut config = config(&workspace, &extra);
        config.manager.global_rules_file = home.join(".config/harness-rules.toml");
        let error = plan(&config, &request(), &root(), 0, &context(dir.path())).unwrap_err();
        assert!(matches!(error, PlanError::ExposesRules { .. }), "{error}");
        // Read-only, the same mount is fine: reading rules gives nothing away.
        let extra = extra.replace("\"rw\"", "\"ro\"");
        let mut config_ro = self::config(&workspace, &extra);
        config_ro.manager.global_rules_file = home.join(".config/harness-rules.toml");
        assert!(plan(&config_ro, &request(), &root(), 0, &context(dir.path())).is_ok());
        // A workspace that holds them is refused as well (it is mounted read-write).
        let mut around = self::config(dir.path(), "");
        around.manager.global_rules_file = home.join(".config/harness-rules.toml");
        let error = plan(&around, &request(), &root(), 0, &context(dir.path())).unwrap_err();
        assert!(matches!(error, PlanError::ExposesRules { .. }), "{error}");
    }
}
