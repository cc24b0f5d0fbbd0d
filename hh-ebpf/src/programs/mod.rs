//! One module per hook. What each program does today is the first, minimal set that proves the
//! build → embed → load pipeline (`hh doctor` loads every one of them); the per-session redirect
//! and DNS logic of `connect4`/`sendmsg4` lands with the enforcement work (issue 7).

mod connect4;
mod connect6;
mod maps;
mod sendmsg;
mod sk_msg;
mod sock_create;
mod sock_ops;

/// What a `cgroup/*` program returns to let the operation proceed.
const ALLOW: i32 = 1;
/// What a `cgroup/*` program returns to fail the operation with EPERM.
const REFUSE: i32 = 0;
