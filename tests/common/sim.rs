//! A simulated network for [`Connection`]s on virtual time.
//!
//! Each node is one connection at an address. What a node sends goes through its outbound link
//! (a fixed delay with optional seeded jitter that keeps the order, seeded iid loss, optional
//! seeded Gilbert-Elliott bursts, and an optional script that drops chosen datagrams) and is
//! delivered to the node at the destination address, if one is up there. The clock jumps
//! straight to the next delivery or the earliest `poll_timeout`, so thousands of virtual seconds
//! run in milliseconds, and a run is the same every time (seeded loss, seeded ids).
//!
//! At each instant the simulator delivers every datagram due first, then runs the timers that
//! are due (the driver's drain-before-timers order), then collects transmits and events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use gstpunktfunk::protocol::fec::coder::ReedSolomon8;
use gstpunktfunk::protocol::media::packetizer::{Datagrams, Packetizer};
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Connection, Event, FrameTimingIn, Mode};
use gstpunktfunk::testkit::rng::Rng;

/// Steps after which a run is considered stuck (a timer that never moves on).
const MAX_STEPS: u64 = 50_000_000;

/// A script that decides to drop a datagram: `(sender index, bytes) -> drop?`.
pub type DropScript = Box<dyn FnMut(usize, &[u8]) -> bool>;

/// One direction of a node's path: everything it sends.
pub struct LinkConfig {
    pub delay: Duration,
    /// Probability that a datagram is lost (seeded).
    pub loss: f64,
    /// Gilbert-Elliott bursts on this link (seeded, its own chain per link).
    pub bursts: Option<Bursts>,
    /// Each datagram's delay varies uniformly within `delay ± jitter`; a datagram never
    /// overtakes an earlier one on the same link (as the project's netem keeps the order).
    pub jitter: Duration,
    /// A rate limit with a drop-tail queue before the delay (congestion control tests).
    pub bottleneck: Option<Bottleneck>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_millis(1),
            loss: 0.0,
            bursts: None,
            jitter: Duration::ZERO,
            bottleneck: None,
        }
    }
}

/// A Gilbert-Elliott loss chain per datagram: the good state never loses, the bad state always
/// does; good→bad with probability `enter`, bad→good with `leave` (mean burst `1 / leave`).
pub struct Bursts {
    pub enter: f64,
    pub leave: f64,
    bad: bool,
    rng: Rng,
    /// Datagrams this chain dropped.
    pub dropped: u64,
}

impl Bursts {
    pub fn new(enter: f64, leave: f64, seed: u64) -> Self {
        Bursts {
            enter,
            leave,
            bad: false,
            rng: Rng::new(seed),
            dropped: 0,
        }
    }

    /// Whether the next datagram is lost.
    fn lose(&mut self) -> bool {
        let u = self.rng.next_f64();
        self.bad = if self.bad {
            u >= self.leave
        } else {
            u < self.enter
        };
        self.dropped += u64::from(self.bad);
        self.bad
    }
}

/// A FIFO bottleneck: datagrams are serialized at `rate_bps`; one that would wait longer than
/// `queue` behind the datagrams before it is dropped. Change `rate_bps` between runs for
/// capacity steps.
pub struct Bottleneck {
    pub rate_bps: u64,
    pub queue: Duration,
    /// Datagrams dropped for a full queue.
    pub dropped: u64,
    busy_until: Option<Instant>,
}

impl Bottleneck {
    pub fn new(rate_bps: u64, queue: Duration) -> Self {
        Bottleneck {
            rate_bps,
            queue,
            dropped: 0,
            busy_until: None,
        }
    }

    /// When a datagram of `len` bytes entering at `at` leaves, or `None` when it is dropped.
    fn pass(&mut self, at: Instant, len: usize) -> Option<Instant> {
        let busy = self.busy_until.unwrap_or(at).max(at);
        if busy - at > self.queue {
            self.dropped += 1;
            return None;
        }
        let tx = Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / self.rate_bps.max(1));
        self.busy_until = Some(busy + tx);
        Some(busy + tx)
    }
}

