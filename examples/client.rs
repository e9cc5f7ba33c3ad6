//! A client application embedding punktfunksrc: receives, decodes and shows (or discards, with
//! `--headless`) the stream and prints stats every second. Without a display (no `DISPLAY` or
//! `WAYLAND_DISPLAY`) it runs headless by itself and says so on stderr.
//!
//! ```text
//! cargo run --release --example client -- [--address 127.0.0.1] [--port 7600] [--passphrase S] [--headless]
//! ```

use gst::prelude::*;

#[path = "common/display.rs"]
mod display;

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
    let mut headless = std::env::args().any(|a| a == "--headless");
    if !headless && let Some(why) = display::missing_display_here() {
        eprintln!(
            "client: no display ({why}): running headless, frames are decoded and discarded \
             (set DISPLAY or WAYLAND_DISPLAY to see the video; --headless does this without the note)"
        );
        headless = true;
    }
    let sink = if headless {
        "fakesink sync=false"
    } else {
        "videoconvert ! autovideosink sync=false"
    };
    let desc = format!(
        "punktfunksrc name=src address={addr} port={port} passphrase=\"{pass}\" stats-interval=1000 \
         ! decodebin ! {sink}",
        addr = arg("--address", "127.0.0.1"),
        port = arg("--port", "7600"),
        pass = arg("--passphrase", ""),
    );
    let pipeline = match gst::parse::launch(&desc) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("client: {e}");
            std::process::exit(1);
        }
    };
    let bus = pipeline.bus().expect("bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!(
            "client: failed to start (see the error above or run with GST_DEBUG=punktfunksrc:4)"
        );
        std::process::exit(1);
    }
    let mut code = 0;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if s.name() == "punktfunk-stats" {
                    println!(
                        "client: connected={} frames={} lost={} fec-recovered={} loss={:.2}% rtt={}µs",
                        s.get::<bool>("connected").unwrap_or(false),
                        s.get::<u64>("frames-received").unwrap_or(0),
                        s.get::<u64>("frames-lost").unwrap_or(0),
                        s.get::<u64>("fec-recovered").unwrap_or(0),
                        s.get::<f64>("loss-percent").unwrap_or(0.0),
                        s.get::<u64>("rtt-us").unwrap_or(0),
                    );
                } else {
                    println!("client: {}: {s}", s.name());
                }
            }
            gst::MessageView::Warning(w) => eprintln!("client: warning: {}", w.error()),
            gst::MessageView::Error(e) => {
                eprintln!("client: error: {}", e.error());
                code = 1;
                break;
            }
            gst::MessageView::Eos(_) => {
                println!("client: end of stream");
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    std::process::exit(code);
}
