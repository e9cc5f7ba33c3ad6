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

// ----- static checks -----

#[test]
fn pad_templates_and_metadata() {
    init();
    let expected = gst::Caps::from_str(
        "video/x-h264, stream-format=byte-stream, alignment=au; video/x-h265, stream-format=byte-stream, alignment=au",
    )
    .expect("caps");
    for (name, dir, klass) in [
        ("punktfunksink", gst::PadDirection::Sink, "Sink/Network"),
        ("punktfunksrc", gst::PadDirection::Src, "Source/Network"),
    ] {
        let f = gst::ElementFactory::find(name).expect("factory");
        assert_eq!(f.metadata("klass"), Some(klass));
        assert!(f.metadata("long-name").is_some_and(|s| !s.is_empty()));
        assert!(f.metadata("description").is_some_and(|s| !s.is_empty()));
        assert!(f.metadata("author").is_some_and(|s| !s.is_empty()));
        let templates: Vec<_> = f.static_pad_templates().into_iter().collect();
        assert_eq!(templates.len(), 1);
        let t = &templates[0];
        assert_eq!(t.direction(), dir);
        assert_eq!(t.caps(), expected, "{name} template caps");
    }
}

fn pspec(e: &gst::Element, name: &str) -> glib::ParamSpec {
    e.find_property(name)
        .unwrap_or_else(|| panic!("{} has no property {name}", e.name()))
}

fn check_uint(e: &gst::Element, name: &str, min: u32, max: u32, default: u32) {
    let p = pspec(e, name);
    let p = p
        .downcast_ref::<glib::ParamSpecUInt>()
        .unwrap_or_else(|| panic!("{name} is not a uint"));
    assert_eq!(
        (p.minimum(), p.maximum(), p.default_value()),
        (min, max, default),
        "{name}"
    );
    if p.flags().contains(glib::ParamFlags::READABLE) {
        assert_eq!(e.property::<u32>(name), default, "{name} reads its default");
    }
}

