//! `hh rules check` and `hh rules add`: the policy from a script's point of view.
//!
//! `check` prints `allow`, `deny` or `ask` and the deciding rule, and exits 0, 1 or 2 (3 for
//! an error), so scripts and the test suites can lean on it. `add` validates rules and appends
//! them the way the TUI's "allow forever" / "deny forever" do.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, anyhow, bail};

use crate::{
    config::Config,
    rules::{
        Action, Layer, LayerRules, Policy, Request, Rule, Verdict,
        store::{self, PolicySources},
    },
};

#[derive(clap::Args, Debug)]
pub struct Options {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum RulesCommand {
    /// Decide METHOD URL as the proxy would; exit 0 for allow, 1 for deny, 2 for ask.
    Check(CheckOptions),
    /// Validate rules and append them to a workspace's harness-rules.toml.
    Add(AddOptions),
}

#[derive(clap::Args, Debug)]
pub struct CheckOptions {
    /// Use this workspace's rules with the global rules (from the config).
    #[arg(long, value_name = "NAME", conflicts_with = "rules")]
    pub workspace: Option<String>,
    /// With --workspace: add this container profile's starter_network_allowlist.
    #[arg(long, value_name = "NAME", requires = "workspace")]
    pub profile: Option<String>,
    /// Use these rules files only (repeat for several).
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// The request's method (GET, POST, …).
    pub method: String,
    /// The request's absolute URL (http, https, ws or wss).
    pub url: String,
}

#[derive(clap::Args, Debug)]
pub struct AddOptions {
    /// The workspace whose harness-rules.toml gets the rules.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "rules",
        conflicts_with = "rules"
    )]
    pub workspace: Option<String>,
    /// Append to this rules file instead.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// allow or deny.
    #[arg(value_enum)]
    pub action: ActionArg,
    /// The rules, e.g. 'method=GET domain=api.github.com path=/repos/*'.
    #[arg(required = true, value_name = "RULE")]
    pub rule: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ActionArg {
    Allow,
    Deny,
}

pub fn run(options: &Options, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match &options.command {
        RulesCommand::Check(check) => run_check(check, config),
        RulesCommand::Add(add) => run_add(add, config),
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(super::load_config(path)?.0)
}

fn workspace_rules_file(config: &Config, name: &str) -> anyhow::Result<PathBuf> {
    let workspace = config
        .workspace(name)
        .ok_or_else(|| anyhow!("no workspace `{name}` in the config"))?;
    Ok(workspace.rules_file())
}

fn run_check(options: &CheckOptions, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let request = Request::from_url(&options.method, &options.url)
        .with_context(|| format!("cannot decide `{} {}`", options.method, options.url))?;
    let policy = if let Some(name) = &options.workspace {
        let config = load_config(config_path)?;
        let template = match &options.profile {
            Some(profile) => {
                let found = config
                    .container_profiles
                    .get(profile)
                    .ok_or_else(|| anyhow!("no container profile `{profile}` in the config"))?;
                let source = format!("container_profiles.{profile}.starter_network_allowlist");
                Some((source, found.starter_network_allowlist.clone()))
            }
            None => None,
        };
        let sources = PolicySources {
            global: Some(config.manager.global_rules_file.clone()),
            workspace: Some(workspace_rules_file(&config, name)?),
            template,
        };
        sources.load()?
    } else if !options.rules.is_empty() {
        let mut layers = Vec::new();
        for path in &options.rules {
            let file = store::load_rules(path)?;
            let layer: LayerRules = file.into_layer(Layer::Workspace, &path.display().to_string());
            layers.push(layer);
        }
        Policy::new(layers)
    } else {
        bail!("give --workspace NAME or --rules FILE");
    };
    let decision = policy.decide(&request);
    match decision.rule {
        Some(rule) => println!("{} by {rule}", decision.verdict),
        None => println!("{} (no rule matched)", decision.verdict),
    }
    Ok(ExitCode::from(match decision.verdict {
        Verdict::Allow => 0,
        Verdict::Deny => 1,
        Verdict::Ask => 2,
    }))
}

fn run_add(options: &AddOptions, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    // Every rule is checked before any is written.
    let rules = options
        .rule
        .iter()
        .map(|text| Rule::parse(text).with_context(|| format!("rule `{text}`")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let path = match (&options.rules, &options.workspace) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => workspace_rules_file(&load_config(config_path)?, name)?,
        (None, None) => bail!("give --workspace NAME or --rules FILE"),
    };
    let action = match options.action {
        ActionArg::Allow => Action::Allow,
        ActionArg::Deny => Action::Deny,
    };
    for rule in &rules {
        if store::append_rule(&path, action, rule)? {
            println!("added {action} `{rule}` to {}", path.display());
        } else {
            println!("already there: {action} `{rule}` in {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
