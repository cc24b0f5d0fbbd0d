//! The agent's Docker calls (bollard): create a session's container from a [`ContainerPlan`],
//! start it, find its network namespace, find sessions again by label, remove them.
//!
//! Every session container carries the labels below; they are how a restarted agent finds its
//! sessions, and how nothing else's containers are ever touched.

use std::{collections::HashMap, path::Path};

use bollard::{
    Docker,
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
        RemoveContainerOptions,
    },
};

use super::{access::MountCheck, session_process::SessionProcess};

/// Label keys on every session container.
pub mod label {
    pub const SESSION: &str = "dev.hh.session";
    pub const NAME: &str = "dev.hh.name";
    pub const WORKSPACE: &str = "dev.hh.workspace";
    pub const TEMPLATE: &str = "dev.hh.template";
    pub const OWNER_UID: &str = "dev.hh.owner-uid";
    pub const STARTED_AT: &str = "dev.hh.started-at";
    /// The agent instance (its cgroup group): an agent adopts and removes only its own.
    pub const GROUP: &str = "dev.hh.group";
    /// The workspace's paths the session sees read-only, comma-separated.
    pub const PROTECTED: &str = "dev.hh.protected";
    /// The coding agent the session is for (empty: none).
    pub const HARNESS: &str = "dev.hh.harness";
    /// The image the session was started from, by the name it had then (`hh-test:u1000`).
    pub const IMAGE: &str = "dev.hh.image";
    /// git mode: the session's clone on the host (empty: the workspace itself is mounted).
    pub const GIT_CLONE: &str = "dev.hh.git-clone";
    /// git mode: the repository the clone was made from.
    pub const GIT_REPOSITORY: &str = "dev.hh.git-repository";
    /// git mode: the repository's origin, the one place the session may push (empty: none).
    pub const GIT_ORIGIN: &str = "dev.hh.git-origin";
    /// The secrets the session has placeholders for, as `NAME=VARIABLE,…` (empty: none).
    pub const SECRETS: &str = "dev.hh.secrets";
}

/// The image a session runs: found by name, run by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionImage {
    /// The name it was found by (`hh-STEM:uUID` or `hh-STEM`).
    pub name: String,
    /// The engine's id (`sha256:…`): what the container is created from, so that a build
    /// that retags the name while the session starts changes nothing.
    pub id: String,
    /// The `PATH` the image sets, if any (sessions put the agent's tools in front of it).
    pub path: Option<String>,
}

