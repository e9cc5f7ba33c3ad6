//! The properties both elements have (their ParamSpecs, with blurbs that state units and
//! defaults — what gst-inspect shows), declared once for both; and the GObject plumbing,
//! `set_property` and `property` over an element's [`Settings`] (behind its lock) and its
//! [`SessionSlot`] (for the values read back from the running session), together a [`Core`].
//! Each element declares its own properties in its folder's `settings` module.
//!
//! Owns: the common ParamSpecs, the order in which a property is looked up (running session
//! first, then the settings, then the ParamSpec's default) and the log line of every change.
//! Whether a property takes effect while running is its ParamSpec's `mutable_playing` flag and
//! nothing else. Must never: log the passphrase's value, or hold the settings lock while reading
//! the session slot.

use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;

use super::lock;
use super::session_slot::SessionSlot;
use super::settings::{
    ConnectionMode, DEFAULT_BIND_ADDRESS, DEFAULT_BIND_PORT, DEFAULT_CALLER_ADDRESS,
    DEFAULT_ENCRYPT, DEFAULT_LISTENER_ADDRESS, DEFAULT_PORT, DEFAULT_STATS_INTERVAL_MS,
    DEFAULT_TIMEOUT_MS, OwnSettings, Settings,
};

/// What the shared property plumbing works on: an element's settings, behind their lock, and
/// its session slot.
pub(crate) struct Core<O> {
    pub(crate) settings: Mutex<Settings<O>>,
    pub(crate) slot: SessionSlot,
    cat: gst::DebugCategory,
}

impl<O: OwnSettings> Core<O> {
    /// Default settings, no session; `cat` is the element's debug category.
    pub(crate) fn new(cat: gst::DebugCategory) -> Self {
        Core {
            settings: Mutex::new(Settings::default()),
            slot: SessionSlot::new(O::ROLE),
            cat,
        }
    }

    /// A copy of the settings (taken before any work, so no lock is held while it runs).
    pub(crate) fn settings(&self) -> Settings<O> {
        lock(&self.settings).clone()
    }

    /// Sets a property, logging the change at debug level (never the passphrase's value).
    /// While running, a property whose ParamSpec is not `mutable_playing` also gets a warning:
    /// it takes effect at the next start.
    pub(crate) fn set_property(
        &self,
        obj: &gst::Object,
        value: &glib::Value,
        pspec: &glib::ParamSpec,
    ) {
        let (cat, name) = (self.cat, pspec.name());
        if name == "passphrase" {
            gst::debug!(cat, obj = obj, "passphrase set");
        } else {
            gst::debug!(cat, obj = obj, "set {name} = {value:?}");
        }
        if self.slot.is_running() && !pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING) {
            gst::warning!(
                cat,
                obj = obj,
                "{name} changed while running: takes effect at the next start"
            );
        }
        if !lock(&self.settings).set_property(value, pspec) {
            gst::warning!(cat, obj = obj, "unknown property {name}");
        }
    }

    /// Reads a property: a value of the running session (`stats`, `bound-port`, the bound
    /// `port` / `bind-port`), else the setting.
    pub(crate) fn property(&self, pspec: &glib::ParamSpec) -> glib::Value {
        self.slot
            .runtime_property(pspec)
            .or_else(|| lock(&self.settings).property(pspec))
            // GObject only asks for readable properties the element installed.
            .unwrap_or_else(|| pspec.default_value().clone())
    }
}

