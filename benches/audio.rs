//! Audio beside the video in one session, over real UDP on loopback, through the test kit's
//! relay ([`gstpunktfunk::testkit::relay`]) where a row impairs the path: synthetic 5 ms Opus-sized packets (60–160 bytes,
//! 200 a second) sent with [`Session::submit_audio`] and taken with [`Session::poll_audio`],
//! default configuration (passphrase set, congestion control on).
//!
//! Rows: no loss, client and host directly on loopback (the added latency of the session
//! alone), also with a synthetic ≈ 20 Mbit/s video (60 fps, 37 kB frames, a 150 kB keyframe
//! every second) in the same session, and through the relay (its two thread hops included);
//! 10 % iid; Gilbert-Elliott bursts enter 1 % / leave 30 % (≈ 3.2 % loss in
//! bursts of 3.3) with no delay; the WAN path (30 ms one way, ± 5 ms jitter, the same bursts
//! on both directions, independently seeded), all through the relay.
//!
//! Per row: packets played (delivered as received or rebuilt from parity; everything else was
//! given up by the receiver's deadline, so a delivered packet is in time by construction),
//! rebuilt, given up, of the packets sent from 1 s after the stream started (the first loss
//! reports size the parity meanwhile) to two blocks before its end; and the added latency
//! submit → `poll_audio` return, p50 / p99 / max (the path's one-way delay included on the WAN
//! row; packets held behind a loss included on the lossy rows).
//!
//! ```text
//! cargo bench --features testing --bench audio -- [--seconds 30] [--rows none,video,relay,iid10,ge,wan]
//!     [--out FILE (default: punktfunk-audio.md in the temporary directory)]
//! cargo bench --features testing --bench audio -- --rows ge --seed 3   # another loss pattern
//! cargo bench --features testing --bench audio -- --sim 1000
//! ```
//!
//! `--sim RUNS`: instead of the rows, a Monte Carlo of the audio protection alone on virtual
//! time: [`AudioSender`] → a Gilbert-Elliott chain per datagram (enter 1 % / leave 30 %, every
//! shard of every packet through it) → [`AudioReceiver`] with its deadline, `RUNS` runs of
//! 6,000 packets (30 s of 5 ms packets, a row's length) with the parity a bursty loss model
//! plans (all of a block). It prints the packets played over all runs, how many runs fell
//! below 99.9 % and the worst run: the spread the 30 s rows only sample.
//!
//! Without `--bench` (as `cargo test --benches` runs it): a 2 s smoke run of every row, into
//! the temporary directory.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::audio::{AudioBody, AudioOutput, AudioReceiver, AudioSender};
use gstpunktfunk::protocol::control::StreamInfo;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Event, Mode, Session};
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::Relay;
use gstpunktfunk::transport::Transport;
use gstpunktfunk::transport::udp::{UdpOptions, UdpTransport};

const PACKET: Duration = Duration::from_millis(5);
/// Packets sent before the measured ones (1 s) and after them (two blocks).
const WARMUP: u64 = 200;
const TAIL: u64 = 16;
const CAPS: &str = "audio/x-opus, rate=48000, channels=2, channel-mapping-family=0";

#[derive(Clone, Copy)]
struct Row {
    name: &'static str,
    label: &'static str,
    loss: fn() -> LossModel,
    delay: Duration,
    jitter: Duration,
    video: bool,
    /// Through the relay (else client → host directly, on loopback).
    relay: bool,
    /// Target share of packets played, and whether the latency targets apply.
    played_target: f64,
    latency_target: bool,
}

