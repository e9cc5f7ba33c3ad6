//! How frames leave the reassembler: delivered whole (a trailing frame's data also kept for the
//! window rows of the frames after it), or given up, in index order. It never delivers a frame
//! out of order or one that is incomplete.

use super::{Frame, Output, Reassembler, Slot};
use crate::protocol::fec::coder::MAX_PAIRED_K;
use crate::protocol::wire::seq_diff;

impl Reassembler {
    pub(super) fn remove_slot(&mut self, index: u32) -> Option<Slot> {
        let p = self.slots.iter().position(|s| s.index == index)?;
        let s = self.slots.swap_remove(p);
        self.stats.memory_in_use -= s.bytes;
        Some(s)
    }

    pub(super) fn lost(&mut self, first_index: u32, count: u32) {
        if count == 0 {
            return;
        }
        self.stats.frames_lost += count as u64;
        self.lost_since_delivery = true;
        self.out.push_back(Output::Lost { first_index, count });
    }

    /// Gives up every frame from the floor through `index` (complete ones are delivered).
    pub(super) fn give_up_through(&mut self, index: u32) {
        let Some(floor) = self.floor else { return };
        let span = seq_diff(index, floor);
        if span < 0 {
            return;
        }
        let mut i = floor;
        let end = index.wrapping_add(1);
        let mut run_start = None::<u32>;
        let mut run = 0u32;
        // Walk only over tracked slots plus the gaps between them, counting gaps at once.
        let mut tracked: Vec<u32> = self
            .slots
            .iter()
            .map(|s| s.index)
            .filter(|&s| seq_diff(s, floor) >= 0 && seq_diff(s, index) <= 0)
            .collect();
        tracked.sort_by_key(|&s| seq_diff(s, floor));
        for t in tracked {
            let gap = t.wrapping_sub(i);
            if gap > 0 {
                run_start.get_or_insert(i);
                run += gap;
            }
            let slot = self.remove_slot(t);
            match slot {
                Some(s) if s.complete() => {
                    if let Some(st) = run_start.take() {
                        self.lost(st, run);
                        run = 0;
                    }
                    self.deliver(s);
                }
                _ => {
                    run_start.get_or_insert(t);
                    run += 1;
                }
            }
            i = t.wrapping_add(1);
        }
        let gap = end.wrapping_sub(i);
        if gap > 0 {
            run_start.get_or_insert(i);
            run += gap;
        }
        if let Some(st) = run_start {
            self.lost(st, run);
        }
        self.floor = Some(end);
        self.awaited.retain(|a| seq_diff(a.0, end) >= 0);
    }

    pub(super) fn give_up_all(&mut self) {
        let newest = self
            .slots
            .iter()
            .map(|s| s.index)
            .max_by_key(|&s| seq_diff(s, self.floor.unwrap_or(s)));
        match newest {
            Some(n) => self.give_up_through(n),
            None => {
                if let Some(f) = self.floor {
                    self.lost(f, 1);
                }
            }
        }
    }

    pub(super) fn deliver(&mut self, mut s: Slot) {
        // Later frames' window rows may name it: a trailing frame, or a frame that may be
        // paired once windows are in use.
        if s.trailing
            || (self.windows_seen
                && s.layout.blocks == 1
                && s.layout.data_in_block(0) <= MAX_PAIRED_K)
        {
            self.retained
                .keep(s.index, s.frame_len, s.shard_size as usize, &s.data);
        }
        s.data.truncate(s.frame_len as usize);
        self.stats.frames_delivered += 1;
        let discont = std::mem::take(&mut self.lost_since_delivery);
        self.out.push_back(Output::Frame(Frame {
            index: s.index,
            keyframe: s.keyframe,
            data: s.data,
            discont,
            recovered_shards: s.recovered,
            first_seen: s.first_seen,
            timing: s.timing,
            last_data_at: s.last_data_at,
            complete_at: self.now.unwrap_or(s.last_activity).max(s.last_activity),
        }));
    }
}
