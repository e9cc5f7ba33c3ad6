//! Sending: lays out up to [`MAX_BATCH`] messages per `sendmmsg` (runs of equal-size datagrams
//! as one UDP GSO message each, gathered straight from the caller's slices), turns GSO off for
//! good when the kernel refuses it, and drops (counts) what a full send buffer will not take.
//!
//! Must never: block, copy or allocate per datagram, or retry a datagram the kernel took.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

use super::{MAX_BATCH, MAX_GSO_BYTES, MAX_GSO_SEGMENTS, SEND_CMSG_WORDS, UdpTransport};
use crate::sync::lock;
use crate::transport::SendOutcome;

/// Preallocated `sendmmsg` state; used by one sender at a time.
pub(super) struct SendState {
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
    pub(super) fn new() -> Self {
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

impl UdpTransport {
    /// [`crate::transport::Transport::send`]: every datagram goes out, or is counted as dropped.
    pub(super) fn send_datagrams(
        &self,
        datagrams: &[&[u8]],
        to: SocketAddr,
    ) -> io::Result<SendOutcome> {
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
}

/// How many datagrams from the front of `rest` form one GSO message: equal lengths, the last
/// possibly shorter (but not empty), within the segment and byte limits. 1 = no GSO.
pub(super) fn gso_run(rest: &[&[u8]]) -> usize {
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
pub(super) fn is_gso_refusal(e: Errno) -> bool {
    matches!(
        e,
        Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP | Errno::EMSGSIZE
    )
}

/// Errors that mean "the send buffer is full": drop and count.
pub(super) fn is_buffer_full(e: Errno) -> bool {
    matches!(e, Errno::EAGAIN | Errno::ENOBUFS)
}