#[test]
fn properties_and_defaults() {
    init();
    let sink = gst::ElementFactory::make("punktfunksink")
        .build()
        .expect("sink");
    let src = gst::ElementFactory::make("punktfunksrc")
        .build()
        .expect("src");
    let ready = gst::PARAM_FLAG_MUTABLE_READY;

    for (e, mode, address) in [
        (&sink, "listener", "0.0.0.0"),
        (&src, "caller", "127.0.0.1"),
    ] {
        let m = e.property_value("mode");
        let m = glib::EnumValue::from_value(&m).expect("enum").1;
        assert_eq!(m.nick(), mode);
        assert!(pspec(e, "mode").flags().contains(ready));
        assert_eq!(e.property::<String>("address"), address);
        assert!(pspec(e, "address").flags().contains(ready));
        check_uint(e, "port", 0, 65535, 7600);
        assert_eq!(e.property::<String>("bind-address"), "0.0.0.0");
        check_uint(e, "bind-port", 0, 65535, 0);
        check_uint(e, "timeout", 1, u32::MAX, 3000);
        check_uint(e, "stats-interval", 0, u32::MAX, 0);
        check_uint(e, "bound-port", 0, 65535, 0);
        assert!(e.property::<bool>("encrypt"));

        // passphrase: write-only.
        let p = pspec(e, "passphrase");
        assert!(p.flags().contains(glib::ParamFlags::WRITABLE));
        assert!(!p.flags().contains(glib::ParamFlags::READABLE));
        e.set_property("passphrase", "secret");

        // Read-only ones.
        for ro in ["stats", "bound-port"] {
            let f = pspec(e, ro).flags();
            assert!(
                f.contains(glib::ParamFlags::READABLE) && !f.contains(glib::ParamFlags::WRITABLE)
            );
        }
        let stats = stats_of(e);
        assert_eq!(stats.name(), "punktfunk-stats");
        for field in [
            "packets-sent",
            "bytes-sent",
            "packets-received",
            "bytes-received",
            "frames-sent",
            "frames-received",
            "frames-lost",
            "fec-recovered",
            "packets-lost",
            "rtt-us",
            "replays-rejected",
            "auth-failures",
            "send-drops",
            "cookies-sent",
            "hellos-dropped",
            "rejects-ignored",
            "resets-ignored",
            "path-migrations",
            "keyframe-requests-throttled",
            "input-throttled",
            "seal-failures",
        ] {
            assert_eq!(u64_field(&stats, field), 0, "{field}");
        }
        assert!(!stats.get::<bool>("connected").expect("connected"));
        assert_eq!(stats.get::<f64>("loss-percent").expect("loss"), 0.0);
        assert_eq!(stats.get::<&str>("peer").expect("peer"), "");

        // The address default follows the mode while unset.
        let other = if mode == "listener" {
            "caller"
        } else {
            "listener"
        };
        e.set_property_from_str("mode", other);
        let expect = if other == "listener" {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        assert_eq!(e.property::<String>("address"), expect);
        e.set_property_from_str("mode", mode);
    }

    check_uint(&sink, "fec-percent", 0, 100, 20);
    check_uint(&sink, "mtu", 256, 65507, 1400);
    check_uint(&sink, "dscp", 0, 63, 0);
    let p = pspec(&sink, "pacing-rate");
    let p = p.downcast_ref::<glib::ParamSpecUInt64>().expect("uint64");
    assert_eq!(
        (p.minimum(), p.maximum(), p.default_value()),
        (0, u64::MAX, 0)
    );
    let m = sink.property_value("fec-mode");
    assert_eq!(
        glib::EnumValue::from_value(&m).expect("enum").1.nick(),
        "target"
    );
    // Loss resilience (issue 8).
    check_uint(&sink, "fec-floor", 0, 100, 5);
    check_uint(&sink, "fec-ceiling", 0, 200, 100);
    check_uint(&src, "repair-deadline", 0, 10_000, 0);
    assert_eq!(sink.property::<f64>("fec-target"), 0.001);
    check_uint(&sink, "encoder-buffer", 0, 10_000, 34);
    // Congestion control (issue 10).
    let m = sink.property_value("congestion-control");
    assert_eq!(
        glib::EnumValue::from_value(&m).expect("enum").1.nick(),
        "encoder"
    );
    assert_eq!(sink.property::<u64>("min-bitrate"), 500_000);
    assert_eq!(sink.property::<u64>("max-bitrate"), 0);
    check_uint(&sink, "link-share", 10, 100, 100);
    sink.set_property("link-share", 60u32);
    assert_eq!(sink.property::<u32>("link-share"), 60);
    assert!(pspec(&sink, "link-share").flags().contains(ready));
    let stats = stats_of(&sink);
    for field in ["bwe-estimate", "bwe-link-rate", "bwe-target-bitrate"] {
        assert_eq!(u64_field(&stats, field), 0, "{field} before a peer");
    }
    assert_eq!(sink.property::<f64>("repair-share"), 0.25);
    assert!(src.property::<bool>("repair"));
    for name in [
        "fec-percent",
        "fec-mode",
        "mtu",
        "pacing-rate",
        "dscp",
        "fec-target",
        "fec-floor",
        "fec-ceiling",
        "repair-share",
    ] {
        assert!(pspec(&sink, name).flags().contains(ready), "{name}");
    }

    assert!(src.property::<bool>("wait-for-keyframe"));
    assert!(src.property::<bool>("request-keyframe"));
    assert!(
        src.downcast_ref::<gst_base::BaseSrc>()
            .expect("base src")
            .is_live()
    );

    // A live network sender: no clock wait, no preroll (both still settable).
    for name in ["sync", "async"] {
        assert!(!sink.property::<bool>(name), "{name} defaults to false");
        sink.set_property(name, true);
        assert!(sink.property::<bool>(name), "{name} is settable");
    }
}

// ----- errors a user can cause -----

/// Puts `e` alone in a pipeline, tries PAUSED, and returns the error posted.
fn start_error(e: &gst::Element) -> glib::Error {
    let pipeline = gst::Pipeline::new();
    pipeline.add(e).expect("add");
    let bus = pipeline.bus().expect("bus");
    assert!(
        pipeline.set_state(gst::State::Paused).is_err(),
        "state change must fail"
    );
    let msg = wait_bus(&bus, "an error", |m| {
        matches!(m.view(), gst::MessageView::Error(_))
    });
    let _ = pipeline.set_state(gst::State::Null);
    match msg.view() {
        gst::MessageView::Error(err) => err.error(),
        _ => unreachable!(),
    }
}

#[test]
fn encrypt_false_with_passphrase_is_refused() {
    init();
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name)
            .property("address", "127.0.0.1")
            .property("port", 0u32)
            .property("passphrase", "secret")
            .property("encrypt", false)
            .build()
            .expect("element");
        if name == "punktfunksrc" {
            e.set_property_from_str("mode", "listener");
        }
        let err = start_error(&e);
        assert!(err.matches(gst::ResourceError::Settings), "{err:?}");
        assert!(
            err.message().contains("encrypt=false") && err.message().contains("passphrase"),
            "{}",
            err.message()
        );
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    init();
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name)
            .property("address", "127.0.0.1")
            .property("port", u32::from(port))
            .build()
            .expect("element");
        e.set_property_from_str("mode", "listener");
        let err = start_error(&e);
        assert!(err.matches(gst::ResourceError::OpenReadWrite), "{err:?}");
        let text = err.message();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")) && text.contains("in use"),
            "{text}"
        );
    }
    drop(taken);
}

#[test]
fn caller_with_unresolvable_address_fails_clearly() {
    init();
    let e = gst::ElementFactory::make("punktfunksrc")
        .property("address", "no such host name.invalid")
        .property("port", 9u32)
        .build()
        .expect("src");
    let err = start_error(&e);
    assert!(
        err.message().contains("no such host name.invalid"),
        "{}",
        err.message()
    );
}

/// `fec-mode=adaptive` still parses, reads back, and posts a deprecation warning at start.
#[test]
fn fec_mode_adaptive_posts_a_deprecation_warning() {
    init();
    let sink = gst::ElementFactory::make("punktfunksink")
        .property("address", "127.0.0.1")
        .property("port", 0u32)
        .build()
        .expect("element");
    sink.set_property_from_str("fec-mode", "adaptive");
    let m = sink.property_value("fec-mode");
    assert_eq!(
        glib::EnumValue::from_value(&m).expect("enum").1.nick(),
        "adaptive"
    );
    let pipeline = gst::Pipeline::new();
    pipeline.add(&sink).expect("add");
    let bus = pipeline.bus().expect("bus");
    assert!(pipeline.set_state(gst::State::Paused).is_ok());
    // Other warnings (no passphrase) may come first; the deprecation one must come too.
    wait_bus(&bus, "the deprecation warning", |m| {
        matches!(m.view(), gst::MessageView::Warning(w)
            if w.error().message().contains("fec-mode=adaptive is deprecated"))
    });
    pipeline.set_state(gst::State::Null).expect("null");
}

