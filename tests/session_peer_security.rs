//! Who the host streams to, tried as an attacker would: a forwarder on the client's path that
//! races copies of the client's datagrams and relays the host's path challenges (real UDP on
//! loopback, the attacker a socket of its own), a client whose video stops while keep-alives
//! flow (virtual time), and a second client that tries to take over a live one (real UDP), with
//! the opt-in that allows it.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::sim::{Sim, addr};
use common::udp::{bind, client_config, host_config};
use common::{frame_bytes, pump, wait_for};
use gstpunktfunk::protocol::input::InputEvent;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::wire::{Kind, RejectReason};
use gstpunktfunk::session::{DisconnectReason, Event, MEDIA_STALL_AFTER, PEER_PROBE_MAX, Session};
use gstpunktfunk::transport::Transport;

const LONG: Duration = Duration::from_secs(10);

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    s
}

/// What the attacker got from the host.
#[derive(Default)]
struct Loot {
    bytes: AtomicU64,
    video: AtomicU64,
}

/// The network between client and host, with an on-path attacker in it. The client calls
/// `client_side`; the host sees the client at `host_side`. While `attack` is set, every client
/// datagram is first re-sent to the host from the attacker's own socket and then forwarded
/// (the copy wins the race), and whatever the host sends to the attacker is relayed to the
/// client, and the client's datagrams to the attacker back to the host, all from the
/// attacker's address. No spoofing, no blocking.
struct Wire {
    client_side: SocketAddr,
    host_side: SocketAddr,
    loot: Arc<Loot>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Wire {
    fn new(host: SocketAddr, attack: Arc<AtomicBool>) -> Wire {
        let (cs, hs, at) = (udp(), udp(), udp());
        let (client_side, host_side) = (cs.local_addr().unwrap(), hs.local_addr().unwrap());
        let (cs, hs, at) = (Arc::new(cs), Arc::new(hs), Arc::new(at));
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let stop = Arc::new(AtomicBool::new(false));
        let loot = Arc::new(Loot::default());
        let mut threads = Vec::new();
        // Client → host, raced by the attacker's copy.
        {
            let (cs, hs, at, client, stop, attack) = (
                cs.clone(),
                hs.clone(),
                at.clone(),
                client.clone(),
                stop.clone(),
                attack.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = cs.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    if attack.load(Ordering::Relaxed) {
                        let _ = at.send_to(&buf[..n], host);
                    }
                    let _ = hs.send_to(&buf[..n], host);
                }
            }));
        }
        // Host → client on the real path.
        {
            let (cs, hs, client, stop) = (cs.clone(), hs.clone(), client.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = hs.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(c) = *client.lock().unwrap() {
                        let _ = cs.send_to(&buf[..n], c);
                    }
                }
            }));
        }
        // The attacker's socket: host → client and client → host relays, from its address.
        {
            let (at, client, stop, loot) = (at, client, stop.clone(), loot.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = at.recv_from(&mut buf) else {
                        continue;
                    };
                    if from == host {
                        loot.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if buf[1] == Kind::Video as u8 {
                            loot.video.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(c) = *client.lock().unwrap() {
                            let _ = at.send_to(&buf[..n], c);
                        }
                    } else {
                        let _ = at.send_to(&buf[..n], host);
                    }
                }
            }));
        }
        Wire {
            client_side,
            host_side,
            loot,
            stop,
            threads,
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Joins a pump and adds the events still queued in its session.
fn join(s: &Session, pump: JoinHandle<Vec<Event>>) -> Vec<Event> {
    let mut ev = pump.join().unwrap();
    while let Ok(Some(e)) = match s.role() {
        Role::Host => s.poll_input(Duration::ZERO),
        Role::Client => s.poll_frame(Duration::ZERO),
    } {
        ev.push(e);
    }
    ev
}

fn frames(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Frame(_)))
        .count()
}

/// Sends `n` frames of `len` bytes at about 60 per second (the pause paces the source, it
/// synchronises nothing).
fn stream(host: &Session, n: u32, len: usize) -> u32 {
    let mut sent = 0;
    for i in 0..n {
        if host
            .submit_frame(&frame_bytes(len, u64::from(i)), i == 0)
            .unwrap()
            .is_some()
        {
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(16));
    }
    sent
}

