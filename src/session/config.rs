//! What a user configures for one end of a stream: [`Config`], its defaults, and the checks a
//! session runs on it before it binds ([`Config::validate`], [`Config::check_exposure`]).
//!
//! Owns: the defaults of every session setting. Must never: do I/O or read a clock — it is plain
//! data that the elements and applications fill in and the session reads.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::protocol::control::StreamInfo;
use crate::protocol::fec::adaptive::{FecMode, TargetConfig};
use crate::protocol::fec::repair::RepairConfig;
use crate::protocol::media::reassembler::ReassemblerConfig;
use crate::protocol::security::crypto::AeadBackend;
use crate::protocol::security::handshake::Role;
use crate::protocol::security::ratelimit::RateLimitConfig;
use crate::protocol::time::pacing::PacingConfig;
use crate::protocol::wire::{DEFAULT_MTU, MAX_DATAGRAM_BYTES, MIN_MTU};

use super::Error;
use super::connection::CongestionConfig;
use super::peers::InputFrom;

/// Default of [`Config::client_bitrate_floor_bps`]: 3 Mbit/s, a watchable 720p60.
pub const DEFAULT_CLIENT_BITRATE_FLOOR_BPS: u64 = 3_000_000;

/// Why a listener refuses to start (see [`Config::check_exposure`]).
pub const UNAUTHENTICATED_LISTENER: &str = "refusing to listen on a non-loopback address without a passphrase: anyone who can reach the port could watch the stream and send input. Set the same passphrase on both ends, listen on 127.0.0.1, or set allow-unauthenticated=true to accept that";

/// Who waits and who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Waits for the peer's hello on its bound address.
    Listener,
    /// Sends hellos to `Config::peer` until the listener answers.
    Caller,
}

/// Configuration of a [`super::Session`] (and of its [`super::Connection`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Which end of the stream: the host sends media, the client receives it and sends input.
    pub role: Role,
    /// Who waits and who calls (independent of the role).
    pub mode: Mode,
    /// The listener's address (callers only).
    pub peer: Option<SocketAddr>,
    /// Authenticates the peer and keys the handshake. `None`: encrypted, not authenticated.
    pub passphrase: Option<String>,
    /// `false` sends plaintext (refused together with a passphrase).
    pub encrypt: bool,
    /// Which AES-256-GCM implementation seals and opens media (wire-identical).
    pub aead: AeadBackend,
    /// Parity share of every FEC block, in percent (0 = no FEC).
    pub fec_percent: u8,
    /// How the host chooses the parity of each block (fixed, adaptive or by target).
    pub fec_mode: FecMode,
    /// Largest datagram (UDP payload) in bytes.
    pub mtu: usize,
    /// How the host spreads a frame's datagrams over time.
    pub pacing: PacingConfig,
    /// Without any datagram from the peer for this long, the peer counts as gone.
    pub timeout: Duration,
    /// Ping interval (keeps NAT bindings and measures RTT).
    pub keepalive: Duration,
    /// Interval between handshake attempts of a caller.
    pub handshake_retry: Duration,
    /// Client: interval between loss reports.
    pub loss_report_interval: Duration,
    /// Client: shortest interval between two keyframe requests.
    pub keyframe_request_interval: Duration,
    /// Client: the reassembler's bounds (frame size, memory, frames in flight, reorder window).
    pub reassembler: ReassemblerConfig,
    /// Host: the stream info to hand to clients (can be set later).
    pub stream_info: Option<StreamInfo>,
    /// Host: frame index of the first frame of every session (random when `None`).
    pub initial_frame_index: Option<u32>,
    /// Client: input events queued before the oldest is refused.
    pub input_queue: usize,
    /// Datagrams per receive call (ring slots).
    pub recv_batch: usize,
    /// Seeds the attempt ids and first frame indices (reproducible tests); `None` draws them
    /// from the OS. Keys are always fresh OS randomness.
    pub rng_seed: Option<u64>,
    // --- security ---
    /// Listener: start without a passphrase on an address other than loopback. Off by default:
    /// such a listener lets anyone who reaches the port receive the stream and send input
    /// (checked by [`Config::check_exposure`] when the session starts).
    pub allow_unauthenticated: bool,
    /// Listener: handshake rate limits and when cookies are asked for.
    pub rate_limits: RateLimitConfig,
    /// Listener: a newcomer that authenticates replaces the current peer even while it still
    /// answers (the last to connect wins). Off by default: the newcomer is refused as Busy
    /// unless the current peer leaves a liveness probe unanswered (`connection::slot`).
    pub replace_peer: bool,
    /// The wall clock at the instant passed to [`super::Connection::new_at`] (hello freshness
    /// needs Unix time; the connection itself never reads a clock). `None`: read once when the
    /// connection is created.
    pub wall_clock: Option<SystemTime>,

    // Loss resilience: FEC by target, deadline-bounded repair, fast connect.
    /// Host: target, floor and ceiling of [`FecMode::Target`].
    pub fec_target: TargetConfig,
    /// Host: bounds of the repair history and the repair budget (share of the stream).
    pub repair_history: RepairConfig,
    /// Client: ask the host for new parity when a block cannot be rebuilt.
    pub repair: bool,
    /// Client: how long after its first shard a frame may wait for repair before it is given
    /// up (and a keyframe requested). `None`: derived from the measured RTT and frame
    /// interval (see `connection::repair`).
    pub repair_deadline: Option<Duration>,
    /// Caller: the first handshake retry comes after this; each further one after twice the
    /// previous wait, up to `handshake_retry`.
    pub handshake_first_retry: Duration,
    // Congestion control.
    /// Bandwidth feedback (client) and estimation, pacing and encoder target (host).
    pub congestion: CongestionConfig,
    // Several clients (`session::peers`).
    /// Listening host: how many clients it serves at once (1..=64). 1 is one peer slot with
    /// its liveness probe (`connection::slot`); beyond it, a newcomer is refused while every
    /// slot is taken.
    pub max_clients: usize,
    /// Host: whose input is taken when several clients watch.
    pub input_from: InputFrom,
    /// Host with several clients: the encoder follows the slowest client's target down to
    /// this (media bits per second); a client slower than it drops frames and recovers with
    /// its own keyframe requests instead of dragging the others down.
    pub client_bitrate_floor_bps: u64,
}

