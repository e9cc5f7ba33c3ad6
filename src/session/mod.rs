//! One end of a stream: the sans-IO [`Connection`] driven over a [`crate::transport::Transport`].
//!
//! A [`Session`] is either the host (sends video, receives input) or the client (receives
//! video, sends input), and either the listener or the caller. The session layer has two
//! parts:
//!
//! - [`connection`]: the state machine (establishment, keep-alive, timeouts, restarts, loss
//!   reports, stream info, input reliability, keyframe throttle, bye, counters). No clock,
//!   socket, thread or sleep; tested on virtual time.
//! - [`Session`] (in `driver`): owns the transport, the receive ring, the packetizer, the pacing
//!   sleeps and the locks; reads the clock and feeds the connection. Its public API is the one
//!   the elements and Rust applications use.
//!
//! Threading: every `Session` method takes `&self`. The connection sits behind one mutex held
//! only for short, non-blocking work; the receive ring has its own mutex, held by the one thread
//! that blocks in [`Session::poll_frame`] / [`Session::poll_input`]. So an element can send
//! input, keyframe requests or frames from one thread while another blocks receiving, and
//! [`Session::wake`] interrupts that receive at once. Packetizing, FEC and sealing run outside
//! the connection's lock. Lock order: `ring` or `packetizer` before `connection`, never the
//! other way, and no lock is held while the transport sends.

use std::io;

use crate::protocol::media::packetizer::PacketizeError;

mod config;
mod connection;
mod driver;
mod peers;
mod stats;

pub use config::{Config, DEFAULT_CLIENT_BITRATE_FLOOR_BPS, Mode, UNAUTHENTICATED_LISTENER};
pub use connection::{
    AudioPacket, BandwidthUpdate, CongestionConfig, Connection, DisconnectReason, Event,
    FRAME_AGE_SPAN, FrameTicket, FrameTimingIn, HandshakeFailure, SealedFrame, Transmit,
};
// Security limits.
pub use connection::MAX_AUDIO_EVENTS;
pub use connection::{
    INPUT_EVENTS_BURST, INPUT_EVENTS_PER_SECOND, KEYFRAME_REQUEST_MIN_INTERVAL,
    MAX_INPUT_EVENTS_PER_DATAGRAM, REJECT_SERIES_COUNT, REJECT_SERIES_GAP, REJECT_SERIES_SPAN,
};
// Who the stream goes to: one peer slot, media-stall watch; keyframe requests.
pub use connection::{
    KEYFRAME_PENDING_FOR, LOST_KEYFRAME_MIN_INTERVAL, MEDIA_STALL_AFTER, MEDIA_STALL_MIN_FRAMES,
    MEDIA_STALL_RECONNECT, PEER_ALIVE_FOR, PEER_PROBE_MAX, PEER_PROBE_MIN,
};
pub use driver::{PeerFrame, SendReport, Session, monotonic_us};
// Several clients on one host.
pub use peers::{BUDGET_DEPTH, QUEUE_EVIDENCE};
pub use peers::{
    DISCONNECTED_BAR, FrameSent, InputFrom, MAX_CLIENTS, PeerEvent, PeerId, PeerInfo, Peers,
    SLOW_CLIENT_KEYFRAME_INTERVAL,
};
pub use stats::Stats;

/// Errors of the session API (the connection returns the same type; it never produces `Io`).
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

/// The session API's result.
pub type Result<T> = std::result::Result<T, Error>;
