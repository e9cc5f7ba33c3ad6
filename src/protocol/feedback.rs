//! Bandwidth feedback, client → host: when each frame's datagrams arrived and how many did.
//!
//! This module owns the feedback body's byte layout ([`Feedback`], documented in
//! `docs/PROTOCOL.md` §10) and the client's [`FeedbackBuilder`], which is fed one call per
//! received video datagram and says when a message is due. The host's use of it is
//! [`super::congestion::BandwidthEstimator`]. It never reads a clock (every method takes `now`), never
//! sends anything and never trusts a decoded message beyond its limits: decoding returns a
//! [`WireError`], allocates at most [`MAX_FEEDBACK_FRAMES`] entries, and accepts exactly one
//! spelling of each message (so a decoded message re-encodes to the same bytes).
//!
//! What is reported, per frame: datagrams received, their bytes (UDP payload), and the arrival
//! times of the first and the last of them on the client's clock. Losses are not reported: the
//! host knows how many datagrams it sent for each frame, so `lost = sent − received` costs no
//! bytes and needs no knowledge of the parity layout on the client. Datagrams of a frame that
//! arrive after the frame was reported are counted in the next message's `late` field, so
//! reordering does not read as loss.
//!
//! This is a congestion signal, not a loss report: the path's loss pattern, which sizes the
//! parity, travels in the client's one loss report (`fec::report`, which says why the two stay
//! apart).
//!
//! Size on the wire, at 60 fps with the defaults: a message every [`FEEDBACK_INTERVAL`] or so
//! carries one or two frames, 25–30 bytes of body; with the control type byte, the clear
//! header, the AEAD tag and IPv6/UDP headers that is about 110 bytes, 40 times a second:
//! ≈ 35 kbit/s of reverse path, 0.2 % of a 20 Mbit/s stream and 3.5 % of a 1 Mbit/s uplink.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire::{Reader, WireError, Writer, seq_diff};

/// A message is sent at least this often while frames arrive (and at once when
/// [`FLUSH_FRAMES`] frames are waiting). 25 ms lets the host decide every few tens of
/// milliseconds, about every second frame at 60 fps.
pub(crate) const FEEDBACK_INTERVAL: Duration = Duration::from_millis(25);

/// A message is due as soon as this many frames are settled, whatever the interval: at high
/// frame rates the message stays small and the host hears about every few frames.
pub(crate) const FLUSH_FRAMES: usize = 4;

/// The newest frame is reported once a datagram of a later frame arrived, or after this long
/// without a datagram of its own (the stream paused, or the next frame was lost entirely).
/// Longer than the gap between the pacer's chunks at any sane pacing rate.
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_millis(40);

/// Most frame entries in one message (decoder limit). Far above what the interval collects at
/// 240 fps; a long run of wholly lost frames costs one byte per entry.
pub const MAX_FEEDBACK_FRAMES: usize = 32;

/// Frames the builder keeps before it drops the oldest unreported ones (a caller that stops
/// polling, or a jump in frame indices). Bounds its memory.
pub(crate) const MAX_PENDING_FRAMES: usize = 128;

/// Most datagrams one frame can have: a 64 MiB frame in shards of the smallest MTU, with 100 %
/// parity, is below this.
pub(crate) const MAX_FRAME_DATAGRAMS: u32 = 1 << 20;

/// Most bytes one frame's datagrams can carry: 64 MiB of frame, 100 % parity, headers.
pub(crate) const MAX_FRAME_BYTES: u64 = 1 << 28;

/// Largest arrival-time offset or span in a message, in µs (60 s). A frame that takes longer
/// than this is reported with its span cut to it; an entry whose offset would exceed it starts
/// the next message.
pub(crate) const MAX_TIME_US: u64 = 60_000_000;

/// Largest `late` count in one message.
pub(crate) const MAX_LATE: u32 = 1 << 20;

