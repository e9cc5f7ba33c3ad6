//! A sans-IO network emulator: packets in with timestamps, decisions and deliveries out.
//!
//! This module owns [`Netem`] and its models; [`super::Impaired`] (any [`Transport`]) and the
//! UDP relay ([`crate::testkit::relay`]) drive it. It never reads a clock, sleeps, starts a
//! thread or touches a socket: every call takes the current time, so tests run it on virtual
//! time (thousands of seconds of traffic in milliseconds, the same result on every run).
//!
//! [`Transport`]: crate::transport::Transport
//!
//! # Model
//!
//! A [`Netem`] carries any number of *flows* (one direction of one conversation each). A packet
//! pushed into a flow goes through, in order:
//!
//! 1. **loss** ([`LossModel`]): none, iid, Gilbert-Elliott (p, r and the loss probability in
//!    each state; or from mean loss and mean burst length) or a trace ([`LossTrace`]) that can
//!    also add a per-packet delay;
//! 2. **duplication**: with probability `duplicate` a second copy follows the first;
//! 3. the flow's **bottleneck**, if any ([`BottleneckConfig`]): a FIFO drop-tail queue in front
//!    of a link whose rate may follow a schedule, *shared* by every flow routed through it, so
//!    flows compete for its capacity as they would for a real one;
//! 4. **delay**: fixed `delay` plus a uniform jitter in `[-jitter, +jitter]` (never below 0)
//!    plus a trace's extra delay. A flow's deliveries keep their order (a jittered packet
//!    never overtakes an earlier one; it waits for it, as on a real link), except for…
//! 5. **reordering**: with probability `reorder` a packet is held back until `reorder_depth`
//!    later packets of its flow have been scheduled, or `reorder_max_hold` past its own
//!    delivery time, whichever comes first.
//!
//! Each flow draws from its own seeded PRNG (xoshiro256**), so its decisions depend only on its
//! seed and its own packet sequence, never on other flows' traffic or on timing.
//!
//! # Driving it
//!
//! - [`Netem::push`] when a packet arrives (returns the [`Verdict`]);
//! - [`Netem::poll`] to take the deliveries due at `now`, in delivery order;
//! - [`Netem::poll_timeout`] for when the next one is due (wait until then, or until the next
//!   packet arrives, and poll again).
//!
//! Memory is bounded: at most `max_packets` packets ([`DEFAULT_MAX_PACKETS`]) are in flight;
//! beyond that a packet is dropped and counted as `overflow`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

mod link;
mod loss;
mod trace;

pub use link::{
    BottleneckConfig, DEFAULT_OVERHEAD_BYTES, DEFAULT_QUEUE, LinkStats, QueueLimit, RateSchedule,
    parse_duration, parse_rate,
};
pub use loss::LossModel;
pub use trace::{LossTrace, MAX_TRACE_BYTES, MAX_TRACE_DELAY_US, MAX_TRACE_LINES, TraceError};

use crate::testkit::rng::Rng;
use link::Link;
pub(crate) use loss::LossState;

/// Default for [`PathConfig::reorder_max_hold`]: the longest a reordered packet is held back.
pub(crate) const DEFAULT_MAX_HOLD: Duration = Duration::from_millis(5);

/// Default for [`PathConfig::reorder_depth`].
pub(crate) const DEFAULT_REORDER_DEPTH: usize = 3;

/// Default bound on the packets in flight in one [`Netem`] (queued, delayed or held).
pub const DEFAULT_MAX_PACKETS: usize = 1 << 16;

/// What happens to one flow's packets besides the bottleneck.
#[derive(Debug, Clone, PartialEq)]
pub struct PathConfig {
    /// How packets are lost.
    pub loss: LossModel,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Each packet's delay varies uniformly within `delay ± jitter` (order is kept).
    pub jitter: Duration,
    /// Probability that a packet is held back so later ones overtake it.
    pub reorder: f64,
    /// A held-back packet is released once this many later packets of its flow are scheduled…
    pub reorder_depth: usize,
    /// …or this long after it would have been delivered, whichever comes first.
    pub reorder_max_hold: Duration,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            loss: LossModel::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_depth: DEFAULT_REORDER_DEPTH,
            reorder_max_hold: DEFAULT_MAX_HOLD,
            duplicate: 0.0,
        }
    }
}

/// A flow of a [`Netem`] (from [`Netem::add_flow`]; only valid with the emulator that made it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(usize);

impl FlowId {
    /// The flow's number: 0 for the first added, 1 for the next, …
    pub fn index(self) -> usize {
        self.0
    }
}

/// A bottleneck of a [`Netem`] (from [`Netem::add_link`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(usize);

/// What [`Netem::push`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Lost by the loss model.
    Lost,
    /// Dropped by the bottleneck's full queue (every copy).
    QueueDropped,
    /// Dropped because the emulator holds `max_packets` already.
    Overflow,
    /// On its way: `copies` deliveries will come (2 when duplicated and both fit).
    Accepted {
        /// Deliveries to come, 1 or 2.
        copies: u8,
    },
}

