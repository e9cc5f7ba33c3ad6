//! Traffic from `punktfunksink` to a library client session: frames out, client events in.

use super::*;

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
