//! In-process transport pair for tests and benchmarks.
//!
//! This module owns [`MemoryTransport`]: two ends connected by bounded in-memory queues, one per
//! direction. Whatever one end sends (to any address) arrives at the other end, which sees it as
//! coming from the sender's fixed fake address (`127.0.0.1:1` for the first end of a pair,
//! `127.0.0.1:2` for the second; nothing is ever sent over a network). A full queue drops the
//! datagram and counts it, just as a full UDP buffer would; a receive copies the datagrams into
//! the caller's [`RecvBatch`] slots and drops (and counts) datagrams larger than a slot. Buffers
//! are recycled between the ends, so a steady stream does not allocate per datagram.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::transport::{RecvBatch, SendOutcome, Transport};

/// Default queue capacity per direction, in datagrams.
pub const DEFAULT_CAPACITY: usize = 65536;

/// Most spare buffers kept for reuse per queue.
const MAX_FREE_BUFFERS: usize = 4096;

/// One direction's queue: the receiving end's inbox.
struct Inbox {
    state: Mutex<InboxState>,
    cv: Condvar,
    capacity: usize,
}

struct InboxState {
    items: VecDeque<(Vec<u8>, SocketAddr)>,
    /// Spare buffers, handed back by the receiver and reused by the sender.
    free: Vec<Vec<u8>>,
    /// A wake-up is pending.
    woken: bool,
}

