//! Is a Docker engine reachable, which version, and how does it place containers in cgroups?
//!
//! A plain HTTP/1.0 GET over the engine's unix socket: the doctor needs two JSON documents, not a
//! client library.

use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};

use serde::Deserialize;

use super::{Check, Status, fail};
const NAME: &str = "docker";
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Version {
    version: String,
    api_version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    cgroup_driver: String,
    cgroup_version: String,
}

use crate::image::docker_socket as socket_path;

pub fn check(given: Option<&str>) -> Check {
    let socket = match socket_path(given) {
        Ok(socket) => socket,
        Err(why) => return fail(NAME, why, "set DOCKER_HOST=unix:///var/run/docker.sock"),
    };
    let fix = "start the engine: `sudo systemctl start docker`, or `sudo dockerd &` where \
               systemd does not run (`cargo xtask setup` does this)";
    let version: Version = match get(&socket, "/version") {
        Ok(version) => version,
        Err(why) if why.contains("ermission denied") && !rustix::process::geteuid().is_root() => {
            return super::skip(
                NAME,
                &format!(
                    "you may not use {}, and need not: the agent runs sessions, shells and \
                     image builds (`sudo hh doctor` checks the engine)",
                    socket.display()
                ),
            );
        }
        Err(why) => {
            return fail(
                NAME,
                format!("no engine answers at {}: {why}", socket.display()),
                fix,
            );
        }
    };
    let info: Info = match get(&socket, "/info") {
        Ok(info) => info,
        Err(why) => return fail(NAME, format!("{}: /info: {why}", socket.display()), fix),
    };
    let detail = format!(
        "engine {} (API {}) at {}, cgroup driver {}, cgroup v{}",
        version.version,
        version.api_version,
        socket.display(),
        info.cgroup_driver,
        info.cgroup_version
    );
    if info.cgroup_version == "1" {
        // On a hybrid host the engine puts containers in the v1 hierarchies, so the agent must
        // move each session into its cgroup v2 directory itself before anything in it runs.
        return Check {
            name: NAME,
            status: Status::Warn,
            detail,
            fix: Some(
                "the engine uses cgroup v1 (hybrid host); booting with \
                 systemd.unified_cgroup_hierarchy=1 gives it cgroup v2"
                    .into(),
            ),
        };
    }
    super::pass(NAME, detail)
}

fn get<T: for<'de> Deserialize<'de>>(socket: &PathBuf, path: &str) -> Result<T, String> {
    let mut stream = UnixStream::connect(socket).map_err(|error| error.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the engine answers without chunking and closes, so the body is the rest.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .take(4 << 20)
        .read_to_end(&mut response)
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the engine sent no complete HTTP response")?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) != Some("200") {
        return Err(format!("the engine answered `{status_line}`"));
    }
    serde_json::from_str(body).map_err(|error| format!("unexpected JSON: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_endpoint_names_its_socket() {
        assert_eq!(
            socket_path(Some("unix:///run/user/1000/docker.sock")),
            Ok(PathBuf::from("/run/user/1000/docker.sock"))
        );
    }

    #[test]
    fn a_tcp_endpoint_is_refused_with_the_reason() {
        let error = socket_path(Some("tcp://127.0.0.1:2375")).unwrap_err();
        assert!(error.contains("unix://"), "{error}");
    }

    #[test]
    fn a_socket_nobody_listens_on_fails_the_check_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("unix://{}/none.sock", dir.path().display());
        let check = check(Some(&endpoint));
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("none.sock"), "{}", check.detail);
        assert!(check.fix.is_some());
    }
}
