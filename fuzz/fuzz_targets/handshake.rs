//! The handshake bodies, both directions (handshake version 2: SPAKE2-keyed Noise NNpsk2 with a
//! passphrase, Noise NN without): a listener reads a hello from anyone on the network
//! ([`Responder::respond`], [`handshake::peek_hello`]) and a caller reads whatever answer
//! arrives ([`Initiator::finish`]). Neither may panic, and a handshake that completes on both
//! ends must leave them with the same session id, crossed keys and the same reset secret.
//!
//! First byte: bit 0 passphrase, bit 1 listener is the client, bit 2 plaintext media,
//! bits 3-5 scenario:
//! 0. `peek_hello` and `respond` to the fuzz bytes (a fresh responder, its clock at the
//!    hello's own time when it parses, so the freshness check passes and the crypto runs);
//! 1. `finish` a real attempt with the fuzz bytes as the answer (must never complete);
//! 2. a real hello XORed with the fuzz bytes (longer input is appended), answered, finished;
//! 3. a real answer XORed the same way, finished;
//! 4. a real hello resent with the first 16 fuzz bytes as its cookie: still completes;
//! 5. the listener holds the passphrase with bytes XORed in: never completes unless unchanged.
//!
//! In 2–4 an unmodified message must complete.

#![no_main]

use std::sync::LazyLock;

use gstpunktfunk::protocol::security::cookie::{COOKIE_LEN, Cookie};
use gstpunktfunk::protocol::security::handshake::{
    self, Established, HandshakeConfig, HandshakeError, HelloParams, Initiator, Psk, Responder,
    Role,
};
use libfuzzer_sys::fuzz_target;

const PASSPHRASE: &str = "fuzz passphrase";
static PSK: LazyLock<Psk> = LazyLock::new(|| Psk::from_passphrase(PASSPHRASE));
const NOW: u64 = 1_700_000_000_000;

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
    assert_eq!(listener.reset_secret, caller.reset_secret);
    assert_ne!(listener.send_key, listener.recv_key);
}

fn start(caller: &HandshakeConfig) -> Option<(Initiator, Vec<u8>)> {
    let p = HelloParams {
        unix_ms: NOW,
        counter: 1,
        cookie: None,
    };
    Initiator::start_at(caller, &p).ok()
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

    match (sel >> 3) & 7 {
        0 => {
            let peek = handshake::peek_hello(body);
            let mut r = Responder::new(listener);
            // Use the hello's own timestamp when the fuzzer put one there.
            let now = body
                .get(68..76)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                .unwrap_or(NOW);
            match r.respond(body, now) {
                Ok((est, resp)) => {
                    assert!(peek.is_ok(), "respond took what peek refused");
                    assert_eq!(est.peer_role, crole);
                    assert!(resp.len() < body.len(), "an answer larger than the hello");
                    // The same hello again is a replay.
                    assert_eq!(r.respond(body, now).unwrap_err(), HandshakeError::Stale);
                }
                Err(_) => {}
            }
        }
        1 => {
            let Some((init, _hello)) = start(&caller) else {
                return;
            };
            // Without the listener's ephemeral secret nobody can forge an answer.
            if let Ok(est) = init.finish(body) {
                panic!("a forged answer completed the handshake: {est:?}");
            }
        }
        2 => {
            let Some((init, mut hello)) = start(&caller) else {
                return;
            };
            let changed = apply(&mut hello, body);
            match Responder::new(listener).respond(&hello, NOW) {
                Ok((l, resp)) => match init.finish(&resp) {
                    Ok(c) => agree(&l, &c),
                    Err(e) => assert!(changed, "an unmodified exchange failed: {e}"),
                },
                Err(e) => assert!(changed, "an unmodified hello was refused: {e}"),
            }
        }
        3 => {
            let Some((init, hello)) = start(&caller) else {
                return;
            };
            let Ok((l, mut resp)) = Responder::new(listener).respond(&hello, NOW) else {
                panic!("an unmodified hello was refused");
            };
            let changed = apply(&mut resp, body);
            match init.finish(&resp) {
                Ok(c) => agree(&l, &c),
                Err(e) => assert!(changed, "an unmodified answer was refused: {e}"),
            }
        }
        4 => {
            let Some((init, _)) = start(&caller) else {
                return;
            };
            let mut c = [0u8; COOKIE_LEN];
            for (d, s) in c.iter_mut().zip(body) {
                *d = *s;
            }
            let hello = init.hello_with_cookie(&Cookie(c));
            assert_eq!(handshake::peek_hello(&hello).map(|p| p.cookie), Ok(Some(Cookie(c))));
            let (l, resp) = Responder::new(listener)
                .respond(&hello, NOW)
                .expect("a hello with a cookie is the same hello");
            agree(&l, &init.finish(&resp).expect("and completes"));
        }
        _ => {
            if caller.psk.is_none() {
                return;
            }
            let Some((init, hello)) = start(&caller) else {
                return;
            };
            let mut pass = PASSPHRASE.as_bytes().to_vec();
            apply(&mut pass, body);
            let pass = String::from_utf8_lossy(&pass).into_owned();
            let same = pass == PASSPHRASE;
            let other = HandshakeConfig {
                psk: Some(Psk::from_passphrase(&pass)),
                ..listener
            };
            // A listener cannot check a passphrase: it always answers.
            let (l, resp) = Responder::new(other)
                .respond(&hello, NOW)
                .expect("a listener must not refuse a passphrase it cannot check");
            match init.finish(&resp) {
                Ok(c) => {
                    assert!(same, "a different passphrase completed");
                    agree(&l, &c);
                }
                Err(e) => {
                    assert!(!same, "the right passphrase failed: {e}");
                    assert_eq!(e, HandshakeError::KeyConfirmation);
                }
            }
        }
    }
});
