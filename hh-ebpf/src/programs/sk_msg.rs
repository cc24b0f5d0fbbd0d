//! `sk_msg` on [`super::maps::HH_SOCKETS`].

use aya_ebpf::{bindings::sk_action::SK_PASS, macros::sk_msg, programs::SkMsgContext};

#[sk_msg]
pub fn hh_sk_msg(_ctx: SkMsgContext) -> u32 {
    // Splicing client↔proxy bytes stays off until a benchmark shows it pays (DESIGN.md).
    SK_PASS
}
