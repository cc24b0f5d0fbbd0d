//! The coding agents hh runs (`--harness NAME`): how each is started, interactively and for one
//! prompt, the credentials it needs, and the network it needs and should not have.
//!
//! A harness's credentials (`auth_env`) reach only sessions of that harness, and only the
//! values the client has (never the agent's). Its policy layer, compiled into hh, allows the
//! API hosts the CLI cannot work without and denies its telemetry and self-update hosts up
//! front, so that a headless run never waits on a prompt nobody will answer; the user's own
//! rules still decide everything else, and their deny rules win over this layer's allows.

use std::collections::BTreeMap;

use crate::{
    config::schema::HarnessConfig,
    rules::{Action, Layer, LayerRules, Rule},
};

/// One coding-agent CLI hh knows by itself.
#[derive(Debug, PartialEq, Eq)]
pub struct BuiltIn {
    /// What `--harness` takes.
    pub name: &'static str,
    /// What people call it.
    pub title: &'static str,
    /// The command of an interactive session (run in the session's tmux).
    pub interactive: &'static [&'static str],
    /// The command that answers one prompt and exits; the prompt is its last argument.
    pub one_shot: &'static [&'static str],
    /// Its configuration directory, under the session user's home.
    pub config_dir: &'static str,
    /// What of the user's home holds its config, login and history (copied into a session
    /// with `seed_harness_config`).
    pub seed: &'static [&'static str],
    /// The project instructions file it reads from the working directory.
    pub instructions_file: &'static str,
    /// The user-level instructions file it reads on every run, under the session user's home:
    /// where a session of this harness gets [`NETWORK_NOTE`] when the file is not there.
    pub global_instructions: &'static str,
    /// The variables it authenticates (and finds its API) with, passed through from the
    /// client's environment to sessions of this harness only.
    pub auth_env: &'static [&'static str],
    /// Set in every session of this harness: what a CLI in a container must not attempt.
    pub fixed_env: &'static [(&'static str, &'static str)],
    /// Allowed for sessions of this harness: the API it cannot work without.
    pub api_rules: &'static [&'static str],
    /// Denied for sessions of this harness: telemetry, error reporting and self-update.
    pub quiet_rules: &'static [&'static str],
}

/// What every harness session's agent reads among its user-level instructions: that its
/// network is mediated, what a refusal looks like, and who decides. Written by the session's
/// init into [`Harness::global_instructions`] when that file is absent (the user's own files,
/// mounted or seeded, are never written).
pub const NETWORK_NOTE: &str = "\
# Network access in this session

Network access in this session is mediated by hh: every connection goes through hh's proxy, which
decides each request against the workspace's rules. A refused HTTP request gets status 403 with
a body that starts `hh blocked` and names the rule that refused it; a refused connection of
another kind is closed. Nothing else leaves the session (no proxy variable, port, IP address or
DNS trick gets around it), so do not try: when a task needs a host that is refused, stop and say
which host and why. A person approves requests in `hh` (the terminal UI) or with
`hh approvals`, and may add a rule.
";

const ANTHROPIC_API: &str = "domain=api.anthropic.com port=443";
const OPENAI_API: &str = "domain=api.openai.com port=443";
const GEMINI_API: &str = "domain=generativelanguage.googleapis.com port=443";

