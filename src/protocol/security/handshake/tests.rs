use hkdf::Hkdf;
use sha2::Sha256;

use super::super::cookie::Cookie;
use super::hello::hello_payload_len;
use super::*;
use crate::protocol::security::crypto::AeadBackend;

const NOW: u64 = 1_700_000_000_000;

fn cfg(role: Role, pass: Option<&str>) -> HandshakeConfig {
    HandshakeConfig {
        role,
        psk: pass.map(Psk::from_passphrase),
        encrypt: true,
    }
}

fn hello(c: &HandshakeConfig, at: u64, counter: u32) -> (Initiator, Vec<u8>) {
    let p = HelloParams {
        unix_ms: at,
        counter,
        cookie: None,
    };
    Initiator::start_at(c, &p).unwrap()
}

/// Seals a datagram body with `e`'s send key and opens it with `peer`'s receive key.
fn sealed_datagram_opens(e: &Established, peer: &Established) -> bool {
    let seal = AeadBackend::Ring.make(&e.send_key);
    let open = AeadBackend::Ring.make(&peer.recv_key);
    let mut buf = b"first sealed datagram".to_vec();
    let mut tag = [0u8; 16];
    assert!(seal.seal(0, b"hdr", &mut buf, &mut tag));
    open.open(0, b"hdr", &mut buf, &tag).is_ok()
}

#[test]
fn right_passphrase_interoperates() {
    let mut host = Responder::new(cfg(Role::Host, Some("secret")));
    let client = cfg(Role::Client, Some("secret"));
    let (init, hello) = hello(&client, NOW, 1);
    assert_eq!(hello.len(), HELLO_BODY_LEN);
    let (h, resp) = host.respond(&hello, NOW + 5).unwrap();
    let c = init.finish(&resp).unwrap();
    assert_eq!(h.session_id, c.session_id);
    assert_eq!(h.send_key, c.recv_key);
    assert_eq!(h.recv_key, c.send_key);
    assert_eq!(h.reset_secret, c.reset_secret);
    assert_ne!(h.send_key, h.recv_key);
    assert_eq!(h.peer_role, Role::Client);
    assert_eq!(c.peer_role, Role::Host);
    assert_eq!((h.hello_unix_ms, h.hello_counter), (NOW, 1));
    assert!(c.initiator && !h.initiator);
    // Key confirmation of the caller at the listener: its first sealed datagram opens.
    assert!(sealed_datagram_opens(&c, &h));
    assert!(sealed_datagram_opens(&h, &c));
}

/// A forged or garbled response (anyone who saw the hello knows its
/// attempt id) does not consume the attempt: the real answer still completes it, with
/// and without a passphrase.
#[test]
fn a_failed_response_keeps_the_attempt() {
    for pass in [None, Some("secret")] {
        let client = cfg(Role::Client, pass);
        let (mut init, hello) = hello(&client, NOW, 1);
        let (h, real) = Responder::new(cfg(Role::Host, pass))
            .respond(&hello, NOW)
            .unwrap();
        // A listener with another passphrase, a flipped byte, junk.
        let (_, other) = Responder::new(cfg(Role::Host, pass.map(|_| "guess")))
            .respond(&hello, NOW)
            .unwrap();
        let mut flipped = real.clone();
        *flipped.last_mut().unwrap() ^= 1;
        // (Without a passphrase another listener's answer is as good as any: NN does not
        // authenticate the listener.)
        let mut bad: Vec<&[u8]> = vec![&flipped[..], &real[..10], &[0u8; 3][..]];
        if pass.is_some() {
            bad.insert(0, &other[..]);
        }
        for b in bad {
            assert!(init.try_finish(b).is_err());
        }
        let c = init.try_finish(&real).unwrap();
        assert_eq!((c.send_key, c.session_id), (h.recv_key, h.session_id));
    }
}

#[test]
fn fresh_keys_every_time() {
    let mut host = Responder::new(cfg(Role::Host, Some("secret")));
    let client = cfg(Role::Client, Some("secret"));
    let mut keys = std::collections::HashSet::new();
    for i in 0..20 {
        let (init, hello) = hello(&client, NOW, i);
        let (h, resp) = host.respond(&hello, NOW).unwrap();
        init.finish(&resp).unwrap();
        assert!(keys.insert(h.send_key));
        assert!(keys.insert(h.recv_key));
    }
}

