//! One end of a stream: the protocol parts composed over a [`Transport`].
//!
//! A [`Session`] is either the host (sends video, receives input) or the client (receives
//! video, sends input), and either the listener or the caller. It owns connection
//! establishment (Noise handshake, retries, duplicate hellos, confirmation), keep-alive, peer
//! timeout and re-establishment when either side restarts, and the counters in [`Stats`].
//!
//! Threading: every method takes `&self`. Protocol state sits behind one mutex that is held
//! only for short, non-blocking work; the receive ring has its own mutex, held by the one thread
//! that blocks in [`Session::poll_frame`] / [`Session::poll_input`]. So an element can send input,
//! keyframe requests or frames from one thread while another blocks receiving, and
//! [`Session::wake`] interrupts that receive at once. Sealing (FEC + AEAD) runs outside the lock.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::adaptive::AdaptiveFec;
use crate::protocol::control::{Control, LossReport, StreamInfo};
use crate::protocol::crypto::{Aead, AeadBackend, PlainAead};
use crate::protocol::fec::ReedSolomon8;
use crate::protocol::handshake::{
    self, Established, HandshakeConfig, HandshakeError, Initiator, Psk, Role,
};
use crate::protocol::input::{InputEvent, InputReceiver, InputSender};
use crate::protocol::pacing::Pacer;
use crate::protocol::packetizer::{Datagrams, FrameParams, PacketizeError, Packetizer, seal_all};
use crate::protocol::reassembler::{Frame, Output, Reassembler};
use crate::protocol::replay::ReplayWindow;
use crate::protocol::wire::{
    FEC_SCHEME_RS8, FLAG_SEALED, HEADER_LEN, Header, Kind, RejectReason, TAG_LEN,
};
use crate::transport::{RecvBatch, Transport, TransportInfo};

mod config;
mod stats;

pub use config::{Config, Mode};
pub use stats::Stats;

/// A caller accepts a clear Reset hint only after this long without an authenticated datagram,
/// so a forged Reset cannot break a live session.
const RESET_QUIET: Duration = Duration::from_millis(100);
/// At most this many Reset hints a second from a listener.
const RESET_RATE: Duration = Duration::from_millis(50);
/// Bye is sent this many times (it is not retransmitted).
const BYE_COPIES: usize = 5;
/// Bounds on the input retransmission timeout derived from the RTT.
const MIN_RTO: Duration = Duration::from_millis(5);
const MAX_RTO: Duration = Duration::from_millis(500);
const INITIAL_RTO: Duration = Duration::from_millis(50);
/// Receive batches drained without waiting before timers run (64 datagrams each).
const MAX_DRAIN_BATCHES: usize = 16;

/// Errors of the session API.
#[derive(Debug)]
pub enum Error {
    /// A wrong argument or a method of the other role.
    InvalidArg(&'static str),
    /// The transport failed.
    Io(io::Error),
    /// The frame could not be packetized.
    Packetize(PacketizeError),
    /// The session was closed.
    Closed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidArg(s) => write!(f, "invalid argument: {s}"),
            Error::Io(e) => write!(f, "network error: {e}"),
            Error::Packetize(e) => write!(f, "cannot send frame: {e}"),
            Error::Closed => write!(f, "session closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why a peer went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Nothing heard for `Config::timeout`.
    Timeout,
    /// The peer said bye.
    Bye,
    /// The peer restarted or another peer took over.
    Replaced,
}

/// What a session has to tell its user.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A session with a peer is up (also after a restart of either side).
    Connected { peer: SocketAddr, session_id: u32 },
    /// The peer is gone.
    Disconnected { reason: DisconnectReason },
    /// Caller: the listener refused our hello (a clear hint; retries go on).
    Rejected { reason: RejectReason },
    /// Listener: a hello was refused (wrong passphrase, mismatched settings), with the reason.
    HandshakeFailed { from: SocketAddr, reason: String },
    /// Caller: no session after `Config::timeout` of trying (retries go on).
    ConnectTimeout,
    /// Client: a whole access unit.
    Frame(Frame),
    /// Client: frames given up (the next frame will carry `discont`).
    FramesLost { count: u32 },
    /// Client: stream info, first or updated.
    StreamInfo(StreamInfo),
    /// Client: the host ended the stream.
    EndOfStream,
    /// Host: an input event from the client, in order, exactly once.
    Input(InputEvent),
    /// Host: the client asks for a keyframe.
    KeyframeRequest,
    /// Host: the client's latest reception counters.
    LossReport(LossReport),
}

/// A frame sealed and ready to send (see [`Session::seal_frame`]).
pub struct SealedFrame {
    datagrams: Datagrams,
    peer: SocketAddr,
    keyframe: bool,
    payload_bytes: usize,
}

impl SealedFrame {
    pub fn datagrams(&self) -> &Datagrams {
        &self.datagrams
    }
    pub fn keyframe(&self) -> bool {
        self.keyframe
    }
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }
    /// Gives the datagram buffer back for reuse with [`Session::seal_frame_into`].
    pub fn into_buffer(self) -> Datagrams {
        self.datagrams
    }
}

/// What [`Session::send_sealed`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub dropped: usize,
}

