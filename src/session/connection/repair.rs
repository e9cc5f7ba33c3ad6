//! Loss resilience in the session: the client's loss model, repair requests and per-frame
//! repair deadlines; the host's answers are in `answer`, the client's reorder and stall
//! windows in `windows`.
//!
//! Client:
//! - every authenticated packet number of the host feeds a [`LossEstimator`]; its model goes
//!   out in every loss report (`client`);
//! - after each video datagram and timer, every incomplete frame is checked
//!   ([`Reassembler::missing`]): a block that cannot complete from what is in flight
//!   (`short_now > 0`) once its holes count as loss (the reorder window, `windows`), or lacks shards
//!   once the frame's shards stopped coming
//!   (`short_if_no_more`: [`STALL_AFTER`] without a shard while a newer frame's shards arrive,
//!   or [`LONG_STALL`] without any, both scaled as `windows` says), is asked for at once
//!   (`Control::RepairRequest`), minus what this round already asked for. A round lasts one
//!   RTT plus margin (`repair_round`); after it, what is still missing is asked for again (the
//!   host sends new rows). A request names per-block totals over all rounds, and each goes out
//!   [`REQUEST_COPIES`] more times, RTT / 64 apart (1–4 ms), while its frame is incomplete: the
//!   back path loses in bursts too, and the host serves a copy nothing new;
//! - a frame flagged trailing asks early: once its own run of datagrams ended (an original
//!   shard of another frame came after its newest, plus the reorder window; or none of its
//!   shards came for [`LONG_STALL`], as scaled — its datagrams leave together, and a burst that
//!   took its tail may have taken what followed too) and before any of
//!   its trailing rows came, the data shards it lacks are asked for at once if the client's
//!   loss model gives its trailing rows at least [`EARLY_ASK_RISK`] of failing to rebuild them
//!   (a request sent once the rows failed lands a frame interval later, past a WAN budget);
//!   such a request is marked early and answered without margin rows (the trailing rows are
//!   the frame's other chance). A frame lost whole just before a trailing frame is asked for
//!   at once under the same risk rule, instead of after its own trailing rows; so is the frame
//!   after the newest once a trailing row of the newest arrives before any shard of it (the
//!   host sends those rows right behind it: it was lost whole, a frame interval before the
//!   frame after it would show the gap);
//! - when a hole counts as loss and when a frame has stopped coming is the reorder window
//!   and the stall windows (`windows`), which learn from reordered and late shards;
//! - a frame of which nothing arrived while a newer frame's shards do (indices are
//!   consecutive: every datagram of it was lost, or it was overtaken) is awaited by the
//!   reassembler before the newer shard is pushed, and asked for whole once the gap outlived
//!   the reorder window (the base allowance while none is seen; its first original shard, if
//!   it was only overtaken, teaches the window) (`RepairRequest::whole`: `rounds × k`
//!   rows per block, the host knows the blocks), with the same copies; a round without any
//!   answer asks for one more round of rows. Only frames within the repair deadline behind the
//!   newest, at most `MAX_AWAITED` at once; once its shards arrive it is repaired like any
//!   frame, its totals taken over from the whole-frame requests;
//! - a frame flagged trailing (its parity follows the next frame, `docs/PROTOCOL.md` §9.3) has
//!   not stalled when the next frame's shards arrive: the short stall window counts from when
//!   the next frame's shards stopped too (or from a frame after that), the long one is a frame
//!   interval longer; a frame lost whole just before a trailing frame is asked for whole only
//!   once a frame after that shows (its trailing rows may rebuild it alone);
//! - each incomplete frame gets a deadline ([`Reassembler::set_deadline`]): first shard +
//!   frame interval + three rounds, or `Config::repair_deadline`, but never before the
//!   reassembler's reorder window after its newest shard (a sender that is slow or was
//!   descheduled is not given up on while its shards still come). At the deadline the
//!   reassembler gives it up (`Event::FramesLost`, on which the element requests a keyframe at
//!   once); a `RepairUnavailable` from the host (frame not held, rows used up) for a block that
//!   cannot complete moves the deadline to the reorder window after the frame's newest shard
//!   (now when no reordering is seen): no repair will come, but shards still arriving may.
//!
//! The host's answers (repair rows, trailing parity, the loss-model feed) are `answer`.
//!
//! Must never: ask twice in one round for the same rows, track more frames than are in flight,
//! or keep a request copy due without a session to send it.