fn rows() -> Vec<Row> {
    let ms = Duration::from_millis;
    vec![
        Row {
            name: "none",
            label: "no loss, direct",
            loss: || LossModel::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            video: false,
            relay: false,
            played_target: 99.9,
            latency_target: true,
        },
        Row {
            name: "video",
            label: "no loss, direct, + 20 Mbit/s video",
            loss: || LossModel::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            video: true,
            relay: false,
            played_target: 99.9,
            latency_target: true,
        },
        Row {
            name: "relay",
            label: "no loss, through the relay",
            loss: || LossModel::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            video: false,
            relay: true,
            played_target: 99.9,
            latency_target: false,
        },
        Row {
            name: "iid10",
            label: "10 % iid",
            loss: || LossModel::Iid(0.10),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            video: false,
            relay: true,
            played_target: 99.9,
            latency_target: false,
        },
        Row {
            name: "ge",
            label: "GE 1 %/30 %",
            loss: || LossModel::gilbert(0.01, 0.30),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            video: false,
            relay: true,
            played_target: 99.9,
            latency_target: false,
        },
        Row {
            name: "wan",
            label: "WAN: GE 1 %/30 % both ways, 30 ± 5 ms",
            loss: || LossModel::gilbert(0.01, 0.30),
            delay: ms(30),
            jitter: ms(5),
            video: false,
            relay: true,
            played_target: 99.5,
            latency_target: false,
        },
    ]
}

