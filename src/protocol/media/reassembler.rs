//! Client side: video shards → whole access units, in order, as soon as each is recoverable.
//!
//! The reassembler is a firewall. Every header field is checked against limits and against the
//! frame it claims to belong to before a byte is allocated; memory in flight is capped (the
//! oldest incomplete frames are given up to make room); duplicates, late shards and frames
//! older than the last delivered one are dropped and counted. A frame that can no longer
//! complete is given up by a time window after its last shard arrived (Wi-Fi reorders, so index
//! distance alone would give up frames that are merely late). Frame indices are compared in
//! wrapping u32 arithmetic.
//!
//! Reordering is measured, not guessed: an original shard that arrives below the highest
//! original shard already received of its block filled a hole that reordering opened; how long
//! that hole had been open is reported ([`Reassembler::take_reordering`]) so the session can
//! wait that long before it asks for repair of the next hole. Each incomplete block also says
//! since when it has had a hole ([`BlockNeed::gap_since`]).
//!
//! Frames leave strictly in index order. A complete frame waits only while an older frame is
//! still in progress (until that completes or times out); a complete keyframe does not wait —
//! everything older is given up, since the keyframe restarts decoding anyway — except for up
//! to [`KEYFRAME_TRAILING_WAIT`] while the frame just before it is incomplete and flagged
//! trailing, or not seen at all (its parity rows travel right behind the keyframe). There is no jitter buffer and
//! no timer on the lossless path.
//!
//! A frame of which no shard arrived is given up as soon as a later frame is ready, unless the
//! caller awaits it ([`Reassembler::await_frame`]: its repair was asked for): then it holds the
//! frames behind it until its shards arrive (taken through the normal path, as any frame's)
//! or its deadline passes. At most [`MAX_AWAITED`] frames are awaited at once, only frames
//! between the next one to deliver and the newest in flight; an awaited frame costs no buffer.

use std::time::{Duration, Instant};

use crate::protocol::fec::coder::{
    BlockLayout, FecCoder, MAX_SHARDS_PER_BLOCK, MAX_TRAILING_K, pairable, trailing_parity,
};
use crate::protocol::fec::repair::MAX_REPAIR_ROWS;
use crate::protocol::media::packetizer::MAX_FRAME_BYTES;
use crate::protocol::media::shared_rows::WindowExt;
use crate::protocol::media::timing::FrameTiming;
use crate::protocol::wire::{VideoHeader, WireError, seq_diff};

mod memory;
mod needs;
mod release;
mod window;
pub use needs::{BlockNeed, FrameNeed};

/// Longest a complete keyframe waits for the frame just before it, whose trailing parity
/// travels right behind the keyframe (see `keyframe_held_until`): past it, that frame is given
/// up as before. A few milliseconds of one keyframe against a lost picture.
pub(crate) const KEYFRAME_TRAILING_WAIT: Duration = Duration::from_millis(5);

/// Limits and timing of a [`Reassembler`].
#[derive(Debug, Clone, Copy)]
pub struct ReassemblerConfig {
    /// Largest access unit accepted.
    pub max_frame_bytes: usize,
    /// Cap on buffer memory for frames in progress (data + parity buffers).
    pub memory_cap: usize,
    /// Frames tracked at once; a shard for one more gives up the oldest.
    pub max_frames_in_flight: usize,
    /// An incomplete frame with no new shard for this long is given up.
    pub reorder_window: Duration,
    /// A frame index this far ahead of the last delivered one is a discontinuity: everything
    /// in flight is given up and the stream restarts at the new index.
    pub max_index_jump: u32,
}

/// Frames of which nothing arrived that may be awaited at once ([`Reassembler::await_frame`]).
pub(crate) const MAX_AWAITED: usize = 4;

/// Default memory cap: two 64 MiB worst-case frames, or ~1,000 1080p frames.
pub const DEFAULT_MEMORY_CAP: usize = 2 * MAX_FRAME_BYTES + (4 << 20);

