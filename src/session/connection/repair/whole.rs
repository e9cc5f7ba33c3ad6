//! Frames lost whole: the client notices a frame of which nothing arrived when a newer
//! frame's shard shows the gap in the frame indices, holds it in the reassembler and asks the
//! host for it whole (rounds of repair rows per block).
//!
//! A trailing row of the newest frame that arrives before any shard of the frame after it
//! shows that frame lost whole as well (the host sends those rows right behind it).
//!
//! Owns when such a frame is asked for (after the reorder window, or at once when its trailing
//! rows are not due) and when it is asked again. Must never ask for a frame that neither a
//! newer frame nor a trailing row of the frame before has shown, nor one past its repair
//! deadline.

use std::time::Instant;

use crate::protocol::fec::repair::{MAX_WHOLE_ROUNDS, RepairRequest};
use crate::protocol::wire::{VideoHeader, seq_diff};

use super::Tracked;
use crate::session::connection::Connection;

impl Connection {
    /// Client: frames of which nothing arrived although a newer frame's shards did (frame
    /// indices are consecutive, so the sender sent them and every datagram was lost) are asked
    /// for whole at once, awaited by the reassembler until their deadline, and asked again
    /// (one more round of rows per block) when a round passes without a shard of theirs. Only
    /// frames within the repair deadline behind the newest, at most [`MAX_AWAITED`](crate::protocol::media::reassembler::MAX_AWAITED) at once.
    /// Their indices join `incomplete` (their request copies stay due).
    pub(super) fn ask_whole_frames(
        &mut self,
        now: Instant,
        requests: &mut Vec<RepairRequest>,
        incomplete: &mut Vec<u32>,
    ) {
        let round = self.repair_round();
        let wait = self.whole_frame_wait();
        let (window, origin, give_up) = self.whole_frame_window(now);
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let mut unseen = std::mem::take(&mut c.repair.unseen);
        // A frame a trailing row showed lost whole lies past the newest: listed as if the
        // frame after it were arriving.
        let implied = c.repair.implied_gap();
        c.reassembler
            .unseen_into(window, implied.map(|i| i.wrapping_add(1)), &mut unseen);
        c.repair.gaps.retain(|g| unseen.contains(&g.0));
        for &index in &unseen {
            let r = &mut c.repair;
            // The frame just before a small frame of the host's kept parity behind it: its
            // trailing rows come behind the newest frame's datagrams and may rebuild it alone,
            // so it is asked for once a frame after that shows (it stays awaited meanwhile).
            let trailing_due = r.trailing_due(index);
            match r.tracked.iter_mut().find(|t| t.index == index) {
                None if trailing_due => continue,
                None => {
                    // Reordering is not loss: the frame may only have been overtaken.
                    let noticed = r.gap_noticed(index, now);
                    if now < noticed + wait {
                        continue;
                    }
                    r.gap_done(index);
                    // It would have arrived a frame interval before the frame that showed the
                    // gap, or just before the trailing row that did.
                    let early = now - noticed;
                    let (origin, give_up) = if implied == Some(index) {
                        (noticed, noticed + (give_up - origin))
                    } else {
                        (
                            origin.checked_sub(early).unwrap_or(origin),
                            give_up.checked_sub(early).unwrap_or(give_up),
                        )
                    };
                    if !c.reassembler.await_frame(index, give_up) {
                        continue;
                    }
                    let Some(req) = RepairRequest::whole(index, 1) else {
                        continue;
                    };
                    let mut t = Tracked::new(index);
                    t.whole = 1;
                    t.origin = Some(origin);
                    t.round_start = Some(now);
                    t.requested = true;
                    r.tracked.push(t);
                    requests.push(req);
                }
                Some(t) if t.whole > 0 && c.reassembler.is_awaited(index) => {
                    if t.round_start.is_some_and(|s| now < s + round) {
                        continue;
                    }
                    // A round without a shard: the answer was lost too; ask for more rows.
                    t.whole = (t.whole + 1).min(MAX_WHOLE_ROUNDS);
                    t.round_start = Some(now);
                    if let Some(req) = RepairRequest::whole(index, t.whole) {
                        requests.push(req);
                    }
                }
                Some(_) => continue,
            }
        }
        for t in &c.repair.tracked {
            if t.whole > 0 && c.reassembler.is_awaited(t.index) && !incomplete.contains(&t.index) {
                incomplete.push(t.index);
            }
        }
        c.repair.unseen = unseen;
    }

    /// Client: a trailing row of frame `index` arrived (taken or not). The host sends a
    /// frame's trailing rows right behind the next frame's datagrams, so while `index` is the
    /// newest frame seen, every datagram of the next one was lost (or is reordered): it is held
    /// and timed as a gap now, a frame interval before the frame after it would show the gap
    /// — if the loss model gives its own trailing rows at least
    /// [`EARLY_ASK_RISK`](super::EARLY_ASK_RISK) of failing to rebuild it (otherwise those
    /// rows are its chance, as for any gap before a trailing frame).
    pub(super) fn on_trailing_row(&mut self, index: u32, now: Instant) {
        if !self.cfg.repair || self.link.is_none() {
            return;
        }
        let (_, origin, give_up) = self.whole_frame_window(now);
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let r = &mut c.repair;
        let next = index.wrapping_add(1);
        if r.newest != Some(index) || r.implied == Some(next) || !r.whole_risky() {
            return;
        }
        r.implied = Some(next);
        if c.reassembler.await_frame(next, now + (give_up - origin)) {
            r.gap_noticed(next, now);
        }
    }

    /// Client: before a video body is pushed, holds the frames it shows lost whole (see
    /// [`Connection::ask_whole_frames`], which asks for them right after the push).
    pub(in crate::session::connection) fn hold_unseen_before(&mut self, body: &[u8], now: Instant) {
        if !self.cfg.repair || self.link.is_none() {
            return;
        }
        let Ok((h, _)) = VideoHeader::decode(body) else {
            return;
        };
        // Only a shard of a frame newer than every frame seen can show a new gap.
        if self
            .side
            .client()
            .and_then(|c| c.repair.newest)
            .is_some_and(|n| seq_diff(h.frame_index, n) <= 0)
        {
            return;
        }
        let (window, _, give_up) = self.whole_frame_window(now);
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let mut unseen = std::mem::take(&mut c.repair.unseen);
        c.reassembler
            .unseen_into(window, Some(h.frame_index), &mut unseen);
        for &index in &unseen {
            if index != h.frame_index && !c.reassembler.is_awaited(index) {
                c.reassembler.await_frame(index, give_up);
            }
            if index != h.frame_index {
                c.repair.gap_noticed(index, now);
            }
        }
        c.repair.unseen = unseen;
    }
}
