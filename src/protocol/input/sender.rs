//! The client's side of the reliable channel: numbers events, keeps them until acknowledged and
//! builds input bodies (new events at once, old ones again after the retransmission timeout).
//!
//! Must never: hold more than `max_pending` events, send an event it has been told was received,
//! or read a clock (the time of each call is an argument).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::{BODY_HEADER_LEN, InputEvent};
use crate::protocol::wire::Writer;

/// [`InputSender::push`] refused an event: `max_pending` events are already waiting for an ack.
/// The link is down or far behind; the caller counts the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputQueueFull;

impl fmt::Display for InputQueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input queue full: too many events waiting for acknowledgement"
        )
    }
}

impl std::error::Error for InputQueueFull {}

#[derive(Debug)]
struct Pending {
    event: InputEvent,
    /// Cached [`InputEvent::encoded_len`], so packing a body never re-measures strings.
    len: usize,
    /// Last time this event went out; `None` until its first transmission.
    last_tx: Option<Instant>,
}

/// The client's side of input delivery: numbers events, keeps them until acknowledged, and
/// builds input bodies — new events at once, old ones again when they have been out longer
/// than the retransmission timeout.
///
/// Sequence numbers start at 0 for each sender (one per session) and increase by one per event.
#[derive(Debug)]
pub(crate) struct InputSender {
    pub(super) max_pending: usize,
    queue: VecDeque<Pending>,
    /// Sequence number of `queue[0]`: everything below it is acknowledged.
    base_seq: u64,
    /// Index of the first event never sent. Bodies always cover a contiguous range that
    /// reaches the first unsent event, so sent events are always a prefix of the queue.
    unsent_from: usize,
    /// Earliest `last_tx` among the sent events (exact), so an idle `poll_transmit` is O(1).
    earliest_tx: Option<Instant>,
    /// The latest `now` seen, to report unsent events as due in [`InputSender::next_timeout`].
    last_poll: Option<Instant>,
}

impl InputSender {
    /// A sender that holds at most `max_pending` unacknowledged events (at least 1).
    pub(crate) fn new(max_pending: usize) -> Self {
        InputSender {
            max_pending: max_pending.max(1),
            queue: VecDeque::new(),
            base_seq: 0,
            unsent_from: 0,
            earliest_tx: None,
            last_poll: None,
        }
    }

    /// Queues an event for delivery and returns its sequence number. Call
    /// [`InputSender::poll_transmit`] afterwards: new events are due at once.
    pub(crate) fn push(&mut self, ev: InputEvent) -> Result<u64, InputQueueFull> {
        if self.queue.len() >= self.max_pending {
            return Err(InputQueueFull);
        }
        let seq = self.base_seq.wrapping_add(self.queue.len() as u64);
        let len = ev.encoded_len();
        self.queue.push_back(Pending {
            event: ev,
            len,
            last_tx: None,
        });
        Ok(seq)
    }

    /// Events pushed and not yet acknowledged.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.queue.len()
    }

    /// True when some event has never been sent.
    pub(crate) fn has_unsent(&self) -> bool {
        self.unsent_from < self.queue.len()
    }

    /// Sequence number the next pushed event gets.
    #[cfg(test)]
    pub(crate) fn next_seq(&self) -> u64 {
        self.base_seq.wrapping_add(self.queue.len() as u64)
    }

    fn due(last_tx: Option<Instant>, now: Instant, rto: Duration) -> bool {
        last_tx.is_some_and(|t| now.saturating_duration_since(t) >= rto)
    }

    fn recompute_earliest(&mut self) {
        self.earliest_tx = self
            .queue
            .iter()
            .take(self.unsent_from)
            .filter_map(|p| p.last_tx)
            .min();
    }

    /// Builds one input body into `out` (cleared first) if any event is unsent or was last sent
    /// at least `rto` ago, and returns true; returns false (with `out` empty) when nothing is
    /// due. Call it until it returns false.
    ///
    /// The body starts at the oldest unacknowledged event when the events that are due still
    /// fit behind it, so every body also repeats what is in flight (cheap insurance at high
    /// loss), and carries as many consecutive events as fit in `max_len` bytes — always at least
    /// one, even if that one alone is larger. Every event in it counts as sent at `now`.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        rto: Duration,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        self.last_poll = Some(self.last_poll.map_or(now, |t| t.max(now)));
        let n = self.queue.len();
        if n == 0 {
            return false;
        }
        // The first event that needs to go out: the oldest overdue one, else the oldest unsent.
        let overdue = if Self::due(self.earliest_tx, now, rto) {
            self.queue
                .iter()
                .take(self.unsent_from)
                .position(|p| Self::due(p.last_tx, now, rto))
        } else {
            None
        };
        let start = match overdue {
            Some(i) => i,
            None if self.unsent_from < n => self.unsent_from,
            None => return false,
        };

        let budget = max_len.saturating_sub(BODY_HEADER_LEN);
        let max_count = u16::MAX as usize;
        let mut used = self.queue[start].len;
        let mut end = start + 1;
        while end < n && end - start < max_count && used + self.queue[end].len <= budget {
            used += self.queue[end].len;
            end += 1;
        }
        let mut first = start;
        while first > 0 && end - first < max_count && used + self.queue[first - 1].len <= budget {
            first -= 1;
            used += self.queue[first].len;
        }

        out.reserve(BODY_HEADER_LEN + used);
        Writer::new(out)
            .u64(self.base_seq.wrapping_add(first as u64))
            .u16((end - first) as u16);
        for p in self.queue.range_mut(first..end) {
            p.event.encode(out);
            p.last_tx = Some(now);
        }
        let all_sent_now = first == 0 && end >= self.unsent_from;
        self.unsent_from = self.unsent_from.max(end);
        if all_sent_now {
            self.earliest_tx = Some(now);
        } else {
            self.recompute_earliest();
        }
        true
    }

    /// Applies a cumulative acknowledgement: the receiver has every event below
    /// `next_expected`. Stale acks are ignored; an ack beyond what was ever sent only covers
    /// what was sent.
    pub(crate) fn on_ack(&mut self, next_expected: u64) {
        if next_expected <= self.base_seq {
            return;
        }
        let acked = (next_expected - self.base_seq).min(self.unsent_from as u64) as usize;
        if acked == 0 {
            return;
        }
        self.queue.drain(..acked);
        self.base_seq = self.base_seq.wrapping_add(acked as u64);
        self.unsent_from -= acked;
        self.recompute_earliest();
    }

    /// When [`InputSender::poll_transmit`] next has something to send: the earliest
    /// retransmission deadline, or the latest `now` it was given while some event is unsent
    /// (that is, at once). `None` when nothing is pending, or when events are pending but
    /// `poll_transmit` was never called.
    pub(crate) fn next_timeout(&self, rto: Duration) -> Option<Instant> {
        let retransmit = self.earliest_tx.and_then(|t| t.checked_add(rto));
        let unsent = if self.has_unsent() {
            self.last_poll
        } else {
            None
        };
        match (retransmit, unsent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
