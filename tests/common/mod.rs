//! Helpers shared by the session tests.
#![allow(dead_code)]

pub mod sim;
pub mod udp;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::security::handshake::{
    HandshakeConfig, HelloParams, Initiator, Psk, Role,
};
use gstpunktfunk::protocol::wire::{Header, Kind, RejectReason};
use gstpunktfunk::session::{Event, Session};
use gstpunktfunk::testkit::rng::Rng;
use gstpunktfunk::transport::{RecvBatch, SendOutcome, Transport};

/// Pseudo-random frame content, different per seed.
pub fn frame_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Polls `s` (host or client) until `pred` accepts an event or `limit` passes.
pub fn wait_for(
    s: &Session,
    limit: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let ev = match s.role() {
            gstpunktfunk::protocol::security::handshake::Role::Host => {
                s.poll_input(Duration::from_millis(20))
            }
            Role::Client => s.poll_frame(Duration::from_millis(20)),
        };
        if let Ok(Some(ev)) = ev
            && pred(&ev)
        {
            return Some(ev);
        }
    }
    None
}

/// Runs `s`'s poll loop on a thread until `stop` is set, so its timers and handshakes run.
pub fn pump(
    s: Session,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Event>> {
    std::thread::spawn(move || {
        let mut evs = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let r = match s.role() {
                gstpunktfunk::protocol::security::handshake::Role::Host => {
                    s.poll_input(Duration::from_millis(10))
                }
                Role::Client => s.poll_frame(Duration::from_millis(10)),
            };
            match r {
                Ok(Some(ev)) => evs.push(ev),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        evs
    })
}

/// Datagrams a [`Recorder`] saw, with their destinations.
pub type Sent = Arc<Mutex<Vec<(Vec<u8>, SocketAddr)>>>;

/// A transport wrapper that records every datagram it sends, so tests can replay them.
pub struct Recorder<T: Transport> {
    pub inner: Arc<T>,
    pub sent: Sent,
}

impl<T: Transport> Recorder<T> {
    pub fn new(inner: Arc<T>) -> (Self, Sent) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        (
            Recorder {
                inner,
                sent: sent.clone(),
            },
            sent,
        )
    }
}

impl<T: Transport> Transport for Recorder<T> {
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        {
            let mut s = self.sent.lock().unwrap();
            for d in datagrams {
                s.push((d.to_vec(), to));
            }
        }
        self.inner.send(datagrams, to)
    }
    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        self.inner.recv(batch, timeout)
    }
    fn wake(&self) {
        self.inner.wake()
    }
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

/// A caller's hello datagram (clear header + Noise hello) with the passphrase `pass`, its
/// wall-clock time, counter and attempt id: for forging and replaying hellos.
pub fn hello_datagram(pass: &str, unix_ms: u64, counter: u32, attempt: u32) -> Vec<u8> {
    let cfg = HandshakeConfig {
        role: Role::Client,
        psk: Some(Psk::from_passphrase(pass)),
        encrypt: true,
    };
    let p = HelloParams {
        unix_ms,
        counter,
        cookie: None,
    };
    let (_, body) = Initiator::start_at(&cfg, &p).unwrap();
    let mut d = Header {
        kind: Kind::HandshakeInit,
        flags: 0,
        session_id: attempt,
        packet_number: 0,
    }
    .to_bytes()
    .to_vec();
    d.extend_from_slice(&body);
    d
}

/// A listener's Reject for the caller's attempt `attempt` (clear header + reason): for
/// forging refusals.
pub fn reject(attempt: u32, reason: RejectReason) -> Vec<u8> {
    let mut d = Header {
        kind: Kind::Reject,
        flags: 0,
        session_id: attempt,
        packet_number: 0,
    }
    .to_bytes()
    .to_vec();
    d.push(reason as u8);
    d
}
