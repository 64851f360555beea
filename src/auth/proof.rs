//! CHAP and MS-CHAP credentials: the client sent a response made from its password, not the
//! password. Each password a token would accept now (its PIN in clear, then each OTP of its
//! window) is handed to the front-end's [`Proof`]; the one that fits becomes the request's
//! password and the ordinary check runs on it, with its replay, failcounter and events.

use super::pin::OtpPin;
use super::verify;
use super::{Attempt, Proof};
use crate::secret::Secret;
use crate::token::{OtpGenerator, Token, TokenType};

/// How a token PIN stored encrypted instead of hashed begins (privacyIDEA's marker).
pub const SEALED_PIN: &str = "@@";

/// What the tokens' candidates said to a proof.
pub(crate) enum Resolved {
    /// The password the response was made from.
    Found(Secret<String>),
    /// No candidate fits: a wrong PIN or OTP, a failure like PAP's.
    Wrong,
    /// No token could be tried (PINs only hashed, `otppin = userstore`): not the user's
    /// fault, so no failure is counted. The reason is for the answer.
    Untestable(&'static str),
}

/// The password among `tokens`' candidates that the proof accepts; every token looked at
/// leaves a trace line. `otp_only`: a challenge answer, which carries no PIN.
pub(crate) fn resolve(
    at: &mut Attempt<'_>,
    tokens: &[(&Token, Option<&OtpGenerator>)],
    proof: &dyn Proof,
    otp_only: bool,
) -> Resolved {
    let prepend = at.cfg.system.prepend_pin;
    let (mut tried, mut why_not) = (false, None);
    for (token, generator) in tokens {
        let pin = if otp_only {
            Ok(Secret::default())
        } else {
            clear_pin(at, token)
        };
        let pin = match pin {
            Ok(pin) => pin,
            Err(why) => {
                at.trace
                    .add("token", format!("{} ({}): {why}", token.serial, token.kind));
                why_not = Some(why);
                continue;
            }
        };
        tried = true;
        // values are made one at a time: a match early in the window stops the HMACs
        let otps: Box<dyn Iterator<Item = String>> = match generator {
            _ if token.kind == TokenType::Spass => Box::new(std::iter::once(String::new())),
            None => Box::new(std::iter::empty()),
            Some(g) => {
                let digits = token.otplen();
                Box::new(
                    window(at, token)
                        .into_iter()
                        .map(move |c| g.value(c, digits).as_str().to_owned()),
                )
            }
        };
        for otp in otps {
            let candidate = match (prepend, otp.is_empty()) {
                (_, true) => pin.expose().clone(),
                (true, false) => format!("{}{otp}", pin.expose()),
                (false, false) => format!("{otp}{}", pin.expose()),
            };
            if proof.verify(&candidate) {
                at.trace.add(
                    "token",
                    format!(
                        "{} ({}): the {} response fits a PIN and OTP of its window",
                        token.serial,
                        token.kind,
                        proof.method()
                    ),
                );
                return Resolved::Found(Secret::new(candidate));
            }
        }
    }
    match (tried, why_not) {
        (false, Some(why)) => Resolved::Untestable(why),
        _ => {
            at.trace.add(
                "result",
                format!(
                    "no PIN and OTP of any token's window fits the {} response",
                    proof.method()
                ),
            );
            Resolved::Wrong
        }
    }
}

/// The token's PIN in clear, or why it cannot be had.
fn clear_pin(at: &Attempt<'_>, token: &Token) -> Result<Secret<String>, &'static str> {
    match at.flags.otppin {
        OtpPin::None => Ok(Secret::default()),
        OtpPin::UserStore => Err(
            "otppin=userstore needs the directory password in clear, which CHAP and MS-CHAP do not send",
        ),
        OtpPin::TokenPin => {
            let Some(stored) = token.pin_hash.as_ref().filter(|h| !h.expose().is_empty()) else {
                return Ok(Secret::default());
            };
            let Some(sealed) = stored.expose().strip_prefix(SEALED_PIN) else {
                return Err(
                    "the PIN is stored hashed; CHAP and MS-CHAP need it set with --encrypt-pin",
                );
            };
            open_pin(at, &token.serial, sealed).ok_or("the encrypted PIN cannot be opened")
        }
    }
}

/// Open a PIN sealed by [`seal_pin`]'s format (hex after the marker).
pub(crate) fn open_pin(at: &Attempt<'_>, serial: &str, sealed_hex: &str) -> Option<Secret<String>> {
    let sealed = data_encoding::HEXLOWER_PERMISSIVE
        .decode(sealed_hex.as_bytes())
        .ok()?;
    let plain = at.auth.key.open(serial, &sealed).ok()?;
    String::from_utf8(plain.expose().clone())
        .ok()
        .map(Secret::new)
}

/// The counters whose OTP values the token accepts now, and the one it accepted last (so that
/// a replay is told apart from a wrong PIN).
fn window(at: &Attempt<'_>, token: &Token) -> Vec<u64> {
    let count = u64::try_from(token.otp_counter).unwrap_or(0);
    match token.kind {
        TokenType::Totp => {
            let timing = verify::totp_timing(token, &at.cfg.system);
            let mut c: Vec<u64> = timing
                .candidates(at.now.timestamp())
                .filter_map(|c| u64::try_from(c).ok())
                .collect();
            if count > 0 {
                c.push(count);
            }
            c
        }
        _ => {
            let window = u64::try_from(token.count_window).unwrap_or(10).max(1);
            (count.saturating_sub(1)..count.saturating_add(window)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::fixture::{Fixture, answer};
    use crate::message::{Origin, Proof, Request};
    use crate::secret::Secret;

    /// What a front-end's proof does, without its protocol: the password it was made from.
    #[derive(Debug)]
    struct MadeFrom(&'static str);

    impl Proof for MadeFrom {
        fn method(&self) -> &'static str {
            "test"
        }
        fn verify(&self, password: &str) -> bool {
            password == self.0
        }
    }

    fn request(made_from: &'static str) -> Request {
        let mut r = Request::user("alice", "");
        r.proof = Some(Arc::new(MadeFrom(made_from)));
        r
    }

    /// HOTP1 (RFC 4226 key, counter 0, PIN `pin`): the window's candidates, a replay, a wrong
    /// response and a hashed PIN, each with what it leaves in the failcounter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn responses_are_matched_against_the_window_with_the_clear_pin() {
        let f = Fixture::baseline().await;
        // hashed PIN: nothing can be tried, and it is not the user's failure
        let r = f.check(request("pin755224")).await;
        assert_eq!(answer(&r).0, "REJECT");
        assert!(answer(&r).1.contains("--encrypt-pin"), "{:?}", answer(&r));
        assert_eq!(f.token("HOTP1").await.failcount, 0);

        f.auth
            .token_set_pin("HOTP1", &Secret::new("pin".into()), true, Origin::Cli)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            f.token("HOTP1")
                .await
                .pin_hash
                .is_some_and(|h| h.expose().starts_with(super::SEALED_PIN))
        );
        // the third OTP of the window (counter 2)
        let r = f.check(request("pin359152")).await;
        assert_eq!(answer(&r).0, "ACCEPT", "{:?}", answer(&r));
        assert_eq!(f.token("HOTP1").await.otp_counter, 3);
        let r = f.check(request("pin359152")).await;
        assert_eq!(answer(&r).1, "wrong otp value. previous otp used again");
        let before = f.token("HOTP1").await.failcount;
        let r = f.check(request("pin000000")).await;
        assert_eq!(answer(&r).0, "REJECT");
        assert_eq!(f.token("HOTP1").await.failcount, before + 1);
        // PAP still works with the sealed PIN
        let r = f.check(Request::user("alice", "pin969429")).await;
        assert_eq!(answer(&r).0, "ACCEPT", "{:?}", answer(&r));
    }
}