#[test]
fn bound_port_reads_back_after_start() {
    init();
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name)
            .property("address", "127.0.0.1")
            .property("port", 0u32)
            .build()
            .expect("element");
        e.set_property_from_str("mode", "listener");
        let pipeline = gst::Pipeline::new();
        pipeline.add(&e).expect("add");
        // READY → PAUSED runs start(); a live src returns NO_PREROLL, a sink goes async.
        assert!(pipeline.set_state(gst::State::Paused).is_ok());
        let port = e.property::<u32>("bound-port");
        assert_ne!(port, 0, "{name}");
        // It is a real bound port: binding it again fails.
        assert!(UdpSocket::bind(("127.0.0.1", port as u16)).is_err());
        assert_eq!(stats_of(&e).get::<u32>("bound-port").expect("field"), port);
        pipeline.set_state(gst::State::Null).expect("null");
        assert_eq!(e.property::<u32>("bound-port"), 0);
        // The socket is closed again.
        assert!(UdpSocket::bind(("127.0.0.1", port as u16)).is_ok());
    }
}

/// Records the value of `property` each time `notify::property` fires on `e`.
fn record_notify(e: &gst::Element, property: &'static str) -> Arc<Mutex<Vec<u32>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    e.connect_notify(Some(property), move |e, _| {
        log.lock().expect("lock").push(e.property::<u32>(property));
    });
    seen
}

#[test]
fn port_zero_reads_back_the_bound_port_with_notify_on_both_elements_in_both_modes() {
    init();
    // Stands in for a listener a caller sends to (nothing needs to answer).
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    let peer_port = u32::from(peer.local_addr().expect("addr").port());
    for name in ["punktfunksink", "punktfunksrc"] {
        for mode in ["listener", "caller"] {
            let e = gst::ElementFactory::make(name)
                .property("address", "127.0.0.1")
                .build()
                .expect("element");
            e.set_property_from_str("mode", mode);
            // A listener binds `port`; a caller sends to `port` from `bind-port`.
            let (local, set) = if mode == "listener" {
                ("port", 0)
            } else {
                e.set_property("port", peer_port);
                ("bind-port", 0)
            };
            e.set_property(local, set);
            let notified = record_notify(&e, local);
            let alias_notified = record_notify(&e, "bound-port");
            let pipeline = gst::Pipeline::new();
            pipeline.add(&e).expect("add");
            assert!(pipeline.set_state(gst::State::Paused).is_ok());

            let bound = e.property::<u32>(local);
            let what = format!("{name} {mode} {local}");
            assert_ne!(bound, 0, "{what} reads back the bound port");
            assert_eq!(e.property::<u32>("bound-port"), bound, "{what}: alias");
            assert!(
                UdpSocket::bind(("127.0.0.1", bound as u16)).is_err(),
                "{what}: bound"
            );
            assert_eq!(*notified.lock().expect("lock"), [bound], "{what}: notify");
            assert_eq!(
                *alias_notified.lock().expect("lock"),
                [bound],
                "{what}: alias notify"
            );
            if mode == "caller" {
                assert_eq!(
                    e.property::<u32>("port"),
                    peer_port,
                    "{what}: port is the peer's"
                );
            }

            // Stopped, it reads the setting again (a restart binds a fresh free port) and
            // says so.
            pipeline.set_state(gst::State::Null).expect("null");
            assert_eq!(e.property::<u32>(local), set, "{what} after stop");
            assert_eq!(
                *notified.lock().expect("lock"),
                [bound, set],
                "{what}: notify at stop"
            );
        }
    }
}

// ----- URI handler -----

#[test]
fn uri_handler() {
    init();
    let src = gst::Element::make_from_uri(gst::URIType::Src, "punktfunk://127.0.0.1:7612", None)
        .expect("make_from_uri");
    assert_eq!(
        src.factory().expect("factory").name(),
        "punktfunksrc",
        "playbin finds punktfunksrc for punktfunk://"
    );
    let h = src
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("uri handler");
    assert_eq!(
        h.protocols().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["punktfunk"]
    );
    assert_eq!(h.uri().as_deref(), Some("punktfunk://127.0.0.1:7612"));
    assert_eq!(src.property::<u32>("port"), 7612);

    src.set_property_from_str("mode", "listener");
    h.set_uri("punktfunk://p%40ss%3Aword@[::1]:9000")
        .expect("ipv6 uri");
    assert_eq!(src.property::<String>("address"), "::1");
    assert_eq!(src.property::<u32>("port"), 9000);
    let m = src.property_value("mode");
    assert_eq!(
        glib::EnumValue::from_value(&m).expect("enum").1.nick(),
        "caller"
    );
    // The passphrase never shows in the URI.
    assert_eq!(h.uri().as_deref(), Some("punktfunk://[::1]:9000"));

    h.set_uri("punktfunk://example.org").expect("default port");
    assert_eq!(src.property::<u32>("port"), 7600);

    for bad in [
        "http://127.0.0.1:1",
        "punktfunk://",
        "punktfunk://::1:9000",
        "punktfunk://[::1:9000",
        "punktfunk://host:70000",
        "punktfunk://bad%zz@host:1",
    ] {
        let err = h.set_uri(bad).expect_err(bad);
        assert!(
            err.matches(gst::URIError::BadUri) || err.matches(gst::URIError::UnsupportedProtocol),
            "{bad}: {err:?}"
        );
    }
}

// ----- traffic: sink → library client -----

