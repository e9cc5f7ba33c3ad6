//! `gst_check::Harness` tests of `punktfunksink` and `punktfunksrc`: caps, properties, errors a
//! user can cause, stats, URI handling, and real traffic against a library [`Session`] peer
//! over 127.0.0.1 on ephemeral ports. Synchronisation is on real signals only (session events
//! through channels, bus messages, harness pulls), each with a timeout.

use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_base::prelude::*;
use gst_check::Harness;
use gstpunktfunk::protocol::input::{InputEvent, TouchPhase};
use gstpunktfunk::session::{Config, Event, Session};
use gstpunktfunk::transport::udp::{UdpOptions, UdpTransport};

mod errors;
mod properties;
mod security;
mod sink_traffic;
mod src_traffic;

/// Upper bound for any single wait on the network or the bus.
const WAIT: Duration = Duration::from_secs(10);

const H264_CAPS: &str = "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au, width=(int)320, height=(int)240, framerate=(fraction)30/1";

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        gstpunktfunk::plugin_register_static().expect("register plugin");
    });
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn udp(addr: &str) -> UdpTransport {
    UdpTransport::bind(addr.parse().expect("addr"), &UdpOptions::default()).expect("bind")
}

/// Runs a session's poll loop on a thread and forwards its events.
struct Pump {
    session: Session,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    events: mpsc::Receiver<Event>,
}

impl Pump {
    fn new(session: Session) -> Pump {
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (session, stop) = (session.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let r = match session.role() {
                        gstpunktfunk::protocol::security::handshake::Role::Host => {
                            session.poll_input(Duration::from_millis(50))
                        }
                        gstpunktfunk::protocol::security::handshake::Role::Client => {
                            session.poll_frame(Duration::from_millis(50))
                        }
                    };
                    match r {
                        Ok(Some(ev)) => {
                            if tx.send(ev).is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })
        };
        Pump {
            session,
            stop,
            thread: Some(thread),
            events,
        }
    }

    /// The first event `pred` accepts, within [`WAIT`].
    fn wait_for(&self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.session.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The first message on `bus` that `pred` accepts, within [`WAIT`].
fn wait_bus(
    bus: &gst::Bus,
    what: &str,
    mut pred: impl FnMut(&gst::Message) -> bool,
) -> gst::Message {
    let end = Instant::now() + WAIT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            panic!("timed out waiting for {what} on the bus");
        };
        if pred(&msg) {
            return msg;
        }
    }
}

fn is_navigation(e: &gst::Event) -> bool {
    e.type_() == gst::EventType::Navigation
}

/// The next upstream event at the harness that `pred` accepts; others are skipped (each pull
/// waits at most the harness's own bound of 60 s).
fn pull_upstream(
    h: &mut Harness,
    what: &str,
    mut pred: impl FnMut(&gst::Event) -> bool,
) -> gst::Event {
    for _ in 0..100 {
        let ev = h
            .pull_upstream_event()
            .unwrap_or_else(|_| panic!("no upstream event while waiting for {what}"));
        if pred(&ev) {
            return ev;
        }
    }
    panic!("no {what} among 100 upstream events");
}

fn element_named(msg: &gst::Message, name: &str) -> bool {
    matches!(msg.view(), gst::MessageView::Element(_))
        && msg.structure().is_some_and(|s| s.name() == name)
}

/// An Annex-B NAL unit with a 4-byte start code.
fn nal(header: u8, len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, header];
    // Payload bytes avoid 0 so no start code appears inside.
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 0x10));
    v
}

fn buffer(data: &[u8], keyframe: bool) -> gst::Buffer {
    let mut b = gst::Buffer::from_slice(data.to_vec());
    if !keyframe {
        b.get_mut()
            .expect("fresh buffer")
            .set_flags(gst::BufferFlags::DELTA_UNIT);
    }
    b
}

/// `src ! fakesink` in a new pipeline set to PLAYING; the pipeline and its bus.
fn play_into_fakesink(src: &gst::Element) -> (gst::Pipeline, gst::Bus) {
    let sink = gst::ElementFactory::make("fakesink")
        .build()
        .expect("fakesink");
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([src, &sink]).expect("add");
    src.link(&sink).expect("link");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("playing");
    (pipeline, bus)
}

fn stats_of(e: &gst::Element) -> gst::Structure {
    e.property::<gst::Structure>("stats")
}

fn u64_field(s: &gst::StructureRef, name: &str) -> u64 {
    s.get::<u64>(name)
        .unwrap_or_else(|_| panic!("stats field {name} in {s}"))
}
