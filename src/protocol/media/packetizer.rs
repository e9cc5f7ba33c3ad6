//! Host side: one access unit → equal-sized datagrams (data shards, then parity), ready to seal.
//!
//! The frame is cut into `n` data shards of equal size (the last zero-padded; the header's
//! `frame_len` gives the true length back), the shards are grouped into FEC blocks
//! ([`BlockLayout`]) and each block gets the parity a [`ParityTable`] names for its size (from the
//! FEC controller; `parity_for(k, fec%)` for a fixed share). Datagrams are laid
//! out back to back in one reusable buffer, all the same length, so the transport can hand a
//! whole run to UDP GSO. Send order is every data shard first, then the parity, so a lossless
//! frame completes on its last data shard.
//!
//! A small frame (one block of at most [`MAX_TRAILING_K`](crate::protocol::fec::coder::MAX_TRAILING_K) data shards, when the parity table
//! allows it) keeps only part of its parity with it: the rest
//! ([`trailing_parity`](crate::protocol::fec::coder::trailing_parity)) is held in
//! [`TrailingParity`] and sent behind the *next* frame's datagrams, with fresh packet numbers.
//! One burst of consecutive datagrams then takes the frame's data and early parity or its
//! trailing rows, rarely both; the trailing rows rebuild it one frame interval later, where a
//! repair request would take a round trip. Every shard of such a frame carries
//! [`VIDEO_FLAG_TRAILING`], so the client knows to wait for them before asking for repair.
//!
//! A paired frame (a larger one-block frame on the same paths, [`ParityTable::pairs`]) holds
//! all its parity in [`TrailingParity`] too, but its rows leave right behind its own datagrams
//! (the driver releases them once the frame is out): held only so that they can be sent as
//! rows shared with the frame before it (`shared_rows`), in datagrams of their own length.
//!
//! Must never: delay a data shard, or hold more than [`MAX_HELD_FRAMES`] frames' rows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::fec::coder::{BlockLayout, FecCoder, FecError, ParityTable, trailing_parity};
use crate::protocol::media::shared_rows::{Packetized, WINDOW_EXT_MAX, WindowHistory};
use crate::protocol::media::timing::FrameTiming;
use crate::protocol::security::crypto::Aead;
use crate::protocol::wire::{
    FLAG_SEALED, HEADER_LEN, Header, Kind, VIDEO_FLAG_KEYFRAME, VIDEO_FLAG_TRAILING,
    VIDEO_HEADER_LEN, VideoHeader, seq_diff,
};

/// Largest access unit we send or accept: a 64 MiB frame is far beyond any real 8K keyframe,
/// and the receiver's memory cap must hold at least one whole frame plus parity.
pub(crate) const MAX_FRAME_BYTES: usize = 64 << 20;

/// Why a frame could not be packetized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketizeError {
    /// An access unit must hold at least one byte.
    Empty,
    /// Larger than [`MAX_FRAME_BYTES`].
    TooLarge,
    /// The MTU leaves no room for a shard.
    MtuTooSmall,
    /// The FEC coder failed.
    Fec(FecError),
}

