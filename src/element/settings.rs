//! The values of the elements' properties: the ones both share (`mode`, `address`, `port`,
//! `bind-address`, `bind-port`, `passphrase`, `encrypt`, `timeout`, `stats-interval`) in
//! [`CommonSettings`], each element's own in [`SinkSettings`] / [`SrcSettings`], their defaults,
//! and the session [`Config`] they ask for. The declarations (ParamSpecs) are in
//! [`super::properties`].
//!
//! Owns: [`Settings`] (the common settings with an element's [`OwnSettings`]), the `DEFAULT_*`
//! values, the `GstPunktfunkMode` and `GstPunktfunkFecMode` enum types.
//! Must never: log the passphrase (the `Debug` impl hides it), or hold a lock (it is plain data;
//! the elements keep it behind their own mutex and copy it out before any work).

use std::fmt;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::protocol::security::handshake::Role;
use crate::session::{self, Config};

use super::congestion::{
    CongestionControl, DEFAULT_CONGESTION_CONTROL, DEFAULT_ENCODER_BUFFER_MS, DEFAULT_LINK_SHARE,
    DEFAULT_MAX_BITRATE, DEFAULT_MIN_BITRATE,
};
use super::net::{Endpoints, host_port};
use crate::protocol::wire::DEFAULT_MTU;

pub(crate) const DEFAULT_PORT: u32 = 7600;
pub(crate) const DEFAULT_LISTENER_ADDRESS: &str = "0.0.0.0";
pub(crate) const DEFAULT_CALLER_ADDRESS: &str = "127.0.0.1";
pub(crate) const DEFAULT_BIND_ADDRESS: &str = "0.0.0.0";
pub(crate) const DEFAULT_BIND_PORT: u32 = 0;
pub(crate) const DEFAULT_ENCRYPT: bool = true;
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 3000;
pub(crate) const DEFAULT_STATS_INTERVAL_MS: u32 = 0;

/// Who waits and who calls (the `mode` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPunktfunkMode")]
pub(crate) enum ConnectionMode {
    #[enum_value(
        name = "Listener: bind address:port and wait for the peer",
        nick = "listener"
    )]
    Listener = 0,
    #[enum_value(name = "Caller: contact the listener at address:port", nick = "caller")]
    Caller = 1,
}

impl From<ConnectionMode> for session::Mode {
    fn from(m: ConnectionMode) -> Self {
        match m {
            ConnectionMode::Listener => session::Mode::Listener,
            ConnectionMode::Caller => session::Mode::Caller,
        }
    }
}

/// How the sink chooses its FEC share (the `fec-mode` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPunktfunkFecMode")]
pub(crate) enum FecModeSetting {
    #[enum_value(name = "Fixed: always fec-percent", nick = "fixed")]
    Fixed = 0,
    #[enum_value(
        name = "Adaptive: fec-percent as a floor, raised from the client's loss reports",
        nick = "adaptive"
    )]
    Adaptive = 1,
    // Loss resilience (issue 8).
    #[enum_value(
        name = "Target: per block, the least parity that keeps its failure probability under fec-target, from the client's loss model",
        nick = "target"
    )]
    Target = 2,
}

impl From<FecModeSetting> for crate::protocol::adaptive::FecMode {
    fn from(m: FecModeSetting) -> Self {
        match m {
            FecModeSetting::Fixed => Self::Fixed,
            FecModeSetting::Adaptive => Self::Adaptive,
            FecModeSetting::Target => Self::Target,
        }
    }
}

/// The properties both elements have. `address` and `bind-address` are `None` until set, so
/// their defaults can follow `mode` and the peer's address family.
#[derive(Clone)]
pub(crate) struct CommonSettings {
    pub(crate) mode: ConnectionMode,
    pub(crate) address: Option<String>,
    pub(crate) port: u32,
    pub(crate) bind_address: Option<String>,
    pub(crate) bind_port: u32,
    pub(crate) passphrase: String,
    pub(crate) encrypt: bool,
    pub(crate) timeout_ms: u32,
    pub(crate) stats_interval_ms: u32,
    // --- security (issue 9) ---
    pub(crate) allow_unauthenticated: bool,
    pub(crate) replace_peer: bool,
}

impl fmt::Debug for CommonSettings {
    // By hand: the passphrase must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonSettings")
            .field("mode", &self.mode)
            .field("address", &self.address())
            .field("port", &self.port)
            .field("bind_address", &self.bind_address)
            .field("bind_port", &self.bind_port)
            .field(
                "passphrase",
                &if self.passphrase.is_empty() {
                    "<none>"
                } else {
                    "<set>"
                },
            )
            .field("encrypt", &self.encrypt)
            .field("timeout_ms", &self.timeout_ms)
            .field("stats_interval_ms", &self.stats_interval_ms)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("replace_peer", &self.replace_peer)
            .finish()
    }
}

