//! `hh approvals`: list the requests held for an answer, and answer them (once, forever, or for
//! a while: `--for 10m|1h|session`); list and revoke the grants such answers made.
//!
//! Talks to the agent (or to `hh proxy --api-socket PATH`) on `$HH_AGENT_SOCKET` (default
//! `/run/hh/agent.sock`). Exit codes: 0 done, 1 refused (unknown id, a rule that does not cover
//! the request, not allowed), 2 usage or connection error.

use std::{
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;

use crate::api::{
    client::{self, Client, ClientError},
    protocol::{Answer, BodySize, ClientRequest, GrantFor, GrantInfo, PendingApproval, Reply},
};

/// The answer was refused by the agent.
const EXIT_REFUSED: u8 = 1;
/// The command line was wrong or the agent could not be reached (clap also exits 2).
const EXIT_USAGE: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// List as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<ApprovalsCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Let a held request through (with every identical request waiting on the same prompt).
    Allow(AnswerOptions),
    /// Refuse a held request: its client gets a 403 (a raw connection is closed).
    Deny(AnswerOptions),
    /// The grants in force (`allow --for`): what each lets through, and until when.
    Grants {
        #[arg(long)]
        json: bool,
    },
    /// End a grant now.
    Revoke {
        /// The grant's id, as `hh approvals grants` lists it.
        id: u64,
    },
}

/// How much of the host an answer for a while covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Breadth {
    /// The request's exact path.
    Path,
    /// Every path under the request's directory (`/a/b/c` → `/a/b/*`).
    Prefix,
    /// The whole host (the suggested rule).
    Host,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("lasting").args(["forever", "grant_for"])))]
pub struct AnswerOptions {
    /// The approval's id, as `hh approvals` lists it.
    pub id: u64,
    /// Also append a rule to the rules file, so such requests are decided without asking.
    #[arg(long)]
    pub forever: bool,
    /// With --forever or --for: this rule instead of the suggested one; it must cover the
    /// held request.
    #[arg(long, value_name = "RULE", requires = "lasting")]
    pub rule: Option<String>,
    /// Allow only: let such requests of the session through for 10m, 1h or the session,
    /// without asking and without writing a rule.
    #[arg(long = "for", value_name = "10m|1h|session", conflicts_with = "forever", value_parser = parse_grant_for)]
    pub grant_for: Option<GrantFor>,
    /// With --for: the exact path, its directory (prefix) or the host (default).
    #[arg(long, value_enum, requires = "grant_for", conflicts_with = "rule")]
    pub breadth: Option<Breadth>,
}

fn parse_grant_for(text: &str) -> Result<GrantFor, String> {
    GrantFor::parse(text).ok_or_else(|| format!("`{text}`: give 10m, 1h or session"))
}

pub fn run(options: &Options) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let done = runtime.block_on(async {
        let mut client = Client::connect(&client::socket_path()).await?;
        match &options.command {
            None => list(&mut client, options.json).await,
            Some(ApprovalsCommand::Allow(answer)) => {
                let how = match (answer.forever, answer.grant_for) {
                    (false, None) => Answer::AllowOnce,
                    (_, Some(duration)) => {
                        let rule = match answer.breadth {
                            Some(breadth) if breadth != Breadth::Host => {
                                Some(narrowed_rule(&mut client, answer.id, breadth).await?)
                            }
                            _ => answer.rule.clone(),
                        };
                        Answer::AllowFor { duration, rule }
                    }
                    (true, None) => Answer::AllowForever {
                        rule: answer.rule.clone(),
                    },
                };
                send_answer(&mut client, answer.id, how).await
            }
            Some(ApprovalsCommand::Grants { json }) => grants(&mut client, *json).await,
            Some(ApprovalsCommand::Revoke { id }) => {
                match client.call(&ClientRequest::RevokeGrant { id: *id }).await? {
                    Reply::Ok => {
                        println!("grant {id}: revoked");
                        Ok(())
                    }
                    other => Err(unexpected(&other)),
                }
            }
            Some(ApprovalsCommand::Deny(answer)) => {
                if answer.grant_for.is_some() {
                    return Err(ClientError::Refused(
                        "--for grants allow; a deny for a while is a deny rule (--forever)".into(),
                    ));
                }
                let how = match answer.forever {
                    false => Answer::DenyOnce,
                    true => Answer::DenyForever {
                        rule: answer.rule.clone(),
                    },
                };
                send_answer(&mut client, answer.id, how).await
            }
        }
    });
    match done {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ClientError::Refused(message)) => {
            eprintln!("hh: refused: {message}");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
        Err(error) => {
            eprintln!("hh: {error}");
            Ok(ExitCode::from(EXIT_USAGE))
        }
    }
}

