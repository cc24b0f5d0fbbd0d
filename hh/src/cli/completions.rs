//! `hh completions SHELL`: the shell's completion script for every subcommand and flag; and
//! `hh manpage`, the roff man page (hidden: the .deb's build uses it). Both from the same clap
//! definition the parser uses, so they cannot drift from the commands.

use std::process::ExitCode;

use clap::CommandFactory as _;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// bash, zsh, fish, elvish or powershell. For bash:
    /// `hh completions bash > ~/.local/share/bash-completion/completions/hh`.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn run(options: &Options) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    clap_complete::generate(options.shell, &mut command, "hh", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes hh(1) in roff to stdout.
pub fn manpage() -> anyhow::Result<ExitCode> {
    clap_mangen::Man::new(super::Cli::command()).render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
