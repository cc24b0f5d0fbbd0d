//! Developer commands, reached as `cargo xtask VERB`. One module per verb.

mod bench;
mod build_ebpf;
mod dist;
mod exec;
mod image;
mod setup;
#[cfg(test)]
mod spawn_scan;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "hh developer commands")]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Install what this host lacks: Debian packages, bpf-linker, Docker (and start dockerd).
    Setup(setup::Options),
    /// Build the eBPF programs (hh-ebpf) into target/ebpf with Debian's rustc and bpf-linker.
    BuildEbpf(build_ebpf::Options),
    /// Build the local test images (hh-test-base) without any container registry.
    Image(image::Options),
    /// The whole test suite, as CI runs it: setup, build, fmt, clippy, tests.
    Test(test::Options),
    /// Run a benchmark suite (`rules`, `enforce`, `proxy`) and print its table.
    Bench(bench::Options),
    /// Build the .deb: hh, its systemd unit, completions and man page (target/dist).
    Dist(dist::Options),
}

fn main() -> anyhow::Result<()> {
    let workspace = exec::workspace_root();
    match Cli::parse().verb {
        Verb::Setup(options) => setup::run(&options),
        Verb::BuildEbpf(options) => build_ebpf::run(&workspace, &options),
        Verb::Image(options) => image::run(&workspace, &options),
        Verb::Test(options) => test::run(&workspace, &options),
        Verb::Bench(options) => bench::run(&workspace, &options),
        Verb::Dist(options) => dist::run(&workspace, &options),
    }
}