#[test]
fn sink_sends_frames_and_forwards_client_events() {
    init();
    // Loopback from the start: the harness may start the element before a property set
    // afterwards takes effect, and an unauthenticated listener on 0.0.0.0 refuses to start.
    let sink = gst::ElementFactory::make("punktfunksink")
        .property("address", "127.0.0.1")
        .build()
        .expect("element");
    let mut h = Harness::with_element(&sink, Some("sink"), None);
    let sink = h.element().expect("element");
    sink.set_property("port", 0u32);
    sink.set_property("sync", false);
    sink.set_property("stats-interval", 50u32);
    let bus = gst::Bus::new();
    sink.set_bus(Some(&bus));
    h.play();
    h.set_src_caps_str(H264_CAPS);
    let port = sink.property::<u32>("bound-port") as u16;
    assert_ne!(port, 0);

    // Stats messages come on their own, with no client.
    let m = wait_bus(&bus, "punktfunk-stats", |m| {
        element_named(m, "punktfunk-stats")
    });
    assert_eq!(m.src().map(|s| s.name()), Some(sink.name()));

    let client =
        Session::new(Config::client_caller(localhost(port)), udp("127.0.0.1:0")).expect("client");
    let pump = Pump::new(client.clone());
    pump.wait_for("connected", |e| matches!(e, Event::Connected { .. }));
    wait_bus(&bus, "peer-connected", |m| {
        element_named(m, "punktfunk-peer-connected")
    });
    // The caps reach the client as stream info.
    let Event::StreamInfo(info) =
        pump.wait_for("stream info", |e| matches!(e, Event::StreamInfo(_)))
    else {
        unreachable!()
    };
    let caps = gst::Caps::from_str(&info.caps).expect("caps parse");
    assert_eq!(caps, gst::Caps::from_str(H264_CAPS).expect("caps"));

    // A new client makes the sink ask the encoder for a keyframe with headers.
    let ev = pull_upstream(&mut h, "ForceKeyUnit", |e| {
        gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok()
    });
    let fku = gst_video::UpstreamForceKeyUnitEvent::parse(&ev).expect("force key unit");
    assert!(fku.all_headers);

    let sps = nal(0x67, 12, 1);
    let pps = nal(0x68, 4, 2);
    let idr1 = nal(0x65, 3000, 3);
    let first: Vec<u8> = [&sps[..], &pps, &idr1].concat();
    let delta = nal(0x41, 200_000, 4);
    let idr2 = nal(0x65, 5000, 5);

    h.push(buffer(&first, true)).expect("push");
    h.push(buffer(&delta, false)).expect("push");
    h.push(buffer(&idr2, true)).expect("push");

    let mut frames = Vec::new();
    while frames.len() < 3 {
        if let Event::Frame(f) = pump.wait_for("frame", |e| matches!(e, Event::Frame(_))) {
            frames.push(f);
        }
    }
    assert!(frames[0].keyframe && frames[0].data == first);
    assert!(!frames[1].keyframe && frames[1].data == delta);
    // A keyframe without parameter sets gets the cached ones, so late joiners can decode.
    assert!(frames[2].keyframe);
    assert_eq!(frames[2].data, [&sps[..], &pps, &idr2].concat());

    // Keyframe request from the client → ForceKeyUnit upstream.
    assert!(client.request_keyframe().expect("request"));
    pull_upstream(&mut h, "ForceKeyUnit", |e| {
        gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok()
    });

    // Input → punktfunk-input message (always) and a Navigation event (where expressible).
    client
        .send_input(InputEvent::GamepadAxis {
            pad: 1,
            axis: 2,
            value: -0.5,
        })
        .expect("input");
    client
        .send_input(InputEvent::MouseButton {
            button: 1,
            pressed: true,
            x: 10.5,
            y: 20.0,
            modifiers: 0,
        })
        .expect("input");
    client
        .send_input(InputEvent::Touch {
            id: 3,
            phase: TouchPhase::Down,
            x: 1.0,
            y: 2.0,
            pressure: 0.5,
        })
        .expect("input");
    let m = wait_bus(&bus, "gamepad input", |m| {
        element_named(m, "punktfunk-input")
    });
    let s = m.structure().expect("structure");
    assert_eq!(s.get::<&str>("type").expect("type"), "gamepad-axis");
    assert_eq!(s.get::<u32>("pad").expect("pad"), 1);
    assert_eq!(s.get::<u32>("axis").expect("axis"), 2);
    assert_eq!(s.get::<f64>("value").expect("value"), -0.5);
    let m = wait_bus(&bus, "mouse input", |m| element_named(m, "punktfunk-input"));
    let s = m.structure().expect("structure");
    assert_eq!(s.get::<&str>("type").expect("type"), "mouse-button-press");
    assert_eq!(s.get::<u32>("button").expect("button"), 1);
    assert!(s.get::<bool>("pressed").expect("pressed"));
    assert_eq!(s.get::<f64>("x").expect("x"), 10.5);
    // The gamepad has no Navigation form: the next upstream events are the button and touch.
    let ev = pull_upstream(&mut h, "navigation", is_navigation);
    match gst_video::NavigationEvent::parse(&ev).expect("navigation") {
        gst_video::NavigationEvent::MouseButtonPress { button, x, y, .. } => {
            assert_eq!((button, x, y), (1, 10.5, 20.0))
        }
        other => panic!("unexpected {other:?}"),
    }
    let ev = pull_upstream(&mut h, "navigation", is_navigation);
    match gst_video::NavigationEvent::parse(&ev).expect("navigation") {
        gst_video::NavigationEvent::TouchDown {
            identifier,
            pressure,
            ..
        } => assert_eq!((identifier, pressure), (3, 0.5)),
        other => panic!("unexpected {other:?}"),
    }

    // Counters moved.
    let stats = stats_of(&sink);
    assert!(stats.get::<bool>("connected").expect("connected"));
    assert!(
        stats
            .get::<&str>("peer")
            .expect("peer")
            .starts_with("127.0.0.1:")
    );
    assert_eq!(u64_field(&stats, "frames-sent"), 3);
    assert_eq!(u64_field(&stats, "keyframes-sent"), 2);
    assert!(u64_field(&stats, "packets-sent") > 150);
    assert!(u64_field(&stats, "bytes-sent") > 200_000);
    assert!(u64_field(&stats, "packets-received") > 0);
    assert!(u64_field(&stats, "input-received") >= 3);
    // fec-mode=target reports the share of the largest block (26 parity of 128 data shards at
    // the starting fec-percent of 20, rounded up).
    assert_eq!(stats.get::<u32>("fec-percent").expect("fec"), 21);
    assert!(u64_field(&stats, "parity-shards-sent") > 0);

    // EOS says bye: the client sees the end of the stream.
    assert!(h.push_event(gst::event::Eos::new()));
    pump.wait_for("end of stream", |e| matches!(e, Event::EndOfStream));
    drop(pump);
    drop(h);
    sink.set_bus(None);
}

