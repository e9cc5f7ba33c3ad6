//! Byte layout of every datagram: the clear header shared by all kinds, the video shard header,
//! and small cursor helpers used by every other decoder.
//!
//! This module owns parsing of untrusted bytes at the outermost layer. It never allocates on
//! behalf of a datagram and never panics on short or lying input: every decoder returns a
//! [`WireError`]. The layout is documented in `docs/PROTOCOL.md`; keep the two in step.

use std::fmt;

use crate::protocol::media::timing::{FRAME_TIMING_LEN, FrameTiming};

/// Protocol version carried in the first byte of every datagram. Version 2: handshake v2
/// (SPAKE2 + NNpsk2) and the frame timing in every video shard header.
pub const VERSION: u8 = 2;

/// Size of the clear header that starts every datagram (and is the AEAD's associated data).
pub const HEADER_LEN: usize = 16;

/// Size of the video shard header inside the sealed part of a video datagram: 18 bytes of
/// shard layout, then the frame's [`FrameTiming`] (20 bytes).
pub const VIDEO_HEADER_LEN: usize = 18 + FRAME_TIMING_LEN;

/// AES-GCM tag length; a sealed datagram carries it after the ciphertext.
pub const TAG_LEN: usize = 16;

/// Largest datagram we ever build or accept. UDP cannot carry more than this in one IPv4
/// datagram; anything larger on receive is a lie and is dropped before parsing.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;

/// Smallest `mtu` a user may configure: room for the headers, the tag and a useful shard.
pub(crate) const MIN_MTU: usize = 256;

/// Default largest datagram (UDP payload): a 1500-byte path minus IPv6 (40) and UDP (8)
/// headers, minus 52 bytes of slack for tunnels (WireGuard, PPPoE, VLAN) so that the default
/// never fragments on the paths our users run on.
pub const DEFAULT_MTU: usize = 1400;

/// Header flag: the rest of the datagram is sealed with the session's AEAD.
pub const FLAG_SEALED: u16 = 0x0001;

/// Video flag: this access unit is a keyframe (IDR / IRAP).
pub(crate) const VIDEO_FLAG_KEYFRAME: u8 = 0x01;
/// Part of the frame's parity travels behind the next frame's datagrams
/// (`packetizer::TrailingParity`); only frames of one block of at most
/// `fec::MAX_TRAILING_K` data shards carry it.
pub(crate) const VIDEO_FLAG_TRAILING: u8 = 0x02;
/// A trailing row shared over a window of frames (`media::shared_rows`): its shard bytes are
/// the window's extension, then the row. Only on a flagged trailing frame's trailing rows.
pub(crate) const VIDEO_FLAG_WINDOW: u8 = 0x04;

/// FEC scheme identifier for the Reed-Solomon GF(2^8) coder.
pub(crate) const FEC_SCHEME_RS8: u8 = 1;

/// What a decoder found wrong with untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the layout needs.
    Truncated,
    /// A version we do not speak.
    BadVersion(u8),
    /// An unknown datagram kind, message type or enum value.
    UnknownKind(u8),
    /// A field outside the limits the protocol allows.
    Limit(&'static str),
    /// Bytes left over where the layout says the message ends.
    TrailingBytes,
    /// A string field that is not UTF-8.
    BadUtf8,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "datagram truncated"),
            WireError::BadVersion(v) => write!(f, "unsupported protocol version {v}"),
            WireError::UnknownKind(k) => write!(f, "unknown kind or type {k}"),
            WireError::Limit(what) => write!(f, "field out of limits: {what}"),
            WireError::TrailingBytes => write!(f, "trailing bytes after message"),
            WireError::BadUtf8 => write!(f, "string is not UTF-8"),
        }
    }
}

impl std::error::Error for WireError {}

/// Kind byte of a CookieReply (listener → caller, clear: the header and a 16-byte cookie, see
/// [`super::cookie`]). A constant rather than a [`Kind`] variant for now, so that code matching
/// exhaustively on `Kind` keeps compiling until the connection handles it; [`Header::decode`]
/// refuses it like any unknown kind, and [`super::cookie::decode_reply`] reads it.
pub(crate) const KIND_COOKIE_REPLY: u8 = 5;

