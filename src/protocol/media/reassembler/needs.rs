//! What the reassembler still lacks, for repair: which frames are in flight and unseen, how
//! short each block is, and the deadlines the session sets on frames it waits to repair.
//!
//! Owns the read-only need queries and the per-frame deadlines; it never requests anything
//! itself (the session decides what to ask the host for and when).

use std::time::Instant;

use super::{MAX_AWAITED, Reassembler, Slot};
use crate::protocol::wire::seq_diff;

/// One incomplete block of a frame (see [`Reassembler::missing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockNeed {
    /// Block index within the frame.
    pub block: u16,
    /// Data shards of the block.
    pub k: u16,
    /// Parity shards the host sent with it (`None` before any shard of the block arrived).
    pub parity: Option<u8>,
    /// Shards received (data, parity and repair).
    pub received: u16,
    /// Shards lacking even if everything above the highest received index still arrives.
    pub short_now: u16,
    /// Shards lacking if nothing more arrives.
    pub short_if_no_more: u16,
    /// Since when the block has lacked an original shard (data or first-send parity) below
    /// the highest original it received — the oldest such hole, `None` when there is none.
    /// `short_now` counts those holes as lost; until a reorder window has passed since this
    /// instant they may be merely reordered.
    pub gap_since: Option<Instant>,
    /// Original shards received above the block's lowest hole (0 without a hole): how many
    /// later shards overtook it, for a duplicate-threshold rule.
    pub above_first_hole: u16,
    /// Highest original shard index received (`None` before the first): at or above `k`
    /// once the block's first-send parity started arriving.
    pub highest_original: Option<u16>,
}

/// An incomplete frame in flight (see [`Reassembler::missing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameNeed {
    /// Frame index.
    pub index: u32,
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
    /// Part of its parity travels behind the next frame (`VIDEO_FLAG_TRAILING`): the frame's
    /// shards do not stop when the next frame's start.
    pub trailing: bool,
    /// When its first shard arrived.
    pub first_seen: Instant,
    /// When its newest shard arrived.
    pub last_activity: Instant,
    /// When it is given up, if the session set a deadline.
    pub deadline: Option<Instant>,
}

impl Reassembler {
    /// When an incomplete frame is given up: its deadline if one was set, otherwise the
    /// reorder window after its last shard.
    pub(super) fn give_up_at(&self, s: &Slot) -> Instant {
        s.deadline
            .unwrap_or(s.last_activity + self.cfg.reorder_window)
    }

    /// Sets the instant at which frame `index`, if still incomplete, is given up, in place of
    /// the reorder window (so that a frame waiting for repair is kept past the window, and one
    /// past its usefulness is dropped at once). Returns `false` if the frame is not in flight
    /// (never seen, delivered or given up). Call [`Reassembler::handle_timeout`] after moving
    /// a deadline into the past.
    pub fn set_deadline(&mut self, index: u32, at: Instant) -> bool {
        match self.slots.iter_mut().find(|s| s.index == index) {
            Some(s) => {
                s.deadline = Some(at);
                true
            }
            None => match self.awaited.iter_mut().find(|a| a.0 == index) {
                Some(a) => {
                    a.1 = at;
                    true
                }
                None => false,
            },
        }
    }

    /// The frames of which no shard arrived, between the next frame to deliver and the newest
    /// frame in flight (or `arriving`, the frame of a shard about to be pushed, if newer), at
    /// most `window` frames behind it (older ones are past any repair), oldest first, into
    /// `out`. Awaited frames are included. Nothing across a discontinuity (an index jump).
    pub(crate) fn unseen_into(&self, window: u32, arriving: Option<u32>, out: &mut Vec<u32>) {
        out.clear();
        let Some(floor) = self.floor else { return };
        let Some(newest) = self
            .slots
            .iter()
            .map(|s| s.index)
            .chain(arriving)
            .max_by_key(|&i| seq_diff(i, floor))
        else {
            return;
        };
        let span = seq_diff(newest, floor);
        if span <= 0 || span as u32 > self.cfg.max_index_jump {
            return;
        }
        let from = (span as u32).saturating_sub(window);
        for d in from..span as u32 {
            let i = floor.wrapping_add(d);
            if !self.slots.iter().any(|s| s.index == i) {
                out.push(i);
            }
        }
    }

