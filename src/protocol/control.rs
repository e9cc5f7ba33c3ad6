//! Control messages, both directions, sealed like video: keyframe request, loss report,
//! ping/pong, stream info (and its updates), bye, input acknowledgements, repair messages and
//! bandwidth feedback (the loss report's, repair's and feedback's bodies are laid out in
//! `fec::report`, `fec::repair` and `feedback`).
//!
//! This module only encodes and decodes; deciding when to send them is the session's job.
//! Decoding never panics and never allocates more than the bytes present (strings are capped).

use super::wire::{Reader, WireError, Writer};
use crate::protocol::fec::repair::{RepairRequest, RepairUnavailable};
use crate::protocol::fec::report::LossReport;
use crate::protocol::feedback::Feedback;

/// Longest caps string we carry. Real H.264/HEVC caps with codec_data are well under 2 KiB.
pub const MAX_CAPS_LEN: usize = 4096;

/// What the client needs to know about the stream before its first frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamInfo {
    /// GStreamer caps string of the encoded stream, e.g.
    /// `video/x-h264, stream-format=byte-stream, alignment=au, width=1920, height=1080`.
    pub caps: String,
    /// Largest datagram the host sends, in bytes.
    pub mtu: u16,
    /// FEC scheme id (`wire::FEC_SCHEME_*`).
    pub fec_scheme: u8,
    /// Bumped by the host whenever the info changes, so a client can ignore stale updates.
    pub generation: u32,
}

impl StreamInfo {
    /// Appends the body.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.generation)
            .u16(self.mtu)
            .u8(self.fec_scheme)
            .string(&self.caps, MAX_CAPS_LEN);
    }

    /// Reads a body written by [`Self::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let generation = r.u32()?;
        let mtu = r.u16()?;
        let fec_scheme = r.u8()?;
        let caps = r.string(MAX_CAPS_LEN)?;
        Ok(StreamInfo {
            caps,
            mtu,
            fec_scheme,
            generation,
        })
    }
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Client → host: please send a keyframe (with parameter sets). `lost` names the newest
    /// frame the client cannot decode (lost, or a delta it holds no keyframe for): any keyframe
    /// sent after it answers the request, so copies and later requests for the same loss are
    /// coalesced by the host. `None` (an empty body) is an unnamed request, acted on under the
    /// host's throttle.
    KeyframeRequest {
        /// The newest frame the client cannot decode, if it names one.
        lost: Option<u32>,
    },
    /// Client → host, every report interval: reception counters and the loss model
    /// (`fec::report`).
    LossReport(LossReport),
    /// Either way: echo this back. `t1` is the sender's host clock (monotonic µs) at sending.
    Ping {
        /// The sender's clock at sending, µs.
        t1: u64,
    },
    /// The answer to a [`Control::Ping`]: its `t1`, and the answerer's clock when the ping
    /// arrived (`t2`) and when this left (`t3`) — NTP's timestamps (`clock`).
    Pong {
        /// The ping's `t1`.
        t1: u64,
        /// The answerer's clock when the ping arrived, µs.
        t2: u64,
        /// The answerer's clock when the pong left, µs.
        t3: u64,
    },
    /// Host → client: the stream info changed (or is known for the first time).
    StreamInfo(StreamInfo),
    /// Either way: this end is leaving. From the host this means end of stream.
    Bye,
    /// Host → client: every input event with a sequence number below this has arrived.
    InputAck {
        /// The lowest input sequence number not yet received.
        next_expected: u64,
    },
    /// Client → host: new parity for blocks of a frame that cannot be rebuilt (`repair`).
    RepairRequest(RepairRequest),
    /// Host → client: a repair request cannot be answered (frame no longer held, budget spent).
    RepairUnavailable(RepairUnavailable),
    // Congestion control.
    /// Client → host: per-frame arrival timing for the bandwidth estimator (`feedback`).
    Feedback(Feedback),
    /// Host → client, with every keep-alive: frames sent in this session so far, so a client
    /// whose keep-alives flow but whose video stopped can tell (`session::connection::stall`).
    SendProgress {
        /// Frames the host has sent in this session.
        frames_sent: u64,
    },
}

