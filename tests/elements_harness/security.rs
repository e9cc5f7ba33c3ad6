//! Security of the elements: unauthenticated listeners and forged rejects.

use super::*;

/// A sink listening on 0.0.0.0 without a passphrase refuses to start with
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

/// A forged Reject does not stop the src. Rejects from another address, or
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
