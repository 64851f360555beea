//! `otpgate import privacyidea`: tokens from a privacyIDEA database into the token store, its
//! realms, resolvers, policies and event definitions into a TOML file to review.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::message::Origin;
use crate::migrate::privacyidea::{self, PinPlan, Plan};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// From privacyIDEA 3.x: tokens (HOTP, TOTP, spass, email, SMS) with their state and
    /// PINs into the token store; realms, resolvers, policies and event definitions as TOML.
    Privacyidea(PiArgs),
}

#[derive(Debug, Args)]
pub struct PiArgs {
    /// privacyIDEA's database: its SQLALCHEMY_DATABASE_URI (`sqlite:////path`,
    /// `postgresql+psycopg2://…`, `mysql+pymysql://…`) or otpgate's form (`sqlite:/path`,
    /// `postgres://…`, `mysql://…`).
    #[arg(long, env = "OTPGATE_PI_DATABASE", hide_env_values = true)]
    database: String,
    /// privacyIDEA's encKey file (PI_ENCFILE, 96 bytes).
    #[arg(long)]
    enckey: PathBuf,
    /// Where the TOML sections go (default: privacyidea-import.toml beside the
    /// configuration file). Review it, then add it to the configuration.
    #[arg(long = "config-out")]
    config_out: Option<PathBuf>,
    /// Print what would be imported and what would not, and write nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
}

pub(super) async fn run(config: &Path, cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Privacyidea(a) = cmd;
    let text = std::fs::read_to_string(config).with_context(|| format!("{}", config.display()))?;
    let enckey = std::fs::read(&a.enckey).with_context(|| format!("{}", a.enckey.display()))?;
    let plan = privacyidea::prepare(&a.database, &enckey, config, &text).await?;
    let opened = super::open_admin(config).await?;
    let auth = opened.auth.clone();
    let result = async {
        let present = auth.present_serials(&plan.tokens).await?;
        print_plan(&plan, &present);
        if a.dry_run {
            outln!("dry run: nothing written");
            return Ok(());
        }
        let out = a.config_out.clone().unwrap_or_else(|| {
            config
                .parent()
                .unwrap_or(Path::new("."))
                .join("privacyidea-import.toml")
        });
        // the TOML is complete and valid before any token is stored; it lands after them
        let staged = staged_file(&out, &toml_file(&plan, &a.database))?;
        let Plan { tokens, .. } = plan;
        let report = match auth.token_load_privacyidea(tokens, Origin::Cli).await {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(e.into());
            }
        };
        std::fs::rename(&staged, &out).with_context(|| format!("{}", out.display()))?;
        outln!(
            "imported {} token(s) ({} present already, left as they are); PINs: {} argon2 \
             hashes kept, {} sealed again, {} to be set anew",
            report.imported,
            report.present.len(),
            report.pins_kept,
            report.pins_sealed,
            report.pins_reset
        );
        outln!(
            "wrote {}: review it, add it to {}, then `otpgate check-config`",
            out.display(),
            config.display()
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    drop(auth);
    opened.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

fn print_plan(plan: &Plan, present: &std::collections::HashSet<String>) {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &plan.tokens {
        *kinds.entry(t.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    outln!(
        "tokens: {} of {} importable ({}); {} present already",
        plan.tokens.len(),
        plan.source_tokens,
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        },
        plan.tokens
            .iter()
            .filter(|t| present.contains(&t.serial))
            .count()
    );
    let pins = |f: fn(&PinPlan) -> bool| plan.tokens.iter().filter(|t| f(&t.pin)).count();
    outln!(
        "PINs: {} argon2 hashes kept, {} encrypted PINs sealed again, {} to be set anew",
        pins(|p| matches!(p, PinPlan::Hash(_))),
        pins(|p| matches!(p, PinPlan::Sealed(_))),
        pins(|p| matches!(p, PinPlan::ResetRequired))
    );
    let s = &plan.sections;
    outln!(
        "configuration: {} resolver(s), {} realm(s), {} policy(ies), {} event definition(s)",
        s.resolver.len(),
        s.realm.len(),
        s.policy.len(),
        s.event.len()
    );
    for line in plan.notes.lines() {
        outln!("{line}");
    }
}

/// The file an admin reviews: where it came from, what was left out, the sections.
fn toml_file(plan: &Plan, database: &str) -> String {
    let mut out = format!(
        "# Imported from privacyIDEA ({}) by `otpgate import privacyidea`.\n\
         # Review, then add these sections to the configuration.\n",
        redact(database)
    );
    for line in plan.notes.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push('\n');
    out.push_str(&plan.sections.to_toml());
    out
}

/// A database address without its password.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (creds, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = creds.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Write `text` next to `out` (mode 0600: resolver passwords may be in it); renamed into
/// place once the tokens are stored.
fn staged_file(out: &Path, text: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let staged = out.with_extension("toml.partial");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("{}", staged.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}", staged.display()))?;
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgresql+psycopg2://pi:secret@db:5432/pi"),
            "postgresql+psycopg2://pi@db:5432/pi"
        );
        assert_eq!(redact("sqlite:////var/pi.db"), "sqlite:////var/pi.db");
    }
}