impl Inbox {
    fn new(capacity: usize) -> Self {
        Inbox {
            state: Mutex::new(InboxState {
                items: VecDeque::with_capacity(capacity.min(1024)),
                free: Vec::new(),
                woken: false,
            }),
            cv: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One end of an in-memory datagram link. See the module docs.
pub struct MemoryTransport {
    local: SocketAddr,
    /// Where our datagrams come from on the other side.
    inbox: Arc<Inbox>,
    /// The peer's inbox; gone once the peer is dropped (sends then vanish, like on a network).
    peer: Weak<Inbox>,
    dropped: AtomicU64,
    oversize: AtomicU64,
}

impl MemoryTransport {
    /// A connected pair with [`DEFAULT_CAPACITY`] datagrams of queue per direction. The first
    /// has local address `127.0.0.1:1`, the second `127.0.0.1:2`.
    pub fn pair() -> (MemoryTransport, MemoryTransport) {
        Self::pair_with_capacity(DEFAULT_CAPACITY)
    }

    /// A connected pair whose queues hold at most `capacity` datagrams per direction (at least 1).
    pub fn pair_with_capacity(capacity: usize) -> (MemoryTransport, MemoryTransport) {
        let capacity = capacity.max(1);
        let a_in = Arc::new(Inbox::new(capacity));
        let b_in = Arc::new(Inbox::new(capacity));
        let a = MemoryTransport {
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
            peer: Arc::downgrade(&b_in),
            inbox: a_in.clone(),
            dropped: AtomicU64::new(0),
            oversize: AtomicU64::new(0),
        };
        let b = MemoryTransport {
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2),
            peer: Arc::downgrade(&a_in),
            inbox: b_in,
            dropped: AtomicU64::new(0),
            oversize: AtomicU64::new(0),
        };
        (a, b)
    }

    /// Datagrams this end sent that were dropped because the peer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Datagrams this end received that were larger than a [`RecvBatch`] slot and were dropped.
    pub fn truncated(&self) -> u64 {
        self.oversize.load(Ordering::Relaxed)
    }

    /// Datagrams waiting in this end's inbox.
    pub fn pending(&self) -> usize {
        self.inbox.lock().items.len()
    }

    /// Moves queued datagrams into `batch` (which the caller has cleared). Returns how many
    /// entries were added.
    fn drain_into(&self, st: &mut InboxState, batch: &mut RecvBatch) -> usize {
        let slot_size = batch.slot_size();
        let mut slot = 0;
        while slot < batch.slots() {
            let Some((buf, from)) = st.items.pop_front() else {
                break;
            };
            if buf.len() > slot_size {
                self.oversize.fetch_add(1, Ordering::Relaxed);
            } else {
                batch.slot_mut(slot)[..buf.len()].copy_from_slice(&buf);
                batch.push(slot, 0, buf.len(), from);
                slot += 1;
            }
            if st.free.len() < MAX_FREE_BUFFERS {
                st.free.push(buf);
            }
        }
        batch.len()
    }
}

impl Transport for MemoryTransport {
    /// Queues each datagram for the peer, whatever `to` says. A full queue drops the rest of
    /// the datagrams that do not fit (counted); a dropped peer swallows everything silently.
    fn send(&self, datagrams: &[&[u8]], _to: SocketAddr) -> io::Result<SendOutcome> {
        let Some(peer) = self.peer.upgrade() else {
            return Ok(SendOutcome {
                sent: datagrams.len(),
                dropped: 0,
            });
        };
        let mut out = SendOutcome::default();
        {
            let mut st = peer.lock();
            for d in datagrams {
                if st.items.len() >= peer.capacity {
                    out.dropped += 1;
                    continue;
                }
                let mut buf = st.free.pop().unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(d);
                st.items.push_back((buf, self.local));
                out.sent += 1;
            }
        }
        if out.dropped > 0 {
            self.dropped
                .fetch_add(out.dropped as u64, Ordering::Relaxed);
        }
        if out.sent > 0 {
            peer.cv.notify_all();
        }
        Ok(out)
    }

    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        batch.clear();
        // An overflowing deadline is as good as none.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.inbox.lock();
        loop {
            if st.woken {
                st.woken = false;
                return Ok(0);
            }
            if !st.items.is_empty() {
                let n = self.drain_into(&mut st, batch);
                if n > 0 {
                    return Ok(n);
                }
                // Everything queued was oversize: keep waiting for the rest of the time.
                continue;
            }
            match (timeout, deadline) {
                (None, _) | (Some(_), None) => {
                    st = self.inbox.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                (Some(_), Some(deadline)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(0);
                    }
                    st = self
                        .inbox
                        .cv
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    fn wake(&self) {
        self.inbox.lock().woken = true;
        self.inbox.cv.notify_all();
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    #[test]
    fn pair_addresses_and_byte_exact_delivery_both_ways() {
        let (a, b) = MemoryTransport::pair();
        assert_eq!(a.local_addr(), addr(1));
        assert_eq!(b.local_addr(), addr(2));

        let payloads: Vec<Vec<u8>> = (0..100u32)
            .map(|i| (0..(i * 7 % 300)).map(|j| (i + j) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let out = a.send(&refs, b.local_addr()).unwrap();
        assert_eq!(
            out,
            SendOutcome {
                sent: 100,
                dropped: 0
            }
        );

        let mut batch = RecvBatch::new(32, 512);
        let mut got = Vec::new();
        while got.len() < payloads.len() {
            let n = b.recv(&mut batch, Some(Duration::from_secs(5))).unwrap();
            assert!(n > 0 && n <= 32);
            for i in 0..n {
                let (d, from) = batch.get(i);
                assert_eq!(from, addr(1));
                got.push(d.to_vec());
            }
        }
        assert_eq!(got, payloads);

        b.send(&[b"back"], a.local_addr()).unwrap();
        let n = a.recv(&mut batch, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(n, 1);
        assert_eq!(batch.get(0), (&b"back"[..], addr(2)));
    }

    #[test]
    fn overflow_is_dropped_and_counted() {
        let (a, b) = MemoryTransport::pair_with_capacity(10);
        let d = [0u8; 8];
        let dgs: Vec<&[u8]> = vec![&d; 25];
        let out = a.send(&dgs, b.local_addr()).unwrap();
        assert_eq!(
            out,
            SendOutcome {
                sent: 10,
                dropped: 15
            }
        );
        assert_eq!(a.dropped(), 15);
        assert_eq!(b.pending(), 10);
        let mut batch = RecvBatch::new(64, 16);
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 10);
        // Room again after draining.
        let out = a.send(&dgs[..3], b.local_addr()).unwrap();
        assert_eq!(
            out,
            SendOutcome {
                sent: 3,
                dropped: 0
            }
        );
    }

    #[test]
    fn oversize_datagrams_are_dropped_at_receive() {
        let (a, b) = MemoryTransport::pair();
        let big = [1u8; 100];
        let small = [2u8; 10];
        a.send(&[&big, &small, &big], b.local_addr()).unwrap();
        let mut batch = RecvBatch::new(8, 50);
        assert_eq!(b.recv(&mut batch, Some(Duration::from_secs(1))).unwrap(), 1);
        assert_eq!(batch.get(0).0, &small[..]);
        assert_eq!(b.truncated(), 2);
        // Only oversize datagrams queued: the timeout runs out and 0 comes back.
        a.send(&[&big], b.local_addr()).unwrap();
        assert_eq!(
            b.recv(&mut batch, Some(Duration::from_millis(20))).unwrap(),
            0
        );
        assert_eq!(b.truncated(), 3);
    }

    #[test]
    fn recv_respects_batch_slots() {
        let (a, b) = MemoryTransport::pair();
        let d = [9u8; 4];
        let dgs: Vec<&[u8]> = vec![&d; 10];
        a.send(&dgs, b.local_addr()).unwrap();
        let mut batch = RecvBatch::new(4, 8);
        assert_eq!(b.recv(&mut batch, None).unwrap(), 4);
        assert_eq!(b.recv(&mut batch, None).unwrap(), 4);
        assert_eq!(b.recv(&mut batch, None).unwrap(), 2);
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
        assert!(batch.is_empty());
    }

    #[test]
    fn timeout_returns_zero() {
        let (_a, b) = MemoryTransport::pair();
        let mut batch = RecvBatch::new(4, 64);
        let start = Instant::now();
        assert_eq!(
            b.recv(&mut batch, Some(Duration::from_millis(30))).unwrap(),
            0
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A huge timeout must not overflow: use a wake to end it.
        b.wake();
        assert_eq!(b.recv(&mut batch, Some(Duration::MAX)).unwrap(), 0);
    }

    #[test]
    fn wake_interrupts_blocked_recv() {
        let (_a, b) = MemoryTransport::pair();
        let b = Arc::new(b);
        let (tx, rx) = mpsc::channel();
        let b2 = b.clone();
        let h = thread::spawn(move || {
            let mut batch = RecvBatch::new(4, 64);
            let r = b2.recv(&mut batch, None);
            let _ = tx.send(r.map_err(|e| e.kind()));
        });
        // Wake repeatedly until the thread reports: a wake before it blocks is also fine.
        let deadline = Instant::now() + Duration::from_secs(10);
        let res = loop {
            b.wake();
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => break r,
                Err(_) => assert!(Instant::now() < deadline, "recv was not woken"),
            }
        };
        assert_eq!(res, Ok(0));
        h.join().unwrap();
    }

    #[test]
    fn blocked_recv_gets_data_from_other_thread() {
        let (a, b) = MemoryTransport::pair();
        let (tx, rx) = mpsc::channel();
        let h = thread::spawn(move || {
            let mut batch = RecvBatch::new(4, 64);
            let n = b.recv(&mut batch, Some(Duration::from_secs(10))).unwrap();
            let _ = tx.send((n, batch.get(0).0.to_vec()));
        });
        a.send(&[b"hello"], addr(2)).unwrap();
        let (n, d) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(d, b"hello");
        h.join().unwrap();
    }

    #[test]
    fn dropped_peer_means_silence_not_errors() {
        let (a, b) = MemoryTransport::pair();
        drop(b);
        let out = a.send(&[b"x"], addr(2)).unwrap();
        assert_eq!(out.sent, 1);
        let mut batch = RecvBatch::new(4, 64);
        assert_eq!(
            a.recv(&mut batch, Some(Duration::from_millis(10))).unwrap(),
            0
        );
    }

    #[test]
    fn transport_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<MemoryTransport>();
    }
}
