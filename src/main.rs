//! The `otpgate` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use otpgate::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// glibc's malloc cost much of the server's CPU under load (arena locks, consolidation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log lines that may wait for the log thread before logging waits for it.
const LOG_QUEUE_LINES: usize = 8192;

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
    // The daemon writes its log lines from a thread of their own, a burst in one write, so a
    // request never waits for stderr; none is dropped. A CLI command writes each at once, so
    // it shows before the command's own output.
    let log_guard = match cli.command {
        Command::Serve => {
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                // the queue is allocated whole up front: a few milliseconds of a busy log
                .buffered_lines_limit(LOG_QUEUE_LINES)
                .thread_name("otpgate-log")
                .finish(std::io::BufWriter::new(std::io::stderr()));
            init_logging(filter, writer);
            Some(guard)
        }
        _ => {
            init_logging(filter, std::io::stderr);
            None
        }
    };
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
    drop(log_guard);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otpgate: {e}");
            ExitCode::from(cli::exit::ERROR)
        }
    }
}

/// Human text on a terminal or a file; under systemd, lines journald stamps and ranks itself;
/// JSON lines with `OTPGATE_LOG_FORMAT=json`.
fn init_logging<W>(filter: EnvFilter, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if std::env::var("OTPGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else if otpgate::daemon::journal::stderr_is_journal() {
        builder
            .event_format(otpgate::daemon::journal::JournalFormat::default())
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
