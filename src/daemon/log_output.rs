//! The daemon's log output: formatted lines collected in memory and written to stderr in
//! batches by one thread.
//!
//! Under load a write(2) per log line was most of what a line cost (2.8 µs of 3.4 µs for a
//! Logging event handler's line, measured with perf; docs/performance.md). Here the lines of
//! a burst go out in one write, at most [`FLUSH_DELAY`] after the first of them, so an admin
//! following the journal sees them at once. Nothing is dropped: when the flusher falls behind
//! (stderr blocked) and [`LIMIT`] bytes wait, the logging threads wait for room, as they
//! waited for write(2) before. [`LogOutput::finish`] writes what is left at exit and a panic
//! writes it before its own message; a SIGKILL loses at most the last few milliseconds of lines
//! (the audit trail, which is in the store, loses nothing).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the flusher waits after the first line of a burst, collecting the rest.
pub const FLUSH_DELAY: Duration = Duration::from_millis(2);

/// Bytes that may wait before the logging threads wait for the flusher.
pub const LIMIT: usize = 1 << 20;

/// The running flusher. Keep it until the process ends and call [`LogOutput::finish`].
pub struct LogOutput {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

/// The `MakeWriter` for tracing-subscriber's fmt layer: each event arrives as one write.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// The flusher waits here for a first line.
    filled: Condvar,
    /// Logging threads wait here while [`LIMIT`] bytes wait.
    drained: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // a line half-appended by a panicking thread is still bytes worth writing
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_out(&self, batch: &[u8]) {
        let out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        write_to(out, batch);
    }

    /// Take what waits and write it. `out` is locked before `pending`, so two flushes (the
    /// flusher's and a panic's) write their batches in the order they took them.
    fn flush_into(&self, batch: &mut Vec<u8>) {
        let out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // the two buffers swap places, so neither is allocated again
        std::mem::swap(batch, &mut self.pending().lines);
        self.drained.notify_all();
        if !batch.is_empty() {
            write_to(out, batch);
        }
        batch.clear();
    }

    fn flush_loop(&self) {
        let mut batch = Vec::new();
        loop {
            let mut pending = self.pending();
            while pending.lines.is_empty() && !pending.closed {
                pending = self
                    .filled
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if pending.lines.is_empty() {
                return;
            }
            let wait = !pending.closed;
            drop(pending);
            if wait {
                std::thread::sleep(FLUSH_DELAY);
            }
            self.flush_into(&mut batch);
        }
    }

    /// Write whatever waits, from the calling thread (panic, exit).
    fn flush_now(&self) {
        self.flush_into(&mut Vec::new());
    }
}

fn write_to(mut out: MutexGuard<'_, Box<dyn Write + Send>>, batch: &[u8]) {
    // there is nowhere left to report a failing stderr
    let _ = out.write_all(batch).and_then(|()| out.flush());
}

impl LogOutput {
    /// Start the flusher thread writing to `out`.
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            filled: Condvar::new(),
            drained: Condvar::new(),
            out: Mutex::new(Box::new(out)),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("otpgate-log".into())
                .spawn(move || shared.flush_loop())?
        };
        Ok(Self {
            shared,
            flusher: Some(flusher),
        })
    }

    pub fn writer(&self) -> LogWriter {
        LogWriter {
            shared: self.shared.clone(),
        }
    }

    /// Write a panic's log lines before the panic message: installed as a panic hook that
    /// then runs the previous one.
    pub fn flush_on_panic(&self) {
        let shared = Arc::downgrade(&self.shared);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(shared) = shared.upgrade() {
                shared.flush_now();
            }
            previous(info);
        }));
    }

    /// Write every line that waits and stop the flusher (dropping it does the same). Lines
    /// logged afterwards are written at once by the thread that logs them.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for LogOutput {
    fn drop(&mut self) {
        self.shared.pending().closed = true;
        self.shared.filled.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.shared.flush_now();
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.pending();
        loop {
            if pending.closed {
                drop(pending);
                self.shared.write_out(line);
                return Ok(line.len());
            }
            if pending.lines.len() < LIMIT {
                break;
            }
            pending = self
                .shared
                .drained
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        // one wake-up per burst, not per line (the flusher sleeps out the delay anyway)
        if first {
            self.shared.filled.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An output that records what reached it, and whether it is blocked.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(sink: &Sink) -> Vec<String> {
        String::from_utf8(sink.bytes.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_line_arrives_in_order_in_few_writes() {
        let sink = Sink::default();
        let output = LogOutput::start(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = output.writer();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        output.finish();
        let lines = lines_of(&sink);
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let own: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> =
                (0..2_000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(own, expected.iter().collect::<Vec<_>>());
        }
        assert!(
            *sink.writes.lock().unwrap() < 8_000 / 10,
            "{} writes for 8,000 lines",
            sink.writes.lock().unwrap()
        );
    }

    #[test]
    fn a_line_goes_out_soon_without_more_lines() {
        let sink = Sink::default();
        let output = LogOutput::start(sink.clone()).unwrap();
        output.writer().write_all(b"alone\n").unwrap();
        let started = Instant::now();
        while lines_of(&sink).is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(lines_of(&sink), ["alone"]);
        output.finish();
    }

    /// A blocked stderr makes loggers wait once the limit is reached; nothing is dropped.
    #[test]
    fn a_blocked_output_holds_loggers_back_and_loses_nothing() {
        let sink = Sink::default();
        let output = LogOutput::start(sink.clone()).unwrap();
        let gate = sink.gate.lock().unwrap();
        let line = vec![b'x'; 1023];
        let logger = {
            let mut w = output.writer();
            let line = line.clone();
            std::thread::spawn(move || {
                for _ in 0..(3 * LIMIT / 1024) {
                    w.write_all(&line).unwrap();
                    w.write_all(b"\n").unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !logger.is_finished(),
            "the logger ran past a blocked output"
        );
        drop(gate);
        logger.join().unwrap();
        output.finish();
        assert_eq!(lines_of(&sink).len(), 3 * LIMIT / 1024);
    }

    #[test]
    fn lines_after_finish_are_written_directly() {
        let sink = Sink::default();
        let output = LogOutput::start(sink.clone()).unwrap();
        let mut late = output.writer();
        late.write_all(b"before\n").unwrap();
        output.finish();
        late.write_all(b"after\n").unwrap();
        assert_eq!(lines_of(&sink), ["before", "after"]);
    }
}
