//! `punktfunksrc`'s own properties: their declarations (ParamSpecs, after the common ones),
//! their values ([`SrcSettings`]) and defaults, and their part of the session configuration
//! (repair).
//!
//! Owns: the src's `DEFAULT_*` values. Must never: hold a lock or do I/O (plain data; `create`
//! copies it for every event, as `wait-for-keyframe` and `request-keyframe` change while
//! playing).

use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::element::properties::common_properties;
use crate::element::settings::{ConnectionMode, OwnSettings};
use crate::protocol::security::handshake::Role;
use crate::session::Config;

pub(crate) const DEFAULT_WAIT_FOR_KEYFRAME: bool = true;
pub(crate) const DEFAULT_REQUEST_KEYFRAME: bool = true;
pub(crate) const DEFAULT_REPAIR: bool = true;
pub(crate) const DEFAULT_REPAIR_DEADLINE_MS: u32 = 0;
/// Covers how long the session holds audio after a loss while the block's parity may still
/// come (up to about 80 ms for 5 ms packets in blocks of eight, `protocol::audio`; p99 ~70 ms
/// while bursty loss makes the blocks sixteen long, whose worst case is ~160 ms), so rebuilt
/// packets and the ones behind them still play on time with `sync=true`.
pub(crate) const DEFAULT_LATENCY_MS: u32 = 100;

/// `punktfunksrc`'s own properties (`create` copies them for every event: they change
/// while playing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SrcSettings {
    pub(crate) wait_for_keyframe: bool,
    pub(crate) request_keyframe: bool,
    pub(crate) repair: bool,
    pub(crate) repair_deadline_ms: u32,
    pub(crate) latency_ms: u32,
}

impl OwnSettings for SrcSettings {
    const ROLE: Role = Role::Client;
    const DEFAULT_MODE: ConnectionMode = ConnectionMode::Caller;

    fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        // Both default to true (GObject checked the type; the fallback stands in for the
        // impossible).
        if name == "repair-deadline" {
            self.repair_deadline_ms = value.get().unwrap_or(DEFAULT_REPAIR_DEADLINE_MS);
            return true;
        }
        if name == "latency" {
            self.latency_ms = value.get().unwrap_or(DEFAULT_LATENCY_MS);
            return true;
        }
        let flag = match name {
            "wait-for-keyframe" => &mut self.wait_for_keyframe,
            "request-keyframe" => &mut self.request_keyframe,
            "repair" => &mut self.repair,
            _ => return false,
        };
        *flag = value.get().unwrap_or(true);
        true
    }

    fn get(&self, name: &str) -> Option<glib::Value> {
        match name {
            "wait-for-keyframe" => Some(self.wait_for_keyframe.to_value()),
            "request-keyframe" => Some(self.request_keyframe.to_value()),
            "repair" => Some(self.repair.to_value()),
            "repair-deadline" => Some(self.repair_deadline_ms.to_value()),
            "latency" => Some(self.latency_ms.to_value()),
            _ => None,
        }
    }

    fn configure(&self, config: &mut Config) {
        config.repair = self.repair;
        config.repair_deadline = (self.repair_deadline_ms > 0)
            .then(|| Duration::from_millis(self.repair_deadline_ms.into()));
    }
}

impl Default for SrcSettings {
    fn default() -> Self {
        SrcSettings {
            wait_for_keyframe: DEFAULT_WAIT_FOR_KEYFRAME,
            request_keyframe: DEFAULT_REQUEST_KEYFRAME,
            repair: DEFAULT_REPAIR,
            repair_deadline_ms: DEFAULT_REPAIR_DEADLINE_MS,
            latency_ms: DEFAULT_LATENCY_MS,
        }
    }
}

/// The properties of `punktfunksrc`.
pub(crate) fn properties() -> Vec<glib::ParamSpec> {
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
                        "On start and after a loss, ask the sender for a keyframe (the host answers each lost frame once) (default true)",
                    )
                    .default_value(DEFAULT_REQUEST_KEYFRAME)
                    .mutable_playing()
                    .build(),
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
                glib::ParamSpecUInt::builder("latency")
                    .nick("A/V latency")
                    .blurb(
                        "When the host sends audio: how long sinks with sync=true hold both streams beyond their capture-time PTS, so packets up to this much later than the first one (audio held while the session rebuilds a lost packet) still play together, in milliseconds (video-only streams are stamped on arrival and report no latency)",
                    )
                    .maximum(5_000)
                    .default_value(DEFAULT_LATENCY_MS)
                    .mutable_ready()
                    .build(),
    ]);
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The src's properties that take effect while playing (`create` reads them for every
    /// event); the others get the "takes effect at the next start" warning.
    #[test]
    fn keyframe_flags_and_stats_interval_change_while_playing() {
        gst::init().unwrap();
        let live = crate::element::properties::live_property_names(&properties());
        assert_eq!(
            live,
            ["stats-interval", "wait-for-keyframe", "request-keyframe"]
        );
    }
}