pub struct Node {
    pub conn: Connection,
    pub addr: SocketAddr,
    /// Down: receives nothing, runs no timers (a crashed process).
    pub up: bool,
    pub link: LinkConfig,
    /// Every event the connection produced, in order (tests take from it).
    pub events: Vec<Event>,
    packetizer: Packetizer,
    /// Arrival of the latest datagram put on the link (jitter never reorders).
    last_arrival: Option<Instant>,
}

struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// One datagram a node sent (before the link decided its fate).
#[derive(Clone, Debug)]
pub struct Sent {
    pub from: usize,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
    /// When it left.
    pub depart: Instant,
    /// When it arrived (`None`: lost on the link).
    pub arrive: Option<Instant>,
}

pub struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub nodes: Vec<Node>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: Rng,
    /// Every datagram sent by any node, in order.
    pub sent: Vec<Sent>,
    pub drop_script: Option<DropScript>,
    pub steps: u64,
    /// The wall clock at `start` (virtual: moves with `now`, for hello freshness).
    pub wall_start: SystemTime,
}

/// A listening host at `addr(1)` and a calling client, both with the passphrase "pw" and
/// seeded ids (host seed 1, client seed 2).
pub fn passphrase_pair() -> (Config, Config) {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.passphrase = Some("pw".into());
    h.rng_seed = Some(1);
    let mut c = Config::new(Role::Client, Mode::Caller);
    c.peer = Some(addr(1));
    c.passphrase = Some("pw".into());
    c.rng_seed = Some(2);
    (h, c)
}

/// The host's node index in [`connected`]'s simulation.
const HOST: usize = 0;
/// The client's node index in [`connected`]'s simulation.
const CLIENT: usize = 1;

