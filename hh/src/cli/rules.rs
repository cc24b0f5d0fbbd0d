//! `hh rules check|add|suggest|status|trust|migrate`: the policy from a script's point of
//! view.
//!
//! `check` prints `allow`, `deny` or `ask` and the deciding rule, and exits 0, 1 or 2 (3 for
//! an error), so scripts and the test suites can lean on it; it reads the files as they are.
//! `add` validates rules and appends them the way "allow forever" / "deny forever" do: through
//! the agent, which puts them in force at once. `status` and `trust` show and accept changes to
//! a workspace's rules files that no hh wrote (`rules::trust`); `migrate` moves a workspace's
//! `.hh/harness-rules.toml` to its root. `suggest` asks the agent which rules would have
//! admitted what was denied for want of one ([`crate::rules::suggest`]), and `--apply N` adds
//! one as `add` does.

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, anyhow, bail};

use super::client_runtime;
use crate::{
    api::{
        client::{Client, ClientError, socket_path},
        protocol::{ClientRequest, Reply, RulesFileStatus},
    },
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
    /// Validate rules and append them to a workspace's harness-rules.toml (in force at once
    /// when the agent writes them).
    Add(AddOptions),
    /// Which version of each rules file of a workspace is in force: exit 0 when every file
    /// reads as the version a person trusted, 1 when one changed (its diff is shown).
    Status(StatusOptions),
    /// Show each changed rules file's diff, then put that exact version in force.
    Trust(TrustOptions),
    /// Move the workspace's .hh/harness-rules.toml to harness-rules.toml at its root.
    Migrate(MigrateOptions),
    /// The rules that would have admitted what your sessions of a workspace were denied for
    /// want of a rule (none broader than a host), most-covering first; --apply N adds one.
    Suggest(SuggestOptions),
}

#[derive(clap::Args, Debug)]
pub struct SuggestOptions {
    #[arg(long, value_name = "NAME")]
    pub workspace: String,
    /// Only denials this recent: 90s, 30m, 2h, 1d (default: all the agent remembers).
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Add suggestion N (as listed) to the workspace's rules, in force at once.
    #[arg(long, value_name = "N")]
    pub apply: Option<usize>,
    #[arg(long, conflicts_with = "apply")]
    pub json: bool,
}

/// `90s`, `30m`, `2h`, `1d` as seconds.
fn parse_since(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: give a number and s, m, h or d (30m)")),
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|number| *number > 0)
        .map(|number| number * scale)
        .ok_or_else(|| format!("`{text}`: give a number and s, m, h or d (30m)"))
}

