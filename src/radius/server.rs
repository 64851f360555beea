//! The UDP side of the RADIUS front-end, and the packet path it shares with RadSec
//! (`on_packet`: RadSec's connections feed it their packets and get the answers back through
//! a `ReplyTo`).
//!
//! Per datagram, in the receive loop: decode (bounded), find the client, verify the shared
//! secret and Message-Authenticator (BlastRADIUS rules), consult the duplicate cache, take a
//! concurrency permit, then hand the request to a task that runs the core and sends the
//! signed reply. While every permit is taken the loop stops reading, so a burst waits in the
//! socket's (enlarged) receive buffer rather than being read and dropped. Every drop is
//! counted in a metric and logged at most once a minute per client and reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attr;
use super::credential::Credential;
use super::crypto::{self, Authentic, VerifyError};
use super::dedup::{DedupCache, Key, Seen};
use super::drops::DropLog;
use super::packet::{Code, OwnedPacket, Packet};
use super::settings::{ClientDef, MaPolicy, RadiusSettings};
use super::translate::{self, Reply};
use crate::auth::ledger::Claim;
use crate::auth::{Authentication, Authenticator, Request, Response};
use crate::clock::Stopwatch;

/// Ask for `bytes` of receive buffer: `SO_RCVBUFFORCE` where the process may exceed
/// `net.core.rmem_max` (CAP_NET_ADMIN), else `SO_RCVBUF`, which the kernel caps there.
/// Getting less is logged, not fatal: the default buffer still works, it only holds a
/// shorter burst.
/// A UDP socket on `addr`. An IPv6 one takes IPv6 only, so that `0.0.0.0:1812` and
/// `[::]:1812` (the default) can both be bound on a host whose IPv6 sockets are dual-stack.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

fn enlarge_receive_buffer(socket: &UdpSocket, addr: SocketAddr, bytes: usize) {
    use nix::sys::socket::{setsockopt, sockopt};
    if bytes == 0 {
        return;
    }
    if setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &bytes);
    }
    // Linux reports twice the size asked for (the other half is its bookkeeping)
    let got = nix::sys::socket::getsockopt(socket, sockopt::RcvBuf).unwrap_or(0) / 2;
    if got < bytes {
        tracing::warn!(
            target: "otpgate::radius",
            listen = %addr,
            asked = bytes,
            got,
            "the kernel gave a smaller receive buffer than [radius] receive_buffer asks for; raise net.core.rmem_max (sysctl) to hold longer bursts"
        );
    } else {
        tracing::debug!(target: "otpgate::radius", listen = %addr, bytes = got, "receive buffer");
    }
}

/// Per-client state that survives configuration reloads.
#[derive(Debug, Default)]
struct ClientState {
    /// `auto`: a valid Message-Authenticator has been seen, so it is now required.
    learned_ma: AtomicBool,
    /// Requests without Message-Authenticator since the last periodic report.
    missing_ma: AtomicU64,
}

/// The RADIUS server. One per daemon, shared by the receive loops of all sockets.
pub struct RadiusServer {
    auth: Arc<Authenticator>,
    settings: RwLock<Arc<RadiusSettings>>,
    states: Mutex<HashMap<String, Arc<ClientState>>>,
    dedup: DedupCache,
    permits: Arc<Semaphore>,
    drops: DropLog,
    /// Turns of the receive loops: the systemd watchdog pings only while it moves.
    heartbeat: AtomicU64,
}

/// A receive loop turns at least this often, traffic or not, to show it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

impl std::fmt::Debug for RadiusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusServer").finish_non_exhaustive()
    }
}

/// What a listening socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Authentication,
    Accounting,
}

fn drop_counter(client: &str, reason: &'static str) {
    metrics::counter!("otpgate_radius_dropped_total", "client" => client.to_owned(), "reason" => reason)
        .increment(1);
}

