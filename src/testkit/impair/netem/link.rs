//! The bottleneck: a link of a given rate (which may follow a schedule) behind a drop-tail
//! queue, shared by every flow routed through it.
//!
//! A packet that arrives at the link waits behind the bytes already queued and then takes
//! `wire bytes × 8 / rate` to leave; its departure time is computed exactly when it arrives
//! (integer nanoseconds, across any rate changes of the schedule), so the emulator needs no
//! clock of its own. The queue holds the packets that have not finished leaving; an arrival
//! that would make it exceed the limit is dropped (drop-tail), except that an empty queue always
//! takes one packet (as a real interface always holds the frame it is sending).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Default per-packet overhead counted on the link: an IPv4 header (20) and a UDP header (8),
/// since the emulator sees UDP payloads while a real link carries whole IP packets.
pub const DEFAULT_OVERHEAD_BYTES: usize = 28;

/// Default queue limit: 50 ms at the link's current rate (the congestion tests' bottleneck).
pub const DEFAULT_QUEUE: QueueLimit = QueueLimit::Time(Duration::from_millis(50));

/// Most steps in a rate schedule.
pub(crate) const MAX_SCHEDULE_STEPS: usize = 4096;

/// How much a bottleneck's drop-tail queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    /// At most this many wire bytes.
    Bytes(usize),
    /// At most this long a wait at the link's rate *at the arrival* (bytes = rate × time / 8,
    /// recomputed for every arrival, so the limit follows the schedule).
    Time(Duration),
}

/// A link rate that changes over time: steps of (offset from the emulator's start, bits/s).
/// The first step is at offset 0; each rate holds until the next step, the last one forever.
/// A rate of 0 is an outage (packets wait in the queue until the rate comes back).
///
/// Text form (the relay's `--rate-schedule`): comma-separated `TIME:RATE` steps, e.g.
/// `0:12M,10s:30M,20s:8M`; see [`parse_duration`] and [`parse_rate`] for the units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSchedule {
    steps: Vec<(Duration, u64)>,
}

impl RateSchedule {
    /// One rate forever.
    pub fn constant(bits_per_second: u64) -> Self {
        RateSchedule {
            steps: vec![(Duration::ZERO, bits_per_second)],
        }
    }

    /// A schedule from steps; the offsets must start at 0 and strictly increase.
    pub fn new(steps: Vec<(Duration, u64)>) -> Result<Self, String> {
        match steps.first() {
            None => return Err("a rate schedule needs at least one step".into()),
            Some((t, _)) if !t.is_zero() => {
                return Err(format!(
                    "a rate schedule starts at 0 (the first step is at {t:?}; add `0:RATE`)"
                ));
            }
            _ => {}
        }
        if steps.len() > MAX_SCHEDULE_STEPS {
            return Err(format!("more than {MAX_SCHEDULE_STEPS} steps"));
        }
        if let Some(w) = steps.windows(2).find(|w| w[1].0 <= w[0].0) {
            return Err(format!(
                "step times must increase ({:?} follows {:?})",
                w[1].0, w[0].0
            ));
        }
        Ok(RateSchedule { steps })
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[(Duration, u64)] {
        &self.steps
    }

    /// The rate in force `offset` after the start.
    pub fn rate_at(&self, offset: Duration) -> u64 {
        self.steps[self.step_at(offset)].1
    }

    fn step_at(&self, offset: Duration) -> usize {
        self.steps
            .partition_point(|(t, _)| *t <= offset)
            .saturating_sub(1)
    }
}

impl FromStr for RateSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (t, r) = part
                .split_once(':')
                .ok_or_else(|| format!("step `{part}` is not TIME:RATE (e.g. `10s:30M`)"))?;
            steps.push((parse_duration(t)?, parse_rate(r)?));
        }
        RateSchedule::new(steps)
    }
}

impl fmt::Display for RateSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (t, r)) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}ms:{r}", t.as_millis())?;
        }
        Ok(())
    }
}

/// Parses a rate in bits per second: a number with an optional decimal suffix `k`, `M` or `G`
/// (case-insensitive, an optional trailing `bit`, `bps` or `b/s` is allowed): `12M`, `1.5G`,
/// `800k`, `20000000`.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = ["bit/s", "b/s", "bps", "bit"]
        .iter()
        .find_map(|u| lower.strip_suffix(u))
        .unwrap_or(&lower);
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1e3),
        Some('m') => (&body[..body.len() - 1], 1e6),
        Some('g') => (&body[..body.len() - 1], 1e9),
        _ => (body, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad rate `{t}` (bits/s, e.g. `12M`, `800k`, `1.5G`)"))?;
    let bps = v * mult;
    if !bps.is_finite() || !(0.0..=1e13).contains(&bps) {
        return Err(format!("rate `{t}` out of range (0 to 10T bits/s)"));
    }
    Ok(bps.round() as u64)
}