/// A wrong passphrase fails on both sides, and the listener's side
/// of it is invisible on the wire: it answers exactly as it answers the right passphrase
/// (no Reject, same length, same clear bytes), and the caller learns it only because key
/// confirmation fails.
#[test]
fn wrong_passphrase_fails_both_sides_and_looks_like_any_answer() {
    let client = cfg(Role::Client, Some("right"));
    let (init, hello_wrong) = hello(&client, NOW, 1);
    let mut wrong = Responder::new(cfg(Role::Host, Some("wrong")));
    let (h, resp) = wrong.respond(&hello_wrong, NOW).unwrap();
    let (init_ok, hello_ok) = hello(&client, NOW, 2);
    let mut right = Responder::new(cfg(Role::Host, Some("right")));
    let (_, resp_ok) = right.respond(&hello_ok, NOW).unwrap();
    assert_eq!(resp.len(), resp_ok.len());
    assert_eq!(resp[..4], resp_ok[..4], "same clear bytes");
    assert_eq!(
        init.finish(&resp).unwrap_err(),
        HandshakeError::KeyConfirmation
    );
    assert!(init_ok.finish(&resp_ok).is_ok());
    // The listener's candidate session never confirms: nothing the caller could seal with
    // its own keys would open there. Simulate a caller that pressed on with its half.
    let (init2, hello2) = hello(&client, NOW, 3);
    let (h2, resp2) = wrong.respond(&hello2, NOW).unwrap();
    assert!(init2.finish(&resp2).is_err());
    assert_ne!(h.recv_key, h2.recv_key);
}

/// The old construction (Noise NNpsk0, PSK from the passphrase) as a reference attacker:
/// a captured hello's tag depends only on the PSK and public values.
fn old_nnpsk0_hello(passphrase: &str) -> Vec<u8> {
    let psk = old_psk(passphrase);
    let mut hs = Builder::new("Noise_NNpsk0_25519_ChaChaPoly_SHA256".parse().unwrap())
        .prologue(b"punktfunk/1")
        .unwrap()
        .psk(0, &psk)
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut msg = vec![0u8; 256];
    let n = hs.write_message(&[2, 0], &mut msg).unwrap();
    msg.truncate(n);
    msg
}

fn old_psk(passphrase: &str) -> [u8; 32] {
    // The real one was PBKDF2 with a fixed salt: slower, but just as testable.
    let hk = Hkdf::<Sha256>::new(Some(b"punktfunk/1/psk"), passphrase.as_bytes());
    let mut k = [0u8; 32];
    hk.expand(b"", &mut k).unwrap();
    k
}

/// An offline guess against an old hello: run a responder with the guessed PSK.
fn old_guess_matches(captured: &[u8], guess: &str) -> bool {
    let mut hs = Builder::new("Noise_NNpsk0_25519_ChaChaPoly_SHA256".parse().unwrap())
        .prologue(b"punktfunk/1")
        .unwrap()
        .psk(0, &old_psk(guess))
        .unwrap()
        .build_responder()
        .unwrap();
    let mut p = vec![0u8; 256];
    hs.read_message(captured, &mut p).is_ok()
}

