//! The GStreamer elements, `punktfunksink` and `punktfunksrc`, and what they share.
//!
//! The elements translate and nothing more (see `docs/ARCHITECTURE.md`): caps ↔ stream info,
//! buffers ↔ frames, `ForceKeyUnit` ↔ keyframe requests, Navigation events ↔ input events,
//! properties ↔ [`crate::session::Config`], counters ↔ the `stats` structure. Each element's
//! own parts live in its folder; the shared parts live here, one module per concern, so neither
//! element copies the other:
//!
//! | module | owns |
//! |---|---|
//! | [`settings`] | the common properties' values and defaults, settings → session `Config` |
//! | [`properties`] | the common ParamSpecs, `set_property` / `property` for both elements |
//! | [`net`] | name resolution, endpoints, binding with errors a person can act on |
//! | [`session_slot`] | the running session, `stats` after stop, the bound port read back |
//! | [`peer`] | peer connected / gone / refused messages, the rate-limited handshake warning |
//! | [`stats`] | the `punktfunk-stats` structure and when it is posted |
//! | [`caps`] | pad templates, codec of caps |
//! | [`navigation`], [`input_message`] | input events ↔ Navigation events and `punktfunk-input` |
//! | [`capture_time`] | capture time → host clock, the host-timestamp meta, frame-age stats fields |
//! | [`punktfunksink`] | the sender: its properties, congestion control, encoder steering |
//! | [`punktfunksrc`] | the receiver: its properties, `punktfunk://` URIs |
//! | [`punktfunkurisrc`] | the bin that answers `punktfunk://` for playbin: video and audio as sometimes pads |
//!
//! Everything here is private to the crate: the public API of the elements is their
//! properties, signals and messages. Nothing in this module tree may be used by the session,
//! protocol or transport layers (they build without GStreamer); GStreamer-free logic such as
//! Annex-B parameter sets lives in [`crate::protocol`].

use crate::sync::lock;
use gst::glib;
use gst::prelude::*;

/// The `GstObjectImpl` and `ElementImpl` of a punktfunk element: its metadata, one
/// always-present pad named `$pad` in `$direction` with [`caps::stream_caps`] and the `audio`
/// pad template ([`caps::pad_templates`]); with `requests`, `request_new_pad` /
/// `release_pad` call the element's `request_pad_from` / `release_requested_pad` (the sink's
/// audio pad). A macro, as the metadata and templates must be statics of each element's own
/// `ElementImpl`.
macro_rules! impl_element_class {
    ($imp:ty, $long_name:literal, $classification:literal, $description:literal, $pad:literal, $direction:expr $(, $requests:ident)?) => {
        impl gst::subclass::prelude::GstObjectImpl for $imp {}

        impl gst::subclass::prelude::ElementImpl for $imp {
            fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
                static METADATA: std::sync::LazyLock<gst::subclass::ElementMetadata> =
                    std::sync::LazyLock::new(|| {
                        gst::subclass::ElementMetadata::new(
                            $long_name,
                            $classification,
                            $description,
                            "punktfunk developers",
                        )
                    });
                Some(&*METADATA)
            }

            fn pad_templates() -> &'static [gst::PadTemplate] {
                static TEMPLATES: std::sync::LazyLock<Vec<gst::PadTemplate>> =
                    std::sync::LazyLock::new(|| {
                        $crate::element::caps::pad_templates($pad, $direction)
                    });
                TEMPLATES.as_ref()
            }

            $(
                fn request_new_pad(
                    &self,
                    templ: &gst::PadTemplate,
                    name: Option<&str>,
                    _caps: Option<&gst::Caps>,
                ) -> Option<gst::Pad> {
                    let $requests = templ;
                    self.request_pad_from($requests, name)
                }

                fn release_pad(&self, pad: &gst::Pad) {
                    self.release_requested_pad(pad);
                }
            )?
        }
    };
}

mod caps;
mod capture_time;
mod input_message;
mod navigation;
mod net;
mod peer;
mod properties;
mod punktfunksink;
mod punktfunksrc;
mod punktfunkurisrc;
mod session_slot;
mod settings;
mod stats;

/// Longest single wait of the thread that polls a session (the sink's receive thread, the
/// src's `create`); it bounds how late a changed `stats-interval` takes effect.
const POLL_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// An integer value of any width as `u64`: `None` when `v` holds no integer, `Some(None)` when
/// it is negative (structures parsed from strings hold `gint`, properties any width).
fn unsigned_of(v: &glib::Value) -> Option<Option<u64>> {
    if let Ok(x) = v.get::<u32>() {
        Some(Some(x.into()))
    } else if let Ok(x) = v.get::<u64>() {
        Some(Some(x))
    } else if let Ok(x) = v.get::<i32>() {
        Some(u64::try_from(x).ok())
    } else if let Ok(x) = v.get::<i64>() {
        Some(u64::try_from(x).ok())
    } else {
        None
    }
}

/// The debug category of an element (`GST_DEBUG=punktfunksink:6`).
fn debug_category(name: &str, description: &str) -> gst::DebugCategory {
    gst::DebugCategory::new(name, gst::DebugColorFlags::empty(), Some(description))
}

/// Registers both elements and the types gst-inspect documents.
pub(crate) fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    settings::mark_plugin_api();
    punktfunksink::mark_plugin_api();
    // Encoders put `multiview-flags=(GstVideoMultiviewFlagsSet)...` into their caps. libgstvideo
    // registers that GType lazily, and a client process whose only other elements are, say,
    // h264parse ! nvh264dec may not have done so when punktfunksrc parses the host's caps
    // string — the parse then fails. Registering it here makes the parse independent of
    // whichever other plugins happen to be loaded (seen on an NVDEC-only client).
    // SAFETY: a plain GType getter with no arguments; safe to call after gst::init.
    unsafe {
        gst_video::ffi::gst_video_multiview_flagset_get_type();
    }
    register_element::<punktfunksink::PunktfunkSink>(plugin, "punktfunksink", gst::Rank::NONE)?;
    register_element::<punktfunksrc::PunktfunkSrc>(plugin, "punktfunksrc", gst::Rank::NONE)?;
    // Both answer `punktfunk://`; the higher rank wins where an element is made from a URI
    // (playbin, uridecodebin, gst-play-1.0), so they get the bin with its sometimes pads.
    register_element::<punktfunkurisrc::PunktfunkUriSrc>(
        plugin,
        "punktfunkurisrc",
        gst::Rank::PRIMARY,
    )?;
    Ok(())
}

fn register_element<T: StaticType>(
    plugin: &gst::Plugin,
    name: &str,
    rank: gst::Rank,
) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), name, rank, T::static_type())
}
