//! Repair requests and loss model reports arrive sealed, but from a peer that is still
//! untrusted. Their decoders must never panic, must accept one spelling of each message (an
//! accepted message re-encodes to exactly its bytes), and a decoded request must be answered
//! by the host's repair history within its limits: never more rows per block than
//! `MAX_REPAIR_ROWS`, never past 256 shards, never more bytes than the budget held.

#![no_main]

use gstpunktfunk::protocol::fec::coder::{ParityTable, ReedSolomon8};
use gstpunktfunk::protocol::fec::lossmodel::LossModelReport;
use gstpunktfunk::protocol::media::packetizer::{Datagrams, FrameParams, Packetizer};
use gstpunktfunk::protocol::fec::repair::{
    MAX_REPAIR_ITEMS, MAX_REPAIR_ROWS, RepairConfig, RepairHistory, RepairMargin, RepairParams,
    RepairRequest, RepairUnavailable,
};
use gstpunktfunk::protocol::wire::{Reader, Writer};
use libfuzzer_sys::fuzz_target;

fn roundtrip<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    decode: impl Fn(&mut Reader<'_>) -> Result<T, gstpunktfunk::protocol::wire::WireError>,
    encode: impl Fn(&T, &mut Writer<'_>),
) -> Option<T> {
    let mut r = Reader::new(data);
    let v = decode(&mut r).ok()?;
    let used = data.len() - r.remaining();
    let mut out = Vec::new();
    encode(&v, &mut Writer::new(&mut out));
    assert_eq!(out, &data[..used], "{v:?} re-encodes differently");
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            roundtrip(data, LossModelReport::decode, |v, w| v.encode(w));
        }
        1 => {
            roundtrip(data, RepairUnavailable::decode, |v, w| v.encode(w));
        }
        _ => {
            let Some(req) = roundtrip(data, RepairRequest::decode, |v, w| v.encode(w)) else {
                return;
            };
            assert!(req.items().len() <= MAX_REPAIR_ITEMS);
            // A multi-block frame the request may or may not name, or (bit 2 of the index) a
            // one-block frame a whole-frame request can be answered for.
            let len = if req.frame_index & 4 != 0 { 8_333 } else { 200_000 };
            let frame: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
            let mut d = Datagrams::new();
            let fp = FrameParams {
                frame_index: req.frame_index & 7,
                keyframe: false,
                fec_percent: 10,
                session_id: 1,
                first_packet_number: 0,
                sealed: false,
                tag_len: 0,
                timing: Default::default(),
            };
            p.packetize_with(&frame, &fp, &ParityTable::from_percent(10), &mut d)
                .expect("packetize");
            p.encode_recorded_parity(&mut d).expect("parity");
            let mut h = RepairHistory::new(RepairConfig::default());
            h.record(&d);
            // Answers with and without a margin of extra rows (the selector's spare bits).
            let extra = usize::from(sel >> 2);
            h.set_margin(RepairMargin::from_fn(|n| (n * extra) % (MAX_REPAIR_ROWS + 1)));
            let budget = h.budget();
            let mut out = Datagrams::new();
            let params = RepairParams {
                session_id: 1,
                first_packet_number: 0,
                sealed: false,
                tag_len: 0,
            };
            let mut served = false;
            for _ in 0..3 {
                let a = h
                    .answer(&req, &mut ReedSolomon8::new(), &params, &mut out)
                    .expect("answer");
                assert_eq!(a.shards, out.len());
                assert!(a.shards <= MAX_REPAIR_ITEMS * MAX_REPAIR_ROWS);
                // A request names totals: once served in full, its copies get nothing.
                if served {
                    assert_eq!(a.shards, 0, "a copy was answered again");
                }
                served |= a.unavailable.is_none();
            }
            assert!(h.stats().bytes_sent as usize <= budget);
        }
    }
});
