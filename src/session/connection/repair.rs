//! Loss resilience in the session (issue 8): the client's loss model and repair requests, the
//! host's FEC-by-target feed and repair answers, and per-frame repair deadlines.
//!
//! Client:
//! - every authenticated packet number of the host feeds a [`LossEstimator`]; its
//!   [`LossModelReport`] goes out with every loss report (`Control::LossModel`);
//! - after each video datagram and timer, every incomplete frame is checked
//!   ([`Reassembler::missing`]): a block that cannot complete from what is in flight
//!   (`short_now > 0`) once its holes count as loss (the reorder window below), or lacks shards
//!   once the frame's shards stopped coming
//!   (`short_if_no_more`: [`STALL_AFTER`] without a shard while a newer frame's shards arrive,
//!   or [`LONG_STALL`] without any, both scaled as below), is asked for at once
//!   (`Control::RepairRequest`), minus what this round already asked for. A round lasts one
//!   RTT plus margin (`repair_round`); after it, what is still missing is asked for again (the
//!   host sends new rows). A request names per-block totals over all rounds, and each goes out
//!   [`REQUEST_COPIES`] more times, RTT / 16 apart (1–4 ms), while its frame is incomplete: the
//!   back path loses in bursts too, and the host serves a copy nothing new;
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
//!   a quarter RTT, capped at half the repair deadline, and decays by 1 % per frame delivered
//!   while no reordering is seen (forgotten once below a quarter RTT). The stall windows never
//!   go below it. Why: a frame delivered backwards (a middlebox, a bonded or multipath link)
//!   otherwise looked like dozens of lost shards the moment its first datagram arrived, and
//!   the repair rows and refusals it drew gave up a frame that was arriving whole;
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
//! Host:
//! - the parity rows small frames keep for behind the next frame ([`TrailingParity`]) are
//!   sealed with fresh packet numbers and queued once the next frame was sent;
//! - frames are recorded in a [`RepairHistory`] by their [`super::FrameTicket`] before sealing
//!   (shared through an `Arc<Mutex>`: taken by the connection on a request, by the ticket
//!   outside the connection's lock; never both in the other order);
//! - a `RepairRequest` (authenticated and replay-checked like every sealed control message)
//!   passes a request token bucket, then the history answers it with new parity rows (what
//!   its totals ask beyond what was served, plus the FEC controller's margin for a burst on the
//!   answer), bounded by the repair budget (`RepairConfig::budget_share` of the stream),
//!   sealed with fresh packet numbers and queued as transmits;
//! - a `LossModel` report feeds [`AdaptiveFec::on_loss_model`](crate::protocol::fec::adaptive::AdaptiveFec)
//!   unless it is older (by packet number) than the newest one used.
//!
//! Must never: allocate per request beyond the bounded history and one reused datagram buffer,
//! answer a request outside the current session, or ask twice in one round for the same rows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::control::Control;
use crate::protocol::fec::coder::{BlockLayout, ReedSolomon8};
use crate::protocol::fec::lossmodel::{LossEstimator, LossModelReport};
use crate::protocol::fec::repair::{
    MAX_REPAIR_ITEMS, MAX_REPAIR_ROWS, MAX_WHOLE_ROUNDS, RepairConfig, RepairHistory, RepairItem,
    RepairParams, RepairRequest, RepairUnavailable, UnavailableReason,
};
use crate::protocol::media::packetizer::{Datagrams, TrailingParity, seal_all};
use crate::protocol::media::reassembler::{BlockNeed, FrameNeed, Output, Rejected};
use crate::protocol::security::bucket::TokenBucket;
use crate::protocol::security::handshake::Role;
use crate::protocol::wire::{VideoHeader, seq_diff};
use crate::sync::lock;

use super::Connection;

/// A frame whose newest shard is this old has stopped coming: what it lacks now is asked for.
/// Paced chunks of one frame are well under a millisecond apart at the pacing rates the host
/// uses (≥ 200 Mbit/s, 16 datagrams a chunk), so 3 ms of silence means the rest was lost.
pub(crate) const STALL_AFTER: Duration = Duration::from_millis(3);

/// Most a hole waits for a reordered shard while no reordering has been seen (RACK's quarter
/// RTT, capped). On a WAN path every millisecond here comes out of a frame budget of one way +
/// one RTT: at 30 ms one way with bursts both ways, a 3 ms cap delivered 97.9 % of a
/// 4 Mbit/s stream's frames on time, 1 ms 98.6 % (`tests/wan_loss.rs`, `wan_table`). A path
/// that does reorder teaches the window within its first frame (`Repairs::reorder`).
pub(crate) const REORDER_BASE_MAX: Duration = Duration::from_millis(1);