impl std::fmt::Display for PacketizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketizeError::Empty => write!(f, "empty access unit"),
            PacketizeError::TooLarge => {
                write!(f, "access unit larger than {MAX_FRAME_BYTES} bytes")
            }
            PacketizeError::MtuTooSmall => write!(f, "mtu too small for the headers"),
            PacketizeError::Fec(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PacketizeError {}

/// The datagrams of one frame, back to back, all `datagram_len` bytes long.
#[derive(Default, Clone)]
pub struct Datagrams {
    buf: Vec<u8>,
    datagram_len: usize,
    count: usize,
    data_count: usize,
    shard_size: usize,
    frame_index: u32,
    first_packet_number: u64,
    frame_len: usize,
    keyframe: bool,
    timing: FrameTiming,
    /// Parity shards of each block, as packetized (what [`Packetizer::encode_parity`] fills).
    block_parity: Vec<u8>,
    /// Parity datagrams after the first `count` that travel behind the next frame (or right
    /// behind this one, when `paired`).
    trailing: usize,
    /// A paired frame ([`ParityTable::pairs`]).
    paired: bool,
}

impl Datagrams {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of datagrams sent with the frame (data + parity, not the trailing rows).
    pub fn len(&self) -> usize {
        self.count
    }
    /// True when it holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Number of data datagrams (they come first).
    pub fn data_count(&self) -> usize {
        self.data_count
    }
    /// Length of every datagram.
    pub fn datagram_len(&self) -> usize {
        self.datagram_len
    }
    /// Index of the frame the datagrams belong to.
    pub fn frame_index(&self) -> u32 {
        self.frame_index
    }
    /// Packet number of the first datagram.
    pub fn first_packet_number(&self) -> u64 {
        self.first_packet_number
    }
    /// Total bytes on the wire (UDP payload).
    pub fn wire_bytes(&self) -> usize {
        self.count * self.datagram_len
    }
    /// Datagram `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.buf[i * self.datagram_len..(i + 1) * self.datagram_len]
    }
    /// Every datagram, in send order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.buf[..self.count * self.datagram_len].chunks_exact(self.datagram_len.max(1))
    }
    /// Datagrams `range` as one contiguous slice (for GSO-style sends).
    pub fn contiguous(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range.start * self.datagram_len..range.end * self.datagram_len]
    }
    /// Bytes per shard.
    pub fn shard_size(&self) -> usize {
        self.shard_size
    }
    /// Length of the access unit these datagrams carry.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }
    /// Whether the frame is a keyframe.
    pub fn keyframe(&self) -> bool {
        self.keyframe
    }
    /// The frame timing every shard header carries.
    pub fn timing(&self) -> FrameTiming {
        self.timing
    }
    /// Parity shards of each block of the frame, in block order (trailing rows included).
    pub(crate) fn block_parity(&self) -> &[u8] {
        &self.block_parity
    }
    /// Parity datagrams that travel behind the next frame (see [`TrailingParity`]).
    pub(crate) fn trailing_count(&self) -> usize {
        self.trailing
    }
    /// The trailing datagrams, back to back (headers written, not sealed).
    pub fn trailing(&self) -> &[u8] {
        let dlen = self.datagram_len;
        &self.buf[self.count * dlen..(self.count + self.trailing) * dlen]
    }
    /// Whether it is a paired frame (its held rows follow it at once, PROTOCOL §9.4).
    pub(crate) fn paired(&self) -> bool {
        self.paired
    }
    /// The payload of data shard `i` (`i < data_count()`), padding included.
    pub(crate) fn data_shard(&self, i: usize) -> &[u8] {
        let off = i * self.datagram_len + HEADER_LEN + VIDEO_HEADER_LEN;
        &self.buf[off..off + self.shard_size]
    }

    /// Makes room for `count` datagrams of `datagram_len` bytes (reusing the buffer) and
    /// describes them; the caller writes every datagram in full.
    pub fn prepare(
        &mut self,
        count: usize,
        datagram_len: usize,
        shard_size: usize,
        frame_index: u32,
        first_packet_number: u64,
    ) -> &mut [u8] {
        self.datagram_len = datagram_len;
        self.count = count;
        self.data_count = 0;
        self.shard_size = shard_size;
        self.frame_index = frame_index;
        self.first_packet_number = first_packet_number;
        self.block_parity.clear();
        self.trailing = 0;
        if self.buf.len() < count * datagram_len {
            self.buf.resize(count * datagram_len, 0);
        }
        &mut self.buf[..count * datagram_len]
    }
}

/// How one frame is cut (see [`Packetizer::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Data shards of the frame.
    pub data_shards: usize,
    /// Bytes per shard.
    pub shard: usize,
    /// How the data shards are split into FEC blocks.
    pub layout: BlockLayout,
    /// Datagrams sent with the frame, data and parity.
    pub count: usize,
    /// Parity datagrams held out of `count`: they trail behind the next frame, or, for a
    /// paired frame, follow right behind its own data as window rows.
    pub trailing: usize,
    /// A paired frame ([`ParityTable::pairs`]): its `trailing` rows are all its parity and
    /// leave right behind it.
    pub paired: bool,
}

