//! The `punktfunk-stats` structure (property `stats` and the periodic element message) and the
//! schedule of those messages.
//!
//! Owns: the field names and types of `punktfunk-stats` (a user-facing contract: fields may be
//! added, never renamed) and [`StatsTicker`]. Must never: block, or post a burst of catch-up
//! messages after a stall.

use std::time::{Duration, Instant};

use crate::protocol::congestion::BweState;
use crate::protocol::security::handshake::Role;
use gst::prelude::*;

use crate::session::{Session, Stats};

/// Name of the stats structure (property `stats` and the periodic element message).
pub(crate) const STATS_NAME: &str = "punktfunk-stats";

/// The estimator's state as `punktfunk-stats` and `punktfunk-bandwidth` spell it.
pub(crate) fn state_name(s: Option<BweState>) -> &'static str {
    match s {
        None => "off",
        Some(BweState::Startup) => "startup",
        Some(BweState::Increase) => "increase",
        Some(BweState::Hold) => "hold",
        Some(BweState::Drain) => "drain",
    }
}

/// The `stats` structure (`punktfunk-stats`) of a session's counters.
pub(crate) fn stats_structure(s: &Stats, bound_port: u32) -> gst::Structure {
    let role = match s.role {
        Some(Role::Host) => "host",
        Some(Role::Client) => "client",
        None => "none",
    };
    let mut st = gst::Structure::builder(STATS_NAME)
        .field("role", role)
        .field("connected", s.connected)
        .field("peer", s.peer.map(|p| p.to_string()).unwrap_or_default())
        .field("session-id", s.session_id)
        .field("bound-port", bound_port)
        .field("rtt-us", s.rtt_us)
        .field("fec-percent", u32::from(s.fec_percent))
        .field("loss-percent", s.loss_percent())
        .field("packets-sent", s.packets_sent)
        .field("bytes-sent", s.bytes_sent)
        .field("packets-received", s.packets_received)
        .field("bytes-received", s.bytes_received)
        .field("send-drops", s.send_drops)
        .field("send-errors", s.send_errors)
        .field("frames-sent", s.frames_sent)
        .field("keyframes-sent", s.keyframes_sent)
        .field("payload-bytes-sent", s.payload_bytes_sent)
        .field("frames-dropped-no-peer", s.frames_dropped_no_peer)
        .field("frames-received", s.frames_received)
        .field("frames-lost", s.frames_lost)
        .field("fec-recovered", s.fec_recovered)
        .field("packets-lost", s.packets_lost)
        .field("shards-duplicate", s.shards_duplicate)
        .field("shards-late", s.shards_late)
        .field("shards-invalid", s.shards_invalid)
        .field("memory-in-use", s.memory_in_use)
        .field("memory-peak", s.memory_peak)
        .field("peer-packets-received", s.peer_packets_received)
        .field("peer-packets-lost", s.peer_packets_lost)
        .field("peer-frames-lost", s.peer_frames_lost)
        .field("replays-rejected", s.replays_rejected)
        .field("auth-failures", s.auth_failures)
        .field("invalid-datagrams", s.invalid_datagrams)
        .field("unknown-session", s.unknown_session)
        .field("handshakes-sent", s.handshakes_sent)
        .field("handshakes-completed", s.handshakes_completed)
        .field("handshake-failures", s.handshake_failures)
        .field("rejects-received", s.rejects_received)
        .field("resets-received", s.resets_received)
        .field("byes-received", s.byes_received)
        .field("keyframe-requests", s.keyframe_requests)
        .field("input-sent", s.input_sent)
        .field("input-received", s.input_received)
        .field("input-dropped", s.input_dropped)
        .field("send-buffer", s.send_buffer)
        .field("recv-buffer", s.recv_buffer)
        .field("gso", s.gso)
        // Security.
        .field("cookies-sent", s.cookies_sent)
        .field("hellos-dropped", s.hellos_dropped)
        .field("hellos-stale", s.hellos_stale)
        .field("guesses-refused", s.guesses_refused)
        .field("confirmations-failed", s.confirmations_failed)
        .field("cookie-replies-received", s.cookie_replies_received)
        .field("rejects-ignored", s.rejects_ignored)
        .field("resets-ignored", s.resets_ignored)
        .field("path-challenges-sent", s.path_challenges_sent)
        .field("path-migrations", s.path_migrations)
        .field("path-forwarding-detected", s.path_forwarding_detected)
        .field("path-reverts", s.path_reverts)
        .field("path-challenges-ignored", s.path_challenges_ignored)
        .field("media-stalls", s.media_stalls)
        .field("media-stall-reconnects", s.media_stall_reconnects)
        .field("peer-probes", s.peer_probes)
        .field("peers-refused", s.peers_refused)
        .field("peers-replaced", s.peers_replaced)
        .field("keyframe-requests-throttled", s.keyframe_requests_throttled)
        .field("keyframe-requests-coalesced", s.keyframe_requests_coalesced)
        .field("input-throttled", s.input_throttled)
        .field("seal-failures", s.seal_failures)
        // Loss resilience.
        .field("data-shards-sent", s.data_shards_sent)
        .field("parity-shards-sent", s.parity_shards_sent)
        .field("repair-requests", s.repair_requests)
        .field("repair-refused", s.repair_refused)
        .field("repair-shards", s.repair_shards)
        .field("repair-bytes", s.repair_bytes)
        .field("frames-repaired", s.frames_repaired)
        .field("frames-deadline-lost", s.frames_deadline_lost)
        .field("repair-spurious", s.repair_spurious)
        .field("shards-reordered", s.shards_reordered)
        .field("reorder-window-us", s.reorder_window_us)
        .field("loss-models", s.loss_models)
        // Congestion control.
        .field("feedback-messages", s.feedback_messages)
        .field("bwe-state", state_name(s.bwe_state))
        .field("bwe-estimate", s.bwe_estimate_bps)
        .field("bwe-target-bitrate", s.bwe_target_bitrate_bps)
        .field("bwe-pacing-rate", s.bwe_pacing_rate_bps)
        .field("bwe-queue-delay-us", s.bwe_queue_delay_us)
        .field("bwe-delivery-rate", s.bwe_delivery_rate_bps)
        .field("bwe-link-rate", s.bwe_link_rate_bps)
        .field("bwe-loss", s.bwe_loss)
        .field("bwe-large-drops", s.bwe_large_drops)
        // Audio.
        .field("audio-packets-sent", s.audio_packets_sent)
        .field("audio-parity-sent", s.audio_parity_sent)
        .field(
            "audio-packets-dropped-no-peer",
            s.audio_packets_dropped_no_peer,
        )
        .field("audio-fec-percent", s.audio_fec_percent)
        .field("audio-packets-received", s.audio_packets_received)
        .field("audio-packets-recovered", s.audio_packets_recovered)
        .field("audio-packets-lost", s.audio_packets_lost)
        .field("audio-packets-late", s.audio_packets_late)
        .field("audio-datagrams-dropped", s.audio_datagrams_dropped)
        .field("audio-events-dropped", s.audio_events_dropped)
        .field("clients", s.clients)
        .field("clients-refused", s.clients_refused)
        .field("input-dropped-watching", s.input_dropped_watching)
        .field("frames-skipped-slow", s.frames_skipped_slow)
        .build();
    // Frame timing.
    crate::element::capture_time::add_timing_fields(&mut st, s);
    st
}

