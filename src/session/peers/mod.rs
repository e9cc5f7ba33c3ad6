//! A host's peers on one socket, sans-IO: up to `Config::max_clients` clients, each with its
//! own [`Connection`] (handshake, keys, replay window, RTT, loss model, FEC plan, repair,
//! congestion estimate), behind one datagram entry point.
//!
//! [`Peers`] owns the routing of every datagram to the connection it belongs to, the admission
//! of newcomers (a hello beyond the limit is refused with Reject(Busy) before any crypto), the
//! peer ids and who may send input (`InputFrom`), the coalescing of keyframe requests across
//! clients, and the encoder target over all clients (the slowest one's, floored at
//! `Config::client_bitrate_floor_bps`). With `max_clients` 1, or on a client or caller, it
//! holds one connection and hands every call straight to it, so a single peer behaves exactly
//! as a bare [`Connection`].
//!
//! Routing: a session datagram goes to the connection that owns its session id (current or
//! answered and waiting for confirmation), else to the one that retired it or knows the sender's
//! address (for the Reset), else to the first. A hello goes to the connection that knows its
//! address (a restart or a duplicate), else to a free connection (no session, and not kept
//! for another newcomer's handshake), else it is refused.
//!
//! Must never: run a handshake for a newcomer beyond the limit, hand one client's datagram to
//! another's connection when the session id says otherwise, deliver input from a client that
//! does not control, read a clock, or block.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::protocol::input::InputEvent;
use crate::protocol::media::packetizer::Packetizer;
use crate::protocol::security::handshake::Role;
use crate::protocol::time::pacing::Schedule;
use crate::protocol::wire::{Header, KIND_COOKIE_REPLY, Kind, RejectReason};

use super::connection::{
    BandwidthUpdate, Connection, DisconnectReason, Event, FrameTicket, FrameTimingIn, SealedFrame,
    Transmit,
};
use super::{Config, Error, Mode, Result, Stats};

mod budget;
mod events;
mod totals;

pub use budget::{BUDGET_DEPTH, QUEUE_EVIDENCE};
pub use events::SLOW_CLIENT_KEYFRAME_INTERVAL;

/// The most clients one host serves (each keeps its own repair history and estimator).
pub const MAX_CLIENTS: usize = 64;

/// A newcomer refused for a full host is reported at most once per this interval per address.
const REFUSED_EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// A free connection that answered a newcomer's hello is kept for it this long (its handshake
/// and confirmation), so a second newcomer does not race it into the same connection.
const RESERVED_FOR: Duration = Duration::from_secs(1);

/// A client disconnected by [`Peers::disconnect`] is refused (Busy) from its address for this
/// long, so that a caller that keeps retrying does not take its slot straight back.
pub const DISCONNECTED_BAR: Duration = Duration::from_secs(10);

/// Addresses barred after a disconnect, at most (the oldest bar ends first).
const MAX_BARRED: usize = 16;

/// A client of the host, numbered from 1 in the order they connected (a client that
/// reconnects gets a new id). Never reused within one [`Peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which clients' input the host takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFrom {
    /// The first client to connect controls, the others watch; when it leaves, the longest
    /// connected client takes over. [`Peers::give_control`] hands control over.
    #[default]
    First,
    /// Every client's input is taken.
    All,
    /// Nobody controls until [`Peers::give_control`] names a client.
    None,
}

/// An [`Event`] and the client it is about (`None`: about the host as a whole, or a client
/// before it has a session, e.g. a refused hello).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerEvent {
    /// The client.
    pub peer: Option<PeerId>,
    /// Its address (where known).
    pub addr: Option<SocketAddr>,
    /// What happened.
    pub event: Event,
}

/// One connected client, as [`Peers::peers`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// Its id.
    pub id: PeerId,
    /// Its address.
    pub addr: SocketAddr,
    /// Whether its input is taken.
    pub controls_input: bool,
    /// Input events it sent while watching (dropped).
    pub input_dropped: u64,
    /// Frames held back from it while its estimate was below the bitrate floor.
    pub frames_skipped: u64,
    /// Its connection's counters.
    pub stats: Stats,
}

