//! Input from the client: single events ([`InputEvent::decode`]) and whole input bodies fed
//! to the host's [`InputReceiver`], which must deliver each sequence number at most once, in
//! order, hold no more than its window, and leave its state alone when a body is malformed.
//!
//! Input layout: the first half (split at the first byte's value) is read as a run of events;
//! the rest is a series of `[len: u16 le][body]` records fed to one receiver.

#![no_main]

use gstpunktfunk::protocol::input::{InputEvent, InputReceiver, RECEIVE_WINDOW};
use gstpunktfunk::protocol::wire::Reader;
use libfuzzer_sys::fuzz_target;

fn events(data: &[u8]) {
    let mut r = Reader::new(data);
    while r.remaining() > 0 {
        let before = r.rest();
        let Ok(ev) = InputEvent::decode(&mut r) else {
            break;
        };
        let used = before.len() - r.remaining();
        assert!(used > 0);
        assert_eq!(ev.encoded_len(), used, "{ev:?}: encoded_len disagrees");
        let mut out = Vec::new();
        ev.encode(&mut out);
        assert_eq!(out, before[..used], "{ev:?} re-encodes differently");
        assert!(!ev.name().is_empty());
    }
}

fn bodies(mut data: &[u8]) {
    let mut rx = InputReceiver::new();
    let mut delivered_total = 0u64;
    while data.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
        let body = &data[2..2 + len];
        data = &data[2 + len..];

        let before_next = rx.next_expected();
        let before_buffered = rx.buffered();
        let mut got = 0usize;
        let r = rx.on_body(body, &mut |_ev| got += 1);
        match r {
            Ok(n) => {
                assert_eq!(n, got, "returned count differs from events delivered");
                assert_eq!(rx.next_expected(), before_next + n as u64);
                delivered_total += n as u64;
            }
            Err(_) => {
                assert_eq!(got, 0, "a malformed body delivered events");
                assert_eq!(
                    rx.next_expected(),
                    before_next,
                    "a malformed body moved the ack"
                );
                assert_eq!(rx.buffered(), before_buffered);
            }
        }
        assert!(rx.buffered() as u64 <= RECEIVE_WINDOW);
    }
    assert_eq!(rx.next_expected(), delivered_total);
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = (usize::from(split) * rest.len() / 255).min(rest.len());
    let (ev, bo) = rest.split_at(split);
    events(ev);
    bodies(bo);
});
