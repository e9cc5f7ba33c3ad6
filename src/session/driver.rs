//! The driver: a [`Connection`] over a [`Transport`], with the clock, the threads' locks, the
//! receive ring, the packetizer and the pacing sleeps.
//!
//! Owns everything the connection must not: reading `Instant::now()`, blocking in receive,
//! sleeping between pacing chunks, sending on the socket. Must never hold the connection's lock
//! while sending, sleeping, blocking in receive, packetizing or sealing, and must drain what
//! waits in the socket before running timers (a receiver that was descheduled must not give up
//! a frame whose shards sit in its own buffer).

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::time::{Duration, Instant};

use crate::protocol::fec::coder::ReedSolomon8;
use crate::protocol::input::InputEvent;
use crate::protocol::media::packetizer::{Datagrams, Packetizer};
use crate::protocol::security::handshake::Role;
use crate::sync::lock;
use crate::transport::udp::clock_ns;
use crate::transport::{RecvBatch, Transport, TransportInfo};

use super::connection::{Event, FrameTimingIn, SealedFrame, Transmit};
use super::peers::{PeerEvent, Peers};

mod fanout;

use super::{Config, Error, Result, Stats};
pub use fanout::PeerFrame;

/// Receive batches drained without waiting before timers run (64 datagrams each). Bounded, so
/// that a flood cannot starve the timers.
const MAX_DRAIN_BATCHES: usize = 16;

/// What [`Session::send_sealed`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the transport took.
    pub sent: usize,
    /// Datagrams refused for a full socket buffer (counted in [`Stats::send_drops`]).
    pub dropped: usize,
}

struct Inner {
    role: Role,
    cfg: Config,
    transport: Box<dyn Transport>,
    /// The connection, or a listening host's connections to its clients (`peers`).
    conn: Mutex<Peers>,
    ring: Mutex<RecvBatch>,
    /// Host: cuts and FEC-encodes frames, outside the connection's lock.
    packetizer: Mutex<Packetizer>,
    local_addr: SocketAddr,
    info: TransportInfo,
    /// A listening host with several clients: frames go out through `fanout`.
    multi: bool,
    /// Threads that poll while another holds the ring wait here (see [`Session::poll_audio`]).
    rx_wait: Mutex<RxWait>,
    rx_cv: Condvar,
}

/// What a polling thread that does not hold the ring waits for.
#[derive(Default)]
struct RxWait {
    /// Bumped whenever the ring's holder handled datagrams or timers, or gave the ring up.
    generation: u64,
    /// Bumped by [`Session::wake`].
    wakes: u64,
}

/// Which of the connection's event queues a poll takes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// Everything but audio packets (frames, input, stream and audio info, peer changes).
    Main,
    /// [`Event::Audio`] and [`Event::AudioLost`].
    Audio,
}

