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

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{
    self, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrLike, SockaddrStorage, sockopt,
};

use super::{RecvBatch, SendOutcome, Transport, TransportInfo};
use crate::sync::lock;

/// Messages per `sendmmsg` call at most.
pub const MAX_BATCH: usize = 64;
/// Segments per GSO message at most.
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Bytes per GSO message at most.
pub const MAX_GSO_BYTES: usize = 65000;
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

/// Preallocated `recvmmsg` state; used only by the receiving thread.
struct RecvState {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    /// `RECV_CMSG_WORDS` words of control space per message (u64 for cmsghdr alignment).
    cmsg: Vec<u64>,
}

// SAFETY: the raw pointers inside the headers and iovecs are only ever dereferenced by the
// kernel during a `recvmmsg` call made while the owning mutex is held, and they are all
// re-pointed right before each call; between calls they are inert values.
unsafe impl Send for RecvState {}

impl RecvState {
    fn new() -> Self {
        let mut st = RecvState {
            hdrs: Vec::new(),
            iovs: Vec::new(),
            addrs: Vec::new(),
            cmsg: Vec::new(),
        };
        st.ensure(64);
        st
    }

    /// Makes room for `n` messages (allocates only when a bigger batch than before shows up).
    fn ensure(&mut self, n: usize) {
        if self.hdrs.len() < n {
            // SAFETY: these are plain C structs for which all-zero bytes are a valid value.
            self.hdrs.resize_with(n, || unsafe { mem::zeroed() });
            self.iovs.resize_with(n, || unsafe { mem::zeroed() });
            self.addrs.resize_with(n, || unsafe { mem::zeroed() });
            self.cmsg.resize(n * RECV_CMSG_WORDS, 0);
        }
    }
}

/// Preallocated `sendmmsg` state; used by one sender at a time.
struct SendState {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// `SEND_CMSG_WORDS` words of control space per message.
    cmsg: Vec<u64>,
    /// Datagrams carried by each message of the current call.
    counts: [usize; MAX_BATCH],
    dest: SockaddrStorage,
}

// SAFETY: as for `RecvState`: the pointers (into the caller's datagrams and into this struct's
// own vectors) are set right before each `sendmmsg` made under the mutex and are never
// dereferenced by us.
unsafe impl Send for SendState {}

