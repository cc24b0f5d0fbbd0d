//! The network policy: rule grammar, canonical request values, the compiled index and the one
//! decision function (allow, deny or ask) that both the proxy's HTTP and CONNECT paths call.
//!
//! Everything here except [`store`] is pure: no file, socket or clock.

pub mod canonical;
pub mod file;
pub mod grammar;
pub mod host;
pub mod policy;
pub mod store;

pub use canonical::{HttpTarget, Method, MethodError, NormPath, PathError, Request, UrlError};
pub use file::{RULES_FILE_NAME, RulesFile, RulesFileError, RulesFileErrorKind, WrittenRule};
pub use grammar::{Action, DomainPattern, PathPattern, Rule, RuleError, RuleErrorKind, WEB_PORTS};
pub use host::{Host, HostError};
pub use policy::{Decision, Layer, LayerRules, Policy, RuleOrigin, Verdict};
pub use store::{PolicySources, StoreError, WatchedPolicy};
