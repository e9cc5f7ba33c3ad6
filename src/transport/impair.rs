//! A seeded network-impairment wrapper around any [`Transport`], for tests and benchmarks.
//!
//! This module owns [`Impaired`], [`ImpairConfig`], [`LossModel`] and [`ImpairStats`]. The
//! impairments act on the *send* path of the wrapped transport: each datagram handed to
//! [`Transport::send`] may be lost (independently or in Gilbert-Elliott bursts), duplicated,
//! held back so that later datagrams overtake it (reordering), and delayed by a fixed amount.
//! All random decisions come from a small self-contained PRNG (xoshiro256** seeded through
//! splitmix64), so a given seed and send sequence always produce the same loss, duplication and
//! reordering decisions.
//!
//! A held-back datagram goes out after `reorder_depth` later datagrams have gone out, or at the
//! latest [`MAX_HOLD`] after it was held, whichever comes first. The time-based releases and the
//! fixed delay are carried out by one small timer thread per wrapper (started only when the
//! configuration reorders or delays); it sleeps on a condition variable until the next deadline
//! and exits when the wrapper is dropped (datagrams still held or delayed then are discarded).
//! Receiving, waking, the local address and the transport info pass straight through.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{RecvBatch, SendOutcome, Transport, TransportInfo};

/// The longest a reordered datagram is held back before it is released anyway.
pub const MAX_HOLD: Duration = Duration::from_millis(5);

/// Datagrams handed to the inner transport per call at most.
const CHUNK: usize = 64;

/// Most spare buffers kept for reuse.
const MAX_FREE_BUFFERS: usize = 4096;

/// How datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LossModel {
    /// Nothing is lost.
    #[default]
    None,
    /// Each datagram is lost independently with this probability.
    Iid(f64),
    /// A two-state Markov chain: in the good state a datagram is lost with `loss_good`, in the bad
    /// state with `loss_bad`; after each datagram the state flips with the given probability.
    GilbertElliott {
        p_good_to_bad: f64,
        p_bad_to_good: f64,
        loss_good: f64,
        loss_bad: f64,
    },
}

impl LossModel {
    /// A burst model with average loss `loss_rate` (0..1) in bursts of `mean_burst_len`
    /// consecutive datagrams on average (≥ 1): every datagram in the bad state is lost, none in
    /// the good state, `p_bad_to_good = 1 / mean_burst_len` and `p_good_to_bad` is chosen so that
    /// the stationary loss equals `loss_rate`. Inputs out of range are clamped (a loss rate too
    /// high for the burst length saturates `p_good_to_bad` at 1); NaN counts as 0 loss / burst 1.
    pub fn bursts(loss_rate: f64, mean_burst_len: f64) -> Self {
        let loss = if loss_rate.is_nan() {
            0.0
        } else {
            loss_rate.clamp(0.0, 1.0)
        };
        let burst = if mean_burst_len.is_nan() {
            1.0
        } else {
            mean_burst_len.max(1.0)
        };
        let (p_good_to_bad, p_bad_to_good) = if loss >= 1.0 {
            (1.0, 0.0)
        } else {
            let p_bg = 1.0 / burst;
            ((loss * p_bg / (1.0 - loss)).min(1.0), p_bg)
        };
        LossModel::GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The long-run fraction of datagrams this model loses.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossModel::None => 0.0,
            LossModel::Iid(p) => clamp_prob(p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let (gb, bg) = (clamp_prob(p_good_to_bad), clamp_prob(p_bad_to_good));
                let bad = if gb + bg > 0.0 { gb / (gb + bg) } else { 0.0 };
                bad * clamp_prob(loss_bad) + (1.0 - bad) * clamp_prob(loss_good)
            }
        }
    }
}

fn clamp_prob(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// What to do to the datagrams sent through an [`Impaired`] transport.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImpairConfig {
    /// Seed of the random decisions.
    pub seed: u64,
    /// How datagrams are lost.
    pub loss: LossModel,
    /// Probability that a datagram is held back (and so overtaken by later ones).
    pub reorder: f64,
    /// A held-back datagram is released after this many later datagrams went out (or after
    /// [`MAX_HOLD`]).
    pub reorder_depth: usize,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Fixed extra one-way delay of every datagram.
    pub delay: Duration,
}

