//! Annex-B byte streams as the glass-to-glass harness sees them: a splitter that cuts a stream
//! (whole access units or arbitrary chunks, as `srtsrc` delivers) into NAL units and remembers
//! when the last byte of each arrived, and the fingerprint that names a frame on both sides.
//!
//! Why fingerprints of VCL NAL units: every transport under test carries the slice data of a
//! picture unchanged if it carries it at all, but may change everything around it (start-code
//! length, repeated parameter sets, access-unit delimiters, RTP's aggregation). Hashing the
//! whole VCL NAL units (header + payload, emulation-prevention bytes included, trailing zero
//! bytes excluded) therefore names the same picture on the sender and on the receiver, and a
//! NAL unit damaged by loss simply matches nothing. A high-entropy picture (`pattern=snow`)
//! makes two pictures with identical slice data practically impossible.
//!
//! This module never allocates without bound: a stream that shows no start code for
//! [`MAX_PENDING`] bytes is discarded up to its end.

/// Longest run of bytes kept while waiting for the next start code (a keyframe of a high-bitrate
/// stream is far smaller).
pub const MAX_PENDING: usize = 16 << 20;

/// The video codecs the harness understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NalSyntax {
    H264,
    H265,
}

impl NalSyntax {
    /// Whether `nal` (starting with its header) carries slice data of a picture.
    pub fn is_vcl(self, nal: &[u8]) -> bool {
        let Some(&b0) = nal.first() else {
            return false;
        };
        match self {
            // nal_unit_type 1..=5: coded slices (non-IDR, partitions A–C, IDR).
            NalSyntax::H264 => (1..=5).contains(&(b0 & 0x1f)),
            // nal_unit_type 0..=31 are VCL in HEVC; the header is two bytes.
            NalSyntax::H265 => nal.len() >= 2 && (b0 >> 1) & 0x3f <= 31,
        }
    }
}

/// A 64-bit FNV-1a-style hash over 8-byte words (the tail byte-wise): fast enough for a whole
/// decoded 720p picture (~1.4 MB) per frame in a streaming thread, and ample to tell frames apart.
pub fn hash64(data: &[u8], mut h: u64) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("chunks_exact(8)"));
        h = (h ^ v).wrapping_mul(PRIME).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    // Length, so that zero-padded variants differ.
    (h ^ data.len() as u64).wrapping_mul(PRIME)
}

/// The seed of [`hash64`] for NAL fingerprints.
pub const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// A NAL unit cut from the stream: its bytes (no start code, no trailing zeros) and the time
/// the chunk holding its last byte arrived.
pub struct Nal<'a> {
    pub bytes: &'a [u8],
    pub last_byte_at: u64,
}

/// Cuts an Annex-B stream into NAL units. Feed chunks with [`push`](Self::push); with whole
/// access units call [`flush`](Self::flush) after each, since nothing follows the last NAL unit
/// of an access unit to end it.
#[derive(Default)]
pub struct Splitter {
    buf: Vec<u8>,
    /// (end offset in `buf`, arrival time) of each chunk still (partly) in `buf`.
    marks: Vec<(usize, u64)>,
    /// Start of the current NAL unit in `buf` (after its start code); `None` before the first
    /// start code.
    nal_start: Option<usize>,
    /// Where the next start-code search begins.
    scan: usize,
}

impl Splitter {
    /// Appends a chunk that arrived at `at` and hands every NAL unit it completes to `out`.
    pub fn push(&mut self, data: &[u8], at: u64, mut out: impl FnMut(Nal<'_>)) {
        if self.buf.len() + data.len() > MAX_PENDING {
            self.reset();
            return;
        }
        self.buf.extend_from_slice(data);
        self.marks.push((self.buf.len(), at));
        let mut i = self.scan;
        while i + 3 <= self.buf.len() {
            // Skip fast: a start code needs buf[i + 2] == 1 and two zeros before it.
            if self.buf[i + 2] > 1 {
                i += 3;
                continue;
            }
            if self.buf[i] == 0 && self.buf[i + 1] == 0 && self.buf[i + 2] == 1 {
                if let Some(start) = self.nal_start {
                    self.emit(start, i, &mut out);
                }
                self.nal_start = Some(i + 3);
                i += 3;
            } else {
                i += 1;
            }
        }
        // The last two bytes may begin a start code completed by the next chunk.
        self.scan = self
            .buf
            .len()
            .saturating_sub(2)
            .max(self.nal_start.unwrap_or(0));
        self.compact();
    }

    /// Ends the current NAL unit at the end of what was pushed (an access unit is complete).
    pub fn flush(&mut self, mut out: impl FnMut(Nal<'_>)) {
        if let Some(start) = self.nal_start {
            let end = self.buf.len();
            self.emit(start, end, &mut out);
        }
        self.reset();
    }

    fn emit(&self, start: usize, end: usize, out: &mut impl FnMut(Nal<'_>)) {
        let mut end = end;
        // Trailing zeros belong to the byte stream (a 4-byte start code, trailing_zero_8bits).
        while end > start && self.buf[end - 1] == 0 {
            end -= 1;
        }
        if end == start {
            return;
        }
        let last = end - 1;
        let at = self
            .marks
            .iter()
            .find(|(chunk_end, _)| *chunk_end > last)
            .or(self.marks.last())
            .map_or(0, |m| m.1);
        out(Nal {
            bytes: &self.buf[start..end],
            last_byte_at: at,
        });
    }

    /// Drops the bytes before the current NAL unit.
    fn compact(&mut self) {
        let keep_from = match self.nal_start {
            Some(s) => s,
            // Before the first start code only the last two bytes can still matter.
            None => self.buf.len().saturating_sub(2),
        };
        if keep_from == 0 {
            return;
        }
        self.buf.drain(..keep_from);
        self.marks.retain_mut(|(end, _)| {
            if *end <= keep_from {
                return false;
            }
            *end -= keep_from;
            true
        });
        self.nal_start = self.nal_start.map(|s| s - keep_from);
        self.scan -= keep_from.min(self.scan);
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.marks.clear();
        self.nal_start = None;
        self.scan = 0;
    }
}

/// The fingerprints of the VCL NAL units of one access unit, in stream order.
pub fn vcl_fingerprints(syntax: NalSyntax, au: &[u8]) -> Vec<u64> {
    let mut s = Splitter::default();
    let mut v = Vec::new();
    let mut take = |n: Nal<'_>| {
        if syntax.is_vcl(n.bytes) {
            v.push(hash64(n.bytes, HASH_SEED));
        }
    };
    s.push(au, 0, &mut take);
    s.flush(&mut take);
    v
}
