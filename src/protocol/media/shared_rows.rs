//! Rows shared over a window of frames (`docs/PROTOCOL.md` §9.4): the host side and the wire
//! extension.
//!
//! Two kinds of frame hold their rows back ([`TrailingParity`](super::packetizer::TrailingParity))
//! and send them as window rows ([`crate::protocol::fec::window`]) over themselves and the
//! *windowed* frames (those that held rows too) just before them, consecutive indices only:
//! - a small frame's trailing rows (sent behind the next frame,
//!   [`trailing_parity`](crate::protocol::fec::coder::trailing_parity)) span it and up to
//!   [`MAX_WINDOW_FRAMES`]` − 1` frames before it, so each row protects three frames: a burst
//!   that takes one frame's data and its rows is rebuilt from the next frames' rows, one or two
//!   frame intervals later, instead of a repair round trip later;
//! - a paired frame's rows ([`ParityTable::pairs`](crate::protocol::fec::coder::ParityTable::pairs):
//!   a large one-block frame, all its parity, sent right behind its data) span it and the one
//!   frame before it: a burst longer than a large frame's parity is rebuilt from the next
//!   frame's rows, one frame interval later.
//!
//! The rows keep their frame's header and shard index (the client's repair bookkeeping sees
//! them where it saw the frame's own rows) with [`VIDEO_FLAG_WINDOW`] set; the shard bytes are
//! a [`WindowExt`] naming the older frames' layouts, then the row, as long as the window's
//! longest shard. A window and its rows stay within one Reed-Solomon block.
//!
//! Must never: name a frame the host did not send just before, or make a datagram longer than
//! the frame's own shard plus [`WINDOW_EXT_MAX`].

use std::collections::VecDeque;

use crate::protocol::fec::coder::{FecError, MAX_PAIRED_K, MAX_SHARDS_PER_BLOCK};
use crate::protocol::fec::window::encode_window_rows;
use crate::protocol::wire::{HEADER_LEN, VIDEO_HEADER_LEN, VideoHeader, WireError};

pub(crate) use crate::protocol::wire::VIDEO_FLAG_WINDOW;

/// Frames a window spans at most (the frame and two before it): parity spanning about three
/// frames is where a streaming code's gain lies (Tambur, NSDI 2023), and on the 30 ms WAN path
/// the third frame's rows still land within one RTT + two frame intervals of the first
/// (`cargo bench --features testing --bench streaming_code`, `docs/wan_protection.md`).
pub(crate) const MAX_WINDOW_FRAMES: usize = 3;

/// Largest [`WindowExt`] on the wire: a count byte and 6 bytes per older frame.
pub(crate) const WINDOW_EXT_MAX: usize = 1 + 6 * (MAX_WINDOW_FRAMES - 1);

/// An older frame of a window, as a row names it: enough to lay out its data shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OlderFrame {
    /// Its access unit's length.
    pub frame_len: u32,
    /// Its shard size.
    pub shard_size: u16,
}

impl OlderFrame {
    /// Its data shards.
    pub(crate) fn data_shards(&self) -> usize {
        (self.frame_len as usize).div_ceil(self.shard_size.max(1) as usize)
    }
}

/// The extension a window row carries before its bytes: the older frames of its window, the
/// frame just before the row's first (index − 1, then index − 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowExt {
    pub older: Vec<OlderFrame>,
}

impl WindowExt {
    /// Bytes on the wire.
    pub(crate) fn len(&self) -> usize {
        1 + 6 * self.older.len()
    }

    /// Writes the extension into the first [`WindowExt::len`] bytes of `out`.
    pub(crate) fn encode(&self, out: &mut [u8]) {
        out[0] = self.older.len() as u8;
        for (i, f) in self.older.iter().enumerate() {
            let o = &mut out[1 + 6 * i..7 + 6 * i];
            o[..4].copy_from_slice(&f.frame_len.to_be_bytes());
            o[4..].copy_from_slice(&f.shard_size.to_be_bytes());
        }
    }

