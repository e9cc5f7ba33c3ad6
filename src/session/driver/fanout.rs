//! The driver's side of a host with several clients: one frame reserved, cut, protected and
//! sealed for every connected client, then sent with every client's pacing interleaved on the
//! one socket; and the peer API (list, per-peer events, input control, disconnect).
//!
//! Owns the merge of the clients' pacing schedules: each client's chunks leave in the order and
//! proportions its own pacer set, in time order across clients, within the quickest client's
//! schedule, so a slow client's spread never delays another's frame nor the streaming thread.
//! Must never hold the peers' lock while packetizing, sealing, sleeping or sending.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::protocol::media::packetizer::Datagrams;
use crate::protocol::security::handshake::Role;
use crate::session::connection::{FrameTicket, FrameTimingIn, SealedFrame};
use crate::session::peers::{FrameSent, PeerEvent, PeerId, PeerInfo};
use crate::sync::lock;

use super::{Error, Queue, Result, SendReport, Session, drain_transmits};

/// One client's copy of a frame, sealed with its keys (see [`Session::seal_frames`]).
pub struct PeerFrame {
    peer: PeerId,
    frame: SealedFrame,
}

impl PeerFrame {
    /// The client it goes to.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The sealed datagrams.
    pub fn frame(&self) -> &SealedFrame {
        &self.frame
    }
}

/// Fits every client's chunks into the quickest client's schedule: a client whose pacer
/// spreads the frame longer (its path is slower than the stream) gets its chunks sooner, in
/// proportion, so the streaming thread is never held by the slowest path. That client's
/// bottleneck drops what it cannot carry, and it recovers on its own (repair, keyframes),
/// as a client below the bitrate floor does.
fn squeeze(plan: &mut [(Instant, usize, Range<usize>)], spans: &[(Instant, Instant)]) {
    let Some(cap) = spans
        .iter()
        .map(|&(start, end)| end.saturating_duration_since(start))
        .min()
    else {
        return;
    };
    for (at, k, _) in plan.iter_mut() {
        let (start, end) = spans[*k];
        let span = end.saturating_duration_since(start);
        if span > cap && !span.is_zero() {
            let offset = at.saturating_duration_since(start);
            *at = start + offset.mul_f64(cap.as_secs_f64() / span.as_secs_f64());
        }
    }
}

/// What the sends of one client's frame did.
#[derive(Default)]
struct Outcome {
    sent: usize,
    dropped: usize,
    error: Option<String>,
    window: Option<(Instant, Instant)>,
}

impl Session {
    /// Host: the frame for every connected client, each cut with its client's FEC plan and
    /// sealed with its keys (empty without a client; the frame counts as dropped). Also with
    /// one client. The frame counts as captured now.
    pub fn seal_frames(&self, data: &[u8], keyframe: bool) -> Result<Vec<PeerFrame>> {
        self.seal_frames_timed(data, keyframe, FrameTimingIn::default())
    }

