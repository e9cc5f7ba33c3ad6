//! The properties of both elements: their declarations (ParamSpecs with blurbs that state units
//! and defaults — what gst-inspect shows), all in one place so the shared ones are declared once
//! and the two elements read alike; and the GObject plumbing, `set_property` and `property`
//! over an element's [`Settings`] (behind its lock) and its [`SessionSlot`] (for the values read
//! back from the running session), together a [`Core`].
//!
//! Owns: the ParamSpecs, the order in which a property is looked up (running session first,
//! then the settings, then the ParamSpec's default) and the log line of every change. Must
//! never: log the passphrase's value, or hold the settings lock while reading the session slot.

use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;

use crate::protocol::wire::{DEFAULT_MTU, MAX_DATAGRAM_BYTES, MIN_MTU};

use super::punktfunksink::congestion::{
    DEFAULT_CONGESTION_CONTROL, DEFAULT_ENCODER_BUFFER_MS, DEFAULT_LINK_SHARE, DEFAULT_MAX_BITRATE,
    DEFAULT_MIN_BITRATE,
};
use super::lock;
use super::session_slot::SessionSlot;
use super::settings::*;

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
    /// While running, a property not in [`OwnSettings::LIVE`] also gets a warning: it takes
    /// effect at the next start.
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
        if self.slot.is_running() && !O::LIVE.contains(&name) {
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
fn common_properties(default_mode: ConnectionMode) -> Vec<glib::ParamSpec> {
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
        // --- security (issue 9) ---
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

/// The properties of `punktfunksink`.
pub(crate) fn sink() -> Vec<glib::ParamSpec> {
    let mut props = common_properties(ConnectionMode::Listener);
    props.extend([
                glib::ParamSpecUInt::builder("fec-percent")
                    .nick("FEC percent")
                    .blurb(
                        "Parity share of every FEC block in percent (0 = no FEC; at least 2 parity shards a block when on). Default 20",
                    )
                    .maximum(100)
                    .default_value(DEFAULT_FEC_PERCENT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("fec-mode", DEFAULT_FEC_MODE)
                    .nick("FEC mode")
                    .blurb(
                        "fixed: always fec-percent; adaptive: fec-percent as a floor, raised from the client's loss reports; target: per block, the least parity that keeps the block's failure probability under fec-target, from the client's loss model (fec-percent until the first report). Default target",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("mtu")
                    .nick("MTU")
                    .blurb(
                        "Largest datagram (UDP payload) in bytes; 1400 (default) fits a 1500-byte path with IPv6 and tunnel headers",
                    )
                    .minimum(MIN_MTU as u32)
                    .maximum(MAX_DATAGRAM_BYTES as u32)
                    .default_value(DEFAULT_MTU as u32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("pacing-rate")
                    .nick("Pacing rate")
                    .blurb(
                        "Sending rate after a frame's initial burst, in bits per second (0 = automatic, the default: a frame is spread over half its frame interval, at least 200 Mbit/s). A rate too low to send a frame within one frame interval is raised for that frame, so the streaming thread never blocks longer than a frame interval",
                    )
                    .default_value(DEFAULT_PACING_RATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("dscp")
                    .nick("DSCP")
                    .blurb(
                        "DiffServ code point for outgoing datagrams (0..63, e.g. 46 = EF, 34 = AF41; 0 = leave unmarked, the default)",
                    )
                    .maximum(63)
                    .default_value(DEFAULT_DSCP)
                    .mutable_ready()
                    .build(),
                // Loss resilience (issue 8).
                glib::ParamSpecDouble::builder("fec-target")
                    .nick("FEC target")
                    .blurb(
                        "fec-mode=target: the largest acceptable probability that a block cannot be rebuilt by FEC (repair covers the rest within the deadline). Default 0.001",
                    )
                    .minimum(1e-9)
                    .maximum(0.5)
                    .default_value(DEFAULT_FEC_TARGET)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fec-floor")
                    .nick("FEC floor")
                    .blurb(
                        "fec-mode=target: least parity per block in percent (never below 2 shards). Default 5",
                    )
                    .maximum(100)
                    .default_value(DEFAULT_FEC_FLOOR)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fec-ceiling")
                    .nick("FEC ceiling")
                    .blurb(
                        "fec-mode=target: most parity per block in percent (never below 8 shards or the floor). Default 100",
                    )
                    .maximum(200)
                    .default_value(DEFAULT_FEC_CEILING)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("repair-share")
                    .nick("Repair share")
                    .blurb(
                        "Repair bytes allowed per media byte on average (new parity sent when the receiver asks; 0 = no repair). Default 0.25",
                    )
                    .minimum(0.0)
                    .maximum(4.0)
                    .default_value(DEFAULT_REPAIR_SHARE)
                    .mutable_ready()
                    .build(),
                // Congestion control (issue 10).
                glib::ParamSpecEnum::builder_with_default(
                    "congestion-control",
                    DEFAULT_CONGESTION_CONTROL,
                )
                .nick("Congestion control")
                .blurb(
                    "none: fixed bitrate and pacing; report: estimate the path's bandwidth and post punktfunk-bandwidth messages; encoder (default): also set the upstream encoder's bitrate to the estimate (never above the bitrate configured on it, nor max-bitrate) and pace at it",
                )
                .mutable_ready()
                .build(),
                glib::ParamSpecUInt64::builder("min-bitrate")
                    .nick("Minimum bitrate")
                    .blurb(
                        "Congestion control never sets the encoder below this, in bits per second (default 500000)",
                    )
                    .default_value(DEFAULT_MIN_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bitrate")
                    .nick("Maximum bitrate")
                    .blurb(
                        "Congestion control never sets the encoder above this, in bits per second (0 = no cap beyond the bitrate configured on the encoder, the default)",
                    )
                    .default_value(DEFAULT_MAX_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("encoder-buffer")
                    .nick("Encoder buffer")
                    .blurb(
                        "With congestion-control=encoder: bound the upstream encoder's rate-control buffer (x264enc vbv-buf-capacity, nvenc vbv-buffer-size, vaapi cpb-length, va cpb-size) to this many milliseconds of its bitrate when the stream starts, so no frame (keyframes included) is much larger than that share of the path; a smaller buffer set on the encoder stays. default 34 = two frames at 60 fps; 0 = leave the encoder's buffer alone",
                    )
                    .maximum(10_000)
                    .default_value(DEFAULT_ENCODER_BUFFER_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("link-share")
                    .nick("Link share")
                    .blurb(
                        "Congestion control: the largest share, in percent, of the path's rate (measured from how the bottleneck spreads each frame) the stream may take, FEC and headers included. 100 (default) = as much as the path carries without a standing queue; less leaves each frame interval partly free, so frames cross sooner: at 60 fps, 60 keeps a frame's crossing near 10 ms, at the cost of bitrate",
                    )
                    .minimum(10)
                    .maximum(100)
                    .default_value(DEFAULT_LINK_SHARE)
                    .mutable_ready()
                    .build(),
    ]);
    props
}

/// The properties of `punktfunksrc`.
pub(crate) fn src() -> Vec<glib::ParamSpec> {
    let mut props = common_properties(ConnectionMode::Caller);
    props.extend([
                glib::ParamSpecBoolean::builder("wait-for-keyframe")
                    .nick("Wait for keyframe")
                    .blurb(
                        "After start or a loss, drop delta frames until a keyframe arrives, so a decoder never sees a broken reference (default true)",
                    )
                    .default_value(DEFAULT_WAIT_FOR_KEYFRAME)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("request-keyframe")
                    .nick("Request keyframe")
                    .blurb(
                        "On start and after a loss, ask the sender for a keyframe (throttled to one request per 100 ms) (default true)",
                    )
                    .default_value(DEFAULT_REQUEST_KEYFRAME)
                    .mutable_playing()
                    .build(),
                // Loss resilience (issue 8).
                glib::ParamSpecBoolean::builder("repair")
                    .nick("Repair")
                    .blurb(
                        "Ask the sender for new parity when a frame cannot be rebuilt, until its deadline (default true)",
                    )
                    .default_value(DEFAULT_REPAIR)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("repair-deadline")
                    .nick("Repair deadline")
                    .blurb(
                        "How long after its first datagram a frame may wait for repair before it is given up and a keyframe requested, in milliseconds (0 = automatic, the default: one frame interval plus three repair round trips, 10..250 ms)",
                    )
                    .maximum(10_000)
                    .default_value(DEFAULT_REPAIR_DEADLINE_MS)
                    .mutable_ready()
                    .build(),
    ]);
    props
}
