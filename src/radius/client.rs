//! A small RADIUS client built on the same codec: `otpgate radtest`, `passthru` to an upstream
//! RADIUS server, the Federation handler, and the load generator.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use md5::{Digest, Md5};

use super::attr;
use super::crypto::{self, PasswordError, VerifyError};
use super::mschap;
use super::packet::{Builder, Code, DecodeError, EncodeError, Packet};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer from {server} after {tries} tries")]
    Timeout { server: SocketAddr, tries: u32 },
    #[error("building the request: {0}")]
    Encode(#[from] EncodeError),
    #[error("the password: {0}")]
    Password(#[from] PasswordError),
    #[error("the reply is malformed: {0}")]
    Decode(#[from] DecodeError),
    #[error("the reply failed verification: {0}")]
    Verify(#[from] VerifyError),
}

/// One Access-Request to send.
#[derive(Debug, Clone, Default)]
pub struct AccessRequest {
    pub user: String,
    pub password: crate::secret::Secret<String>,
    pub state: Option<Vec<u8>>,
    pub nas_identifier: Option<String>,
    /// Extra (type, value) attributes.
    pub extra: Vec<(u8, Vec<u8>)>,
    /// Send a Message-Authenticator (default in `radtest`).
    pub message_authenticator: bool,
    /// How the password travels.
    pub method: Method,
}

/// How an Access-Request carries the password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// User-Password, hidden with the secret.
    #[default]
    Pap,
    /// CHAP-Password over the Request Authenticator as the challenge.
    Chap,
    /// MS-CHAP-Challenge and MS-CHAP2-Response.
    Mschapv2,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: Code,
    pub bytes: Vec<u8>,
    pub rtt: Duration,
}

impl Reply {
    pub fn packet(&self) -> Result<Packet<'_>, DecodeError> {
        Packet::decode(&self.bytes)
    }

    pub fn reply_message(&self) -> String {
        self.packet()
            .map(|p| {
                p.attributes()
                    .filter(|a| a.kind == attr::REPLY_MESSAGE)
                    .map(|a| String::from_utf8_lossy(a.value).into_owned())
                    .collect::<String>()
            })
            .unwrap_or_default()
    }

    pub fn state(&self) -> Option<Vec<u8>> {
        self.packet().ok()?.attr(attr::STATE).map(<[u8]>::to_vec)
    }
}

/// Encode an Access-Request; returns the bytes and its Request Authenticator.
pub fn encode_access_request(
    req: &AccessRequest,
    identifier: u8,
    secret: &[u8],
) -> Result<(Vec<u8>, [u8; 16]), ClientError> {
    let mut authenticator = [0u8; 16];
    getrandom::fill(&mut authenticator).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut b = Builder::new(Code::AccessRequest, identifier, &authenticator);
    if req.message_authenticator {
        b.attr(attr::MESSAGE_AUTHENTICATOR, &[0; 16])?;
    }
    b.attr(attr::USER_NAME, req.user.as_bytes())?;
    let password = req.password.expose();
    match req.method {
        Method::Pap => {
            let hidden = crypto::hide_password(password.as_bytes(), &authenticator, secret)?;
            b.attr(attr::USER_PASSWORD, &hidden)?;
        }
        Method::Chap => {
            let ident = authenticator[0];
            let digest = Md5::new()
                .chain_update([ident])
                .chain_update(password.as_bytes())
                .chain_update(authenticator)
                .finalize();
            let mut value = vec![ident];
            value.extend_from_slice(&digest);
            b.attr(attr::CHAP_PASSWORD, &value)?;
        }
        Method::Mschapv2 => {
            let (mut auth, mut peer) = ([0u8; 16], [0u8; 16]);
            for challenge in [&mut auth, &mut peer] {
                getrandom::fill(challenge).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            let name = req.user.rsplit('\\').next().unwrap_or_default();
            let nt = mschap::v2_nt_response(&auth, &peer, name.as_bytes(), password);
            let mut response = vec![authenticator[0], 0];
            response.extend_from_slice(&peer);
            response.extend_from_slice(&[0; 8]);
            response.extend_from_slice(&nt);
            b.vsa(mschap::MICROSOFT, mschap::MS_CHAP_CHALLENGE, &auth)?;
            b.vsa(mschap::MICROSOFT, mschap::MS_CHAP2_RESPONSE, &response)?;
        }
    }
    if let Some(state) = &req.state {
        b.attr(attr::STATE, state)?;
    }
    if let Some(nas) = &req.nas_identifier {
        b.attr(attr::NAS_IDENTIFIER, nas.as_bytes())?;
    }
    for (kind, value) in &req.extra {
        b.attr(*kind, value)?;
    }
    let mut bytes = b.finish();
    crypto::sign_request(&mut bytes, secret);
    Ok((bytes, authenticator))
}

/// Send a request and wait for the verified reply, retrying after `timeout`.
pub async fn exchange(
    server: SocketAddr,
    bytes: &[u8],
    authenticator: &[u8; 16],
    secret: &[u8],
    timeout: Duration,
    tries: u32,
) -> Result<Reply, ClientError> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| std::io::Error::other("address"))?
    } else {
        "[::]:0"
            .parse()
            .map_err(|_| std::io::Error::other("address"))?
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    let identifier = bytes.get(1).copied().unwrap_or(0);
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; super::packet::MAX_LEN];
    for _ in 0..tries.max(1) {
        socket.send(bytes).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => break,
            };
            let Some(data) = buf.get(..n) else { continue };
            let Ok(p) = Packet::decode(data) else {
                continue;
            };
            if p.identifier() != identifier {
                continue;
            }
            crypto::verify_response(&p, authenticator, secret, false)?;
            return Ok(Reply {
                code: p.code(),
                bytes: p.bytes().to_vec(),
                rtt: started.elapsed(),
            });
        }
    }
    Err(ClientError::Timeout {
        server,
        tries: tries.max(1),
    })
}

/// Encode, send and verify one Access-Request.
pub async fn authenticate(
    server: SocketAddr,
    secret: &[u8],
    req: &AccessRequest,
    timeout: Duration,
    tries: u32,
) -> Result<Reply, ClientError> {
    let mut id = [0u8; 1];
    getrandom::fill(&mut id).map_err(|e| std::io::Error::other(e.to_string()))?;
    let (bytes, authenticator) = encode_access_request(req, id[0], secret)?;
    exchange(server, &bytes, &authenticator, secret, timeout, tries).await
}

/// Status-Server (RFC 5997) with a Message-Authenticator.
pub async fn status(
    server: SocketAddr,
    secret: &[u8],
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let mut authenticator = [0u8; 16];
    getrandom::fill(&mut authenticator).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut b = Builder::new(Code::StatusServer, authenticator[0], &authenticator);
    b.attr(attr::MESSAGE_AUTHENTICATOR, &[0; 16])?;
    let mut bytes = b.finish();
    crypto::sign_request(&mut bytes, secret);
    exchange(server, &bytes, &authenticator, secret, timeout, 1).await
}
