//! The clear datagram header and the video shard header: the first bytes every datagram from
//! the network is parsed with. Neither may panic, and whatever they accept must re-encode to
//! exactly the bytes it was read from (no field silently changed on the way through).

#![no_main]

use gstpunktfunk::protocol::wire::{
    HEADER_LEN, Header, Kind, MAX_DATAGRAM_BYTES, RejectReason, VIDEO_HEADER_LEN, VideoHeader,
};
use libfuzzer_sys::fuzz_target;

fn check_video(buf: &[u8]) {
    match VideoHeader::decode(buf) {
        Ok((v, shard)) => {
            assert_eq!(shard.len(), buf.len() - VIDEO_HEADER_LEN);
            let mut out = [0u8; VIDEO_HEADER_LEN];
            v.encode(&mut out);
            assert_eq!(
                out[..],
                buf[..VIDEO_HEADER_LEN],
                "video header re-encodes differently"
            );
            let _ = v.keyframe();
        }
        Err(_) => assert!(buf.len() < VIDEO_HEADER_LEN),
    }
}

fuzz_target!(|data: &[u8]| {
    match Header::decode(data) {
        Ok((h, rest)) => {
            assert!(data.len() >= HEADER_LEN && data.len() <= MAX_DATAGRAM_BYTES);
            assert_eq!(rest.len(), data.len() - HEADER_LEN);
            assert_eq!(
                h.to_bytes()[..],
                data[..HEADER_LEN],
                "header re-encodes differently"
            );
            assert_eq!(Kind::from_u8(h.kind as u8), Ok(h.kind));
            let _ = (h.sealed(), h.kind.is_session());
            // An opened video body starts with the shard header; a Reject carries a reason.
            check_video(rest);
            if let Some(&b) = rest.first()
                && let Ok(r) = RejectReason::from_u8(b)
            {
                assert_eq!(r as u8, b);
                assert!(!r.describe().is_empty());
            }
        }
        Err(_) => {
            // Refusals are only for what the layout rules out.
            assert!(
                data.len() < HEADER_LEN
                    || data.len() > MAX_DATAGRAM_BYTES
                    || Kind::from_u8(data[1]).is_err()
                    || data[0] != gstpunktfunk::protocol::wire::VERSION
                    || u16::from_be_bytes([data[2], data[3]])
                        & !gstpunktfunk::protocol::wire::FLAG_SEALED
                        != 0
            );
        }
    }
    check_video(data);
});
