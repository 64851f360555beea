//! A TCP proxy on loopback that can make chosen connections go silent, as a primary that was
//! powered off under a floating address does for the connections to it: no error, no reset,
//! nothing ever arrives again on them. Other connections, and new ones, pass.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Each carried connection: the local port of its upstream side (what the server sees as the
/// client's port) and whether it is silenced.
type Carried = Arc<Mutex<Vec<(u16, Arc<AtomicBool>)>>>;

pub struct Blackhole {
    pub addr: SocketAddr,
    carried: Carried,
}

impl Blackhole {
    /// Forward 127.0.0.1:<new port> to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let carried: Carried = Arc::default();
        let list = Arc::clone(&carried);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let silent = Arc::new(AtomicBool::new(false));
                let port = server.local_addr().unwrap().port();
                list.lock().unwrap().push((port, Arc::clone(&silent)));
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let silent = Arc::clone(&silent);
                    std::thread::spawn(move || pump(from, to, &silent));
                }
            }
        });
        Self { addr, carried }
    }

    /// The connections whose upstream side has one of `client_ports` (as the server's
    /// `pg_stat_activity.client_port` names them) go silent for good, both ways; the sockets
    /// stay open. How many there were.
    pub fn silence(&self, client_ports: &[u16]) -> usize {
        let carried = self.carried.lock().unwrap();
        let mut silenced = 0;
        for (port, silent) in carried.iter() {
            if client_ports.contains(port) {
                silent.store(true, Ordering::SeqCst);
                silenced += 1;
            }
        }
        silenced
    }
}

impl Blackhole {
    /// Every connection open now goes silent; how many.
    pub fn silence_all(&self) -> usize {
        let carried = self.carried.lock().unwrap();
        for (_, silent) in carried.iter() {
            silent.store(true, Ordering::SeqCst);
        }
        carried.len()
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, silent: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let got = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(got) => got,
        };
        // swallowed, not refused: the peer never hears of it
        if silent.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..got]).is_err() {
            return;
        }
    }
}
