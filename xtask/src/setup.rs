//! `cargo xtask setup`: makes a fresh Debian host able to build, run and test hh.
//!
//! Idempotent and quick when everything is there: each step first checks, then installs only
//! what is missing and says what it installs. The recipe is the one proven on these machines
//! (../shared/notes/ebpf-toolchain.md).
//!
//! [`HOST_PROGRAMS`] is the one list of host programs hh's build, tests and benchmarks run;
//! `spawn_scan`'s test keeps it whole.

use std::{
    fs::File,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::exec;

/// Where a host program comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Debian package that `cargo xtask setup` installs when missing.
    Apt(&'static str),
    /// A Debian package that setup installs only when no program of that name is on `PATH`
    /// (another packaging of it may be there: Node.js's own npm conflicts with Debian's).
    AptIfMissing(&'static str),
    /// Debian's Docker engine, installed only when no engine answers and none is installed.
    Docker,
    /// Part of every Debian/Ubuntu system (Essential or `required` packages): never missing.
    Base(&'static str),
    /// Rust by rustup (README's prerequisite), or hh's own binaries.
    Toolchain,
    /// Installed by `cargo xtask setup` with `cargo install`.
    CargoInstall,
    /// Installed by `cargo xtask bench` into `target/` before the bench that runs it.
    BenchTool,
}

/// One program and why hh runs it.
pub struct HostProgram {
    pub name: &'static str,
    pub source: Source,
    pub why: &'static str,
}

const fn apt(name: &'static str, package: &'static str, why: &'static str) -> HostProgram {
    HostProgram {
        name,
        source: Source::Apt(package),
        why,
    }
}

const fn base(name: &'static str, package: &'static str, why: &'static str) -> HostProgram {
    HostProgram {
        name,
        source: Source::Base(package),
        why,
    }
}

const fn from(name: &'static str, source: Source, why: &'static str) -> HostProgram {
    HostProgram { name, source, why }
}

/// Every program hh's build, tests and benchmarks spawn on the host.
pub const HOST_PROGRAMS: &[HostProgram] = &[
    // The eBPF toolchain.
    apt(
        "/usr/bin/rustc",
        "rustc-web",
        "Debian's rustc 1.96 (LLVM 22): builds the eBPF programs",
    ),
    from(
        "bpf-linker",
        Source::CargoInstall,
        "links the eBPF object (LLVM 22)",
    ),
    from(
        "cargo",
        Source::Toolchain,
        "builds and tests hh (rustup's stable)",
    ),
    from(
        "hh",
        Source::Toolchain,
        "the binary under test, and benches running themselves as clients",
    ),
    from(
        "xtask",
        Source::Toolchain,
        "the packaging test runs `xtask dist` on the binary under test",
    ),
    // Containers and images.
    from("docker", Source::Docker, "sessions run in containers"),
    from(
        "dockerd",
        Source::Docker,
        "the engine setup starts when none answers",
    ),
    apt(
        "mmdebstrap",
        "mmdebstrap",
        "builds the local test base image without a registry",
    ),
    // Networking.
    apt(
        "ip",
        "iproute2",
        "network namespaces for the enforcement tests",
    ),
    apt(
        "iptables",
        "iptables",
        "the seed design's HH_EGRESS chain in the tun2proxy baseline (bench enforce)",
    ),
    apt(
        "ip6tables",
        "iptables",
        "the seed design's HH_EGRESS chain in the tun2proxy baseline (bench enforce)",
    ),
    base(
        "nsenter",
        "util-linux",
        "runs iptables in the baseline container's network namespace",
    ),
    // Real clients.
    apt("curl", "curl", "a real HTTP client for the proxy tests"),
    apt(
        "dig",
        "dnsutils",
        "a real DNS client against the session's DNS stub",
    ),
    apt(
        "python3",
        "python3",
        "socket clients the enforcement tests run; the bench's mitmproxy venv",
    ),
    apt("tmux", "tmux", "drives the terminal UI in end-to-end tests"),
    apt(
        "git",
        "git",
        "hh reads the user's git identity with it (git_identity); the CA trust tests' git client",
    ),
    apt(
        "systemd-analyze",
        "systemd",
        "checks the agent's systemd unit (`hh service unit`)",
    ),
    from(
        "npm",
        Source::AptIfMissing("npm"),
        "fetches the coding-agent CLIs (Claude Code, Codex) the harness tests run, pinned",
    ),
    base(
        "tar",
        "tar",
        "unpacks the agent CLIs' npm tarballs into the test agents image",
    ),
    // Users and privileges.
    apt(
        "sudo",
        "sudo",
        "README's first command runs hh as root through it",
    ),
    base(
        "setpriv",
        "util-linux",
        "runs test clients as an ordinary user",
    ),
    base("useradd", "passwd", "creates the tests' ordinary users"),
    base("userdel", "passwd", "removes the tests' ordinary users"),
    base("groupadd", "passwd", "creates the tests' socket groups"),
    base("groupdel", "passwd", "removes the tests' socket groups"),
    base("getent", "libc-bin", "reads the tests' users' ids"),
    apt(
        "pkill",
        "procps",
        "ends a test user's processes before the user is removed",
    ),
    // Files.
    base(
        "cp",
        "coreutils",
        "the agent's seed copies, run as the session's user",
    ),
    base("id", "coreutils", "what groups a test user is in"),
    base(
        "sleep",
        "coreutils",
        "a process that never ends in time (git identity timeout test)",
    ),
    base(
        "dpkg-query",
        "dpkg",
        "setup checks which packages are installed",
    ),
    base("apt-get", "apt", "setup installs packages"),
    base(
        "dpkg",
        "dpkg",
        "the .deb's architecture (`cargo xtask dist`); installs it in the packaging test",
    ),
    base("dpkg-deb", "dpkg", "builds the .deb (`cargo xtask dist`)"),
    base(
        "systemctl",
        "systemd",
        "setup starts Docker where systemd runs",
    ),
    base("bash", "bash", "shell one-liners in tests"),
    base("sh", "dash", "shell one-liners in tests"),
    // Benchmarks' own tools.
    apt(
        "make",
        "make",
        "builds jemalloc, hh's allocator (its -sys crate runs configure and make)",
    ),
    from(
        "pip",
        Source::BenchTool,
        "installs mitmproxy into target/bench-venv (bench proxy)",
    ),
    from(
        "mitmdump",
        Source::BenchTool,
        "mitmproxy, the proxy bench's baseline",
    ),
];

/// Debian packages setup installs besides those above, each with why: libraries and data that
/// no program of theirs is spawned by name.
pub const EXTRA_PACKAGES: &[(&str, &str)] = &[
    (
        "libstd-rust-web-dev-bpf",
        "precompiled `core` for bpfel-unknown-none",
    ),
    (
        "python3-venv",
        "`python3 -m venv` for the proxy bench's mitmproxy",
    ),
];

/// The apt packages setup installs (always; Docker's only when no engine answers), each once,
/// in list order, with why.
pub fn apt_packages() -> Vec<(&'static str, &'static str)> {
    let mut packages: Vec<(&str, &str)> = Vec::new();
    let programs = HOST_PROGRAMS
        .iter()
        .filter_map(|program| match program.source {
            Source::Apt(package) => Some((package, program.why)),
            _ => None,
        });
    for (package, why) in programs.chain(EXTRA_PACKAGES.iter().copied()) {
        if !packages.iter().any(|(known, _)| *known == package) {
            packages.push((package, why));
        }
    }
    packages
}

/// The entry for `name`, a program name or path as the code spawns it.
#[cfg(test)]
pub fn lookup(name: &str) -> Option<&'static HostProgram> {
    HOST_PROGRAMS.iter().find(|program| program.name == name)
}

/// Debian's engine, installed only when no Docker engine answers and none is installed.
const DOCKER_PACKAGE: &str = "docker.io";

/// bpf-linker must match the LLVM major that Debian's rustc emits bitcode for.
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_MAJOR: &str = "22";

/// Where the dockerd that setup starts (on hosts without systemd) writes its log.
const DOCKERD_LOG: &str = "/var/log/hh-dockerd.log";

#[derive(clap::Args, Default)]
pub struct Options {
    /// Do not install or start Docker (building and the tests that need no engine still work).
    #[arg(long)]
    no_docker: bool,
}

pub fn run(options: &Options) -> Result<()> {
    check_distribution()?;
    let mut missing: Vec<&str> = apt_packages()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !package_installed(name))
        .collect();
    for program in HOST_PROGRAMS {
        if let Source::AptIfMissing(package) = program.source
            && !has_program(program.name)
            && !missing.contains(&package)
        {
            missing.push(package);
        }
    }
    let engine_answers = !options.no_docker && docker_answers();
    if !options.no_docker && !engine_answers && !has_program("dockerd") {
        missing.push(DOCKER_PACKAGE);
    }
    install_packages(&missing)?;
    check_rustc_llvm()?;
    install_bpf_linker()?;
    if !options.no_docker && !engine_answers {
        start_docker()?;
    }
    eprintln!("xtask setup: everything hh needs is present");
    Ok(())
}

/// Debian (12+) and derivatives that ship `rustc-web` are known; anything else is refused with
/// the list of what to install by hand.
fn check_distribution() -> Result<()> {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        os_release
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(|value| value.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let (id, like) = (field("ID"), field("ID_LIKE"));
    let debian_like = id == "debian" || id == "ubuntu" || like.split(' ').any(|l| l == "debian");
    if !debian_like || !has_program("apt-get") {
        let names: Vec<_> = HOST_PROGRAMS
            .iter()
            .filter_map(|program| match program.source {
                Source::Apt(package) | Source::AptIfMissing(package) => Some(format!(
                    "  {} (Debian: {package}): {}",
                    program.name, program.why
                )),
                _ => None,
            })
            .chain(
                EXTRA_PACKAGES
                    .iter()
                    .map(|(package, why)| format!("  {package}: {why}")),
            )
            .collect();
        bail!(
            "setup knows Debian and Ubuntu (apt); this host is `{id}`. Install by hand:\n{}\n  \
             a Docker engine\n  bpf-linker {BPF_LINKER_VERSION} built for LLVM {LLVM_MAJOR} \
             (`cargo install bpf-linker --locked --no-default-features --features llvm-{LLVM_MAJOR}`)",
            names.join("\n")
        );
    }
    Ok(())
}

fn package_installed(name: &str) -> bool {
    exec::probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_some_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

fn install_packages(missing: &[&str]) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask setup: installing {}", missing.join(" "));
    // A parallel apt (unattended upgrades) may hold the lock for a moment: retry a few times.
    for attempt in 1..=5 {
        let updated = exec::run(exec::as_root("apt-get").args(["update", "-q"]));
        let installed = updated.and_then(|()| {
            exec::run(
                exec::as_root("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q", "--no-install-recommends"])
                    .args(missing),
            )
        });
        match installed {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 => {
                eprintln!("xtask setup: {error:#}; retrying in 5 s");
                thread::sleep(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
    unreachable!("the last attempt returns")
}

/// Debian's rustc must emit LLVM 22 bitcode, or bpf-linker cannot read the `core` it links.
fn check_rustc_llvm() -> Result<()> {
    let output = exec::probe(Command::new("/usr/bin/rustc").arg("-vV"))
        .context("/usr/bin/rustc (package rustc-web) did not run")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let llvm = text
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .unwrap_or("unknown");
    if llvm.split('.').next() != Some(LLVM_MAJOR) {
        bail!(
            "/usr/bin/rustc uses LLVM {llvm}, but bpf-linker is built for LLVM {LLVM_MAJOR}: \
             update BPF_LINKER feature and LLVM_MAJOR in xtask/src/setup.rs together"
        );
    }
    Ok(())
}

fn install_bpf_linker() -> Result<()> {
    let current = exec::probe(Command::new("bpf-linker").arg("--version"))
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    if current.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!("xtask setup: installing bpf-linker {BPF_LINKER_VERSION} (about 1.5 min on 2 cores)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The lean build links libLLVM.so from Debian's libllvm22 directly, so llvm-22-dev (400 MB)
    // is not needed; its object output is bit-identical to the default build's.
    exec::run(
        // spawns: cargo
        Command::new(cargo)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-l:libLLVM.so.{LLVM_MAJOR}.1"),
            )
            .env_remove("CARGO_TARGET_DIR")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{LLVM_MAJOR},no-llvm-linking")),
    )
}

/// Starts the Docker engine unless it answers already: for verbs that need an engine but not
/// the rest of setup (`cargo xtask bench enforce`).
pub fn ensure_docker() -> Result<()> {
    if docker_answers() {
        return Ok(());
    }
    if !has_program("dockerd") {
        bail!("no Docker engine is installed (`cargo xtask setup` installs {DOCKER_PACKAGE})");
    }
    start_docker()
}

fn docker_answers() -> bool {
    exec::succeeds(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]))
}

/// Starts the engine: through systemd where it runs, else as a detached `dockerd`.
fn start_docker() -> Result<()> {
    if Path::new("/run/systemd/system").is_dir() {
        exec::run(exec::as_root("systemctl").args(["start", "docker"]))?;
    } else {
        eprintln!("xtask setup: starting dockerd (log: {DOCKERD_LOG})");
        let log = File::create(DOCKERD_LOG).with_context(|| format!("creating {DOCKERD_LOG}"))?;
        let mut command = exec::as_root("dockerd");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group, so it outlives this command and the shell that ran it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .spawn()
            .with_context(|| format!("could not start `{}`", exec::display(&command)))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(250));
    }
    bail!("the Docker engine did not answer within 60 s (see {DOCKERD_LOG})")
}
