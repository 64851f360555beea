//! Token rows, tokeninfo and token realms.
//!
//! The hot path uses three statements, each atomic on its own:
//! [`TokenStore::consume_otp`] (the OTP can be used once), [`TokenStore::record_failure`]
//! (failcount capped at maxfail, `failcounter_exceeded` stamped by the request that reaches it)
//! and [`TokenStore::auto_clear`]. Admin changes are single statements too, or one transaction
//! when they touch several tables.

use std::collections::BTreeMap;

use super::db::Tx;
pub use super::jobs::FailureOutcome;
use super::query::{Columns, Param, Row, Sql, query};
use super::{Store, StoreError, flag};
use crate::secret::Secret;
use crate::token::{HashLib, InfoField, Owner, Token, TokenType};

macro_rules! token_select {
    ($tail:literal) => {
        concat!("SELECT ", token_columns!(), " FROM token t ", $tail)
    };
}

/// A token to insert.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub serial: String,
    pub kind: TokenType,
    pub description: String,
    pub owner: Option<Owner>,
    pub active: bool,
    pub maxfail: i64,
    pub otp_counter: i64,
    pub count_window: i64,
    pub otplen: i64,
    pub hashlib: HashLib,
    pub time_step: Option<i64>,
    pub time_window: Option<i64>,
    pub time_shift: i64,
    pub pin_hash: Option<Secret<String>>,
    pub key_sealed: Option<Vec<u8>>,
    pub rollout_state: String,
    pub validity_start: Option<String>,
    pub validity_end: Option<String>,
    pub count_auth_max: i64,
    pub count_auth_success_max: i64,
    pub info: BTreeMap<String, String>,
    pub realms: Vec<String>,
    pub created: i64,
    /// The state a token brings along from another system (`import privacyidea`); zero for
    /// a new one.
    pub history: History,
}

/// Counters and flags of a token's past.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub revoked: bool,
    pub failcount: i64,
    pub count_auth: i64,
    pub count_auth_success: i64,
    pub last_auth: Option<String>,
}

/// Which tokens to list.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub owner: Option<(String, String)>,
    pub realm: Option<String>,
    pub kind: Option<TokenType>,
    pub serial_prefix: Option<String>,
    pub active: Option<bool>,
    pub assigned: Option<bool>,
    pub limit: Option<i64>,
}

/// A successful OTP (or spass PIN) to store.
#[derive(Debug, Clone, Copy)]
pub struct Consume<'a> {
    pub id: i64,
    /// The new `otp_counter`; `None` for tokens without a counter (spass).
    pub new_count: Option<i64>,
    pub time_shift: Option<i64>,
    /// Increase `count_auth` and `count_auth_success` (off with `no_auth_counter`).
    pub count_auth: bool,
    pub last_auth: &'a str,
}

/// Integer columns an admin or a handler may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntColumn {
    Maxfail,
    CountWindow,
    Otplen,
    Failcount,
    OtpCounter,
    TimeShift,
    CountAuth,
    CountAuthSuccess,
    CountAuthMax,
    CountAuthSuccessMax,
}

impl IntColumn {
    fn update_sql(self) -> &'static str {
        match self {
            Self::Maxfail => "UPDATE token SET maxfail = $1 WHERE id = $2",
            Self::CountWindow => "UPDATE token SET count_window = $1 WHERE id = $2",
            Self::Otplen => "UPDATE token SET otplen = $1 WHERE id = $2",
            Self::Failcount => "UPDATE token SET failcount = $1 WHERE id = $2",
            Self::OtpCounter => "UPDATE token SET otp_counter = $1 WHERE id = $2",
            Self::TimeShift => "UPDATE token SET time_shift = $1 WHERE id = $2",
            Self::CountAuth => "UPDATE token SET count_auth = $1 WHERE id = $2",
            Self::CountAuthSuccess => "UPDATE token SET count_auth_success = $1 WHERE id = $2",
            Self::CountAuthMax => "UPDATE token SET count_auth_max = $1 WHERE id = $2",
            Self::CountAuthSuccessMax => {
                "UPDATE token SET count_auth_success_max = $1 WHERE id = $2"
            }
        }
    }
}

/// Nullable columns an admin or a handler may set (NULL = unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptColumn {
    Description,
    Hashlib,
    RolloutState,
    ValidityStart,
    ValidityEnd,
    LastAuth,
    FailcounterExceeded,
    TimeStep,
    TimeWindow,
}

