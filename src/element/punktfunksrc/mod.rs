//! `punktfunksrc`: receives a punktfunk stream (repairing loss with FEC, decrypting,
//! reassembling) and pushes whole H.264 / H.265 access units, live, with caps taken from the
//! host's stream info. Upstream Navigation events and the `send-*` action signals travel back
//! to the host as input events. Also a URI handler for `punktfunk://[passphrase@]host:port`.

use gst::glib;

mod imp;
mod uri;

glib::wrapper! {
    /// The receiving element. See the module docs and the properties.
    pub(crate) struct PunktfunkSrc(ObjectSubclass<imp::PunktfunkSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}