const T_KEYFRAME: u8 = 1;
// 2 and 16 were the loss counters and the loss model as two messages: retired, never reused
// (a peer that still sends them is dropped as unknown, counted invalid).
const T_PING: u8 = 3;
const T_PONG: u8 = 4;
const T_INFO: u8 = 5;
const T_BYE: u8 = 6;
const T_ACK: u8 = 7;
// 8 and 9 are the path frames (`path`).
const T_SEND_PROGRESS: u8 = 10;
// Loss report and repair: types from 16 up, so other additions below 16 do not collide.
const T_REPAIR_REQUEST: u8 = 17;
const T_REPAIR_UNAVAILABLE: u8 = 18;
const T_LOSS_REPORT: u8 = 20;
// Bandwidth feedback: types from 24 up.
const T_FEEDBACK: u8 = 24;

impl Control {
    /// Appends the whole message (type byte and body).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Control::KeyframeRequest { lost } => {
                w.u8(T_KEYFRAME);
                if let Some(i) = lost {
                    w.u32(*i);
                }
            }
            Control::LossReport(r) => {
                w.u8(T_LOSS_REPORT);
                r.encode(&mut w);
            }
            Control::Ping { t1 } => {
                w.u8(T_PING).u64(*t1);
            }
            Control::Pong { t1, t2, t3 } => {
                w.u8(T_PONG).u64(*t1).u64(*t2).u64(*t3);
            }
            Control::StreamInfo(info) => {
                w.u8(T_INFO);
                info.encode(&mut w);
            }
            Control::Bye => {
                w.u8(T_BYE);
            }
            Control::InputAck { next_expected } => {
                w.u8(T_ACK).u64(*next_expected);
            }
            Control::RepairRequest(r) => {
                w.u8(T_REPAIR_REQUEST);
                r.encode(&mut w);
            }
            Control::RepairUnavailable(u) => {
                w.u8(T_REPAIR_UNAVAILABLE);
                u.encode(&mut w);
            }
            Control::Feedback(f) => {
                w.u8(T_FEEDBACK);
                f.encode(out);
            }
            Control::SendProgress { frames_sent } => {
                w.u8(T_SEND_PROGRESS).u64(*frames_sent);
            }
        }
    }

    /// Decodes one control message that must fill `body` exactly.
    pub fn decode(body: &[u8]) -> Result<Control, WireError> {
        let mut r = Reader::new(body);
        let msg = match r.u8()? {
            T_KEYFRAME => Control::KeyframeRequest {
                lost: if r.rest().is_empty() {
                    None
                } else {
                    Some(r.u32()?)
                },
            },
            T_PING => Control::Ping { t1: r.u64()? },
            T_PONG => Control::Pong {
                t1: r.u64()?,
                t2: r.u64()?,
                t3: r.u64()?,
            },
            T_INFO => Control::StreamInfo(StreamInfo::decode(&mut r)?),
            T_BYE => Control::Bye,
            T_ACK => Control::InputAck {
                next_expected: r.u64()?,
            },
            T_SEND_PROGRESS => Control::SendProgress {
                frames_sent: r.u64()?,
            },
            T_LOSS_REPORT => Control::LossReport(LossReport::decode(&mut r)?),
            T_REPAIR_REQUEST => Control::RepairRequest(RepairRequest::decode(&mut r)?),
            T_REPAIR_UNAVAILABLE => Control::RepairUnavailable(RepairUnavailable::decode(&mut r)?),
            T_FEEDBACK => {
                // The feedback body fills the rest of the message exactly.
                let rest = r.rest();
                let f = Feedback::decode(rest)?;
                r.bytes(rest.len())?;
                Control::Feedback(f)
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fec::lossmodel::{LossCounts, LossModelReport};
    use crate::protocol::fec::repair::{RepairItem, UnavailableReason};
    use crate::protocol::fec::report::LOSS_REPORT_LEN;

    fn all() -> Vec<Control> {
        vec![
            Control::KeyframeRequest { lost: None },
            Control::KeyframeRequest {
                lost: Some(0xffff_fff0),
            },
            Control::LossReport(LossReport {
                packets_received: 1,
                packets_lost: 2,
                packets_recovered: 3,
                frames_lost: 4,
                frames_delivered: 5,
                info_generation: 6,
                model: LossModelReport {
                    window_ms: 1000,
                    recent: LossCounts {
                        packets: 190,
                        lost: 7,
                        bursts: 2,
                    },
                    window: LossCounts {
                        packets: 1900,
                        lost: 61,
                        bursts: 19,
                    },
                    burst_hist: [6, 5, 4, 2, 1, 1, 0, 0],
                },
            }),
            Control::Ping { t1: 77 },
            Control::Pong {
                t1: 78,
                t2: 1 << 40,
                t3: (1 << 40) + 9,
            },
            Control::StreamInfo(StreamInfo {
                caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
                mtu: 1400,
                fec_scheme: 1,
                generation: 9,
            }),
            Control::Bye,
            Control::InputAck { next_expected: 12 },
            Control::SendProgress {
                frames_sent: 1 << 33,
            },
            Control::RepairRequest(
                RepairRequest::new(
                    0xfffe_0001,
                    vec![
                        RepairItem { block: 0, total: 3 },
                        RepairItem { block: 2, total: 1 },
                    ],
                )
                .unwrap(),
            ),
            Control::RepairRequest(RepairRequest::whole(0xffff_ffff, 2).unwrap()),
            Control::RepairUnavailable(RepairUnavailable {
                frame_index: 5,
                reason: UnavailableReason::NotHeld,
            }),
            Control::Feedback(crate::protocol::feedback::Feedback {
                seq: 7,
                base_frame: u32::MAX,
                base_time_us: 300,
                late: 2,
                frames: vec![
                    crate::protocol::feedback::FrameFeedback {
                        received: 2,
                        bytes: 2800,
                        first_offset_us: 0,
                        span_us: 127,
                    },
                    crate::protocol::feedback::FrameFeedback::default(),
                ],
            }),
        ]
    }

    /// The client's loss report on the wire, pinned byte for byte: type 20, the cumulative
    /// counters, then the loss model (the same bytes the two retired messages, types 2 and 16,
    /// carried, in one body).
    #[test]
    fn loss_report_encodes_to_pinned_bytes() {
        let report = Control::LossReport(LossReport {
            packets_received: 0x0102_0304_0506_0708,
            packets_lost: 9,
            packets_recovered: 10,
            frames_lost: 11,
            frames_delivered: 12,
            info_generation: 0x0d0e_0f10,
            model: LossModelReport {
                window_ms: 500,
                recent: LossCounts {
                    packets: 100,
                    lost: 3,
                    bursts: 2,
                },
                window: LossCounts {
                    packets: 1000,
                    lost: 30,
                    bursts: 12,
                },
                burst_hist: [5, 4, 1, 1, 1, 0, 0, 0],
            },
        });
        let mut bytes = Vec::new();
        report.encode(&mut bytes);
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex,
            concat!(
                "14",
                "01020304050607080000000000000009000000000000000a000000000000000b",
                "000000000000000c0d0e0f10",
                "01f4000000640000000300000002000003e80000001e0000000c",
                "0000000500000004000000010000000100000001000000000000000000000000",
            )
        );
        assert_eq!(bytes.len(), 1 + LOSS_REPORT_LEN);
        assert_eq!(Control::decode(&bytes), Ok(report));
    }

    /// The two messages the loss report replaced decode as unknown types (the session counts
    /// them invalid and drops them), whatever their body.
    #[test]
    fn retired_loss_types_are_unknown() {
        for t in [2u8, 16] {
            let mut b = vec![t];
            b.extend([0u8; LOSS_REPORT_LEN]);
            for cut in [1, 45, 59, b.len()] {
                assert_eq!(Control::decode(&b[..cut]), Err(WireError::UnknownKind(t)));
            }
        }
    }

    #[test]
    fn roundtrip_every_message() {
        for m in all() {
            let mut b = Vec::new();
            m.encode(&mut b);
            assert_eq!(Control::decode(&b).unwrap(), m);
            // Every strict prefix is rejected, never accepted as something else (a named
            // keyframe request's type byte alone is the unnamed request).
            for cut in 0..b.len() {
                let got = Control::decode(&b[..cut]);
                if cut == 1 && matches!(m, Control::KeyframeRequest { .. }) {
                    assert_eq!(got, Ok(Control::KeyframeRequest { lost: None }));
                    continue;
                }
                assert!(got.is_err(), "{m:?} cut at {cut}");
            }
            // Trailing garbage is rejected (behind an unnamed keyframe request it is a
            // truncated frame index).
            b.push(0);
            assert!(Control::decode(&b).is_err(), "{m:?} with a trailing byte");
            if !matches!(m, Control::KeyframeRequest { lost: None }) {
                assert_eq!(Control::decode(&b), Err(WireError::TrailingBytes));
            }
        }
    }

    #[test]
    fn oversized_caps_rejected() {
        let mut b = vec![T_INFO];
        Writer::new(&mut b).u32(1).u16(1400).u8(1).u16(60_000);
        b.extend(std::iter::repeat_n(b'a', 60_000));
        assert_eq!(Control::decode(&b), Err(WireError::Limit("string length")));
    }
}
