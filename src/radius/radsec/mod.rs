//! RadSec (RFC 6614): RADIUS over TLS on TCP. A connection is one NAS, known by its source
//! address among the `[[radius.client]]` entries and by its certificate (signed by the CA of
//! `[radius.radsec]`, optionally pinned per client). Its packets take the same path as UDP's
//! (`RadiusServer::on_packet`: duplicate cache, Status-Server, accounting, logins) with the fixed
//! secret `radsec`, and the answers go back over the connection.

pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::packet::MAX_LEN;
use super::server::{Port, RadiusServer, ReplyTo};
use super::settings::{ClientDef, MaPolicy};
use crate::secret::Secret;
use settings::TlsPins;

/// The shared secret of every RadSec connection (RFC 6614 §2.3).
pub const SECRET: &str = "radsec";

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept connections until `shutdown`; each runs on `tracker`.
pub async fn run(
    server: Arc<RadiusServer>,
    listener: TcpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "otpgate::radsec", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (server, shutdown, inner) = (server.clone(), shutdown.clone(), tracker.clone());
        tracker.spawn(async move {
            connection(server, stream, peer, shutdown, inner).await;
        });
    }
}

fn refused(peer: SocketAddr, client: &str, reason: &'static str, detail: &str) {
    metrics::counter!("otpgate_radsec_connections_refused_total", "reason" => reason).increment(1);
    tracing::warn!(target: "otpgate::radsec", client, source = %peer, reason, detail, "RadSec connection refused");
}

/// One NAS's connection: handshake, identify, then read packets until it closes, stays
/// silent past the idle timeout, sends something that is no RADIUS packet, or the daemon stops.
async fn connection(
    server: Arc<RadiusServer>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let settings = server.settings();
    let Some(radsec) = settings.radsec.clone() else {
        return;
    };
    let Some(client) = settings.client_for(peer.ip()).cloned() else {
        refused(
            peer,
            "",
            "unknown_client",
            "no [[radius.client]] matches the address",
        );
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(radsec.tls.clone());
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return refused(peer, &client.name, "handshake", &e.to_string()),
        Err(_) => return refused(peer, &client.name, "handshake", "no handshake in time"),
    };
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    if let Err(why) = check_pins(&client.tls_pins, &certificate) {
        return refused(peer, &client.name, "certificate_pin", &why);
    }
    tracing::info!(target: "otpgate::radsec", client = %client.name, source = %peer, "RadSec connection open");
    metrics::gauge!("otpgate_radsec_connections").increment(1.0);
    let client = ClientDef {
        secret: Secret::new(SECRET.as_bytes().to_vec()),
        // TLS protects the packets; RFC 6614 needs no Message-Authenticator
        require_ma: MaPolicy::Off,
        ..client
    };
    let (mut reader, mut writer) = tokio::io::split(tls);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    let write = tracker.spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut buf = vec![0u8; MAX_LEN];
    let why = loop {
        let read = tokio::select! {
            () = shutdown.cancelled() => break "the daemon stops",
            r = tokio::time::timeout(radsec.idle_timeout, read_packet(&mut reader, &mut buf)) => r,
        };
        let len = match read {
            Err(_) => break "idle timeout",
            Ok(Err(Framing::Closed)) => break "closed by the NAS",
            Ok(Err(Framing::Bad(what))) => break what,
            Ok(Ok(len)) => len,
        };
        let Some(packet) = buf.get(..len) else {
            break "bad length";
        };
        let settings = server.settings();
        server.on_packet(
            packet,
            peer,
            Port::Authentication,
            &settings,
            &client,
            ReplyTo::Stream(tx.clone(), peer),
            &tracker,
        );
    };
    drop(tx);
    // answers still being worked on keep the writer open through their own senders
    let _ = write.await;
    metrics::gauge!("otpgate_radsec_connections").decrement(1.0);
    tracing::info!(target: "otpgate::radsec", client = %client.name, source = %peer, reason = why, "RadSec connection closed");
}

enum Framing {
    Closed,
    Bad(&'static str),
}

/// Read one RADIUS packet: its length is in its header (RFC 6614 §2.1). Returns the length.
async fn read_packet<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, Framing> {
    let header = buf.get_mut(..4).ok_or(Framing::Bad("buffer"))?;
    if let Err(e) = r.read_exact(header).await {
        return Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Framing::Closed,
            _ => Framing::Bad("read failed"),
        });
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if !(20..=MAX_LEN).contains(&len) {
        return Err(Framing::Bad("a packet length outside 20..4096: not RADIUS"));
    }
    let rest = buf.get_mut(4..len).ok_or(Framing::Bad("buffer"))?;
    r.read_exact(rest)
        .await
        .map_err(|_| Framing::Bad("the connection ended inside a packet"))?;
    Ok(len)
}

/// The client's pins against its certificate (DER): a listed SHA-256 fingerprint, and a listed
/// common name in its subject.
fn check_pins(pins: &TlsPins, der: &[u8]) -> Result<(), String> {
    if !pins.fingerprints.is_empty() {
        let fp: [u8; 32] = Sha256::digest(der).into();
        if !pins.fingerprints.contains(&fp) {
            return Err(format!(
                "certificate fingerprint {} is not pinned for this client",
                data_encoding::HEXLOWER.encode(&fp)
            ));
        }
    }
    if !pins.common_names.is_empty() {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("the certificate cannot be read: {e}"))?;
        let names: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .collect();
        if !names
            .iter()
            .any(|n| pins.common_names.iter().any(|p| p == n))
        {
            return Err(format!(
                "certificate common name {names:?} is not pinned for this client"
            ));
        }
    }
    Ok(())
}
