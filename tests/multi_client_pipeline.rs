//! Several `punktfunksrc` pipelines against one `punktfunksink max-clients=2`: both decode
//! frames of the one encoder, the bus names each client, `stats` lists them, a third caller is
//! refused until `disconnect-client` frees a slot, `give-control` hands input over.
//! Synchronisation on bus messages and pad probes only, with timeouts.

#[allow(dead_code)]
#[path = "pipelines/support.rs"]
mod support;

use gst::prelude::*;

use support::{Pipe, Tap, WAIT, bound_port, pad, serial, stat};

const CONNECTED: &str = "punktfunk-client-connected";
const DISCONNECTED: &str = "punktfunk-client-disconnected";
const REFUSED: &str = "punktfunk-peer-refused";

fn host(sink_props: &str) -> Pipe {
    Pipe::launch(
        "host",
        &format!(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
             ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! punktfunksink name=sink address=127.0.0.1 port=0 {sink_props}"
        ),
    )
}

fn client(name: &'static str, port: u16) -> Pipe {
    Pipe::launch(
        name,
        &format!(
            "punktfunksrc name=src port={port} ! h264parse ! avdec_h264 name=dec \
             ! fakesink name=out sync=false"
        ),
    )
}

/// A client playing, with a tap on its decoded pictures.
fn decoding(name: &'static str, port: u16) -> (Pipe, Tap<support::Au>) {
    let c = client(name, port);
    let tap = Tap::buffers(&pad(&c.el("dec"), "src"), false, "decoded pictures");
    c.play();
    (c, tap)
}

/// The id and address of the next `punktfunk-client-connected` message.
fn next_connected(h: &Pipe) -> (u64, String) {
    let s = h.wait_element(CONNECTED, WAIT);
    (s.get("id").unwrap(), s.get("address").unwrap())
}

#[test]
fn two_clients_decode_one_encoder_a_third_waits_for_a_free_slot() {
    let _serial = serial();
    let h = host("max-clients=2 input-from=first stats-interval=50");
    h.play();
    let sink = h.el("sink");
    let port = bound_port(&sink);

    let (a, a_pics) = decoding("client-a", port);
    let first = next_connected(&h);
    let (b, b_pics) = decoding("client-b", port);
    let second = next_connected(&h);
    assert_ne!(first.0, second.0);
    assert_ne!(first.1, second.1);
    // Both decode pictures of the one encoder.
    a_pics.wait_len(15, WAIT);
    b_pics.wait_len(15, WAIT);

    // The totals and one entry per client in `stats`.
    let stats = sink.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("clients").unwrap(), 2);
    let list = stats.get::<gst::Array>("client-list").unwrap();
    assert_eq!(list.len(), 2);
    let mut sent_per_client = 0;
    for c in list.iter() {
        let c = c.get::<gst::Structure>().unwrap();
        assert!(c.get::<u64>("frames-sent").unwrap() > 0);
        sent_per_client += c.get::<u64>("frames-sent").unwrap();
        let id = c.get::<u64>("id").unwrap();
        assert_eq!(c.get::<bool>("controls-input").unwrap(), id == first.0);
    }
    assert!(stat(&sink, "frames-sent") >= sent_per_client);

    // A third caller is refused as busy while both slots are taken.
    let (c, c_pics) = decoding("client-c", port);
    h.wait_element(REFUSED, WAIT);
    assert!(stat(&sink, "clients-refused") >= 1);
    assert_eq!(c_pics.len(), 0);

    // Disconnecting the first client ends its stream and lets the third one in.
    assert!(sink.emit_by_name::<bool>("disconnect-client", &[&first.0]));
    assert!(!sink.emit_by_name::<bool>("disconnect-client", &[&999u64]));
    a.wait_eos(WAIT);
    a.stop();
    let gone = h.wait_element(DISCONNECTED, WAIT);
    assert_eq!(gone.get::<u64>("id").unwrap(), first.0);
    let third = next_connected(&h);
    assert!(third.0 > second.0);
    c_pics.wait_len(10, WAIT);
    let b_before = b_pics.len();
    b_pics.wait_len(b_before + 10, WAIT);

    // The first client left: control passed to the second. The third watches: its input is
    // dropped and counted, the second's becomes a punktfunk-input message naming it.
    let button = |p: &Pipe, b: u32| {
        assert!(
            p.el("src")
                .emit_by_name::<bool>("send-gamepad-button", &[&0u32, &b, &true, &1.0f64])
        );
    };
    button(&c, 7);
    let dropped = h.wait("a stats message counting the watcher's input", WAIT, |m| {
        support::element_structure(m, "punktfunk-stats")
            .is_some_and(|s| s.get::<u64>("input-dropped-watching").unwrap_or(0) >= 1)
    });
    drop(dropped);
    button(&b, 3);
    let input = h.wait_element("punktfunk-input", WAIT);
    assert_eq!(input.get::<u64>("client-id").unwrap(), second.0);
    assert_eq!(input.get::<u32>("button").unwrap(), 3);

    // Hand control to the third.
    assert!(sink.emit_by_name::<bool>("give-control", &[&third.0]));
    assert!(!sink.emit_by_name::<bool>("give-control", &[&12345u64]));
    let stats = sink.property::<gst::Structure>("stats");
    let list = stats.get::<gst::Array>("client-list").unwrap();
    for c in list.iter() {
        let c = c.get::<gst::Structure>().unwrap();
        let id = c.get::<u64>("id").unwrap();
        assert_eq!(c.get::<bool>("controls-input").unwrap(), id == third.0);
    }

    for p in [&b, &c, &h] {
        p.stop();
    }
    h.assert_no_errors();
    b.assert_no_errors();
    c.assert_no_errors();
}

/// A free UDP port on 127.0.0.1 (bound, read back and released: SRT cannot read back port 0).
fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// The README's "beyond one machine" fan-out: one encoder `tee`d into punktfunksink and into
/// srtsink (towards an SRT relay or viewers); a punktfunksrc client and an srtsrc client both
/// decode pictures. Skipped where srtsink is not installed.
#[test]
fn one_encoder_feeds_punktfunksink_and_srtsink_side_by_side() {
    let _serial = serial();
    support::init();
    if gst::ElementFactory::find("srtsink").is_none()
        || gst::ElementFactory::find("tsdemux").is_none()
    {
        eprintln!("srtsink or tsdemux not installed: skipped");
        return;
    }
    let srt = free_udp_port();
    let h = Pipe::launch(
        "host",
        &format!(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
             ! video/x-h264,stream-format=byte-stream,alignment=au ! tee name=t \
             t. ! queue ! punktfunksink name=sink address=127.0.0.1 port=0 max-clients=4 \
             t. ! queue leaky=downstream max-size-time=200000000 ! mpegtsmux \
             ! srtsink uri=srt://127.0.0.1:{srt}?mode=listener wait-for-connection=false \
               sync=false async=false"
        ),
    );
    h.play();
    let port = bound_port(&h.el("sink"));
    let (punktfunk, pics) = decoding("punktfunk-client", port);
    let viewer = Pipe::launch(
        "srt-viewer",
        &format!(
            "srtsrc uri=srt://127.0.0.1:{srt}?mode=caller ! tsdemux ! h264parse \
             ! avdec_h264 name=dec ! fakesink sync=false"
        ),
    );
    let srt_pics = Tap::buffers(&pad(&viewer.el("dec"), "src"), false, "SRT pictures");
    viewer.play();
    pics.wait_len(10, WAIT);
    srt_pics.wait_len(10, WAIT);
    for p in [&punktfunk, &viewer, &h] {
        p.stop();
    }
    h.assert_no_errors();
}