/// One connection and who it serves.
struct Slot {
    conn: Connection,
    /// The client of the current session.
    client: Option<(PeerId, SocketAddr)>,
    /// Kept for a newcomer's handshake: its address and since when.
    reserved: Option<(SocketAddr, Instant)>,
    /// Input from this slot's clients dropped while they watched.
    input_dropped: u64,
    /// Its latest bandwidth update (for the encoder target over all clients).
    bandwidth: Option<BandwidthUpdate>,
    /// When a keyframe request of its was last passed on.
    keyframe_at: Option<Instant>,
    /// Below the bitrate floor: its frame budget (`budget`).
    budget: Option<budget::Budget>,
    /// Frames held back from its clients while they were below the floor.
    frames_skipped: u64,
    /// Its client joined and has had no keyframe yet: deltas it could not decode are held back.
    joining: bool,
}

impl Slot {
    fn new(conn: Connection) -> Slot {
        Slot {
            conn,
            client: None,
            reserved: None,
            input_dropped: 0,
            bandwidth: None,
            keyframe_at: None,
            budget: None,
            frames_skipped: 0,
            joining: false,
        }
    }
}

/// Counters of the host as a whole (beyond its connections').
#[derive(Debug, Default, Clone)]
pub(crate) struct PeersCounters {
    pub(crate) clients_refused: u64,
    pub(crate) input_dropped_watching: u64,
    pub(crate) keyframe_requests_coalesced: u64,
    pub(crate) keyframe_requests_throttled: u64,
    pub(crate) frames_skipped_slow: u64,
}

/// What the host set that a renewed connection must get again.
#[derive(Default)]
struct Replay {
    stream_info: Option<String>,
    audio_info: Option<String>,
    bounds: Option<(u64, u64)>,
    host_clock: Option<(Instant, u64)>,
}

/// A host's peers (or the one connection of any other end). See the module docs.
pub struct Peers {
    cfg: Config,
    slots: Vec<Slot>,
    events: VecDeque<PeerEvent>,
    transmits: VecDeque<Transmit>,
    next_id: u64,
    controller: Option<PeerId>,
    /// Several clients: a keyframe asked of the encoder for some client and not sent yet.
    keyframe_asked: Option<Instant>,
    /// The encoder target last reported over all clients.
    last_target: Option<(u64, crate::protocol::congestion::BweState)>,
    last_refused_event: Option<(SocketAddr, Instant)>,
    /// Addresses of disconnected clients and until when their hellos are refused.
    barred: VecDeque<(SocketAddr, Instant)>,
    counters: PeersCounters,
    replay: Replay,
    /// When the peers were created, and the wall clock then (renewed connections need it).
    epoch: (Instant, SystemTime),
    /// The latest instant handed in.
    now: Instant,
    /// What renewed connections counted before they were renewed.
    retired: Stats,
}

impl Peers {
    /// The peers of an end configured by `config`, at `now` with the wall clock `wall`: one
    /// connection, or `max_clients` of them on a listening host.
    pub fn new(config: Config, now: Instant, wall: SystemTime) -> Result<Peers> {
        if config.max_clients == 0 || config.max_clients > MAX_CLIENTS {
            return Err(Error::InvalidArg("max-clients out of range (1..=64)"));
        }
        let multi =
            config.max_clients > 1 && config.role == Role::Host && config.mode == Mode::Listener;
        let first = Connection::new_at(config.clone(), now, wall)?;
        let psk = first.psk();
        let mut slots = vec![Slot::new(first)];
        if multi {
            for i in 1..config.max_clients {
                let c = Connection::new_sharing_key(
                    slot_config(&config, i as u64),
                    now,
                    wall,
                    psk.clone(),
                )?;
                slots.push(Slot::new(c));
            }
        }
        Ok(Peers {
            cfg: config,
            slots,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            next_id: 1,
            controller: None,
            keyframe_asked: None,
            last_target: None,
            last_refused_event: None,
            barred: VecDeque::new(),
            counters: PeersCounters::default(),
            replay: Replay::default(),
            epoch: (now, wall),
            now,
            retired: Stats::default(),
        })
    }