impl SendState {
    fn new() -> Self {
        SendState {
            // SAFETY: plain C structs; all-zero is valid.
            hdrs: (0..MAX_BATCH).map(|_| unsafe { mem::zeroed() }).collect(),
            iovs: (0..MAX_BATCH * MAX_GSO_SEGMENTS)
                .map(|_| unsafe { mem::zeroed() })
                .collect(),
            cmsg: vec![0; MAX_BATCH * SEND_CMSG_WORDS],
            counts: [0; MAX_BATCH],
            dest: SockaddrStorage::from(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
        }
    }

    /// Lays out up to `MAX_BATCH` messages for `datagrams` (GSO runs when `gso`), pointing at
    /// `self.dest`. Returns the number of messages.
    fn build(&mut self, datagrams: &[&[u8]], gso: bool) -> usize {
        let mut msgs = 0;
        let mut iov_at = 0;
        let mut d = 0;
        while msgs < MAX_BATCH && d < datagrams.len() {
            let run = if gso { gso_run(&datagrams[d..]) } else { 1 };
            for dg in &datagrams[d..d + run] {
                self.iovs[iov_at] = libc::iovec {
                    iov_base: dg.as_ptr().cast_mut().cast(),
                    iov_len: dg.len(),
                };
                iov_at += 1;
            }
            self.counts[msgs] = run;
            msgs += 1;
            d += run;
        }

        let name = self.dest.as_ptr().cast_mut().cast::<libc::c_void>();
        let namelen = self.dest.len();
        let iov_base = self.iovs.as_mut_ptr();
        let cmsg_base = self.cmsg.as_mut_ptr();
        let mut iov_at = 0;
        let mut d_at = 0;
        for m in 0..msgs {
            let run = self.counts[m];
            let h = &mut self.hdrs[m];
            h.msg_len = 0;
            let hdr = &mut h.msg_hdr;
            hdr.msg_name = name;
            hdr.msg_namelen = namelen;
            // SAFETY: `iov_at + run` ≤ iovs.len() (at most MAX_GSO_SEGMENTS per message).
            hdr.msg_iov = unsafe { iov_base.add(iov_at) };
            hdr.msg_iovlen = run as _;
            hdr.msg_flags = 0;
            if run > 1 {
                // The segment size fits in u16: gso_run only builds runs of ≤ 32500-byte items.
                let seg = datagrams[d_at].len() as u16;
                // SAFETY: the control area of message `m` lies inside `self.cmsg`, is 8-byte
                // aligned and large enough for CMSG_SPACE(2); msg_control/msg_controllen are
                // set before CMSG_FIRSTHDR reads them.
                unsafe {
                    let area = cmsg_base.add(m * SEND_CMSG_WORDS).cast::<libc::c_void>();
                    hdr.msg_control = area;
                    hdr.msg_controllen = libc::CMSG_SPACE(mem::size_of::<u16>() as _) as _;
                    let c = libc::CMSG_FIRSTHDR(hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as _) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
                }
            } else {
                hdr.msg_control = ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            iov_at += run;
            d_at += run;
        }
        msgs
    }
}

/// How many datagrams from the front of `rest` form one GSO message: equal lengths, the last
/// possibly shorter (but not empty), within the segment and byte limits. 1 = no GSO.
fn gso_run(rest: &[&[u8]]) -> usize {
    let Some(first) = rest.first() else {
        return 0;
    };
    let seg = first.len();
    if seg == 0 {
        return 1;
    }
    let max = MAX_GSO_SEGMENTS.min(MAX_GSO_BYTES / seg);
    let mut n = 1;
    while n < rest.len() && n < max {
        let len = rest[n].len();
        if len == 0 || len > seg {
            break;
        }
        n += 1;
        if len < seg {
            break;
        }
    }
    n
}

/// Errors by which the kernel (or the path) refuses UDP GSO.
fn is_gso_refusal(e: Errno) -> bool {
    matches!(
        e,
        Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP | Errno::EMSGSIZE
    )
}

/// Errors that mean "the send buffer is full": drop and count.
fn is_buffer_full(e: Errno) -> bool {
    matches!(e, Errno::EAGAIN | Errno::ENOBUFS)
}

/// Errors a receive reports about earlier sends (ICMP); they say nothing about receiving.
fn is_stale_icmp_error(e: Errno) -> bool {
    matches!(
        e,
        Errno::ECONNREFUSED
            | Errno::ECONNRESET
            | Errno::EHOSTUNREACH
            | Errno::ENETUNREACH
            | Errno::EHOSTDOWN
            | Errno::ENETDOWN
    )
}

/// A socket address from the kernel, with IPv4-mapped IPv6 addresses turned into IPv4.
fn raw_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says it is a sockaddr_in, and sockaddr_storage is large and
            // aligned enough for one.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )),
            })
        }
        _ => None,
    }
}

/// What a received message's control data says: the UDP_GRO segment size and the kernel's
/// receive time (`CLOCK_REALTIME`, ns), each if present.
///
/// # Safety
/// `hdr` must be a header just filled by the kernel whose `msg_control` (if non-null) points
/// to at least `msg_controllen` readable bytes.
// `cmsg_len` is `size_t` on glibc but `socklen_t` on musl.
#[allow(clippy::unnecessary_cast)]
unsafe fn control_data(hdr: &libc::msghdr) -> (Option<usize>, Option<u64>) {
    let (mut seg, mut rx_ns) = (None, None);
    // CMSG_FIRSTHDR also returns null when msg_controllen is too small for a header.
    if hdr.msg_control.is_null() {
        return (seg, rx_ns);
    }
    let want_seg = unsafe { libc::CMSG_LEN(mem::size_of::<libc::c_int>() as _) } as usize;
    let want_ts = unsafe { libc::CMSG_LEN(mem::size_of::<libc::timespec>() as _) } as usize;
    let mut c = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !c.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only return headers inside the control buffer,
        // and the data read is within the length the header states.
        let (level, ty, len) = unsafe { ((*c).cmsg_level, (*c).cmsg_type, (*c).cmsg_len) };
        if level == libc::SOL_UDP && ty == libc::UDP_GRO && len as usize >= want_seg {
            let v = unsafe { ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()) };
            seg = usize::try_from(v).ok().filter(|&s| s > 0);
        } else if level == libc::SOL_SOCKET
            && ty == libc::SCM_TIMESTAMPNS
            && len as usize >= want_ts
        {
            let ts = unsafe { ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>()) };
            rx_ns = timespec_ns(&ts).filter(|&ns| ns > 0);
        }
        c = unsafe { libc::CMSG_NXTHDR(hdr, c) };
    }
    (seg, rx_ns)
}