#[derive(clap::Args, Debug)]
pub struct StatusOptions {
    #[arg(long, value_name = "NAME")]
    pub workspace: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TrustOptions {
    #[arg(long, value_name = "NAME")]
    pub workspace: String,
    /// Trust this file only (as `hh rules status` names it).
    #[arg(long, value_name = "FILE")]
    pub file: Option<String>,
    /// Without a terminal to ask on: trust the version with this SHA-256 (as `hh rules status`
    /// shows it), and only that one. Repeat for several files.
    #[arg(long = "sha256", value_name = "SHA")]
    pub sha256: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct MigrateOptions {
    #[arg(long, value_name = "NAME")]
    pub workspace: String,
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
        RulesCommand::Status(status) => run_status(status),
        RulesCommand::Trust(trust) => run_trust(trust),
        RulesCommand::Migrate(migrate) => run_migrate(migrate, config),
        RulesCommand::Suggest(suggest) => run_suggest(suggest),
    }
}

fn run_suggest(options: &SuggestOptions) -> anyhow::Result<ExitCode> {
    let request = ClientRequest::SuggestRules {
        workspace: options.workspace.clone(),
        since_secs: options.since,
    };
    let suggestions = client_runtime()?.block_on(async {
        let mut client = Client::connect(&socket_path()).await?;
        match client.call(&request).await? {
            Reply::Suggestions { suggestions } => Ok::<_, anyhow::Error>(suggestions),
            other => bail!("unexpected reply from the agent: {other:?}"),
        }
    })?;
    if let Some(n) = options.apply {
        let Some(chosen) = n.checked_sub(1).and_then(|index| suggestions.get(index)) else {
            bail!(
                "no suggestion {n}: there are {} (`hh rules suggest --workspace {}` lists them)",
                suggestions.len(),
                options.workspace
            );
        };
        let rule = Rule::parse(&chosen.rule).with_context(|| format!("rule `{}`", chosen.rule))?;
        return match add_through_agent(&options.workspace, Action::Allow, &[rule])? {
            Some(code) => Ok(code),
            None => bail!("no agent answered at {}", socket_path().display()),
        };
    }
    if options.json {
        println!("{}", serde_json::to_string_pretty(&suggestions)?);
        return Ok(ExitCode::SUCCESS);
    }
    if suggestions.is_empty() {
        println!(
            "nothing was denied for want of a rule in workspace {}'s sessions{}",
            options.workspace,
            if options.since.is_some() {
                " in that time"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (i, suggestion) in suggestions.iter().enumerate() {
        println!(
            "{:>3}  allow '{}'  covers {} denied request{}",
            i + 1,
            suggestion.rule,
            suggestion.covers,
            if suggestion.covers == 1 { "" } else { "s" }
        );
        for example in &suggestion.examples {
            println!("       {example}");
        }
    }
    println!(
        "(`hh rules suggest --workspace {} --apply N` adds one, in force at once)",
        options.workspace
    );
    Ok(ExitCode::SUCCESS)
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

fn workspace_rules_files(config: &Config, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let workspace = config
        .workspace(name)
        .ok_or_else(|| anyhow!("no workspace `{name}` in the config"))?;
    Ok(workspace.rules_files())
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
            workspace: workspace_rules_files(&config, name)?,
            template,
            harness: None,
            trust: None,
            owner: None,
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
    let action = match options.action {
        ActionArg::Allow => Action::Allow,
        ActionArg::Deny => Action::Deny,
    };
    let path = match (&options.rules, &options.workspace) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => {
            if let Some(code) = add_through_agent(name, action, &rules)? {
                return Ok(code);
            }
            let path = workspace_rules_file(&load_config(config_path)?, name)?;
            eprintln!(
                "hh: no agent answered at {}; writing {} directly. Sessions run the version \
                 of it a person trusted: `hh rules trust --workspace {name}` once the agent runs",
                socket_path().display(),
                path.display()
            );
            path
        }
        (None, None) => bail!("give --workspace NAME or --rules FILE"),
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

/// `hh rules add --workspace`: the agent appends to the file and its trusted copy. `None` when
/// no agent answers on the socket.
fn add_through_agent(
    workspace: &str,
    action: Action,
    rules: &[Rule],
) -> anyhow::Result<Option<ExitCode>> {
    client_runtime()?.block_on(async {
        let mut client = match Client::connect(&socket_path()).await {
            Ok(client) => client,
            Err(ClientError::Connect { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        for rule in rules {
            let request = ClientRequest::AddRule {
                workspace: workspace.to_owned(),
                action: action.to_string(),
                rule: rule.to_string(),
            };
            match client.call(&request).await? {
                Reply::RuleAdded { file, added, note } => {
                    if added {
                        println!("added {action} `{rule}` to {file} (in force)");
                    } else {
                        println!("already there: {action} `{rule}` in {file}");
                    }
                    if let Some(note) = note {
                        eprintln!("hh: {note}");
                    }
                }
                other => bail!("unexpected reply from the agent: {other:?}"),
            }
        }
        Ok(Some(ExitCode::SUCCESS))
    })
}

fn rules_status(workspace: &str) -> anyhow::Result<Vec<RulesFileStatus>> {
    let request = ClientRequest::RulesStatus {
        workspace: workspace.to_owned(),
    };
    match super::session::call(request)? {
        Reply::Rules { files } => Ok(files),
        other => bail!("unexpected reply from the agent: {other:?}"),
    }
}

fn run_status(options: &StatusOptions) -> anyhow::Result<ExitCode> {
    let files = rules_status(&options.workspace)?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&files)?);
    } else {
        for file in &files {
            print_standing(file, &options.workspace);
        }
    }
    let all_in_force = files.iter().all(|file| file.in_force);
    Ok(if all_in_force {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_standing(file: &RulesFileStatus, workspace: &str) {
    let state = match (file.in_force, file.ever_trusted) {
        (true, _) => "in force",
        (false, true) => {
            "CHANGED since you trusted it: the trusted version is in force (and the deny rules \
             of the file as it reads)"
        }
        (false, false) => "NEVER TRUSTED: only its deny rules are in force",
    };
    println!("{} ({}): {state}", file.file, file.layer);
    if !file.in_force {
        println!("  sha256 {}", file.sha256);
    }
    if let Some(error) = &file.error {
        println!("  cannot be trusted as it reads: {error}");
    }
    if !file.in_force {
        for line in file.diff.lines() {
            println!("  {line}");
        }
        if file.error.is_none() {
            println!(
                "  put it in force with `hh rules trust --workspace {workspace}` (asks), or \
                 `--sha256 {}` for this exact version",
                file.sha256
            );
        }
    }
}

fn run_trust(options: &TrustOptions) -> anyhow::Result<ExitCode> {
    let files = rules_status(&options.workspace)?;
    if let Some(wanted) = &options.file
        && !files.iter().any(|file| &file.file == wanted)
    {
        bail!(
            "{wanted} is not a rules file of workspace `{}`",
            options.workspace
        );
    }
    let mut failed = false;
    for file in files.iter().filter(|file| {
        options
            .file
            .as_ref()
            .is_none_or(|wanted| &file.file == wanted)
    }) {
        if file.in_force {
            println!("{}: in force already", file.file);
            continue;
        }
        println!("{} ({}), sha256 {}:", file.file, file.layer, file.sha256);
        for line in file.diff.lines() {
            println!("  {line}");
        }
        if let Some(error) = &file.error {
            println!("  not trusted: {error}");
            failed = true;
            continue;
        }
        // A person says yes to what they were shown: on a terminal, here; without one, by
        // naming the version's SHA-256 they looked at (a session may change the file at any
        // moment, and a blanket "trust" would take its change too).
        let agreed = if options.sha256.iter().any(|sha| sha == &file.sha256) {
            true
        } else if !options.sha256.is_empty() {
            println!("  not trusted: this version is not one --sha256 named (changed since?)");
            false
        } else if std::io::stdin().is_terminal() {
            ask_yes(&format!("trust this version of {}? [y/N] ", file.file))?
        } else {
            println!(
                "  not trusted: no terminal to ask on; after looking at it, pass --sha256 {}",
                file.sha256
            );
            false
        };
        if !agreed {
            failed = true;
            continue;
        }
        let request = ClientRequest::TrustRules {
            workspace: options.workspace.clone(),
            file: file.file.clone(),
            sha256: file.sha256.clone(),
        };
        match super::session::call(request) {
            Ok(_) => println!("{}: trusted; this version is in force", file.file),
            Err(error) => {
                println!("{}: not trusted: {error:#}", file.file);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks on the terminal; only `y` or `yes` agrees.
fn ask_yes(question: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Moves `.hh/harness-rules.toml` to the workspace root, as the user (no agent needed). The
/// agent sees a removed file and a new one: the old trusted version stays in force until a
/// person trusts the move.
fn run_migrate(options: &MigrateOptions, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path)?;
    let workspace = config
        .workspace(&options.workspace)
        .ok_or_else(|| anyhow!("no workspace `{}` in the config", options.workspace))?;
    let (from, to) = (workspace.legacy_rules_file(), workspace.rules_file());
    let meta = match std::fs::symlink_metadata(&from) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            println!("nothing to migrate: {} does not exist", from.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", from.display())),
    };
    if !meta.is_file() {
        bail!("{} is not a regular file; move it by hand", from.display());
    }
    if std::fs::symlink_metadata(&to).is_ok() {
        bail!(
            "{} exists already: merge {} into it by hand, then remove the latter",
            to.display(),
            from.display()
        );
    }
    // link + unlink: never replaces a file that appeared at `to` meanwhile.
    std::fs::hard_link(&from, &to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    std::fs::remove_file(&from).with_context(|| format!("cannot remove {}", from.display()))?;
    println!("moved {} to {}", from.display(), to.display());
    println!(
        "the version you trusted stays in force until you trust the move: `hh rules trust --workspace {}`",
        options.workspace
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_a_number_and_a_unit() {
        assert_eq!(parse_since("90s"), Ok(90));
        assert_eq!(parse_since("30m"), Ok(1800));
        assert_eq!(parse_since("2h"), Ok(7200));
        assert_eq!(parse_since("1d"), Ok(86_400));
        for bad in ["", "h", "0m", "5", "-1h", "1w", "1.5h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
