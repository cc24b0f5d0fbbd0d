//! Before a session starts, the client looks through the workspace, as the user, for files whose
//! names say they hold secrets (`.env`, SSH and PGP keys, cloud credentials, certificates with
//! keys, package-manager tokens): everything in the workspace is the session's to read, and so
//! the coding agent's. Found files are named with a severity; a high one makes an interactive
//! `hh session start` ask before going on. The workspace's `sensitive_allow` lists files that
//! are meant to be there, each with the reason.
//!
//! Names only: file contents are not read (no secret scanner is run).

use std::path::{Path, PathBuf};

/// How bad it is that a session reads the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// One file the scan found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Relative to the workspace.
    pub path: PathBuf,
    pub severity: Severity,
    /// What kind of secret its name says it holds.
    pub kind: &'static str,
}

/// Directories not looked into: dependencies and build output (large, and not the user's).
const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", "target", "vendor", ".venv", "venv"];
/// How deep, how many entries and how long the scan looks, so that a huge tree does not hold a
/// start; it stays on the workspace's filesystem (a hung network mount below it does not).
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 50_000;
const MAX_TIME: std::time::Duration = std::time::Duration::from_secs(3);

/// What a file name says, if it says it holds a secret. `parent` is the name of the directory
/// it is in (`.aws`, `.ssh`, …).
pub fn classify(name: &str, parent: &str) -> Option<(Severity, &'static str)> {
    use Severity::{High, Low, Medium};
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, ext)| ext);
    Some(match lower.as_str() {
        "id_rsa" | "id_dsa" | "id_ecdsa" | "id_ed25519" | "id_ecdsa_sk" | "id_ed25519_sk" => {
            (High, "SSH private key")
        }
        "secring.gpg" | "secring.kbx" | "private-keys-v1.d" => (High, "PGP private key"),
        "credentials" if parent == ".aws" => (High, "AWS credentials"),
        "config" if parent == ".kube" => (High, "Kubernetes credentials"),
        "kubeconfig" => (High, "Kubernetes credentials"),
        "application_default_credentials.json" => (High, "Google Cloud credentials"),
        ".git-credentials" => (High, "git credentials"),
        ".netrc" | "_netrc" => (High, "login credentials (netrc)"),
        ".pgpass" => (High, "PostgreSQL passwords"),
        ".npmrc" | ".yarnrc.yml" => (Medium, "npm token (package manager config)"),
        ".pypirc" => (Medium, "PyPI token"),
        "credentials.toml" if parent == ".cargo" => (Medium, "crates.io token"),
        "config.json" if parent == ".docker" => (Medium, "registry credentials (Docker)"),
        ".env" => (High, "environment secrets (.env)"),
        "terraform.tfstate" | "terraform.tfstate.backup" => (Medium, "Terraform state"),
        _ if lower.starts_with(".env.") => {
            let variant = &lower[5..];
            if matches!(
                variant,
                "example" | "sample" | "template" | "dist" | "defaults"
            ) {
                (Low, "environment template (.env.*)")
            } else {
                (High, "environment secrets (.env.*)")
            }
        }
        _ if matches!(ext, "pem" | "key") => (High, "private key or certificate"),
        _ if matches!(ext, "p12" | "pfx" | "jks" | "keystore") => (High, "key store"),
        _ if ext == "tfvars" => (Medium, "Terraform variables"),
        _ => return None,
    })
}

/// The workspace's files whose names say they hold secrets, but those `allowed` (relative
/// paths), in path order. Symbolic links are reported by their own name and never followed.
pub fn scan(workspace: &Path, allowed: &[PathBuf]) -> Vec<Finding> {
    use std::os::unix::fs::MetadataExt as _;
    let mut findings = Vec::new();
    let mut seen = 0usize;
    let started = std::time::Instant::now();
    let Ok(device) = std::fs::metadata(workspace).map(|meta| meta.dev()) else {
        return findings;
    };
    let mut stack = vec![(workspace.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let parent = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES || started.elapsed() > MAX_TIME {
                return sorted(findings);
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let path = entry.path();
            let relative = path.strip_prefix(workspace).unwrap_or(&path).to_path_buf();
            if let Some((severity, what)) = classify(name, &parent)
                && !allowed.contains(&relative)
            {
                findings.push(Finding {
                    path: relative,
                    severity,
                    kind: what,
                });
                continue;
            }
            let same_filesystem =
                || std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.dev() == device);
            if kind.is_dir()
                && depth < MAX_DEPTH
                && !SKIPPED_DIRS.contains(&name)
                && same_filesystem()
            {
                stack.push((path, depth + 1));
            }
        }
    }
    sorted(findings)
}

fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_what_they_hold() {
        for (name, parent, severity) in [
            ("id_ed25519", "keys", Severity::High),
            (".env", "", Severity::High),
            (".env.production", "", Severity::High),
            (".env.example", "", Severity::Low),
            ("server.PEM", "", Severity::High),
            ("credentials", ".aws", Severity::High),
            ("config", ".kube", Severity::High),
            (".npmrc", "", Severity::Medium),
            ("prod.tfvars", "", Severity::Medium),
        ] {
            assert_eq!(
                classify(name, parent).map(|(s, _)| s),
                Some(severity),
                "{name}"
            );
        }
        for name in [
            "id_ed25519.pub",
            "README.md",
            "credentials",
            "config",
            "env.rs",
        ] {
            assert_eq!(classify(name, "src"), None, "{name}");
        }
    }

    #[test]
    fn the_scan_finds_by_name_skips_dependencies_and_keeps_the_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for dir in ["deploy", ".aws", "node_modules/pkg", ".git"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            ".env",
            ".env.example",
            "deploy/server.key",
            ".aws/credentials",
            "node_modules/pkg/test.pem",
            ".git/id_rsa",
            "src.rs",
            "fixtures.pem",
        ] {
            std::fs::write(root.join(file), "x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", root.join("id_rsa")).unwrap();
        let found = scan(root, &[PathBuf::from("fixtures.pem")]);
        let paths: Vec<_> = found.iter().map(|f| f.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                ".aws/credentials",
                ".env",
                ".env.example",
                "deploy/server.key",
                "id_rsa"
            ]
        );
    }
}
