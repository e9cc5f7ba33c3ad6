//! A seeded network-impairment wrapper around any [`Transport`], for tests and benchmarks.
//!
//! This module owns [`Impaired`], [`ImpairConfig`] and [`ImpairStats`], and, in [`netem`], the
//! sans-IO network emulator they are built on (loss models, delay, jitter, reordering,
//! duplication, a rate-limited drop-tail bottleneck with a rate schedule, trace-driven loss).
//! The UDP relay ([`crate::testkit::relay`]) uses the same emulator. It must never be needed by
//! the shipped streaming path: it is a test tool.
//!
//! The impairments act on the *send* path of the wrapped transport: each datagram handed to
//! [`Transport::send`] enters the emulator (one flow, through its own bottleneck when
//! [`ImpairConfig::bottleneck`] is set) and goes to the inner transport when the emulator
//! releases it. There is no timer thread: datagrams that are due go out whenever the wrapper is
//! used — on every `send`, on every `recv` (a blocking `recv` waits no longer than the next due
//! delivery, sends it, and goes on waiting), and on [`Impaired::drive`]. A session always has a
//! thread in `recv`, so delayed datagrams leave on time; a test that only sends calls `drive`.
//! Datagrams still inside the emulator when the wrapper is dropped are discarded.
//!
//! Receiving, the local address and the transport info pass straight through.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::transport::{RecvBatch, SendOutcome, Transport, TransportInfo};

pub mod netem;

pub use netem::{
    BottleneckConfig, LinkStats, LossModel, LossTrace, PathConfig, QueueLimit, RateSchedule,
    TraceError,
};
use netem::{FlowId, LinkId, Netem};

/// Datagrams handed to the inner transport per call at most.
const CHUNK: usize = 64;

/// Most spare buffers kept for reuse.
const MAX_FREE_BUFFERS: usize = 4096;

/// What to do to the datagrams sent through an [`Impaired`] transport.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairConfig {
    /// Seed of the random decisions.
    pub seed: u64,
    /// How datagrams are lost.
    pub loss: LossModel,
    /// Probability that a datagram is held back (and so overtaken by later ones).
    pub reorder: f64,
    /// A held-back datagram is released after this many later datagrams went out (or after
    /// `reorder_max_hold`).
    pub reorder_depth: usize,
    /// The longest a held-back datagram waits (5 ms by default).
    pub reorder_max_hold: Duration,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Fixed extra one-way delay of every datagram.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within `delay ± jitter` (order is kept).
    pub jitter: Duration,
    /// A rate-limited drop-tail bottleneck in front of the delay (none by default).
    pub bottleneck: Option<BottleneckConfig>,
}

impl Default for ImpairConfig {
    fn default() -> Self {
        let path = PathConfig::default();
        ImpairConfig {
            seed: 0,
            loss: path.loss,
            reorder: path.reorder,
            reorder_depth: path.reorder_depth,
            reorder_max_hold: path.reorder_max_hold,
            duplicate: path.duplicate,
            delay: path.delay,
            jitter: path.jitter,
            bottleneck: None,
        }
    }
}

impl ImpairConfig {
    /// The per-flow part of this configuration, as the emulator takes it.
    pub fn path(&self) -> PathConfig {
        PathConfig {
            loss: self.loss.clone(),
            delay: self.delay,
            jitter: self.jitter,
            reorder: self.reorder,
            reorder_depth: self.reorder_depth,
            reorder_max_hold: self.reorder_max_hold,
            duplicate: self.duplicate,
        }
    }
}

/// Counters of an [`Impaired`] transport.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImpairStats {
    /// Datagrams given to `send` (before any impairment).
    pub sent: u64,
    /// Datagrams lost by the loss model.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams (copies included) held back for reordering.
    pub reordered: u64,
    /// Datagrams (copies included) dropped by the bottleneck's full queue.
    pub queue_dropped: u64,
    /// Datagrams dropped because the emulator held its maximum already.
    pub overflow: u64,
    /// Datagrams (copies included) that left the emulator towards the inner transport.
    pub delivered: u64,
}

