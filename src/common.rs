//! What `punktfunksink` and `punktfunksrc` share: the connection properties and their settings,
//! turning those settings into a [`session::Config`] and a bound [`UdpTransport`] (with errors a
//! person can act on), the `punktfunk-stats` structure, the `punktfunk://` URI, and the
//! translation between [`InputEvent`]s, GstNavigation events and `punktfunk-input` structures.
//!
//! This module holds no runtime state and never blocks (apart from resolving a host name in
//! [`CommonSettings::endpoints`], which the elements only call from `start()`). It must never log
//! the passphrase.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst_video::{NavigationEvent, NavigationModifierType};

use crate::protocol::handshake::Role;
use crate::protocol::input::{InputEvent, TouchPhase};
use crate::session::{self, Config, DisconnectReason, Stats};
use crate::transport::udp::{UdpOptions, UdpTransport};

/// Name of the stats structure (property `stats` and the periodic element message).
pub const STATS_NAME: &str = "punktfunk-stats";
/// Name of the element message the sink posts for every input event.
pub const INPUT_NAME: &str = "punktfunk-input";
/// Name of the element message posted when a session with a peer comes up.
pub const PEER_CONNECTED_NAME: &str = "punktfunk-peer-connected";
/// Name of the element message posted when the peer goes away.
pub const PEER_DISCONNECTED_NAME: &str = "punktfunk-peer-disconnected";
/// URI scheme of `punktfunksrc`.
pub const URI_SCHEME: &str = "punktfunk";

pub const DEFAULT_PORT: u32 = 7600;
pub const DEFAULT_LISTENER_ADDRESS: &str = "0.0.0.0";
pub const DEFAULT_CALLER_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_BIND_ADDRESS: &str = "0.0.0.0";
pub const DEFAULT_BIND_PORT: u32 = 0;
pub const DEFAULT_ENCRYPT: bool = true;
pub const DEFAULT_TIMEOUT_MS: u32 = 3000;
pub const DEFAULT_STATS_INTERVAL_MS: u32 = 0;

/// `GstNavigation` has one touch-cancel for all points; as an [`InputEvent::Touch`] it carries
/// this id ("every point").
pub const TOUCH_CANCEL_ALL: u32 = u32::MAX;

/// Who waits and who calls (the `mode` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPunktfunkMode")]
pub enum ConnectionMode {
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
pub enum FecModeSetting {
    #[enum_value(name = "Fixed: always fec-percent", nick = "fixed")]
    Fixed = 0,
    #[enum_value(
        name = "Adaptive: fec-percent as a floor, raised from the client's loss reports",
        nick = "adaptive"
    )]
    Adaptive = 1,
}

impl From<FecModeSetting> for crate::protocol::adaptive::FecMode {
    fn from(m: FecModeSetting) -> Self {
        match m {
            FecModeSetting::Fixed => Self::Fixed,
            FecModeSetting::Adaptive => Self::Adaptive,
        }
    }
}

/// The properties both elements have. `address` and `bind-address` are `None` until set, so
/// their defaults can follow `mode` and the peer's address family.
#[derive(Clone)]
pub struct CommonSettings {
    pub mode: ConnectionMode,
    pub address: Option<String>,
    pub port: u32,
    pub bind_address: Option<String>,
    pub bind_port: u32,
    pub passphrase: String,
    pub encrypt: bool,
    pub timeout_ms: u32,
    pub stats_interval_ms: u32,
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
            .finish()
    }
}

/// Where a session binds and whom it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub bind: SocketAddr,
    /// The listener's address (callers only).
    pub peer: Option<SocketAddr>,
}

