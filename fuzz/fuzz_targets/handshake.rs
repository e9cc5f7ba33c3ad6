//! The Noise handshake bodies, both directions: a listener reads a hello from anyone on the
//! network ([`handshake::respond`]) and a caller reads whatever answer arrives
//! ([`Initiator::finish`]). Neither may panic, and a handshake that completes on both ends
//! must leave them with the same session id and crossed keys.
//!
//! First byte: bit 0 passphrase, bit 1 listener is the client, bit 2 plaintext media,
//! bits 3-4 scenario:
//! 0. `respond` to the fuzz bytes;
//! 1. `finish` a real attempt with the fuzz bytes as the answer;
//! 2. a real hello XORed with the fuzz bytes (longer input is appended), answered, finished;
//! 3. a real answer XORed the same way, finished.
//!
//! In 2 and 3 an unmodified message must complete.

#![no_main]

use std::sync::LazyLock;

use gstpunktfunk::protocol::control::StreamInfo;
use gstpunktfunk::protocol::handshake::{self, Established, HandshakeConfig, Initiator, Psk, Role};
use libfuzzer_sys::fuzz_target;

/// PBKDF2 runs 100,000 rounds: derive the key once, not per input.
static PSK: LazyLock<Psk> = LazyLock::new(|| Psk::from_passphrase("fuzz passphrase"));

fn info() -> StreamInfo {
    StreamInfo {
        caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
        mtu: 1400,
        fec_scheme: 1,
        generation: 1,
    }
}

/// XORs `edit` into `msg`, appending what is longer. Returns whether anything changed.
fn apply(msg: &mut Vec<u8>, edit: &[u8]) -> bool {
    let mut changed = false;
    for (i, &e) in edit.iter().enumerate() {
        if let Some(b) = msg.get_mut(i) {
            *b ^= e;
            changed |= e != 0;
        } else {
            msg.push(e);
            changed = true;
        }
    }
    changed
}

fn agree(listener: &Established, caller: &Established) {
    assert_eq!(listener.session_id, caller.session_id);
    assert_eq!(listener.send_key, caller.recv_key);
    assert_eq!(listener.recv_key, caller.send_key);
    assert_ne!(listener.send_key, listener.recv_key);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let psk = (sel & 1 != 0).then(|| PSK.clone());
    let (lrole, crole) = if sel & 2 != 0 {
        (Role::Client, Role::Host)
    } else {
        (Role::Host, Role::Client)
    };
    let encrypt = sel & 4 == 0;
    let listener = HandshakeConfig {
        role: lrole,
        psk: psk.clone(),
        encrypt,
    };
    let caller = HandshakeConfig {
        role: crole,
        psk,
        encrypt,
    };
    let host_info = info();
    let linfo = (lrole == Role::Host).then_some(&host_info);
    let cinfo = (crole == Role::Host).then_some(&host_info);

    match (sel >> 3) & 3 {
        0 => {
            if let Ok((est, resp)) = handshake::respond(&listener, body, linfo) {
                assert_eq!(est.peer_role, crole);
                assert!(resp.len() >= 2);
            }
        }
        1 => {
            let Ok((init, _hello)) = Initiator::start(&caller, cinfo) else {
                return;
            };
            // Without the listener's ephemeral secret nobody can forge an answer.
            if let Ok(est) = init.finish(body) {
                panic!("a forged answer completed the handshake: {est:?}");
            }
        }
        2 => {
            let Ok((init, mut hello)) = Initiator::start(&caller, cinfo) else {
                return;
            };
            let changed = apply(&mut hello, body);
            match handshake::respond(&listener, &hello, linfo) {
                Ok((l, resp)) => {
                    if let Ok(c) = init.finish(&resp) {
                        agree(&l, &c);
                        assert_eq!(c.peer_info.as_ref(), linfo);
                    } else {
                        assert!(changed, "an unmodified exchange failed at the caller");
                    }
                }
                Err(e) => assert!(changed, "an unmodified hello was refused: {e}"),
            }
        }
        _ => {
            let Ok((init, hello)) = Initiator::start(&caller, cinfo) else {
                return;
            };
            let Ok((l, mut resp)) = handshake::respond(&listener, &hello, linfo) else {
                panic!("an unmodified hello was refused");
            };
            let changed = apply(&mut resp, body);
            match init.finish(&resp) {
                Ok(c) => agree(&l, &c),
                Err(e) => assert!(changed, "an unmodified answer was refused: {e}"),
            }
        }
    }
});
