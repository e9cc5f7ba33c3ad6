//! Linux UDP transport.
//!
//! This module owns [`UdpTransport`] and its [`UdpOptions`]: a nonblocking IPv4 or IPv6 UDP
//! socket (created, configured and bound through `nix`), with
//!
//! - **batched sends**: `sendmmsg` with up to [`MAX_BATCH`] messages per system call;
//! - **UDP GSO**: a run of consecutive datagrams of equal length (the last may be shorter) goes
//!   out as one message carrying a `UDP_SEGMENT` control message (at most
//!   [`MAX_GSO_SEGMENTS`] segments and [`MAX_GSO_BYTES`] bytes). The run is gathered with one
//!   iovec per datagram straight from the caller's slices, so nothing is copied or allocated.
//!   When the kernel refuses GSO (`EIO`, `EINVAL`, `ENOPROTOOPT`, `EOPNOTSUPP`, `EMSGSIZE` on a
//!   GSO message), GSO is switched off for this socket for good and the same datagrams are sent
//!   again without it;
//! - **drop, never block**: a full send buffer (`EAGAIN`/`ENOBUFS`) drops the remaining
//!   datagrams of the call and counts them in [`SendOutcome::dropped`];
//! - **batched receives**: `recvmmsg` fills as many [`RecvBatch`] slots as there are datagrams
//!   waiting, with headers, iovecs, address and control-message space preallocated once, so a
//!   steady loop of receives does not allocate. Datagrams larger than a slot are dropped and
//!   counted ([`UdpTransport::truncated`]);
//! - **optional UDP GRO**: a coalesced buffer is split into its segments, each its own entry;
//! - **kernel receive times** (`SO_TIMESTAMPNS`, on by default): each entry carries the time
//!   the kernel received it ([`RecvBatch::received_ns`]; a GRO buffer's segments share one), so
//!   arrival timing does not depend on when the receiving thread ran;
//! - **waiting** with `ppoll` on the socket and an eventfd that [`Transport::wake`] signals;
//! - large socket buffers (`SO_SNDBUFFORCE`/`SO_RCVBUFFORCE` when privileged, else
//!   `SO_SNDBUF`/`SO_RCVBUF`; what the kernel granted is read back into [`TransportInfo`]) and
//!   DSCP marking.
//!
//! The multi-message calls go through `libc` directly rather than nix's `sendmmsg`/`recvmmsg`:
//! nix 0.30's `recvmmsg` reuses its headers without restoring `msg_controllen`/`msg_namelen`
//! (which the kernel overwrites), so after one datagram without a GRO control message every
//! later GRO segment size would be lost; its `sendmmsg` shares one control message across all
//! messages of a call and can only report its result through an iterator that reads
//! uninitialised address storage; and its `ppoll` needs the `signal` feature.
//!
//! Parts: this file creates and configures the socket ([`UdpTransport::bind`]) and implements
//! [`Transport`]; `send` batches and segments outgoing datagrams, `recv` receives, splits and
//! timestamps incoming ones and waits. Must never: block a sender on a full buffer, or let a
//! datagram from the network make it panic or allocate without bound.

mod recv;
mod send;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{
    self, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage, sockopt,
};

use super::{RecvBatch, SendOutcome, Transport, TransportInfo};
use recv::RecvState;
pub(crate) use recv::clock_ns;
use send::SendState;

/// Messages per `sendmmsg` call at most.
pub(crate) const MAX_BATCH: usize = 64;
/// Segments per GSO message at most.
pub(crate) const MAX_GSO_SEGMENTS: usize = 64;
/// Bytes per GSO message at most.
pub(crate) const MAX_GSO_BYTES: usize = 65000;
/// Socket buffer size asked for by default (each direction).
pub const DEFAULT_BUFFER: usize = 32 << 20;

/// Messages per `recvmmsg` call at most (the kernel's `UIO_MAXIOV`).
const MAX_RECV_BATCH: usize = 1024;
/// Control-message space per received message, in 8-byte words (room for `UDP_GRO`, 24
/// bytes, and `SCM_TIMESTAMPNS`, 32 bytes).
const RECV_CMSG_WORDS: usize = 8;
/// Control-message space per sent message, in 8-byte words (room for `UDP_SEGMENT`).
const SEND_CMSG_WORDS: usize = 4;
/// Longest single `ppoll` wait; longer waits loop.
const MAX_POLL: Duration = Duration::from_secs(3600);

/// How to set up a [`UdpTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOptions {
    /// Send buffer to ask the kernel for, in bytes (0 = leave the default).
    pub send_buffer: usize,
    /// Receive buffer to ask the kernel for, in bytes (0 = leave the default).
    pub recv_buffer: usize,
    /// DSCP code point (0..63) for outgoing datagrams; 0 leaves the TOS/traffic class alone.
    pub dscp: u8,
    /// Use UDP GSO for runs of equal-size datagrams when the kernel supports it.
    pub gso: bool,
    /// Ask for UDP GRO on receive (use slots of 64 KiB so coalesced buffers fit).
    pub gro: bool,
    /// Ask the kernel for each datagram's receive time (`SO_TIMESTAMPNS`), so arrival times
    /// do not include how long the receiving thread took to get to the socket.
    pub rx_timestamps: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            send_buffer: DEFAULT_BUFFER,
            recv_buffer: DEFAULT_BUFFER,
            dscp: 0,
            gso: true,
            gro: false,
            rx_timestamps: true,
        }
    }
}