    /// Like [`Session::seal_frames`], with the frame's capture time and duration (see
    /// [`Session::seal_frame_timed`]).
    pub fn seal_frames_timed(
        &self,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Result<Vec<PeerFrame>> {
        self.require(Role::Host, "seal_frames is for the host")?;
        let now = Instant::now();
        let mut packetizer = lock(&self.inner.packetizer);
        let tickets =
            lock(&self.inner.conn).begin_frames(now, &packetizer, data.len(), keyframe, timing)?;
        let mut cut: Vec<(PeerId, FrameTicket, Datagrams)> = Vec::with_capacity(tickets.len());
        for (peer, ticket) in tickets {
            let mut buf = Datagrams::new();
            ticket
                .packetize(&mut packetizer, data, &mut buf)
                .map_err(Error::Packetize)?;
            cut.push((peer, ticket, buf));
        }
        drop(packetizer);
        Ok(cut
            .into_iter()
            .map(|(peer, ticket, buf)| PeerFrame {
                peer,
                frame: ticket.seal(buf),
            })
            .collect())
    }

    /// Host: sends every client's copy of a frame, each paced by its client's pacer, the
    /// chunks of all clients in time order. Returns when the last chunk is handed to the
    /// transport, with the sums over all clients.
    pub fn send_frames(&self, frames: &[PeerFrame]) -> Result<SendReport> {
        self.require(Role::Host, "send_frames is for the host")?;
        let now = Instant::now();
        let mut plan: Vec<(Instant, usize, Range<usize>)> = Vec::new();
        let mut ends: Vec<(Instant, Instant)> = Vec::with_capacity(frames.len());
        {
            let mut peers = lock(&self.inner.conn);
            for (k, f) in frames.iter().enumerate() {
                let d = f.frame.datagrams();
                let schedule = peers.pacing_schedule_for(f.peer, d.wire_bytes(), d.len(), now);
                ends.push((schedule.start(), schedule.end()));
                plan.extend(schedule.chunks().map(|(range, at)| (at, k, range)));
            }
        }
        squeeze(&mut plan, &ends);
        // Stable: equal times keep each client's own order.
        plan.sort_by_key(|p| p.0);
        let mut outcomes: Vec<Outcome> = frames.iter().map(|_| Outcome::default()).collect();
        let mut refs: Vec<&[u8]> = Vec::with_capacity(64);
        for (at, k, range) in plan {
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let released = Instant::now();
            let f = &frames[k];
            let o = &mut outcomes[k];
            o.window = Some(
                o.window
                    .map_or((released, released), |(a, _)| (a, released)),
            );
            refs.clear();
            refs.extend(range.map(|i| f.frame.datagrams().get(i)));
            match self.inner.transport.send(&refs, f.frame.peer()) {
                Ok(r) => {
                    o.sent += r.sent;
                    o.dropped += r.dropped;
                }
                Err(e) => {
                    // A refused or unreachable client is not fatal for the others.
                    o.dropped += refs.len();
                    o.error = Some(e.to_string());
                }
            }
        }
        let mut report = SendReport::default();
        let out = {
            let mut peers = lock(&self.inner.conn);
            let now = Instant::now();
            for (f, o) in frames.iter().zip(outcomes) {
                report.sent += o.sent;
                report.dropped += o.dropped;
                let sent = FrameSent {
                    sent: o.sent,
                    dropped: o.dropped,
                    error: o.error,
                    window: o.window,
                    now,
                };
                peers.frame_sent_to(f.peer, &f.frame, sent);
            }
            drain_transmits(&mut peers)
        };
        self.flush(out);
        Ok(report)
    }

    /// Host with several clients: seal and send to all; `Ok(None)` without a client.
    pub(super) fn submit_to_all(
        &self,
        data: &[u8],
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Result<Option<SendReport>> {
        let frames = self.seal_frames_timed(data, keyframe, timing)?;
        if frames.is_empty() {
            return Ok(None);
        }
        self.send_frames(&frames).map(Some)
    }

    /// Host: the connected clients, oldest first, each with its own counters.
    pub fn peers(&self) -> Vec<PeerInfo> {
        lock(&self.inner.conn).peers()
    }

    /// Host: the client whose input is taken (`None`: nobody's, or everybody's with
    /// `InputFrom::All`).
    pub fn input_controller(&self) -> Option<PeerId> {
        lock(&self.inner.conn).controller()
    }

    /// Host: hands input control to client `id`; `false` when it is not connected.
    pub fn give_input_control(&self, id: PeerId) -> Result<bool> {
        self.require(Role::Host, "give_input_control is for the host")?;
        Ok(lock(&self.inner.conn).give_control(id))
    }

    /// Host: ends client `id`'s session (it hears bye: its stream ends) and frees its slot for
    /// the next client; `false` when it is not connected.
    pub fn disconnect_peer(&self, id: PeerId) -> Result<bool> {
        self.require(Role::Host, "disconnect_peer is for the host")?;
        self.with_conn(|c, now| c.disconnect(id, now))
    }

    /// Host: like [`Session::poll_input`], with the client each event is about.
    pub fn poll_peer_event(&self, timeout: Duration) -> Result<Option<PeerEvent>> {
        self.require(Role::Host, "poll_peer_event is for the host")?;
        self.poll_event(timeout, Queue::Main)
    }
}