/// A `timespec` in nanoseconds (`None` if negative or beyond `u64`).
fn timespec_ns(ts: &libc::timespec) -> Option<u64> {
    u64::try_from(ts.tv_sec)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(ts.tv_nsec).ok()?)
}

/// `clock` (e.g. `CLOCK_REALTIME`, the clock of `SO_TIMESTAMPNS`) now, in nanoseconds.
pub(crate) fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; an unknown clock only makes it fail.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return None;
    }
    timespec_ns(&ts)
}

enum Waited {
    /// The socket may have data (or an error) now.
    Ready,
    Woken,
    TimedOut,
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

    /// The destination as this socket's family needs it.
    fn dest_for(&self, to: SocketAddr) -> io::Result<SockaddrStorage> {
        if to.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot send to port 0",
            ));
        }
        let to = match (self.ipv6, to) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            (false, SocketAddr::V6(v6)) => match v6.ip().to_ipv4_mapped() {
                Some(ip) => SocketAddr::V4(SocketAddrV4::new(ip, v6.port())),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "IPv6 destination on an IPv4 socket",
                    ));
                }
            },
            (_, to) => to,
        };
        Ok(SockaddrStorage::from(to))
    }

    /// One nonblocking `recvmmsg` into `batch`. Returns the number of entries added.
    fn recv_ring(&self, batch: &mut RecvBatch) -> Result<usize, Errno> {
        let mut st = lock(&self.recv_state);
        let n = batch.slots().min(MAX_RECV_BATCH);
        st.ensure(n);
        self.recv_ring_locked(&mut st, batch, n)
    }

    fn recv_ring_locked(
        &self,
        st: &mut RecvState,
        batch: &mut RecvBatch,
        n: usize,
    ) -> Result<usize, Errno> {
        let RecvState {
            hdrs,
            iovs,
            addrs,
            cmsg,
        } = st;
        for (iov, slot) in iovs.iter_mut().zip(batch.slots_mut()).take(n) {
            *iov = libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            };
        }
        let iov_base = iovs.as_mut_ptr();
        let addr_base = addrs.as_mut_ptr();
        let cmsg_base = cmsg.as_mut_ptr();
        for (i, h) in hdrs.iter_mut().take(n).enumerate() {
            h.msg_len = 0;
            let hdr = &mut h.msg_hdr;
            // SAFETY: i < n ≤ the length of every vector (ensured by the caller).
            unsafe {
                hdr.msg_name = addr_base.add(i).cast();
                hdr.msg_iov = iov_base.add(i);
                if self.gro || self.rx_timestamps {
                    hdr.msg_control = cmsg_base.add(i * RECV_CMSG_WORDS).cast();
                    hdr.msg_controllen = (RECV_CMSG_WORDS * 8) as _;
                } else {
                    hdr.msg_control = ptr::null_mut();
                    hdr.msg_controllen = 0;
                }
            }
            // In-out fields: the kernel overwrites them, so restore the capacities every time.
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iovlen = 1;
            hdr.msg_flags = 0;
        }
        // MSG_TRUNC makes msg_len the datagram's real length, so truncation is visible and a
        // truncated GRO buffer still yields its complete segments.
        // SAFETY: the first `n` headers point at live, writable buffers of the stated sizes:
        // the batch's slots (borrowed mutably for this call) and this state's vectors.
        let r = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                ptr::null_mut(),
            )
        };
        let got = (Errno::result(r)? as usize).min(n);

        let slot_size = batch.slot_size();
        let mut truncated = 0u64;
        for (i, h) in hdrs.iter().take(got).enumerate() {
            let full = h.msg_len as usize;
            let Some(from) = raw_to_std(&addrs[i], h.msg_hdr.msg_namelen) else {
                continue;
            };
            // SAFETY: the header was just filled by the kernel; its control pointer is ours.
            let (seg, rx_ns) = if self.gro || self.rx_timestamps {
                unsafe { control_data(&h.msg_hdr) }
            } else {
                (None, None)
            };
            match seg {
                Some(seg) if full > seg => {
                    self.gro_buffers.fetch_add(1, Ordering::Relaxed);
                    let copied = full.min(slot_size);
                    let mut off = 0;
                    while off < full {
                        let len = seg.min(full - off);
                        if off + len <= copied {
                            batch.push_received(i, off, len, from, rx_ns);
                        } else {
                            truncated += 1;
                        }
                        off += len;
                    }
                }
                _ => {
                    if full > slot_size || h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                        truncated += 1;
                    } else {
                        batch.push_received(i, 0, full, from, rx_ns);
                    }
                }
            }
        }
        if truncated > 0 {
            self.truncated.fetch_add(truncated, Ordering::Relaxed);
        }
        Ok(batch.len())
    }

    /// Waits until the socket is readable, a wake-up comes or `deadline` passes.
    fn wait(&self, deadline: Option<Instant>) -> io::Result<Waited> {
        let ts = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(Waited::TimedOut);
                }
                let left = (d - now).min(MAX_POLL);
                Some(libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as _,
                })
            }
        };
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake_fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts_ptr = ts
            .as_ref()
            .map_or(ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: two valid pollfds, a valid (or null) timeout, no signal mask.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, ptr::null()) };
        match Errno::result(r) {
            Err(Errno::EINTR) => Ok(Waited::Ready),
            Err(e) => Err(e.into()),
            Ok(0) => match deadline {
                // A wait capped at MAX_POLL, or an infinite one, just goes round again.
                Some(d) if Instant::now() >= d => Ok(Waited::TimedOut),
                _ => Ok(Waited::Ready),
            },
            Ok(_) => {
                if fds[1].revents != 0 {
                    // Drain the counter so that the next recv blocks again.
                    let _ = self.wake_fd.read();
                    Ok(Waited::Woken)
                } else {
                    Ok(Waited::Ready)
                }
            }
        }
    }
}

