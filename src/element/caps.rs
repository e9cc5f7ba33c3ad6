//! The caps both elements carry — H.264 and H.265 byte-stream, one access unit per buffer —
//! and the codec a caps structure names.
//!
//! Owns: the pad templates. Must never: accept another stream format or alignment: the
//! protocol carries whole Annex-B access units, one per frame.

use crate::protocol::media::annexb::Codec;

/// The caps of both pads: H.264 and H.265 byte-stream, one access unit per buffer.
pub(crate) fn stream_caps() -> gst::Caps {
    let codec = |c: Codec| {
        gst::Structure::builder(c.media_type())
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build()
    };
    gst::Caps::builder_full()
        .structure(codec(Codec::H264))
        .structure(codec(Codec::H265))
        .build()
}

/// The codec of fixed caps, if they are one this plugin carries.
pub(crate) fn codec_of(caps: &gst::CapsRef) -> Option<Codec> {
    Codec::from_media_type(caps.structure(0)?.name().as_str())
}

/// The one always-present pad of an element, `name` in `direction`, with [`stream_caps`].
pub(crate) fn pad_templates(name: &str, direction: gst::PadDirection) -> Vec<gst::PadTemplate> {
    // The template is static and well-formed; failing here is a programming error.
    let template = gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &stream_caps())
        .expect("static pad template");
    vec![template]
}
