//! Several clients on one host. Two parts:
//!
//! - **three clients**: `videotestsrc is-live=true pattern=snow` 1280x720@60 → `x264enc
//!   tune=zerolatency speed-preset=ultrafast bitrate=8000 threads=1 key-int-max=120` →
//!   `punktfunksink max-clients=3` (every other property at its default) → the project's relay,
//!   one pair per client → three `punktfunksrc ! h264parse ! avdec_h264` pipelines: one clean,
//!   one at 10 % iid loss both ways, one through a 2 Mbit/s bottleneck (default queue). Per
//!   client: the first picture after it starts (handshake, keyframe request, the encoder's
//!   keyframe) and from its session being up (`punktfunk-peer-connected`) to the first access
//!   unit its src pushes (the keyframe it joins on), split into: until the sink asks the
//!   encoder (a ForceKeyUnit event at x264enc's src pad), until x264enc puts out a keyframe,
//!   and until the client's src pushes it; pictures decoded over the pictures the encoder produced in the same window (from
//!   when all three show pictures to the host's EOS; ±1 picture at each end), the longest gap
//!   between two decoded pictures (a freeze), keyframes it asked for; and the encoder's
//!   bitrate at the end (the slowest client's estimate, floored at `client-bitrate-floor`).
//! - **host CPU**: synthetic 1080p60 frames at 20 Mbit/s (a 300 kB keyframe every 120 frames,
//!   the rest ~41 kB) through a host `Session` on UDP loopback to 1 client (max_clients 1, the
//!   single-peer path), and to 1 and 4 clients (max_clients 4, the fan-out path), each client a
//!   `Session` receiving in its own thread. The host thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`,
//!   sleeps excluded) for sealing (`seal_frames`: reserve, cut, FEC, seal per client) and
//!   sending (`send_frames`: paced sendmmsg per client), per frame and per client.
//!
//! ```text
//! cargo bench --features gst,testing --bench multi_client -- [--seconds N] [--frames N]
//!     [--parts clients,cpu] [--floor KBIT/S (client-bitrate-floor, default 3000)]
//! ```
//!
//! The machine runs other work at the same time: the numbers are what this run measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Mode, Session};
use gstpunktfunk::testkit::impair::{BottleneckConfig, ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::{Relay, RelayConfig, RelayFlow};
use gstpunktfunk::transport::udp::{UdpOptions, UdpTransport};

const FPS: u64 = 60;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let parts = arg("--parts").unwrap_or_else(|| "clients,cpu".into());
    let seconds: u64 = arg("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 20 } else { 3 });
    let frames: u64 = arg("--frames")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 600 } else { 60 });
    if parts.contains("clients") {
        gst::init().expect("GStreamer");
        gstpunktfunk::plugin_register_static().expect("plugin");
        let floor = arg("--floor").and_then(|s| s.parse().ok()).unwrap_or(3000);
        three_clients(seconds, floor);
    }
    if parts.contains("cpu") {
        host_cpu(frames);
    }
}

// ----- three clients -----

/// One client's pipeline and what its decoder produced.
struct Client {
    name: &'static str,
    pipeline: gst::Element,
    /// Decoded pictures, when each came out.
    shown: Arc<Mutex<Vec<Instant>>>,
    /// When it was set to PLAYING.
    started: Instant,
    /// Access units `punktfunksrc` pushed, when each came out (the first is the keyframe it
    /// joined on: the src pushes no delta before it).
    pushed: Arc<Mutex<Vec<Instant>>>,
    /// When its `punktfunk-peer-connected` message was posted (session up).
    connected: Arc<Mutex<Option<Instant>>>,
}

/// When the encoder was asked for a keyframe (a ForceKeyUnit event reaching its src pad from
/// downstream) and when it put out a keyframe.
type Times = Arc<Mutex<Vec<Instant>>>;
fn keyframe_probes(enc_src: &gst::Pad) -> (Times, Times) {
    let asked: Times = Arc::default();
    let out: Times = Arc::default();
    let a = asked.clone();
    enc_src
        .add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data
                && e.structure().is_some_and(|s| s.name() == "GstForceKeyUnit")
            {
                a.lock().unwrap().push(Instant::now());
            }
            gst::PadProbeReturn::Ok
        })
        .expect("probe");
    let o = out.clone();
    enc_src
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
            {
                o.lock().unwrap().push(Instant::now());
            }
            gst::PadProbeReturn::Ok
        })
        .expect("probe");
    (asked, out)
}

/// The first instant in `times` at or after `t`.
fn first_after(times: &Times, t: Instant) -> Option<Instant> {
    times.lock().unwrap().iter().copied().find(|&x| x >= t)
}

