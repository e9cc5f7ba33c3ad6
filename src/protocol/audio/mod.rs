//! The audio stream: small packets (Opus, 2.5–20 ms each) protected across consecutive packets.
//!
//! This module owns the audio datagram body's byte layout ([`AudioBody`]), the host's
//! [`AudioSender`] (sequence numbers, Reed-Solomon parity over blocks of consecutive packets,
//! each block's parity sent one by one behind the next block's packets, so that one burst of
//! loss rarely takes a block's data and its parity together)
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

/// The span of sound one Reed-Solomon block covers: a block has as many packets as fit in it
/// (eight 5 ms packets, four 10 ms, two 20 ms), between [`MIN_BLOCK_DATA`] and
/// [`MAX_BLOCK_DATA`]. Longer blocks survive longer bursts; the span bounds how long a packet
/// after a loss waits for its recovery.
pub const AUDIO_BLOCK_SPAN: std::time::Duration = std::time::Duration::from_millis(40);
/// The span of a block while the loss model plans three quarters or more of a block of
/// [`AUDIO_BLOCK_SPAN`] as parity: the parity a short block can carry barely meets the plan,
/// so the block covers more time instead (sixteen 5 ms packets, as much parity as data), and a burst has to be twice as
/// long to take more shards than its parity. At Gilbert-Elliott bursts enter 1 % / leave 30 %
/// per datagram that turns ~0.06 % of packets given up into ~0.002 %; the price is the wait
/// after a loss, twice as long.
pub const AUDIO_LONG_BLOCK_SPAN: std::time::Duration = std::time::Duration::from_millis(80);
/// Fewest data packets in a block, even when its packets are longer than the span.
pub const MIN_BLOCK_DATA: usize = 2;
/// Most data packets in a block, even when more short packets fit in the span.
pub const MAX_BLOCK_DATA: usize = 16;

/// Least parity packets per block: two survive any two losses of a block. The most is as many
/// as the block's data packets.
pub const MIN_AUDIO_PARITY: usize = 2;

/// Largest audio payload (one encoded packet) accepted from a user or the network: an Opus
/// packet is at most 1275 bytes per frame, up to 6 frames in one 120 ms packet.
pub const MAX_AUDIO_PAYLOAD: usize = 1500;

/// Blocks the receiver holds at once; a sequence number further ahead than this many blocks
/// restarts the window instead of allocating towards it.
pub const MAX_PENDING_BLOCKS: usize = 16;

/// Largest audio caps string carried in an info body.
pub const MAX_AUDIO_CAPS: usize = 1024;