impl CommonSettings {
    pub(crate) fn new(mode: ConnectionMode) -> Self {
        CommonSettings {
            mode,
            address: None,
            port: DEFAULT_PORT,
            bind_address: None,
            bind_port: DEFAULT_BIND_PORT,
            passphrase: String::new(),
            encrypt: DEFAULT_ENCRYPT,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            allow_unauthenticated: false,
            replace_peer: false,
        }
    }

    /// The `address` in effect: what was set, else the default for the mode.
    pub(crate) fn address(&self) -> &str {
        match (&self.address, self.mode) {
            (Some(a), _) => a,
            (None, ConnectionMode::Listener) => DEFAULT_LISTENER_ADDRESS,
            (None, ConnectionMode::Caller) => DEFAULT_CALLER_ADDRESS,
        }
    }

    /// `address:port` as a person reads it (IPv6 in brackets).
    pub(crate) fn display_target(&self) -> String {
        host_port(self.address(), self.port)
    }

    /// Sets a common property; returns false for any other name.
    pub(crate) fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        // Every value here was checked against the ParamSpec by GObject, so `get` cannot fail
        // for the expected type; a failure still only falls back to the default.
        match pspec.name() {
            "mode" => {
                self.mode = value.get().unwrap_or(self.mode);
            }
            "address" => {
                self.address = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty());
            }
            "port" => self.port = value.get().unwrap_or(DEFAULT_PORT),
            "bind-address" => {
                self.bind_address = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty());
            }
            "bind-port" => self.bind_port = value.get().unwrap_or(DEFAULT_BIND_PORT),
            "passphrase" => {
                self.passphrase = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
            }
            "encrypt" => self.encrypt = value.get().unwrap_or(DEFAULT_ENCRYPT),
            "timeout" => self.timeout_ms = value.get().unwrap_or(DEFAULT_TIMEOUT_MS),
            "stats-interval" => {
                self.stats_interval_ms = value.get().unwrap_or(DEFAULT_STATS_INTERVAL_MS)
            }
            "allow-unauthenticated" => self.allow_unauthenticated = value.get().unwrap_or(false),
            "replace-peer" => self.replace_peer = value.get().unwrap_or(false),
            _ => return false,
        }
        true
    }

    /// Reads a common property as set (not `stats` / `bound-port`, and not
    /// the bound `port` / `bind-port` read back while running: those come from the running
    /// session, see [`super::session_slot::SessionSlot::runtime_property`]); `None` for any other
    /// name.
    pub(crate) fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "mode" => self.mode.to_value(),
            "address" => self.address().to_value(),
            "port" => self.port.to_value(),
            "bind-address" => self
                .bind_address
                .as_deref()
                .unwrap_or(DEFAULT_BIND_ADDRESS)
                .to_value(),
            "bind-port" => self.bind_port.to_value(),
            "encrypt" => self.encrypt.to_value(),
            "timeout" => self.timeout_ms.to_value(),
            "stats-interval" => self.stats_interval_ms.to_value(),
            "allow-unauthenticated" => self.allow_unauthenticated.to_value(),
            "replace-peer" => self.replace_peer.to_value(),
            _ => return None,
        })
    }

    /// The session configuration these settings ask for (role-specific fields are left at
    /// their defaults for the element to fill in).
    pub(crate) fn config(&self, role: Role, ep: &Endpoints) -> Result<Config, gst::ErrorMessage> {
        if !self.encrypt && !self.passphrase.is_empty() {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ("encrypt=false cannot be combined with a passphrase: either remove the passphrase (plaintext, for debugging) or keep encrypt=true")
            ));
        }
        let mut c = Config::new(role, self.mode.into());
        c.peer = ep.peer;
        c.passphrase = if self.passphrase.is_empty() {
            None
        } else {
            Some(self.passphrase.clone())
        };
        c.encrypt = self.encrypt;
        c.timeout = Duration::from_millis(u64::from(self.timeout_ms.max(1)));
        c.allow_unauthenticated = self.allow_unauthenticated;
        c.replace_peer = self.replace_peer;
        Ok(c)
    }

    /// What to warn about at start when the peer is not authenticated, if anything.
    pub(crate) fn security_warning(&self) -> Option<&'static str> {
        if !self.encrypt {
            Some(
                "encrypt=false: media and input travel in plaintext and the peer is not authenticated (use only for debugging)",
            )
        } else if self.passphrase.is_empty() {
            Some(
                "No passphrase set: media is encrypted with fresh ephemeral keys, but the peer is not authenticated (anyone who can reach the port can connect). Set the same passphrase on both ends to authenticate.",
            )
        } else {
            None
        }
    }
}

