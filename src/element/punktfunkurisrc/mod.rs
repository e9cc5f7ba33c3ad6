//! `punktfunkurisrc`: the element that answers `punktfunk://` URIs for `playbin`,
//! `uridecodebin` and `gst-play-1.0`. A bin around one `punktfunksrc` (named `src`) that shows
//! the host's streams as sometimes pads, `video` and `audio`, and emits `no-more-pads` once it
//! knows which streams the host sends.
//!
//! Why a bin: `uridecodebin` and `urisourcebin` follow `pad-added` only on a source that has no
//! pads when they look at it, and `punktfunksrc`'s video pad is always there, so its `audio`
//! pad was never linked. This bin has no pads until the host's stream info and audio info
//! arrive (module `punktfunksrc::streams` decides when both are known, or when the other one
//! did not come within its bound).
//!
//! Owns: the ghost pads and when they appear. Must never: add a pad for the `audio` pad that
//! `punktfunksrc` shows for a host without audio (it only lets a linked branch preroll), or
//! leave the video pad unlinked once buffers can flow on it (`punktfunksrc` would stop with
//! not-linked).

use gst::glib;

mod imp;

glib::wrapper! {
    /// The `punktfunk://` URI source. See the module docs.
    pub(crate) struct PunktfunkUriSrc(ObjectSubclass<imp::PunktfunkUriSrc>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::URIHandler, gst::ChildProxy;
}