/// The harnesses hh knows.
pub const BUILT_IN: &[BuiltIn] = &[
    BuiltIn {
        name: "claude",
        title: "Claude Code",
        interactive: &["claude"],
        one_shot: &["claude", "-p"],
        config_dir: ".claude",
        seed: &[".claude", ".claude.json"],
        instructions_file: "CLAUDE.md",
        global_instructions: ".claude/CLAUDE.md",
        auth_env: &[
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_MODEL",
        ],
        fixed_env: &[("DISABLE_AUTOUPDATER", "1")],
        api_rules: &[ANTHROPIC_API],
        quiet_rules: &[
            "domain=statsig.anthropic.com",
            "domain=*.statsig.com",
            "domain=*.sentry.io",
            "domain=api.anthropic.com path=/api/event_logging/*",
            "domain=storage.googleapis.com path=/claude-code-dist-*",
        ],
    },
    BuiltIn {
        name: "codex",
        title: "Codex CLI",
        interactive: &["codex"],
        one_shot: &["codex", "exec", "--skip-git-repo-check"],
        config_dir: ".codex",
        seed: &[".codex"],
        instructions_file: "AGENTS.md",
        global_instructions: ".codex/AGENTS.md",
        auth_env: &["OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL"],
        fixed_env: &[],
        api_rules: &[OPENAI_API],
        quiet_rules: &["domain=ab.chatgpt.com", "domain=*.sentry.io"],
    },
    BuiltIn {
        name: "gemini",
        title: "Gemini CLI",
        interactive: &["gemini"],
        // Headless, Gemini CLI stops in a folder it was not told to trust; the session is
        // the sandbox the user chose for this workspace.
        one_shot: &["gemini", "--skip-trust", "-p"],
        config_dir: ".gemini",
        seed: &[".gemini"],
        instructions_file: "GEMINI.md",
        global_instructions: ".gemini/GEMINI.md",
        auth_env: &[
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GOOGLE_GEMINI_BASE_URL",
            "GOOGLE_CLOUD_PROJECT",
        ],
        fixed_env: &[],
        api_rules: &[GEMINI_API],
        quiet_rules: &["domain=play.googleapis.com path=/log*"],
    },
    BuiltIn {
        name: "opencode",
        title: "OpenCode",
        interactive: &["opencode"],
        one_shot: &["opencode", "run"],
        config_dir: ".config/opencode",
        seed: &[".config/opencode", ".local/share/opencode"],
        instructions_file: "AGENTS.md",
        global_instructions: ".config/opencode/AGENTS.md",
        auth_env: &["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"],
        // No self-update, and no refresh of its model catalog from its own host (a request
        // the user would be asked about; the catalog it ships is used).
        fixed_env: &[
            ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
            ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
        ],
        api_rules: &[ANTHROPIC_API, OPENAI_API, GEMINI_API],
        quiet_rules: &[],
    },
    BuiltIn {
        name: "pi",
        title: "pi",
        interactive: &["pi"],
        one_shot: &["pi", "-p"],
        config_dir: ".pi",
        seed: &[".pi"],
        instructions_file: "AGENTS.md",
        global_instructions: ".pi/agent/AGENTS.md",
        auth_env: &["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"],
        // No version check and no install report.
        fixed_env: &[("PI_SKIP_VERSION_CHECK", "1"), ("PI_TELEMETRY", "0")],
        api_rules: &[ANTHROPIC_API, OPENAI_API, GEMINI_API],
        quiet_rules: &[],
    },
];

/// A harness as a session runs it: built into hh ([`BUILT_IN`]) or defined in the config
/// (`[harnesses.NAME]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Harness {
    pub name: String,
    pub title: String,
    pub interactive: Vec<String>,
    pub one_shot: Vec<String>,
    /// Under the session user's home; `None`: not known.
    pub config_dir: Option<String>,
    pub instructions_file: Option<String>,
    /// Where a session gets [`NETWORK_NOTE`] (under the home); `None`: nowhere.
    pub global_instructions: Option<String>,
    /// Its config under the home, seeded into its sessions on request.
    pub seed: Vec<String>,
    pub auth_env: Vec<String>,
    pub fixed_env: Vec<(String, String)>,
    pub api_rules: Vec<String>,
    pub quiet_rules: Vec<String>,
    /// Where it is defined, as rule sources name it.
    pub origin: String,
}

impl From<&BuiltIn> for Harness {
    fn from(built_in: &BuiltIn) -> Harness {
        let strings = |list: &[&str]| list.iter().map(|item| (*item).to_owned()).collect();
        Harness {
            name: built_in.name.to_owned(),
            title: built_in.title.to_owned(),
            interactive: strings(built_in.interactive),
            one_shot: strings(built_in.one_shot),
            config_dir: Some(built_in.config_dir.to_owned()),
            instructions_file: Some(built_in.instructions_file.to_owned()),
            global_instructions: Some(built_in.global_instructions.to_owned()),
            seed: strings(built_in.seed),
            auth_env: strings(built_in.auth_env),
            fixed_env: built_in
                .fixed_env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            api_rules: strings(built_in.api_rules),
            quiet_rules: strings(built_in.quiet_rules),
            origin: "built into hh".to_owned(),
        }
    }
}