impl RadiusServer {
    pub fn new(auth: Arc<Authenticator>, settings: RadiusSettings) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(settings.max_in_flight));
        let dedup = DedupCache::new(settings.dedup_ttl, 200_000);
        Arc::new(Self {
            auth,
            settings: RwLock::new(Arc::new(settings)),
            states: Mutex::new(HashMap::new()),
            dedup,
            permits,
            drops: DropLog::default(),
            heartbeat: AtomicU64::new(0),
        })
    }

    /// How many times the receive loops have turned (see [`HEARTBEAT`]).
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    pub fn settings(&self) -> Arc<RadiusSettings> {
        match self.settings.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swap clients, secrets and reply attributes; requests in flight finish on the old ones.
    pub fn reload(&self, settings: RadiusSettings) {
        let new = Arc::new(settings);
        match self.settings.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }

    fn state(&self, client: &str) -> Arc<ClientState> {
        match self.states.lock() {
            Ok(mut map) => map.entry(client.to_owned()).or_default().clone(),
            Err(_) => Arc::new(ClientState::default()),
        }
    }

    /// Bind every configured listen address.
    pub async fn bind(settings: &RadiusSettings) -> std::io::Result<Vec<(Arc<UdpSocket>, Port)>> {
        let mut sockets = Vec::new();
        let all = (settings.listen.iter().map(|a| (a, Port::Authentication))).chain(
            settings
                .accounting_listen
                .iter()
                .map(|a| (a, Port::Accounting)),
        );
        for (addr, port) in all {
            let socket = bind_udp(*addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
            })?;
            enlarge_receive_buffer(&socket, *addr, settings.receive_buffer);
            sockets.push((Arc::new(socket), port));
        }
        Ok(sockets)
    }

    /// Receive and answer until `shutdown`; request tasks are spawned on `tracker`.
    pub async fn run(
        self: Arc<Self>,
        socket: Arc<UdpSocket>,
        port: Port,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        let mut buf = vec![0u8; super::packet::MAX_LEN];
        let mut alive = tokio::time::interval(HEARTBEAT);
        loop {
            if self.permits.available_permits() == 0 {
                // Back-pressure: the datagrams stay in the kernel's buffer until a request
                // finishes, instead of being read only to be dropped. Another socket's loop
                // may take the freed permit first; then `on_datagram` drops and counts.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = self.permits.acquire() => drop(permit),
                    _ = alive.tick() => {
                        self.heartbeat.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            let (n, source) = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = alive.tick() => {
                    self.heartbeat.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                r = socket.recv_from(&mut buf) => match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(target: "otpgate::radius", error = %e, "receive failed");
                        continue;
                    }
                },
            };
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            let settings = self.settings();
            let Some(client) = settings.client_for(source.ip()) else {
                drop_counter("unknown", "unknown_client");
                if self.drops.unknown(source.ip()) {
                    tracing::warn!(target: "otpgate::radius", source = %source, "datagram from an unknown client dropped (no [[radius.client]] matches); more in the next minute are summed up in one line");
                }
                continue;
            };
            if client.radsec_only {
                drop_counter(&client.name, "udp_from_radsec_client");
                if let Some(held_back) = self.drops.client(&client.name, "udp_from_radsec_client") {
                    tracing::warn!(target: "otpgate::radius", client = %client.name, source = %source, held_back, "UDP datagram from a RadSec-only client dropped");
                }
                continue;
            }
            let reply_to = ReplyTo::Udp(socket.clone(), source);
            self.on_packet(
                datagram, source, port, &settings, client, reply_to, &tracker,
            );
        }
    }

    /// One packet from a known client, by UDP or over a RadSec connection: verify, answer
    /// retransmits from the duplicate cache, and start the request's task.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_packet(
        self: &Arc<Self>,
        datagram: &[u8],
        source: SocketAddr,
        port: Port,
        settings: &Arc<RadiusSettings>,
        client: &ClientDef,
        reply_to: ReplyTo,
        tracker: &TaskTracker,
    ) {
        let now = Instant::now();
        let packet = match Packet::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                drop_counter(&client.name, "malformed");
                if let Some(held_back) = self.drops.client(&client.name, "malformed") {
                    tracing::warn!(target: "otpgate::radius", client = %client.name, source = %source, error = %e, held_back, "malformed packet dropped");
                }
                return;
            }
        };
        let code = packet.code();
        metrics::counter!("otpgate_radius_requests_total", "client" => client.name.clone(), "code" => code.name())
            .increment(1);
        let served = match port {
            Port::Authentication => matches!(
                code,
                Code::AccessRequest | Code::StatusServer | Code::AccountingRequest
            ),
            Port::Accounting => matches!(code, Code::StatusServer | Code::AccountingRequest),
        };
        if !served {
            drop_counter(&client.name, "unsupported_code");
            if let Some(held_back) = self.drops.client(&client.name, "unsupported_code") {
                tracing::warn!(target: "otpgate::radius", client = %client.name, code = code.as_u8(), held_back, "packet with an unsupported code dropped");
            }
            return;
        }
        let state = self.state(&client.name);
        let require = match client.require_ma {
            MaPolicy::Required => true,
            MaPolicy::Off => false,
            MaPolicy::Auto => state.learned_ma.load(Ordering::Relaxed),
        };
        let proof = match crypto::verify_request(
            &packet,
            client.secret.expose(),
            require && code == Code::AccessRequest,
            client.limit_proxy_state,
        ) {
            Ok(p) => p,
            Err(e) => {
                let reason = match e {
                    VerifyError::MissingMessageAuthenticator => {
                        state.missing_ma.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("otpgate_radius_missing_message_authenticator_total", "client" => client.name.clone()).increment(1);
                        "missing_message_authenticator"
                    }
                    VerifyError::ProxyStateWithoutMessageAuthenticator => "proxy_state_without_ma",
                    _ => "bad_authenticator",
                };
                drop_counter(&client.name, reason);
                if let Some(held_back) = self.drops.client(&client.name, reason) {
                    tracing::warn!(target: "otpgate::radius", client = %client.name, source = %source, error = %e, held_back, "{} dropped", code.name());
                }
                return;
            }
        };
        if code == Code::AccessRequest && !proof.has_message_authenticator {
            state.missing_ma.fetch_add(1, Ordering::Relaxed);
        }
        if client.require_ma == MaPolicy::Auto
            && proof.has_message_authenticator
            && !state.learned_ma.swap(true, Ordering::Relaxed)
        {
            tracing::info!(target: "otpgate::radius", client = %client.name, "client sent a valid Message-Authenticator; it is required from this client from now on");
        }
        let key = Key {
            source,
            identifier: packet.identifier(),
            authenticator: *packet.authenticator(),
        };
        match self.dedup.begin(key, now) {
            Seen::New => {}
            Seen::InFlight => {
                drop_counter(&client.name, "duplicate_in_flight");
                return;
            }
            Seen::Answered { code, attributes } => {
                let reply = translate::rebuild_reply(&packet, code, &attributes, client);
                self.answer_retransmit(&reply_to, tracker, reply, &client.name);
                return;
            }
            Seen::Verbatim(reply) => {
                self.answer_retransmit(&reply_to, tracker, reply, &client.name);
                return;
            }
        }
        match code {
            Code::StatusServer => {
                // RFC 5997 §3: alive is an Access-Accept on the authentication port and an
                // Accounting-Response on the accounting port
                let answer = match port {
                    Port::Authentication => Code::AccessAccept,
                    Port::Accounting => Code::AccountingResponse,
                };
                let reply = bare_reply(&packet, answer, client);
                self.send(tracker, key, reply, &reply_to, &client.name);
            }
            Code::AccountingRequest => {
                let status = packet
                    .attr(attr::ACCT_STATUS_TYPE)
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_be_bytes)
                    .and_then(|v| {
                        settings
                            .dictionary
                            .attr("Acct-Status-Type")
                            .and_then(|d| d.value_name(u64::from(v)).map(str::to_owned))
                    })
                    .unwrap_or_default();
                tracing::info!(
                    target: "otpgate::radius",
                    client = %client.name,
                    user = %packet.attr(attr::USER_NAME).map(String::from_utf8_lossy).unwrap_or_default(),
                    session = %packet.attr(attr::ACCT_SESSION_ID).map(String::from_utf8_lossy).unwrap_or_default(),
                    status = %status,
                    "Accounting-Request answered (otpgate does not store accounting)"
                );
                let reply = bare_reply(&packet, Code::AccountingResponse, client);
                self.send(tracker, key, reply, &reply_to, &client.name);
            }
            _ => {
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    self.dedup.abandon(&key);
                    drop_counter(&client.name, "overload");
                    if let Some(held_back) = self.drops.client(&client.name, "overload") {
                        tracing::warn!(target: "otpgate::radius", client = %client.name, held_back, "too many requests in flight; Access-Request dropped (the NAS will retransmit)");
                    }
                    return;
                };
                let this = self.clone();
                let request = Verified {
                    packet: packet.to_owned_packet(),
                    proof,
                    client: client.clone(),
                    settings: settings.clone(),
                    reply_to,
                    source,
                    key,
                };
                // boxed: tokio copies a task's future when it spawns it, and a login's is large
                tracker.spawn(async move {
                    let guard = Abandon {
                        dedup: &this.dedup,
                        key,
                        armed: true,
                    };
                    Box::pin(this.access_request(request, guard)).await;
                    drop(permit);
                });
            }
        }
    }

    fn answer_retransmit(
        &self,
        reply_to: &ReplyTo,
        tracker: &TaskTracker,
        reply: Vec<u8>,
        client: &str,
    ) {
        metrics::counter!("otpgate_radius_duplicates_answered_total", "client" => client.to_owned()).increment(1);
        let reply_to = reply_to.clone();
        tracker.spawn(async move {
            let _ = reply_to.send(&reply).await;
        });
    }

    fn send(
        &self,
        tracker: &TaskTracker,
        key: Key,
        reply: Reply,
        reply_to: &ReplyTo,
        client: &str,
    ) {
        self.dedup.finish(key, &reply.bytes);
        metrics::counter!("otpgate_radius_replies_total", "client" => client.to_owned(), "code" => reply.code.name()).increment(1);
        let reply_to = reply_to.clone();
        tracker.spawn(async move {
            if let Err(e) = reply_to.send(&reply.bytes).await {
                tracing::warn!(target: "otpgate::radius", error = %e, to = %reply_to, "send failed");
            }
        });
    }

    async fn access_request(&self, request: Verified, mut guard: Abandon<'_>) {
        let watch = Stopwatch::start();
        let Verified {
            packet,
            proof,
            client,
            settings,
            reply_to,
            source,
            key,
        } = request;
        let packet = packet.packet();
        let credential = Credential::of(&packet, &proof, &client);
        if let Credential::Unsupported(what) = credential {
            let request = translate::to_request(&packet, &proof, &credential, &client, source.ip());
            let reply = self
                .refuse_unsupported(what, request, &packet, &credential, &client, &settings)
                .await;
            self.reply(&reply, key, &mut guard, &client.name, &reply_to)
                .await;
            return;
        }
        let fingerprint = settings
            .shared_ledger
            .unwrap_or_else(|| self.auth.shared_store())
            .then(|| {
                format!(
                    "radius {} {} {}",
                    source.ip(),
                    packet.identifier(),
                    data_encoding::HEXLOWER.encode(packet.authenticator())
                )
            });
        if let Some(fp) = &fingerprint {
            match self.auth.claim_request(fp).await {
                Ok(Claim::Mine) => {}
                Ok(Claim::Answered(answer)) => {
                    self.dedup.finish(key, &answer);
                    guard.armed = false;
                    metrics::counter!("otpgate_radius_ledger_answers_total", "client" => client.name.clone()).increment(1);
                    tracing::info!(target: "otpgate::radius", client = %client.name, source = %source, "retransmit answered with another node's reply (request ledger)");
                    let _ = reply_to.send(&answer).await;
                    return;
                }
                Ok(Claim::InFlight) => {
                    drop_counter(&client.name, "in_flight_on_another_node");
                    return;
                }
                // the store's breaker logged the outage, and the check fails on its own
                Err(e) if e.is_unavailable() => {}
                Err(e) => {
                    tracing::warn!(target: "otpgate::radius", error = %e, "request ledger unavailable; processing without it");
                }
            }
        }
        let request = translate::to_request(&packet, &proof, &credential, &client, source.ip());
        let user = request.user.clone().unwrap_or_default();
        let outcome = self.auth.validate_check(request).await;
        if outcome.store_unavailable && settings.no_reply_when_store_unavailable {
            // `guard` forgets the duplicate-cache entry: a retransmit is checked again
            drop_counter(&client.name, "store_unavailable");
            tracing::info!(
                target: "otpgate::radius",
                user = %user,
                client = %client.name,
                source = %source,
                result = "no reply",
                reason = "token store unavailable",
                duration_ms = watch.elapsed().as_secs_f64() * 1000.0,
                "Access-Request"
            );
            return;
        }
        let reply = translate::access_reply(
            &packet,
            &outcome.response,
            outcome.user.as_ref(),
            &credential,
            &settings,
            &client,
        );
        let code = reply.code.name();
        self.reply(&reply, key, &mut guard, &client.name, &reply_to)
            .await;
        if let Some(fp) = fingerprint {
            self.auth.record_answer(&fp, &reply.bytes);
        }
        tracing::info!(
            target: "otpgate::radius",
            user = %user,
            client = %client.name,
            source = %source,
            result = code,
            reply_message = outcome.response.message().unwrap_or(""),
            duration_ms = watch.elapsed().as_secs_f64() * 1000.0,
            "Access-Request"
        );
    }

    /// Send a request's reply and keep it for retransmits.
    async fn reply(
        &self,
        reply: &Reply,
        key: Key,
        guard: &mut Abandon<'_>,
        client: &str,
        reply_to: &ReplyTo,
    ) {
        self.dedup.finish(key, &reply.bytes);
        guard.armed = false;
        metrics::counter!("otpgate_radius_replies_total", "client" => client.to_owned(), "code" => reply.code.name()).increment(1);
        if let Err(e) = reply_to.send(&reply.bytes).await {
            tracing::warn!(target: "otpgate::radius", error = %e, to = %reply_to, "send failed");
        }
    }

    /// An Access-Request with a method otpgate does not take (EAP) or no credential at all:
    /// rejected with a message naming it, an audit row, a metric and a rate-limited log line;
    /// no token is looked at, so no failcounter moves.
    async fn refuse_unsupported(
        &self,
        what: &'static str,
        request: Request,
        packet: &Packet<'_>,
        credential: &Credential,
        client: &ClientDef,
        settings: &RadiusSettings,
    ) -> Reply {
        let message =
            format!("otpgate does not accept {what}; use PAP, CHAP, MS-CHAP or MS-CHAPv2");
        metrics::counter!("otpgate_radius_unsupported_total", "client" => client.name.clone(), "method" => what).increment(1);
        if let Some(held_back) = self.drops.client(&client.name, what) {
            tracing::warn!(
                target: "otpgate::radius",
                client = %client.name,
                user = request.user.as_deref().unwrap_or(""),
                held_back,
                "Access-Request rejected: {message}"
            );
        }
        self.auth.refused_before_check(&request, &message).await;
        let mut detail = serde_json::Map::new();
        detail.insert("message".into(), message.into());
        let response = Response::decided(false, Authentication::Reject, detail);
        translate::access_reply(packet, &response, None, credential, settings, client)
    }

    /// Periodic work: sweep the duplicate cache, report clients that send no
    /// Message-Authenticator.
    pub async fn housekeeping(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.dedup.sweep(Instant::now());
            if let Some(s) = self.drops.unknown_summary() {
                let samples: Vec<String> = s.samples.iter().map(ToString::to_string).collect();
                tracing::warn!(
                    target: "otpgate::radius",
                    dropped = s.held_back,
                    sources = %samples.join(", "),
                    "datagrams from unknown clients dropped in the last minute (sources: a few of them)"
                );
            }
            if let Err(e) = self.auth.ledger_cleanup().await {
                tracing::debug!(target: "otpgate::radius", error = %e, "request ledger cleanup failed");
            }
            metrics::gauge!("otpgate_radius_duplicate_cache_entries").set(self.dedup.len() as f64);
            let mut silent = Vec::new();
            if let Ok(states) = self.states.lock() {
                for (name, s) in states.iter() {
                    let n = s.missing_ma.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        silent.push(format!("{name} ({n})"));
                    }
                }
            }
            if !silent.is_empty() {
                silent.sort();
                tracing::warn!(target: "otpgate::radius", clients = %silent.join(", "), "clients sending Access-Requests without Message-Authenticator in the last minute (BlastRADIUS, CVE-2024-3596): configure them to send it");
            }
        }
    }
}

