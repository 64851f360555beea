//! `otpgate event list|show|test|counters`.
//!
//! `test` evaluates every definition for a request and an assumed answer, printing which ones
//! would run and the condition that stops each of the others. It authenticates nothing, runs no
//! action and writes nothing.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, json};

use crate::auth::{Authentication, Request, Response};
use crate::event::Definition;

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// The definitions in run order.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One definition with its conditions and options.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Which definitions would run for a request and an answer (nothing is executed).
    Test(Box<TestArgs>),
    /// The Counter handler's counters, summed over all nodes.
    Counters {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The event (validate_check, token_init, token_locked …).
    #[arg(long, default_value = "validate_check")]
    event: String,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    realm: Option<String>,
    #[arg(long)]
    serial: Option<String>,
    #[arg(long = "transaction-id")]
    transaction_id: Option<String>,
    #[arg(long)]
    client: Option<IpAddr>,
    /// The answer POST definitions see: ACCEPT, REJECT, CHALLENGE or ERROR.
    #[arg(long, default_value = "REJECT")]
    result: String,
    /// `detail.message` of the answer.
    #[arg(long, default_value = "")]
    message: String,
    /// Extra request parameters, `name=value` (e.g. NAS-Identifier=vpn1).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Instead of one request: the last N audited authentications (validate_check), and per
    /// definition on how many of them, and which, it would have run.
    #[arg(long, value_name = "N", conflicts_with_all = ["user", "realm", "serial", "transaction_id", "client", "params"])]
    replay: Option<i64>,
    #[arg(long)]
    json: bool,
}

fn summary(d: &Definition) -> serde_json::Value {
    json!({
        "name": d.name,
        "active": d.active,
        "ordering": d.ordering,
        "position": d.position.as_str(),
        "event": d.events,
        "handler": d.module.as_str(),
        "action": d.action_name,
        "conditions": d.conditions.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "options": d.options,
        "abort_on_error": d.abort_on_error,
        "skip_unknown": d.skip_unknown,
    })
}

fn answer(args: &TestArgs) -> anyhow::Result<Response> {
    let mut detail = Map::new();
    if !args.message.is_empty() {
        detail.insert("message".into(), json!(args.message));
    }
    if let Some(s) = &args.serial {
        detail.insert("serial".into(), json!(s));
    }
    Ok(match args.result.to_ascii_uppercase().as_str() {
        "ACCEPT" => Response::decided(true, Authentication::Accept, detail),
        "REJECT" => Response::decided(false, Authentication::Reject, detail),
        "CHALLENGE" => Response::decided(false, Authentication::Challenge, detail),
        "ERROR" => Response::error(400, crate::auth::response::codes::PARAMETER, &args.message),
        other => anyhow::bail!("--result {other:?}: use ACCEPT, REJECT, CHALLENGE or ERROR"),
    })
}

