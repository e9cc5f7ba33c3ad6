//! The session's state machine, sans-IO: one end of a stream as a value fed with datagrams and
//! instants, in the style of quinn-proto's `Connection` and str0m's `Rtc`.
//!
//! A [`Connection`] owns connection establishment (Noise handshake attempts, pending
//! confirmations, duplicate hellos, rejects and resets), keep-alive and RTT, the peer timeout,
//! restarts of either side, loss reports, stream-info updates and their resend, reliable input,
//! the keyframe-request throttle, bye, and the counters in [`Stats`]. It never reads a clock,
//! touches a socket, spawns a thread or sleeps: every method that needs the time takes `now`,
//! and everything it wants sent comes out of [`Connection::poll_transmit`]. So handshakes,
//! restarts, timeouts and loss can be tested on virtual time, thousands of virtual seconds in
//! milliseconds, and fuzzed without a wall clock.
//!
//! The driver ([`super::Session`]) calls, in a loop:
//! 1. [`Connection::handle_datagram`] for every datagram received (drain what waits first),
//! 2. [`Connection::handle_timeout`] once [`Connection::poll_timeout`] has passed,
//! 3. [`Connection::poll_transmit`] until `None`, sending each [`Transmit`],
//! 4. [`Connection::poll_event`] until `None`, handing each [`Event`] to the user,
//!
//! and additionally the entry points of its role: the host reserves a frame with
//! [`Connection::begin_frame`] (cheap, under the driver's lock) and cuts, FEC-encodes and seals
//! it with the returned [`FrameTicket`] outside that lock; the client calls
//! [`Connection::send_input`] and [`Connection::request_keyframe`].
//!
//! Where things live: `side` (the one role's state: [`side::HostState`] or
//! [`side::ClientState`], never both), `establish` (hellos, responses, rejects, resets,
//! confirmation, install and drop of a session), `link` (one established cryptographic
//! session: keys, packet numbers, replay window), `host` (frames, stream info, what the client
//! reports), `client` (video in, input out, loss reports, keyframe requests), `repair` (the
//! client's repair requests and windows, the host's answers), `timers` (timeout, keep-alive,
//! RTT, retries), `ids` (attempt ids and frame indices, seedable), `frame_clock` (the host
//! clock, the frame timing the host writes, the NTP-style clock offset and the client's frame
//! ages), `congestion` (bandwidth feedback out on the client, the estimator, pacing rate and
//! [`Event::Bandwidth`] on the host), `migrate` (path validation against forwarders), `slot`
//! (one peer: a newcomer is refused while the current peer answers a probe), `stall` (the
//! client notices video that stopped while the host says it sends), `keyframe` (keyframe
//! requests by frame index: what the client names, how the host coalesces them), `guard`
//! (admission, refusals, throttles). New session-level features go beside their role: what is
//! measured and sent into `client`, what is done with it into `host`, the state either keeps
//! into its [`Side`] variant; path validation and cookies into `establish`, new periodic work
//! into `timers`.
//!
//! Must never: read the clock, block, allocate without bound on untrusted input, or panic on
//! bytes from the network (every datagram is checked, counted and dropped if unusable).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::protocol::control::{Control, StreamInfo};
use crate::protocol::fec::report::LossReport;
use crate::protocol::input::InputEvent;
use crate::protocol::media::reassembler::Frame;
use crate::protocol::security::handshake::{HandshakeConfig, HandshakeError, Psk, Role};
use crate::protocol::wire::{
    FEC_SCHEME_RS8, HEADER_LEN, Header, KIND_COOKIE_REPLY, Kind, RejectReason, WireError,
};

use super::{Config, Error, Mode, Result, Stats};

mod audio;
mod client;
mod congestion;
mod demux;
mod establish;
mod frame_clock;
mod guard;
mod host;
mod ids;
mod keyframe;
mod link;
mod migrate;
mod repair;
mod side;
mod slot;
mod stall;
mod timers;

