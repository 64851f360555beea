//! `otpgate validate`: one authentication through the real pipeline.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::exit;
use crate::auth::{Decision, Origin, Request};
use crate::secret::Secret;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The user (`alice`, `alice@realm`, `realm\alice`).
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    realm: Option<String>,
    #[arg(long)]
    serial: Option<String>,
    /// PIN and OTP (or the OTP alone when answering a challenge).
    #[arg(long, env = "OTPGATE_PASS", hide_env_values = true)]
    pass: String,
    /// Answer to a challenge.
    #[arg(long = "transaction-id", alias = "state")]
    transaction_id: Option<String>,
    /// Restrict to one token type.
    #[arg(long = "type")]
    token_type: Option<String>,
    /// With --serial: check the OTP alone.
    #[arg(long)]
    otponly: bool,
    /// The client the request is about.
    #[arg(long)]
    client: Option<IpAddr>,
}

pub(super) async fn run(config: &Path, args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let opened = super::open_admin(config).await?;
    let request = Request {
        user: args.user,
        realm: args.realm,
        default_realm: None,
        serial: args.serial,
        pass: Secret::new(args.pass),
        transaction_id: args.transaction_id,
        token_type: args.token_type,
        otponly: args.otponly,
        client: args.client,
        origin: Origin::Cli,
        params: Default::default(),
        admin: None,
        proof: None,
    };
    let outcome = opened.auth.validate_check(request).await;
    outln!("{}", serde_json::to_string_pretty(&outcome.response.body)?);
    if !outcome.policies.is_empty() {
        eprintln!("matching policies: {}", outcome.policies.join(", "));
    }
    let code = match outcome.response.decision() {
        Decision::Accept => exit::OK,
        Decision::Reject => exit::REJECT,
        Decision::Challenge => exit::CHALLENGE,
        Decision::Error => exit::ERROR,
    };
    opened.close().await;
    Ok(ExitCode::from(code))
}