/// One established cryptographic session with the peer.
struct Conn {
    session_id: u32,
    seal: Arc<dyn Aead>,
    open: Box<dyn Aead>,
    next_pn: u64,
    replay: ReplayWindow,
    peer: SocketAddr,
    last_rx: Instant,
    encrypt: bool,
    /// Client: packet numbers seen, for loss accounting.
    first_pn: Option<u64>,
    max_pn: u64,
    received: u64,
    /// Stream info the peer sent in the handshake, handed out when the session is installed.
    peer_info: Option<StreamInfo>,
}

impl Conn {
    fn new(e: &Established, peer: SocketAddr, now: Instant, aead: AeadBackend) -> Conn {
        let (seal, open): (Arc<dyn Aead>, Box<dyn Aead>) = if e.encrypt {
            (Arc::from(aead.make(&e.send_key)), aead.make(&e.recv_key))
        } else {
            (Arc::new(PlainAead), Box::new(PlainAead))
        };
        Conn {
            session_id: e.session_id,
            seal,
            open,
            next_pn: 0,
            replay: ReplayWindow::new(),
            peer,
            last_rx: now,
            encrypt: e.encrypt,
            first_pn: None,
            max_pn: 0,
            received: 0,
            peer_info: e.peer_info.clone(),
        }
    }

    fn packets_lost(&self) -> u64 {
        match self.first_pn {
            Some(f) => (self.max_pn - f + 1).saturating_sub(self.received),
            None => 0,
        }
    }

    /// Builds a sealed datagram of `kind` with `body`.
    fn seal_datagram(&mut self, kind: Kind, body: &[u8]) -> Vec<u8> {
        let pn = self.next_pn;
        self.next_pn += 1;
        let h = Header {
            kind,
            flags: if self.encrypt { FLAG_SEALED } else { 0 },
            session_id: self.session_id,
            packet_number: pn,
        };
        let tag_len = self.seal.tag_len();
        let mut d = Vec::with_capacity(HEADER_LEN + body.len() + tag_len);
        d.extend_from_slice(&h.to_bytes());
        d.extend_from_slice(body);
        d.resize(HEADER_LEN + body.len() + tag_len, 0);
        let (hdr, rest) = d.split_at_mut(HEADER_LEN);
        let (b, tag) = rest.split_at_mut(body.len());
        self.seal.seal(pn, hdr, b, tag);
        d
    }
}

/// Datagrams to send after the state lock is released.
#[derive(Default)]
struct Outbox {
    items: Vec<(Vec<u8>, SocketAddr)>,
}

impl Outbox {
    fn push(&mut self, d: Vec<u8>, to: SocketAddr) {
        self.items.push((d, to));
    }
}

struct Attempt {
    id: u32,
    initiator: Initiator,
    sent_at: Instant,
}

/// Handshake attempts (caller) and unconfirmed sessions (listener) kept at once, so that a
/// late answer to an earlier retry still completes instead of racing the newer one.
const MAX_ATTEMPTS: usize = 4;

/// Protocol state of one session (behind the mutex).
struct State {
    conn: Option<Conn>,
    /// Listener: established but not yet confirmed by an authenticated datagram.
    pending: Vec<Conn>,
    /// Listener: the last hello and our answer, to answer duplicates identically.
    last_hello: Option<(Vec<u8>, Vec<u8>, SocketAddr)>,
    /// Caller: the handshake in flight.
    attempts: Vec<Attempt>,
    /// Caller: when we started trying to connect (for ConnectTimeout).
    connecting_since: Option<Instant>,
    connect_timeout_reported: bool,
    last_reject: Option<RejectReason>,
    last_reset_sent: Option<Instant>,
    events: VecDeque<Event>,
    closed: bool,
    epoch: Instant,
    last_ping: Instant,
    srtt: Option<Duration>,
    // Host.
    frame_index: u32,
    fec: AdaptiveFec,
    pacer: Pacer,
    input_rx: InputReceiver,
    stream_info: Option<StreamInfo>,
    // Client.
    reassembler: Reassembler,
    input_tx: InputSender,
    last_loss_report: Instant,
    last_keyframe_request: Option<Instant>,
    info_generation: u32,
    stats: Stats,
    scratch: Vec<u8>,
}

struct Inner {
    cfg: Config,
    hs: HandshakeConfig,
    transport: Box<dyn Transport>,
    state: Mutex<State>,
    ring: Mutex<RecvBatch>,
    /// Host: cuts and FEC-encodes frames, outside the state lock.
    packetizer: Mutex<Packetizer>,
    local_addr: SocketAddr,
    info: TransportInfo,
}

/// One end of a stream. See the module docs.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the stream down with a poisoned lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // getrandom only fails if the OS has no entropy source, where a fixed start is harmless.
    let _ = getrandom::fill(&mut b);
    u32::from_ne_bytes(b)
}