mod answer;
mod whole;
mod windows;

pub(super) use answer::HostRepair;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::control::Control;
use crate::protocol::fec::coder::{BlockLayout, MAX_TRAILING_K, trailing_parity};
use crate::protocol::fec::lossmodel::{
    FailureTable, GilbertElliott, LossEstimator, LossModelReport,
};
use crate::protocol::fec::repair::{
    MAX_REPAIR_ITEMS, MAX_REPAIR_ROWS, RepairItem, RepairRequest, RepairUnavailable,
    UnavailableReason,
};
use crate::protocol::media::reassembler::{BlockNeed, FrameNeed, Rejected};
use crate::protocol::wire::{VideoHeader, seq_diff};

use super::{Connection, Side};

/// A frame whose newest shard is this old has stopped coming: what it lacks now is asked for.
/// Paced chunks of one frame are well under a millisecond apart at the pacing rates the host
/// uses (≥ 200 Mbit/s, 16 datagrams a chunk), so 3 ms of silence means the rest was lost.
const STALL_AFTER: Duration = Duration::from_millis(3);

/// Most a hole waits for a reordered shard while no reordering has been seen (RACK's quarter
/// RTT, capped). On a WAN path every millisecond here comes out of a frame budget of one way +
/// one RTT: at 30 ms one way with bursts both ways, a 3 ms cap delivered 97.9 % of a
/// 4 Mbit/s stream's frames on time, 1 ms 98.6 % (`tests/wan_loss.rs`, `wan_table`). A path
/// that does reorder teaches the window within its first frame (`Repairs::reorder`).
const REORDER_BASE_MAX: Duration = Duration::from_millis(1);

/// Silence after which a frame counts as stalled even if no newer frame shows that its sender
/// moved on: a sender that is descheduled mid-frame must not make the client ask for (and the
/// budget pay for) shards that are merely late; a frame whose whole tail was lost waits this
/// long for its repair. Both windows are the unscaled ones: they grow on spurious stall
/// requests and decay back (see the module docs).
const LONG_STALL: Duration = Duration::from_millis(8);

/// Frames asked for on the stall path that are watched for late original shards.
const STALL_WATCH: usize = 16;

/// Copies of each repair request sent after the first: the back path loses in bursts too, and
/// a lost request costs a whole round trip, which on a wide-area path is past the deadline.
/// The host answers the part of a request's totals it has not served, so a copy that arrives
/// after its original costs one tiny datagram and no repair bytes. A burst counted in
/// datagrams (mean length 5 at 2 % / 20 %) takes all of `1 + n` with ≈ 0.09 × 0.8^n: 2.4 %
/// with 6 copies, 0.13 % with 20. A 720p stream at 20 Mbit/s needs ~30 repair rounds in a
/// 20 s row, and one that fails costs a second round, past the freeze budget: with 12 copies
/// one run in three had such a freeze, with 20 (and [`REPAIR_TARGET`] 1e-3) none of four
/// (`docs/wan_protection.md`). Copies stop once the frame completes, so 20 copies 1 ms apart
/// cost the back path ~20 ms of 41-byte datagrams per request (~60 kbit/s at the 4 Mbit/s
/// stream's ~10 requests a second).
///
/// [`REPAIR_TARGET`]: crate::protocol::fec::adaptive::REPAIR_TARGET
const REQUEST_COPIES: u8 = 20;

/// Bounds of the spacing between copies of a request (a 64th of the RTT between them): apart
/// enough that a short burst on the back path does not take every copy, close enough that
/// the first copy to get through costs the repair little. The back path carries few datagrams,
/// so a burst counted in datagrams takes consecutive copies whatever their spacing; each copy
/// it takes delays the answer by one spacing. At RTT / 16 (3.75 ms on a 60 ms path) a request
/// whose first three copies were lost was answered 11 ms late, past a frame's budget
/// (`tests/wan_loss.rs` `wan_table`, 20 Mbit/s at 2 % / 20 %: 99.85 % on time, 1 ms: 99.94 %).
const MIN_COPY_SPACING: Duration = Duration::from_millis(1);
const MAX_COPY_SPACING: Duration = Duration::from_millis(4);