// ----- traffic: library host → src -----

#[test]
fn src_receives_frames_and_sends_input() {
    init();
    let mut cfg = Config::host_listener();
    cfg.passphrase = Some("s3cr@t pass".into());
    let host = Session::new(cfg, udp("127.0.0.1:0")).expect("host");
    host.set_stream_info(H264_CAPS).expect("stream info");
    let port = host.local_addr().port();
    let pump = Pump::new(host.clone());

    let mut h = Harness::new("punktfunksrc");
    let src = h.element().expect("element");
    let bus = gst::Bus::new();
    src.set_bus(Some(&bus));
    src.set_property("stats-interval", 50u32);
    src.dynamic_cast_ref::<gst::URIHandler>()
        .expect("uri handler")
        .set_uri(&format!("punktfunk://s3cr%40t%20pass@127.0.0.1:{port}"))
        .expect("uri");
    h.play();
    pump.wait_for("connected", |e| matches!(e, Event::Connected { .. }));
    wait_bus(&bus, "peer-connected", |m| {
        element_named(m, "punktfunk-peer-connected")
    });

    // A delta frame first: dropped while waiting for a keyframe, and a keyframe is requested.
    let delta0 = nal(0x41, 100, 9);
    host.submit_frame(&delta0, false)
        .expect("send")
        .expect("client");
    pump.wait_for("keyframe request", |e| matches!(e, Event::KeyframeRequest));

    let key = [
        &nal(0x67, 10, 1)[..],
        &nal(0x68, 4, 2),
        &nal(0x65, 20_000, 3),
    ]
    .concat();
    let delta = nal(0x41, 3_000, 4);
    host.submit_frame(&key, true)
        .expect("send")
        .expect("client");
    host.submit_frame(&delta, false)
        .expect("send")
        .expect("client");

    let b1 = h.pull().expect("first buffer");
    assert_eq!(b1.map_readable().expect("map").as_slice(), &key[..]);
    assert!(!b1.flags().contains(gst::BufferFlags::DELTA_UNIT));
    assert!(b1.flags().contains(gst::BufferFlags::DISCONT));
    assert!(b1.pts().is_some());
    let b2 = h.pull().expect("second buffer");
    assert_eq!(b2.map_readable().expect("map").as_slice(), &delta[..]);
    assert!(b2.flags().contains(gst::BufferFlags::DELTA_UNIT));
    assert!(!b2.flags().contains(gst::BufferFlags::DISCONT));

    // Caps came from the stream info before the first buffer.
    let mut caps = None;
    while let Some(ev) = h.try_pull_event() {
        if let gst::EventView::Caps(c) = ev.view() {
            caps = Some(c.caps_owned());
        }
    }
    assert_eq!(caps, Some(gst::Caps::from_str(H264_CAPS).expect("caps")));

    // Latency: live, nothing added.
    let mut q = gst::query::Latency::new();
    assert!(src.static_pad("src").expect("pad").query(&mut q));
    assert_eq!(q.result(), (true, gst::ClockTime::ZERO, None));

    // Upstream Navigation → input at the host.
    let nav = gst_video::NavigationEvent::KeyPress {
        key: "Return".into(),
        modifier_state: gst_video::NavigationModifierType::SHIFT_MASK,
    };
    assert!(h.push_upstream_event(nav.build()));
    let ev = pump.wait_for("key input", |e| matches!(e, Event::Input(_)));
    assert_eq!(
        ev,
        Event::Input(InputEvent::Key {
            pressed: true,
            key: "Return".into(),
            keycode: 0,
            modifiers: gst_video::NavigationModifierType::SHIFT_MASK.bits(),
        })
    );

    // Action signals.
    assert!(src.emit_by_name::<bool>("send-gamepad-button", &[&2u32, &7u32, &true, &0.75f64]));
    let ev = pump.wait_for("gamepad button", |e| matches!(e, Event::Input(_)));
    assert_eq!(
        ev,
        Event::Input(InputEvent::GamepadButton {
            pad: 2,
            button: 7,
            pressed: true,
            value: 0.75,
        })
    );
    assert!(src.emit_by_name::<bool>("send-gamepad-axis", &[&0u32, &1u32, &-1.0f64]));
    let ev = pump.wait_for("gamepad axis", |e| matches!(e, Event::Input(_)));
    assert_eq!(
        ev,
        Event::Input(InputEvent::GamepadAxis {
            pad: 0,
            axis: 1,
            value: -1.0,
        })
    );
    // Out of range: refused, nothing sent.
    assert!(!src.emit_by_name::<bool>("send-gamepad-axis", &[&300u32, &1u32, &0.0f64]));
    let s = gst::Structure::from_str("punktfunk-input, type=mouse-move-relative, dx=3.5, dy=-2")
        .expect("structure");
    assert!(src.emit_by_name::<bool>("send-input", &[&s]));
    let ev = pump.wait_for("relative motion", |e| matches!(e, Event::Input(_)));
    assert_eq!(
        ev,
        Event::Input(InputEvent::MouseMoveRelative { dx: 3.5, dy: -2.0 })
    );
    let bad = gst::Structure::from_str("punktfunk-input, type=teleport").expect("structure");
    assert!(!src.emit_by_name::<bool>("send-input", &[&bad]));

    // Stats: counters moved and messages come.
    let m = wait_bus(&bus, "punktfunk-stats", |m| {
        element_named(m, "punktfunk-stats")
    });
    let s = m.structure().expect("structure");
    assert_eq!(s.get::<&str>("role").expect("role"), "client");
    let stats = stats_of(&src);
    assert!(stats.get::<bool>("connected").expect("connected"));
    assert_eq!(u64_field(&stats, "frames-received"), 3);
    assert_eq!(u64_field(&stats, "frames-dropped-waiting-keyframe"), 1);
    assert!(u64_field(&stats, "packets-received") > 15);
    assert!(u64_field(&stats, "bytes-received") > 23_000);
    assert!(u64_field(&stats, "keyframe-requests") >= 1);
    assert!(u64_field(&stats, "input-sent") >= 4);

    // The host's bye ends the stream with EOS.
    host.close().expect("close");
    let end = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < end, "no EOS");
        let ev = h.pull_event().expect("event");
        if ev.type_() == gst::EventType::Eos {
            break;
        }
    }
    drop(h);
    src.set_bus(None);
    drop(pump);
}

