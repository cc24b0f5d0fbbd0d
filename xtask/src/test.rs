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

/// About what a clean clone's `target/` grows to in a full run (debug build, every test binary,
/// the eBPF object), with room for the test images: measured at 5.4 GiB.
const TARGET_NEEDS: u64 = 8 << 30;

pub fn run(workspace: &Path, options: &Options) -> Result<()> {
    warn_if_disk_is_short(workspace);
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

/// Says so up front when the workspace's file system has less room than a full run needs: the
/// build would otherwise fail an hour in with "No space left on device" from some rustc.
fn warn_if_disk_is_short(workspace: &Path) {
    let Some(free) = free_bytes(workspace) else {
        return;
    };
    if free < TARGET_NEEDS {
        eprintln!(
            "xtask: warning: {} has {:.1} GiB free; a full build and test run needs about {:.0} GiB \
             (target/ alone grows to ~5.4 GiB). Free some space (old target/ dirs, \
             `docker system prune`) if the build fails with \"No space left on device\".",
            workspace.display(),
            free as f64 / f64::from(1u32 << 30),
            TARGET_NEEDS as f64 / f64::from(1u32 << 30),
        );
    }
}

/// The bytes an unprivileged writer may still use on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stat` room for one statvfs, which the call
    // fills when it returns 0.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the struct.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
