//! The bind proxy's listeners: accept, bound the connections per source address, hand each
//! to a session; stop accepting at shutdown and let sessions end with their clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session::Proxy;

/// Open connections by source address.
#[derive(Default)]
struct PerSource(Mutex<HashMap<IpAddr, usize>>);

impl PerSource {
    fn enter(&self, ip: IpAddr, limit: usize) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        let n = map.entry(ip).or_default();
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        if let Ok(mut map) = self.0.lock()
            && let Some(n) = map.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Accept until `shutdown`; `tls`: an LDAPS listener.
pub async fn run(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    tls: bool,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let open = Arc::new(PerSource::default());
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(target: "otpgate::ldap", error = %e, "accept failed");
                    continue;
                }
            },
        };
        if !open.enter(peer.ip(), proxy.settings().connections_per_source) {
            metrics::counter!("otpgate_ldap_connections_refused_total").increment(1);
            drop(stream);
            continue;
        }
        let (proxy, open, stop) = (proxy.clone(), open.clone(), shutdown.clone());
        tracker.spawn(async move {
            let session = async {
                if tls {
                    proxy.session_tls(stream, peer).await;
                } else {
                    proxy.session(stream, peer).await;
                }
            };
            tokio::select! {
                () = session => {}
                () = stop.cancelled() => {}
            }
            open.leave(peer.ip());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_source_are_bounded() {
        let p = PerSource::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(p.enter(a, 2) && p.enter(a, 2));
        assert!(!p.enter(a, 2), "a third from the same source");
        assert!(p.enter(b, 2), "another source is not affected");
        p.leave(a);
        assert!(p.enter(a, 2));
    }
}