impl Default for ReassemblerConfig {
    fn default() -> Self {
        ReassemblerConfig {
            max_frame_bytes: MAX_FRAME_BYTES,
            memory_cap: DEFAULT_MEMORY_CAP,
            max_frames_in_flight: 32,
            reorder_window: Duration::from_millis(15),
            max_index_jump: 1 << 16,
        }
    }
}

/// A whole access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame index.
    pub index: u32,
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
    /// The access unit's bytes.
    pub data: Vec<u8>,
    /// Frames were lost between the previous delivered frame and this one.
    pub discont: bool,
    /// Data shards of this frame rebuilt by FEC.
    pub recovered_shards: u32,
    /// When its first shard arrived.
    pub first_seen: Instant,
    /// The host's timing of the frame (from its shard headers).
    pub timing: FrameTiming,
    /// When the last data shard that arrived before the frame completed arrived (the first
    /// shard's arrival if parity alone rebuilt every data shard).
    pub last_data_at: Instant,
    /// When the frame could be delivered whole: its completion, or later when an older frame
    /// held it back.
    pub complete_at: Instant,
}

/// What the reassembler has for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A whole frame, in order.
    Frame(Frame),
    /// `count` frames were given up (first index given).
    Lost {
        /// Index of the first frame given up.
        first_index: u32,
        /// How many consecutive frames were given up.
        count: u32,
    },
}

/// Why a shard was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The header is malformed or breaks a limit or contradicts its frame.
    Invalid(WireError),
    /// A shard we already have, or one for a block already complete.
    Duplicate,
    /// A shard of a frame already delivered or given up.
    Late,
    /// No memory left even after giving up older frames.
    Memory,
}

/// Counters (cumulative).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblerStats {
    /// Shards accepted into a frame.
    pub shards_accepted: u64,
    /// Shards rejected as malformed or inconsistent.
    pub shards_invalid: u64,
    /// Shards already held.
    pub shards_duplicate: u64,
    /// Shards of frames already delivered or given up.
    pub shards_late: u64,
    /// Data shards rebuilt by FEC.
    pub shards_recovered: u64,
    /// Original shards that arrived after a higher original shard of their block (reordered).
    pub shards_reordered: u64,
    /// Frames delivered whole.
    pub frames_delivered: u64,
    /// Frames given up.
    pub frames_lost: u64,
    /// Frames given up to stay within the memory cap.
    pub memory_drops: u64,
    /// Bytes held for incomplete frames now.
    pub memory_in_use: usize,
    /// Most bytes held at once.
    pub memory_peak: usize,
}

struct Block {
    m: u16,
    received: [u64; 4],
    /// Which received shard indices are window rows (`window`): not rows of this block's
    /// own code.
    shared: [u64; 4],
    data_count: u16,
    total_count: u16,
    /// Parity shards, original and repair (index `k + i` at `i · shard_size`); grows to the
    /// highest parity index received.
    parity: Vec<u8>,
    done: bool,
    /// Highest original shard index received (`u16::MAX` before the first); repair rows
    /// (above every original) do not count, so originals still coming above it are known.
    highest: u16,
    /// Original shards received (data and first-send parity).
    originals: u16,
    /// Since when the block has had a hole below `highest` (see [`BlockNeed::gap_since`]).
    gap_since: Option<Instant>,
}

