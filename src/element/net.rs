//! From settings to a bound socket: name resolution, where a session binds and whom it calls,
//! and OS errors turned into element errors a person can act on ("address already in use:
//! choose another port, or port=0").
//!
//! Owns: [`Endpoints`], [`endpoints`] and [`bind_transport`]. Must never: know the elements'
//! settings (it takes plain values, so the settings may use it without it using them), or be
//! called from a streaming thread — resolving a host name may block; the elements call it from
//! `start()` only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::session;
use crate::transport::udp::{UdpOptions, UdpTransport};

/// Where a session binds and whom it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) bind: SocketAddr,
    /// The listener's address (callers only).
    pub(crate) peer: Option<SocketAddr>,
}

/// Resolves where to bind and whom to call. Listener: binds `address:port`. Caller: sends to
/// `address:port` from `bind_address:bind_port`; with an IPv6 peer and no `bind_address`, it
/// binds `[::]`. The names in the errors are the properties' (`port`, `bind-port`, ...).
pub(crate) fn endpoints(
    mode: session::Mode,
    address: &str,
    port: u32,
    bind_address: Option<&str>,
    bind_port: u32,
) -> Result<Endpoints, gst::ErrorMessage> {
    let port = port_u16(port, "port")?;
    match mode {
        session::Mode::Listener => {
            let bind = resolve(address, port, None)?;
            Ok(Endpoints { bind, peer: None })
        }
        session::Mode::Caller => {
            if port == 0 {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("mode=caller needs the listener's port: port=0 cannot be called (set port to the listener's bound port)")
                ));
            }
            let bind_port = port_u16(bind_port, "bind-port")?;
            let explicit_bind = match bind_address {
                Some(a) => Some(parse_ip(a).ok_or_else(|| {
                    gst::error_msg!(
                        gst::ResourceError::Settings,
                        ("bind-address '{a}' is not an IPv4 or IPv6 address")
                    )
                })?),
                None => None,
            };
            let family = explicit_bind.map(|ip| ip.is_ipv6());
            let peer = resolve(address, port, family)?;
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

fn port_u16(port: u32, name: &str) -> Result<u16, gst::ErrorMessage> {
    u16::try_from(port).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            ("{name}={port} is not a UDP port (0..65535)")
        )
    })
}

/// `host:port`, with an IPv6 literal in brackets.
pub(crate) fn host_port(host: &str, port: u32) -> String {
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
pub(crate) fn bind_transport(
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
pub(crate) fn session_error(e: session::Error) -> gst::ErrorMessage {
    gst::error_msg!(gst::ResourceError::Settings, ("Invalid settings: {e}"))
}
