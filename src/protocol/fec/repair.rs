//! Deadline-bounded repair: the request and answer messages, and the host's bounded history of
//! recent frames from which it computes **new** parity for a block that the client could not
//! rebuild.
//!
//! A block sent with `k` data and `m` parity shards uses rows `0 … m − 1` of the Reed-Solomon
//! parity matrix; its repair shards are rows `m, m + 1, …` (shard indices `k + m …`), which the
//! coder derives as further rows of the same matrix ([`FecCoder::encode_rows`]). They are never
//! copies of sent shards, so any `k` of everything that arrived rebuild the block. Each block
//! gets at most [`MAX_REPAIR_ROWS`] repair rows in all (and never past 256 shards), every request
//! gets rows not sent before, and the host spends at most a share of its media bytes on repair
//! ([`RepairConfig::budget_share`]).
//!
//! A request names, per block, the rows the client wants **in total** over every request for
//! that frame, so the client may send each request several times (the back path loses too):
//! a copy, or a request that arrives after a newer one, asks for nothing new and gets nothing.
//! A frame lost whole (the client saw none of its datagrams) is asked for by index alone
//! ([`RepairRequest::whole`]): every block gets `rounds × k` rows in total, which rebuild it
//! from repair rows alone; frames whose blocks repair rows cannot rebuild (more than
//! [`MAX_REPAIR_ROWS`] data shards in a block, more than [`MAX_REPAIR_ITEMS`] blocks) are refused.
//! An answer may carry a few rows more than asked ([`RepairMargin`], from the loss model), so
//! one burst on the answer itself does not cost another round trip.
//!
//! This module owns the history's memory bound (bytes and frames, oldest evicted first) and the
//! message limits; it never reads a clock, never sends (it fills a [`Datagrams`] the session
//! seals and sends like any frame) and never trusts a request (unknown frames, blocks and
//! counts are refused before any work).
//!
//! Driving it (the Connection's few calls):
//! - host, per frame: `packetize_with` + `encode_recorded_parity`, then
//!   [`RepairHistory::record`] **before** `seal_all` (sealing encrypts the shards in place);
//! - host, on `Control::RepairRequest`: [`RepairHistory::answer`] with the next packet number,
//!   advance the packet number by the shards written, `seal_all`, send; send
//!   `Control::RepairUnavailable` when the answer carries one;
//! - client, after each push or timeout: for each `Reassembler::incomplete` frame,
//!   `Reassembler::missing`; ask at once for blocks with `short_now > 0` (or `short_if_no_more`
//!   once the frame stalled), minus repair already requested; `Reassembler::set_deadline` on
//!   the frame; on `RepairUnavailable`, move the deadline to now; a frame given up sends the
//!   keyframe request.

use std::collections::VecDeque;

use crate::protocol::fec::coder::{BlockLayout, FecCoder, FecError, MAX_SHARDS_PER_BLOCK};
use crate::protocol::media::packetizer::Datagrams;
use crate::protocol::media::timing::FrameTiming;
use crate::protocol::wire::{
    FLAG_SEALED, HEADER_LEN, Header, Kind, Reader, VIDEO_FLAG_KEYFRAME, VIDEO_FLAG_TRAILING,
    VIDEO_HEADER_LEN, VideoHeader, WireError, Writer,
};

/// Repair rows a block may get beyond its original parity, in all. The reassembler accepts
/// shard indices below `min(256, k + m + MAX_REPAIR_ROWS)`.
pub const MAX_REPAIR_ROWS: usize = 64;

/// Blocks one request may name (a frame of 16 blocks is 2,048 data shards, ~2.7 MB).
pub const MAX_REPAIR_ITEMS: usize = 16;

/// Rounds a whole-frame request may name: each asks every block for its data shard count of
/// rows (a frame lost whole, asked again after its answer was lost too).
pub(crate) const MAX_WHOLE_ROUNDS: u8 = 4;

/// One block of a [`RepairRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairItem {
    /// Block index within the frame.
    pub block: u16,
    /// Repair rows wanted for this block in total, over every request for this frame
    /// (1 … [`MAX_REPAIR_ROWS`]): the host sends what it has not been asked for before.
    pub total: u8,
}

