//! The connection to the upstream directory: reached over plain LDAP, LDAPS or StartTLS,
//! bound as the user (or the proxy's account), then handed to the session for the relay.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapExtendedRequest, LdapMsg, LdapOp, LdapResultCode,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::settings::{LdapProxySettings, Security, UpstreamServer};

/// Bytes one message from the upstream directory may have: its answers (a schema entry, a
/// large group) outgrow the limit set for clients.
const UPSTREAM_MAX_MESSAGE: usize = 16 << 20;

/// RFC 4511 §4.14: the StartTLS extended operation.
pub(super) const START_TLS: &str = "1.3.6.1.4.1.1466.20037";

/// A byte stream to the directory, plain or TLS.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) type Conn = Framed<Box<dyn Io>, LdapCodec>;

/// What the directory said to a bind.
pub(super) enum Upstream {
    Bound(Box<Conn>),
    /// The directory answered no (wrong password, unknown DN, …).
    Refused(LdapResultCode, String),
    /// No server of the list could be asked.
    Unavailable(String),
}

/// Bind as `dn` on the first server that can be reached; that server's answer decides.
pub(super) async fn bind(s: &LdapProxySettings, dn: &str, password: &str) -> Upstream {
    let mut failures = Vec::new();
    for server in &s.upstream {
        let attempt = tokio::time::timeout(s.upstream_timeout, async {
            let mut conn = connect(server, s.upstream_tls.as_ref()).await?;
            let answer = exchange(
                &mut conn,
                LdapOp::BindRequest(LdapBindRequest {
                    version: 3,
                    dn: dn.to_owned(),
                    cred: LdapBindCred::Simple(password.to_owned()),
                }),
            )
            .await?;
            Ok::<_, std::io::Error>((conn, answer))
        })
        .await;
        match attempt {
            Ok(Ok((conn, LdapOp::BindResponse(r)))) => {
                return if r.res.code == LdapResultCode::Success {
                    Upstream::Bound(Box::new(conn))
                } else {
                    Upstream::Refused(r.res.code, r.res.message)
                };
            }
            Ok(Ok(_)) => failures.push(format!(
                "{}: answered the bind with something else",
                server.addr
            )),
            Ok(Err(e)) => failures.push(format!("{}: {e}", server.addr)),
            Err(_) => failures.push(format!("{}: no answer in time", server.addr)),
        }
    }
    Upstream::Unavailable(failures.join("; "))
}

/// A connection to one server, with TLS as configured for it.
async fn connect(
    server: &UpstreamServer,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(&server.addr).await?;
    let codec = || LdapCodec::new(Some(UPSTREAM_MAX_MESSAGE), None);
    let wrap = |tcp: TcpStream| async {
        let config = tls
            .cloned()
            .ok_or_else(|| other("no TLS client configuration"))?;
        let name = ServerName::try_from(server.host.clone())
            .map_err(|e| other(&format!("{}: {e}", server.host)))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok::<_, std::io::Error>(Framed::new(Box::new(stream) as Box<dyn Io>, codec()))
    };
    match server.security {
        Security::Plain => Ok(Framed::new(Box::new(tcp) as Box<dyn Io>, codec())),
        Security::Ldaps => wrap(tcp).await,
        Security::StartTls => {
            let mut plain = Framed::new(tcp, codec());
            let answer = exchange(
                &mut plain,
                LdapOp::ExtendedRequest(LdapExtendedRequest {
                    name: START_TLS.to_owned(),
                    value: None,
                }),
            )
            .await?;
            match answer {
                LdapOp::ExtendedResponse(r) if r.res.code == LdapResultCode::Success => {
                    wrap(plain.into_parts().io).await
                }
                LdapOp::ExtendedResponse(r) => Err(other(&format!(
                    "StartTLS refused: {:?} {}",
                    r.res.code, r.res.message
                ))),
                _ => Err(other("StartTLS answered with something else")),
            }
        }
    }
}

/// Send one request (message id 1: the first on a fresh connection) and read its answer.
async fn exchange<S>(conn: &mut Framed<S, LdapCodec>, op: LdapOp) -> std::io::Result<LdapOp>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.send(LdapMsg {
        msgid: 1,
        op,
        ctrl: Vec::new(),
    })
    .await?;
    let answer = conn.next().await.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before it answered",
        )
    })??;
    Ok(answer.op)
}

fn other(text: &str) -> std::io::Error {
    std::io::Error::other(text.to_owned())
}
