//! `harness-hat.toml`, the manager's config: where it lives ([`Env::default_config_path`]),
//! every key and its default ([`schema`]), loading and the checks made then ([`load`]), and the
//! commented starter that `hh init` writes ([`starter`]).

pub mod load;
pub mod location;
pub mod schema;
pub mod starter;

pub use load::{CONFIG_FILE_NAME, ConfigError, ConfigErrorKind, Env, load};
pub use schema::{
    Config, Containers, Control, Cpus, Defaults, Manager, Memory, Mount, MountMode, Profile, Proxy,
    SecretSpec, Workspace, WorkspaceMode,
};
