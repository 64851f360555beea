//! `otpgate audit list|explain`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Local, TimeZone, Utc};
use clap::Subcommand;

use crate::auth::Trace;
use crate::store::audit::{AuditFilter, AuditRow};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Newest rows first.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        realm: Option<String>,
        #[arg(long)]
        serial: Option<String>,
        /// Event name, e.g. validate_check or token_init.
        #[arg(long)]
        event: Option<String>,
        /// A date, or a duration back from now (`30m`, `2h`, `7d`). On SQLite a row written
        /// more than an hour after rows with later times (the clock set back) is not listed.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Print one row with its decision trace.
    Explain {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn local(us: i64) -> String {
    Utc.timestamp_micros(us)
        .single()
        .map(|t: DateTime<Utc>| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<i64> {
    if let Some(d) = crate::dates::parse_duration(text) {
        return Ok((now - d).timestamp_micros());
    }
    crate::dates::parse(text)
        .map(|s| s.as_local_utc().timestamp_micros())
        .with_context(|| format!("--since {text:?}: neither a date nor a duration like 2h"))
}

pub(super) async fn run(config: &Path, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let opened = super::open_admin(config).await?;
    let store = opened.store.clone();
    let now = opened.auth.now();
    let result = async {
        match cmd {
            AuditCommand::List {
                user,
                realm,
                serial,
                event,
                since,
                limit,
                json,
            } => {
                let filter = AuditFilter {
                    user,
                    realm,
                    serial,
                    event,
                    since_us: since.as_deref().map(|s| parse_since(s, now)).transpose()?,
                    limit,
                };
                let mut rows = store.list_audit(&filter).await?;
                if json {
                    for r in &mut rows {
                        r.trace.clear();
                    }
                    outln!("{}", serde_json::to_string_pretty(&rows)?);
                    return Ok(ExitCode::SUCCESS);
                }
                outln!(
                    "{:>6}  {:<19}  {:<22} {:<20} {:<16} {:<9} {:>8}  info",
                    "id",
                    "time",
                    "event",
                    "user",
                    "serial",
                    "result",
                    "ms"
                );
                for r in &rows {
                    outln!(
                        "{:>6}  {:<19}  {:<22} {:<20} {:<16} {:<9} {:>8.2}  {}",
                        r.id.unwrap_or_default(),
                        local(r.time_us),
                        r.event,
                        user_at(r),
                        r.serial,
                        result(r),
                        r.duration_us as f64 / 1000.0,
                        r.info
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Explain { id, json } => {
                let row = store
                    .audit_by_id(id)
                    .await?
                    .with_context(|| format!("no audit row {id}"))?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&row)?);
                } else {
                    out!("{}", explain(&row));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
    .await;
    opened.close().await;
    result
}

fn user_at(r: &AuditRow) -> String {
    match (r.user.is_empty(), r.realm.is_empty()) {
        (true, _) => String::new(),
        (false, true) => r.user.clone(),
        (false, false) => format!("{}@{}", r.user, r.realm),
    }
}

fn result(r: &AuditRow) -> String {
    if r.authentication.is_empty() {
        if r.success { "ok" } else { "failed" }.into()
    } else {
        r.authentication.clone()
    }
}

/// A readable account of one request.
pub(super) fn explain(r: &AuditRow) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "audit #{} at {} on node {}\n",
        r.id.unwrap_or_default(),
        local(r.time_us),
        r.node
    ));
    out.push_str(&format!("event:    {} (via {})\n", r.event, r.origin));
    out.push_str(&format!(
        "user:     {}{}\n",
        user_at(r),
        if r.resolver.is_empty() {
            String::new()
        } else {
            format!(" (resolver {})", r.resolver)
        }
    ));
    out.push_str(&format!("client:   {}\n", r.client));
    out.push_str(&format!("serial:   {} {}\n", r.serial, r.token_type));
    out.push_str(&format!(
        "result:   {} ({})\n",
        result(r),
        if r.success { "success" } else { "no success" }
    ));
    out.push_str(&format!("message:  {}\n", r.info));
    if !r.policies.is_empty() {
        out.push_str(&format!("policies: {}\n", r.policies));
    }
    if !r.action_detail.is_empty() {
        out.push_str(&format!("detail:   {}\n", r.action_detail));
    }
    out.push_str(&format!(
        "duration: {:.3} ms\n",
        r.duration_us as f64 / 1000.0
    ));
    out.push_str("decision trace:\n");
    out.push_str(&Trace::render(&r.trace));
    out
}
