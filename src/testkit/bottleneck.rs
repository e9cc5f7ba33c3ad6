//! A bottleneck simulator on virtual time for the congestion estimator: senders driven by their
//! [`BandwidthEstimator`]s, one FIFO bottleneck with a drop-tail queue and a rate schedule, a
//! propagation delay both ways (optionally jittered, order kept), iid and Gilbert-Elliott loss
//! after the bottleneck, and clients building real feedback that travels as encoded bytes.
//!
//! It owns nothing the plugin uses: it is test code behind the `testing` feature. It never
//! reads a clock or touches a socket; one seed fixes every decision, so a run is the same on
//! every machine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::protocol::congestion::{BandwidthEstimator, BweConfig, BweEvent, BweState, SentFrame};
use crate::protocol::feedback::{Feedback, FeedbackBuilder};
use crate::protocol::time::pacing::{Pacer, PacingConfig};
use crate::testkit::impair::netem::{LossModel, LossState};
use crate::testkit::rng::Rng;

/// Interval between a flow's frames: 60 frames per second, in ns.
pub const FRAME_NS: u64 = 16_666_667;
/// Shard bytes at the default MTU, and the per-datagram headers + tag.
const SHARD_MAX: u64 = 1350;
const OVERHEAD: u64 = 50;

/// The bottleneck path: its rate over time, queue, delay and the impairments after it.
#[derive(Clone, Debug)]
pub struct Link {
    /// (from ns, rate bps), sorted by time; the first entry must be at 0.
    pub schedule: Vec<(u64, u64)>,
    /// Drop-tail queue length, as time at the current rate.
    pub queue_ns: u64,
    /// One-way propagation delay, each direction.
    pub delay_ns: u64,
    /// iid loss after the bottleneck (not congestion).
    pub loss: f64,
    /// Each datagram's (and feedback message's) propagation delay varies uniformly
    /// within `delay_ns ± jitter_ns`; order is kept (a late datagram holds back the
    /// ones behind it, as the project's relay does).
    pub jitter_ns: u64,
    /// Gilbert-Elliott burst loss after the bottleneck and on the feedback path, each
    /// direction its own chain: (enter, leave) probabilities per datagram; everything
    /// is lost in the bad state.
    pub bursts: Option<(f64, f64)>,
    /// A token-bucket policer after the bottleneck, in front of the client: (rate bits/s,
    /// bucket bytes). A datagram that finds fewer tokens than its bytes is dropped; nothing
    /// queues, so the loss comes without any delay growth.
    pub policer: Option<(u64, u64)>,
}

impl Link {
    /// A link at a constant `rate_bps` (bits/s) with a 50 ms queue, 10 ms one-way delay and
    /// no loss, jitter or policer.
    pub fn fixed(rate_bps: u64) -> Self {
        Link {
            schedule: vec![(0, rate_bps)],
            queue_ns: 50_000_000,
            delay_ns: 10_000_000,
            loss: 0.0,
            jitter_ns: 0,
            bursts: None,
            policer: None,
        }
    }
    fn rate(&self, t: u64) -> u64 {
        self.schedule
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(self.schedule[0].1, |e| e.1)
    }
}

/// One sender sharing the bottleneck.
pub struct FlowCfg {
    /// When the flow sends its first frame, ns of virtual time.
    pub start_ns: u64,
    /// The flow's bandwidth estimator settings.
    pub bwe: BweConfig,
    /// Parity datagrams added per frame, percent of its data datagrams.
    pub fec_percent: u64,
}

