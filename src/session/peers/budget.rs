//! What a client below the bitrate floor is sent: frames within its own bandwidth estimate.
//!
//! The encoder runs at no less than `Config::client_bitrate_floor_bps`; a client whose
//! estimate is below half of it and whose path queues (a bottleneck, not random loss) cannot
//! take every frame; it stays budgeted while its estimate stays below half the floor. (An
//! estimate somewhat below the floor is often noise of a busy machine or of loss: holding whole
//! groups of pictures back for it would freeze a client that can take the stream.) Sending it everything overflows its path and
//! costs it nearly every frame (each loss breaks the pictures up to the next keyframe, and the
//! repair and FEC it asks for load the path further). So the host keeps a token bucket per such
//! client at its estimate (media bits, up to [`BUDGET_DEPTH`] of them saved): a frame goes to
//! it while the bucket is not in debt; once one is held back, the deltas after it are held back
//! too (they would not decode) until a keyframe finds the bucket out of debt, and a keyframe is
//! asked for (through the slow-client throttle). The client sees a shorter stream with no gap in
//! its frame indices, shows the frames its path carries and never a broken picture.
//!
//! A client that joined a running stream is held back the same way until its first keyframe
//! (the deltas before it would not decode).
//!
//! Must never: hold back a frame from a client at or above the floor that has had its first
//! keyframe, or a keyframe from a client whose bucket is out of debt.

use std::time::{Duration, Instant};

use crate::protocol::congestion::BweState;
use crate::session::connection::KEYFRAME_PENDING_FOR;

use super::Peers;

/// A standing queue at least this long (or the estimator draining one) shows that a client's
/// path, not random loss, is what keeps its estimate below the floor.
pub const QUEUE_EVIDENCE: Duration = Duration::from_millis(10);

/// Bits a slow client may save up, in time at its rate: enough for a keyframe several times a
/// delta frame.
pub const BUDGET_DEPTH: Duration = Duration::from_millis(500);

/// A slow client's bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Media bits it may still take (negative: in debt).
    tokens: f64,
    at: Instant,
    /// A frame was held back: deltas wait for the next keyframe.
    skipping: bool,
}

/// What [`Peers::admit_frame`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Send,
    /// Held back; `true` when this starts a skip (a keyframe is worth asking for).
    Skip(bool),
}