/// What the session tells the packetizer about a frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameParams {
    /// Index of the frame.
    pub frame_index: u32,
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
    /// Parity share in percent, as carried in the header.
    pub fec_percent: u8,
    /// Session the datagrams belong to.
    pub session_id: u32,
    /// Packet number of the first datagram.
    pub first_packet_number: u64,
    /// Whether datagrams will be sealed (sets the header flag and reserves the tag).
    pub sealed: bool,
    /// Bytes the AEAD tag adds to each datagram (0 when unsealed).
    pub tag_len: usize,
    /// Capture time, duration, render offset and send span (host clock), in every shard.
    pub timing: FrameTiming,
}

/// Cuts frames into datagrams. Holds the FEC coder.
pub struct Packetizer {
    mtu: usize,
    coder: Box<dyn FecCoder>,
}

impl Packetizer {
    /// A packetizer for datagrams of at most `mtu` bytes.
    pub fn new(mtu: usize, coder: Box<dyn FecCoder>) -> Self {
        Packetizer { mtu, coder }
    }

    /// Largest shard for a datagram of `mtu` bytes with `tag_len` bytes of tag.
    pub fn max_shard(mtu: usize, tag_len: usize) -> usize {
        mtu.saturating_sub(HEADER_LEN + VIDEO_HEADER_LEN + tag_len)
            .min(u16::MAX as usize)
    }

    /// How a frame of `len` bytes will be cut at `fec_percent` for every block, without
    /// touching any bytes (the session uses it to reserve packet numbers before packetizing
    /// outside its lock).
    pub fn plan(
        &self,
        len: usize,
        fec_percent: u8,
        tag_len: usize,
    ) -> Result<Plan, PacketizeError> {
        self.plan_with(len, &ParityTable::from_percent(fec_percent), tag_len)
    }

    /// Like [`Packetizer::plan`], with each block's parity from `parity`.
    pub(crate) fn plan_with(
        &self,
        len: usize,
        parity: &ParityTable,
        tag_len: usize,
    ) -> Result<Plan, PacketizeError> {
        if len == 0 {
            return Err(PacketizeError::Empty);
        }
        if len > MAX_FRAME_BYTES {
            return Err(PacketizeError::TooLarge);
        }
        let max_shard = Self::max_shard(self.mtu, tag_len);
        if max_shard < 16 {
            return Err(PacketizeError::MtuTooSmall);
        }
        let mut n = len.div_ceil(max_shard);
        // A frame whose rows trail sends them as window rows (`shared_rows`), as long as the
        // window's longest shard plus its extension: its shards leave room for that.
        // So does a paired frame (its rows follow it at once).
        let room = max_shard - WINDOW_EXT_MAX;
        let windowed = |n: usize| parity.trailing(n, 1) > 0 || parity.pairs(n, 1);
        if windowed(n) || windowed(len.div_ceil(room)) {
            n = len.div_ceil(room);
        }
        let layout = BlockLayout::for_shards(n);
        let parity_total: usize = (0..layout.blocks)
            .map(|b| parity.parity(layout.data_in_block(b)))
            .sum();
        let paired = parity.pairs(n, layout.blocks);
        let trailing = if paired {
            parity_total
        } else {
            parity.trailing(n, layout.blocks)
        };
        Ok(Plan {
            data_shards: n,
            shard: len.div_ceil(n),
            layout,
            count: n + parity_total - trailing,
            trailing,
            paired,
        })
    }

    /// Writes headers and data shards for `frame` into `out` and zeroes the parity payloads.
    /// Packet numbers are `first_packet_number + i` in send order.
    /// Every block gets `parity_for(k, p.fec_percent)` parity shards.
    pub fn packetize(
        &mut self,
        frame: &[u8],
        p: &FrameParams,
        out: &mut Datagrams,
    ) -> Result<(), PacketizeError> {
        self.packetize_with(frame, p, &ParityTable::from_percent(p.fec_percent), out)
    }