#[test]
fn src_with_wrong_passphrase_posts_error_and_delivers_nothing() {
    init();
    let mut cfg = Config::host_listener();
    cfg.passphrase = Some("right".into());
    let host = Session::new(cfg, udp("127.0.0.1:0")).expect("host");
    host.set_stream_info(H264_CAPS).expect("stream info");
    let port = host.local_addr().port();
    let pump = Pump::new(host.clone());

    let mut h = Harness::new("punktfunksrc");
    let src = h.element().expect("element");
    let bus = gst::Bus::new();
    src.set_bus(Some(&bus));
    src.set_property("port", u32::from(port));
    src.set_property("passphrase", "wrong");
    h.play();
    let m = wait_bus(&bus, "an error", |m| {
        matches!(m.view(), gst::MessageView::Error(_))
    });
    let gst::MessageView::Error(err) = m.view() else {
        unreachable!()
    };
    assert!(err.error().matches(gst::ResourceError::NotAuthorized));
    assert!(
        err.error().message().contains("passphrase"),
        "{}",
        err.error()
    );
    // The host cannot tell a wrong passphrase from a right one (SPAKE2): it answered, but no
    // session was ever confirmed.
    assert!(!host.is_connected());
    assert_eq!(host.stats().handshakes_completed, 0);
    drop(pump);
    assert!(h.try_pull().is_none());
    assert_eq!(
        u64_field(&stats_of(&src), "frames-received"),
        0,
        "nothing delivered"
    );
    drop(h);
    src.set_bus(None);
}

#[test]
fn src_caller_stops_promptly_without_a_sender() {
    init();
    // A socket that never answers: the src keeps trying until it is stopped.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let src = gst::ElementFactory::make("punktfunksrc")
        .property("port", u32::from(port))
        .property("timeout", 100u32)
        .build()
        .expect("src");
    let (pipeline, bus) = play_into_fakesink(&src);
    // The hellos reach the silent socket, and after `timeout` a warning says nobody answers.
    let mut buf = [0u8; 2048];
    silent.set_read_timeout(Some(WAIT)).expect("read timeout");
    let (n, _) = silent.recv_from(&mut buf).expect("a hello arrives");
    assert!(n > 0);
    let m = wait_bus(
        &bus,
        "a warning",
        |m| matches!(m.view(), gst::MessageView::Warning(w) if w.error().message().contains("No answer from")),
    );
    let gst::MessageView::Warning(w) = m.view() else {
        unreachable!()
    };
    assert!(
        w.error().message().contains(&format!("127.0.0.1:{port}")),
        "{}",
        w.error()
    );
    // unlock() wakes the blocked receive: going to NULL does not wait out a poll.
    pipeline.set_state(gst::State::Null).expect("null");
}

