//! The network policy: rule grammar, canonical request values, the compiled index and the one
//! decision function (allow, deny or ask) that both the proxy's HTTP and CONNECT paths call.
//!
//! Everything here except [`store`] is pure: no file, socket or clock.
//!
//! # Layout
//! - [`host`]: [`Host`], a canonical host name or IP literal (also what TLS uses for SNI).
//! - [`canonical`]: [`Method`], [`NormPath`] (with the `%2F` / double-encoding readings) and
//!   [`Request`], the typed input of a decision.
//! - [`grammar`]: [`Rule`] text ⇄ value (`method=… domain=… path=… port=… proto=tcp`).
//! - [`policy`]: [`Policy`], every layer compiled into an index, and [`Policy::decide`].
//! - [`file`]: `harness-rules.toml` text: read it, append to it keeping its formatting.
//! - [`store`]: the files on disk: locked atomic append, [`WatchedPolicy`] reloading on change.
//! - [`suggest`]: the rule a prompt suggests, and rules proposed from what was denied.
//!
//! # Use
//! ```
//! use hh::rules::{Action, Layer, LayerRules, Policy, Request, Rule, Verdict};
//!
//! let mut layer = LayerRules::new(Layer::Workspace, "harness-rules.toml");
//! let text = "method=GET domain=api.github.com path=/repos/*";
//! layer.push(Action::Allow, Rule::parse(text).unwrap(), text);
//! let policy = Policy::new(vec![layer]);
//!
//! let request = Request::from_url("GET", "https://API.GitHub.com./repos/a/b").unwrap();
//! let decision = policy.decide(&request);
//! assert_eq!(decision.verdict, Verdict::Allow);
//! assert_eq!(decision.rule.unwrap().index, 0);
//! ```

pub mod canonical;
pub mod diff;
pub mod file;
pub mod grammar;
pub mod host;
pub mod policy;
pub mod store;
pub mod suggest;
pub mod trust;

pub use canonical::{HttpTarget, Method, MethodError, NormPath, PathError, Request, UrlError};
pub use file::{
    RULES_DIR_NAME, RULES_FILE_NAME, RulesFile, RulesFileError, RulesFileErrorKind, WrittenRule,
};
pub use grammar::{Action, DomainPattern, PathPattern, Rule, RuleError, RuleErrorKind, WEB_PORTS};
pub use host::{Host, HostError};
pub use policy::{Decision, Layer, LayerRules, Policy, RawRefusal, RuleOrigin, Verdict};
pub use store::{PolicySources, StoreError, WatchedPolicy};
pub use trust::{Standing, TrustError, TrustStore};