/// Silence after which a frame counts as stalled even if no newer frame shows that its sender
/// moved on: a sender that is descheduled mid-frame must not make the client ask for (and the
/// budget pay for) shards that are merely late; a frame whose whole tail was lost waits this
/// long for its repair. Both windows are the unscaled ones: they grow on spurious stall
/// requests and decay back (see the module docs).
pub(crate) const LONG_STALL: Duration = Duration::from_millis(8);

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

/// Frames asked for on the stall path that are watched for late original shards.
const STALL_WATCH: usize = 16;

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

/// Copies of each repair request sent after the first: the back path loses in bursts too, and
/// a lost request costs a whole round trip, which on a wide-area path is past the deadline.
/// The host answers the part of a request's totals it has not served, so a copy that arrives
/// after its original costs one tiny datagram and no repair bytes.
pub(crate) const REQUEST_COPIES: u8 = 3;

/// Bounds of the spacing between copies of a request (a sixteenth of the RTT between them):
/// apart enough that a short burst on the back path does not take every copy, close enough
/// that the last copy's answer still makes a one-round-trip deadline.
const MIN_COPY_SPACING: Duration = Duration::from_millis(1);
const MAX_COPY_SPACING: Duration = Duration::from_millis(4);

/// Requests whose copies are pending at most (a frame's new request replaces its old copies).
const MAX_PENDING_COPIES: usize = 32;