impl OptColumn {
    fn update_sql(self) -> &'static str {
        match self {
            Self::Description => "UPDATE token SET description = COALESCE($1, '') WHERE id = $2",
            Self::Hashlib => "UPDATE token SET hashlib = COALESCE($1, 'sha1') WHERE id = $2",
            Self::RolloutState => "UPDATE token SET rollout_state = COALESCE($1, '') WHERE id = $2",
            Self::ValidityStart => "UPDATE token SET validity_start = $1 WHERE id = $2",
            Self::ValidityEnd => "UPDATE token SET validity_end = $1 WHERE id = $2",
            Self::LastAuth => "UPDATE token SET last_auth = $1 WHERE id = $2",
            Self::FailcounterExceeded => "UPDATE token SET failcounter_exceeded = $1 WHERE id = $2",
            Self::TimeStep => "UPDATE token SET time_step = CAST($1 AS BIGINT) WHERE id = $2",
            Self::TimeWindow => "UPDATE token SET time_window = CAST($1 AS BIGINT) WHERE id = $2",
        }
    }
}

pub(super) fn token_from_row(row: &impl Columns) -> Result<Token, StoreError> {
    let kind_text = row.text("tokentype")?;
    let serial = row.text("serial")?;
    let kind = TokenType::parse(&kind_text).ok_or_else(|| {
        StoreError::Corrupt(format!("token {serial} has unknown type {kind_text:?}"))
    })?;
    let hashlib_text = row.text("hashlib")?;
    let owner = match (row.opt_text("owner_login")?, row.opt_text("owner_realm")?) {
        (Some(login), Some(realm)) if !login.is_empty() => Some(Owner {
            login,
            realm,
            resolver: row.opt_text("owner_resolver")?.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Token {
        id: row.int("id")?,
        kind,
        description: row.text("description")?,
        owner,
        active: flag(row.int("active")?),
        revoked: flag(row.int("revoked")?),
        failcount: row.int("failcount")?,
        maxfail: row.int("maxfail")?,
        otp_counter: row.int("otp_counter")?,
        count_window: row.int("count_window")?,
        otplen: row.int("otplen")?,
        hashlib: HashLib::parse(&hashlib_text).unwrap_or_default(),
        time_step: row.opt_int("time_step")?,
        time_window: row.opt_int("time_window")?,
        time_shift: row.int("time_shift")?,
        pin_hash: row
            .opt_text("pin_hash")?
            .filter(|h| !h.is_empty())
            .map(Secret::new),
        key_sealed: row.opt_blob("key_sealed")?.map(Secret::new),
        rollout_state: row.text("rollout_state")?,
        validity_start: row.opt_text("validity_start")?,
        validity_end: row.opt_text("validity_end")?,
        count_auth: row.int("count_auth")?,
        count_auth_success: row.int("count_auth_success")?,
        count_auth_max: row.int("count_auth_max")?,
        count_auth_success_max: row.int("count_auth_success_max")?,
        last_auth: row.opt_text("last_auth")?,
        failcounter_exceeded: row.opt_text("failcounter_exceeded")?,
        created: row.int("created")?,
        serial,
        info: BTreeMap::new(),
    })
}

/// Token queries. A thin view on [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct TokenStore<'a> {
    store: &'a Store,
}

impl Store {
    pub fn tokens(&self) -> TokenStore<'_> {
        TokenStore { store: self }
    }
}