/// Host `h` at `addr(1)` (node 0) and client `c` at `addr(2)` (node 1), connected, then 30
/// clean 42,000-byte frames at 60 fps (a 720p x264 frame at 20 Mbit/s), so the RTT is measured
/// and the repair budget filled; both nodes' events are drained.
pub fn connected(seed: u64, h: Config, c: Config) -> Sim {
    let mut sim = Sim::new(seed);
    assert_eq!(sim.add(addr(1), h), HOST);
    assert_eq!(sim.add(addr(2), c), CLIENT);
    let ok = sim.run_until(Duration::from_secs(5), |s| {
        s.conn(HOST).is_connected() && s.conn(CLIENT).is_connected()
    });
    assert!(ok, "no session");
    let warm = super::frame_bytes(42_000, 99);
    for i in 0..30 {
        sim.send_frame(HOST, &warm, i == 0);
        sim.run_for(Duration::from_micros(16_667));
    }
    sim.run_for(Duration::from_millis(50));
    assert!(sim.conn(CLIENT).stats().rtt_us > 0);
    sim.take_events(CLIENT);
    sim.take_events(HOST);
    sim
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            start: now,
            nodes: Vec::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            sent: Vec::new(),
            drop_script: None,
            steps: 0,
            wall_start: SystemTime::now(),
        }
    }

    /// The virtual wall clock now.
    pub fn wall(&self) -> SystemTime {
        self.wall_start + (self.now - self.start)
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds a node at `addr` running a connection of `cfg` created now; returns its index.
    pub fn add(&mut self, addr: SocketAddr, cfg: Config) -> usize {
        let mtu = cfg.mtu;
        let conn = Connection::new_at(cfg, self.now, self.wall()).expect("valid config");
        self.nodes.push(Node {
            conn,
            addr,
            up: true,
            link: LinkConfig::default(),
            events: Vec::new(),
            packetizer: Packetizer::new(mtu, Box::new(ReedSolomon8::new())),
            last_arrival: None,
        });
        self.nodes.len() - 1
    }

    /// Replaces node `i`'s connection with a fresh one (a restart on the same address).
    pub fn restart(&mut self, i: usize, cfg: Config) {
        let n = &mut self.nodes[i];
        n.packetizer = Packetizer::new(cfg.mtu, Box::new(ReedSolomon8::new()));
        n.conn = Connection::new_at(cfg, self.now, self.wall_start + (self.now - self.start))
            .expect("valid config");
        n.events.clear();
        n.up = true;
    }

    fn random(&mut self) -> f64 {
        self.rng.next_f64()
    }

    /// Puts a datagram from node `from` on its link, leaving at `depart`.
    fn launch(&mut self, from: usize, to: SocketAddr, bytes: Vec<u8>, depart: Instant) {
        self.sent.push(Sent {
            from,
            to,
            bytes: bytes.clone(),
            depart,
            arrive: None,
        });
        let sent = self.sent.len() - 1;
        let loss = self.nodes[from].link.loss;
        if loss > 0.0 && self.random() < loss {
            return;
        }
        if self.nodes[from]
            .link
            .bursts
            .as_mut()
            .is_some_and(|b| b.lose())
        {
            return;
        }
        if let Some(script) = self.drop_script.as_mut()
            && script(from, &bytes)
        {
            return;
        }
        let mut depart = depart;
        if let Some(b) = self.nodes[from].link.bottleneck.as_mut() {
            match b.pass(depart, bytes.len()) {
                Some(t) => depart = t,
                None => return,
            }
        }
        let mut at = depart + self.nodes[from].link.delay;
        let jitter = self.nodes[from].link.jitter;
        if !jitter.is_zero() {
            let u = self.random() * 2.0 - 1.0;
            at = if u >= 0.0 {
                at + jitter.mul_f64(u)
            } else {
                at.checked_sub(jitter.mul_f64(-u)).unwrap_or(at).max(depart)
            };
            let last = &mut self.nodes[from].last_arrival;
            at = last.map_or(at, |l| at.max(l));
            *last = Some(at);
        }
        self.sent[sent].arrive = Some(at);
        self.inject_at(at, self.nodes[from].addr, to, bytes);
    }

    /// Delivers `bytes` as if sent from `from` to `to`, arriving at `at` (replays, forgeries).
    pub fn inject_at(&mut self, at: Instant, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq: self.seq,
            from,
            to,
            bytes,
        }));
    }

    /// Collects every node's transmits onto the links, and its events.
    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].conn.poll_transmit() {
                let len = t.contents.len();
                self.nodes[i].conn.record_sent(1, len, 0);
                let now = self.now;
                self.launch(i, t.destination, t.contents, now);
            }
            while let Some(ev) = self.nodes[i].conn.poll_event() {
                self.nodes[i].events.push(ev);
            }
            while let Some(ev) = self.nodes[i].conn.poll_audio_event() {
                self.nodes[i].events.push(ev);
            }
        }
    }

    fn next_time(&self) -> Option<Instant> {
        let mut next = self.in_flight.peek().map(|Reverse(f)| f.at);
        for n in self.nodes.iter().filter(|n| n.up) {
            if let Some(t) = n.conn.poll_timeout() {
                next = Some(next.map_or(t, |x| x.min(t)));
            }
        }
        next
    }

    /// Advances to the next instant with work, but not beyond `limit`. Returns false when
    /// nothing is scheduled before `limit` (the clock is then at `limit`).
    fn step(&mut self, limit: Instant) -> bool {
        self.steps += 1;
        assert!(
            self.steps < MAX_STEPS,
            "simulation stuck at {:?}",
            self.elapsed()
        );
        self.collect();
        let Some(t) = self.next_time().filter(|t| *t <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        self.now = self.now.max(t);
        while self
            .in_flight
            .peek()
            .is_some_and(|Reverse(f)| f.at <= self.now)
        {
            let Reverse(mut f) = self.in_flight.pop().expect("peeked");
            let now = self.now;
            if let Some(n) = self.nodes.iter_mut().find(|n| n.up && n.addr == f.to) {
                n.conn.handle_datagram(now, f.from, &mut f.bytes);
            }
        }
        let now = self.now;
        for n in self.nodes.iter_mut().filter(|n| n.up) {
            if n.conn.poll_timeout().is_some_and(|t| t <= now) {
                n.conn.handle_timeout(now);
            }
        }
        self.collect();
        true
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.step(end) {}
    }

    /// Runs until `pred` holds (checked after every step) or `limit` of virtual time passes;
    /// returns whether `pred` held.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&mut Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.collect();
            if pred(self) {
                return true;
            }
            if !self.step(end) {
                return pred(self);
            }
        }
    }

    /// Host node `i`: reserves, packetizes and seals a frame now, and puts its datagrams on
    /// the link at their paced release times. Returns the datagram count, `None` without a
    /// peer.
    pub fn send_frame(&mut self, i: usize, data: &[u8], keyframe: bool) -> Option<usize> {
        self.send_frame_timed(i, data, keyframe, FrameTimingIn::default())
    }

    /// [`Sim::send_frame`] with the frame's capture time and duration.
    pub fn send_frame_timed(
        &mut self,
        i: usize,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Option<usize> {
        self.send_frame_inner(i, data, keyframe, timing, None)
    }

    /// [`Sim::send_frame`] from a sender that is descheduled mid-frame: the frame's datagrams
    /// from position `from` on leave `hold` later than their paced release (the tail of the
    /// frame arrives late; nothing is lost).
    pub fn send_frame_held(
        &mut self,
        i: usize,
        data: &[u8],
        keyframe: bool,
        from: usize,
        hold: Duration,
    ) -> Option<usize> {
        self.send_frame_inner(
            i,
            data,
            keyframe,
            FrameTimingIn::default(),
            Some((from, hold)),
        )
    }

    fn send_frame_inner(
        &mut self,
        i: usize,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
        hold: Option<(usize, Duration)>,
    ) -> Option<usize> {
        let now = self.now;
        let n = &mut self.nodes[i];
        let ticket = n
            .conn
            .begin_frame_timed(now, &n.packetizer, data.len(), keyframe, timing)
            .expect("frame accepted")?;
        let mut buf = Datagrams::new();
        ticket
            .packetize(&mut n.packetizer, data, &mut buf)
            .expect("packetize");
        let frame = ticket.seal(buf);
        let d = frame.datagrams();
        let schedule = n.conn.pacing_schedule(d.wire_bytes(), d.len(), now);
        n.conn.record_sent(d.len(), d.wire_bytes(), 0);
        n.conn.record_payload_sent(data.len());
        let to = frame.peer();
        let count = d.len();
        let out: Vec<(Instant, Vec<u8>)> = (0..count)
            .map(|k| (schedule.release_of(k), d.get(k).to_vec()))
            .collect();
        let (first, last) = (schedule.release_of(0), schedule.release_of(count - 1));
        let mut end = now;
        for (k, (at, bytes)) in out.into_iter().enumerate() {
            let held = match hold {
                Some((from, d)) if k >= from => d,
                _ => Duration::ZERO,
            };
            end = end.max(at.max(now) + held);
            self.launch(i, to, bytes, at.max(now) + held);
        }
        // As the driver does: what the frame queued (the parity rows that older frames keep
        // behind it, a stream info) leaves right after its last datagram.
        let n = &mut self.nodes[i];
        n.conn
            .on_frame_sent(&frame, first.max(now), last.max(now), now);
        let mut queued = Vec::new();
        while let Some(t) = n.conn.poll_transmit() {
            n.conn.record_sent(1, t.contents.len(), 0);
            queued.push(t);
        }
        for t in queued {
            self.launch(i, t.destination, t.contents, end);
        }
        Some(count)
    }

    /// Takes the events node `i` produced so far.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.nodes[i].events)
    }

    pub fn conn(&mut self, i: usize) -> &mut Connection {
        &mut self.nodes[i].conn
    }

    /// Whether node `i`'s events so far contain one that `pred` accepts.
    pub fn saw(&self, i: usize, pred: impl Fn(&Event) -> bool) -> bool {
        self.nodes[i].events.iter().any(pred)
    }
}
