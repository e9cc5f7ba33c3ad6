//! Keyframe requests by frame index: what the client names, and how the host coalesces them.
//!
//! The client names the newest frame it cannot decode ([`Control::KeyframeRequest`]'s `lost`):
//! the newest frame given up since the last keyframe it got, else the newest frame delivered
//! (a delta it holds no keyframe for). Each request goes at once and again at
//! [`KEYFRAME_REQUEST_COPIES`]; a request for a loss newer than the last one named is not held
//! back by `Config::keyframe_request_interval`.
//!
//! The host answers each distinct loss with one keyframe ([`Event::KeyframeRequest`], the
//! sink's ForceKeyUnit):
//! - a request is covered, and only counted, when a keyframe sent after the named frame
//!   exists, or one was asked of the encoder within [`KEYFRAME_PENDING_FOR`] and has not come
//!   yet (it will be newer than any frame already sent): copies, the requests of a client that
//!   waits for the keyframe already on its way, requests for a loss older than it;
//! - a request that names a keyframe (the answer itself was lost) is acted on at once, at most
//!   one per [`LOST_KEYFRAME_MIN_INTERVAL`];
//! - any other is acted on when the last keyframe asked for is [`KEYFRAME_REQUEST_MIN_INTERVAL`]
//!   old, else held (the newest held loss only) and acted on then, unless a keyframe covered it
//!   meanwhile;
//! - an unnamed request (an empty body: an older client, or a client whose video stalled) is
//!   acted on under the guard's throttle alone, unless a keyframe is pending.
//!
//! Must never: ask the encoder for more than one keyframe per loss, per
//! [`LOST_KEYFRAME_MIN_INTERVAL`], or keep more than [`KEPT_KEYFRAMES`] indices and one held
//! request.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::control::Control;
use crate::protocol::wire::seq_diff;

use super::guard::KEYFRAME_REQUEST_MIN_INTERVAL;
use super::{Connection, Event};

/// A keyframe request is sent at once and again this long after, each copy spaced wider than
/// a loss burst, so one burst on the way up cannot cost a round trip. The host takes the
/// copies as the request they repeat (they name the same frame).
pub(super) const KEYFRAME_REQUEST_COPIES: [Duration; 2] =
    [Duration::from_millis(10), Duration::from_millis(25)];

/// A keyframe asked of the encoder covers every request for this long; after it, an encoder
/// that ignored the request is asked again.
pub const KEYFRAME_PENDING_FOR: Duration = Duration::from_millis(100);

/// Least time between two keyframes asked for lost keyframes. Over any real path the request
/// for a lost keyframe comes at least a round trip after the keyframe was asked for; this
/// bounds what a client on a short path can make the encoder do.
pub const LOST_KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(25);

/// Keyframe indices the host remembers (to tell a lost keyframe from a lost delta).
pub(super) const KEPT_KEYFRAMES: usize = 8;

/// Client: the keyframe request in flight and what it names.
#[derive(Debug, Default)]
pub(super) struct KeyframeAsk {
    /// When the copies of the last request are due, earliest first.
    copies: VecDeque<Instant>,
    /// What the last request named.
    named: Option<u32>,
    /// The newest frame given up since the last keyframe delivered after it.
    lost: Option<u32>,
    /// The newest frame delivered.
    delivered: Option<u32>,
}

impl KeyframeAsk {
    /// Forgets the previous session.
    pub(super) fn clear(&mut self) {
        *self = KeyframeAsk::default();
    }

    /// When the next copy is due.
    pub(super) fn next_copy(&self) -> Option<Instant> {
        self.copies.front().copied()
    }

    /// What a request names now.
    fn name(&self) -> Option<u32> {
        self.lost.or(self.delivered)
    }

    /// The reassembler gave up `first .. first + count`.
    pub(super) fn on_lost(&mut self, first: u32, count: u32) {
        let newest = first.wrapping_add(count.max(1) - 1);
        if self.lost.is_none_or(|l| seq_diff(newest, l) > 0) {
            self.lost = Some(newest);
        }
    }

    /// Frame `index` was delivered.
    pub(super) fn on_delivered(&mut self, index: u32, keyframe: bool) {
        if self.delivered.is_none_or(|d| seq_diff(index, d) > 0) {
            self.delivered = Some(index);
        }
        if keyframe && self.lost.is_some_and(|l| seq_diff(index, l) > 0) {
            self.lost = None;
        }
    }
}

/// Host: the keyframes sent and asked for, and a request held by the throttle.
#[derive(Debug, Default)]
pub(super) struct KeyframeAnswers {
    /// The session these indices belong to (frame indices restart with each session).
    session: Option<u32>,
    /// Indices of the newest keyframes sent, oldest first.
    sent: VecDeque<u32>,
    /// When a keyframe was last asked of the encoder, and whether it has not come yet.
    asked_at: Option<Instant>,
    pending: bool,
    /// A loss held back by the throttle: the frame named and when it may be acted on.
    held: Option<(u32, Instant)>,
}

