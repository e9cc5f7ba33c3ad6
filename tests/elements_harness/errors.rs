//! Errors a user can cause: conflicting settings, a port in use, an unresolvable peer, and
//! the bound port read back after start.

use super::*;

/// Puts `e` alone in a pipeline, tries PAUSED, and returns the error posted.
fn start_error(e: &gst::Element) -> glib::Error {
    let pipeline = gst::Pipeline::new();
    pipeline.add(e).expect("add");
    let bus = pipeline.bus().expect("bus");
    assert!(
        pipeline.set_state(gst::State::Paused).is_err(),
        "state change must fail"
    );
    let msg = wait_bus(&bus, "an error", |m| {
        matches!(m.view(), gst::MessageView::Error(_))
    });
    let _ = pipeline.set_state(gst::State::Null);
    match msg.view() {
        gst::MessageView::Error(err) => err.error(),
        _ => unreachable!(),
    }
}

#[test]
fn encrypt_false_with_passphrase_is_refused() {
    init();
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name)
            .property("address", "127.0.0.1")
            .property("port", 0u32)
            .property("passphrase", "secret")
            .property("encrypt", false)
            .build()
            .expect("element");
        if name == "punktfunksrc" {
            e.set_property_from_str("mode", "listener");
        }
        let err = start_error(&e);
        assert!(err.matches(gst::ResourceError::Settings), "{err:?}");
        assert!(
            err.message().contains("encrypt=false") && err.message().contains("passphrase"),
            "{}",
            err.message()
        );
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    init();
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name)
            .property("address", "127.0.0.1")
            .property("port", u32::from(port))
            .build()
            .expect("element");
        e.set_property_from_str("mode", "listener");
        let err = start_error(&e);
        assert!(err.matches(gst::ResourceError::OpenReadWrite), "{err:?}");
        let text = err.message();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")) && text.contains("in use"),
            "{text}"
        );
    }
    drop(taken);
}

#[test]
fn caller_with_unresolvable_address_fails_clearly() {
    init();
    let e = gst::ElementFactory::make("punktfunksrc")
        .property("address", "no such host name.invalid")
        .property("port", 9u32)
        .build()
        .expect("src");
    let err = start_error(&e);
    assert!(
        err.message().contains("no such host name.invalid"),
        "{}",
        err.message()
    );
}

#[test]
fn bound_port_reads_back_after_start() {
    init();
    for name in ["punktfunksink", "punktfunksrc"] {
        let e = gst::ElementFactory::make(name)
            .property("address", "127.0.0.1")
            .property("port", 0u32)
            .build()
            .expect("element");
        e.set_property_from_str("mode", "listener");
        let pipeline = gst::Pipeline::new();
        pipeline.add(&e).expect("add");
        // READY → PAUSED runs start(); a live src returns NO_PREROLL, a sink goes async.
        assert!(pipeline.set_state(gst::State::Paused).is_ok());
        let port = e.property::<u32>("bound-port");
        assert_ne!(port, 0, "{name}");
        // It is a real bound port: binding it again fails.
        assert!(UdpSocket::bind(("127.0.0.1", port as u16)).is_err());
        assert_eq!(stats_of(&e).get::<u32>("bound-port").expect("field"), port);
        pipeline.set_state(gst::State::Null).expect("null");
        assert_eq!(e.property::<u32>("bound-port"), 0);
        // The socket is closed again.
        assert!(UdpSocket::bind(("127.0.0.1", port as u16)).is_ok());
    }
}

/// Records the value of `property` each time `notify::property` fires on `e`.
fn record_notify(e: &gst::Element, property: &'static str) -> Arc<Mutex<Vec<u32>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    e.connect_notify(Some(property), move |e, _| {
        log.lock().expect("lock").push(e.property::<u32>(property));
    });
    seen
}

#[test]
fn port_zero_reads_back_the_bound_port_with_notify_on_both_elements_in_both_modes() {
    init();
    // Stands in for a listener a caller sends to (nothing needs to answer).
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    let peer_port = u32::from(peer.local_addr().expect("addr").port());
    for name in ["punktfunksink", "punktfunksrc"] {
        for mode in ["listener", "caller"] {
            let e = gst::ElementFactory::make(name)
                .property("address", "127.0.0.1")
                .build()
                .expect("element");
            e.set_property_from_str("mode", mode);
            // A listener binds `port`; a caller sends to `port` from `bind-port`.
            let (local, set) = if mode == "listener" {
                ("port", 0)
            } else {
                e.set_property("port", peer_port);
                ("bind-port", 0)
            };
            e.set_property(local, set);
            let notified = record_notify(&e, local);
            let alias_notified = record_notify(&e, "bound-port");
            let pipeline = gst::Pipeline::new();
            pipeline.add(&e).expect("add");
            assert!(pipeline.set_state(gst::State::Paused).is_ok());

            let bound = e.property::<u32>(local);
            let what = format!("{name} {mode} {local}");
            assert_ne!(bound, 0, "{what} reads back the bound port");
            assert_eq!(e.property::<u32>("bound-port"), bound, "{what}: alias");
            assert!(
                UdpSocket::bind(("127.0.0.1", bound as u16)).is_err(),
                "{what}: bound"
            );
            assert_eq!(*notified.lock().expect("lock"), [bound], "{what}: notify");
            assert_eq!(
                *alias_notified.lock().expect("lock"),
                [bound],
                "{what}: alias notify"
            );
            if mode == "caller" {
                assert_eq!(
                    e.property::<u32>("port"),
                    peer_port,
                    "{what}: port is the peer's"
                );
            }

            // Stopped, it reads the setting again (a restart binds a fresh free port) and
            // says so.
            pipeline.set_state(gst::State::Null).expect("null");
            assert_eq!(e.property::<u32>(local), set, "{what} after stop");
            assert_eq!(
                *notified.lock().expect("lock"),
                [bound, set],
                "{what}: notify at stop"
            );
        }
    }
}