impl Session {
    /// Creates a session over `transport` (already bound). Callers start their handshake on
    /// the first poll; listeners wait for a hello.
    pub fn new(config: Config, transport: impl Transport + 'static) -> Result<Session> {
        config.validate()?;
        let psk = config
            .passphrase
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(Psk::from_passphrase);
        let hs = HandshakeConfig {
            role: config.role,
            psk,
            encrypt: config.encrypt,
        };
        let now = Instant::now();
        let mut stream_info = config.stream_info.clone();
        if let Some(i) = stream_info.as_mut() {
            i.generation = i.generation.max(1);
            i.mtu = config.mtu as u16;
            i.fec_scheme = FEC_SCHEME_RS8;
        }
        let state = State {
            conn: None,
            pending: Vec::new(),
            last_hello: None,
            attempts: Vec::new(),
            connecting_since: None,
            connect_timeout_reported: false,
            last_reject: None,
            last_reset_sent: None,
            events: VecDeque::new(),
            closed: false,
            epoch: now,
            last_ping: now,
            srtt: None,
            frame_index: 0,
            fec: AdaptiveFec::new(config.fec_mode, config.fec_percent, 100),
            pacer: Pacer::new(config.pacing),
            input_rx: InputReceiver::new(),
            stream_info,
            reassembler: Reassembler::new(config.reassembler, Box::new(ReedSolomon8::new())),
            input_tx: InputSender::new(config.input_queue),
            last_loss_report: now,
            last_keyframe_request: None,
            info_generation: 0,
            stats: Stats {
                role: Some(config.role),
                ..Stats::default()
            },
            scratch: Vec::new(),
        };
        let local_addr = transport.local_addr();
        let info = transport.info();
        let slot = config.mtu.max(2048);
        let ring = RecvBatch::new(config.recv_batch, slot);
        let packetizer = Packetizer::new(config.mtu, Box::new(ReedSolomon8::new()));
        Ok(Session {
            inner: Arc::new(Inner {
                cfg: config,
                hs,
                transport: Box::new(transport),
                state: Mutex::new(state),
                ring: Mutex::new(ring),
                packetizer: Mutex::new(packetizer),
                local_addr,
                info,
            }),
        })
    }

    pub fn role(&self) -> Role {
        self.inner.cfg.role
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// The bound local address (port 0 reads back the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Whether a session with a peer is established.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.state).conn.is_some()
    }

    /// The current peer, if connected.
    pub fn peer(&self) -> Option<SocketAddr> {
        lock(&self.inner.state).conn.as_ref().map(|c| c.peer)
    }

    /// Makes a blocked poll return at once.
    pub fn wake(&self) {
        self.inner.transport.wake();
    }

    fn require(&self, role: Role, what: &'static str) -> Result<()> {
        if self.inner.cfg.role == role {
            Ok(())
        } else {
            Err(Error::InvalidArg(what))
        }
    }

    /// Counters and rates.
    pub fn stats(&self) -> Stats {
        let st = lock(&self.inner.state);
        let mut s = st.stats.clone();
        s.connected = st.conn.is_some();
        s.peer = st.conn.as_ref().map(|c| c.peer);
        s.session_id = st.conn.as_ref().map_or(0, |c| c.session_id);
        s.rtt_us = st.srtt.map_or(0, |r| r.as_micros() as u64);
        s.fec_percent = st.fec.wire_percent();
        let r = st.reassembler.stats();
        if self.inner.cfg.role == Role::Client {
            s.frames_received = r.frames_delivered;
            s.frames_lost = r.frames_lost;
            s.fec_recovered = r.shards_recovered;
            s.shards_duplicate = r.shards_duplicate;
            s.shards_late = r.shards_late;
            s.shards_invalid = r.shards_invalid;
            s.memory_in_use = r.memory_in_use as u64;
            s.memory_peak = r.memory_peak as u64;
            if let Some(c) = st.conn.as_ref() {
                s.packets_lost = s.packets_lost_before + c.packets_lost();
            }
        }
        s.send_buffer = self.inner.info.send_buffer as u64;
        s.recv_buffer = self.inner.info.recv_buffer as u64;
        s.gso = self.inner.info.gso;
        s
    }

    // ----- host -----

