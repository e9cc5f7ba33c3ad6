//! The audio stream: small packets (Opus, 2.5–20 ms each) protected across consecutive packets.
//!
//! This module owns the audio datagram body's byte layout ([`AudioBody`]), the host's
//! [`AudioSender`] (sequence numbers, Reed-Solomon parity over blocks of consecutive packets)
//! and the client's [`AudioReceiver`] (in-order delivery, recovery from parity, giving up on a
//! packet by a short deadline so sound never stalls). It never reads a clock, touches a socket
//! or seals: the connection passes `now` and does the sealing; a body from the network is
//! checked against every limit before anything is allocated for it, and memory held for a
//! stream is bounded by [`MAX_PENDING_BLOCKS`] whatever sequence numbers a peer sends.

mod receiver;
mod sender;
mod wire;

pub use receiver::{
    AUDIO_JITTER_MARGIN, AudioOutput, AudioPacket, AudioReceiver, AudioReceiverStats,
    MAX_AUDIO_HOLD, MAX_REPORTED_GAP, MIN_AUDIO_HOLD,
};
pub use sender::AudioSender;
pub use wire::{
    AudioBody, AudioRecord, BODY_DATA, BODY_INFO, BODY_INFO_ACK, BODY_PARITY, MAX_BLOCK_SHARDS,
    MAX_SHARD_LEN, RECORD_HEADER_LEN, SHARD_HEADER_LEN,
};

/// Data packets per Reed-Solomon block: four 5 ms packets span 20 ms, short enough that the
/// block's parity arrives before a listener would hear a gap.
pub const AUDIO_BLOCK_DATA: usize = 4;

/// Least and most parity packets per block. Two survive any two losses of a block; four (as
/// many as its data) cover the loss rates a link that still plays audio has.
pub const MIN_AUDIO_PARITY: usize = 2;
pub const MAX_AUDIO_PARITY: usize = 4;

/// Largest audio payload (one encoded packet) accepted from a user or the network: an Opus
/// packet is at most 1275 bytes per frame, up to 6 frames in one 120 ms packet.
pub const MAX_AUDIO_PAYLOAD: usize = 1500;

/// Blocks the receiver holds at once; a sequence number further ahead than this many blocks
/// restarts the window instead of allocating towards it.
pub const MAX_PENDING_BLOCKS: usize = 16;

/// Largest audio caps string carried in an info body.
pub const MAX_AUDIO_CAPS: usize = 1024;
