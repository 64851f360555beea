//! privacyIDEA's tokens as otpgate's: type, seed (opened with its encKey), counters, failcount,
//! validity, tokeninfo, realms, owner and PIN. Pure: the owners' logins are looked up before
//! ([`super::owners`]) and the tokens stored after (`Authenticator::import_privacyidea`).

use std::collections::{BTreeMap, HashMap};

use super::Notes;
use super::crypto::EncKey;
use super::source::PiToken;
use crate::secret::Secret;
pub use crate::token::import::{PinPlan, PlannedToken};
use crate::token::{HashLib, Owner, TokenType};

/// An owner's login, as [`super::owners`] found it (or why not).
pub type OwnerLogins = HashMap<(String, String), Result<String, String>>;

/// Tokeninfo keys that become columns.
const COLUMNS: &[&str] = &[
    "hashlib",
    "timeStep",
    "timeWindow",
    "timeShift",
    "validity_period_start",
    "validity_period_end",
    "count_auth",
    "count_auth_success",
    "count_auth_max",
    "count_auth_success_max",
    "last_auth",
];

/// Every token that can be imported; one note for each that cannot and each change.
pub fn plan(
    tokens: &[PiToken],
    key: &EncKey,
    logins: &OwnerLogins,
    notes: &mut Notes,
) -> Vec<PlannedToken> {
    tokens
        .iter()
        .filter_map(|t| match token(t, key, logins, notes) {
            Ok(p) => Some(p),
            Err(why) => {
                notes.skip(format!("token {}", t.row.text("serial")), why);
                None
            }
        })
        .collect()
}

fn token(
    t: &PiToken,
    enc: &EncKey,
    logins: &OwnerLogins,
    notes: &mut Notes,
) -> Result<PlannedToken, String> {
    let r = &t.row;
    let serial = r.text("serial").to_owned();
    let what = format!("token {serial}");
    if serial.is_empty() {
        return Err("it has no serial".into());
    }
    let type_name = r.text("tokentype").to_ascii_lowercase();
    let kind = TokenType::parse(&type_name)
        .ok_or_else(|| format!("type {type_name} is not one otpgate has"))?;
    let info = &t.info;
    let hashlib = match info.get("hashlib").map(|h| h.to_ascii_lowercase()) {
        None => HashLib::Sha1,
        Some(h) => HashLib::parse(&h).ok_or_else(|| format!("hashlib {h} is not supported"))?,
    };
    let key = if kind.has_key() {
        let (enc_key, iv) = (r.text("key_enc"), r.text("key_iv"));
        if enc_key.is_empty() {
            return Err("it has no seed".into());
        }
        Some(
            enc.token_seed(enc_key, iv)
                .map_err(|e| format!("its seed: {e}"))?,
        )
    } else {
        None
    };
    let owner = match &t.owner {
        None => None,
        Some(o) => {
            let login = match logins.get(&(o.resolver.clone(), o.user_id.clone())) {
                Some(Ok(login)) => login.clone(),
                Some(Err(why)) => return Err(format!("its owner: {why}")),
                None => return Err(format!("its owner {} was not looked up", o.user_id)),
            };
            let realm = o
                .realm
                .clone()
                .or_else(|| t.realms.first().cloned())
                .ok_or("its owner has no realm")?;
            Some(Owner {
                login,
                realm: realm.to_ascii_lowercase(),
                resolver: o.resolver.clone(),
            })
        }
    };
    let pin = match r.opt("pin_hash") {
        None => PinPlan::None,
        Some(h) if h.starts_with("$argon2") => PinPlan::Hash(Secret::new(h.to_owned())),
        Some(h) if h.starts_with("@@") => match enc.token_pin(h) {
            Ok(pin) => PinPlan::Sealed(pin),
            Err(e) => return Err(format!("its encrypted PIN: {e}")),
        },
        Some(h) => {
            let scheme = h.split('$').find(|s| !s.is_empty()).unwrap_or("unknown");
            notes.change(
                &what,
                format!(
                    "its PIN hash ({}) cannot be verified by otpgate: no PIN matches until \
                     `otpgate token set-pin {serial}`",
                    scheme.chars().take(16).collect::<String>()
                ),
            );
            PinPlan::ResetRequired
        }
    };
    let int_info = |k: &str| info.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let time_based = kind == TokenType::Totp;
    let rest: BTreeMap<String, String> = info
        .iter()
        .filter(|(k, _)| !COLUMNS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut realms: Vec<String> = t.realms.iter().map(|x| x.to_ascii_lowercase()).collect();
    if let Some(o) = &owner
        && !realms.contains(&o.realm)
    {
        realms.push(o.realm.clone());
    }
    realms.sort();
    realms.dedup();
    let locked = r.flag("locked") && !r.flag("revoked");
    if locked {
        notes.change(
            &what,
            "locked in privacyIDEA: imported as revoked".to_owned(),
        );
    }
    Ok(PlannedToken {
        description: r.text("description").to_owned(),
        kind,
        owner,
        realms,
        active: r.flag("active"),
        revoked: r.flag("revoked") || r.flag("locked"),
        failcount: r.int("failcount").unwrap_or(0),
        maxfail: r.int("maxfail").unwrap_or(10),
        counter: r.int("count").unwrap_or(0),
        count_window: r.int("count_window").unwrap_or(10),
        otplen: r.int("otplen").unwrap_or(6),
        hashlib,
        time_step: time_based.then(|| int_info("timeStep")).flatten(),
        time_window: time_based.then(|| int_info("timeWindow")).flatten(),
        time_shift: info
            .get("timeShift")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |s| s.round() as i64),
        key,
        pin,
        rollout_state: match r.text("rollout_state") {
            "enrolled" => String::new(),
            other => other.to_owned(),
        },
        validity_start: info.get("validity_period_start").cloned(),
        validity_end: info.get("validity_period_end").cloned(),
        count_auth: int_info("count_auth").unwrap_or(0),
        count_auth_success: int_info("count_auth_success").unwrap_or(0),
        count_auth_max: int_info("count_auth_max").unwrap_or(0),
        count_auth_success_max: int_info("count_auth_success_max").unwrap_or(0),
        last_auth: info.get("last_auth").cloned(),
        info: rest,
        serial,
    })
}

