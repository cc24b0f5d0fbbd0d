//! `sk_msg` on the splice sockhash: runs on every send of a socket in it (see [`super::splice`]).

use aya_ebpf::{macros::sk_msg, programs::SkMsgContext};

use super::splice::route_msg;

#[sk_msg]
pub fn hh_sk_msg(ctx: SkMsgContext) -> u32 {
    route_msg(&ctx)
}