async fn list(client: &mut Client, json: bool) -> Result<(), ClientError> {
    let pending = match client.call(&ClientRequest::ListApprovals {}).await? {
        Reply::Approvals { pending } => pending,
        other => return Err(unexpected(&other)),
    };
    if json {
        let text = serde_json::to_string_pretty(&pending).map_err(ClientError::Protocol)?;
        println!("{text}");
    } else if pending.is_empty() {
        println!("no pending approvals");
    } else {
        print!("{}", table(&pending, now_ms()));
    }
    Ok(())
}

async fn send_answer(client: &mut Client, id: u64, answer: Answer) -> Result<(), ClientError> {
    let described = describe_answer(&answer);
    match client.call(&ClientRequest::Answer { id, answer }).await? {
        Reply::Ok => {
            println!("approval {id}: {described}");
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

/// The rule for held request `id` narrowed to its path or its directory.
async fn narrowed_rule(
    client: &mut Client,
    id: u64,
    breadth: Breadth,
) -> Result<String, ClientError> {
    let pending = match client.call(&ClientRequest::ListApprovals {}).await? {
        Reply::Approvals { pending } => pending,
        other => return Err(unexpected(&other)),
    };
    let approval = pending
        .iter()
        .find(|approval| approval.id == id)
        .ok_or_else(|| ClientError::Refused(format!("no pending approval {id}")))?;
    rule_of_breadth(approval, breadth).ok_or_else(|| {
        ClientError::Refused(format!(
            "approval {id} has no path to narrow to, or one with characters the rule grammar \
             reads (`,`, `*`, spaces…): give --rule"
        ))
    })
}

/// `approval`'s suggested rule with a path term: its exact path, or its directory and below.
/// `None` for a request without a path (raw TCP), or whose path has a character other than
/// letters, digits and `-._~/%@+`: the path is the session's to choose, and a `,`, `*` or space
/// would make the rule say more than that path (`/x,*` is every path).
fn rule_of_breadth(approval: &PendingApproval, breadth: Breadth) -> Option<String> {
    let path = approval.path.as_deref()?;
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/%@+".contains(&b));
    if !plain {
        return None;
    }
    let path = match breadth {
        Breadth::Host => return Some(approval.suggested_rule.clone()),
        Breadth::Path => path.to_owned(),
        Breadth::Prefix => match path.rsplit_once('/') {
            Some((directory, _)) => format!("{directory}/*"),
            None => "/*".to_owned(),
        },
    };
    let mut rule = format!("domain={} path={path}", approval.host);
    if !crate::rules::WEB_PORTS.contains(&approval.port) {
        rule.push_str(&format!(" port={}", approval.port));
    }
    Some(rule)
}

async fn grants(client: &mut Client, json: bool) -> Result<(), ClientError> {
    let grants = match client.call(&ClientRequest::ListGrants {}).await? {
        Reply::Grants { grants } => grants,
        other => return Err(unexpected(&other)),
    };
    if json {
        let text = serde_json::to_string_pretty(&grants).map_err(ClientError::Protocol)?;
        println!("{text}");
    } else if grants.is_empty() {
        println!("no grants (`hh approvals allow ID --for 10m|1h|session` makes one)");
    } else {
        print!("{}", grants_table(&grants, now_ms()));
    }
    Ok(())
}

/// One line per grant: id, session, what it allows, how long, and the time left.
fn grants_table(grants: &[GrantInfo], now_ms: u64) -> String {
    let mut out = format!(
        "{:<6} {:<14} {:<8} {:<9} RULE\n",
        "ID", "SESSION", "FOR", "LEFT"
    );
    for grant in grants {
        let left = grant.expires_ms.map_or_else(
            || "session".to_owned(),
            |expires| {
                let seconds = expires.saturating_sub(now_ms).div_ceil(1000);
                format!("{}m{:02}s", seconds / 60, seconds % 60)
            },
        );
        out.push_str(&format!(
            "{:<6} {:<14} {:<8} {:<9} {}\n",
            grant.id, grant.session, grant.duration, left, grant.rule
        ));
    }
    out
}

fn describe_answer(answer: &Answer) -> String {
    // The proxy appends the rule before the request goes on; should that fail, the request is
    // denied and its 403 and the proxy's log say why.
    let forever = |verb: &str, rule: &Option<String>| match rule {
        Some(rule) => format!("{verb} forever; the proxy appends `{rule}` to its rules file"),
        None => format!("{verb} forever; the proxy appends the suggested rule to its rules file"),
    };
    match answer {
        Answer::AllowOnce => "allowed once".into(),
        Answer::DenyOnce => "denied once".into(),
        Answer::AllowForever { rule } => forever("allowed", rule),
        Answer::DenyForever { rule } => forever("denied", rule),
        Answer::AllowFor { duration, rule } => format!(
            "allowed for {}: the session's requests {} covers go through without asking \
             (no rule written; `hh approvals grants` lists it)",
            duration.as_str(),
            rule.as_deref().map_or_else(
                || "the suggested rule".to_owned(),
                |rule| format!("`{rule}`")
            )
        ),
    }
}

/// A reply that makes no sense for the request: the two sides are different versions.
fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Refused(format!("unexpected reply from the agent: {reply:?}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// One line per prompt: id, session, how many wait, seconds left, the request, the rule
/// "forever" would add.
fn table(pending: &[PendingApproval], now_ms: u64) -> String {
    let rows: Vec<[String; 7]> = pending
        .iter()
        .map(|approval| {
            let request = match (&approval.method, &approval.path) {
                (Some(method), Some(path)) => {
                    let query = approval
                        .query
                        .as_ref()
                        .map_or_else(String::new, |query| format!("?{query}"));
                    format!("{method} {}:{} {path}{query}", approval.host, approval.port)
                }
                _ => format!("TCP {}:{}", approval.host, approval.port),
            };
            let body = match approval.body {
                BodySize::None => "-".to_owned(),
                BodySize::Bytes(len) => format!("{len} B"),
                BodySize::Streamed => "streamed".to_owned(),
            };
            let left = approval.deadline_ms.saturating_sub(now_ms).div_ceil(1000);
            [
                approval.id.to_string(),
                approval.session.clone(),
                approval.waiting.to_string(),
                format!("{left}s"),
                request,
                body,
                approval.suggested_rule.clone(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "SESSION",
        "WAITING",
        "LEFT",
        "REQUEST",
        "BODY",
        "FOREVER RULE",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for approval in pending {
        if let Some(process) = &approval.process {
            out.push_str(&format!("{} asked by {process}\n", approval.id));
        }
        if let Some(note) = &approval.note {
            out.push_str(&format!("note on {}: {note}\n", approval.id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_for_test() -> PendingApproval {
        PendingApproval {
            process: None,
            id: 1,
            session: "s1".into(),
            method: Some("GET".into()),
            host: "a.test".into(),
            path: Some("/".into()),
            port: 443,
            waiting: 1,
            deadline_ms: 0,
            rules_file: "rules.toml".into(),
            layer: "workspace".into(),
            suggested_rule: "domain=a.test".into(),
            query: None,
            body: BodySize::None,
            note: None,
        }
    }

    #[test]
    fn a_grants_breadth_never_reads_the_sessions_path_as_rule_text() {
        let approval = |path: &str, port: u16| PendingApproval {
            process: None,
            path: Some(path.into()),
            port,
            ..pending_for_test()
        };
        assert_eq!(
            rule_of_breadth(&approval("/pkg/a/b", 443), Breadth::Prefix).as_deref(),
            Some("domain=a.test path=/pkg/a/*")
        );
        assert_eq!(
            rule_of_breadth(&approval("/pkg/a", 8443), Breadth::Path).as_deref(),
            Some("domain=a.test path=/pkg/a port=8443")
        );
        for hostile in ["/pkg/x,*", "/a b port=22", "/a*", "/a\tb", "/a=b"] {
            assert_eq!(
                rule_of_breadth(&approval(hostile, 443), Breadth::Path),
                None,
                "{hostile}"
            );
        }
    }

    #[test]
    fn the_table_shows_each_prompt_on_one_aligned_line() {
        let approval = |id, method: Option<&str>, path: Option<&str>, port| PendingApproval {
            process: None,
            id,
            session: "standalone".into(),
            method: method.map(Into::into),
            host: "a.test".into(),
            path: path.map(Into::into),
            port,
            waiting: 2,
            deadline_ms: 10_500,
            rules_file: "rules.toml".into(),
            layer: "workspace".into(),
            suggested_rule: format!("domain=a.test port={port}"),
            query: None,
            body: BodySize::None,
            note: None,
        };
        let mut posted = approval(8, Some("POST"), Some("/up"), 443);
        posted.query = Some("id=4".into());
        posted.body = BodySize::Bytes(1200);
        let mut local = approval(9, Some("GET"), Some("/"), 8080);
        local.host = "127.0.0.1".into();
        local.note = Some("127.0.0.1 is the loopback of the proxy's host".into());
        local.body = BodySize::Streamed;
        let text = table(
            &[
                approval(7, Some("GET"), Some("/x"), 443),
                posted,
                local,
                approval(12, None, None, 22),
            ],
            1_000,
        );
        assert_eq!(
            text,
            "ID  SESSION     WAITING  LEFT  REQUEST                   BODY      FOREVER RULE\n\
             7   standalone  2        10s   GET a.test:443 /x         -         domain=a.test port=443\n\
             8   standalone  2        10s   POST a.test:443 /up?id=4  1200 B    domain=a.test port=443\n\
             9   standalone  2        10s   GET 127.0.0.1:8080 /      streamed  domain=a.test port=8080\n\
             12  standalone  2        10s   TCP a.test:22             -         domain=a.test port=22\n\
             note on 9: 127.0.0.1 is the loopback of the proxy's host\n"
        );
    }
}