impl Block {
    fn has(&self, i: usize) -> bool {
        self.received[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.received[i / 64] |= 1 << (i % 64);
    }
    fn is_shared(&self, i: usize) -> bool {
        self.shared[i / 64] & (1 << (i % 64)) != 0
    }
    fn set_shared(&mut self, i: usize) {
        self.shared[i / 64] |= 1 << (i % 64);
    }
    /// Counts original shard `si` (data or first-send parity) arrived at `now`.
    fn note_original(&mut self, si: usize, now: Instant) {
        self.originals += 1;
        if self.highest == u16::MAX || si as u16 > self.highest {
            self.highest = si as u16;
        }
        // Every original at or below `highest` that has not arrived is a hole.
        if self.highest as usize + 1 == self.originals as usize {
            self.gap_since = None;
        } else {
            self.gap_since.get_or_insert(now);
        }
    }
    /// The lowest shard index not received.
    fn first_missing(&self) -> usize {
        let mut i = 0;
        for w in self.received {
            let ones = w.trailing_ones() as usize;
            i += ones;
            if ones < 64 {
                break;
            }
        }
        i
    }
}

struct Slot {
    index: u32,
    frame_len: u32,
    shard_size: u16,
    layout: BlockLayout,
    keyframe: bool,
    trailing: bool,
    fec_scheme: u8,
    timing: FrameTiming,
    data: Vec<u8>,
    blocks: Vec<Block>,
    blocks_done: usize,
    first_seen: Instant,
    last_activity: Instant,
    /// Arrival of the newest data shard.
    last_data_at: Instant,
    recovered: u32,
    bytes: usize,
    /// Set by [`Reassembler::set_deadline`]: give up at this instant instead of by the
    /// reorder window.
    deadline: Option<Instant>,
    /// Window rows this frame sent (`window`), kept until it leaves.
    window_rows: Vec<window::WindowRow>,
}

impl Slot {
    fn complete(&self) -> bool {
        self.blocks_done == self.blocks.len()
    }
}

/// Memory a frame's state takes besides its shard buffers: the slot and one `Block` per block.
fn slot_bookkeeping_bytes(blocks: usize) -> usize {
    std::mem::size_of::<Slot>() + blocks * std::mem::size_of::<Block>()
}

/// See the module docs.
pub struct Reassembler {
    cfg: ReassemblerConfig,
    coder: Box<dyn FecCoder>,
    slots: Vec<Slot>,
    /// Frames with no shard yet that are awaited until a deadline (at most [`MAX_AWAITED`]).
    awaited: Vec<(u32, Instant)>,
    /// Next index to deliver; `None` before the first shard.
    floor: Option<u32>,
    out: std::collections::VecDeque<Output>,
    lost_since_delivery: bool,
    /// The instant of the call in progress (what a frame delivered now is stamped with).
    now: Option<Instant>,
    /// The longest a hole filled by a reordered original had been open, since the last
    /// [`Reassembler::take_reordering`].
    reordering: Option<Duration>,
    /// Delivered trailing (and, once windows are in use, pairable) frames later frames'
    /// window rows may name.
    retained: window::RetainedFrames,
    /// A window row arrived: the host shares rows over frames, so delivered frames that may
    /// be paired are retained too.
    windows_seen: bool,
    stats: ReassemblerStats,
}

impl Reassembler {
    /// A reassembler with the given limits and FEC coder.
    pub fn new(cfg: ReassemblerConfig, coder: Box<dyn FecCoder>) -> Self {
        Reassembler {
            cfg,
            coder,
            slots: Vec::new(),
            awaited: Vec::new(),
            floor: None,
            out: Default::default(),
            lost_since_delivery: false,
            now: None,
            reordering: None,
            retained: Default::default(),
            windows_seen: false,
            stats: ReassemblerStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> ReassemblerStats {
        self.stats
    }

    /// Forgets every frame in progress (a new session starts).
    pub fn reset(&mut self) {
        self.slots.clear();
        self.awaited.clear();
        self.floor = None;
        self.out.clear();
        self.lost_since_delivery = false;
        self.reordering = None;
        self.retained.clear();
        self.windows_seen = false;
        self.stats.memory_in_use = 0;
    }

    /// The longest any hole filled by a reordered original shard had been open (from
    /// [`BlockNeed::gap_since`] to the shard's arrival) since the last call; `None` when no
    /// original shard arrived out of order since. Shards of blocks already complete count too
    /// (they arrive as duplicates but still show how late reordering delivers).
    pub(crate) fn take_reordering(&mut self) -> Option<Duration> {
        self.reordering.take()
    }

    /// Next output, in order.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Reassembler::handle_timeout`] should run next.
    pub fn next_timeout(&self) -> Option<Instant> {
        // Frames are given up in order: a later frame whose time came first (its shards were
        // first seen later, e.g. only its trailing rows arrived) waits for the one to deliver.
        let floor_at = self
            .slots
            .iter()
            .find(|s| Some(s.index) == self.floor && !s.complete())
            .map(|s| self.give_up_at(s));
        self.slots
            .iter()
            .filter(|s| !s.complete())
            .map(|s| {
                let at = self.give_up_at(s);
                floor_at.map_or(at, |f| at.max(f))
            })
            .chain(self.awaited.iter().map(|a| a.1))
            .chain(self.keyframe_held_until())
            .min()
    }

    /// Until when a complete keyframe waits for the frame just before it: that frame is
    /// incomplete and keeps parity behind the next frame — behind this keyframe — so its
    /// trailing rows arrive right after the keyframe's own datagrams; or nothing of it arrived
    /// yet (lost whole, its rows may still come). `None` when no keyframe waits. Bounded by [`KEYFRAME_TRAILING_WAIT`] after the keyframe's newest shard.
    fn keyframe_held_until(&self) -> Option<Instant> {
        let floor = self.floor?;
        let kf = self
            .slots
            .iter()
            .filter(|s| s.keyframe && s.complete() && s.index != floor)
            .min_by_key(|s| seq_diff(s.index, floor))?;
        let until = kf.last_activity + KEYFRAME_TRAILING_WAIT;
        match self
            .slots
            .iter()
            .find(|s| s.index == kf.index.wrapping_sub(1))
        {
            Some(before) => (before.trailing && !before.complete()).then_some(until),
            // Nothing of it arrived yet: a frame lost whole is first seen by the rows it
            // keeps behind the next frame, which arrive right after this keyframe's own.
            None => Some(until),
        }
    }

    /// Gives up frames whose window passed and delivers what that unblocks.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        self.advance(now);
    }

    /// Takes one opened video body (video header + shard).
    pub fn push(&mut self, body: &[u8], now: Instant) -> Result<(), Rejected> {
        self.now = Some(now);
        let r = self.push_inner(body, now);
        match r {
            Ok(()) => self.stats.shards_accepted += 1,
            Err(Rejected::Invalid(_)) => self.stats.shards_invalid += 1,
            Err(Rejected::Duplicate) => self.stats.shards_duplicate += 1,
            Err(Rejected::Late) => self.stats.shards_late += 1,
            Err(Rejected::Memory) => self.stats.memory_drops += 1,
        }
        self.advance(now);
        r
    }

    fn push_inner(&mut self, body: &[u8], now: Instant) -> Result<(), Rejected> {
        let (h, shard) = VideoHeader::decode(body).map_err(Rejected::Invalid)?;
        let inv = |what| Rejected::Invalid(WireError::Limit(what));
        // A window row's bytes: the window's extension, then the row (its longest shard).
        let (window, shard) = if h.window() {
            let (ext, row) = WindowExt::decode(shard).map_err(Rejected::Invalid)?;
            let longest = ext
                .older
                .iter()
                .map(|f| f.shard_size)
                .fold(h.shard_size, u16::max);
            if row.len() != longest as usize {
                return Err(inv("window row"));
            }
            (Some(ext), row)
        } else {
            (None, shard)
        };
        // Limits that need no state.
        if h.frame_len == 0 || h.frame_len as usize > self.cfg.max_frame_bytes {
            return Err(inv("frame length"));
        }
        if h.shard_size == 0 || (window.is_none() && shard.len() != h.shard_size as usize) {
            return Err(inv("shard size"));
        }
        if h.fec_scheme != self.coder.scheme() {
            return Err(inv("fec scheme"));
        }
        let n = (h.frame_len as usize).div_ceil(h.shard_size as usize);
        let layout = BlockLayout::checked(n, h.block_count as usize).ok_or(inv("block count"))?;
        let b = h.block_index as usize;
        if b >= layout.blocks {
            return Err(inv("block index"));
        }
        let k = layout.data_in_block(b);
        let m = h.parity as usize;
        if k + m > MAX_SHARDS_PER_BLOCK.min(self.coder.max_shards()) {
            return Err(inv("parity count"));
        }
        let si = h.shard_index as usize;
        // Data, parity, then up to MAX_REPAIR_ROWS repair rows (never past the field's size).
        let index_limit = (k + m + MAX_REPAIR_ROWS)
            .min(MAX_SHARDS_PER_BLOCK)
            .min(self.coder.max_shards());
        if si >= index_limit {
            return Err(inv("shard index"));
        }
        // Only a small one-block frame may keep parity behind the next frame: a flag on any
        // other claims rows no host sends, and would only hold the client's repair back.
        if h.trailing() && (layout.blocks != 1 || k > MAX_TRAILING_K) {
            return Err(inv("trailing parity"));
        }
        // Window rows are a trailing frame's trailing rows over the trailing frames before it,
        // or a paired frame's rows (all of them, sent with it) over the paired frame before it.
        let held_rows = if h.trailing() {
            trailing_parity(k, m)
        } else {
            m
        };
        if let Some(ext) = &window {
            let older: usize = ext.older.iter().map(|f| f.data_shards()).sum();
            let fits = older + k + m <= MAX_SHARDS_PER_BLOCK
                && (h.trailing() || (layout.blocks == 1 && pairable(k) && ext.older.len() == 1));
            if !fits {
                return Err(inv("window layout"));
            }
            if si < k || si >= k + m || si + held_rows < k + m {
                return Err(inv("window row index"));
            }
        }

        // Ordering against what was delivered.
        if let Some(floor) = self.floor {
            let d = seq_diff(h.frame_index, floor);
            if d < 0 {
                return Err(Rejected::Late);
            }
            if d as u32 > self.cfg.max_index_jump {
                // A discontinuity: restart at this frame.
                self.give_up_all();
                self.awaited.clear();
                self.floor = Some(h.frame_index);
            }
        } else {
            self.floor = Some(h.frame_index);
        }

        let pos = match self.slots.iter().position(|s| s.index == h.frame_index) {
            Some(p) => {
                let s = &self.slots[p];
                if s.frame_len != h.frame_len
                    || s.shard_size != h.shard_size
                    || s.layout != layout
                    || s.keyframe != h.keyframe()
                    || s.trailing != h.trailing()
                    || s.fec_scheme != h.fec_scheme
                    || s.timing != h.timing
                {
                    return Err(inv("shard contradicts its frame"));
                }
                p
            }
            None => self.new_slot(&h, layout, n, now)?,
        };

        let shard_size = h.shard_size as usize;
        // Per-block state, allocated lazily for parity only.
        {
            let slot = &self.slots[pos];
            let blk = &slot.blocks[b];
            if blk.m != u16::MAX && blk.m as usize != m {
                return Err(inv("parity count differs within block"));
            }
            let reordered =
                si < k + m && blk.highest != u16::MAX && si < blk.highest as usize && !blk.has(si);
            if reordered {
                self.stats.shards_reordered += 1;
                if let Some(t) = blk.gap_since {
                    let age = now.saturating_duration_since(t);
                    self.reordering = Some(self.reordering.map_or(age, |r| r.max(age)));
                }
            }
            // A complete frame's window rows still serve the older frames of their window.
            let serves_older = window
                .as_ref()
                .is_some_and(|ext| self.serves_older(slot.index, ext));
            if blk.has(si) || (blk.done && !serves_older) {
                return Err(Rejected::Duplicate);
            }
        }
        if let Some(ext) = window {
            let row = si + held_rows - (k + m);
            return self.push_window_row(pos, m, si, row, ext, shard, now);
        }
        let parity_len = self.slots[pos].blocks[b].parity.len();
        if si >= k && parity_len < (si - k + 1) * shard_size {
            // First parity of the block (room for its m shards), or a repair shard beyond.
            let want = m.max(si - k + 1) * shard_size;
            let need = want - parity_len;
            if !self.make_room(need, pos) {
                return Err(Rejected::Memory);
            }
            // make_room may have removed older slots; find ours again.
            let pos2 = self
                .slots
                .iter()
                .position(|s| s.index == h.frame_index)
                .ok_or(Rejected::Memory)?;
            let slot = &mut self.slots[pos2];
            // Exact, so the accounted bytes are the allocated bytes.
            slot.blocks[b].parity.reserve_exact(need);
            slot.blocks[b].parity.resize(want, 0);
            slot.bytes += need;
            self.stats.memory_in_use += need;
            self.stats.memory_peak = self.stats.memory_peak.max(self.stats.memory_in_use);
            return self.store(pos2, b, k, m, si, shard, now);
        }
        self.store(pos, b, k, m, si, shard, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        pos: usize,
        b: usize,
        k: usize,
        m: usize,
        si: usize,
        shard: &[u8],
        now: Instant,
    ) -> Result<(), Rejected> {
        let slot = &mut self.slots[pos];
        let shard_size = slot.shard_size as usize;
        let first = slot.layout.first_shard(b);
        slot.last_activity = now;
        let blk = &mut slot.blocks[b];
        blk.m = m as u16;
        blk.set(si);
        if si < k + m {
            blk.note_original(si, now);
        }
        blk.total_count += 1;
        if si < k {
            let off = (first + si) * shard_size;
            slot.data[off..off + shard_size].copy_from_slice(shard);
            blk.data_count += 1;
            slot.last_data_at = now;
        } else {
            let off = (si - k) * shard_size;
            blk.parity[off..off + shard_size].copy_from_slice(shard);
        }
        if blk.data_count as usize == k {
            blk.done = true;
        } else if blk.total_count as usize >= k {
            // Enough shards: rebuild the missing data shards in place.
            // Original and repair parity alike: every index the parity buffer covers.
            let total = k + blk.parity.len() / shard_size;
            let mut present = [false; MAX_SHARDS_PER_BLOCK];
            for (i, p) in present.iter_mut().enumerate().take(total) {
                *p = blk.has(i) && !blk.is_shared(i);
            }
            let data = &mut slot.data[first * shard_size..(first + k) * shard_size];
            let missing = k - blk.data_count as usize;
            let mut views: Vec<&mut [u8]> = data.chunks_exact_mut(shard_size).collect();
            views.extend(blk.parity.chunks_exact_mut(shard_size));
            self.coder
                .reconstruct(k, &mut views, &present[..total])
                .map_err(|_| Rejected::Invalid(WireError::Limit("fec reconstruction")))?;
            blk.done = true;
            slot.recovered += missing as u32;
            self.stats.shards_recovered += missing as u64;
        }
        if blk.done {
            // Parity is no longer needed.
            let freed = blk.parity.len();
            blk.parity = Vec::new();
            slot.bytes -= freed;
            self.stats.memory_in_use -= freed;
            slot.blocks_done += 1;
        }
        // Its data may be what later frames' window rows wait for, and its own rows may
        // complete what its window rows began.
        let windowed = slot.layout.blocks == 1 && (blk.done || !slot.window_rows.is_empty());
        if windowed && self.slots.iter().any(|s| !s.window_rows.is_empty()) {
            self.solve_windows();
        }
        Ok(())
    }

    fn new_slot(
        &mut self,
        h: &VideoHeader,
        layout: BlockLayout,
        n: usize,
        now: Instant,
    ) -> Result<usize, Rejected> {
        // The block bookkeeping counts against the cap too: a frame of tiny shards can claim
        // 65,535 blocks, whose state would otherwise be megabytes the cap never saw.
        let data_bytes = n * h.shard_size as usize;
        let bytes = data_bytes + slot_bookkeeping_bytes(layout.blocks);
        while self.slots.len() >= self.cfg.max_frames_in_flight {
            if !self.give_up_oldest() {
                return Err(Rejected::Memory);
            }
        }
        if !self.make_room(bytes, usize::MAX) {
            return Err(Rejected::Memory);
        }
        let blocks = (0..layout.blocks)
            .map(|_| Block {
                m: u16::MAX,
                received: [0; 4],
                shared: [0; 4],
                data_count: 0,
                total_count: 0,
                parity: Vec::new(),
                done: false,
                highest: u16::MAX,
                originals: 0,
                gap_since: None,
            })
            .collect();
        self.slots.push(Slot {
            index: h.frame_index,
            frame_len: h.frame_len,
            shard_size: h.shard_size,
            layout,
            keyframe: h.keyframe(),
            trailing: h.trailing(),
            fec_scheme: h.fec_scheme,
            timing: h.timing,
            data: vec![0u8; data_bytes],
            blocks,
            blocks_done: 0,
            first_seen: now,
            last_activity: now,
            last_data_at: now,
            recovered: 0,
            bytes,
            // An awaited frame keeps the deadline it was awaited until.
            deadline: self
                .awaited
                .iter()
                .find(|a| a.0 == h.frame_index)
                .map(|a| a.1),
            window_rows: Vec::new(),
        });
        self.awaited.retain(|a| a.0 != h.frame_index);
        self.stats.memory_in_use += bytes;
        self.stats.memory_peak = self.stats.memory_peak.max(self.stats.memory_in_use);
        Ok(self.slots.len() - 1)
    }

    /// Delivers what is deliverable, gives up what timed out.
    fn advance(&mut self, now: Instant) {
        // An awaited frame past its deadline is a frame never seen like any other.
        self.awaited.retain(|a| a.1 > now);
        loop {
            let Some(floor) = self.floor else { return };
            // A complete keyframe ahead releases everything before it at once (after the
            // trailing rows of the frame just before it had their moment).
            let held = self.keyframe_held_until().is_some_and(|t| now < t);
            if !held
                && let Some(kf) = self
                    .slots
                    .iter()
                    .filter(|s| s.keyframe && s.complete() && s.index != floor)
                    .map(|s| s.index)
                    .min_by_key(|&i| seq_diff(i, floor))
            {
                self.give_up_through(kf.wrapping_sub(1));
                continue;
            }
            match self.slots.iter().position(|s| s.index == floor) {
                Some(p) if self.slots[p].complete() => {
                    if let Some(s) = self.remove_slot(floor) {
                        self.deliver(s);
                    }
                    self.floor = Some(floor.wrapping_add(1));
                }
                Some(p) => {
                    if now >= self.give_up_at(&self.slots[p]) {
                        self.give_up_through(floor);
                    } else {
                        return;
                    }
                }
                None => {
                    // Never seen. Give it up once a later frame is complete or has timed out,
                    // unless it is awaited and its deadline has not passed.
                    if self.is_awaited(floor) {
                        return;
                    }
                    let later_ready = self.slots.iter().any(|s| {
                        s.complete()
                            || now.saturating_duration_since(s.last_activity)
                                >= self.cfg.reorder_window
                    });
                    if !later_ready {
                        return;
                    }
                    let next = self
                        .slots
                        .iter()
                        .map(|s| s.index)
                        .min_by_key(|&i| seq_diff(i, floor));
                    match next {
                        Some(n) => self.give_up_through(n.wrapping_sub(1)),
                        None => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod memory_tests;

#[cfg(test)]
mod window_tests;
