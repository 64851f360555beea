//! Why the store is unavailable, for the answers, the log and `/healthz`: the breaker both
//! backends' writers and readers go through ([`health`]), SQLite's commit watch
//! ([`commit_watch`]) with the process that holds its write lock ([`lock_holder`]), and what a
//! stalled PostgreSQL commit waits for ([`pg_waits`]). The backends call these; nothing here
//! calls a backend.

pub(in crate::store) mod commit_watch;
pub(in crate::store) mod health;
pub(in crate::store) mod lock_holder;
pub(in crate::store) mod pg_waits;
