//! Audio through real elements: `audiotestsrc ! opusenc` → `punktfunksink`'s `audio` pad →
//! a relay with loss → `punktfunksrc`'s `audio` pad → `opusdec plc=true`. Opus packets arrive
//! byte-exact where not lost, a burst the FEC cannot repair becomes a gap the decoder
//! conceals, caps other than Opus are refused with an error that says what to change, the pad
//! can be requested and released while playing, a session may carry audio alone, with
//! `sync=true` on both client sinks a frame and a click of one instant play together, playbin
//! plays both streams of a `punktfunk://` URI, and a client whose audio branch waits for a host
//! without audio still reaches PLAYING.
//!
//! Bounded by waits with timeouts on buffers and bus messages; no sleeps; port 0.

#[allow(dead_code)]
#[path = "pipelines/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "../benches/av_sync/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use gst::prelude::*;
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::Relay;

use support::{Au, DropRelay, Pipe, Tap, WAIT, bound_port, pad, serial, stat};

const STATS: &str = "punktfunk-stats";

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const VIDEO: &str = "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 \
     ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
     ! video/x-h264,stream-format=byte-stream,alignment=au";

const OPUS: &str = "audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 \
     ! opusenc frame-size=5";

const SINK: &str = "punktfunksink name=sink address=127.0.0.1 port=0";

/// Video and audio into one sink.
fn av_host() -> Pipe {
    Pipe::launch("host", &format!("{VIDEO} ! {SINK}  {OPUS} ! sink.audio"))
}

/// `punktfunksrc` (named `src`) calling `port`, its video decoded into `vout` unless
/// `audio_only`, its audio through `opusdec plc=true` (named `adec`) into `aout`.
fn client(port: u16, audio_only: bool) -> Pipe {
    let video = if audio_only {
        ""
    } else {
        "! h264parse ! avdec_h264 ! fakesink name=vout sync=false"
    };
    Pipe::launch(
        "client",
        &format!(
            "punktfunksrc name=src port={port} stats-interval=100 {video} \
             src.audio ! opusdec plc=true name=adec ! fakesink name=aout sync=false"
        ),
    )
}

fn iid_loss(p: f64, seed: u64) -> ImpairConfig {
    ImpairConfig {
        seed,
        loss: LossModel::Iid(p),
        ..ImpairConfig::default()
    }
}

/// Waits (on the periodic stats messages) until `field` of `e`'s stats reaches `min`.
fn wait_stat(p: &Pipe, e: &gst::Element, field: &str, min: u64) -> u64 {
    let end = std::time::Instant::now() + WAIT;
    loop {
        let v = stat(e, field);
        if v >= min {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "{field} stayed at {v} (< {min})"
        );
        p.wait_element(STATS, WAIT);
    }
}

