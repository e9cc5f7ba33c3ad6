//! The client's windows for repair: when a hole in a block counts as loss (the reorder
//! window), when a frame has stopped coming (the stall windows), how long a round and a frame's
//! repair deadline last, and what delivered frames teach them.
//!
//! - the stall windows adapt, like RACK's reordering window on DSACKs: a request that asked for
//!   rows beyond `short_now` (the stall path) is *spurious* if an original shard of that frame
//!   (data or parity of the first send, not a repair row) arrives after it, taken or refused
//!   as a duplicate or late (repair rows may have completed the frame first). Each such frame
//!   counts once (`Stats::repair_spurious`) and doubles the windows' scale, capped so that the
//!   long window stays within half the repair deadline (a frame whose tail was really lost
//!   still gets its repair rounds). Every frame delivered without a spurious request decays the
//!   scale's excess over 1 by 1 % (half-life ~1.2 s at 60 fps), but not below what covers
//!   1.25 × that frame's longest silence between its originals: a sender that keeps being
//!   descheduled keeps its window instead of costing a spurious request every second. Why: on
//!   an overloaded host the sender thread is descheduled mid-frame and the tail of a frame
//!   arrives merely late; asking for it spends repair bytes on shards that were not lost.
//!   Under real loss with a healthy sender nothing is spurious, so the windows stay at their
//!   unscaled 3 / 8 ms and repair stays fast. The scale resets with the session;
//! - reordering is not loss (RACK, RFC 8985, on the receiving side): a hole below a block's
//!   highest original shard counts as loss only once it outlived the reorder window. While no
//!   reordering is seen the window is 0 and a hole counts as soon as [`DUP_THRESH`] originals
//!   arrived above it, or after a quarter RTT (at most [`REORDER_BASE_MAX`]). Every original shard
//!   that fills a hole shows how long reordering kept it: the window grows to 1.25 × that plus
//!   a quarter RTT, capped at half the repair deadline (a frame first seen by one of its trailing
//!   rows, sent behind the next frame by design, is not reordered), and decays by 1 % per frame delivered
//!   while no reordering is seen (forgotten once below a quarter RTT). The stall windows never
//!   go below it. Why: a frame delivered backwards (a middlebox, a bonded or multipath link)
//!   otherwise looked like dozens of lost shards the moment its first datagram arrived, and
//!   the repair rows and refusals it drew gave up a frame that was arriving whole.
//!
//! Must never: grow a window past half the repair deadline, or touch host state.

use std::time::{Duration, Instant};

use crate::protocol::media::reassembler::{BlockNeed, FrameNeed, Output};
use crate::protocol::wire::seq_diff;

use super::super::Connection;
use super::{LONG_STALL, REORDER_BASE_MAX, Repairs, STALL_AFTER};

/// Growth of the stall windows' scale on a spurious stall request (the frame's original shards
/// came after all: its sender was late, not lossy).
const STALL_GROWTH: f64 = 2.0;

/// Decay of the scale's excess over 1 per frame delivered without a spurious request: a
/// half-life of 69 frames (1.15 s at 60 fps).
const STALL_DECAY: f64 = 0.99;

/// The scale does not decay below what covers this multiple of the delivered frame's longest
/// silence between its original shards (a sender that is still descheduled keeps its window).
const STALL_HEADROOM: f64 = 1.25;

/// Bound of the scale whatever the deadline.
const MAX_STALL_SCALE: f64 = 8.0;

/// Headroom of the reorder window over the longest reordering seen: a hole is asked for once it
/// has been open 1.25 × as long as any reordered shard took to fill one, plus the base
/// allowance ([`Connection::reorder_base`]).
const REORDER_HEADROOM: f64 = 1.25;

/// Decay of the reorder window per frame delivered while no reordering was seen since the
/// previous one (the stall scale's half-life: 69 frames, 1.15 s at 60 fps).
const REORDER_DECAY: f64 = 0.99;

/// While no reordering is seen, a hole counts as loss as soon as this many original shards of
/// its block arrived above it (TCP's duplicate threshold), or after the base allowance.
const DUP_THRESH: u16 = 3;

/// Frame interval assumed before one is measured (60 fps).
const DEFAULT_FRAME_INTERVAL: Duration = Duration::from_micros(16_667);

/// Round length before an RTT is measured.
const DEFAULT_ROUND: Duration = Duration::from_millis(10);

/// Margin of a round over the RTT: the host's answer takes a receive wake-up and an encode.
const ROUND_MARGIN: Duration = Duration::from_millis(2);

/// Repair rounds a frame's deadline allows after its frame interval.
const DEADLINE_ROUNDS: u32 = 3;

/// Bounds of the derived deadline.
const MIN_DEADLINE: Duration = Duration::from_millis(10);
const MAX_DEADLINE: Duration = Duration::from_millis(250);

