//! `hh approvals`: list the requests held for an answer, and answer them.
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
    protocol::{Answer, BodySize, ClientRequest, PendingApproval, Reply},
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
}

#[derive(clap::Args, Debug)]
pub struct AnswerOptions {
    /// The approval's id, as `hh approvals` lists it.
    pub id: u64,
    /// Also append a rule to the rules file, so such requests are decided without asking.
    #[arg(long)]
    pub forever: bool,
    /// With --forever: this rule instead of the suggested one; it must cover the held request.
    #[arg(long, value_name = "RULE", requires = "forever")]
    pub rule: Option<String>,
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
                let how = match answer.forever {
                    false => Answer::AllowOnce,
                    true => Answer::AllowForever {
                        rule: answer.rule.clone(),
                    },
                };
                send_answer(&mut client, answer.id, how).await
            }
            Some(ApprovalsCommand::Deny(answer)) => {
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
        if let Some(note) = &approval.note {
            out.push_str(&format!("note on {}: {note}\n", approval.id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_prompt_on_one_aligned_line() {
        let approval = |id, method: Option<&str>, path: Option<&str>, port| PendingApproval {
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