/// Client → host: new parity for blocks of one frame.
///
/// Wire (after the control type): `frame_index u32`, `count u8` (1 … 16), then `count` items
/// of `block u16`, `total u8`, blocks strictly increasing. `count = 0` asks for a frame of
/// which nothing arrived (the client does not know its blocks): it is followed by one byte,
/// `rounds` (1 … [`MAX_WHOLE_ROUNDS`]), and means a total of `rounds × k_b` rows (at most
/// [`MAX_REPAIR_ROWS`]) for every block `b` of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairRequest {
    /// The frame whose blocks are asked for.
    pub frame_index: u32,
    items: Vec<RepairItem>,
    /// Rounds of a whole-frame request (`items` is empty); 0 for a request naming blocks.
    whole: u8,
    /// The client asks before it knows the frame failed (its trailing parity is still due):
    /// the answer carries no margin rows (PROTOCOL §10.1).
    early: bool,
}

impl RepairRequest {
    /// A request, if it keeps the limits (1 … 16 items, blocks strictly increasing, each
    /// `total` in 1 … [`MAX_REPAIR_ROWS`]).
    pub fn new(frame_index: u32, items: Vec<RepairItem>) -> Option<Self> {
        let ok = !items.is_empty()
            && items.len() <= MAX_REPAIR_ITEMS
            && items
                .iter()
                .all(|i| i.total >= 1 && i.total as usize <= MAX_REPAIR_ROWS)
            && items.windows(2).all(|w| w[0].block < w[1].block);
        ok.then_some(RepairRequest {
            frame_index,
            items,
            whole: 0,
            early: false,
        })
    }

    /// A request for a frame of which nothing arrived: `rounds × k_b` rows in total for every
    /// block (`rounds` within 1 … [`MAX_WHOLE_ROUNDS`]).
    pub fn whole(frame_index: u32, rounds: u8) -> Option<Self> {
        (1..=MAX_WHOLE_ROUNDS)
            .contains(&rounds)
            .then_some(RepairRequest {
                frame_index,
                items: Vec::new(),
                whole: rounds,
                early: false,
            })
    }

    /// The blocks asked for (empty for a whole-frame request).
    pub fn items(&self) -> &[RepairItem] {
        &self.items
    }

    /// The same request marked early: asked before the frame is known to have failed, so the
    /// answer carries no margin rows. A whole-frame request cannot be early.
    pub fn early(mut self) -> Self {
        self.early = self.whole == 0;
        self
    }

    /// Whether the request is marked early (see [`RepairRequest::early`]).
    pub fn is_early(&self) -> bool {
        self.early
    }

    /// The rounds of a whole-frame request; `None` for a request naming blocks.
    pub(crate) fn whole_rounds(&self) -> Option<u8> {
        (self.whole > 0).then_some(self.whole)
    }

    /// Appends the body.
    pub fn encode(&self, w: &mut Writer<'_>) {
        let early = if self.early { EARLY_FLAG } else { 0 };
        w.u32(self.frame_index).u8(self.items.len() as u8 | early);
        if self.whole > 0 {
            w.u8(self.whole);
        }
        for i in &self.items {
            w.u16(i.block).u8(i.total);
        }
    }

    /// Reads a body written by [`Self::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let frame_index = r.u32()?;
        let raw = r.u8()?;
        let early = raw & EARLY_FLAG != 0;
        let count = (raw & !EARLY_FLAG) as usize;
        if count == 0 {
            if early {
                return Err(WireError::Limit("early whole-frame request"));
            }
            return RepairRequest::whole(frame_index, r.u8()?)
                .ok_or(WireError::Limit("repair rounds"));
        }
        if count > MAX_REPAIR_ITEMS {
            return Err(WireError::Limit("repair item count"));
        }
        // Checked before allocating: the items must all be present.
        if r.remaining() < count * 3 {
            return Err(WireError::Truncated);
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(RepairItem {
                block: r.u16()?,
                total: r.u8()?,
            });
        }
        let req = RepairRequest::new(frame_index, items).ok_or(WireError::Limit("repair items"))?;
        Ok(if early { req.early() } else { req })
    }
}

/// High bit of a request's item count: the request is early (see [`RepairRequest::early`]).
const EARLY_FLAG: u8 = 0x80;