impl Connection {
    /// Client: an original shard of frame `index` arrived. It extends the frame's measured
    /// silences; if the frame was asked for on the stall path, that request was spurious (the
    /// shards were late, not lost): counted once per frame, and the stall windows grow.
    pub(super) fn on_original_shard(&mut self, index: u32, trailing_row: bool, now: Instant) {
        let Some(c) = self.side.client_mut() else {
            return;
        };
        if let Some(p) = c.repair.gaps.iter().position(|g| g.0 == index) {
            // A frame that a newer one overtook: reordering, as a hole filled late is — unless
            // what came is one of its trailing rows, which the host sends behind the next
            // frame's datagrams: its data was lost, nothing was reordered.
            let (_, noticed, _) = c.repair.gaps.remove(p).expect("found");
            if !trailing_row {
                self.on_reordering(now.saturating_duration_since(noticed));
            }
        }
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let r = &mut c.repair;
        match &mut r.originals {
            Some((i, last, gap)) if *i == index => {
                *gap = (*gap).max(now.saturating_duration_since(*last));
                *last = now;
            }
            // A late original of an older frame leaves the newer frame's measurement alone.
            Some((i, _, _)) if seq_diff(index, *i) < 0 => {}
            o => *o = Some((index, now, Duration::ZERO)),
        }
        if let Some(p) = r.stall_asked.iter().position(|&i| i == index) {
            r.stall_asked.remove(p);
            r.spurious = Some(index);
            // The cap (from the repair deadline) only on a hit: this runs for every shard.
            let cap = self.stall_scale_cap();
            let Some(c) = self.side.client_mut() else {
                return;
            };
            let r = &mut c.repair;
            r.stall_scale = (r.stall_scale * STALL_GROWTH).min(cap).max(1.0);
            self.stats.repair_spurious += 1;
        }
    }

    /// Client: an original shard filled a hole that had been open for `age`: the reorder
    /// window grows to cover it with headroom (never past half the repair deadline, so a frame
    /// that really lost shards still gets its repair rounds).
    pub(super) fn on_reordering(&mut self, age: Duration) {
        let cap = self.repair_deadline() / 2;
        let base = self.reorder_base();
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let r = &mut c.repair;
        r.reordered = true;
        r.reorder = r.reorder.max(age.mul_f64(REORDER_HEADROOM) + base).min(cap);
    }

    /// The reorder window now (see [`Repairs::reorder`]).
    pub(super) fn reorder_window(&self) -> Duration {
        self.side
            .client()
            .map_or(Duration::ZERO, |c| c.repair.reorder)
    }

    /// The least time a hole may be reordered: a quarter of the RTT (RACK's `min_rtt / 4`),
    /// at most [`REORDER_BASE_MAX`].
    pub(super) fn reorder_base(&self) -> Duration {
        (self.srtt.unwrap_or(DEFAULT_ROUND) / 4).min(REORDER_BASE_MAX)
    }

    /// When the holes of a block count as loss: once they outlived the reorder window; while
    /// no reordering was seen, once [`DUP_THRESH`] originals arrived above the lowest or the
    /// base allowance passed. `None`: the block has no hole.
    pub(super) fn gap_lost_at(n: &BlockNeed, reorder: Duration, base: Duration) -> Option<Instant> {
        let g = n.gap_since?;
        Some(if !reorder.is_zero() {
            g + reorder
        } else if n.above_first_hole >= DUP_THRESH {
            g
        } else {
            g + base
        })
    }

    /// The largest stall scale: the long window stays within half the repair deadline (a
    /// frame whose tail was really lost still gets its repair rounds), and never below 1 (the
    /// unscaled windows).
    fn stall_scale_cap(&self) -> f64 {
        let half = self.repair_deadline() / 2;
        (half.as_secs_f64() / LONG_STALL.as_secs_f64()).clamp(1.0, MAX_STALL_SCALE)
    }

    /// The stall windows now: ([`STALL_AFTER`], [`LONG_STALL`]) scaled, each within half the
    /// repair deadline but never below its unscaled value nor below the reorder window (a
    /// frame whose shards a newer frame overtook may only be reordered).
    pub(super) fn stall_windows(&self) -> (Duration, Duration) {
        let cap = self.repair_deadline() / 2;
        let s = self.side.client().map_or(1.0, |c| c.repair.stall_scale);
        let reorder = self.reorder_window();
        let scaled = |base: Duration| base.mul_f64(s).min(cap).max(base).max(reorder);
        (scaled(STALL_AFTER), scaled(LONG_STALL))
    }

    /// One RTT plus margin: how long a repair answer takes to come back. The margin (a quarter
    /// RTT and 2 ms) covers the jitter of both ways and the host's wake-up; every millisecond
    /// beyond it is added to the freeze of a frame whose request copies were all lost (the
    /// second round starts only when this one ends).
    pub(super) fn repair_round(&self) -> Duration {
        self.srtt
            .map_or(DEFAULT_ROUND, |r| r + r / 4 + ROUND_MARGIN)
    }