/// A captured hello (and even hello + response) gives nothing to
/// test a passphrase guess against offline. Every test an attacker can run from public
/// data comes out the same for the right guess and a wrong one; the same test against the
/// old NNpsk0 hello singles out the right guess.
#[test]
fn captured_hello_gives_no_offline_test_of_a_guess() {
    let guesses = ["hunter2", "right horse battery", "password", "letmein"];
    let real = "right horse battery";

    // Reference: the old hello is an offline oracle.
    let old = old_nnpsk0_hello(real);
    let verdicts: Vec<bool> = guesses.iter().map(|g| old_guess_matches(&old, g)).collect();
    assert_eq!(
        verdicts,
        [false, true, false, false],
        "NNpsk0 hello was testable"
    );

    // New: capture one hello and its answer.
    let client = cfg(Role::Client, Some(real));
    let (init, captured) = hello(&client, NOW, 1);
    let mut host = Responder::new(cfg(Role::Host, Some(real)));
    let (_, captured_resp) = host.respond(&captured, NOW).unwrap();
    init.finish(&captured_resp).unwrap();

    for g in guesses {
        // Test 1: process the hello as a listener holding the guess. Message 1 carries no
        // passphrase-dependent check, so every guess is accepted and answered alike.
        let mut attacker = Responder::new(cfg(Role::Host, Some(g)));
        let (_, r) = attacker
            .respond(&captured, NOW)
            .expect("every guess is taken");
        assert_eq!(r.len(), captured_resp.len());
        assert_eq!(r[..4], captured_resp[..4]);
        // Test 2: the hello's decrypted payload is identical whichever PSK slot a guess
        // would fill: NNpsk2 uses the PSK only after message 1.
        let mut a = cfg(Role::Host, Some(g))
            .build(false, &{
                let mut c = [0u8; 4 + NONCE_LEN];
                c[..4].copy_from_slice(&[HANDSHAKE_VERSION, 3, 2, 0]);
                c[4..].copy_from_slice(&captured[NONCE_AT..NONCE_AT + NONCE_LEN]);
                c
            })
            .unwrap();
        let mut p = [0u8; HELLO_BODY_LEN];
        let n = a
            .read_message(&captured[HELLO_CLEAR_LEN..], &mut p)
            .unwrap();
        assert_eq!(n, hello_payload_len(true));
        assert_eq!(&p[..8], &NOW.to_be_bytes());
        // Test 3: finish the captured answer as a caller holding the guess (the attacker
        // has no secret scalar of the real caller, so it can only start its own): fails
        // for the right guess exactly as for a wrong one.
        let (guesser, _) = hello(&cfg(Role::Client, Some(g)), NOW, 9);
        assert_eq!(
            guesser.finish(&captured_resp).unwrap_err(),
            HandshakeError::KeyConfirmation,
            "guess {g:?}"
        );
    }
    // The only passphrase-dependent value in the hello is SPAKE2's A = x·G + pw·M, which
    // is uniformly random for every pw while x is secret: two hellos with the same
    // passphrase share nothing.
    let (_, h2) = hello(&client, NOW, 1);
    let a1 = &captured[HELLO_CLEAR_LEN + NOISE_KEY_LEN..];
    let a2 = &h2[HELLO_CLEAR_LEN + NOISE_KEY_LEN..];
    assert_ne!(a1[..SPAKE2_MSG_LEN + 12], a2[..SPAKE2_MSG_LEN + 12]);
}

/// Amplification: before the caller's address is validated, nothing
/// the listener sends is larger than the hello it answers.
#[test]
fn every_answer_is_no_larger_than_the_hello() {
    for pass in [None, Some("secret")] {
        let (init, hello) = hello(&cfg(Role::Client, pass), NOW, 1);
        let (_, resp) = Responder::new(cfg(Role::Host, pass))
            .respond(&hello, NOW)
            .unwrap();
        assert!(resp.len() <= RESPONSE_BODY_MAX);
        assert!(HEADER_LEN + resp.len() <= HELLO_DATAGRAM_LEN);
        init.finish(&resp).unwrap();
    }
    // The other answers are checked at compile time (see the `const` assertions).
}

#[test]
fn stale_and_replayed_hellos_are_refused_before_the_pake() {
    let client = cfg(Role::Client, Some("secret"));
    let mut host = Responder::new(cfg(Role::Host, Some("secret")));
    let (_, old) = hello(&client, NOW - HELLO_FRESHNESS_MS - 1, 1);
    assert_eq!(host.respond(&old, NOW).unwrap_err(), HandshakeError::Stale);
    let (_, future) = hello(&client, NOW + HELLO_FRESHNESS_MS + 1, 2);
    assert_eq!(
        host.respond(&future, NOW).unwrap_err(),
        HandshakeError::Stale
    );
    let (init, ok) = hello(&client, NOW - HELLO_FRESHNESS_MS, 3);
    let (_, resp) = host.respond(&ok, NOW).unwrap();
    init.finish(&resp).unwrap();
    // The same hello again (from any address) inside the window: refused, cheaply.
    for _ in 0..100 {
        assert_eq!(
            host.respond(&ok, NOW + 10).unwrap_err(),
            HandshakeError::Stale
        );
    }
    assert_eq!(host.cached_hellos(), 1);
    // The cache forgets hellos once they left the window (bounded memory).
    let (_, later) = hello(&client, NOW + 3 * HELLO_FRESHNESS_MS, 4);
    host.respond(&later, NOW + 3 * HELLO_FRESHNESS_MS).unwrap();
    assert_eq!(host.cached_hellos(), 1);
    // Tampering with the timestamp breaks the transcript: the caller's keys no longer
    // match (NN: the listener reads the edited payload, but the hash differs).
    let nn = cfg(Role::Client, None);
    let (init, mut h) = hello(&nn, NOW, 5);
    h[HELLO_CLEAR_LEN + NOISE_KEY_LEN + 7] ^= 1;
    let (e, resp) = Responder::new(cfg(Role::Host, None))
        .respond(&h, NOW)
        .unwrap();
    assert!(init.finish(&resp).is_err());
    drop(e);
}

