//! The host's side of repair: the parity rows small frames keep for behind the next frame,
//! the repair history, answers to repair requests, and which loss report is the newest.
//!
//! - the parity rows small frames keep for behind the next frame ([`TrailingParity`]) are
//!   sealed with fresh packet numbers and queued once the next frame was sent;
//! - frames are recorded in a [`RepairHistory`] by their [`FrameTicket`](super::super::FrameTicket)
//!   before sealing (shared through an `Arc<Mutex>`: taken by the connection on a request, by
//!   the ticket outside the connection's lock; never both in the other order);
//! - a `RepairRequest` (authenticated and replay-checked like every sealed control message)
//!   passes a request token bucket, then the history answers it with new parity rows (what
//!   its totals ask beyond what was served, plus the FEC controller's margin for a burst on the
//!   answer unless the request is early), bounded by the repair budget (`RepairConfig::budget_share` of the stream),
//!   sealed with fresh packet numbers and queued as transmits;
//! - a loss report (`host`) is used only if it is not older, by packet number, than the newest
//!   one used ([`HostRepair::newest_report`]): the FEC plan reads it in the order it was sent.
//!
//! Must never: allocate per request beyond the bounded history and one reused datagram buffer,
//! or answer a request outside the current session.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::protocol::control::Control;
use crate::protocol::fec::coder::ReedSolomon8;
use crate::protocol::fec::repair::{RepairConfig, RepairHistory, RepairParams, RepairRequest};
use crate::protocol::media::packetizer::{Datagrams, TrailingParity, seal_all};
use crate::protocol::security::bucket::TokenBucket;
use crate::sync::lock;

use super::super::{Connection, Transmit};

/// Host: repair requests accepted per second, and the burst (each costs an encode of at most
/// the budget's bytes; the budget bounds the bytes, this bounds the work of tiny requests).
const REQUEST_RATE: f64 = 1000.0;
const REQUEST_BURST: f64 = 64.0;

/// Host: repair history and the order of the loss reports.
pub(in crate::session::connection) struct HostRepair {
    pub(in crate::session::connection) history: Arc<Mutex<RepairHistory>>,
    /// Parity rows of small frames that travel behind the next frame.
    pub(in crate::session::connection) trailing: Arc<Mutex<TrailingParity>>,
    coder: ReedSolomon8,
    out: Datagrams,
    limiter: TokenBucket,
    /// Packet number of the newest loss report used (older ones are dropped).
    last_report_pn: Option<u64>,
    /// Packet number of the control datagram being handled.
    pub(in crate::session::connection) rx_pn: u64,
}

impl HostRepair {
    pub(in crate::session::connection) fn new(cfg: RepairConfig, now: Instant) -> Self {
        HostRepair {
            history: Arc::new(Mutex::new(RepairHistory::new(cfg))),
            trailing: Arc::new(Mutex::new(TrailingParity::new())),
            coder: ReedSolomon8::new(),
            out: Datagrams::new(),
            limiter: TokenBucket::new(REQUEST_RATE, REQUEST_BURST, now),
            last_report_pn: None,
            rx_pn: 0,
        }
    }

    pub(in crate::session::connection) fn reset(&mut self) {
        lock(&self.history).clear();
        lock(&self.trailing).clear();
        self.last_report_pn = None;
    }

    /// Whether the loss report being handled (in the control datagram `rx_pn`) is not older
    /// than the newest one used; if so it becomes the newest.
    pub(in crate::session::connection) fn newest_report(&mut self) -> bool {
        if self.last_report_pn.is_some_and(|l| self.rx_pn < l) {
            return false;
        }
        self.last_report_pn = Some(self.rx_pn);
        true
    }
}

impl Connection {
    /// Host: after frame `frame_index` went out, sends the parity rows that older frames
    /// keep behind it (sealed with fresh packet numbers), so one burst rarely takes a small
    /// frame's data and all its parity.
    /// Returns the datagrams and bytes sent.
    pub(in crate::session::connection) fn send_trailing_parity(
        &mut self,
        frame_index: u32,
        now: Instant,
    ) -> (usize, usize) {
        let Some(h) = self.side.host_mut() else {
            return (0, 0);
        };
        let Some(link) = self.link.as_mut() else {
            lock(&h.repair.trailing).clear();
            return (0, 0);
        };
        let mut bytes = 0;
        let peer = link.peer;
        let transmits = &mut self.transmits;
        let sent = lock(&h.repair.trailing).release(
            frame_index,
            now,
            &mut link.next_pn,
            &*link.seal,
            |d| {
                bytes += d.len();
                transmits.push_back(Transmit {
                    destination: peer,
                    contents: d.to_vec(),
                })
            },
        );
        self.stats.parity_shards_sent += sent as u64;
        (sent, bytes)
    }

    /// Host: sends every held trailing row now (the stream ends: no next frame will carry
    /// them, and the last frames may need them).
    pub(in crate::session::connection) fn flush_trailing_parity(&mut self) {
        let Some(h) = self.side.host() else {
            return;
        };
        let at = lock(&h.repair.trailing).newest_at();
        let index = h.frame_index;
        if let Some(at) = at {
            self.send_trailing_parity(index, at);
        }
    }

    /// Host: answers a repair request with new parity rows from the history.
    pub(in crate::session::connection) fn on_repair_request(
        &mut self,
        req: RepairRequest,
        now: Instant,
    ) {
        self.stats.repair_requests += 1;
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let Some(h) = self.side.host_mut() else {
            return;
        };
        let hr = &mut h.repair;
        if !hr.limiter.take(now) {
            self.stats.repair_refused += 1;
            return;
        }
        let params = RepairParams {
            session_id: link.session_id,
            first_packet_number: link.next_pn,
            sealed: link.encrypt,
            tag_len: link.seal.tag_len(),
        };
        let answer = lock(&hr.history).answer(&req, &mut hr.coder, &params, &mut hr.out);
        let answer = match answer {
            Ok(a) => a,
            Err(_) => {
                self.stats.repair_refused += 1;
                return;
            }
        };
        link.next_pn += answer.shards as u64;
        let peer = link.peer;
        if answer.shards > 0 {
            seal_all(&mut hr.out, &*link.seal);
            self.stats.repair_shards += answer.shards as u64;
            self.stats.repair_bytes += hr.out.wire_bytes() as u64;
            for d in hr.out.iter() {
                self.transmits.push_back(Transmit {
                    destination: peer,
                    contents: d.to_vec(),
                });
            }
        }
        if let Some(u) = answer.unavailable {
            self.stats.repair_refused += 1;
            self.send_control(&Control::RepairUnavailable(u));
        }
    }
}