/// Chance, under the client's loss model, that a frame's trailing rows fail to rebuild the data
/// shards it lacks above which those shards are asked for before the rows are due (the
/// frame would miss its budget if they fail, a round trip after they were due). At the
/// milder bursts (enter 1 %, leave 30 %) most frames that lost one or two shards stay below it
/// and cost no repair rows; at 9 % bursty loss nearly every such frame is asked for. 2 % left
/// frames that lost three shards at the milder bursts to fail past the budget; 0.5 %
/// cost more overhead for no more frames on time (`docs/wan_protection.md`).
const EARLY_ASK_RISK: f64 = 1e-2;

/// Requests whose copies are pending at most (a frame's new request replaces its old copies).
const MAX_PENDING_COPIES: usize = 32;

/// Client-side repair state of one frame.
#[derive(Debug, Clone)]
struct Tracked {
    index: u32,
    /// When the current round started (`None`: nothing asked yet).
    round_start: Option<Instant>,
    /// Rows asked per block in the current round (`(block, rows)`, blocks increasing).
    asked: Vec<(u16, u16)>,
    /// Rows asked per block over every round (what a request names: the host answers the
    /// part of a total it has not served, so copies and stale requests cost nothing).
    totals: Vec<(u16, u8)>,
    /// Whether repair was ever asked for this frame.
    requested: bool,
    /// The host said no more repair can come (frame not held, rows used up): the frame is
    /// given up once its own shards stop coming for a reorder window.
    exhausted: bool,
    /// Rounds of whole-frame requests sent (0: the frame's shards arrived before any repair).
    whole: u8,
    /// When a frame asked for whole would have arrived: its deadline counts from here, not
    /// from its first (repair) shard.
    origin: Option<Instant>,
    /// Whether the totals of a frame asked for whole were taken over once its blocks became
    /// known (the whole-frame requests asked each block for `rounds × k` rows).
    seeded: bool,
}

impl Tracked {
    fn new(index: u32) -> Self {
        Tracked {
            index,
            round_start: None,
            asked: Vec::new(),
            totals: Vec::new(),
            requested: false,
            exhausted: false,
            whole: 0,
            origin: None,
            seeded: false,
        }
    }

    /// Rows asked for `block` over every round.
    fn total_of(&self, block: u16) -> u16 {
        self.totals
            .iter()
            .find(|(b, _)| *b == block)
            .map_or(0, |&(_, r)| u16::from(r))
    }

    /// Rows asked for `block` in the current round.
    fn asked_of(&self, block: u16) -> u16 {
        self.asked
            .iter()
            .find(|(b, _)| *b == block)
            .map_or(0, |&(_, r)| r)
    }
}

/// Client: loss model and repair requests.
pub(super) struct Repairs {
    pub(super) estimator: LossEstimator,
    tracked: Vec<Tracked>,
    needs: Vec<BlockNeed>,
    /// Reused list of the frames in flight that are not complete.
    incomplete: Vec<u32>,
    /// Reused list of the frames not seen although a newer one was.
    unseen: Vec<u32>,
    /// Smoothed frame interval from delivered frames, and the last `(index, first_seen)`.
    frame_interval: Option<Duration>,
    last_frame: Option<(u32, Instant)>,
    /// Index of the newest frame a shard arrived for.
    newest: Option<u32>,
    /// Whether that frame keeps parity behind the next frame (the host sends small frames so):
    /// a frame lost whole before it may still be rebuilt by its own trailing rows, which
    /// travel behind this one.
    newest_trailing: bool,
    /// That frame's data shards and first-send parity rows when it is one block (the shape the
    /// frame lost whole before it most likely had).
    newest_shape: Option<(u16, u8)>,
    /// The frame after the newest, once a trailing row of the newest arrived before any shard
    /// of it: the host sends those rows right behind that frame's datagrams, so every one of
    /// them was lost (or is reordered). Asked for whole as a gap (`ask_whole_frames`) while
    /// the newest has not moved on.
    implied: Option<u32>,
    /// When the last video shard that was taken arrived.
    last_shard_at: Option<Instant>,
    /// The frame and arrival of the newest original shard (data or first-send parity), taken
    /// or refused: originals leave in one order, so one of another frame arriving after a
    /// frame's newest shard ends that frame's run of datagrams.
    last_original: Option<(u32, Instant)>,
    /// Failure probabilities of runs of datagrams under the newest loss model sent (runs of
    /// up to a trailing frame's rows); `None` before the first.
    model: Option<FailureTable>,
    /// Scale of both stall windows (≥ 1): doubles on a spurious stall request, decays towards 1
    /// with frames delivered without one.
    stall_scale: f64,
    /// Frames asked for on the stall path (rows beyond `short_now`) whose original shards have
    /// not come since (oldest first, at most [`STALL_WATCH`]).
    stall_asked: VecDeque<u32>,
    /// The newest frame original shards arrive for: its index, when its newest original came,
    /// and its longest silence between two originals.
    originals: Option<(u32, Instant, Duration)>,
    /// The last frame found to have been asked for spuriously (its delivery does not decay).
    spurious: Option<u32>,
    /// The reorder window (RACK's `reo_wnd`): how long a hole below a block's highest
    /// original shard may stay open before it counts as loss. Zero until reordering is seen on
    /// this session; then 1.25 × the longest hole a reordered shard filled plus a quarter
    /// RTT, decaying while no reordering is seen, within half the repair deadline.
    reorder: Duration,
    /// Reordering was seen since the last frame delivered (that delivery does not decay).
    reordered: bool,
    /// Requests whose copies are still to go: (when the next copy is due, copies left, the
    /// request). At most one entry per frame, at most [`MAX_PENDING_COPIES`].
    copies: VecDeque<(Instant, u8, RepairRequest)>,
    /// Frames not seen although a newer frame's shards arrived, since when, and whether the
    /// gap was dealt with (asked for whole, or cannot be) (oldest first, at most [`MAX_GAPS`]):
    /// each is asked for whole once the gap outlived the reorder window.
    gaps: VecDeque<(u32, Instant, bool)>,
}

