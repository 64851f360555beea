//! The command line: `serve`, `check-config`, `init`, `token …`, `validate`, `audit …`,
//! `hash-password`. anyhow lives here and in `main` only.

/// `println!` for what a command prints: a reader that went away (`otpgate audit list | head`)
/// ends the command quietly instead of a panic about a broken pipe.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!`, the same way as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod audit;
mod bench;
mod event;
mod generate;
mod import;
mod radtest;
mod token;
mod user;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::daemon::{self, KeyMode};

/// otpgate: two-factor authentication for VPN gateways, firewalls and LDAP applications.
#[derive(Debug, Parser)]
#[command(name = "otpgate", version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "OTPGATE_CONFIG",
        default_value = "/etc/otpgate/otpgate.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: RADIUS (and the HTTP metrics endpoint) until SIGTERM; SIGHUP reloads.
    /// The first start creates the key file and the database.
    Serve,
    /// Check the configuration file and exit (non-zero with every problem listed).
    CheckConfig,
    /// Create the key file and the database.
    Init,
    /// Manage tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Run one authentication through the real pipeline and print the answer.
    /// Exit 0 on ACCEPT, 1 on REJECT, 3 on CHALLENGE, 2 on error.
    Validate(validate::ValidateArgs),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Event handler definitions: list, show, and test which would run.
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Move a site over from another system: `import privacyidea`.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Ask the directory: list users, show one with its attributes and groups, check a
    /// password.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Man pages and shell completions for the packages.
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
    /// Hash a password for the users file (reads it from stdin).
    HashPassword,
    /// Load generator: PAP logins with valid OTPs from a seed file, closed or open loop;
    /// throughput, latency percentiles, the server's CPU per login and memory.
    Bench(bench::BenchArgs),
    /// Send one Access-Request to a RADIUS server and print the reply.
    /// Exit 0 on Access-Accept, 1 on Access-Reject, 3 on Access-Challenge, 2 on error.
    Radtest(radtest::RadtestArgs),
}

/// Exit codes of `validate` (and 2 for every error elsewhere).
pub mod exit {
    pub const OK: u8 = 0;
    pub const REJECT: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const CHALLENGE: u8 = 3;
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.clone();
    let result = match cli.command {
        Command::Serve => {
            daemon::serve::serve(&cli.config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => check_config(&cli.config),
        Command::Init => init(&cli.config).await,
        Command::Token(cmd) => token::run(&cli.config, cmd).await,
        Command::Validate(args) => validate::run(&cli.config, args).await,
        Command::Audit(cmd) => audit::run(&cli.config, cmd).await,
        Command::Event(cmd) => event::run(&cli.config, cmd).await,
        Command::User(cmd) => user::run(&cli.config, cmd).await,
        Command::Import(cmd) => import::run(&cli.config, cmd).await,
        Command::Generate(cmd) => generate::run(cmd),
        Command::HashPassword => hash_password(&cli.config),
        Command::Radtest(args) => radtest::run(&cli.config, args).await,
        Command::Bench(args) => bench::run(args).await,
    };
    result.map_err(|e| name_the_lock_holder(&config, e))
}

/// A command that failed because SQLite's write lock was held too long (an admin's `sqlite3`
/// shell inside a transaction, a daemon in a stall) says who holds it.
fn name_the_lock_holder(config: &std::path::Path, e: anyhow::Error) -> anyhow::Error {
    let locked = e.chain().any(crate::store::StoreError::is_locked);
    let holder = locked
        .then(|| config::load(config).ok())
        .flatten()
        .and_then(|c| c.store.database.write_lock_holder());
    match holder {
        Some(holder) => anyhow::anyhow!("{e} ({holder})"),
        None => e,
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match config::load(path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            let problems = daemon::preflight(&c);
            if !problems.is_empty() {
                for p in problems {
                    eprintln!("{}: {p}", path.display());
                }
                return Ok(ExitCode::from(exit::ERROR));
            }
            outln!(
                "{}: OK (node {}, store {}, {} realm(s), {} RADIUS client(s))",
                path.display(),
                c.node,
                c.store.database.redacted(),
                c.directory.realms().len(),
                c.radius.as_ref().map_or(0, |r| r.clients.len())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(exit::ERROR))
        }
    }
}

async fn init(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = config::load(path)?;
    let key_existed = config.key_file.exists();
    let opened = daemon::open(&config, KeyMode::CreateIfFresh).await?;
    if opened.created_key {
        outln!("created key file {} (mode 0600)", config.key_file.display());
    } else if key_existed {
        outln!("key file {} exists; kept", config.key_file.display());
    }
    outln!(
        "token store ready: {} (schema up to date)",
        config.store.database.redacted()
    );
    opened.close().await;
    Ok(ExitCode::SUCCESS)
}

fn hash_password(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    let settings = config::load(path).map(|c| c.argon2).unwrap_or_default();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = crate::secret::Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if password.expose().is_empty() {
        anyhow::bail!("empty password");
    }
    let hasher = crate::crypto::PinHasher::new(settings);
    outln!("{}", hasher.hash_blocking(password.expose())?);
    Ok(ExitCode::SUCCESS)
}

/// Load the configuration and open the installation for an admin command.
pub(crate) async fn open_admin(path: &std::path::Path) -> anyhow::Result<daemon::Opened> {
    let config = config::load(path)?;
    Ok(daemon::open(&config, KeyMode::MustExist).await?)
}

/// Write a command's output. A closed pipe ends the process with success, as `head` expects of
/// the command before it; any other failure to write (a full disk behind a redirect) ends it
/// with an error, instead of a panic either way.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("otpgate: cannot write the output: {e}");
        std::process::exit(i32::from(exit::ERROR));
    }
}