#[cfg(test)]
mod tests {
    use super::super::source::{PiOwner, Row};
    use super::*;

    const ENCKEY: &str = "82d5fd369cf5adecc76c85cbc3d7b7ccae12e8774e84390ea6bcdd897a12799415fc1f61b4709dca6977fc0fe5cb6d4a03e46427480cc568babbe8ee0d87d60842139ce1d5bfaeeebb0a565a8aa8b8723c50703525e1de845889a8cc3d4e5368";
    const SEED_ENC: &str = "d3e163b376f3e032fe4c67c3e07d3b15597c2ef6d3d58a16c973f6fe7368eb8c2b65a728d176cb8bd9366e9d9c4eaac0";
    const SEED_IV: &str = "000102030405060708090a0b0c0d0e0f";

    fn key() -> EncKey {
        EncKey::from_bytes(&data_encoding::HEXLOWER.decode(ENCKEY.as_bytes()).unwrap()).unwrap()
    }

    fn pi_token(serial: &str, kind: &str, extra: &[(&str, &str)]) -> PiToken {
        let mut cols = vec![
            ("serial", serial),
            ("tokentype", kind),
            ("key_enc", SEED_ENC),
            ("key_iv", SEED_IV),
            ("active", "1"),
            ("count", "5"),
            ("failcount", "2"),
            ("maxfail", "7"),
            ("otplen", "8"),
        ];
        cols.extend_from_slice(extra);
        PiToken {
            row: Row::from_pairs(&cols),
            info: BTreeMap::from([
                ("hashlib".into(), "sha256".into()),
                ("timeStep".into(), "60".into()),
                ("timeShift".into(), "-29.6".into()),
                ("validity_period_end".into(), "2035-01-01T00:00+0000".into()),
                ("count_auth".into(), "4".into()),
                ("department".into(), "sales".into()),
            ]),
            owner: Some(PiOwner {
                resolver: "sqlres".into(),
                user_id: "1".into(),
                realm: Some("Corp".into()),
            }),
            realms: vec!["Corp".into(), "other".into()],
        }
    }

    fn logins() -> OwnerLogins {
        HashMap::from([(("sqlres".into(), "1".into()), Ok("alice".into()))])
    }

    #[test]
    fn a_totp_keeps_its_state() {
        let mut notes = Notes::default();
        let planned = plan(
            &[pi_token(
                "T1",
                "TOTP",
                &[("pin_hash", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA")],
            )],
            &key(),
            &logins(),
            &mut notes,
        );
        assert!(notes.lines().is_empty(), "{:?}", notes.lines());
        let t = &planned[0];
        assert_eq!(t.kind, TokenType::Totp);
        assert_eq!(t.key.as_ref().unwrap().expose(), b"12345678901234567890");
        assert_eq!((t.counter, t.failcount, t.maxfail, t.otplen), (5, 2, 7, 8));
        assert_eq!((t.time_step, t.time_shift), (Some(60), -30));
        assert_eq!(t.hashlib, HashLib::Sha256);
        assert_eq!(t.count_auth, 4);
        assert_eq!(t.validity_end.as_deref(), Some("2035-01-01T00:00+0000"));
        assert_eq!(t.info.keys().collect::<Vec<_>>(), ["department"]);
        assert_eq!(t.owner.as_ref().unwrap().to_string(), "alice@corp");
        assert_eq!(t.realms, ["corp", "other"]);
        assert!(matches!(t.pin, PinPlan::Hash(_)));
    }

    #[test]
    fn what_cannot_come_over_is_named() {
        let mut notes = Notes::default();
        let mut orphan = pi_token("O1", "hotp", &[]);
        orphan.owner.as_mut().unwrap().user_id = "99".into();
        let mut logins = logins();
        logins.insert(
            ("sqlres".into(), "99".into()),
            Err("user id 99 is not in resolver sqlres".into()),
        );
        let planned = plan(
            &[
                pi_token("R1", "registration", &[]),
                pi_token("B1", "hotp", &[("key_enc", "00ff")]),
                orphan,
                pi_token("P1", "hotp", &[("pin_hash", "$pbkdf2-sha512$abc")]),
                pi_token("L1", "hotp", &[("locked", "1")]),
            ],
            &key(),
            &logins,
            &mut notes,
        );
        let serials: Vec<_> = planned.iter().map(|t| t.serial.as_str()).collect();
        assert_eq!(serials, ["P1", "L1"]);
        assert!(matches!(planned[0].pin, PinPlan::ResetRequired));
        assert!(planned[1].revoked);
        let text = notes.lines().join("\n");
        assert!(text.contains("token R1: type registration"), "{text}");
        assert!(text.contains("token B1: its seed"), "{text}");
        assert!(text.contains("token O1: its owner: user id 99"), "{text}");
        assert!(
            text.contains("token P1: its PIN hash (pbkdf2-sha512)"),
            "{text}"
        );
    }
}