/// The properties both elements have, with `default_mode` as the `mode` default.
pub(crate) fn common_properties(default_mode: ConnectionMode) -> Vec<glib::ParamSpec> {
    let addr_default = match default_mode {
        ConnectionMode::Listener => DEFAULT_LISTENER_ADDRESS,
        ConnectionMode::Caller => DEFAULT_CALLER_ADDRESS,
    };
    vec![
        glib::ParamSpecEnum::builder_with_default("mode", default_mode)
            .nick("Mode")
            .blurb(&format!(
                "listener: bind address:port and wait for the peer; caller: contact the listener at address:port (default {})",
                match default_mode {
                    ConnectionMode::Listener => "listener",
                    ConnectionMode::Caller => "caller",
                }
            ))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("address")
            .nick("Address")
            .blurb(
                "listener: local address to bind (default 0.0.0.0); caller: the listener's host name or IP address (default 127.0.0.1). IPv6 allowed",
            )
            .default_value(Some(addr_default))
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("port")
            .nick("Port")
            .blurb(
                "UDP port. listener: port to bind (0 = any free port); while running it reads back the port actually bound (notify::port). caller: the listener's port (default 7600)",
            )
            .maximum(u32::from(u16::MAX))
            .default_value(DEFAULT_PORT)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("bind-address")
            .nick("Bind address")
            .blurb(
                "caller only: local address to send from (default 0.0.0.0, or :: when the listener's address is IPv6)",
            )
            .default_value(Some(DEFAULT_BIND_ADDRESS))
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("bind-port")
            .nick("Bind port")
            .blurb(
                "caller only: local UDP port to send from (0 = any free port, the default); while running a caller reads back the port actually bound (notify::bind-port)",
            )
            .maximum(u32::from(u16::MAX))
            .default_value(DEFAULT_BIND_PORT)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("passphrase")
            .nick("Passphrase")
            .blurb(
                "Shared secret that authenticates the peer and keys the session (write-only, never logged). Empty (default): media is still encrypted with ephemeral keys, but the peer is not authenticated",
            )
            .write_only()
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("encrypt")
            .nick("Encrypt")
            .blurb(
                "Encrypt media and input (default true). false sends plaintext for debugging and captures; refused together with a passphrase",
            )
            .default_value(DEFAULT_ENCRYPT)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("timeout")
            .nick("Timeout")
            .blurb(
                "Milliseconds without any datagram from the peer before it counts as gone; a caller also warns after this long without an answer (default 3000)",
            )
            .minimum(1)
            .default_value(DEFAULT_TIMEOUT_MS)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb(
                "Counters of the session as a punktfunk-stats structure: packets/bytes sent and received, frames sent/received/lost, fec-recovered, packets-lost, loss-percent, rtt-us, fec-percent, replays-rejected, auth-failures, send-drops, connected, peer, ...",
            )
            .read_only()
            .build(),
        glib::ParamSpecUInt::builder("stats-interval")
            .nick("Stats interval")
            .blurb(
                "Milliseconds between punktfunk-stats element messages on the bus (0 = none, the default)",
            )
            .default_value(DEFAULT_STATS_INTERVAL_MS)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("bound-port")
            .nick("Bound port")
            .blurb(
                "The local UDP port actually bound while running, in either mode (a listener's port, a caller's bind-port); 0 when stopped",
            )
            .maximum(u32::from(u16::MAX))
            .read_only()
            .build(),
        glib::ParamSpecBoolean::builder("allow-unauthenticated")
            .nick("Allow unauthenticated")
            .blurb(
                "listener only: allow listening on an address other than loopback without a passphrase (default false: such a listener refuses to start, because anyone who can reach the port could watch the stream and send input). Loopback listeners and callers never need it",
            )
            .default_value(false)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("replace-peer")
            .nick("Replace peer")
            .blurb(
                "listener only: a newcomer that authenticates replaces the current peer even while it still answers (the last to connect wins). Default false: the newcomer is refused as busy (punktfunk-peer-refused) unless the current peer leaves a liveness probe unanswered within a second (a crash or restart), then it is replaced (punktfunk-peer-replaced)",
            )
            .default_value(false)
            .mutable_ready()
            .build(),
    ]
}

/// The names of the properties in `props` that take effect while playing (the others get the
/// "takes effect at the next start" warning): what each element's flags test pins.
#[cfg(test)]
pub(crate) fn live_property_names(props: &[glib::ParamSpec]) -> Vec<String> {
    props
        .iter()
        .filter(|p| p.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING))
        .map(|p| p.name().to_owned())
        .collect()
}
