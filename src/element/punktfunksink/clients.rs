//! `punktfunksink` with several clients (`max-clients` above 1): the bus messages that name
//! each client on connect and disconnect, and the action signals that hand input control to a
//! client and disconnect one.
//!
//! Owns the names and fields of `punktfunk-client-connected` / `punktfunk-client-disconnected`
//! and of the `give-control` / `disconnect-client` signals. Must never: decide who controls or
//! who is admitted (the session does), or block.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::element::peer::post_element_message;
use crate::session::{Event, PeerEvent, PeerId};

/// Posted when a client's session is up: `id` (guint64), `address`, `clients` (connected now).
pub(crate) const CLIENT_CONNECTED_NAME: &str = "punktfunk-client-connected";
/// Posted when a client is gone: `id`, `address`, `reason`, `clients`.
pub(crate) const CLIENT_DISCONNECTED_NAME: &str = "punktfunk-client-disconnected";

/// Posts the client message `ev` calls for, if any (several clients only).
pub(crate) fn post_client_message(element: &gst::Element, ev: &PeerEvent, clients: usize) {
    let (Some(id), Some(addr)) = (ev.peer, ev.addr) else {
        return;
    };
    let (name, reason) = match &ev.event {
        Event::Connected { .. } => (CLIENT_CONNECTED_NAME, None),
        Event::Disconnected { reason } => (CLIENT_DISCONNECTED_NAME, Some(format!("{reason:?}"))),
        _ => return,
    };
    let mut s = gst::Structure::builder(name)
        .field("id", id.0)
        .field("address", addr.to_string())
        .field("clients", clients as u32)
        .build();
    if let Some(r) = reason {
        s.set("reason", r.to_lowercase());
    }
    post_element_message(element, s);
}

/// The sink's action signals: `give-control(guint64 id) -> gboolean` and
/// `disconnect-client(guint64 id) -> gboolean` (false when no such client is connected).
pub(crate) fn signals() -> Vec<glib::subclass::Signal> {
    vec![
        glib::subclass::Signal::builder("give-control")
            .param_types([u64::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| Some(on_signal(args, |s, id| s.give_input_control(id)).into()))
            .build(),
        glib::subclass::Signal::builder("disconnect-client")
            .param_types([u64::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| Some(on_signal(args, |s, id| s.disconnect_peer(id)).into()))
            .build(),
    ]
}

fn on_signal(
    args: &[glib::Value],
    f: impl FnOnce(&crate::session::Session, PeerId) -> crate::session::Result<bool>,
) -> bool {
    let Some(sink) = args
        .first()
        .and_then(|a| a.get::<super::PunktfunkSink>().ok())
    else {
        return false;
    };
    let Some(id) = args.get(1).and_then(|a| a.get::<u64>().ok()) else {
        return false;
    };
    let Some(session) = sink.imp().session() else {
        return false;
    };
    f(&session, PeerId(id)).unwrap_or(false)
}