/// Records when the pipeline posts `punktfunk-peer-connected` (sync handler: the posting
/// thread's time, not when someone reads the bus).
fn connected_probe(p: &gst::Element) -> Arc<Mutex<Option<Instant>>> {
    let at = Arc::new(Mutex::new(None));
    let a = at.clone();
    p.bus().expect("bus").set_sync_handler(move |_, m| {
        if let gst::MessageView::Element(e) = m.view()
            && e.structure()
                .is_some_and(|s| s.name() == "punktfunk-peer-connected")
        {
            a.lock().unwrap().get_or_insert_with(Instant::now);
        }
        gst::BusSyncReply::Pass
    });
    at
}

fn counting_probe(pad: &gst::Pad) -> Arc<Mutex<Vec<Instant>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        s.lock().unwrap().push(Instant::now());
        gst::PadProbeReturn::Ok
    })
    .expect("probe");
    seen
}

fn pipeline(desc: &str) -> gst::Element {
    gst::parse::launch(desc).unwrap_or_else(|e| panic!("{desc}: {e}"))
}

fn by_name(p: &gst::Element, name: &str) -> gst::Element {
    p.downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name(name))
        .unwrap_or_else(|| panic!("no element {name}"))
}

fn three_clients(seconds: u64, floor_kbps: u32) {
    let host = pipeline(&format!(
        "videotestsrc name=vsrc is-live=true pattern=snow \
         ! video/x-raw,width=1280,height=720,framerate=60/1 \
         ! x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate=8000 threads=1 \
           key-int-max=120 \
         ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! punktfunksink name=sink address=127.0.0.1 port=0 max-clients=3 \
           client-bitrate-floor={floor_kbps}",
    ));
    let sink = by_name(&host, "sink");
    let enc_src = by_name(&host, "enc").static_pad("src").unwrap();
    let encoded = counting_probe(&enc_src);
    let (asked, keyframes_out) = keyframe_probes(&enc_src);
    host.set_state(gst::State::Playing).expect("host plays");
    let port = wait_for(Duration::from_secs(10), || {
        let p = sink.property::<u32>("bound-port");
        (p != 0).then_some(p as u16)
    })
    .expect("host bound");
    let upstream = SocketAddr::from(([127, 0, 0, 1], port));
    let front = SocketAddr::from(([127, 0, 0, 1], 0));
    let iid = |seed| ImpairConfig {
        seed,
        loss: LossModel::Iid(0.10),
        ..ImpairConfig::default()
    };
    let flows = vec![
        RelayFlow {
            listen: front,
            upstream,
            down: ImpairConfig::default(),
            up: ImpairConfig::default(),
        },
        RelayFlow {
            listen: front,
            upstream,
            down: iid(11),
            up: iid(12),
        },
        RelayFlow {
            listen: front,
            upstream,
            down: ImpairConfig {
                bottleneck: Some(BottleneckConfig::new(2_000_000)),
                ..ImpairConfig::default()
            },
            up: ImpairConfig::default(),
        },
    ];
    let relay = Relay::start_with(RelayConfig {
        flows,
        ..RelayConfig::default()
    })
    .expect("relay");
    let names = ["clean", "10 % iid loss", "2 Mbit/s bottleneck"];
    let clients: Vec<Client> = names
        .iter()
        .zip(relay.addrs())
        .map(|(&name, addr)| {
            let p = pipeline(&format!(
                "punktfunksrc name=src address=127.0.0.1 port={} ! h264parse \
                 ! avdec_h264 name=dec ! fakesink sync=false",
                addr.port()
            ));
            let shown = counting_probe(&by_name(&p, "dec").static_pad("src").unwrap());
            let pushed = counting_probe(&by_name(&p, "src").static_pad("src").unwrap());
            let connected = connected_probe(&p);
            let started = Instant::now();
            p.set_state(gst::State::Playing).expect("client plays");
            Client {
                name,
                pipeline: p,
                shown,
                started,
                pushed,
                connected,
            }
        })
        .collect();
    let all_showing = wait_for(Duration::from_secs(20), || {
        clients
            .iter()
            .all(|c| !c.shown.lock().unwrap().is_empty())
            .then_some(())
    });
    if all_showing.is_none() {
        eprintln!("not every client showed a picture within 20 s; measuring anyway");
    }
    // One second of warm-up, then the window; it ends with EOS into the host, which says bye
    // after its last frame, so every picture encoded in the window has had its chance.
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let enc_start = encoded.lock().unwrap().len();
    let shown_start: Vec<usize> = clients
        .iter()
        .map(|c| c.shown.lock().unwrap().len())
        .collect();
    let relay_start: Vec<u64> = (0..3)
        .map(|i| relay.flow_stats(i).map_or(0, |s| s.down.offered_bytes))
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    let bitrate = by_name(&host, "enc").property::<u32>("bitrate");
    let stats = sink.property::<gst::Structure>("stats");
    let src_stats: Vec<gst::Structure> = clients
        .iter()
        .map(|c| by_name(&c.pipeline, "src").property::<gst::Structure>("stats"))
        .collect();
    host.send_event(gst::event::Eos::new());
    let end = Instant::now();
    let host_bus = host.bus().expect("bus");
    let _ = host_bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(5),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    for c in &clients {
        let bus = c.pipeline.bus().expect("bus");
        let _ = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(3),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
    }
    let enc_end = encoded.lock().unwrap().len();
    let produced = (enc_end - enc_start) as f64;
    let window = end - start;
    println!(
        "\n## Three clients, x264 720p60 at 8 Mbit/s, client-bitrate-floor={floor_kbps} ({:.1} s window, {} pictures encoded, \
         {:.1} fps)\n",
        window.as_secs_f64(),
        enc_end - enc_start,
        produced / window.as_secs_f64()
    );
    println!(
        "| client | first picture (ms) | connected → first frame (ms: ask + encoder + deliver) | pictures shown | \
         % of encoded | longest freeze (ms) | keyframe requests | loss % | relay down (kbit/s) | \
         bottleneck drops |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let list: Vec<gst::Structure> = stats
        .get::<gst::Array>("client-list")
        .map(|l| {
            l.iter()
                .filter_map(|v| v.get::<gst::Structure>().ok())
                .collect()
        })
        .unwrap_or_default();
    for (k, c) in clients.iter().enumerate() {
        let shown = c.shown.lock().unwrap();
        let in_window: Vec<Instant> = shown.iter().skip(shown_start[k]).copied().collect();
        let mut gap = Duration::ZERO;
        let mut last = start;
        for t in in_window.iter().copied().filter(|t| *t <= end) {
            gap = gap.max(t.saturating_duration_since(last));
            last = t;
        }
        gap = gap.max(end.saturating_duration_since(last));
        let src_stats = &src_stats[k];
        let flow = relay.flow_stats(k).unwrap_or_default();
        let first = shown.first().map_or(-1.0, |t| {
            t.saturating_duration_since(c.started).as_secs_f64() * 1000.0
        });
        // Join latency: from the session being up to the first access unit the src pushes (the
        // keyframe it joins on), split into the host asking the encoder, the encoder answering,
        // and the keyframe crossing to the client's src.
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
        let join = match (
            *c.connected.lock().unwrap(),
            c.pushed.lock().unwrap().first(),
        ) {
            (Some(up), Some(&pushed)) => {
                let ask = first_after(&asked, up).filter(|&a| a <= pushed);
                let out = ask
                    .and_then(|a| first_after(&keyframes_out, a))
                    .filter(|&o| o <= pushed);
                match (ask, out) {
                    (Some(a), Some(o)) => format!(
                        "{:.1} ({:.1} + {:.1} + {:.1})",
                        ms(up, pushed),
                        ms(up, a),
                        ms(a, o),
                        ms(o, pushed)
                    ),
                    _ => format!("{:.1}", ms(up, pushed)),
                }
            }
            _ => "–".to_string(),
        };
        println!(
            "| {} | {:.0} | {} | {} | {:.2} | {:.0} | {} | {:.1} | {:.0} | {} |",
            c.name,
            first,
            join,
            in_window.len(),
            in_window.len() as f64 * 100.0 / produced.max(1.0),
            gap.as_secs_f64() * 1000.0,
            src_stats.get::<u64>("keyframe-requests").unwrap_or(0),
            src_stats.get::<f64>("loss-percent").unwrap_or(0.0),
            (flow.down.offered_bytes - relay_start[k]) as f64 * 8.0 / window.as_secs_f64() / 1000.0,
            flow.down.queue_dropped,
        );
    }
    println!(
        "\nThe host's view (`stats` client-list at the end of the window):\n\n\
         | id | estimate (kbit/s) | target (kbit/s) | FEC % | loss reported % | repair datagrams | \
         frames held back |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for h in &list {
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            h.get::<u64>("id").unwrap_or(0),
            h.get::<u64>("bwe-estimate").unwrap_or(0) / 1000,
            h.get::<u64>("bwe-target-bitrate").unwrap_or(0) / 1000,
            h.get::<u32>("fec-percent").unwrap_or(0),
            h.get::<f64>("loss-percent").unwrap_or(0.0),
            h.get::<u64>("repair-shards").unwrap_or(0),
            h.get::<u64>("frames-skipped").unwrap_or(0),
        );
    }
    println!(
        "\nencoder bitrate at the end: {bitrate} kbit/s (client-bitrate-floor {floor_kbps}); host \
         keyframes sent (sum over clients): {}; keyframe requests coalesced across clients: {}",
        stats.get::<u64>("keyframes-sent").unwrap_or(0),
        stats.get::<u64>("keyframe-requests-coalesced").unwrap_or(0),
    );
    for c in &clients {
        let _ = c.pipeline.set_state(gst::State::Null);
    }
    let _ = host.set_state(gst::State::Null);
    drop(relay);
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----- host CPU -----

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bind() -> UdpTransport {
    UdpTransport::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).expect("bind")
}

