//! The reassembler's memory cap: what is given up, oldest first, to make room for a new frame
//! or block. It never gives up the frame being filled.

use super::Reassembler;
use crate::protocol::wire::seq_diff;

impl Reassembler {
    /// Frees memory for `need` more bytes by giving up the oldest frames (never `keep`).
    pub(super) fn make_room(&mut self, need: usize, keep: usize) -> bool {
        if need > self.cfg.memory_cap {
            return false;
        }
        let keep_index = self.slots.get(keep).map(|s| s.index);
        while self.stats.memory_in_use + need > self.cfg.memory_cap {
            let oldest = self
                .slots
                .iter()
                .filter(|s| Some(s.index) != keep_index)
                .min_by_key(|s| seq_diff(s.index, self.floor.unwrap_or(s.index)))
                .map(|s| s.index);
            match oldest {
                Some(i) => self.give_up_through(i),
                None => return false,
            }
        }
        true
    }

    /// Gives up the oldest frame in flight; false when there is none.
    pub(super) fn give_up_oldest(&mut self) -> bool {
        let oldest = self
            .slots
            .iter()
            .min_by_key(|s| seq_diff(s.index, self.floor.unwrap_or(s.index)))
            .map(|s| s.index);
        match oldest {
            Some(i) => {
                self.give_up_through(i);
                true
            }
            None => false,
        }
    }
}
