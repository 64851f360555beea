//! `otpgate token …`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::admin::manage::{EnrollSpec, TokenSetting, TokenView};
use crate::auth::Origin;
use crate::secret::Secret;
use crate::store::tokens::TokenFilter;
use crate::token::enroll::{parse_base32_key, parse_hex_key, qr_terminal};
use crate::token::{HashLib, TokenType};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (prints the otpauth:// URI and a QR code once).
    Enroll(EnrollArgs),
    /// List tokens.
    List(ListArgs),
    /// Show one token with its tokeninfo.
    Show {
        serial: String,
        #[arg(long)]
        json: bool,
    },
    Enable {
        serial: String,
    },
    Disable {
        serial: String,
    },
    /// Disable for good.
    Revoke {
        serial: String,
    },
    Delete {
        serial: String,
    },
    Assign {
        serial: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        realm: Option<String>,
    },
    /// Remove the owner (also clears PIN and failcount).
    Unassign {
        serial: String,
    },
    /// Set the token PIN (an empty PIN removes it).
    SetPin {
        serial: String,
        #[arg(long, env = "OTPGATE_PIN", hide_env_values = true)]
        pin: String,
        /// Store the PIN encrypted with the key file instead of hashed: needed for CHAP and
        /// MS-CHAP logins, at the cost that the key file opens it (docs/radius-methods.md).
        #[arg(long = "encrypt-pin")]
        encrypt_pin: bool,
    },
    /// Reset the failcounter.
    Reset {
        serial: String,
    },
    /// Change token settings and tokeninfo.
    Set(SetArgs),
    /// Resync with two consecutive OTPs.
    Resync {
        serial: String,
        otp1: String,
        otp2: String,
    },
    /// Load token seeds from an OATH CSV or PSKC (RFC 6030) file, in one transaction.
    Import(ImportArgs),
    /// Set the realms a token belongs to (an owner's realm always stays).
    Realms {
        serial: String,
        #[arg(required = true)]
        realms: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    file: std::path::PathBuf,
    /// `csv` or `pskc` (default: by the file's first character, `<` = PSKC).
    #[arg(long)]
    format: Option<String>,
    /// PSKC pre-shared key, hex (or `--psk-file`).
    #[arg(long, env = "OTPGATE_PSKC_KEY", hide_env_values = true)]
    psk: Option<String>,
    #[arg(long = "psk-file")]
    psk_file: Option<std::path::PathBuf>,
    /// PSKC password, when the file's key is derived from one (PBKDF2; or `--password-file`).
    #[arg(long, env = "OTPGATE_PSKC_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[arg(long = "password-file")]
    password_file: Option<std::path::PathBuf>,
    /// Realm for users named without one, and added to every imported token.
    #[arg(long)]
    realm: Option<String>,
    /// Give every imported token this PIN (each gets its own argon2 hash).
    #[arg(long, env = "OTPGATE_PIN", hide_env_values = true)]
    pin: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// hotp, totp, spass, email or sms.
    #[arg(long = "type", default_value = "hotp")]
    kind: String,
    #[arg(long)]
    serial: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    realm: Option<String>,
    #[arg(long, env = "OTPGATE_PIN", hide_env_values = true)]
    pin: Option<String>,
    /// Store the PIN encrypted with the key file instead of hashed: needed for CHAP and
    /// MS-CHAP logins (docs/radius-methods.md).
    #[arg(long = "encrypt-pin", requires = "pin")]
    encrypt_pin: bool,
    /// The key as hex (default: 20 random bytes).
    #[arg(long, conflicts_with = "key_base32")]
    key: Option<String>,
    /// The key as base32.
    #[arg(long = "key-base32")]
    key_base32: Option<String>,
    #[arg(long)]
    otplen: Option<i64>,
    /// sha1, sha256 or sha512.
    #[arg(long)]
    hashlib: Option<String>,
    /// TOTP seconds per step.
    #[arg(long)]
    timestep: Option<i64>,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long = "count-window")]
    count_window: Option<i64>,
    #[arg(long)]
    maxfail: Option<i64>,
    /// Email tokens: the address (default: the user's email).
    #[arg(long)]
    email: Option<String>,
    /// SMS tokens: the number (default: the user's mobile).
    #[arg(long)]
    phone: Option<String>,
    /// Email tokens: read the user's address at every login.
    #[arg(long = "dynamic-email")]
    dynamic_email: bool,
    /// SMS tokens: read the user's number at every login.
    #[arg(long = "dynamic-phone")]
    dynamic_phone: bool,
    /// Tokeninfo `key=value` (repeatable).
    #[arg(long = "info", value_parser = parse_kv)]
    info: Vec<(String, String)>,
    #[arg(long = "no-qr")]
    no_qr: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    realm: Option<String>,
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(long = "serial-prefix")]
    serial_prefix: Option<String>,
    #[arg(long)]
    limit: Option<i64>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    serial: String,
    #[arg(long)]
    failcount: Option<i64>,
    #[arg(long)]
    maxfail: Option<i64>,
    #[arg(long = "count-window")]
    count_window: Option<i64>,
    #[arg(long)]
    otplen: Option<i64>,
    #[arg(long)]
    description: Option<String>,
    /// A date, `+N[mhd]` from now, or "" to clear.
    #[arg(long = "valid-from")]
    valid_from: Option<String>,
    #[arg(long = "valid-till")]
    valid_till: Option<String>,
    /// Tokeninfo `key=value` (repeatable).
    #[arg(long = "info", value_parser = parse_kv)]
    info: Vec<(String, String)>,
    #[arg(long)]
    hashlib: Option<String>,
    #[arg(long)]
    timestep: Option<i64>,
    #[arg(long)]
    timewindow: Option<i64>,
    #[arg(long = "count-auth-max")]
    count_auth_max: Option<i64>,
    #[arg(long = "count-auth-success-max")]
    count_auth_success_max: Option<i64>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

