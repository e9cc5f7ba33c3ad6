//! Start-up over a wide-area path: host and client pipelines through the project's impairment
//! relay with 30 ms one-way delay, 5 ms jitter and Gilbert-Elliott bursts on both directions.
//!
//! What they show: a host chain and a client chain in one pipeline, beside a local preview
//! branch, play after a slow handshake (a pipeline whose sinks preroll must not wait on a
//! picture that only its own blocked branch can send); an intra-refresh H.264 stream recovers
//! from an unrecoverable loss with the src's defaults.
//!
//! Synchronisation is on pad probes and bus messages only, with timeouts; every port is
//! ephemeral. The tests run one at a time (see [`support::serial`]).

#[allow(dead_code)]
#[path = "pipelines/support.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use gst::prelude::*;
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel, LossTrace};
use gstpunktfunk::testkit::relay::Relay;
use gstpunktfunk::testkit::rng::Rng;

use support::{Pipe, Tap, WAIT, bound_port, pad, serial, stat};

/// Gilbert-Elliott bursts of the path: enter 2 %, leave 20 % (≈ 9 % loss in bursts of
/// 5 datagrams), all lost in the bad state.
const ENTER: f64 = 0.02;
const LEAVE: f64 = 0.2;

/// Datagrams in a loss trace; it loops when exhausted (far beyond any test's traffic).
const TRACE_LEN: usize = 200_000;

/// One direction of the path: 30 ms ± 5 ms, the first `lost_first` datagrams lost (a burst
/// that starts with the session, the slow handshake), then seeded Gilbert-Elliott bursts.
fn wan(seed: u64, lost_first: usize) -> ImpairConfig {
    let mut rng = Rng::new(seed);
    let mut random = move || rng.next_f64();
    let mut bad = false;
    let outcomes = (0..TRACE_LEN).map(|i| {
        if i < lost_first {
            return None;
        }
        let lost = bad;
        bad = if bad {
            random() >= LEAVE
        } else {
            random() < ENTER
        };
        (!lost).then_some(Duration::ZERO)
    });
    ImpairConfig {
        seed,
        loss: LossModel::trace(LossTrace::from_outcomes(outcomes).expect("non-empty trace")),
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(5),
        ..ImpairConfig::default()
    }
}

/// A relay in front of `listener_port`, impairing both ways.
fn wan_relay(listener_port: u16, seed: u64, lost_first: usize) -> Relay {
    Relay::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::from(([127, 0, 0, 1], listener_port)),
        wan(seed, lost_first),
        wan(seed ^ 0x5eed_5eed, lost_first),
    )
    .expect("relay")
}

/// A live test pattern → x264enc → `tee`: one branch to `punktfunksink` (named `sink`,
/// listening on an ephemeral port), one to a local preview `fakesink` (named `local`, default
/// properties, so it prerolls) behind a short queue; beside it `punktfunksrc` (named `src`) →
/// parser → decoder → `fakesink` (named `out`, default properties).
fn one_pipeline_with_a_preview() -> Pipe {
    Pipe::launch(
        "one pipeline",
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! tee name=t \
         t. ! queue ! punktfunksink name=sink address=127.0.0.1 port=0 \
         t. ! queue max-size-buffers=3 max-size-bytes=0 max-size-time=0 ! fakesink name=local \
         punktfunksrc name=src port=1 ! h264parse ! avdec_h264 ! fakesink name=out",
    )
}

