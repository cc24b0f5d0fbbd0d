//! The `agent-socket` check: does an hh agent answer this user on its socket, and who does it
//! take the user for? This is all a user needs: sessions, shells and image builds go through
//! the agent, never through the Docker socket (whose access is root on the host).

use std::{path::Path, time::Duration};

use super::{Check, Status, fail};
use crate::api::{
    client::Client,
    protocol::{ClientRequest, Reply},
};

const NAME: &str = "agent-socket";

/// How long the agent has to answer `hello`.
const TIMEOUT: Duration = Duration::from_secs(3);

pub fn check(socket: &Path) -> Check {
    let asked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                let hello = async {
                    let mut client = Client::connect(socket).await?;
                    client.call(&ClientRequest::Hello {}).await
                };
                match tokio::time::timeout(TIMEOUT, hello).await {
                    Ok(answer) => answer.map_err(|error| error.to_string()),
                    Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
                }
            })
        });
    match asked {
        Ok(Reply::Hello(hello)) => Check {
            name: NAME,
            status: Status::Pass,
            detail: format!(
                "hh agent {} ({} mode) answers at {} and takes you for uid {}",
                hello.version,
                hello.mode,
                socket.display(),
                hello.peer_uid
            ),
            fix: None,
        },
        Ok(other) => fail(
            NAME,
            format!(
                "{} answered `{other:?}`, not an hh agent's hello",
                socket.display()
            ),
            "point HH_AGENT_SOCKET at the agent's socket",
        ),
        Err(why) => {
            let denied = why.contains("ermission denied");
            let fix = if denied {
                "the socket is the agent's socket group's: ask an administrator to add you \
                 (`sudo usermod -aG GROUP $USER`, GROUP as `ls -l` shows it), then log in again"
            } else {
                "start the agent: `sudo hh agent` (or set HH_AGENT_SOCKET to its socket)"
            };
            let first_line = why.lines().next().unwrap_or(&why).to_owned();
            fail(NAME, first_line, fix)
        }
    }
}
