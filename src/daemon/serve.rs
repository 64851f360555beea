//! `otpgate serve`: run the front-ends until SIGTERM, reload on SIGHUP.
//!
//! Start-up opens the store (creating the key file and database on a fresh installation),
//! binds every socket before it reports ready, and logs the addresses it actually bound (so
//! `:0` in tests and containers is discoverable). SIGHUP re-reads the file: a bad file is
//! refused with its errors logged and the running configuration keeps serving; a good one is
//! swapped in atomically (requests in flight finish on the old one), and the audit table's
//! per-user index follows its `auth_max_*` policies (`store::login_index`). SIGTERM stops
//! receiving, answers what is in flight, flushes the audit queue and exits.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{KeyMode, StartError, open};
use crate::auth::Authenticator;
use crate::config::{self, Config, ConfigError};
use crate::radius::server::{Port, RadiusServer};
use crate::store::Backend;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Bind(std::io::Error),
    #[error("nothing to serve: the configuration has neither a [radius] nor an [http] table")]
    NothingToServe,
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("refusing to start: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnsafeFiles(Vec<crate::issues::Issue>),
}

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Expired challenges stay this long before cleanup deletes them, so an answer to an expired
/// challenge is told "Response did not match the challenge." rather than "wrong otp pin".
const CHALLENGE_GRACE_SECONDS: i64 = 24 * 3600;