/// Host and client in one pipeline with a local preview branch, through a path with delay,
/// jitter and bursts whose first datagrams each way are lost (the handshake takes several
/// retries): pictures decode and the preview runs. Before the client's first picture the
/// pipeline is not yet PLAYING, so the preview sink holds its first buffer; once its queue
/// is full the `tee` stops the encoder, and without the source's preroll gap at the stream
/// info the client's sink never prerolls: no picture at all, `frames-sent` stays 0.
#[test]
fn one_pipeline_with_a_preview_plays_after_a_slow_handshake_over_a_wan_path() {
    let _serial = serial();
    let pipe = one_pipeline_with_a_preview();
    let (sink, src) = (pipe.el("sink"), pipe.el("src"));
    let decoded = Tap::buffers(&pad(&pipe.el("out"), "sink"), false, "decoded pictures");
    let preview = Tap::buffers(&pad(&pipe.el("local"), "sink"), false, "preview frames");
    // The caller stays in NULL until the relay in front of the listener exists.
    src.set_locked_state(true);
    pipe.set(gst::State::Paused);
    let relay = wan_relay(bound_port(&sink), 19, 4);
    src.set_property("port", u32::from(relay.addr().port()));
    src.set_locked_state(false);
    pipe.play();
    decoded.wait_len(30, WAIT);
    preview.wait_len(30, WAIT);
    assert!(
        stat(&sink, "frames-sent") >= 30,
        "{}",
        stat(&sink, "frames-sent")
    );
    let hellos = stat(&src, "handshakes-sent");
    assert!(
        hellos > 1,
        "the handshake was not slowed down: {hellos} hello(s)"
    );
    let (up, down) = (relay.up_stats(), relay.down_stats());
    assert!(up.dropped >= 4 && down.dropped >= 4, "{up:?} {down:?}");
    pipe.assert_no_errors();
}

/// `x264enc intra-refresh=true` (periodic intra refresh instead of IDR keyframes: no large
/// frame ever) through an unrecoverable loss, the client asks for a
/// keyframe, the encoder answers the ForceKeyUnit with a new refresh wave whose first frame it
/// marks as a sync point, the src takes that as the keyframe it waits for, and decoding goes on.
/// Default src properties apart from `repair=false`, which makes the loss unrecoverable.
#[test]
fn intra_refresh_stream_recovers_from_an_unrecoverable_loss() {
    let _serial = serial();
    let host = Pipe::launch(
        "host",
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc name=enc tune=zerolatency speed-preset=ultrafast intra-refresh=true key-int-max=30 \
         ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! punktfunksink name=sink address=127.0.0.1 port=0",
    );
    let sink = host.el("sink");
    let sent = Tap::buffers(&pad(&sink, "sink"), false, "access units at the sink");
    host.play();
    let relay = support::DropRelay::start(SocketAddr::from(([127, 0, 0, 1], bound_port(&sink))))
        .expect("relay");
    let client = Pipe::launch(
        "client",
        &format!(
            // Repair off: the 60 datagrams dropped below must stay lost (on loopback a repair
            // round is fast enough to win some of them back, and then nothing waits for a
            // sync point), so that this shows the recovery without a keyframe.
            "punktfunksrc name=src port={} repair=false ! h264parse ! avdec_h264 name=dec ! fakesink name=out",
            relay.addr().port()
        ),
    );
    let src = client.el("src");
    let received = Tap::buffers(&pad(&src, "src"), false, "access units from the src");
    let decoded = Tap::buffers(&pad(&client.el("out"), "sink"), false, "decoded pictures");
    client.play();
    decoded.wait_len(15, WAIT);
    let sync_points_before = received.count(support::Au::keyframe);
    let sent_sync_before = sent.count(support::Au::keyframe);
    let held_before = stat(&src, "frames-dropped-waiting-keyframe");
    relay.drop_next_down(60);
    received.wait_count(sync_points_before + 1, WAIT, support::Au::keyframe);
    let n = decoded.len();
    decoded.wait_len(n + 30, WAIT);
    eprintln!(
        "intra refresh: sync points sent {} -> {}, received {} -> {}, held back {} -> {}, \
         keyframe requests {}",
        sent_sync_before,
        sent.count(support::Au::keyframe),
        sync_points_before,
        received.count(support::Au::keyframe),
        held_before,
        stat(&src, "frames-dropped-waiting-keyframe"),
        stat(&src, "keyframe-requests"),
    );
    assert_eq!(relay.dropped(), 60);
    assert!(stat(&src, "frames-dropped-waiting-keyframe") > held_before);
    client.assert_no_errors();
    host.assert_no_errors();
}