    /// How long after its first shard a frame may wait for repair.
    pub(super) fn repair_deadline(&self) -> Duration {
        if let Some(d) = self.cfg.repair_deadline {
            return d;
        }
        let fi = self
            .side
            .client()
            .and_then(|c| c.repair.frame_interval)
            .unwrap_or(DEFAULT_FRAME_INTERVAL);
        (fi + self.repair_round() * DEADLINE_ROUNDS).clamp(MIN_DEADLINE, MAX_DEADLINE)
    }

    /// Whether frame `f`'s sender moved on, and its long stall window (`long_stall` for most
    /// frames). A frame whose parity partly trails behind the next frame
    /// ([`FrameNeed::trailing`]) has not stopped when the next frame's shards arrive: its
    /// sender moved on once a frame after that one shows, and its long window is a frame
    /// interval longer. Asking before its trailing rows could arrive would spend repair on
    /// what they rebuild one frame interval later.
    pub(super) fn stall_view_of(
        r: &Repairs,
        f: &FrameNeed,
        long_stall: Duration,
    ) -> (Option<Instant>, Duration) {
        let ahead = r.newest.map_or(0, |n| seq_diff(n, f.index));
        if f.trailing {
            let fi = r.frame_interval.unwrap_or(DEFAULT_FRAME_INTERVAL);
            let moved_on = match ahead {
                ..=0 => None,
                // Its rows follow the next frame's datagrams: once those stopped too.
                1 => Some(
                    r.last_shard_at
                        .map_or(f.last_activity, |t| t.max(f.last_activity)),
                ),
                _ => Some(f.last_activity),
            };
            (moved_on, long_stall + fi)
        } else {
            ((ahead > 0).then_some(f.last_activity), long_stall)
        }
    }

    /// Client: what the reassembler handed out, for the repair accounting.
    pub(in crate::session::connection) fn repair_on_output(&mut self, o: &Output) {
        let base = self.reorder_base();
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let r = &mut c.repair;
        match o {
            Output::Frame(f) => {
                let mut whole = false;
                if let Some(p) = r.tracked.iter().position(|t| t.index == f.index) {
                    if r.tracked[p].requested {
                        self.stats.frames_repaired += 1;
                    }
                    whole = r.tracked[p].whole > 0;
                    r.tracked.swap_remove(p);
                }
                if !std::mem::take(&mut r.reordered) {
                    r.reorder = r.reorder.mul_f64(REORDER_DECAY);
                    // Shrunk below the base allowance: reordering is forgotten.
                    if r.reorder < base {
                        r.reorder = Duration::ZERO;
                    }
                }
                if r.spurious != Some(f.index) {
                    // Decay towards 1, but keep covering this frame's longest silence between
                    // its originals (with headroom) while the scale is that large.
                    let gap = match r.originals {
                        Some((i, _, g)) if i == f.index => g,
                        _ => Duration::ZERO,
                    };
                    let held = gap.as_secs_f64() * STALL_HEADROOM / LONG_STALL.as_secs_f64();
                    let decayed = 1.0 + (r.stall_scale - 1.0) * STALL_DECAY;
                    r.stall_scale = decayed.max(held.min(r.stall_scale));
                }
                // A frame asked for whole is first seen a round trip late: no interval sample.
                if whole {
                    return;
                }
                if let Some((i, t)) = r.last_frame {
                    let d = seq_diff(f.index, i);
                    if d > 0 && f.first_seen > t {
                        let sample = (f.first_seen - t) / d as u32;
                        r.frame_interval = Some(match r.frame_interval {
                            Some(s) => (s * 7 + sample) / 8,
                            None => sample,
                        });
                    }
                }
                r.last_frame = Some((f.index, f.first_seen));
            }
            Output::Lost { first_index, count } => {
                let before = r.tracked.len();
                r.tracked.retain(|t| {
                    !(0..*count as i64).contains(&(seq_diff(t.index, *first_index) as i64))
                });
                self.stats.frames_deadline_lost += (before - r.tracked.len()) as u64;
            }
        }
    }

    /// Client: how long a gap in the frame indices waits for the frame before it is asked for
    /// whole: the reorder window, or while no reordering was seen the base allowance (a
    /// quarter RTT, at most [`REORDER_BASE_MAX`]).
    pub(super) fn whole_frame_wait(&self) -> Duration {
        let reorder = self.reorder_window();
        if reorder.is_zero() {
            self.reorder_base()
        } else {
            reorder
        }
    }

    /// Client: how far behind the newest frame a frame lost whole is still asked for (the
    /// frames within its repair deadline), and, for one found lost now, when it would have
    /// arrived (about a frame interval before the newer frame that shows the gap) and when it
    /// is given up.
    pub(super) fn whole_frame_window(&self, now: Instant) -> (u32, Instant, Instant) {
        let deadline = self.repair_deadline();
        let fi = self
            .side
            .client()
            .and_then(|c| c.repair.frame_interval)
            .unwrap_or(DEFAULT_FRAME_INTERVAL)
            .max(Duration::from_millis(1));
        let window = (deadline.as_micros() / fi.as_micros()).clamp(1, 64) as u32;
        let origin = now.checked_sub(fi).unwrap_or(now);
        (window, origin, origin + deadline)
    }
}