impl Config {
    /// Defaults for a role, as the elements use them.
    pub fn new(role: Role, mode: Mode) -> Self {
        Config {
            role,
            mode,
            peer: None,
            passphrase: None,
            encrypt: true,
            aead: AeadBackend::default(),
            fec_percent: 20,
            fec_mode: FecMode::Target,
            mtu: DEFAULT_MTU,
            pacing: PacingConfig::default(),
            timeout: Duration::from_millis(3000),
            keepalive: Duration::from_millis(250),
            handshake_retry: Duration::from_millis(100),
            loss_report_interval: Duration::from_millis(100),
            keyframe_request_interval: Duration::from_millis(100),
            reassembler: ReassemblerConfig::default(),
            stream_info: None,
            initial_frame_index: None,
            input_queue: 4096,
            recv_batch: 64,
            rng_seed: None,
            allow_unauthenticated: false,
            rate_limits: RateLimitConfig::default(),
            replace_peer: false,
            wall_clock: None,
            fec_target: TargetConfig::default(),
            repair_history: RepairConfig::default(),
            repair: true,
            repair_deadline: None,
            handshake_first_retry: Duration::from_millis(25),
            congestion: CongestionConfig::default(),
            max_clients: 1,
            input_from: InputFrom::First,
            client_bitrate_floor_bps: DEFAULT_CLIENT_BITRATE_FLOOR_BPS,
        }
    }

    /// A host that listens (the sink's default), with every other field at its default.
    pub fn host_listener() -> Self {
        Self::new(Role::Host, Mode::Listener)
    }

    /// A client that calls the listener at `peer` (the src's default).
    pub fn client_caller(peer: SocketAddr) -> Self {
        let mut c = Self::new(Role::Client, Mode::Caller);
        c.peer = Some(peer);
        c
    }

    /// Checks the combination; the message says what to change.
    pub fn validate(&self) -> Result<(), Error> {
        if self.mode == Mode::Caller && self.peer.is_none() {
            return Err(Error::InvalidArg("a caller needs the listener's address"));
        }
        if !self.encrypt && self.passphrase.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::InvalidArg(
                "encrypt=false cannot be combined with a passphrase",
            ));
        }
        if self.mtu < MIN_MTU || self.mtu > MAX_DATAGRAM_BYTES {
            return Err(Error::InvalidArg("mtu out of range (256..=65507)"));
        }
        if self.fec_percent > 100 {
            return Err(Error::InvalidArg("fec-percent out of range (0..=100)"));
        }
        if self.max_clients == 0 || self.max_clients > super::peers::MAX_CLIENTS {
            return Err(Error::InvalidArg("max-clients out of range (1..=64)"));
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidArg("timeout must be positive"));
        }
        Ok(())
    }

    /// Whether these settings are unauthenticated (no passphrase).
    pub fn unauthenticated(&self) -> bool {
        self.passphrase.as_deref().is_none_or(str::is_empty)
    }

    /// Safe by default: a listener bound to `bound` that is not a loopback address refuses to
    /// run without a passphrase unless [`Config::allow_unauthenticated`] is set. Callers and
    /// loopback listeners always pass.
    pub fn check_exposure(&self, bound: SocketAddr) -> Result<(), Error> {
        if self.mode == Mode::Listener
            && self.unauthenticated()
            && !self.allow_unauthenticated
            && !bound.ip().is_loopback()
        {
            return Err(Error::InvalidArg(UNAUTHENTICATED_LISTENER));
        }
        Ok(())
    }
}
