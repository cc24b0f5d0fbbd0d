//! `hh init [PATH]`: write the commented starter config; never overwrite without `--force`.

use std::{
    fs::OpenOptions,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};

use crate::{config::starter::STARTER_CONFIG, rules::store::write_atomically};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write it (default: the global --config path, else ./harness-hat.toml).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

pub fn run(options: &Options, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let path = options
        .path
        .as_deref()
        .or(config)
        .unwrap_or(Path::new("harness-hat.toml"));
    write_starter(path, options.force)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes the starter config at `path`; without `force`, an existing file is an error. The
/// TUI's first-run screen writes it through here too.
pub fn write_starter(path: &Path, force: bool) -> anyhow::Result<()> {
    if force {
        write_atomically(path, STARTER_CONFIG.as_bytes())?;
        return Ok(());
    }
    // create_new: an existing file (or symlink) is never touched, even in a race.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            bail!(
                "{} already exists; pass --force to replace it",
                path.display()
            )
        }
        Err(error) => {
            return Err(error).with_context(|| format!("could not create {}", path.display()));
        }
    };
    file.write_all(STARTER_CONFIG.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", path.display()))
}