    /// Whether this host serves several clients (else it is one connection).
    pub fn is_multi(&self) -> bool {
        self.slots.len() > 1
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The one connection of a single-peer end; `InvalidArg` with several clients (a frame
    /// goes to all of them: see `Session::seal_frames`).
    pub fn single(&mut self) -> Result<&mut Connection> {
        if self.is_multi() {
            return Err(Error::InvalidArg(
                "seal_frame / send_sealed serve one client: with max_clients > 1 use \
                 seal_frames / send_frames or submit_frame",
            ));
        }
        Ok(&mut self.slots[0].conn)
    }

    /// The one connection of a single-peer end (the first of several).
    pub fn primary(&mut self) -> &mut Connection {
        &mut self.slots[0].conn
    }

    /// Whether any client is connected.
    pub fn is_connected(&self) -> bool {
        self.slots.iter().any(|s| s.conn.is_connected())
    }

    /// Whether [`Peers::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.slots[0].conn.is_closed()
    }

    /// The peer of a single-peer end, or the first connected client's.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.slots.iter().find_map(|s| s.conn.peer())
    }

    /// The connected clients, oldest first.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self
            .slots
            .iter()
            .filter(|s| s.conn.is_connected())
            .filter_map(|s| {
                let (id, addr) = s.client?;
                Some(PeerInfo {
                    id,
                    addr: s.conn.peer().unwrap_or(addr),
                    controls_input: self.may_send_input(id),
                    input_dropped: s.input_dropped,
                    frames_skipped: s.frames_skipped,
                    stats: s.conn.stats(),
                })
            })
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }

    /// The client whose input is taken (with [`InputFrom::All`], every client's is).
    pub fn controller(&self) -> Option<PeerId> {
        self.controller
    }

    /// Hands input control to `id`. `false` when no such client is connected.
    pub fn give_control(&mut self, id: PeerId) -> bool {
        if self.slot_of(id).is_none() {
            return false;
        }
        self.controller = Some(id);
        true
    }

    /// Ends `id`'s session (it hears bye, i.e. end of stream) and frees its connection for
    /// the next client. `false` when no such client is connected.
    pub fn disconnect(&mut self, id: PeerId, now: Instant) -> Result<bool> {
        let Some(i) = self.slot_of(id) else {
            return Ok(false);
        };
        let conn = &mut self.slots[i].conn;
        conn.close();
        while let Some(t) = conn.poll_transmit() {
            self.transmits.push_back(t);
        }
        let fresh = self.fresh_connection(i, now)?;
        let slot = &mut self.slots[i];
        let old = std::mem::replace(&mut slot.conn, fresh);
        let (id, addr) = slot
            .client
            .take()
            .unwrap_or((id, SocketAddr::from(([0, 0, 0, 0], 0))));
        slot.bandwidth = None;
        slot.reserved = None;
        // A renewed connection counts afresh: what the old one counted stays in the totals.
        self.retire_counters(&old.stats());
        self.client_left(id);
        if self.barred.len() == MAX_BARRED {
            self.barred.pop_front();
        }
        self.barred.push_back((addr, now + DISCONNECTED_BAR));
        self.events.push_back(PeerEvent {
            peer: Some(id),
            addr: Some(addr),
            event: Event::Disconnected {
                reason: DisconnectReason::Bye,
            },
        });
        Ok(true)
    }

    /// Processes one datagram (see [`Connection::handle_datagram`]), routed to its client's
    /// connection.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8]) {
        let Some(i) = self.route(now, from, buf) else {
            return;
        };
        self.now = self.now.max(now);
        self.slots[i].conn.handle_datagram(now, from, buf);
        self.collect(i, now);
    }

    /// Runs every connection's timers (see [`Connection::handle_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for i in 0..self.slots.len() {
            self.slots[i].conn.handle_timeout(now);
            self.collect(i, now);
        }
    }

    /// The earliest of the connections' deadlines.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.poll_timeout())
            .min()
    }

    /// The next datagram to send: the host's own (refusals, byes), then each connection's.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        self.slots.iter_mut().find_map(|s| s.conn.poll_transmit())
    }

    /// The next event, with the client it is about.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        if self.events.is_empty() {
            // Events of calls that do not collect (frames, settings).
            for i in 0..self.slots.len() {
                self.collect(i, self.now);
            }
        }
        self.events.pop_front()
    }

    /// Client: the next audio event (see [`Connection::poll_audio_event`]).
    pub fn poll_audio_event(&mut self) -> Option<Event> {
        self.slots[0].conn.poll_audio_event()
    }

    /// Says bye to every client and stops.
    pub fn close(&mut self) {
        for s in &mut self.slots {
            s.conn.close();
        }
    }

    /// The counters: a single peer's connection's, or the totals over all clients (see
    /// `totals`).
    pub fn stats(&self) -> Stats {
        if !self.is_multi() {
            let mut s = self.slots[0].conn.stats();
            s.clients = u64::from(s.connected);
            s.input_dropped_watching = self.counters.input_dropped_watching;
            s.keyframe_requests_throttled += self.counters.keyframe_requests_throttled;
            return s;
        }
        self.totals()
    }

    // ----- what the host sets, for every connection -----

    /// Host: sets the stream info on every connection.
    pub fn set_stream_info(&mut self, caps: &str) -> Result<()> {
        self.replay.stream_info = Some(caps.to_owned());
        self.each(|c| c.set_stream_info(caps))
    }

    /// Host: announces the audio stream on every connection.
    pub fn set_audio_info(&mut self, now: Instant, caps: &str) -> Result<()> {
        self.replay.audio_info = Some(caps.to_owned());
        self.each(|c| c.set_audio_info(now, caps))
    }

    /// Host: one audio packet to every connected client (dropped and counted without one).
    pub fn submit_audio(
        &mut self,
        now: Instant,
        data: &[u8],
        capture_us: u64,
        duration_us: u32,
    ) -> Result<()> {
        if !self.is_multi() {
            return self.slots[0]
                .conn
                .submit_audio(now, data, capture_us, duration_us);
        }
        if !self.is_connected() {
            // Counted as dropped there.
            return self.slots[0]
                .conn
                .submit_audio(now, data, capture_us, duration_us);
        }
        self.each(|c| {
            if c.is_connected() {
                c.submit_audio(now, data, capture_us, duration_us)
            } else {
                Ok(())
            }
        })
    }

    /// Host: bounds of every connection's target bitrate.
    pub fn set_bitrate_bounds(&mut self, min_bps: u64, max_bps: u64) {
        self.replay.bounds = Some((min_bps, max_bps));
        for s in &mut self.slots {
            s.conn.set_bitrate_bounds(min_bps, max_bps);
        }
    }

    /// Sets the host clock of every connection (see [`Connection::set_host_clock`]).
    pub fn set_host_clock(&mut self, at: Instant, mono_us: u64) {
        self.replay.host_clock = Some((at, mono_us));
        for s in &mut self.slots {
            s.conn.set_host_clock(at, mono_us);
        }
    }

    /// The host clock at `t`.
    pub fn host_clock_us(&self, t: Instant) -> u64 {
        self.slots[0].conn.host_clock_us(t)
    }

    /// Client: see [`Connection::send_input`].
    pub fn send_input(&mut self, now: Instant, ev: InputEvent) -> Result<()> {
        self.slots[0].conn.send_input(now, ev)
    }

    /// Client: see [`Connection::request_keyframe`].
    pub fn request_keyframe(&mut self, now: Instant) -> Result<bool> {
        self.slots[0].conn.request_keyframe(now)
    }

    // ----- frames -----

    /// Host: reserves the next frame for every connected client (see
    /// [`Connection::begin_frame_timed`]); empty without a client (counted as dropped).
    pub fn begin_frames(
        &mut self,
        now: Instant,
        packetizer: &Packetizer,
        len: usize,
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Result<Vec<(PeerId, FrameTicket)>> {
        if keyframe {
            self.keyframe_asked = None;
        }
        let mut tickets = Vec::with_capacity(self.slots.len());
        let mut connected = false;
        for i in 0..self.slots.len() {
            if !self.slots[i].conn.is_connected() {
                continue;
            }
            connected = true;
            match self.admit_frame(i, now, len, keyframe) {
                budget::Admit::Send => {}
                budget::Admit::Skip(starts) => {
                    let client = self.slots[i].client;
                    if starts && self.keyframe_wanted(i, now) {
                        self.push(client, Event::KeyframeRequest);
                    }
                    continue;
                }
            }
            let s = &mut self.slots[i];
            let id = s.client.map_or(PeerId(0), |(id, _)| id);
            if let Some(t) = s
                .conn
                .begin_frame_timed(now, packetizer, len, keyframe, timing)?
            {
                tickets.push((id, t));
            }
        }
        if tickets.is_empty() && !connected {
            // Counted as dropped, or the error of a closed host / a frame that cannot be cut.
            if let Some(t) = self.slots[0]
                .conn
                .begin_frame_timed(now, packetizer, len, keyframe, timing)?
            {
                let id = self.slots[0].client.map_or(PeerId(0), |(id, _)| id);
                tickets.push((id, t));
            }
        }
        Ok(tickets)
    }

    /// Host: the pacing of a frame to `id` (see [`Connection::pacing_schedule`]).
    pub fn pacing_schedule_for(
        &mut self,
        id: PeerId,
        wire_bytes: usize,
        count: usize,
        now: Instant,
    ) -> Schedule {
        let i = self.slot_of(id).unwrap_or(0);
        self.slots[i].conn.pacing_schedule(wire_bytes, count, now)
    }

    /// Host: what happened to a frame sent to `id`: datagrams sent and dropped, its payload,
    /// and when its first and last chunks left (see [`Connection::on_frame_sent`]).
    pub fn frame_sent_to(&mut self, id: PeerId, frame: &SealedFrame, out: FrameSent) {
        let Some(i) = self.slot_of(id) else {
            return;
        };
        let c = &mut self.slots[i].conn;
        let d = frame.datagrams();
        c.record_sent(out.sent, out.sent * d.datagram_len(), out.dropped);
        c.record_payload_sent(frame.payload_bytes());
        if let Some(e) = out.error {
            c.record_send_error(e);
        }
        if let Some((first, last)) = out.window {
            c.on_frame_sent(frame, first, last, out.now);
        }
        self.collect(i, out.now);
    }

    /// The driver reports what the transport did with transmits to `to`.
    pub fn record_sent_to(&mut self, to: SocketAddr, sent: usize, bytes: usize, dropped: usize) {
        let i = self.slot_for_address(to);
        self.slots[i].conn.record_sent(sent, bytes, dropped);
    }

    /// The driver reports a refused send to `to`.
    pub fn record_send_error_to(&mut self, to: SocketAddr, error: String) {
        let i = self.slot_for_address(to);
        self.slots[i].conn.record_send_error(error);
    }

    // ----- routing -----

    /// The connection a datagram from `from` belongs to, or `None` when it was refused.
    fn route(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> Option<usize> {
        if !self.is_multi() || buf.get(1) == Some(&KIND_COOKIE_REPLY) {
            return Some(0);
        }
        let Ok((h, _)) = Header::decode(buf) else {
            return Some(0);
        };
        match h.kind {
            Kind::HandshakeInit => self.route_hello(now, from, h.session_id),
            Kind::Video | Kind::Control | Kind::Input | Kind::Audio => {
                let id = h.session_id;
                let i = self
                    .position(|c| c.owns_session(id))
                    .or_else(|| self.position(|c| c.retired_session(id)))
                    .or_else(|| self.position(|c| c.knows_address(from)));
                Some(i.unwrap_or(0))
            }
            Kind::HandshakeResponse | Kind::Reject | Kind::Reset => Some(0),
        }
    }

    /// A hello: to the connection that knows its address, else to a free one, else refused.
    fn route_hello(&mut self, now: Instant, from: SocketAddr, attempt: u32) -> Option<usize> {
        self.barred.retain(|&(_, until)| now < until);
        if self.barred.iter().any(|&(a, _)| a == from) {
            self.refuse(now, from, attempt);
            return None;
        }
        if let Some(i) = self.position(|c| c.knows_address(from)) {
            return Some(i);
        }
        let free = self.slots.iter().position(|s| {
            !s.conn.is_connected()
                && match s.reserved {
                    Some((addr, since)) => {
                        addr == from || now.saturating_duration_since(since) >= RESERVED_FOR
                    }
                    None => !s.conn.has_pending(),
                }
        });
        match free {
            Some(i) => {
                self.slots[i].reserved = Some((from, now));
                Some(i)
            }
            None => {
                self.refuse(now, from, attempt);
                None
            }
        }
    }

    /// Every client slot is taken: Reject(Busy), 17 bytes against a 192-byte hello, and no
    /// state kept beyond one line for the event's rate limit.
    fn refuse(&mut self, now: Instant, from: SocketAddr, attempt: u32) {
        self.counters.clients_refused += 1;
        let d = Connection::reject_datagram(attempt, RejectReason::Busy);
        self.transmits.push_back(Transmit {
            destination: from,
            contents: d,
        });
        let repeat = self.last_refused_event.is_some_and(|(a, t)| {
            a == from && now.saturating_duration_since(t) < REFUSED_EVENT_INTERVAL
        });
        if !repeat {
            self.last_refused_event = Some((from, now));
            self.events.push_back(PeerEvent {
                peer: None,
                addr: Some(from),
                event: Event::PeerRefused { from },
            });
        }
    }

    fn position(&self, f: impl Fn(&Connection) -> bool) -> Option<usize> {
        self.slots.iter().position(|s| f(&s.conn))
    }

    fn slot_of(&self, id: PeerId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.client.is_some_and(|(c, _)| c == id) && s.conn.is_connected())
    }

    fn slot_for_address(&self, to: SocketAddr) -> usize {
        if !self.is_multi() {
            return 0;
        }
        self.position(|c| c.peer() == Some(to))
            .or_else(|| self.position(|c| c.knows_address(to)))
            .unwrap_or(0)
    }

    /// Runs `f` on every connection; the first error is returned after all ran.
    fn each(&mut self, mut f: impl FnMut(&mut Connection) -> Result<()>) -> Result<()> {
        let mut r = Ok(());
        for s in &mut self.slots {
            if let Err(e) = f(&mut s.conn)
                && r.is_ok()
            {
                r = Err(e);
            }
        }
        r
    }

    /// A fresh connection for slot `i`, with what the host set so far.
    fn fresh_connection(&self, i: usize, now: Instant) -> Result<Connection> {
        let wall = self.epoch.1 + now.saturating_duration_since(self.epoch.0);
        let psk = self.slots[0].conn.psk();
        let mut c = Connection::new_sharing_key(
            slot_config(&self.cfg, i as u64 + self.next_id * 64),
            now,
            wall,
            psk,
        )?;
        if let Some((at, mono)) = self.replay.host_clock {
            c.set_host_clock(at, mono);
        }
        if let Some(caps) = &self.replay.stream_info {
            c.set_stream_info(caps)?;
        }
        if let Some(caps) = &self.replay.audio_info {
            c.set_audio_info(now, caps)?;
        }
        if let Some((min, max)) = self.replay.bounds {
            c.set_bitrate_bounds(min, max);
        }
        Ok(c)
    }
}

/// What the driver did with one client's frame (see [`Peers::frame_sent_to`]).
#[derive(Debug, Clone)]
pub struct FrameSent {
    /// Datagrams the transport took.
    pub sent: usize,
    /// Datagrams refused for a full buffer (or a failed send).
    pub dropped: usize,
    /// The last send error, if one failed.
    pub error: Option<String>,
    /// When the first and the last chunk went to the socket (none when nothing was sent).
    pub window: Option<(Instant, Instant)>,
    /// Now, after the send.
    pub now: Instant,
}

/// Slot `i`'s configuration: its own id sequence when seeded (reproducible, distinct ids).
fn slot_config(config: &Config, i: u64) -> Config {
    let mut c = config.clone();
    c.rng_seed = config
        .rng_seed
        .map(|s| s.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    c
}