/// Host CPU per frame for `clients` clients on a host with `max_clients`: (seal µs, send µs,
/// datagrams per frame).
fn cpu_row(max_clients: usize, clients: usize, frames: u64) -> (f64, f64, f64) {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.max_clients = max_clients;
    h.passphrase = Some("bench".into());
    let host = Session::new(h, bind()).expect("host");
    host.set_stream_info("video/x-h264").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    {
        let host = host.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = host.poll_input(Duration::from_millis(20));
            }
        }));
    }
    for _ in 0..clients {
        let mut c = Config::new(Role::Client, Mode::Caller);
        c.peer = Some(host.local_addr());
        c.passphrase = Some("bench".into());
        let client = Session::new(c, bind()).expect("client");
        let stop = stop.clone();
        let received = received.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(gstpunktfunk::session::Event::Frame(_))) =
                    client.poll_frame(Duration::from_millis(20))
                {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let connected = wait_for(Duration::from_secs(10), || {
        (host.peers().len() == clients || (max_clients == 1 && host.is_connected())).then_some(())
    });
    assert!(connected.is_some(), "clients did not connect");
    let key = vec![0x5au8; 300_000];
    let delta: Vec<u8> = (0..41_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761u32) >> 13) as u8)
        .collect();
    let (mut seal, mut send, mut datagrams) = (Duration::ZERO, Duration::ZERO, 0usize);
    let interval = Duration::from_micros(1_000_000 / FPS);
    let mut next = Instant::now();
    for n in 0..frames {
        let data = if n % 120 == 0 { &key } else { &delta };
        let keyframe = n % 120 == 0;
        let (t0, t1, t2);
        if max_clients == 1 {
            // The single-peer path as the sink runs it.
            t0 = thread_cpu();
            let sealed = host
                .seal_frame(data, keyframe)
                .expect("seal")
                .expect("a client");
            t1 = thread_cpu();
            datagrams += sealed.datagrams().len();
            host.send_sealed(&sealed).expect("send");
            t2 = thread_cpu();
        } else {
            t0 = thread_cpu();
            let sealed = host.seal_frames(data, keyframe).expect("seal");
            t1 = thread_cpu();
            datagrams += sealed
                .iter()
                .map(|f| f.frame().datagrams().len())
                .sum::<usize>();
            host.send_frames(&sealed).expect("send");
            t2 = thread_cpu();
        }
        seal += t1 - t0;
        send += t2 - t1;
        next += interval;
        let wait = next.saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
    }
    stop.store(true, Ordering::Relaxed);
    host.wake();
    for t in threads {
        let _ = t.join();
    }
    let f = frames as f64;
    (
        seal.as_secs_f64() * 1e6 / f,
        send.as_secs_f64() * 1e6 / f,
        datagrams as f64 / f,
    )
}

fn host_cpu(frames: u64) {
    println!(
        "\n## Host CPU, synthetic 1080p60 at 20 Mbit/s, {frames} frames (host thread CPU time, \
         sleeps excluded)\n"
    );
    println!(
        "| max-clients | clients | seal µs/frame | send µs/frame | total µs/frame | per client µs | per datagram µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut one = None;
    for (max, n) in [(1, 1), (4, 1), (4, 4)] {
        let (seal, send, dgrams) = cpu_row(max, n, frames);
        let total = seal + send;
        if max == 1 {
            one = Some(total);
        }
        println!(
            "| {max} | {n} | {seal:.0} | {send:.0} | {total:.0} | {:.0} | {:.2} |",
            total / n as f64,
            total / dgrams.max(1.0),
        );
        if n == 4
            && let Some(one) = one
        {
            println!(
                "\n4 clients cost {:.2} × one client's host path (target ≤ 4.4 ×)",
                total / one
            );
        }
    }
}