/// A packet leaving the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<P> {
    /// When it is due (≤ the `now` it was polled at).
    pub at: Instant,
    /// The flow it was pushed into.
    pub flow: FlowId,
    /// What was pushed with it, unchanged.
    pub payload: P,
}

/// Counters of one flow.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowStats {
    /// Packets pushed into the flow.
    pub offered: u64,
    /// Their bytes (as given to `push`).
    pub offered_bytes: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Copies dropped by the bottleneck's queue.
    pub queue_dropped: u64,
    /// Copies dropped because the emulator was full.
    pub overflow: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Copies held back for reordering.
    pub reordered: u64,
    /// Copies delivered (returned by `poll`).
    pub delivered: u64,
    /// Their bytes.
    pub delivered_bytes: u64,
}

struct Entry<P> {
    at: Instant,
    seq: u64,
    flow: usize,
    size: usize,
    payload: P,
}

impl<P> PartialEq for Entry<P> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<P> Eq for Entry<P> {}
impl<P> PartialOrd for Entry<P> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<P> Ord for Entry<P> {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Held<P> {
    /// Released once the flow's `scheduled` count reaches this.
    release_after: u64,
    /// When it would have been delivered.
    base: Instant,
    /// `base + reorder_max_hold`.
    deadline: Instant,
    size: usize,
    payload: P,
}

struct Flow<P> {
    path: PathConfig,
    link: Option<usize>,
    rng: Rng,
    loss: LossState,
    /// Latest delivery time scheduled (order keeping).
    last_at: Option<Instant>,
    /// Packets scheduled for delivery in order (not held) so far.
    scheduled: u64,
    held: VecDeque<Held<P>>,
    stats: FlowStats,
}

/// The emulator. See the module docs.
pub struct Netem<P> {
    start: Instant,
    last_now: Instant,
    flows: Vec<Flow<P>>,
    links: Vec<Link>,
    ready: BinaryHeap<Reverse<Entry<P>>>,
    held: usize,
    seq: u64,
    max_packets: usize,
}

impl<P: Clone> Netem<P> {
    /// An empty emulator whose virtual time starts at `start` (rate schedules count from it).
    pub fn new(start: Instant) -> Self {
        Netem {
            start,
            last_now: start,
            flows: Vec::new(),
            links: Vec::new(),
            ready: BinaryHeap::new(),
            held: 0,
            seq: 0,
            max_packets: DEFAULT_MAX_PACKETS,
        }
    }

    /// Bounds the packets in flight (at least 1).
    pub fn with_max_packets(mut self, max_packets: usize) -> Self {
        self.max_packets = max_packets.max(1);
        self
    }

    /// When virtual time started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Adds a bottleneck that flows can share.
    pub fn add_link(&mut self, config: BottleneckConfig) -> LinkId {
        self.links.push(Link::new(config, self.start));
        LinkId(self.links.len() - 1)
    }

    /// Adds a flow with its path impairments, its PRNG seed and the bottleneck it crosses.
    ///
    /// # Panics
    /// If `link` is not from this emulator.
    pub fn add_flow(&mut self, path: PathConfig, seed: u64, link: Option<LinkId>) -> FlowId {
        if let Some(l) = link {
            assert!(l.0 < self.links.len(), "link from another emulator");
        }
        self.flows.push(Flow {
            path,
            link: link.map(|l| l.0),
            rng: Rng::new(seed),
            loss: LossState::default(),
            last_at: None,
            scheduled: 0,
            held: VecDeque::new(),
            stats: FlowStats::default(),
        });
        FlowId(self.flows.len() - 1)
    }

    /// Changes a flow's path impairments from now on (its PRNG and loss state carry on).
    pub fn set_path(&mut self, flow: FlowId, path: PathConfig) {
        self.flows[flow.0].path = path;
    }

    /// A flow's path impairments.
    pub fn path(&self, flow: FlowId) -> &PathConfig {
        &self.flows[flow.0].path
    }

    /// A flow's counters.
    pub fn flow_stats(&self, flow: FlowId) -> FlowStats {
        self.flows[flow.0].stats
    }

    /// A bottleneck's counters.
    pub fn link_stats(&self, link: LinkId) -> LinkStats {
        self.links[link.0].stats
    }

    /// A bottleneck's rate at `now`, in bits/s.
    pub fn link_rate(&self, link: LinkId, now: Instant) -> u64 {
        self.links[link.0].rate_at(now)
    }

    /// Packets in flight (queued, delayed or held back).
    pub fn in_flight(&self) -> usize {
        self.ready.len() + self.held
    }