/// The harness called `name`: a built-in one, else one of `defined` (the config's
/// `[harnesses.NAME]`, which may not reuse a built-in name; the loader checks).
pub fn find(
    name: &str,
    defined: &BTreeMap<String, HarnessConfig>,
) -> Result<Harness, UnknownHarness> {
    if let Some(built_in) = BUILT_IN.iter().find(|harness| harness.name == name) {
        return Ok(built_in.into());
    }
    let Some(config) = defined.get(name) else {
        let mut known: Vec<&str> = BUILT_IN.iter().map(|harness| harness.name).collect();
        known.extend(defined.keys().map(String::as_str));
        return Err(UnknownHarness {
            name: name.to_owned(),
            known: known.join(", "),
        });
    };
    Ok(Harness {
        name: name.to_owned(),
        title: config.title.clone().unwrap_or_else(|| name.to_owned()),
        interactive: config.interactive.clone(),
        one_shot: config.one_shot.clone(),
        config_dir: config.config_dir.clone(),
        instructions_file: config.instructions_file.clone(),
        global_instructions: config.global_instructions.clone(),
        seed: config.seed.clone(),
        auth_env: config.auth_env.clone(),
        fixed_env: config
            .env
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        api_rules: config.allow.clone(),
        quiet_rules: config.deny.clone(),
        origin: format!("[harnesses.{name}] in the config"),
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no harness `{name}` (known: {known})")]
pub struct UnknownHarness {
    pub name: String,
    pub known: String,
}

/// Every built-in harness's name.
pub fn built_in_names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|harness| harness.name).collect()
}

impl Harness {
    /// Its policy layer: the API allowed, telemetry and self-update denied.
    pub fn policy_layer(&self) -> LayerRules {
        let mut layer = LayerRules::new(Layer::Harness, format!("{} ({})", self.name, self.origin));
        for (action, rules) in [
            (Action::Allow, &self.api_rules),
            (Action::Deny, &self.quiet_rules),
        ] {
            for text in rules {
                // Built-in rules are checked by this module's tests, the config's by the
                // loader; a rule that no longer parses is left out, loudly.
                match Rule::parse(text) {
                    Ok(rule) => layer.push(action, rule, text),
                    Err(error) => {
                        tracing::error!(harness = %self.name, rule = %text, %error, "harness rule left out");
                    }
                }
            }
        }
        layer
    }

    /// The one-shot command for `prompt`.
    pub fn one_shot_command(&self, prompt: &str) -> Vec<String> {
        self.one_shot
            .iter()
            .cloned()
            .chain(std::iter::once(prompt.to_owned()))
            .collect()
    }

    /// The container command of an interactive session: the CLI in the session's tmux
    /// session `hh` (what `hh attach` attaches to), the container kept running after it exits.
    /// tmux hands its one command to a shell: every word is quoted for it, so a word of the
    /// config's is only ever that word, and `exec` lets the CLI be the pane's process.
    pub fn interactive_container_command(&self) -> Vec<String> {
        let quoted: Vec<String> = self
            .interactive
            .iter()
            .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
            .collect();
        vec![
            "sh".into(),
            "-c".into(),
            "tmux new-session -d -s hh -x 200 -y 50 -- \"$1\" || echo \"hh: no tmux in this \
             image; \\`hh shell\\` into the session and run $2\" >&2; exec sleep infinity"
                .into(),
            "hh-harness".into(),
            format!("exec {}", quoted.join(" ")),
            self.interactive.join(" "),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_rule_parses_and_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for built_in in BUILT_IN {
            assert!(seen.insert(built_in.name), "{} twice", built_in.name);
            for text in built_in.api_rules.iter().chain(built_in.quiet_rules) {
                Rule::parse(text).unwrap();
            }
            let harness = Harness::from(built_in);
            let layer = harness.policy_layer();
            assert_eq!(layer.allow.len(), harness.api_rules.len());
            assert_eq!(layer.deny.len(), harness.quiet_rules.len());
            assert!(!harness.auth_env.is_empty(), "{}", harness.name);
            assert_eq!(harness.one_shot[0], harness.interactive[0]);
        }
    }

    #[test]
    fn an_unknown_harness_is_refused_with_the_known_ones() {
        let none = BTreeMap::new();
        let error = find("clod", &none).unwrap_err().to_string();
        assert!(
            error.contains("clod") && error.contains("claude, codex"),
            "{error}"
        );
        assert_eq!(
            find("codex", &none).unwrap().one_shot_command("hi"),
            ["codex", "exec", "--skip-git-repo-check", "hi"]
        );
    }

    #[test]
    fn a_harness_of_the_config_is_found_and_its_words_reach_tmux_unparsed() {
        let defined = BTreeMap::from([(
            "aider".to_owned(),
            HarnessConfig {
                interactive: vec!["aider".into(), "--model".into(), "it's; rm -rf /".into()],
                one_shot: vec!["aider".into(), "--message".into()],
                allow: vec!["domain=api.example.test".into()],
                ..HarnessConfig::default()
            },
        )]);
        let harness = find("aider", &defined).unwrap();
        assert_eq!(harness.title, "aider");
        assert!(harness.policy_layer().source.contains("[harnesses.aider]"));
        assert_eq!(harness.policy_layer().allow.len(), 1);
        let command = harness.interactive_container_command();
        assert_eq!(command[4], r"exec 'aider' '--model' 'it'\''s; rm -rf /'");
        // What a shell makes of it is the words themselves.
        let words = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {}", &command[4][5..])])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&words.stdout),
            "aider\n--model\nit's; rm -rf /\n"
        );
        assert!(
            find("aider", &BTreeMap::new())
                .unwrap_err()
                .to_string()
                .contains("claude")
        );
    }
}