    /// Like [`Packetizer::packetize`], with each block's parity from `parity` (the
    /// `fec_percent` of `p` is not used). `parity` must be the table given to
    /// [`Packetizer::plan_with`] when packet numbers were reserved.
    pub fn packetize_with(
        &mut self,
        frame: &[u8],
        p: &FrameParams,
        parity: &ParityTable,
        out: &mut Datagrams,
    ) -> Result<(), PacketizeError> {
        let Plan {
            data_shards: n,
            shard,
            layout,
            count,
            trailing,
            paired,
        } = self.plan_with(frame.len(), parity, p.tag_len)?;
        let dlen = HEADER_LEN + VIDEO_HEADER_LEN + shard + p.tag_len;
        out.datagram_len = dlen;
        out.count = count;
        out.trailing = trailing;
        out.paired = paired;
        out.data_count = n;
        out.shard_size = shard;
        out.frame_index = p.frame_index;
        out.first_packet_number = p.first_packet_number;
        out.frame_len = frame.len();
        out.keyframe = p.keyframe;
        out.timing = p.timing;
        out.block_parity.clear();
        let total = count + trailing;
        if out.buf.len() < total * dlen {
            out.buf.resize(total * dlen, 0);
        }

        let flags = if p.sealed { FLAG_SEALED } else { 0 };
        let video_flags = if p.keyframe { VIDEO_FLAG_KEYFRAME } else { 0 }
            | if trailing > 0 && !paired {
                VIDEO_FLAG_TRAILING
            } else {
                0
            };
        let mut vh = VideoHeader {
            frame_index: p.frame_index,
            frame_len: frame.len() as u32,
            shard_size: shard as u16,
            block_count: layout.blocks as u16,
            block_index: 0,
            shard_index: 0,
            parity: 0,
            flags: video_flags,
            fec_scheme: self.coder.scheme(),
            timing: p.timing,
        };
        // Trailing rows get their packet numbers when they are sent (see `TrailingParity`).
        let write_headers = |i: usize, vh: &VideoHeader, buf: &mut [u8]| {
            let d = &mut buf[i * dlen..(i + 1) * dlen];
            let h = Header {
                kind: Kind::Video,
                flags,
                session_id: p.session_id,
                packet_number: p.first_packet_number + i as u64,
            };
            let (hdr, rest) = d.split_at_mut(HEADER_LEN);
            h.encode(hdr.try_into().expect("header slice is HEADER_LEN"));
            vh.encode(&mut rest[..VIDEO_HEADER_LEN]);
        };

        // Data shards of every block, in frame order.
        let mut next_parity = n;
        for b in 0..layout.blocks {
            let k = layout.data_in_block(b);
            let first = layout.first_shard(b);
            let m = parity.parity(k);
            out.block_parity.push(m as u8);
            vh.block_index = b as u16;
            vh.parity = m as u8;
            for s in 0..k {
                let i = first + s;
                vh.shard_index = s as u8;
                write_headers(i, &vh, &mut out.buf);
                let src_start = i * shard;
                let src_end = (src_start + shard).min(frame.len());
                let dst = &mut out.buf[i * dlen + HEADER_LEN + VIDEO_HEADER_LEN..][..shard];
                let len = src_end - src_start;
                dst[..len].copy_from_slice(&frame[src_start..src_end]);
                dst[len..].fill(0);
            }
            for s in 0..m {
                vh.shard_index = (k + s) as u8;
                write_headers(next_parity, &vh, &mut out.buf);
                next_parity += 1;
            }
        }
        Ok(())
    }

    /// Computes the parity payloads of the frame in `out` (after [`Packetizer::packetize`]),
    /// with the parity counts recorded when it was packetized (`_fec_percent` is kept for the
    /// callers of the fixed-share API and not used).
    pub fn encode_parity(
        &mut self,
        _fec_percent: u8,
        out: &mut Datagrams,
    ) -> Result<(), PacketizeError> {
        self.encode_recorded_parity(out)
    }

    /// Computes the parity payloads of the frame in `out` with the parity counts recorded by
    /// [`Packetizer::packetize_with`].
    pub fn encode_recorded_parity(&mut self, out: &mut Datagrams) -> Result<(), PacketizeError> {
        let total = out.count + out.trailing;
        if total == out.data_count {
            return Ok(());
        }
        let dlen = out.datagram_len;
        let off = HEADER_LEN + VIDEO_HEADER_LEN;
        let shard = out.shard_size;
        let n = out.data_count;
        let layout = BlockLayout::for_shards(n);
        let (data_region, parity_region) = out.buf[..total * dlen].split_at_mut(n * dlen);
        let mut parity_iter = parity_region.chunks_exact_mut(dlen);
        for b in 0..layout.blocks {
            let k = layout.data_in_block(b);
            let first = layout.first_shard(b);
            let m = out.block_parity.get(b).map_or(0, |&m| m as usize);
            if m == 0 {
                continue;
            }
            let data: Vec<&[u8]> = (first..first + k)
                .map(|i| &data_region[i * dlen + off..i * dlen + off + shard])
                .collect();
            let mut parity: Vec<&mut [u8]> = parity_iter
                .by_ref()
                .take(m)
                .map(|d| &mut d[off..off + shard])
                .collect();
            self.coder
                .encode(&data, &mut parity)
                .map_err(PacketizeError::Fec)?;
        }
        Ok(())
    }
}