/// Unseen frames whose gap is timed at once at most.
const MAX_GAPS: usize = 16;

impl Repairs {
    /// Frame `index` lies just before the newest frame, which keeps parity behind it: that
    /// frame's trailing rows may still rebuild it, so it is not asked for whole yet — unless
    /// the loss model gives rows of the newest frame's shape at least [`EARLY_ASK_RISK`] of
    /// failing to rebuild a whole frame (then it is asked for at once, as any gap).
    fn trailing_due(&self, index: u32) -> bool {
        self.newest_trailing
            && self.newest.is_some_and(|n| seq_diff(n, index) == 1)
            && !self.whole_risky()
    }

    /// Whether the loss model gives trailing rows of the newest frame's shape at least
    /// [`EARLY_ASK_RISK`] of failing to rebuild a frame lost whole.
    fn whole_risky(&self) -> bool {
        self.newest_shape
            .is_some_and(|(k, m)| self.early_risk(k, Some(m), k))
    }

    /// The frame after the newest that a trailing row of the newest showed lost whole, while
    /// the newest has not moved on (see [`Repairs::implied`]).
    fn implied_gap(&self) -> Option<u32> {
        self.implied
            .filter(|&i| self.newest.is_some_and(|n| seq_diff(i, n) == 1))
    }

    /// Whether an original shard of another frame arrived after frame `f`'s newest shard:
    /// its own run of datagrams has ended.
    fn run_ended(&self, f: &FrameNeed) -> bool {
        self.last_original
            .is_some_and(|(i, at)| i != f.index && at >= f.last_activity)
    }

    /// The loss model just reported: the risk of trailing rows failing follows it.
    pub(super) fn on_model(&mut self, report: &LossModelReport) {
        self.model = GilbertElliott::from_counts(&report.window)
            .map(|m| FailureTable::new(&m, MAX_TRAILING_K + 1));
    }

    /// Whether a block of `k` data shards and `parity` first-send rows that lacks `short`
    /// data shards once its data run ended should ask for them now: its trailing rows fail
    /// to rebuild them with a chance of at least [`EARLY_ASK_RISK`] (always without a model).
    fn early_risk(&self, k: u16, parity: Option<u8>, short: u16) -> bool {
        let t = trailing_parity(k as usize, parity.map_or(0, usize::from));
        if short == 0 || t == 0 {
            return false;
        }
        let Some(model) = &self.model else {
            return true;
        };
        // The rows fail when more than `t − short` of them are lost.
        (short as usize) > t || model.tail(t, t - short as usize) >= EARLY_ASK_RISK
    }

    pub(super) fn new() -> Self {
        Repairs {
            estimator: LossEstimator::default(),
            tracked: Vec::new(),
            needs: Vec::new(),
            incomplete: Vec::new(),
            unseen: Vec::new(),
            frame_interval: None,
            last_frame: None,
            newest: None,
            newest_trailing: false,
            newest_shape: None,
            implied: None,
            last_shard_at: None,
            last_original: None,
            model: None,
            stall_scale: 1.0,
            stall_asked: VecDeque::with_capacity(STALL_WATCH),
            originals: None,
            spurious: None,
            reorder: Duration::ZERO,
            reordered: false,
            copies: VecDeque::new(),
            gaps: VecDeque::new(),
        }
    }

