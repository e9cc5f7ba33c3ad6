//! The host's counters over all its clients: the sum of every connection's counters (also of
//! connections renewed after a disconnect), the host's own (refusals, input dropped from
//! watchers, keyframe requests coalesced across clients) and a few gauges taken from the
//! clients (the longest RTT, the highest FEC share, the slowest client's estimate).
//!
//! Must never count anything itself: it reads what the connections and [`super::Peers`]
//! counted.

use crate::session::Stats;

use super::Peers;

/// Adds every counter of `b` to `a` (gauges and state are left alone).
fn add_counters(a: &mut Stats, b: &Stats) {
    macro_rules! sum {
        ($($f:ident)*) => { $( a.$f += b.$f; )* };
    }
    sum!(packets_sent bytes_sent packets_received bytes_received send_drops send_errors
        frames_sent keyframes_sent payload_bytes_sent frames_dropped_no_peer frames_received
        frames_lost fec_recovered packets_lost packets_lost_before shards_duplicate shards_late
        shards_invalid peer_packets_received peer_packets_lost peer_frames_lost
        replays_rejected auth_failures invalid_datagrams unknown_session handshakes_sent
        handshakes_completed handshake_failures rejects_received resets_received byes_received
        keyframe_requests input_sent input_received input_dropped cookies_sent hellos_dropped
        hellos_stale guesses_refused confirmations_failed cookie_replies_received
        rejects_ignored resets_ignored path_challenges_sent path_migrations
        path_forwarding_detected path_reverts path_challenges_ignored media_stalls
        media_stall_reconnects peer_probes peers_refused peers_replaced
        keyframe_requests_throttled keyframe_requests_coalesced input_throttled seal_failures
        data_shards_sent parity_shards_sent repair_requests repair_refused repair_shards
        repair_bytes frames_repaired frames_deadline_lost repair_spurious shards_reordered
        loss_models feedback_messages bwe_large_drops audio_packets_sent audio_parity_sent
        audio_packets_dropped_no_peer audio_packets_received audio_packets_recovered
        audio_packets_lost audio_packets_late audio_datagrams_dropped audio_events_dropped);
    if b.last_send_error.is_some() {
        a.last_send_error.clone_from(&b.last_send_error);
    }
}

impl Peers {
    /// Keeps the counters of a connection that is being renewed.
    pub(super) fn retire_counters(&mut self, s: &Stats) {
        add_counters(&mut self.retired, s);
    }

    /// The totals over all clients (see the module docs).
    pub(super) fn totals(&self) -> Stats {
        let mut t = self.retired.clone();
        t.role = Some(self.cfg.role);
        let mut slowest: Option<Stats> = None;
        for s in &self.slots {
            let c = s.conn.stats();
            add_counters(&mut t, &c);
            t.rtt_us = t.rtt_us.max(c.rtt_us);
            t.fec_percent = t.fec_percent.max(c.fec_percent);
            t.audio_fec_percent = t.audio_fec_percent.max(c.audio_fec_percent);
            if c.connected {
                t.connected = true;
                t.clients += 1;
                t.peer = t.peer.or(c.peer);
                t.session_id = if t.session_id == 0 {
                    c.session_id
                } else {
                    t.session_id
                };
                if c.bwe_state.is_some()
                    && slowest
                        .as_ref()
                        .is_none_or(|w| c.bwe_target_bitrate_bps < w.bwe_target_bitrate_bps)
                {
                    slowest = Some(c);
                }
            }
        }
        if let Some(w) = slowest {
            t.bwe_state = w.bwe_state;
            t.bwe_estimate_bps = w.bwe_estimate_bps;
            t.bwe_target_bitrate_bps = w.bwe_target_bitrate_bps;
            t.bwe_pacing_rate_bps = w.bwe_pacing_rate_bps;
            t.bwe_queue_delay_us = w.bwe_queue_delay_us;
            t.bwe_delivery_rate_bps = w.bwe_delivery_rate_bps;
            t.bwe_link_rate_bps = w.bwe_link_rate_bps;
            t.bwe_loss = w.bwe_loss;
        }
        t.clients_refused += self.counters.clients_refused;
        t.input_dropped_watching += self.counters.input_dropped_watching;
        t.keyframe_requests_coalesced += self.counters.keyframe_requests_coalesced;
        t.keyframe_requests_throttled += self.counters.keyframe_requests_throttled;
        t.frames_skipped_slow += self.counters.frames_skipped_slow;
        t
    }
}