/// A forwarder on the client's path. Old behaviour: the host challenged the attacker's address, the client
/// answered the relayed challenge to the attacker, the attacker relayed the answer, and both
/// ends moved to the attacker: 16.5 MB of video went there and the client got 1 of ~187
/// frames. Now the client answers only its listener, the originals arriving as duplicates show
/// the host that the attacker forwards, and the stream stays on the client's path.
#[test]
fn a_forwarder_that_races_the_clients_datagrams_does_not_hijack_the_stream() {
    let host_t = bind();
    let host_addr = host_t.local_addr();
    let host = Session::new(host_config("fw"), host_t).unwrap();
    let attack = Arc::new(AtomicBool::new(false));
    let wire = Wire::new(host_addr, attack.clone());
    let client = Session::new(client_config("fw", wire.client_side), bind()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let cp = pump(client.clone(), stop.clone());
    assert!(wait_for(&host, LONG, |e| matches!(e, Event::Connected { .. })).is_some());
    let hp = pump(host.clone(), stop.clone());
    assert_eq!(host.peer(), Some(wire.host_side));
    stream(&host, 15, 8_000);
    attack.store(true, Ordering::Relaxed);
    // About 3 s of attack.
    let sent = stream(&host, 187, 8_000);
    attack.store(false, Ordering::Relaxed);
    let after = stream(&host, 30, 8_000);
    stop.store(true, Ordering::Relaxed);
    let got = frames(&cp.join().unwrap());
    hp.join().unwrap();
    let hs = host.stats();
    let cs = client.stats();
    let loot_bytes = wire.loot.bytes.load(Ordering::Relaxed);
    let loot_video = wire.loot.video.load(Ordering::Relaxed);
    eprintln!(
        "frames sent {} (attack {sent}), received {got}; to the attacker: {loot_bytes} bytes, \
         {loot_video} video datagrams; host: forwarding detected {}, migrations {}, reverts {}, \
         challenges {}; client: challenges ignored {}, stalls {}",
        15 + sent + after,
        hs.path_forwarding_detected,
        hs.path_migrations,
        hs.path_reverts,
        hs.path_challenges_sent,
        cs.path_challenges_ignored,
        cs.media_stalls,
    );
    assert_eq!(
        host.peer(),
        Some(wire.host_side),
        "the host stays on the path"
    );
    assert_eq!(
        client.peer(),
        Some(wire.client_side),
        "the client keeps its listener"
    );
    assert_eq!(loot_video, 0, "no video to the attacker");
    assert!(hs.path_forwarding_detected >= 1);
    let total = (15 + sent + after) as usize;
    assert!(got * 10 >= total * 9, "{got} of {total} frames");
    assert!(cs.connected && cs.media_stalls == 0);
    drop(wire);
}

const HOST: usize = 0;
const CLIENT: usize = 1;

fn sim_pair(seed: u64) -> Sim {
    let mut h = host_config("st");
    h.rng_seed = Some(1);
    let mut c = client_config("st", addr(1));
    c.rng_seed = Some(2);
    let mut sim = Sim::new(seed);
    assert_eq!(sim.add(addr(1), h), HOST);
    assert_eq!(sim.add(addr(2), c), CLIENT);
    assert!(sim.run_until(LONG, |s| s.conn(HOST).is_connected()
        && s.conn(CLIENT).is_connected()));
    sim
}

/// A forwarder on the client's path, the client's side. Old behaviour: with video gone and keep-alives
/// flowing the client stayed `connected=true` with `frames_lost=0` and said nothing. Now the
/// host's SendProgress shows frames the client never saw: within a second the client posts
/// MediaStalled, counts it and asks for a keyframe; when the stall lasts it handshakes again.
#[test]
fn video_that_stops_while_keepalives_flow_is_noticed_within_a_second() {
    let mut sim = sim_pair(3);
    let frame = frame_bytes(4_000, 1);
    for _ in 0..30 {
        sim.send_frame(HOST, &frame, false);
        sim.run_for(Duration::from_millis(33));
    }
    assert_eq!(frames(&sim.take_events(CLIENT)), 30);
    // Only the video is lost from now on (a path that drops it, a host that sends it
    // elsewhere); control flows both ways.
    let cut = Arc::new(AtomicBool::new(true));
    let c2 = cut.clone();
    sim.drop_script = Some(Box::new(move |from, b| {
        from == HOST && b[1] == Kind::Video as u8 && c2.load(Ordering::Relaxed)
    }));
    let t0 = sim.now;
    let keyframes_before = sim.conn(HOST).stats().keyframe_requests;
    let mut noticed = None;
    while sim.now - t0 < Duration::from_secs(5) {
        sim.send_frame(HOST, &frame, false);
        sim.run_for(Duration::from_millis(33));
        if noticed.is_none() && sim.conn(CLIENT).stats().media_stalls == 1 {
            noticed = Some(sim.now - t0);
        }
        if sim.conn(CLIENT).stats().media_stall_reconnects == 1 {
            break;
        }
    }
    let noticed = noticed.expect("stall noticed");
    eprintln!("stall noticed after {noticed:?}");
    assert!(noticed >= MEDIA_STALL_AFTER && noticed <= Duration::from_secs(1));
    let ev = sim.take_events(CLIENT);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::MediaStalled { frames } if *frames >= 2))
    );
    assert!(sim.conn(HOST).stats().keyframe_requests > keyframes_before);
    assert!(ev.contains(&Event::Disconnected {
        reason: DisconnectReason::MediaStalled
    }));
    // The path heals: the new session delivers again.
    cut.store(false, Ordering::Relaxed);
    assert!(sim.run_until(LONG, |s| s.conn(CLIENT).is_connected()));
    for _ in 0..10 {
        sim.send_frame(HOST, &frame, true);
        sim.run_for(Duration::from_millis(33));
    }
    assert!(frames(&sim.take_events(CLIENT)) >= 9);
    assert_eq!(sim.conn(CLIENT).stats().media_stalls, 1);
}