fn parse_kind(s: &str) -> anyhow::Result<TokenType> {
    TokenType::parse(s)
        .with_context(|| format!("unknown token type {s:?} (known: hotp, totp, spass, email, sms)"))
}

fn parse_hashlib(s: &str) -> anyhow::Result<HashLib> {
    HashLib::parse(s).with_context(|| format!("unknown hashlib {s:?} (sha1, sha256, sha512)"))
}

pub(super) async fn run(config: &Path, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    // Parse everything that can be wrong before touching the store.
    if let TokenCommand::Enroll(args) = &cmd {
        parse_kind(&args.kind)?;
        if let Some(h) = &args.hashlib {
            parse_hashlib(h)?;
        }
    }
    let opened = super::open_admin(config).await?;
    let auth = opened.auth.clone();
    let o = Origin::Cli;
    let result = async {
        match cmd {
            TokenCommand::Enroll(args) => enroll(&auth, args).await,
            TokenCommand::List(args) => list(&auth, args).await,
            TokenCommand::Show { serial, json } => {
                let view = auth.token_view(&serial).await?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&view)?);
                } else {
                    print_view(&view);
                }
                Ok(())
            }
            TokenCommand::Enable { serial } => {
                auth.token_enable(&serial, true, o).await?;
                outln!("{serial}: enabled");
                Ok(())
            }
            TokenCommand::Disable { serial } => {
                auth.token_enable(&serial, false, o).await?;
                outln!("{serial}: disabled");
                Ok(())
            }
            TokenCommand::Revoke { serial } => {
                auth.token_revoke(&serial, o).await?;
                outln!("{serial}: revoked");
                Ok(())
            }
            TokenCommand::Delete { serial } => {
                auth.token_delete(&serial, o).await?;
                outln!("{serial}: deleted");
                Ok(())
            }
            TokenCommand::Assign {
                serial,
                user,
                realm,
            } => {
                let owner = auth
                    .token_assign(&serial, &user, realm.as_deref(), o)
                    .await?;
                outln!("{serial}: assigned to {owner}");
                Ok(())
            }
            TokenCommand::Unassign { serial } => {
                auth.token_unassign(&serial, o).await?;
                outln!("{serial}: unassigned");
                Ok(())
            }
            TokenCommand::SetPin {
                serial,
                pin,
                encrypt_pin,
            } => {
                auth.token_set_pin(&serial, &Secret::new(pin), encrypt_pin, o)
                    .await?;
                outln!("{serial}: PIN set");
                Ok(())
            }
            TokenCommand::Reset { serial } => {
                let was_locked = auth.token_reset(&serial, o).await?;
                outln!(
                    "{serial}: failcounter reset{}",
                    if was_locked {
                        " (token was locked)"
                    } else {
                        ""
                    }
                );
                Ok(())
            }
            TokenCommand::Set(args) => set(&auth, args).await,
            TokenCommand::Resync { serial, otp1, otp2 } => {
                auth.token_resync(&serial, &otp1, &otp2, o).await?;
                outln!("{serial}: resynced");
                Ok(())
            }
            TokenCommand::Import(args) => import(&auth, args).await,
            TokenCommand::Realms { serial, realms } => {
                let set = auth.token_realms(&serial, &realms, o).await?;
                outln!("{serial}: realms {}", set.join(", "));
                Ok(())
            }
        }
    }
    .await;
    drop(auth);
    opened.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn enroll(auth: &crate::auth::Authenticator, a: EnrollArgs) -> anyhow::Result<()> {
    let kind = parse_kind(&a.kind)?;
    let key = match (&a.key, &a.key_base32) {
        (Some(hex), _) => Some(parse_hex_key(hex)?),
        (None, Some(b32)) => Some(parse_base32_key(b32)?),
        (None, None) => None,
    };
    if key.is_some() && !kind.has_key() {
        bail!("{kind} tokens have no key");
    }
    let spec = EnrollSpec {
        kind: Some(kind),
        serial: a.serial,
        key,
        key_len: None,
        otplen: a.otplen,
        hashlib: a.hashlib.as_deref().map(parse_hashlib).transpose()?,
        time_step: a.timestep,
        pin: a.pin.map(Secret::new),
        encrypt_pin: a.encrypt_pin,
        user: a.user,
        realm: a.realm,
        description: a.description,
        count_window: a.count_window,
        maxfail: a.maxfail,
        info: a.info.into_iter().collect(),
        email: a.email,
        phone: a.phone,
        dynamic_email: a.dynamic_email,
        dynamic_phone: a.dynamic_phone,
    };
    let enrolled = auth.enroll(spec, Origin::Cli).await?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "serial": enrolled.serial,
                "type": enrolled.kind.as_str(),
                "user": enrolled.owner.as_ref().map(|o| o.login.clone()),
                "realm": enrolled.owner.as_ref().map(|o| o.realm.clone()),
                "otpkey": enrolled.key.as_ref().map(|k| data_encoding::HEXLOWER.encode(k.expose())),
                "otpauth_uri": enrolled.uri.as_ref().map(|u| u.expose().clone()),
            }))?
        );
        return Ok(());
    }
    outln!("enrolled {} token {}", enrolled.kind, enrolled.serial);
    if let Some(owner) = &enrolled.owner {
        outln!("assigned to {owner}");
    }
    if let Some(key) = &enrolled.key {
        outln!(
            "key (hex):    {}",
            data_encoding::HEXLOWER.encode(key.expose())
        );
        outln!(
            "key (base32): {}",
            data_encoding::BASE32_NOPAD.encode(key.expose())
        );
    }
    if let Some(uri) = &enrolled.uri {
        outln!("{}", uri.expose());
        if !a.no_qr {
            outln!("{}", qr_terminal(uri.expose())?);
        }
    }
    Ok(())
}