impl CommonSettings {
    pub fn new(mode: ConnectionMode) -> Self {
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
        }
    }

    /// The `address` in effect: what was set, else the default for the mode.
    pub fn address(&self) -> &str {
        match (&self.address, self.mode) {
            (Some(a), _) => a,
            (None, ConnectionMode::Listener) => DEFAULT_LISTENER_ADDRESS,
            (None, ConnectionMode::Caller) => DEFAULT_CALLER_ADDRESS,
        }
    }

    /// `address:port` as a person reads it (IPv6 in brackets).
    pub fn display_target(&self) -> String {
        host_port(self.address(), self.port)
    }

    /// Sets a property of [`common_properties`]; returns false for any other name.
    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
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
            _ => return false,
        }
        true
    }

    /// Reads a property of [`common_properties`] (not `stats` / `bound-port`, which come from
    /// the running session); `None` for any other name.
    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
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
            _ => return None,
        })
    }

    /// Resolves where to bind and whom to call. Listener: binds `address:port`. Caller: sends
    /// to `address:port` from `bind-address:bind-port`; with an IPv6 peer and no
    /// `bind-address`, it binds `[::]`.
    pub fn endpoints(&self) -> Result<Endpoints, gst::ErrorMessage> {
        let port = port_u16(self.port, "port")?;
        match self.mode {
            ConnectionMode::Listener => {
                let bind = resolve(self.address(), port, None)?;
                Ok(Endpoints { bind, peer: None })
            }
            ConnectionMode::Caller => {
                if port == 0 {
                    return Err(gst::error_msg!(
                        gst::ResourceError::Settings,
                        ("mode=caller needs the listener's port: port=0 cannot be called (set port to the listener's bound port)")
                    ));
                }
                let bind_port = port_u16(self.bind_port, "bind-port")?;
                let explicit_bind = match self.bind_address.as_deref() {
                    Some(a) => Some(parse_ip(a).ok_or_else(|| {
                        gst::error_msg!(
                            gst::ResourceError::Settings,
                            ("bind-address '{a}' is not an IPv4 or IPv6 address")
                        )
                    })?),
                    None => None,
                };
                let family = explicit_bind.map(|ip| ip.is_ipv6());
                let peer = resolve(self.address(), port, family)?;
                let bind_ip = explicit_bind.unwrap_or(if peer.is_ipv6() {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                });
                Ok(Endpoints {
                    bind: SocketAddr::new(bind_ip, bind_port),
                    peer: Some(peer),
                })
            }
        }
    }

    /// The session configuration these settings ask for (role-specific fields are left at
    /// their defaults for the element to fill in).
    pub fn config(&self, role: Role, ep: &Endpoints) -> Result<Config, gst::ErrorMessage> {
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
        Ok(c)
    }

    /// What to warn about at start when the peer is not authenticated, if anything.
    pub fn security_warning(&self) -> Option<&'static str> {
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

fn port_u16(port: u32, name: &str) -> Result<u16, gst::ErrorMessage> {
    u16::try_from(port).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            ("{name}={port} is not a UDP port (0..65535)")
        )
    })
}

/// `host:port`, with an IPv6 literal in brackets.
pub fn host_port(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An IP literal, optionally in brackets (`[::1]`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// Resolves `host` (an IP literal or a name) to one address; `family` (Some(true) = IPv6)
/// picks among several.
fn resolve(host: &str, port: u16, family: Option<bool>) -> Result<SocketAddr, gst::ErrorMessage> {
    if let Some(ip) = parse_ip(host) {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("Could not resolve address '{host}': {e}")
            )
        })?
        .collect();
    let pick = match family {
        Some(v6) => addrs.iter().find(|a| a.is_ipv6() == v6),
        // Prefer IPv4 when free to choose: it is what "0.0.0.0"-bound peers listen on.
        None => addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()),
    };
    pick.copied().ok_or_else(|| {
        gst::error_msg!(
            gst::ResourceError::NotFound,
            ("Address '{host}' resolves to no usable address")
        )
    })
}

/// Binds the UDP socket for a session, turning the OS error into one a person can act on.
pub fn bind_transport(
    addr: SocketAddr,
    opts: &UdpOptions,
) -> Result<UdpTransport, gst::ErrorMessage> {
    UdpTransport::bind(addr, opts).map_err(|e| {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::AddrInUse => gst::error_msg!(
                gst::ResourceError::OpenReadWrite,
                (
                    "Could not bind UDP {addr}: address already in use (another program or element uses this port; choose another port, or port=0 for a free one)"
                ),
                ["{e}"]
            ),
            ErrorKind::AddrNotAvailable => gst::error_msg!(
                gst::ResourceError::Settings,
                ("Could not bind UDP {addr}: {} is not an address of this machine", addr.ip()),
                ["{e}"]
            ),
            ErrorKind::PermissionDenied => gst::error_msg!(
                gst::ResourceError::OpenReadWrite,
                (
                    "Could not bind UDP {addr}: permission denied (ports below 1024 and some DSCP values need privileges)"
                ),
                ["{e}"]
            ),
            _ => gst::error_msg!(
                gst::ResourceError::OpenReadWrite,
                ("Could not open UDP socket on {addr}: {e}"),
                ["{e:?}"]
            ),
        }
    })
}

