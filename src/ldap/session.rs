//! One client connection of the bind proxy: a bind is checked by otpgate and then made
//! upstream; after it every operation goes to the upstream directory on that connection,
//! message ids and controls unchanged, and every answer comes back as the directory sent it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp,
    LdapResult, LdapResultCode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::bind_cache::BindCache;
use super::mapping;
use super::settings::LdapProxySettings;
use super::upstream::{self, Conn, START_TLS, Upstream};
use crate::auth::Authenticator;
use crate::message::{Origin, Request};
use crate::secret::Secret;

/// What the proxy needs of the daemon.
pub struct Proxy {
    settings: RwLock<Arc<LdapProxySettings>>,
    auth: Arc<Authenticator>,
    cache: BindCache,
}

/// How a session on a plain connection ended.
enum Ended<S> {
    Done,
    /// The client asked for StartTLS and was told yes: go on over TLS.
    StartTls(Framed<S, LdapCodec>),
}

/// How a bind ended.
enum Bind {
    /// Accepted, with the upstream connection bound for the session.
    Bound(Box<Conn>),
    /// Accepted from the bind cache, without a new OTP.
    Cached(Box<Conn>),
    Refused(LdapResultCode, String),
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_owned(),
        referral: Vec::new(),
    }
}

/// The error answer to a request that arrives before a bind, in the request's own response
/// type; `None` for requests without one (abandon).
fn refuse(msg: &LdapMsg, code: LdapResultCode, text: &str) -> Option<LdapMsg> {
    let res = result(code, text);
    let op = match &msg.op {
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(res),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
        LdapOp::ExtendedRequest(_) => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: None,
            value: None,
        }),
        LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse {
            res,
            saslcreds: None,
        }),
        _ => return None,
    };
    Some(LdapMsg {
        msgid: msg.msgid,
        op,
        ctrl: Vec::new(),
    })
}

impl Proxy {
    pub fn new(settings: LdapProxySettings, auth: Arc<Authenticator>) -> Self {
        Self {
            cache: BindCache::new(settings.bind_cache, settings.bind_cache_size),
            settings: RwLock::new(Arc::new(settings)),
            auth,
        }
    }

