//! Congestion control through real elements: `x264enc` → `punktfunksink` → a relay with a
//! bottleneck below the stream's rate → `punktfunksrc`. The sink must lower the encoder's
//! `bitrate` property, keep it within `[min-bitrate, the configured bitrate]`, and post
//! `punktfunk-bandwidth` messages that say so. Bounded by bus waits with timeouts; no sleeps.

#[allow(dead_code)]
#[path = "pipelines/support.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gst::prelude::*;

use gstpunktfunk::testkit::impair::ImpairConfig;
use gstpunktfunk::testkit::impair::netem::{BottleneckConfig, QueueLimit};
use gstpunktfunk::testkit::relay::{Relay, RelayConfig, RelayFlow};

use support::{Pipe, WAIT, bound_port, element_structure, serial};

const BANDWIDTH: &str = "punktfunk-bandwidth";
const PEER_CONNECTED: &str = "punktfunk-peer-connected";
const STATS: &str = "punktfunk-stats";

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A relay in front of the sink on `port` whose video direction has a `rate_bps` bottleneck
/// with a 50 ms drop-tail queue.
fn bottleneck_relay(port: u16, rate_bps: u64) -> Relay {
    Relay::start_with(RelayConfig {
        flows: vec![RelayFlow {
            listen: localhost(0),
            upstream: localhost(port),
            down: ImpairConfig::default(),
            up: ImpairConfig::default(),
        }],
        down_bottleneck: Some(
            BottleneckConfig::new(rate_bps).with_queue(QueueLimit::Time(Duration::from_millis(50))),
        ),
        up_bottleneck: None,
    })
    .expect("relay")
}

/// A live `pattern=snow` picture of `size` at 30 fps through x264 at `configured_kbps` into
/// `punktfunksink name=sink` with `sink_props`, through a `bottleneck_bps` relay to
/// `punktfunksrc ! fakesink`; returns once the host saw its peer.
fn snow_through_a_bottleneck(
    size: (u32, u32),
    configured_kbps: u32,
    sink_props: &str,
    bottleneck_bps: u64,
) -> (Pipe, Relay, Pipe) {
    let (width, height) = size;
    let host = Pipe::launch(
        "host",
        &format!(
            "videotestsrc is-live=true pattern=snow \
             ! video/x-raw,width={width},height={height},framerate=30/1 \
             ! x264enc name=enc tune=zerolatency speed-preset=ultrafast threads=1 key-int-max=60 \
               bitrate={configured_kbps} \
             ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! punktfunksink name=sink address=127.0.0.1 port=0 {sink_props}"
        ),
    );
    host.set(gst::State::Playing);
    let relay = bottleneck_relay(bound_port(&host.el("sink")), bottleneck_bps);
    let client = Pipe::launch(
        "client",
        &format!(
            "punktfunksrc name=src port={} ! fakesink name=out sync=false",
            relay.addr().port()
        ),
    );
    client.play();
    host.wait_element(PEER_CONNECTED, WAIT);
    (host, relay, client)
}

