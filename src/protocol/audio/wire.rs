//! Byte layout of an audio datagram's body (the sealed part of a `Kind::Audio` datagram).
//!
//! ```text
//! data / parity:  type u8 (1 data, 2 parity) | block u64 (sequence number of the block's first
//!                 packet) | k u8 | m u8 | index u8 | shard
//!   a data shard is the packet's record: capture_us u64 | duration_us u32 | len u16 | bytes;
//!   a parity shard is Reed-Solomon parity over the block's records zero-padded to the
//!   longest, so it is as long as the block's longest record.
//! info:           type u8 (3) | generation u32 | caps (u16 length + UTF-8)
//! info ack:       type u8 (4) | generation u32
//! ```
//!
//! Decoding checks every field against the limits before anything is allocated and borrows
//! the shard from the datagram.

use crate::protocol::wire::{Reader, WireError, Writer};

use super::{MAX_AUDIO_CAPS, MAX_AUDIO_PAYLOAD};

/// Type byte of a data shard body.
pub const BODY_DATA: u8 = 1;
/// Type byte of a parity shard body.
pub const BODY_PARITY: u8 = 2;
/// Type byte of an info body (the stream's caps).
pub const BODY_INFO: u8 = 3;
/// Type byte of an info acknowledgement body.
pub const BODY_INFO_ACK: u8 = 4;

/// Bytes before the shard in a data or parity body.
pub const SHARD_HEADER_LEN: usize = 1 + 8 + 3;

/// Bytes of a record before the packet's bytes.
pub const RECORD_HEADER_LEN: usize = 8 + 4 + 2;

/// Most data or parity packets a block may declare (the sender uses far fewer; the limit keeps
/// a hostile header from sizing anything large).
pub const MAX_BLOCK_SHARDS: usize = 16;

/// Longest shard: the longest record.
pub const MAX_SHARD_LEN: usize = RECORD_HEADER_LEN + MAX_AUDIO_PAYLOAD;

/// One decoded audio body; shards borrow the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioBody<'a> {
    /// A data (`index < k`) or parity (`index >= k`) shard of the block starting at `block`.
    Shard {
        /// Sequence number of the block's first packet.
        block: u64,
        /// Data packets in the block.
        k: u8,
        /// Parity packets in the block.
        m: u8,
        /// The shard's position in the block, `0..k + m`.
        index: u8,
        /// The shard's bytes: a record for data, Reed-Solomon parity otherwise.
        shard: &'a [u8],
    },
    /// The stream's caps, sent by the host until acknowledged.
    Info {
        /// Counts caps changes; the client acknowledges the one it applied.
        generation: u32,
        /// The audio caps as a GStreamer caps string, at most [`MAX_AUDIO_CAPS`] bytes.
        caps: String,
    },
    /// The client's acknowledgement of an info body.
    InfoAck {
        /// The acknowledged info's generation.
        generation: u32,
    },
}

/// One packet as the FEC protects it: its timing and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioRecord<'a> {
    /// Capture time in the host clock (the clock of the video frames' capture time), µs.
    pub capture_us: u64,
    /// The packet's duration, µs.
    pub duration_us: u32,
    /// The encoded packet, at most [`MAX_AUDIO_PAYLOAD`] bytes.
    pub data: &'a [u8],
}

impl AudioRecord<'_> {
    /// Appends the record's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u64(self.capture_us)
            .u32(self.duration_us)
            .u16(self.data.len() as u16)
            .bytes(self.data);
    }

    /// Bytes [`AudioRecord::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.data.len()
    }

    /// Reads a record from a shard; bytes after its declared length must be zero padding
    /// (a recovered shard is as long as the block's longest).
    pub fn decode(shard: &[u8]) -> Result<AudioRecord<'_>, WireError> {
        let mut r = Reader::new(shard);
        let capture_us = r.u64()?;
        let duration_us = r.u32()?;
        let len = r.u16()? as usize;
        if len > MAX_AUDIO_PAYLOAD {
            return Err(WireError::Limit("audio packet length"));
        }
        let data = r.bytes(len)?;
        if r.rest().iter().any(|&b| b != 0) {
            return Err(WireError::TrailingBytes);
        }
        Ok(AudioRecord {
            capture_us,
            duration_us,
            data,
        })
    }
}

