//! Online passphrase guessing and forged Rejects, at the session level on virtual time
//! (`common::sim`): the guessers are real caller connections with a wrong passphrase at their
//! own addresses (so they answer cookies like a real attacker), and a guess is a handshake
//! response the listener sent them (each one lets the caller test its passphrase).
//!
//! Old behaviour: 21 guesses a second from one address, ~500 a second from 253 addresses, no
//! back-off; nine forged Rejects in one second ended a caller whose listener was silent.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::sim::{Sim, addr};
use common::{hello_datagram, reject};
use gstpunktfunk::protocol::control::StreamInfo;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::wire::{Header, Kind, RejectReason};
use gstpunktfunk::session::{Config, Event, HandshakeFailure, Mode};

const HOST: usize = 0;

fn host_config() -> Config {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.passphrase = Some("correct horse".into());
    h.stream_info = Some(StreamInfo {
        caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
        ..Default::default()
    });
    h.rng_seed = Some(1);
    h
}

fn caller(pass: &str, seed: u64) -> Config {
    let mut c = Config::new(Role::Client, Mode::Caller);
    c.peer = Some(addr(1));
    c.passphrase = Some(pass.into());
    c.rng_seed = Some(seed);
    c
}

/// A guesser: retries every 50 ms (the rate of the measurement, ~20 hellos a second).
fn guesser(seed: u64) -> Config {
    let mut c = caller("wrong guess", seed);
    c.handshake_retry = Duration::from_millis(50);
    c.handshake_first_retry = Duration::from_millis(50);
    c
}

fn at(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((ip, 40_000))
}

/// Distinct handshake responses the host sent to addresses other than `except`: guesses
/// tested. A hello's identical copy is answered from the listener's cache with the same bytes,
/// which tests nothing new.
fn answers(sim: &Sim, except: Option<SocketAddr>) -> usize {
    let mut seen = std::collections::HashSet::new();
    sim.sent
        .iter()
        .filter(|d| {
            d.from == HOST && Some(d.to) != except && d.bytes[1] == Kind::HandshakeResponse as u8
        })
        .filter(|d| seen.insert(d.bytes.clone()))
        .count()
}

fn new_sim() -> Sim {
    let mut sim = Sim::new(7);
    assert_eq!(sim.add(addr(1), host_config()), HOST);
    sim
}

#[test]
fn one_address_gets_at_most_three_guesses_a_minute() {
    let mut sim = new_sim();
    let g = sim.add(at([198, 51, 100, 7]), guesser(2));
    let mut per_minute = Vec::new();
    for _ in 0..5 {
        let before = answers(&sim, None);
        sim.run_for(Duration::from_secs(60));
        per_minute.push(answers(&sim, None) - before);
    }
    let hellos = sim.conn(g).stats().handshakes_sent;
    eprintln!("answers per minute {per_minute:?} for {hellos} hellos");
    // Four at once, then after 1, 2, 4, 8, 16 and 20 s; then one every 20 s.
    assert!(per_minute[0] <= 10, "{per_minute:?}");
    assert!(per_minute[1..].iter().all(|&n| n <= 3), "{per_minute:?}");
    assert!(hellos > 5_000, "the guesser kept trying: {hellos}");
    // Every answer was a failed guess: counted and never confirmed.
    let s = sim.conn(HOST).stats();
    assert!(!sim.conn(HOST).is_connected());
    assert_eq!(s.handshakes_completed, 0);
    assert!(s.guesses_refused > 1_000, "{}", s.guesses_refused);
    assert!(s.confirmations_failed >= 20, "{}", s.confirmations_failed);
    // Reported, rate-limited: at most one event per 5 s.
    let reports = sim.nodes[HOST]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::HandshakeFailed {
                    reason: HandshakeFailure::GuessLimit { global: false, .. },
                    ..
                }
            )
        })
        .count();
    assert!((1..=61).contains(&reports), "{reports}");
}