/// A host that stops sending (a paused pipeline) is no stall.
#[test]
fn a_host_that_sends_nothing_is_no_stall() {
    let mut sim = sim_pair(4);
    let frame = frame_bytes(4_000, 1);
    for _ in 0..10 {
        sim.send_frame(HOST, &frame, false);
        sim.run_for(Duration::from_millis(33));
    }
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.conn(CLIENT).stats().media_stalls, 0);
    assert!(sim.conn(CLIENT).is_connected());
}

/// A client on its own thread that counts frames and disconnects, and sends a key event now
/// and then.
struct Viewer {
    session: Session,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Event>>,
}

impl Viewer {
    fn start(pass: &str, host: SocketAddr) -> Viewer {
        let session = Session::new(client_config(pass, host), bind()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = pump(session.clone(), stop.clone());
        Viewer {
            session,
            stop,
            thread,
        }
    }

    fn finish(self) -> (Session, Vec<Event>) {
        self.stop.store(true, Ordering::Relaxed);
        (self.session, self.thread.join().unwrap())
    }
}

fn key() -> InputEvent {
    InputEvent::Key {
        pressed: true,
        key: "a".into(),
        keycode: 38,
        modifiers: 0,
    }
}

fn host_with(replace_peer: bool) -> (Session, SocketAddr) {
    let t = bind();
    let a = t.local_addr();
    let mut c = host_config("slot");
    c.replace_peer = replace_peer;
    (Session::new(c, t).unwrap(), a)
}

/// A second client taking over. Old behaviour: B reconnecting every 60 ms for 3 s got 49 sessions,
/// 49 key events delivered and 633 video datagrams, and A was disconnected 16 times and got
/// 125 of 250 frames. Now the host asks A first; A answers, so every B is refused as Busy.
#[test]
fn a_live_client_is_not_displaced_by_a_second_one() {
    let (host, host_addr) = host_with(false);
    let a = Viewer::start("slot", host_addr);
    assert!(wait_for(&host, LONG, |e| matches!(e, Event::Connected { .. })).is_some());
    let a_addr = host.peer().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let hp = pump(host.clone(), stop.clone());
    // B: a fresh client every 60 ms for 3 s, each with a key event queued.
    let flood = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut bs = Vec::new();
        while t0.elapsed() < Duration::from_secs(3) {
            let b = Viewer::start("slot", host_addr);
            let _ = b.session.send_input(key());
            std::thread::sleep(Duration::from_millis(60));
            bs.push(b);
        }
        // The last one keeps trying a while, to hear the refusal.
        std::thread::sleep(Duration::from_millis(300));
        bs.into_iter().map(Viewer::finish).collect::<Vec<_>>()
    });
    let sent = stream(&host, 250, 8_000);
    let bs = flood.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let host_events = join(&host, hp);
    let (a_session, a_events) = a.finish();
    let b_sessions: u64 = bs.iter().map(|(s, _)| s.stats().handshakes_completed).sum();
    let b_busy = bs
        .iter()
        .filter(|(_, ev)| {
            ev.contains(&Event::Rejected {
                reason: RejectReason::Busy,
            })
        })
        .count();
    let inputs = host_events
        .iter()
        .filter(|e| matches!(e, Event::Input(_)))
        .count();
    let refused: Vec<SocketAddr> = host_events
        .iter()
        .filter_map(|e| match e {
            Event::PeerRefused { from } => Some(*from),
            _ => None,
        })
        .collect();
    let a_frames = frames(&a_events);
    let a_drops = a_events
        .iter()
        .filter(|e| matches!(e, Event::Disconnected { .. }))
        .count();
    let hs = host.stats();
    eprintln!(
        "B: {} clients, {b_sessions} sessions, {b_busy} heard Busy, {inputs} inputs delivered; \
         A: {a_frames} of {sent} frames, {a_drops} disconnects; host: {} probes, {} refused",
        bs.len(),
        hs.peer_probes,
        hs.peers_refused
    );
    assert_eq!(b_sessions, 0);
    assert_eq!(inputs, 0);
    assert!(b_busy >= 1);
    assert!(!refused.is_empty());
    // Each refusal names a newcomer.
    let b_addrs: Vec<SocketAddr> = bs.iter().map(|(s, _)| s.local_addr()).collect();
    assert!(refused.iter().all(|r| b_addrs.contains(r)), "{refused:?}");
    assert_eq!(a_drops, 0);
    assert!(
        a_frames as u32 * 10 >= sent * 9,
        "A got {a_frames} of {sent}"
    );
    assert_eq!(host.peer(), Some(a_addr));
    assert_eq!(a_session.stats().session_id, hs.session_id);
}

