//! The `otpgate` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use otpgate::cli::{self, Cli, Command};
use otpgate::daemon::log_format::{LineFields, LineFormat, LogTime};
use otpgate::daemon::log_output::LogOutput;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
    // The daemon batches its log lines (a write per line was most of a line's cost); a CLI
    // command writes each at once, so it shows before the command's own output.
    let log_output = match cli.command {
        Command::Serve => LogOutput::start(std::io::stderr())
            .map_err(|e| eprintln!("otpgate: log lines are written one by one: {e}"))
            .ok(),
        _ => None,
    };
    match &log_output {
        Some(output) => {
            output.flush_on_panic();
            init_logging(filter, output.writer());
        }
        None => init_logging(filter, std::io::stderr),
    }
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
    let result = runtime.block_on(cli::run(cli));
    // the log lines first: they tell what led to the error
    if let Some(output) = log_output {
        output.finish();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otpgate: {e}");
            ExitCode::from(cli::exit::ERROR)
        }
    }
}

fn init_logging<W>(filter: EnvFilter, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .fmt_fields(LineFields)
        .event_format(LineFormat::new(LogTime))
        .with_writer(writer)
        .init();
}
