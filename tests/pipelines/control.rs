//! The back channel and the stream's ends: input reaching the host, EOS, and host and client
//! chains sharing one pipeline with default properties.

use super::*;

// ----- 3. input back to the host -----

#[test]
fn navigation_events_and_gamepad_signals_reach_the_host() {
    let _serial = serial();
    let host = live_host("");
    let sink = host.el("sink");
    // What the sink pushes upstream arrives at the pad that feeds it.
    let feeder = pad(&sink, "sink").peer().expect("linked");
    let upstream = Tap::upstream_events(&feeder, "upstream events at the host");
    host.play();
    let port = bound_port(&sink);
    // Input is delivered reliably and in order: send it through 5 % loss each way.
    let relay = Relay::start(
        localhost(0),
        localhost(port),
        iid_loss(0.05, 31),
        iid_loss(0.05, 32),
    )
    .expect("relay");
    let client = Pipe::launch(
        "client",
        &format!(
            "punktfunksrc name=src port={} ! fakesink name=out sync=false",
            relay.addr().port()
        ),
    );
    let src = client.el("src");
    let out_pad = pad(&client.el("out"), "sink");
    let frames = Tap::buffers(&out_pad, false, "frames at the client");
    client.play();
    frames.wait_len(1, WAIT);

    // Navigation events as a video sink's window sends them: upstream from downstream of the
    // src.
    let moves: Vec<(f64, f64)> = (0..12)
        .map(|i| (10.5 + i as f64, 200.25 - i as f64))
        .collect();
    for &(x, y) in &moves {
        assert!(
            out_pad.push_event(NavigationEvent::new_mouse_move(x, y).build()),
            "the src refused a mouse move"
        );
    }
    assert!(out_pad.push_event(NavigationEvent::new_key_press("a").build()));
    assert!(out_pad.push_event(NavigationEvent::new_mouse_button_press(1, 5.0, 6.0).build()));
    assert!(out_pad.push_event(NavigationEvent::new_key_release("a").build()));
    let n_nav = moves.len() + 3;

    // Each arrives once, in order, as a punktfunk-input message ...
    let mut inputs = Vec::new();
    while inputs.len() < n_nav {
        inputs.push(host.wait_element(INPUT, WAIT));
    }
    for (s, &(x, y)) in inputs.iter().zip(&moves) {
        assert_eq!(s.get::<String>("type").unwrap(), "mouse-move", "{s}");
        assert_eq!(s.get::<f64>("x").unwrap(), x, "{s}");
        assert_eq!(s.get::<f64>("y").unwrap(), y, "{s}");
    }
    let tail = &inputs[moves.len()..];
    assert_eq!(tail[0].get::<String>("type").unwrap(), "key-press");
    assert_eq!(tail[0].get::<String>("key").unwrap(), "a");
    assert_eq!(tail[1].get::<String>("type").unwrap(), "mouse-button-press");
    assert_eq!(tail[1].get::<u32>("button").unwrap(), 1);
    assert_eq!(tail[1].get::<f64>("x").unwrap(), 5.0);
    assert_eq!(tail[2].get::<String>("type").unwrap(), "key-release");

    // ... and as an upstream Navigation event at the host, in the same order.
    let navs = upstream.wait_count(n_nav, WAIT, is_navigation);
    let parsed: Vec<NavigationEvent> = navs
        .iter()
        .map(|e| NavigationEvent::parse(e).expect("navigation event"))
        .collect();
    for (p, &(x, y)) in parsed.iter().zip(&moves) {
        if let NavigationEvent::MouseMove { x: px, y: py, .. } = *p {
            assert_eq!((px, py), (x, y));
        } else {
            panic!("expected a mouse move at ({x}, {y}), got {p:?}");
        }
    }
    assert!(
        matches!(&parsed[moves.len()], NavigationEvent::KeyPress { key, .. } if key == "a"),
        "{:?}",
        parsed[moves.len()]
    );
    assert!(
        matches!(
            parsed[moves.len() + 1],
            NavigationEvent::MouseButtonPress { button: 1, x, y, .. } if x == 5.0 && y == 6.0
        ),
        "{:?}",
        parsed[moves.len() + 1]
    );
    assert!(
        matches!(&parsed[moves.len() + 2], NavigationEvent::KeyRelease { key, .. } if key == "a"),
        "{:?}",
        parsed[moves.len() + 2]
    );

    // Gamepads through the action signals: a punktfunk-input message with the fields.
    assert!(src.emit_by_name::<bool>("send-gamepad-button", &[&1u32, &3u32, &true, &0.75f64]));
    let s = host.wait_element(INPUT, WAIT);
    assert_eq!(s.get::<String>("type").unwrap(), "gamepad-button", "{s}");
    assert_eq!(s.get::<u32>("pad").unwrap(), 1, "{s}");
    assert_eq!(s.get::<u32>("button").unwrap(), 3, "{s}");
    assert!(s.get::<bool>("pressed").unwrap(), "{s}");
    assert_eq!(s.get::<f64>("value").unwrap(), 0.75, "{s}");
    assert!(src.emit_by_name::<bool>("send-gamepad-axis", &[&0u32, &2u32, &-0.5f64]));
    let s = host.wait_element(INPUT, WAIT);
    assert_eq!(s.get::<String>("type").unwrap(), "gamepad-axis", "{s}");
    assert_eq!(s.get::<u32>("pad").unwrap(), 0, "{s}");
    assert_eq!(s.get::<u32>("axis").unwrap(), 2, "{s}");
    assert_eq!(s.get::<f64>("value").unwrap(), -0.5, "{s}");

    assert_eq!(stat(&sink, "input-received"), n_nav as u64 + 2);
    client.assert_no_errors();
    host.assert_no_errors();
}