/// What the host does with a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Act,
    Covered,
    Hold(Instant),
    Throttled,
}

impl KeyframeAnswers {
    fn for_session(&mut self, session: u32) {
        if self.session != Some(session) {
            *self = KeyframeAnswers {
                session: Some(session),
                ..KeyframeAnswers::default()
            };
        }
    }

    /// A keyframe with index `index` is being sent.
    fn on_keyframe(&mut self, index: u32) {
        if self.sent.len() == KEPT_KEYFRAMES {
            self.sent.pop_front();
        }
        self.sent.push_back(index);
        self.pending = false;
        if self.held.is_some_and(|(l, _)| seq_diff(index, l) > 0) {
            self.held = None;
        }
    }

    /// Whether a keyframe asked of the encoder has not come yet (and may still).
    fn pending(&self, now: Instant) -> bool {
        self.pending
            && self
                .asked_at
                .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_PENDING_FOR)
    }

    /// Whether a keyframe sent after frame `lost`, or one on its way, answers it.
    fn covered(&self, lost: u32, now: Instant) -> bool {
        self.pending(now) || self.sent.back().is_some_and(|&k| seq_diff(k, lost) > 0)
    }

    fn since_asked(&self, now: Instant) -> Duration {
        self.asked_at
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t))
    }

    /// The verdict on a request naming `lost` (`next`: the index the next frame gets).
    fn judge(&self, lost: Option<u32>, next: u32, now: Instant) -> Verdict {
        let since = self.since_asked(now);
        let Some(lost) = lost else {
            // The guard's throttle decides the rest (`Connection::on_keyframe_request`).
            return if self.pending(now) {
                Verdict::Covered
            } else {
                Verdict::Act
            };
        };
        // A frame not sent yet (a confused or hostile client) is covered by nothing it could
        // need; it is counted and dropped.
        if seq_diff(next, lost) <= 0 {
            return Verdict::Throttled;
        }
        if self.covered(lost, now) {
            return Verdict::Covered;
        }
        let wait = if self.sent.contains(&lost) {
            LOST_KEYFRAME_MIN_INTERVAL
        } else {
            KEYFRAME_REQUEST_MIN_INTERVAL
        };
        match self.asked_at {
            Some(t) if since < wait => Verdict::Hold(t + wait),
            _ => Verdict::Act,
        }
    }

    /// When the held request is due.
    pub(super) fn held_until(&self) -> Option<Instant> {
        self.held.map(|(_, at)| at)
    }
}

impl Connection {
    /// Client: asks the host for a keyframe, naming the newest frame it cannot decode. Sent at
    /// once and as copies; not again within `Config::keyframe_request_interval` unless it names
    /// a newer loss. Returns whether a request went out.
    pub(super) fn ask_keyframe(&mut self, now: Instant, unnamed: bool) -> bool {
        let Some(c) = self.side.client_mut() else {
            return false;
        };
        let named = if unnamed { None } else { c.keyframe.name() };
        let newer = match (named, c.keyframe.named) {
            (Some(n), Some(last)) => seq_diff(n, last) > 0,
            (Some(_), None) => c.last_keyframe_request.is_some(),
            _ => false,
        };
        let due = newer
            || c.last_keyframe_request.is_none_or(|t| {
                now.saturating_duration_since(t) >= self.cfg.keyframe_request_interval
            });
        if !due || self.link.is_none() {
            return false;
        }
        c.last_keyframe_request = Some(now);
        c.keyframe.named = named;
        c.keyframe.copies = KEYFRAME_REQUEST_COPIES.iter().map(|d| now + *d).collect();
        self.stats.keyframe_requests += 1;
        self.send_control(&Control::KeyframeRequest { lost: named });
        true
    }

    /// Client: sends the copies of the last keyframe request that are due.
    pub(super) fn send_keyframe_copies(&mut self, now: Instant) {
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let lost = c.keyframe.named;
        let mut due = 0;
        while c.keyframe.copies.front().is_some_and(|t| now >= *t) {
            c.keyframe.copies.pop_front();
            due += 1;
        }
        for _ in 0..due {
            self.send_control(&Control::KeyframeRequest { lost });
        }
    }

