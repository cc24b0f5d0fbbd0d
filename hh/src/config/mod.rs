//! `harness-hat.toml`, the manager's config.