/// Why a request got no (or not all) repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum UnavailableReason {
    /// The frame left the history (too old) or was never sent.
    NotHeld = 1,
    /// The repair budget (share of the stream) is spent for now.
    Budget = 2,
    /// The blocks named already got all the repair rows they may have.
    RowsExhausted = 3,
}

/// Host → client: nothing more will come for this frame's request; fall back now (keyframe
/// request) instead of waiting for the deadline.
///
/// Wire (after the control type): `frame_index u32`, `reason u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairUnavailable {
    /// The frame that was asked for.
    pub frame_index: u32,
    /// Why it cannot be answered.
    pub reason: UnavailableReason,
}

impl RepairUnavailable {
    /// Appends the body.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.frame_index).u8(self.reason as u8);
    }

    /// Reads a body written by [`Self::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let frame_index = r.u32()?;
        let reason = match r.u8()? {
            1 => UnavailableReason::NotHeld,
            2 => UnavailableReason::Budget,
            3 => UnavailableReason::RowsExhausted,
            other => return Err(WireError::UnknownKind(other)),
        };
        Ok(RepairUnavailable {
            frame_index,
            reason,
        })
    }
}

/// Bounds of a [`RepairHistory`].
#[derive(Debug, Clone, Copy)]
pub struct RepairConfig {
    /// Frames kept at most.
    pub max_frames: usize,
    /// Bytes of shard data kept at most (a frame larger than this alone is not kept).
    pub max_bytes: usize,
    /// Repair bytes allowed per media byte sent (the budget refills with each recorded frame).
    pub budget_share: f64,
    /// Most repair bytes that can be saved up.
    pub budget_cap: usize,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            // The deadline is about an RTT plus a frame interval (a few frames at 60 fps); 32
            // frames also cover a 240 fps stream or a slow path.
            max_frames: 32,
            // Two 1080p keyframes (~1 MB) and a few dozen P-frames fit easily.
            max_bytes: 16 << 20,
            // Repair may add at most a quarter of the media rate on average…
            budget_share: 0.25,
            // …with bursts of up to 2 MiB (one large keyframe's worth of repair).
            budget_cap: 2 << 20,
        }
    }
}

/// Counters of a [`RepairHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepairStats {
    /// Repair requests received.
    pub requests: u64,
    /// Repair shards produced.
    pub shards_sent: u64,
    /// Repair bytes produced (datagram payload, unsealed size).
    pub bytes_sent: u64,
    /// Requests refused: the frame is no longer held.
    pub refused_not_held: u64,
    /// Requests refused: the repair byte budget is spent.
    pub refused_budget: u64,
    /// Requests refused: the block has no repair rows left.
    pub refused_rows: u64,
    /// Frames dropped from the history to stay within its limits.
    pub frames_evicted: u64,
    /// Requests that asked for nothing new (copies, or older than one already served).
    pub copies: u64,
    /// Rows sent beyond what was asked ([`RepairMargin`]).
    pub margin_rows: u64,
    /// Whole-frame requests (copies included).
    pub whole_requests: u64,
}

/// Repair rows an answer adds beyond what it was asked for, by the number asked: rows sent in
/// one go travel back to back, so one loss burst can take several of them, and a round that
/// misses one row costs a whole round trip. Planned by the host's FEC controller from the
/// client's loss model (the least margin that keeps the answer's failure probability under a
/// target); none without a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairMargin([u8; MAX_REPAIR_ROWS + 1]);

impl RepairMargin {
    /// No extra rows.
    pub const NONE: RepairMargin = RepairMargin([0; MAX_REPAIR_ROWS + 1]);

    /// The margin for each count of rows asked, `margin(n)` for `n` in `0 ..= MAX_REPAIR_ROWS`
    /// (the margin of 0 rows asked is always 0).
    pub fn from_fn(mut margin: impl FnMut(usize) -> usize) -> Self {
        let mut t = [0u8; MAX_REPAIR_ROWS + 1];
        for (n, e) in t.iter_mut().enumerate().skip(1) {
            *e = margin(n).min(MAX_REPAIR_ROWS) as u8;
        }
        RepairMargin(t)
    }

