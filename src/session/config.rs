//! What a user configures for one end of a stream.

use std::net::SocketAddr;
use std::time::Duration;

use crate::protocol::adaptive::FecMode;
use crate::protocol::control::StreamInfo;
use crate::protocol::crypto::AeadBackend;
use crate::protocol::handshake::Role;
use crate::protocol::pacing::PacingConfig;
use crate::protocol::reassembler::ReassemblerConfig;
use crate::protocol::wire::{DEFAULT_MTU, MAX_DATAGRAM_BYTES, MIN_MTU};

use super::Error;
use super::connection::CongestionConfig;

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
    pub role: Role,
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
    pub fec_mode: FecMode,
    /// Largest datagram (UDP payload) in bytes.
    pub mtu: usize,
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
    // Congestion control (issue 10).
    /// Bandwidth feedback (client) and estimation, pacing and encoder target (host).
    pub congestion: CongestionConfig,
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
            fec_mode: FecMode::Fixed,
            mtu: DEFAULT_MTU,
            pacing: PacingConfig::default(),
            timeout: Duration::from_millis(3000),
            keepalive: Duration::from_millis(250),
            handshake_retry: Duration::from_millis(200),
            loss_report_interval: Duration::from_millis(100),
            keyframe_request_interval: Duration::from_millis(100),
            reassembler: ReassemblerConfig::default(),
            stream_info: None,
            initial_frame_index: None,
            input_queue: 4096,
            recv_batch: 64,
            rng_seed: None,
            congestion: CongestionConfig::default(),
        }
    }

    pub fn host_listener() -> Self {
        Self::new(Role::Host, Mode::Listener)
    }

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
        if self.timeout.is_zero() {
            return Err(Error::InvalidArg("timeout must be positive"));
        }
        Ok(())
    }
}
