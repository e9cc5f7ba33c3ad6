//! The host's side: frames out, stream info, and what the client sends back (input, keyframe
//! requests, loss reports).
//!
//! A loss report is used whole or not at all: one that is older (by packet number) than the
//! newest used is dropped; the rest moves the FEC plan (counters and loss model, with the path's
//! RTT), the repair answers' margin, the peer's counters in the stats and, when the client holds
//! an older stream info, a resend of it.
//!
//! A frame is split in two so the driver's lock is held only briefly: [`Connection::begin_frame`]
//! reserves the frame index and the frame's packet numbers under the lock; the returned
//! [`FrameTicket`] then packetizes, FEC-encodes and seals outside it, so the receive thread is
//! never kept waiting by frame work. Repair answers (new parity for a block the client could
//! not rebuild) and the reaction to bandwidth feedback belong here.
//!
//! Must never: hand out a packet number twice under one key, or seal while holding the
//! connection (the ticket carries its own handle on the sealing key).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::protocol::control::{Control, StreamInfo};
use crate::protocol::fec::coder::{MAX_SHARDS_PER_BLOCK, ParityTable};
use crate::protocol::fec::repair::RepairHistory;
use crate::protocol::fec::report::LossReport;
use crate::protocol::media::packetizer::{
    Datagrams, FrameParams, PacketizeError, Packetizer, TrailingParity, seal_all,
};
use crate::protocol::security::crypto::Aead;
use crate::protocol::time::pacing::{Pacer, Schedule};
use crate::protocol::wire::{FEC_SCHEME_RS8, HEADER_LEN, VIDEO_HEADER_LEN};
use crate::sync::lock;

use super::{Connection, Error, Event, FrameTimingIn, Result, Side};

/// A frame's reserved place in the stream: its index, packet numbers and sealing key. Turn
/// it into datagrams with [`FrameTicket::packetize`] and [`FrameTicket::seal`], outside any
/// lock that the receive path takes.
pub struct FrameTicket {
    params: FrameParams,
    seal: Arc<dyn Aead>,
    peer: SocketAddr,
    payload_bytes: usize,
    /// Parity per block size, as planned when the packet numbers were reserved.
    parity: ParityTable,
    /// Where the data shards are kept for repair (recorded before sealing).
    history: Arc<Mutex<RepairHistory>>,
    /// Where the parity rows that trail behind the next frame wait (held before sealing).
    trailing: Arc<Mutex<TrailingParity>>,
    reserved_at: Instant,
}

impl FrameTicket {
    /// The frame's index, packet numbers and header fields.
    pub fn params(&self) -> &FrameParams {
        &self.params
    }

    /// Where the datagrams go (the peer when the frame was reserved).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Cuts `data` into `buf`, computes the parity (each block's from the controller's table)
    /// and keeps the data shards for repair. `packetizer` must be the one the ticket was
    /// planned with, and `data` the same length.
    pub fn packetize(
        &self,
        packetizer: &mut Packetizer,
        data: &[u8],
        buf: &mut Datagrams,
    ) -> std::result::Result<(), PacketizeError> {
        packetizer.packetize_with(data, &self.params, &self.parity, buf)?;
        packetizer.encode_recorded_parity(buf)?;
        lock(&self.history).record(buf);
        lock(&self.trailing).hold(buf, self.reserved_at);
        Ok(())
    }

    /// Seals the packetized datagrams in place (the costly part; needs no lock).
    pub fn seal(self, mut buf: Datagrams) -> SealedFrame {
        seal_all(&mut buf, &*self.seal);
        SealedFrame {
            datagrams: buf,
            peer: self.peer,
            keyframe: self.params.keyframe,
            payload_bytes: self.payload_bytes,
        }
    }
}

/// A frame sealed and ready to send (see [`crate::session::Session::seal_frame`]).
pub struct SealedFrame {
    datagrams: Datagrams,
    peer: SocketAddr,
    keyframe: bool,
    payload_bytes: usize,
}