pub async fn serve(path: &Path) -> Result<(), ServeError> {
    let config = config::load(path)?;
    log_warnings(&config);
    if !config.unsafe_files.is_empty() {
        return Err(ServeError::UnsafeFiles(config.unsafe_files));
    }
    if config.radius.is_none() && config.http_listen.is_none() && config.ldap_proxy.is_none() {
        return Err(ServeError::NothingToServe);
    }
    let key_existed = config.key_file.exists();
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let opened = tokio::select! {
        opened = open_when_reachable(&config) => opened?,
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            tracing::info!("stopped before the database answered");
            return Ok(());
        }
    };
    if opened.created_key {
        tracing::info!(
            key_file = %config.key_file.display(),
            database = %config.store.database.redacted(),
            "first start: created the key file (mode 0600) and the token store; keep a backup of the key file"
        );
    } else if !key_existed {
        tracing::warn!(key_file = %config.key_file.display(), "key file missing");
    }
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // a recorder only where something reads it
    let metrics = config
        .http_listen
        .and_then(|_| crate::http::install_metrics());
    if let Some(handle) = &metrics {
        tracker.spawn(crate::http::metrics_upkeep(
            handle.clone(),
            shutdown.clone(),
        ));
    }

    let radius = match &config.radius {
        Some(settings) => {
            let sockets = RadiusServer::bind(settings)
                .await
                .map_err(ServeError::Bind)?;
            let server = RadiusServer::new(opened.auth.clone(), settings.clone());
            for (socket, port) in sockets {
                let local = socket.local_addr().map_err(ServeError::Bind)?;
                match port {
                    Port::Authentication => {
                        tracing::info!(address = %local, clients = settings.clients.len(), "RADIUS listening")
                    }
                    Port::Accounting => {
                        tracing::info!(address = %local, "RADIUS accounting listening")
                    }
                }
                tracker.spawn(
                    server
                        .clone()
                        .run(socket, port, shutdown.clone(), tracker.clone()),
                );
            }
            if let Some(radsec) = &settings.radsec {
                for listener in bind_tcp(&radsec.listen).await.map_err(ServeError::Bind)? {
                    let local = listener.local_addr().map_err(ServeError::Bind)?;
                    tracing::info!(address = %local, "RadSec listening");
                    tracker.spawn(crate::radius::radsec::run(
                        server.clone(),
                        listener,
                        shutdown.clone(),
                        tracker.clone(),
                    ));
                }
            }
            tracker.spawn(server.clone().housekeeping(shutdown.clone()));
            Some(server)
        }
        None => None,
    };
    let ldap_proxy = match &config.ldap_proxy {
        Some(settings) => {
            let plain = bind_tcp(&settings.listen).await.map_err(ServeError::Bind)?;
            let tls = bind_tcp(&settings.listen_tls)
                .await
                .map_err(ServeError::Bind)?;
            let proxy = Arc::new(crate::ldap::Proxy::new(
                settings.clone(),
                opened.auth.clone(),
            ));
            let listeners = plain
                .into_iter()
                .map(|l| (l, false))
                .chain(tls.into_iter().map(|l| (l, true)));
            for (listener, is_tls) in listeners {
                let local = listener.local_addr().map_err(ServeError::Bind)?;
                tracing::info!(address = %local, ldaps = is_tls, upstream = ?settings.upstream, "LDAP proxy listening");
                tracker.spawn(crate::ldap::server::run(
                    proxy.clone(),
                    listener,
                    is_tls,
                    shutdown.clone(),
                    tracker.clone(),
                ));
            }
            Some(proxy)
        }
        None => None,
    };
    if let Some(addr) = config.http_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind(with_addr(e, addr)))?;
        let local = listener.local_addr().map_err(ServeError::Bind)?;
        let tls = config.http_api.tls.clone();
        tracing::info!(
            address = %local,
            validate_check = config.http_validate,
            https = tls.is_some(),
            "HTTP listening (/metrics, /healthz{})",
            if config.http_validate { ", /validate/*, /auth" } else { "" }
        );
        let app = crate::http::router(
            opened.auth.clone(),
            metrics,
            config.http_validate,
            config.http_trusted.clone(),
            config.http_api.clone(),
        )
        .into_make_service_with_connect_info::<crate::http::Peer>();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let served = match tls {
                None => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                }
                Some(tls) => match crate::http::tls::TlsListener::new(listener, tls) {
                    Ok(l) => {
                        axum::serve(l, app)
                            .with_graceful_shutdown(async move { stop.cancelled().await })
                            .await
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
    }
    tracker.spawn(challenge_cleanup(opened.auth.clone(), shutdown.clone()));
    let (login_index, wanted) = watch::channel(config.policies.counts_logins());
    tracker.spawn(crate::store::login_index::keep_login_index(
        opened.store.clone(),
        wanted,
        shutdown.clone(),
    ));

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(config = %path.display(), node = %config.node, "otpgate ready");
    if let Some(period) = sd_notify::watchdog_enabled() {
        tracker.spawn(watchdog(period, radius.clone(), shutdown.clone()));
    }

    let mut running = config;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                reload(path, &mut running, &opened.auth, radius.as_deref(), ldap_proxy.as_deref());
                // every reload, so that a build that failed is tried again
                login_index.send_replace(running.policies.counts_logins());
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    tracing::info!("stopping: answering requests in flight");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    drop(radius);
    opened.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How long a node that starts before its PostgreSQL answers waits between two tries.
const START_RETRY: Duration = Duration::from_secs(1);
/// How often it says again that it is still waiting.
const START_WAIT_REMINDER: Duration = Duration::from_secs(60);

/// Open the installation; while PostgreSQL does not answer (a node that boots before its
/// database, a failover under way), wait for it instead of exiting, and listen on nothing
/// meanwhile, so that NASes use the other nodes. Anything else the database says (a wrong
/// password, a missing database) ends the start at once.
async fn open_when_reachable(config: &Config) -> Result<super::Opened, StartError> {
    let started = std::time::Instant::now();
    let mut reminded: Option<std::time::Instant> = None;
    loop {
        let error = match open(config, KeyMode::CreateIfFresh).await {
            Err(StartError::Store { url, source })
                if config.store.database.backend() == Backend::Postgres
                    && source.is_unavailable() =>
            {
                (url, source)
            }
            other => {
                if reminded.is_some() {
                    tracing::warn!(
                        waited_s = started.elapsed().as_secs(),
                        "the database answers; starting"
                    );
                }
                return other;
            }
        };
        if reminded.is_none_or(|at| at.elapsed() >= START_WAIT_REMINDER) {
            let (url, source) = &error;
            tracing::error!(
                database = %url,
                error = %source,
                waited_s = started.elapsed().as_secs(),
                "the database does not answer; waiting for it before serving"
            );
            let _ =
                sd_notify::notify(&[sd_notify::NotifyState::Status("waiting for the database")]);
            reminded = Some(std::time::Instant::now());
        }
        tokio::time::sleep(START_RETRY).await;
    }
}

fn with_addr(e: std::io::Error, addr: SocketAddr) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

/// A TCP listener on every address (the LDAP proxy, RadSec).
async fn bind_tcp(addrs: &[SocketAddr]) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    let mut out = Vec::new();
    for addr in addrs {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| with_addr(e, *addr))?;
        out.push(l);
    }
    Ok(out)
}

/// Re-read the configuration; keep the running one if the new file is bad.
/// What `check-config` warns about, once per start and reload.
fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
}

