//! The Rust API of a host with several clients, over real UDP on loopback (ephemeral ports):
//! one `submit_frame` reaches every client, `peers` lists them with their own counters,
//! `poll_peer_event` names them, `disconnect_peer` ends one client's stream and
//! `give_input_control` moves input between them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::udp::{bind, client_config, host_config};
use gstpunktfunk::protocol::input::InputEvent;
use gstpunktfunk::session::{Event, InputFrom, Session};

const LIMIT: Duration = Duration::from_secs(10);

fn key(code: u32) -> InputEvent {
    InputEvent::Key {
        pressed: true,
        key: "a".into(),
        keycode: code,
        modifiers: 0,
    }
}

/// A client session polling on its own thread; every event goes to the channel.
fn client(host: &Session) -> (Session, mpsc::Receiver<Event>) {
    let c = Session::new(client_config("pw", host.local_addr()), bind()).unwrap();
    let (tx, rx) = mpsc::channel();
    let polled = c.clone();
    std::thread::spawn(move || {
        loop {
            match polled.poll_frame(Duration::from_millis(20)) {
                Ok(Some(ev)) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
    });
    (c, rx)
}

/// Waits for an event `pred` accepts on `rx`.
fn wait(rx: &mpsc::Receiver<Event>, pred: impl Fn(&Event) -> bool) -> bool {
    let end = Instant::now() + LIMIT;
    while let Ok(ev) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if pred(&ev) {
            return true;
        }
    }
    false
}

#[test]
fn one_host_session_serves_two_clients() {
    let mut cfg = host_config("pw");
    cfg.max_clients = 2;
    cfg.input_from = InputFrom::First;
    let host = Session::new(cfg, bind()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (hev_tx, hev_rx) = mpsc::channel();
    let polled = host.clone();
    let stopped = stop.clone();
    let host_thread = std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            if let Ok(Some(ev)) = polled.poll_peer_event(Duration::from_millis(20)) {
                let _ = hev_tx.send(ev);
            }
        }
    });
    let (a, a_rx) = client(&host);
    let (b, b_rx) = client(&host);
    // Both clients' sessions are up once the host names them in two Connected events.
    let mut named = Vec::new();
    while named.len() < 2 {
        let ev = hev_rx.recv_timeout(LIMIT).expect("two clients connect");
        if matches!(ev.event, Event::Connected { .. }) {
            named.push((ev.peer.unwrap(), ev.addr.unwrap()));
        }
    }
    assert_ne!(named[0].0, named[1].0);
    assert_eq!(host.peers().len(), 2);

    // One submit, both clients get the frame, byte-exact.
    let frame: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let report = host
        .submit_frame(&frame, true)
        .unwrap()
        .expect("clients connected");
    assert!(report.sent > 0);
    for rx in [&a_rx, &b_rx] {
        assert!(wait(
            rx,
            |e| matches!(e, Event::Frame(f) if f.data == frame)
        ));
    }
    let peers = host.peers();
    assert!(peers.iter().all(|p| p.stats.frames_sent == 1));
    assert_eq!(host.stats().frames_sent, 2);

    // Input: only the first client's.
    let first = host.input_controller().expect("the first client controls");
    let (ctl, watcher) = if peers[0].addr == a.local_addr() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(peers[0].id, first);
    watcher.send_input(key(2)).unwrap();
    ctl.send_input(key(1)).unwrap();
    let end = Instant::now() + LIMIT;
    let mut inputs = Vec::new();
    while inputs.is_empty() && Instant::now() < end {
        if let Ok(ev) = hev_rx.recv_timeout(Duration::from_millis(50))
            && let Event::Input(i) = ev.event
        {
            inputs.push((ev.peer, i));
        }
    }
    assert_eq!(inputs, vec![(Some(first), key(1))]);

    // Hand-over, then disconnect the first client: its stream ends.
    assert!(host.give_input_control(peers[1].id).unwrap());
    assert_eq!(host.input_controller(), Some(peers[1].id));
    assert!(host.disconnect_peer(first).unwrap());
    let first_rx = if peers[0].addr == a.local_addr() {
        &a_rx
    } else {
        &b_rx
    };
    assert!(wait(first_rx, |e| *e == Event::EndOfStream));
    assert_eq!(host.peers().len(), 1);
    stop.store(true, Ordering::Relaxed);
    host.wake();
    host_thread.join().unwrap();
}
