//! Sessions over real UDP on loopback: a bound transport and the host and client settings the
//! UDP session tests share.

use std::net::SocketAddr;

use gstpunktfunk::protocol::control::StreamInfo;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Mode};
use gstpunktfunk::transport::udp::{UdpOptions, UdpTransport};

/// The caps the test hosts announce.
pub const CAPS: &str = "video/x-h264, stream-format=byte-stream, alignment=au";

/// A UDP transport on an ephemeral loopback port.
pub fn bind() -> UdpTransport {
    UdpTransport::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap()
}

/// A listening host with passphrase `pass`, announcing [`CAPS`], congestion control off.
pub fn host_config(pass: &str) -> Config {
    let mut c = Config::new(Role::Host, Mode::Listener);
    c.passphrase = Some(pass.into());
    // These tests measure repair and security, not rate control: the sender here pushes frames
    // as fast as the window allows (far faster than any encoder), which congestion control
    // would rightly pace down to what the loopback receiver drains, taking minutes per test.
    c.congestion.enabled = false;
    c.stream_info = Some(StreamInfo {
        caps: CAPS.into(),
        ..Default::default()
    });
    c
}

/// A client calling `host` with passphrase `pass`.
pub fn client_config(pass: &str, host: SocketAddr) -> Config {
    let mut c = Config::client_caller(host);
    c.passphrase = Some(pass.into());
    c
}