pub use crate::protocol::audio::AudioPacket;
pub use audio::MAX_AUDIO_EVENTS;
pub use congestion::{BandwidthUpdate, CongestionConfig};
pub use frame_clock::{FRAME_AGE_SPAN, FrameTimingIn};
pub use guard::{
    INPUT_EVENTS_BURST, INPUT_EVENTS_PER_SECOND, KEYFRAME_REQUEST_MIN_INTERVAL,
    MAX_INPUT_EVENTS_PER_DATAGRAM, REJECT_SERIES_COUNT, REJECT_SERIES_GAP, REJECT_SERIES_SPAN,
};
pub use host::{FrameTicket, SealedFrame};
pub use keyframe::{KEYFRAME_PENDING_FOR, LOST_KEYFRAME_MIN_INTERVAL};
pub use slot::{PEER_ALIVE_FOR, PEER_PROBE_MAX, PEER_PROBE_MIN};
pub use stall::{MEDIA_STALL_AFTER, MEDIA_STALL_MIN_FRAMES, MEDIA_STALL_RECONNECT};

use establish::{Attempt, LastHello};
use ids::Ids;
use link::Link;
use side::{ClientState, HostState, Side};

/// Bye is sent this many times (it is not retransmitted).
const BYE_COPIES: usize = 5;

/// Why a peer went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Nothing heard for `Config::timeout`.
    Timeout,
    /// The peer said bye.
    Bye,
    /// The peer restarted or another peer took over.
    Replaced,
    /// Client: the host kept reporting frames sent but no video arrived for
    /// [`MEDIA_STALL_RECONNECT`] after the stall was reported; a new handshake follows.
    MediaStalled,
}

/// Why a listener refused a hello (see [`Event::HandshakeFailed`]). Its `Display` words the
/// reason from the listener's side, ready for a log line or an element warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Refused for a reason the caller was told in a Reject.
    Refused(RejectReason),
    /// The hello did not authenticate (forged or tampered; without a passphrase on our side).
    Unauthenticated,
    /// The hello was malformed.
    Malformed(WireError),
    /// The crypto library failed (should not happen).
    Internal,
    /// The hello was too old, from the future, or a replay of one already answered.
    Stale,
    /// The peer's key confirmation failed: the passphrases differ.
    WrongPassphrase,
    /// We answered a hello but the caller never confirmed the session. With a passphrase set
    /// this is what a wrong passphrase looks like from the listener's side.
    Unconfirmed {
        /// Whether a passphrase is set on our side.
        passphrase: bool,
    },
    /// The hello went unanswered: the guessing budget (see [`crate::protocol::security::guessing`]) is
    /// spent for this address (`unconfirmed` answers to it in a row were never confirmed) or,
    /// with `global`, for all addresses together. Passphrase guessing, or a client with a
    /// wrong passphrase that keeps retrying.
    GuessLimit {
        /// Unconfirmed answers to this address in a row.
        unconfirmed: u32,
        /// The budget of all addresses together is spent, not only this address's.
        global: bool,
    },
}

impl From<HandshakeError> for HandshakeFailure {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Refused(r) => HandshakeFailure::Refused(r),
            HandshakeError::Auth => HandshakeFailure::Unauthenticated,
            HandshakeError::Wire(w) => HandshakeFailure::Malformed(w),
            HandshakeError::Internal => HandshakeFailure::Internal,
            HandshakeError::Stale => HandshakeFailure::Stale,
            HandshakeError::KeyConfirmation => HandshakeFailure::WrongPassphrase,
        }
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailure::Refused(r) => f.write_str(match r {
                RejectReason::BadPassphrase => "wrong passphrase",
                RejectReason::PassphraseMismatch => {
                    "one side has a passphrase and the other has none"
                }
                RejectReason::EncryptMismatch => "one side has encrypt=false and the other not",
                RejectReason::RoleMismatch => "both ends are senders or both are receivers",
                RejectReason::Busy => "it already serves another peer",
            }),
            HandshakeFailure::Unauthenticated => f.write_str("handshake failed to authenticate"),
            HandshakeFailure::Malformed(e) => write!(f, "malformed handshake: {e}"),
            HandshakeFailure::Internal => f.write_str("handshake crypto error"),
            HandshakeFailure::Stale => f.write_str("stale or replayed hello"),
            HandshakeFailure::WrongPassphrase => f.write_str("wrong passphrase"),
            HandshakeFailure::Unconfirmed { passphrase: true } => f.write_str(
                "the caller never confirmed the session: most likely a wrong passphrase \
                 (or its datagrams are lost)",
            ),
            HandshakeFailure::Unconfirmed { passphrase: false } => {
                f.write_str("the caller never confirmed the session (its datagrams are lost)")
            }
            HandshakeFailure::GuessLimit {
                unconfirmed,
                global: false,
            } => write!(
                f,
                "{unconfirmed} handshakes in a row with this address were never confirmed \
                 (passphrase guessing, or a wrong passphrase): its hellos wait for a back-off"
            ),
            HandshakeFailure::GuessLimit { global: true, .. } => f.write_str(
                "too many unconfirmed handshakes from many addresses (passphrase guessing?): \
                 hellos from unknown addresses are answered about once a second",
            ),
        }
    }
}

