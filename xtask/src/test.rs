//! `cargo xtask test`: the whole suite, exactly as CI runs it (README's test command).
//!
//! Order matters: setup installs the toolchain and starts dockerd, the eBPF object must exist
//! before `hh` builds, and the test image before the tests that start containers.

use std::{path::Path, process::Command};

use anyhow::Result;

use crate::{build_ebpf, exec, image, setup};

#[derive(clap::Args)]
pub struct Options {
    /// Skip `cargo xtask setup` (when the host is known to be ready).
    #[arg(long)]
    no_setup: bool,
    /// Arguments passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    test_args: Vec<String>,
}

pub fn run(workspace: &Path, options: &Options) -> Result<()> {
    if !options.no_setup {
        setup::run(&setup::Options::default())?;
    }
    build_ebpf::run(workspace, &build_ebpf::Options {})?;
    image::run(workspace, &image::Options::default())?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo = || {
        let mut command = Command::new(&cargo);
        command.current_dir(workspace);
        command
    };
    exec::run(cargo().args(["fmt", "--all", "--check"]))?;
    exec::run(
        cargo()
            .args(["clippy", "--workspace", "--all-targets", "--locked"])
            .args(["--", "-D", "warnings"]),
    )?;
    exec::run(
        cargo()
            .args(["test", "--workspace", "--locked", "--"])
            .args(&options.test_args),
    )
}