/// Parses a time: a number with a unit `us`, `ms`, `s` or `min`; a bare number is seconds:
/// `0`, `10s`, `2.5s`, `500ms`, `1min`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("min") {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad time `{t}` (e.g. `10s`, `500ms`, `0`)"))?;
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("time `{t}` out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A bottleneck: rate (or schedule), queue limit and the per-packet overhead counted on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BottleneckConfig {
    /// The link rate over time.
    pub schedule: RateSchedule,
    /// The drop-tail queue's size.
    pub queue: QueueLimit,
    /// Bytes added to each packet's size on the link ([`DEFAULT_OVERHEAD_BYTES`]).
    pub overhead_bytes: usize,
}

impl BottleneckConfig {
    /// A constant `bits_per_second` link with the default queue ([`DEFAULT_QUEUE`]) and
    /// overhead.
    pub fn new(bits_per_second: u64) -> Self {
        BottleneckConfig {
            schedule: RateSchedule::constant(bits_per_second),
            queue: DEFAULT_QUEUE,
            overhead_bytes: DEFAULT_OVERHEAD_BYTES,
        }
    }

    /// The same with a rate schedule.
    pub fn with_schedule(mut self, schedule: RateSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The same with a queue limit.
    pub fn with_queue(mut self, queue: QueueLimit) -> Self {
        self.queue = queue;
        self
    }
}

/// Counters and state of a bottleneck.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets accepted into the queue (they leave in order).
    pub forwarded: u64,
    /// Wire bytes (overhead included) of the accepted packets.
    pub forwarded_wire_bytes: u64,
    /// Packets dropped because the queue was full.
    pub dropped: u64,
    /// Wire bytes queued (not yet fully left) as of the emulator's last push or poll.
    pub queued_bytes: usize,
    /// Most wire bytes ever queued.
    pub max_queued_bytes: usize,
}

/// A bottleneck's running state.
#[derive(Debug)]
pub(crate) struct Link {
    cfg: BottleneckConfig,
    start: Instant,
    /// When the last accepted packet has finished leaving.
    busy_until: Instant,
    /// (departure, wire bytes) of the packets not yet gone, in order.
    queue: VecDeque<(Instant, usize)>,
    pub(crate) stats: LinkStats,
}