    /// A packet of `size` bytes arrives on `flow` at `now`. Time never runs backwards here: an
    /// earlier `now` than a previous call's counts as that call's.
    ///
    /// # Panics
    /// If `flow` is not from this emulator.
    pub fn push(&mut self, now: Instant, flow: FlowId, size: usize, payload: P) -> Verdict {
        let now = now.max(self.last_now);
        self.last_now = now;
        let f = &mut self.flows[flow.0];
        f.stats.offered += 1;
        f.stats.offered_bytes += size as u64;
        let Some(extra) = f.loss.next(&f.path.loss, &mut f.rng) else {
            f.stats.lost += 1;
            return Verdict::Lost;
        };
        let copies = if f.rng.chance(f.path.duplicate) {
            f.stats.duplicated += 1;
            2
        } else {
            1
        };
        let (mut accepted, mut overflow) = (0u8, false);
        let mut payload = Some(payload);
        for c in 0..copies {
            let p = if c + 1 == copies {
                payload.take()
            } else {
                payload.clone()
            };
            let Some(p) = p else { break };
            match self.schedule(now, flow.0, size, extra, p) {
                Ok(()) => accepted += 1,
                Err(Verdict::Overflow) => overflow = true,
                Err(_) => {}
            }
        }
        match (accepted, overflow) {
            (0, true) => Verdict::Overflow,
            (0, false) => Verdict::QueueDropped,
            (n, _) => Verdict::Accepted { copies: n },
        }
    }

    /// One copy through the bottleneck, delay and reordering.
    fn schedule(
        &mut self,
        now: Instant,
        fi: usize,
        size: usize,
        extra: Duration,
        payload: P,
    ) -> Result<(), Verdict> {
        if self.in_flight() >= self.max_packets {
            self.flows[fi].stats.overflow += 1;
            return Err(Verdict::Overflow);
        }
        let f = &mut self.flows[fi];
        let departure = match f.link {
            Some(l) => match self.links[l].enqueue(now, size) {
                Some(d) => d,
                None => {
                    f.stats.queue_dropped += 1;
                    return Err(Verdict::QueueDropped);
                }
            },
            None => now,
        };
        let mut delay = f.path.delay;
        let jitter = f.path.jitter;
        if !jitter.is_zero() {
            // Uniform in [delay - jitter, delay + jitter], not below 0.
            let u = f.rng.next_f64() * 2.0;
            let plus = jitter.mul_f64(u);
            delay = (delay + plus).saturating_sub(jitter);
        }
        let base = far(departure, delay + extra);
        if f.rng.chance(f.path.reorder) {
            f.stats.reordered += 1;
            let release_after = f
                .scheduled
                .saturating_add(f.path.reorder_depth.max(1) as u64);
            let deadline = far(base, f.path.reorder_max_hold);
            f.held.push_back(Held {
                release_after,
                base,
                deadline,
                size,
                payload,
            });
            self.held += 1;
            return Ok(());
        }
        let at = f.last_at.map_or(base, |l| base.max(l));
        f.last_at = Some(at);
        f.scheduled += 1;
        self.enqueue_ready(at, fi, size, payload);
        // Held packets whose count of later packets is reached go out right after this one.
        let f = &mut self.flows[fi];
        let mut released = Vec::new();
        while f
            .held
            .front()
            .is_some_and(|h| h.release_after <= f.scheduled)
        {
            if let Some(h) = f.held.pop_front() {
                released.push(h);
            }
        }
        for h in released {
            self.held -= 1;
            let at = at.clamp(h.base, h.deadline);
            self.enqueue_ready(at, fi, h.size, h.payload);
        }
        Ok(())
    }

    fn enqueue_ready(&mut self, at: Instant, flow: usize, size: usize, payload: P) {
        self.seq += 1;
        self.ready.push(Reverse(Entry {
            at,
            seq: self.seq,
            flow,
            size,
            payload,
        }));
    }

    /// Moves held-back packets whose hold expired by `now` to the delivery queue.
    fn expire_holds(&mut self, now: Instant) {
        if self.held == 0 {
            return;
        }
        for fi in 0..self.flows.len() {
            let f = &mut self.flows[fi];
            if !f.held.iter().any(|h| h.deadline <= now) {
                continue;
            }
            let (due, keep): (VecDeque<_>, VecDeque<_>) =
                f.held.drain(..).partition(|h| h.deadline <= now);
            f.held = keep;
            for h in due {
                self.held -= 1;
                self.enqueue_ready(h.deadline, fi, h.size, h.payload);
            }
        }
    }

    /// The next delivery due at `now` (in delivery order), or `None` when nothing is due yet.
    pub fn poll(&mut self, now: Instant) -> Option<Delivery<P>> {
        let now = now.max(self.last_now);
        self.last_now = now;
        for l in &mut self.links {
            l.drain(now);
        }
        self.expire_holds(now);
        if self.ready.peek().is_none_or(|Reverse(e)| e.at > now) {
            return None;
        }
        let Reverse(e) = self.ready.pop()?;
        let st = &mut self.flows[e.flow].stats;
        st.delivered += 1;
        st.delivered_bytes += e.size as u64;
        Some(Delivery {
            at: e.at,
            flow: FlowId(e.flow),
            payload: e.payload,
        })
    }

    /// When the next delivery is due (`None`: nothing in flight). Poll at or after it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ready = self.ready.peek().map(|Reverse(e)| e.at);
        let held = self
            .flows
            .iter()
            .flat_map(|f| f.held.iter().map(|h| h.deadline))
            .min();
        match (ready, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// `t + d`, clamped to about a year ahead when that overflows `Instant`.
fn far(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests;
