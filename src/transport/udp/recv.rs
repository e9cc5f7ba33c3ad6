//! Receiving: one `recvmmsg` fills as many [`RecvBatch`] slots as there are datagrams waiting
//! (headers, iovecs, addresses and control space preallocated once), splits UDP GRO buffers into
//! their segments, reads the kernel's receive times, and waits with `ppoll` on the socket and the
//! wake-up eventfd.
//!
//! Must never: allocate in a steady receive loop, hand out a truncated datagram (it is dropped and
//! counted), or let an ICMP error about an earlier send end a receive.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{MAX_POLL, MAX_RECV_BATCH, RECV_CMSG_WORDS, UdpTransport};
use crate::sync::lock;
use crate::transport::RecvBatch;

/// Preallocated `recvmmsg` state; used only by the receiving thread.
pub(super) struct RecvState {
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
    pub(super) fn new() -> Self {
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

impl UdpTransport {
    /// [`crate::transport::Transport::recv`]: waits up to `timeout` for datagrams.
    pub(super) fn recv_datagrams(
        &self,
        batch: &mut RecvBatch,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
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

enum Waited {
    /// The socket may have data (or an error) now.
    Ready,
    Woken,
    TimedOut,
}

/// Errors a receive reports about earlier sends (ICMP); they say nothing about receiving.
pub(super) fn is_stale_icmp_error(e: Errno) -> bool {
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
pub(super) fn raw_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
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
