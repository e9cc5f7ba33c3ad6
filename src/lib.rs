//! punktfunk: low-latency, FEC-protected, encrypted transport of encoded video with an input
//! back channel, as a GStreamer plugin (`punktfunksink`, `punktfunksrc`) and as a Rust library
//! ([`session::Session`]) usable without GStreamer.
//!
//! Layers, top to bottom: the elements (thin, private to the crate, behind the default `gst`
//! feature), the [`session`] (one end of a stream), the sans-IO [`protocol`] and the
//! [`transport`] (UDP). Beside them, behind the `testing` feature, the test kit (`testkit`:
//! the in-memory pair, the impairment wrapper, the relay). `docs/ARCHITECTURE.md` has the whole
//! picture.
//!
//! Cargo features:
//! - `gst` (default): the GStreamer elements and the plugin entry points
//!   (`plugin_register_static`). Without it the crate builds no GStreamer crate at all.
//! - `testing`: the test kit, `testkit` — `relay` (a UDP relay with impairment), `impair`,
//!   `memory` and the seeded `rng`. Never part of the default build, so the plugin (`.so`)
//!   ships none of it.
//!
//! What is public, and why:
//! - [`session`]: the library API — `Session` (the driver), `Config`, `Event`, `Stats`, and the
//!   sans-IO `Connection` for applications that bring their own I/O loop.
//! - [`transport`]: the `Transport` trait and `UdpTransport`.
//! - `testkit` (with `testing`): the tools tests, benchmarks and examples build networks from.
//! - [`protocol`]: the sans-IO building blocks (wire layouts, packetizer, reassembler, FEC,
//!   handshake, estimators). Public so that property tests, fuzz targets and benchmarks — which
//!   are separate crates — can drive them directly; they are not a stable API of their own.
//! - The elements are private: GStreamer users reach them through the plugin.
//!
//! `unreachable_pub` keeps everything else private to the crate.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

#[cfg(feature = "gst")]
mod element;
pub mod protocol;
pub mod session;
pub(crate) mod sync;
#[cfg(feature = "testing")]
pub mod testkit;
pub mod transport;

#[cfg(feature = "gst")]
fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    element::register(plugin)
}

/// The plugin's entry points as GStreamer's macro generates them: the C descriptor a loader
/// finds by its symbol name, and [`plugin_register_static`].
#[cfg(feature = "gst")]
#[allow(missing_docs, unreachable_pub)]
mod plugin {
    use super::plugin_init;

    gst::plugin_define!(
        punktfunk,
        env!("CARGO_PKG_DESCRIPTION"),
        plugin_init,
        concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
        // The crate is "MIT OR Apache-2.0" (Cargo.toml). GStreamer refuses to load a plugin whose
        // licence is not one of the names it knows (LGPL, GPL, QPL, GPL/QPL, MPL, BSD, MIT/X11,
        // Proprietary, unknown); Apache-2.0 is not among them, and a recipient may take the crate
        // under MIT alone, so the right name of the two is "MIT/X11".
        "MIT/X11",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_REPOSITORY"),
        env!("BUILD_REL_DATE")
    );
}

/// Registers the plugin's elements with GStreamer in a program that links the crate (no plugin
/// loading from a path needed); call it once after `gst::init`.
#[cfg(feature = "gst")]
pub use plugin::plugin_register_static;