impl Default for ImpairConfig {
    fn default() -> Self {
        ImpairConfig {
            seed: 0,
            loss: LossModel::None,
            reorder: 0.0,
            reorder_depth: 3,
            duplicate: 0.0,
            delay: Duration::ZERO,
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
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams (copies included) held back for reordering.
    pub reordered: u64,
}

/// xoshiro256** seeded through splitmix64.
#[derive(Debug, Clone)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`; draws nothing when `p` is 0 (or NaN) or ≥ 1.
    fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.next_f64() < p
        }
    }
}

struct Held {
    buf: Vec<u8>,
    to: SocketAddr,
    /// Released once `State::emitted` reaches this.
    release_at: u64,
    deadline: Instant,
}

struct Delayed {
    buf: Vec<u8>,
    to: SocketAddr,
    due: Instant,
}

struct State {
    rng: Rng,
    /// Gilbert-Elliott: in the bad state.
    bad: bool,
    /// Datagrams that have gone out (or into the delay line) so far.
    emitted: u64,
    held: VecDeque<Held>,
    delayed: VecDeque<Delayed>,
    free: Vec<Vec<u8>>,
    /// When the timer thread will next look; `None` = it waits for a notification.
    thread_wake: Option<Instant>,
    shutdown: bool,
}

impl State {
    fn take_buf(&mut self, d: &[u8]) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(d);
        buf
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.free.len() < MAX_FREE_BUFFERS {
            self.free.push(buf);
        }
    }

    fn lose(&mut self, model: &LossModel) -> bool {
        match *model {
            LossModel::None => false,
            LossModel::Iid(p) => self.rng.chance(p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let lost = if self.bad {
                    self.rng.chance(loss_bad)
                } else {
                    self.rng.chance(loss_good)
                };
                if self.bad {
                    if self.rng.chance(p_bad_to_good) {
                        self.bad = false;
                    }
                } else if self.rng.chance(p_good_to_bad) {
                    self.bad = true;
                }
                lost
            }
        }
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

struct Shared<T> {
    inner: T,
    config: ImpairConfig,
    state: Mutex<State>,
    cv: Condvar,
    counters: Counters,
}

/// The caller's datagrams waiting to go to the inner transport in one call.
struct Pending<'a> {
    batch: [&'a [u8]; CHUNK],
    n: usize,
    to: SocketAddr,
    /// Datagrams the inner transport reported dropped during this call.
    inner_dropped: usize,
}

impl<T: Transport> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the timer thread about a new deadline if it would otherwise sleep past it.
    fn schedule(&self, st: &mut State, deadline: Instant) {
        if st.thread_wake.is_none_or(|w| deadline < w) {
            st.thread_wake = Some(deadline);
            self.cv.notify_one();
        }
    }

    fn flush(&self, p: &mut Pending<'_>) -> io::Result<()> {
        if p.n > 0 {
            let out = self.inner.send(&p.batch[..p.n], p.to)?;
            p.inner_dropped += out.dropped;
            p.n = 0;
        }
        Ok(())
    }

    /// One of the caller's datagrams goes out (or into the delay line).
    fn emit_borrowed<'a>(
        &self,
        st: &mut State,
        p: &mut Pending<'a>,
        d: &'a [u8],
        now: Instant,
    ) -> io::Result<()> {
        if self.config.delay.is_zero() {
            if p.n == CHUNK {
                self.flush(p)?;
            }
            p.batch[p.n] = d;
            p.n += 1;
        } else {
            let buf = st.take_buf(d);
            self.delay_line(st, buf, p.to, now);
        }
        st.emitted += 1;
        self.release_by_count(st, Some(p), now)
    }

    fn delay_line(&self, st: &mut State, buf: Vec<u8>, to: SocketAddr, now: Instant) {
        // An absurd delay that overflows `Instant` is clamped to about a year.
        let due = now
            .checked_add(self.config.delay)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(now);
        st.delayed.push_back(Delayed { buf, to, due });
        self.schedule(st, due);
    }

    /// A copied datagram (a released held-back one) goes out (or into the delay line), after
    /// whatever the caller queued before it.
    fn emit_owned(
        &self,
        st: &mut State,
        pending: Option<&mut Pending<'_>>,
        buf: Vec<u8>,
        to: SocketAddr,
        now: Instant,
    ) -> io::Result<()> {
        st.emitted += 1;
        if self.config.delay.is_zero() {
            let res = match pending {
                Some(p) => self.flush(p).and_then(|()| {
                    let out = self.inner.send(&[&buf], to)?;
                    p.inner_dropped += out.dropped;
                    Ok(())
                }),
                None => self.inner.send(&[&buf], to).map(|_| ()),
            };
            st.recycle(buf);
            res
        } else {
            self.delay_line(st, buf, to, now);
            Ok(())
        }
    }

    /// Releases the held-back datagrams whose count of later datagrams is reached.
    fn release_by_count(
        &self,
        st: &mut State,
        mut pending: Option<&mut Pending<'_>>,
        now: Instant,
    ) -> io::Result<()> {
        while st.held.front().is_some_and(|h| h.release_at <= st.emitted) {
            if let Some(h) = st.held.pop_front() {
                self.emit_owned(st, pending.as_deref_mut(), h.buf, h.to, now)?;
            }
        }
        Ok(())
    }

    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        let cfg = &self.config;
        let mut st = self.lock();
        let now = Instant::now();
        let mut p = Pending {
            batch: [&[][..]; CHUNK],
            n: 0,
            to,
            inner_dropped: 0,
        };
        let (mut lost, mut dups, mut held) = (0u64, 0u64, 0u64);
        let mut result = Ok(());
        'outer: for &d in datagrams {
            if st.lose(&cfg.loss) {
                lost += 1;
                continue;
            }
            let copies = if st.rng.chance(cfg.duplicate) {
                dups += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if st.rng.chance(cfg.reorder) {
                    held += 1;
                    let buf = st.take_buf(d);
                    let deadline = now + MAX_HOLD;
                    let release_at = st.emitted.saturating_add(cfg.reorder_depth as u64);
                    st.held.push_back(Held {
                        buf,
                        to,
                        release_at,
                        deadline,
                    });
                    self.schedule(&mut st, deadline);
                } else if let Err(e) = self.emit_borrowed(&mut st, &mut p, d, now) {
                    result = Err(e);
                    break 'outer;
                }
            }
        }
        if result.is_ok() {
            result = self.flush(&mut p);
        }
        drop(st);
        let c = &self.counters;
        c.sent.fetch_add(datagrams.len() as u64, Ordering::Relaxed);
        c.dropped.fetch_add(lost, Ordering::Relaxed);
        c.duplicated.fetch_add(dups, Ordering::Relaxed);
        c.reordered.fetch_add(held, Ordering::Relaxed);
        result?;
        let dropped = p.inner_dropped.min(datagrams.len());
        Ok(SendOutcome {
            sent: datagrams.len() - dropped,
            dropped,
        })
    }

    /// The timer thread: releases held-back datagrams at their deadline and sends delayed ones
    /// when due; sleeps until the next deadline or a notification.
    fn run(&self) {
        let mut due: Vec<Delayed> = Vec::new();
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return;
            }
            let now = Instant::now();
            while st.held.front().is_some_and(|h| h.deadline <= now) {
                if let Some(h) = st.held.pop_front() {
                    // Errors here have nobody to go to; the datagram is simply lost.
                    let _ = self.emit_owned(&mut st, None, h.buf, h.to, now);
                    let _ = self.release_by_count(&mut st, None, now);
                }
            }
            while st.delayed.front().is_some_and(|d| d.due <= now) {
                if let Some(d) = st.delayed.pop_front() {
                    due.push(d);
                }
            }
            let mut i = 0;
            while i < due.len() {
                let to = due[i].to;
                let mut refs: [&[u8]; CHUNK] = [&[][..]; CHUNK];
                let mut n = 0;
                while i + n < due.len() && n < CHUNK && due[i + n].to == to {
                    refs[n] = &due[i + n].buf;
                    n += 1;
                }
                let _ = self.inner.send(&refs[..n], to);
                i += n;
            }
            for d in due.drain(..) {
                st.recycle(d.buf);
            }

            let next = match (st.held.front(), st.delayed.front()) {
                (Some(h), Some(d)) => Some(h.deadline.min(d.due)),
                (Some(h), None) => Some(h.deadline),
                (None, Some(d)) => Some(d.due),
                (None, None) => None,
            };
            st.thread_wake = next;
            match next {
                None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    let now = Instant::now();
                    if t > now {
                        st = self
                            .cv
                            .wait_timeout(st, t - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        }
    }
}