    /// Parses the extension at the start of a window row's shard bytes; returns it and the
    /// row. Checks the layout and that every older frame could share a window (one block of
    /// at most [`MAX_PAIRED_K`] data shards); which frames may share one, and lengths against
    /// the frames, are the reassembler's.
    pub(crate) fn decode(buf: &[u8]) -> Result<(WindowExt, &[u8]), WireError> {
        let count = *buf.first().ok_or(WireError::Truncated)? as usize;
        if count == 0 || count >= MAX_WINDOW_FRAMES {
            return Err(WireError::Limit("window frames"));
        }
        let need = 1 + 6 * count;
        if buf.len() < need {
            return Err(WireError::Truncated);
        }
        let older: Vec<OlderFrame> = (0..count)
            .map(|i| {
                let o = &buf[1 + 6 * i..7 + 6 * i];
                OlderFrame {
                    frame_len: u32::from_be_bytes([o[0], o[1], o[2], o[3]]),
                    shard_size: u16::from_be_bytes([o[4], o[5]]),
                }
            })
            .collect();
        if older
            .iter()
            .any(|f| f.frame_len == 0 || f.shard_size == 0 || f.data_shards() > MAX_PAIRED_K)
        {
            return Err(WireError::Limit("window frame layout"));
        }
        Ok((WindowExt { older }, &buf[need..]))
    }
}

/// A frame just packetized, as its window rows need it (the packetizer's datagrams, taken
/// apart so this module needs nothing of the packetizer's).
pub(crate) struct Packetized<'a> {
    /// A paired frame (its held rows are all its parity, and follow it at once).
    pub paired: bool,
    pub index: u32,
    pub frame_len: usize,
    pub shard_size: usize,
    /// Its data shards, zero-padded.
    pub data: Vec<&'a [u8]>,
    /// Its trailing datagrams, back to back, headers written and parity encoded.
    pub trailing: &'a [u8],
    pub trailing_count: usize,
    /// Length of each of its datagrams.
    pub datagram_len: usize,
}

/// A windowed frame the host sent, kept for the windows of the frames after it.
struct Recent {
    index: u32,
    frame_len: u32,
    shard_size: usize,
    /// Its data shards, zero-padded, back to back.
    data: Vec<u8>,
}

/// Host: the last windowed frames' data shards, and the window rows of each new one.
#[derive(Default)]
pub(crate) struct WindowHistory {
    recent: VecDeque<Recent>,
}

