//! Attempt ids and first frame indices: unpredictable in production, reproducible in tests.
//!
//! Neither is a secret that protects anything on its own (the handshake authenticates), but an
//! off-path party should not guess a caller's attempt id, so without a seed every draw comes from
//! the OS. With a seed ([`crate::session::Config::rng_seed`]) they come from SplitMix64, so a test
//! on virtual time sees the same ids every run. Must never be used for key material.

pub(super) enum Ids {
    Os,
    Seeded(u64),
}

impl Ids {
    pub(super) fn new(seed: Option<u64>) -> Ids {
        seed.map_or(Ids::Os, Ids::Seeded)
    }

    pub(super) fn next_u32(&mut self) -> u32 {
        match self {
            Ids::Os => {
                let mut b = [0u8; 4];
                // getrandom only fails without an OS entropy source, where a fixed value is
                // harmless (ids only tell attempts apart).
                let _ = getrandom::fill(&mut b);
                u32::from_ne_bytes(b)
            }
            Ids::Seeded(state) => {
                // SplitMix64 (Steele, Lea, Flood 2014).
                *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = *state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_per_seed_and_differ_between_seeds() {
        let draw = |seed| {
            let mut ids = Ids::new(Some(seed));
            (0..8).map(|_| ids.next_u32()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let v = draw(7);
        assert!(v.windows(2).all(|w| w[0] != w[1]));
    }
}