/// A client that stopped answering (hung, crashed) is replaced within a second, as before.
#[test]
fn a_client_that_stopped_answering_is_replaced_within_a_second() {
    let (host, host_addr) = host_with(false);
    let a = Viewer::start("slot", host_addr);
    assert!(wait_for(&host, LONG, |e| matches!(e, Event::Connected { .. })).is_some());
    let a_addr = host.peer().unwrap();
    // A's process hangs: its socket stays open, nothing answers (no bye).
    let (a_session, _) = a.finish();
    let stop = Arc::new(AtomicBool::new(false));
    let hp = pump(host.clone(), stop.clone());
    let t0 = Instant::now();
    let b = Session::new(client_config("slot", host_addr), bind()).unwrap();
    let b_addr = b.local_addr();
    assert!(wait_for(&b, LONG, |e| matches!(e, Event::Connected { .. })).is_some());
    let took = t0.elapsed();
    // The host installs B on B's confirmation, right behind.
    let end = Instant::now() + LONG;
    while host.peer() != Some(b_addr) && Instant::now() < end {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let ev = join(&host, hp);
    eprintln!("replaced after {took:?}");
    assert!(took < PEER_PROBE_MAX, "took {took:?}");
    assert!(ev.contains(&Event::PeerReplaced {
        old: a_addr,
        new: b_addr
    }));
    assert_eq!(host.peer(), Some(b_addr));
    assert_eq!(host.stats().peers_replaced, 1);
    drop(a_session);
}

/// With `replace_peer` (the `replace-peer` property) the last to authenticate wins, at once.
#[test]
fn with_replace_peer_a_newcomer_takes_over_a_live_client() {
    let (host, host_addr) = host_with(true);
    let a = Viewer::start("slot", host_addr);
    assert!(wait_for(&host, LONG, |e| matches!(e, Event::Connected { .. })).is_some());
    let a_addr = host.peer().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let hp = pump(host.clone(), stop.clone());
    let b = Session::new(client_config("slot", host_addr), bind()).unwrap();
    let b_addr = b.local_addr();
    assert!(wait_for(&b, LONG, |e| matches!(e, Event::Connected { .. })).is_some());
    // The host installs B on its confirmation, A still live and answering.
    let end = Instant::now() + LONG;
    let mut moved = false;
    while !moved && Instant::now() < end {
        moved = host.peer() == Some(b_addr);
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let ev = join(&host, hp);
    drop(a.finish());
    assert!(moved);
    assert!(ev.contains(&Event::PeerReplaced {
        old: a_addr,
        new: b_addr
    }));
    assert_eq!(host.stats().peer_probes, 0);
}

/// The same on virtual time: a second client with the passphrase hears Busy while the first
/// answers; once the first goes silent (no bye) the second replaces it within a second.
#[test]
fn one_peer_slot_on_virtual_time() {
    let mut sim = sim_pair(7);
    let mut c = client_config("st", addr(1));
    c.rng_seed = Some(3);
    let b = sim.add(addr(3), c);
    sim.run_for(Duration::from_secs(2));
    assert!(!sim.conn(b).is_connected());
    assert!(sim.saw(b, |e| *e
        == Event::Rejected {
            reason: RejectReason::Busy
        }));
    assert!(sim.saw(HOST, |e| *e == Event::PeerRefused { from: addr(3) }));
    assert_eq!(sim.conn(HOST).peer(), Some(addr(2)));
    assert_eq!(sim.conn(HOST).stats().handshakes_completed, 1);
    // The first client dies.
    sim.nodes[CLIENT].up = false;
    let t0 = sim.now;
    assert!(sim.run_until(LONG, |s| s.conn(HOST).peer() == Some(addr(3))));
    let took = sim.now - t0;
    eprintln!("replaced after {took:?} (virtual)");
    assert!(took < PEER_PROBE_MAX, "{took:?}");
    assert!(sim.saw(HOST, |e| *e
        == Event::PeerReplaced {
            old: addr(2),
            new: addr(3)
        }));
}