async fn list(auth: &crate::auth::Authenticator, a: ListArgs) -> anyhow::Result<()> {
    let owner = match &a.user {
        Some(u) => {
            let cfg = auth.config();
            let (login, realm) = cfg.directory.split_user(u, a.realm.as_deref());
            Some((realm, login))
        }
        None => None,
    };
    let filter = TokenFilter {
        realm: if owner.is_none() {
            a.realm.clone().map(|r| r.to_ascii_lowercase())
        } else {
            None
        },
        owner,
        kind: a.kind.as_deref().map(parse_kind).transpose()?,
        serial_prefix: a.serial_prefix,
        limit: a.limit,
        ..Default::default()
    };
    let tokens = auth.token_list(&filter).await?;
    if a.json {
        let views: Vec<TokenView> = tokens
            .iter()
            .map(|t| TokenView::new(t, Vec::new()))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    outln!(
        "{:<16} {:<6} {:<24} {:<7} {:>5} {:>7} {:>8}  description",
        "serial",
        "type",
        "user",
        "active",
        "fail",
        "maxfail",
        "counter"
    );
    for t in &tokens {
        outln!(
            "{:<16} {:<6} {:<24} {:<7} {:>5} {:>7} {:>8}  {}",
            t.serial,
            t.kind.as_str(),
            t.owner.as_ref().map(|o| o.to_string()).unwrap_or_default(),
            if t.revoked {
                "revoked"
            } else if t.active {
                "yes"
            } else {
                "no"
            },
            t.failcount,
            t.maxfail,
            t.otp_counter,
            t.description
        );
    }
    outln!("{} token(s)", tokens.len());
    Ok(())
}

fn print_view(v: &TokenView) {
    outln!("serial:        {}", v.serial);
    outln!("type:          {}", v.kind);
    outln!("description:   {}", v.description);
    match (&v.user, &v.realm) {
        (Some(u), Some(r)) => outln!(
            "user:          {u}@{r} (resolver {})",
            v.resolver.as_deref().unwrap_or("")
        ),
        _ => outln!("user:          (unassigned)"),
    }
    outln!(
        "state:         {}{}{}",
        if v.active { "active" } else { "disabled" },
        if v.revoked { ", revoked" } else { "" },
        if v.locked {
            ", locked (failcount reached maxfail)"
        } else {
            ""
        }
    );
    outln!("failcount:     {} / maxfail {}", v.failcount, v.maxfail);
    outln!(
        "counter:       {} (count window {})",
        v.count,
        v.count_window
    );
    outln!("otplen:        {}", v.otplen);
    outln!("pin:           {}", if v.has_pin { "set" } else { "none" });
    outln!("realms:        {}", v.realms.join(", "));
    if !v.groups.is_empty() {
        outln!("groups:        {}", v.groups.join(", "));
    }
    outln!("tokeninfo:");
    for (k, val) in &v.info {
        outln!("  {k} = {val}");
    }
}

async fn set(auth: &crate::auth::Authenticator, a: SetArgs) -> anyhow::Result<()> {
    let mut s = Vec::new();
    if let Some(v) = a.failcount {
        s.push(TokenSetting::Failcount(v));
    }
    if let Some(v) = a.maxfail {
        s.push(TokenSetting::Maxfail(v));
    }
    if let Some(v) = a.count_window {
        s.push(TokenSetting::CountWindow(v));
    }
    if let Some(v) = a.otplen {
        s.push(TokenSetting::Otplen(v));
    }
    if let Some(v) = a.description {
        s.push(TokenSetting::Description(v));
    }
    if let Some(v) = a.valid_from {
        s.push(TokenSetting::ValidityStart(v));
    }
    if let Some(v) = a.valid_till {
        s.push(TokenSetting::ValidityEnd(v));
    }
    for (k, v) in a.info {
        s.push(TokenSetting::TokenInfo(k, v));
    }
    if let Some(v) = a.hashlib {
        s.push(TokenSetting::Hashlib(parse_hashlib(&v)?));
    }
    if let Some(v) = a.timestep {
        s.push(TokenSetting::TimeStep(v));
    }
    if let Some(v) = a.timewindow {
        s.push(TokenSetting::TimeWindow(v));
    }
    if let Some(v) = a.count_auth_max {
        s.push(TokenSetting::CountAuthMax(v));
    }
    if let Some(v) = a.count_auth_success_max {
        s.push(TokenSetting::CountAuthSuccessMax(v));
    }
    if s.is_empty() {
        bail!("nothing to set; see `otpgate token set --help`");
    }
    auth.token_set(&a.serial, &s, Origin::Cli).await?;
    outln!("{}: {} setting(s) changed", a.serial, s.len());
    Ok(())
}

async fn import(auth: &crate::auth::Authenticator, a: ImportArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let started = std::time::Instant::now();
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let pskc = match a.format.as_deref() {
        Some("pskc") => true,
        Some("csv") => false,
        None => text.trim_start().starts_with('<'),
        Some(other) => anyhow::bail!("--format {other:?}: csv or pskc"),
    };
    let psk = match (&a.psk, &a.psk_file) {
        (Some(h), _) => Some(h.trim().to_owned()),
        (None, Some(f)) => Some(std::fs::read_to_string(f)?.trim().to_owned()),
        (None, None) => None,
    }
    .map(|h| {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(h.as_bytes())
            .map_err(|e| anyhow::anyhow!("the pre-shared key is not hex: {e}"))
    })
    .transpose()?;
    let password = match (&a.password, &a.password_file) {
        (Some(p), _) => Some(p.clone()),
        // one line: the newline an editor adds is not part of the password
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("{}", f.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    let tokens = if pskc {
        let keys = crate::token::import::PskcKeys {
            psk: psk.as_deref(),
            password: password.as_deref(),
        };
        crate::token::import::parse_pskc(&text, keys)?
    } else {
        crate::token::import::parse_oath_csv(&text)?
    };
    let parsed = tokens.len();
    let serials: Vec<String> = tokens.iter().map(|t| t.serial.clone()).collect();
    let report = auth
        .token_load(tokens, a.realm.as_deref(), Origin::Cli)
        .await?;
    if let Some(pin) = &a.pin {
        // one hash per token, computed in parallel within the hasher's concurrency cap
        let mut pending = futures_util::stream::FuturesUnordered::new();
        for s in &serials {
            let pin = Secret::new(pin.clone());
            pending.push(async move { auth.token_set_pin(s, &pin, false, Origin::Cli).await });
        }
        use futures_util::StreamExt;
        while let Some(r) = pending.next().await {
            r?;
        }
    }
    outln!(
        "imported {} of {parsed} token(s) ({} assigned{}) in {:.1} s",
        report.imported,
        report.assigned,
        if a.pin.is_some() { ", PIN set" } else { "" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