/// An Access-Request whose client, secret and Message-Authenticator were checked, on its way
/// to the task that answers it.
struct Verified {
    packet: OwnedPacket,
    proof: Authentic,
    client: ClientDef,
    /// The configuration it was checked against; it is answered by the same one.
    settings: Arc<RadiusSettings>,
    reply_to: ReplyTo,
    source: SocketAddr,
    key: Key,
}

/// Where a request's answer goes: back out of the UDP socket it came in on, or into the
/// writer of the RadSec connection it came over.
#[derive(Debug, Clone)]
pub(super) enum ReplyTo {
    Udp(Arc<UdpSocket>, SocketAddr),
    Stream(tokio::sync::mpsc::Sender<Vec<u8>>, SocketAddr),
}

impl ReplyTo {
    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Udp(socket, to) => socket.send_to(bytes, *to).await.map(|_| ()),
            Self::Stream(tx, _) => tx
                .send(bytes.to_vec())
                .await
                .map_err(|_| std::io::Error::other("the RadSec connection is closed")),
        }
    }
}

impl std::fmt::Display for ReplyTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(_, to) => write!(f, "{to}"),
            Self::Stream(_, to) => write!(f, "{to} (RadSec)"),
        }
    }
}

/// A reply without attributes of its own (Status-Server, Accounting).
fn bare_reply(request: &Packet<'_>, code: Code, client: &ClientDef) -> Reply {
    let b = translate::start_reply(request, code);
    Reply {
        code,
        bytes: translate::finish_reply(b, request, client),
    }
}

/// Forgets the duplicate-cache entry of a request that ends without a reply (a bug or a panic
/// in its task), so the NAS's retransmit is processed instead of ignored.
struct Abandon<'a> {
    dedup: &'a DedupCache,
    key: Key,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.dedup.abandon(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn ipv4_and_ipv6_wildcards_bind_the_same_port() {
        let v4 = super::bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = super::bind_udp(format!("[::]:{port}").parse().unwrap());
        // hosts without IPv6 cannot bind [::] at all; everywhere else it must work
        if let Err(e) = &v6 {
            assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable, "{e}");
        }
    }
}
