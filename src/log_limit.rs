//! Log lines that repeat once per request or per commit when something is broken for all of
//! them (a full disk, a store that refuses every write): at most one line per interval, each
//! saying how many it stands for. At thousands of logins a second an error line per login
//! buried the cause and filled the disk the log lives on (11,188 lines in 8 s with a full
//! SQLite disk).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of repeating line; a `static` beside the `tracing` call.
#[derive(Debug)]
pub struct Repeated {
    interval: Duration,
    /// When the last line was written, and how many were held back since.
    state: Mutex<Option<(Instant, u64)>>,
}

impl Repeated {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(None),
        }
    }

    /// `Some(held_back)`: write the line now, with how many like it were not written since the
    /// last one. `None`: hold this one back.
    pub fn tick(&self) -> Option<u64> {
        self.tick_at(Instant::now())
    }

    fn tick_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.as_mut() {
            Some((last, held)) if now.saturating_duration_since(*last) < self.interval => {
                *held += 1;
                None
            }
            Some((_, held)) => {
                let n = *held;
                *state = Some((now, 0));
                Some(n)
            }
            None => {
                *state = Some((now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let r = Repeated::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(r.tick_at(t), Some(0));
        for i in 1..=5 {
            assert_eq!(r.tick_at(t + Duration::from_secs(i)), None);
        }
        assert_eq!(r.tick_at(t + Duration::from_secs(10)), Some(5));
        assert_eq!(r.tick_at(t + Duration::from_secs(11)), None);
        assert_eq!(r.tick_at(t + Duration::from_secs(30)), Some(1));
    }
}