/// Arrival report for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameFeedback {
    /// Datagrams of this frame that arrived (0: none did; the times and bytes are then 0).
    pub received: u32,
    /// Their bytes (whole UDP payloads: header, shard and tag).
    pub bytes: u64,
    /// Arrival of the first of them, µs relative to [`Feedback::base_time_us`].
    pub first_offset_us: i64,
    /// Arrival of the last minus arrival of the first, µs.
    pub span_us: u64,
}

/// One feedback message: consecutive frames starting at `base_frame`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// Message counter (wraps), so the host can tell lost and reordered messages.
    pub seq: u16,
    /// Frame index of `frames[0]`; entry `i` is frame `base_frame + i` (wrapping).
    pub base_frame: u32,
    /// Client clock in µs (any epoch, only differences count).
    pub base_time_us: u64,
    /// Datagrams that arrived since the previous message for frames already reported.
    pub late: u32,
    /// 1 ..= [`MAX_FEEDBACK_FRAMES`] entries.
    pub frames: Vec<FrameFeedback>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// LEB128, canonical only (no redundant trailing zero groups), at most 10 bytes.
fn get_varint(r: &mut Reader<'_>) -> Result<u64, WireError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = r.u8()?;
        let bits = (b & 0x7f) as u64;
        if i == 9 && bits > 1 {
            return Err(WireError::Limit("varint overflow"));
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(WireError::Limit("varint not canonical"));
            }
            return Ok(v);
        }
    }
    Err(WireError::Limit("varint too long"))
}

fn get_bounded(r: &mut Reader<'_>, max: u64, what: &'static str) -> Result<u64, WireError> {
    let v = get_varint(r)?;
    if v > max {
        return Err(WireError::Limit(what));
    }
    Ok(v)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl Feedback {
    /// Appends the body (see `docs/PROTOCOL.md` §10). Values beyond the decoder's limits are
    /// clamped to them, so whatever is encoded decodes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let count = self.frames.len().min(MAX_FEEDBACK_FRAMES);
        Writer::new(out).u16(self.seq).u32(self.base_frame);
        put_varint(out, self.base_time_us);
        put_varint(out, self.late.min(MAX_LATE) as u64);
        out.push(count as u8);
        for f in &self.frames[..count] {
            let received = f.received.min(MAX_FRAME_DATAGRAMS);
            put_varint(out, received as u64);
            if received == 0 {
                continue;
            }
            let lim = MAX_TIME_US as i64;
            put_varint(out, f.bytes.clamp(received as u64, MAX_FRAME_BYTES));
            put_varint(out, zigzag(f.first_offset_us.clamp(-lim, lim)));
            put_varint(out, f.span_us.min(MAX_TIME_US));
        }
    }

    /// Decodes one message that must fill `body` exactly.
    pub fn decode(body: &[u8]) -> Result<Feedback, WireError> {
        let mut r = Reader::new(body);
        let seq = r.u16()?;
        let base_frame = r.u32()?;
        let base_time_us = get_varint(&mut r)?;
        let late = get_bounded(&mut r, MAX_LATE as u64, "feedback late")? as u32;
        let count = r.u8()? as usize;
        if count == 0 || count > MAX_FEEDBACK_FRAMES {
            return Err(WireError::Limit("feedback frame count"));
        }
        // Every entry takes at least one byte: refuse before allocating for a lying count.
        if r.remaining() < count {
            return Err(WireError::Truncated);
        }
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            let received =
                get_bounded(&mut r, MAX_FRAME_DATAGRAMS as u64, "feedback datagrams")? as u32;
            if received == 0 {
                frames.push(FrameFeedback::default());
                continue;
            }
            let bytes = get_bounded(&mut r, MAX_FRAME_BYTES, "feedback bytes")?;
            if bytes < received as u64 {
                return Err(WireError::Limit("feedback bytes"));
            }
            let first = unzigzag(get_varint(&mut r)?);
            if first.unsigned_abs() > MAX_TIME_US {
                return Err(WireError::Limit("feedback time offset"));
            }
            let span_us = get_bounded(&mut r, MAX_TIME_US, "feedback span")?;
            frames.push(FrameFeedback {
                received,
                bytes,
                first_offset_us: first,
                span_us,
            });
        }
        r.finish()?;
        Ok(Feedback {
            seq,
            base_frame,
            base_time_us,
            late,
            frames,
        })
    }

    /// Frame index of entry `i` (wrapping).
    pub fn frame_index(&self, i: usize) -> u32 {
        self.base_frame.wrapping_add(i as u32)
    }

    /// Client arrival times `(first, last)` of entry `i` in µs on the client's clock, or
    /// `None` when nothing of that frame arrived.
    pub(crate) fn arrival_us(&self, i: usize) -> Option<(i64, i64)> {
        let f = self.frames.get(i)?;
        if f.received == 0 {
            return None;
        }
        // base_time_us may be any u64; the wrapping cast keeps differences right.
        let first = (self.base_time_us as i64).wrapping_add(f.first_offset_us);
        Some((first, first.wrapping_add(f.span_us as i64)))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    received: u32,
    bytes: u64,
    first_us: u64,
    last_us: u64,
}