    pub fn settings(&self) -> Arc<LdapProxySettings> {
        match self.settings.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// New settings (certificates, upstreams, mappings) for sessions that start from now on.
    pub fn reload(&self, settings: LdapProxySettings) {
        match self.settings.write() {
            Ok(mut g) => *g = Arc::new(settings),
            Err(p) => *p.into_inner() = Arc::new(settings),
        }
    }

    /// A client on a plain listener: LDAP, with StartTLS when a certificate is configured.
    pub async fn session(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let s = self.settings();
        let client = Framed::new(stream, LdapCodec::new(Some(s.max_message_bytes), None));
        if let Ended::StartTls(client) = self.serve(&s, client, peer, false).await {
            let Some(tls) = s.tls.clone() else { return };
            let io = client.into_parts().io;
            match tokio_rustls::TlsAcceptor::from(tls).accept(io).await {
                Ok(tls) => {
                    let client = Framed::new(tls, LdapCodec::new(Some(s.max_message_bytes), None));
                    self.serve(&s, client, peer, true).await;
                }
                Err(e) => {
                    tracing::info!(target: "otpgate::ldap", client = %peer, error = %e, "StartTLS handshake failed");
                }
            }
        }
    }

    /// A client on an LDAPS listener: TLS from the first byte.
    pub async fn session_tls(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let s = self.settings();
        let Some(tls) = s.tls.clone() else { return };
        let accepted = tokio::time::timeout(
            s.idle_timeout,
            tokio_rustls::TlsAcceptor::from(tls).accept(stream),
        )
        .await;
        match accepted {
            Ok(Ok(tls)) => {
                let client = Framed::new(tls, LdapCodec::new(Some(s.max_message_bytes), None));
                self.serve(&s, client, peer, true).await;
            }
            Ok(Err(e)) => {
                tracing::info!(target: "otpgate::ldap", client = %peer, error = %e, "TLS handshake failed");
            }
            Err(_) => {}
        }
    }

    /// Serve one client until it unbinds, disconnects, stays silent too long, or (on a plain
    /// connection) is told yes to StartTLS.
    async fn serve<S>(
        &self,
        s: &LdapProxySettings,
        mut client: Framed<S, LdapCodec>,
        peer: SocketAddr,
        secure: bool,
    ) -> Ended<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut upstream: Option<Box<Conn>> = None;
        loop {
            let next = match upstream.as_deref_mut() {
                None => match tokio::time::timeout(s.idle_timeout, client.next()).await {
                    Ok(Some(Ok(m))) => Some(m),
                    Ok(Some(Err(e))) => {
                        tracing::info!(target: "otpgate::ldap", client = %peer, error = %e, "malformed LDAP message; connection closed");
                        return Ended::Done;
                    }
                    _ => return Ended::Done,
                },
                // the relay returns only for a new bind
                Some(up) => self.relay(s, &mut client, up, peer).await,
            };
            let Some(msg) = next else {
                return Ended::Done;
            };
            let answer = match &msg.op {
                LdapOp::BindRequest(b) => {
                    upstream = None;
                    let bind = if s.require_tls && !secure {
                        Bind::Refused(
                            LdapResultCode::ConfidentialityRequired,
                            "use StartTLS or LDAPS before binding".into(),
                        )
                    } else {
                        self.bind(s, b, peer).await
                    };
                    let (code, text) = match bind {
                        Bind::Bound(conn) | Bind::Cached(conn) => {
                            upstream = Some(conn);
                            (LdapResultCode::Success, String::new())
                        }
                        Bind::Refused(code, text) => (code, text),
                    };
                    Some(LdapMsg {
                        msgid: msg.msgid,
                        op: LdapOp::BindResponse(LdapBindResponse {
                            res: result(code, &text),
                            saslcreds: None,
                        }),
                        ctrl: Vec::new(),
                    })
                }
                LdapOp::ExtendedRequest(x) if x.name == START_TLS => {
                    let ok = !secure && s.tls.is_some();
                    let (code, text) = if ok {
                        (LdapResultCode::Success, "")
                    } else if secure {
                        (LdapResultCode::OperationsError, "TLS is already in use")
                    } else {
                        (LdapResultCode::Unavailable, "StartTLS is not configured")
                    };
                    let reply = LdapMsg {
                        msgid: msg.msgid,
                        op: LdapOp::ExtendedResponse(LdapExtendedResponse {
                            res: result(code, text),
                            name: Some(START_TLS.to_owned()),
                            value: None,
                        }),
                        ctrl: Vec::new(),
                    };
                    if client.send(reply).await.is_err() {
                        return Ended::Done;
                    }
                    if ok {
                        return Ended::StartTls(client);
                    }
                    None
                }
                LdapOp::UnbindRequest => return Ended::Done,
                _ => refuse(&msg, LdapResultCode::InsufficentAccessRights, "bind first"),
            };
            if let Some(answer) = answer
                && client.send(answer).await.is_err()
            {
                return Ended::Done;
            }
        }
    }