/// What a connection has to tell its user.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A session with a peer is up (also after a restart of either side).
    Connected {
        /// The peer's address.
        peer: SocketAddr,
        /// The new session's id (on the wire in every datagram).
        session_id: u32,
    },
    /// The peer is gone.
    Disconnected {
        /// Why it went away.
        reason: DisconnectReason,
    },
    /// Caller: the listener refused our hello (a clear hint; retries go on).
    Rejected {
        /// The reason the listener gave (unauthenticated: a hint, not proof).
        reason: RejectReason,
    },
    /// Listener: a hello was refused (wrong passphrase, mismatched settings), with the reason.
    HandshakeFailed {
        /// Where the hello came from.
        from: SocketAddr,
        /// Why it was refused.
        reason: HandshakeFailure,
    },
    /// Caller: no session after `Config::timeout` of trying (retries go on).
    ConnectTimeout,
    /// Client: a whole access unit.
    Frame(Frame),
    /// Client: frames given up (the next frame will carry `discont`).
    FramesLost {
        /// How many frames were given up.
        count: u32,
    },
    /// Client: stream info, first or updated.
    StreamInfo(StreamInfo),
    /// Client: the host announced (or changed) its audio stream: the caps string it set with
    /// `set_audio_info`. Comes with the other events, before the audio it describes.
    AudioInfo(String),
    /// Client: one audio packet, in sequence order (only from [`Connection::poll_audio_event`]).
    Audio(AudioPacket),
    /// Client: `count` audio packets given up, about `duration_us` of sound (a decoder
    /// conceals it); only from [`Connection::poll_audio_event`].
    AudioLost {
        /// How many packets were given up.
        count: u32,
        /// About how much sound they held, in µs.
        duration_us: u64,
    },
    /// Client: the host ended the stream.
    EndOfStream,
    /// Host: an input event from the client, in order, exactly once.
    Input(InputEvent),
    /// Host: the client asks for a keyframe.
    KeyframeRequest,
    /// Host: the client's latest loss report (reception counters and loss model).
    LossReport(LossReport),
    // Security.
    /// Caller: the listener kept refusing for the same reason: `count` refusals (each for a
    /// different live attempt, from the configured peer) over at least
    /// its `Config::timeout` (at least [`REJECT_SERIES_SPAN`]). A user may give up now; the
    /// connection itself keeps trying.
    /// A single refusal is only [`Event::Rejected`]: it is unauthenticated.
    RejectSustained {
        /// The reason every refusal of the series gave.
        reason: RejectReason,
        /// Refusals in the series.
        count: u32,
    },
    // Congestion control.
    /// Host: the bandwidth estimate or the encoder's target changed notably (see
    /// `congestion`).
    Bandwidth(BandwidthUpdate),
    /// Client: keep-alives flow and the host reports `frames` frames sent since video last
    /// arrived, for at least [`MEDIA_STALL_AFTER`]. A keyframe was requested; a new handshake
    /// follows if it lasts (`stall`).
    MediaStalled {
        /// Frames the host reports sent since video last arrived.
        frames: u64,
    },
    /// Listener: a newcomer was refused (Reject(Busy)) because the current peer still answers
    /// (`slot`). At most once a second per address.
    PeerRefused {
        /// The newcomer's address.
        from: SocketAddr,
    },
    /// Listener: the session of `new` replaced that of `old` (the old peer left a probe
    /// unanswered, or `Config::replace_peer` is set). Follows `Disconnected { Replaced }`.
    PeerReplaced {
        /// The peer whose session ended.
        old: SocketAddr,
        /// The peer whose session is current now.
        new: SocketAddr,
    },
}

