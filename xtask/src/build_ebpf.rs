//! `cargo xtask build-ebpf`: builds hh-ebpf for `bpfel-unknown-none`.
//!
//! rustup's toolchains here have no `core` for BPF and cannot fetch rust-src, so the object is
//! compiled by Debian's rustc (package rustc-web), whose precompiled `core` for the BPF targets
//! is LLVM bitcode that bpf-linker links (../shared/notes/ebpf-toolchain.md, section 2).
//! The `hh` crate embeds the result; its build script refuses a missing or stale object.

use std::{path::Path, process::Command};

use anyhow::Result;

use crate::exec;

/// Debian's compiler, named by path: `~/.cargo/bin/rustc` (rustup) comes first in PATH.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
pub const TARGET: &str = "bpfel-unknown-none";

#[derive(clap::Args)]
pub struct Options {}

pub fn run(workspace: &Path, _options: &Options) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // spawns: cargo
    let mut command = Command::new(cargo);
    // A toolchain override or wrapper meant for the host build must not leak into this one.
    for variable in [
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    command
        .current_dir(workspace)
        .env("RUSTC", DEBIAN_RUSTC)
        // Unstable features are allowed in aya-ebpf alone, not in our code.
        .env("RUSTC_BOOTSTRAP", "aya_ebpf")
        // The rustflags aya-build passes, plus -Dwarnings. Kept here only: nested `.cargo/config.toml` arrays
        // are appended, and bpf-linker refuses `--btf` twice.
        .env(
            "CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS",
            r#"-Cdebuginfo=2 -Clink-arg=--btf --cfg bpf_target_arch="x86_64" -Dwarnings"#,
        )
        .args([
            "build",
            "--locked",
            "--release",
            "--package",
            "hh-ebpf",
            "--bins",
        ])
        .args(["--target", TARGET, "--target-dir"])
        .arg(workspace.join("target/ebpf"));
    exec::run(&mut command)?;
    eprintln!(
        "xtask build-ebpf: {}",
        workspace
            .join("target/ebpf")
            .join(TARGET)
            .join("release/hh-bpf")
            .display()
    );
    Ok(())
}
