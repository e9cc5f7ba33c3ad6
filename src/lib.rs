//! punktfunk: low-latency, FEC-protected, encrypted transport of encoded video with an input
//! back channel, as a GStreamer plugin (`punktfunksink`, `punktfunksrc`) and as a Rust library
//! ([`session::Session`]) usable without GStreamer.
//!
//! Layers, top to bottom: the elements (thin), the [`session`] (one end of a stream), the
//! sans-IO [`protocol`] and the [`transport`] (UDP, in-memory, impairment).

pub mod common;
pub(crate) mod encoder;
pub mod protocol;
pub mod relay;
pub mod session;
pub mod sink;
pub mod src;
pub(crate) mod sync;
pub mod transport;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    common::mark_plugin_api();
    // Encoders put `multiview-flags=(GstVideoMultiviewFlagsSet)...` into their caps. libgstvideo
    // registers that GType lazily, and a client process whose only other elements are, say,
    // h264parse ! nvh264dec may not have done so when punktfunksrc parses the host's caps
    // string — the parse then fails. Registering it here makes the parse independent of
    // whichever other plugins happen to be loaded (seen on an NVDEC-only client).
    // SAFETY: a plain GType getter with no arguments; safe to call after gst::init.
    unsafe {
        gst_video::ffi::gst_video_multiview_flagset_get_type();
    }
    sink::register(plugin)?;
    src::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    punktfunk,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
