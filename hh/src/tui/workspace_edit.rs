//! Adding and removing `[[workspaces]]` in `harness-hat.toml` from the TUI, keeping the file's
//! comments and layout (toml_edit), and refusing any edit the config loader would refuse
//! ([`config::load::check`]): same rules for a path typed here as for one written by hand.
//!
//! [`add`] and [`remove`] are pure text edits; [`apply`] reads, edits, checks and writes.

use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::{
    config::{self, Config, Env},
    rules::store::write_atomically,
};

/// A change the Workspaces screen asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkspaceChange {
    Add { name: String, path: String },
    Remove { name: String },
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{file}: {message}")]
    Toml { file: PathBuf, message: String },
    #[error("{file}: `workspaces` is not an array of [[workspaces]] tables")]
    NotTables { file: PathBuf },
    #[error("no workspace `{name}` in {file}")]
    NoSuchWorkspace { file: PathBuf, name: String },
    #[error("{} is not a directory (create it first, or pick another)", .path.display())]
    NoSuchDirectory { path: PathBuf },
    #[error(transparent)]
    Refused(#[from] config::ConfigError),
    #[error(transparent)]
    Write(#[from] crate::rules::StoreError),
}

fn parse(text: &str, file: &Path) -> Result<DocumentMut, EditError> {
    text.parse()
        .map_err(|e: toml_edit::TomlError| EditError::Toml {
            file: file.into(),
            message: e.message().trim().into(),
        })
}

fn workspaces<'a>(
    document: &'a mut DocumentMut,
    file: &Path,
) -> Result<&'a mut ArrayOfTables, EditError> {
    let item = document
        .entry("workspaces")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut()
        .ok_or_else(|| EditError::NotTables { file: file.into() })
}

/// The config text with one more `[[workspaces]]` table at the end.
pub fn add(text: &str, file: &Path, name: &str, path: &str) -> Result<String, EditError> {
    let mut document = parse(text, file)?;
    let mut table = Table::new();
    table.insert("name", value(name));
    table.insert("canonical_path", value(path));
    // The new table goes at the very end of the file, after the comments that close it (the
    // starter ends with a commented `[[workspaces]]` example): they become the table's prefix.
    let trailing = document.trailing().as_str().unwrap_or_default().to_string();
    document.set_trailing("");
    table.decor_mut().set_prefix(trailing);
    table.set_position(Some(isize::MAX));
    workspaces(&mut document, file)?.push(table);
    Ok(document.to_string())
}

/// The config text without the workspace called `name`.
pub fn remove(text: &str, file: &Path, name: &str) -> Result<String, EditError> {
    let mut document = parse(text, file)?;
    let tables = workspaces(&mut document, file)?;
    let index = tables
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
        .ok_or_else(|| EditError::NoSuchWorkspace {
            file: file.into(),
            name: name.into(),
        })?;
    tables.remove(index);
    Ok(document.to_string())
}

/// Applies `change` to the config file at `file` if the result passes every load check;
/// returns the new config.
pub fn apply(file: &Path, change: &WorkspaceChange, env: &Env) -> Result<Config, EditError> {
    let text = std::fs::read_to_string(file).map_err(|reason| {
        EditError::Refused(config::ConfigError::Read {
            file: file.into(),
            reason,
        })
    })?;
    let new_text = match change {
        WorkspaceChange::Add { name, path } => add(&text, file, name, path)?,
        WorkspaceChange::Remove { name } => remove(&text, file, name)?,
    };
    let config = config::load::check(&new_text, file, env)?;
    if let WorkspaceChange::Add { name, .. } = change {
        // A typo'd path must not become a workspace no session can start from.
        let added = config.workspace(name).map(|w| w.canonical_path.clone());
        if let Some(path) = added.filter(|path| !path.is_dir()) {
            return Err(EditError::NoSuchDirectory { path });
        }
    }
    write_atomically(file, new_text.as_bytes())?;
    Ok(config)
}

/// A workspace name from its directory: the last path component, else `workspace`.
pub fn default_name(path: &str) -> String {
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("workspace")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::starter::STARTER_CONFIG;

    fn env() -> Env {
        Env {
            home: Some("/home/u".into()),
            xdg_config_home: None,
        }
    }

    #[test]
    fn adding_keeps_comments_and_the_result_loads() {
        let file = Path::new("harness-hat.toml");
        let text = add(STARTER_CONFIG, file, "proj", "~/src/proj").unwrap();
        assert!(text.starts_with(STARTER_CONFIG.trim_end()));
        assert!(
            text.ends_with("[[workspaces]]\nname = \"proj\"\ncanonical_path = \"~/src/proj\"\n")
        );
        let config = config::load::parse(&text, file, &env()).unwrap();
        assert_eq!(
            config.workspaces[0].canonical_path,
            Path::new("/home/u/src/proj")
        );
    }

    #[test]
    fn removing_leaves_the_other_workspaces() {
        let file = Path::new("harness-hat.toml");
        let text = add(STARTER_CONFIG, file, "a", "/a").unwrap();
        let text = add(&text, file, "b", "/b").unwrap();
        let text = remove(&text, file, "a").unwrap();
        let config = config::load::parse(&text, file, &env()).unwrap();
        let names: Vec<_> = config.workspaces.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["b"]);
        assert!(matches!(
            remove(&text, file, "a"),
            Err(EditError::NoSuchWorkspace { .. })
        ));
    }

    #[test]
    fn the_loaders_refusals_apply_and_the_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("harness-hat.toml");
        std::fs::write(&file, STARTER_CONFIG).unwrap();
        for (name, path, message) in [
            ("etc", "/etc/x", "never hands to a session"),
            ("rel", "relative/dir", "must be an absolute path"),
            ("", "/tmp/x", "must be non-empty"),
            (
                "gone",
                "/nonexistent/hh-test-dir",
                "/nonexistent/hh-test-dir is not a directory",
            ),
        ] {
            let change = WorkspaceChange::Add {
                name: name.into(),
                path: path.into(),
            };
            let error = apply(&file, &change, &env()).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), STARTER_CONFIG);
        let change = WorkspaceChange::Add {
            name: "ok".into(),
            path: dir.path().display().to_string(),
        };
        assert_eq!(apply(&file, &change, &env()).unwrap().workspaces.len(), 1);
    }

    #[test]
    fn default_names_come_from_the_directory() {
        assert_eq!(default_name("/home/u/src/proj/"), "proj");
        assert_eq!(default_name("/"), "workspace");
    }
}