/// Most frames whose trailing rows [`TrailingParity`] holds at once (a sender that seals
/// ahead of sending keeps a frame or two in hand; older rows are dropped).
pub(crate) const MAX_HELD_FRAMES: usize = 4;

/// Trailing rows older than this are dropped instead of sent: a stream that paused has long
/// had its frames repaired or given up, and rows for them would only be counted late.
pub(crate) const MAX_TRAILING_AGE: Duration = Duration::from_millis(100);

/// One frame's trailing rows, unsealed.
struct HeldRows {
    frame_index: u32,
    /// A paired frame's rows: released right behind the frame itself.
    follows: bool,
    datagram_len: usize,
    count: usize,
    buf: Vec<u8>,
    at: Instant,
}

/// The host's trailing parity rows (see the module docs): held when a frame is packetized,
/// released behind the next frame's datagrams.
#[derive(Default)]
pub(crate) struct TrailingParity {
    held: VecDeque<HeldRows>,
    /// The frames the next frames' rows share a window with.
    window: WindowHistory,
    /// Frames whose rows were dropped unsent (too many held, or too old).
    pub dropped: u64,
}

impl TrailingParity {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Keeps the trailing rows of the frame just packetized into `d` (before sealing).
    pub(crate) fn hold(&mut self, d: &Datagrams, now: Instant) {
        if d.trailing == 0 {
            return;
        }
        // Own rows when no window can be formed (or, never expected, the coder refuses it).
        let packetized = Packetized {
            paired: d.paired,
            index: d.frame_index,
            frame_len: d.frame_len,
            shard_size: d.shard_size,
            data: (0..d.data_count).map(|i| d.data_shard(i)).collect(),
            trailing: d.trailing(),
            trailing_count: d.trailing,
            datagram_len: d.datagram_len,
        };
        let (buf, datagram_len) = self
            .window
            .window_rows(&packetized)
            .ok()
            .flatten()
            .unwrap_or_else(|| (d.trailing().to_vec(), d.datagram_len));
        if self.held.len() == MAX_HELD_FRAMES {
            self.held.pop_front();
            self.dropped += 1;
        }
        self.held.push_back(HeldRows {
            frame_index: d.frame_index,
            follows: d.paired,
            datagram_len,
            count: d.trailing,
            buf,
            at: now,
        });
    }

    /// Frames whose rows are held.
    #[cfg(test)]
    pub(crate) fn frames_held(&self) -> usize {
        self.held.len()
    }

    /// When the newest held rows were packetized (`None` when none are held).
    pub(crate) fn newest_at(&self) -> Option<Instant> {
        self.held.back().map(|h| h.at)
    }

    /// Releases the rows of every frame before `frame_index` (the frame just sent), and its
    /// own if it is a paired frame, oldest first: each datagram is numbered from `*next_pn` on (advanced), sealed with `aead` and
    /// handed to `emit`. Rows older than [`MAX_TRAILING_AGE`] are dropped. Returns the
    /// datagrams emitted.
    pub(crate) fn release(
        &mut self,
        frame_index: u32,
        now: Instant,
        next_pn: &mut u64,
        aead: &dyn Aead,
        mut emit: impl FnMut(&[u8]),
    ) -> usize {
        let mut sent = 0;
        while let Some(f) = self.held.front() {
            let d = seq_diff(frame_index, f.frame_index);
            if d < 0 || (d == 0 && !f.follows) {
                break;
            }
            let mut f = self.held.pop_front().expect("front exists");
            if now.saturating_duration_since(f.at) > MAX_TRAILING_AGE {
                self.dropped += 1;
                continue;
            }
            let tag_len = aead.tag_len();
            for d in f.buf[..f.count * f.datagram_len].chunks_exact_mut(f.datagram_len) {
                let (hdr, rest) = d.split_at_mut(HEADER_LEN);
                let Ok((mut h, _)) = Header::decode(hdr) else {
                    continue;
                };
                h.packet_number = *next_pn;
                *next_pn += 1;
                h.encode(hdr.try_into().expect("header slice is HEADER_LEN"));
                let body_len = rest.len() - tag_len;
                let (body, tag) = rest.split_at_mut(body_len);
                aead.seal(h.packet_number, hdr, body, tag);
                emit(d);
                sent += 1;
            }
        }
        sent
    }