impl<'a> AudioBody<'a> {
    /// Decodes a body, checking every field against the limits; the shard borrows `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<AudioBody<'a>, WireError> {
        let mut r = Reader::new(buf);
        match r.u8()? {
            t @ (BODY_DATA | BODY_PARITY) => {
                let block = r.u64()?;
                let (k, m, index) = (r.u8()?, r.u8()?, r.u8()?);
                if k == 0 || k as usize > MAX_BLOCK_SHARDS || m as usize > MAX_BLOCK_SHARDS {
                    return Err(WireError::Limit("audio block size"));
                }
                if (t == BODY_DATA) != (index < k) || index as usize >= (k + m) as usize {
                    return Err(WireError::Limit("audio shard index"));
                }
                if block.checked_add(k as u64).is_none() {
                    return Err(WireError::Limit("audio sequence number"));
                }
                let shard = r.rest();
                if shard.len() < RECORD_HEADER_LEN || shard.len() > MAX_SHARD_LEN {
                    return Err(WireError::Limit("audio shard length"));
                }
                if t == BODY_DATA {
                    // A data shard is exactly one record, no padding.
                    let rec = AudioRecord::decode(shard)?;
                    if rec.encoded_len() != shard.len() {
                        return Err(WireError::TrailingBytes);
                    }
                }
                Ok(AudioBody::Shard {
                    block,
                    k,
                    m,
                    index,
                    shard,
                })
            }
            BODY_INFO => {
                let generation = r.u32()?;
                let caps = r.string(MAX_AUDIO_CAPS)?;
                r.finish()?;
                Ok(AudioBody::Info { generation, caps })
            }
            BODY_INFO_ACK => {
                let generation = r.u32()?;
                r.finish()?;
                Ok(AudioBody::InfoAck { generation })
            }
            other => Err(WireError::UnknownKind(other)),
        }
    }

    /// Appends the body's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            AudioBody::Shard {
                block,
                k,
                m,
                index,
                shard,
            } => {
                let t = if index < k { BODY_DATA } else { BODY_PARITY };
                w.u8(t).u64(*block).u8(*k).u8(*m).u8(*index).bytes(shard);
            }
            AudioBody::Info { generation, caps } => {
                w.u8(BODY_INFO)
                    .u32(*generation)
                    .string(caps, MAX_AUDIO_CAPS);
            }
            AudioBody::InfoAck { generation } => {
                w.u8(BODY_INFO_ACK).u32(*generation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_body(block: u64, k: u8, m: u8, index: u8, payload: &[u8]) -> Vec<u8> {
        let mut rec = Vec::new();
        AudioRecord {
            capture_us: 7,
            duration_us: 5000,
            data: payload,
        }
        .encode(&mut rec);
        let mut out = Vec::new();
        AudioBody::Shard {
            block,
            k,
            m,
            index,
            shard: &rec,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn bodies_roundtrip() {
        let b = data_body(40, 4, 2, 1, b"opus");
        let AudioBody::Shard { shard, .. } = AudioBody::decode(&b).unwrap() else {
            panic!("not a shard");
        };
        let rec = AudioRecord::decode(shard).unwrap();
        assert_eq!(
            (rec.capture_us, rec.duration_us, rec.data),
            (7, 5000, &b"opus"[..])
        );
        for body in [
            AudioBody::Info {
                generation: 3,
                caps: "audio/x-opus".into(),
            },
            AudioBody::InfoAck { generation: 3 },
        ] {
            let mut out = Vec::new();
            body.encode(&mut out);
            assert_eq!(AudioBody::decode(&out).unwrap(), body);
        }
    }

    #[test]
    fn hostile_bodies_are_refused() {
        assert!(AudioBody::decode(&[]).is_err());
        assert!(AudioBody::decode(&[9]).is_err());
        // k = 0, k too large, index out of range, data index in parity type.
        assert!(AudioBody::decode(&data_body(0, 0, 2, 0, b"x")).is_err());
        assert!(AudioBody::decode(&data_body(0, 17, 2, 0, b"x")).is_err());
        let mut b = data_body(0, 4, 2, 1, b"x");
        b[0] = BODY_PARITY;
        assert!(AudioBody::decode(&b).is_err());
        // Block number that overflows.
        assert!(AudioBody::decode(&data_body(u64::MAX - 1, 4, 2, 0, b"x")).is_err());
        // Truncated record, declared length beyond the shard, trailing bytes.
        let b = data_body(0, 4, 2, 0, b"abc");
        for cut in 0..b.len() {
            assert!(AudioBody::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(AudioBody::decode(&long).is_err());
        // A record whose padding is not zero.
        let mut rec = Vec::new();
        AudioRecord {
            capture_us: 0,
            duration_us: 0,
            data: b"a",
        }
        .encode(&mut rec);
        rec.push(1);
        assert!(AudioRecord::decode(&rec).is_err());
    }
}
