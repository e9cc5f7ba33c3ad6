//! A simulated network on virtual time for one host's [`Peers`] and several client
//! [`Connection`]s: fixed per-client delay both ways, seeded iid loss on a client's downlink,
//! crashes (a client that stops receiving and sending), and frames whose datagrams to chosen
//! clients are dropped. The clock jumps to the next delivery or deadline, so seconds of
//! virtual time run in milliseconds, the same way every run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use gstpunktfunk::protocol::fec::coder::ReedSolomon8;
use gstpunktfunk::protocol::media::packetizer::{Datagrams, Packetizer};
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::wire::{Header, Kind};
use gstpunktfunk::session::{
    Config, Connection, Event, FrameSent, FrameTimingIn, InputFrom, Mode, PeerEvent, Peers,
};
use gstpunktfunk::testkit::rng::Rng;

pub const HOST: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    1,
);

pub fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, i as u8 + 1], 5000 + i as u16))
}

pub struct Client {
    pub conn: Connection,
    pub addr: SocketAddr,
    pub up: bool,
    pub delay: Duration,
    /// Loss on the way to this client (seeded).
    pub loss: f64,
    pub events: Vec<Event>,
    /// Datagram kinds this client received from the host.
    pub kinds_received: Vec<Kind>,
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

pub struct Net {
    pub now: Instant,
    start: Instant,
    wall: SystemTime,
    pub host: Peers,
    pub host_events: Vec<PeerEvent>,
    pub clients: Vec<Client>,
    packetizer: Packetizer,
    flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: Rng,
}

/// A listening host for `max_clients` clients with passphrase "pw", seeded.
pub fn host_config(max_clients: usize, input_from: InputFrom) -> Config {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.passphrase = Some("pw".into());
    h.rng_seed = Some(1);
    h.max_clients = max_clients;
    h.input_from = input_from;
    h
}

impl Net {
    pub fn new(host: Config) -> Net {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mtu = host.mtu;
        let mut peers = Peers::new(host, now, wall).expect("host");
        peers.set_stream_info("video/x-h264").expect("stream info");
        Net {
            now,
            start: now,
            wall,
            host: peers,
            host_events: Vec::new(),
            clients: Vec::new(),
            packetizer: Packetizer::new(mtu, Box::new(ReedSolomon8::new())),
            flight: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(7),
        }
    }

    /// Adds a calling client (passphrase "pw") with `delay` each way; returns its index.
    pub fn add_client(&mut self, delay: Duration) -> usize {
        let i = self.clients.len();
        let mut c = Config::new(Role::Client, Mode::Caller);
        c.peer = Some(HOST);
        c.passphrase = Some("pw".into());
        c.rng_seed = Some(100 + i as u64);
        let wall = self.wall + (self.now - self.start);
        self.clients.push(Client {
            conn: Connection::new_at(c, self.now, wall).expect("client"),
            addr: client_addr(i),
            up: true,
            delay,
            loss: 0.0,
            events: Vec::new(),
            kinds_received: Vec::new(),
        });
        i
    }

    fn delay_of(&self, addr: SocketAddr) -> Duration {
        self.clients
            .iter()
            .find(|c| c.addr == addr)
            .map_or(Duration::from_millis(1), |c| c.delay)
    }

    fn launch(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>, at: Instant) {
        let client = if to == HOST { from } else { to };
        let delay = self.delay_of(client);
        if to != HOST
            && let Some(c) = self.clients.iter().find(|c| c.addr == to)
            && c.loss > 0.0
            && self.rng.next_f64() < c.loss
        {
            return;
        }
        self.seq += 1;
        self.flight.push(Reverse(InFlight {
            at: at + delay,
            seq: self.seq,
            from,
            to,
            bytes,
        }));
    }

