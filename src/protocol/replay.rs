//! Anti-replay: a sliding window over authenticated packet numbers of one direction.
//!
//! [`ReplayWindow::check`] is cheap and runs before the AEAD: it refuses numbers that are too
//! old or already seen, and implausible jumps. [`ReplayWindow::commit`] runs only after a
//! datagram authenticated, so forged packet numbers can never move the window.

/// Packet numbers kept in the window behind the newest one. A 1080p keyframe at a 1400-byte
/// MTU is a few hundred datagrams; Wi-Fi reordering rarely exceeds a few dozen. 4096 leaves room
/// for both several times over and costs 512 bytes.
pub const REPLAY_WINDOW: u64 = 4096;

/// Largest forward jump accepted. A sender increments by one per datagram; a jump of 2^32
/// would take hours at line rate, so anything beyond is a forgery and is refused before
/// spending an AEAD open on it.
pub const MAX_FORWARD_JUMP: u64 = 1 << 32;

/// Why a packet number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Seen already.
    Duplicate,
    /// Older than the window.
    TooOld,
    /// Implausibly far ahead of the newest.
    TooFarAhead,
}

/// The window. See the module docs.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Newest committed number + 1 (0 = nothing committed yet).
    top: u64,
    /// Bit `i` set: `top - 1 - i` was seen.
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub fn new() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; (REPLAY_WINDOW / 64) as usize],
        }
    }

    /// The newest committed packet number, if any.
    pub fn newest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    fn bit(&self, pn: u64) -> bool {
        let i = self.top - 1 - pn;
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Whether `pn` may be processed. Does not change the window.
    pub fn check(&self, pn: u64) -> Result<(), ReplayError> {
        if pn == u64::MAX {
            return Err(ReplayError::TooFarAhead);
        }
        if pn >= self.top {
            if self.top > 0 && pn - self.top >= MAX_FORWARD_JUMP {
                return Err(ReplayError::TooFarAhead);
            }
            return Ok(());
        }
        if self.top - pn > REPLAY_WINDOW {
            return Err(ReplayError::TooOld);
        }
        if self.bit(pn) {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated `pn`. Call only after `check` passed and the AEAD opened it.
    pub fn commit(&mut self, pn: u64) {
        if pn >= self.top {
            let shift = pn + 1 - self.top;
            self.shift(shift);
            self.top = pn + 1;
            self.bits[0] |= 1;
        } else {
            let i = self.top - 1 - pn;
            if i < REPLAY_WINDOW {
                self.bits[(i / 64) as usize] |= 1 << (i % 64);
            }
        }
    }

    /// Moves every bit `shift` places older.
    fn shift(&mut self, shift: u64) {
        if shift >= REPLAY_WINDOW {
            self.bits = [0; (REPLAY_WINDOW / 64) as usize];
            return;
        }
        let words = (shift / 64) as usize;
        let bits = (shift % 64) as u32;
        let n = self.bits.len();
        for i in (0..n).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.bits[s]);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .map_or(0, |s| self.bits[s]);
            self.bits[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basic() {
        let mut w = ReplayWindow::new();
        assert!(w.check(0).is_ok());
        w.commit(0);
        assert_eq!(w.check(0), Err(ReplayError::Duplicate));
        w.commit(5);
        assert!(w.check(3).is_ok());
        w.commit(3);
        assert_eq!(w.check(3), Err(ReplayError::Duplicate));
        assert_eq!(w.check(5), Err(ReplayError::Duplicate));
        w.commit(10_000);
        assert_eq!(w.check(3), Err(ReplayError::TooOld));
        assert!(w.check(10_000 - 100).is_ok());
        assert_eq!(
            w.check(10_001 + MAX_FORWARD_JUMP),
            Err(ReplayError::TooFarAhead)
        );
        assert_eq!(w.check(u64::MAX), Err(ReplayError::TooFarAhead));
    }

    proptest! {
        // Against a model: a set of everything committed, with the window's age limit.
        #[test]
        fn matches_model(ops in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for pn in ops {
                let expect = if pn >= top {
                    Ok(())
                } else if top - pn > REPLAY_WINDOW {
                    Err(ReplayError::TooOld)
                } else if seen.contains(&pn) {
                    Err(ReplayError::Duplicate)
                } else {
                    Ok(())
                };
                prop_assert_eq!(w.check(pn), expect);
                if expect.is_ok() {
                    w.commit(pn);
                    seen.insert(pn);
                    top = top.max(pn + 1);
                }
            }
        }
    }
}
