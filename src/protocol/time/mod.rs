//! Time on the path: the host's clock as the client sees it ([`clock`]) and when each datagram
//! of a frame may leave ([`pacing`]).
//!
//! Every function takes the current instant as an argument; this module never reads a clock,
//! never sleeps and never sends.

pub mod clock;
pub mod pacing;