    /// The reorder window in µs, for the stats.
    pub(super) fn reorder_window_us(&self) -> u64 {
        self.reorder.as_micros() as u64
    }

    /// Forgets everything of the previous session.
    pub(super) fn reset(&mut self) {
        self.estimator.reset();
        self.tracked.clear();
        self.last_frame = None;
        self.newest = None;
        self.newest_trailing = false;
        self.newest_shape = None;
        self.implied = None;
        self.last_shard_at = None;
        self.last_original = None;
        self.model = None;
        self.stall_scale = 1.0;
        self.stall_asked.clear();
        self.originals = None;
        self.spurious = None;
        self.reorder = Duration::ZERO;
        self.reordered = false;
        self.copies.clear();
        self.gaps.clear();
    }

    /// When the gap of unseen frame `index` was first seen (`now` if it is new).
    fn gap_noticed(&mut self, index: u32, now: Instant) -> Instant {
        if let Some(&(_, at, _)) = self.gaps.iter().find(|g| g.0 == index) {
            return at;
        }
        if self.gaps.len() == MAX_GAPS {
            self.gaps.pop_front();
        }
        self.gaps.push_back((index, now, false));
        now
    }

    /// The gap of frame `index` needs no more timer.
    fn gap_done(&mut self, index: u32) {
        if let Some(g) = self.gaps.iter_mut().find(|g| g.0 == index) {
            g.2 = true;
        }
    }
}

impl Connection {
    /// Every authenticated session datagram, before it is routed.
    pub(super) fn on_authenticated(&mut self, pn: u64, now: Instant) {
        match &mut self.side {
            Side::Client(c) => c.repair.estimator.on_packet(pn, now),
            Side::Host(h) => h.repair.rx_pn = pn,
        }
    }

    /// Client: accounts a video body after the reassembler saw it (`pushed`: what it said).
    /// A body it took counts towards the newest frame and, if it is a repair row, the repair
    /// stats. An original shard (data or parity of the first send), taken or refused as a
    /// duplicate or late (its frame may have been completed by repair rows meanwhile), feeds
    /// the stall window: see [`Connection::on_original_shard`].
    pub(super) fn count_repair_shard(
        &mut self,
        body: &[u8],
        pushed: &Result<(), Rejected>,
        now: Instant,
    ) {
        if let Some(age) = self
            .side
            .client_mut()
            .and_then(|c| c.reassembler.take_reordering())
        {
            self.on_reordering(age);
        }
        let taken = match pushed {
            Ok(()) => true,
            Err(Rejected::Duplicate | Rejected::Late) => false,
            Err(_) => return,
        };
        let Ok((h, _)) = VideoHeader::decode(body) else {
            return;
        };
        // The frame's data shards over all its blocks.
        let n = (h.frame_len as usize).div_ceil(h.shard_size.max(1) as usize);
        if taken && let Some(c) = self.side.client_mut() {
            c.repair.last_shard_at = Some(now);
            let newest = &mut c.repair.newest;
            if newest.is_none_or(|i| seq_diff(h.frame_index, i) > 0) {
                *newest = Some(h.frame_index);
                c.repair.newest_trailing = h.trailing();
                c.repair.newest_shape =
                    (h.block_count == 1).then(|| (n.min(u16::MAX as usize) as u16, h.parity));
            }
        }
        let Some(layout) = BlockLayout::checked(n, h.block_count as usize) else {
            return;
        };
        if (h.block_index as usize) < layout.blocks {
            let k = layout.data_in_block(h.block_index as usize);
            if h.shard_index as usize >= k + h.parity as usize {
                if taken {
                    self.stats.repair_shards += 1;
                    self.stats.repair_bytes += body.len() as u64;
                }
            } else {
                if let Some(c) = self.side.client_mut() {
                    c.repair.last_original = Some((h.frame_index, now));
                }
                let m = h.parity as usize;
                let trailing_row =
                    h.trailing() && h.shard_index as usize + trailing_parity(k, m) >= k + m;
                if trailing_row {
                    self.on_trailing_row(h.frame_index, now);
                }
                self.on_original_shard(h.frame_index, trailing_row, now);
            }
        }
    }

