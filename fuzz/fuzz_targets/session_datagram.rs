//! Whole datagrams from the network into a [`Session`], host or client, before and after a
//! session is established: the session must count and drop what it cannot use and never panic,
//! and its reassembly memory stays under the cap.
//!
//! Two sessions run over an in-memory transport pair; the fuzz bytes are sent from the peer's
//! end of the pair into the target's inbox, and the target is polled. First byte:
//! bit 0 target is the host (else the client), bit 1 connect the two sessions first,
//! bit 2 plaintext media (`encrypt=false`, so bytes reach the decoders behind the AEAD),
//! bit 3 the host is the caller (else the listener), bit 4 both seal with `ring` (else `aes-gcm`).
//! Then records `[ctl][len: u16 le][bytes]`; `ctl` bit 0 writes the live session id into the
//! bytes (offset 4), bit 1 a fresh packet number (offset 8), bit 2 polls after this record,
//! bit 3 turns the record into genuine traffic from the peer session instead: for a client
//! target the host seals the bytes as a frame (bit 4: keyframe) and its datagrams are injected,
//! datagram `i` dropped where bit `i % 3` of `ctl >> 5` is set; for a host target the client
//! sends the bytes' input events and asks for a keyframe.

#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gstpunktfunk::protocol::crypto::AeadBackend;
use gstpunktfunk::protocol::handshake::Role;
use gstpunktfunk::protocol::input::InputEvent;
use gstpunktfunk::protocol::reassembler::DEFAULT_MEMORY_CAP;
use gstpunktfunk::protocol::wire::Reader;
use gstpunktfunk::session::{Config, Mode, Session};
use gstpunktfunk::transport::Transport;
use gstpunktfunk::transport::memory::MemoryTransport;
use libfuzzer_sys::fuzz_target;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn poll_once(s: &Session) -> bool {
    let r = match s.role() {
        Role::Host => s.poll_input(Duration::ZERO),
        Role::Client => s.poll_frame(Duration::ZERO),
    };
    matches!(r, Ok(Some(_)))
}

/// Polls with a zero timeout until the session's inbox is empty and no event is left (bounded).
/// A zero-timeout poll drains what waits in the transport, runs the timers and never blocks.
fn drain(s: &Session, inbox: &MemoryTransport) {
    for _ in 0..4096 {
        if !poll_once(s) && inbox.pending() == 0 {
            break;
        }
    }
    let st = s.stats();
    assert!(st.memory_in_use <= DEFAULT_MEMORY_CAP as u64);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let target_host = sel & 1 != 0;
    let connect = sel & 2 != 0;
    let plaintext = sel & 4 != 0;
    let host_calls = sel & 8 != 0;
    let aead = if sel & 16 != 0 {
        AeadBackend::Ring
    } else {
        AeadBackend::AesGcm
    };

    // End `a` is 127.0.0.1:1 (the listener's), `b` is 127.0.0.1:2 (the caller's).
    let (a, b) = MemoryTransport::pair();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (host_mode, client_mode) = if host_calls {
        (Mode::Caller, Mode::Listener)
    } else {
        (Mode::Listener, Mode::Caller)
    };
    let (host_end, client_end) = if host_calls {
        (b.clone(), a.clone())
    } else {
        (a.clone(), b.clone())
    };
    let mut hc = Config::new(Role::Host, host_mode);
    let mut cc = Config::new(Role::Client, client_mode);
    if host_calls {
        hc.peer = Some(addr(1));
    } else {
        cc.peer = Some(addr(1));
    }
    hc.encrypt = !plaintext;
    cc.encrypt = !plaintext;
    hc.aead = aead;
    cc.aead = aead;
    hc.stream_info = Some(gstpunktfunk::protocol::control::StreamInfo {
        caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
        ..Default::default()
    });
    hc.initial_frame_index = Some(0);
    let Ok(host) = Session::new(hc, host_end.clone()) else {
        return;
    };
    let Ok(client) = Session::new(cc, client_end.clone()) else {
        return;
    };

    if connect {
        for _ in 0..16 {
            // The caller first, so its hello is waiting when the listener polls.
            let (first, second, fe, se) = if host_calls {
                (&host, &client, &host_end, &client_end)
            } else {
                (&client, &host, &client_end, &host_end)
            };
            drain(first, fe);
            drain(second, se);
            if host.is_connected() && client.is_connected() {
                break;
            }
        }
        assert!(
            host.is_connected() && client.is_connected(),
            "the sessions did not connect over a lossless pair"
        );
    }

    let (target, target_end, peer, peer_end) = if target_host {
        (&host, &host_end, &client, &client_end)
    } else {
        (&client, &client_end, &host, &host_end)
    };
    let target_addr = target_end.local_addr();
    let mut pn = 1u64 << 24;

    while rest.len() >= 3 {
        let ctl = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];

        if ctl & 8 != 0 {
            if target_host {
                // Genuine traffic from the client: input events and a keyframe request.
                let mut r = Reader::new(bytes);
                while let Ok(ev) = InputEvent::decode(&mut r) {
                    let _ = client.send_input(ev);
                }
                let _ = client.request_keyframe();
            } else if let Ok(Some(frame)) = host.seal_frame(bytes, ctl & 0x10 != 0) {
                let d = frame.datagrams();
                let drops = ctl >> 5;
                let kept: Vec<&[u8]> = (0..d.len())
                    .filter(|i| drops >> (i % 3) & 1 == 0)
                    .map(|i| d.get(i))
                    .collect();
                let _ = peer_end.send(&kept, target_addr);
            }
        } else {
            let mut d = bytes.to_vec();
            let sid = target.stats().session_id;
            if ctl & 1 != 0 && d.len() >= 8 {
                d[4..8].copy_from_slice(&sid.to_be_bytes());
            }
            if ctl & 2 != 0 && d.len() >= 16 {
                d[8..16].copy_from_slice(&pn.to_be_bytes());
                pn += 1;
            }
            let _ = peer_end.send(&[&d], target_addr);
        }
        if ctl & 4 != 0 {
            drain(target, target_end);
        }
    }
    drain(target, target_end);
    // The peer reads the target's answers too; it must survive them.
    drain(peer, peer_end);
});
