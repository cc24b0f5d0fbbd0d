//! The text of `harness-rules.toml`: reading it into rules, and appending one rule to it with
//! comments, order and formatting kept (toml_edit). Pure: the caller reads and writes the file
//! ([`super::store`]).
//!
//! ```toml
//! version = 1
//! [network]
//! allowlist = ["method=GET,POST domain=api.github.com path=/repos/* port=443", "domain=*.crates.io"]
//! denylist  = ["domain=*.evil.example"]
//! ```
//!
//! Unknown keys are errors: a typo (`denylst`) must not silently drop a deny list.

use std::path::{Path, PathBuf};

use toml_edit::{Array, Document, DocumentMut, Item, Table, Value};

use super::{
    grammar::{Action, Rule, RuleError},
    policy::{Layer, LayerRules},
};
use crate::config::location::{KeySpans, line_column};

/// The file name of a workspace's rules.
pub const RULES_FILE_NAME: &str = "harness-rules.toml";

/// The directory of a workspace that holds its rules. A session mounts its workspace
/// read-write but this directory read-only: a session must never write its own policy (and
/// the directory, unlike a single file, stays read-only across the atomic replace of a write).
pub const RULES_DIR_NAME: &str = ".hh";

/// The only file format version so far.
pub const RULES_VERSION: i64 = 1;

/// A rule as read from a file: parsed, with its text as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenRule {
    pub rule: Rule,
    pub text: String,
}

/// A parsed rules file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesFile {
    pub allow: Vec<WrittenRule>,
    pub deny: Vec<WrittenRule>,
}

impl RulesFile {
    /// This file's rules as one layer of a [`super::Policy`].
    pub fn into_layer(self, layer: Layer, source: &str) -> LayerRules {
        let mut rules = LayerRules::new(layer, source);
        for (action, list) in [(Action::Allow, self.allow), (Action::Deny, self.deny)] {
            for written in list {
                rules.push(action, written.rule, written.text);
            }
        }
        rules
    }
}

/// A rules file that cannot be used: file, line, column, key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{kind}", file.display(), key.as_deref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
pub struct RulesFileError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: Option<String>,
    /// Boxed: keeps `Result<_, RulesFileError>` small on the happy path.
    pub kind: Box<RulesFileErrorKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesFileErrorKind {
    #[error("{0}")]
    Syntax(String),
    #[error("unknown key; expected {expected}")]
    UnknownKey { expected: &'static str },
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("unsupported version {found}; this hh reads version {RULES_VERSION}")]
    Version { found: String },
    #[error("rule `{text}`: {error}")]
    Rule { text: String, error: RuleError },
}

struct Locator<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Locator<'_> {
    fn error(
        &self,
        offset: usize,
        key: Option<String>,
        kind: RulesFileErrorKind,
    ) -> RulesFileError {
        let (line, column) = line_column(self.text, offset);
        RulesFileError {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            kind: Box::new(kind),
        }
    }
}

/// Reads a rules file's text. `file` only names it in errors.
pub fn parse_rules_file(text: &str, file: &Path) -> Result<RulesFile, RulesFileError> {
    let at = Locator { text, file };
    let document = Document::parse(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at.error(
            offset,
            None,
            RulesFileErrorKind::Syntax(e.message().trim().to_string()),
        )
    })?;
    let spans = KeySpans::new(&document);
    let start = |key: &str| spans.span_of(key).map_or(0, |s| s.start);
    let mut rules = RulesFile::default();
    for (key, item) in document.as_table().iter() {
        match key {
            "version" => {
                if item.as_integer() != Some(RULES_VERSION) {
                    let found = item
                        .as_value()
                        .map_or_else(|| "(a table)".into(), |v| v.to_string().trim().to_string());
                    return Err(at.error(
                        start(key),
                        Some(key.into()),
                        RulesFileErrorKind::Version { found },
                    ));
                }
            }
            "network" => {
                let Some(network) = item.as_table_like() else {
                    let kind = RulesFileErrorKind::WrongType {
                        expected: "a table `[network]`",
                    };
                    return Err(at.error(start(key), Some(key.into()), kind));
                };
                for (list_key, list) in network.iter() {
                    let path = format!("network.{list_key}");
                    let action = match list_key {
                        "allowlist" => Action::Allow,
                        "denylist" => Action::Deny,
                        _ => {
                            let kind = RulesFileErrorKind::UnknownKey {
                                expected: "allowlist or denylist",
                            };
                            return Err(at.error(start(&path), Some(path), kind));
                        }
                    };
                    let Some(array) = list.as_array() else {
                        let kind = RulesFileErrorKind::WrongType {
                            expected: "an array of rule strings",
                        };
                        return Err(at.error(start(&path), Some(path), kind));
                    };
                    let target = match action {
                        Action::Allow => &mut rules.allow,
                        Action::Deny => &mut rules.deny,
                    };
                    for (i, value) in array.iter().enumerate() {
                        let element = format!("{path}[{i}]");
                        let offset = value.span().map_or(start(&path), |s| s.start);
                        let Some(rule_text) = value.as_str() else {
                            let kind = RulesFileErrorKind::WrongType {
                                expected: "a rule string",
                            };
                            return Err(at.error(offset, Some(element), kind));
                        };
                        let rule = Rule::parse(rule_text).map_err(|error| {
                            // Point into the string: past the opening quote, at the rule's column.
                            let within: usize = rule_text
                                .chars()
                                .take(error.column - 1)
                                .map(char::len_utf8)
                                .sum();
                            let kind = RulesFileErrorKind::Rule {
                                text: rule_text.into(),
                                error,
                            };
                            at.error(offset + 1 + within, Some(element.clone()), kind)
                        })?;
                        target.push(WrittenRule {
                            rule,
                            text: rule_text.into(),
                        });
                    }
                }
            }
            _ => {
                let kind = RulesFileErrorKind::UnknownKey {
                    expected: "version or network",
                };
                return Err(at.error(start(key), Some(key.into()), kind));
            }
        }
    }
    Ok(rules)
}