    /// Client: a `RepairUnavailable`. When the host no longer holds the frame (or its blocks
    /// used up their rows) and a block cannot complete from what is in flight, no repair will
    /// come: the frame is given up once its own shards stop coming for a reorder window — at
    /// once when no reordering was seen — instead of at its deadline (its holes may still be
    /// reordered shards on their way). A spent budget refills with every frame, and a frame
    /// whose shards may still all come (a stall that was only a slow sender) can still
    /// complete: both wait for the deadline.
    pub(super) fn on_repair_unavailable(&mut self, u: RepairUnavailable, now: Instant) {
        if u.reason == UnavailableReason::Budget {
            return;
        }
        let reorder = self.reorder_window();
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let mut needs = std::mem::take(&mut c.repair.needs);
        let need = c.reassembler.missing(u.frame_index, &mut needs);
        let awaited = c.reassembler.is_awaited(u.frame_index);
        let hopeless = awaited || (need.is_some() && needs.iter().any(|n| n.short_now > 0));
        c.repair.needs = needs;
        if !hopeless {
            return;
        }
        if let Some(t) = c
            .repair
            .tracked
            .iter_mut()
            .find(|t| t.index == u.frame_index)
        {
            t.exhausted = true;
        }
        // A frame asked for whole and never seen has no shards on their way: it goes now.
        let give_up = need.map_or(now, |f| (f.last_activity + reorder).max(now));
        if c.reassembler.set_deadline(u.frame_index, give_up) {
            c.reassembler.handle_timeout(now);
            self.drain_reassembler();
        }
    }

    /// Client: when repair next has work (a stalled frame to ask for, or a round to end).
    pub(super) fn repair_timeout(&self) -> Option<Instant> {
        if !self.cfg.repair {
            return None;
        }
        let round = self.repair_round();
        let (stall_after, long_stall) = self.stall_windows();
        let reorder = self.reorder_window();
        let base = self.reorder_base();
        let wait = self.whole_frame_wait();
        let c = self.side.client()?;
        let mut next: Option<Instant> = None;
        let mut needs = Vec::new();
        for t in c.repair.tracked.iter().filter(|t| !t.exhausted) {
            let Some(f) = c.reassembler.missing(t.index, &mut needs) else {
                continue;
            };
            // Work that changes state: the end of the round (asks afresh), the stall of a
            // frame with no round open (asks what it lacks), or a hole not yet asked for
            // outliving the reorder window.
            let silent_end = f.last_activity + long_stall;
            let (moved_on, long_stall) = Self::stall_view_of(&c.repair, &f, long_stall);
            let mut at = match (t.round_start, moved_on) {
                (Some(s), _) => s + round,
                (None, Some(m)) => (m + stall_after).min(f.last_activity + long_stall),
                (None, None) => f.last_activity + long_stall,
            };
            // A trailing frame's data shards are asked for once its own datagrams stopped
            // (`check_repair`), before its trailing rows are due.
            if f.trailing
                && t.round_start.is_none()
                && needs.iter().any(|n| {
                    n.highest_original.is_none_or(|h| h < n.k)
                        && c.repair.early_risk(n.k, n.parity, n.short_if_no_more)
                })
            {
                let ended = if c.repair.run_ended(&f) {
                    f.last_activity + reorder
                } else {
                    silent_end
                };
                at = at.min(ended);
            }
            for n in &needs {
                // Only a hole that can still be asked for (a block whose totals reached the
                // rows the host may send asks for nothing more: no timer in the past).
                if let Some(lost) = Self::gap_lost_at(n, reorder, base)
                    && n.short_now > t.asked_of(n.block)
                    && t.total_of(n.block) < MAX_REPAIR_ROWS as u16
                {
                    at = at.min(lost);
                }
            }
            if needs.iter().any(|n| n.short_if_no_more > 0) {
                next = Some(next.map_or(at, |x: Instant| x.min(at)));
            }
        }
        for t in &c.repair.tracked {
            // Only a frame still unseen within the window is asked again (`ask_whole_frames`);
            // one that fell behind it waits for its give-up and must set no timer.
            if t.whole > 0
                && c.reassembler.is_awaited(t.index)
                && c.repair.unseen.contains(&t.index)
                && let Some(s) = t.round_start
            {
                let at = s + round;
                next = Some(next.map_or(at, |x: Instant| x.min(at)));
            }
        }
        let r = &c.repair;
        for &(index, noticed, done) in &r.gaps {
            // A frame whose trailing rows are still due is asked for only once a later frame
            // shows, which is a datagram's work, not a timer's.
            if !done && !r.trailing_due(index) {
                let at = noticed + wait;
                next = Some(next.map_or(at, |x: Instant| x.min(at)));
            }
        }
        if let Some(at) = c.repair.copies.iter().map(|c| c.0).min() {
            next = Some(next.map_or(at, |x| x.min(at)));
        }
        next
    }