/// Whether `received` is `sent` with some packets left out, in order, each byte-exact.
fn is_subsequence(received: &[Au], sent: &[Au]) -> Result<(), String> {
    let mut at = 0;
    for (i, r) in received.iter().enumerate() {
        match sent[at..].iter().position(|s| s.data == r.data) {
            Some(k) => at += k + 1,
            None => {
                return Err(format!(
                    "received packet {i} ({r:?}) was never sent (or out of order)"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn opus_packets_arrive_byte_exact_through_loss_and_a_burst_is_concealed() {
    let _serial = serial();
    let host = av_host();
    let sink = host.el("sink");
    let sent = Tap::buffers(&pad(&sink, "audio"), true, "Opus packets into the sink");
    host.play();
    // client → burst dropper → 5 % iid loss each way → host
    let relay = Relay::start(
        localhost(0),
        localhost(bound_port(&sink)),
        iid_loss(0.05, 22),
        iid_loss(0.05, 23),
    )
    .expect("relay");
    let burst = DropRelay::start(relay.addr()).expect("burst relay");
    let client = client(burst.addr().port(), false);
    let src = client.el("src");
    client.play();
    let adec = client.el("adec");
    let received = Tap::buffers(&pad(&adec, "sink"), true, "Opus packets out of the src");
    let decoded = Tap::buffers(&pad(&client.el("aout"), "sink"), false, "decoded audio");
    received.wait_len(200, WAIT);
    // 80 datagrams in a row (~250 ms of this stream): more than an audio FEC block and its
    // parity can repair.
    burst.drop_next_down(80);
    wait_stat(&client, &src, "audio-packets-concealed", 1);
    let n = received.len();
    received.wait_len(n + 200, WAIT);
    // Every packet opusdec got so far comes out decoded (concealment adds more): waited for
    // before stopping, since the packets it is decoding at the stop never come out.
    let got = received.len();
    decoded.wait_len(got, WAIT);
    client.stop();
    host.stop();

    let sent = sent.items();
    let received = received.items();
    is_subsequence(&received, &sent).unwrap_or_else(|e| panic!("{e}"));
    assert!(received.len() < sent.len(), "nothing was lost");
    assert!(decoded.len() >= got, "opusdec decoded less than it got");
    assert!(relay.down_stats().dropped > 0, "the relay dropped nothing");
    let delivered = stat(&src, "audio-packets-received") + stat(&src, "audio-packets-recovered");
    assert!(delivered >= received.len() as u64, "{delivered} delivered");
    assert!(
        stat(&src, "audio-packets-recovered") > 0,
        "FEC recovered nothing"
    );
    assert!(stat(&src, "audio-packets-lost") > 0);
    assert!(stat(&src, "audio-packets-concealed") > 0);
    assert!(stat(&sink, "audio-packets-sent") >= received.len() as u64);
    client.assert_no_errors();
    host.assert_no_errors();
}

/// An `appsrc` pushing `caps` into the audio pad: the sink posts an error saying what it takes.
fn refused(caps: &str) -> String {
    let _serial = serial();
    let host = Pipe::launch(
        "host",
        &format!("{SINK} appsrc name=a format=time is-live=true ! sink.audio"),
    );
    let appsrc = host.el("a").downcast::<gst_app::AppSrc>().expect("appsrc");
    appsrc.set_caps(Some(&caps.parse::<gst::Caps>().expect("caps")));
    host.play();
    let mut b = gst::Buffer::with_size(960).expect("buffer");
    b.get_mut()
        .expect("new buffer")
        .set_pts(gst::ClockTime::ZERO);
    let _ = appsrc.push_buffer(b);
    let m = host.wait("the sink's error", WAIT, |m| {
        matches!(m.view(), gst::MessageView::Error(_))
            && m.src().is_some_and(|s| s.name() == "sink")
    });
    let gst::MessageView::Error(e) = m.view() else {
        unreachable!("accepted above")
    };
    e.error().to_string()
}

#[test]
fn raw_audio_on_the_audio_pad_is_refused_with_a_message_naming_opusenc() {
    let msg = refused("audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2");
    assert!(msg.contains("The audio pad takes Opus packets"), "{msg}");
    assert!(msg.contains("opusenc"), "{msg}");
    assert!(msg.contains("audio/x-raw"), "{msg}");
}

#[test]
fn opus_with_six_channels_is_refused_with_a_message_naming_the_limit() {
    let msg = refused("audio/x-opus,rate=48000,channels=6,channel-mapping-family=1");
    assert!(msg.contains("one or two channels"), "{msg}");
}

#[test]
fn audio_pad_requested_and_released_while_playing() {
    let _serial = serial();
    let host = Pipe::launch("host", &format!("{VIDEO} ! {SINK}"));
    let sink = host.el("sink");
    host.play();
    // No audio yet: the src's audio pad lets the audio sink preroll on a gap.
    let client = client(bound_port(&sink), false);
    let frames = Tap::buffers(&pad(&client.el("vout"), "sink"), false, "decoded frames");
    let audio = Tap::buffers(&pad(&client.el("aout"), "sink"), false, "decoded audio");
    client.play();
    wait_playing(&client);
    frames.wait_len(10, WAIT);

    let apad = sink.request_pad_simple("audio").expect("the audio pad");
    let templ = sink.pad_template("audio").expect("audio template");
    assert!(
        sink.request_pad(&templ, None, None).is_none(),
        "a second audio pad was handed out"
    );
    let branch = gst::parse::bin_from_description(OPUS, true).expect("audio branch");
    host.pipeline.add(&branch).expect("add");
    branch
        .static_pad("src")
        .expect("ghost pad")
        .link(&apad)
        .expect("link to the audio pad");
    branch.sync_state_with_parent().expect("branch plays");
    audio.wait_len(50, WAIT);

    branch.set_state(gst::State::Null).expect("branch stops");
    host.pipeline.remove(&branch).expect("remove");
    sink.release_request_pad(&apad);
    assert!(
        sink.static_pad("audio").is_none(),
        "released pad still there"
    );
    let n = frames.len();
    frames.wait_len(n + 10, WAIT);
    let again = sink.request_pad_simple("audio");
    assert!(again.is_some(), "no audio pad after a release");
    client.assert_no_errors();
    host.assert_no_errors();
}

#[test]
fn audio_only_session_plays_and_ends_with_eos_on_both_sides() {
    let _serial = serial();
    let host = Pipe::launch("host", &format!("{SINK}  {OPUS} ! sink.audio"));
    let sink = host.el("sink");
    host.play();
    let client = client(bound_port(&sink), true);
    let audio = Tap::buffers(&pad(&client.el("aout"), "sink"), false, "decoded audio");
    client.play();
    audio.wait_len(100, WAIT);
    assert!(stat(&client.el("src"), "frames-received") == 0);
    host.pipeline.send_event(gst::event::Eos::new());
    host.wait_eos(WAIT);
    client.wait_eos(WAIT);
    client.assert_no_errors();
    host.assert_no_errors();
}

fn assert_in_sync(loss: f64) {
    let _serial = serial();
    let r = harness::run(loss, Duration::from_secs(4), 7);
    assert!(
        r.skews_us.len() >= 2,
        "marks matched on both sinks: {} (video {}, audio {}, sent {})",
        r.skews_us.len(),
        r.video_marks,
        r.audio_marks,
        r.marks_sent
    );
    for s in &r.skews_us {
        assert!(
            s.abs() <= 10_000,
            "click and frame of one instant played {s} µs apart: {:?}",
            r.skews_us
        );
    }
}

#[test]
fn frame_and_click_of_one_instant_play_within_10_ms_with_sync() {
    assert_in_sync(0.0);
}

#[test]
fn frame_and_click_of_one_instant_play_within_10_ms_with_sync_at_5_percent_loss() {
    assert_in_sync(0.05);
}

/// Waits until the pipeline itself reports PLAYING (every sink prerolled).
fn wait_playing(p: &Pipe) {
    let pipeline = p.pipeline.clone();
    p.wait("the pipeline in PLAYING", WAIT, |m| match m.view() {
        gst::MessageView::StateChanged(s) => {
            m.src() == Some(pipeline.upcast_ref()) && s.current() == gst::State::Playing
        }
        _ => false,
    });
}

/// A `fakesink` for playbin and a tap on its buffers, each checked to be `media` (decoded).
fn decoded_sink(name: &str, media: &'static str) -> (gst::Element, Tap<Au>) {
    let sink = gst::ElementFactory::make("fakesink")
        .name(name)
        .property("sync", false)
        .build()
        .expect("fakesink");
    let sink_pad = pad(&sink, "sink");
    let tap = Tap::buffers(&sink_pad, false, name);
    sink_pad.add_probe(gst::PadProbeType::BUFFER, move |p, _| {
        let caps = p.current_caps().expect("a buffer without caps");
        let name = caps.structure(0).map(|s| s.name().to_string());
        assert_eq!(name.as_deref(), Some(media), "not decoded: {caps}");
        gst::PadProbeReturn::Ok
    });
    (sink, tap)
}

/// `playbin` on the host's `punktfunk://` URI, into a video and an audio `fakesink`.
fn playbin(port: u16) -> (Pipe, Tap<Au>, Tap<Au>) {
    let (video_sink, frames) = decoded_sink("vsink", "video/x-raw");
    let (audio_sink, sound) = decoded_sink("asink", "audio/x-raw");
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", format!("punktfunk://127.0.0.1:{port}"))
        .property("video-sink", &video_sink)
        .property("audio-sink", &audio_sink)
        .build()
        .expect("playbin");
    let pipe = Pipe::wrap(
        "playbin",
        playbin
            .downcast::<gst::Pipeline>()
            .expect("playbin is a pipeline"),
    );
    (pipe, frames, sound)
}

/// The source element playbin made for the URI.
fn playbin_source(p: &Pipe) -> gst::Element {
    p.pipeline
        .property::<Option<gst::Element>>("source")
        .expect("playbin's source")
}

#[test]
fn playbin_plays_picture_and_sound_of_a_host_that_sends_both() {
    let _serial = serial();
    let host = av_host();
    host.play();
    let (client, frames, sound) = playbin(bound_port(&host.el("sink")));
    client.play();
    frames.wait_len(30, WAIT);
    sound.wait_len(100, WAIT);
    wait_playing(&client);
    assert_eq!(playbin_source(&client).type_().name(), "GstPunktfunkUriSrc");
    client.assert_no_errors();
    host.assert_no_errors();
}

#[test]
fn playbin_plays_the_picture_of_a_host_without_audio() {
    let _serial = serial();
    let host = Pipe::launch("host", &format!("{VIDEO} ! {SINK}"));
    host.play();
    let (client, frames, sound) = playbin(bound_port(&host.el("sink")));
    client.play();
    frames.wait_len(30, WAIT);
    wait_playing(&client);
    let pads: Vec<String> = playbin_source(&client)
        .src_pads()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(pads, ["video"], "the bin shows only the host's video");
    assert_eq!(sound.len(), 0, "sound from a host without audio");
    client.assert_no_errors();
    host.assert_no_errors();
}

#[test]
fn playbin_plays_the_sound_of_a_host_without_video() {
    let _serial = serial();
    let host = Pipe::launch("host", &format!("{SINK}  {OPUS} ! sink.audio"));
    host.play();
    let (client, frames, sound) = playbin(bound_port(&host.el("sink")));
    client.play();
    sound.wait_len(100, WAIT);
    wait_playing(&client);
    assert_eq!(frames.len(), 0, "pictures from a host without video");
    client.assert_no_errors();
    host.assert_no_errors();
}

#[test]
fn a_client_linking_audio_reaches_playing_and_shows_video_when_the_host_sends_none() {
    let _serial = serial();
    let host = Pipe::launch("host", &format!("{VIDEO} ! {SINK}"));
    host.play();
    // The README's client, with an audio sink that prerolls (async, sync=true), as
    // autoaudiosink does.
    let client = Pipe::launch(
        "client",
        &format!(
            "punktfunksrc name=src port={} ! h264parse ! avdec_h264 ! fakesink name=vout sync=false \
             src.audio ! opusdec plc=true ! fakesink name=aout sync=true",
            bound_port(&host.el("sink"))
        ),
    );
    let frames = Tap::buffers(&pad(&client.el("vout"), "sink"), false, "decoded frames");
    client.play();
    wait_playing(&client);
    let n = frames.len();
    frames.wait_len(n + 30, WAIT);
    assert!(
        client.el("src").static_pad("audio").is_some(),
        "no audio pad for the audio branch to preroll on"
    );
    client.assert_no_errors();
    host.assert_no_errors();
}
