//! The seeded generator of the protocol's unit tests: xoshiro256** from `rand_xoshiro` (the
//! test kit's generator, which needs the `testing` feature), so Monte Carlo runs and random
//! loss patterns reproduce from their seed. Test-only; never used for anything that needs
//! unpredictability.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256StarStar;

/// A reproducible generator: the same seed gives the same sequence.
pub(crate) struct Rng(Xoshiro256StarStar);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(Xoshiro256StarStar::seed_from_u64(seed))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant for the small `n` of the tests).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