impl Link {
    pub(crate) fn new(cfg: BottleneckConfig, start: Instant) -> Self {
        Link {
            cfg,
            start,
            busy_until: start,
            queue: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    pub(crate) fn rate_at(&self, now: Instant) -> u64 {
        self.cfg
            .schedule
            .rate_at(now.saturating_duration_since(self.start))
    }

    /// Forgets the packets that have left by `now`.
    pub(crate) fn drain(&mut self, now: Instant) {
        while let Some(&(dep, bytes)) = self.queue.front() {
            if dep > now {
                break;
            }
            self.queue.pop_front();
            self.stats.queued_bytes -= bytes;
        }
    }

    fn limit_bytes(&self, now: Instant) -> usize {
        match self.cfg.queue {
            QueueLimit::Bytes(b) => b,
            QueueLimit::Time(d) => {
                let bits = u128::from(self.rate_at(now)) * d.as_nanos() / 1_000_000_000;
                usize::try_from(bits / 8).unwrap_or(usize::MAX)
            }
        }
    }

    /// A packet of `size` payload bytes arrives at `now`: its departure time, or `None` if the
    /// queue drops it (full, or the schedule never lets it leave).
    pub(crate) fn enqueue(&mut self, now: Instant, size: usize) -> Option<Instant> {
        self.drain(now);
        let wire = size.saturating_add(self.cfg.overhead_bytes).max(1);
        let full = !self.queue.is_empty()
            && self.stats.queued_bytes.saturating_add(wire) > self.limit_bytes(now);
        let departure = if full {
            None
        } else {
            self.finish_time(self.busy_until.max(now), wire as u64 * 8)
        };
        let Some(dep) = departure else {
            self.stats.dropped += 1;
            return None;
        };
        self.busy_until = dep;
        self.queue.push_back((dep, wire));
        self.stats.queued_bytes += wire;
        self.stats.max_queued_bytes = self.stats.max_queued_bytes.max(self.stats.queued_bytes);
        self.stats.forwarded += 1;
        self.stats.forwarded_wire_bytes += wire as u64;
        Some(dep)
    }

    /// When `bits` that start leaving at `begin` have left, following the schedule; `None` if
    /// the schedule ends in an outage before they can.
    fn finish_time(&self, begin: Instant, bits: u64) -> Option<Instant> {
        const NS: u128 = 1_000_000_000;
        let steps = self.cfg.schedule.steps();
        let mut offset = begin.saturating_duration_since(self.start).as_nanos();
        let mut i = self.cfg.schedule.step_at(Duration::from_nanos(
            u64::try_from(offset).unwrap_or(u64::MAX),
        ));
        // Work left in bit·ns/s: a link at r bits/s does r units of it each nanosecond.
        let mut work = u128::from(bits) * NS;
        loop {
            let rate = u128::from(steps[i].1);
            let seg_end = steps.get(i + 1).map(|s| s.0.as_nanos());
            if rate > 0 {
                let need = work.div_ceil(rate);
                match seg_end {
                    Some(end) if offset + need > end => work -= (end - offset) * rate,
                    _ => {
                        let at = u64::try_from(offset + need).ok()?;
                        return self.start.checked_add(Duration::from_nanos(at));
                    }
                }
            }
            offset = seg_end?;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn parses_rates_times_and_schedules() {
        assert_eq!(parse_rate("12M"), Ok(12_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("800k"), Ok(800_000));
        assert_eq!(parse_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_rate("5000"), Ok(5000));
        assert!(parse_rate("fast").unwrap_err().contains("`fast`"));
        assert!(parse_rate("-1M").is_err());
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(500 * MS));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("soon").is_err());
        let s: RateSchedule = "0:12M, 10s:30M,20s:8M".parse().unwrap();
        assert_eq!(
            s.steps(),
            &[
                (Duration::ZERO, 12_000_000),
                (Duration::from_secs(10), 30_000_000),
                (Duration::from_secs(20), 8_000_000)
            ]
        );
        assert_eq!(s.to_string().parse::<RateSchedule>(), Ok(s.clone()));
        assert_eq!(s.rate_at(Duration::from_millis(9999)), 12_000_000);
        assert_eq!(s.rate_at(Duration::from_secs(10)), 30_000_000);
        assert_eq!(s.rate_at(Duration::from_secs(1000)), 8_000_000);
        assert!(
            "10s:30M"
                .parse::<RateSchedule>()
                .unwrap_err()
                .contains("starts at 0")
        );
        assert!(
            "0:1M,5s:2M,5s:3M"
                .parse::<RateSchedule>()
                .unwrap_err()
                .contains("increase")
        );
        assert!(
            "0-1M"
                .parse::<RateSchedule>()
                .unwrap_err()
                .contains("TIME:RATE")
        );
        assert!("".parse::<RateSchedule>().is_err());
    }

    #[test]
    fn departure_is_serialisation_behind_the_queue() {
        let t0 = Instant::now();
        // 8 Mbit/s = 1 byte a microsecond; no overhead to keep the arithmetic visible.
        let mut l = Link::new(
            BottleneckConfig {
                overhead_bytes: 0,
                ..BottleneckConfig::new(8_000_000).with_queue(QueueLimit::Bytes(10_000))
            },
            t0,
        );
        let us = Duration::from_micros;
        assert_eq!(l.enqueue(t0, 1000), Some(t0 + us(1000)));
        assert_eq!(l.enqueue(t0, 1000), Some(t0 + us(2000)));
        assert_eq!(l.stats.queued_bytes, 2000);
        // After the first left, the queue holds one; an idle link starts at the arrival.
        assert_eq!(l.enqueue(t0 + us(1500), 500), Some(t0 + us(2500)));
        assert_eq!(l.stats.queued_bytes, 1500);
        assert_eq!(l.enqueue(t0 + us(5000), 100), Some(t0 + us(5100)));
        assert_eq!(l.stats.queued_bytes, 100);
    }

    #[test]
    fn schedule_changes_apply_mid_packet() {
        let t0 = Instant::now();
        let sched = RateSchedule::new(vec![
            (Duration::ZERO, 8_000_000),
            (Duration::from_micros(500), 0),
            (Duration::from_micros(1500), 16_000_000),
        ])
        .unwrap();
        let mut l = Link::new(
            BottleneckConfig {
                overhead_bytes: 0,
                ..BottleneckConfig::new(0)
                    .with_schedule(sched)
                    .with_queue(QueueLimit::Bytes(1 << 20))
            },
            t0,
        );
        // 1000 bytes: 500 leave by 500 µs, the outage lasts to 1500 µs, the other 500 bytes
        // take 250 µs at 2 bytes/µs.
        assert_eq!(l.enqueue(t0, 1000), Some(t0 + Duration::from_micros(1750)));
        // A schedule that ends in an outage never lets a packet go: dropped.
        let mut dead = Link::new(
            BottleneckConfig::new(0).with_schedule(
                RateSchedule::new(vec![(Duration::ZERO, 1_000_000), (MS, 0)]).unwrap(),
            ),
            t0,
        );
        assert_eq!(dead.enqueue(t0 + 2 * MS, 100), None);
        assert_eq!(dead.stats.dropped, 1);
    }

    #[test]
    fn time_limit_follows_the_rate() {
        let t0 = Instant::now();
        let mut l = Link::new(
            BottleneckConfig {
                overhead_bytes: 0,
                ..BottleneckConfig::new(8_000_000).with_queue(QueueLimit::Time(10 * MS))
            },
            t0,
        );
        // 10 ms at 1 byte/µs = 10,000 bytes: ten 1000-byte packets fit, the eleventh not.
        for _ in 0..10 {
            assert!(l.enqueue(t0, 1000).is_some());
        }
        assert_eq!(l.enqueue(t0, 1000), None);
        assert_eq!(l.stats.dropped, 1);
        assert_eq!(l.stats.max_queued_bytes, 10_000);
        // A queue smaller than one packet still takes a packet when empty.
        let mut tiny = Link::new(
            BottleneckConfig::new(8_000).with_queue(QueueLimit::Bytes(1)),
            t0,
        );
        assert!(tiny.enqueue(t0, 1400).is_some());
        assert!(tiny.enqueue(t0, 1400).is_none());
    }
}
