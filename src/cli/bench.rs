//! `otpgate bench`: the load generator (see `crate::bench`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::bench::{self, Mode, Plan};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The RADIUS server.
    #[arg(long, default_value = "127.0.0.1:1812")]
    server: String,
    #[arg(long, env = "OTPGATE_RADIUS_SECRET", hide_env_values = true)]
    secret: String,
    /// The OATH CSV the server imported (serial, key, type, digits, counter, user).
    #[arg(long)]
    tokens: PathBuf,
    /// Use only the first N users of the file.
    #[arg(long)]
    users: Option<usize>,
    /// The token PIN sent before each OTP.
    #[arg(long, default_value = "")]
    pin: String,
    /// Appended to each user name, e.g. `@bench`.
    #[arg(long, default_value = "")]
    suffix: String,
    /// How the password travels: pap, chap or mschapv2.
    #[arg(long, value_enum, default_value = "pap")]
    method: crate::radius::client::Method,
    /// Send the OTP this many counters ahead of the token's, so the server searches that far
    /// into its window (9 with the default window of 10: the last candidate).
    #[arg(long, default_value_t = 0)]
    otp_offset: u64,
    /// Closed loop: this many requests outstanding.
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open loop: this many requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Milliseconds before a request counts as lost.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// The server's pid, for its CPU time per request and its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write every answered request's scheduled send time and latency (CSV, microseconds)
    /// here, to see whether slow answers come in clusters (stalls) or spread out (queueing).
    #[arg(long)]
    timeline: Option<PathBuf>,
}

pub(super) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(&args.tokens).with_context(|| args.tokens.display().to_string())?;
    let tokens = crate::token::import::parse_oath_csv(&text)?;
    let mut users = bench::users_from(&tokens).map_err(anyhow::Error::msg)?;
    if let Some(n) = args.users {
        users.truncate(n.max(1));
    }
    let server = {
        use std::net::ToSocketAddrs;
        args.server
            .to_socket_addrs()?
            .next()
            .context("no server address")?
    };
    let mode = match (args.concurrency, args.rate) {
        (_, Some(r)) => Mode::Open(r),
        (Some(n), None) => Mode::Closed(n),
        (None, None) => Mode::Closed(32),
    };
    let nusers = users.len();
    let report = bench::run(
        Plan {
            server,
            secret: args.secret.into_bytes(),
            mode,
            warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
            duration: Duration::from_secs_f64(args.duration.max(0.1)),
            timeout: Duration::from_millis(args.timeout_ms.max(1)),
            pin: args.pin,
            suffix: args.suffix,
            method: args.method,
            otp_offset: args.otp_offset,
            server_pid: args.server_pid,
        },
        users,
    )
    .await
    .context("the load generator")?;
    if let Some(path) = &args.timeline {
        let mut csv = String::from("scheduled_us,latency_us\n");
        for (at, latency) in &report.timeline {
            let _ = writeln!(csv, "{at},{latency}");
        }
        std::fs::write(path, csv).with_context(|| path.display().to_string())?;
    }
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!(
            "{} against {server}, {nusers} users, {:.0} s",
            report.mode,
            report.seconds
        );
        outln!(
            "  sent {}  accepted {}  rejected {}  lost {}",
            report.sent,
            report.accepted,
            report.rejected,
            report.lost
        );
        outln!("  accepted logins/s {:.0}", report.accepted_per_second);
        outln!(
            "  latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            report.p50_ms,
            report.p90_ms,
            report.p99_ms,
            report.max_ms
        );
        if let Some(c) = report.server_cpu_ms_per_login {
            outln!("  server CPU per accepted login {c:.4} ms");
        }
        if let (Some(r), Some(p)) = (report.server_rss_mib, report.server_peak_rss_mib) {
            outln!("  server RSS {r:.1} MiB (peak {p:.1} MiB)");
        }
        if let (Some(s), Some(g)) = (
            report.server_rss_start_mib,
            report.server_rss_growth_mib_per_min,
        ) {
            outln!("  server RSS after the warm-up {s:.1} MiB, growth {g:+.2} MiB per minute");
        }
    }
    Ok(ExitCode::SUCCESS)
}