#[test]
fn src_resumes_after_pause() {
    init();
    let host = Session::new(Config::host_listener(), udp("127.0.0.1:0")).expect("host");
    host.set_stream_info(H264_CAPS).expect("stream info");
    let port = host.local_addr().port();
    let pump = Pump::new(host.clone());

    let mut h = Harness::new("punktfunksrc");
    let src = h.element().expect("element");
    src.set_property("port", u32::from(port));
    h.play();
    pump.wait_for("connected", |e| matches!(e, Event::Connected { .. }));
    let key = [&nal(0x67, 10, 1)[..], &nal(0x65, 2_000, 3)].concat();
    host.submit_frame(&key, true)
        .expect("send")
        .expect("client");
    let b = h.pull().expect("buffer before pause");
    assert_eq!(b.map_readable().expect("map").as_slice(), &key[..]);

    // PLAYING → PAUSED unlocks the blocked receive; PAUSED → PLAYING receives again.
    src.set_state(gst::State::Paused).expect("paused");
    src.set_state(gst::State::Playing).expect("playing");
    let key2 = [&nal(0x67, 10, 1)[..], &nal(0x65, 3_000, 7)].concat();
    host.submit_frame(&key2, true)
        .expect("send")
        .expect("client");
    let b = h.pull().expect("buffer after resume");
    assert_eq!(b.map_readable().expect("map").as_slice(), &key2[..]);
    assert!(
        host.is_connected(),
        "a pause is not a disconnect: the session stays up"
    );
    drop(h);
    drop(pump);
}

#[test]
fn src_renegotiates_caps_on_a_stream_info_update() {
    init();
    let host = Session::new(Config::host_listener(), udp("127.0.0.1:0")).expect("host");
    host.set_stream_info(H264_CAPS).expect("stream info");
    let port = host.local_addr().port();
    let pump = Pump::new(host.clone());
    let mut h = Harness::new("punktfunksrc");
    h.element()
        .expect("element")
        .set_property("port", u32::from(port));
    h.play();
    pump.wait_for("connected", |e| matches!(e, Event::Connected { .. }));
    let key = [
        &nal(0x67, 10, 1)[..],
        &nal(0x68, 4, 2),
        &nal(0x65, 5_000, 3),
    ]
    .concat();
    host.submit_frame(&key, true)
        .expect("send")
        .expect("client");
    let b1 = h.pull().expect("first buffer");
    assert_eq!(b1.map_readable().expect("map").as_slice(), &key[..]);
    let caps_of = |h: &mut Harness| {
        let mut last = None;
        while let Some(ev) = h.try_pull_event() {
            if let gst::EventView::Caps(c) = ev.view() {
                last = Some(c.caps_owned());
            }
        }
        last
    };
    let first = caps_of(&mut h).expect("caps before the first buffer");
    assert_eq!(
        first.structure(0).unwrap().get::<i32>("width").unwrap(),
        320
    );

    // The host's encoder changes resolution: new stream info, then a keyframe.
    const NEW: &str = "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au, width=(int)640, height=(int)480, framerate=(fraction)30/1";
    host.set_stream_info(NEW).expect("update");
    let key2 = [
        &nal(0x67, 12, 5)[..],
        &nal(0x68, 4, 6),
        &nal(0x65, 8_000, 7),
    ]
    .concat();
    // The update and the frame travel separately; send keyframes until one arrives after the
    // new caps (a frame may overtake the update on a real network).
    let end = Instant::now() + WAIT;
    let mut renegotiated = None;
    while renegotiated.is_none() && Instant::now() < end {
        host.submit_frame(&key2, true)
            .expect("send")
            .expect("client");
        if let Some(b) = h.try_pull() {
            assert_eq!(b.map_readable().expect("map").as_slice(), &key2[..]);
            renegotiated = caps_of(&mut h);
        }
    }
    let caps = renegotiated.expect("new caps pushed before a buffer of the new stream");
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<i32>("width").unwrap(), 640);
    assert_eq!(s.get::<i32>("height").unwrap(), 480);
    drop(h);
    drop(pump);
}

// ----- security (issue 9) -----

/// Issue 9, finding 2: a sink listening on 0.0.0.0 without a passphrase refuses to start with
/// an element error that says what to set; with `allow-unauthenticated=true` it starts, and on
/// loopback it needs nothing. (Old behaviour: it started, open to anyone.)
#[test]
fn unauthenticated_listener_on_all_addresses_is_refused_unless_allowed() {
    init();
    let start = |address: &str, allow: bool| {
        let sink = gst::ElementFactory::make("punktfunksink")
            .property("address", address)
            .property("port", 0u32)
            .property("allow-unauthenticated", allow)
            .build()
            .expect("sink");
        let bus = gst::Bus::new();
        sink.set_bus(Some(&bus));
        let r = sink.set_state(gst::State::Ready);
        let err = bus.iter().find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error()),
            _ => None,
        });
        let _ = sink.set_state(gst::State::Null);
        sink.set_bus(None);
        (r.is_ok(), err)
    };
    let (ok, err) = start("0.0.0.0", false);
    assert!(!ok, "refused");
    let err = err.expect("an element error");
    assert!(err.matches(gst::ResourceError::NotAuthorized), "{err}");
    assert!(
        err.message().contains("allow-unauthenticated=true"),
        "{err}"
    );
    assert!(err.message().contains("passphrase"), "{err}");
    assert_eq!(start("0.0.0.0", true), (true, None));
    assert_eq!(start("127.0.0.1", false), (true, None));
    // The property reads back and defaults to false on both elements.
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name).build().expect("element");
        assert!(!e.property::<bool>("allow-unauthenticated"));
        // One peer slot unless the application allows replacement.
        assert!(!e.property::<bool>("replace-peer"));
        e.set_property("replace-peer", true);
        assert!(e.property::<bool>("replace-peer"));
    }
}

fn reject_for(hello: &[u8], reason: u8) -> Vec<u8> {
    let mut d = hello[..16].to_vec();
    d[1] = 4; // Reject
    d.push(reason);
    d
}