    /// Host: a keyframe request naming `lost`.
    pub(super) fn on_keyframe_request(&mut self, lost: Option<u32>, now: Instant) {
        let Some(session) = self.link.as_ref().map(|l| l.session_id) else {
            return;
        };
        let Some(host) = self.side.host_mut() else {
            return;
        };
        let k = &mut host.keyframes;
        k.for_session(session);
        match k.judge(lost, host.frame_index, now) {
            // Unnamed (an older client, or a stalled one): one per 100 ms, as it always was.
            Verdict::Act if lost.is_none() => {
                if self.keyframe_request_allowed(now) {
                    self.act_on_keyframe_request(now)
                }
            }
            Verdict::Act => self.act_on_keyframe_request(now),
            Verdict::Covered => self.stats.keyframe_requests_coalesced += 1,
            Verdict::Throttled => self.stats.keyframe_requests_throttled += 1,
            Verdict::Hold(at) => {
                self.stats.keyframe_requests_throttled += 1;
                let lost = lost.unwrap_or_default();
                let Some(host) = self.side.host_mut() else {
                    return;
                };
                let k = &mut host.keyframes;
                if k.held.is_none_or(|(l, _)| seq_diff(lost, l) > 0) {
                    k.held = Some((lost, at));
                }
            }
        }
    }

    /// Host: the held request is acted on once due, unless a keyframe covered it meanwhile.
    pub(super) fn keyframe_held_due(&mut self, now: Instant) {
        let Some(host) = self.side.host_mut() else {
            return;
        };
        let k = &mut host.keyframes;
        let Some((lost, at)) = k.held else {
            return;
        };
        if now < at {
            return;
        }
        k.held = None;
        if k.covered(lost, now) {
            self.stats.keyframe_requests_coalesced += 1;
        } else {
            self.act_on_keyframe_request(now);
        }
    }

    fn act_on_keyframe_request(&mut self, now: Instant) {
        let Some(host) = self.side.host_mut() else {
            return;
        };
        let k = &mut host.keyframes;
        k.asked_at = Some(now);
        k.pending = true;
        k.held = None;
        self.stats.keyframe_requests += 1;
        self.events.push_back(Event::KeyframeRequest);
    }

    /// Host: frame `index` is a keyframe of the current session.
    pub(super) fn keyframe_sent(&mut self, index: u32) {
        if let Some(session) = self.link.as_ref().map(|l| l.session_id)
            && let Some(host) = self.side.host_mut()
        {
            host.keyframes.for_session(session);
            host.keyframes.on_keyframe(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(sent: &[u32]) -> KeyframeAnswers {
        let mut k = KeyframeAnswers::default();
        for &i in sent {
            k.on_keyframe(i);
        }
        k
    }

    #[test]
    fn a_keyframe_after_the_lost_frame_covers_the_request() {
        let t = Instant::now();
        let k = answers(&[10]);
        assert_eq!(k.judge(Some(9), 20, t), Verdict::Covered);
        assert_eq!(k.judge(Some(11), 20, t), Verdict::Act);
        // A frame not sent yet is never acted on.
        assert_eq!(k.judge(Some(20), 20, t), Verdict::Throttled);
        // Indices wrap.
        let k = answers(&[2]);
        assert_eq!(k.judge(Some(u32::MAX), 5, t), Verdict::Covered);
    }

    #[test]
    fn a_pending_keyframe_covers_every_request_until_it_is_stale() {
        let t = Instant::now();
        let mut k = answers(&[10]);
        k.asked_at = Some(t);
        k.pending = true;
        assert_eq!(k.judge(Some(15), 20, t), Verdict::Covered);
        assert_eq!(k.judge(None, 20, t), Verdict::Covered);
        let late = t + KEYFRAME_PENDING_FOR;
        assert_eq!(k.judge(Some(15), 20, late), Verdict::Act);
    }

    #[test]
    fn a_lost_keyframe_is_answered_within_its_short_interval_and_a_delta_is_held() {
        let t = Instant::now();
        let mut k = answers(&[10]);
        k.asked_at = Some(t);
        let soon = t + Duration::from_millis(5);
        assert_eq!(
            k.judge(Some(10), 20, soon),
            Verdict::Hold(t + LOST_KEYFRAME_MIN_INTERVAL)
        );
        assert_eq!(
            k.judge(Some(10), 20, t + LOST_KEYFRAME_MIN_INTERVAL),
            Verdict::Act
        );
        assert_eq!(
            k.judge(Some(12), 20, soon),
            Verdict::Hold(t + KEYFRAME_REQUEST_MIN_INTERVAL)
        );
        // Unnamed: left to the guard's throttle.
        assert_eq!(k.judge(None, 20, soon), Verdict::Act);
    }

    #[test]
    fn the_client_names_the_newest_loss_until_a_newer_keyframe_arrives() {
        let mut a = KeyframeAsk::default();
        assert_eq!(a.name(), None);
        a.on_delivered(4, true);
        assert_eq!(a.name(), Some(4));
        a.on_lost(5, 2);
        assert_eq!(a.name(), Some(6));
        a.on_delivered(7, false);
        assert_eq!(a.name(), Some(6));
        a.on_delivered(9, true);
        assert_eq!(a.name(), Some(9));
    }
}