struct Options {
    seconds: u64,
    rows: Vec<String>,
    out: std::path::PathBuf,
    /// Monte Carlo runs instead of the rows (`--sim`).
    sim_runs: Option<u32>,
    /// Added to every row's impairment seed (`--seed`), for independent repeats of a row.
    seed: u64,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let mut o = Options {
        seconds: if bench { 30 } else { 2 },
        rows: rows().iter().map(|r| r.name.to_owned()).collect(),
        // Never a tracked file by default: the table is pasted into docs/audio.md by hand.
        out: std::env::temp_dir().join("punktfunk-audio.md"),
        sim_runs: None,
        seed: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => o.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(o.seconds),
            "--rows" => {
                if let Some(v) = it.next() {
                    o.rows = v.split(',').map(str::to_owned).collect();
                }
            }
            "--out" => {
                if let Some(v) = it.next() {
                    o.out = v.into();
                }
            }
            "--sim" => o.sim_runs = it.next().and_then(|v| v.parse().ok()),
            "--seed" => o.seed = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    o
}

#[derive(Default)]
struct Result_ {
    sent: u64,
    played: u64,
    recovered: u64,
    lost: u64,
    latencies_us: Vec<u64>,
    parity_percent: u32,
    video_frames: u64,
    /// Time `submit_audio` took, p99 and max (ms).
    submit_p99_ms: f64,
    submit_max_ms: f64,
}

fn bind() -> UdpTransport {
    UdpTransport::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap()
}

fn impair(row: &Row, seed: u64) -> ImpairConfig {
    ImpairConfig {
        seed,
        loss: (row.loss)(),
        delay: row.delay,
        jitter: row.jitter,
        ..ImpairConfig::default()
    }
}

fn packet(i: u64) -> Vec<u8> {
    let len = 60 + (i as usize * 37) % 101;
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn run_row(row: &Row, seconds: u64, seed: u64) -> Result_ {
    let mut hc = Config::new(Role::Host, Mode::Listener);
    hc.passphrase = Some("audio-bench".into());
    hc.stream_info = Some(StreamInfo {
        caps: "video/x-h264, stream-format=byte-stream, alignment=au".into(),
        ..Default::default()
    });
    let host_t = bind();
    let host_addr = host_t.local_addr();
    let host = Session::new(hc, host_t).unwrap();
    host.set_audio_info(CAPS).unwrap();
    let relay = row.relay.then(|| {
        Relay::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            host_addr,
            impair(row, seed),
            impair(row, seed ^ 0x5eed_5eed),
        )
        .expect("relay starts")
    });
    let mut cc = Config::client_caller(relay.as_ref().map_or(host_addr, Relay::addr));
    cc.passphrase = Some("audio-bench".into());
    let client = Session::new(cc, bind()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let spawn_poll = |s: Session, stop: Arc<AtomicBool>, host: bool| {
        std::thread::spawn(move || {
            let mut frames = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = if host {
                    s.poll_input(Duration::from_millis(20))
                } else {
                    s.poll_frame(Duration::from_millis(20))
                };
                match r {
                    Ok(Some(Event::Frame(_))) => frames += 1,
                    Ok(Some(Event::Disconnected { reason })) => {
                        eprintln!(
                            "{} lost its peer: {reason:?}",
                            if host { "host" } else { "client" }
                        )
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            frames
        })
    };
    let host_poll = spawn_poll(host.clone(), stop.clone(), true);
    let video_poll = spawn_poll(client.clone(), stop.clone(), false);

    // Submit instants by sequence number, read by the audio receiver thread. The first
    // WARMUP packets (while the first loss reports size the parity) and the last TAIL (whose
    // block's parity would never leave) are sent but not counted.
    let counted = WARMUP..WARMUP + seconds * 200;
    let total = counted.end + TAIL;
    let submitted: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; total as usize]));
    let audio_rx = {
        let (c, stop, submitted) = (client.clone(), stop.clone(), submitted.clone());
        let counted = counted.clone();
        std::thread::spawn(move || {
            let mut r = Result_::default();
            while !stop.load(Ordering::Relaxed) {
                match c.poll_audio(Duration::from_millis(20)) {
                    Ok(Some(Event::Audio(p))) => {
                        let at = Instant::now();
                        if p.data != packet(p.seq) {
                            panic!("packet {} corrupt", p.seq);
                        }
                        if !counted.contains(&p.seq) {
                            continue;
                        }
                        r.played += 1;
                        r.recovered += p.recovered as u64;
                        let sub = submitted.lock().unwrap().get(p.seq as usize).copied();
                        if let Some(Some(t)) = sub {
                            r.latencies_us.push(at.duration_since(t).as_micros() as u64);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            r
        })
    };

    let start_limit = Instant::now() + Duration::from_secs(10);
    while !host.is_connected() || !client.is_connected() {
        assert!(Instant::now() < start_limit, "no session within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the first loss reports size the parity.
    std::thread::sleep(Duration::from_millis(500));

    let video = row.video.then(|| {
        let (h, stop) = (host.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let interval = Duration::from_nanos(1_000_000_000 / 60);
            let delta = packet(7).repeat(37_000 / 100);
            let key = packet(9).repeat(150_000 / 100);
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let at = start + interval * i;
                if let Some(w) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let keyframe = i.is_multiple_of(60);
                let _ = h.submit_frame(if keyframe { &key } else { &delta }, keyframe);
                i += 1;
            }
        })
    });

    let start = Instant::now();
    let mut submit_us = Vec::new();
    for i in 0..total {
        let at = start + PACKET * i as u32;
        if let Some(w) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let now = Instant::now();
        submitted.lock().unwrap()[i as usize] = Some(now);
        let capture = host.host_clock_us(now);
        host.submit_audio(&packet(i), capture, 5_000).unwrap();
        submit_us.push(now.elapsed().as_micros() as u64);
    }
    // Let the last packets arrive (delay, hold).
    std::thread::sleep(row.delay * 2 + Duration::from_millis(300));
    let hs = host.stats();
    let submit_p99_ms = pct(&mut submit_us, 0.99);
    let submit_max_ms = pct(&mut submit_us, 1.0);
    stop.store(true, Ordering::Relaxed);
    client.wake();
    host.wake();
    let mut r = audio_rx.join().unwrap();
    r.submit_p99_ms = submit_p99_ms;
    r.submit_max_ms = submit_max_ms;
    r.video_frames = video_poll.join().unwrap();
    host_poll.join().unwrap();
    if let Some(v) = video {
        v.join().unwrap();
    }
    r.sent = counted.end - counted.start;
    r.lost = r.sent - r.played;
    r.parity_percent = hs.audio_fec_percent;
    let _ = host.close();
    let _ = client.close();
    r
}

fn pct(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i] as f64 / 1000.0
}

/// One simulated run: `packets` 5 ms packets through a per-datagram Gilbert-Elliott chain
/// (`p` enter, `r` leave, everything lost in the bad state); (played, given up).
fn simulate_run(seed: u64, packets: u64, p: f64, r: f64) -> (u64, u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut tx, mut rx) = (AudioSender::new(), AudioReceiver::new());
    let t0 = Instant::now();
    let (mut bad, mut played, mut lost) = (false, 0, 0);
    let mut bodies = Vec::new();
    let mut tally = |rx: &mut AudioReceiver| {
        while let Some(o) = rx.poll() {
            match o {
                AudioOutput::Packet(_) => played += 1,
                AudioOutput::Lost { count, .. } => lost += u64::from(count),
            }
        }
    };
    for i in 0..packets {
        let now = t0 + Duration::from_micros(i * 5_000);
        rx.handle_timeout(now);
        bodies.clear();
        let data = [i as u8; 160];
        tx.push(
            i * 5_000,
            5_000,
            &data[..60 + (i % 100) as usize],
            |k| k,
            &mut bodies,
        );
        for b in &bodies {
            bad = if bad { uniform() >= r } else { uniform() < p };
            if !bad {
                let _ = rx.push(&AudioBody::decode(b).expect("own body"), now);
            }
        }
        tally(&mut rx);
    }
    rx.handle_timeout(t0 + Duration::from_micros(packets * 5_000) + Duration::from_secs(1));
    tally(&mut rx);
    (played, lost)
}

fn simulate(runs: u32) {
    const PACKETS: u64 = 6_000;
    let (mut played, mut lost, mut below, mut worst) = (0u64, 0u64, 0u32, 100.0f64);
    for run in 0..runs {
        let (p, l) = simulate_run(u64::from(run) + 1, PACKETS, 0.01, 0.30);
        let share = 100.0 * p as f64 / (p + l).max(1) as f64;
        worst = worst.min(share);
        below += u32::from(share < 99.9);
        played += p;
        lost += l;
    }
    println!(
        "sim: {runs} runs of {PACKETS} packets, GE 1 %/30 % per datagram: played {:.4} % ({lost} given up), runs below 99.9 %: {below}, worst run {worst:.3} %",
        100.0 * played as f64 / (played + lost).max(1) as f64
    );
}

fn main() {
    let o = options();
    if let Some(runs) = o.sim_runs {
        simulate(runs);
        return;
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| row | path | sent | played | rebuilt | given up | parity at end | submit → event p50 / p99 / max (ms) | `submit_audio` call p99 / max (ms) | target | met |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut p99_alone = None;
    for (n, row) in rows().iter().enumerate() {
        if !o.rows.iter().any(|r| r == row.name) {
            continue;
        }
        let mut r = run_row(row, o.seconds, 0xa0d1_0000 + n as u64 + (o.seed << 8));
        let played = 100.0 * r.played as f64 / r.sent.max(1) as f64;
        let (p50, p99, max) = (
            pct(&mut r.latencies_us, 0.5),
            pct(&mut r.latencies_us, 0.99),
            pct(&mut r.latencies_us, 1.0),
        );
        let (target, met) = if row.latency_target {
            let base: f64 = if row.video {
                p99_alone.unwrap_or(p99)
            } else {
                p99
            };
            if !row.video {
                p99_alone = Some(p99);
            }
            let lat_ok = p99 <= 2.0 && (!row.video || p99 <= base + 1.0);
            (
                if row.video {
                    format!(
                        "p99 ≤ 2 ms and ≤ alone + 1 ms ({:.2}); ≥ 99.9 %",
                        base + 1.0
                    )
                } else {
                    "p99 ≤ 2 ms; ≥ 99.9 %".to_owned()
                },
                lat_ok && played >= row.played_target,
            )
        } else {
            (
                format!("≥ {} % played", row.played_target),
                played >= row.played_target,
            )
        };
        let line = format!(
            "| {} | {} | {} | {:.3} % | {} | {} | {} % | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {} | {} |{}",
            row.name,
            row.label,
            r.sent,
            played,
            r.recovered,
            r.lost,
            r.parity_percent,
            p50,
            p99,
            max,
            r.submit_p99_ms,
            r.submit_max_ms,
            target,
            if met { "yes" } else { "**no**" },
            if row.video {
                format!(" ({} video frames delivered)", r.video_frames)
            } else {
                String::new()
            }
        );
        println!("{line}");
        let _ = writeln!(md, "{line}");
    }
    std::fs::write(&o.out, &md).expect("write the table");
    println!("table written to {}", o.out.display());
}
