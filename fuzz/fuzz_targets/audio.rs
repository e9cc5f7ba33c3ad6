//! Audio bodies arrive sealed, but a peer that holds the session key is still untrusted.
//! Decoding must never panic, an accepted body must re-encode to exactly its bytes, and the
//! receiver fed any sequence of bodies must never panic and must hand out sequence numbers in
//! strictly increasing order.

#![no_main]

use std::time::{Duration, Instant};

use gstpunktfunk::protocol::audio::{AudioBody, AudioOutput, AudioReceiver};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut rx = AudioReceiver::new();
    let mut last: Option<u64> = None;
    // Bodies separated by a u8 length prefix; each one advances the clock by 1 ms.
    let mut rest = data;
    let mut i = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        i += 1;
        let now = t0 + Duration::from_millis(i);
        if let Ok(b) = AudioBody::decode(body) {
            let mut out = Vec::new();
            b.encode(&mut out);
            assert_eq!(out, body, "{b:?} re-encodes differently");
            let _ = rx.push(&b, now);
        }
        rx.handle_timeout(now);
        while let Some(o) = rx.poll() {
            if let AudioOutput::Packet(p) = o {
                assert!(last.is_none_or(|l| p.seq > l), "out of order");
                last = Some(p.seq);
            }
        }
    }
});