/// The client's side: collects arrivals and produces [`Feedback`] messages.
///
/// Call [`FeedbackBuilder::on_datagram`] for every authenticated video datagram (before or
/// after reassembly, duplicates included: they did cross the path), then
/// [`FeedbackBuilder::poll_feedback`] until it returns `None`; wake at
/// [`FeedbackBuilder::poll_timeout`] to poll again when no datagram arrives.
#[derive(Debug, Clone)]
pub(crate) struct FeedbackBuilder {
    epoch: Instant,
    /// Frame index of `pending[0]`; `None` before the first datagram.
    base: Option<u32>,
    /// Unreported frames, consecutive from `base`; the last one may still be receiving.
    pending: VecDeque<Pending>,
    seq: u16,
    late: u32,
    last_sent: Option<Instant>,
    /// Frames dropped unreported (`MAX_PENDING_FRAMES` overflow or an index jump).
    dropped: u64,
}

impl FeedbackBuilder {
    /// A builder whose clock starts at `epoch` (the client's times are µs since then).
    pub(crate) fn new(epoch: Instant) -> Self {
        FeedbackBuilder {
            epoch,
            base: None,
            pending: VecDeque::new(),
            seq: 0,
            late: 0,
            last_sent: None,
            dropped: 0,
        }
    }