/// Datagram kinds (second byte of the clear header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Caller → listener: first Noise handshake message.
    HandshakeInit = 1,
    /// Listener → caller: second Noise handshake message (carries the session).
    HandshakeResponse = 2,
    /// Clear hint "I have no session with that id": makes a caller re-handshake at once.
    Reset = 3,
    /// Clear refusal of a handshake, with a reason code (see [`RejectReason`]).
    Reject = 4,
    /// One shard (data or parity) of an access unit.
    Video = 16,
    /// A control message (keyframe request, loss report, ping/pong, stream info, bye, ack).
    Control = 17,
    /// Input events from client to host (reliable, ordered).
    Input = 18,
    /// An audio packet, parity or stream info (see [`super::audio`]).
    Audio = 19,
}

impl Kind {
    /// The kind with this byte value.
    pub fn from_u8(v: u8) -> Result<Kind, WireError> {
        Ok(match v {
            1 => Kind::HandshakeInit,
            2 => Kind::HandshakeResponse,
            3 => Kind::Reset,
            4 => Kind::Reject,
            16 => Kind::Video,
            17 => Kind::Control,
            18 => Kind::Input,
            19 => Kind::Audio,
            other => return Err(WireError::UnknownKind(other)),
        })
    }

    /// Kinds that travel sealed inside an established session.
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Kind::Video | Kind::Control | Kind::Input | Kind::Audio
        )
    }
}

/// Why a listener refused a handshake (sent in clear, so it is only ever a hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectReason {
    /// Retired with handshake version 2: a listener cannot detect a wrong passphrase (the PAKE
    /// leaves nothing to check in the hello), so it never sends this. Still decoded.
    BadPassphrase = 1,
    /// One side has a passphrase and the other has none.
    PassphraseMismatch = 2,
    /// One side wants plaintext (`encrypt=false`) and the other does not.
    EncryptMismatch = 3,
    /// Both ends are hosts or both are clients.
    RoleMismatch = 4,
    /// The listener already serves a peer and does not take another.
    Busy = 5,
}

impl RejectReason {
    /// The value with this byte.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            1 => Self::BadPassphrase,
            2 => Self::PassphraseMismatch,
            3 => Self::EncryptMismatch,
            4 => Self::RoleMismatch,
            5 => Self::Busy,
            other => return Err(WireError::UnknownKind(other)),
        })
    }

    /// A short human-readable name.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BadPassphrase => "the peer rejected our handshake: wrong passphrase",
            Self::PassphraseMismatch => {
                "the peer rejected our handshake: one side has a passphrase and the other has none"
            }
            Self::EncryptMismatch => {
                "the peer rejected our handshake: one side has encrypt=false and the other not"
            }
            Self::RoleMismatch => {
                "the peer rejected our handshake: both ends are senders or both are receivers"
            }
            Self::Busy => "the peer rejected our handshake: it already serves another peer",
        }
    }
}

/// The clear header at the start of every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The datagram's kind.
    pub kind: Kind,
    /// Kind-specific flag bits.
    pub flags: u16,
    /// Session id (from the handshake) or, for handshake kinds, the caller's attempt id.
    pub session_id: u32,
    /// Packet number: per session and direction, strictly increasing, never reused for a key.
    pub packet_number: u64,
}

impl Header {
    /// Writes the header into `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = VERSION;
        out[1] = self.kind as u8;
        out[2..4].copy_from_slice(&self.flags.to_be_bytes());
        out[4..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.packet_number.to_be_bytes());
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.encode(&mut b);
        b
    }

    /// Parses the clear header; returns it and the rest of the datagram.
    pub fn decode(buf: &[u8]) -> Result<(Header, &[u8]), WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if buf.len() > MAX_DATAGRAM_BYTES {
            return Err(WireError::Limit("datagram length"));
        }
        if buf[0] != VERSION {
            return Err(WireError::BadVersion(buf[0]));
        }
        let kind = Kind::from_u8(buf[1])?;
        let flags = u16::from_be_bytes([buf[2], buf[3]]);
        if flags & !FLAG_SEALED != 0 {
            return Err(WireError::Limit("header flags"));
        }
        let session_id = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let packet_number =
            u64::from_be_bytes(buf[8..16].try_into().map_err(|_| WireError::Truncated)?);
        Ok((
            Header {
                kind,
                flags,
                session_id,
                packet_number,
            },
            &buf[HEADER_LEN..],
        ))
    }

    /// Whether the datagram is sealed (AEAD).
    pub fn sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }
}

