//! Loss: access units byte-exact through 5 % loss with every frame decoded, an unrecoverable
//! loss healed through a requested keyframe, a lost stream-info sent again.

use super::*;

// ----- 1. byte-exact through 5 % loss, every frame decoded -----

/// Encodes `FRAMES` frames, sends them through a relay losing 5 % of datagrams each way, and
/// checks that the client pushes exactly the host's access units and decodes every frame.
fn every_frame_survives_five_percent_loss(codec: &Codec, seed: u64) {
    const FRAMES: usize = 120;
    let _serial = serial();
    let t0 = Instant::now();
    // FEC at 100 % and 600-byte datagrams: with at least 2 parity shards a block, a frame of k
    // data shards is lost only when more than k of its 2k shards are. The smallest frames here
    // (~5 kB) have k ≥ 9, so a frame is lost with p < 1e-8 at 5 % iid loss — "every frame" is
    // a fair assertion. (At the default 20 % and 1400 bytes, k ≈ 4..8 with 2 parity shards
    // fails ~1e-3 of frames: some run would lose one.)
    let host = Pipe::launch(
        "host",
        &host_desc(
            codec,
            &format!("num-buffers={FRAMES}"),
            60,
            "",
            "fec-percent=100 mtu=600",
        ),
    );
    let sink = host.el("sink");
    let sink_in = pad(&sink, "sink");
    let sent = Tap::buffers(&sink_in, true, "access units at the sink");
    // Hold the first access unit (a keyframe) before the sink until the client is connected,
    // so the host sends every frame it encodes, starting with a keyframe. Caps pass (only
    // buffers block), so the stream info travels in the handshake.
    let feeder = sink_in.peer().expect("the sink is linked");
    let (blocked_tx, blocked) = mpsc::channel();
    let block = feeder
        .add_probe(
            gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER,
            move |_, _| {
                let _ = blocked_tx.send(());
                gst::PadProbeReturn::Ok
            },
        )
        .expect("blocking probe");
    host.play();
    blocked
        .recv_timeout(WAIT)
        .expect("the first access unit reaches the sink");
    let port = bound_port(&sink);

    let relay = Relay::start(
        localhost(0),
        localhost(port),
        iid_loss(0.05, seed),
        iid_loss(0.05, seed + 1),
    )
    .expect("relay");
    let client = decoding_client(codec, relay.addr().port(), "");
    let src = client.el("src");
    let received = Tap::buffers(&pad(&src, "src"), true, "access units from the src");
    let decoded = Tap::buffers(&pad(&client.el("out"), "sink"), false, "decoded frames");
    client.play();
    host.wait_element(PEER_CONNECTED, WAIT);
    feeder.remove_probe(block);

    // Host EOS (num-buffers) → bye → EOS at the client, after the decoder drained.
    client.wait_eos(Duration::from_secs(30));
    host.wait_eos(WAIT);

    let sent = sent.items();
    let received = received.items();
    assert_eq!(
        sent.len(),
        FRAMES,
        "the encoder produced {FRAMES} access units"
    );
    let (wire, with_parameter_sets) = on_the_wire(codec.bitstream, &sent);
    assert!(sent[0].keyframe(), "the host starts with a keyframe");
    assert_eq!(stat(&sink, "frames-sent"), FRAMES as u64);
    assert_eq!(stat(&sink, "frames-dropped-no-peer"), 0);
    assert_eq!(
        received.len(),
        sent.len(),
        "the client pushed {} of {} access units",
        received.len(),
        sent.len()
    );
    for (i, (s, r)) in wire.iter().zip(&received).enumerate() {
        assert!(
            s.data == r.data,
            "access unit {i} differs: sent {s:?} (key {}), received {r:?} (key {})",
            s.keyframe(),
            r.keyframe()
        );
        assert_eq!(
            s.keyframe(),
            r.keyframe(),
            "keyframe flag of access unit {i}"
        );
    }
    assert!(
        !received.iter().any(is_broken_delta),
        "a delta unit carried DISCONT"
    );
    assert_eq!(
        decoded.len(),
        FRAMES,
        "{} decoded {} of {FRAMES} frames",
        codec.dec,
        decoded.len()
    );

    // The loss was real and the FEC repaired it.
    let down = relay.down_stats();
    assert!(down.dropped > 0, "the relay dropped nothing: {down:?}");
    let recovered = stat(&src, "fec-recovered");
    assert!(recovered > 0, "nothing recovered by FEC");
    assert_eq!(stat(&src, "frames-lost"), 0);
    client.assert_no_errors();
    host.assert_no_errors();
    eprintln!(
        "{}: {FRAMES} frames byte-exact ({with_parameter_sets} keyframes with parameter sets \
         prepended) and decoded through 5 % loss ({} of {} datagrams dropped, {recovered} shards \
         recovered) in {:.1?}",
        codec.name,
        down.dropped,
        down.sent,
        t0.elapsed()
    );
}

#[test]
fn h264_every_frame_arrives_byte_exact_and_decodes_through_5pct_loss() {
    every_frame_survives_five_percent_loss(&H264, 0x2640);
}

#[test]
fn h265_every_frame_arrives_byte_exact_and_decodes_through_5pct_loss() {
    every_frame_survives_five_percent_loss(&H265, 0x2650);
}

// ----- 2. an unrecoverable loss heals -----

