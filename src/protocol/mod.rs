//! The sans-IO protocol layer: pure state machines fed with bytes and instants.
//!
//! Nothing in here reads a clock, touches a socket or knows about GStreamer: every function that
//! needs the time takes it as an argument, so loss, reordering, timeouts and replay can be tested
//! exhaustively and deterministically.

pub mod adaptive;
pub mod annexb;
pub mod audio;
pub mod bwe;
pub mod clock;
pub mod control;
pub mod cookie;
pub mod crypto;
pub mod fec;
pub mod feedback;
pub mod guessing;
pub mod handshake;
pub mod input;
pub mod lossmodel;
pub mod pacing;
pub mod packetizer;
pub mod path;
pub mod ratelimit;
pub mod reassembler;
pub mod repair;
pub mod replay;
#[cfg(test)]
mod test_rng;
pub mod timing;
pub mod wire;