impl AsFd for UdpTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Transport for UdpTransport {
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        let mut out = SendOutcome::default();
        if datagrams.is_empty() {
            return Ok(out);
        }
        let dest = self.dest_for(to)?;
        let mut st = lock(&self.send_state);
        st.dest = dest;
        let mut i = 0;
        while i < datagrams.len() {
            let gso = self.gso.load(Ordering::Relaxed);
            let msgs = st.build(&datagrams[i..], gso);
            let r = loop {
                // SAFETY: `build` pointed the first `msgs` headers at the caller's datagrams
                // (alive for this call), at `st.dest` and at `st`'s own iovec/cmsg storage.
                let r = unsafe {
                    libc::sendmmsg(
                        self.sock.as_raw_fd(),
                        st.hdrs.as_mut_ptr(),
                        msgs as libc::c_uint,
                        0,
                    )
                };
                match Errno::result(r) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            match r {
                Ok(k) if k > 0 => {
                    let k = (k as usize).min(msgs);
                    let sent: usize = st.counts[..k].iter().sum();
                    out.sent += sent;
                    i += sent;
                }
                // Nothing sent and no error: treat like a full buffer rather than spin.
                Ok(_) => {
                    out.dropped += datagrams.len() - i;
                    return Ok(out);
                }
                Err(e) if is_buffer_full(e) => {
                    out.dropped += datagrams.len() - i;
                    return Ok(out);
                }
                Err(e) if gso && st.counts[0] > 1 && is_gso_refusal(e) => {
                    // The kernel or the path will not segment for us: stop asking.
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        batch.clear();
        // A deadline too far away to represent is no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            match self.recv_ring(batch) {
                Ok(0) => {
                    // Everything that came was dropped (truncated): keep waiting, but through
                    // `wait`, so that a wake-up or the deadline still ends a flood of junk.
                }
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) if is_stale_icmp_error(e) => {}
                Err(e) => return Err(e.into()),
            }
            match self.wait(deadline)? {
                Waited::Ready => {}
                Waited::Woken | Waited::TimedOut => return Ok(0),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::thread;

    const V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    const V6: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0);

    fn bind(addr: SocketAddr, opts: UdpOptions) -> UdpTransport {
        UdpTransport::bind(addr, &opts).expect("bind")
    }

    /// A payload of `len` bytes whose content depends on `i`.
    fn payload(i: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
            .collect()
    }

    /// Receives until `n` datagrams came or 10 s passed.
    fn recv_n(
        t: &UdpTransport,
        n: usize,
        slots: usize,
        slot_size: usize,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut batch = RecvBatch::new(slots, slot_size);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < n && Instant::now() < deadline {
            let k = t
                .recv(&mut batch, Some(Duration::from_millis(500)))
                .unwrap();
            assert_eq!(k, batch.len());
            for i in 0..k {
                let (d, from) = batch.get(i);
                got.push((d.to_vec(), from));
            }
        }
        got
    }

    fn check_exchange(addr: SocketAddr, opts: UdpOptions, payloads: &[Vec<u8>]) -> UdpTransport {
        let a = bind(addr, opts);
        let b = bind(addr, UdpOptions::default());
        assert_ne!(a.local_addr().port(), 0);
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let out = a.send(&refs, b.local_addr()).unwrap();
        assert_eq!(
            out,
            SendOutcome {
                sent: payloads.len(),
                dropped: 0
            }
        );
        let got = recv_n(&b, payloads.len(), 64, 2048);
        assert_eq!(got.len(), payloads.len());
        for (i, (d, from)) in got.iter().enumerate() {
            assert_eq!(d, &payloads[i], "datagram {i}");
            assert_eq!(*from, a.local_addr());
        }
        a
    }

    fn varied(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| payload(i, 1 + (i * 97) % 1400)).collect()
    }

    /// Equal-size runs with shorter tails, interleaved with odd sizes.
    fn runs() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let mut i = 0;
        let mut add = |len: usize, v: &mut Vec<Vec<u8>>| {
            v.push(payload(i, len));
            i += 1;
        };
        for _ in 0..150 {
            add(1200, &mut v); // > 64 segments and > 65000 bytes: several GSO messages
        }
        add(500, &mut v); // shorter tail
        for _ in 0..10 {
            add(1400, &mut v);
        }
        add(1, &mut v);
        add(1, &mut v);
        add(1400, &mut v);
        add(1500, &mut v); // longer: a new run
        add(1500, &mut v);
        add(700, &mut v);
        v
    }

