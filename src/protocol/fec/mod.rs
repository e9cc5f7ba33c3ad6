//! Loss protection: the erasure coder, what the client observes about loss, the host's parity
//! plan from that observation, and deadline-bounded repair.
//!
//! Owns the Reed-Solomon coder and block layout ([`coder`]), the client's loss estimator and
//! loss model ([`lossmodel`]), the one loss report the client sends ([`report`]), the host's
//! FEC controller ([`adaptive`]), the repair messages and history ([`repair`]) and the
//! cross-frame (streaming) code with its joint decoder ([`window`]). It never
//! sends, schedules or paces anything (the session does) and never parses a datagram's clear
//! header.

pub mod adaptive;
pub mod coder;
pub mod lossmodel;
pub mod repair;
pub mod report;
pub mod window;
