//! `punktfunksink`: sends H.264 / H.265 access units, and Opus packets from its `audio`
//! request pad, to one `punktfunksrc` over the punktfunk protocol (FEC-protected, paced,
//! encrypted) and turns what the client sends back into
//! upstream events: keyframe requests become `ForceKeyUnit`, input becomes Navigation events
//! and `punktfunk-input` element messages.
//!
//! | module | owns |
//! |---|---|
//! | `imp` | the `BaseSink`: `render`, the receive thread, start / stop, the audio pad's functions |
//! | `audio` | the `audio` request pad's state: caps check, segment, capture time, EOS of both pads |
//! | `settings` | the sink's own properties, their values and their part of the session `Config` |
//! | `congestion` | `congestion-control`: bandwidth messages, steering the encoder's bitrate |
//! | `encoder` | finding the upstream encoder, setting its bitrate and rate-control buffer |
//!
//! Nothing outside this folder uses these modules, except the plugin registration
//! ([`mark_plugin_api`]). They must never be used by `punktfunksrc`.

use gst::glib;

mod audio;
mod clients;
mod congestion;
mod encoder;
mod imp;
mod settings;

#[cfg(test)]
pub(crate) use settings::SinkSettings;
pub(crate) use settings::mark_plugin_api;

glib::wrapper! {
    /// The sending element. See the module docs and the properties.
    pub(crate) struct PunktfunkSink(ObjectSubclass<imp::PunktfunkSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}
