//! `hh service unit|install`: the agent as a systemd service, so it starts with the host and its
//! log goes to the journal.
//!
//! `unit` prints the unit for this `hh` binary and config; `install` (root) writes it to
//! `/etc/systemd/system/hh-agent.service` atomically (through a descriptor of that directory)
//! and, where systemd runs, reloads it and enables and starts the service. The agent stops its
//! sessions on SIGTERM (what systemd sends), so a `systemctl stop` or a restart leaves nothing
//! behind; a killed agent's sessions stay cut off and the next start adopts them.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};

use crate::sys::owned_dir::OwnedDir;

/// Where `install` writes the unit.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The unit's file name.
pub const UNIT_NAME: &str = "hh-agent.service";

#[derive(clap::Args, Debug)]
pub struct Options {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ServiceCommand {
    /// Print the systemd unit that runs this hh as the agent.
    Unit(UnitOptions),
    /// Write the unit to /etc/systemd/system (root), and enable and start it where systemd runs.
    Install(UnitOptions),
}

#[derive(clap::Args, Debug)]
struct UnitOptions {
    /// The group allowed on the agent socket besides root, by GID or name (default:
    /// $SUDO_GID, the invoking user's).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// The hh binary the service runs (default: this one).
    #[arg(long, value_name = "PATH")]
    hh: Option<PathBuf>,
    /// The unit the .deb ships (`cargo xtask dist`): /usr/bin/hh, /etc/hh/harness-hat.toml
    /// and the socket group `hh`, none of which need exist yet.
    #[arg(long, hide = true)]
    packaged: bool,
}

/// Where the package puts hh, where its unit reads the config, and the socket group its
/// postinst makes.
const PACKAGED: (&str, &str, &str) = ("/usr/bin/hh", "/etc/hh/harness-hat.toml", "hh");

pub fn run(options: &Options, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config_path, unit_options) = match &options.command {
        ServiceCommand::Unit(unit) | ServiceCommand::Install(unit) => (config, unit),
    };
    if unit_options.packaged {
        let (hh, config, group) = PACKAGED;
        print!(
            "{}",
            unit_text(Path::new(hh), Path::new(config), Some(group))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let config_path = match config_path {
        Some(path) => path.to_path_buf(),
        None => super::load_config(None)?.1,
    };
    let config_path = std::fs::canonicalize(&config_path)
        .with_context(|| format!("cannot find the config {}", config_path.display()))?;
    let hh = match &unit_options.hh {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot tell where this hh is")?,
    };
    let hh = std::fs::canonicalize(&hh)
        .with_context(|| format!("cannot find the hh binary {}", hh.display()))?;
    let socket_group = unit_options
        .socket_group
        .clone()
        .or_else(|| std::env::var("SUDO_GID").ok());
    let unit = unit_text(&hh, &config_path, socket_group.as_deref())?;
    match &options.command {
        ServiceCommand::Unit(_) => print!("{unit}"),
        ServiceCommand::Install(_) => install(&unit)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The unit that runs `hh --config CONFIG agent` as root, logging to the journal.
pub fn unit_text(hh: &Path, config: &Path, socket_group: Option<&str>) -> anyhow::Result<String> {
    // A GID or a group name (as useradd allows them): nothing systemd would read otherwise.
    if let Some(group) = socket_group
        && (group.is_empty()
            || !group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            || group.starts_with('-'))
    {
        bail!("`{group}` is not a GID or a group name");
    }
    for path in [hh, config] {
        let text = path.to_string_lossy();
        // systemd splits ExecStart on whitespace and expands `%` and `$`: such a path would be
        // read as something else.
        if text.contains(|c: char| c.is_whitespace() || matches!(c, '%' | '$' | '"' | '\'' | '\\'))
        {
            bail!(
                "{} has a character a unit file cannot carry plainly (space, %, $, quote or \
                 backslash): move it",
                path.display()
            );
        }
    }
    let group = match socket_group {
        Some(group) => format!(" --socket-group {group}"),
        None => String::new(),
    };
    Ok(format!(
        "# Written by `hh service install`; `hh service unit` prints it again.\n\
         [Unit]\n\
         Description=hh agent: every connection of coding-agent sessions through hh's policy\n\
         Wants=docker.service\n\
         After=docker.service network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={hh} --config {config} agent{group}\n\
         # SIGTERM stops every session cleanly (a SIGKILL leaves them cut off until the next start).\n\
         KillSignal=SIGTERM\n\
         # `systemctl reload hh-agent`: the agent checks its config again and logs the result;\n\
         # running sessions are not touched.\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         TimeoutStopSec=90\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         Environment=HH_LOG=hh=info\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        hh = hh.display(),
        config = config.display(),
    ))
}

/// Whether systemd is the init here (its runtime directory exists only then).
pub fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn install(unit: &str) -> anyhow::Result<()> {
    let dir = OwnedDir::open(Path::new(UNIT_DIR), Some(0))
        .with_context(|| format!("{UNIT_DIR} must be root's (run as root)"))?;
    dir.replace(UNIT_NAME, unit.as_bytes())
        .with_context(|| format!("cannot write {UNIT_DIR}/{UNIT_NAME}"))?;
    println!("wrote {UNIT_DIR}/{UNIT_NAME}");
    if !systemd_runs() {
        println!(
            "systemd does not run on this host: start the agent yourself (`sudo hh --config … agent`)"
        );
        return Ok(());
    }
    for args in [
        &["daemon-reload"][..],
        &["enable", "--now", "hh-agent.service"][..],
    ] {
        // spawns: systemctl
        let status = Command::new("systemctl")
            .args(args)
            .status()
            .context("cannot run systemctl")?;
        if !status.success() {
            bail!("systemctl {} failed ({status})", args.join(" "));
        }
    }
    println!("hh-agent.service is enabled and started (`journalctl -u hh-agent` for its log)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_hh_with_its_config_and_group_and_refuses_odd_paths() {
        let unit = unit_text(
            Path::new("/usr/local/bin/hh"),
            Path::new("/etc/hh/harness-hat.toml"),
            Some("1001"),
        )
        .unwrap();
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/hh --config /etc/hh/harness-hat.toml agent --socket-group 1001\n"
        ));
        assert!(unit.contains("KillSignal=SIGTERM\n"));
        assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID\n"));
        assert!(unit.contains("WantedBy=multi-user.target\n"));
        for odd in ["/opt/my hh/hh", "/opt/%h/hh", "/opt/$x/hh"] {
            assert!(unit_text(Path::new(odd), Path::new("/c.toml"), None).is_err());
        }
        for odd in ["", "a b", "-x", "g%h", "$g"] {
            assert!(unit_text(Path::new("/h"), Path::new("/c.toml"), Some(odd)).is_err());
        }
        let named = unit_text(Path::new("/h"), Path::new("/c.toml"), Some("hh")).unwrap();
        assert!(named.contains("agent --socket-group hh\n"));
    }
}
