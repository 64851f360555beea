//! `otpgate user list|show|check`: ask the configured resolvers directly, so an admin can see
//! what a directory configuration finds without a login attempt. Needs no token store.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::exit;
use crate::config;
use crate::users::{Directory, ResolvedUser};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Every user of a realm (default: the default realm), as its resolvers list them.
    List(ListArgs),
    /// One user: where it was found, its attributes and groups.
    Show(ShowArgs),
    /// Resolve a user and, with --password-stdin, check the directory password (a bind for
    /// LDAP). Exit 0 when found (and the password matches), 1 when not, 2 on error.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub realm: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// `login`, `login@realm` or `realm\login`.
    pub user: String,
    #[arg(long)]
    pub realm: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    pub user: String,
    #[arg(long)]
    pub realm: Option<String>,
    /// Read the password to check from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

pub(super) async fn run(path: &std::path::Path, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let cfg = config::load(path)?;
    let dir = &cfg.directory;
    match cmd {
        UserCommand::List(a) => {
            let Some(realm) = a.realm.or_else(|| dir.default_realm().map(str::to_owned)) else {
                anyhow::bail!("no realm given and no default realm");
            };
            if dir.realm(&realm).is_none() {
                anyhow::bail!("realm {realm:?} does not exist");
            }
            let users = dir.users_of_realm(&realm).await?;
            if a.json {
                let list: Vec<Value> = users.iter().map(describe).collect();
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for u in &users {
                    outln!(
                        "{}\t{}\t{}\t{}",
                        u.login,
                        u.resolver,
                        u.record.attribute("email").unwrap_or_default(),
                        [u.record.givenname(), u.record.surname()].join(" ").trim()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Show(a) => {
            let Some(u) = find(dir, &a.user, a.realm.as_deref()).await? else {
                return Ok(ExitCode::from(exit::REJECT));
            };
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&describe(&u))?);
            } else {
                print_user(&u);
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Check(a) => {
            let Some(u) = find(dir, &a.user, a.realm.as_deref()).await? else {
                return Ok(ExitCode::from(exit::REJECT));
            };
            print_user(&u);
            if !a.password_stdin {
                return Ok(ExitCode::SUCCESS);
            }
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password =
                crate::secret::Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
            if password.expose().is_empty() {
                outln!("password: refused (empty; never sent to a directory)");
                return Ok(ExitCode::from(exit::REJECT));
            }
            let hasher = crate::crypto::PinHasher::new(cfg.argon2);
            if dir.check_password(&u, password.expose(), &hasher).await? {
                outln!("password: matches");
                Ok(ExitCode::SUCCESS)
            } else {
                outln!("password: does not match");
                Ok(ExitCode::from(exit::REJECT))
            }
        }
    }
}

async fn find(
    dir: &Directory,
    user: &str,
    realm: Option<&str>,
) -> anyhow::Result<Option<ResolvedUser>> {
    let (login, realm) = dir.split_user(user, realm);
    let found = dir.find(&login, &realm).await?;
    if found.is_none() {
        eprintln!("user {login:?} not found in realm {realm:?}");
    }
    Ok(found)
}

fn describe(u: &ResolvedUser) -> Value {
    let r = &u.record;
    let mut attributes = serde_json::Map::new();
    for name in ["givenname", "surname", "email", "mobile", "phone"] {
        if let Some(v) = r.attribute(name) {
            attributes.insert(name.into(), v.into());
        }
    }
    json!({
        "login": u.login,
        "realm": u.realm,
        "resolver": u.resolver,
        "dn": r.dn().filter(|d| !d.is_empty()),
        "disabled": r.disabled(),
        "attributes": attributes,
        "free_attributes": r.free_attributes().collect::<std::collections::BTreeMap<_, _>>(),
        "groups": r.groups(),
    })
}

fn print_user(u: &ResolvedUser) {
    let d = describe(u);
    outln!("login:    {}", u.login);
    outln!("realm:    {} (resolver {})", u.realm, u.resolver);
    if let Some(dn) = u.record.dn().filter(|d| !d.is_empty()) {
        outln!("dn:       {dn}");
    }
    if u.record.disabled() {
        outln!("disabled: yes (logins are refused)");
    }
    if let Some(Value::Object(a)) = d.get("attributes") {
        for (k, v) in a {
            outln!("{k:<9} {}", v.as_str().unwrap_or(""));
        }
    }
    for (k, v) in u.record.free_attributes() {
        outln!("{k:<9} {}", v.join(", "));
    }
    for g in u.record.groups() {
        outln!("group:    {g}");
    }
}