/// A session error at start as an element error.
pub fn session_error(e: session::Error) -> gst::ErrorMessage {
    gst::error_msg!(gst::ResourceError::Settings, ("Invalid settings: {e}"))
}

/// Human name of a disconnect reason (field `reason` of `punktfunk-peer-disconnected`).
pub fn disconnect_reason(r: DisconnectReason) -> &'static str {
    match r {
        DisconnectReason::Timeout => "timeout",
        DisconnectReason::Bye => "bye",
        DisconnectReason::Replaced => "replaced",
    }
}

/// The `stats` structure (`punktfunk-stats`) of a session's counters.
pub fn stats_structure(s: &Stats, bound_port: u32) -> gst::Structure {
    let role = match s.role {
        Some(Role::Host) => "host",
        Some(Role::Client) => "client",
        None => "none",
    };
    gst::Structure::builder(STATS_NAME)
        .field("role", role)
        .field("connected", s.connected)
        .field("peer", s.peer.map(|p| p.to_string()).unwrap_or_default())
        .field("session-id", s.session_id)
        .field("bound-port", bound_port)
        .field("rtt-us", s.rtt_us)
        .field("fec-percent", u32::from(s.fec_percent))
        .field("loss-percent", s.loss_percent())
        .field("packets-sent", s.packets_sent)
        .field("bytes-sent", s.bytes_sent)
        .field("packets-received", s.packets_received)
        .field("bytes-received", s.bytes_received)
        .field("send-drops", s.send_drops)
        .field("send-errors", s.send_errors)
        .field("frames-sent", s.frames_sent)
        .field("keyframes-sent", s.keyframes_sent)
        .field("payload-bytes-sent", s.payload_bytes_sent)
        .field("frames-dropped-no-peer", s.frames_dropped_no_peer)
        .field("frames-received", s.frames_received)
        .field("frames-lost", s.frames_lost)
        .field("fec-recovered", s.fec_recovered)
        .field("packets-lost", s.packets_lost)
        .field("shards-duplicate", s.shards_duplicate)
        .field("shards-late", s.shards_late)
        .field("shards-invalid", s.shards_invalid)
        .field("memory-in-use", s.memory_in_use)
        .field("memory-peak", s.memory_peak)
        .field("peer-packets-received", s.peer_packets_received)
        .field("peer-packets-lost", s.peer_packets_lost)
        .field("peer-frames-lost", s.peer_frames_lost)
        .field("replays-rejected", s.replays_rejected)
        .field("auth-failures", s.auth_failures)
        .field("invalid-datagrams", s.invalid_datagrams)
        .field("unknown-session", s.unknown_session)
        .field("handshakes-sent", s.handshakes_sent)
        .field("handshakes-completed", s.handshakes_completed)
        .field("handshake-failures", s.handshake_failures)
        .field("rejects-received", s.rejects_received)
        .field("resets-received", s.resets_received)
        .field("byes-received", s.byes_received)
        .field("keyframe-requests", s.keyframe_requests)
        .field("input-sent", s.input_sent)
        .field("input-received", s.input_received)
        .field("input-dropped", s.input_dropped)
        .field("send-buffer", s.send_buffer)
        .field("recv-buffer", s.recv_buffer)
        .field("gso", s.gso)
        .build()
}

/// The properties both elements have, with `default_mode` as the `mode` default.
pub fn common_properties(default_mode: ConnectionMode) -> Vec<glib::ParamSpec> {
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
                "UDP port: listener: port to bind (0 = any free port, read it back from bound-port); caller: the listener's port (default 7600)",
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
            .blurb("caller only: local UDP port to send from (0 = any free port, the default)")
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
                "The local UDP port actually bound while running (useful with port=0 or bind-port=0); 0 when stopped",
            )
            .maximum(u32::from(u16::MAX))
            .read_only()
            .build(),
    ]
}

// ----- punktfunk:// URIs -----

