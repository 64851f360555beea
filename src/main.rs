//! The `otpgate` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use otpgate::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

/// glibc's malloc was a fifth of the server's CPU under load (arena locks, fastbin
/// consolidation on every larger request; docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Validate(_)
        | Command::Token(_)
        | Command::Audit(_)
        | Command::Event(_)
        | Command::Radtest(_)
        | Command::Bench(_) => "warn",
        _ => "info",
    };
    let filter =
        EnvFilter::try_from_env("OTPGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otpgate: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::ERROR);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otpgate: {e}");
            ExitCode::from(cli::exit::ERROR)
        }
    }
}