/// The flood: 253 loopback addresses. After the first burst (one answer to each new
/// address, and the global burst) they get about one guess a second together.
#[test]
fn many_addresses_together_get_about_one_guess_a_second() {
    let mut sim = new_sim();
    for i in 2..=254u8 {
        let mut c = caller("wrong guess", u64::from(i));
        c.timeout = Duration::from_secs(60);
        sim.add(at([127, 0, 0, i]), c);
    }
    sim.run_for(Duration::from_secs(5));
    let burst = answers(&sim, None);
    sim.run_for(Duration::from_secs(25));
    let after = answers(&sim, None) - burst;
    let hellos: u64 = (1..sim.nodes.len())
        .map(|i| sim.nodes[i].conn.stats().handshakes_sent)
        .sum();
    eprintln!("first 5 s: {burst} answers; next 25 s: {after}; {hellos} hellos in all");
    // The burst: each address's first answer (newcomers) and the global burst of 16, and the
    // global rate over those 5 s.
    assert!(burst <= 253 + 16 + 5, "{burst}");
    // Then the global rate: 1 a second (and the newcomer bucket's 1 a minute).
    assert!(after <= 25 + 2, "{after}");
    assert!(hellos > 20_000, "the flood went on: {hellos}");
}

/// The owner, with the right passphrase, connects within 2 s while 253 addresses guess: at a
/// new address (the newcomer bucket), and at an address it used before even when the flood
/// has spent every shared budget (known sources stand apart).
#[test]
fn the_owner_connects_within_two_seconds_during_a_flood() {
    for (known, newcomer_burst) in [(false, 1_024.0), (true, 0.0)] {
        let mut h = host_config();
        h.rate_limits.guesses.newcomer_burst = newcomer_burst;
        let mut sim = Sim::new(8);
        assert_eq!(sim.add(addr(1), h), HOST);
        let owner_at = at([192, 0, 2, 10]);
        let owner = sim.add(owner_at, caller("correct horse", 99));
        if known {
            // Connected once before the flood, then gone.
            assert!(sim.run_until(Duration::from_secs(2), |s| s.conn(owner).is_connected()));
            sim.nodes[owner].up = false;
        } else {
            sim.nodes[owner].up = false;
        }
        // Spread over one retry interval, so some guesser's hello is always next in line when
        // a token of a shared budget comes free.
        for i in 2..=254u8 {
            sim.add(at([127, 0, 0, i]), caller("wrong guess", u64::from(i)));
            sim.run_for(Duration::from_micros(790));
        }
        // The flood has spent the global burst.
        sim.run_for(Duration::from_secs(5));
        let before = answers(&sim, Some(owner_at));
        sim.restart(owner, caller("correct horse", 100));
        let t0 = sim.now;
        assert!(
            sim.run_until(Duration::from_secs(2), |s| s.conn(owner).is_connected()
                && s.conn(HOST).peer() == Some(owner_at)),
            "known={known}: the owner did not connect within 2 s of virtual time"
        );
        let took = sim.now - t0;
        sim.run_for(Duration::from_secs(5));
        let flood = answers(&sim, Some(owner_at)) - before;
        eprintln!("known={known}: owner connected after {took:?}; flood got {flood} answers");
        assert!(sim.conn(owner).is_connected());
        assert!(flood <= 7 + 2, "{flood}");
    }
}