/// Registers the enum types for documentation (gst-inspect shows them).
pub(crate) fn mark_plugin_api() {
    ConnectionMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    FecModeSetting::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    CongestionControl::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
}

pub(crate) const DEFAULT_FEC_PERCENT: u32 = 20;
pub(crate) const DEFAULT_FEC_MODE: FecModeSetting = FecModeSetting::Target;
pub(crate) const DEFAULT_PACING_RATE: u64 = 0;
pub(crate) const DEFAULT_DSCP: u32 = 0;
pub(crate) const DEFAULT_WAIT_FOR_KEYFRAME: bool = true;
pub(crate) const DEFAULT_REQUEST_KEYFRAME: bool = true;
// Loss resilience (issue 8): defaults from the session's `Config` (see docs/PROTOCOL.md §9, §10).
pub(crate) const DEFAULT_FEC_TARGET: f64 = crate::protocol::adaptive::DEFAULT_TARGET;
pub(crate) const DEFAULT_FEC_FLOOR: u32 = 5;
pub(crate) const DEFAULT_FEC_CEILING: u32 = 100;
pub(crate) const DEFAULT_REPAIR_SHARE: f64 = 0.25;
pub(crate) const DEFAULT_REPAIR: bool = true;
pub(crate) const DEFAULT_REPAIR_DEADLINE_MS: u32 = 0;

/// An element's own properties, beside the common ones.
pub(crate) trait OwnSettings: Clone + fmt::Debug + Default {
    /// The element's role in a session (sink: host, src: client).
    const ROLE: Role;
    /// The default of its `mode`.
    const DEFAULT_MODE: ConnectionMode;
    /// Its properties that take effect while running (the others at the next start).
    const LIVE: &'static [&'static str];
    /// Sets the property `name` if it is one of the element's own; false for any other name.
    /// GObject has checked `value` against the property's ParamSpec.
    fn set(&mut self, name: &str, value: &glib::Value) -> bool;
    /// The value of the property `name` if it is one of the element's own.
    fn get(&self, name: &str) -> Option<glib::Value>;
}

/// All settings of one element: the common ones and its own.
#[derive(Debug, Clone)]
pub(crate) struct Settings<O> {
    pub(crate) common: CommonSettings,
    pub(crate) own: O,
}

impl<O: OwnSettings> Default for Settings<O> {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(O::DEFAULT_MODE),
            own: O::default(),
        }
    }
}

impl<O: OwnSettings> Settings<O> {
    /// Sets a common or own property; false for any other name.
    pub(crate) fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        self.common.set_property(value, pspec) || self.own.set(pspec.name(), value)
    }

    /// Reads a common or own property as set; `None` for any other name.
    pub(crate) fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        self.common
            .property(pspec)
            .or_else(|| self.own.get(pspec.name()))
    }
}

/// `punktfunksink`'s own properties.
#[derive(Debug, Clone)]
pub(crate) struct SinkSettings {
    pub(crate) fec_percent: u32,
    pub(crate) fec_mode: FecModeSetting,
    pub(crate) mtu: u32,
    pub(crate) pacing_rate: u64,
    pub(crate) dscp: u32,
    // Loss resilience (issue 8).
    pub(crate) fec_target: f64,
    pub(crate) fec_floor: u32,
    pub(crate) fec_ceiling: u32,
    pub(crate) repair_share: f64,
    // Congestion control (issue 10).
    pub(crate) congestion_control: CongestionControl,
    pub(crate) min_bitrate: u64,
    pub(crate) max_bitrate: u64,
    pub(crate) encoder_buffer: u32,
    pub(crate) link_share: u32,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            fec_percent: DEFAULT_FEC_PERCENT,
            fec_mode: DEFAULT_FEC_MODE,
            mtu: DEFAULT_MTU as u32,
            pacing_rate: DEFAULT_PACING_RATE,
            dscp: DEFAULT_DSCP,
            fec_target: DEFAULT_FEC_TARGET,
            fec_floor: DEFAULT_FEC_FLOOR,
            fec_ceiling: DEFAULT_FEC_CEILING,
            repair_share: DEFAULT_REPAIR_SHARE,
            congestion_control: DEFAULT_CONGESTION_CONTROL,
            min_bitrate: DEFAULT_MIN_BITRATE,
            max_bitrate: DEFAULT_MAX_BITRATE,
            encoder_buffer: DEFAULT_ENCODER_BUFFER_MS,
            link_share: DEFAULT_LINK_SHARE,
        }
    }
}

