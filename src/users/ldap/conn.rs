//! Connections to the directory: the servers tried in order, TLS as configured, and a small
//! pool of service-account connections for searches.
//!
//! A bind changes who a connection is, so the pool's connections only ever bind as the service
//! account; a user's password is checked on a connection of its own ([`Connector::check_bind`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use rustls::ClientConfig;
use tokio::sync::Mutex;

use super::settings::{LdapSettings, Timeouts};
use crate::users::error::ErrorKind;

/// LDAP result code for a wrong DN or password.
const INVALID_CREDENTIALS: u32 = 49;

/// Opens connections: each server in order until one answers.
#[derive(Debug)]
pub(super) struct Connector {
    servers: Vec<String>,
    start_tls: bool,
    tls: Option<Arc<ClientConfig>>,
    no_verify: bool,
    timeouts: Timeouts,
}

/// An open connection and the server it reached.
pub(super) struct Open {
    pub(super) ldap: Ldap,
    pub(super) server: String,
}

impl Connector {
    pub(super) fn new(s: &LdapSettings, tls: Option<Arc<ClientConfig>>) -> Self {
        Self {
            servers: s.servers.clone(),
            start_tls: s.start_tls,
            tls,
            no_verify: !s.verify_certificate,
            timeouts: s.timeouts,
        }
    }

    pub(super) fn operation_timeout(&self) -> std::time::Duration {
        self.timeouts.operation
    }

    fn conn_settings(&self) -> LdapConnSettings {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeouts.connect)
            .set_starttls(self.start_tls)
            .set_no_tls_verify(self.no_verify);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        settings
    }

    /// A connection to the first server that answers; the error names every server's failure.
    pub(super) async fn open(&self) -> Result<Open, ErrorKind> {
        let mut failures = Vec::new();
        for server in &self.servers {
            let attempt = tokio::time::timeout(
                self.timeouts.connect + self.timeouts.operation,
                LdapConnAsync::with_settings(self.conn_settings(), server),
            )
            .await;
            match attempt {
                Ok(Ok((conn, ldap))) => {
                    tokio::spawn(async move {
                        if let Err(e) = conn.drive().await {
                            tracing::debug!(target: "otpgate::users", error = %e, "LDAP connection ended");
                        }
                    });
                    return Ok(Open {
                        ldap,
                        server: server.clone(),
                    });
                }
                Ok(Err(e)) => failures.push(format!("{server}: {e}")),
                Err(_) => failures.push(format!("{server}: no connection within the timeout")),
            }
        }
        Err(ErrorKind::Unreachable(failures.join("; ")))
    }

    /// Bind as `dn` with `password` on a connection of its own: `Ok(false)` for wrong
    /// credentials. The caller has refused an empty password already (an empty password is
    /// an unauthenticated bind, which succeeds).
    pub(super) async fn check_bind(&self, dn: &str, password: &str) -> Result<bool, ErrorKind> {
        debug_assert!(!password.is_empty());
        let mut open = self.open().await?;
        let result = open
            .ldap
            .with_timeout(self.timeouts.operation)
            .simple_bind(dn, password)
            .await;
        let _ = open.ldap.unbind().await;
        match result {
            Ok(r) if r.rc == 0 => Ok(true),
            Ok(r) if r.rc == INVALID_CREDENTIALS => Ok(false),
            Ok(r) => Err(ErrorKind::Refused(format!(
                "{}: bind answered {} {}",
                open.server, r.rc, r.text
            ))),
            Err(e) => Err(kind_of(&open.server, e)),
        }
    }
}

/// An ldap3 error as our kind: timeouts apart from the rest.
pub(super) fn kind_of(server: &str, e: LdapError) -> ErrorKind {
    match e {
        LdapError::Timeout { .. } => ErrorKind::Timeout(format!("{server}: no answer in time")),
        LdapError::LdapResult { result } => {
            ErrorKind::Refused(format!("{server}: {} {}", result.rc, result.text))
        }
        other => ErrorKind::Unreachable(format!("{server}: {other}")),
    }
}

/// Search connections bound as the service account, opened when first needed and again when
/// they broke or sat idle.
pub(super) struct Pool {
    connector: Connector,
    bind: Option<(String, crate::secret::Secret<String>)>,
    slots: Vec<Mutex<Option<Pooled>>>,
    next: AtomicUsize,
}

struct Pooled {
    ldap: Ldap,
    server: String,
    last_used: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connector", &self.connector)
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// A handle to a pooled connection for one operation.
pub(super) struct Lease {
    pub(super) ldap: Ldap,
    pub(super) server: String,
    slot: usize,
}

impl Pool {
    pub(super) fn new(s: &LdapSettings, connector: Connector) -> Self {
        let bind = match (&s.bind_dn, &s.bind_password) {
            (Some(dn), Some(pw)) => Some((dn.clone(), pw.clone())),
            (Some(dn), None) => Some((dn.clone(), crate::secret::Secret::default())),
            _ => None,
        };
        Self {
            connector,
            bind,
            slots: (0..s.pool_size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub(super) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// A connection for one operation: the next slot's, opened (and bound) when it has none,
    /// it broke, or it sat idle past the idle timeout.
    pub(super) async fn lease(&self) -> Result<Lease, ErrorKind> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut guard = self.slots[slot].lock().await;
        if let Some(p) = guard.as_mut() {
            if !p.ldap.is_closed() && p.last_used.elapsed() < self.connector.timeouts.idle {
                p.last_used = Instant::now();
                return Ok(Lease {
                    ldap: p.ldap.clone(),
                    server: p.server.clone(),
                    slot,
                });
            }
            let mut old = guard.take().map(|p| p.ldap);
            if let Some(l) = old.as_mut() {
                let _ = l.unbind().await;
            }
        }
        let mut open = self.connector.open().await?;
        if let Some((dn, pw)) = &self.bind {
            let r = open
                .ldap
                .with_timeout(self.connector.timeouts.operation)
                .simple_bind(dn, pw.expose())
                .await
                .map_err(|e| kind_of(&open.server, e))?;
            if r.rc != 0 {
                return Err(ErrorKind::Refused(format!(
                    "{}: the service account's bind answered {} {}",
                    open.server, r.rc, r.text
                )));
            }
        }
        *guard = Some(Pooled {
            ldap: open.ldap.clone(),
            server: open.server.clone(),
            last_used: Instant::now(),
        });
        Ok(Lease {
            ldap: open.ldap,
            server: open.server,
            slot,
        })
    }

    /// Forget a connection an operation found broken, so the next lease opens a new one.
    pub(super) async fn discard(&self, lease: &Lease) {
        let mut guard = self.slots[lease.slot].lock().await;
        if guard.as_ref().is_some_and(|p| p.server == lease.server) {
            *guard = None;
        }
    }
}