/// Name of one client's structure in the `clients` list of a host with several clients.
pub(crate) const CLIENT_STATS_NAME: &str = "punktfunk-client";

/// The `stats` structure of a running session: on a host with `max-clients` above 1, the
/// totals over all clients plus `client-list`, one `punktfunk-client` structure per connected
/// client (its own counters, with `id`, `address`, `controls-input` and `input-dropped`).
pub(crate) fn session_stats(session: &Session, bound_port: u32) -> gst::Structure {
    let mut st = stats_structure(&session.stats(), bound_port);
    if session.config().max_clients > 1 {
        let list = session.peers().into_iter().map(|p| {
            let mut c = stats_structure(&p.stats, bound_port);
            c.set_name(CLIENT_STATS_NAME);
            c.set("id", p.id.0);
            c.set("address", p.addr.to_string());
            c.set("controls-input", p.controls_input);
            c.set("input-dropped", p.input_dropped);
            c.set("frames-skipped", p.frames_skipped);
            c.to_send_value()
        });
        st.set("client-list", gst::Array::from_values(list));
    }
    st
}

/// When the next `punktfunk-stats` message is due. The thread that polls the session (the
/// sink's receive thread, the src's streaming thread) asks [`StatsTicker::wait`] how long it may
/// block, then [`StatsTicker::due`] whether to post. `stats-interval` may change at any time;
/// 0 switches the messages off.
#[derive(Debug, Default)]
pub(crate) struct StatsTicker {
    next: Option<Instant>,
}

impl StatsTicker {
    /// How long the caller may block before the next message is due: at most `slice`.
    pub(crate) fn wait(&mut self, now: Instant, interval_ms: u32, slice: Duration) -> Duration {
        if interval_ms == 0 {
            self.next = None;
            return slice;
        }
        let next = *self
            .next
            .get_or_insert(now + Duration::from_millis(interval_ms.into()));
        slice.min(next.saturating_duration_since(now))
    }

    /// Whether a message is due at `now`; if so, schedules the next one. After a stall longer
    /// than the interval the next one is an interval from now, not a burst of missed ones.
    pub(crate) fn due(&mut self, now: Instant, interval_ms: u32) -> bool {
        if interval_ms == 0 {
            self.next = None;
            return false;
        }
        let interval = Duration::from_millis(interval_ms.into());
        let next = *self.next.get_or_insert(now + interval);
        if now < next {
            return false;
        }
        let mut following = next + interval;
        if following <= now {
            following = now + interval;
        }
        self.next = Some(following);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: Duration = Duration::from_millis(100);

    #[test]
    fn ticker_posts_once_per_interval_and_never_catches_up() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut t = StatsTicker::default();
        assert_eq!(t.wait(t0, 0, SLICE), SLICE);
        assert!(!t.due(t0, 0));
        // The first message is one interval after the messages were switched on.
        assert_eq!(t.wait(t0, 250, SLICE), SLICE);
        assert_eq!(t.wait(ms(200), 250, SLICE), Duration::from_millis(50));
        assert!(!t.due(ms(249), 250));
        assert!(t.due(ms(250), 250));
        assert!(!t.due(ms(250), 250));
        assert!(t.due(ms(500), 250));
        // A stall of several intervals gives one message, then the rhythm resumes from then.
        assert!(t.due(ms(2000), 250));
        assert!(!t.due(ms(2100), 250));
        assert!(t.due(ms(2250), 250));
        // Off again: nothing is due, and the schedule restarts when switched on.
        assert!(!t.due(ms(3000), 0));
        assert!(!t.due(ms(3000), 250));
        assert!(t.due(ms(3250), 250));
    }
}