impl Peers {
    /// Whether slot `i` gets a frame of `len` bytes at `now`.
    pub(super) fn admit_frame(&mut self, i: usize, now: Instant, len: usize, key: bool) -> Admit {
        let floor = self.cfg.client_bitrate_floor_bps;
        let slot = &mut self.slots[i];
        if slot.joining {
            if !key {
                // A client that joined mid-stream cannot decode the deltas before its first
                // keyframe; they would only load its path. Ask again when the keyframe asked
                // for it at connect has not come within the pending time (an encoder that
                // ignored the request).
                let ask_again = slot
                    .keyframe_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_PENDING_FOR);
                return Admit::Skip(ask_again);
            }
            slot.joining = false;
        }
        let Some(u) = slot
            .bandwidth
            .as_ref()
            .filter(|u| u.target_bitrate_bps < floor / 2)
        else {
            slot.budget = None;
            return Admit::Send;
        };
        // Only a path that queues is too slow: random loss lowers an estimate too, and such a
        // client is better served by FEC and repair than by fewer frames.
        let queues = u.queue_delay >= QUEUE_EVIDENCE || u.state == BweState::Drain;
        if slot.budget.is_none() && !queues {
            return Admit::Send;
        }
        let rate = u.target_bitrate_bps;
        let rate = rate as f64;
        let b = slot.budget.get_or_insert(Budget {
            tokens: 0.0,
            at: now,
            skipping: false,
        });
        let saved = rate * now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + saved).min(rate * BUDGET_DEPTH.as_secs_f64());
        b.at = now;
        if b.tokens < 0.0 || (b.skipping && !key) {
            let starts = !b.skipping;
            b.skipping = true;
            slot.frames_skipped += 1;
            self.counters.frames_skipped_slow += 1;
            return Admit::Skip(starts);
        }
        b.skipping = false;
        b.tokens -= len as f64 * 8.0;
        Admit::Send
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant, SystemTime};

    use crate::protocol::congestion::BweState;
    use crate::session::connection::BandwidthUpdate;
    use crate::session::{Config, Peers};

    use super::super::PeerId;
    use super::Admit;

    fn peers(target: [u64; 2]) -> (Peers, Instant) {
        let mut cfg = Config::host_listener();
        cfg.max_clients = 2;
        cfg.rng_seed = Some(1);
        cfg.client_bitrate_floor_bps = 6_000_000;
        let now = Instant::now();
        let mut p = Peers::new(cfg, now, SystemTime::now()).unwrap();
        for (i, s) in p.slots.iter_mut().enumerate() {
            s.client = Some((PeerId(i as u64 + 1), SocketAddr::from(([10, 0, 0, 2], 1))));
            s.bandwidth = Some(BandwidthUpdate {
                state: BweState::Hold,
                estimate_bps: target[i],
                target_bitrate_bps: target[i],
                pacing_rate_bps: 0,
                queue_delay: Duration::from_millis(30),
                loss: 0.0,
                rtt: Duration::from_millis(10),
                keyframe: false,
            });
        }
        (p, now)
    }

    /// 4 s at 60 fps of a 4 Mbit/s stream (a 60 kB keyframe every 30 frames, 7.5 kB deltas):
    /// which frames slot `i` gets.
    fn run(p: &mut Peers, now: Instant, i: usize) -> Vec<(bool, Admit)> {
        (0..240u32)
            .map(|n| {
                let key = n % 30 == 0;
                let at = now + Duration::from_micros(16_667 * u64::from(n));
                (
                    key,
                    p.admit_frame(i, at, if key { 60_000 } else { 7_500 }, key),
                )
            })
            .collect()
    }

    #[test]
    fn a_client_below_the_floor_gets_what_its_estimate_carries_and_whole_gops() {
        let (mut p, now) = peers([8_000_000, 2_000_000]);
        let fast = run(&mut p, now, 0);
        assert!(fast.iter().all(|(_, a)| *a == Admit::Send));
        let slow = run(&mut p, now, 1);
        let sent: Vec<bool> = slow.iter().map(|(_, a)| *a == Admit::Send).collect();
        let share = sent.iter().filter(|&&s| s).count() as f64 / sent.len() as f64;
        let bits: u64 = slow
            .iter()
            .filter(|(_, a)| *a == Admit::Send)
            .map(|(key, _)| if *key { 480_000 } else { 60_000 })
            .sum();
        // 2 Mbit/s of a 4.4 Mbit/s stream: never more than its rate (plus one frame of debt),
        // and the start of every group of pictures.
        assert!(bits <= 2_000_000 * 4 + 480_000, "{bits}");
        assert!(share >= 0.2, "{share}");
        assert_eq!(
            slow.iter().filter(|(k, a)| *k && *a == Admit::Send).count(),
            8
        );
        // Never a delta after a held-back frame before a keyframe: every run of sent frames
        // starts with a keyframe.
        for (n, w) in slow.windows(2).enumerate() {
            if w[0].1 != Admit::Send && w[1].1 == Admit::Send {
                assert!(w[1].0, "a delta sent after a skip at frame {}", n + 1);
            }
        }
        // A skip asks for a keyframe once per run of skipped frames.
        let starts = slow.iter().filter(|(_, a)| *a == Admit::Skip(true)).count();
        let runs = slow
            .windows(2)
            .filter(|w| w[0].1 == Admit::Send && w[1].1 != Admit::Send)
            .count();
        assert_eq!(starts, runs);
        assert_eq!(
            p.counters.frames_skipped_slow,
            sent.iter().filter(|&&s| !s).count() as u64
        );
    }

    #[test]
    fn a_client_somewhat_below_the_floor_gets_every_frame() {
        let (mut p, now) = peers([8_000_000, 3_500_000]);
        assert!(run(&mut p, now, 1).iter().all(|(_, a)| *a == Admit::Send));
    }

    #[test]
    fn a_lossy_client_without_a_queue_gets_every_frame() {
        let (mut p, now) = peers([8_000_000, 2_000_000]);
        p.slots[1].bandwidth.as_mut().unwrap().queue_delay = Duration::ZERO;
        assert!(run(&mut p, now, 1).iter().all(|(_, a)| *a == Admit::Send));
    }
}
