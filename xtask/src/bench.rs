//! `cargo xtask bench TARGET`: run one benchmark suite and print its table.
//!
//! Targets: `rules` (decision time against rule count, indexed vs naive), `enforce` (the
//! eBPF redirect's cost per connection, against direct and against the seed's tun2proxy +
//! iptables container, for which it starts Docker, builds the test image and installs tun2proxy
//! with cargo into `target/bench-tools` first) and `proxy` (`hh proxy` against direct HTTPS and
//! against mitmproxy, which it installs with pip into `target/bench-venv` first).

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::{exec, image, setup};

/// The tun2proxy release the seed-design baseline runs (the seed used 0.7; 0.8.7 is the newest
/// that builds with this toolchain).
const TUN2PROXY_VERSION: &str = "0.8.7";

#[derive(clap::Args)]
pub struct Options {
    /// What to benchmark.
    #[arg(value_enum)]
    target: Target,
    /// enforce only: run just the splice-on rounds this many times and stop at the first
    /// client that fails (the reproduction of a lost spliced message; see docs/benchmarks.md).
    #[arg(long, value_name = "ROUNDS")]
    splice_soak: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Target {
    /// Rule decisions at 10 to 10,000 rules, the compiled index against a linear scan.
    Rules,
    /// Connect cost through the eBPF redirect against direct connects and tun2proxy (needs root).
    Enforce,
    /// Session start to a ready shell against a plain `docker run` (needs root and Docker).
    Session,
    /// `hh shell` through the agent against `docker exec`: keystroke echo, stdout throughput.
    Exec,
    /// `hh proxy` against direct HTTPS and mitmproxy: latency, req/s, download, SSE, memory.
    Proxy,
}

pub fn run(workspace: &Path, options: &Options) -> Result<()> {
    match options.target {
        Target::Rules => {
            exec::run(
                std::process::Command::new("cargo")
                    .current_dir(workspace)
                    .args(["bench", "-p", "hh", "--bench", "rules"]),
            )?;
            print_rules_table(&workspace.join("target/criterion/decide"))
        }
        // These benches print their own tables (harnesses of their own, not criterion).
        Target::Enforce => {
            if let Some(rounds) = options.splice_soak {
                let rounds = rounds.to_string();
                return bench_harness(workspace, "enforce", &[("HH_BENCH_SPLICE_SOAK", &rounds)]);
            }
            // Best effort: without the baseline the eBPF cases still run and the bench says so.
            if let Err(error) = prepare_tun2proxy_baseline(workspace) {
                eprintln!("xtask: no tun2proxy baseline, benchmarking without it: {error:#}");
            }
            bench_harness(workspace, "enforce", &[])
        }
        Target::Session => bench_harness(workspace, "session", &[]),
        Target::Exec => bench_harness(workspace, "exec", &[]),
        Target::Proxy => {
            // Best effort: without mitmproxy the bench still runs and its table says so.
            if let Err(error) = install_mitmproxy(workspace) {
                eprintln!("xtask: mitmproxy unavailable, benchmarking without it: {error:#}");
            }
            bench_harness(workspace, "proxy", &[])
        }
    }
}

/// Runs one of hh's self-reporting bench harnesses: cargo builds it, then xtask runs the
/// binary itself (as `cargo bench` would: from the package's directory, with `--bench`), so
/// that a SIGINT or SIGTERM to xtask reaches the bench, which removes what it made
/// (`tests/support/leftovers.rs`) before it exits.
fn bench_harness(workspace: &Path, name: &str, env: &[(&str, &str)]) -> Result<()> {
    let built = exec::output(
        std::process::Command::new("cargo")
            .current_dir(workspace)
            .args([
                "bench",
                "-p",
                "hh",
                "--bench",
                name,
                "--no-run",
                "--message-format=json",
            ]),
    )?;
    let executable = bench_executable(&String::from_utf8_lossy(&built.stdout), name)
        .with_context(|| format!("cargo built no executable for bench `{name}`"))?;
    exec::run_forwarding_signals(
        // spawns: hh
        std::process::Command::new(executable)
            .current_dir(workspace.join("hh"))
            .envs(env.iter().copied())
            .arg("--bench"),
    )
}

/// The executable of bench `name` in cargo's JSON messages: the `compiler-artifact` line of a
/// `bench` target of that name.
fn bench_executable(messages: &str, name: &str) -> Option<String> {
    messages
        .lines()
        .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
        .filter(|line| {
            line.contains(&format!(
                r#""kind":["bench"],"crate_types":["bin"],"name":"{name}""#
            ))
        })
        .find_map(|line| {
            let (_, rest) = line.split_once(r#""executable":""#)?;
            Some(rest.split_once('"')?.0.to_owned())
        })
}

/// `python3 -m venv target/bench-venv` and `pip install mitmproxy` into it, unless its
/// `mitmdump` is already there (the bench looks for it at that path).
fn install_mitmproxy(workspace: &Path) -> Result<()> {
    let venv = workspace.join("target/bench-venv");
    if venv.join("bin/mitmdump").exists() {
        return Ok(());
    }
    exec::run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv),
    )?;
    // spawns: pip
    exec::run(std::process::Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "mitmproxy",
    ]))
}

/// What the seed-design baseline needs: a Docker engine, the local test base image (the bench
/// builds the `test` stem on it) and tun2proxy.
fn prepare_tun2proxy_baseline(workspace: &Path) -> Result<()> {
    setup::ensure_docker()?;
    image::run(workspace, &image::Options::default())?;
    install_tun2proxy(workspace)
}

/// `cargo install tun2proxy` into `target/bench-tools`, unless its binary is already there
/// (the bench looks for it at that path).
fn install_tun2proxy(workspace: &Path) -> Result<()> {
    let root = workspace.join("target/bench-tools");
    if root.join("bin/tun2proxy-bin").exists() {
        return Ok(());
    }
    exec::run(
        std::process::Command::new("cargo")
            .args([
                "install",
                "tun2proxy",
                "--locked",
                "--version",
                TUN2PROXY_VERSION,
            ])
            .args(["--bin", "tun2proxy-bin", "--root"])
            .arg(&root),
    )
}

/// Reads criterion's estimates and prints a Markdown table: mean time per decision.
fn print_rules_table(dir: &Path) -> Result<()> {
    println!("\n| rules | indexed | naive scan | naive / indexed |");
    println!("|------:|--------:|-----------:|----------------:|");
    for n in [10, 100, 1_000, 10_000] {
        let indexed = mean_ns(&dir.join(format!("indexed/{n}/new/estimates.json")))?;
        let naive = mean_ns(&dir.join(format!("naive/{n}/new/estimates.json")))?;
        println!(
            "| {n} | {} | {} | {:.1}× |",
            human(indexed),
            human(naive),
            naive / indexed
        );
    }
    Ok(())
}

/// The mean's point estimate (ns) in a criterion `estimates.json`, read without a JSON crate:
/// the file is `{"mean":{"confidence_interval":{…},"point_estimate":N,…},…}`.
fn mean_ns(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let mean = text.find("\"mean\"").context("no mean")?;
    let rest = &text[mean..];
    let at = rest
        .find("\"point_estimate\":")
        .context("no point_estimate")?
        + "\"point_estimate\":".len();
    let number: String = rest[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    number
        .parse()
        .with_context(|| format!("{}: bad point_estimate `{number}`", path.display()))
}

fn human(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}
