//! Session behaviour over the in-memory transport: connection, frames byte-exact, wrong role,
//! wrong passphrase, replays, nonce freshness across restarts, restarts of either side.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Recorder, frame_bytes, pump, wait_for};
use gstpunktfunk::protocol::handshake::Role;
use gstpunktfunk::protocol::input::InputEvent;
use gstpunktfunk::protocol::wire::{Header, Kind, RejectReason};
use gstpunktfunk::session::{Config, Error, Event, HandshakeFailure, Mode, Session};
use gstpunktfunk::transport::memory::MemoryTransport;

const LONG: Duration = Duration::from_secs(10);

fn configs(pass: Option<&str>) -> (Config, Config) {
    let mut host = Config::new(Role::Host, Mode::Listener);
    host.passphrase = pass.map(str::to_owned);
    host.stream_info = Some(gstpunktfunk::protocol::control::StreamInfo {
        caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
        ..Default::default()
    });
    let mut client = Config::new(Role::Client, Mode::Caller);
    // The memory pair's first end has the fake address 127.0.0.1:1.
    client.peer = Some("127.0.0.1:1".parse().unwrap());
    client.passphrase = pass.map(str::to_owned);
    (host, client)
}

/// Polls both ends until the host sees the client connected; returns the client's events.
fn connect(host: &Session, client: &Session) -> Vec<Event> {
    let stop = Arc::new(AtomicBool::new(false));
    let h = pump(client.clone(), stop.clone());
    let ev = wait_for(host, LONG, |e| matches!(e, Event::Connected { .. }));
    stop.store(true, Ordering::Relaxed);
    let evs = h.join().unwrap();
    assert!(ev.is_some(), "host never saw the client");
    assert!(client.is_connected());
    evs
}

#[test]
fn frames_arrive_byte_exact_and_stream_info_first() {
    let (a, b) = MemoryTransport::pair();
    let (hc, cc) = configs(Some("pw"));
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    let early = connect(&host, &client);
    let frames: Vec<Vec<u8>> = (0..50)
        .map(|i| frame_bytes(1 + i * 3001, i as u64))
        .collect();
    for (i, f) in frames.iter().enumerate() {
        let sent = host.submit_frame(f, i % 10 == 0).unwrap();
        assert!(sent.is_some());
    }
    let mut got = Vec::new();
    let mut info = early.iter().find_map(|e| match e {
        Event::StreamInfo(i) => Some(i.clone()),
        _ => None,
    });
    let end = Instant::now() + LONG;
    while got.len() < frames.len() && Instant::now() < end {
        match client.poll_frame(Duration::from_millis(50)).unwrap() {
            Some(Event::Frame(f)) => {
                assert!(
                    info.is_some(),
                    "stream info must come before the first frame"
                );
                got.push(f)
            }
            Some(Event::StreamInfo(i)) => {
                assert!(info.is_none(), "stream info twice: {i:?}");
                info = Some(i);
            }
            _ => {}
        }
    }
    assert_eq!(got.len(), frames.len());
    for (i, (g, f)) in got.iter().zip(&frames).enumerate() {
        assert_eq!(&g.data, f, "frame {i}");
        assert_eq!(g.keyframe, i % 10 == 0);
    }
    assert!(info.unwrap().caps.starts_with("video/x-h264"));
    let s = client.stats();
    assert_eq!(s.frames_received, 50);
    assert_eq!(s.frames_lost, 0);
    assert_eq!(host.stats().frames_sent, 50);
}