    /// Awaits frame `index`, of which no shard arrived, until `deadline`: frames behind it are
    /// not delivered before its shards arrive or the deadline passes (then it is given up as
    /// lost). Returns `false` when it cannot be awaited: a shard of it arrived, it is older
    /// than the next frame to deliver or an index jump ahead of it, or [`MAX_AWAITED`] frames
    /// are awaited already. Awaiting an awaited frame moves its deadline.
    pub(crate) fn await_frame(&mut self, index: u32, deadline: Instant) -> bool {
        let Some(floor) = self.floor else {
            return false;
        };
        let d = seq_diff(index, floor);
        if d < 0
            || d as u32 > self.cfg.max_index_jump
            || self.slots.iter().any(|s| s.index == index)
        {
            return false;
        }
        if let Some(a) = self.awaited.iter_mut().find(|a| a.0 == index) {
            a.1 = deadline;
            return true;
        }
        if self.awaited.len() >= MAX_AWAITED {
            return false;
        }
        self.awaited.push((index, deadline));
        true
    }

    /// Whether frame `index` is awaited (see [`Reassembler::await_frame`]) and none of its
    /// shards arrived yet.
    pub(crate) fn is_awaited(&self, index: u32) -> bool {
        self.awaited.iter().any(|a| a.0 == index)
    }

    /// Indices of the frames in flight that are not complete yet, oldest first.
    pub fn incomplete(&self) -> Vec<u32> {
        let mut v = Vec::new();
        self.incomplete_into(&mut v);
        v
    }

    /// Like [`Reassembler::incomplete`], into a buffer the caller reuses (the session asks after
    /// every video datagram, which must not allocate).
    pub(crate) fn incomplete_into(&self, out: &mut Vec<u32>) {
        let floor = self.floor.unwrap_or(0);
        out.clear();
        out.extend(self.slots.iter().filter(|s| !s.complete()).map(|s| s.index));
        out.sort_by_key(|&i| seq_diff(i, floor));
    }

    /// What frame `index` still lacks, block by block (complete blocks are left out), into
    /// `out`. `None` if the frame is not in flight.
    ///
    /// For each block, `short_now` is how many shards it lacks even if every original shard it
    /// has not seen *above its highest received original index* still arrives (shards below
    /// it that are missing are taken as lost: a frame is sent in index order, so only
    /// reordering brings them back — [`BlockNeed::gap_since`] says how long they have been
    /// missing). When `short_now > 0` the block cannot complete from what is in flight unless
    /// its holes were reordered, and the client should ask for repair once a reorder window
    /// has passed; `short_if_no_more` is what it lacks if nothing more arrives (use it once
    /// the frame's shards stopped coming). Repair shards already
    /// requested but not yet arrived are not counted; the caller knows them.
    pub fn missing(&self, index: u32, out: &mut Vec<BlockNeed>) -> Option<FrameNeed> {
        let s = self.slots.iter().find(|s| s.index == index)?;
        out.clear();
        for (b, blk) in s.blocks.iter().enumerate() {
            if blk.done {
                continue;
            }
            let k = s.layout.data_in_block(b);
            let received = blk.total_count as usize + self.usable_window_rows(s);
            let short_if_no_more = k.saturating_sub(received);
            let short_now = if blk.highest == u16::MAX || blk.m == u16::MAX {
                0
            } else {
                let sent = k + blk.m as usize;
                let still_coming = sent.saturating_sub(blk.highest as usize + 1);
                k.saturating_sub(received + still_coming)
            };
            out.push(BlockNeed {
                block: b as u16,
                k: k as u16,
                parity: (blk.m != u16::MAX).then_some(blk.m as u8),
                received: received as u16,
                short_now: short_now as u16,
                short_if_no_more: short_if_no_more as u16,
                gap_since: blk.gap_since,
                // Every original below the lowest hole arrived; the rest lie above it.
                above_first_hole: if blk.gap_since.is_some() {
                    (blk.originals as usize).saturating_sub(blk.first_missing()) as u16
                } else {
                    0
                },
                highest_original: (blk.highest != u16::MAX).then_some(blk.highest),
            });
        }
        Some(FrameNeed {
            index: s.index,
            keyframe: s.keyframe,
            trailing: s.trailing,
            first_seen: s.first_seen,
            last_activity: s.last_activity,
            deadline: s.deadline,
        })
    }
}
