//! The agent's Docker calls (bollard): create a session's container from a [`ContainerPlan`],
//! start it, find its network namespace, find sessions again by label, remove them.
//!
//! Every session container carries the labels below; they are how a restarted agent finds its
//! sessions, and how nothing else's containers are ever touched.

use std::{
    collections::HashMap,
    fs::File,
    os::{
        fd::{AsRawFd as _, FromRawFd as _},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    },
    path::Path,
};

use crate::agent::access::{FileId, MountCheck};

use bollard::{
    Docker,
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
        RemoveContainerOptions,
    },
};

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
    #[error("cannot open the network namespace of container {id}")]
    Namespace {
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
        let host_config = HostConfig {
            binds: Some(plan.binds.clone()),
            // Loopback only: whatever the programs do, nothing routes out (fail closed).
            network_mode: Some("none".into()),
            cgroup_parent: Some(plan.cgroup_parent.clone()),
            memory: plan.memory_bytes,
            nano_cpus: plan.nano_cpus,
            pids_limit: Some(PIDS_LIMIT),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            init: Some(false),
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

    /// The `PATH` an image sets, if it sets one (sessions put the agent's tools in front of it).
    pub async fn image_path(&self, image: &str) -> Result<Option<String>, ContainerError> {
        let inspected = self.docker.inspect_image(image).await.map_err(api(format!(
            "inspect image {image} (build it with `hh image build`)"
        )))?;
        Ok(inspected
            .config
            .and_then(|config| config.env)
            .unwrap_or_default()
            .into_iter()
            .find_map(|entry| entry.strip_prefix("PATH=").map(str::to_owned)))
    }

    /// The network namespace of the container's first process, open. Docker names the process
    /// by pid, and a pid is reused once its process exits; the namespace is therefore opened
    /// through a `/proc/PID` directory handle (bound to one process: if it exits, opening
    /// through the handle fails, whoever gets the pid next), and that same process must sit in
    /// the session's cgroup (`session_cgroup`, relative to the cgroup v2 root) and must not share
    /// the agent's own namespace. Docker is then asked again: the container must still run as
    /// that pid. The session's listeners never join another namespace (the host's least).
    ///
    /// Through the same handle, each of `mounts` must show the file that was checked for it
    /// (Docker resolved the path again when it mounted; see [`super::access::Mountable`]).
    pub async fn network_namespace(
        &self,
        id: &str,
        session_cgroup: &Path,
        mounts: &[MountCheck],
    ) -> Result<File, ContainerError> {
        let pid = self.running_pid(id).await?;
        let refused = |reason: String| ContainerError::Namespace {
            id: id.to_owned(),
            source: std::io::Error::other(reason),
        };
        let io_error = |source| ContainerError::Namespace {
            id: id.to_owned(),
            source,
        };
        let process = File::open(format!("/proc/{pid}")).map_err(io_error)?;
        let cgroup = std::io::read_to_string(open_at(&process, c"cgroup").map_err(io_error)?)
            .map_err(io_error)?;
        if !in_cgroup(&cgroup, session_cgroup) {
            return Err(refused(format!(
                "its process {pid} is not in the session's cgroup {}",
                session_cgroup.display()
            )));
        }
        for mount in mounts {
            let seen = file_at(
                &process,
                &Path::new("root").join(
                    mount
                        .container
                        .strip_prefix("/")
                        .unwrap_or(&mount.container),
                ),
            )
            .map_err(io_error)?;
            if seen != mount.file {
                return Err(refused(format!(
                    "{} is not the directory that was checked (replaced before Docker mounted it?)",
                    mount.container.display()
                )));
            }
        }
        let namespace = open_at(&process, c"ns/net").map_err(io_error)?;
        let own = std::fs::metadata("/proc/self/ns/net").map_err(io_error)?;
        let theirs = namespace.metadata().map_err(io_error)?;
        if (own.dev(), own.ino()) == (theirs.dev(), theirs.ino()) {
            return Err(refused(
                "its process shares the agent's network namespace".into(),
            ));
        }
        if self.running_pid(id).await? != pid {
            return Err(ContainerError::NotRunning { id: id.to_owned() });
        }
        Ok(namespace)
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

/// Opens `name` relative to the directory `dir`, read-only (`ns/net` is one of procfs's own
/// links, which must be followed to reach the namespace).
fn open_at(dir: &File, name: &std::ffi::CStr) -> std::io::Result<File> {
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the returned descriptor is
    // owned by the `File`.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The identity of the file at `path` relative to the directory `dir` (following links: the
/// `root` of a `/proc/PID` directory leads into that process's root).
fn file_at(dir: &File, path: &Path) -> std::io::Result<FileId> {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: zeroes are a valid `stat`; it is only read after fstatat filled it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid directory descriptor, a NUL-terminated path and a `stat` to fill.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), path.as_ptr(), &raw mut stat, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(FileId {
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

/// Whether a `/proc/PID/cgroup` text puts the process in `cgroup` (a path relative to the
/// cgroup v2 root) or below it: its unified-hierarchy line (`0::/PATH`).
fn in_cgroup(proc_cgroup: &str, cgroup: &Path) -> bool {
    let expected = Path::new("/").join(cgroup);
    proc_cgroup
        .lines()
        .filter_map(|line| line.strip_prefix("0::"))
        .any(|path| Path::new(path.trim_end()).starts_with(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_replaced_after_its_check_is_seen_through_the_process_root() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("workspace");
        std::fs::create_dir(&workspace).unwrap();
        let checked = std::fs::metadata(&workspace).unwrap();
        let checked = FileId {
            dev: checked.dev(),
            ino: checked.ino(),
        };
        let process = File::open("/proc/self").unwrap();
        let through_root = Path::new("root").join(workspace.strip_prefix("/").unwrap());
        assert_eq!(file_at(&process, &through_root).unwrap(), checked);
        // Swapped for a symlink to another directory, as a user owning the parent could.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&workspace, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &workspace).unwrap();
        assert_ne!(file_at(&process, &through_root).unwrap(), checked);
    }

    #[test]
    fn the_unified_line_decides_which_cgroup_a_process_is_in() {
        let hybrid = "12:memory:/hh/s1/docker-abc\n1:name=systemd:/hh/s1/abc\n0::/hh/s1/abc\n";
        assert!(in_cgroup(hybrid, Path::new("hh/s1")));
        // A prefix of a name is not a parent.
        assert!(!in_cgroup(hybrid, Path::new("hh/s")));
        assert!(!in_cgroup(hybrid, Path::new("hh/s2")));
        // v1 lines alone say nothing about the hierarchy the programs are attached in.
        assert!(!in_cgroup("12:memory:/hh/s1/abc\n", Path::new("hh/s1")));
        let systemd = "0::/hh.slice/hh-s1.slice/docker-abc.scope\n";
        assert!(in_cgroup(systemd, Path::new("hh.slice/hh-s1.slice")));
    }
}