    /// Collects what everyone wants sent and every event.
    fn collect(&mut self) {
        while let Some(t) = self.host.poll_transmit() {
            self.launch(HOST, t.destination, t.contents, self.now);
        }
        while let Some(e) = self.host.poll_event() {
            self.host_events.push(e);
        }
        for i in 0..self.clients.len() {
            let mut out = Vec::new();
            let c = &mut self.clients[i];
            while let Some(t) = c.conn.poll_transmit() {
                if c.up {
                    out.push(t);
                }
            }
            while let Some(e) = c.conn.poll_event() {
                // As punktfunksrc with request-keyframe=true does.
                if matches!(e, Event::FramesLost { .. }) {
                    let _ = c.conn.request_keyframe(self.now);
                }
                c.events.push(e);
            }
            while let Some(t) = c.conn.poll_transmit() {
                if c.up {
                    out.push(t);
                }
            }
            let from = c.addr;
            for t in out {
                self.launch(from, t.destination, t.contents, self.now);
            }
        }
    }

    /// One step: deliver what is due, run due timers, collect.
    fn step(&mut self) {
        while self.flight.peek().is_some_and(|f| f.0.at <= self.now) {
            let Reverse(mut f) = self.flight.pop().expect("peeked");
            if f.to == HOST {
                self.host.handle_datagram(self.now, f.from, &mut f.bytes);
            } else if let Some(c) = self.clients.iter_mut().find(|c| c.addr == f.to && c.up) {
                if let Ok((h, _)) = Header::decode(&f.bytes) {
                    c.kinds_received.push(h.kind);
                }
                c.conn.handle_datagram(self.now, f.from, &mut f.bytes);
            }
        }
        self.host.handle_timeout(self.now);
        for c in self.clients.iter_mut().filter(|c| c.up) {
            c.conn.handle_timeout(self.now);
        }
        self.collect();
    }

    fn next_instant(&self) -> Option<Instant> {
        let mut next = self.flight.peek().map(|f| f.0.at);
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        take(self.host.poll_timeout());
        for c in self.clients.iter().filter(|c| c.up) {
            take(c.conn.poll_timeout());
        }
        next
    }

    /// Runs until `d` of virtual time has passed.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.step();
        for _ in 0..10_000_000 {
            let next = self.next_instant().map_or(end, |n| n.max(self.now));
            if next > end {
                break;
            }
            // A deadline in the past moves the clock on by a microsecond (no spin).
            self.now = next.max(self.now + Duration::from_micros(1)).min(end);
            self.step();
            if self.now >= end {
                break;
            }
        }
        self.now = end;
        self.step();
    }

    /// Runs until `pred` holds (checked after every step) or `limit` passes.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if pred(self) {
                return true;
            }
            self.run_for(Duration::from_millis(1));
        }
        pred(self)
    }

    /// The host sends a frame to every connected client; the datagrams to the clients in
    /// `drop_to` are lost. Returns how many clients it went to.
    pub fn send_frame(&mut self, data: &[u8], keyframe: bool, drop_to: &[usize]) -> usize {
        let now = self.now;
        let tickets = self
            .host
            .begin_frames(
                now,
                &self.packetizer,
                data.len(),
                keyframe,
                FrameTimingIn::default(),
            )
            .expect("frame");
        let mut n = 0;
        for (peer, t) in tickets {
            let mut buf = Datagrams::new();
            t.packetize(&mut self.packetizer, data, &mut buf)
                .expect("packetize");
            let frame = t.seal(buf);
            let to = frame.peer();
            let lost = drop_to.iter().any(|&i| self.clients[i].addr == to);
            let d = frame.datagrams();
            if !lost {
                for k in 0..d.len() {
                    self.launch(HOST, to, d.get(k).to_vec(), now);
                }
            }
            self.host.frame_sent_to(
                peer,
                &frame,
                FrameSent {
                    sent: d.len(),
                    dropped: 0,
                    error: None,
                    window: Some((now, now)),
                    now,
                },
            );
            n += 1;
        }
        self.collect();
        n
    }

    /// Whether client `i` has a session.
    pub fn connected(&self, i: usize) -> bool {
        self.clients[i].conn.is_connected()
    }

    /// Frames client `i` received so far.
    pub fn frames(&self, i: usize) -> usize {
        self.clients[i]
            .events
            .iter()
            .filter(|e| matches!(e, Event::Frame(_)))
            .count()
    }
}
