//! `Counter` (spec §3.4): named counters, one row per node, summed when read.
//!
//! An increase is bookkeeping: it rides in the store's next commit and the login does not
//! wait for that commit (a second fsync on every matching login). With `abort_on_error` the
//! action waits, so a failed increment still ends the request. Reads of a counter wait for
//! the queued increments first (`store::counters`).

use super::{Done, HandlerError, Run};
use crate::event::options::Options;

pub const ACTIONS: &[&str] = &["increase_counter", "decrease_counter", "reset_counter"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterAction {
    Increase(String),
    Decrease { name: String, allow_negative: bool },
    Reset(String),
}

impl CounterAction {
    /// Action names are case-sensitive (errata 12).
    pub fn parse(action: &str, opts: &mut Options) -> Result<Self, String> {
        let name = opts.required("counter_name")?;
        Ok(match action {
            "increase_counter" => Self::Increase(name),
            "decrease_counter" => Self::Decrease {
                name,
                allow_negative: opts.flag("allow_negative_values"),
            },
            "reset_counter" => Self::Reset(name),
            other => {
                return Err(format!(
                    "unknown Counter action {other:?} (known: {})",
                    ACTIONS.join(", ")
                ));
            }
        })
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let store = run.scope.actions.store();
        let node = run.scope.actions.node();
        match self {
            Self::Increase(name) if run.def.abort_on_error => {
                store.counter_add(name, node, 1).await
            }
            Self::Increase(name) => {
                store.counter_add_queued(name, node, 1);
                Ok(())
            }
            Self::Decrease {
                name,
                allow_negative,
            } => store.counter_decrease(name, node, *allow_negative).await,
            Self::Reset(name) => store.counter_reset(name, node).await,
        }
        .map_err(HandlerError::store)?;
        Ok(Done::ok())
    }
}
