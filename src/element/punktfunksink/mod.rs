//! `punktfunksink`: sends H.264 / H.265 access units to one `punktfunksrc` over the punktfunk
//! protocol (FEC-protected, paced, encrypted) and turns what the client sends back into
//! upstream events: keyframe requests become `ForceKeyUnit`, input becomes Navigation events
//! and `punktfunk-input` element messages.

use gst::glib;

pub(super) mod congestion;
mod encoder;
mod imp;

glib::wrapper! {
    /// The sending element. See the module docs and the properties.
    pub(crate) struct PunktfunkSink(ObjectSubclass<imp::PunktfunkSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}