/// The header of one video shard, first in the (opened) body of a video datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    /// Access unit counter, +1 per frame, wraps at `u32::MAX`.
    pub frame_index: u32,
    /// True length of the access unit in bytes (the last data shard is zero-padded).
    pub frame_len: u32,
    /// Bytes in every shard of this frame (data and parity alike).
    pub shard_size: u16,
    /// Number of FEC blocks the frame's data shards are split into.
    pub block_count: u16,
    /// Which block this shard belongs to.
    pub block_index: u16,
    /// Index inside the block: `0..k` data, `k..k+m` parity.
    pub shard_index: u8,
    /// Parity shards in this block (`m`).
    pub parity: u8,
    /// `VIDEO_FLAG_*` bits.
    pub flags: u8,
    /// FEC scheme (`FEC_SCHEME_*`).
    pub fec_scheme: u8,
    /// When the host captured and sent the frame (the same in every shard of a frame).
    pub timing: FrameTiming,
}

impl VideoHeader {
    /// Writes the header into the first `VIDEO_HEADER_LEN` bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.frame_index.to_be_bytes());
        out[4..8].copy_from_slice(&self.frame_len.to_be_bytes());
        out[8..10].copy_from_slice(&self.shard_size.to_be_bytes());
        out[10..12].copy_from_slice(&self.block_count.to_be_bytes());
        out[12..14].copy_from_slice(&self.block_index.to_be_bytes());
        out[14] = self.shard_index;
        out[15] = self.parity;
        out[16] = self.flags;
        out[17] = self.fec_scheme;
        self.timing.encode(&mut out[18..VIDEO_HEADER_LEN]);
    }

    /// Parses the shard header; returns it and the shard bytes. Only the layout is checked
    /// here; the reassembler checks the fields against its limits and against each other.
    pub fn decode(buf: &[u8]) -> Result<(VideoHeader, &[u8]), WireError> {
        if buf.len() < VIDEO_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let h = VideoHeader {
            frame_index: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            frame_len: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            shard_size: u16::from_be_bytes([buf[8], buf[9]]),
            block_count: u16::from_be_bytes([buf[10], buf[11]]),
            block_index: u16::from_be_bytes([buf[12], buf[13]]),
            shard_index: buf[14],
            parity: buf[15],
            flags: buf[16],
            fec_scheme: buf[17],
            timing: FrameTiming::decode(&buf[18..VIDEO_HEADER_LEN]).ok_or(WireError::Truncated)?,
        };
        Ok((h, &buf[VIDEO_HEADER_LEN..]))
    }

    /// Whether the shard belongs to a keyframe.
    pub fn keyframe(&self) -> bool {
        self.flags & VIDEO_FLAG_KEYFRAME != 0
    }

    /// Whether part of the frame's parity trails behind the next frame ([`VIDEO_FLAG_TRAILING`]).
    pub fn trailing(&self) -> bool {
        self.flags & VIDEO_FLAG_TRAILING != 0
    }

    /// Whether this is a trailing row shared over a window of frames ([`VIDEO_FLAG_WINDOW`]).
    pub fn window(&self) -> bool {
        self.flags & VIDEO_FLAG_WINDOW != 0
    }
}

