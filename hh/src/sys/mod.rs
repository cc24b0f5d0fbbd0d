//! Thin wrappers over the kernel interfaces hh reads: mount table, cgroup v2, the bpf syscall,
//! the host's interface addresses.
//!
//! Parsing is pure and unit-tested here; each function that touches the kernel is small and says
//! which file or syscall it used in its error.

pub mod accept;
pub mod bpf;
pub mod bpffs;
pub mod cgroup;
pub mod interfaces;
pub mod mountinfo;
pub mod netns;
pub mod owned_dir;
pub mod socket;
pub mod users;
