//! The load generator behind `otpgate bench`: PAP Access-Requests with Message-Authenticator,
//! each carrying the next valid HOTP value of its user (computed from the same seed file the
//! server imported), in a closed loop (N outstanding) or an open loop (a fixed rate; latency is
//! measured from the *scheduled* send time, so a server that falls behind cannot hide its
//! queue). It reports accepted / rejected / lost, throughput, latency percentiles, and — given
//! the server's pid — the server's CPU time per request and its memory.
//!
//! A front-end tool like `radtest`: it uses the RADIUS codec and client, never the core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::radius::client::{AccessRequest, encode_access_request};
use crate::radius::crypto;
use crate::radius::packet::{Code, Packet};
use crate::secret::Secret;
use crate::token::import::ImportedToken;
use crate::token::{OtpGenerator, TokenType};

/// One user the generator logs in as.
struct User {
    name: String,
    generator: OtpGenerator,
    digits: usize,
    next: AtomicU64,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `n` requests outstanding at all times.
    Closed(usize),
    /// A fixed rate per second.
    Open(f64),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub server: SocketAddr,
    pub secret: Vec<u8>,
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    /// The token PIN to put before every OTP.
    pub pin: String,
    /// Appended to every user name (`@realm`).
    pub suffix: String,
    pub server_pid: Option<u32>,
}

/// The measurement.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub mode: String,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub lost: u64,
    pub seconds: f64,
    pub accepted_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Server CPU (user + system) per accepted login, from /proc.
    pub server_cpu_ms_per_login: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
    /// (scheduled send time in µs after the measurement began, latency in µs) of every
    /// answered request, in the order the answers came: where the slow requests cluster.
    #[serde(skip)]
    pub timeline: Vec<(u32, u32)>,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    lost: AtomicU64,
    /// (scheduled send time after `measure_from`, latency), both in µs.
    latencies_us: std::sync::Mutex<Vec<(u32, u32)>>,
}

/// Users with HOTP seeds from an imported OATH CSV (only tokens with a user).
pub fn users_from(
    tokens: &[ImportedToken],
) -> Result<Vec<(String, OtpGenerator, usize, u64)>, String> {
    let out: Vec<_> = tokens
        .iter()
        .filter(|t| t.kind == TokenType::Hotp)
        .filter_map(|t| {
            t.user.as_ref().map(|u| {
                (
                    u.clone(),
                    OtpGenerator::new(t.key.expose(), t.hashlib),
                    usize::try_from(t.otplen).unwrap_or(6),
                    u64::try_from(t.counter).unwrap_or(0),
                )
            })
        })
        .collect();
    if out.is_empty() {
        return Err("the seed file has no HOTP token with a user".into());
    }
    Ok(out)
}

/// utime + stime of a process in milliseconds (USER_HZ is 100 on Linux).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may contain blanks: count fields after the closing parenthesis
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

fn rss_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(idx).copied().unwrap_or(0)) / 1000.0
}

struct Shared {
    plan: Plan,
    users: Vec<User>,
    cursor: AtomicUsize,
    tally: Tally,
    /// Replies before this instant are warm-up and not counted.
    measure_from: Instant,
    measure_until: Instant,
}

impl Shared {
    /// The next request: the next user and that user's next OTP.
    fn next_request(&self, id: u8) -> Option<(Vec<u8>, [u8; 16])> {
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.users.len();
        let u = self.users.get(i)?;
        let counter = u.next.fetch_add(1, Ordering::Relaxed);
        let otp = u.generator.value(counter, u.digits);
        let req = AccessRequest {
            user: format!("{}{}", u.name, self.plan.suffix),
            password: Secret::new(format!("{}{}", self.plan.pin, otp.as_str())),
            message_authenticator: true,
            ..Default::default()
        };
        encode_access_request(&req, id, &self.plan.secret).ok()
    }
}