/// A transport whose sends are impaired. See the module docs.
pub struct Impaired<T: Transport> {
    shared: Arc<Shared<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Transport + 'static> Impaired<T> {
    /// Wraps `inner`. Starts the timer thread when `config` reorders or delays; fails only if
    /// that thread cannot be started.
    pub fn new(inner: T, config: ImpairConfig) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            inner,
            config,
            state: Mutex::new(State {
                rng: Rng::new(config.seed),
                bad: false,
                emitted: 0,
                held: VecDeque::new(),
                delayed: VecDeque::new(),
                free: Vec::new(),
                thread_wake: None,
                shutdown: false,
            }),
            cv: Condvar::new(),
            counters: Counters::default(),
        });
        let needs_thread = clamp_prob(config.reorder) > 0.0 || !config.delay.is_zero();
        let thread = if needs_thread {
            let sh = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("punktfunk-impair".into())
                    .spawn(move || sh.run())?,
            )
        } else {
            None
        };
        Ok(Impaired { shared, thread })
    }
}

impl<T: Transport> Impaired<T> {
    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.shared.inner
    }

    /// The configuration in force.
    pub fn config(&self) -> &ImpairConfig {
        &self.shared.config
    }

    /// Counters so far.
    pub fn stats(&self) -> ImpairStats {
        let c = &self.shared.counters;
        ImpairStats {
            sent: c.sent.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            duplicated: c.duplicated.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
        }
    }
}