    /// Extra rows for an answer of `rows` rows.
    pub fn extra(&self, rows: usize) -> usize {
        self.0[rows.min(MAX_REPAIR_ROWS)] as usize
    }
}

struct HeldFrame {
    index: u32,
    frame_len: usize,
    shard_size: usize,
    keyframe: bool,
    /// Part of its parity trailed behind the next frame: repair rows carry the flag too.
    trailing: bool,
    /// Repair shards carry the frame's timing like its original shards.
    timing: FrameTiming,
    layout: BlockLayout,
    /// Original parity per block.
    parity: Vec<u8>,
    /// Repair rows already sent per block (margin included).
    repaired: Vec<u8>,
    /// Rows served per block against the client's totals (margin excluded): a request's
    /// `total` above this is new.
    served: Vec<u8>,
    /// `n × shard_size` bytes: the data shards, padded.
    data: Vec<u8>,
}

/// What [`RepairHistory::answer`] put in the datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairAnswer {
    /// Repair datagrams written (0: nothing, see `unavailable`).
    pub shards: usize,
    /// Set when part or all of the request could not be served: send it to the client.
    pub unavailable: Option<RepairUnavailable>,
}

/// How repair datagrams are framed (as the frame's own datagrams are).
#[derive(Debug, Clone, Copy)]
pub struct RepairParams {
    /// Session the answer's datagrams belong to.
    pub session_id: u32,
    /// Packet number of the answer's first datagram.
    pub first_packet_number: u64,
    /// Whether the datagrams are sealed (AEAD).
    pub sealed: bool,
    /// Bytes the AEAD tag adds to each sealed datagram.
    pub tag_len: usize,
}

/// The host's bounded history of recent frames' data shards (see the module docs).
pub struct RepairHistory {
    cfg: RepairConfig,
    frames: VecDeque<HeldFrame>,
    bytes: usize,
    budget: f64,
    /// Evicted buffers kept for reuse, so recording allocates nothing in steady state.
    spare: Vec<Vec<u8>>,
    stats: RepairStats,
    margin: RepairMargin,
}

impl RepairHistory {
    /// An empty history with the given limits.
    pub fn new(cfg: RepairConfig) -> Self {
        RepairHistory {
            cfg,
            frames: VecDeque::new(),
            bytes: 0,
            budget: 0.0,
            spare: Vec::new(),
            stats: RepairStats::default(),
            margin: RepairMargin::NONE,
        }
    }

    /// The extra rows answers carry from now on (see [`RepairMargin`]).
    pub fn set_margin(&mut self, margin: RepairMargin) {
        self.margin = margin;
    }

    /// The history's counters.
    pub fn stats(&self) -> RepairStats {
        self.stats
    }

    /// Bytes of shard data held now (never above `max_bytes`).
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Frames held now (never above `max_frames`).
    pub fn frames_held(&self) -> usize {
        self.frames.len()
    }

    /// Repair bytes that may be sent now.
    pub fn budget(&self) -> usize {
        self.budget as usize
    }

    /// Forgets every frame (a new session starts).
    pub fn clear(&mut self) {
        while let Some(f) = self.frames.pop_front() {
            self.spare.push(f.data);
        }
        self.spare.truncate(4);
        self.bytes = 0;
        self.budget = 0.0;
    }

    fn evict_oldest(&mut self) {
        if let Some(f) = self.frames.pop_front() {
            self.bytes -= f.data.len();
            self.stats.frames_evicted += 1;
            if self.spare.len() < 4 {
                self.spare.push(f.data);
            }
        }
    }