/// One worker: its own socket, one request at a time. `tickets` carries the scheduled send
/// time (open loop); without tickets it sends as soon as the previous answer came (closed).
async fn worker(shared: Arc<Shared>, mut tickets: Option<mpsc::Receiver<Instant>>) {
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0").await else {
        return;
    };
    if socket.connect(shared.plan.server).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 4096];
    let mut id: u8 = 0;
    loop {
        let scheduled = match &mut tickets {
            Some(rx) => match rx.recv().await {
                Some(t) => t,
                None => return,
            },
            None => Instant::now(),
        };
        if scheduled >= shared.measure_until {
            return;
        }
        id = id.wrapping_add(1);
        let Some((bytes, authenticator)) = shared.next_request(id) else {
            return;
        };
        if socket.send(&bytes).await.is_err() {
            continue;
        }
        let counted = scheduled >= shared.measure_from;
        if counted {
            shared.tally.sent.fetch_add(1, Ordering::Relaxed);
        }
        let deadline = tokio::time::Instant::now() + shared.plan.timeout;
        let outcome = loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break None,
                Ok(Err(_)) => continue,
                Ok(Ok(n)) => {
                    let Some(data) = buf.get(..n) else { continue };
                    let Ok(p) = Packet::decode(data) else {
                        continue;
                    };
                    if p.identifier() != id {
                        continue; // a late answer to an earlier request
                    }
                    let ok = crypto::verify_response(&p, &authenticator, &shared.plan.secret, true)
                        .is_ok();
                    break Some((ok && p.code() == Code::AccessAccept, Instant::now()));
                }
            }
        };
        if !counted {
            continue;
        }
        match outcome {
            None => {
                shared.tally.lost.fetch_add(1, Ordering::Relaxed);
            }
            Some((accepted, at)) => {
                if accepted {
                    shared.tally.accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.tally.rejected.fetch_add(1, Ordering::Relaxed);
                }
                let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                let sample = (
                    us(scheduled.duration_since(shared.measure_from)),
                    us(at.duration_since(scheduled)),
                );
                if let Ok(mut l) = shared.tally.latencies_us.lock() {
                    l.push(sample);
                }
            }
        }
    }
}

/// The users in the order they log in: a fixed pseudo-random permutation, walked round.
///
/// Round robin in import order would send user0, user1, … back to back: one commit's
/// consumptions then land on a few adjacent token pages, and its audit rows on a few leaf
/// pages of the (user, time) index while the users have little history. A store with
/// 100,000 tokens looked 15–35 % faster than one with 1,000 for that alone. Real logins come
/// in no such order. The walk still reaches each user once per round, so one user never has
/// two OTPs in flight (the later one would make the earlier one stale).
fn shuffled<T>(mut users: Vec<T>) -> Vec<T> {
    // splitmix64 with a fixed seed: the same order on every run, no dependency
    let mut state: u64 = 0x0970_9a7e_0bad_cafe;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..users.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        users.swap(i, j);
    }
    users
}

