//! `PathFrame::decode` on arbitrary control bodies, and a `Path` driven by a run of events
//! (authenticated datagrams from a few addresses with fuzzed packet numbers, responses with
//! fuzzed or real tokens, challenge polls at fuzzed times).
//!
//! Checks besides "no panic": an accepted body re-encodes to the same bytes; the path moves
//! only to an address that answered its own challenge; bytes sent to an unvalidated address
//! never exceed 3× the bytes received from it.

#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::security::path::{AMPLIFICATION_FACTOR, Path, PathFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = PathFrame::decode(data) {
        assert_eq!(&f.encode()[..], data);
    }

    let addrs: Vec<SocketAddr> = (0..4u16)
        .map(|i| SocketAddr::from(([192, 0, 2, 1], 4000 + i)))
        .collect();
    let t0 = Instant::now();
    let mut now = t0;
    let mut path = Path::new(addrs[0]);
    let mut challenged: HashMap<SocketAddr, [u8; 8]> = HashMap::new();
    let mut rx: HashMap<SocketAddr, u64> = HashMap::new();
    let mut tx: HashMap<SocketAddr, u64> = HashMap::new();
    for rec in data.chunks_exact(4) {
        let from = addrs[(rec[1] & 3) as usize];
        now += Duration::from_millis(u64::from(rec[3] & 63));
        match rec[0] & 3 {
            0 => {
                let len = usize::from(rec[3]) + 33;
                path.on_authenticated(from, u64::from(rec[2]), len, now);
                *rx.entry(from).or_default() += len as u64;
            }
            1 => {
                if let Some((to, PathFrame::Challenge(t))) = path.poll_challenge(now, 41) {
                    challenged.insert(to, t);
                    path.on_sent(to, 41);
                    *tx.entry(to).or_default() += 41;
                }
            }
            2 => {
                let token = challenged.get(&from).copied().unwrap_or([rec[2]; 8]);
                let before = path.current();
                if path.on_path_response(from, &token, now) {
                    assert_eq!(challenged.get(&from), Some(&token), "moved without its challenge");
                    assert_ne!(before, from);
                    challenged.clear();
                }
            }
            _ => {
                let len = usize::from(rec[2]) * 8;
                if path.may_send(from, len) {
                    path.on_sent(from, len);
                    if from != path.current() {
                        *tx.entry(from).or_default() += len as u64;
                    }
                }
            }
        }
        if path.current() == addrs[0] {
            // Budget toward every other address within 3x what it sent (totals over probes).
            for a in &addrs[1..] {
                let t = tx.get(a).copied().unwrap_or(0);
                let r = rx.get(a).copied().unwrap_or(0);
                assert!(t <= AMPLIFICATION_FACTOR * r, "{t} sent, {r} received");
            }
        }
    }
});