#[test]
fn wrong_role_is_invalid_arg() {
    let (a, b) = MemoryTransport::pair();
    let (hc, cc) = configs(None);
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    assert!(matches!(
        host.poll_frame(Duration::ZERO),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(
        host.send_input(InputEvent::TouchFrame),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(host.request_keyframe(), Err(Error::InvalidArg(_))));
    assert!(matches!(
        client.poll_input(Duration::ZERO),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(
        client.submit_frame(&[1], true),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(
        client.seal_frame(&[1], true),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(
        client.set_stream_info("x"),
        Err(Error::InvalidArg(_))
    ));
    // And a caller without an address, plaintext with a passphrase: refused up front.
    let mut bad = Config::new(Role::Client, Mode::Caller);
    bad.peer = None;
    assert!(matches!(
        Session::new(bad, MemoryTransport::pair().0),
        Err(Error::InvalidArg(_))
    ));
    let mut bad = Config::host_listener();
    bad.encrypt = false;
    bad.passphrase = Some("x".into());
    assert!(matches!(
        Session::new(bad, MemoryTransport::pair().0),
        Err(Error::InvalidArg(_))
    ));
}

#[test]
fn wrong_passphrase_yields_no_session_and_a_clear_reason() {
    let (a, b) = MemoryTransport::pair();
    let (hc, _) = configs(Some("right"));
    let (_, cc) = configs(Some("wrong"));
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let hp = pump(host.clone(), stop.clone());
    let ev = wait_for(&client, LONG, |e| matches!(e, Event::Rejected { .. }));
    // Keep trying a little: still nothing.
    assert_eq!(
        ev,
        Some(Event::Rejected {
            reason: RejectReason::BadPassphrase
        })
    );
    assert!(
        wait_for(&client, Duration::from_millis(300), |e| matches!(
            e,
            Event::Connected { .. } | Event::Frame(_)
        ))
        .is_none()
    );
    assert!(
        host.submit_frame(&[1, 2, 3], true).unwrap().is_none(),
        "no client to send to"
    );
    stop.store(true, Ordering::Relaxed);
    let host_events = hp.join().unwrap();
    assert!(
        host_events
            .iter()
            .any(|e| matches!(e, Event::HandshakeFailed { reason, .. }
        if *reason == HandshakeFailure::Refused(RejectReason::BadPassphrase)
            && reason.to_string().contains("wrong passphrase")))
    );
    assert!(
        !host_events
            .iter()
            .any(|e| matches!(e, Event::Connected { .. }))
    );
    let hs = host.stats();
    assert!(hs.auth_failures >= 1 && hs.handshake_failures >= 1);
    assert_eq!(hs.handshakes_completed, 0);
    assert!(!client.is_connected());
    assert_eq!(client.stats().frames_received, 0);
    assert!(client.stats().rejects_received >= 1);
}

#[test]
fn replayed_video_control_and_input_are_rejected_and_counted() {
    let (a, b) = MemoryTransport::pair();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (host_rec, host_sent) = Recorder::new(a.clone());
    let (client_rec, client_sent) = Recorder::new(b.clone());
    let (hc, cc) = configs(Some("pw"));
    let host = Session::new(hc, host_rec).unwrap();
    let client = Session::new(cc, client_rec).unwrap();
    connect(&host, &client);

    // Video: three frames, received once.
    for i in 0..3 {
        host.submit_frame(&frame_bytes(5000, i), true).unwrap();
    }
    let mut frames = 0;
    while wait_for(&client, Duration::from_millis(300), |e| {
        matches!(e, Event::Frame(_))
    })
    .is_some()
    {
        frames += 1;
    }
    assert_eq!(frames, 3);
    // Input: two events, delivered once.
    client
        .send_input(InputEvent::Key {
            pressed: true,
            key: "a".into(),
            keycode: 97,
            modifiers: 0,
        })
        .unwrap();
    client
        .send_input(InputEvent::Key {
            pressed: false,
            key: "a".into(),
            keycode: 97,
            modifiers: 0,
        })
        .unwrap();
    let mut inputs = 0;
    while wait_for(&host, Duration::from_millis(300), |e| {
        matches!(e, Event::Input(_))
    })
    .is_some()
    {
        inputs += 1;
    }
    assert_eq!(inputs, 2);

    // Replay everything each side ever sent.
    let replay_host: Vec<_> = host_sent.lock().unwrap().clone();
    let replay_client: Vec<_> = client_sent.lock().unwrap().clone();
    let kinds = |v: &Vec<(Vec<u8>, std::net::SocketAddr)>, k: Kind| {
        v.iter()
            .filter(|(d, _)| Header::decode(d).map(|h| h.0.kind == k).unwrap_or(false))
            .count()
    };
    assert!(kinds(&replay_host, Kind::Video) > 0 && kinds(&replay_host, Kind::Control) > 0);
    assert!(kinds(&replay_client, Kind::Input) > 0 && kinds(&replay_client, Kind::Control) > 0);
    let before_c = client.stats().replays_rejected;
    let before_h = host.stats().replays_rejected;
    for (d, to) in &replay_host {
        a.send(&[d], *to).unwrap();
    }
    for (d, to) in &replay_client {
        b.send(&[d], *to).unwrap();
    }
    // Nothing new comes out of either side.
    assert!(
        wait_for(&client, Duration::from_millis(300), |e| matches!(
            e,
            Event::Frame(_)
        ))
        .is_none()
    );
    assert!(
        wait_for(&host, Duration::from_millis(300), |e| matches!(
            e,
            Event::Input(_) | Event::KeyframeRequest
        ))
        .is_none()
    );
    let session_kinds = |v: &Vec<(Vec<u8>, std::net::SocketAddr)>| {
        v.iter()
            .filter(|(d, _)| {
                Header::decode(d)
                    .map(|h| h.0.kind.is_session())
                    .unwrap_or(false)
            })
            .count() as u64
    };
    assert_eq!(
        client.stats().replays_rejected - before_c,
        session_kinds(&replay_host)
    );
    assert!(host.stats().replays_rejected - before_h >= session_kinds(&replay_client));
    assert_eq!(client.stats().frames_received, 3);
    assert_eq!(host.stats().input_received, 2);
}

use gstpunktfunk::transport::Transport;

#[test]
fn host_restart_never_reuses_key_nonce_and_recovers_within_a_second() {
    let (a, b) = MemoryTransport::pair();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (hc, cc) = configs(Some("same passphrase"));
    let client = Session::new(cc, b.clone()).unwrap();

    let mut sessions = Vec::new();
    let mut first_datagrams = Vec::new();
    for round in 0..3 {
        let (rec, sent) = Recorder::new(a.clone());
        let host = Session::new(hc.clone(), rec).unwrap();
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let hp = pump(host.clone(), stop.clone());
        // The client notices the restart (or connects the first time) and resynchronises.
        let frame = frame_bytes(20_000, 77);
        let got = {
            let end = Instant::now() + LONG;
            let mut got = None;
            while got.is_none() && Instant::now() < end {
                if host.is_connected() {
                    host.submit_frame(&frame, true).unwrap();
                }
                if let Some(Event::Frame(f)) = wait_for(&client, Duration::from_millis(20), |e| {
                    matches!(e, Event::Frame(_))
                }) {
                    got = Some(f);
                }
            }
            got
        };
        let recovered = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        hp.join().unwrap();
        assert_eq!(got.expect("frame after restart").data, frame);
        if round > 0 {
            assert!(
                recovered < Duration::from_secs(1),
                "round {round}: recovery took {recovered:?}"
            );
        }
        // The first video datagram of this host: same plaintext, same packet number
        // positions across rounds, so equal ciphertext would mean a reused (key, nonce).
        let v: Vec<Vec<u8>> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, _)| {
                Header::decode(d)
                    .map(|h| h.0.kind == Kind::Video)
                    .unwrap_or(false)
            })
            .map(|(d, _)| d.clone())
            .collect();
        first_datagrams.push(v);
        sessions.push(client.stats().session_id);
        drop(host);
    }
    // Distinct sessions, and no two datagrams with the same (session, packet number) share
    // ciphertext across restarts.
    assert_eq!(
        sessions
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );
    let mut seen = std::collections::HashMap::new();
    for round in &first_datagrams {
        for d in round {
            let (h, _) = Header::decode(d).unwrap();
            let ct = d[16..].to_vec();
            assert!(
                seen.insert(ct, h.packet_number).is_none(),
                "ciphertext repeated"
            );
        }
    }
}

#[test]
fn client_restart_recovers_within_a_second() {
    let (a, b) = MemoryTransport::pair();
    let b = Arc::new(b);
    let (hc, cc) = configs(None);
    let host = Session::new(hc, a).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let client1 = Session::new(cc.clone(), b.clone()).unwrap();
    connect(&host, &client1);
    drop(client1);
    let t0 = Instant::now();
    let client2 = Session::new(cc, b.clone()).unwrap();
    let cp = {
        let c = client2.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + LONG;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if let Ok(Some(Event::Frame(f))) = c.poll_frame(Duration::from_millis(10)) {
                    return Some(f);
                }
            }
            None
        })
    };
    let frame = frame_bytes(3000, 1);
    let end = Instant::now() + LONG;
    while !cp.is_finished() && Instant::now() < end {
        let _ = host.poll_input(Duration::from_millis(10));
        host.submit_frame(&frame, true).unwrap();
    }
    let f = cp.join().unwrap().expect("frame at restarted client");
    assert_eq!(f.data, frame);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    assert!(host.stats().handshakes_completed >= 2);
}