    #[test]
    fn v4_varied_sizes_byte_exact() {
        let a = check_exchange(V4, UdpOptions::default(), &varied(200));
        assert!(a.local_addr().is_ipv4());
    }

    #[test]
    fn v6_varied_sizes_byte_exact() {
        let a = check_exchange(V6, UdpOptions::default(), &varied(200));
        assert!(a.local_addr().is_ipv6());
    }

    #[test]
    fn gso_runs_byte_exact() {
        let a = check_exchange(V4, UdpOptions::default(), &runs());
        // Loopback supports GSO on any kernel new enough to have it.
        assert!(a.info().gso, "GSO was refused on loopback");
        let a = check_exchange(V6, UdpOptions::default(), &runs());
        assert!(a.info().gso);
    }

    #[test]
    fn non_gso_runs_byte_exact() {
        let opts = UdpOptions {
            gso: false,
            ..Default::default()
        };
        let a = check_exchange(V4, opts, &runs());
        assert!(!a.info().gso);
        check_exchange(V6, opts, &runs());
    }

    #[test]
    fn gso_refused_falls_back_and_stays_off() {
        let a = bind(V4, UdpOptions::default());
        assert!(a.info().gso);
        // SO_NO_CHECK (no UDP checksums) makes the kernel refuse GSO sends with EINVAL.
        let one: libc::c_int = 1;
        // SAFETY: valid fd, option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                a.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&one as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        let b = bind(V4, UdpOptions::default());
        let payloads = runs();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let out = a.send(&refs, b.local_addr()).unwrap();
        assert_eq!(out.sent, payloads.len());
        assert!(!a.info().gso, "GSO should have been switched off");
        let got = recv_n(&b, payloads.len(), 64, 2048);
        let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, payloads);
    }

    #[test]
    fn gro_splits_coalesced_bursts() {
        let a = bind(V4, UdpOptions::default());
        let b = bind(
            V4,
            UdpOptions {
                gro: true,
                ..Default::default()
            },
        );
        assert!(b.info().gro);
        assert!(a.info().gso);
        // First a lone datagram (no GRO control message), so that a receiver which forgot to
        // restore msg_controllen would lose the segment size of every later buffer.
        a.send(&[b"lonely"], b.local_addr()).unwrap();
        let got = recv_n(&b, 1, 16, 65536);
        assert_eq!(got, vec![(b"lonely".to_vec(), a.local_addr())]);

        for round in 0..3 {
            let mut payloads: Vec<Vec<u8>> =
                (0..40).map(|i| payload(i + round * 100, 1000)).collect();
            payloads.push(payload(999, 123));
            let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
            assert_eq!(a.send(&refs, b.local_addr()).unwrap().sent, 41);
            let got = recv_n(&b, 41, 16, 65536);
            let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
            assert_eq!(got, payloads, "round {round}");
        }
        assert!(b.gro_buffers() >= 3, "no coalesced buffer seen");
        assert_eq!(b.truncated(), 0);
    }

    #[test]
    fn gro_buffer_larger_than_slot_keeps_whole_segments() {
        let a = bind(V4, UdpOptions::default());
        let b = bind(
            V4,
            UdpOptions {
                gro: true,
                ..Default::default()
            },
        );
        let payloads: Vec<Vec<u8>> = (0..10).map(|i| payload(i, 1000)).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        a.send(&refs, b.local_addr()).unwrap();
        let mut batch = RecvBatch::new(16, 4096);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() as u64 + b.truncated() < 10 && Instant::now() < deadline {
            let k = b
                .recv(&mut batch, Some(Duration::from_millis(200)))
                .unwrap();
            for i in 0..k {
                got.push(batch.get(i).0.to_vec());
            }
        }
        assert_eq!(got.len() as u64 + b.truncated(), 10);
        // What arrived is a byte-exact prefix (one coalesced buffer: 4 whole segments fit).
        assert_eq!(got[..], payloads[..got.len()]);
        assert!(!got.is_empty());
    }

    #[test]
    fn oversize_datagrams_are_dropped_and_counted() {
        let a = bind(V4, UdpOptions::default());
        let b = bind(V4, UdpOptions::default());
        let big = payload(1, 150);
        let small = payload(2, 50);
        let exact = payload(3, 100);
        a.send(&[&big, &small, &big, &exact], b.local_addr())
            .unwrap();
        let got = recv_n(&b, 2, 8, 100);
        let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, vec![small, exact]);
        assert_eq!(b.truncated(), 2);
    }

    #[test]
    fn short_timeout_returns_zero() {
        let b = bind(V4, UdpOptions::default());
        let mut batch = RecvBatch::new(8, 2048);
        let start = Instant::now();
        assert_eq!(
            b.recv(&mut batch, Some(Duration::from_millis(20))).unwrap(),
            0
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
        assert!(batch.is_empty());
    }

    #[test]
    fn wake_interrupts_blocked_recv() {
        let b = Arc::new(bind(V4, UdpOptions::default()));
        let (tx, rx) = mpsc::channel();
        let b2 = b.clone();
        let start = Instant::now();
        let h = thread::spawn(move || {
            let mut batch = RecvBatch::new(8, 2048);
            let r = b2.recv(&mut batch, None).map_err(|e| e.kind());
            let _ = tx.send(r);
        });
        b.wake();
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("recv was not woken");
        assert_eq!(r, Ok(0));
        assert!(start.elapsed() < Duration::from_secs(5));
        h.join().unwrap();
        // The wake-up was consumed: the next recv waits for its timeout again.
        let mut batch = RecvBatch::new(8, 2048);
        let start = Instant::now();
        assert_eq!(
            b.recv(&mut batch, Some(Duration::from_millis(20))).unwrap(),
            0
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn send_while_other_thread_blocks_in_recv() {
        let a = bind(V4, UdpOptions::default());
        let b = Arc::new(bind(V4, UdpOptions::default()));
        let (tx, rx) = mpsc::channel();
        let b2 = b.clone();
        let h = thread::spawn(move || {
            let mut batch = RecvBatch::new(8, 2048);
            let n = b2.recv(&mut batch, Some(Duration::from_secs(10))).unwrap();
            let _ = tx.send((n, batch.get(0).0.to_vec()));
        });
        a.send(&[b"ping"], b.local_addr()).unwrap();
        let (n, d) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((n, d.as_slice()), (1, &b"ping"[..]));
        h.join().unwrap();
    }

    #[test]
    fn info_reports_buffers_and_small_buffers_drop_not_block() {
        let a = bind(V4, UdpOptions::default());
        let info = a.info();
        assert!(info.send_buffer > 0 && info.recv_buffer > 0, "{info:?}");
        assert!(!info.gro);

        let small = UdpOptions {
            send_buffer: 4096,
            recv_buffer: 4096,
            ..Default::default()
        };
        let tx = bind(V4, small);
        let rx = bind(V4, small);
        assert!(tx.info().send_buffer < 1 << 20);
        let d = payload(0, 1000);
        let dgs: Vec<&[u8]> = vec![&d; 10_000];
        let out = tx.send(&dgs, rx.local_addr()).unwrap();
        assert_eq!(out.sent + out.dropped, 10_000);
        // The receiver, never read, lost most of it; what it kept is intact.
        let got = recv_n(&rx, 1, 64, 2048);
        assert!(!got.is_empty() && got.iter().all(|(g, _)| *g == d));
    }

    #[test]
    fn closed_port_does_not_poison_later_sends() {
        let gone = bind(V4, UdpOptions::default()).local_addr();
        let a = bind(V4, UdpOptions::default());
        let b = bind(V4, UdpOptions::default());
        // Whatever the ICMP error does to this send, later ones must work.
        let _ = a.send(&[b"nobody"], gone);
        let _ = a.send(&[b"nobody"], gone);
        for i in 0..3u8 {
            let out = a.send(&[&[i; 10]], b.local_addr()).unwrap();
            assert_eq!(out.sent, 1);
            let got = recv_n(&b, 1, 8, 64);
            assert_eq!(got, vec![(vec![i; 10], a.local_addr())]);
        }
        // Receiving on the socket that provoked the ICMP errors is not an error either.
        let mut batch = RecvBatch::new(4, 64);
        assert_eq!(
            a.recv(&mut batch, Some(Duration::from_millis(10))).unwrap(),
            0
        );
    }

    #[test]
    fn bad_destinations_are_errors_and_keep_gso() {
        let a = bind(V4, UdpOptions::default());
        let e = a.send(&[b"x"], V4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = a
            .send(&[b"x"], SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(a.info().gso);
        assert_eq!(a.send(&[], V4).unwrap(), SendOutcome::default());
    }

    #[test]
    fn dual_stack_socket_reaches_ipv4_peer() {
        let a = bind(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            UdpOptions::default(),
        );
        let b = bind(V4, UdpOptions::default());
        // An IPv4 destination goes out v4-mapped; replies come back as plain IPv4 addresses.
        let payloads = runs();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        a.send(&refs, b.local_addr()).unwrap();
        let got = recv_n(&b, payloads.len(), 64, 2048);
        assert_eq!(got.len(), payloads.len());
        assert!(got.iter().zip(&payloads).all(|((g, _), p)| g == p));
        let from = got[0].1;
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        b.send(&[b"back"], from).unwrap();
        let back = recv_n(&a, 1, 8, 64);
        assert_eq!(back, vec![(b"back".to_vec(), b.local_addr())]);
    }

    #[test]
    fn dscp_is_applied() {
        let opts = UdpOptions {
            dscp: 46,
            ..Default::default()
        };
        let a = bind(V4, opts);
        assert_eq!(socket::getsockopt(&a, sockopt::Ipv4Tos).unwrap(), 46 << 2);
        let a = bind(V6, opts);
        assert_eq!(
            socket::getsockopt(&a, sockopt::Ipv6TClass).unwrap(),
            46 << 2
        );
    }

    #[test]
    fn gso_run_planning() {
        let a = [0u8; 1000];
        let short = [0u8; 10];
        let big = [0u8; 40000];
        assert_eq!(gso_run(&[]), 0);
        assert_eq!(gso_run(&[&a]), 1);
        assert_eq!(gso_run(&[&a, &a, &a]), 3);
        assert_eq!(gso_run(&[&a, &a, &short, &a]), 3);
        assert_eq!(gso_run(&[&short, &a]), 1);
        assert_eq!(gso_run(&[&big, &big]), 1);
        assert_eq!(gso_run(&[&[], &[]]), 1);
        assert_eq!(gso_run(&[&a, &[], &a]), 1);
        let many: Vec<&[u8]> = vec![&a; 200];
        assert_eq!(gso_run(&many), MAX_GSO_SEGMENTS);
        let b = [0u8; 1200];
        let many: Vec<&[u8]> = vec![&b; 200];
        assert_eq!(gso_run(&many), MAX_GSO_BYTES / 1200);
        let tiny = [0u8; 10];
        let many: Vec<&[u8]> = vec![&tiny; 200];
        assert_eq!(gso_run(&many), MAX_GSO_SEGMENTS);
    }

    #[test]
    fn address_conversion() {
        // SAFETY: all-zero sockaddr_storage is valid.
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        assert_eq!(raw_to_std(&ss, 0), None);
        let mapped = SocketAddr::V6(SocketAddrV6::new(
            Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped(),
            4242,
            0,
            0,
        ));
        let s = SockaddrStorage::from(mapped);
        // SAFETY: copying `len` bytes of a sockaddr into a sockaddr_storage.
        unsafe {
            ptr::copy_nonoverlapping(
                s.as_ptr().cast::<u8>(),
                (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                s.len() as usize,
            );
        }
        assert_eq!(
            raw_to_std(&ss, s.len()),
            Some("10.1.2.3:4242".parse().unwrap())
        );
        // Too short for the family.
        assert_eq!(raw_to_std(&ss, 8), None);
    }

    #[test]
    fn error_classes() {
        assert!(is_buffer_full(Errno::EAGAIN) && is_buffer_full(Errno::ENOBUFS));
        assert!(!is_buffer_full(Errno::ECONNREFUSED));
        assert!(is_gso_refusal(Errno::EIO) && is_gso_refusal(Errno::EINVAL));
        assert!(!is_gso_refusal(Errno::ECONNREFUSED));
        assert!(is_stale_icmp_error(Errno::ECONNREFUSED));
    }

    #[test]
    fn transport_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<UdpTransport>();
    }

    fn realtime_ns() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }

    #[test]
    fn received_datagrams_carry_the_kernels_receive_time() {
        for (gro, stamps) in [(false, true), (true, true), (false, false)] {
            let opts = UdpOptions {
                gro,
                rx_timestamps: stamps,
                ..UdpOptions::default()
            };
            let a = bind(V4, opts);
            let b = bind(V4, opts);
            let before = realtime_ns();
            let d: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 1200)).collect();
            let refs: Vec<&[u8]> = d.iter().map(Vec::as_slice).collect();
            assert_eq!(a.send(&refs, b.local_addr()).unwrap().sent, 3);
            let mut batch = RecvBatch::new(8, 65536);
            let mut times = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while times.len() < 3 && Instant::now() < deadline {
                let k = b
                    .recv(&mut batch, Some(Duration::from_millis(500)))
                    .unwrap();
                for i in 0..k {
                    times.push(batch.received_ns(i));
                }
            }
            let after = realtime_ns();
            assert_eq!(times.len(), 3, "gro {gro}");
            if !stamps {
                assert!(times.iter().all(Option::is_none), "{times:?}");
                continue;
            }
            let times: Vec<u64> = times.into_iter().map(|t| t.expect("stamped")).collect();
            assert!(
                times.iter().all(|&t| (before..=after).contains(&t)),
                "gro {gro}: {times:?} not within {before}..{after}"
            );
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        }
    }
}