impl TokenStore<'_> {
    /// Insert a token with its tokeninfo and realms in one transaction.
    pub async fn insert(&self, t: &NewToken) -> Result<i64, StoreError> {
        let mut tx = self.store.begin_write().await?;
        let id = insert_in(&mut tx, t).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Insert tokens with their tokeninfo and realms in one transaction: all or none.
    pub async fn insert_all(&self, tokens: &[NewToken]) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        for t in tokens {
            insert_in(&mut tx, t).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Insert many tokens (no tokeninfo) in one transaction: all or none. A serial that
    /// exists already fails the whole batch with [`StoreError::DuplicateSerial`].
    pub async fn insert_many(&self, tokens: &[NewToken]) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        // small statements: sqlx-sqlite's parameter lookup grows with the square of their number
        for chunk in tokens.chunks(32) {
            let mut q = Sql::new(
                "INSERT INTO token (serial, tokentype, description, owner_login, owner_realm, \
                 owner_resolver, active, maxfail, otp_counter, count_window, otplen, hashlib, \
                 time_step, time_shift, key_sealed, validity_start, validity_end, created) \
                 VALUES ",
            );
            for (i, t) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                let owner = t.owner.as_ref();
                let opt = |v: Option<&String>| v.map_or(Param::Null, |x| Param::Text(x.clone()));
                q.bind(t.serial.as_str())
                    .push(", ")
                    .bind(t.kind.as_str())
                    .push(", ")
                    .bind(t.description.as_str())
                    .push(", ")
                    .bind(opt(owner.map(|o| &o.login)))
                    .push(", ")
                    .bind(opt(owner.map(|o| &o.realm)))
                    .push(", ")
                    .bind(opt(owner.map(|o| &o.resolver)))
                    .push(", ")
                    .bind(i64::from(t.active))
                    .push(", ")
                    .bind(t.maxfail)
                    .push(", ")
                    .bind(t.otp_counter)
                    .push(", ")
                    .bind(t.count_window)
                    .push(", ")
                    .bind(t.otplen)
                    .push(", ")
                    .bind(t.hashlib.as_str())
                    .push(", ")
                    .bind(t.time_step.map_or(Param::NullI64, Param::I64))
                    .push(", ")
                    .bind(t.time_shift)
                    .push(", ")
                    .bind(t.key_sealed.clone())
                    .push(", ")
                    .bind(opt(t.validity_start.as_ref()))
                    .push(", ")
                    .bind(opt(t.validity_end.as_ref()))
                    .push(", ")
                    .bind(t.created)
                    .push(")");
            }
            q.push(" RETURNING id, serial");
            let rows = match q.query().fetch_all(&mut tx).await {
                Ok(rows) => rows,
                Err(e) if e.is_unique_violation() => {
                    drop(tx);
                    let existing = self.first_existing(tokens).await?;
                    return Err(StoreError::DuplicateSerial(existing.unwrap_or_default()));
                }
                Err(e) => return Err(e),
            };
            let ids: std::collections::HashMap<String, i64> = rows
                .iter()
                .map(|r| Ok((r.try_get::<String>("serial")?, r.try_get::<i64>("id")?)))
                .collect::<Result<_, StoreError>>()?;
            let mut realms = Sql::new("INSERT INTO tokenrealm (token_id, realm) VALUES ");
            let mut any = false;
            for t in chunk {
                let Some(id) = ids.get(&t.serial) else {
                    continue;
                };
                for realm in &t.realms {
                    realms.push(if any { ", (" } else { "(" });
                    realms.bind(*id).push(", ").bind(realm.as_str()).push(")");
                    any = true;
                }
            }
            if any {
                realms.push(" ON CONFLICT (token_id, realm) DO NOTHING");
                realms.query().execute(&mut tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The first of these serials that is already stored.
    async fn first_existing(&self, tokens: &[NewToken]) -> Result<Option<String>, StoreError> {
        let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
        Ok(self.existing_serials(&serials).await?.into_iter().next())
    }

    /// Which of these serials are stored.
    pub async fn existing_serials(
        &self,
        serials: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in serials.chunks(500) {
            let mut q = Sql::new("SELECT serial FROM token WHERE serial IN (");
            q.bind_list(chunk.iter().copied()).push(")");
            for row in q.query().fetch_all(self.store.db()).await? {
                found.insert(row.try_get::<String>("serial")?);
            }
        }
        Ok(found)
    }

    pub async fn by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        let row = query(token_select!("WHERE serial = $1"))
            .bind(serial)
            .fetch_optional(self.store.db())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut token = token_from_row(&row)?;
        let info = query("SELECT key, value FROM tokeninfo WHERE token_id = $1")
            .bind(token.id)
            .fetch_all(self.store.db())
            .await?;
        for r in info {
            token.info.insert(r.try_get("key")?, r.try_get("value")?);
        }
        Ok(Some(token))
    }

    /// The user's tokens with their tokeninfo, in database order. Concurrent calls are
    /// answered together by one query (see `store::lookup`).
    ///
    /// Refused at once while commits stall: no login can be settled then, and on a disk that
    /// hangs a lookup could hang too (PostgreSQL's reader asks the breaker itself).
    pub async fn of_user(&self, realm: &str, login: &str) -> Result<Vec<Token>, StoreError> {
        self.store.health().admit()?;
        self.store.reader().user_tokens(realm, login).await
    }

    /// How many tokens the user has (all states).
    pub async fn count_of_user(&self, realm: &str, login: &str) -> Result<i64, StoreError> {
        let row =
            query("SELECT COUNT(*) AS n FROM token WHERE owner_realm = $1 AND owner_login = $2")
                .bind(realm)
                .bind(login)
                .fetch_one(self.store.db())
                .await?;
        row.try_get("n")
    }

    /// Tokens matching a filter, in serial order, with their tokeninfo.
    pub async fn list(&self, filter: &TokenFilter) -> Result<Vec<Token>, StoreError> {
        let mut q = Sql::new(token_select!("WHERE 1 = 1"));
        if let Some((realm, login)) = &filter.owner {
            q.push(" AND owner_realm = ")
                .bind(realm.as_str())
                .push(" AND owner_login = ")
                .bind(login.as_str());
        }
        if let Some(realm) = &filter.realm {
            q.push(" AND (owner_realm = ")
                .bind(realm.as_str())
                .push(" OR id IN (SELECT token_id FROM tokenrealm WHERE realm = ")
                .bind(realm.as_str())
                .push("))");
        }
        if let Some(kind) = filter.kind {
            q.push(" AND tokentype = ").bind(kind.as_str());
        }
        if let Some(prefix) = &filter.serial_prefix {
            q.push(" AND serial LIKE ")
                .bind(format!("{}%", prefix.replace(['%', '_'], "")));
        }
        if let Some(active) = filter.active {
            q.push(" AND active = ").bind(i64::from(active));
        }
        match filter.assigned {
            Some(true) => {
                q.push(" AND owner_login IS NOT NULL");
            }
            Some(false) => {
                q.push(" AND owner_login IS NULL");
            }
            None => {}
        }
        q.push(" ORDER BY serial");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").bind(limit);
        }
        let rows = q.query().fetch_all(self.store.db()).await?;
        let mut tokens = rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // Tokeninfo in chunks, to stay below the backends' bind-parameter limits.
        let ids: Vec<i64> = tokens.iter().map(|t| t.id).collect();
        for chunk in ids.chunks(500) {
            let mut q = Sql::new("SELECT token_id, key, value FROM tokeninfo WHERE token_id IN (");
            q.bind_list(chunk.iter().copied()).push(")");
            let info = q.query().fetch_all(self.store.db()).await?;
            attach_info(&mut tokens, &info)?;
        }
        Ok(tokens)
    }

    pub async fn realms(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let rows = query("SELECT realm FROM tokenrealm WHERE token_id = $1 ORDER BY realm")
            .bind(id)
            .fetch_all(self.store.db())
            .await?;
        rows.iter().map(|r| r.try_get("realm")).collect()
    }

    /// Add realms to a token, or replace its realms with `realms`.
    pub async fn set_realms(
        &self,
        id: i64,
        realms: &[String],
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        if replace {
            query("DELETE FROM tokenrealm WHERE token_id = $1")
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        for realm in realms {
            query(
                "INSERT INTO tokenrealm (token_id, realm) VALUES ($1, $2) \
                 ON CONFLICT (token_id, realm) DO NOTHING",
            )
            .bind(id)
            .bind(realm)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.store.begin_write().await?;
        // Explicit deletes keep PostgreSQL and SQLite alike even where foreign keys are off.
        query("DELETE FROM tokeninfo WHERE token_id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        query("DELETE FROM tokenrealm WHERE token_id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        let done = query("DELETE FROM token WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(done > 0)
    }

    pub async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        query("UPDATE token SET active = $1 WHERE id = $2")
            .bind(i64::from(active))
            .bind(id)
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    /// Revoke: disabled for good (privacyIDEA also locks a revoked token).
    pub async fn revoke(&self, id: i64) -> Result<(), StoreError> {
        query("UPDATE token SET revoked = 1, active = 0 WHERE id = $1")
            .bind(id)
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    /// Assign to a user and add the user's realm to the token realms.
    pub async fn assign(&self, id: i64, owner: &Owner) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        query(
            "UPDATE token SET owner_login = $1, owner_realm = $2, owner_resolver = $3 WHERE id = $4",
        )
        .bind(&owner.login)
        .bind(&owner.realm)
        .bind(&owner.resolver)
        .bind(id)
        .execute(&mut tx)
        .await?;
        query(
            "INSERT INTO tokenrealm (token_id, realm) VALUES ($1, $2) \
             ON CONFLICT (token_id, realm) DO NOTHING",
        )
        .bind(id)
        .bind(&owner.realm)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Unassign: no owner, no PIN, failcount 0 (privacyIDEA's unassign).
    pub async fn unassign(&self, id: i64) -> Result<(), StoreError> {
        query(
            "UPDATE token SET owner_login = NULL, owner_realm = NULL, owner_resolver = NULL, \
             pin_hash = NULL, failcount = 0, failcounter_exceeded = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(self.store.db())
        .await?;
        Ok(())
    }

    pub async fn set_pin_hash(&self, id: i64, hash: Option<&str>) -> Result<(), StoreError> {
        query("UPDATE token SET pin_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    /// Failcount to `n`; at 0 the `failcounter_exceeded` stamp goes too. Returns the failcount
    /// before the change (for `token_unlocked`).
    pub async fn set_failcount(&self, id: i64, n: i64) -> Result<Option<(i64, i64)>, StoreError> {
        let before = query("SELECT failcount, maxfail FROM token WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store.db())
            .await?;
        query(
            "UPDATE token SET failcount = $1, failcounter_exceeded = \
             CASE WHEN $1 = 0 THEN NULL ELSE failcounter_exceeded END WHERE id = $2",
        )
        .bind(n)
        .bind(id)
        .execute(self.store.db())
        .await?;
        Ok(match before {
            Some(r) => Some((r.try_get("failcount")?, r.try_get("maxfail")?)),
            None => None,
        })
    }

    /// Add `delta` to the failcount without clamping (the `change failcounter` action).
    pub async fn change_failcount(&self, id: i64, delta: i64) -> Result<(), StoreError> {
        query("UPDATE token SET failcount = failcount + $1 WHERE id = $2")
            .bind(delta)
            .bind(id)
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    pub async fn set_int(&self, id: i64, column: IntColumn, value: i64) -> Result<(), StoreError> {
        query(column.update_sql())
            .bind(value)
            .bind(id)
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    pub async fn set_opt(
        &self,
        id: i64,
        column: OptColumn,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        query(column.update_sql())
            .bind(value)
            .bind(id)
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    /// Set a tokeninfo key; column-backed keys go to their column (integers are checked).
    pub async fn set_tokeninfo(&self, id: i64, key: &str, value: &str) -> Result<(), StoreError> {
        tokeninfo_set_sql(id, key, value)?
            .query()
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    /// Delete a tokeninfo key (a missing key is fine); column-backed keys return to their
    /// default.
    pub async fn delete_tokeninfo(&self, id: i64, key: &str) -> Result<(), StoreError> {
        tokeninfo_delete_sql(id, key)
            .query()
            .execute(self.store.db())
            .await?;
        Ok(())
    }

    /// Apply changes to several tokens in one transaction: everything changes, or nothing
    /// (event handler actions on "all the user's tokens", `set validity` with two bounds).
    pub async fn change(&self, ids: &[i64], changes: &[TokenChange<'_>]) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        for &id in ids {
            for change in changes {
                for stmt in change.statements(id)? {
                    stmt.query().execute(&mut tx).await?;
                }
                if let TokenChange::InfoIncrease { key, by } = change {
                    increase_info(&mut tx, id, key, *by).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Token groups of a token.
    pub async fn groups(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let rows = query("SELECT name FROM tokengroup WHERE token_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(self.store.db())
            .await?;
        rows.iter().map(|r| r.try_get("name")).collect()
    }

    /// Store a successful authentication, durably, through the group-commit writer. With a
    /// counter, only if the stored counter is still below the new one: a concurrent request
    /// (or node) that already used this OTP makes this return `false`, and the caller must
    /// treat the OTP as used.
    pub async fn consume_otp(&self, c: Consume<'_>) -> Result<bool, StoreError> {
        self.store
            .writer()
            .consume(super::jobs::ConsumeJob {
                id: c.id,
                new_count: c.new_count,
                time_shift: c.time_shift,
                count_auth: c.count_auth,
                last_auth: c.last_auth.to_owned(),
            })
            .await
    }

    /// A failed attempt (through the group-commit writer): failcount + 1 capped at maxfail,
    /// stamping `failcounter_exceeded` when this request reaches it, and `count_auth` + 1 when
    /// `count_auth` is set.
    pub async fn record_failure(
        &self,
        id: i64,
        count_auth: bool,
        now_short: &str,
    ) -> Result<FailureOutcome, StoreError> {
        self.store
            .writer()
            .failure(id, count_auth, now_short.to_owned())
            .await
    }

    /// Take the next OTP counter for an email/SMS challenge: one atomic increment, so two
    /// challenges never send the same value. Returns the counter whose value is to be sent.
    pub async fn reserve_counter(&self, id: i64) -> Result<i64, StoreError> {
        let row = query(
            "UPDATE token SET otp_counter = otp_counter + 1 WHERE id = $1 RETURNING otp_counter",
        )
        .bind(id)
        .fetch_optional(self.store.db())
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("token id {id} vanished")))?;
        let next: i64 = row.try_get("otp_counter")?;
        Ok(next - 1)
    }

    /// Failcounter auto-clear: back to 0 if the token is still at maxfail.
    pub async fn auto_clear(&self, id: i64) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE token SET failcount = 0, failcounter_exceeded = NULL \
             WHERE id = $1 AND failcount >= maxfail",
        )
        .bind(id)
        .execute(self.store.db())
        .await?;
        Ok(done > 0)
    }

    /// Set the counter after a resync (HOTP: count; TOTP: count and drift).
    pub async fn set_counter(
        &self,
        id: i64,
        count: i64,
        time_shift: Option<i64>,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE token SET otp_counter = $1, time_shift = COALESCE($2, time_shift), \
             failcount = 0, failcounter_exceeded = NULL WHERE id = $3",
        )
        .bind(count)
        .bind(time_shift)
        .bind(id)
        .execute(self.store.db())
        .await?;
        Ok(())
    }

    /// How many tokens are stored (start-up sanity check of the key file).
    pub async fn count_all(&self) -> Result<i64, StoreError> {
        let row = query("SELECT COUNT(*) AS n FROM token")
            .fetch_one(self.store.db())
            .await?;
        row.try_get("n")
    }
}

fn attach_info(tokens: &mut [Token], rows: &[Row]) -> Result<(), StoreError> {
    for r in rows {
        let id: i64 = r.try_get("token_id")?;
        if let Some(t) = tokens.iter_mut().find(|t| t.id == id) {
            t.info.insert(r.try_get("key")?, r.try_get("value")?);
        }
    }
    Ok(())
}

/// One change to a token, applied by [`TokenStore::change`].
#[derive(Debug, Clone)]
pub enum TokenChange<'a> {
    Active(bool),
    /// Set the failcount; 0 also removes `failcounter_exceeded`.
    Failcount(i64),
    /// Add to the failcount without clamping (`change failcounter`).
    FailcountDelta(i64),
    Int(IntColumn, i64),
    Opt(OptColumn, Option<&'a str>),
    Info {
        key: &'a str,
        value: &'a str,
    },
    InfoDelete(&'a str),
    /// Integer add; a missing key counts as 0; a non-integer value stays.
    InfoIncrease {
        key: &'a str,
        by: i64,
    },
    /// No owner, no PIN, failcount 0.
    Unassign,
    Delete,
    Realms {
        realms: &'a [String],
        replace: bool,
    },
    GroupAdd(&'a str),
    GroupRemove(&'a str),
    PinHash(Option<&'a str>),
}

impl TokenChange<'_> {
    fn statements(&self, id: i64) -> Result<Vec<Sql>, StoreError> {
        let one = |text: &str| {
            let mut q = Sql::new(text);
            q.bind(id);
            q
        };
        Ok(match self {
            Self::Active(a) => {
                let mut q = Sql::new("UPDATE token SET active = ");
                q.bind(i64::from(*a)).push(" WHERE id = ").bind(id);
                vec![q]
            }
            Self::Failcount(n) => {
                let mut q = Sql::new("UPDATE token SET failcount = ");
                q.bind(*n);
                if *n == 0 {
                    q.push(", failcounter_exceeded = NULL");
                }
                q.push(" WHERE id = ").bind(id);
                vec![q]
            }
            Self::FailcountDelta(d) => {
                let mut q = Sql::new("UPDATE token SET failcount = failcount + ");
                q.bind(*d).push(" WHERE id = ").bind(id);
                vec![q]
            }
            Self::Int(col, v) => {
                let mut q = Sql::new(col.update_sql());
                q.set_params(vec![Param::I64(*v), Param::I64(id)]);
                vec![q]
            }
            Self::Opt(col, v) => {
                let mut q = Sql::new(col.update_sql());
                q.set_params(vec![
                    v.map_or(Param::Null, |x| Param::Text(x.to_owned())),
                    Param::I64(id),
                ]);
                vec![q]
            }
            Self::Info { key, value } => vec![tokeninfo_set_sql(id, key, value)?],
            Self::InfoDelete(key) => vec![tokeninfo_delete_sql(id, key)],
            Self::InfoIncrease { .. } => vec![],
            Self::Unassign => vec![one(
                "UPDATE token SET owner_login = NULL, owner_realm = NULL, owner_resolver = NULL, \
                 pin_hash = NULL, failcount = 0, failcounter_exceeded = NULL WHERE id = ",
            )],
            Self::Delete => vec![
                one("DELETE FROM tokeninfo WHERE token_id = "),
                one("DELETE FROM tokenrealm WHERE token_id = "),
                one("DELETE FROM tokengroup WHERE token_id = "),
                one("DELETE FROM token WHERE id = "),
            ],
            Self::Realms { realms, replace } => {
                let mut v = Vec::new();
                if *replace {
                    v.push(one("DELETE FROM tokenrealm WHERE token_id = "));
                }
                for r in *realms {
                    let mut q = Sql::new("INSERT INTO tokenrealm (token_id, realm) VALUES (");
                    q.bind(id)
                        .push(", ")
                        .bind(r.as_str())
                        .push(") ON CONFLICT (token_id, realm) DO NOTHING");
                    v.push(q);
                }
                v
            }
            Self::GroupAdd(name) => {
                let mut q = Sql::new("INSERT INTO tokengroup (token_id, name) VALUES (");
                q.bind(id)
                    .push(", ")
                    .bind(*name)
                    .push(") ON CONFLICT (token_id, name) DO NOTHING");
                vec![q]
            }
            Self::GroupRemove(name) => {
                let mut q = Sql::new("DELETE FROM tokengroup WHERE token_id = ");
                q.bind(id).push(" AND name = ").bind(*name);
                vec![q]
            }
            Self::PinHash(h) => {
                let mut q = Sql::new("UPDATE token SET pin_hash = ");
                q.bind(h.map_or(Param::Null, |x| Param::Text(x.to_owned())))
                    .push(" WHERE id = ")
                    .bind(id);
                vec![q]
            }
        })
    }
}

fn int_value(key: &str, value: &str) -> Result<i64, StoreError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| StoreError::InvalidValue {
            key: key.to_owned(),
            message: format!("{value:?} is not an integer"),
        })
}

/// The statement that sets one tokeninfo key (column-backed keys go to their column).
fn tokeninfo_set_sql(id: i64, key: &str, value: &str) -> Result<Sql, StoreError> {
    let (text, param) = match InfoField::parse(key) {
        None => {
            let mut q = Sql::new(
                "INSERT INTO tokeninfo (token_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_id, key) DO UPDATE SET value = excluded.value",
            );
            q.set_params(vec![Param::I64(id), key.into(), value.into()]);
            return Ok(q);
        }
        Some(InfoField::CountAuth) => (
            IntColumn::CountAuth.update_sql(),
            Param::I64(int_value(key, value)?),
        ),
        Some(InfoField::CountAuthSuccess) => (
            IntColumn::CountAuthSuccess.update_sql(),
            Param::I64(int_value(key, value)?),
        ),
        Some(InfoField::CountAuthMax) => (
            IntColumn::CountAuthMax.update_sql(),
            Param::I64(int_value(key, value)?),
        ),
        Some(InfoField::CountAuthSuccessMax) => (
            IntColumn::CountAuthSuccessMax.update_sql(),
            Param::I64(int_value(key, value)?),
        ),
        Some(InfoField::TimeShift) => (
            IntColumn::TimeShift.update_sql(),
            Param::I64(int_value(key, value)?),
        ),
        Some(InfoField::TimeStep) => (
            OptColumn::TimeStep.update_sql(),
            Param::Text(int_value(key, value)?.to_string()),
        ),
        Some(InfoField::TimeWindow) => (
            OptColumn::TimeWindow.update_sql(),
            Param::Text(int_value(key, value)?.to_string()),
        ),
        Some(InfoField::Hashlib) => {
            let h = HashLib::parse(value).ok_or_else(|| StoreError::InvalidValue {
                key: key.to_owned(),
                message: format!("{value:?} is not one of sha1, sha256, sha512"),
            })?;
            (
                OptColumn::Hashlib.update_sql(),
                Param::Text(h.as_str().into()),
            )
        }
        Some(InfoField::LastAuth) => (OptColumn::LastAuth.update_sql(), value.into()),
        Some(InfoField::FailcounterExceeded) => {
            (OptColumn::FailcounterExceeded.update_sql(), value.into())
        }
        Some(InfoField::ValidityStart) => (OptColumn::ValidityStart.update_sql(), value.into()),
        Some(InfoField::ValidityEnd) => (OptColumn::ValidityEnd.update_sql(), value.into()),
    };
    let mut q = Sql::new(text);
    q.set_params(vec![param, Param::I64(id)]);
    Ok(q)
}

/// The statement that deletes one tokeninfo key (column-backed keys return to their default).
fn tokeninfo_delete_sql(id: i64, key: &str) -> Sql {
    let (text, param) = match InfoField::parse(key) {
        None => {
            let mut q = Sql::new("DELETE FROM tokeninfo WHERE token_id = $1 AND key = $2");
            q.set_params(vec![Param::I64(id), key.into()]);
            return q;
        }
        Some(InfoField::CountAuth) => (IntColumn::CountAuth.update_sql(), Param::I64(0)),
        Some(InfoField::CountAuthSuccess) => {
            (IntColumn::CountAuthSuccess.update_sql(), Param::I64(0))
        }
        Some(InfoField::CountAuthMax) => (IntColumn::CountAuthMax.update_sql(), Param::I64(0)),
        Some(InfoField::CountAuthSuccessMax) => {
            (IntColumn::CountAuthSuccessMax.update_sql(), Param::I64(0))
        }
        Some(InfoField::TimeShift) => (IntColumn::TimeShift.update_sql(), Param::I64(0)),
        Some(InfoField::TimeStep) => (OptColumn::TimeStep.update_sql(), Param::Null),
        Some(InfoField::TimeWindow) => (OptColumn::TimeWindow.update_sql(), Param::Null),
        Some(InfoField::Hashlib) => (OptColumn::Hashlib.update_sql(), Param::Null),
        Some(InfoField::LastAuth) => (OptColumn::LastAuth.update_sql(), Param::Null),
        Some(InfoField::FailcounterExceeded) => {
            (OptColumn::FailcounterExceeded.update_sql(), Param::Null)
        }
        Some(InfoField::ValidityStart) => (OptColumn::ValidityStart.update_sql(), Param::Null),
        Some(InfoField::ValidityEnd) => (OptColumn::ValidityEnd.update_sql(), Param::Null),
    };
    let mut q = Sql::new(text);
    q.set_params(vec![param, Param::I64(id)]);
    q
}

/// `increase tokeninfo` inside the change transaction.
async fn increase_info(tx: &mut Tx, id: i64, key: &str, by: i64) -> Result<(), StoreError> {
    let column = match InfoField::parse(key) {
        Some(InfoField::CountAuth) => Some("count_auth"),
        Some(InfoField::CountAuthSuccess) => Some("count_auth_success"),
        Some(InfoField::CountAuthMax) => Some("count_auth_max"),
        Some(InfoField::CountAuthSuccessMax) => Some("count_auth_success_max"),
        Some(InfoField::TimeShift) => Some("time_shift"),
        Some(_) => {
            return Err(StoreError::InvalidValue {
                key: key.to_owned(),
                message: "not an integer tokeninfo".into(),
            });
        }
        None => None,
    };
    if let Some(col) = column {
        let mut q = Sql::new(&format!("UPDATE token SET {col} = {col} + "));
        q.bind(by).push(" WHERE id = ").bind(id);
        q.query().execute(&mut *tx).await?;
        return Ok(());
    }
    let row = query("SELECT value FROM tokeninfo WHERE token_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
    let current = match row {
        None => 0,
        Some(r) => {
            let text: String = r.try_get("value")?;
            match text.trim().parse::<i64>() {
                Ok(v) => v,
                Err(_) => {
                    tracing::warn!(key, value = %text, "increase tokeninfo: the stored value is not an integer; unchanged");
                    return Ok(());
                }
            }
        }
    };
    tokeninfo_set_sql(id, key, &(current.saturating_add(by)).to_string())?
        .query()
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One token with its tokeninfo and realms, inside the caller's transaction.
async fn insert_in(tx: &mut Tx, t: &NewToken) -> Result<i64, StoreError> {
    let (login, realm, resolver) = match &t.owner {
        Some(o) => (
            Some(o.login.as_str()),
            Some(o.realm.as_str()),
            Some(o.resolver.as_str()),
        ),
        None => (None, None, None),
    };
    let inserted = query(
        "INSERT INTO token (serial, tokentype, description, owner_login, owner_realm, \
         owner_resolver, active, maxfail, otp_counter, count_window, otplen, hashlib, \
         time_step, time_window, time_shift, pin_hash, key_sealed, rollout_state, \
         validity_start, validity_end, count_auth_max, count_auth_success_max, created, \
         revoked, failcount, count_auth, count_auth_success, last_auth) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28) RETURNING id",
    )
    .bind(&t.serial)
    .bind(t.kind.as_str())
    .bind(&t.description)
    .bind(login)
    .bind(realm)
    .bind(resolver)
    .bind(i64::from(t.active))
    .bind(t.maxfail)
    .bind(t.otp_counter)
    .bind(t.count_window)
    .bind(t.otplen)
    .bind(t.hashlib.as_str())
    .bind(t.time_step)
    .bind(t.time_window)
    .bind(t.time_shift)
    .bind(t.pin_hash.as_ref().map(|h| h.expose().as_str()))
    .bind(t.key_sealed.as_deref())
    .bind(&t.rollout_state)
    .bind(t.validity_start.as_deref())
    .bind(t.validity_end.as_deref())
    .bind(t.count_auth_max)
    .bind(t.count_auth_success_max)
    .bind(t.created)
    .bind(i64::from(t.history.revoked))
    .bind(t.history.failcount)
    .bind(t.history.count_auth)
    .bind(t.history.count_auth_success)
    .bind(t.history.last_auth.as_deref())
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get("id")?,
        Err(e) if e.is_unique_violation() => {
            return Err(StoreError::DuplicateSerial(t.serial.clone()));
        }
        Err(e) => return Err(e),
    };
    for (key, value) in &t.info {
        query("INSERT INTO tokeninfo (token_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    for realm in &t.realms {
        query("INSERT INTO tokenrealm (token_id, realm) VALUES ($1, $2)")
            .bind(id)
            .bind(realm)
            .execute(&mut *tx)
            .await?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::super::lookup::TOKEN_COLUMNS;

    /// `token_from_row` reads columns by name: the single-table select names them like the
    /// hot path's lookup, without its tokeninfo pair.
    #[test]
    fn token_select_names_the_lookup_columns() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_initial.sql"))
            .unwrap();
        let stmt = conn.prepare(token_select!("WHERE 1 = 0")).unwrap();
        assert_eq!(stmt.column_names(), TOKEN_COLUMNS[..30].to_vec());
    }
}
