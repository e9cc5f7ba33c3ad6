//! The sans-IO protocol layer: pure state machines fed with bytes and instants.
//!
//! Nothing in here reads a clock, touches a socket or knows about GStreamer: every function that
//! needs the time takes it as an argument, so loss, reordering, timeouts and replay can be tested
//! exhaustively and deterministically.
//!
//! The layer is grouped by concern:
//!
//! - [`wire`] owns the clear header and the video shard header of every datagram and the cursor
//!   helpers every decoder uses; [`control`] owns the control messages' byte layout and
//!   [`feedback`] the bandwidth feedback body. They encode and decode, never decide.
//! - [`media`] owns the video path: Annex-B parameter sets, one access unit into datagrams
//!   (packetizer) and back (reassembler), and the frame timing every shard carries. It never
//!   chooses how much parity a frame gets.
//! - [`fec`] owns loss protection: the Reed-Solomon coder and block layout, the client's loss
//!   model, the host's parity plan and the repair messages and history. It never sends or
//!   schedules anything; the session decides when.
//! - [`time`] owns the host clock as the client sees it and send pacing. It never reads a clock.
//! - [`congestion`] owns the host's bandwidth estimate; it never touches FEC or pacing directly.
//! - [`security`] owns the handshake, cookies, AEAD, replay and rate limits; it never parses media.
//! - [`input`] owns the input back channel's events and its reliable delivery.
//! - [`audio`] owns the audio stream's datagrams: small packets protected across consecutive
//!   packets, and their in-order delivery or give-up on the client.
//!

pub mod audio;
pub mod congestion;
pub mod control;
pub mod fec;
pub mod feedback;
pub mod input;
pub mod media;
pub mod security;
#[cfg(test)]
mod test_rng;
pub mod time;
pub mod wire;
