//! A UDP impairment relay: sits between a caller and a listener and forwards datagrams both
//! ways through [`Impaired`] transports (loss, bursts, reordering, duplication, delay).
//!
//! The kernel here has no `netem`, so tests, the demo and `examples/relay.rs` put this relay
//! on the path instead. It only forwards to the upstream address it was given and to the
//! last address that spoke to its front socket — it never sends anywhere else.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::transport::impair::{ImpairConfig, ImpairStats, Impaired};
use crate::transport::udp::{UdpOptions, UdpTransport};
use crate::transport::{RecvBatch, Transport};

/// A running relay. Dropping it stops the threads.
pub struct Relay {
    front_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    front: Arc<Impaired<UdpTransport>>,
    back: Arc<Impaired<UdpTransport>>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Binds the front socket on `listen` (port 0 for an ephemeral port) and forwards to
    /// `upstream`. `down` impairs what flows upstream → front peer (e.g. video to a client
    /// that calls the relay), `up` what flows front peer → upstream.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        down: ImpairConfig,
        up: ImpairConfig,
    ) -> io::Result<Relay> {
        let opts = UdpOptions::default();
        let front = Arc::new(Impaired::new(UdpTransport::bind(listen, &opts)?, down)?);
        let back_bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let back = Arc::new(Impaired::new(UdpTransport::bind(back_bind, &opts)?, up)?);
        let front_addr = front.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let mut threads = Vec::new();
        // Front → upstream.
        {
            let (front, back, stop, client) =
                (front.clone(), back.clone(), stop.clone(), client.clone());
            threads.push(std::thread::spawn(move || {
                forward(&*front, &*back, &stop, |from| {
                    *client.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                    Some(upstream)
                })
            }));
        }
        // Upstream → front peer.
        {
            let (front, back, stop) = (front.clone(), back.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                forward(&*back, &*front, &stop, |from| {
                    if from != upstream {
                        return None;
                    }
                    *client.lock().unwrap_or_else(|e| e.into_inner())
                })
            }));
        }
        Ok(Relay {
            front_addr,
            stop,
            front,
            back,
            threads,
        })
    }

    /// Where the caller should send (the front socket).
    pub fn addr(&self) -> SocketAddr {
        self.front_addr
    }

    /// Impairment counters of what went to the front peer (downstream).
    pub fn down_stats(&self) -> ImpairStats {
        self.front.stats()
    }

    /// Impairment counters of what went upstream.
    pub fn up_stats(&self) -> ImpairStats {
        self.back.stats()
    }
}

fn forward<R: Transport, S: Transport>(
    rx: &R,
    tx: &S,
    stop: &AtomicBool,
    mut route: impl FnMut(SocketAddr) -> Option<SocketAddr>,
) {
    let mut batch = RecvBatch::new(64, 65_536);
    while !stop.load(Ordering::Relaxed) {
        match rx.recv(&mut batch, Some(Duration::from_millis(50))) {
            Ok(0) => {}
            Ok(_) => {
                for i in 0..batch.len() {
                    let (d, from) = batch.get(i);
                    if let Some(to) = route(from) {
                        // Errors (peer gone) are the relayed path's business, not ours.
                        let _ = tx.send(&[d], to);
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.front.wake();
        self.back.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