/// x264 configured at 4 Mbit/s on a high-entropy picture, through a 1.5 Mbit/s bottleneck with
/// a 50 ms drop-tail queue: the encoder's bitrate comes down below the bottleneck and stays in
/// bounds.
#[test]
fn the_encoders_bitrate_is_lowered_below_a_bottleneck_and_stays_within_bounds() {
    let _serial = serial();
    const CONFIGURED_KBPS: u32 = 4000;
    const MIN_BPS: u64 = 300_000;
    const BOTTLENECK_BPS: u64 = 1_500_000;
    let (host, _relay, client) = snow_through_a_bottleneck(
        (320, 240),
        CONFIGURED_KBPS,
        &format!("min-bitrate={MIN_BPS} encoder-buffer=34"),
        BOTTLENECK_BPS,
    );
    let sink = host.el("sink");
    let enc = host.el("enc");
    // The encoder's rate-control buffer was bounded at start (x264enc's default is 600 ms).
    assert_eq!(enc.property::<u32>("vbv-buf-capacity"), 34);

    // Wait (bounded) until the encoder is below the bottleneck; every update on the way must
    // keep the encoder within [min-bitrate, configured].
    let end = Instant::now() + Duration::from_secs(20);
    let mut updates = 0;
    let mut lowest = u64::MAX;
    while lowest >= BOTTLENECK_BPS {
        let left = end.saturating_duration_since(Instant::now());
        let m = host.wait("a punktfunk-bandwidth message", left, |m| {
            element_structure(m, BANDWIDTH).is_some()
        });
        let s = element_structure(&m, BANDWIDTH).expect("accepted above");
        let encoder = s.get::<u64>("encoder-bitrate").expect("encoder-bitrate");
        let target = s.get::<u64>("target-bitrate").expect("target-bitrate");
        assert!(s.get::<u64>("estimate").expect("estimate") > 0);
        assert!(s.get::<&str>("state").is_ok());
        assert!(s.get::<f64>("loss").is_ok());
        assert!(s.get::<u64>("rtt-us").is_ok());
        updates += 1;
        assert!(
            (MIN_BPS..=u64::from(CONFIGURED_KBPS) * 1000).contains(&encoder),
            "encoder set to {encoder} (target {target})"
        );
        let property = u64::from(enc.property::<u32>("bitrate")) * 1000;
        assert!(
            (MIN_BPS - 1000..=u64::from(CONFIGURED_KBPS) * 1000).contains(&property),
            "encoder property {property}"
        );
        lowest = lowest.min(property);
    }
    assert!(updates > 0);
    let stats = sink.property::<gst::Structure>("stats");
    let state = stats
        .get::<&str>("bwe-state")
        .expect("bwe-state")
        .to_owned();
    assert_ne!(state, "off");
    assert!(stats.get::<u64>("feedback-messages").expect("feedback") > 0);
    assert!(stats.get::<u64>("bwe-pacing-rate").expect("pacing") > 0);
    host.assert_no_errors();
    client.assert_no_errors();
    client.stop();
    host.stop();
}

/// `link-share=40`: the sink measures the bottleneck's rate from how it spreads each frame
/// (`bwe-link-rate`) and keeps the stream to 40 % of it, so the encoder ends well below the
/// rate the bottleneck alone would allow (about 3 Mbit/s of media through 4 Mbit/s).
#[test]
fn link_share_keeps_the_stream_to_its_share_of_the_measured_link() {
    let _serial = serial();
    const CONFIGURED_KBPS: u32 = 8000;
    const MIN_BPS: u64 = 200_000;
    const BOTTLENECK_BPS: u64 = 4_000_000;
    let (host, _relay, client) = snow_through_a_bottleneck(
        (640, 480),
        CONFIGURED_KBPS,
        &format!("min-bitrate={MIN_BPS} link-share=40 stats-interval=100"),
        BOTTLENECK_BPS,
    );
    let enc = host.el("enc");

    // Bounded: until three stats messages (every 100 ms) with the link measured found the
    // estimate within the share of it (the cap holds in every state) and the encoder at or
    // below half the bottleneck.
    let end = Instant::now() + Duration::from_secs(25);
    let mut checked = 0;
    while checked < 3 {
        let left = end.saturating_duration_since(Instant::now());
        let m = host.wait("a punktfunk-stats message", left, |m| {
            element_structure(m, STATS).is_some()
        });
        let stats = element_structure(&m, STATS).expect("accepted above");
        let property = u64::from(enc.property::<u32>("bitrate")) * 1000;
        assert!(
            (MIN_BPS - 1000..=u64::from(CONFIGURED_KBPS) * 1000).contains(&property),
            "encoder property {property}"
        );
        let link = stats.get::<u64>("bwe-link-rate").expect("bwe-link-rate");
        if link == 0 {
            continue;
        }
        assert!(
            (BOTTLENECK_BPS / 2..=BOTTLENECK_BPS * 3 / 2).contains(&link),
            "link rate {link} measured through a {BOTTLENECK_BPS} bottleneck"
        );
        let estimate = stats.get::<u64>("bwe-estimate").expect("bwe-estimate");
        let state = stats.get::<&str>("bwe-state").expect("bwe-state");
        assert!(
            estimate <= link * 45 / 100,
            "estimate {estimate} above 40 % of the link rate {link} ({state})"
        );
        if property <= BOTTLENECK_BPS / 2 {
            checked += 1;
        }
    }
    host.assert_no_errors();
    client.assert_no_errors();
    client.stop();
    host.stop();
}

