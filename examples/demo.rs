//! The punktfunk demo: a real stream in one process, over real UDP on 127.0.0.1.
//!
//! ```text
//! videotestsrc ! x264enc ! punktfunksink  →  relay (5 % loss)  →  punktfunksrc ! h264parse ! avdec_h264 ! sink
//! ```
//! Live stats every second, a summary at the end. Headless by default (`fakesink`); `--window`
//! shows the video with `autovideosink` (headless, with a note, when there is no display). Options: `--seconds N` (default 10), `--loss P`
//! (default 0.05), `--burst N` (Gilbert-Elliott bursts of mean length N), `--fec P` (default 20),
//! `--bitrate KBPS` (default 8000), `--size WxH` (default 1280x720), `--fps N` (default 60),
//! `--passphrase S` (default "punktfunk-demo"), `--hevc` (x265enc / avdec_h265).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::Relay;

#[path = "common/display.rs"]
mod display;

struct Opts {
    seconds: u64,
    loss: f64,
    burst: Option<f64>,
    fec: u32,
    bitrate: u32,
    width: u32,
    height: u32,
    fps: u32,
    passphrase: String,
    hevc: bool,
    window: bool,
}

fn parse() -> Opts {
    let mut o = Opts {
        seconds: 10,
        loss: 0.05,
        burst: None,
        fec: 20,
        bitrate: 8000,
        width: 1280,
        height: 720,
        fps: 60,
        passphrase: "punktfunk-demo".into(),
        hevc: false,
        window: false,
    };
    let mut it = std::env::args().skip(1);
    let bad = |f: &str| -> ! {
        eprintln!("demo: bad or missing value for {f} (see the doc comment in examples/demo.rs)");
        std::process::exit(2)
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--window" => o.window = true,
            "--hevc" => o.hevc = true,
            _ => {
                let v = it.next().unwrap_or_else(|| bad(&flag));
                match flag.as_str() {
                    "--seconds" => o.seconds = v.parse().unwrap_or_else(|_| bad(&flag)),
                    "--loss" => o.loss = v.parse().unwrap_or_else(|_| bad(&flag)),
                    "--burst" => o.burst = Some(v.parse().unwrap_or_else(|_| bad(&flag))),
                    "--fec" => o.fec = v.parse().unwrap_or_else(|_| bad(&flag)),
                    "--bitrate" => o.bitrate = v.parse().unwrap_or_else(|_| bad(&flag)),
                    "--fps" => o.fps = v.parse().unwrap_or_else(|_| bad(&flag)),
                    "--passphrase" => o.passphrase = v,
                    "--size" => {
                        let (w, h) = v.split_once('x').unwrap_or_else(|| bad(&flag));
                        o.width = w.parse().unwrap_or_else(|_| bad(&flag));
                        o.height = h.parse().unwrap_or_else(|_| bad(&flag));
                    }
                    _ => bad(&flag),
                }
            }
        }
    }
    o
}

fn counter(pad: &gst::Pad) -> Arc<AtomicU64> {
    let c = Arc::new(AtomicU64::new(0));
    let c2 = c.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c2.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    c
}

fn stat(s: &gst::StructureRef, name: &str) -> u64 {
    s.get::<u64>(name).unwrap_or(0)
}