    /// Relay between a bound client and its upstream connection until the client binds
    /// again (the bind is returned) or unbinds, or either side goes away (`None`).
    async fn relay<S>(
        &self,
        s: &LdapProxySettings,
        client: &mut Framed<S, LdapCodec>,
        up: &mut Conn,
        peer: SocketAddr,
    ) -> Option<LdapMsg>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            tokio::select! {
                from_client = tokio::time::timeout(s.idle_timeout, client.next()) => {
                    let msg = match from_client {
                        Ok(Some(Ok(m))) => m,
                        Ok(Some(Err(e))) => {
                            tracing::info!(target: "otpgate::ldap", client = %peer, error = %e, "malformed LDAP message; connection closed");
                            return None;
                        }
                        _ => return None,
                    };
                    match msg.op {
                        LdapOp::BindRequest(_) => return Some(msg),
                        LdapOp::UnbindRequest => {
                            let _ = up.send(msg).await;
                            return None;
                        }
                        _ => {
                            if up.send(msg).await.is_err() {
                                return None;
                            }
                        }
                    }
                }
                from_up = up.next() => {
                    match from_up {
                        Some(Ok(m)) => {
                            if client.send(m).await.is_err() {
                                return None;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(target: "otpgate::ldap", client = %peer, error = %e, "an answer of the directory could not be relayed; connection closed");
                            return None;
                        }
                        None => return None,
                    }
                }
            }
        }
    }

    /// Check a bind and make it upstream; one log line and metric per bind, and an audit
    /// row for a user's bind refused before the pipeline saw it.
    async fn bind(&self, s: &LdapProxySettings, b: &LdapBindRequest, peer: SocketAddr) -> Bind {
        let started = Instant::now();
        let Decided { who, bind, checked } = self.decide(s, b, peer).await;
        let (result, reason) = match &bind {
            Bind::Bound(_) => ("success", String::new()),
            Bind::Cached(_) => ("success", "bind cache".to_owned()),
            Bind::Refused(code, text) => ("refused", format!("{code:?}: {text}")),
        };
        if let (Who::User(login), Bind::Refused(..), false) = (&who, &bind, checked) {
            let request = self.request(s, login, String::new(), peer);
            self.auth.refused_before_check(&request, &reason).await;
        }
        metrics::counter!("otpgate_ldap_binds_total", "result" => result).increment(1);
        tracing::info!(
            target: "otpgate::ldap",
            client = %peer,
            dn = %b.dn,
            user = who.as_str(),
            result,
            reason = %reason,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "bind"
        );
        bind
    }

    async fn decide(
        &self,
        s: &LdapProxySettings,
        b: &LdapBindRequest,
        peer: SocketAddr,
    ) -> Decided {
        let refused = |who, code, text: &str| Decided {
            who,
            bind: Bind::Refused(code, text.to_owned()),
            checked: false,
        };
        let password = match &b.cred {
            LdapBindCred::Simple(pw) if !b.dn.is_empty() && !pw.is_empty() => {
                Secret::new(pw.clone())
            }
            LdapBindCred::Simple(_) => {
                return refused(
                    Who::Nobody,
                    LdapResultCode::AuthMethodNotSupported,
                    "anonymous and unauthenticated binds are not accepted",
                );
            }
            _ => {
                return refused(
                    Who::Nobody,
                    LdapResultCode::AuthMethodNotSupported,
                    "only simple binds are accepted",
                );
            }
        };
        if s.service_accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&b.dn))
        {
            return Decided {
                who: Who::Service,
                bind: upstream::bind(s, &b.dn, password.expose()).await.into(),
                checked: false,
            };
        }
        let login = match self.login_of(s, &b.dn).await {
            Ok(Some(login)) => login,
            Ok(None) => {
                return refused(
                    Who::Nobody,
                    LdapResultCode::InvalidCredentials,
                    "the DN names no user",
                );
            }
            Err(e) => {
                return refused(
                    Who::Nobody,
                    LdapResultCode::Unavailable,
                    &format!("the user store could not be asked ({e})"),
                );
            }
        };
        let who = Who::User(login.clone());
        let Some(split) = mapping::split(password.expose(), s.password) else {
            return refused(
                who,
                LdapResultCode::InvalidCredentials,
                "the password holds no OTP",
            );
        };
        // the upstream bind first: a wrong directory password, or a directory that is down,
        // burns no OTP
        let upstream = match (split.directory_password, &s.upstream_bind) {
            (Some(pw), _) => upstream::bind(s, &b.dn, pw).await,
            (None, Some((dn, pw))) => upstream::bind(s, dn, pw.expose()).await,
            (None, None) => Upstream::Unavailable("no upstream account".into()),
        };
        let conn = match Bind::from(upstream) {
            Bind::Bound(c) => c,
            bind => {
                return Decided {
                    who,
                    bind,
                    checked: false,
                };
            }
        };
        if self.cache.hit(peer.ip(), &b.dn, password.expose()) {
            return Decided {
                who,
                bind: Bind::Cached(conn),
                checked: false,
            };
        }
        let request = self.request(s, &login, split.for_otpgate.to_owned(), peer);
        let outcome = self.auth.validate_check(request).await;
        let bind = match outcome.response.authentication() {
            Some("ACCEPT") => {
                self.cache.remember(peer.ip(), &b.dn, password.expose());
                Bind::Bound(conn)
            }
            Some("CHALLENGE") => Bind::Refused(
                LdapResultCode::InvalidCredentials,
                "a challenge cannot be answered in a bind; use a token without challenge-response"
                    .into(),
            ),
            _ => {
                let code = if outcome.store_unavailable {
                    LdapResultCode::Unavailable
                } else {
                    LdapResultCode::InvalidCredentials
                };
                Bind::Refused(
                    code,
                    outcome.response.message().unwrap_or("rejected").to_owned(),
                )
            }
        };
        Decided {
            who,
            bind,
            checked: true,
        }
    }

    /// The login a bind DN names: by the templates, else (`user_dn_search`) by the entry the
    /// realm's LDAP resolvers find at that DN.
    async fn login_of(
        &self,
        s: &LdapProxySettings,
        dn: &str,
    ) -> Result<Option<String>, crate::users::DirectoryError> {
        if let Some(login) = mapping::login_of(dn, &s.user_dn) {
            return Ok(Some(login));
        }
        match (&s.realm, s.user_dn_search) {
            (Some(realm), true) => self.auth.config().directory.login_of_dn(realm, dn).await,
            _ => Ok(None),
        }
    }

    fn request(
        &self,
        s: &LdapProxySettings,
        login: &str,
        pass: String,
        peer: SocketAddr,
    ) -> Request {
        let mut request = Request::user(login, "");
        request.pass = Secret::new(pass);
        request.realm = s.realm.clone();
        request.client = Some(peer.ip());
        request.origin = Origin::Ldap;
        request
    }
}