pub(super) async fn run(config: &Path, cmd: EventCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EventCommand::List { json } => {
            let c = crate::config::load(config)?;
            let all = c.events.all();
            if json {
                let list: Vec<_> = all.iter().map(|d| summary(d)).collect();
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if all.is_empty() {
                outln!("no event definitions");
            } else {
                outln!(
                    "{:<4} {:<24} {:<6} {:<5} {:<30} {:<34} conditions",
                    "ord",
                    "name",
                    "active",
                    "pos",
                    "events",
                    "handler:action"
                );
                for d in all {
                    outln!(
                        "{:<4} {:<24} {:<6} {:<5} {:<30} {:<34} {}",
                        d.ordering,
                        d.name,
                        if d.active { "yes" } else { "no" },
                        d.position.as_str(),
                        d.events.join(","),
                        d.label(),
                        d.conditions
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::Show { name, json } => {
            let c = crate::config::load(config)?;
            let Some(d) = c.events.all().iter().find(|d| d.name == name) else {
                anyhow::bail!("no event definition named {name:?}");
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&summary(d))?);
            } else {
                outln!("name:           {}", d.name);
                outln!("active:         {}", d.active);
                outln!("events:         {}", d.events.join(", "));
                outln!("position:       {}", d.position.as_str());
                outln!("ordering:       {}", d.ordering);
                outln!("handler:        {}", d.label());
                outln!("abort_on_error: {}", d.abort_on_error);
                outln!("skip_unknown:   {}", d.skip_unknown);
                outln!("conditions:");
                for c in &d.conditions {
                    outln!("  {c:?}");
                }
                outln!("options:");
                for (k, v) in &d.options {
                    outln!("  {k} = {v:?}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::Counters { json } => {
            let opened = super::open_admin(config).await?;
            let counters = opened.auth.store().counters().await;
            opened.close().await;
            let counters = counters?;
            if json {
                let map: Map<String, serde_json::Value> =
                    counters.into_iter().map(|(k, v)| (k, json!(v))).collect();
                outln!("{}", serde_json::to_string_pretty(&map)?);
            } else if counters.is_empty() {
                outln!("no counters");
            } else {
                for (name, value) in counters {
                    outln!("{name:<32} {value}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::Test(args) if args.replay.is_some() => {
            replay(config, args.replay.unwrap_or(1), args.json).await
        }
        EventCommand::Test(args) => {
            let response = answer(&args)?;
            let opened = super::open_admin(config).await?;
            let mut request = Request {
                user: args.user.clone(),
                realm: args.realm.clone(),
                serial: args.serial.clone(),
                transaction_id: args.transaction_id.clone(),
                client: args.client,
                ..Request::empty()
            };
            for p in &args.params {
                let Some((k, v)) = p.split_once('=') else {
                    anyhow::bail!("--param {p:?}: use name=value");
                };
                request.set_param(k.trim(), v.trim());
            }
            let policies = opened.auth.matching_policies(&request).await;
            let reports = opened
                .auth
                .event_test(&args.event, &request, Some(&response))
                .await;
            opened.close().await;
            let reports = reports?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&reports)?);
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "matching policies: {}",
                if policies.is_empty() {
                    "none".to_owned()
                } else {
                    policies.join(", ")
                }
            );
            outln!(
                "event {}, answer {} {:?}:",
                args.event,
                args.result,
                args.message
            );
            for r in &reports {
                let state = match (r.listens, r.active, r.holds) {
                    (false, _, _) => "does not listen to this event".to_owned(),
                    (true, false, _) => "inactive".to_owned(),
                    (true, true, true) => "WOULD RUN".to_owned(),
                    (true, true, false) => {
                        let (name, why) = r
                            .checks
                            .last()
                            .cloned()
                            .unwrap_or_else(|| ("?".into(), String::new()));
                        format!("not run: {name} {why}")
                    }
                };
                outln!(
                    "  {:<4} {:<24} {:<34} {}",
                    r.position,
                    r.name,
                    r.handler,
                    state
                );
                if r.holds {
                    for (name, outcome) in &r.checks {
                        outln!("         {name}: {outcome}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn replay(config: &Path, n: i64, json: bool) -> anyhow::Result<ExitCode> {
    if !(1..=100_000).contains(&n) {
        anyhow::bail!("--replay {n}: give 1 to 100000 requests");
    }
    let opened = super::open_admin(config).await?;
    let replay = opened.auth.event_replay(n).await;
    opened.close().await;
    let replay = replay?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&replay)?);
        return Ok(ExitCode::SUCCESS);
    }
    let when = |us: Option<i64>| us.map(super::audit::local).unwrap_or_default();
    outln!(
        "replayed {} audited authentication(s), {} … {}; token and counter conditions read \
         today's state",
        replay.requests,
        when(replay.oldest_us),
        when(replay.newest_us)
    );
    if replay.definitions.is_empty() {
        outln!("no definition listens to validate_check");
    }
    for d in &replay.definitions {
        let ids: Vec<String> = d.audit_ids.iter().map(ToString::to_string).collect();
        outln!(
            "  {:<4} {:<24} {:<34} {:>6} of {}{}{}",
            d.position,
            d.name,
            d.handler,
            d.fired,
            replay.requests,
            if d.active { "" } else { " (inactive)" },
            if ids.is_empty() {
                String::new()
            } else {
                format!(
                    "  audit {}{}",
                    ids.join(", "),
                    if d.fired > ids.len() { ", …" } else { "" }
                )
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