/// One datagram to send (from [`Connection::poll_transmit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// The datagram's bytes, sealed and ready for the socket.
    pub contents: Vec<u8>,
}

/// One end of a stream, sans-IO. See the module docs.
pub struct Connection {
    cfg: Config,
    hs: HandshakeConfig,
    ids: Ids,
    /// The established, confirmed session.
    link: Option<Link>,
    /// Listener: established but not yet confirmed by an authenticated datagram.
    pending: Vec<Link>,
    /// Listener: the last hello and our answer, to answer duplicates identically.
    last_hello: Option<LastHello>,
    /// Caller: handshakes in flight, oldest first.
    attempts: Vec<Attempt>,
    /// Caller: when the next hello is due (`None`: at once).
    next_attempt: Option<Instant>,
    /// Caller: the copy of the last hello still to send, when, and where (`establish`).
    hello_copy: Option<(Instant, Vec<u8>, SocketAddr)>,
    /// Caller without a session: since when it tries (for `ConnectTimeout`).
    connecting_since: Option<Instant>,
    connect_timeout_reported: bool,
    last_reject: Option<RejectReason>,
    last_reset_sent: Option<Instant>,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    closed: bool,
    /// Creation time.
    epoch: Instant,
    last_ping: Instant,
    srtt: Option<Duration>,
    /// What only this end's role has: a host's frames and answers, or a client's reception.
    side: Side,
    stats: Stats,
    /// Reused encoding buffer for control and input bodies.
    scratch: Vec<u8>,
    // Frame timing: host clock, clock offset, frame ages.
    timing: frame_clock::TimingState,
    /// Security state: admission, refusals, retired sessions, throttles (`guard`).
    guard: guard::Guard,
    /// Congestion control: feedback (client), estimator (host).
    cc: congestion::CongestionState,
    /// Listener: the current peer's liveness when newcomers knock (`slot`).
    slot: slot::PeerSlot,
}

impl Connection {
    /// Creates one end of a stream at `now`. A caller sends its first hello from the first
    /// [`Connection::handle_timeout`] (its [`Connection::poll_timeout`] is `now`); a listener
    /// waits for a hello. With `config.rng_seed` set, attempt ids and frame indices come from
    /// that seed (deterministic tests), else from the OS.
    ///
    /// Derives the passphrase key (PBKDF2, tens of milliseconds): create connections off any
    /// latency-critical path.
    pub fn new(config: Config, now: Instant) -> Result<Connection> {
        // The one clock read of a connection, only when the user gave no wall clock: see
        // `Config::wall_clock` and `new_at`.
        let wall = config.wall_clock.unwrap_or_else(SystemTime::now);
        Connection::new_at(config, now, wall)
    }

    /// [`Connection::new`] with the wall clock `wall` that corresponds to `now` (hello
    /// freshness is checked in Unix time; virtual-time tests pass a virtual wall clock).
    pub fn new_at(config: Config, now: Instant, wall: SystemTime) -> Result<Connection> {
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
        let mut stream_info = config.stream_info.clone();
        if let Some(i) = stream_info.as_mut() {
            i.generation = i.generation.max(1);
            i.mtu = config.mtu as u16;
            i.fec_scheme = FEC_SCHEME_RS8;
        }
        Ok(Connection {
            ids: Ids::new(config.rng_seed),
            hs: hs.clone(),
            link: None,
            pending: Vec::new(),
            last_hello: None,
            attempts: Vec::new(),
            next_attempt: None,
            hello_copy: None,
            connecting_since: (config.mode == Mode::Caller).then_some(now),
            connect_timeout_reported: false,
            last_reject: None,
            last_reset_sent: None,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            closed: false,
            epoch: now,
            last_ping: now,
            srtt: None,
            side: Side::new(&config, stream_info, now),
            stats: Stats {
                role: Some(config.role),
                ..Stats::default()
            },
            scratch: Vec::new(),
            timing: frame_clock::TimingState::new(now),
            guard: guard::Guard::new(&hs, &config, now, wall),
            cc: congestion::CongestionState::default(),
            slot: slot::PeerSlot::default(),
            cfg: config,
        })
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether this end is the host (sends video) or the client.
    pub fn role(&self) -> Role {
        self.cfg.role
    }

    /// Whether a session with a peer is established.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// Whether [`Connection::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The current peer, if connected.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.link.as_ref().map(|l| l.peer)
    }

