//! Whole datagrams from the network into a session's [`Connection`], host or client, before and
//! after a session is established: it must count and drop what it cannot use and never panic,
//! and its reassembly memory stays under the cap.
//!
//! Two connections run on virtual time (no wall clock, no sockets): a base instant is taken
//! once and the clock only moves when the input says so. Transmits between the two are
//! delivered losslessly; the fuzz bytes arrive at the target as if from its peer's address.
//! First byte: bit 0 target is the host (else the client), bit 1 connect the two first,
//! bit 2 plaintext media (`encrypt=false`, so bytes reach the decoders behind the AEAD),
//! bit 3 the host is the caller (else the listener), bit 4 both seal with `ring` (else
//! `aes-gcm`). Then records `[ctl][len: u16 le][bytes]`; `ctl` bit 0 writes the live session id
//! into the bytes (offset 4), bit 1 a fresh packet number (offset 8), bit 2 delivers what both
//! sent and advances the clock by `1 + 16 * (ctl >> 5)` ms, running due timers, bit 3 turns the
//! record into genuine traffic from the peer instead: for a client target the host seals the
//! bytes as a frame (bit 4: keyframe) and its datagrams are injected, datagram `i` dropped where
//! bit `i % 3` of `ctl >> 5` is set; for a host target the client sends the bytes' input events
//! and asks for a keyframe. Bit 4 of `ctl` without bit 3: the bytes arrive from a third
//! address (127.0.0.1:3) instead of the peer's, so hellos from new sources (gate, cookies,
//! per-source pending), CookieReplies, Rejects and Resets from strangers, and path probes
//! (a sealed or plaintext datagram from a new address) are reached.
//!
//! Both connections take a fixed wall clock with the base instant (`Connection::new_at`), so
//! hello freshness is deterministic and genuine hellos are fresh.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use gstpunktfunk::protocol::security::crypto::AeadBackend;
use gstpunktfunk::protocol::fec::coder::ReedSolomon8;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::input::InputEvent;
use gstpunktfunk::protocol::media::packetizer::{Datagrams, Packetizer};
use gstpunktfunk::protocol::media::reassembler::DEFAULT_MEMORY_CAP;
use gstpunktfunk::protocol::wire::Reader;
use gstpunktfunk::session::{Config, Connection, Mode};
use libfuzzer_sys::fuzz_target;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The two ends: `a` at 127.0.0.1:1 (the listener), `b` at 127.0.0.1:2 (the caller).
struct Pair {
    now: Instant,
    a: Connection,
    b: Connection,
}

impl Pair {
    /// Delivers everything both sides sent (and what that provokes, bounded), then runs
    /// the timers due at `now`.
    fn deliver(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                let mut d = t.contents;
                if t.destination == addr(2) {
                    self.b.handle_datagram(self.now, addr(1), &mut d);
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                let mut d = t.contents;
                if t.destination == addr(1) {
                    self.a.handle_datagram(self.now, addr(2), &mut d);
                }
            }
            for c in [&mut self.a, &mut self.b] {
                if c.poll_timeout().is_some_and(|t| t <= self.now) {
                    c.handle_timeout(self.now);
                    moved = true;
                }
                while c.poll_event().is_some() {}
            }
            if !moved {
                break;
            }
        }
        for c in [&self.a, &self.b] {
            assert!(c.stats().memory_in_use <= DEFAULT_MEMORY_CAP as u64);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.deliver();
    }
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

    let (host_mode, client_mode) = if host_calls {
        (Mode::Caller, Mode::Listener)
    } else {
        (Mode::Listener, Mode::Caller)
    };
    let mut hc = Config::new(Role::Host, host_mode);
    let mut cc = Config::new(Role::Client, client_mode);
    if host_calls {
        hc.peer = Some(addr(1));
    } else {
        cc.peer = Some(addr(1));
    }
    for c in [&mut hc, &mut cc] {
        c.encrypt = !plaintext;
        c.aead = aead;
    }
    hc.rng_seed = Some(1);
    cc.rng_seed = Some(2);
    hc.stream_info = Some(gstpunktfunk::protocol::control::StreamInfo {
        caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
        ..Default::default()
    });
    hc.initial_frame_index = Some(0);
    let mtu = hc.mtu;
    let now = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (Ok(host), Ok(client)) = (
        Connection::new_at(hc, now, wall),
        Connection::new_at(cc, now, wall),
    ) else {
        return;
    };
    let (a, b) = if host_calls {
        (client, host)
    } else {
        (host, client)
    };
    let mut pair = Pair { now, a, b };
    let target_is_a = target_host != host_calls;

    if connect {
        for _ in 0..16 {
            pair.advance(Duration::from_millis(1));
            if pair.a.is_connected() && pair.b.is_connected() {
                break;
            }
        }
        assert!(
            pair.a.is_connected() && pair.b.is_connected(),
            "the connections did not connect over a lossless pair"
        );
    }

    let mut packetizer = Packetizer::new(mtu, Box::new(ReedSolomon8::new()));
    let mut pn = 1u64 << 24;
    while rest.len() >= 3 {
        let ctl = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let now = pair.now;
        let (target, peer, from) = if target_is_a {
            (&mut pair.a, &mut pair.b, addr(2))
        } else {
            (&mut pair.b, &mut pair.a, addr(1))
        };

        if ctl & 8 != 0 {
            if target_host {
                // Genuine traffic from the client: input events and a keyframe request.
                let mut r = Reader::new(bytes);
                while let Ok(ev) = InputEvent::decode(&mut r) {
                    let _ = peer.send_input(now, ev);
                }
                let _ = peer.request_keyframe(now);
            } else if let Ok(Some(ticket)) =
                peer.begin_frame(now, &packetizer, bytes.len(), ctl & 0x10 != 0)
            {
                let mut buf = Datagrams::new();
                if ticket.packetize(&mut packetizer, bytes, &mut buf).is_ok() {
                    let frame = ticket.seal(buf);
                    let d = frame.datagrams();
                    let drops = ctl >> 5;
                    for i in (0..d.len()).filter(|i| drops >> (i % 3) & 1 == 0) {
                        let mut x = d.get(i).to_vec();
                        target.handle_datagram(now, from, &mut x);
                    }
                }
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
            let from = if ctl & 0x10 != 0 { addr(3) } else { from };
            target.handle_datagram(now, from, &mut d);
        }
        if ctl & 4 != 0 {
            pair.advance(Duration::from_millis(1 + 16 * u64::from(ctl >> 5)));
        }
    }
    // Let the timers give up what cannot complete; both sides read each other's answers.
    pair.deliver();
    pair.advance(Duration::from_secs(1));
    pair.advance(Duration::from_secs(5));
});
