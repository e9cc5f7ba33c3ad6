//! The transport seam: how datagrams leave and enter a session.
//!
//! A [`Transport`] moves whole datagrams; it knows nothing about the protocol. Implementations:
//! [`udp::UdpTransport`] (Linux sockets through `nix`: sendmmsg, UDP GSO with fall-back, recvmmsg
//! into a reused ring, optional GRO); the test kit (`crate::testkit`, feature `testing`) adds an
//! in-process pair and a seeded impairment wrapper around any other transport.
//!
//! All methods take `&self` so that one thread can send while another blocks in
//! [`Transport::recv`]; [`Transport::wake`] makes a blocked `recv` return at once.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub mod udp;

/// What one call to [`Transport::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams handed to the network.
    pub sent: usize,
    /// Datagrams dropped because the send buffer was full (counted, never blocking).
    pub dropped: usize,
}

/// Facts about a transport that a user may want to see in stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportInfo {
    /// Send buffer size the kernel granted, in bytes (0 if not applicable).
    pub send_buffer: usize,
    /// Receive buffer size the kernel granted, in bytes (0 if not applicable).
    pub recv_buffer: usize,
    /// UDP GSO is in use for sending.
    pub gso: bool,
    /// UDP GRO is in use for receiving.
    pub gro: bool,
}

/// One received datagram's place inside a [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: usize,
    offset: usize,
    len: usize,
    from: SocketAddr,
    /// When the kernel received it (`CLOCK_REALTIME`, ns), where the transport knows.
    rx_ns: Option<u64>,
}

/// A reusable receive ring: `slots` buffers of `slot_size` bytes each, filled by
/// [`Transport::recv`] without allocating per datagram. With GRO one slot may hold several
/// datagrams (segments); the batch lists each as its own entry.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot_size: usize,
    slots: usize,
    entries: Vec<Entry>,
}

impl RecvBatch {
    /// A ring of `slots` buffers of `slot_size` bytes.
    pub fn new(slots: usize, slot_size: usize) -> Self {
        let slots = slots.max(1);
        let slot_size = slot_size.max(1);
        RecvBatch {
            buf: vec![0u8; slots * slot_size],
            slot_size,
            slots,
            entries: Vec::with_capacity(slots * 4),
        }
    }

    /// How many buffers the ring has (at least 1).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bytes per buffer (at least 1).
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Number of datagrams received by the last `recv`.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the last `recv` returned no datagram.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Datagram `i` of the last `recv` and the address it came from.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let e = self.entries[i];
        let start = e.slot * self.slot_size + e.offset;
        (&self.buf[start..start + e.len], e.from)
    }

    /// Datagram `i` of the last `recv`, writable (the session opens it in place).
    pub fn get_mut(&mut self, i: usize) -> (&mut [u8], SocketAddr) {
        let e = self.entries[i];
        let start = e.slot * self.slot_size + e.offset;
        (&mut self.buf[start..start + e.len], e.from)
    }

    /// Forgets the last batch (keeps the memory).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Mutable access to slot `i`'s buffer, for a transport filling the ring.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let s = i * self.slot_size;
        &mut self.buf[s..s + self.slot_size]
    }

    /// All slot buffers at once, for `recvmmsg`-style fills.
    pub fn slots_mut(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        self.buf.chunks_exact_mut(self.slot_size)
    }

    /// Records that slot `slot` holds a datagram of `len` bytes at `offset` from `from`.
    pub fn push(&mut self, slot: usize, offset: usize, len: usize, from: SocketAddr) {
        self.push_received(slot, offset, len, from, None);
    }

    /// As [`RecvBatch::push`], with the kernel's receive time (`CLOCK_REALTIME`, ns) if known.
    pub fn push_received(
        &mut self,
        slot: usize,
        offset: usize,
        len: usize,
        from: SocketAddr,
        rx_ns: Option<u64>,
    ) {
        debug_assert!(slot < self.slots && offset + len <= self.slot_size);
        self.entries.push(Entry {
            slot,
            offset,
            len,
            from,
            rx_ns,
        });
    }

    /// When the kernel received datagram `i` of the last `recv` (`CLOCK_REALTIME`, ns since
    /// the epoch), where the transport reports it (UDP with `SO_TIMESTAMPNS`).
    pub fn received_ns(&self, i: usize) -> Option<u64> {
        self.entries[i].rx_ns
    }
}

/// Moves datagrams. See the module docs.
pub trait Transport: Send + Sync {
    /// Sends each datagram to `to`, in order. Never blocks indefinitely: when the socket's send
    /// buffer is full the remaining datagrams are dropped and counted in the outcome.
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome>;

    /// Clears `batch` and fills it with the datagrams available, waiting up to `timeout`
    /// (`None` = until something arrives or [`Transport::wake`] is called). Returns the number
    /// of datagrams received; 0 means the timeout passed or a wake-up came.
    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize>;

    /// Makes a `recv` that is blocked now (or the next one to start) return at once.
    fn wake(&self);

    /// The local address (a port-0 bind reads back the port the kernel chose).
    fn local_addr(&self) -> SocketAddr;

    /// Buffer sizes granted and offloads in use.
    fn info(&self) -> TransportInfo {
        TransportInfo::default()
    }
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        (**self).send(datagrams, to)
    }
    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        (**self).recv(batch, timeout)
    }
    fn wake(&self) {
        (**self).wake()
    }
    fn local_addr(&self) -> SocketAddr {
        (**self).local_addr()
    }
    fn info(&self) -> TransportInfo {
        (**self).info()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, datagrams: &[&[u8]], to: SocketAddr) -> io::Result<SendOutcome> {
        (**self).send(datagrams, to)
    }
    fn recv(&self, batch: &mut RecvBatch, timeout: Option<Duration>) -> io::Result<usize> {
        (**self).recv(batch, timeout)
    }
    fn wake(&self) {
        (**self).wake()
    }
    fn local_addr(&self) -> SocketAddr {
        (**self).local_addr()
    }
    fn info(&self) -> TransportInfo {
        (**self).info()
    }
}
