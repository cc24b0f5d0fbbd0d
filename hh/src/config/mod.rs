//! `harness-hat.toml`, the manager's config: where it lives, what every key means, and the
//! checks made when it is loaded.

pub mod location;
