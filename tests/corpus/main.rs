//! Public corpora nobody on the project wrote, run against hh. They are read from the shared
//! `corpora/` folder beside the checkout (`../shared/corpora`, as CI has it; its README names
//! each source and commit); without it the tests skip outside CI and fail in CI.
//!
//! - [`wpt`]: the WHATWG URL standard's host vectors (web-platform-tests) through the rules
//!   library, `hh rules check` and `hh proxy`: a host the standard maps to H is decided as H,
//!   and an input the standard rejects is never allowed.
//! - [`smuggling`]: request-smuggling and desync payloads through `hh proxy` (absolute-form, and
//!   CONNECT tunnels with plain HTTP and with TLS): each is refused or reaches the upstream as one
//!   request that no server could frame another way, and no request for a denied path reaches it.
//!
//! Their tools: [`proxy`] runs `hh proxy` and its clients, [`recording_upstream`] keeps every
//! byte hh sends upstream, [`strict_http`] reads those bytes as the strictest server would.
//! Loopback only: every name is pinned to 127.0.0.1.

#[path = "../support/mod.rs"]
mod support;

/// The text of the shared corpus `name`, or `None` (skip, said why) outside CI when the shared
/// folder is not beside the checkout.
fn shared_corpus(name: &str) -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpora")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have the shared corpus {}: {error}",
                path.display()
            );
            eprintln!(
                "skipping: {} cannot be read ({error}); check this repository out beside shared/",
                path.display()
            );
            None
        }
    }
}

mod proxy;
mod recording_upstream;
mod smuggling;
mod strict_http;
mod wpt;