    /// Time between copies of a repair request.
    fn copy_spacing(&self) -> Duration {
        self.srtt.map_or(MIN_COPY_SPACING, |r| {
            (r / 64).clamp(MIN_COPY_SPACING, MAX_COPY_SPACING)
        })
    }

    /// Client: sends the request copies due at `now` for frames still incomplete
    /// (`incomplete`), and queues the copies of the requests just sent (`sent`; they replace
    /// the older copies of their frames).
    fn send_request_copies(&mut self, now: Instant, incomplete: &[u32], sent: &[RepairRequest]) {
        let spacing = self.copy_spacing();
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let copies = &mut c.repair.copies;
        copies.retain(|(_, _, r)| incomplete.contains(&r.frame_index));
        let mut due = Vec::new();
        for (at, left, r) in copies.iter_mut() {
            if *at <= now {
                due.push(r.clone());
                *left -= 1;
                *at = now + spacing;
            }
        }
        copies.retain(|(_, left, r)| {
            *left > 0 && !sent.iter().any(|s| s.frame_index == r.frame_index)
        });
        for r in sent {
            if copies.len() == MAX_PENDING_COPIES {
                copies.pop_front();
            }
            copies.push_back((now + spacing, REQUEST_COPIES, r.clone()));
        }
        for r in due {
            self.send_control(&Control::RepairRequest(r));
        }
    }

