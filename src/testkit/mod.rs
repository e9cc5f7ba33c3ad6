//! The test kit: tools that tests, benchmarks and examples use to build a network around a
//! session, behind the `testing` feature.
//!
//! | module | owns |
//! |---|---|
//! | [`memory`] | [`memory::MemoryTransport`], an in-process transport pair |
//! | [`impair`] | [`impair::Impaired`], a seeded impairment wrapper around any transport, and the sans-IO emulator ([`impair::netem`]) it and the relay share |
//! | [`relay`] | [`relay::Relay`], a UDP relay that puts the emulator between two sockets |
//! | [`bottleneck`] | [`bottleneck::Sim`], a bottleneck simulator that drives the congestion estimator on virtual time |
//! | [`rng`] | [`rng::Rng`], the one seeded generator behind every random decision here |
//!
//! Everything here is reproducible from its seeds. Nothing here is compiled into the plugin or
//! the default build (`testing` is off by default), and the session, protocol, transport and
//! element layers must never depend on it.

pub mod bottleneck;
pub mod impair;
pub mod memory;
pub mod relay;
pub mod rng;