/// What a `punktfunk://[passphrase@]host:port` URI says.
#[derive(Clone, PartialEq, Eq)]
pub struct PunktfunkUri {
    pub passphrase: Option<String>,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Debug for PunktfunkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PunktfunkUri")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

impl PunktfunkUri {
    /// Parses `punktfunk://[passphrase@]host[:port][/]` (IPv6 hosts in brackets; the
    /// passphrase percent-encoded where it holds `@`, `:`, `/` or `%`; port defaults to 7600).
    pub fn parse(uri: &str) -> Result<PunktfunkUri, String> {
        let uri = uri.trim();
        let rest = uri
            .split_once("://")
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(URI_SCHEME))
            .map(|(_, rest)| rest)
            .ok_or_else(|| format!("not a {URI_SCHEME}:// URI"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("a punktfunk URI has no path, query or fragment".into());
        }
        let (passphrase, hostport) = match rest.rsplit_once('@') {
            Some((user, hp)) => {
                let p = percent_decode(user)?;
                (if p.is_empty() { None } else { Some(p) }, hp)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("unterminated '[' in IPv6 address")?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(format!("'{h}' is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("expected ':port' after ']'")?),
            };
            (h.to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err("an IPv6 address must be written in brackets: [::1]:7600".into());
                }
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("the URI names no host".into());
        }
        let port = match port {
            None => DEFAULT_PORT as u16,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("'{p}' is not a port (1..65535)")),
            },
        };
        Ok(PunktfunkUri {
            passphrase,
            host,
            port,
        })
    }

    /// The URI without the passphrase (which must never be shown).
    pub fn to_public_string(&self) -> String {
        format!(
            "{URI_SCHEME}://{}",
            host_port(&self.host, u32::from(self.port))
        )
    }
}

/// Decodes `%XX` escapes (UTF-8 result required).
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid %-escape in passphrase")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "passphrase is not UTF-8 after %-decoding".into())
}

// ----- input events -----

/// The GstNavigation event for an input event, where GstNavigation can express it (keys,
/// absolute mouse motion, buttons, scroll, touch). Relative motion and gamepads: `None`.
pub fn input_to_navigation(ev: &InputEvent) -> Option<gst::Event> {
    let nav = match ev {
        InputEvent::Key {
            pressed,
            key,
            modifiers,
            ..
        } => {
            let modifier_state = NavigationModifierType::from_bits_truncate(*modifiers);
            if *pressed {
                NavigationEvent::KeyPress {
                    key: key.clone(),
                    modifier_state,
                }
            } else {
                NavigationEvent::KeyRelease {
                    key: key.clone(),
                    modifier_state,
                }
            }
        }
        InputEvent::MouseMove { x, y } => NavigationEvent::MouseMove {
            x: *x,
            y: *y,
            modifier_state: NavigationModifierType::empty(),
        },
        InputEvent::MouseButton {
            button,
            pressed,
            x,
            y,
            modifiers,
        } => {
            let button = i32::try_from(*button).ok()?;
            let modifier_state = NavigationModifierType::from_bits_truncate(*modifiers);
            if *pressed {
                NavigationEvent::MouseButtonPress {
                    button,
                    x: *x,
                    y: *y,
                    modifier_state,
                }
            } else {
                NavigationEvent::MouseButtonRelease {
                    button,
                    x: *x,
                    y: *y,
                    modifier_state,
                }
            }
        }
        InputEvent::Scroll {
            x,
            y,
            dx,
            dy,
            modifiers,
        } => NavigationEvent::MouseScroll {
            x: *x,
            y: *y,
            delta_x: *dx,
            delta_y: *dy,
            modifier_state: NavigationModifierType::from_bits_truncate(*modifiers),
        },
        InputEvent::Touch {
            id,
            phase,
            x,
            y,
            pressure,
        } => {
            let modifier_state = NavigationModifierType::empty();
            match phase {
                TouchPhase::Down => NavigationEvent::TouchDown {
                    identifier: *id,
                    x: *x,
                    y: *y,
                    pressure: *pressure,
                    modifier_state,
                },
                TouchPhase::Motion => NavigationEvent::TouchMotion {
                    identifier: *id,
                    x: *x,
                    y: *y,
                    pressure: *pressure,
                    modifier_state,
                },
                TouchPhase::Up => NavigationEvent::TouchUp {
                    identifier: *id,
                    x: *x,
                    y: *y,
                    modifier_state,
                },
                TouchPhase::Cancel => NavigationEvent::TouchCancel { modifier_state },
            }
        }
        InputEvent::TouchFrame => NavigationEvent::TouchFrame {
            modifier_state: NavigationModifierType::empty(),
        },
        InputEvent::MouseMoveRelative { .. }
        | InputEvent::GamepadButton { .. }
        | InputEvent::GamepadAxis { .. }
        | InputEvent::GamepadConnected { .. } => return None,
    };
    Some(nav.build())
}