impl From<netem::FlowStats> for ImpairStats {
    fn from(s: netem::FlowStats) -> Self {
        ImpairStats {
            sent: s.offered,
            dropped: s.lost,
            duplicated: s.duplicated,
            reordered: s.reordered,
            queue_dropped: s.queue_dropped,
            overflow: s.overflow,
            delivered: s.delivered,
        }
    }
}

/// A datagram inside the emulator.
#[derive(Clone)]
struct Out {
    buf: Vec<u8>,
    to: SocketAddr,
}

struct State {
    net: Netem<Out>,
    flow: FlowId,
    link: Option<LinkId>,
    /// Until when a `recv` is blocked in the inner transport (to wake it for an earlier due
    /// delivery); `None` when no `recv` is blocked.
    recv_until: Option<Instant>,
    /// Deliveries taken from the emulator, about to be sent.
    due: Vec<Out>,
    free: Vec<Vec<u8>>,
}

/// A transport whose sends are impaired. See the module docs.
pub struct Impaired<T: Transport> {
    inner: T,
    config: ImpairConfig,
    state: Mutex<State>,
    /// [`Transport::wake`] was called (as opposed to an internal wake-up for a due delivery).
    woken: AtomicBool,
}

impl<T: Transport> Impaired<T> {
    /// Wraps `inner`. (Returns a `Result` for compatibility; it no longer fails: there is no
    /// timer thread to start.)
    pub fn new(inner: T, config: ImpairConfig) -> io::Result<Self> {
        let mut net = Netem::new(Instant::now());
        let link = config.bottleneck.clone().map(|b| net.add_link(b));
        let flow = net.add_flow(config.path(), config.seed, link);
        Ok(Impaired {
            inner,
            config,
            state: Mutex::new(State {
                net,
                flow,
                link,
                recv_until: None,
                due: Vec::new(),
                free: Vec::new(),
            }),
            woken: AtomicBool::new(false),
        })
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The configuration in force.
    pub fn config(&self) -> &ImpairConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counters so far.
    pub fn stats(&self) -> ImpairStats {
        let st = self.lock();
        st.net.flow_stats(st.flow).into()
    }

    /// The bottleneck's counters, if there is one.
    pub fn link_stats(&self) -> Option<LinkStats> {
        let st = self.lock();
        st.link.map(|l| st.net.link_stats(l))
    }

    /// Sends what is due now; returns when the next datagram is due (`None`: nothing waits).
    /// Only needed when nobody calls `send` or `recv` on the wrapper for a while.
    pub fn drive(&self) -> io::Result<Option<Instant>> {
        let mut st = self.lock();
        self.flush_due(&mut st, Instant::now())?;
        Ok(st.net.poll_timeout())
    }

    /// Hands every delivery due at `now` to the inner transport, in order, in batches to the
    /// same address. Returns the datagrams the inner transport reported dropped.
    fn flush_due(&self, st: &mut State, now: Instant) -> io::Result<usize> {
        let mut due = std::mem::take(&mut st.due);
        while let Some(d) = st.net.poll(now) {
            due.push(d.payload);
        }
        let mut dropped = 0;
        let mut result = Ok(());
        let mut i = 0;
        while i < due.len() && result.is_ok() {
            let to = due[i].to;
            let mut refs: [&[u8]; CHUNK] = [&[][..]; CHUNK];
            let mut n = 0;
            while i + n < due.len() && n < CHUNK && due[i + n].to == to {
                refs[n] = &due[i + n].buf;
                n += 1;
            }
            match self.inner.send(&refs[..n], to) {
                Ok(o) => dropped += o.dropped,
                Err(e) => result = Err(e),
            }
            i += n;
        }
        for d in due.drain(..) {
            if st.free.len() < MAX_FREE_BUFFERS {
                st.free.push(d.buf);
            }
        }
        st.due = due;
        result.map(|()| dropped)
    }
}

impl<T: Transport> Transport for Impaired<T> {
    /// Puts the datagrams into the emulator and hands what is due to the inner transport. The
    /// outcome's `dropped` counts only datagrams the inner transport reported dropped during
    /// this call (the emulator's losses look sent to the caller, as on a real network; see
    /// [`Impaired::stats`]).
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        let mut st = self.lock();
        let now = Instant::now();
        for &d in datagrams {
            let mut buf = st.free.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(d);
            let flow = st.flow;
            st.net.push(now, flow, d.len(), Out { buf, to });
        }
        let dropped = self.flush_due(&mut st, now)?.min(datagrams.len());
        // A `recv` blocked past the next due delivery must come back to send it.
        if let (Some(until), Some(next)) = (st.recv_until, st.net.poll_timeout())
            && next < until
        {
            st.recv_until = Some(next);
            self.inner.wake();
        }
        Ok(SendOutcome {
            sent: datagrams.len() - dropped,
            dropped,
        })
    }