#[test]
fn cookie_is_echoed_outside_the_transcript() {
    let client = cfg(Role::Client, Some("secret"));
    let (init, plain) = hello(&client, NOW, 1);
    assert_eq!(peek_hello(&plain).unwrap().cookie, None);
    let c = Cookie([0x5a; COOKIE_LEN]);
    let with = init.hello_with_cookie(&c);
    assert_eq!(with.len(), plain.len());
    let peek = peek_hello(&with).unwrap();
    assert_eq!(peek.cookie, Some(c));
    assert_eq!(
        (peek.role, peek.passphrase, peek.encrypt),
        (Role::Client, true, true)
    );
    // The resent hello completes the same attempt.
    let (h, resp) = Responder::new(cfg(Role::Host, Some("secret")))
        .respond(&with, NOW)
        .unwrap();
    let e = init.finish(&resp).unwrap();
    assert_eq!(e.send_key, h.recv_key);
    // A cookie in the field without the flag is malformed.
    let mut bad = plain.clone();
    bad[COOKIE_AT] = 1;
    assert!(peek_hello(&bad).is_err());
    let p = HelloParams {
        unix_ms: NOW,
        counter: 0,
        cookie: Some(c),
    };
    let (_, direct) = Initiator::start_at(&client, &p).unwrap();
    assert_eq!(peek_hello(&direct).unwrap().cookie, Some(c));
}

#[test]
fn refusals_are_specific_and_never_about_the_passphrase_value() {
    let client = cfg(Role::Client, Some("secret"));
    let (_i, hello) = hello(&client, NOW, 1);
    assert_eq!(
        respond(&cfg(Role::Host, None), &hello, None).unwrap_err(),
        HandshakeError::Refused(RejectReason::PassphraseMismatch)
    );
    assert_eq!(
        respond(&cfg(Role::Client, Some("secret")), &hello, None).unwrap_err(),
        HandshakeError::Refused(RejectReason::RoleMismatch)
    );
    let mut plain = cfg(Role::Host, Some("secret"));
    plain.encrypt = false;
    assert_eq!(
        respond(&plain, &hello, None).unwrap_err(),
        HandshakeError::Refused(RejectReason::EncryptMismatch)
    );
    assert!(respond(&cfg(Role::Host, Some("other")), &hello, None).is_ok());
    // Flipping a clear byte breaks the prologue binding.
    let (init, mut bad) = Initiator::start(&cfg(Role::Client, None), None).unwrap();
    bad[NONCE_AT] ^= 1;
    let (_, resp) = respond(&cfg(Role::Host, None), &bad, None).unwrap();
    assert!(init.finish(&resp).is_err());
    // Wrong lengths are refused before any crypto.
    assert!(matches!(
        respond(&cfg(Role::Host, None), &hello[..HELLO_BODY_LEN - 1], None),
        Err(HandshakeError::Wire(WireError::Truncated))
    ));
    let mut long = hello.clone();
    long.push(0);
    assert!(matches!(
        respond(&cfg(Role::Host, None), &long, None),
        Err(HandshakeError::Wire(WireError::Limit(_)))
    ));
}

#[test]
fn no_passphrase_still_keys_and_legacy_forms_work() {
    let (init, hello) = Initiator::start(&cfg(Role::Client, None), None).unwrap();
    let (h, resp) = respond(&cfg(Role::Host, None), &hello, None).unwrap();
    let c = init.finish(&resp).unwrap();
    assert_eq!(h.send_key, c.recv_key);
    assert_eq!(c.peer_info, None);
    let (init, hello) = Initiator::start(&cfg(Role::Host, Some("p")), None).unwrap();
    let (h, resp) = respond(&cfg(Role::Client, Some("p")), &hello, None).unwrap();
    let c = init.finish(&resp).unwrap();
    assert_eq!(h.recv_key, c.send_key);
}

#[test]
fn garbage_never_panics() {
    for pass in [None, Some("p")] {
        let mut host = Responder::new(cfg(Role::Host, pass));
        for len in 0..300 {
            let g: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let _ = host.respond(&g, NOW);
            let (init, _) = hello(&cfg(Role::Client, pass), NOW, 0);
            let _ = init.finish(&g);
        }
        // Valid framing, random contents.
        let (_, h) = hello(&cfg(Role::Client, pass), NOW, 0);
        for i in HELLO_CLEAR_LEN..HELLO_BODY_LEN {
            let mut b = h.clone();
            b[i] ^= 0x80;
            let _ = respond(&cfg(Role::Host, pass), &b, None);
        }
    }
}
