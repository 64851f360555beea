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
    /// A request of this user is outstanding. Its next OTP waits until that one is answered
    /// or lost: checked first, the later OTP would move the counter past the earlier one,
    /// and that one would be rejected, rightly.
    busy: std::sync::atomic::AtomicBool,
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
    pub method: crate::radius::client::Method,
    /// Counters the OTP is ahead of the server's (how deep into its window it searches).
    pub otp_offset: u64,
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
    /// The server's RSS when the measurement began (after the warm-up) …
    pub server_rss_start_mib: Option<f64>,
    /// … and how much it grew per minute of the measurement: a long cell tells a leak from
    /// the allocator's noise.
    pub server_rss_growth_mib_per_min: Option<f64>,
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
    /// The next user in the walk without a request outstanding, now marked busy; `None`
    /// while every user has one.
    fn claim_user(&self) -> Option<usize> {
        let n = self.users.len();
        (0..n).find_map(|_| {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            let u = self.users.get(i)?;
            (!u.busy.swap(true, Ordering::AcqRel)).then_some(i)
        })
    }

    /// After an error answer (see [`unjudged`]): the OTP was not checked, so the user's next
    /// request sends it again. Moving on instead, every such reject (the store away for a few
    /// seconds) would push the user's later OTPs further ahead of the server's counter, out of
    /// its look-ahead window, and a short outage would end in "wrong otp value" and locked
    /// tokens. A reject that judged the OTP (wrong, or used already, as when a second run
    /// starts over at the seed file's counters) moves on.
    fn rewind_user(&self, user: usize) {
        if let Some(u) = self.users.get(user) {
            u.next.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn release_user(&self, user: usize) {
        if let Some(u) = self.users.get(user) {
            u.busy.store(false, Ordering::Release);
        }
    }

    /// The claimed user's request with that user's next OTP.
    fn request_for(&self, user: usize, id: u8) -> Option<(Vec<u8>, [u8; 16])> {
        let u = self.users.get(user)?;
        let skip = self.plan.otp_offset;
        let counter = u.next.fetch_add(1 + skip, Ordering::Relaxed) + skip;
        let otp = u.generator.value(counter, u.digits);
        let req = AccessRequest {
            user: format!("{}{}", u.name, self.plan.suffix),
            password: Secret::new(format!("{}{}", self.plan.pin, otp.as_str())),
            message_authenticator: true,
            method: self.plan.method,
            ..Default::default()
        };
        encode_access_request(&req, id, &self.plan.secret).ok()
    }

    /// Whether `p` answers the request sent with `authenticator`, as a NAS decides it: a
    /// reply whose authenticators do not check out is no answer (a stale or forged one), so
    /// the request keeps waiting for its own.
    fn answers(&self, p: &Packet<'_>, authenticator: &[u8; 16]) -> bool {
        crypto::verify_response(p, authenticator, &self.plan.secret, true).is_ok()
    }

    /// Count one request of the measured period: `answer` is (accepted, when), `None` lost.
    fn record(&self, scheduled: Instant, answer: Option<(bool, Instant)>) {
        let t = &self.tally;
        let Some((accepted, at)) = answer else {
            t.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if accepted {
            t.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            t.rejected.fetch_add(1, Ordering::Relaxed);
        }
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let sample = (
            us(scheduled.duration_since(self.measure_from)),
            us(at.duration_since(scheduled)),
        );
        if let Ok(mut l) = t.latencies_us.lock() {
            l.push(sample);
        }
    }
}

/// An Access-Reject that is an error answer, not a judgement of the OTP: its Reply-Message
/// starts with privacyIDEA's `ERR` code (`ERR500: token store unavailable: …`).
fn unjudged(p: &Packet<'_>) -> bool {
    p.code() == Code::AccessReject
        && p.attr(crate::radius::attr::REPLY_MESSAGE)
            .is_some_and(|m| m.starts_with(b"ERR"))
}

async fn connected_socket(server: SocketAddr) -> Option<UdpSocket> {
    let socket = UdpSocket::bind("0.0.0.0:0").await.ok()?;
    socket.connect(server).await.ok()?;
    Some(socket)
}

/// A closed loop's worker: its own socket, one request at a time, the next as soon as the
/// previous one was answered or lost.
async fn closed_worker(shared: Arc<Shared>) {
    let Some(socket) = connected_socket(shared.plan.server).await else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    let mut id: u8 = 0;
    loop {
        let scheduled = Instant::now();
        if scheduled >= shared.measure_until {
            return;
        }
        id = id.wrapping_add(1);
        let Some(user) = shared.claim_user() else {
            // more workers than users: wait for one to come back
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some((bytes, authenticator)) = shared.request_for(user, id) else {
            shared.release_user(user);
            return;
        };
        if socket.send(&bytes).await.is_err() {
            shared.release_user(user);
            continue;
        }
        let counted = scheduled >= shared.measure_from;
        if counted {
            shared.tally.sent.fetch_add(1, Ordering::Relaxed);
        }
        let deadline = tokio::time::Instant::now() + shared.plan.timeout;
        let answer = loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break None,
                Ok(Err(_)) => continue,
                Ok(Ok(n)) => {
                    let Some(Ok(p)) = buf.get(..n).map(Packet::decode) else {
                        continue;
                    };
                    if p.identifier() != id || !shared.answers(&p, &authenticator) {
                        continue; // a late answer to an earlier request
                    }
                    if unjudged(&p) {
                        shared.rewind_user(user);
                    }
                    break Some((p.code() == Code::AccessAccept, Instant::now()));
                }
            }
        };
        shared.release_user(user);
        if counted {
            shared.record(scheduled, answer);
        }
    }
}

/// An open-loop request waiting for its answer.
struct Pending {
    scheduled: Instant,
    /// When it was sent, later than `scheduled` when its ticket waited for a free user: it
    /// is lost `timeout` after this, as a NAS gives up `timeout` after sending.
    sent: Instant,
    user: usize,
    authenticator: [u8; 16],
    counted: bool,
}

/// One socket of the open loop and the requests outstanding on it, by identifier.
///
/// Its sender sends each ticket's request when the ticket comes, whatever is still
/// outstanding; its receiver matches answers by identifier and gives up on a request after
/// the timeout. An unanswered request holds only its own identifier: with one request at a
/// time per socket, as the closed loop does, a lost datagram held back every ticket queued
/// behind it for the whole timeout and showed up as seconds of latency (and more losses) that
/// the server never caused.
struct Lane {
    socket: UdpSocket,
    pending: std::sync::Mutex<Vec<Option<Pending>>>,
    sender_done: std::sync::atomic::AtomicBool,
}

/// Identifiers per socket: RADIUS has 256.
const IDS_PER_LANE: usize = 256;

/// Enough sockets that their identifiers outlast `timeout` at `rate` twice over, so that even
/// a server that answers nothing leaves the sender an identifier for every ticket.
fn lanes_for(rate: f64, timeout: Duration) -> usize {
    let outstanding = 2.0 * rate.max(1.0) * timeout.as_secs_f64();
    ((outstanding / IDS_PER_LANE as f64).ceil() as usize).clamp(8, 1024)
}

impl Lane {
    /// Take a free identifier (searching on from `from`) for a request scheduled at
    /// `scheduled`; `None` when all 256 are outstanding.
    fn reserve(&self, from: u8, scheduled: Instant, counted: bool, user: usize) -> Option<u8> {
        let mut pending = self.pending.lock().ok()?;
        (0..IDS_PER_LANE).find_map(|step| {
            let id = from.wrapping_add(step as u8);
            let slot = pending.get_mut(usize::from(id))?;
            slot.is_none().then(|| {
                *slot = Some(Pending {
                    scheduled,
                    sent: Instant::now(),
                    user,
                    authenticator: [0; 16],
                    counted,
                });
                id
            })
        })
    }

    fn with_slot<T>(&self, id: u8, f: impl FnOnce(&mut Option<Pending>) -> T) -> Option<T> {
        let mut pending = self.pending.lock().ok()?;
        pending.get_mut(usize::from(id)).map(f)
    }
}

async fn open_sender(shared: Arc<Shared>, lane: Arc<Lane>, mut tickets: mpsc::Receiver<Instant>) {
    let mut next_id: u8 = 0;
    while let Some(scheduled) = tickets.recv().await {
        if scheduled >= shared.measure_until {
            break;
        }
        let counted = scheduled >= shared.measure_from;
        // Every user has a request outstanding only when the server is that far behind: the
        // ticket waits, and its latency, counted from `scheduled`, shows the wait.
        let user = loop {
            match shared.claim_user() {
                Some(u) => break Some(u),
                None if Instant::now() >= shared.measure_until + shared.plan.timeout => break None,
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        let Some(user) = user else { break };
        let Some(id) = lane.reserve(next_id, scheduled, counted, user) else {
            // every identifier of this socket is still waiting: the request cannot be sent
            shared.release_user(user);
            if counted {
                shared.tally.sent.fetch_add(1, Ordering::Relaxed);
                shared.tally.lost.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        next_id = id.wrapping_add(1);
        let Some((bytes, authenticator)) = shared.request_for(user, id) else {
            lane.with_slot(id, |slot| slot.take());
            shared.release_user(user);
            break;
        };
        lane.with_slot(id, |slot| {
            if let Some(p) = slot {
                p.authenticator = authenticator;
            }
        });
        if lane.socket.send(&bytes).await.is_err() {
            lane.with_slot(id, |slot| slot.take());
            shared.release_user(user);
            continue;
        }
        if counted {
            shared.tally.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    lane.sender_done.store(true, Ordering::Release);
}

/// How often the receiver looks for requests past their timeout.
const SWEEP_EVERY: Duration = Duration::from_millis(10);

async fn open_receiver(shared: Arc<Shared>, lane: Arc<Lane>) {
    let mut buf = vec![0u8; 4096];
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        if let Ok(Ok(n)) = tokio::time::timeout(wait, lane.socket.recv(&mut buf)).await {
            let at = Instant::now();
            let Some(Ok(p)) = buf.get(..n).map(Packet::decode) else {
                continue;
            };
            // an answer after the timeout finds its slot empty, or reused by a request it does
            // not authenticate for, and is dropped
            let taken = lane.with_slot(p.identifier(), |slot| {
                let mine = slot
                    .as_ref()
                    .is_some_and(|r| shared.answers(&p, &r.authenticator));
                if mine { slot.take() } else { None }
            });
            if let Some(Some(request)) = taken {
                let accepted = p.code() == Code::AccessAccept;
                if unjudged(&p) {
                    shared.rewind_user(request.user);
                }
                shared.release_user(request.user);
                if request.counted {
                    shared.record(request.scheduled, Some((accepted, at)));
                }
            }
            if Instant::now() < next_sweep {
                continue;
            }
        }
        // the sweep, once per SWEEP_EVERY however many answers come: lost requests out, and
        // the end once the sender is done and nothing is outstanding
        next_sweep = Instant::now() + SWEEP_EVERY;
        let now = Instant::now();
        let Ok(mut pending) = lane.pending.lock() else {
            return;
        };
        let expired: Vec<Pending> = pending
            .iter_mut()
            .filter(|s| {
                s.as_ref()
                    .is_some_and(|p| now.duration_since(p.sent) >= shared.plan.timeout)
            })
            .filter_map(Option::take)
            .collect();
        let idle = pending.iter().all(Option::is_none);
        drop(pending);
        for request in expired {
            shared.release_user(request.user);
            if request.counted {
                shared.record(request.scheduled, None);
            }
        }
        if idle && lane.sender_done.load(Ordering::Acquire) {
            return;
        }
    }
}

/// The users in the order they log in: a fixed pseudo-random permutation, walked round.
///
/// Round robin in import order would send user0, user1, … back to back: one commit's
/// consumptions then land on a few adjacent token pages, and its audit rows on a few leaf
/// pages of the (user, time) index while the users have little history. A store with
/// 100,000 tokens looked 15–35 % faster than one with 1,000 for that alone. Real logins come
/// in no such order. The walk reaches each user once per round; that no user has two OTPs
/// in flight is `User::busy`'s job.
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

/// Run the plan. `Err` when the open loop's sockets or its pacer thread cannot start.
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
                busy: Default::default(),
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
    let sample_start = async move {
        tokio::time::sleep_until(measure_from.into()).await;
        (pid.and_then(cpu_ms), pid.and_then(|p| rss_mib(p, "VmRSS:")))
    };
    let (cpu_before, rss_before) = match plan.mode {
        Mode::Closed(n) => {
            for _ in 0..n.max(1) {
                handles.push(tokio::spawn(closed_worker(shared.clone())));
            }
            sample_start.await
        }
        Mode::Open(rate) => {
            let lanes = lanes_for(rate, plan.timeout);
            let (tx, rx) = async_channel_like(lanes);
            for tickets in rx {
                let socket = connected_socket(plan.server).await.ok_or_else(|| {
                    std::io::Error::other("cannot open a UDP socket to the server")
                })?;
                let lane = Arc::new(Lane {
                    socket,
                    pending: std::sync::Mutex::new((0..IDS_PER_LANE).map(|_| None).collect()),
                    sender_done: Default::default(),
                });
                handles.push(tokio::spawn(open_receiver(shared.clone(), lane.clone())));
                handles.push(tokio::spawn(open_sender(shared.clone(), lane, tickets)));
            }
            let start_task = tokio::spawn(sample_start);
            let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || pace(&tx, start, interval, measure_until))?;
            start_task.await.unwrap_or_default()
        }
    };
    for h in handles {
        let _ = h.await;
    }
    let elapsed = plan.duration.as_secs_f64();
    let cpu_after = plan.server_pid.and_then(cpu_ms);
    let rss_after = plan.server_pid.and_then(|p| rss_mib(p, "VmRSS:"));
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
        server_rss_growth_mib_per_min: rss_before
            .zip(rss_after)
            .map(|(a, b)| (b - a) / (elapsed / 60.0)),
        server_rss_start_mib: rss_before,
        server_rss_mib: rss_after,
        server_peak_rss_mib: plan.server_pid.and_then(|p| rss_mib(p, "VmHWM:")),
        timeline,
    })
}

/// Deal the tickets of an open loop, round robin over the lanes' queues, until `until`.
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
            // a lane's queue holds the ticket until its sender takes it
            if let Some(t) = tx.get(i % tx.len().max(1)) {
                let _ = t.try_send(next);
            }
            i += 1;
            next += interval;
        }
    }
}