#[test]
fn unrecoverable_loss_heals_through_a_requested_keyframe() {
    let _serial = serial();
    let t0 = Instant::now();
    // No periodic keyframes (key-int-max is huge): after the first, every keyframe the encoder
    // makes was forced by a ForceKeyUnit. A moving ball, so no two access units are alike.
    let host = Pipe::launch(
        "host",
        &host_desc(&H264, "pattern=ball", 30, "key-int-max=100000", ""),
    );
    let sink = host.el("sink");
    let sent = Tap::buffers(&pad(&sink, "sink"), true, "access units at the sink");
    let at_encoder = Tap::upstream_events(&pad(&host.el("enc"), "src"), "upstream events");
    host.play();
    let port = bound_port(&sink);
    let relay = DropRelay::start(localhost(port)).expect("relay");
    let client = decoding_client(&H264, relay.addr().port(), "");
    let src = client.el("src");
    let received = Tap::buffers(&pad(&src, "src"), true, "access units from the src");
    let decoded = Tap::buffers(&pad(&client.el("out"), "sink"), false, "decoded frames");
    client.play();
    decoded.wait_len(15, WAIT);

    let requests_before = stat(&src, "keyframe-requests");
    let fku_before = at_encoder.count(is_force_key_unit);
    let keyframes_received_before = received.count(Au::keyframe);
    let host_keyframes_before = sent.count(Au::keyframe);
    let held_back_before = stat(&src, "frames-dropped-waiting-keyframe");
    // A burst far beyond the parity of any frame (ball frames are 1..3 data shards + 2 parity).
    const BURST: u64 = 60;
    let t_loss = Instant::now();
    relay.drop_next_down(BURST);

    // Healing: a keyframe arrives after the loss, and decoding goes on from it.
    received.wait_count(keyframes_received_before + 1, WAIT, Au::keyframe);
    let decoded_at_heal = decoded.len();
    decoded.wait_len(decoded_at_heal + 10, WAIT);
    let healed_after = t_loss.elapsed();

    assert_eq!(relay.pending_drops(), 0);
    assert_eq!(relay.dropped(), BURST);
    let requests = stat(&src, "keyframe-requests");
    assert!(
        requests > requests_before,
        "the src requested no keyframe after the loss ({requests_before} → {requests})"
    );
    let fkus = at_encoder.wait_count(fku_before + 1, WAIT, is_force_key_unit);
    for e in &fkus {
        let f = gst_video::UpstreamForceKeyUnitEvent::parse(e).expect("force key unit");
        assert!(f.all_headers, "ForceKeyUnit without all-headers: {f:?}");
    }
    let host_keyframes = sent.count(Au::keyframe);
    assert!(
        host_keyframes > host_keyframes_before,
        "the encoder made no keyframe after the ForceKeyUnit"
    );

    // What the src pushed: the host's access units, byte-exact, with the lost stretch left out
    // up to a keyframe. (The received list is taken first: everything in it was sent already.)
    let received = received.items();
    let sent = sent.items();
    assert!(
        !received.iter().any(is_broken_delta),
        "a delta unit carried DISCONT"
    );
    let (wire, _) = on_the_wire(Bitstream::H264, &sent);
    let gaps = check_gaps_heal_at_keyframes(&wire, &received);
    assert!(
        gaps >= 1,
        "the burst of {BURST} datagrams lost no frame (nothing was left out)"
    );
    let held_back = stat(&src, "frames-dropped-waiting-keyframe");
    assert!(
        held_back > held_back_before,
        "no delta frame was held back after the loss ({held_back_before} → {held_back})"
    );
    client.assert_no_errors();
    host.assert_no_errors();
    let dec_warnings = client.warnings_from("dec");
    assert!(
        dec_warnings.is_empty(),
        "the decoder saw broken input: {dec_warnings:#?}"
    );
    eprintln!(
        "loss healed: {gaps} gap(s), keyframe requests {requests_before} → {requests}, \
         ForceKeyUnit {fku_before} → {}, {} delta frames held back; decoding resumed {:.1?} \
         after the loss ({:.1?} in all)",
        fkus.len(),
        held_back - held_back_before,
        healed_after,
        t0.elapsed()
    );
}

/// A client that connects before the host has caps gets the stream info in a control
/// datagram rather than in the handshake; when that datagram is lost, the host must send it
/// again (after the client's next loss report) so the client can start.
#[test]
fn lost_stream_info_is_sent_again() {
    let _serial = serial();
    let host = live_host("");
    let sink = host.el("sink");
    let sent = Tap::buffers(&pad(&sink, "sink"), false, "access units at the sink");
    // Hold everything — caps included — before the sink until the client is connected.
    let feeder = pad(&sink, "sink").peer().expect("linked");
    let (blocked_tx, blocked) = mpsc::channel();
    let block = feeder
        .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, move |_, _| {
            let _ = blocked_tx.send(());
            gst::PadProbeReturn::Ok
        })
        .expect("blocking probe");
    host.play();
    blocked.recv_timeout(WAIT).expect("data reaches the sink");
    let relay = DropRelay::start(localhost(bound_port(&sink))).expect("relay");
    let client = decoding_client(&H264, relay.addr().port(), "");
    let src = client.el("src");
    let decoded = Tap::buffers(&pad(&client.el("out"), "sink"), false, "decoded frames");
    client.play();
    host.wait_element(PEER_CONNECTED, WAIT);
    client.wait_element(PEER_CONNECTED, WAIT);
    assert_eq!(stat(&sink, "frames-sent"), 0);
    // Lose what the host sends from its caps (the stream info) to its third frame.
    relay.drop_all_down();
    feeder.remove_probe(block);
    sent.wait_len(3, WAIT);
    relay.stop_dropping();
    assert!(relay.dropped() >= 3, "dropped only {}", relay.dropped());
    decoded.wait_len(5, WAIT);
    assert!(stat(&src, "frames-dropped-waiting-keyframe") > 0);
    client.assert_no_errors();
    host.assert_no_errors();
}