/// A bind's decision, for the log line and the audit row.
struct Decided {
    who: Who,
    bind: Bind,
    /// The auth pipeline decided (and wrote the audit row).
    checked: bool,
}

/// Whom a bind was for.
enum Who {
    /// No user: an anonymous bind, or a DN that maps to none.
    Nobody,
    Service,
    User(String),
}

impl Who {
    fn as_str(&self) -> &str {
        match self {
            Self::Nobody => "",
            Self::Service => "service account",
            Self::User(login) => login,
        }
    }
}

impl From<Upstream> for Bind {
    fn from(u: Upstream) -> Self {
        match u {
            Upstream::Bound(conn) => Self::Bound(conn),
            Upstream::Refused(code, text) => Self::Refused(code, text),
            Upstream::Unavailable(why) => Self::Refused(
                LdapResultCode::Unavailable,
                format!("the directory is unavailable ({why})"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::LdapSearchScope;

    #[test]
    fn requests_before_a_bind_get_their_own_error_type() {
        let search = LdapMsg {
            msgid: 7,
            op: LdapOp::SearchRequest(ldap3_proto::proto::LdapSearchRequest {
                base: "dc=x".into(),
                scope: LdapSearchScope::Base,
                aliases: ldap3_proto::proto::LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: ldap3_proto::proto::LdapFilter::Present("objectClass".into()),
                attrs: vec![],
            }),
            ctrl: vec![],
        };
        let a = refuse(
            &search,
            LdapResultCode::InsufficentAccessRights,
            "bind first",
        )
        .unwrap();
        assert_eq!(a.msgid, 7);
        assert!(
            matches!(a.op, LdapOp::SearchResultDone(ref r) if r.code == LdapResultCode::InsufficentAccessRights)
        );
        let abandon = LdapMsg {
            msgid: 8,
            op: LdapOp::AbandonRequest(7),
            ctrl: vec![],
        };
        assert!(refuse(&abandon, LdapResultCode::InsufficentAccessRights, "x").is_none());
    }
}