/// Run the plan. `Err` when the open loop's pacer thread cannot start.
pub async fn run(
    plan: Plan,
    users: Vec<(String, OtpGenerator, usize, u64)>,
) -> std::io::Result<Report> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let measure_until = measure_from + plan.duration;
    let shared = Arc::new(Shared {
        users: shuffled(users)
            .into_iter()
            .map(|(name, generator, digits, counter)| User {
                name,
                generator,
                digits,
                next: AtomicU64::new(counter),
            })
            .collect(),
        cursor: AtomicUsize::new(0),
        tally: Tally::default(),
        measure_from,
        measure_until,
        plan: plan.clone(),
    });
    let mut handles = Vec::new();
    let pid = plan.server_pid;
    let sample_cpu = async move {
        tokio::time::sleep_until(measure_from.into()).await;
        pid.and_then(cpu_ms)
    };
    let cpu_before = match plan.mode {
        Mode::Closed(n) => {
            for _ in 0..n.max(1) {
                handles.push(tokio::spawn(worker(shared.clone(), None)));
            }
            sample_cpu.await
        }
        Mode::Open(rate) => {
            // enough workers that a slow server makes requests queue here, where the
            // latency from the scheduled time shows it, rather than being skipped
            let workers = 512;
            let (tx, rx) = async_channel_like(workers);
            for r in rx {
                handles.push(tokio::spawn(worker(shared.clone(), Some(r))));
            }
            let cpu_task = tokio::spawn(sample_cpu);
            let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || pace(&tx, start, interval, measure_until))?;
            cpu_task.await.ok().flatten()
        }
    };
    for h in handles {
        let _ = h.await;
    }
    let elapsed = plan.duration.as_secs_f64();
    let cpu_after = plan.server_pid.and_then(cpu_ms);
    let t = &shared.tally;
    let accepted = t.accepted.load(Ordering::Relaxed);
    let timeline = t
        .latencies_us
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    let mut lat: Vec<u32> = timeline.iter().map(|(_, l)| *l).collect();
    lat.sort_unstable();
    Ok(Report {
        mode: match plan.mode {
            Mode::Closed(n) => format!("closed loop, {n} outstanding"),
            Mode::Open(r) => format!("open loop, {r}/s"),
        },
        sent: t.sent.load(Ordering::Relaxed),
        accepted,
        rejected: t.rejected.load(Ordering::Relaxed),
        lost: t.lost.load(Ordering::Relaxed),
        seconds: elapsed,
        accepted_per_second: accepted as f64 / elapsed,
        p50_ms: percentile(&lat, 0.50),
        p90_ms: percentile(&lat, 0.90),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
        server_cpu_ms_per_login: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) if accepted > 0 => Some((b - a) / accepted as f64),
            _ => None,
        },
        server_rss_mib: plan.server_pid.and_then(|p| rss_mib(p, "VmRSS:")),
        server_peak_rss_mib: plan.server_pid.and_then(|p| rss_mib(p, "VmHWM:")),
        timeline,
    })
}

/// Deal the tickets of an open loop, round robin over the workers' queues, until `until`.
///
/// On a thread of its own: tokio's timer wheel has millisecond slots, so a pacer on it sent
/// five requests at once up to a millisecond late, and that lateness (counted, rightly, from
/// the scheduled time) made up half of the measured p50 at 5,000/s. A thread's `sleep` wakes
/// within tens of microseconds.
fn pace(tx: &[mpsc::Sender<Instant>], start: Instant, interval: Duration, until: Instant) {
    let mut next = start;
    let mut i = 0usize;
    while next < until {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
            continue;
        }
        while next <= now && next < until {
            // a busy worker's queue holds the ticket
            if let Some(t) = tx.get(i % tx.len().max(1)) {
                let _ = t.try_send(next);
            }
            i += 1;
            next += interval;
        }
    }
}

/// `n` bounded single-consumer queues (one per worker); the scheduler deals tickets round
/// robin. A full queue drops the ticket, which shows up as fewer requests sent than scheduled.
fn async_channel_like(n: usize) -> (Vec<mpsc::Sender<Instant>>, Vec<mpsc::Receiver<Instant>>) {
    (0..n).map(|_| mpsc::channel(64)).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_order_is_a_fixed_shuffle_of_every_user() {
        let order = shuffled((0..1000).collect::<Vec<u32>>());
        assert_eq!(order, shuffled((0..1000).collect::<Vec<u32>>()));
        let adjacent = order
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) == 1)
            .count();
        assert!(adjacent < 20, "{adjacent} neighbours in a row");
        let mut sorted = order;
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn reads_its_own_proc_entries() {
        let pid = std::process::id();
        assert!(cpu_ms(pid).is_some());
        assert!(rss_mib(pid, "VmRSS:").is_some_and(|m| m > 0.0));
    }
}
