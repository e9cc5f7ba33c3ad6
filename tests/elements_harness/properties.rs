//! Static checks of both elements: pad templates, metadata, every property's range and
//! default, and the URI handler.

use super::*;

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
        assert_eq!(templates.len(), 2);
        let t = &templates[0];
        assert_eq!(t.direction(), dir);
        assert_eq!(t.presence(), gst::PadPresence::Always);
        assert_eq!(t.caps(), expected, "{name} template caps");
        let a = &templates[1];
        assert_eq!(
            (a.name_template().to_string(), a.direction()),
            ("audio".to_string(), dir)
        );
        let presence = match dir {
            gst::PadDirection::Sink => gst::PadPresence::Request,
            _ => gst::PadPresence::Sometimes,
        };
        assert_eq!(a.presence(), presence, "{name} audio pad presence");
        assert_eq!(
            a.caps(),
            gst::Caps::from_str("audio/x-opus, rate=48000, channels=[1,2]").expect("caps"),
            "{name} audio template caps"
        );
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
    // Loss resilience.
    check_uint(&sink, "fec-floor", 0, 100, 5);
    check_uint(&sink, "fec-ceiling", 0, 200, 100);
    check_uint(&src, "repair-deadline", 0, 10_000, 0);
    // Audio: the src's A/V latency.
    check_uint(&src, "latency", 0, 5_000, 100);
    assert_eq!(sink.property::<f64>("fec-target"), 0.001);
    check_uint(&sink, "encoder-buffer", 0, 10_000, 34);
    // Congestion control.
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

#[test]
fn uri_handler() {
    init();
    let bin = gst::Element::make_from_uri(gst::URIType::Src, "punktfunk://127.0.0.1:7612", None)
        .expect("make_from_uri");
    assert_eq!(
        bin.factory().expect("factory").name(),
        "punktfunkurisrc",
        "playbin finds the bin with sometimes pads for punktfunk://"
    );
    let inner = bin
        .downcast_ref::<gst::Bin>()
        .expect("a bin")
        .by_name("src")
        .expect("its punktfunksrc");
    assert_eq!(inner.factory().expect("factory").name(), "punktfunksrc");
    assert_eq!(
        inner.property::<u32>("port"),
        7612,
        "the URI reaches the src"
    );
    let bh = bin
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("uri handler");
    assert_eq!(bh.uri().as_deref(), Some("punktfunk://127.0.0.1:7612"));
    assert!(bin.src_pads().is_empty(), "pads before the host's streams");

    // punktfunksrc keeps its own URI handling (gst-launch, applications that set a URI on it).
    let src = gst::ElementFactory::make("punktfunksrc")
        .build()
        .expect("src");
    let h = src
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("uri handler");
    assert_eq!(
        h.protocols().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["punktfunk"]
    );
    h.set_uri("punktfunk://127.0.0.1:7612").expect("uri");
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
