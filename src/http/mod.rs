//! The HTTP operations endpoint: `/metrics` (Prometheus text) and `/healthz` (the store
//! answers and takes writes). A front-end like the others: it never touches the store
//! directly beyond the authenticator's health check.

mod api;
mod envelope;
mod jwt;
pub mod params;
pub mod settings;
pub mod tls;
mod validate;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::log_limit::Repeated;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's histograms are folded into their summaries when nobody scrapes:
/// until then every recorded value is kept.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Install the process-wide metrics recorder once, for `/metrics`; later calls return the same
/// handle. Without a listener there is no recorder: the metrics cost nothing then.
pub fn install_metrics() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                None
            }
        })
        .clone()
}

/// Keep the recorder's memory bounded whether or not anyone scrapes `/metrics`.
pub async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// The client's address, from a plain or a TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        Self(*s.remote_addr())
    }
}

#[derive(Clone)]
struct AppState {
    auth: Arc<Authenticator>,
    metrics: Option<PrometheusHandle>,
}

/// The operations router; with `validate_check`, also privacyIDEA's `/validate/*` and `/auth`
/// (trusting the `client` parameter only from the `trusted` networks).
pub fn router(
    auth: Arc<Authenticator>,
    metrics: Option<PrometheusHandle>,
    validate_check: bool,
    trusted: Vec<ipnet::IpNet>,
    api: settings::ApiSettings,
) -> Router {
    let ops = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(health))
        .with_state(AppState {
            auth: auth.clone(),
            metrics,
        });
    if !validate_check {
        return ops;
    }
    let state = Arc::new(validate::ApiState {
        auth,
        trusted,
        settings: api,
        throttle: Default::default(),
        dummy_hash: Default::default(),
    });
    ops.merge(
        Router::new()
            .route(
                "/validate/check",
                get(validate::check).post(validate::check),
            )
            .route(
                "/validate/radiuscheck",
                get(validate::check).post(validate::check),
            )
            .route(
                "/validate/samlcheck",
                get(validate::check).post(validate::check),
            )
            .route(
                "/validate/triggerchallenge",
                get(validate::trigger_challenge).post(validate::trigger_challenge),
            )
            .route("/validate/polltransaction", get(validate::poll_transaction))
            .route(
                "/validate/polltransaction/{transaction_id}",
                get(validate::poll_transaction),
            )
            .route("/auth", axum::routing::post(api::auth))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(state),
    )
}

/// Bytes a request body may have: a login is a few hundred.
const MAX_BODY: usize = 64 * 1024;

async fn render_metrics(State(state): State<AppState>) -> String {
    // read at each scrape: the breaker keeps no gauge of its own
    let up = if state.auth.store().reachable() {
        1.0
    } else {
        0.0
    };
    metrics::gauge!("otpgate_store_up").set(up);
    let (connections, idle) = state.auth.store().pool_connections();
    metrics::gauge!("otpgate_store_pool_connections").set(f64::from(connections));
    metrics::gauge!("otpgate_store_pool_idle").set(idle as f64);
    // the Counter handler's counters, summed over the nodes; a slow store skips a scrape
    let counters = state.auth.store().counters();
    if let Ok(Ok(counters)) = tokio::time::timeout(Duration::from_secs(2), counters).await {
        for (name, value) in counters {
            metrics::gauge!("otpgate_event_counter", "name" => name).set(value as f64);
        }
    }
    state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default()
}

/// The answer's first words are what a load balancer matches; the reason after them is for
/// the admin who asks (`the database's write lock is held by process 4711 (sqlite3)`).
async fn health(State(state): State<AppState>) -> (StatusCode, String) {
    // a load balancer asks every few seconds; the store's own lines say when it goes and comes
    static REFUSING: Repeated = Repeated::new(Duration::from_secs(60));
    static UNAVAILABLE: Repeated = Repeated::new(Duration::from_secs(60));
    let store = state.auth.store();
    if let Some(why) = store.refusing_writes() {
        if let Some(held_back) = REFUSING.tick() {
            tracing::warn!(error = %why, held_back, "health check: the store refuses writes");
        }
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store refuses writes: {why}\n"),
        );
    }
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(e) => {
            if let Some(held_back) = UNAVAILABLE.tick() {
                tracing::warn!(error = %e, held_back, "health check: the store does not answer");
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("store unavailable: {}\n", e.unavailable_reason()),
            )
        }
    }
}