/// `n` bounded single-consumer queues (one per lane); the pacer deals tickets round
/// robin. A full queue drops the ticket, which shows up as fewer requests sent than scheduled.
fn async_channel_like(n: usize) -> (Vec<mpsc::Sender<Instant>>, Vec<mpsc::Receiver<Instant>>) {
    (0..n).map(|_| mpsc::channel(1024)).unzip()
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

    /// A RADIUS server on loopback that accepts everything after `delay`, except every
    /// `silent_every`-th request, which it never answers. It counts the requests that came
    /// while the same user had one unanswered (silent ones stay unanswered for good, so the
    /// tests that count use no silent requests).
    async fn accepting_server(silent_every: u64, delay: Duration) -> (SocketAddr, Arc<AtomicU64>) {
        use crate::radius::attr::{MESSAGE_AUTHENTICATOR, USER_NAME};
        use crate::radius::packet::Builder;
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let overlaps = Arc::new(AtomicU64::new(0));
        let counted = overlaps.clone();
        let open = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = 0u64;
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(p) = Packet::decode(&buf[..n]) else {
                    continue;
                };
                let user = p.attr(USER_NAME).unwrap_or_default().to_vec();
                if !open.lock().unwrap().insert(user.clone()) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                seen += 1;
                if seen.is_multiple_of(silent_every) {
                    continue;
                }
                let mut b = Builder::new(Code::AccessAccept, p.identifier(), &[0; 16]);
                b.attr(MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
                let mut reply = b.finish();
                crypto::sign_response(&mut reply, p.authenticator(), b"s");
                let (socket, open) = (socket.clone(), open.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    open.lock().unwrap().remove(&user);
                    let _ = socket.send_to(&reply, from).await;
                });
            }
        });
        (addr, overlaps)
    }

    /// A server that rejects each user's first request: with an error (`ERR500 …`), as a store
    /// that is away does, and then expects the same OTP (it was not checked); or plainly, as a
    /// replay is rejected, and then expects the next one. Counts the requests that came with
    /// another OTP than expected.
    async fn rejecting_first_server(error: bool) -> (SocketAddr, Arc<AtomicU64>) {
        use crate::radius::attr::{MESSAGE_AUTHENTICATOR, REPLY_MESSAGE, USER_NAME, USER_PASSWORD};
        use crate::radius::packet::Builder;
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let moved_on = Arc::new(AtomicU64::new(0));
        let counted = moved_on.clone();
        tokio::spawn(async move {
            let mut first: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(p) = Packet::decode(&buf[..n]) else {
                    continue;
                };
                let user = p.attr(USER_NAME).unwrap_or_default().to_vec();
                let hidden = p.attr(USER_PASSWORD).unwrap_or_default();
                let password = crypto::unhide_password(hidden, p.authenticator(), b"s")
                    .unwrap()
                    .expose()
                    .clone();
                // per user: the rejected OTP until it came again, then nothing (all accepted)
                let code = match first.get(&user) {
                    None => {
                        first.insert(user, password);
                        Code::AccessReject
                    }
                    Some(rejected) if rejected.is_empty() => Code::AccessAccept,
                    Some(rejected) => {
                        if (*rejected == password) != error {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        first.insert(user, Vec::new());
                        Code::AccessAccept
                    }
                };
                let mut b = Builder::new(code, p.identifier(), &[0; 16]);
                b.attr(MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
                if code == Code::AccessReject && error {
                    b.attr(REPLY_MESSAGE, b"ERR500: token store unavailable")
                        .unwrap();
                }
                let mut reply = b.finish();
                crypto::sign_response(&mut reply, p.authenticator(), b"s");
                let _ = socket.send_to(&reply, from).await;
            }
        });
        (addr, moved_on)
    }

    /// After an error answer the user's next request sends the same OTP (it was not checked),
    /// in both loops: a generator that moved on would run out of the server's look-ahead
    /// window after a few seconds of a store that is away. After a reject that judged the OTP
    /// (a replay) it moves on, or a second run over the same seeds would never get in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_otp_that_was_not_checked_is_sent_again() {
        for error in [true, false] {
            for mode in [Mode::Open(400.0), Mode::Closed(4)] {
                let (server, unexpected) = rejecting_first_server(error).await;
                let mut plan = plan(server, mode, Duration::from_millis(500));
                plan.duration = Duration::from_millis(500);
                let report = run(plan, users(20)).await.unwrap();
                assert_eq!(
                    unexpected.load(Ordering::Relaxed),
                    0,
                    "error answers: {error}; {}",
                    summary(&report)
                );
                assert!(report.accepted > 20, "{}", summary(&report));
            }
        }
    }

    fn summary(r: &Report) -> String {
        format!(
            "sent {} accepted {} rejected {} lost {} p50 {} ms max {} ms",
            r.sent, r.accepted, r.rejected, r.lost, r.p50_ms, r.max_ms
        )
    }

    fn plan(server: SocketAddr, mode: Mode, timeout: Duration) -> Plan {
        Plan {
            server,
            secret: b"s".to_vec(),
            mode,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(1500),
            timeout,
            pin: String::new(),
            suffix: String::new(),
            method: Default::default(),
            otp_offset: 0,
            server_pid: None,
        }
    }

    fn users(n: usize) -> Vec<(String, OtpGenerator, usize, u64)> {
        (0..n)
            .map(|i| {
                let key = format!("key{i}");
                let generator = OtpGenerator::new(key.as_bytes(), crate::token::HashLib::Sha1);
                (format!("user{i}"), generator, 6, 0)
            })
            .collect()
    }

    /// Open loop: a request the server never answers is lost on its own; the requests
    /// scheduled after it are sent on time and answered at once. (With one request at a time
    /// per socket, each lost one held back the next tickets of its socket for the timeout.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unanswered_request_delays_no_other() {
        let (server, _) = accepting_server(50, Duration::ZERO).await;
        let timeout = Duration::from_millis(800);
        let report = run(plan(server, Mode::Open(2000.0), timeout), users(5000))
            .await
            .unwrap();
        assert!(report.sent > 2000, "{}", summary(&report));
        assert!(
            report.lost > 0,
            "the silent requests count as lost: {}",
            summary(&report)
        );
        assert_eq!(report.rejected, 0, "{}", summary(&report));
        assert_eq!(
            report.sent,
            report.accepted + report.lost,
            "{}",
            summary(&report)
        );
        assert!(
            report.lost <= report.sent / 40,
            "only the silent ones are lost: {}",
            summary(&report)
        );
        assert!(
            report.max_ms < timeout.as_secs_f64() * 1000.0 / 2.0,
            "an answered request waited behind a lost one: {}",
            summary(&report)
        );
    }

    /// No user has two requests outstanding: the later OTP would invalidate the earlier one.
    /// 16 users, answers after 20 ms, 1,000 requests a second: 20 would be outstanding, so
    /// tickets wait for a user to come back, and that wait is in their latency.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_has_one_request_outstanding_at_most() {
        let (server, overlaps) = accepting_server(u64::MAX, Duration::from_millis(20)).await;
        let plan = plan(server, Mode::Open(1000.0), Duration::from_millis(800));
        let report = run(plan, users(16)).await.unwrap();
        assert_eq!(overlaps.load(Ordering::Relaxed), 0, "{}", summary(&report));
        assert!(report.sent > 0, "{}", summary(&report));
        assert_eq!(report.accepted, report.sent, "{}", summary(&report));
        assert!(
            report.p50_ms > 20.0,
            "the wait for a free user is counted: {}",
            summary(&report)
        );
    }

    /// A reply signed with another secret is no answer, in both loops: lost, not rejected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reply_that_does_not_authenticate_is_no_answer() {
        let (server, _) = accepting_server(u64::MAX, Duration::ZERO).await;
        for mode in [Mode::Open(200.0), Mode::Closed(4)] {
            let mut plan = plan(server, mode, Duration::from_millis(200));
            plan.secret = b"not the server's".to_vec();
            plan.duration = Duration::from_millis(500);
            let report = run(plan, users(100)).await.unwrap();
            assert!(report.lost > 0, "{}", summary(&report));
            assert_eq!(report.accepted + report.rejected, 0, "{}", summary(&report));
        }
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