    /// Receives from the inner transport; while waiting, sends the impaired datagrams as they
    /// fall due.
    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start.checked_add(t).unwrap_or(start + t.min(YEAR)));
        loop {
            let now = Instant::now();
            let until = {
                let mut st = self.lock();
                self.flush_due(&mut st, now)?;
                let until = match (deadline, st.net.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                st.recv_until = Some(until.unwrap_or(now + YEAR));
                until
            };
            let wait = until.map(|u| u.saturating_duration_since(now));
            let n = self.inner.recv(batch, wait);
            self.lock().recv_until = None;
            let n = n?;
            if n > 0 {
                return Ok(n);
            }
            if self.woken.swap(false, Ordering::AcqRel) {
                return Ok(0);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let mut st = self.lock();
                self.flush_due(&mut st, Instant::now())?;
                return Ok(0);
            }
        }
    }

    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.inner.wake()
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn info(&self) -> TransportInfo {
        self.inner.info()
    }
}

/// A wait long enough to stand for "forever".
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::memory::MemoryTransport;

    fn seq_payload(i: u32) -> [u8; 8] {
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&i.to_be_bytes());
        p[4..].copy_from_slice(&(!i).to_be_bytes());
        p
    }

    fn parse(d: &[u8]) -> u32 {
        assert_eq!(d.len(), 8);
        let i = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let j = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        assert_eq!(j, !i, "payload corrupted");
        i
    }

    /// Receives at `b` until `expected` datagrams arrived, driving `imp` (nobody else does).
    fn collect(imp: &Impaired<MemoryTransport>, b: &MemoryTransport, expected: usize) -> Vec<u32> {
        let mut got = Vec::with_capacity(expected);
        let mut batch = RecvBatch::new(256, 16);
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < expected {
            assert!(
                Instant::now() < deadline,
                "only {} of {expected} arrived",
                got.len()
            );
            let next = imp.drive().unwrap();
            let wait = next
                .map_or(Duration::from_millis(200), |t| {
                    t.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_millis(200));
            let k = b.recv(&mut batch, Some(wait)).unwrap();
            for i in 0..k {
                let (d, from) = batch.get(i);
                assert_eq!(from, imp.local_addr());
                got.push(parse(d));
            }
        }
        // Nothing beyond the expected arrives.
        assert_eq!(imp.drive().unwrap(), None);
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
        got
    }

    /// Sends `n` sequence-numbered datagrams in calls of `chunk` through an impaired end and
    /// returns the sequence numbers in arrival order.
    fn run(cfg: ImpairConfig, n: u32, chunk: usize) -> (Vec<u32>, ImpairStats) {
        let (a, b) = MemoryTransport::pair_with_capacity(1 << 20);
        let to = b.local_addr();
        let imp = Impaired::new(a, cfg).unwrap();
        let payloads: Vec<[u8; 8]> = (0..n).map(seq_payload).collect();
        for c in payloads.chunks(chunk) {
            let refs: Vec<&[u8]> = c.iter().map(|p| &p[..]).collect();
            let out = imp.send(&refs, to).unwrap();
            assert_eq!(out.sent, refs.len());
        }
        let s = imp.stats();
        let expected = (s.sent - s.dropped - s.queue_dropped + s.duplicated) as usize;
        let got = collect(&imp, &b, expected);
        let stats = imp.stats();
        assert_eq!(stats.delivered as usize, got.len());
        (got, stats)
    }

    #[test]
    fn no_impairment_is_transparent() {
        let (got, stats) = run(ImpairConfig::default(), 1000, 100);
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            stats,
            ImpairStats {
                sent: 1000,
                delivered: 1000,
                ..Default::default()
            }
        );
    }

    #[test]
    fn iid_loss_rate_within_tolerance() {
        let cfg = ImpairConfig {
            seed: 1,
            loss: LossModel::Iid(0.05),
            ..Default::default()
        };
        let (got, stats) = run(cfg, 100_000, 1000);
        assert_eq!(stats.sent, 100_000);
        let rate = stats.dropped as f64 / stats.sent as f64;
        assert!((rate - 0.05).abs() < 0.005, "loss rate {rate}");
        assert_eq!(got.len() as u64, stats.sent - stats.dropped);
        // Survivors arrive in order, each once.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn gilbert_elliott_bursts_reach_the_receiver() {
        let n = 100_000u32;
        let (got, stats) = run(
            ImpairConfig {
                seed: 11,
                loss: LossModel::bursts(0.03, 3.0),
                ..Default::default()
            },
            n,
            2000,
        );
        let mut arrived = vec![false; n as usize];
        for &i in &got {
            arrived[i as usize] = true;
        }
        let lost = arrived.iter().filter(|a| !**a).count();
        let bursts = (0..n as usize)
            .filter(|&i| !arrived[i] && (i == 0 || arrived[i - 1]))
            .count();
        assert_eq!(lost as u64, stats.dropped);
        let (rate, burst) = (lost as f64 / n as f64, lost as f64 / bursts as f64);
        assert!((rate - 0.03).abs() < 0.005, "{rate}");
        assert!((burst - 3.0).abs() < 0.3, "{burst}");
    }

    #[test]
    fn same_seed_same_pattern() {
        let cfg = ImpairConfig {
            seed: 99,
            loss: LossModel::bursts(0.05, 2.0),
            duplicate: 0.02,
            ..Default::default()
        };
        let (a, sa) = run(cfg.clone(), 20_000, 37);
        let (b, sb) = run(cfg.clone(), 20_000, 37);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, _) = run(ImpairConfig { seed: 100, ..cfg }, 20_000, 37);
        assert_ne!(a, c);
    }

    #[test]
    fn reordering_reorders_and_delivers_everything_once() {
        let cfg = ImpairConfig {
            seed: 5,
            reorder: 0.1,
            reorder_depth: 3,
            ..Default::default()
        };
        let n = 10_000;
        let (got, stats) = run(cfg, n, 500);
        assert!(stats.reordered > 500, "{stats:?}");
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "each exactly once");
        let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions > 500, "only {inversions} inversions");
        for (pos, &seq) in got.iter().enumerate() {
            let displaced = pos as i64 - seq as i64;
            assert!(displaced.abs() <= 100, "datagram {seq} at {pos}");
        }
    }

    #[test]
    fn held_back_datagrams_are_released_by_a_waiting_recv() {
        // Everything is held back and nothing follows: only the hold's deadline releases them,
        // and only a call on the wrapper can act on it — here a recv that has nothing to read.
        let (a, b) = MemoryTransport::pair();
        let to = b.local_addr();
        let imp = Impaired::new(
            a,
            ImpairConfig {
                seed: 3,
                reorder: 1.0,
                reorder_depth: 1000,
                ..Default::default()
            },
        )
        .unwrap();
        let payloads: Vec<[u8; 8]> = (0..10).map(seq_payload).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        imp.send(&refs, to).unwrap();
        assert_eq!(imp.stats().reordered, 10);
        let mut batch = RecvBatch::new(16, 16);
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
        // Returns at its timeout (nothing comes in), having sent the held datagrams on the way.
        let mut own = RecvBatch::new(4, 16);
        assert_eq!(
            imp.recv(&mut own, Some(4 * netem::DEFAULT_MAX_HOLD))
                .unwrap(),
            0
        );
        let k = b.recv(&mut batch, Some(Duration::ZERO)).unwrap();
        let got: Vec<u32> = (0..k).map(|i| parse(batch.get(i).0)).collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn duplicates_are_counted_and_delivered() {
        let cfg = ImpairConfig {
            seed: 8,
            duplicate: 0.05,
            ..Default::default()
        };
        let n = 20_000;
        let (got, stats) = run(cfg, n, 1000);
        let rate = stats.duplicated as f64 / n as f64;
        assert!((rate - 0.05).abs() < 0.01, "dup rate {rate}");
        let mut count = vec![0u32; n as usize];
        for &i in &got {
            count[i as usize] += 1;
        }
        assert!(count.iter().all(|&c| c == 1 || c == 2));
        assert_eq!(
            count.iter().filter(|&&c| c == 2).count() as u64,
            stats.duplicated
        );
    }

    #[test]
    fn a_blocked_recv_sends_delayed_datagrams_when_due() {
        let delay = Duration::from_millis(40);
        let (a, b) = MemoryTransport::pair();
        let to = b.local_addr();
        let imp = std::sync::Arc::new(
            Impaired::new(
                a,
                ImpairConfig {
                    delay,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        // The session's receive thread: blocked in recv with a long timeout, no traffic in.
        let rx = {
            let imp = imp.clone();
            std::thread::spawn(move || {
                let mut own = RecvBatch::new(4, 16);
                imp.recv(&mut own, Some(Duration::from_secs(30))).unwrap()
            })
        };
        let mut batch = RecvBatch::new(64, 16);
        let start = Instant::now();
        for i in 0..5u32 {
            imp.send(&[&seq_payload(i)], to).unwrap();
        }
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
        let mut got = Vec::new();
        // Arrives long before the blocked recv's 30 s timeout, which is the point.
        while got.len() < 5 {
            assert!(start.elapsed() < Duration::from_secs(20), "{got:?}");
            let k = b.recv(&mut batch, Some(Duration::from_secs(1))).unwrap();
            if k > 0 && got.is_empty() {
                assert!(start.elapsed() >= delay, "after {:?}", start.elapsed());
            }
            for i in 0..k {
                got.push(parse(batch.get(i).0));
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        // An outside wake ends the blocked recv with 0.
        imp.wake();
        assert_eq!(rx.join().unwrap(), 0);
    }

    /// The sequence numbers `cfg` lets through of `n` sent in a row (the emulator's decisions
    /// for that seed, which depend on nothing but the seed and the packet sequence).
    fn predicted(cfg: &ImpairConfig, n: u32) -> Vec<u32> {
        let t0 = Instant::now();
        let mut net: Netem<()> = Netem::new(t0);
        let f = net.add_flow(cfg.path(), cfg.seed, None);
        (0..n)
            .filter(|_| net.push(t0, f, 8, ()) != netem::Verdict::Lost)
            .collect()
    }

    #[test]
    fn both_ends_wrapped_delay_jitter_and_lose_in_bursts_each_way() {
        // The WAN path: each end impairs what it sends, so both directions see 30 ± 5 ms and
        // their own Gilbert-Elliott bursts, independently seeded.
        const N: u32 = 2000;
        let (delay, jitter) = (Duration::from_millis(30), Duration::from_millis(5));
        let wan = |seed, p, r| ImpairConfig {
            seed,
            loss: LossModel::gilbert(p, r),
            delay,
            jitter,
            ..Default::default()
        };
        let (cfg_a, cfg_b) = (wan(3, 0.02, 0.20), wan(4, 0.01, 0.30));
        let (a, b) = MemoryTransport::pair_with_capacity(1 << 20);
        let (addr_a, addr_b) = (a.local_addr(), b.local_addr());
        let (ia, ib) = (
            Impaired::new(a, cfg_a.clone()).unwrap(),
            Impaired::new(b, cfg_b.clone()).unwrap(),
        );
        let (want_ab, want_ba) = (predicted(&cfg_a, N), predicted(&cfg_b, N));
        let t0 = Instant::now();
        let payloads: Vec<[u8; 8]> = (0..N).map(seq_payload).collect();
        for c in payloads.chunks(100) {
            let refs: Vec<&[u8]> = c.iter().map(|p| &p[..]).collect();
            ia.send(&refs, addr_b).unwrap();
            ib.send(&refs, addr_a).unwrap();
        }
        // Each end's recv also sends what its own emulator has due.
        let (mut at_b, mut at_a) = (Vec::new(), Vec::new());
        let mut first = [None; 2];
        let mut batch = RecvBatch::new(256, 16);
        let deadline = Instant::now() + Duration::from_secs(20);
        while at_b.len() < want_ab.len() || at_a.len() < want_ba.len() {
            assert!(Instant::now() < deadline, "{} {}", at_b.len(), at_a.len());
            for (k, (end, got, from)) in [(&ib, &mut at_b, addr_a), (&ia, &mut at_a, addr_b)]
                .into_iter()
                .enumerate()
            {
                let n = end
                    .recv(&mut batch, Some(Duration::from_millis(2)))
                    .unwrap();
                if n > 0 {
                    first[k].get_or_insert(t0.elapsed());
                }
                for i in 0..n {
                    let (d, src) = batch.get(i);
                    assert_eq!(src, from);
                    got.push(parse(d));
                }
            }
        }
        // Exactly the emulator's losses for each seed, in order; none earlier than
        // delay - jitter after the first send.
        assert_eq!(at_b, want_ab);
        assert_eq!(at_a, want_ba);
        for f in first {
            assert!(f.is_some_and(|f| f >= delay - jitter), "{f:?}");
        }
        for (end, want, p, r) in [(&ia, &want_ab, 0.02, 0.20), (&ib, &want_ba, 0.01, 0.30)] {
            let s = end.stats();
            assert_eq!((s.sent, s.delivered), (u64::from(N), want.len() as u64));
            let mean = p / (p + r);
            let loss = s.dropped as f64 / f64::from(N);
            assert!((loss - mean).abs() < 0.5 * mean, "loss {loss}");
        }
    }

    #[test]
    fn bottleneck_drops_tail_and_paces_what_it_keeps() {
        let (a, b) = MemoryTransport::pair();
        let to = b.local_addr();
        let imp = Impaired::new(
            a,
            ImpairConfig {
                bottleneck: Some(BottleneckConfig {
                    overhead_bytes: 0,
                    ..BottleneckConfig::new(80_000_000).with_queue(QueueLimit::Bytes(50_000))
                }),
                ..Default::default()
            },
        )
        .unwrap();
        let payloads: Vec<Vec<u8>> = (0..100u32)
            .map(|i| {
                let mut p = vec![0u8; 1250];
                p[..8].copy_from_slice(&seq_payload(i));
                p
            })
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        // One call, one `now`: 40 packets of 1250 bytes fill the 50,000-byte queue.
        imp.send(&refs, to).unwrap();
        let s = imp.stats();
        assert_eq!((s.queue_dropped, s.dropped), (60, 0));
        let l = imp.link_stats().unwrap();
        assert_eq!(
            (l.forwarded, l.dropped, l.max_queued_bytes),
            (40, 60, 50_000)
        );
        let mut got = Vec::new();
        let mut batch = RecvBatch::new(64, 2048);
        let start = Instant::now();
        while got.len() < 40 {
            assert!(start.elapsed() < Duration::from_secs(20));
            imp.drive().unwrap();
            let k = b.recv(&mut batch, Some(Duration::from_millis(1))).unwrap();
            got.extend((0..k).map(|i| parse(&batch.get(i).0[..8])));
        }
        assert_eq!(got, (0..40).collect::<Vec<_>>());
        // 50,000 bytes at 10 bytes/µs take 5 ms to leave.
        assert!(start.elapsed() >= Duration::from_millis(4));
    }

    #[test]
    fn passes_through_recv_wake_and_addr() {
        let (a, b) = MemoryTransport::pair();
        let imp = Impaired::new(b, ImpairConfig::default()).unwrap();
        assert_eq!(imp.local_addr(), imp.inner().local_addr());
        a.send(&[b"hi"], imp.local_addr()).unwrap();
        let mut batch = RecvBatch::new(4, 16);
        assert_eq!(
            imp.recv(&mut batch, Some(Duration::from_secs(1))).unwrap(),
            1
        );
        assert_eq!(batch.get(0).0, b"hi");
        imp.wake();
        assert_eq!(imp.recv(&mut batch, None).unwrap(), 0);
        assert_eq!(imp.info(), TransportInfo::default());
    }

    #[test]
    fn impaired_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Impaired<MemoryTransport>>();
    }
}