/// A bounds-checked cursor over untrusted bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not yet read, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    /// The next big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The next big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// The next big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, WireError> {
        Ok(self.u32()? as i32)
    }

    pub(crate) fn f32(&mut self) -> Result<f32, WireError> {
        Ok(f32::from_bits(self.u32()?))
    }

    /// The next big-endian IEEE 754 `f64`.
    pub fn f64(&mut self) -> Result<f64, WireError> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// The next byte as a boolean (0 or 1; anything else is an error).
    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError::UnknownKind(other)),
        }
    }

    /// A string prefixed by a u16 length, at most `max` bytes.
    pub fn string(&mut self, max: usize) -> Result<String, WireError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(WireError::Limit("string length"));
        }
        let b = self.bytes(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| WireError::BadUtf8)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }
}

/// Appends big-endian fields to a buffer.
pub struct Writer<'a> {
    /// The buffer written to.
    pub out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }
    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian `i32`.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }
    pub(crate) fn f32(&mut self, v: f32) -> &mut Self {
        self.u32(v.to_bits())
    }
    /// Appends a big-endian IEEE 754 `f64`.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.u64(v.to_bits())
    }
    /// Appends a boolean as one byte.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    /// Appends bytes as they are.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
    /// A u16-length-prefixed string; longer strings are cut at `max` bytes on a char boundary.
    pub fn string(&mut self, s: &str, max: usize) -> &mut Self {
        let mut end = s.len().min(max).min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.bytes(&s.as_bytes()[..end])
    }
}

/// Signed distance from `b` to `a` in u32 sequence space: positive when `a` is newer.
pub fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let h = Header {
            kind: Kind::Video,
            flags: FLAG_SEALED,
            session_id: 0xdead_beef,
            packet_number: 0x0102_0304_0506_0708,
        };
        let b = h.to_bytes();
        let (d, rest) = Header::decode(&b).unwrap();
        assert_eq!(d, h);
        assert!(rest.is_empty());
    }

    #[test]
    fn header_rejects_bad_input() {
        assert_eq!(Header::decode(&[1; 15]), Err(WireError::Truncated));
        let mut b = Header {
            kind: Kind::Control,
            flags: 0,
            session_id: 1,
            packet_number: 2,
        }
        .to_bytes();
        b[0] = 9;
        assert_eq!(Header::decode(&b), Err(WireError::BadVersion(9)));
        b[0] = VERSION;
        b[1] = 99;
        assert_eq!(Header::decode(&b), Err(WireError::UnknownKind(99)));
        b[1] = Kind::Control as u8;
        b[2] = 0x80;
        assert_eq!(Header::decode(&b), Err(WireError::Limit("header flags")));
    }

    #[test]
    fn video_header_roundtrip() {
        let v = VideoHeader {
            frame_index: u32::MAX,
            frame_len: 123_456,
            shard_size: 1350,
            block_count: 3,
            block_index: 2,
            shard_index: 40,
            parity: 9,
            flags: VIDEO_FLAG_KEYFRAME,
            fec_scheme: FEC_SCHEME_RS8,
            timing: FrameTiming {
                capture_us: 0x0102_0304_0506_0708,
                duration_us: 16_667,
                render_offset_us: 9_001,
                send_span_us: 250,
            },
        };
        let mut b = [0u8; VIDEO_HEADER_LEN + 2];
        v.encode(&mut b);
        let (d, rest) = VideoHeader::decode(&b).unwrap();
        assert_eq!(d, v);
        assert_eq!(rest.len(), 2);
        assert!(d.keyframe());
    }

    #[test]
    fn seq_diff_wraps() {
        assert_eq!(seq_diff(0, u32::MAX), 1);
        assert_eq!(seq_diff(u32::MAX, 0), -1);
        assert_eq!(seq_diff(10, 5), 5);
    }

    #[test]
    fn reader_limits() {
        let mut out = Vec::new();
        Writer::new(&mut out).string("hello", 64).u32(7);
        let mut r = Reader::new(&out);
        assert_eq!(r.string(64).unwrap(), "hello");
        assert_eq!(r.u32().unwrap(), 7);
        r.finish().unwrap();
        let mut r = Reader::new(&out);
        assert_eq!(r.string(3), Err(WireError::Limit("string length")));
    }
}