    fn us(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Frames that were dropped without being reported.
    #[cfg(test)]
    pub(crate) fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Records one datagram of `bytes` (whole UDP payload) for frame `frame_index` at `now`.
    pub(crate) fn on_datagram(&mut self, frame_index: u32, bytes: usize, now: Instant) {
        let t = self.us(now);
        let base = *self.base.get_or_insert(frame_index);
        let d = seq_diff(frame_index, base);
        if d < 0 {
            self.late = self.late.saturating_add(1).min(MAX_LATE);
            return;
        }
        let mut d = d as usize;
        if d >= MAX_PENDING_FRAMES {
            if d >= 2 * MAX_PENDING_FRAMES {
                // A jump (a new stream, a long outage): start over at this frame.
                self.dropped += self.pending.len() as u64;
                self.pending.clear();
                self.base = Some(frame_index);
                d = 0;
            } else {
                let drop = d + 1 - MAX_PENDING_FRAMES;
                let have = drop.min(self.pending.len());
                self.pending.drain(..have);
                self.dropped += have as u64;
                self.base = Some(base.wrapping_add(drop as u32));
                d -= drop;
            }
        }
        if self.pending.len() <= d {
            self.pending.resize(d + 1, Pending::default());
        }
        let p = &mut self.pending[d];
        if p.received == 0 {
            p.first_us = t;
            p.last_us = t;
        }
        p.received = p.received.saturating_add(1);
        p.bytes = p.bytes.saturating_add(bytes as u64);
        p.first_us = p.first_us.min(t);
        p.last_us = p.last_us.max(t);
    }

    /// Frames at the front that may be reported now: all but the newest, and the newest too
    /// once [`SETTLE_TIMEOUT`] passed since its last datagram.
    fn settled(&self, now: Instant) -> usize {
        let n = self.pending.len();
        match self.pending.back() {
            None => 0,
            Some(last)
                if self.us(now).saturating_sub(last.last_us)
                    >= SETTLE_TIMEOUT.as_micros() as u64 =>
            {
                n
            }
            Some(_) => n - 1,
        }
    }

    fn due(&self, settled: usize, now: Instant) -> bool {
        settled > 0
            && (settled >= FLUSH_FRAMES
                || self
                    .last_sent
                    .is_none_or(|at| now.saturating_duration_since(at) >= FEEDBACK_INTERVAL))
    }

    /// The next message, when one is due at `now`.
    pub(crate) fn poll_feedback(&mut self, now: Instant) -> Option<Feedback> {
        let settled = self.settled(now);
        if !self.due(settled, now) {
            return None;
        }
        let base_frame = self.base?;
        let take = settled.min(MAX_FEEDBACK_FRAMES);
        let base_time_us = self
            .pending
            .iter()
            .take(take)
            .filter(|p| p.received > 0)
            .map(|p| p.first_us)
            .min()
            .unwrap_or_else(|| self.us(now));
        let mut frames = Vec::with_capacity(take);
        for p in self.pending.iter().take(take) {
            if p.received == 0 {
                frames.push(FrameFeedback::default());
                continue;
            }
            let offset = p.first_us - base_time_us;
            if offset > MAX_TIME_US {
                // Rest goes into the next message, with its own base.
                break;
            }
            frames.push(FrameFeedback {
                received: p.received.min(MAX_FRAME_DATAGRAMS),
                bytes: p.bytes.clamp(p.received as u64, MAX_FRAME_BYTES),
                first_offset_us: offset as i64,
                span_us: (p.last_us - p.first_us).min(MAX_TIME_US),
            });
        }
        let taken = frames.len();
        self.pending.drain(..taken);
        self.base = Some(base_frame.wrapping_add(taken as u32));
        let fb = Feedback {
            seq: self.seq,
            base_frame,
            base_time_us,
            late: self.late,
            frames,
        };
        self.seq = self.seq.wrapping_add(1);
        self.late = 0;
        self.last_sent = Some(now);
        Some(fb)
    }

    /// When [`FeedbackBuilder::poll_feedback`] may next return a message if no datagram
    /// arrives before then; `None` while there is nothing to report.
    pub(crate) fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let last = self.pending.back()?;
        let interval_at = self.last_sent.map_or(now, |at| at + FEEDBACK_INTERVAL);
        let settled = self.settled(now);
        if settled >= FLUSH_FRAMES {
            return Some(now);
        }
        if settled > 0 {
            return Some(interval_at.max(now));
        }
        let settle_at = self.epoch + Duration::from_micros(last.last_us) + SETTLE_TIMEOUT;
        Some(settle_at.max(interval_at).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sample() -> Feedback {
        Feedback {
            seq: 65535,
            base_frame: u32::MAX - 1,
            base_time_us: 123_456_789,
            late: 3,
            frames: vec![
                FrameFeedback {
                    received: 20,
                    bytes: 28_000,
                    first_offset_us: 0,
                    span_us: 1_900,
                },
                FrameFeedback::default(),
                FrameFeedback {
                    received: 1,
                    bytes: 1_400,
                    first_offset_us: -250,
                    span_us: 0,
                },
            ],
        }
    }

    #[test]
    fn roundtrip_and_every_prefix_and_suffix_rejected() {
        let fb = sample();
        let mut b = Vec::new();
        fb.encode(&mut b);
        assert_eq!(Feedback::decode(&b).unwrap(), fb);
        for cut in 0..b.len() {
            assert!(Feedback::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        b.push(0);
        assert_eq!(Feedback::decode(&b), Err(WireError::TrailingBytes));
        assert_eq!(fb.frame_index(2), 0);
        assert_eq!(fb.arrival_us(0), Some((123_456_789, 123_458_689)));
        assert_eq!(fb.arrival_us(1), None);
        assert_eq!(fb.arrival_us(2), Some((123_456_539, 123_456_539)));
        assert_eq!(fb.arrival_us(3), None);
    }

    #[test]
    fn layout_is_as_documented() {
        let fb = Feedback {
            seq: 0x0102,
            base_frame: 0x0304_0506,
            base_time_us: 300,
            late: 0,
            frames: vec![
                FrameFeedback {
                    received: 2,
                    bytes: 2_800,
                    first_offset_us: -1,
                    span_us: 127,
                },
                FrameFeedback::default(),
            ],
        };
        let mut b = Vec::new();
        fb.encode(&mut b);
        assert_eq!(
            b,
            [
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // seq, base frame
                0xac, 0x02, // base time 300
                0x00, // late
                0x02, // count
                0x02, 0xf0, 0x15, 0x01, 0x7f, // received 2, bytes 2800, first −1, span 127
                0x00, // nothing arrived
            ]
        );
    }

    #[test]
    fn decoder_limits() {
        let mut b = Vec::new();
        Writer::new(&mut b).u16(0).u32(0);
        let head = b.clone();
        // count 0 and count 33 are refused
        let mut z = head.clone();
        z.extend([0, 0, 0]);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("feedback frame count"))
        );
        let mut z = head.clone();
        z.extend([0, 0, 33]);
        z.extend([0; 33]);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("feedback frame count"))
        );
        // a count larger than the bytes left is refused before allocating
        let mut z = head.clone();
        z.extend([0, 0, 32, 0]);
        assert_eq!(Feedback::decode(&z), Err(WireError::Truncated));
        // overlong varint
        let mut z = head.clone();
        z.extend([0x80, 0x00, 0, 1, 0]);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("varint not canonical"))
        );
        // too many datagrams
        let mut z = head.clone();
        z.extend([0, 0, 1]);
        put_varint(&mut z, MAX_FRAME_DATAGRAMS as u64 + 1);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("feedback datagrams"))
        );
        // fewer bytes than datagrams
        let mut z = head.clone();
        z.extend([0, 0, 1, 5, 4, 0, 0]);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("feedback bytes"))
        );
        // offset beyond the limit
        let mut z = head.clone();
        z.extend([0, 0, 1, 1, 1]);
        put_varint(&mut z, zigzag(MAX_TIME_US as i64 + 1));
        z.push(0);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("feedback time offset"))
        );
        // span beyond the limit
        let mut z = head.clone();
        z.extend([0, 0, 1, 1, 1, 0]);
        put_varint(&mut z, MAX_TIME_US + 1);
        assert_eq!(Feedback::decode(&z), Err(WireError::Limit("feedback span")));
        // 11-byte and overflowing varints
        let mut z = head.clone();
        z.extend([0xff; 9]);
        z.push(0x02);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("varint overflow"))
        );
        let mut z = head;
        z.extend([0x80; 9]);
        z.push(0x81);
        assert_eq!(
            Feedback::decode(&z),
            Err(WireError::Limit("varint too long"))
        );
    }

    #[test]
    fn varint_extremes_roundtrip() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(get_varint(&mut r).unwrap(), v);
            r.finish().unwrap();
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn builder_reports_each_frame_once_with_its_arrival_times() {
        let t0 = Instant::now();
        let mut b = FeedbackBuilder::new(t0);
        assert_eq!(b.poll_feedback(t0), None);
        assert_eq!(b.poll_timeout(t0), None);
        // Frame 7: three datagrams over 2 ms.
        for (i, at) in [0u64, 1000, 2000].into_iter().enumerate() {
            b.on_datagram(7, 1400 - i, t0 + Duration::from_micros(at));
        }
        // The newest frame is not settled yet: nothing to send until SETTLE_TIMEOUT.
        assert_eq!(b.poll_feedback(t0 + ms(3)), None);
        assert_eq!(
            b.poll_timeout(t0 + ms(3)),
            Some(t0 + ms(2) + SETTLE_TIMEOUT)
        );
        // Frame 8 starts: frame 7 is settled and the first message goes at once.
        b.on_datagram(8, 1400, t0 + ms(16));
        let fb = b.poll_feedback(t0 + ms(16)).unwrap();
        assert_eq!(fb.seq, 0);
        assert_eq!(fb.base_frame, 7);
        assert_eq!(fb.base_time_us, 0);
        assert_eq!(
            fb.frames,
            [FrameFeedback {
                received: 3,
                bytes: 4197,
                first_offset_us: 0,
                span_us: 2000,
            }]
        );
        assert_eq!(b.poll_feedback(t0 + ms(16)), None);
        // Frame 8 finishes, frame 10 arrives (9 wholly lost), a late datagram of 7 too.
        b.on_datagram(8, 1400, t0 + ms(17));
        b.on_datagram(7, 1400, t0 + ms(18));
        b.on_datagram(10, 1000, t0 + ms(50));
        // Interval: the next message waits until 25 ms after the first.
        assert_eq!(b.poll_timeout(t0 + ms(30)), Some(t0 + ms(41)));
        let fb = b.poll_feedback(t0 + ms(50)).unwrap();
        assert_eq!(fb.seq, 1);
        assert_eq!(fb.base_frame, 8);
        assert_eq!(fb.late, 1);
        assert_eq!(fb.frames.len(), 2);
        assert_eq!(fb.frames[1], FrameFeedback::default());
        assert_eq!(fb.arrival_us(0), Some((16_000, 17_000)));
        // Frame 10 is reported after SETTLE_TIMEOUT of silence.
        assert_eq!(b.poll_feedback(t0 + ms(60)), None);
        assert_eq!(b.poll_timeout(t0 + ms(60)), Some(t0 + ms(90)));
        let fb = b.poll_feedback(t0 + ms(90)).unwrap();
        assert_eq!(fb.base_frame, 10);
        assert_eq!(fb.late, 0);
        assert_eq!(fb.arrival_us(0), Some((50_000, 50_000)));
        assert_eq!(b.poll_timeout(t0 + ms(90)), None);
    }

    #[test]
    fn builder_flushes_after_enough_frames_and_handles_wrap() {
        let t0 = Instant::now();
        let mut b = FeedbackBuilder::new(t0);
        b.on_datagram(u32::MAX - 1, 100, t0);
        b.on_datagram(u32::MAX, 100, t0 + ms(1));
        let _ = b.poll_feedback(t0 + ms(1)).unwrap();
        // 240 fps: four frames settle within 25 ms and go at once.
        for i in 0..5u32 {
            b.on_datagram(i, 100, t0 + ms(2 + i as u64));
        }
        assert_eq!(b.poll_timeout(t0 + ms(6)), Some(t0 + ms(6)));
        let fb = b.poll_feedback(t0 + ms(6)).unwrap();
        assert_eq!(fb.base_frame, u32::MAX);
        assert_eq!(fb.frames.len(), 5);
        assert!(fb.frames.iter().all(|f| f.received == 1));
    }

    #[test]
    fn builder_memory_is_bounded_under_jumps_and_no_polling() {
        let t0 = Instant::now();
        let mut b = FeedbackBuilder::new(t0);
        for i in 0..10_000u32 {
            b.on_datagram(i, 1400, t0 + ms(i as u64));
            assert!(b.pending.len() <= MAX_PENDING_FRAMES);
        }
        assert_eq!(b.dropped_frames(), 10_000 - MAX_PENDING_FRAMES as u64);
        // A jump far ahead starts over.
        b.on_datagram(2_000_000_000, 1400, t0 + ms(20_000));
        assert_eq!(b.pending.len(), 1);
        // Messages never exceed the entry limit, and drain the backlog.
        let mut n = 0;
        let mut t = t0 + ms(30_000);
        b.on_datagram(2_000_000_000 + 100, 1400, t);
        while let Some(fb) = b.poll_feedback(t) {
            assert!(fb.frames.len() <= MAX_FEEDBACK_FRAMES);
            n += fb.frames.len();
            t += FEEDBACK_INTERVAL;
        }
        assert_eq!(n, 101);
    }

    #[test]
    fn entries_far_apart_in_time_split_into_messages() {
        let t0 = Instant::now();
        let mut b = FeedbackBuilder::new(t0);
        b.on_datagram(1, 100, t0);
        // Frame 1 is still unsettled when frame 2 arrives 61 s later (a clock jump in the
        // caller); both are reported, in two messages.
        b.on_datagram(1, 100, t0 + Duration::from_secs(61));
        b.on_datagram(2, 100, t0 + Duration::from_secs(61));
        let now = t0 + Duration::from_secs(62);
        let a = b.poll_feedback(now).unwrap();
        let c = b.poll_feedback(now + FEEDBACK_INTERVAL).unwrap();
        assert_eq!((a.base_frame, a.frames.len()), (1, 1));
        assert_eq!(a.frames[0].span_us, MAX_TIME_US);
        assert_eq!((c.base_frame, c.frames.len()), (2, 1));
    }

    #[test]
    fn feedback_size_at_60_fps_is_small() {
        // 20 Mbit/s at 60 fps: about 32 datagrams a frame.
        let t0 = Instant::now();
        let mut b = FeedbackBuilder::new(t0);
        let mut bytes = 0usize;
        let mut msgs = 0usize;
        for f in 0..600u32 {
            let start = Duration::from_nanos(f as u64 * 16_666_667);
            for d in 0..32u64 {
                let now = t0 + start + Duration::from_micros(d * 400);
                b.on_datagram(f, 1400, now);
                while let Some(fb) = b.poll_feedback(now) {
                    let mut out = Vec::new();
                    fb.encode(&mut out);
                    bytes += out.len();
                    msgs += 1;
                }
            }
        }
        // 10 s of stream.
        let per_s = msgs as f64 / 10.0;
        let body = bytes as f64 / msgs as f64;
        assert!((30.0..=45.0).contains(&per_s), "{per_s} messages/s");
        assert!(body <= 32.0, "{body} bytes/message");
    }

    proptest! {
        #[test]
        fn prop_decode_never_panics_and_reencodes_exactly(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(fb) = Feedback::decode(&data) {
                prop_assert!(!fb.frames.is_empty() && fb.frames.len() <= MAX_FEEDBACK_FRAMES);
                let mut out = Vec::new();
                fb.encode(&mut out);
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn prop_builder_reports_every_datagram_once(
            arrivals in proptest::collection::vec((0u32..40, 1usize..1500, 0u64..3000), 1..400)
        ) {
            let t0 = Instant::now();
            let mut b = FeedbackBuilder::new(t0);
            let mut t = t0;
            let mut sent = 0u64;
            let mut reported = 0u64;
            let mut late = 0u64;
            let check = |fb: Feedback, reported: &mut u64, late: &mut u64| {
                let mut out = Vec::new();
                fb.encode(&mut out);
                let back = Feedback::decode(&out).unwrap();
                assert_eq!(&back, &fb);
                *reported += fb.frames.iter().map(|f| f.received as u64).sum::<u64>();
                *late += fb.late as u64;
            };
            for (frame, bytes, gap) in arrivals {
                t += Duration::from_micros(gap * 10);
                b.on_datagram(frame, bytes, t);
                sent += 1;
                while let Some(fb) = b.poll_feedback(t) {
                    check(fb, &mut reported, &mut late);
                }
            }
            // Drain: everything settles eventually.
            for _ in 0..100 {
                let Some(at) = b.poll_timeout(t) else { break };
                t = at.max(t);
                while let Some(fb) = b.poll_feedback(t) {
                    check(fb, &mut reported, &mut late);
                }
            }
            // A final message carries the last late count.
            b.on_datagram(1_000, 1, t);
            t += SETTLE_TIMEOUT + FEEDBACK_INTERVAL;
            while let Some(fb) = b.poll_feedback(t) {
                check(fb, &mut reported, &mut late);
            }
            prop_assert_eq!(reported + late, sent + 1);
        }
    }
}
