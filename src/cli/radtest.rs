//! `otpgate radtest`: send one Access-Request (or Status-Server) with our own RADIUS client and
//! print the verified reply with its attributes named through the dictionaries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::exit;
use crate::radius::attr;
use crate::radius::client::{self, AccessRequest, Reply};
use crate::radius::dictionary::Dictionary;
use crate::radius::packet::Code;
use crate::secret::Secret;

#[derive(Debug, Args)]
pub struct RadtestArgs {
    /// The server, `host:port` (default port 1812).
    #[arg(long, default_value = "127.0.0.1:1812")]
    server: String,
    /// The shared secret.
    #[arg(long, env = "OTPGATE_RADIUS_SECRET", hide_env_values = true)]
    secret: String,
    #[arg(long, required_unless_present = "status")]
    user: Option<String>,
    /// PIN and OTP, or the OTP alone when answering a challenge.
    #[arg(
        long,
        env = "OTPGATE_PASS",
        hide_env_values = true,
        required_unless_present = "status"
    )]
    password: Option<String>,
    /// The State of an Access-Challenge being answered.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    nas_identifier: Option<String>,
    /// Send Status-Server instead of an Access-Request.
    #[arg(long)]
    status: bool,
    /// Leave the Message-Authenticator out (to test a server's BlastRADIUS setting).
    #[arg(long)]
    no_message_authenticator: bool,
    /// How the password travels: pap, chap or mschapv2.
    #[arg(long, value_enum, default_value = "pap")]
    method: client::Method,
    /// Seconds to wait for each try.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    #[arg(long, default_value_t = 3)]
    tries: u32,
    /// Directory with the `dictionary` file used to name reply attributes (default: the
    /// configuration's, else numbers are printed).
    #[arg(long)]
    dictionaries: Option<PathBuf>,
}

fn server_addr(text: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let with_port = if text.parse::<SocketAddr>().is_ok() || text.rsplit_once(':').is_some() {
        text.to_owned()
    } else {
        format!("{text}:1812")
    };
    with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{text}: no address"))
}

fn dictionary(config: &Path, explicit: Option<&Path>) -> Option<Dictionary> {
    if let Some(dir) = explicit {
        return Dictionary::load(&dir.join("dictionary")).ok();
    }
    let c = crate::config::load(config).ok()?;
    c.radius.map(|r| (*r.dictionary).clone())
}

pub(super) async fn run(config: &Path, args: RadtestArgs) -> anyhow::Result<ExitCode> {
    let server = server_addr(&args.server)?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let secret = args.secret.as_bytes();
    let reply = if args.status {
        client::status(server, secret, timeout).await
    } else {
        let req = AccessRequest {
            user: args.user.clone().unwrap_or_default(),
            password: Secret::new(args.password.clone().unwrap_or_default()),
            state: args.state.as_ref().map(|s| s.as_bytes().to_vec()),
            nas_identifier: args.nas_identifier.clone(),
            extra: Vec::new(),
            message_authenticator: !args.no_message_authenticator,
            method: args.method,
        };
        client::authenticate(server, secret, &req, timeout, args.tries).await
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("otpgate radtest: {e}");
            return Ok(ExitCode::from(exit::ERROR));
        }
    };
    let dict = dictionary(config, args.dictionaries.as_deref());
    out!("{}", describe(&reply, server, dict.as_ref()));
    let code = match reply.code {
        Code::AccessAccept => exit::OK,
        Code::AccessChallenge => {
            if let Some(state) = reply.state() {
                outln!(
                    "answer the challenge with: otpgate radtest --server {} --user {} --state {} --password <OTP>",
                    args.server,
                    args.user.as_deref().unwrap_or(""),
                    String::from_utf8_lossy(&state)
                );
            }
            exit::CHALLENGE
        }
        Code::AccessReject => exit::REJECT,
        _ => exit::ERROR,
    };
    Ok(ExitCode::from(code))
}

/// The reply as text: code, round trip, then one line per attribute.
fn describe(reply: &Reply, server: SocketAddr, dict: Option<&Dictionary>) -> String {
    let mut out = format!(
        "{} from {server} in {:.1} ms\n",
        reply.code.name(),
        reply.rtt.as_secs_f64() * 1000.0
    );
    let Ok(packet) = reply.packet() else {
        return out;
    };
    for a in packet.attributes() {
        if a.kind == attr::VENDOR_SPECIFIC
            && let Some((vendor, subs)) = attr::vendor_attributes(a.value)
        {
            for sub in subs {
                let line = match dict.and_then(|d| d.by_code(Some(vendor), sub.kind)) {
                    Some(def) => format!("{} = {}", def.name, Dictionary::format(def, sub.value)),
                    None => format!(
                        "Vendor-{vendor}-Attr-{} = 0x{}",
                        sub.kind,
                        data_encoding::HEXLOWER.encode(sub.value)
                    ),
                };
                out.push_str(&format!("  {line}\n"));
            }
            continue;
        }
        let line = match dict.and_then(|d| d.by_code(None, a.kind)) {
            Some(def) => format!("{} = {}", def.name, Dictionary::format(def, a.value)),
            None => format!(
                "Attr-{} = 0x{}",
                a.kind,
                data_encoding::HEXLOWER.encode(a.value)
            ),
        };
        out.push_str(&format!("  {line}\n"));
    }
    out
}
