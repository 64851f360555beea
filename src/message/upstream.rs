//! Other authentication servers as the core sees them: a name and a `/validate/check`-shaped
//! answer. The transports (HTTP to privacyIDEA/otpgate, our RADIUS client) live outside the
//! core in the `remote` module, so the core never imports a protocol front-end.

use std::future::Future;
use std::pin::Pin;

use super::Response;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("no remote server named {0:?} is configured")]
    Unknown(String),
    #[error("remote {remote}: {message}")]
    Failed { remote: String, message: String },
}

pub type UpstreamFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(Response, String), UpstreamError>> + Send + 'a>>;

/// Forwarding to configured remotes (`[[remote]]`).
pub trait Upstreams: Send + Sync {
    /// Send the parameter map to the remote's `/validate/check` (or as an Access-Request) and
    /// return its answer document and the origin to record (`detail.origin`).
    fn forward<'a>(&'a self, remote: &'a str, params: Vec<(String, String)>) -> UpstreamFuture<'a>;
}

/// No remotes configured.
#[derive(Debug, Default)]
pub struct NoUpstreams;

impl Upstreams for NoUpstreams {
    fn forward<'a>(
        &'a self,
        remote: &'a str,
        _params: Vec<(String, String)>,
    ) -> UpstreamFuture<'a> {
        Box::pin(async move { Err(UpstreamError::Unknown(remote.to_owned())) })
    }
}