/// A UDP socket as a [`Transport`]. See the module docs.
pub struct UdpTransport {
    sock: OwnedFd,
    wake_fd: EventFd,
    local: SocketAddr,
    ipv6: bool,
    send_buffer: usize,
    recv_buffer: usize,
    gso: AtomicBool,
    gro: bool,
    rx_timestamps: bool,
    truncated: AtomicU64,
    gro_buffers: AtomicU64,
    recv_state: Mutex<RecvState>,
    send_state: Mutex<SendState>,
}

impl UdpTransport {
    /// Creates a nonblocking UDP socket bound to `addr` (port 0 = an ephemeral port) and
    /// configures it as `opts` asks. Buffer sizes and offloads that the kernel refuses are
    /// quietly reduced or left off (see [`Transport::info`]); a DSCP that cannot be set is an
    /// error.
    pub fn bind(addr: SocketAddr, opts: &UdpOptions) -> io::Result<Self> {
        let ipv6 = addr.is_ipv6();
        let family = if ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let sock = socket::socket(
            family,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Udp,
        )?;

        // The kernel doubles the value and caps it at INT_MAX.
        let cap = |v: usize| v.min(i32::MAX as usize / 2);
        if opts.send_buffer > 0 {
            let v = cap(opts.send_buffer);
            if socket::setsockopt(&sock, sockopt::SndBufForce, &v).is_err() {
                let _ = socket::setsockopt(&sock, sockopt::SndBuf, &v);
            }
        }
        if opts.recv_buffer > 0 {
            let v = cap(opts.recv_buffer);
            if socket::setsockopt(&sock, sockopt::RcvBufForce, &v).is_err() {
                let _ = socket::setsockopt(&sock, sockopt::RcvBuf, &v);
            }
        }
        let send_buffer = socket::getsockopt(&sock, sockopt::SndBuf).unwrap_or(0);
        let recv_buffer = socket::getsockopt(&sock, sockopt::RcvBuf).unwrap_or(0);

        if opts.dscp != 0 {
            let tos = libc::c_int::from(opts.dscp & 0x3f) << 2;
            if ipv6 {
                socket::setsockopt(&sock, sockopt::Ipv6TClass, &tos)?;
                // For IPv4-mapped traffic on a dual-stack socket; not all kernels allow it.
                let _ = socket::setsockopt(&sock, sockopt::Ipv4Tos, &tos);
            } else {
                socket::setsockopt(&sock, sockopt::Ipv4Tos, &tos)?;
            }
        }

        // UDP_SEGMENT reads back on kernels that know GSO (4.18+).
        let gso = opts.gso && socket::getsockopt(&sock, sockopt::UdpGsoSegment).is_ok();
        let gro = opts.gro && socket::setsockopt(&sock, sockopt::UdpGroSegment, &true).is_ok();
        let rx_timestamps = opts.rx_timestamps
            && socket::setsockopt(&sock, sockopt::ReceiveTimestampns, &true).is_ok();

        socket::bind(sock.as_raw_fd(), &SockaddrStorage::from(addr))?;
        let name: SockaddrStorage = socket::getsockname(sock.as_raw_fd())?;
        let local = if let Some(sin) = name.as_sockaddr_in() {
            SocketAddr::V4(SocketAddrV4::from(*sin))
        } else if let Some(sin6) = name.as_sockaddr_in6() {
            SocketAddr::V6(SocketAddrV6::from(*sin6))
        } else {
            return Err(io::Error::other("getsockname returned no IP address"));
        };

        let wake_fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;

        Ok(UdpTransport {
            sock,
            wake_fd,
            local,
            ipv6,
            send_buffer,
            recv_buffer,
            gso: AtomicBool::new(gso),
            gro,
            rx_timestamps,
            truncated: AtomicU64::new(0),
            gro_buffers: AtomicU64::new(0),
            recv_state: Mutex::new(RecvState::new()),
            send_state: Mutex::new(SendState::new()),
        })
    }

    /// Received datagrams (or GRO segments) dropped because they did not fit a slot.
    pub fn truncated(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// Received GRO buffers that held more than one datagram.
    pub fn gro_buffers(&self) -> u64 {
        self.gro_buffers.load(Ordering::Relaxed)
    }
}

impl AsFd for UdpTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Transport for UdpTransport {
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        self.send_datagrams(datagrams, to)
    }

    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        self.recv_datagrams(batch, timeout)
    }

    fn wake(&self) {
        // Only fails if the counter would overflow, in which case a wake-up is pending anyway.
        let _ = self.wake_fd.write(1);
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn info(&self) -> TransportInfo {
        TransportInfo {
            send_buffer: self.send_buffer,
            recv_buffer: self.recv_buffer,
            gso: self.gso.load(Ordering::Relaxed),
            gro: self.gro,
        }
    }
}