    /// Keeps the data shards of a frame just packetized (`d`, after the packetizer filled it)
    /// and credits the repair budget with its share of the frame's wire bytes.
    pub fn record(&mut self, d: &Datagrams) {
        self.budget = (self.budget + d.wire_bytes() as f64 * self.cfg.budget_share)
            .min(self.cfg.budget_cap as f64);
        let n = d.data_count();
        let shard = d.shard_size();
        let bytes = n * shard;
        // A frame index seen again (a new session reuses indices) replaces the old one.
        if let Some(f) = self
            .frames
            .iter()
            .position(|f| f.index == d.frame_index())
            .and_then(|p| self.frames.remove(p))
        {
            self.bytes -= f.data.len();
            if self.spare.len() < 4 {
                self.spare.push(f.data);
            }
        }
        if n == 0 || bytes > self.cfg.max_bytes || self.cfg.max_frames == 0 {
            return;
        }
        while self.frames.len() >= self.cfg.max_frames || self.bytes + bytes > self.cfg.max_bytes {
            self.evict_oldest();
        }
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.reserve(bytes);
        for i in 0..n {
            data.extend_from_slice(d.data_shard(i));
        }
        let layout = BlockLayout::for_shards(n);
        self.bytes += data.len();
        self.frames.push_back(HeldFrame {
            index: d.frame_index(),
            frame_len: d.frame_len(),
            shard_size: shard,
            keyframe: d.keyframe(),
            trailing: d.trailing_count() > 0 && !d.paired(),
            timing: d.timing(),
            layout,
            parity: d.block_parity().to_vec(),
            repaired: vec![0; layout.blocks],
            served: vec![0; layout.blocks],
            data,
        });
    }