impl SealedFrame {
    /// The sealed datagrams, in send order.
    pub fn datagrams(&self) -> &Datagrams {
        &self.datagrams
    }
    /// Whether the frame is a keyframe.
    pub fn keyframe(&self) -> bool {
        self.keyframe
    }
    /// The access unit's bytes (before packetizing).
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }
    /// Where the datagrams go (the peer when the frame was reserved).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// Gives the datagram buffer back for reuse.
    pub fn into_buffer(self) -> Datagrams {
        self.datagrams
    }
}

impl Connection {
    /// Host: reserves the next frame (`len` bytes, cut by `packetizer`) at `now`: its index and
    /// packet numbers. `Ok(None)` when no client is connected (counted as dropped);
    /// `Err(Closed)` after [`Connection::close`]; `Err(Packetize)` when the frame cannot be cut
    /// (empty, too large). Call it under the driver's lock and do the rest with the ticket
    /// outside it.
    pub fn begin_frame(
        &mut self,
        now: Instant,
        packetizer: &Packetizer,
        len: usize,
        keyframe: bool,
    ) -> Result<Option<FrameTicket>> {
        self.begin_frame_timed(now, packetizer, len, keyframe, FrameTimingIn::default())
    }

    /// Like [`Connection::begin_frame`], with what the caller knows of the frame's timing
    /// (capture time in the host clock, duration); `now` is the frame's render time. Every
    /// shard of the frame carries the resulting [`crate::protocol::media::timing::FrameTiming`].
    pub fn begin_frame_timed(
        &mut self,
        now: Instant,
        packetizer: &Packetizer,
        len: usize,
        keyframe: bool,
        timing: FrameTimingIn,
    ) -> Result<Option<FrameTicket>> {
        let closed = self.closed;
        let Side::Host(host) = &mut self.side else {
            return Err(Error::InvalidArg("seal_frame is for the host"));
        };
        if closed {
            return Err(Error::Closed);
        }
        let fec_percent = host.fec.wire_percent();
        let frame_index = host.frame_index;
        let Some(link) = self.link.as_mut() else {
            self.stats.frames_dropped_no_peer += 1;
            return Ok(None);
        };
        let seal = link.seal.clone();
        let mut parity = if keyframe {
            keyframe_parity(host.fec.parity_table())
        } else {
            host.fec.parity_table().clone()
        };
        // Where the path limits the stream, frames are spread evenly at the estimate: no
        // paired frame's rows leave as one run behind its data.
        parity.set_pairing(!host.congestion.paces());
        let plan = packetizer
            .plan_with(len, &parity, seal.tag_len())
            .map_err(Error::Packetize)?;
        let datagram_len = HEADER_LEN + VIDEO_HEADER_LEN + plan.shard + seal.tag_len();
        let mut params = FrameParams {
            frame_index,
            keyframe,
            fec_percent,
            session_id: link.session_id,
            first_packet_number: link.next_pn,
            sealed: link.encrypt,
            tag_len: seal.tag_len(),
            timing: Default::default(),
        };
        link.next_pn += plan.count as u64;
        let peer = link.peer;
        host.frame_index = frame_index.wrapping_add(1);
        host.pacer.observe_frame(len, now);
        let schedule = host
            .pacer
            .schedule(plan.count * datagram_len, plan.count, now);
        host.frames_in_session += 1;
        let repeat_info = std::mem::take(&mut host.repeat_info)
            .then(|| host.stream_info.clone())
            .flatten();
        let history = host.repair.history.clone();
        let trailing = host.repair.trailing.clone();
        params.timing = self.frame_timing(now, timing, &schedule, plan.data_shards);
        self.stats.frames_sent += 1;
        if keyframe {
            self.stats.keyframes_sent += 1;
            self.keyframe_sent(frame_index);
        }
        if let Some(info) = repeat_info {
            // The client drops frames until it has the stream info: a copy behind the first
            // frame, a dozen datagrams after the one sent at confirmation, survives a burst
            // that took the first (else the loss report asks for it a round trip later).
            self.send_control(&Control::StreamInfo(info));
        }
        self.stats.data_shards_sent += plan.data_shards as u64;
        self.stats.parity_shards_sent += (plan.count - plan.data_shards) as u64;
        Ok(Some(FrameTicket {
            params,
            seal,
            peer,
            payload_bytes: len,
            parity,
            history,
            trailing,
            reserved_at: now,
        }))
    }