/// What happened to one frame a flow sent.
#[derive(Clone, Debug, Default)]
pub struct FrameStat {
    /// When the frame was generated, ns of virtual time.
    pub gen_ns: u64,
    /// The frame's encoded bytes, before FEC and headers.
    pub media_bytes: u64,
    /// Bytes on the wire for the frame: data and parity datagrams with their headers.
    pub wire_bytes: u64,
    /// Data datagrams (without parity); any this many of `datagrams` decode it.
    pub data: u32,
    /// Datagrams sent, data and parity.
    pub datagrams: u32,
    /// Datagrams that reached the client.
    pub received: u32,
    /// Time the frame's first datagram waited in the bottleneck queue.
    pub first_wait_ns: u64,
    /// When its last datagram arrived (0 = none).
    pub last_arrival_ns: u64,
    /// The estimator's target bitrate when the frame was sent, bits/s.
    pub target_bps: u64,
    /// The estimator's path estimate when the frame was sent, bits/s.
    pub estimate_bps: u64,
    /// The estimator's state when the frame was sent.
    pub state: Option<BweState>,
    /// The estimator's queue delay estimate when the frame was sent, µs.
    pub queue_us: u64,
}

/// One sender and its client's feedback, with everything recorded about the run.
pub struct Flow {
    /// The flow's configuration.
    pub cfg: FlowCfg,
    /// The sender's estimator, driven by the client's feedback.
    pub est: BandwidthEstimator,
    fb: FeedbackBuilder,
    /// Every frame sent, in order.
    pub frames: Vec<FrameStat>,
    poll_at: Option<u64>,
    /// Feedback bytes the client sent.
    pub feedback_bytes: u64,
    /// Feedback messages the client sent.
    pub feedback_msgs: u64,
    /// Every estimator event, with its time in ns of virtual time.
    pub events: Vec<(u64, BweEvent)>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Frame(usize),
    Datagram {
        flow: usize,
        frame: u32,
        first: bool,
        bytes: u64,
    },
    Arrive {
        flow: usize,
        frame: u32,
        bytes: u64,
    },
    Poll(usize),
    Feedback(usize, Vec<u8>),
}

/// The simulation: flows sharing one link, advanced by [`Sim::run`].
pub struct Sim {
    t0: Instant,
    /// The shared bottleneck; its fields may change between runs.
    pub link: Link,
    busy_until: u64,
    /// The flows, in the order given to [`Sim::new`].
    pub flows: Vec<Flow>,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    rng: Rng,
    /// When the drop-tail queue dropped a datagram, ns of virtual time.
    pub drop_times: Vec<u64>,
    /// Frame sizes vary uniformly by ± this fraction around the target.
    pub frame_jitter: f64,
    /// The forward path's iid loss, and the Gilbert-Elliott state of the forward and the
    /// feedback path (the impairment's loss models).
    iid_state: LossState,
    burst_state: [LossState; 2],
    /// Latest arrival scheduled on the forward and the feedback path (order is kept).
    last_arrival: [u64; 2],
    /// The policer's tokens (bytes) and when they were last filled (ns).
    tokens: (f64, u64),
    /// Datagrams the policer dropped, by when.
    pub policer_drops: Vec<u64>,
}

impl Sim {
    /// A simulation of `flows` over `link`; `seed` fixes every random decision.
    pub fn new(link: Link, flows: Vec<FlowCfg>, seed: u64) -> Sim {
        let t0 = Instant::now();
        let mut sim = Sim {
            t0,
            link,
            busy_until: 0,
            flows: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            drop_times: Vec::new(),
            frame_jitter: 0.1,
            iid_state: LossState::default(),
            burst_state: Default::default(),
            last_arrival: [0; 2],
            tokens: (f64::MAX, 0),
            policer_drops: Vec::new(),
        };
        for (i, cfg) in flows.into_iter().enumerate() {
            let start = t0 + Duration::from_nanos(cfg.start_ns);
            let mut est = BandwidthEstimator::new(cfg.bwe, start);
            est.set_rtt(Duration::from_nanos(2 * sim.link.delay_ns));
            sim.push(cfg.start_ns, Ev::Frame(i));
            sim.flows.push(Flow {
                cfg,
                est,
                fb: FeedbackBuilder::new(start),
                frames: Vec::new(),
                poll_at: None,
                feedback_bytes: 0,
                feedback_msgs: 0,
                events: Vec::new(),
            });
        }
        sim
    }

