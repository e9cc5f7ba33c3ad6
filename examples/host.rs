//! A host application embedding punktfunksink: streams a test pattern (or any source you
//! put in `--source`) and prints stats and the input events it receives from the client.
//!
//! ```text
//! cargo run --release --example host -- [--port 7600] [--passphrase S] [--size 1280x720] \
//!     [--fps 60] [--bitrate 8000] [--source "videotestsrc is-live=true pattern=ball"]
//! ```
//!
//! Without `--passphrase` it listens on 127.0.0.1 only (an unauthenticated listener on every
//! address is refused unless `allow-unauthenticated=true`: anyone could watch and type).

use std::time::Duration;

use gst::prelude::*;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn main() {
    gst::init().expect("GStreamer initialises");
    gstpunktfunk::plugin_register_static().expect("plugin registers");
    let (w, h) = arg("--size", "1280x720")
        .split_once('x')
        .map(|(w, h)| (w.to_owned(), h.to_owned()))
        .unwrap_or(("1280".into(), "720".into()));
    let pipeline = format!(
        "{source} ! videoconvert ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate} key-int-max={gop} \
         ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! punktfunksink name=sink port={port} passphrase=\"{pass}\" {address} stats-interval=1000",
        source = arg("--source", "videotestsrc is-live=true pattern=ball"),
        fps = arg("--fps", "60"),
        bitrate = arg("--bitrate", "8000"),
        gop = 2 * arg("--fps", "60").parse::<u32>().unwrap_or(60),
        port = arg("--port", "7600"),
        pass = arg("--passphrase", ""),
        address = if arg("--passphrase", "").is_empty() {
            "address=127.0.0.1"
        } else {
            ""
        },
    );
    let pipeline = match gst::parse::launch(&pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("host: {e}");
            std::process::exit(1);
        }
    };
    let bus = pipeline.bus().expect("bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        if let Some(msg) =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            eprintln!("host: {}", e.error());
        }
        std::process::exit(1);
    }
    let port: u32 = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("sink"))
        .map(|s| s.property("bound-port"))
        .unwrap_or(0);
    println!("host: streaming on UDP port {port}, waiting for a client (Ctrl-C to stop)");
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                match s.name().as_str() {
                    "punktfunk-stats" => println!(
                        "host: connected={} peer={} frames-sent={} loss={:.2}% fec={}% rtt={}µs",
                        s.get::<bool>("connected").unwrap_or(false),
                        s.get::<String>("peer").unwrap_or_default(),
                        s.get::<u64>("frames-sent").unwrap_or(0),
                        s.get::<f64>("loss-percent").unwrap_or(0.0),
                        s.get::<u32>("fec-percent").unwrap_or(0),
                        s.get::<u64>("rtt-us").unwrap_or(0),
                    ),
                    "punktfunk-input" => println!("host: input {s}"),
                    other => println!("host: {other}: {s}"),
                }
            }
            gst::MessageView::Warning(w) => eprintln!("host: warning: {}", w.error()),
            gst::MessageView::Error(e) => {
                eprintln!("host: error: {}", e.error());
                break;
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    std::thread::sleep(Duration::from_millis(10));
}