    /// Host: when the datagrams of a frame (`count` datagrams, `wire_bytes` in all) go out,
    /// starting at `now`. The driver sleeps between the chunks.
    pub fn pacing_schedule(&mut self, wire_bytes: usize, count: usize, now: Instant) -> Schedule {
        match &mut self.side {
            Side::Host(h) => h.pacer.schedule(wire_bytes, count, now),
            // A client sends no video: the plan of a pacer that saw none.
            Side::Client(_) => Pacer::new(self.cfg.pacing).schedule(wire_bytes, count, now),
        }
    }

    /// Host: the driver reports the access-unit bytes of a frame it sent.
    pub fn record_payload_sent(&mut self, bytes: usize) {
        self.stats.payload_bytes_sent += bytes as u64;
    }

    /// Host: sets (or changes) the stream info; a connected client gets it at once (and again
    /// with every loss report that shows an older generation).
    pub fn set_stream_info(&mut self, caps: &str) -> Result<()> {
        let mtu = self.cfg.mtu as u16;
        let host = self.require_host("set_stream_info is for the host")?;
        if host.stream_info.as_ref().is_some_and(|i| i.caps == caps) {
            return Ok(());
        }
        let generation = host.stream_info.as_ref().map_or(0, |i| i.generation) + 1;
        let info = StreamInfo {
            caps: caps.to_owned(),
            mtu,
            fec_scheme: FEC_SCHEME_RS8,
            generation,
        };
        host.stream_info = Some(info.clone());
        self.send_control(&Control::StreamInfo(info));
        Ok(())
    }

    pub(super) fn on_loss_report(&mut self, r: LossReport, now: Instant) {
        let Some(host) = self.side.host_mut() else {
            return;
        };
        if !host.repair.newest_report() {
            return;
        }
        self.stats.loss_models += 1;
        if let Some(rtt) = self.srtt {
            let fi = host.pacer.frame_interval();
            host.fec.set_path(rtt, fi);
        }
        host.fec.on_report(&r, now);
        let margin = host.fec.repair_margin();
        lock(&host.repair.history).set_margin(margin);
        let info = host.stream_info.clone();
        self.stats.peer_packets_lost = r.packets_lost;
        self.stats.peer_packets_received = r.packets_received;
        self.stats.peer_frames_lost = r.frames_lost;
        self.stats.fec_recovered = r.packets_recovered;
        // Resend the stream info until the client holds the current generation (a lost update
        // is repeated at the loss-report rate, ~10 per second).
        if let Some(info) = info
            && r.info_generation != info.generation
        {
            self.send_control(&Control::StreamInfo(info));
        }
        self.events.push_back(Event::LossReport(r));
    }
}

/// Least parity of a keyframe's blocks, in percent of their data shards. A keyframe is what the
/// client waits for at start (before any loss report sized the FEC) and after a loss, and
/// losing it costs one more round trip of frozen pictures; keyframes are rare, so the extra
/// parity costs little of the stream.
pub(super) const KEYFRAME_MIN_PARITY_PERCENT: u8 = 50;

/// The FEC plan for a keyframe: the current plan, raised to [`KEYFRAME_MIN_PARITY_PERCENT`].
fn keyframe_parity(plan: &ParityTable) -> ParityTable {
    let floor = ParityTable::from_percent(KEYFRAME_MIN_PARITY_PERCENT);
    let mut t = plan.clone();
    for k in 1..=MAX_SHARDS_PER_BLOCK {
        t.set(k, plan.parity(k).max(floor.parity(k)));
    }
    t
}
