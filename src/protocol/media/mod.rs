//! The video path: one access unit into equal-sized datagrams on the host and back into whole,
//! in-order access units on the client.
//!
//! Owns the Annex-B parameter-set handling ([`annexb`]), the packetizer ([`packetizer`]), the
//! reassembler ([`reassembler`]), the trailing rows shared over a window of frames
//! ([`shared_rows`]) and the frame timing each shard carries ([`timing`]). It never
//! decides how much parity a frame gets (that is [`super::fec`]'s plan), never seals or sends a
//! datagram and never reads a clock.

pub mod annexb;
pub mod packetizer;
pub mod reassembler;
pub mod shared_rows;
pub mod timing;