fn reload(
    path: &Path,
    running: &mut Config,
    auth: &Authenticator,
    radius: Option<&RadiusServer>,
    ldap_proxy: Option<&crate::ldap::Proxy>,
) {
    let new = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "configuration reload refused; the running configuration stays in force");
            return;
        }
    };
    log_warnings(&new);
    if !new.unsafe_files.is_empty() {
        for issue in &new.unsafe_files {
            tracing::error!(key = %issue.key, "{}", issue.message);
        }
        tracing::error!(
            "configuration reload refused: secrets other users can read; the running configuration stays in force"
        );
        return;
    }
    let mut needs_restart = Vec::new();
    if new.store != running.store {
        needs_restart.push("[database]");
    }
    if new.key_file != running.key_file {
        needs_restart.push("secrets.key_file");
    }
    if new.http_listen != running.http_listen
        || new.http_validate != running.http_validate
        || new.http_trusted != running.http_trusted
        || new.http_api.tls.is_some() != running.http_api.tls.is_some()
        || new.http_api.token_lifetime != running.http_api.token_lifetime
    {
        needs_restart.push("[http]");
    }
    let accounts = |c: &Config| -> Vec<(String, String, Vec<String>)> {
        c.http_api
            .accounts
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    a.password_hash.expose().clone(),
                    a.rights.clone(),
                )
            })
            .collect()
    };
    if accounts(&new) != accounts(running) {
        needs_restart.push("[[api_account]]");
    }
    match (&new.radius, &running.radius) {
        (Some(n), Some(r)) if n.listen != r.listen => needs_restart.push("radius.listen"),
        (Some(n), Some(r)) if n.accounting_listen != r.accounting_listen => {
            needs_restart.push("radius.accounting_listen")
        }
        (Some(n), Some(r))
            if n.radsec.as_ref().map(|x| &x.listen) != r.radsec.as_ref().map(|x| &x.listen) =>
        {
            needs_restart.push("radius.radsec.listen")
        }
        (Some(_), None) | (None, Some(_)) => needs_restart.push("[radius]"),
        _ => {}
    }
    auth.reload(super::auth_config(&new));
    auth.reload_upstreams(Arc::new(crate::remote::Remotes::new(&new.remotes)));
    if let (Some(server), Some(settings)) = (radius, &new.radius) {
        server.reload(settings.clone());
    }
    match (&new.ldap_proxy, &running.ldap_proxy) {
        (Some(n), Some(r)) if n.listen != r.listen || n.listen_tls != r.listen_tls => {
            needs_restart.push("ldap_proxy.listen")
        }
        (Some(_), None) | (None, Some(_)) => needs_restart.push("[ldap_proxy]"),
        _ => {}
    }
    if let (Some(proxy), Some(settings)) = (ldap_proxy, &new.ldap_proxy) {
        // certificates, upstreams and mappings for the connections that come next
        proxy.reload(settings.clone());
    }
    if !needs_restart.is_empty() {
        tracing::warn!(
            changed = %needs_restart.join(", "),
            "reloaded; these changes take effect only after a restart"
        );
    }
    tracing::info!(config = %path.display(), "configuration reloaded");
    *running = new;
}

/// Delete challenges a day after they expired.
async fn challenge_cleanup(auth: Arc<Authenticator>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let cutoff = auth.now().timestamp() - CHALLENGE_GRACE_SECONDS;
        match auth.store().cleanup_challenges(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired challenges cleaned up"),
            Err(e) => tracing::warn!(error = %e, "challenge cleanup failed"),
        }
    }
}

/// systemd's watchdog (`WatchdogSec=`): a ping every third of the period while the RADIUS
/// receive loops turn, so a daemon whose request path is wedged stops pinging and is restarted.
async fn watchdog(
    period: Duration,
    radius: Option<Arc<RadiusServer>>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(period / 3);
    let (mut last, mut moved_at) = (None, std::time::Instant::now());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let beat = radius.as_ref().map(|r| r.heartbeat());
        if beat != last {
            (last, moved_at) = (beat, std::time::Instant::now());
        }
        // a loop turns at least once a second; two seconds without a turn is a wedge
        if beat.is_none() || moved_at.elapsed() < crate::radius::server::HEARTBEAT * 2 {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!(
                "the RADIUS receive loops stopped turning; the systemd watchdog will restart the daemon"
            );
        }
    }
}