/// Host: repair requests accepted per second, and the burst (each costs an encode of at most
/// the budget's bytes; the budget bounds the bytes, this bounds the work of tiny requests).
const REQUEST_RATE: f64 = 1000.0;
const REQUEST_BURST: f64 = 64.0;

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
    /// When the last video shard that was taken arrived.
    last_shard_at: Option<Instant>,
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
    /// frame's trailing rows may still rebuild it, so it is not asked for whole yet.
    fn trailing_due(&self, index: u32) -> bool {
        self.newest_trailing && self.newest.is_some_and(|n| seq_diff(n, index) == 1)
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
            last_shard_at: None,
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
        self.last_shard_at = None;
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

/// Host: repair history and what the loss-model feed needs.
pub(super) struct HostRepair {
    pub(super) history: Arc<Mutex<RepairHistory>>,
    /// Parity rows of small frames that travel behind the next frame.
    pub(super) trailing: Arc<Mutex<TrailingParity>>,
    coder: ReedSolomon8,
    out: Datagrams,
    limiter: TokenBucket,
    /// Packet number of the newest loss model used (older ones are dropped).
    last_model_pn: Option<u64>,
    /// Packet number of the control datagram being handled.
    pub(super) rx_pn: u64,
}

impl HostRepair {
    pub(super) fn new(cfg: RepairConfig, now: Instant) -> Self {
        HostRepair {
            history: Arc::new(Mutex::new(RepairHistory::new(cfg))),
            trailing: Arc::new(Mutex::new(TrailingParity::new())),
            coder: ReedSolomon8::new(),
            out: Datagrams::new(),
            limiter: TokenBucket::new(REQUEST_RATE, REQUEST_BURST, now),
            last_model_pn: None,
            rx_pn: 0,
        }
    }

    pub(super) fn reset(&mut self) {
        lock(&self.history).clear();
        lock(&self.trailing).clear();
        self.last_model_pn = None;
    }
}

impl Connection {
    /// Every authenticated session datagram, before it is routed.
    pub(super) fn on_authenticated(&mut self, pn: u64, now: Instant) {
        match self.cfg.role {
            Role::Client => self.client.repair.estimator.on_packet(pn, now),
            Role::Host => self.host.repair.rx_pn = pn,
        }
    }

    /// Client: the loss model to send with a loss report.
    pub(super) fn loss_model_report(&mut self, now: Instant) -> LossModelReport {
        self.stats.loss_models += 1;
        self.client.repair.estimator.report(now)
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
        if let Some(age) = self.client.reassembler.take_reordering() {
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
        if taken {
            self.client.repair.last_shard_at = Some(now);
            let newest = &mut self.client.repair.newest;
            if newest.is_none_or(|n| seq_diff(h.frame_index, n) > 0) {
                *newest = Some(h.frame_index);
                self.client.repair.newest_trailing = h.trailing();
            }
        }
        let n = (h.frame_len as usize).div_ceil(h.shard_size.max(1) as usize);
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
                self.on_original_shard(h.frame_index, now);
            }
        }
    }

    /// Client: an original shard of frame `index` arrived. It extends the frame's measured
    /// silences; if the frame was asked for on the stall path, that request was spurious (the
    /// shards were late, not lost): counted once per frame, and the stall windows grow.
    fn on_original_shard(&mut self, index: u32, now: Instant) {
        if let Some(p) = self.client.repair.gaps.iter().position(|g| g.0 == index) {
            // A frame that a newer one overtook: reordering, as a hole filled late is.
            let (_, noticed, _) = self.client.repair.gaps.remove(p).expect("found");
            self.on_reordering(now.saturating_duration_since(noticed));
        }
        let r = &mut self.client.repair;
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
            let r = &mut self.client.repair;
            r.stall_scale = (r.stall_scale * STALL_GROWTH).min(cap).max(1.0);
            self.stats.repair_spurious += 1;
        }
    }

    /// Client: an original shard filled a hole that had been open for `age`: the reorder
    /// window grows to cover it with headroom (never past half the repair deadline, so a frame
    /// that really lost shards still gets its repair rounds).
    fn on_reordering(&mut self, age: Duration) {
        let cap = self.repair_deadline() / 2;
        let base = self.reorder_base();
        let r = &mut self.client.repair;
        r.reordered = true;
        r.reorder = r.reorder.max(age.mul_f64(REORDER_HEADROOM) + base).min(cap);
    }

    /// The reorder window now (see [`Repairs::reorder`]).
    fn reorder_window(&self) -> Duration {
        self.client.repair.reorder
    }

    /// The least time a hole may be reordered: a quarter of the RTT (RACK's `min_rtt / 4`),
    /// at most [`REORDER_BASE_MAX`].
    fn reorder_base(&self) -> Duration {
        (self.srtt.unwrap_or(DEFAULT_ROUND) / 4).min(REORDER_BASE_MAX)
    }

    /// When the holes of a block count as loss: once they outlived the reorder window; while
    /// no reordering was seen, once [`DUP_THRESH`] originals arrived above the lowest or the
    /// base allowance passed. `None`: the block has no hole.
    fn gap_lost_at(n: &BlockNeed, reorder: Duration, base: Duration) -> Option<Instant> {
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
    fn stall_windows(&self) -> (Duration, Duration) {
        let cap = self.repair_deadline() / 2;
        let s = self.client.repair.stall_scale;
        let reorder = self.reorder_window();
        let scaled = |base: Duration| base.mul_f64(s).min(cap).max(base).max(reorder);
        (scaled(STALL_AFTER), scaled(LONG_STALL))
    }

    /// One RTT plus margin: how long a repair answer takes to come back. The margin (a quarter
    /// RTT and 2 ms) covers the jitter of both ways and the host's wake-up; every millisecond
    /// beyond it is added to the freeze of a frame whose request copies were all lost (the
    /// second round starts only when this one ends).
    fn repair_round(&self) -> Duration {
        self.srtt
            .map_or(DEFAULT_ROUND, |r| r + r / 4 + ROUND_MARGIN)
    }

    /// How long after its first shard a frame may wait for repair.
    fn repair_deadline(&self) -> Duration {
        if let Some(d) = self.cfg.repair_deadline {
            return d;
        }
        let fi = self
            .client
            .repair
            .frame_interval
            .unwrap_or(DEFAULT_FRAME_INTERVAL);
        (fi + self.repair_round() * DEADLINE_ROUNDS).clamp(MIN_DEADLINE, MAX_DEADLINE)
    }

    /// Whether frame `f`'s sender moved on, and its long stall window (`long_stall` for most
    /// frames). A frame whose parity partly trails behind the next frame
    /// ([`FrameNeed::trailing`]) has not stopped when the next frame's shards arrive: its
    /// sender moved on once a frame after that one shows, and its long window is a frame
    /// interval longer. Asking before its trailing rows could arrive would spend repair on
    /// what they rebuild one frame interval later.
    fn stall_view(&self, f: &FrameNeed, long_stall: Duration) -> (Option<Instant>, Duration) {
        let r = &self.client.repair;
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
    pub(super) fn repair_on_output(&mut self, o: &Output) {
        let base = self.reorder_base();
        let r = &mut self.client.repair;
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
        let mut needs = std::mem::take(&mut self.client.repair.needs);
        let need = self.client.reassembler.missing(u.frame_index, &mut needs);
        let awaited = self.client.reassembler.is_awaited(u.frame_index);
        let hopeless = awaited || (need.is_some() && needs.iter().any(|n| n.short_now > 0));
        self.client.repair.needs = needs;
        if !hopeless {
            return;
        }
        if let Some(t) = self
            .client
            .repair
            .tracked
            .iter_mut()
            .find(|t| t.index == u.frame_index)
        {
            t.exhausted = true;
        }
        // A frame asked for whole and never seen has no shards on their way: it goes now.
        let give_up = need.map_or(now, |f| (f.last_activity + self.reorder_window()).max(now));
        if self.client.reassembler.set_deadline(u.frame_index, give_up) {
            self.client.reassembler.handle_timeout(now);
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
        let mut next: Option<Instant> = None;
        let mut needs = Vec::new();
        for t in self.client.repair.tracked.iter().filter(|t| !t.exhausted) {
            let Some(f) = self.client.reassembler.missing(t.index, &mut needs) else {
                continue;
            };
            // Work that changes state: the end of the round (asks afresh), the stall of a
            // frame with no round open (asks what it lacks), or a hole not yet asked for
            // outliving the reorder window.
            let (moved_on, long_stall) = self.stall_view(&f, long_stall);
            let mut at = match (t.round_start, moved_on) {
                (Some(s), _) => s + round,
                (None, Some(m)) => (m + stall_after).min(f.last_activity + long_stall),
                (None, None) => f.last_activity + long_stall,
            };
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
        for t in &self.client.repair.tracked {
            // Only a frame still unseen within the window is asked again (`ask_whole_frames`);
            // one that fell behind it waits for its give-up and must set no timer.
            if t.whole > 0
                && self.client.reassembler.is_awaited(t.index)
                && self.client.repair.unseen.contains(&t.index)
                && let Some(s) = t.round_start
            {
                let at = s + round;
                next = Some(next.map_or(at, |x: Instant| x.min(at)));
            }
        }
        let wait = self.whole_frame_wait();
        let r = &self.client.repair;
        for &(index, noticed, done) in &r.gaps {
            // A frame whose trailing rows are still due is asked for only once a later frame
            // shows, which is a datagram's work, not a timer's.
            if !done && !r.trailing_due(index) {
                let at = noticed + wait;
                next = Some(next.map_or(at, |x: Instant| x.min(at)));
            }
        }
        if let Some(at) = self.client.repair.copies.iter().map(|c| c.0).min() {
            next = Some(next.map_or(at, |x| x.min(at)));
        }
        next
    }

    /// Time between copies of a repair request.
    fn copy_spacing(&self) -> Duration {
        self.srtt.map_or(MIN_COPY_SPACING, |r| {
            (r / 16).clamp(MIN_COPY_SPACING, MAX_COPY_SPACING)
        })
    }

    /// Client: sends the request copies due at `now` for frames still incomplete
    /// (`incomplete`), and queues the copies of the requests just sent (`sent`; they replace
    /// the older copies of their frames).
    fn send_request_copies(&mut self, now: Instant, incomplete: &[u32], sent: &[RepairRequest]) {
        let spacing = self.copy_spacing();
        let copies = &mut self.client.repair.copies;
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
            self.client.repair.copies.clear();
            return;
        }
        let round = self.repair_round();
        let deadline = self.repair_deadline();
        let (stall_after, long_stall) = self.stall_windows();
        let reorder = self.reorder_window();
        let base = self.reorder_base();
        let reorder_window = self.cfg.reassembler.reorder_window;
        let mut incomplete = std::mem::take(&mut self.client.repair.incomplete);
        self.client.reassembler.incomplete_into(&mut incomplete);
        // Forget frames no longer in flight (delivered or given up without an output seen).
        let reassembler = &self.client.reassembler;
        self.client.repair.tracked.retain(|t| {
            incomplete.contains(&t.index) || (t.whole > 0 && reassembler.is_awaited(t.index))
        });
        let mut requests: Vec<RepairRequest> = Vec::new();
        for &index in &incomplete {
            let mut needs = std::mem::take(&mut self.client.repair.needs);
            let Some(f) = self.client.reassembler.missing(index, &mut needs) else {
                self.client.repair.needs = needs;
                continue;
            };
            let (moved_on, long_stall) = self.stall_view(&f, long_stall);
            let r = &mut self.client.repair;
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
                self.client.reassembler.set_deadline(index, give_up);
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
            for n in &needs {
                // A hole below the block's highest original counts as loss only once it
                // outlived the reorder window; before that it may be a reordered shard.
                let want = if stalled {
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
                beyond |= more > n.short_now.saturating_sub(asked);
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
        self.client.repair.incomplete = incomplete;
    }

    /// Client: frames of which nothing arrived although a newer frame's shards did (frame
    /// indices are consecutive, so the sender sent them and every datagram was lost) are asked
    /// for whole at once, awaited by the reassembler until their deadline, and asked again
    /// (one more round of rows per block) when a round passes without a shard of theirs. Only
    /// frames within the repair deadline behind the newest, at most [`MAX_AWAITED`](crate::protocol::media::reassembler::MAX_AWAITED) at once.
    /// Their indices join `incomplete` (their request copies stay due).
    fn ask_whole_frames(
        &mut self,
        now: Instant,
        requests: &mut Vec<RepairRequest>,
        incomplete: &mut Vec<u32>,
    ) {
        let round = self.repair_round();
        let wait = self.whole_frame_wait();
        let (window, origin, give_up) = self.whole_frame_window(now);
        let mut unseen = std::mem::take(&mut self.client.repair.unseen);
        self.client
            .reassembler
            .unseen_into(window, None, &mut unseen);
        self.client.repair.gaps.retain(|g| unseen.contains(&g.0));
        for &index in &unseen {
            let r = &mut self.client.repair;
            // The frame just before a small frame of the host's kept parity behind it: its
            // trailing rows come behind the newest frame's datagrams and may rebuild it alone,
            // so it is asked for once a frame after that shows (it stays awaited meanwhile).
            let trailing_due = r.trailing_due(index);
            match r.tracked.iter_mut().find(|t| t.index == index) {
                None if trailing_due => continue,
                None => {
                    // Reordering is not loss: the frame may only have been overtaken.
                    let noticed = r.gap_noticed(index, now);
                    if now < noticed + wait {
                        continue;
                    }
                    r.gap_done(index);
                    let early = now - noticed;
                    let (origin, give_up) = (
                        origin.checked_sub(early).unwrap_or(origin),
                        give_up.checked_sub(early).unwrap_or(give_up),
                    );
                    if !self.client.reassembler.await_frame(index, give_up) {
                        continue;
                    }
                    let Some(req) = RepairRequest::whole(index, 1) else {
                        continue;
                    };
                    let mut t = Tracked::new(index);
                    t.whole = 1;
                    t.origin = Some(origin);
                    t.round_start = Some(now);
                    t.requested = true;
                    r.tracked.push(t);
                    requests.push(req);
                }
                Some(t) if t.whole > 0 && self.client.reassembler.is_awaited(index) => {
                    if t.round_start.is_some_and(|s| now < s + round) {
                        continue;
                    }
                    // A round without a shard: the answer was lost too; ask for more rows.
                    t.whole = (t.whole + 1).min(MAX_WHOLE_ROUNDS);
                    t.round_start = Some(now);
                    if let Some(req) = RepairRequest::whole(index, t.whole) {
                        requests.push(req);
                    }
                }
                Some(_) => continue,
            }
        }
        for t in &self.client.repair.tracked {
            if t.whole > 0
                && self.client.reassembler.is_awaited(t.index)
                && !incomplete.contains(&t.index)
            {
                incomplete.push(t.index);
            }
        }
        self.client.repair.unseen = unseen;
    }

    /// Client: how long a gap in the frame indices waits for the frame before it is asked for
    /// whole: the reorder window, or while no reordering was seen the base allowance (a
    /// quarter RTT, at most [`REORDER_BASE_MAX`]).
    fn whole_frame_wait(&self) -> Duration {
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
    fn whole_frame_window(&self, now: Instant) -> (u32, Instant, Instant) {
        let deadline = self.repair_deadline();
        let fi = self
            .client
            .repair
            .frame_interval
            .unwrap_or(DEFAULT_FRAME_INTERVAL)
            .max(Duration::from_millis(1));
        let window = (deadline.as_micros() / fi.as_micros()).clamp(1, 64) as u32;
        let origin = now.checked_sub(fi).unwrap_or(now);
        (window, origin, origin + deadline)
    }

    /// Client: before a video body is pushed, holds the frames it shows lost whole (see
    /// [`Connection::ask_whole_frames`], which asks for them right after the push).
    pub(super) fn hold_unseen_before(&mut self, body: &[u8], now: Instant) {
        if !self.cfg.repair || self.link.is_none() {
            return;
        }
        let Ok((h, _)) = VideoHeader::decode(body) else {
            return;
        };
        // Only a shard of a frame newer than every frame seen can show a new gap.
        if self
            .client
            .repair
            .newest
            .is_some_and(|n| seq_diff(h.frame_index, n) <= 0)
        {
            return;
        }
        let (window, _, give_up) = self.whole_frame_window(now);
        let mut unseen = std::mem::take(&mut self.client.repair.unseen);
        self.client
            .reassembler
            .unseen_into(window, Some(h.frame_index), &mut unseen);
        for &index in &unseen {
            if index != h.frame_index && !self.client.reassembler.is_awaited(index) {
                self.client.reassembler.await_frame(index, give_up);
            }
            if index != h.frame_index {
                self.client.repair.gap_noticed(index, now);
            }
        }
        self.client.repair.unseen = unseen;
    }

    /// Host: a loss model report from the client.
    pub(super) fn on_loss_model(&mut self, m: LossModelReport, now: Instant) {
        let pn = self.host.repair.rx_pn;
        if self.host.repair.last_model_pn.is_some_and(|l| pn < l) {
            return;
        }
        self.host.repair.last_model_pn = Some(pn);
        self.stats.loss_models += 1;
        if let Some(rtt) = self.srtt {
            let fi = self.host.pacer.frame_interval();
            self.host.fec.set_path(rtt, fi);
        }
        self.host.fec.on_loss_model(&m, now);
        let margin = self.host.fec.repair_margin();
        lock(&self.host.repair.history).set_margin(margin);
    }

    /// Host: after frame `frame_index` went out, sends the parity rows that older frames
    /// keep behind it (sealed with fresh packet numbers), so one burst rarely takes a small
    /// frame's data and all its parity.
    /// Returns the datagrams and bytes sent.
    pub(super) fn send_trailing_parity(
        &mut self,
        frame_index: u32,
        now: Instant,
    ) -> (usize, usize) {
        let Some(link) = self.link.as_mut() else {
            lock(&self.host.repair.trailing).clear();
            return (0, 0);
        };
        let mut bytes = 0;
        let peer = link.peer;
        let transmits = &mut self.transmits;
        let sent = lock(&self.host.repair.trailing).release(
            frame_index,
            now,
            &mut link.next_pn,
            &*link.seal,
            |d| {
                bytes += d.len();
                transmits.push_back(super::Transmit {
                    destination: peer,
                    contents: d.to_vec(),
                })
            },
        );
        self.stats.parity_shards_sent += sent as u64;
        (sent, bytes)
    }

    /// Host: sends every held trailing row now (the stream ends: no next frame will carry
    /// them, and the last frames may need them).
    pub(super) fn flush_trailing_parity(&mut self) {
        if self.cfg.role != Role::Host {
            return;
        }
        let at = lock(&self.host.repair.trailing).newest_at();
        if let Some(at) = at {
            self.send_trailing_parity(self.host.frame_index, at);
        }
    }

    /// Host: answers a repair request with new parity rows from the history.
    pub(super) fn on_repair_request(&mut self, req: RepairRequest, now: Instant) {
        self.stats.repair_requests += 1;
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let hr = &mut self.host.repair;
        if !hr.limiter.take(now) {
            self.stats.repair_refused += 1;
            return;
        }
        let params = RepairParams {
            session_id: link.session_id,
            first_packet_number: link.next_pn,
            sealed: link.encrypt,
            tag_len: link.seal.tag_len(),
        };
        let answer = lock(&hr.history).answer(&req, &mut hr.coder, &params, &mut hr.out);
        let answer = match answer {
            Ok(a) => a,
            Err(_) => {
                self.stats.repair_refused += 1;
                return;
            }
        };
        link.next_pn += answer.shards as u64;
        let peer = link.peer;
        if answer.shards > 0 {
            seal_all(&mut hr.out, &*link.seal);
            self.stats.repair_shards += answer.shards as u64;
            self.stats.repair_bytes += hr.out.wire_bytes() as u64;
            for d in hr.out.iter() {
                self.transmits.push_back(super::Transmit {
                    destination: peer,
                    contents: d.to_vec(),
                });
            }
        }
        if let Some(u) = answer.unavailable {
            self.stats.repair_refused += 1;
            self.send_control(&Control::RepairUnavailable(u));
        }
    }
}