    /// Forgets every held row (a new session starts).
    pub(crate) fn clear(&mut self) {
        self.held.clear();
        self.window.clear();
    }
}

/// Whether the opened video `body` is a parity row its frame sent behind the next frame
/// (flagged frame, shard index among the last [`trailing_parity`] rows of the block).
pub(crate) fn is_trailing_row(body: &[u8]) -> bool {
    let Ok((h, _)) = VideoHeader::decode(body) else {
        return false;
    };
    if !h.trailing() || h.shard_size == 0 {
        return false;
    }
    let k = (h.frame_len as usize).div_ceil(h.shard_size as usize);
    let m = h.parity as usize;
    let t = trailing_parity(k, m);
    let si = h.shard_index as usize;
    si < k + m && si + t >= k + m
}

/// Seals every datagram of `out` in place with `aead` (the clear header is the AAD).
pub fn seal_all(out: &mut Datagrams, aead: &dyn Aead) {
    let tag_len = aead.tag_len();
    let dlen = out.datagram_len;
    let first_pn = out.first_packet_number;
    for (i, d) in out.buf[..out.count * dlen]
        .chunks_exact_mut(dlen)
        .enumerate()
    {
        let (hdr, rest) = d.split_at_mut(HEADER_LEN);
        let body_len = rest.len() - tag_len;
        let (body, tag) = rest.split_at_mut(body_len);
        aead.seal(first_pn + i as u64, hdr, body, tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fec::coder::{MAX_TRAILING_K, ReedSolomon8, parity_for};

    fn params(tag_len: usize) -> FrameParams {
        FrameParams {
            frame_index: 7,
            keyframe: true,
            fec_percent: 20,
            session_id: 99,
            first_packet_number: 1000,
            sealed: tag_len > 0,
            tag_len,
            timing: FrameTiming {
                capture_us: 5_000_000,
                duration_us: 16_667,
                render_offset_us: 7_000,
                send_span_us: 300,
            },
        }
    }

    #[test]
    fn layout_of_a_frame() {
        let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
        let frame: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut out = Datagrams::new();
        p.packetize(&frame, &params(16), &mut out).unwrap();
        p.encode_parity(20, &mut out).unwrap();
        let max = Packetizer::max_shard(1400, 16);
        let n = 10_000usize.div_ceil(max);
        assert_eq!(out.data_count(), n);
        assert_eq!(out.len(), n + parity_for(n, 20));
        assert!(out.datagram_len() <= 1400);
        let mut rebuilt = Vec::new();
        for (i, d) in out.iter().enumerate() {
            let (h, body) = Header::decode(d).unwrap();
            assert_eq!(h.packet_number, 1000 + i as u64);
            assert!(h.sealed());
            let (vh, shard) = VideoHeader::decode(&body[..body.len() - 16]).unwrap();
            assert_eq!(vh.frame_len, 10_000);
            assert!(vh.keyframe());
            assert_eq!(
                vh.timing,
                params(16).timing,
                "every shard carries the timing"
            );
            if i < n {
                assert_eq!(vh.shard_index as usize, i);
                rebuilt.extend_from_slice(shard);
            } else {
                assert_eq!(vh.shard_index as usize, i);
            }
        }
        rebuilt.truncate(10_000);
        assert_eq!(rebuilt, frame);
    }

    /// A one-block frame of a table that trails keeps `min(m, k + 1)` parity rows out of its
    /// send (flagged, headers written), the holder sends them behind the next frame with
    /// fresh packet numbers, sealed, and they rebuild the frame's data alone; at most
    /// `MAX_HELD_FRAMES` frames are held, and rows older than `MAX_TRAILING_AGE` are dropped.
    #[test]
    fn trailing_rows_leave_behind_the_next_frame_renumbered_and_rebuild_the_data() {
        use crate::protocol::media::reassembler::{Output, Reassembler, ReassemblerConfig};
        use crate::protocol::security::crypto::PlainAead;
        let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
        let mut table = ParityTable::from_percent(100);
        table.set_trailing(MAX_TRAILING_K);
        let frame: Vec<u8> = (0..5_000u32).map(|i| (i * 7) as u8).collect();
        let mut prm = params(0);
        prm.keyframe = false;
        let mut out = Datagrams::new();
        p.packetize_with(&frame, &prm, &table, &mut out).unwrap();
        p.encode_recorded_parity(&mut out).unwrap();
        let n = out.data_count();
        assert_eq!(n, 4);
        // m = 4 ≤ k + 1: every parity row trails; the frame sends its data alone.
        assert_eq!((out.len(), out.trailing_count()), (4, 4));
        assert_eq!(p.plan_with(5_000, &table, 0).unwrap().trailing, 4);
        for d in out.iter() {
            let (_, body) = Header::decode(d).unwrap();
            assert!(VideoHeader::decode(body).unwrap().0.trailing());
        }
        let t0 = Instant::now();
        let mut held = TrailingParity::new();
        held.hold(&out, t0);
        let mut rows = Vec::new();
        let mut pn = 5_000;
        // Not before the next frame is sent.
        assert_eq!(held.release(7, t0, &mut pn, &PlainAead, |_| {}), 0);
        let sent = held.release(8, t0, &mut pn, &PlainAead, |d| rows.push(d.to_vec()));
        assert_eq!((sent, pn, held.frames_held()), (4, 5_004, 0));
        for (i, d) in rows.iter().enumerate() {
            let (h, body) = Header::decode(d).unwrap();
            assert_eq!(h.packet_number, 5_000 + i as u64);
            assert_eq!(
                VideoHeader::decode(body).unwrap().0.shard_index as usize,
                n + i
            );
        }
        // Every data shard lost: the trailing rows alone rebuild the frame.
        let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
        for d in &rows {
            r.push(&d[HEADER_LEN..], t0).unwrap();
        }
        match r.poll() {
            Some(Output::Frame(f)) => assert_eq!(f.data, frame),
            _ => panic!("not rebuilt"),
        }
        // Bounded: a fifth frame held drops the oldest; stale rows are dropped unsent.
        for i in 0..5 {
            prm.frame_index = 10 + i;
            p.packetize_with(&frame, &prm, &table, &mut out).unwrap();
            held.hold(&out, t0);
        }
        assert_eq!((held.frames_held(), held.dropped), (MAX_HELD_FRAMES, 1));
        let later = t0 + MAX_TRAILING_AGE + Duration::from_millis(1);
        assert_eq!(held.release(20, later, &mut pn, &PlainAead, |_| {}), 0);
        assert_eq!((held.frames_held(), held.dropped), (0, 5));
        // Large frames are paired: all their rows held, to follow them at once; frames past
        // a pair's size (keyframes) keep their parity with them.
        let plan = p.plan_with(40_000, &table, 0).unwrap();
        assert!(plan.paired);
        assert_eq!(plan.trailing, table.parity(plan.data_shards));
        assert_eq!(plan.count, plan.data_shards);
        let plan = p.plan_with(200_000, &table, 0).unwrap();
        assert_eq!((plan.paired, plan.trailing), (false, 0));
        // Nor while congestion control paces frames evenly (the session turns pairing off).
        let mut paced = table.clone();
        paced.set_pairing(false);
        let plan = p.plan_with(40_000, &paced, 0).unwrap();
        assert_eq!((plan.paired, plan.trailing), (false, 0));
        assert_eq!(
            plan.count,
            plan.data_shards + paced.parity(plan.data_shards)
        );
    }

    #[test]
    fn refuses_bad_frames() {
        let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
        let mut out = Datagrams::new();
        assert_eq!(
            p.packetize(&[], &params(16), &mut out),
            Err(PacketizeError::Empty)
        );
        let mut p = Packetizer::new(40, Box::new(ReedSolomon8::new()));
        assert_eq!(
            p.packetize(&[1, 2, 3], &params(16), &mut out),
            Err(PacketizeError::MtuTooSmall)
        );
    }
}
