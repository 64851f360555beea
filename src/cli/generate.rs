//! `otpgate generate man|completions DIR`: the man pages (one per command and subcommand)
//! and the shell completions the packages install. Hidden: packaging/build.sh runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Subcommand};

use super::Cli;

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write otpgate.1 and otpgate-SUBCOMMAND….1 into DIR.
    Man { dir: PathBuf },
    /// Write otpgate.bash, _otpgate (zsh) and otpgate.fish into DIR.
    Completions { dir: PathBuf },
}

pub(super) fn run(cmd: GenerateCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir)?;
            // one page per command, named by its path: otpgate-token-enroll.1
            clap_mangen::generate_to(Cli::command(), &dir)?;
            outln!("man pages in {}", dir.display());
        }
        GenerateCommand::Completions { dir } => {
            use clap_complete::{Shell, generate_to};
            std::fs::create_dir_all(&dir)?;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let path = generate_to(shell, &mut Cli::command(), "otpgate", &dir)?;
                outln!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
