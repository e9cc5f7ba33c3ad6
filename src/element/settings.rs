//! The values of the elements' properties: the ones both share (`mode`, `address`, `port`,
//! `bind-address`, `bind-port`, `passphrase`, `encrypt`, `timeout`, `stats-interval`,
//! `allow-unauthenticated`, `replace-peer`) in [`CommonSettings`], an element's own beside them
//! ([`OwnSettings`], implemented in each element's folder), and [`Settings::config`], the one
//! place settings become a session [`Config`]. The declarations (ParamSpecs) are in
//! [`super::properties`] and the elements' `settings` modules.
//!
//! Owns: [`Settings`], the common `DEFAULT_*` values, the `GstPunktfunkMode` enum type and where
//! a session binds and whom it calls ([`CommonSettings::endpoints`]). Must never: log the
//! passphrase (the `Debug` impl hides it), or hold a lock (it is plain data; the elements keep it
//! behind their own mutex and copy it out before any work).

use std::fmt;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::protocol::security::handshake::Role;
use crate::session::{self, Config};

use crate::transport::udp::UdpOptions;

use super::net::{self, Endpoints, host_port};

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

    /// Where to bind and whom to call (see [`net::endpoints`]).
    pub(crate) fn endpoints(&self) -> Result<Endpoints, gst::ErrorMessage> {
        net::endpoints(
            self.mode.into(),
            self.address(),
            self.port,
            self.bind_address.as_deref(),
            self.bind_port,
        )
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

/// Registers the common enum types for documentation (gst-inspect shows them).
pub(crate) fn mark_plugin_api() {
    ConnectionMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
}

/// An element's own properties, beside the common ones.
pub(crate) trait OwnSettings: Clone + fmt::Debug + Default {
    /// The element's role in a session (sink: host, src: client).
    const ROLE: Role;
    /// The default of its `mode`.
    const DEFAULT_MODE: ConnectionMode;
    /// Sets the property `name` if it is one of the element's own; false for any other name.
    /// GObject has checked `value` against the property's ParamSpec.
    fn set(&mut self, name: &str, value: &glib::Value) -> bool;
    /// The value of the property `name` if it is one of the element's own.
    fn get(&self, name: &str) -> Option<glib::Value>;
    /// Fills in the element's own part of the session configuration (called by
    /// [`Settings::config`] only).
    fn configure(&self, config: &mut Config);
    /// How the element's socket is opened.
    fn udp_options(&self) -> UdpOptions {
        UdpOptions::default()
    }
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

    /// The session configuration these settings ask for, with `ep.peer` to call. The one place
    /// element settings become a [`Config`]: the common part here, the element's own through
    /// [`OwnSettings::configure`].
    pub(crate) fn config(&self, ep: &Endpoints) -> Result<Config, gst::ErrorMessage> {
        let common = &self.common;
        if !common.encrypt && !common.passphrase.is_empty() {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ("encrypt=false cannot be combined with a passphrase: either remove the passphrase (plaintext, for debugging) or keep encrypt=true")
            ));
        }
        let mut c = Config::new(O::ROLE, common.mode.into());
        c.peer = ep.peer;
        c.passphrase = if common.passphrase.is_empty() {
            None
        } else {
            Some(common.passphrase.clone())
        };
        c.encrypt = common.encrypt;
        c.timeout = Duration::from_millis(u64::from(common.timeout_ms.max(1)));
        c.allow_unauthenticated = common.allow_unauthenticated;
        c.replace_peer = common.replace_peer;
        self.own.configure(&mut c);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::punktfunksink::SinkSettings;

    /// `replace-peer` reaches the session's `Config` (off by default).
    #[test]
    fn replace_peer_reaches_the_session_config() {
        let ep = Endpoints {
            bind: "127.0.0.1:0".parse().unwrap(),
            peer: None,
        };
        let mut s = Settings::<SinkSettings>::default();
        assert!(!s.config(&ep).unwrap().replace_peer);
        s.common.replace_peer = true;
        assert!(s.config(&ep).unwrap().replace_peer);
    }
}