    fn at(&self, ns: u64) -> Instant {
        self.t0 + Duration::from_nanos(ns)
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// Whether the path `dir` (0 forward, 1 feedback) loses the next datagram to a
    /// burst.
    fn burst_loses(&mut self, dir: usize) -> bool {
        let Some((enter, leave)) = self.link.bursts else {
            return false;
        };
        let model = LossModel::gilbert(enter, leave);
        self.burst_state[dir].next(&model, &mut self.rng).is_none()
    }

    /// Whether the policer drops `bytes` passing at `t` (a token bucket, full at the start).
    fn policer_drops(&mut self, t: u64, bytes: u64) -> bool {
        let Some((rate, bucket)) = self.link.policer else {
            return false;
        };
        let (tokens, at) = self.tokens;
        let filled = t.saturating_sub(at) as f64 * rate as f64 / 8e9;
        let tokens = (tokens.min(bucket as f64) + filled).min(bucket as f64);
        let drop = tokens < bytes as f64;
        self.tokens = (if drop { tokens } else { tokens - bytes as f64 }, t);
        drop
    }

    /// Whether the forward path's iid loss takes the next datagram.
    fn iid_loses(&mut self) -> bool {
        let model = LossModel::Iid(self.link.loss);
        self.iid_state.next(&model, &mut self.rng).is_none()
    }

    /// When a datagram leaving at `t` on path `dir` arrives: the propagation delay ±
    /// the jitter, never before the one sent before it.
    fn arrival(&mut self, t: u64, dir: usize) -> u64 {
        let j = self.link.jitter_ns as f64;
        let d = if j > 0.0 {
            (self.link.delay_ns as f64 + j * (2.0 * self.rng.next_f64() - 1.0)).max(0.0)
        } else {
            self.link.delay_ns as f64
        };
        let at = (t + d as u64).max(self.last_arrival[dir]);
        self.last_arrival[dir] = at;
        at
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    /// Processes every event up to `until_ns` of virtual time; a later call continues from
    /// there.
    pub fn run(&mut self, until_ns: u64) {
        while let Some(Reverse((t, _, _))) = self.heap.peek() {
            if *t > until_ns {
                break;
            }
            let Some(Reverse((t, _, ev))) = self.heap.pop() else {
                break;
            };
            self.step(t, ev);
        }
    }

    fn step(&mut self, t: u64, ev: Ev) {
        let now = self.at(t);
        match ev {
            Ev::Frame(f) => {
                self.send_frame(f, t);
                self.push(t + FRAME_NS, Ev::Frame(f));
            }
            Ev::Datagram {
                flow,
                frame,
                first,
                bytes,
            } => {
                let rate = self.link.rate(t);
                let backlog = self.busy_until.saturating_sub(t);
                if first {
                    self.flows[flow].frames[frame as usize].first_wait_ns = backlog;
                }
                if backlog > self.link.queue_ns {
                    self.drop_times.push(t);
                    return;
                }
                let tx = bytes * 8 * 1_000_000_000 / rate.max(1);
                self.busy_until = self.busy_until.max(t) + tx;
                if self.policer_drops(self.busy_until, bytes) {
                    self.policer_drops.push(self.busy_until);
                    return;
                }
                if self.iid_loses() || self.burst_loses(0) {
                    return;
                }
                let at = self.arrival(self.busy_until, 0);
                self.push(at, Ev::Arrive { flow, frame, bytes });
            }
            Ev::Arrive { flow, frame, bytes } => {
                let fl = &mut self.flows[flow];
                fl.frames[frame as usize].received += 1;
                fl.frames[frame as usize].last_arrival_ns = t;
                fl.fb.on_datagram(frame, bytes as usize, now);
                self.poll(flow, t);
            }
            Ev::Poll(flow) => {
                if self.flows[flow].poll_at == Some(t) {
                    self.flows[flow].poll_at = None;
                }
                self.poll(flow, t);
            }
            Ev::Feedback(flow, bytes) => {
                let fb = Feedback::decode(&bytes).expect("feedback decodes");
                let fl = &mut self.flows[flow];
                fl.est.on_feedback(&fb, now);
                while let Some(e) = fl.est.poll_event() {
                    fl.events.push((t, e));
                }
            }
        }
    }

    fn poll(&mut self, flow: usize, t: u64) {
        let now = self.at(t);
        let mut out = Vec::new();
        while let Some(fb) = self.flows[flow].fb.poll_feedback(now) {
            let mut b = Vec::new();
            fb.encode(&mut b);
            out.push(b);
        }
        for b in out {
            let fl = &mut self.flows[flow];
            fl.feedback_bytes += b.len() as u64;
            fl.feedback_msgs += 1;
            // The reverse path is uncongested: only the propagation delay, its jitter
            // and its bursts.
            if self.burst_loses(1) {
                continue;
            }
            let at = self.arrival(t, 1);
            self.push(at, Ev::Feedback(flow, b));
        }
        if let Some(at) = self.flows[flow].fb.poll_timeout(now) {
            let at = self.ns(at).max(t + 1_000);
            let fl = &mut self.flows[flow];
            if fl.poll_at.is_none_or(|p| at < p) {
                fl.poll_at = Some(at);
                self.push(at, Ev::Poll(flow));
            }
        }
    }

    fn send_frame(&mut self, f: usize, t: u64) {
        let now = self.at(t);
        let jitter = 1.0 - self.frame_jitter + 2.0 * self.frame_jitter * self.rng.next_f64();
        let fl = &mut self.flows[f];
        fl.est.handle_timeout(now);
        while let Some(e) = fl.est.poll_event() {
            fl.events.push((t, e));
        }
        let e = fl.est.estimate();
        let media = ((e.target_bitrate_bps as f64 / 8.0 / 60.0 * jitter) as u64).max(200);
        let n = media.div_ceil(SHARD_MAX);
        let shard = media.div_ceil(n);
        let m = if fl.cfg.fec_percent > 0 {
            (n * fl.cfg.fec_percent).div_ceil(100).max(2)
        } else {
            0
        };
        let dsize = shard + OVERHEAD;
        let total = n + m;
        let wire = total * dsize;
        // As the connection: paced at the estimate where the path limits the stream,
        // the automatic pacer's bursts elsewhere.
        let mut pacer = Pacer::new(PacingConfig::default());
        if e.pace {
            pacer.set_congestion_rate_bps(e.pacing_rate_bps);
        }
        let sched = pacer.schedule(wire as usize, total as usize, now);
        let index = fl.frames.len() as u32;
        fl.est.on_frame_sent(
            index,
            SentFrame {
                first_send: sched.release_of(0),
                last_send: sched.release_of(total as usize - 1),
                datagrams: total as u32,
                data_datagrams: n as u32,
                wire_bytes: wire,
                media_bytes: media,
            },
            now,
        );
        fl.frames.push(FrameStat {
            gen_ns: t,
            media_bytes: media,
            wire_bytes: wire,
            data: n as u32,
            datagrams: total as u32,
            received: 0,
            first_wait_ns: 0,
            last_arrival_ns: 0,
            target_bps: e.target_bitrate_bps,
            estimate_bps: e.estimate_bps,
            state: Some(e.state),
            queue_us: e.queue_delay.as_micros() as u64,
        });
        for i in 0..total as usize {
            let at = self.ns(sched.release_of(i));
            self.push(
                at,
                Ev::Datagram {
                    flow: f,
                    frame: index,
                    first: i == 0,
                    bytes: dsize,
                },
            );
        }
    }
}

/// p-quantile of `w` (nanoseconds) in ms; `None` when `w` is empty.
fn quantile_ms(mut w: Vec<u64>, p: f64) -> Option<f64> {
    w.sort_unstable();
    let i = ((w.len().checked_sub(1)? as f64) * p).round() as usize;
    Some(w[i] as f64 / 1e6)
}

impl Flow {
    /// The frames generated in `[from_s, to_s)`, seconds of virtual time.
    pub fn window(&self, from_s: f64, to_s: f64) -> impl Iterator<Item = &FrameStat> {
        let (a, b) = ((from_s * 1e9) as u64, (to_s * 1e9) as u64);
        self.frames
            .iter()
            .filter(move |f| f.gen_ns >= a && f.gen_ns < b)
    }
    /// Media bits per second of the frames generated in the window.
    pub fn media_rate(&self, from_s: f64, to_s: f64) -> f64 {
        let bytes: u64 = self.window(from_s, to_s).map(|f| f.media_bytes).sum();
        bytes as f64 * 8.0 / (to_s - from_s)
    }
    /// Wire bits per second of the frames generated in the window.
    pub fn wire_rate(&self, from_s: f64, to_s: f64) -> f64 {
        let bytes: u64 = self.window(from_s, to_s).map(|f| f.wire_bytes).sum();
        bytes as f64 * 8.0 / (to_s - from_s)
    }
    /// Fraction of frames with enough datagrams to decode (RS is MDS: any `n` of them).
    pub fn decodable(&self, from_s: f64, to_s: f64) -> f64 {
        let (mut ok, mut all) = (0, 0);
        for f in self.window(from_s, to_s) {
            all += 1;
            ok += (f.received >= f.data) as u32;
        }
        ok as f64 / all.max(1) as f64
    }
    /// p-quantile of the first datagrams' queue wait, ms.
    pub fn queue_ms(&self, from_s: f64, to_s: f64, p: f64) -> f64 {
        let w = self.window(from_s, to_s).map(|f| f.first_wait_ns).collect();
        quantile_ms(w, p).unwrap_or(0.0)
    }
    /// p-quantile of the time from a frame's generation to its last datagram's arrival,
    /// less the propagation delay, ms (frames with all datagrams only).
    pub fn crossing_ms(&self, from_s: f64, to_s: f64, p: f64, delay_ns: u64) -> f64 {
        let w = self
            .window(from_s, to_s)
            .filter(|f| f.last_arrival_ns > 0)
            .map(|f| f.last_arrival_ns.saturating_sub(f.gen_ns + delay_ns))
            .collect();
        quantile_ms(w, p).unwrap_or(f64::MAX)
    }
    /// First time at or after `from_s` when the target reaches `bps`.
    pub fn reaches(&self, from_s: f64, bps: u64) -> Option<f64> {
        self.window(from_s, f64::MAX / 2e9)
            .find(|f| f.target_bps >= bps)
            .map(|f| f.gen_ns as f64 / 1e9)
    }
    /// First time at or after `from_s` when the wire estimate is below `bps`.
    pub fn below(&self, from_s: f64, bps: u64) -> Option<f64> {
        self.window(from_s, f64::MAX / 2e9)
            .find(|f| f.estimate_bps < bps)
            .map(|f| f.gen_ns as f64 / 1e9)
    }
    /// One line per `step_s` up to `to_s`: media and wire rate (Mbit/s), 99th percentile
    /// queue wait and decodable fraction; for printing when a test fails.
    pub fn trace(&self, step_s: f64, to_s: f64) -> String {
        let mut s = String::new();
        let mut t = 0.0;
        while t < to_s {
            s += &format!(
                "{t:5.1}s media {:5.2} wire {:5.2} q99 {:5.1}ms ok {:.3} | ",
                self.media_rate(t, t + step_s) / 1e6,
                self.wire_rate(t, t + step_s) / 1e6,
                self.queue_ms(t, t + step_s, 0.99),
                self.decodable(t, t + step_s),
            );
            t += step_s;
            s += "\n";
        }
        s
    }
}
