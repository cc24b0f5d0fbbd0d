//! Container image stems: Dockerfiles named `STEM.dockerfile`, each built into the image
//! `hh-STEM` on top of its parent.
//!
//! A stem names its parent on a header line, `# hh-stem-parent: NAME` (or `none`), and takes
//! the parent image as `ARG BASE`. Building a stem builds its ancestors first, in order, so
//! `hh image build rust` makes `hh-base` then `hh-rust`; Docker's layer cache reuses whatever
//! is current. The stems shipped with hh are built in; a file of the same name in the config's
//! `docker_dir` replaces one, and other files there add stems (`image = "something"`).

pub mod build;
pub mod buildkit;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// The stems hh ships, by name.
pub(crate) const BUILT_IN: &[(&str, &str)] = &[
    ("base", include_str!("../../../docker/base.dockerfile")),
    (
        "default",
        include_str!("../../../docker/default.dockerfile"),
    ),
    (
        "typescript",
        include_str!("../../../docker/typescript.dockerfile"),
    ),
    ("go", include_str!("../../../docker/go.dockerfile")),
    ("rust", include_str!("../../../docker/rust.dockerfile")),
    ("php", include_str!("../../../docker/php.dockerfile")),
    ("test", include_str!("../../../docker/test.dockerfile")),
];

const PARENT_HEADER: &str = "# hh-stem-parent:";

/// The Docker engine's default socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The engine's socket: `given`, else `$DOCKER_HOST`, else the default; only `unix://`.
pub fn docker_socket(given: Option<&str>) -> Result<PathBuf, String> {
    let endpoint = given
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| format!("unix://{DEFAULT_DOCKER_SOCKET}"));
    endpoint
        .strip_prefix("unix://")
        .map(PathBuf::from)
        .ok_or_else(|| format!("{endpoint}: hh talks to Docker over a unix:// socket only"))
}

/// The image a stem is built into.
pub fn image_name(stem: &str) -> String {
    format!("hh-{stem}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StemError {
    #[error("no stem `{name}` (known: {known}); add {name}.dockerfile to the docker_dir")]
    Unknown { name: String, known: String },
    #[error("stem `{name}` names parent `{parent}`, which is no stem")]
    UnknownParent { name: String, parent: String },
    #[error("stems form a cycle: {0}")]
    Cycle(String),
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// One stem: where its text comes from and whom it builds on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stem {
    pub name: String,
    pub text: String,
    /// `None`: the file on disk was not given (built in).
    pub path: Option<PathBuf>,
    pub parent: Option<String>,
}

/// The parent a Dockerfile's header names; `base` when it names none (and it is not `base`).
pub fn parent_of(name: &str, text: &str) -> Option<String> {
    let declared = text
        .lines()
        .take_while(|line| line.starts_with('#') || line.trim().is_empty())
        .find_map(|line| line.strip_prefix(PARENT_HEADER))
        .map(str::trim);
    match declared {
        Some("none") => None,
        Some(parent) => Some(parent.to_owned()),
        None if name == "base" => None,
        None => Some("base".to_owned()),
    }
}

/// The built-in stems, replaced and extended by `*.dockerfile` files in `dir` (when it exists).
pub fn discover(dir: Option<&Path>) -> Result<BTreeMap<String, Stem>, StemError> {
    let mut stems: BTreeMap<String, Stem> = BUILT_IN
        .iter()
        .map(|(name, text)| {
            let stem = Stem {
                name: (*name).to_owned(),
                text: (*text).to_owned(),
                path: None,
                parent: parent_of(name, text),
            };
            ((*name).to_owned(), stem)
        })
        .collect();
    let Some(dir) = dir else {
        return Ok(stems);
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(stems),
        Err(error) => {
            return Err(StemError::Read {
                path: dir.to_path_buf(),
                reason: error.to_string(),
            });
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".dockerfile"))
        else {
            continue;
        };
        // A file whose name is no stem name is not a stem. A dotfile (an editor's lock or
        // backup) is passed over quietly; any other is said, or `My.dockerfile` would seem
        // to vanish.
        if !build::valid_stem_name(name) {
            if !name.starts_with('.') {
                tracing::warn!(
                    file = %path.display(),
                    "not a stem, ignored: a stem's name is lowercase letters and digits joined \
                     by `-`, `_` or `__` (it becomes part of a Docker image name)"
                );
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|error| StemError::Read {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        let parent = parent_of(name, &text);
        stems.insert(
            name.to_owned(),
            Stem {
                name: name.to_owned(),
                text,
                path: Some(path),
                parent,
            },
        );
    }
    Ok(stems)
}

/// `target` and its ancestors, ancestors first.
pub fn build_order<'a>(
    stems: &'a BTreeMap<String, Stem>,
    target: &str,
) -> Result<Vec<&'a Stem>, StemError> {
    let mut chain: Vec<&Stem> = Vec::new();
    let mut name = target.to_owned();
    loop {
        let stem = stems.get(&name).ok_or_else(|| match chain.last() {
            Some(child) => StemError::UnknownParent {
                name: child.name.clone(),
                parent: name.clone(),
            },
            None => StemError::Unknown {
                name: name.clone(),
                known: stems.keys().cloned().collect::<Vec<_>>().join(", "),
            },
        })?;
        if chain.iter().any(|seen| seen.name == stem.name) {
            let names: Vec<&str> = chain.iter().map(|s| s.name.as_str()).collect();
            return Err(StemError::Cycle(format!(
                "{} -> {}",
                names.join(" -> "),
                stem.name
            )));
        }
        chain.push(stem);
        match &stem.parent {
            Some(parent) => name = parent.clone(),
            None => break,
        }
    }
    chain.reverse();
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_stem_resolves_to_a_chain_from_a_root() {
        let stems = discover(None).unwrap();
        let order: Vec<&str> = build_order(&stems, "typescript")
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, ["base", "default", "typescript"]);
        for name in stems.keys() {
            build_order(&stems, name).unwrap();
        }
        assert!(build_order(&stems, "test").unwrap().len() == 1);
    }

    #[test]
    fn every_built_in_stem_takes_its_parent_as_the_base_arg() {
        for (name, text) in BUILT_IN {
            assert!(text.contains("ARG BASE"), "{name}");
            assert!(text.contains("FROM ${BASE}"), "{name}");
        }
    }

    #[test]
    fn a_user_stem_builds_on_base_unless_it_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.dockerfile"),
            "ARG BASE\nFROM ${BASE}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("loop-a.dockerfile"),
            "# hh-stem-parent: loop-b\nFROM x\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("loop-b.dockerfile"),
            "# hh-stem-parent: loop-a\nFROM x\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("orphan.dockerfile"),
            "# hh-stem-parent: gone\n",
        )
        .unwrap();
        let stems = discover(Some(dir.path())).unwrap();
        let order: Vec<&str> = build_order(&stems, "mine")
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, ["base", "mine"]);
        assert!(matches!(
            build_order(&stems, "loop-a"),
            Err(StemError::Cycle(_))
        ));
        assert_eq!(
            build_order(&stems, "orphan").unwrap_err(),
            StemError::UnknownParent {
                name: "orphan".into(),
                parent: "gone".into()
            }
        );
        assert!(matches!(
            build_order(&stems, "nope"),
            Err(StemError::Unknown { .. })
        ));
    }
}