/// With `congestion-control=none` the encoder keeps its bitrate and no message is posted, and
/// with `report` messages come but the encoder is left alone.
#[test]
fn none_leaves_the_encoder_alone_and_report_only_reports() {
    let _serial = serial();
    for mode in ["none", "report"] {
        let host = Pipe::launch(
            "host",
            &format!(
                "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1 \
                 ! x264enc name=enc tune=zerolatency speed-preset=ultrafast threads=1 bitrate=3000 \
                 ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! punktfunksink name=sink address=127.0.0.1 port=0 congestion-control={mode}"
            ),
        );
        host.set(gst::State::Playing);
        let sink = host.el("sink");
        let relay = bottleneck_relay(bound_port(&sink), 1_000_000);
        let client = Pipe::launch(
            "client",
            &format!(
                "punktfunksrc name=src port={} stats-interval=100 ! fakesink sync=false",
                relay.addr().port()
            ),
        );
        client.play();
        host.wait_element(PEER_CONNECTED, WAIT);
        // The client's feedback flows either way; 2 s of its stats messages bound the wait.
        for _ in 0..20 {
            client.wait_element("punktfunk-stats", WAIT);
        }
        let sent = client
            .el("src")
            .property::<gst::Structure>("stats")
            .get::<u64>("feedback-messages")
            .expect("feedback-messages");
        assert!(sent > 10, "{mode}: client sent {sent} feedback messages");
        let bandwidth_messages = host
            .messages()
            .iter()
            .filter(|m| element_structure(m, BANDWIDTH).is_some())
            .count();
        let enc_kbps = host.el("enc").property::<u32>("bitrate");
        assert_eq!(enc_kbps, 3000, "{mode}: the encoder is never steered");
        assert_eq!(
            host.el("enc").property::<u32>("vbv-buf-capacity"),
            600,
            "{mode}: the encoder's buffer is left alone"
        );
        let stats = sink.property::<gst::Structure>("stats");
        match mode {
            "none" => {
                assert_eq!(bandwidth_messages, 0);
                assert_eq!(stats.get::<&str>("bwe-state").unwrap(), "off");
                assert_eq!(stats.get::<u64>("bwe-pacing-rate").unwrap(), 0);
            }
            _ => {
                assert!(bandwidth_messages > 0, "report posts messages");
                assert_ne!(stats.get::<&str>("bwe-state").unwrap(), "off");
                assert_eq!(stats.get::<u64>("bwe-pacing-rate").unwrap(), 0);
                for m in host.messages() {
                    if let Some(s) = element_structure(&m, BANDWIDTH) {
                        assert_eq!(s.get::<u64>("encoder-bitrate").unwrap(), 0);
                    }
                }
            }
        }
        host.assert_no_errors();
        client.stop();
        host.stop();
    }
}

/// `encoder-buffer` bounds the encoder's rate-control buffer when the sink starts, before the
/// encoder's first frame (34 ms by default): never raising a smaller one the user set; 0 and
/// `report` leave it alone.
#[test]
fn the_encoder_buffer_is_bounded_at_start_and_never_raised() {
    let _serial = serial();
    for (props, vbv, expect) in [
        ("", "", 34u32),
        ("encoder-buffer=17", "", 17),
        ("encoder-buffer=100", "", 100),
        ("encoder-buffer=0", "", 600),
        ("encoder-buffer=100", "vbv-buf-capacity=20", 20),
        ("congestion-control=report encoder-buffer=34", "", 600),
        ("congestion-control=none", "", 600),
    ] {
        let host = Pipe::launch(
            "host",
            &format!(
                "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 \
                 ! x264enc name=enc tune=zerolatency speed-preset=ultrafast {vbv} \
                 ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! punktfunksink name=sink address=127.0.0.1 port=0 {props}"
            ),
        );
        host.set(gst::State::Paused);
        assert_eq!(
            host.el("enc").property::<u32>("vbv-buf-capacity"),
            expect,
            "`{props}` `{vbv}`"
        );
        host.assert_no_errors();
        host.stop();
    }
}