impl WindowHistory {
    /// The trailing datagrams of `d` (packetized, parity encoded, headers written) as window
    /// rows over `d` and the trailing frames sent just before it: the datagrams back to back
    /// and their length. `None` when no frame just before it trailed (its own rows go as they
    /// are). Keeps `d`'s data for the frames after it either way.
    pub(crate) fn window_rows(
        &mut self,
        d: &Packetized<'_>,
    ) -> Result<Option<(Vec<u8>, usize)>, FecError> {
        let t = d.trailing_count;
        if t == 0 {
            return Ok(None);
        }
        let index = d.index;
        let shard = d.shard_size;
        let own: Vec<u8> = d.data.concat();
        // The run of windowed frames (trailing or paired) just before this one, newest
        // first: up to two behind a trailing frame, one behind a paired frame, as long as the
        // window and its rows stay one Reed-Solomon block (MAX_SHARDS_PER_BLOCK shards).
        let span = if d.paired { 1 } else { MAX_WINDOW_FRAMES - 1 };
        let mut shards = d.data.len() + t;
        let older: Vec<&Recent> = self
            .recent
            .iter()
            .rev()
            .enumerate()
            .take_while(|(i, r)| r.index == index.wrapping_sub(*i as u32 + 1))
            .map(|(_, r)| r)
            .take(span)
            .take_while(|r| {
                shards += r.data.len() / r.shard_size;
                shards <= MAX_SHARDS_PER_BLOCK
            })
            .collect();
        let out = if older.is_empty() {
            None
        } else {
            let ext = WindowExt {
                older: older
                    .iter()
                    .map(|r| OlderFrame {
                        frame_len: r.frame_len,
                        shard_size: r.shard_size as u16,
                    })
                    .collect(),
            };
            let row_len = older.iter().map(|r| r.shard_size).fold(shard, usize::max);
            let frames: Vec<Vec<&[u8]>> = older
                .iter()
                .rev()
                .map(|r| r.data.chunks_exact(r.shard_size).collect())
                .chain(std::iter::once(own.chunks_exact(shard).collect()))
                .collect();
            let frames: Vec<&[&[u8]]> = frames.iter().map(|f| f.as_slice()).collect();
            let mut rows = vec![vec![0u8; row_len]; t];
            {
                let mut views: Vec<&mut [u8]> = rows.iter_mut().map(|r| r.as_mut_slice()).collect();
                encode_window_rows(&frames, 0, &mut views)?;
            }
            let tag = d.datagram_len - HEADER_LEN - VIDEO_HEADER_LEN - shard;
            let dlen = HEADER_LEN + VIDEO_HEADER_LEN + ext.len() + row_len + tag;
            let mut buf = vec![0u8; t * dlen];
            let trailing = d.trailing;
            let old_len = d.datagram_len;
            for (i, row) in rows.iter().enumerate() {
                let src = &trailing[i * old_len..(i + 1) * old_len];
                let dst = &mut buf[i * dlen..(i + 1) * dlen];
                dst[..HEADER_LEN].copy_from_slice(&src[..HEADER_LEN]);
                let (mut vh, _) =
                    VideoHeader::decode(&src[HEADER_LEN..]).map_err(|_| FecError::Coder)?;
                vh.flags |= VIDEO_FLAG_WINDOW;
                vh.encode(&mut dst[HEADER_LEN..HEADER_LEN + VIDEO_HEADER_LEN]);
                let body = &mut dst[HEADER_LEN + VIDEO_HEADER_LEN..];
                ext.encode(body);
                body[ext.len()..ext.len() + row_len].copy_from_slice(row);
            }
            Some((buf, dlen))
        };
        if self.recent.len() == MAX_WINDOW_FRAMES - 1 {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            index,
            frame_len: d.frame_len as u32,
            shard_size: shard,
            data: own,
        });
        Ok(out)
    }

    /// Forgets every frame (a new session starts).
    pub(crate) fn clear(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::protocol::fec::coder::{MAX_TRAILING_K, ParityTable, ReedSolomon8};
    use crate::protocol::media::packetizer::{Datagrams, FrameParams, Packetizer, TrailingParity};
    use crate::protocol::media::reassembler::{Output, Reassembler, ReassemblerConfig};
    use crate::protocol::security::crypto::PlainAead;
    use crate::protocol::wire::Header;

    /// Frames of these lengths, each of its own bytes.
    fn frames_of(lens: &[usize], salt: usize) -> Vec<Vec<u8>> {
        lens.iter()
            .enumerate()
            .map(|(f, &n)| (0..n).map(|i| (i * 7 + f * salt) as u8).collect())
            .collect()
    }

    fn params(frame_index: u32, fec_percent: u8, first_packet_number: u64) -> FrameParams {
        FrameParams {
            frame_index,
            keyframe: false,
            fec_percent,
            session_id: 1,
            first_packet_number,
            sealed: false,
            tag_len: 0,
            timing: Default::default(),
        }
    }

    /// Every window row's (frame, older frames in its window); every datagram within `mtu`.
    fn windows_in(datagrams: &[(usize, Vec<u8>)], mtu: usize) -> Vec<(u32, usize)> {
        let mut windows = Vec::new();
        for (_, d) in datagrams {
            assert!(d.len() <= mtu, "{} bytes", d.len());
            let (_, body) = Header::decode(d).unwrap();
            let (h, rest) = VideoHeader::decode(body).unwrap();
            if h.window() {
                let (ext, _) = WindowExt::decode(rest).unwrap();
                windows.push((h.frame_index, ext.older.len()));
            }
        }
        windows
    }

    /// What a client delivers from `datagrams`, less those `lost` names; and its reassembler.
    fn delivered(
        datagrams: &[(usize, Vec<u8>)],
        lost: impl Fn(&VideoHeader) -> bool,
    ) -> (Vec<Vec<u8>>, Reassembler) {
        let t0 = Instant::now();
        let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
        for (_, d) in datagrams {
            let (_, body) = Header::decode(d).unwrap();
            let (h, _) = VideoHeader::decode(body).unwrap();
            if !lost(&h) {
                let _ = r.push(body, t0);
            }
        }
        let got = std::iter::from_fn(|| r.poll())
            .filter_map(|o| match o {
                Output::Frame(f) => Some(f.data),
                Output::Lost { .. } => None,
            })
            .collect();
        (got, r)
    }

    /// Three small frames in a row: the third one's trailing rows are window rows over all
    /// three (flagged, naming the two before), no datagram exceeds the MTU even when a frame's
    /// shards are as long as the window allows, and with the third frame's data lost its rows
    /// alone rebuild it at a client that has the first two.
    #[test]
    fn consecutive_small_frames_share_their_trailing_rows_and_fit_the_mtu() {
        let mtu = 1400;
        let mut p = Packetizer::new(mtu, Box::new(ReedSolomon8::new()));
        let mut table = ParityTable::from_percent(100);
        table.set_trailing(MAX_TRAILING_K);
        let max = Packetizer::max_shard(mtu, 0);
        // The middle frame fills four shards of the largest size a window allows.
        let lens = [5_000usize, 4 * (max - WINDOW_EXT_MAX), 3_000];
        let frames = frames_of(&lens, 31);
        let mut held = TrailingParity::new();
        let t0 = Instant::now();
        let mut datagrams = Vec::new();
        let mut pn = 1;
        for (i, f) in frames.iter().enumerate() {
            let prm = params(7 + i as u32, 100, pn);
            let mut out = Datagrams::new();
            p.packetize_with(f, &prm, &table, &mut out).unwrap();
            p.encode_recorded_parity(&mut out).unwrap();
            assert!(out.trailing_count() > 0, "frame {i} trails");
            assert!(out.shard_size() <= max - WINDOW_EXT_MAX);
            pn += out.len() as u64;
            held.release(prm.frame_index, t0, &mut pn, &PlainAead, |d| {
                datagrams.push((i, d.to_vec()))
            });
            for d in out.iter() {
                datagrams.push((i, d.to_vec()));
            }
            held.hold(&out, t0);
        }
        held.release(10, t0, &mut pn, &PlainAead, |d| {
            datagrams.push((3, d.to_vec()))
        });
        let windows = windows_in(&datagrams, mtu);
        // Frame 7 had no trailing frame before it: its own rows. Frame 8 shares with 7, frame 9
        // with 8 and 7.
        assert!(windows.iter().all(|&(f, _)| f != 7));
        assert!(windows.contains(&(8, 1)) && windows.contains(&(9, 2)));
        // The client: frames 7 and 8 whole, frame 9's data lost, its rows arrive.
        let (got, _) = delivered(&datagrams, |h| {
            let k = (h.frame_len as usize).div_ceil(h.shard_size as usize);
            h.frame_index == 9 && (h.shard_index as usize) < k
        });
        assert_eq!(got, frames);
    }

    /// Two large frames and a small one on a path where small frames trail: the large ones are
    /// paired frames, all their parity held and released right behind each (the second's
    /// rows window rows over both, flagged window and not trailing); the small frame's
    /// trailing rows share a window with both. A client that lost a third of the first frame
    /// and every one of its rows rebuilds it from the second frame's rows, byte-exact.
    #[test]
    fn large_frames_pair_their_rows_and_the_next_frames_rows_rebuild_a_lost_one() {
        let mtu = 1400;
        let mut p = Packetizer::new(mtu, Box::new(ReedSolomon8::new()));
        let mut table = ParityTable::from_percent(50);
        table.set_trailing(MAX_TRAILING_K);
        let frames = frames_of(&[40_000, 38_000, 5_000], 29);
        let mut held = TrailingParity::new();
        let t0 = Instant::now();
        let mut datagrams = Vec::new();
        let mut pn = 1;
        for (i, f) in frames.iter().enumerate() {
            let prm = params(7 + i as u32, 50, pn);
            let mut out = Datagrams::new();
            p.packetize_with(f, &prm, &table, &mut out).unwrap();
            p.encode_recorded_parity(&mut out).unwrap();
            let paired = i < 2;
            assert_eq!(out.paired(), paired, "frame {i}");
            if paired {
                // Only the data goes with the frame; all its rows are held.
                assert_eq!(out.len(), out.data_count());
                assert_eq!(out.trailing_count(), table.parity(out.data_count()));
            }
            pn += out.len() as u64;
            for d in out.iter() {
                datagrams.push((i, d.to_vec()));
            }
            held.hold(&out, t0);
            // The driver, once the frame is out: a paired frame's rows follow at once.
            let sent = held.release(prm.frame_index, t0, &mut pn, &PlainAead, |d| {
                datagrams.push((i, d.to_vec()))
            });
            if paired {
                assert_eq!(sent, out.trailing_count());
            } else {
                assert_eq!(sent, 0);
            }
        }
        held.release(10, t0, &mut pn, &PlainAead, |d| {
            datagrams.push((3, d.to_vec()))
        });
        let windows = windows_in(&datagrams, mtu);
        for (_, d) in &datagrams {
            let (_, body) = Header::decode(d).unwrap();
            let (h, _) = VideoHeader::decode(body).unwrap();
            assert_eq!(h.trailing(), h.frame_index == 9);
        }
        // Frame 7 had no windowed frame before it: its own rows. Frame 8 pairs with 7, and
        // frame 9's trailing rows span both.
        assert!(windows.iter().all(|&(f, _)| f != 7));
        assert!(windows.contains(&(8, 1)));
        assert!(windows.contains(&(9, 2)));
        // The client: frame 7 keeps 20 of its ~30 data shards and none of its rows.
        let (got, r) = delivered(&datagrams, |h| h.frame_index == 7 && h.shard_index >= 20);
        assert_eq!(got, frames);
        assert!(r.stats().shards_recovered >= 8);
    }
}