#[test]
fn host_bye_ends_the_client_stream() {
    let (a, b) = MemoryTransport::pair();
    let (hc, cc) = configs(None);
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    connect(&host, &client);
    host.close().unwrap();
    assert!(wait_for(&client, LONG, |e| matches!(e, Event::EndOfStream)).is_some());
}

#[test]
fn peer_timeout_is_reported() {
    let (a, b) = MemoryTransport::pair();
    let (mut hc, mut cc) = configs(None);
    hc.timeout = Duration::from_millis(300);
    cc.timeout = Duration::from_millis(300);
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    connect(&host, &client);
    drop(client);
    let ev = wait_for(&host, LONG, |e| matches!(e, Event::Disconnected { .. }));
    assert!(ev.is_some());
    assert!(!host.is_connected());
}

#[test]
fn keyframe_requests_are_throttled_and_arrive() {
    let (a, b) = MemoryTransport::pair();
    let (hc, cc) = configs(None);
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    connect(&host, &client);
    assert!(client.request_keyframe().unwrap());
    assert!(
        !client.request_keyframe().unwrap(),
        "second request within the interval is throttled"
    );
    assert!(wait_for(&host, LONG, |e| matches!(e, Event::KeyframeRequest)).is_some());
    assert_eq!(host.stats().keyframe_requests, 1);
}

#[test]
fn ring_and_aes_gcm_backends_interoperate_in_a_session() {
    let (a, b) = MemoryTransport::pair();
    let (mut hc, cc) = configs(Some("pw"));
    // The client keeps the default (ring); the host uses the aes-gcm crate.
    hc.aead = gstpunktfunk::protocol::crypto::AeadBackend::AesGcm;
    let host = Session::new(hc, a).unwrap();
    let client = Session::new(cc, b).unwrap();
    connect(&host, &client);
    let frame = frame_bytes(40_000, 5);
    host.submit_frame(&frame, true).unwrap();
    match wait_for(&client, LONG, |e| matches!(e, Event::Frame(_))) {
        Some(Event::Frame(f)) => assert_eq!(f.data, frame),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.stats().auth_failures, 0);
}