    /// Host: sets (or changes) the stream info; a connected client gets it at once.
    pub fn set_stream_info(&self, caps: &str) -> Result<()> {
        self.require(Role::Host, "set_stream_info is for the host")?;
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.inner.state);
            let generation = st.stream_info.as_ref().map_or(0, |i| i.generation) + 1;
            if st.stream_info.as_ref().is_some_and(|i| i.caps == caps) {
                return Ok(());
            }
            let info = StreamInfo {
                caps: caps.to_owned(),
                mtu: self.inner.cfg.mtu as u16,
                fec_scheme: FEC_SCHEME_RS8,
                generation,
            };
            st.stream_info = Some(info.clone());
            send_control(&mut st, &Control::StreamInfo(info), &mut out);
        }
        self.flush(out)
    }

    /// Host: packetizes, FEC-protects and seals a frame without sending it. `None` when no
    /// client is connected (the frame is counted as dropped).
    pub fn seal_frame(&self, data: &[u8], keyframe: bool) -> Result<Option<SealedFrame>> {
        self.seal_frame_into(data, keyframe, Datagrams::new())
    }

    /// Like [`Session::seal_frame`], reusing a buffer from [`SealedFrame::into_buffer`].
    pub fn seal_frame_into(
        &self,
        data: &[u8],
        keyframe: bool,
        mut buf: Datagrams,
    ) -> Result<Option<SealedFrame>> {
        self.require(Role::Host, "seal_frame is for the host")?;
        let now = Instant::now();
        // Frames are cut one at a time; the state lock is held only to reserve packet numbers,
        // so the receive thread is never kept waiting by packetizing, FEC or sealing.
        let mut packetizer = lock(&self.inner.packetizer);
        let (params, seal, peer) = {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Err(Error::Closed);
            }
            let fec_percent = st.fec.wire_percent();
            let frame_index = st.frame_index;
            let Some(conn) = st.conn.as_mut() else {
                st.stats.frames_dropped_no_peer += 1;
                return Ok(None);
            };
            let seal = conn.seal.clone();
            let plan = packetizer
                .plan(data.len(), fec_percent, seal.tag_len())
                .map_err(Error::Packetize)?;
            let params = FrameParams {
                frame_index,
                keyframe,
                fec_percent,
                session_id: conn.session_id,
                first_packet_number: conn.next_pn,
                sealed: conn.encrypt,
                tag_len: seal.tag_len(),
            };
            conn.next_pn += plan.count as u64;
            let peer = conn.peer;
            st.frame_index = st.frame_index.wrapping_add(1);
            st.pacer.observe_frame(data.len(), now);
            st.stats.frames_sent += 1;
            if keyframe {
                st.stats.keyframes_sent += 1;
            }
            (params, seal, peer)
        };
        packetizer
            .packetize(data, &params, &mut buf)
            .map_err(Error::Packetize)?;
        packetizer
            .encode_parity(params.fec_percent, &mut buf)
            .map_err(Error::Packetize)?;
        drop(packetizer);
        seal_all(&mut buf, &*seal);
        Ok(Some(SealedFrame {
            datagrams: buf,
            peer,
            keyframe,
            payload_bytes: data.len(),
        }))
    }

    /// Host: sends a sealed frame, paced: a small burst at once, then chunks spread over part
    /// of the frame interval. Returns when the last chunk is handed to the transport.
    pub fn send_sealed(&self, frame: &SealedFrame) -> Result<SendReport> {
        self.require(Role::Host, "send_sealed is for the host")?;
        let d = &frame.datagrams;
        let now = Instant::now();
        let schedule = {
            let mut st = lock(&self.inner.state);
            st.pacer.schedule(d.wire_bytes(), d.len(), now)
        };
        let mut report = SendReport::default();
        let mut refs: Vec<&[u8]> = Vec::with_capacity(64);
        for (range, at) in schedule.chunks() {
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            refs.clear();
            refs.extend(range.map(|i| d.get(i)));
            match self.inner.transport.send(&refs, frame.peer) {
                Ok(o) => {
                    report.sent += o.sent;
                    report.dropped += o.dropped;
                }
                Err(e) => {
                    // A refused or unreachable peer is not fatal for a stream: count and go on.
                    report.dropped += refs.len();
                    let mut st = lock(&self.inner.state);
                    st.stats.send_errors += 1;
                    st.stats.last_send_error = Some(e.to_string());
                }
            }
        }
        let mut st = lock(&self.inner.state);
        st.stats.packets_sent += report.sent as u64;
        st.stats.bytes_sent += (report.sent * d.datagram_len()) as u64;
        st.stats.payload_bytes_sent += frame.payload_bytes as u64;
        st.stats.send_drops += report.dropped as u64;
        Ok(report)
    }

    /// Host: seal and send in one go. `Ok(None)` when no client is connected.
    pub fn submit_frame(&self, data: &[u8], keyframe: bool) -> Result<Option<SendReport>> {
        match self.seal_frame(data, keyframe)? {
            Some(f) => self.send_sealed(&f).map(Some),
            None => Ok(None),
        }
    }

    /// Host: waits up to `timeout` for the next event (input, keyframe request, peer changes),
    /// running the protocol's timers meanwhile.
    pub fn poll_input(&self, timeout: Duration) -> Result<Option<Event>> {
        self.require(Role::Host, "poll_input is for the host")?;
        self.poll_event(timeout)
    }

    // ----- client -----

    /// Client: waits up to `timeout` for the next event (frames, stream info, losses, EOS).
    pub fn poll_frame(&self, timeout: Duration) -> Result<Option<Event>> {
        self.require(Role::Client, "poll_frame is for the client")?;
        self.poll_event(timeout)
    }

    /// Client: queues an input event for reliable, ordered delivery and sends it at once.
    pub fn send_input(&self, ev: InputEvent) -> Result<()> {
        self.require(Role::Client, "send_input is for the client")?;
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Err(Error::Closed);
            }
            if st.input_tx.push(ev).is_err() {
                st.stats.input_dropped += 1;
                return Err(Error::InvalidArg("input queue full"));
            }
            st.stats.input_sent += 1;
            let now = Instant::now();
            transmit_input(&mut st, self.inner.cfg.mtu, now, &mut out);
        }
        self.flush(out)
    }

    /// Client: asks the host for a keyframe, at most once per `keyframe_request_interval`.
    /// Returns whether a request went out.
    pub fn request_keyframe(&self) -> Result<bool> {
        self.require(Role::Client, "request_keyframe is for the client")?;
        let mut out = Outbox::default();
        let sent = {
            let mut st = lock(&self.inner.state);
            let now = Instant::now();
            let due = st
                .last_keyframe_request
                .is_none_or(|t| now.duration_since(t) >= self.inner.cfg.keyframe_request_interval);
            if due && st.conn.is_some() {
                st.last_keyframe_request = Some(now);
                st.stats.keyframe_requests += 1;
                send_control(&mut st, &Control::KeyframeRequest, &mut out);
                true
            } else {
                false
            }
        };
        self.flush(out)?;
        Ok(sent)
    }

    // ----- both -----

    /// Says bye to the peer (the host's bye ends the client's stream) and stops the session.
    pub fn close(&self) -> Result<()> {
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Ok(());
            }
            st.closed = true;
            for _ in 0..BYE_COPIES {
                send_control(&mut st, &Control::Bye, &mut out);
            }
            st.conn = None;
            st.pending.clear();
        }
        let r = self.flush(out);
        self.wake();
        r
    }

    fn flush(&self, out: Outbox) -> Result<()> {
        for (d, to) in out.items {
            match self.inner.transport.send(&[&d], to) {
                Ok(o) => {
                    let mut st = lock(&self.inner.state);
                    st.stats.packets_sent += o.sent as u64;
                    st.stats.bytes_sent += (o.sent * d.len()) as u64;
                    st.stats.send_drops += o.dropped as u64;
                }
                Err(e) => {
                    let mut st = lock(&self.inner.state);
                    st.stats.send_errors += 1;
                    st.stats.last_send_error = Some(e.to_string());
                }
            }
        }
        Ok(())
    }

    fn poll_event(&self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            // Drain what already waits in the socket before running timers: a receiver that
            // was descheduled must not give up a frame whose shards sit in its own buffer.
            // Bounded, so that a flood cannot starve the timers.
            if !lock(&self.inner.state).events.is_empty() {
                return Ok(lock(&self.inner.state).events.pop_front());
            }
            for _ in 0..MAX_DRAIN_BATCHES {
                if self.receive(Some(Duration::ZERO))? == 0 {
                    break;
                }
            }
            let now = Instant::now();
            let (next, closed) = {
                let mut out = Outbox::default();
                let mut st = lock(&self.inner.state);
                let next = self.on_timers(&mut st, now, &mut out);
                if let Some(ev) = st.events.pop_front() {
                    drop(st);
                    self.flush(out)?;
                    return Ok(Some(ev));
                }
                let closed = st.closed;
                drop(st);
                self.flush(out)?;
                (next, closed)
            };
            if closed {
                return Err(Error::Closed);
            }
            if now >= deadline {
                return Ok(None);
            }
            let wait = next.min(deadline).saturating_duration_since(now);
            if self.receive(Some(wait))? == 0 && Instant::now() < next.min(deadline) {
                // A wake-up ends the poll so the caller can look around.
                return Ok(None);
            }
        }
    }

    /// One receive call into the ring, processed. Returns the number of datagrams.
    fn receive(&self, wait: Option<Duration>) -> Result<usize> {
        let mut ring = lock(&self.inner.ring);
        let n = self.inner.transport.recv(&mut ring, wait)?;
        if n == 0 {
            return Ok(0);
        }
        let now = Instant::now();
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.inner.state);
            for i in 0..ring.len() {
                let (buf, from) = ring.get_mut(i);
                st.stats.packets_received += 1;
                st.stats.bytes_received += buf.len() as u64;
                self.on_datagram(&mut st, buf, from, now, &mut out);
            }
        }
        drop(ring);
        self.flush(out)?;
        Ok(n)
    }

    /// Runs every timer that is due; returns when the next one is.
    fn on_timers(&self, st: &mut State, now: Instant, out: &mut Outbox) -> Instant {
        let cfg = &self.inner.cfg;
        let mut next = now + cfg.keepalive;
        if st.closed {
            return next;
        }
        // Peer timeout.
        if let Some(c) = st.conn.as_ref()
            && now.saturating_duration_since(c.last_rx) >= cfg.timeout
        {
            self.drop_conn(st, DisconnectReason::Timeout);
        }
        st.pending
            .retain(|p| now.saturating_duration_since(p.last_rx) < cfg.timeout);
        // Caller: (re)connect.
        if cfg.mode == Mode::Caller && st.conn.is_none() {
            let since = *st.connecting_since.get_or_insert(now);
            if !st.connect_timeout_reported && now.duration_since(since) >= cfg.timeout {
                st.connect_timeout_reported = true;
                st.events.push_back(Event::ConnectTimeout);
            }
            let due = st
                .attempts
                .last()
                .is_none_or(|a| now.duration_since(a.sent_at) >= cfg.handshake_retry);
            if due {
                self.start_attempt(st, now, out);
            }
            if let Some(a) = st.attempts.last() {
                next = next.min(a.sent_at + cfg.handshake_retry);
            }
            return next;
        }
        let Some(conn) = st.conn.as_ref() else {
            return next;
        };
        next = next.min(conn.last_rx + cfg.timeout);
        // Keep-alive / RTT.
        if now.duration_since(st.last_ping) >= cfg.keepalive {
            st.last_ping = now;
            let id = now.duration_since(st.epoch).as_micros() as u64;
            send_control(st, &Control::Ping { id }, out);
        }
        next = next.min(st.last_ping + cfg.keepalive);
        match cfg.role {
            Role::Client => {
                if now.duration_since(st.last_loss_report) >= cfg.loss_report_interval {
                    st.last_loss_report = now;
                    let report = self.loss_report(st);
                    send_control(st, &Control::LossReport(report), out);
                }
                next = next.min(st.last_loss_report + cfg.loss_report_interval);
                transmit_input(st, cfg.mtu, now, out);
                if let Some(t) = st.input_tx.next_timeout(rto(st.srtt)) {
                    next = next.min(t);
                }
                st.reassembler.handle_timeout(now);
                self.drain_reassembler(st);
                if let Some(t) = st.reassembler.next_timeout() {
                    next = next.min(t);
                }
            }
            Role::Host => {}
        }
        next.max(now)
    }

    fn loss_report(&self, st: &State) -> LossReport {
        let r = st.reassembler.stats();
        let (received, lost) = st
            .conn
            .as_ref()
            .map_or((0, 0), |c| (c.received, c.packets_lost()));
        LossReport {
            packets_received: received,
            packets_lost: lost,
            packets_recovered: r.shards_recovered,
            frames_lost: r.frames_lost,
            frames_delivered: r.frames_delivered,
            info_generation: st.info_generation,
        }
    }

    fn start_attempt(&self, st: &mut State, now: Instant, out: &mut Outbox) {
        let Some(peer) = self.inner.cfg.peer else {
            return;
        };
        let info = if self.inner.cfg.role == Role::Host {
            st.stream_info.clone()
        } else {
            None
        };
        match Initiator::start(&self.inner.hs, info.as_ref()) {
            Ok((initiator, body)) => {
                let attempt_id = random_u32();
                let h = Header {
                    kind: Kind::HandshakeInit,
                    flags: 0,
                    session_id: attempt_id,
                    packet_number: 0,
                };
                let mut d = h.to_bytes().to_vec();
                d.extend_from_slice(&body);
                out.push(d, peer);
                st.stats.handshakes_sent += 1;
                if st.attempts.len() == MAX_ATTEMPTS {
                    st.attempts.remove(0);
                }
                st.attempts.push(Attempt {
                    id: attempt_id,
                    initiator,
                    sent_at: now,
                });
            }
            Err(_) => {
                st.stats.handshake_failures += 1;
            }
        }
    }

    fn drop_conn(&self, st: &mut State, reason: DisconnectReason) {
        if let Some(c) = st.conn.take() {
            st.stats.packets_lost_before += c.packets_lost();
            st.events.push_back(Event::Disconnected { reason });
            st.reassembler.reset();
            st.input_rx = InputReceiver::new();
            st.attempts.clear();
            st.connecting_since = None;
            st.connect_timeout_reported = false;
        }
    }

    /// A new session with the peer is confirmed: make it current.
    fn install(&self, st: &mut State, mut conn: Conn, now: Instant, out: &mut Outbox) {
        let replaced = st.conn.is_some();
        if replaced {
            self.drop_conn(st, DisconnectReason::Replaced);
        }
        let peer = conn.peer;
        let session_id = conn.session_id;
        let conn_info = conn.peer_info.take();
        st.conn = Some(conn);
        st.attempts.clear();
        st.connecting_since = None;
        st.connect_timeout_reported = false;
        st.last_reject = None;
        st.stats.handshakes_completed += 1;
        st.reassembler.reset();
        st.input_rx = InputReceiver::new();
        st.input_tx = InputSender::new(self.inner.cfg.input_queue);
        st.info_generation = 0;
        st.frame_index = self
            .inner
            .cfg
            .initial_frame_index
            .unwrap_or_else(random_u32);
        st.events.push_back(Event::Connected { peer, session_id });
        if let Some(info) = conn_info {
            self.on_stream_info(st, info);
        }
        // Confirm to the peer at once (a listener waits for this) and start RTT measurement.
        st.last_ping = now;
        let id = now.duration_since(st.epoch).as_micros() as u64;
        send_control(st, &Control::Ping { id }, out);
        if self.inner.cfg.role == Role::Host
            && let Some(info) = st.stream_info.clone()
        {
            send_control(st, &Control::StreamInfo(info), out);
        }
    }

    fn on_datagram(
        &self,
        st: &mut State,
        buf: &mut [u8],
        from: SocketAddr,
        now: Instant,
        out: &mut Outbox,
    ) {
        if st.closed {
            return;
        }
        let Ok((h, _)) = Header::decode(buf) else {
            st.stats.invalid_datagrams += 1;
            return;
        };
        match h.kind {
            Kind::HandshakeInit => self.on_hello(st, &h, buf, from, now, out),
            Kind::HandshakeResponse => self.on_response(st, buf, now, out),
            Kind::Reject => {
                if self.inner.cfg.mode == Mode::Caller
                    && st.conn.is_none()
                    && let Some(&b) = buf.get(HEADER_LEN)
                    && let Ok(reason) = RejectReason::from_u8(b)
                    && st.last_reject != Some(reason)
                {
                    st.last_reject = Some(reason);
                    st.stats.rejects_received += 1;
                    st.events.push_back(Event::Rejected { reason });
                }
            }
            Kind::Reset => {
                if self.inner.cfg.mode == Mode::Caller
                    && let Some(c) = st.conn.as_ref()
                    && c.session_id == h.session_id
                    && now.saturating_duration_since(c.last_rx) >= RESET_QUIET
                {
                    st.stats.resets_received += 1;
                    self.drop_conn(st, DisconnectReason::Replaced);
                    self.start_attempt(st, now, out);
                }
            }
            Kind::Video | Kind::Control | Kind::Input => {
                self.on_session_datagram(st, &h, buf, from, now, out)
            }
        }
    }

    fn on_hello(
        &self,
        st: &mut State,
        h: &Header,
        buf: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut Outbox,
    ) {
        if self.inner.cfg.mode != Mode::Listener {
            st.stats.invalid_datagrams += 1;
            return;
        }
        let body = &buf[HEADER_LEN..];
        if let Some((hello, resp, addr)) = st.last_hello.as_ref()
            && *addr == from
            && hello == body
        {
            // A duplicate of the hello we answered: answer the same way.
            out.push(resp.clone(), from);
            return;
        }
        let info = if self.inner.cfg.role == Role::Host {
            st.stream_info.clone()
        } else {
            None
        };
        match handshake::respond(&self.inner.hs, body, info.as_ref()) {
            Ok((est, resp_body)) => {
                let rh = Header {
                    kind: Kind::HandshakeResponse,
                    flags: 0,
                    session_id: h.session_id,
                    packet_number: 0,
                };
                let mut d = rh.to_bytes().to_vec();
                d.extend_from_slice(&resp_body);
                st.last_hello = Some((body.to_vec(), d.clone(), from));
                out.push(d, from);
                if st.pending.len() == MAX_ATTEMPTS {
                    st.pending.remove(0);
                }
                st.pending
                    .push(Conn::new(&est, from, now, self.inner.cfg.aead));
            }
            Err(e) => {
                st.stats.handshake_failures += 1;
                if matches!(
                    e,
                    HandshakeError::Auth | HandshakeError::Refused(RejectReason::BadPassphrase)
                ) {
                    st.stats.auth_failures += 1;
                }
                st.events.push_back(Event::HandshakeFailed {
                    from,
                    reason: e.to_string(),
                });
                if let HandshakeError::Refused(reason) = e {
                    let rh = Header {
                        kind: Kind::Reject,
                        flags: 0,
                        session_id: h.session_id,
                        packet_number: 0,
                    };
                    let mut d = rh.to_bytes().to_vec();
                    d.push(reason as u8);
                    out.push(d, from);
                }
            }
        }
    }

    fn on_response(&self, st: &mut State, buf: &[u8], now: Instant, out: &mut Outbox) {
        if self.inner.cfg.mode != Mode::Caller || st.conn.is_some() {
            return;
        }
        let Ok((h, _)) = Header::decode(buf) else {
            return;
        };
        let Some(pos) = st.attempts.iter().position(|a| a.id == h.session_id) else {
            st.stats.handshake_failures += 1;
            return;
        };
        let attempt = st.attempts.remove(pos);
        let Some(peer) = self.inner.cfg.peer else {
            return;
        };
        match attempt.initiator.finish(&buf[HEADER_LEN..]) {
            Ok(est) => {
                let conn = Conn::new(&est, peer, now, self.inner.cfg.aead);
                self.install(st, conn, now, out);
            }
            Err(e) => {
                // A stale response to an earlier attempt, or a forgery; keep trying.
                st.stats.handshake_failures += 1;
                if e == HandshakeError::Auth {
                    st.stats.auth_failures += 1;
                }
            }
        }
    }

    fn on_stream_info(&self, st: &mut State, info: StreamInfo) {
        if self.inner.cfg.role != Role::Client || info.generation <= st.info_generation {
            return;
        }
        st.info_generation = info.generation;
        st.events.push_back(Event::StreamInfo(info));
    }

    fn on_session_datagram(
        &self,
        st: &mut State,
        h: &Header,
        buf: &mut [u8],
        from: SocketAddr,
        now: Instant,
        out: &mut Outbox,
    ) {
        let in_conn = st
            .conn
            .as_ref()
            .is_some_and(|c| c.session_id == h.session_id);
        let pending_pos = if in_conn {
            None
        } else {
            st.pending.iter().position(|c| c.session_id == h.session_id)
        };
        if !in_conn && pending_pos.is_none() {
            st.stats.unknown_session += 1;
            // Tell a caller whose session we do not know to start again (rate-limited).
            if self.inner.cfg.mode == Mode::Listener
                && st
                    .last_reset_sent
                    .is_none_or(|t| now.duration_since(t) >= RESET_RATE)
            {
                st.last_reset_sent = Some(now);
                let rh = Header {
                    kind: Kind::Reset,
                    flags: 0,
                    session_id: h.session_id,
                    packet_number: 0,
                };
                out.push(rh.to_bytes().to_vec(), from);
            }
            return;
        }
        let conn = match pending_pos {
            None => st.conn.as_mut(),
            Some(p) => st.pending.get_mut(p),
        };
        let Some(conn) = conn else { return };
        if h.sealed() != conn.encrypt {
            st.stats.invalid_datagrams += 1;
            return;
        }
        if conn.replay.check(h.packet_number).is_err() {
            st.stats.replays_rejected += 1;
            return;
        }
        let tag_len = conn.open.tag_len();
        if buf.len() < HEADER_LEN + tag_len {
            st.stats.invalid_datagrams += 1;
            return;
        }
        let body_end = buf.len() - tag_len;
        let (hdr, rest) = buf.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(body_end - HEADER_LEN);
        if conn.open.open(h.packet_number, hdr, body, tag).is_err() {
            st.stats.auth_failures += 1;
            return;
        }
        conn.replay.commit(h.packet_number);
        conn.last_rx = now;
        // Authenticated: the peer may have moved (NAT rebinding); follow it.
        if conn.encrypt {
            conn.peer = from;
        }
        conn.received += 1;
        conn.max_pn = conn.max_pn.max(h.packet_number);
        if conn.first_pn.is_none_or(|f| h.packet_number < f) {
            conn.first_pn = Some(h.packet_number);
        }
        if let Some(p) = pending_pos {
            // Confirmed: this one becomes the session, the other candidates are dropped.
            let conn = st.pending.swap_remove(p);
            st.pending.clear();
            self.install(st, conn, now, out);
        }
        let body = &buf[HEADER_LEN..body_end];
        match (h.kind, self.inner.cfg.role) {
            (Kind::Video, Role::Client) => {
                let _ = st.reassembler.push(body, now);
                self.drain_reassembler(st);
            }
            (Kind::Control, _) => match Control::decode(body) {
                Ok(c) => self.on_control(st, c, now, out),
                Err(_) => st.stats.invalid_datagrams += 1,
            },
            (Kind::Input, Role::Host) => {
                let State {
                    input_rx, events, ..
                } = st;
                match input_rx.on_body(body, &mut |ev| events.push_back(Event::Input(ev))) {
                    Ok(n) => {
                        st.stats.input_received += n as u64;
                        let next_expected = st.input_rx.next_expected();
                        send_control(st, &Control::InputAck { next_expected }, out);
                    }
                    Err(_) => st.stats.invalid_datagrams += 1,
                }
            }
            _ => st.stats.invalid_datagrams += 1,
        }
    }

    fn on_control(&self, st: &mut State, c: Control, now: Instant, out: &mut Outbox) {
        let role = self.inner.cfg.role;
        match c {
            Control::Ping { id } => send_control(st, &Control::Pong { id }, out),
            Control::Pong { id } => {
                let sent = st.epoch + Duration::from_micros(id);
                if sent <= now {
                    let sample = now - sent;
                    st.srtt = Some(match st.srtt {
                        Some(s) => (s * 7 + sample) / 8,
                        None => sample,
                    });
                }
            }
            Control::KeyframeRequest if role == Role::Host => {
                st.stats.keyframe_requests += 1;
                st.events.push_back(Event::KeyframeRequest);
            }
            Control::LossReport(r) if role == Role::Host => {
                st.fec
                    .on_loss_report(r.packets_received, r.packets_lost, now);
                st.stats.peer_packets_lost = r.packets_lost;
                st.stats.peer_packets_received = r.packets_received;
                st.stats.peer_frames_lost = r.frames_lost;
                st.stats.fec_recovered = r.packets_recovered;
                // Resend the stream info until the client holds the current generation (a
                // lost update is repeated at the loss-report rate, ~10 per second).
                if let Some(info) = st.stream_info.clone()
                    && r.info_generation != info.generation
                {
                    send_control(st, &Control::StreamInfo(info), out);
                }
                st.events.push_back(Event::LossReport(r));
            }
            Control::StreamInfo(info) if role == Role::Client => self.on_stream_info(st, info),
            Control::InputAck { next_expected } if role == Role::Client => {
                st.input_tx.on_ack(next_expected)
            }
            Control::Bye => {
                st.stats.byes_received += 1;
                if role == Role::Client {
                    st.events.push_back(Event::EndOfStream);
                }
                self.drop_conn(st, DisconnectReason::Bye);
            }
            _ => st.stats.invalid_datagrams += 1,
        }
    }

    fn drain_reassembler(&self, st: &mut State) {
        while let Some(o) = st.reassembler.poll() {
            match o {
                Output::Frame(f) => st.events.push_back(Event::Frame(f)),
                Output::Lost { count, .. } => st.events.push_back(Event::FramesLost { count }),
            }
        }
    }
}

fn rto(srtt: Option<Duration>) -> Duration {
    match srtt {
        Some(s) => (s + s / 4 + Duration::from_millis(2)).clamp(MIN_RTO, MAX_RTO),
        None => INITIAL_RTO,
    }
}

fn send_control(st: &mut State, c: &Control, out: &mut Outbox) {
    let Some(conn) = st.conn.as_mut() else {
        return;
    };
    st.scratch.clear();
    c.encode(&mut st.scratch);
    let d = conn.seal_datagram(Kind::Control, &st.scratch);
    out.push(d, conn.peer);
}

fn transmit_input(st: &mut State, mtu: usize, now: Instant, out: &mut Outbox) {
    let rto = rto(st.srtt);
    let Some(conn) = st.conn.as_mut() else {
        return;
    };
    let max = mtu - HEADER_LEN - TAG_LEN;
    // A few datagrams per call at most: the rest follows on the next timer.
    for _ in 0..8 {
        if !st.input_tx.poll_transmit(now, rto, max, &mut st.scratch) {
            break;
        }
        let d = conn.seal_datagram(Kind::Input, &st.scratch);
        out.push(d, conn.peer);
    }
}
