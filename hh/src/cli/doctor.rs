//! `hh doctor`.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Options {}

pub fn run(_options: &Options) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
