//! Counters of one session, as returned by [`super::Session::stats`]. It owns the `Stats`
//! value and its derived figures; it never counts anything itself (the connection and the
//! driver fill it).

use std::net::SocketAddr;

use crate::protocol::congestion::BweState;
use crate::protocol::media::timing::AgeSummary;
use crate::protocol::security::handshake::Role;

/// Cumulative counters since the session was created (over all peers it had), plus the state
/// of the current connection.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// Host or client (`None` only in a `Stats::default()`).
    pub role: Option<Role>,
    /// Whether a session with a peer is established.
    pub connected: bool,
    /// The current peer, if connected.
    pub peer: Option<SocketAddr>,
    /// The current session's id (0 without one).
    pub session_id: u32,
    /// Smoothed round-trip time in microseconds (0 = not measured yet).
    pub rtt_us: u64,
    /// Current FEC parity share in percent (host).
    pub fec_percent: u8,

    /// Datagrams sent.
    pub packets_sent: u64,
    /// Bytes of the datagrams sent.
    pub bytes_sent: u64,
    /// Datagrams received (every one, also those dropped as unusable).
    pub packets_received: u64,
    /// Bytes of the datagrams received.
    pub bytes_received: u64,
    /// Datagrams not sent because the socket buffer was full.
    pub send_drops: u64,
    /// Sends the kernel refused (unreachable peer, ...).
    pub send_errors: u64,
    /// The last send error, worded by the transport.
    pub last_send_error: Option<String>,

    /// Host: frames sealed and sent.
    pub frames_sent: u64,
    /// Host: keyframes among them.
    pub keyframes_sent: u64,
    /// Host: access-unit bytes sent (before FEC and headers).
    pub payload_bytes_sent: u64,
    /// Host: frames dropped because no client was connected.
    pub frames_dropped_no_peer: u64,
    /// Client: frames delivered whole.
    pub frames_received: u64,
    /// Client: frames given up.
    pub frames_lost: u64,
    /// Data shards rebuilt by FEC (client: own count; host: as reported).
    pub fec_recovered: u64,
    /// Client: datagrams from the host that never arrived.
    pub packets_lost: u64,
    pub(crate) packets_lost_before: u64,
    /// Client: shards received twice.
    pub shards_duplicate: u64,
    /// Client: shards of frames already delivered or given up.
    pub shards_late: u64,
    /// Client: shards the reassembler refused as malformed.
    pub shards_invalid: u64,
    /// Client: reassembly memory in use, in bytes.
    pub memory_in_use: u64,
    /// Client: the peak of reassembly memory, in bytes.
    pub memory_peak: u64,

    /// Host: datagrams the client reports received (its latest loss report).
    pub peer_packets_received: u64,
    /// Host: datagrams the client reports lost.
    pub peer_packets_lost: u64,
    /// Host: frames the client reports given up.
    pub peer_frames_lost: u64,

    /// Datagrams refused by the replay window.
    pub replays_rejected: u64,
    /// Datagrams or hellos that failed authentication.
    pub auth_failures: u64,
    /// Malformed datagrams.
    pub invalid_datagrams: u64,
    /// Datagrams for a session id we do not have.
    pub unknown_session: u64,
    /// Caller: hellos sent.
    pub handshakes_sent: u64,
    /// Sessions established.
    pub handshakes_completed: u64,
    /// Handshakes that failed (refused, unauthenticated, malformed).
    pub handshake_failures: u64,
    /// Caller: Rejects received.
    pub rejects_received: u64,
    /// Resets received and acted on.
    pub resets_received: u64,
    /// Byes received.
    pub byes_received: u64,

    /// Client: keyframe requests sent; host: received.
    pub keyframe_requests: u64,
    /// Client: input events queued.
    pub input_sent: u64,
    /// Host: input events delivered.
    pub input_received: u64,
    /// Client: input events refused for a full queue.
    pub input_dropped: u64,

    /// The socket's send buffer in bytes, as the kernel granted it (driver).
    pub send_buffer: u64,
    /// The socket's receive buffer in bytes, as the kernel granted it (driver).
    pub recv_buffer: u64,
    /// Whether the transport sends with UDP segmentation offload (driver).
    pub gso: bool,

    // Frame timing.
    /// Client: frame age at arrival and its parts (p50/p99, µs) over the frames delivered in
    /// the last second ([`super::FRAME_AGE_SPAN`]) before the newest one; all 0
    /// before the clock offset is known.
    pub frame_age: AgeSummary,
    /// Client: the host's clock minus ours in µs (`None` before the first pong of a session).
    pub clock_offset_us: Option<i64>,
    /// Client: the bound on the offset's error (half the RTT of its exchange), µs.
    pub clock_offset_uncertainty_us: Option<u64>,

    // Security.
    /// Listener: hellos answered with a CookieReply (under load).
    pub cookies_sent: u64,
    /// Listener: hellos dropped by the rate limits.
    pub hellos_dropped: u64,
    /// Listener: hellos refused as stale or replayed.
    pub hellos_stale: u64,
    /// Listener with a passphrase: hellos left unanswered by the guessing budget.
    pub guesses_refused: u64,
    /// Listener: answered hellos whose session was never confirmed (with a passphrase, each a
    /// failed passphrase guess, or loss).
    pub confirmations_failed: u64,
    /// Caller: CookieReplies taken (hello resent with the cookie).
    pub cookie_replies_received: u64,
    /// Caller: Rejects or CookieReplies ignored (wrong address, no live attempt).
    pub rejects_ignored: u64,
    /// Resets ignored: a forged token, or an empty Reset while the peer is still heard.
    pub resets_ignored: u64,
    /// Path validation: challenges sent.
    pub path_challenges_sent: u64,
    /// Times the peer's address moved after validation.
    pub path_migrations: u64,
    /// Listener: an address caught re-sending the peer's datagrams (the same packet number
    /// from two addresses).
    pub path_forwarding_detected: u64,
    /// Listener: moves back to the previous address after a spurious move.
    pub path_reverts: u64,
    /// Caller: path challenges not answered (not from the configured listener address).
    pub path_challenges_ignored: u64,
    /// Client: stalls noticed (keep-alives flow, the host reports frames sent, no video for
    /// `MEDIA_STALL_AFTER`).
    pub media_stalls: u64,
    /// Client: sessions ended for a stall that lasted.
    pub media_stall_reconnects: u64,
    /// Listener: probes of the current peer when a newcomer knocked.
    pub peer_probes: u64,
    /// Listener: newcomers refused (Busy) because the current peer answered.
    pub peers_refused: u64,
    /// Listener: sessions replaced by a newcomer.
    pub peers_replaced: u64,
    /// Host: keyframe requests not acted on (more than one per 100 ms; held ones count here
    /// when they arrive).
    pub keyframe_requests_throttled: u64,
    /// Host: keyframe requests answered by a keyframe already sent after the frame they name,
    /// or already asked of the encoder (copies, requests for the same loss).
    pub keyframe_requests_coalesced: u64,
    /// Host: input events dropped by the flood limits (per datagram, per second).
    pub input_throttled: u64,
    /// Datagrams not sent because sealing failed (a bug; debug builds panic).
    pub seal_failures: u64,

    // Loss resilience.
    /// Host: data datagrams of frames sent (wire overhead = parity + repair).
    pub data_shards_sent: u64,
    /// Host: parity datagrams of frames sent (trailing rows included).
    pub parity_shards_sent: u64,
    /// Client: repair requests sent; host: received (authenticated).
    pub repair_requests: u64,
    /// Host: requests not (fully) served (rate limit, budget, frame not held, rows used up).
    pub repair_refused: u64,
    /// Host: repair datagrams sent; client: repair datagrams used.
    pub repair_shards: u64,
    /// Host: bytes of the repair datagrams sent; client: of those used.
    pub repair_bytes: u64,
    /// Client: frames delivered whole after repair was asked for them.
    pub frames_repaired: u64,
    /// Client: frames given up at their repair deadline.
    pub frames_deadline_lost: u64,
    /// Client: frames asked for because they stalled whose original shards came after the
    /// request (a late sender, not loss); each grows the stall windows.
    pub repair_spurious: u64,
    /// Client: original shards that arrived after a later original of their block (reordered).
    pub shards_reordered: u64,
    /// Client: the reorder window now, in µs: how long a hole may stay open before repair is
    /// asked for it (0 while no reordering is seen).
    pub reorder_window_us: u64,
    /// Loss reports sent (client) or used (host; a report older than the newest used is not).
    pub loss_models: u64,

    // Congestion control.
    /// Client: bandwidth feedback messages sent; host: received.
    pub feedback_messages: u64,
    /// Host: the estimator's state (`None` while it does not run).
    pub bwe_state: Option<BweState>,
    /// Host: what the path carries, wire bits per second (0 = not running).
    pub bwe_estimate_bps: u64,
    /// Host: the encoder's budget, media bits per second.
    pub bwe_target_bitrate_bps: u64,
    /// Host: pacing rate set from the estimate (0 = automatic pacing).
    pub bwe_pacing_rate_bps: u64,
    /// Host: standing queue delay at the bottleneck, µs.
    pub bwe_queue_delay_us: u64,
    /// Host: delivery rate measured by the client, wire bits per second.
    pub bwe_delivery_rate_bps: u64,
    /// Host: the path's rate from how it spread recent frames, wire bits per second (0 = not
    /// known, or the path has room).
    pub bwe_link_rate_bps: u64,
    /// Host: loss fraction over the estimator's window.
    pub bwe_loss: f64,
    /// Host: large drops of the target (each reported once).
    pub bwe_large_drops: u64,

    // Audio (`connection::audio`).
    /// Host: audio packets sent.
    pub audio_packets_sent: u64,
    /// Host: parity packets sent for the audio packets.
    pub audio_parity_sent: u64,
    /// Host: audio packets dropped because no client was connected.
    pub audio_packets_dropped_no_peer: u64,
    /// Host: parity per audio block in percent of its data packets.
    pub audio_fec_percent: u32,
    /// Client: audio packets delivered as received.
    pub audio_packets_received: u64,
    /// Client: audio packets rebuilt from parity.
    pub audio_packets_recovered: u64,
    /// Client: audio packets given up (`Event::AudioLost`, for the decoder to conceal).
    pub audio_packets_lost: u64,
    /// Client: audio shards that came twice or after their packet was delivered or given up.
    pub audio_packets_late: u64,
    /// Audio datagrams refused after authentication: malformed, inconsistent or beyond the
    /// limits (ones that fail to open count in `auth_failures` / `replays_rejected`).
    pub audio_datagrams_dropped: u64,
    /// Client: audio events dropped because nobody polled them
    /// ([`super::connection::MAX_AUDIO_EVENTS`]).
    pub audio_events_dropped: u64,

    // Several clients (`session::peers`).
    /// Host: clients connected now.
    pub clients: u64,
    /// Host: hellos refused because every client slot was taken (Reject(Busy), no crypto).
    pub clients_refused: u64,
    /// Host: input events dropped because their client watches (`InputFrom`).
    pub input_dropped_watching: u64,
    /// Host: frames held back from clients whose estimate was below the bitrate floor (each
    /// client's frames counted).
    pub frames_skipped_slow: u64,
}

impl Stats {
    /// Loss seen on the video path in percent: the client's own count, or on the host what the
    /// client last reported.
    pub fn loss_percent(&self) -> f64 {
        let (rx, lost) = match self.role {
            Some(Role::Host) => (self.peer_packets_received, self.peer_packets_lost),
            _ => (self.packets_received, self.packets_lost),
        };
        if rx + lost == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / (rx + lost) as f64
        }
    }
}
