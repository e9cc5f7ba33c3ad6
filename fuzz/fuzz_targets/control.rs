//! Control messages (keyframe request, loss report, ping/pong, stream info, bye, input ack)
//! arrive sealed, but a peer that holds the session key is still untrusted. Decoding must never
//! panic, and an accepted message must re-encode to exactly the bytes it came from: the decoder
//! accepts one spelling of each message, and reads every byte.

#![no_main]

use gstpunktfunk::protocol::control::{Control, MAX_CAPS_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Control::decode(data) {
        if let Control::StreamInfo(info) = &msg {
            assert!(info.caps.len() <= MAX_CAPS_LEN);
        }
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out, data, "{msg:?} re-encodes differently");
    }
});