    /// Answers `req`: writes new parity datagrams for the blocks it names into `out`
    /// (framed with `params`, packet numbers from `params.first_packet_number`, not yet
    /// sealed) and says whether anything could not be served. Each block gets the rows its
    /// `total` asks beyond those already served (a copy of a served request gets none), plus
    /// the margin; rows already sent for a block are never sent again; each block is capped at
    /// [`MAX_REPAIR_ROWS`] and 256 shards; the budget caps the total, margin first.
    pub fn answer(
        &mut self,
        req: &RepairRequest,
        coder: &mut dyn FecCoder,
        params: &RepairParams,
        out: &mut Datagrams,
    ) -> Result<RepairAnswer, FecError> {
        self.stats.requests += 1;
        if req.whole_rounds().is_some() {
            self.stats.whole_requests += 1;
        }
        let unavailable = |reason| RepairUnavailable {
            frame_index: req.frame_index,
            reason,
        };
        let Some(pos) = self.frames.iter().position(|f| f.index == req.frame_index) else {
            self.stats.refused_not_held += 1;
            out.prepare(0, 0, 0, req.frame_index, params.first_packet_number);
            return Ok(RepairAnswer {
                shards: 0,
                unavailable: Some(unavailable(UnavailableReason::NotHeld)),
            });
        };
        let f = &self.frames[pos];
        let dlen = HEADER_LEN + VIDEO_HEADER_LEN + f.shard_size + params.tag_len;

        // A whole-frame request asks every block for `rounds × k` rows in total. A frame of
        // more blocks than a request may name, or with a block of more data shards than its
        // repair rows, cannot be rebuilt from repair rows alone: refused before any work.
        let mut whole_items = [RepairItem { block: 0, total: 0 }; MAX_REPAIR_ITEMS];
        let items: &[RepairItem] = match req.whole_rounds() {
            None => req.items(),
            Some(rounds) => {
                let blocks = f.layout.blocks;
                if blocks > MAX_REPAIR_ITEMS
                    || (0..blocks).any(|b| f.layout.data_in_block(b) > MAX_REPAIR_ROWS)
                {
                    self.stats.refused_rows += 1;
                    out.prepare(0, 0, 0, req.frame_index, params.first_packet_number);
                    return Ok(RepairAnswer {
                        shards: 0,
                        unavailable: Some(unavailable(UnavailableReason::RowsExhausted)),
                    });
                }
                for (b, item) in whole_items.iter_mut().enumerate().take(blocks) {
                    let rows = rounds as usize * f.layout.data_in_block(b);
                    *item = RepairItem {
                        block: b as u16,
                        total: rows.min(MAX_REPAIR_ROWS) as u8,
                    };
                }
                &whole_items[..blocks]
            }
        };

        // What each item gets: rows left for the block, then the budget.
        // Per item: (block, first row, rows served against the total, margin rows).
        let mut plan: [(usize, usize, usize, usize); MAX_REPAIR_ITEMS] =
            [(0, 0, 0, 0); MAX_REPAIR_ITEMS];
        let mut total = 0usize;
        let mut short = None;
        let mut fresh = false;
        let mut budget_rows = (self.budget / dlen as f64) as usize;
        for (slot, item) in plan.iter_mut().zip(items) {
            let b = item.block as usize;
            if b >= f.layout.blocks {
                short.get_or_insert(UnavailableReason::NotHeld);
                continue;
            }
            let wanted = (item.total as usize).saturating_sub(f.served[b] as usize);
            if wanted == 0 {
                continue;
            }
            fresh = true;
            let k = f.layout.data_in_block(b);
            let m = f.parity[b] as usize;
            let done = f.repaired[b] as usize;
            let rows_left = MAX_REPAIR_ROWS
                .saturating_sub(done)
                .min(MAX_SHARDS_PER_BLOCK.saturating_sub(k + m + done));
            let mut give = wanted.min(rows_left);
            if give < wanted {
                short.get_or_insert(UnavailableReason::RowsExhausted);
            }
            if give > budget_rows {
                give = budget_rows;
                short = Some(UnavailableReason::Budget);
            }
            budget_rows -= give;
            let margin = if req.is_early() {
                0
            } else {
                self.margin.extra(give)
            };
            let extra = margin.min(rows_left - give).min(budget_rows);
            budget_rows -= extra;
            *slot = (b, m + done, give, extra);
            total += give + extra;
        }
        if !fresh && short.is_none() {
            self.stats.copies += 1;
        }
        match short {
            Some(UnavailableReason::Budget) => self.stats.refused_budget += 1,
            Some(UnavailableReason::RowsExhausted) => self.stats.refused_rows += 1,
            Some(UnavailableReason::NotHeld) => self.stats.refused_not_held += 1,
            None => {}
        }

        let buf = out.prepare(
            total,
            dlen,
            f.shard_size,
            f.index,
            params.first_packet_number,
        );
        let flags = if params.sealed { FLAG_SEALED } else { 0 };
        let mut i = 0usize;
        for &(b, first_row, served, extra) in plan.iter().take(items.len()) {
            let give = served + extra;
            if give == 0 {
                continue;
            }
            let k = f.layout.data_in_block(b);
            let first = f.layout.first_shard(b);
            let vh = VideoHeader {
                frame_index: f.index,
                frame_len: f.frame_len as u32,
                shard_size: f.shard_size as u16,
                block_count: f.layout.blocks as u16,
                block_index: b as u16,
                shard_index: 0,
                parity: f.parity[b],
                flags: if f.keyframe { VIDEO_FLAG_KEYFRAME } else { 0 }
                    | if f.trailing { VIDEO_FLAG_TRAILING } else { 0 },
                fec_scheme: coder.scheme(),
                timing: f.timing,
            };
            let region = &mut buf[i * dlen..(i + give) * dlen];
            for (r, d) in region.chunks_exact_mut(dlen).enumerate() {
                let h = Header {
                    kind: Kind::Video,
                    flags,
                    session_id: params.session_id,
                    packet_number: params.first_packet_number + (i + r) as u64,
                };
                let (hdr, rest) = d.split_at_mut(HEADER_LEN);
                h.encode(hdr.try_into().expect("header slice is HEADER_LEN"));
                let vh = VideoHeader {
                    shard_index: (k + first_row + r) as u8,
                    ..vh
                };
                vh.encode(&mut rest[..VIDEO_HEADER_LEN]);
            }
            let data: Vec<&[u8]> = f.data[first * f.shard_size..(first + k) * f.shard_size]
                .chunks_exact(f.shard_size)
                .collect();
            let off = HEADER_LEN + VIDEO_HEADER_LEN;
            let mut outs: Vec<&mut [u8]> = region
                .chunks_exact_mut(dlen)
                .map(|d| &mut d[off..off + f.shard_size])
                .collect();
            coder.encode_rows(&data, first_row, &mut outs)?;
            i += give;
        }
        let f = &mut self.frames[pos];
        for &(b, _, served, extra) in plan.iter().take(items.len()) {
            f.repaired[b] += (served + extra) as u8;
            f.served[b] += served as u8;
            self.stats.margin_rows += extra as u64;
        }
        let bytes = total * dlen;
        self.budget -= bytes as f64;
        self.stats.shards_sent += total as u64;
        self.stats.bytes_sent += bytes as u64;
        Ok(RepairAnswer {
            shards: total,
            unavailable: short.map(unavailable),
        })
    }
}

#[cfg(test)]
mod tests;