/// Why a Docker call failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot reach Docker at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker: {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("container {id} is not running (it exited before the session was ready)")]
    NotRunning { id: String },
    #[error("hh's seccomp profile cannot be built: {0}")]
    Seccomp(&'static super::seccomp::ProfileError),
    #[error("container {id}'s first process")]
    Process {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything the container is made of; built and checked by [`super::plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    /// `uid:gid` the session's processes run as.
    pub user: String,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Docker bind specs `host:container[:ro]`, paths already checked.
    pub binds: Vec<String>,
    /// The user's paths among them, and which file each must be once mounted.
    pub mount_checks: Vec<MountCheck>,
    pub entrypoint: Vec<String>,
    pub command: Vec<String>,
    pub labels: HashMap<String, String>,
    /// The cgroup parent Docker is given (the directory the programs are attached to).
    pub cgroup_parent: String,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub working_dir: String,
    /// tmpfs mounts: the container path and its mount options.
    pub tmpfs: Vec<(String, String)>,
}

/// The most processes a session may have.
const PIDS_LIMIT: i64 = 4096;

/// The Docker engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

/// A session container found by its labels.
#[derive(Clone, Debug)]
pub struct Found {
    pub id: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
}

/// A command to run in a session's container ([`Engine::exec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub tty: bool,
    /// `KEY=VALUE` added to the container's environment.
    pub env: Vec<String>,
    /// `None`: the container's working directory.
    pub working_dir: Option<String>,
}

/// A running exec: its id, what it prints, what it reads.
pub struct Exec {
    pub id: String,
    pub output: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
                > + Send,
        >,
    >,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl Engine {
    /// Connects over the unix socket `endpoint` (`unix:///var/run/docker.sock`).
    pub fn connect(endpoint: &str) -> Result<Engine, ContainerError> {
        let docker = Docker::connect_with_unix(endpoint, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|source| ContainerError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        Ok(Engine { docker })
    }

    /// The engine's client, for the calls that are not the agent's own (image builds).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Docker's cgroup driver (`cgroupfs` or `systemd`).
    pub async fn cgroup_driver(&self) -> Result<String, ContainerError> {
        let info = self.docker.info().await.map_err(api("info"))?;
        Ok(info
            .cgroup_driver
            .map_or_else(|| "cgroupfs".to_owned(), |driver| driver.to_string()))
    }

    /// Creates and starts the container; returns its id. On a failed start the created
    /// container is removed again.
    pub async fn create_and_start(&self, plan: &ContainerPlan) -> Result<String, ContainerError> {
        // hh's own profile (Docker's default, narrowed: see `seccomp`), given as its JSON text,
        // as `docker run --security-opt seccomp=FILE` sends it.
        let seccomp = super::seccomp::profile().map_err(ContainerError::Seccomp)?;
        let host_config = HostConfig {
            binds: Some(plan.binds.clone()),
            // Loopback only: whatever the programs do, nothing routes out (fail closed).
            network_mode: Some("none".into()),
            cgroup_parent: Some(plan.cgroup_parent.clone()),
            memory: plan.memory_bytes,
            nano_cpus: plan.nano_cpus,
            pids_limit: Some(PIDS_LIMIT),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec![
                "no-new-privileges:true".into(),
                format!("seccomp={seccomp}"),
            ]),
            init: Some(false),
            tmpfs: Some(plan.tmpfs.iter().cloned().collect()),
            ..HostConfig::default()
        };
        let body = ContainerCreateBody {
            image: Some(plan.image.clone()),
            user: Some(plan.user.clone()),
            env: Some(plan.env.clone()),
            entrypoint: Some(plan.entrypoint.clone()),
            cmd: Some(plan.command.clone()),
            labels: Some(plan.labels.clone()),
            working_dir: Some(plan.working_dir.clone()),
            tty: Some(false),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptions {
            name: Some(plan.name.clone()),
            ..CreateContainerOptions::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(api(format!(
                "create {} from image {}",
                plan.name, plan.image
            )))?;
        if let Err(source) = self.docker.start_container(&created.id, None).await {
            let _ = self.remove(&created.id).await;
            return Err(api(format!("start {}", plan.name))(source));
        }
        Ok(created.id)
    }

    /// The image a session of `owner_uid` from stem `stem` runs: that user's own build
    /// (`hh-STEM:uUID`, made by the agent for them and labelled so) when there is one, else
    /// root's `hh-STEM`.
    pub async fn session_image(
        &self,
        stem: &str,
        owner_uid: u32,
    ) -> Result<SessionImage, ContainerError> {
        use crate::image::build::{BUILT_BY_LABEL, user_image};
        let found = |name: String, inspected: bollard::models::ImageInspect| {
            let config = inspected.config.unwrap_or_default();
            SessionImage {
                name,
                id: inspected.id.unwrap_or_default(),
                path: config
                    .env
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|entry| entry.strip_prefix("PATH=").map(str::to_owned)),
            }
        };
        if owner_uid != 0 {
            let own = user_image(stem, owner_uid);
            match self.docker.inspect_image(&own).await {
                Ok(inspected) => {
                    let built_by = inspected
                        .config
                        .as_ref()
                        .and_then(|config| config.labels.as_ref())
                        .and_then(|labels| labels.get(BUILT_BY_LABEL))
                        .cloned();
                    // Only the agent tags a user's name, and always labels it; anything else
                    // under that name was put there behind hh's back and is not theirs to run.
                    if built_by == Some(owner_uid.to_string()) {
                        return Ok(found(own, inspected));
                    }
                    tracing::warn!(
                        image = own,
                        ?built_by,
                        "image not labelled as built by its user; using root's"
                    );
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(source) => return Err(api(format!("inspect image {own}"))(source)),
            }
        }
        let shared = crate::image::image_name(stem);
        let inspected = self
            .docker
            .inspect_image(&shared)
            .await
            .map_err(api(format!(
                "inspect image {shared} (root builds it with `sudo hh image build {stem}`; \
             `hh image build {stem}` builds one of your own)"
            )))?;
        Ok(found(shared, inspected))
    }

    /// The container's first process, held through a `/proc/PID` handle and found in the
    /// session's cgroup (`session_cgroup`, relative to the cgroup v2 root). Docker names the
    /// process by pid, and a pid is reused once its process exits: Docker is therefore asked
    /// again once the handle is open, and the container must still run as that pid.
    pub async fn session_process(
        &self,
        id: &str,
        session_cgroup: &Path,
    ) -> Result<SessionProcess, ContainerError> {
        let pid = self.running_pid(id).await?;
        let process = SessionProcess::open(pid, session_cgroup).map_err(|source| {
            ContainerError::Process {
                id: id.to_owned(),
                source,
            }
        })?;
        if self.running_pid(id).await? != pid {
            return Err(ContainerError::NotRunning { id: id.to_owned() });
        }
        Ok(process)
    }

    /// The pid of the container's first process, while it runs.
    async fn running_pid(&self, id: &str) -> Result<i64, ContainerError> {
        let inspected = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(api(format!("inspect {id}")))?;
        inspected
            .state
            .as_ref()
            .filter(|state| state.running == Some(true))
            .and_then(|state| state.pid)
            .filter(|&pid| pid > 0)
            .ok_or_else(|| ContainerError::NotRunning { id: id.to_owned() })
    }

    /// The container's environment as created (the agent keeps no session secrets on disk; a
    /// restarted agent reads the control token back from here).
    /// Starts `command` in container `id` as the container's own user, attached: the output
    /// stream and the input writer, and the exec's id (for [`Engine::resize_exec`] and
    /// [`Engine::exec_status`]).
    pub async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<Exec, ContainerError> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(spec.tty),
                    env: Some(spec.env.clone()),
                    cmd: Some(spec.command.clone()),
                    working_dir: spec.working_dir.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(api("create exec"))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: spec.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(api("start exec"))?;
        match started {
            StartExecResults::Attached { output, input } => Ok(Exec {
                id: created.id,
                output,
                input,
            }),
            StartExecResults::Detached => Err(ContainerError::NotRunning { id: id.to_owned() }),
        }
    }

    /// Sets the TTY size of a running exec.
    pub async fn resize_exec(
        &self,
        exec: &str,
        columns: u16,
        rows: u16,
    ) -> Result<(), ContainerError> {
        let size = bollard::exec::ResizeExecOptions {
            height: rows,
            width: columns,
        };
        self.docker
            .resize_exec(exec, size)
            .await
            .map_err(api("resize exec"))
    }

    /// The exit status of a finished exec; `None` while it still runs.
    pub async fn exec_status(&self, exec: &str) -> Result<Option<i64>, ContainerError> {
        let inspected = self
            .docker
            .inspect_exec(exec)
            .await
            .map_err(api("inspect exec"))?;
        Ok(match inspected.running {
            Some(true) => None,
            _ => inspected.exit_code,
        })
    }

    pub async fn env(&self, id: &str) -> Result<Vec<String>, ContainerError> {
        let inspected = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(api(format!("inspect {id}")))?;
        Ok(inspected
            .config
            .and_then(|config| config.env)
            .unwrap_or_default())
    }

    /// Every session container of the agent instance `group`, running or not.
    pub async fn sessions(&self, group: &str) -> Result<Vec<Found>, ContainerError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![
                    label::SESSION.to_owned(),
                    format!("{}={group}", label::GROUP),
                ],
            )])),
            ..ListContainersOptions::default()
        };
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api("list session containers"))?;
        Ok(listed
            .into_iter()
            .filter_map(|summary| {
                Some(Found {
                    id: summary.id?,
                    running: summary
                        .state
                        .is_some_and(|state| state.to_string() == "running"),
                    labels: summary.labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Waits until the container stops (or is removed).
    pub async fn wait(&self, id: &str) {
        use futures_util::StreamExt as _;
        let mut waiting = self
            .docker
            .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        // One item (the exit) or an error (already gone, or a non-zero exit): either way it ended.
        let _ = waiting.next().await;
    }

    /// Removes the container, killing it first when it runs. Gone already is fine.
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..RemoveContainerOptions::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(source) => Err(api(format!("remove {id}"))(source)),
        }
    }
}

fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Api { what, source }
}
