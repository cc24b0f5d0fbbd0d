//! `cargo xtask test`: the whole suite, exactly as CI runs it (README's test command).
//!
//! Order matters: setup installs the toolchain and starts dockerd, the eBPF object must exist
//! before `hh` builds, and the test image before the tests that start containers.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

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
        // spawns: cargo
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
    run_tests(
        cargo()
            .args(["test", "--workspace", "--locked", "--"])
            .args(&options.test_args),
    )
}

/// Runs `cargo test`, passing its output through, and ends with one line that totals every
/// test binary's `test result:` line: cargo's own last line is the last binary's (often a
/// doc-test run of 0), which says nothing about the suite.
fn run_tests(command: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", exec::display(command));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", exec::display(command)))?;
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            passed += count_before(result, " passed");
            failed += count_before(result, " failed");
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("`{}` failed ({status})", exec::display(command));
    }
    Ok(())
}

/// The number just before `label` in `ok. 12 passed; 0 failed; …`.
fn count_before(text: &str, label: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .strip_suffix(label)?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