// ----- 4. EOS -----

#[test]
fn eos_on_the_host_ends_the_client_with_eos() {
    let _serial = serial();
    let host = live_host("");
    let sink = host.el("sink");
    host.play();
    let client = decoding_client(&H264, bound_port(&sink), "");
    let decoded = Tap::buffers(&pad(&client.el("out"), "sink"), false, "decoded frames");
    client.play();
    decoded.wait_len(5, WAIT);
    assert!(host.pipeline.send_event(gst::event::Eos::new()));
    let t = Instant::now();
    host.wait_eos(WAIT);
    // The bye ends the client at once, well within its 3 s peer timeout.
    client.wait_eos(Duration::from_secs(2));
    eprintln!("client EOS {:.1?} after the host's EOS", t.elapsed());
    client.assert_no_errors();
    host.assert_no_errors();
}

// ----- 4b. host and client in one pipeline, default properties -----

/// A host chain and a client chain side by side in one pipeline, every punktfunk property at
/// its default (but the listener's loopback address and its free port): the pipeline reaches
/// PLAYING and frames decode. With BaseSink's defaults (`sync=true`, `async=true`) this
/// deadlocked — the sink waited in preroll while the client chain's sink waited for a frame the
/// sink held; the client's `fakesink` here keeps its own defaults (`sync=true`) as
/// an application's video sink would.
#[test]
fn host_and_client_in_one_pipeline_play_with_default_properties() {
    let _serial = serial();
    let pipe = Pipe::launch(
        "loopback",
        &format!(
            "{host} punktfunksrc name=src ! {parse} ! {dec} ! fakesink name=out",
            host = host_desc(&H264, "", 30, "", ""),
            parse = H264.parse,
            dec = H264.dec,
        ),
    );
    let sink = pipe.el("sink");
    let src = pipe.el("src");
    // The src calls the port the sink bound, as notify::port announces it from the sink's
    // start() — before the src starts, since a bin starts its sinks first.
    call_the_sinks_port(&sink, &src);
    let decoded = Tap::buffers(&pad(&pipe.el("out"), "sink"), false, "decoded frames");
    pipe.play();
    let timeout = gst::ClockTime::try_from(WAIT).expect("a clock time");
    let (reached, state, _) = pipe.pipeline.state(timeout);
    assert!(reached.is_ok(), "state change failed: {:?}", pipe.errors());
    assert_eq!(state, gst::State::Playing, "the pipeline reaches PLAYING");
    assert_eq!(src.property::<u32>("port"), u32::from(bound_port(&sink)));
    decoded.wait_len(30, WAIT);
    assert!(stat(&src, "frames-received") >= 30);
    pipe.assert_no_errors();
}