    /// Client: asks for what incomplete frames lack (see the module docs).
    pub(super) fn check_repair(&mut self, now: Instant) {
        if !self.cfg.repair || self.link.is_none() {
            // No copy may stay due with nobody to send it (its timer would never move on).
            if let Some(c) = self.side.client_mut() {
                c.repair.copies.clear();
            }
            return;
        }
        let round = self.repair_round();
        let deadline = self.repair_deadline();
        let (stall_after, long_stall) = self.stall_windows();
        let reorder = self.reorder_window();
        let base = self.reorder_base();
        let reorder_window = self.cfg.reassembler.reorder_window;
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let mut incomplete = std::mem::take(&mut c.repair.incomplete);
        c.reassembler.incomplete_into(&mut incomplete);
        // Forget frames no longer in flight (delivered or given up without an output seen).
        let reassembler = &c.reassembler;
        c.repair.tracked.retain(|t| {
            incomplete.contains(&t.index) || (t.whole > 0 && reassembler.is_awaited(t.index))
        });
        let mut requests: Vec<RepairRequest> = Vec::new();
        for &index in &incomplete {
            let mut needs = std::mem::take(&mut c.repair.needs);
            let Some(f) = c.reassembler.missing(index, &mut needs) else {
                c.repair.needs = needs;
                continue;
            };
            let silent_end = f.last_activity + long_stall;
            let (moved_on, long_stall) = Self::stall_view_of(&c.repair, &f, long_stall);
            let run_ended = c.repair.run_ended(&f) || now >= silent_end;
            // Blocks whose trailing rows are too likely to fail (only a trailing frame whose
            // own datagrams ended can ask early, see `data_ended` below).
            let risky: Vec<u16> = if f.trailing && run_ended {
                needs
                    .iter()
                    .filter(|n| c.repair.early_risk(n.k, n.parity, n.short_if_no_more))
                    .map(|n| n.block)
                    .collect()
            } else {
                Vec::new()
            };
            let r = &mut c.repair;
            let pos = match r.tracked.iter().position(|t| t.index == index) {
                Some(p) => p,
                None => {
                    r.tracked.push(Tracked::new(index));
                    r.tracked.len() - 1
                }
            };
            let t = &mut r.tracked[pos];
            // The repair deadline, but never before the reorder window after the newest shard
            // (a slow or descheduled sender is not given up while its shards still come). A
            // frame no repair can reach goes once its shards stop for the reorder window.
            let give_up = if t.exhausted {
                f.last_activity + reorder
            } else {
                (t.origin.unwrap_or(f.first_seen) + deadline).max(f.last_activity + reorder_window)
            };
            if f.deadline != Some(give_up) {
                c.reassembler.set_deadline(index, give_up);
            }
            if t.exhausted {
                r.needs = needs;
                continue;
            }
            if t.round_start.is_some_and(|s| now >= s + round) {
                // The round is over: whatever is still missing is asked for afresh.
                t.round_start = None;
                t.asked.clear();
            }
            if t.whole > 0 && !t.seeded {
                // The frame asked for whole shows its blocks: what the whole-frame requests
                // asked becomes the blocks' totals (and, while their round runs, what this
                // round asked), so later requests ask the host for rows beyond them.
                t.seeded = true;
                for n in &needs {
                    let rows = (t.whole as usize * n.k as usize).min(MAX_REPAIR_ROWS);
                    t.totals.push((n.block, rows as u8));
                    if t.round_start.is_some() {
                        t.asked.push((n.block, rows as u16));
                    }
                }
            }
            let silent = now.saturating_duration_since(f.last_activity);
            let stalled = silent >= long_stall || moved_on.is_some_and(|m| now >= m + stall_after);
            // Whether this request asks for rows beyond `short_now` (only a stall does).
            let mut beyond = false;
            let mut exhausted = false;
            let mut items = Vec::new();
            // Whether every row asked for is an early ask's (the answer then needs no margin:
            // the trailing rows are the frame's other chance).
            let mut only_early = true;
            // A frame whose parity trails behind the next frame: once its own datagrams
            // stopped (an original shard of another frame came after its newest), the data
            // shards it lacks are asked for at once, before its trailing rows are due. If
            // those rows fail too, a request sent only then is answered a round trip after
            // they were due, past the frame's budget; this one lands within it.
            let data_ended =
                f.trailing && !stalled && run_ended && now >= f.last_activity + reorder;
            for n in &needs {
                let early = data_ended
                    && n.highest_original.is_none_or(|h| h < n.k)
                    && risky.contains(&n.block);
                // A hole below the block's highest original counts as loss only once it
                // outlived the reorder window; before that it may be a reordered shard.
                let want = if stalled || early {
                    n.short_if_no_more
                } else if Self::gap_lost_at(n, reorder, base).is_none_or(|t| now >= t) {
                    n.short_now
                } else {
                    0
                };
                let asked = t.asked_of(n.block);
                let total = t.total_of(n.block);
                // A block whose totals reached the rows the host may send asks for nothing
                // more, but the round still runs (its end is this frame's next timer).
                exhausted |= want > asked && total >= MAX_REPAIR_ROWS as u16;
                let more = want
                    .saturating_sub(asked)
                    .min(MAX_REPAIR_ROWS as u16 - total.min(MAX_REPAIR_ROWS as u16));
                if more == 0 || items.len() == MAX_REPAIR_ITEMS {
                    continue;
                }
                beyond |= !early && more > n.short_now.saturating_sub(asked);
                only_early &= early;
                let total = (total + more) as u8;
                items.push(RepairItem {
                    block: n.block,
                    total,
                });
                match t.totals.iter_mut().find(|(b, _)| *b == n.block) {
                    Some(e) => e.1 = total,
                    None => t.totals.push((n.block, total)),
                }
                match t.asked.iter_mut().find(|(b, _)| *b == n.block) {
                    Some(e) => e.1 += more,
                    None => t.asked.push((n.block, more)),
                }
            }
            r.needs = needs;
            if exhausted {
                t.round_start.get_or_insert(now);
            }
            if let Some(req) = RepairRequest::new(index, items) {
                let req = if only_early { req.early() } else { req };
                t.round_start.get_or_insert(now);
                t.requested = true;
                requests.push(req);
                if beyond && !r.stall_asked.contains(&index) {
                    if r.stall_asked.len() == STALL_WATCH {
                        r.stall_asked.pop_front();
                    }
                    r.stall_asked.push_back(index);
                }
            }
        }
        self.ask_whole_frames(now, &mut requests, &mut incomplete);
        for req in &requests {
            self.stats.repair_requests += 1;
            self.send_control(&Control::RepairRequest(req.clone()));
        }
        if REQUEST_COPIES > 0 {
            self.send_request_copies(now, &incomplete, &requests);
        }
        if let Some(c) = self.side.client_mut() {
            c.repair.incomplete = incomplete;
        }
    }
}
