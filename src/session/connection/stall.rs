//! The client's media-stall watch: keep-alives flow, the host says it is sending, yet no video
//! arrives (a path that lost only the media, a host that sends elsewhere).
//!
//! The host sends [`Control::SendProgress`] (frames sent in this session) with every
//! keep-alive after which it sent frames. The client remembers the count at the first report after its last video
//! datagram; when a later report, at least [`MEDIA_STALL_AFTER`] on, shows
//! [`MEDIA_STALL_MIN_FRAMES`] more frames sent while still no video came, the stream has
//! stalled: [`Event::MediaStalled`], a counter, a keyframe request and a ping at once; if it
//! lasts [`MEDIA_STALL_RECONNECT`] more, the session is dropped and handshaken again (a new
//! session binds the host to the address the hello came from).
//!
//! Must never: report a stall while video arrives, or when the host sends nothing (a paused
//! pipeline reports an unchanged count), nor more than once per stall.

use std::time::{Duration, Instant};

use crate::protocol::control::Control;

use super::{Connection, DisconnectReason, Event};

/// No video for this long while the host reports frames sent: a stall. With keep-alives every
/// 250 ms it is noticed at most ~0.75 s after the last video datagram.
pub const MEDIA_STALL_AFTER: Duration = Duration::from_millis(500);
/// Frames the host must report sent within the silent span (one could be on its way).
pub const MEDIA_STALL_MIN_FRAMES: u64 = 2;
/// A stall that lasts this long after it was noticed ends the session; the caller handshakes
/// again.
pub const MEDIA_STALL_RECONNECT: Duration = Duration::from_secs(2);

/// What the client keeps to notice a stall.
#[derive(Debug, Default)]
pub(super) struct StallWatch {
    /// When, and with what count, the first progress report since the last video came.
    anchor: Option<(Instant, u64)>,
    /// When the current stall was noticed.
    stalled_at: Option<Instant>,
}

impl Connection {
    /// Client: a video datagram of the session arrived; whatever stalled is moving again.
    pub(super) fn stall_on_video(&mut self) {
        if let Some(c) = self.side.client_mut() {
            c.stall = StallWatch::default();
        }
    }

    /// Client: the host reports `frames_sent` frames sent in this session.
    pub(super) fn on_send_progress(&mut self, frames_sent: u64, now: Instant) {
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let w = &mut c.stall;
        let Some((since, base)) = w.anchor else {
            w.anchor = Some((now, frames_sent));
            return;
        };
        let unseen = frames_sent.saturating_sub(base);
        if unseen < MEDIA_STALL_MIN_FRAMES
            || now.saturating_duration_since(since) < MEDIA_STALL_AFTER
        {
            return;
        }
        match w.stalled_at {
            None => {
                w.stalled_at = Some(now);
                // Unnamed: whatever keyframe the host sent since may be what went missing.
                c.last_keyframe_request = None;
                self.stats.media_stalls += 1;
                self.events
                    .push_back(Event::MediaStalled { frames: unseen });
                // Recovery, cheapest first: a keyframe (the decoder needs one anyway) and a ping
                // that shows whether the host still hears us.
                let _ = self.ask_keyframe(now, true);
                self.send_ping(now);
            }
            Some(at) if now.saturating_duration_since(at) >= MEDIA_STALL_RECONNECT => {
                self.stats.media_stall_reconnects += 1;
                self.send_control(&Control::Bye);
                self.drop_link(DisconnectReason::MediaStalled, now);
                self.start_attempt(now);
            }
            Some(_) => {}
        }
    }
}
