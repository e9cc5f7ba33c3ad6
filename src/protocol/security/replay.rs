//! Anti-replay: a sliding window over authenticated packet numbers of one direction.
//!
//! [`ReplayWindow::check`] is cheap and runs before the AEAD: it refuses numbers that are too
//! old or already seen, and implausible jumps. [`ReplayWindow::commit`] runs only after a
//! datagram authenticated, so forged packet numbers can never move the window.
//!
//! Why one large window rather than separate packet-number spaces for media and control: a
//! frame's packet numbers are reserved at once and sent paced over up to a frame interval, while
//! control and input datagrams take later numbers and can arrive first. Separate spaces would
//! need a space marker in the AEAD nonce (both spaces share one key per direction) and a second
//! counter on every path; a window wider than the largest frame the reassembler accepts keeps the
//! wire format and the nonce rule unchanged. The bitmap is a ring (RFC 6479's scheme): advancing
//! clears only the words that fall out, so `check` and `commit` are O(1) however wide it is.
//!
//! This module never sees keys or bytes, only numbers; it must never be committed to before the
//! datagram authenticated.

/// Words in the ring bitmap (64 packet numbers each): 2,048 words = 16 KiB per direction.
const WORDS: usize = 2048;

/// Packet numbers kept behind the newest one: the ring less one word (the word holding the
/// newest number is shared with numbers ahead of it). 131,008 numbers cover the largest frame
/// the reassembler accepts (64 MiB = 49,710 shards at the default MTU) even at 100 % FEC, with
/// any number of control datagrams sent meanwhile — an 8 MB keyframe at 1 Gbit/s (~7,200
/// datagrams with 20 % parity) uses a twentieth of it.
pub(crate) const REPLAY_WINDOW: u64 = (WORDS as u64 - 1) * 64;

/// Largest forward jump accepted. A sender increments by one per datagram; a jump of 2^32
/// would take hours at line rate, so anything beyond is a forgery and is refused before
/// spending an AEAD open on it.
pub(crate) const MAX_FORWARD_JUMP: u64 = 1 << 32;

/// Why a packet number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// Seen already.
    Duplicate,
    /// Older than the window.
    TooOld,
    /// Implausibly far ahead of the newest.
    TooFarAhead,
}

/// The window. See the module docs.
#[derive(Clone)]
pub(crate) struct ReplayWindow {
    /// Newest committed number + 1 (0 = nothing committed yet).
    top: u64,
    /// Bit `pn % 64` of word `(pn / 64) % WORDS` is set when `pn` was seen (for `pn` within the
    /// window).
    bits: Box<[u64; WORDS]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub(crate) fn new() -> Self {
        ReplayWindow {
            top: 0,
            bits: Box::new([0; WORDS]),
        }
    }

    fn slot(pn: u64) -> (usize, u64) {
        (((pn / 64) % WORDS as u64) as usize, 1u64 << (pn % 64))
    }

    /// Whether `pn` may be processed. Does not change the window.
    pub(crate) fn check(&self, pn: u64) -> Result<(), ReplayError> {
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
        let (w, b) = Self::slot(pn);
        if self.bits[w] & b != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated `pn`. Call only after `check` passed and the AEAD opened it.
    pub(crate) fn commit(&mut self, pn: u64) {
        if pn >= self.top {
            let new_word = pn / 64;
            // Words strictly after the current newest one up to the new one hold numbers that
            // are now ahead of or beyond the window: clear them (all of them at most once).
            let first_clear = if self.top == 0 {
                new_word
            } else {
                (self.top - 1) / 64 + 1
            };
            let count = (new_word + 1).saturating_sub(first_clear).min(WORDS as u64);
            for i in 0..count {
                let w = ((new_word - i) % WORDS as u64) as usize;
                self.bits[w] = 0;
            }
            self.top = pn + 1;
        } else if self.top - pn > REPLAY_WINDOW {
            return;
        }
        let (w, b) = Self::slot(pn);
        self.bits[w] |= b;
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
        w.commit(REPLAY_WINDOW + 10);
        assert_eq!(w.check(3), Err(ReplayError::TooOld));
        assert_eq!(w.check(10), Err(ReplayError::TooOld));
        assert_eq!(w.check(11), Ok(()), "exactly at the window's edge");
        assert!(w.check(REPLAY_WINDOW - 100).is_ok());
        assert_eq!(
            w.check(REPLAY_WINDOW + 11 + MAX_FORWARD_JUMP),
            Err(ReplayError::TooFarAhead)
        );
        assert_eq!(w.check(u64::MAX), Err(ReplayError::TooFarAhead));
    }

    #[test]
    fn a_long_jump_forgets_everything_behind_the_window() {
        let mut w = ReplayWindow::new();
        for pn in 0..1000 {
            w.commit(pn);
        }
        // Jump by more than the whole ring: every old bit must be gone, nothing aliases.
        let far = 1000 + 3 * WORDS as u64 * 64 + 17;
        w.commit(far);
        for back in 1..2000 {
            assert_eq!(w.check(far - back), Ok(()), "{back} behind");
        }
        assert_eq!(w.check(far), Err(ReplayError::Duplicate));
    }

    /// An 8 MB keyframe at 1 Gbit/s reserves ~7,200 packet numbers at once
    /// (6,000 data shards + 20 % parity) and is sent paced over a frame interval, while control
    /// and input datagrams take later numbers and arrive first. A 4,096-number window
    /// would reject 3,393 of the frame's datagrams as replays.
    #[test]
    fn eight_megabyte_keyframe_with_later_control_numbers_arriving_first_is_accepted() {
        let mut w = ReplayWindow::new();
        let base = 1_000u64;
        for pn in 0..base {
            w.commit(pn);
        }
        let frame: Vec<u64> = (base..base + 7_200).collect();
        let mut control = base + 7_200;
        let mut rejected = 0;
        // Every 200 frame datagrams, two later-numbered control datagrams overtake the rest.
        for chunk in frame.chunks(200) {
            for _ in 0..2 {
                assert_eq!(w.check(control), Ok(()));
                w.commit(control);
                control += 1;
            }
            for &pn in chunk {
                match w.check(pn) {
                    Ok(()) => w.commit(pn),
                    Err(_) => rejected += 1,
                }
            }
        }
        // Worst case: all control datagrams of the interval arrive before any of the frame.
        let mut w2 = ReplayWindow::new();
        w2.commit(base + 7_200 + 500);
        for &pn in &frame {
            if w2.check(pn).is_err() {
                rejected += 1;
            }
            w2.commit(pn);
        }
        assert_eq!(rejected, 0, "no datagram of the keyframe may be refused");
        // True replays of all of them are still refused, before any AEAD work.
        for &pn in &frame {
            assert_eq!(w.check(pn), Err(ReplayError::Duplicate));
            assert_eq!(w2.check(pn), Err(ReplayError::Duplicate));
        }
        for pn in base + 7_200..control {
            assert_eq!(w.check(pn), Err(ReplayError::Duplicate));
        }
    }

    proptest! {
        // Against a model: a set of everything committed, with the window's age limit.
        #[test]
        fn matches_model(
            ops in proptest::collection::vec((0u64..400_000, 0u64..300), 1..400)
        ) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for (coarse, fine) in ops {
                // Mix long jumps with numbers clustered near the top (duplicates, reordering).
                let pn = if coarse % 3 == 0 { top.saturating_sub(fine) } else { coarse };
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