/// One end of a stream. See the module docs of [`crate::session`].
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl Session {
    /// Creates a session over `transport` (already bound). Callers start their handshake on
    /// the first poll; listeners wait for a hello.
    pub fn new(config: Config, transport: impl Transport + 'static) -> Result<Session> {
        let local_addr = transport.local_addr();
        config.check_exposure(local_addr)?;
        let mut conn = Peers::new(config.clone(), Instant::now(), std::time::SystemTime::now())?;
        // The host clock: CLOCK_MONOTONIC and `Instant` sampled together (on Linux the same
        // clock, so the mapping is exact to the sampling gap, tens of nanoseconds).
        let (at, mono_us) = (Instant::now(), monotonic_us());
        conn.set_host_clock(at, mono_us);
        let info = transport.info();
        let multi = conn.is_multi();
        let ring = RecvBatch::new(config.recv_batch, config.mtu.max(2048));
        let packetizer = Packetizer::new(config.mtu, Box::new(ReedSolomon8::new()));
        Ok(Session {
            inner: Arc::new(Inner {
                role: config.role,
                cfg: config,
                transport: Box::new(transport),
                conn: Mutex::new(conn),
                ring: Mutex::new(ring),
                packetizer: Mutex::new(packetizer),
                local_addr,
                info,
                multi,
                rx_wait: Mutex::new(RxWait::default()),
                rx_cv: Condvar::new(),
            }),
        })
    }

    /// Whether this end is the host (sends video) or the client.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The configuration the session was created with.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// The bound local address (port 0 reads back the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Whether a session with a peer is established.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.conn).is_connected()
    }

    /// The current peer, if connected.
    pub fn peer(&self) -> Option<SocketAddr> {
        lock(&self.inner.conn).peer()
    }

    /// Makes a blocked poll return at once (every thread's).
    pub fn wake(&self) {
        lock(&self.inner.rx_wait).wakes += 1;
        self.inner.rx_cv.notify_all();
        self.inner.transport.wake();
    }

    fn require(&self, role: Role, what: &'static str) -> Result<()> {
        if self.inner.role == role {
            Ok(())
        } else {
            Err(Error::InvalidArg(what))
        }
    }

    /// Counters and rates.
    pub fn stats(&self) -> Stats {
        let mut s = lock(&self.inner.conn).stats();
        s.send_buffer = self.inner.info.send_buffer as u64;
        s.recv_buffer = self.inner.info.recv_buffer as u64;
        s.gso = self.inner.info.gso;
        s
    }

    /// Runs `f` on the connection and sends what it queued, after the lock is released.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Peers, Instant) -> Result<T>) -> Result<T> {
        let (r, out) = {
            let mut c = lock(&self.inner.conn);
            let r = f(&mut c, Instant::now());
            (r, drain_transmits(&mut c))
        };
        self.flush(out);
        r
    }

    // ----- host -----

    /// Host: sets (or changes) the stream info; a connected client gets it at once.
    pub fn set_stream_info(&self, caps: &str) -> Result<()> {
        self.with_conn(|c, _| c.set_stream_info(caps))
    }

    /// Host: announces the audio stream's caps (e.g. `audio/x-opus, rate=48000,
    /// channels=2, channel-mapping-family=0`); the client gets [`Event::AudioInfo`], also
    /// when it connects later.
    pub fn set_audio_info(&self, caps: &str) -> Result<()> {
        self.with_conn(|c, now| c.set_audio_info(now, caps))
    }

    /// Host: sends one audio packet at once, ahead of any video frame being paced, with its
    /// capture time in the host clock ([`Session::host_clock_us`], the clock of the frames'
    /// capture time) and duration. Dropped and counted without a client.
    pub fn submit_audio(&self, data: &[u8], capture_us: u64, duration_us: u32) -> Result<()> {
        self.with_conn(|c, now| c.submit_audio(now, data, capture_us, duration_us))
    }

    /// Host: bounds of the congestion controller's target bitrate (media bits per second;
    /// `max` 0 = unknown), e.g. once the encoder's configured bitrate is known.
    pub fn set_bitrate_bounds(&self, min_bps: u64, max_bps: u64) -> Result<()> {
        self.require(Role::Host, "set_bitrate_bounds is for the host")?;
        lock(&self.inner.conn).set_bitrate_bounds(min_bps, max_bps);
        Ok(())
    }

    /// Host: packetizes, FEC-protects and seals a frame without sending it. `None` when no
    /// client is connected (the frame is counted as dropped). The frame counts as captured now
    /// (see [`Session::seal_frame_timed`]).
    /// With `Config::max_clients` above 1 it is `InvalidArg`: a frame goes to every client
    /// ([`Session::seal_frames`], [`Session::send_frames`], [`Session::submit_frame`]).
    pub fn seal_frame(&self, data: &[u8], keyframe: bool) -> Result<Option<SealedFrame>> {
        self.seal_frame_into(data, keyframe, Datagrams::new())
    }

    /// Like [`Session::seal_frame`], with the frame's capture time (host clock: microseconds of
    /// `CLOCK_MONOTONIC`, see [`Session::host_clock_us`]) and duration, which travel with the
    /// frame so the client can tell its age. Now is the frame's render time.
    pub fn seal_frame_timed(
        &self,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Result<Option<SealedFrame>> {
        self.seal_timed_into(data, keyframe, timing, Datagrams::new())
    }

    /// The host clock (microseconds of `CLOCK_MONOTONIC`) at `t`, as frames and pings carry it.
    pub fn host_clock_us(&self, t: Instant) -> u64 {
        lock(&self.inner.conn).host_clock_us(t)
    }

    /// Like [`Session::seal_frame`], reusing a buffer from [`SealedFrame::into_buffer`].
    pub fn seal_frame_into(
        &self,
        data: &[u8],
        keyframe: bool,
        buf: Datagrams,
    ) -> Result<Option<SealedFrame>> {
        self.seal_timed_into(data, keyframe, FrameTimingIn::default(), buf)
    }

    /// Like [`Session::seal_frame_timed`], reusing a buffer from [`SealedFrame::into_buffer`].
    pub fn seal_timed_into(
        &self,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
        mut buf: Datagrams,
    ) -> Result<Option<SealedFrame>> {
        self.require(Role::Host, "seal_frame is for the host")?;
        let now = Instant::now();
        // Frames are cut one at a time; the connection's lock is held only to reserve packet
        // numbers, so the receive thread is never kept waiting by packetizing, FEC or sealing.
        let mut packetizer = lock(&self.inner.packetizer);
        let ticket = lock(&self.inner.conn).single()?.begin_frame_timed(
            now,
            &packetizer,
            data.len(),
            keyframe,
            timing,
        )?;
        let Some(ticket) = ticket else {
            return Ok(None);
        };
        ticket
            .packetize(&mut packetizer, data, &mut buf)
            .map_err(Error::Packetize)?;
        drop(packetizer);
        Ok(Some(ticket.seal(buf)))
    }

    /// Host: sends a sealed frame, paced: a small burst at once, then chunks spread over part
    /// of the frame interval. Returns when the last chunk is handed to the transport.
    pub fn send_sealed(&self, frame: &SealedFrame) -> Result<SendReport> {
        self.require(Role::Host, "send_sealed is for the host")?;
        let d = frame.datagrams();
        let schedule = lock(&self.inner.conn).single()?.pacing_schedule(
            d.wire_bytes(),
            d.len(),
            Instant::now(),
        );
        let mut report = SendReport::default();
        let mut refs: Vec<&[u8]> = Vec::with_capacity(64);
        // When the first and the last chunk really went to the socket (congestion control).
        let (mut first_send, mut last_send) = (None, None);
        for (range, at) in schedule.chunks() {
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let released = Instant::now();
            first_send.get_or_insert(released);
            last_send = Some(released);
            refs.clear();
            refs.extend(range.map(|i| d.get(i)));
            match self.inner.transport.send(&refs, frame.peer()) {
                Ok(o) => {
                    report.sent += o.sent;
                    report.dropped += o.dropped;
                }
                Err(e) => {
                    // A refused or unreachable peer is not fatal for a stream: count and go on.
                    report.dropped += refs.len();
                    lock(&self.inner.conn)
                        .primary()
                        .record_send_error(e.to_string());
                }
            }
        }
        let mut peers = lock(&self.inner.conn);
        let c = peers.primary();
        c.record_sent(report.sent, report.sent * d.datagram_len(), report.dropped);
        c.record_payload_sent(frame.payload_bytes());
        if let (Some(first), Some(last)) = (first_send, last_send) {
            c.on_frame_sent(frame, first, last, Instant::now());
        }
        let mut c = peers;
        // Control the frame queued (the stream info behind a session's first frame).
        let out = drain_transmits(&mut c);
        drop(c);
        self.flush(out);
        Ok(report)
    }

    /// Host: seal and send in one go. `Ok(None)` when no client is connected.
    pub fn submit_frame(&self, data: &[u8], keyframe: bool) -> Result<Option<SendReport>> {
        self.submit_frame_timed(data, keyframe, FrameTimingIn::default())
    }

    /// Host: [`Session::seal_frame_timed`] and send in one go.
    pub fn submit_frame_timed(
        &self,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Result<Option<SendReport>> {
        if self.inner.multi {
            return self.submit_to_all(data, keyframe, timing);
        }
        match self.seal_frame_timed(data, keyframe, timing)? {
            Some(f) => self.send_sealed(&f).map(Some),
            None => Ok(None),
        }
    }

    /// Host: waits up to `timeout` for the next event (input, keyframe request, peer changes),
    /// running the protocol's timers meanwhile.
    pub fn poll_input(&self, timeout: Duration) -> Result<Option<Event>> {
        self.require(Role::Host, "poll_input is for the host")?;
        Ok(self.poll_event(timeout, Queue::Main)?.map(|e| e.event))
    }

    // ----- client -----

    /// Client: waits up to `timeout` for the next event (frames, stream info, audio info,
    /// losses, EOS): every event but audio packets, which [`Session::poll_audio`] takes.
    pub fn poll_frame(&self, timeout: Duration) -> Result<Option<Event>> {
        self.require(Role::Client, "poll_frame is for the client")?;
        Ok(self.poll_event(timeout, Queue::Main)?.map(|e| e.event))
    }

    /// Client: waits up to `timeout` for the next audio event ([`Event::Audio`] in sequence
    /// order, [`Event::AudioLost`]). Another thread may block in [`Session::poll_frame`] at
    /// the same time: whichever holds the socket hands the other's events over at once.
    pub fn poll_audio(&self, timeout: Duration) -> Result<Option<Event>> {
        self.require(Role::Client, "poll_audio is for the client")?;
        Ok(self.poll_event(timeout, Queue::Audio)?.map(|e| e.event))
    }

    /// Client: queues an input event for reliable, ordered delivery and sends it at once.
    pub fn send_input(&self, ev: InputEvent) -> Result<()> {
        self.with_conn(|c, now| c.send_input(now, ev))
    }

    /// Client: asks the host for a keyframe, at most once per `keyframe_request_interval`.
    /// Returns whether a request went out.
    pub fn request_keyframe(&self) -> Result<bool> {
        self.with_conn(|c, now| c.request_keyframe(now))
    }

    // ----- both -----

    /// Says bye to the peer (the host's bye ends the client's stream) and stops the session.
    pub fn close(&self) -> Result<()> {
        self.with_conn(|c, _| {
            c.close();
            Ok(())
        })?;
        self.wake();
        Ok(())
    }

    /// Sends `out` one datagram at a time and records the outcome. Send errors are counted,
    /// not returned: a refused peer is not fatal for a stream.
    fn flush(&self, out: Vec<Transmit>) {
        if out.is_empty() {
            return;
        }
        // What each destination's sends did, counted on its client's connection.
        let mut outcome: Vec<(SocketAddr, usize, usize, usize)> = Vec::new();
        let mut errors = Vec::new();
        for t in &out {
            let (sent, bytes, dropped) =
                match self.inner.transport.send(&[&t.contents], t.destination) {
                    Ok(o) => (o.sent, o.sent * t.contents.len(), o.dropped),
                    Err(e) => {
                        errors.push((t.destination, e.to_string()));
                        (0, 0, 0)
                    }
                };
            match outcome.iter_mut().find(|o| o.0 == t.destination) {
                Some(o) => {
                    o.1 += sent;
                    o.2 += bytes;
                    o.3 += dropped;
                }
                None => outcome.push((t.destination, sent, bytes, dropped)),
            }
        }
        let mut c = lock(&self.inner.conn);
        for (to, sent, bytes, dropped) in outcome {
            c.record_sent_to(to, sent, bytes, dropped);
        }
        for (to, e) in errors {
            c.record_send_error_to(to, e);
        }
    }

    fn take_event(&self, queue: Queue) -> Option<PeerEvent> {
        take(&mut lock(&self.inner.conn), queue)
    }

    /// Tells threads waiting for the ring that events may be queued for them or the ring is
    /// free.
    fn notify_waiters(&self) {
        lock(&self.inner.rx_wait).generation += 1;
        self.inner.rx_cv.notify_all();
    }

    fn poll_event(&self, timeout: Duration, queue: Queue) -> Result<Option<PeerEvent>> {
        let deadline = Instant::now() + timeout;
        let wakes = lock(&self.inner.rx_wait).wakes;
        loop {
            let generation = lock(&self.inner.rx_wait).generation;
            if let Some(ev) = self.take_event(queue) {
                return Ok(Some(ev));
            }
            let mut ring = match self.inner.ring.try_lock() {
                Ok(r) => r,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    // Another thread receives: it queues our events and says so.
                    let mut w = lock(&self.inner.rx_wait);
                    while w.generation == generation && w.wakes == wakes {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        w = match self.inner.rx_cv.wait_timeout(w, left) {
                            Ok((w, _)) => w,
                            Err(p) => p.into_inner().0,
                        };
                    }
                    let woken = w.wakes != wakes;
                    drop(w);
                    if woken || Instant::now() >= deadline {
                        return Ok(self.take_event(queue));
                    }
                    continue;
                }
            };
            let r = self.poll_holding(&mut ring, deadline, queue);
            drop(ring);
            self.notify_waiters();
            match r {
                Ok(Some(ev)) => return Ok(ev),
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One round of [`Session::poll_event`] by the thread that holds the ring: drain, timers,
    /// then block in receive until the next timer or `deadline`. `Ok(Some(ev))` ends the poll
    /// with `ev`; `Ok(None)` asks for another round.
    fn poll_holding(
        &self,
        ring: &mut RecvBatch,
        deadline: Instant,
        queue: Queue,
    ) -> Result<Option<Option<PeerEvent>>> {
        // Drain what already waits in the socket before running timers (bounded).
        for _ in 0..MAX_DRAIN_BATCHES {
            if self.receive(ring, Some(Duration::ZERO))? == 0 {
                break;
            }
        }
        let now = Instant::now();
        let (ev, next, closed, out) = {
            let mut c = lock(&self.inner.conn);
            c.handle_timeout(now);
            let ev = take(&mut c, queue);
            (ev, c.poll_timeout(), c.is_closed(), drain_transmits(&mut c))
        };
        self.flush(out);
        if ev.is_some() {
            return Ok(Some(ev));
        }
        if closed {
            return Err(Error::Closed);
        }
        if now >= deadline {
            return Ok(Some(None));
        }
        // Events for another queue were handed out: let its thread see them before blocking.
        self.notify_waiters();
        let until = next.map_or(deadline, |n| n.min(deadline));
        if self.receive(ring, Some(until.saturating_duration_since(now)))? == 0
            && Instant::now() < until
        {
            // A wake-up ends the poll so the caller can look around.
            return Ok(Some(None));
        }
        Ok(None)
    }

    /// One receive call into the ring, processed. Returns the number of datagrams.
    fn receive(&self, ring: &mut RecvBatch, wait: Option<Duration>) -> Result<usize> {
        let n = self.inner.transport.recv(ring, wait)?;
        if n == 0 {
            return Ok(0);
        }
        let now = Instant::now();
        let real_now = clock_ns(libc::CLOCK_REALTIME);
        let out = {
            let mut c = lock(&self.inner.conn);
            for i in 0..ring.len() {
                let at = arrival(now, real_now, ring.received_ns(i));
                let (buf, from) = ring.get_mut(i);
                c.handle_datagram(at, from, buf);
            }
            drain_transmits(&mut c)
        };
        self.flush(out);
        Ok(n)
    }
}

/// Oldest a kernel receive time may make a datagram's arrival: beyond it the realtime clock
/// probably stepped, and the datagram counts as arriving now.
const MAX_RX_AGE: Duration = Duration::from_secs(1);

/// When a datagram handled at `now` (`real_now` ns on `CLOCK_REALTIME`) arrived: the kernel's
/// receive time `rx_ns` (same clock) carried over to the monotonic clock, so arrival timing
/// (frame timing, bandwidth feedback, RTT) does not include how long the receiving thread took
/// to get to the socket; `now` where the kernel gave none or the clocks disagree.
fn arrival(now: Instant, real_now: Option<u64>, rx_ns: Option<u64>) -> Instant {
    let (Some(real_now), Some(rx)) = (real_now, rx_ns) else {
        return now;
    };
    let age = Duration::from_nanos(real_now.saturating_sub(rx));
    if age > MAX_RX_AGE {
        return now;
    }
    now.checked_sub(age).unwrap_or(now)
}

/// `CLOCK_MONOTONIC` now, in microseconds: the host clock that frame timing and pings carry.
pub fn monotonic_us() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).map_or(0, |ns| ns / 1_000)
}

fn drain_transmits(c: &mut Peers) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

/// The next event of `queue`.
fn take(c: &mut Peers, queue: Queue) -> Option<PeerEvent> {
    match queue {
        Queue::Main => c.poll_event(),
        Queue::Audio => c.poll_audio_event().map(|event| PeerEvent {
            peer: None,
            addr: None,
            event,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_receive_time_dates_the_arrival_back() {
        let now = Instant::now();
        let real = 1_000_000_000_000u64;
        let ms = 1_000_000u64;
        // Waited 7 ms in the socket before the thread got to it.
        assert_eq!(
            arrival(now, Some(real), Some(real - 7 * ms)),
            now - Duration::from_millis(7)
        );
        // No kernel time, no clock, a stamp from the future or older than a second: now.
        assert_eq!(arrival(now, Some(real), None), now);
        assert_eq!(arrival(now, None, Some(real)), now);
        assert_eq!(arrival(now, Some(real), Some(real + ms)), now);
        assert_eq!(arrival(now, Some(real), Some(real - 1_001 * ms)), now);
        assert!(clock_ns(libc::CLOCK_REALTIME).is_some_and(|t| t > real));
    }
}
