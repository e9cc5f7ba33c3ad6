//! Traffic from a library host session to `punktfunksrc`: frames in, input out, wrong
//! passphrase, stop, pause and caps renegotiation.

use super::*;

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
