//! `punktfunksrc`: receives a punktfunk stream (repairing loss with FEC, decrypting,
//! reassembling) and pushes whole H.264 / H.265 access units, live, with caps taken from the
//! host's stream info, and the host's Opus packets on an `audio` sometimes pad (also added, with
//! only a GAP, for a host that turns out to send no audio, so a linked audio branch prerolls).
//! Upstream Navigation events and the `send-*` action signals travel back to the host as input
//! events. Also a URI handler for `punktfunk://[passphrase@]host:port` (at rank none: playbin
//! gets the `punktfunkurisrc` bin around this element, which shows both streams).
//!
//! | module | owns |
//! |---|---|
//! | `imp` | the `PushSrc`: `create`, session events → caps / buffers / EOS, action signals |
//! | `audio` | the `audio` sometimes pad, its thread, gaps for lost packets |
//! | `streams` | which streams the host sends, decided once per start |
//! | `timeline` | capture time → PTS of both pads, the A/V arrival skew |
//! | `settings` | the src's own properties, their values and their part of the session `Config` |
//! | `uri` | parsing and printing `punktfunk://` URIs |
//!
//! Nothing outside this folder uses these modules; they must never be used by `punktfunksink`.

use gst::glib;

mod audio;
mod imp;
mod settings;
mod streams;
mod timeline;
mod uri;

pub(crate) use streams::StreamsNews;
pub(crate) use uri::URI_SCHEME;

glib::wrapper! {
    /// The receiving element. See the module docs and the properties.
    pub(crate) struct PunktfunkSrc(ObjectSubclass<imp::PunktfunkSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

impl PunktfunkSrc {
    /// `hook` is told what the src learns of the host's streams (see [`StreamsNews`]); from the
    /// thread that learns it, before the caps and buffers it announces go out.
    pub(crate) fn set_streams_hook(&self, hook: impl Fn(StreamsNews) + Send + Sync + 'static) {
        use gst::subclass::prelude::ObjectSubclassIsExt;
        self.imp().set_streams_hook(Some(std::sync::Arc::new(hook)));
    }
}