/// The budget cannot be turned against the owner: an off-path attacker sending guesses with
/// the owner's address as source gets one of them charged to it; after that the address must
/// prove itself with a cookie, which only the owner receives, so the owner still connects at
/// once.
#[test]
fn spoofed_guesses_do_not_lock_the_owners_address() {
    let mut sim = new_sim();
    let owner_at = at([192, 0, 2, 10]);
    let owner = sim.add(owner_at, caller("correct horse", 5));
    assert!(sim.run_until(Duration::from_secs(2), |s| s.conn(owner).is_connected()));
    sim.nodes[owner].up = false;
    // 20 spoofed guesses a second for 10 s.
    for i in 0..200u32 {
        let when = sim.now + Duration::from_millis(50 * u64::from(i));
        let wall = sim.wall() + Duration::from_millis(50 * u64::from(i));
        let ms = wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let d = hello_datagram("wrong guess", ms, i + 1, 1_000 + i);
        sim.inject_at(when, owner_at, addr(1), d);
    }
    let before = answers(&sim, None);
    sim.run_for(Duration::from_secs(10));
    let spoofed_answers = answers(&sim, None) - before;
    assert!(spoofed_answers <= 1, "{spoofed_answers}");
    sim.restart(owner, caller("correct horse", 6));
    assert!(
        sim.run_until(Duration::from_secs(2), |s| s.conn(owner).is_connected()),
        "the owner was locked out by guesses spoofed from its address"
    );
}

/// Answers every hello the client sent since `from` (an index into `sim.sent`) with a forged
/// Reject from the listener's address; returns the new index.
fn forge_rejects(sim: &mut Sim, client: usize, from: usize) -> (usize, u32) {
    let ids: Vec<u32> = sim.sent[from..]
        .iter()
        .filter(|d| d.from == client && d.bytes[1] == Kind::HandshakeInit as u8)
        .map(|d| Header::decode(&d.bytes).unwrap().0.session_id)
        .collect();
    let now = sim.now;
    for &id in &ids {
        sim.inject_at(
            now,
            addr(1),
            addr(2),
            reject(id, RejectReason::BadPassphrase),
        );
    }
    (sim.sent.len(), ids.len() as u32)
}

fn sustained(sim: &Sim, i: usize) -> bool {
    sim.saw(i, |e| matches!(e, Event::RejectSustained { .. }))
}

/// While the listener is silent (not started, restarting), forged Rejects for a second (nine,
/// as in the issue) end nothing: the caller keeps trying. Rejects that go on for its whole
/// `timeout` (3 s) are sustained, and not before.
#[test]
fn forged_rejects_while_the_host_is_silent_end_nothing_before_the_timeout() {
    let mut sim = Sim::new(9);
    let c = sim.add(addr(2), caller("correct horse", 3));
    assert_eq!(sim.conn(c).config().timeout, Duration::from_millis(3000));
    let mut seen = 0;
    let mut forged = 0;
    let t0 = sim.now;
    while sim.now - t0 < Duration::from_millis(1_040) {
        sim.run_for(Duration::from_millis(10));
        let (s, n) = forge_rejects(&mut sim, c, seen);
        seen = s;
        forged += n;
    }
    sim.run_for(Duration::from_millis(10));
    assert!(forged >= 5, "{forged}");
    let s = sim.conn(c).stats();
    assert!(s.rejects_received >= 5, "{}", s.rejects_received);
    assert!(
        !sustained(&sim, c),
        "forged rejects for a second ended the caller"
    );
    assert!(
        sim.saw(c, |e| matches!(e, Event::Rejected { .. })),
        "a hint"
    );
    // The caller goes on trying through the silence.
    let sent = sim.conn(c).stats().handshakes_sent;
    sim.run_for(Duration::from_secs(1));
    assert!(sim.conn(c).stats().handshakes_sent >= sent + 4);
    assert!(!sustained(&sim, c));
    // Rejects that go on: sustained once the series lasts the timeout, not before.
    seen = sim.sent.len();
    let mut sustained_at = None;
    while sim.now - t0 < Duration::from_secs(6) {
        sim.run_for(Duration::from_millis(10));
        seen = forge_rejects(&mut sim, c, seen).0;
        if sustained_at.is_none() && sustained(&sim, c) {
            sustained_at = Some(sim.now - t0);
        }
    }
    let took = sustained_at.expect("rejects past the timeout are sustained");
    assert!(
        took >= Duration::from_millis(3000) && took < Duration::from_millis(3300),
        "{took:?}"
    );
    assert!(
        !sim.conn(c).is_closed(),
        "the connection itself keeps trying"
    );
}