fn main() {
    let mut o = parse();
    if let Err(e) = gst::init() {
        eprintln!("demo: GStreamer failed to initialise: {e}");
        std::process::exit(1);
    }
    if let Err(e) = gstpunktfunk::plugin_register_static() {
        eprintln!("demo: cannot register the punktfunk plugin: {e}");
        std::process::exit(1);
    }
    let (enc, caps, parse, dec) = if o.hevc {
        (
            format!(
                "x265enc tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={}",
                o.bitrate,
                o.fps * 2
            ),
            "video/x-h265,stream-format=byte-stream,alignment=au",
            "h265parse",
            "avdec_h265",
        )
    } else {
        (
            format!(
                "x264enc tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={}",
                o.bitrate,
                o.fps * 2
            ),
            "video/x-h264,stream-format=byte-stream,alignment=au",
            "h264parse",
            "avdec_h264",
        )
    };
    let host = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={},height={},framerate={}/1 \
         ! timeoverlay ! {enc} ! {caps} ! punktfunksink name=sink port=0 fec-percent={} \
         passphrase={}",
        o.width, o.height, o.fps, o.fec, o.passphrase
    ))
    .unwrap_or_else(|e| {
        eprintln!(
            "demo: cannot build the host pipeline (are gstreamer1.0-plugins-ugly installed?): {e}"
        );
        std::process::exit(1)
    })
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let sink = host.by_name("sink").expect("sink");
    host.set_state(gst::State::Playing)
        .expect("host pipeline failed to start");
    let port: u32 = sink.property("bound-port");
    let upstream = format!("127.0.0.1:{port}").parse().expect("address");
    let loss = match o.burst {
        _ if o.loss <= 0.0 => LossModel::None,
        Some(b) => LossModel::bursts(o.loss, b),
        None => LossModel::Iid(o.loss),
    };
    let relay = Relay::start(
        "127.0.0.1:0".parse().expect("literal"),
        upstream,
        ImpairConfig {
            seed: 7,
            loss,
            ..ImpairConfig::default()
        },
        ImpairConfig::default(),
    )
    .expect("relay");
    if o.window
        && let Some(why) = display::missing_display_here()
    {
        eprintln!("demo: no display ({why}): --window ignored, running headless");
        o.window = false;
    }
    let video_sink = if o.window {
        "videoconvert ! autovideosink sync=false"
    } else {
        "fakesink sync=false"
    };
    let client = gst::parse::launch(&format!(
        "punktfunksrc name=src address=127.0.0.1 port={} passphrase={} ! {parse} ! {dec} name=dec \
         ! {video_sink}",
        relay.addr().port(),
        o.passphrase
    ))
    .expect("client pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = client.by_name("src").expect("src");
    let dec = client.by_name("dec").expect("decoder");
    let encoded = counter(&sink.static_pad("sink").expect("sink pad"));
    let decoded = counter(&dec.static_pad("src").expect("decoder src pad"));
    client
        .set_state(gst::State::Playing)
        .expect("client pipeline failed to start");

    println!(
        "punktfunk demo: {}x{}@{} {} kbit/s {} → sink :{port} → relay {} ({:.1} % loss{}) → src → {}",
        o.width,
        o.height,
        o.fps,
        o.bitrate,
        if o.hevc { "HEVC" } else { "H.264" },
        relay.addr(),
        o.loss * 100.0,
        o.burst
            .map(|b| format!(", bursts of {b}"))
            .unwrap_or_default(),
        if o.window { "window" } else { "fakesink" },
    );
    let start = Instant::now();
    let buses = [host.bus().expect("bus"), client.bus().expect("bus")];
    let mut failed = false;
    while start.elapsed() < Duration::from_secs(o.seconds) && !failed {
        let tick = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick && !failed {
            for bus in &buses {
                while let Some(msg) = bus.pop() {
                    match msg.view() {
                        gst::MessageView::Error(e) => {
                            eprintln!(
                                "demo: error from {:?}: {} ({:?})",
                                e.src().map(|s| s.path_string()),
                                e.error(),
                                e.debug()
                            );
                            failed = true;
                        }
                        gst::MessageView::Warning(w) => {
                            eprintln!("demo: warning: {}", w.error());
                        }
                        _ => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let hs: gst::Structure = sink.property("stats");
        let cs: gst::Structure = src.property("stats");
        println!(
            "[{:>3}s] encoded {:>5} sent {:>5} | received {:>5} decoded {:>5} lost {:>3} | fec-recovered {:>6} loss {:>5.2} % rtt {:>6} µs",
            start.elapsed().as_secs(),
            encoded.load(Ordering::Relaxed),
            stat(&hs, "frames-sent"),
            stat(&cs, "frames-received"),
            decoded.load(Ordering::Relaxed),
            stat(&cs, "frames-lost"),
            stat(&cs, "fec-recovered"),
            cs.get::<f64>("loss-percent").unwrap_or(0.0),
            stat(&cs, "rtt-us"),
        );
    }
    // Orderly end: EOS on the host says bye, the client ends with EOS.
    host.send_event(gst::event::Eos::new());
    let client_bus = client.bus().expect("bus");
    let got_eos = client_bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos])
        .is_some();
    let hs: gst::Structure = sink.property("stats");
    let cs: gst::Structure = src.property("stats");
    let enc_n = encoded.load(Ordering::Relaxed);
    let dec_n = decoded.load(Ordering::Relaxed);
    let _ = client.set_state(gst::State::Null);
    let _ = host.set_state(gst::State::Null);
    let d = relay.down_stats();
    println!("---- summary ----");
    println!("frames encoded        {enc_n}");
    println!("frames sent           {}", stat(&hs, "frames-sent"));
    println!("frames received whole {}", stat(&cs, "frames-received"));
    println!("frames decoded        {dec_n}");
    println!("frames lost           {}", stat(&cs, "frames-lost"));
    println!("shards FEC-recovered  {}", stat(&cs, "fec-recovered"));
    println!(
        "datagrams dropped by the relay {} of {} ({:.2} %)",
        d.dropped,
        d.sent,
        if d.sent > 0 {
            d.dropped as f64 * 100.0 / d.sent as f64
        } else {
            0.0
        }
    );
    println!("keyframe requests     {}", stat(&cs, "keyframe-requests"));
    println!(
        "client EOS            {}",
        if got_eos { "yes" } else { "no" }
    );
    if failed || dec_n == 0 {
        std::process::exit(1);
    }
}