/// The input event for a GstNavigation event, where there is one (commands have none).
pub fn navigation_to_input(event: &gst::EventRef) -> Option<InputEvent> {
    let nav = NavigationEvent::parse(event).ok()?;
    Some(match nav {
        NavigationEvent::KeyPress {
            key,
            modifier_state,
        } => InputEvent::Key {
            pressed: true,
            key,
            keycode: 0,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::KeyRelease {
            key,
            modifier_state,
        } => InputEvent::Key {
            pressed: false,
            key,
            keycode: 0,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::MouseMove { x, y, .. } => InputEvent::MouseMove { x, y },
        NavigationEvent::MouseButtonPress {
            button,
            x,
            y,
            modifier_state,
        } => InputEvent::MouseButton {
            button: u32::try_from(button).ok()?,
            pressed: true,
            x,
            y,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::MouseButtonRelease {
            button,
            x,
            y,
            modifier_state,
        } => InputEvent::MouseButton {
            button: u32::try_from(button).ok()?,
            pressed: false,
            x,
            y,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::MouseScroll {
            x,
            y,
            delta_x,
            delta_y,
            modifier_state,
        } => InputEvent::Scroll {
            x,
            y,
            dx: delta_x,
            dy: delta_y,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::TouchDown {
            identifier,
            x,
            y,
            pressure,
            ..
        } => InputEvent::Touch {
            id: identifier,
            phase: TouchPhase::Down,
            x,
            y,
            pressure,
        },
        NavigationEvent::TouchMotion {
            identifier,
            x,
            y,
            pressure,
            ..
        } => InputEvent::Touch {
            id: identifier,
            phase: TouchPhase::Motion,
            x,
            y,
            pressure,
        },
        NavigationEvent::TouchUp {
            identifier, x, y, ..
        } => InputEvent::Touch {
            id: identifier,
            phase: TouchPhase::Up,
            x,
            y,
            pressure: 0.0,
        },
        NavigationEvent::TouchFrame { .. } => InputEvent::TouchFrame,
        NavigationEvent::TouchCancel { .. } => InputEvent::Touch {
            id: TOUCH_CANCEL_ALL,
            phase: TouchPhase::Cancel,
            x: 0.0,
            y: 0.0,
            pressure: 0.0,
        },
        _ => return None,
    })
}

/// The `punktfunk-input` structure of an input event: field `type` (the GstNavigation-style
/// name, e.g. "key-press", "gamepad-axis") and the event's fields.
pub fn input_structure(ev: &InputEvent) -> gst::Structure {
    let b = gst::Structure::builder(INPUT_NAME).field("type", ev.name());
    let b = match ev {
        InputEvent::Key {
            pressed,
            key,
            keycode,
            modifiers,
        } => b
            .field("key", key.as_str())
            .field("keycode", *keycode)
            .field("pressed", *pressed)
            .field("modifiers", *modifiers),
        InputEvent::MouseMove { x, y } => b.field("x", *x).field("y", *y),
        InputEvent::MouseMoveRelative { dx, dy } => b.field("dx", *dx).field("dy", *dy),
        InputEvent::MouseButton {
            button,
            pressed,
            x,
            y,
            modifiers,
        } => b
            .field("button", *button)
            .field("pressed", *pressed)
            .field("x", *x)
            .field("y", *y)
            .field("modifiers", *modifiers),
        InputEvent::Scroll {
            x,
            y,
            dx,
            dy,
            modifiers,
        } => b
            .field("x", *x)
            .field("y", *y)
            .field("dx", *dx)
            .field("dy", *dy)
            .field("modifiers", *modifiers),
        InputEvent::Touch {
            id, x, y, pressure, ..
        } => b
            .field("id", *id)
            .field("x", *x)
            .field("y", *y)
            .field("pressure", *pressure),
        InputEvent::TouchFrame => b,
        InputEvent::GamepadButton {
            pad,
            button,
            pressed,
            value,
        } => b
            .field("pad", u32::from(*pad))
            .field("button", u32::from(*button))
            .field("pressed", *pressed)
            .field("value", f64::from(*value)),
        InputEvent::GamepadAxis { pad, axis, value } => b
            .field("pad", u32::from(*pad))
            .field("axis", u32::from(*axis))
            .field("value", f64::from(*value)),
        InputEvent::GamepadConnected { pad, connected } => b
            .field("pad", u32::from(*pad))
            .field("connected", *connected),
    };
    b.build()
}

/// An unsigned field given as any integer type (structures parsed from strings hold `gint`).
fn field_u64(s: &gst::StructureRef, name: &str) -> Result<Option<u64>, String> {
    let Ok(v) = s.value(name) else {
        return Ok(None);
    };
    let n: Option<u64> = if let Ok(x) = v.get::<u32>() {
        Some(x.into())
    } else if let Ok(x) = v.get::<i32>() {
        u64::try_from(x).ok()
    } else if let Ok(x) = v.get::<u64>() {
        Some(x)
    } else if let Ok(x) = v.get::<i64>() {
        u64::try_from(x).ok()
    } else {
        return Err(format!("field '{name}' must be an integer"));
    };
    n.map(Some)
        .ok_or_else(|| format!("field '{name}' must not be negative"))
}

fn field_uint<T: TryFrom<u64>>(
    s: &gst::StructureRef,
    name: &str,
    default: Option<T>,
) -> Result<T, String> {
    match field_u64(s, name)? {
        Some(v) => T::try_from(v).map_err(|_| format!("field '{name}' is out of range")),
        None => default.ok_or_else(|| format!("field '{name}' is missing")),
    }
}

/// A float field given as double, float or integer.
fn field_f64(s: &gst::StructureRef, name: &str, default: Option<f64>) -> Result<f64, String> {
    let Ok(v) = s.value(name) else {
        return default.ok_or_else(|| format!("field '{name}' is missing"));
    };
    let x = if let Ok(x) = v.get::<f64>() {
        x
    } else if let Ok(x) = v.get::<f32>() {
        x.into()
    } else if let Ok(x) = v.get::<i32>() {
        x.into()
    } else if let Ok(x) = v.get::<u32>() {
        x.into()
    } else {
        return Err(format!("field '{name}' must be a number"));
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("field '{name}' must be finite"))
    }
}

fn field_bool(s: &gst::StructureRef, name: &str, default: Option<bool>) -> Result<bool, String> {
    match s.value(name) {
        Ok(v) => v
            .get::<bool>()
            .map_err(|_| format!("field '{name}' must be a boolean")),
        Err(_) => default.ok_or_else(|| format!("field '{name}' is missing")),
    }
}

/// Parses a structure shaped like the `punktfunk-input` message (any structure name) into an
/// input event. `type` picks the event; for press/release types `pressed` may be left out;
/// `modifiers`, `keycode`, `pressure` and `value` default to 0.
pub fn input_from_structure(s: &gst::StructureRef) -> Result<InputEvent, String> {
    let ty: String = s
        .get::<String>("type")
        .map_err(|_| "field 'type' (string) is missing".to_string())?;
    let modifiers = || field_uint::<u32>(s, "modifiers", Some(0));
    let touch = |phase: TouchPhase| -> Result<InputEvent, String> {
        Ok(InputEvent::Touch {
            id: field_uint(s, "id", None)?,
            phase,
            x: field_f64(s, "x", Some(0.0))?,
            y: field_f64(s, "y", Some(0.0))?,
            pressure: field_f64(s, "pressure", Some(0.0))?,
        })
    };
    let ev = match ty.as_str() {
        "key-press" | "key-release" | "key" => {
            let pressed = field_bool(s, "pressed", (ty != "key").then_some(ty == "key-press"))?;
            let key: String = s
                .get::<String>("key")
                .map_err(|_| "field 'key' (string) is missing".to_string())?;
            InputEvent::Key {
                pressed,
                key,
                keycode: field_uint(s, "keycode", Some(0))?,
                modifiers: modifiers()?,
            }
        }
        "mouse-move" => InputEvent::MouseMove {
            x: field_f64(s, "x", None)?,
            y: field_f64(s, "y", None)?,
        },
        "mouse-move-relative" => InputEvent::MouseMoveRelative {
            dx: field_f64(s, "dx", None)?,
            dy: field_f64(s, "dy", None)?,
        },
        "mouse-button-press" | "mouse-button-release" | "mouse-button" => {
            let implied = (ty != "mouse-button").then_some(ty == "mouse-button-press");
            InputEvent::MouseButton {
                button: field_uint(s, "button", None)?,
                pressed: field_bool(s, "pressed", implied)?,
                x: field_f64(s, "x", Some(0.0))?,
                y: field_f64(s, "y", Some(0.0))?,
                modifiers: modifiers()?,
            }
        }
        "mouse-scroll" => InputEvent::Scroll {
            x: field_f64(s, "x", Some(0.0))?,
            y: field_f64(s, "y", Some(0.0))?,
            dx: field_f64(s, "dx", Some(0.0))?,
            dy: field_f64(s, "dy", Some(0.0))?,
            modifiers: modifiers()?,
        },
        "touch-down" => touch(TouchPhase::Down)?,
        "touch-motion" => touch(TouchPhase::Motion)?,
        "touch-up" => touch(TouchPhase::Up)?,
        "touch-cancel" => InputEvent::Touch {
            id: field_uint(s, "id", Some(TOUCH_CANCEL_ALL))?,
            phase: TouchPhase::Cancel,
            x: field_f64(s, "x", Some(0.0))?,
            y: field_f64(s, "y", Some(0.0))?,
            pressure: 0.0,
        },
        "touch-frame" => InputEvent::TouchFrame,
        "gamepad-button" => InputEvent::GamepadButton {
            pad: field_uint(s, "pad", Some(0))?,
            button: field_uint(s, "button", None)?,
            pressed: field_bool(s, "pressed", None)?,
            value: field_f64(s, "value", Some(0.0))? as f32,
        },
        "gamepad-axis" => InputEvent::GamepadAxis {
            pad: field_uint(s, "pad", Some(0))?,
            axis: field_uint(s, "axis", None)?,
            value: field_f64(s, "value", None)? as f32,
        },
        "gamepad-connected" => InputEvent::GamepadConnected {
            pad: field_uint(s, "pad", Some(0))?,
            connected: field_bool(s, "connected", Some(true))?,
        },
        other => return Err(format!("unknown input type '{other}'")),
    };
    Ok(ev)
}

// ----- H.264 / H.265 parameter sets -----

/// The codec of the sink's input, from its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    pub fn from_caps(caps: &gst::CapsRef) -> Option<Codec> {
        match caps.structure(0)?.name().as_str() {
            "video/x-h264" => Some(Codec::H264),
            "video/x-h265" => Some(Codec::H265),
            _ => None,
        }
    }

    /// (is a parameter set, is the SPS, is a slice (VCL)) for a NAL header byte.
    fn classify(self, header: u8) -> (bool, bool, bool) {
        match self {
            Codec::H264 => {
                let t = header & 0x1f;
                (t == 7 || t == 8, t == 7, (1..=5).contains(&t))
            }
            Codec::H265 => {
                let t = (header >> 1) & 0x3f;
                ((32..=34).contains(&t), t == 33, t <= 31)
            }
        }
    }
}

/// The caps both elements carry: H.264 and H.265 byte-stream, one access unit per buffer.
pub fn stream_caps() -> gst::Caps {
    let codec = |name: &str| {
        gst::Structure::builder(name)
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build()
    };
    gst::Caps::builder_full()
        .structure(codec("video/x-h264"))
        .structure(codec("video/x-h265"))
        .build()
}

/// Position of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip ahead by 3 when the third byte cannot end a start code.
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// The parameter-set NAL units (with their start codes) at the head of an Annex-B access unit,
/// up to the first slice, and whether an SPS is among them.
pub fn leading_parameter_sets(codec: Codec, au: &[u8]) -> (Vec<std::ops::Range<usize>>, bool) {
    let mut ranges = Vec::new();
    let mut has_sps = false;
    let Some(mut sc) = find_start_code(au, 0) else {
        return (ranges, false);
    };
    loop {
        let unit_start = if sc > 0 && au[sc - 1] == 0 {
            sc - 1
        } else {
            sc
        };
        let payload = sc + 3;
        let Some(&header) = au.get(payload) else {
            break;
        };
        let (param, sps, vcl) = codec.classify(header);
        // Parameter sets precede the first slice of an access unit: stop there, so a frame
        // costs a scan of its few leading small NAL units, not of its slice data.
        if vcl {
            break;
        }
        let next = find_start_code(au, payload);
        if param {
            let unit_end = match next {
                Some(n) if n > payload && au[n - 1] == 0 => n - 1,
                Some(n) => n,
                None => au.len(),
            };
            ranges.push(unit_start..unit_end);
            has_sps |= sps;
        }
        match next {
            Some(n) => sc = n,
            None => break,
        }
    }
    (ranges, has_sps)
}

/// Latest parameter sets seen by the sink, re-sent in front of keyframes that lack them so a
/// late joiner can decode.
#[derive(Debug, Default)]
pub struct ParameterSets {
    cached: Vec<u8>,
}

impl ParameterSets {
    pub fn clear(&mut self) {
        self.cached.clear();
    }

    pub fn cached(&self) -> &[u8] {
        &self.cached
    }

    /// Looks at an access unit: an AU carrying an SPS replaces the cache with its parameter
    /// sets. Returns the bytes to prepend (the cache) when `keyframe` has no SPS of its own.
    pub fn observe(&mut self, codec: Codec, au: &[u8], keyframe: bool) -> Option<&[u8]> {
        let (ranges, has_sps) = leading_parameter_sets(codec, au);
        if has_sps {
            self.cached.clear();
            for r in ranges {
                self.cached.extend_from_slice(&au[r]);
            }
            return None;
        }
        (keyframe && !self.cached.is_empty()).then_some(&self.cached[..])
    }
}

/// Registers the enum types for documentation (gst-inspect shows them).
pub fn mark_plugin_api() {
    ConnectionMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    FecModeSetting::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        let u = PunktfunkUri::parse("punktfunk://127.0.0.1:7611").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 7611);
        assert_eq!(u.passphrase, None);
        let u = PunktfunkUri::parse("punktfunk://se%40cret%3A1@[::1]:9000/").unwrap();
        assert_eq!(u.passphrase.as_deref(), Some("se@cret:1"));
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 9000);
        assert_eq!(u.to_public_string(), "punktfunk://[::1]:9000");
        let u = PunktfunkUri::parse("PUNKTFUNK://host.example").unwrap();
        assert_eq!(u.port, 7600);
        for bad in [
            "http://x:1",
            "punktfunk://",
            "punktfunk://::1:7600",
            "punktfunk://[::1",
            "punktfunk://h:0",
            "punktfunk://h:99999",
            "punktfunk://p%zz@h:1",
            "punktfunk://h:1/path",
        ] {
            assert!(PunktfunkUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameter_sets_h264() {
        let sps = [0, 0, 0, 1, 0x67, 1, 2, 3];
        let pps = [0, 0, 0, 1, 0x68, 4, 5];
        let idr = [0, 0, 0, 1, 0x65, 9, 9, 9];
        let aud = [0, 0, 0, 1, 0x09, 0xf0];
        let au: Vec<u8> = [&aud[..], &sps, &pps, &idr].concat();
        let mut p = ParameterSets::default();
        assert_eq!(p.observe(Codec::H264, &au, true), None);
        assert_eq!(p.cached(), [&sps[..], &pps].concat());
        // A keyframe without them gets the cached ones.
        assert_eq!(
            p.observe(Codec::H264, &idr, true),
            Some(&[&sps[..], &pps].concat()[..])
        );
        // A delta frame does not.
        assert_eq!(p.observe(Codec::H264, &[0, 0, 1, 0x41, 7], false), None);
        // Garbage never panics.
        for junk in [&[][..], &[0, 0, 1], &[0, 0, 0, 1], &[1, 2, 3, 0, 0]] {
            let _ = p.observe(Codec::H264, junk, true);
            let _ = p.observe(Codec::H265, junk, true);
        }
    }

    #[test]
    fn parameter_sets_h265() {
        let vps = [0, 0, 0, 1, 0x40, 1, 0xaa];
        let sps = [0, 0, 1, 0x42, 1, 0xbb];
        let pps = [0, 0, 1, 0x44, 1, 0xcc];
        let idr = [0, 0, 1, 0x26, 1, 0xdd];
        let au: Vec<u8> = [&vps[..], &sps, &pps, &idr].concat();
        let (ranges, has_sps) = leading_parameter_sets(Codec::H265, &au);
        assert!(has_sps);
        assert_eq!(ranges.len(), 3);
    }
}