impl OwnSettings for SinkSettings {
    const ROLE: Role = Role::Host;
    const DEFAULT_MODE: ConnectionMode = ConnectionMode::Listener;
    const LIVE: &'static [&'static str] = &["stats-interval"];

    fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "fec-percent" => self.fec_percent = value.get().unwrap_or(DEFAULT_FEC_PERCENT),
            "fec-mode" => self.fec_mode = value.get().unwrap_or(DEFAULT_FEC_MODE),
            "mtu" => self.mtu = value.get().unwrap_or(DEFAULT_MTU as u32),
            "pacing-rate" => self.pacing_rate = value.get().unwrap_or(DEFAULT_PACING_RATE),
            "dscp" => self.dscp = value.get().unwrap_or(DEFAULT_DSCP),
            "fec-target" => self.fec_target = value.get().unwrap_or(DEFAULT_FEC_TARGET),
            "fec-floor" => self.fec_floor = value.get().unwrap_or(DEFAULT_FEC_FLOOR),
            "fec-ceiling" => self.fec_ceiling = value.get().unwrap_or(DEFAULT_FEC_CEILING),
            "repair-share" => self.repair_share = value.get().unwrap_or(DEFAULT_REPAIR_SHARE),
            "congestion-control" => {
                self.congestion_control = value.get().unwrap_or(DEFAULT_CONGESTION_CONTROL)
            }
            "min-bitrate" => self.min_bitrate = value.get().unwrap_or(DEFAULT_MIN_BITRATE),
            "max-bitrate" => self.max_bitrate = value.get().unwrap_or(DEFAULT_MAX_BITRATE),
            "encoder-buffer" => {
                self.encoder_buffer = value.get().unwrap_or(DEFAULT_ENCODER_BUFFER_MS)
            }
            "link-share" => self.link_share = value.get().unwrap_or(DEFAULT_LINK_SHARE),
            _ => return false,
        }
        true
    }

    fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "fec-percent" => self.fec_percent.to_value(),
            "fec-mode" => self.fec_mode.to_value(),
            "mtu" => self.mtu.to_value(),
            "pacing-rate" => self.pacing_rate.to_value(),
            "dscp" => self.dscp.to_value(),
            "fec-target" => self.fec_target.to_value(),
            "fec-floor" => self.fec_floor.to_value(),
            "fec-ceiling" => self.fec_ceiling.to_value(),
            "repair-share" => self.repair_share.to_value(),
            "congestion-control" => self.congestion_control.to_value(),
            "min-bitrate" => self.min_bitrate.to_value(),
            "max-bitrate" => self.max_bitrate.to_value(),
            "encoder-buffer" => self.encoder_buffer.to_value(),
            "link-share" => self.link_share.to_value(),
            _ => return None,
        })
    }
}

/// `punktfunksrc`'s own properties (`create` copies them for every event: they change
/// while playing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SrcSettings {
    pub(crate) wait_for_keyframe: bool,
    pub(crate) request_keyframe: bool,
    // Loss resilience (issue 8); take effect at the next start.
    pub(crate) repair: bool,
    pub(crate) repair_deadline_ms: u32,
}

impl OwnSettings for SrcSettings {
    const ROLE: Role = Role::Client;
    const DEFAULT_MODE: ConnectionMode = ConnectionMode::Caller;
    const LIVE: &'static [&'static str] =
        &["stats-interval", "wait-for-keyframe", "request-keyframe"];

    fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        // Both default to true (GObject checked the type; the fallback stands in for the
        // impossible).
        if name == "repair-deadline" {
            self.repair_deadline_ms = value.get().unwrap_or(DEFAULT_REPAIR_DEADLINE_MS);
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
            _ => None,
        }
    }
}

impl Default for SrcSettings {
    fn default() -> Self {
        SrcSettings {
            wait_for_keyframe: DEFAULT_WAIT_FOR_KEYFRAME,
            request_keyframe: DEFAULT_REQUEST_KEYFRAME,
            repair: DEFAULT_REPAIR,
            repair_deadline_ms: DEFAULT_REPAIR_DEADLINE_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `replace-peer` reaches the session's `Config` (off by default).
    #[test]
    fn replace_peer_reaches_the_session_config() {
        let ep = Endpoints {
            bind: "127.0.0.1:0".parse().unwrap(),
            peer: None,
        };
        let mut s = CommonSettings::new(ConnectionMode::Listener);
        assert!(!s.config(Role::Host, &ep).unwrap().replace_peer);
        s.replace_peer = true;
        assert!(s.config(Role::Host, &ep).unwrap().replace_peer);
    }
}
