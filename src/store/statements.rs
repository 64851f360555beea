//! The hot path's write statements, for both backends' group writers (`store::sqlite::writer`,
//! `store::postgres::writer`). Each is one atomic statement whose changed rows (or
//! `RETURNING`) say whether it applied, so two requests, or two nodes on one PostgreSQL, can
//! never consume the same OTP.

/// A successful authentication with a new counter: only if the stored counter is still below
/// it (`$1` new counter, `$2` time shift or NULL, `$3` 1 to count the attempt, `$4` last_auth,
/// `$5` token id). Consumed when it changed a row: no `RETURNING`, for which SQLite builds a
/// temporary table per statement.
pub(in crate::store) const CONSUME_SQL: &str = "UPDATE token SET otp_counter = $1, \
     time_shift = COALESCE($2, time_shift), failcount = 0, failcounter_exceeded = NULL, \
     count_auth = count_auth + $3, count_auth_success = count_auth_success + $3, last_auth = $4 \
     WHERE id = $5 AND otp_counter < $1";

/// A successful authentication without a counter (`$1` count, `$2` last_auth, `$3` id).
pub(in crate::store) const CONSUME_UNCOUNTED_SQL: &str = "UPDATE token SET failcount = 0, \
     failcounter_exceeded = NULL, count_auth = count_auth + $1, \
     count_auth_success = count_auth_success + $1, last_auth = $2 WHERE id = $3";

/// A failed attempt below maxfail (`$1` count, `$2` now, `$3` id).
macro_rules! failure_update {
    () => {
        "UPDATE token SET failcount = failcount + 1, count_auth = count_auth + $1, \
         failcounter_exceeded = CASE WHEN failcount + 1 >= maxfail THEN $2 \
         ELSE failcounter_exceeded END WHERE id = $3 AND failcount < maxfail"
    };
}

/// A failed attempt at maxfail: the failcount stays, the attempt is still counted (`$1` count,
/// `$2` id).
macro_rules! failure_at_max_update {
    () => {
        "UPDATE token SET count_auth = count_auth + $1 WHERE id = $2"
    };
}

/// `failure_update!` returning the counts (PostgreSQL: one round trip).
pub(in crate::store) const FAILURE_SQL: &str =
    concat!(failure_update!(), " RETURNING failcount, maxfail");
/// `failure_at_max_update!` returning the counts.
pub(in crate::store) const FAILURE_AT_MAX_SQL: &str =
    concat!(failure_at_max_update!(), " RETURNING failcount, maxfail");
/// The same updates without `RETURNING`, for which SQLite builds a temporary table per
/// statement: in-process, reading the counts back is cheaper.
pub(in crate::store) const FAILURE_UPDATE_SQL: &str = failure_update!();
pub(in crate::store) const FAILURE_AT_MAX_UPDATE_SQL: &str = failure_at_max_update!();

/// Add to this node's row of an event counter (`$1` name, `$2` node, `$3` delta).
pub(in crate::store) const COUNTER_ADD_SQL: &str = "INSERT INTO event_counter (name, node, value) \
     VALUES ($1, $2, $3) ON CONFLICT (name, node) \
     DO UPDATE SET value = event_counter.value + excluded.value";

/// Forget the `commit_probe` rows of processes that have not probed for a day (`$1` the
/// oldest time kept, Unix seconds).
pub(in crate::store) const PROBE_CLEANUP_SQL: &str = "DELETE FROM commit_probe WHERE at < $1";
/// Write this process's row (`$1` its key, `$2` now, Unix seconds).
pub(in crate::store) const PROBE_SQL: &str = "INSERT INTO commit_probe (probe, at) VALUES ($1, $2) \
     ON CONFLICT (probe) DO UPDATE SET at = excluded.at";
/// How long a process's row stays in `commit_probe` after its last probe.
pub(in crate::store) const PROBE_ROWS_KEPT_S: i64 = 86_400;
