//! Security: who may start a session, with which keys, and what a stranger can make a listener
//! do.
//!
//! - [`handshake`]: the SPAKE2/Noise exchange that gives both ends fresh per-direction keys.
//! - [`crypto`]: AEAD sealing and opening of datagrams with those keys; reset tokens.
//! - [`replay`]: the sliding window that refuses a packet number seen before.
//! - [`bucket`]: the token bucket and the per-source key that the limits below are built from.
//! - [`cookie`]: stateless address-proof cookies a loaded listener asks for.
//! - [`ratelimit`]: token buckets and the gate that admits a hello before any expensive work.
//! - [`guessing`]: the passphrase-guessing budget (per source and global).
//! - [`path`]: path validation before a listener moves a session to a new address.
//!
//! Like the rest of [`crate::protocol`] this is sans-IO: it never reads a clock, touches a socket
//! or logs key material; times come in as arguments and secrets are zeroised on drop.

pub(crate) mod bucket;
pub mod cookie;
pub mod crypto;
pub mod guessing;
pub mod handshake;
pub mod path;
pub mod ratelimit;
pub mod replay;