impl<T: Transport> Drop for Impaired<T> {
    fn drop(&mut self) {
        if let Some(h) = self.thread.take() {
            self.shared.lock().shutdown = true;
            self.shared.cv.notify_all();
            let _ = h.join();
        }
    }
}

impl<T: Transport> Transport for Impaired<T> {
    /// Applies the impairments and hands what survives to the inner transport. The outcome's
    /// `dropped` counts only datagrams the inner transport reported dropped (the loss model's
    /// losses look sent to the caller, as on a real network; see [`Impaired::stats`]).
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        self.shared.send(datagrams, to)
    }

    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        self.shared.inner.recv(batch, timeout)
    }

    fn wake(&self) {
        self.shared.inner.wake()
    }

    fn local_addr(&self) -> SocketAddr {
        self.shared.inner.local_addr()
    }

    fn info(&self) -> TransportInfo {
        self.shared.inner.info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory::MemoryTransport;

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

    /// Sends `n` sequence-numbered datagrams in calls of `chunk` through an impaired end and
    /// returns the sequence numbers in arrival order (waiting until `expected(stats)` arrived).
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
        let stats = imp.stats();
        let expected = (stats.sent - stats.dropped + stats.duplicated) as usize;
        let mut got = Vec::with_capacity(expected);
        let mut batch = RecvBatch::new(256, 16);
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < expected {
            assert!(
                Instant::now() < deadline,
                "only {} of {expected} arrived",
                got.len()
            );
            let k = b
                .recv(&mut batch, Some(Duration::from_millis(200)))
                .unwrap();
            for i in 0..k {
                let (d, from) = batch.get(i);
                assert_eq!(from, imp.local_addr());
                got.push(parse(d));
            }
        }
        // Nothing beyond the expected arrives.
        assert_eq!(
            b.recv(&mut batch, Some(Duration::from_millis(20))).unwrap(),
            0
        );
        (got, stats)
    }

    #[test]
    fn prng_is_seeded_and_uniformish() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut r = Rng::new(7);
        let mean = (0..100_000).map(|_| r.next_f64()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!(!r.chance(0.0) && !r.chance(f64::NAN) && r.chance(1.0));
    }

    #[test]
    fn no_impairment_is_transparent() {
        let (got, stats) = run(ImpairConfig::default(), 1000, 100);
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            stats,
            ImpairStats {
                sent: 1000,
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

    /// Mean loss and mean burst length of the loss pattern seen by the receiver.
    fn loss_pattern(got: &[u32], n: u32) -> (f64, f64) {
        let mut arrived = vec![false; n as usize];
        for &i in got {
            arrived[i as usize] = true;
        }
        let lost = arrived.iter().filter(|a| !**a).count();
        let mut bursts = 0;
        let mut prev_lost = false;
        for a in &arrived {
            if !*a && !prev_lost {
                bursts += 1;
            }
            prev_lost = !*a;
        }
        (lost as f64 / n as f64, lost as f64 / bursts.max(1) as f64)
    }

    #[test]
    fn gilbert_elliott_bursts_match_requested_rate_and_length() {
        for (rate, burst, seed) in [(0.03, 3.0, 11u64), (0.10, 5.0, 12), (0.05, 1.0, 13)] {
            let model = LossModel::bursts(rate, burst);
            assert!((model.mean_loss() - rate).abs() < 1e-12);
            let cfg = ImpairConfig {
                seed,
                loss: model,
                ..Default::default()
            };
            let n = 200_000;
            let (got, stats) = run(cfg, n, 2000);
            let (loss, mean_burst) = loss_pattern(&got, n);
            assert_eq!(stats.dropped as usize, n as usize - got.len());
            assert!(
                (loss - rate).abs() < rate * 0.15,
                "rate {rate} burst {burst}: measured loss {loss}"
            );
            assert!(
                (mean_burst - burst).abs() < burst * 0.1 + 0.05,
                "rate {rate} burst {burst}: measured mean burst {mean_burst}"
            );
        }
    }

    #[test]
    fn bursts_constructor_edges_do_not_panic() {
        for (r, b) in [
            (0.0, 3.0),
            (1.0, 3.0),
            (2.0, 0.0),
            (-1.0, -1.0),
            (f64::NAN, f64::NAN),
            (0.9, 1.0),
            (0.5, f64::INFINITY),
        ] {
            let m = LossModel::bursts(r, b);
            let l = m.mean_loss();
            assert!((0.0..=1.0).contains(&l), "{r} {b} -> {l}");
        }
        assert_eq!(LossModel::bursts(1.0, 3.0).mean_loss(), 1.0);
        assert_eq!(LossModel::bursts(0.0, 3.0).mean_loss(), 0.0);
    }

    #[test]
    fn same_seed_same_pattern() {
        let cfg = ImpairConfig {
            seed: 99,
            loss: LossModel::bursts(0.05, 2.0),
            duplicate: 0.02,
            ..Default::default()
        };
        let (a, sa) = run(cfg, 20_000, 37);
        let (b, sb) = run(cfg, 20_000, 37);
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
        // Displacement is bounded by the depth as long as releases happen by count.
        for (pos, &seq) in got.iter().enumerate() {
            let displaced = pos as i64 - seq as i64;
            assert!(displaced.abs() <= 100, "datagram {seq} at {pos}");
        }
    }

    #[test]
    fn held_back_datagrams_are_released_by_time() {
        // Everything is held back and nothing follows: only the timer can release them.
        let cfg = ImpairConfig {
            seed: 3,
            reorder: 1.0,
            reorder_depth: 1000,
            ..Default::default()
        };
        let start = Instant::now();
        let (got, stats) = run(cfg, 10, 10);
        assert_eq!(stats.reordered, 10);
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(start.elapsed() >= MAX_HOLD);
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
    fn delay_delays_and_keeps_order() {
        let delay = Duration::from_millis(40);
        let (a, b) = MemoryTransport::pair();
        let to = b.local_addr();
        let imp = Impaired::new(
            a,
            ImpairConfig {
                delay,
                ..Default::default()
            },
        )
        .unwrap();
        let mut batch = RecvBatch::new(64, 16);
        let start = Instant::now();
        for i in 0..5u32 {
            imp.send(&[&seq_payload(i)], to).unwrap();
        }
        // Nothing can be there yet (the delay line only releases after `delay`).
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
        let mut got = Vec::new();
        while got.len() < 5 {
            assert!(start.elapsed() < Duration::from_secs(10));
            let k = b.recv(&mut batch, Some(Duration::from_secs(1))).unwrap();
            if k > 0 && got.is_empty() {
                assert!(
                    start.elapsed() >= delay,
                    "arrived after {:?}",
                    start.elapsed()
                );
            }
            for i in 0..k {
                got.push(parse(batch.get(i).0));
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn delay_with_reorder_and_drop_exits_thread() {
        let (a, b) = MemoryTransport::pair();
        let to = b.local_addr();
        let imp = Impaired::new(
            a,
            ImpairConfig {
                seed: 1,
                delay: Duration::from_millis(5),
                reorder: 0.3,
                ..Default::default()
            },
        )
        .unwrap();
        let payloads: Vec<[u8; 8]> = (0..200).map(seq_payload).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        imp.send(&refs, to).unwrap();
        let mut batch = RecvBatch::new(64, 16);
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < 200 {
            assert!(start.elapsed() < Duration::from_secs(10));
            let k = b
                .recv(&mut batch, Some(Duration::from_millis(200)))
                .unwrap();
            for i in 0..k {
                got.push(parse(batch.get(i).0));
            }
        }
        got.sort_unstable();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        // Dropping joins the timer thread; with datagrams still queued it must not hang.
        imp.send(&refs, to).unwrap();
        drop(imp);
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