/// Answers every hello that reaches `socket` with a Reject (wrong passphrase) until the src
/// posts an error, and returns it; fails after [`WAIT`]. The socket needs a short read timeout
/// so the bus is checked between reads.
fn reject_until_error(socket: &UdpSocket, bus: &gst::Bus) -> glib::Error {
    let mut buf = [0u8; 2048];
    let end = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < end,
            "no error after rejects past the timeout"
        );
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            socket
                .send_to(&reject_for(&buf[..n], 2), from)
                .expect("send");
        }
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            let gst::MessageView::Error(e) = m.view() else {
                unreachable!()
            };
            return e.error();
        }
    }
}

/// Issue 9, finding 4: a forged Reject does not stop the src. Rejects from another address, or
/// one genuine-looking Reject for the live attempt, give at most a warning; the src keeps
/// sending hellos. Only a listener that refuses every hello for the src's `timeout` ends it with
/// an error. (Old behaviour: the first 17-byte Reject from anyone was an element error.)
#[test]
fn src_survives_a_forged_reject_and_gives_up_only_on_a_sustained_series() {
    init();
    let listener = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let forger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    listener.set_read_timeout(Some(WAIT)).expect("timeout");
    let port = listener.local_addr().expect("addr").port();
    let src = gst::ElementFactory::make("punktfunksrc")
        .property("port", u32::from(port))
        .property("passphrase", "pw")
        .build()
        .expect("src");
    let (pipeline, bus) = play_into_fakesink(&src);
    let mut buf = [0u8; 2048];
    let (n, client) = listener.recv_from(&mut buf).expect("a hello");
    let hello = buf[..n].to_vec();
    // Forged: from another address (twice), then one from the listener's address.
    for _ in 0..2 {
        forger
            .send_to(&reject_for(&hello, 2), client)
            .expect("send");
    }
    listener
        .send_to(&reject_for(&hello, 2), client)
        .expect("send");
    // The src keeps trying: three more hellos arrive (600 ms of retries).
    for _ in 0..3 {
        let (n, _) = listener.recv_from(&mut buf).expect("the src keeps trying");
        assert_eq!(buf[1], 1, "a hello");
        assert!(n > 16);
    }
    let mut warned = false;
    while let Some(m) = bus.pop() {
        match m.view() {
            gst::MessageView::Error(e) => panic!("the src gave up: {}", e.error()),
            gst::MessageView::Warning(w) if w.error().message().contains("passphrase") => {
                warned = true
            }
            _ => {}
        }
    }
    assert!(
        warned,
        "the genuine-looking Reject is reported as a warning"
    );
    // A listener that refuses every hello for the timeout: an error. (Short reads: once
    // the src gave up no more hellos come, and the bus is checked between reads.)
    listener
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let err = reject_until_error(&listener, &bus);
    assert!(err.matches(gst::ResourceError::NotAuthorized), "{err}");
    pipeline.set_state(gst::State::Null).expect("null");
}

/// Forged Rejects while the host is silent (not started, restarting): a sniffer that answers
/// every hello with a Reject from the host's address (here: bound to the host's port) for a
/// second, nine or more, ends nothing: the src warns and keeps trying. Rejects that go on past
/// the src's `timeout` (3000 ms by default) end it with an error, and not before. Old
/// behaviour: an error after 1.04 s.
#[test]
fn src_outlasts_forged_rejects_while_the_host_is_silent() {
    init();
    let sniffer = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sniffer
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let port = sniffer.local_addr().expect("addr").port();
    let src = gst::ElementFactory::make("punktfunksrc")
        .property("port", u32::from(port))
        .property("passphrase", "pw")
        .build()
        .expect("src");
    assert_eq!(src.property::<u32>("timeout"), 3000);
    let (pipeline, bus) = play_into_fakesink(&src);
    let mut buf = [0u8; 2048];
    let no_error = |bus: &gst::Bus| {
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            let gst::MessageView::Error(e) = m.view() else {
                unreachable!()
            };
            panic!("the src gave up: {}", e.error());
        }
    };
    // A Reject for every hello for 1.2 s.
    let mut first = None;
    let mut forged = 0;
    let end = Instant::now() + WAIT;
    while first.is_none_or(|t: Instant| t.elapsed() < Duration::from_millis(1_200)) {
        assert!(Instant::now() < end, "no hellos");
        if let Ok((n, from)) = sniffer.recv_from(&mut buf) {
            first.get_or_insert_with(Instant::now);
            sniffer
                .send_to(&reject_for(&buf[..n], 2), from)
                .expect("send");
            forged += 1;
        }
        no_error(&bus);
    }
    assert!(forged >= 5, "{forged}");
    // Then silence: the src keeps sending hellos, with no error, until the timeout has passed
    // since the first forged Reject.
    let first = first.expect("a hello");
    let mut hellos = 0;
    while first.elapsed() < Duration::from_millis(3_300) {
        if let Ok((n, _)) = sniffer.recv_from(&mut buf) {
            assert_eq!(buf[1], 1, "a hello");
            assert!(n > 16);
            hellos += 1;
        }
        no_error(&bus);
    }
    assert!(hellos >= 5, "the src kept trying: {hellos} hellos");
    // Rejects past the timeout: an error.
    let err = reject_until_error(&sniffer, &bus);
    assert!(err.matches(gst::ResourceError::NotAuthorized), "{err}");
    assert!(first.elapsed() >= Duration::from_millis(3_000));
    pipeline.set_state(gst::State::Null).expect("null");
}