/// The file's text with `rule` appended to the `action` list, everything else kept as it was.
///
/// Returns `None` when an equal rule is already in that list (appending is idempotent). The
/// text must be a valid rules file; a missing `[network]` table or list is created.
pub fn append_rule(
    text: &str,
    file: &Path,
    action: Action,
    rule: &Rule,
) -> Result<Option<String>, RulesFileError> {
    let existing = parse_rules_file(text, file)?;
    let list = match action {
        Action::Allow => &existing.allow,
        Action::Deny => &existing.deny,
    };
    if list.iter().any(|written| &written.rule == rule) {
        return Ok(None);
    }
    let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let at = Locator { text, file };
        at.error(
            0,
            None,
            RulesFileErrorKind::Syntax(e.message().trim().to_string()),
        )
    })?;
    if document.is_empty() {
        document.insert("version", toml_edit::value(RULES_VERSION));
    }
    if !document.contains_key("network") {
        document.insert("network", Item::Table(Table::new()));
    }
    // `parse_rules_file` has checked that `network` is table-like and each list an array.
    let network = document["network"]
        .as_table_like_mut()
        .expect("checked above");
    if network.get(action.list_name()).is_none() {
        network.insert(action.list_name(), Item::Value(Value::Array(Array::new())));
    }
    let array = network
        .get_mut(action.list_name())
        .and_then(Item::as_array_mut)
        .expect("checked above");
    let mut value = Value::from(rule.to_string());
    let last_prefix = array.iter().last().map(|last| {
        last.decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string()
    });
    if let Some(last_prefix) = last_prefix {
        // A comment after the last element (`"a", # why` or `"a" # why`) stays on its line:
        // it is moved from the end of the array to just before the new element.
        let mut tail = String::new();
        if !array.trailing_comma()
            && let Some(last) = array.iter_mut().last()
        {
            tail.push_str(last.decor().suffix().and_then(|s| s.as_str()).unwrap_or(""));
            last.decor_mut().set_suffix("");
        }
        tail.push_str(array.trailing().as_str().unwrap_or(""));
        // Same layout as the last element: its indentation on a new line, or one space. Only
        // the whitespace: a comment before the last element belongs to that element.
        let prefix = match (last_prefix.rfind('\n'), tail.rfind('\n')) {
            (Some(newline), Some(tail_newline)) => {
                let indent = &last_prefix[newline + 1..];
                array.set_trailing(format!("\n{}", &tail[tail_newline + 1..]));
                format!("{}\n{indent}", &tail[..tail_newline])
            }
            (Some(newline), None) => format!("\n{}", &last_prefix[newline + 1..]),
            (None, _) => " ".to_string(),
        };
        value.decor_mut().set_prefix(prefix);
    }
    array.push_formatted(value);
    Ok(Some(document.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"version = 1
[network]
allowlist = ["method=GET,POST domain=api.github.com path=/repos/* port=443", "domain=*.crates.io"]
denylist  = ["domain=*.evil.example"]
"#;

    fn parse(text: &str) -> Result<RulesFile, RulesFileError> {
        parse_rules_file(text, Path::new("harness-rules.toml"))
    }

    #[test]
    fn the_example_file_parses_into_both_lists() {
        let rules = parse(EXAMPLE).unwrap();
        assert_eq!(rules.allow.len(), 2);
        assert_eq!(rules.deny.len(), 1);
        assert_eq!(rules.allow[1].text, "domain=*.crates.io");
        assert_eq!(parse(""), Ok(RulesFile::default()));
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let cases = [
            (
                "version = 2\n",
                "harness-rules.toml:1:1: `version`: unsupported version 2",
            ),
            (
                "[network]\ndenylst = []\n",
                "harness-rules.toml:2:1: `network.denylst`: unknown key",
            ),
            (
                "colour = 1\n",
                "harness-rules.toml:1:1: `colour`: unknown key",
            ),
            (
                "[network]\nallowlist = \"domain=a.com\"\n",
                "harness-rules.toml:2:1: `network.allowlist`: expected an array",
            ),
            (
                "[network]\nallowlist = [1]\n",
                "harness-rules.toml:2:14: `network.allowlist[0]`: expected a rule string",
            ),
            (
                "[network]\nallowlist = [\"domain=a.com\",\n  \"domain=b.com prt=1\"]\n",
                "harness-rules.toml:3:17: `network.allowlist[1]`: rule `domain=b.com prt=1`: column 14: unknown key `prt`",
            ),
            ("[network\n", "harness-rules.toml:1:9: "),
        ];
        for (text, message) in cases {
            let error = parse(text).expect_err(text).to_string();
            assert!(
                error.starts_with(message),
                "{text:?}\n  got:  {error}\n  want: {message}"
            );
        }
    }

    #[test]
    fn appending_keeps_comments_order_and_formatting() {
        let text = "# My rules.\nversion = 1\n\n[network]\n# Reviewed 2026-01.\nallowlist = [\n    \"domain=a.com\", # the main API\n    \"domain=b.com\", # the CDN\n]\ndenylist = [\"domain=*.evil.example\"]  # never\n";
        let rule = Rule::parse("domain=c.com port=22").unwrap();
        let appended = append_rule(text, Path::new("f"), Action::Allow, &rule)
            .unwrap()
            .unwrap();
        assert_eq!(
            appended,
            "# My rules.\nversion = 1\n\n[network]\n# Reviewed 2026-01.\nallowlist = [\n    \"domain=a.com\", # the main API\n    \"domain=b.com\", # the CDN\n    \"domain=c.com port=22\",\n]\ndenylist = [\"domain=*.evil.example\"]  # never\n"
        );
        let rule = Rule::parse("domain=d.com").unwrap();
        let appended = append_rule(&appended, Path::new("f"), Action::Deny, &rule)
            .unwrap()
            .unwrap();
        assert!(
            appended
                .contains("denylist = [\"domain=*.evil.example\", \"domain=d.com\"]  # never\n"),
            "{appended}"
        );
        assert_eq!(parse(&appended).unwrap().deny.len(), 2);
    }

    #[test]
    fn a_comment_after_the_last_element_stays_with_it() {
        let rule = Rule::parse("domain=c.com").unwrap();
        let cases = [
            (
                "[network]\nallowlist = [\n  \"domain=a.com\" # a\n]\n",
                "[network]\nallowlist = [\n  \"domain=a.com\", # a\n  \"domain=c.com\"\n]\n",
            ),
            (
                "[network]\nallowlist = [\"domain=a.com\"] # a\n",
                "[network]\nallowlist = [\"domain=a.com\", \"domain=c.com\"] # a\n",
            ),
            (
                "[network]\nallowlist = [\n  \"domain=a.com\", # a\n  # end\n]\n",
                "[network]\nallowlist = [\n  \"domain=a.com\", # a\n  # end\n  \"domain=c.com\",\n]\n",
            ),
        ];
        for (text, expected) in cases {
            let appended = append_rule(text, Path::new("f"), Action::Allow, &rule)
                .unwrap()
                .unwrap();
            assert_eq!(appended, expected, "{text}");
            assert_eq!(parse(&appended).unwrap().allow.len(), 2);
        }
    }

    #[test]
    fn appending_to_an_empty_file_creates_version_table_and_list() {
        let rule = Rule::parse("domain=a.com").unwrap();
        let appended = append_rule("", Path::new("f"), Action::Deny, &rule)
            .unwrap()
            .unwrap();
        assert_eq!(
            appended,
            "version = 1\n\n[network]\ndenylist = [\"domain=a.com\"]\n"
        );
        let appended = append_rule(&appended, Path::new("f"), Action::Allow, &rule)
            .unwrap()
            .unwrap();
        let rules = parse(&appended).unwrap();
        assert_eq!((rules.allow.len(), rules.deny.len()), (1, 1));
    }

    #[test]
    fn appending_a_rule_already_present_changes_nothing() {
        let rule = Rule::parse("domain=*.CRATES.io").unwrap();
        assert_eq!(
            append_rule(EXAMPLE, Path::new("f"), Action::Allow, &rule),
            Ok(None)
        );
        assert!(
            append_rule(EXAMPLE, Path::new("f"), Action::Deny, &rule)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn appending_to_an_invalid_file_is_refused() {
        let rule = Rule::parse("domain=a.com").unwrap();
        assert!(
            append_rule(
                "[network]\nallowlist = 3\n",
                Path::new("f"),
                Action::Allow,
                &rule
            )
            .is_err()
        );
    }
}