    /// Processes one datagram received from `from` at `now`. `buf` is opened in place. Call it
    /// for every datagram the transport delivers, before [`Connection::handle_timeout`] for the
    /// same instant (so a receiver that was descheduled does not give up on shards waiting in
    /// its buffer); then poll transmits and events.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8]) {
        self.stats.packets_received += 1;
        self.stats.bytes_received += buf.len() as u64;
        if self.closed {
            return;
        }
        if buf.get(1) == Some(&KIND_COOKIE_REPLY) {
            self.on_cookie_reply(buf, from);
            return;
        }
        let Ok((h, _)) = Header::decode(buf) else {
            self.stats.invalid_datagrams += 1;
            return;
        };
        match h.kind {
            Kind::HandshakeInit => self.on_hello(&h, buf, from, now),
            Kind::HandshakeResponse => self.on_response(&h, buf, from, now),
            Kind::Reject => self.on_reject(&h, buf, from, now),
            Kind::Reset => self.on_reset(&h, buf, from, now),
            Kind::Video | Kind::Control | Kind::Input | Kind::Audio => {
                self.on_session_datagram(&h, buf, from, now)
            }
        }
    }

    /// The next datagram to send, if any. Call it until `None` after every other call.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the user, if any. Call it until `None` after every other call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Says bye to the peer (the host's bye ends the client's stream) and stops: from now on
    /// every datagram is ignored, no timer runs and no event is produced. Idempotent.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.flush_trailing_parity();
        for _ in 0..BYE_COPIES {
            self.send_control(&Control::Bye);
        }
        self.link = None;
        self.pending.clear();
    }

    /// Counters and connection state. Transport facts (socket buffers, GSO) are the driver's.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.connected = self.link.is_some();
        s.peer = self.peer();
        s.session_id = self.link.as_ref().map_or(0, |l| l.session_id);
        s.rtt_us = self.srtt.map_or(0, |r| r.as_micros() as u64);
        match &self.side {
            Side::Host(h) => s.fec_percent = h.fec.wire_percent(),
            Side::Client(c) => {
                s.fec_percent = c.fec_percent;
                let r = c.reassembler.stats();
                s.frames_received = r.frames_delivered;
                s.frames_lost = r.frames_lost;
                s.fec_recovered = r.shards_recovered;
                s.shards_duplicate = r.shards_duplicate;
                s.shards_late = r.shards_late;
                s.shards_invalid = r.shards_invalid;
                s.shards_reordered = r.shards_reordered;
                s.reorder_window_us = c.repair.reorder_window_us();
                s.memory_in_use = r.memory_in_use as u64;
                s.memory_peak = r.memory_peak as u64;
                if let Some(l) = self.link.as_ref() {
                    s.packets_lost = s.packets_lost_before + l.packets_lost();
                }
            }
        }
        self.timing_stats(&mut s);
        self.audio_stats(&mut s);
        self.congestion_stats(&mut s);
        s
    }

    /// The driver reports what the transport did with transmits or a frame's datagrams:
    /// `sent` datagrams of `bytes` bytes in all went out, `dropped` were refused for a full
    /// buffer.
    pub fn record_sent(&mut self, sent: usize, bytes: usize, dropped: usize) {
        self.stats.packets_sent += sent as u64;
        self.stats.bytes_sent += bytes as u64;
        self.stats.send_drops += dropped as u64;
    }

    /// The driver reports a send the transport refused (unreachable peer, ...).
    pub(crate) fn record_send_error(&mut self, error: String) {
        self.stats.send_errors += 1;
        self.stats.last_send_error = Some(error);
    }

    /// The host's state, or `InvalidArg(what)` on a client.
    fn require_host(&mut self, what: &'static str) -> Result<&mut HostState> {
        self.side.host_mut().ok_or(Error::InvalidArg(what))
    }

    /// The client's state, or `InvalidArg(what)` on a host.
    fn require_client(&mut self, what: &'static str) -> Result<&mut ClientState> {
        self.side.client_mut().ok_or(Error::InvalidArg(what))
    }

    fn queue(&mut self, contents: Vec<u8>, destination: SocketAddr) {
        self.transmits.push_back(Transmit {
            destination,
            contents,
        });
    }

    /// Seals `c` in the current session and queues it (nothing without a session).
    fn send_control(&mut self, c: &Control) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        self.scratch.clear();
        c.encode(&mut self.scratch);
        let Some(d) = link.seal_datagram(Kind::Control, &self.scratch) else {
            self.stats.seal_failures += 1;
            return;
        };
        let to = link.peer;
        self.queue(d, to);
    }

    /// A datagram of an established (or pending) session: open, check, route.
    fn on_session_datagram(&mut self, h: &Header, buf: &mut [u8], from: SocketAddr, now: Instant) {
        let Some(body) = self.open_session_datagram(h, buf, from, now) else {
            return;
        };
        let wire_len = buf.len();
        let body = &buf[body];
        self.on_authenticated(h.packet_number, now);
        let client = matches!(self.side, Side::Client(_));
        match h.kind {
            Kind::Video if client => {
                self.stall_on_video();
                self.note_video_arrival(body, wire_len, now);
                self.on_video(body, now)
            }
            Kind::Control if migrate::is_path_body(body) => self.on_path_frame(body, from, now),
            Kind::Control => match Control::decode(body) {
                Ok(c) => self.on_control(c, now),
                Err(_) => self.stats.invalid_datagrams += 1,
            },
            Kind::Input if !client => self.on_input_limited(body, now),
            Kind::Audio => self.on_audio(body, now),
            _ => self.stats.invalid_datagrams += 1,
        }
        // A datagram from a new address may have started a probe: challenge it at once.
        self.drive_path(now);
    }

    fn on_control(&mut self, c: Control, now: Instant) {
        match c {
            Control::Ping { t1 } => self.on_ping(t1, now),
            Control::Pong { t1, t2, t3 } => {
                self.on_pong(t1, t2, t3, now);
                self.slot_on_pong(t1, now);
            }
            Control::Bye => {
                self.stats.byes_received += 1;
                if matches!(self.side, Side::Client(_)) {
                    self.events.push_back(Event::EndOfStream);
                }
                self.drop_link(DisconnectReason::Bye, now);
            }
            c => match self.side {
                Side::Host(_) => self.on_host_control(c, now),
                Side::Client(_) => self.on_client_control(c, now),
            },
        }
    }

    /// A control message only a host acts on.
    fn on_host_control(&mut self, c: Control, now: Instant) {
        match c {
            Control::KeyframeRequest { lost } => self.on_keyframe_request(lost, now),
            Control::LossReport(r) => self.on_loss_report(r, now),
            Control::RepairRequest(r) => self.on_repair_request(r, now),
            Control::Feedback(fb) => self.on_feedback(fb, now),
            _ => self.stats.invalid_datagrams += 1,
        }
    }

    /// A control message only a client acts on.
    fn on_client_control(&mut self, c: Control, now: Instant) {
        match c {
            Control::StreamInfo(info) => self.on_stream_info(info),
            Control::InputAck { next_expected } => {
                if let Some(c) = self.side.client_mut() {
                    c.input_tx.on_ack(next_expected)
                }
            }
            Control::RepairUnavailable(u) => self.on_repair_unavailable(u, now),
            Control::SendProgress { frames_sent } => self.on_send_progress(frames_sent, now),
            _ => self.stats.invalid_datagrams += 1,
        }
    }
}

/// Where a header's body starts (the rest of a handshake datagram).
fn body_of(buf: &[u8]) -> &[u8] {
    buf.get(HEADER_LEN..).unwrap_or(&[])
}

/// A handshake-phase datagram: a clear header (packet number 0) followed by `body`.
pub(super) fn clear_datagram(kind: Kind, session_id: u32, body: &[u8]) -> Vec<u8> {
    let h = Header {
        kind,
        flags: 0,
        session_id,
        packet_number: 0,
    };
    let mut d = h.to_bytes().to_vec();
    d.extend_from_slice(body);
    d
}
