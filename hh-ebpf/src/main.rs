//! hh's kernel programs.
//!
//! Each program is a thin entry that records, rewrites or refuses; userspace decides everything
//! else. Shared names and map types live in `hh-common`.
//!
//! This crate builds for real only for `bpfel-unknown-none` (`cargo xtask build-ebpf`). On the
//! host it compiles to an empty binary so `cargo clippy --workspace` still checks it.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier proves no panic is reachable; this only satisfies `no_std`.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
