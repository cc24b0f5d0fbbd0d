//! Points the `hh` build at the eBPF object that `cargo xtask build-ebpf` made, and refuses to
//! build with a stale one: an old object would silently enforce old rules.
//!
//! A missing object (a machine without Debian's BPF toolchain: unit tests, clippy, the fuzz
//! targets) builds an `hh` without it, with a warning: everything but the agent works, and
//! `hh agent` refuses to start and says how to build the object. In CI (`CI` set) a missing
//! object stops the build, as a stale one always does.

use std::{
    env,
    path::{Path, PathBuf},
    time::SystemTime,
};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest.parent().expect("hh/ sits in the workspace");
    let object_dir = workspace.join("target/ebpf/bpfel-unknown-none/release");
    let object = object_dir.join("hh-bpf");
    let sources = [
        workspace.join("hh-ebpf/src"),
        workspace.join("hh-ebpf/Cargo.toml"),
        workspace.join("hh-common/src"),
    ];
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!("cargo:rerun-if-changed={}", object.display());

    println!("cargo:rerun-if-env-changed=CI");
    let Some(built) = modified(&object) else {
        if env::var_os("CI").is_some() {
            fail(&format!("the eBPF object {} is missing", object.display()));
        }
        println!(
            "cargo:warning=no eBPF object at {}: this hh cannot run `hh agent` (run `cargo xtask build-ebpf`, then build again)",
            object.display()
        );
        let empty =
            PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("no-ebpf-object");
        std::fs::write(&empty, b"").expect("OUT_DIR is writable");
        println!("cargo:rustc-env=HH_EBPF_OBJECT={}", empty.display());
        return;
    };
    if let Some((newest, when)) = sources
        .iter()
        .filter_map(|source| newest_in(source))
        .max_by_key(|(_, when)| *when)
        && when > built
    {
        fail(&format!(
            "the eBPF object {} is older than {}",
            object.display(),
            newest.display()
        ));
    }
    println!("cargo:rustc-env=HH_EBPF_OBJECT={}", object.display());
}

fn fail(why: &str) -> ! {
    eprintln!(
        "error: {why}.\n  Run `cargo xtask build-ebpf` (after `cargo xtask setup` on a new host), then build again."
    );
    std::process::exit(1);
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|meta| meta.modified()).ok()
}

/// The most recently modified file at or below `path`.
fn newest_in(path: &Path) -> Option<(PathBuf, SystemTime)> {
    let meta = path.metadata().ok()?;
    if !meta.is_dir() {
        return Some((path.to_path_buf(), meta.modified().ok()?));
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|entry| newest_in(&entry.path()))
        .max_by_key(|(_, when)| *when)
}
