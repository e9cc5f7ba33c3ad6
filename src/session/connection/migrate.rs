//! Path validation in the session: a listener's peer address moves only after a challenge to
//! the new address is answered from it, and moves back when the old address proves the move
//! spurious (`protocol::security::path`); a caller never moves at all.
//!
//! The listener's [`crate::protocol::security::path::Path`] sees every authenticated datagram (after the
//! replay window committed it) and the authenticated duplicates that can reveal a forwarder;
//! only the newest packet number from a new address starts a probe. Challenges go out from the
//! timers and right after the datagram that started a probe, within the anti-amplification
//! budget (3× the bytes received from that address). Media and control keep going to the
//! validated address meanwhile; NAT rebinding is followed once the client answers from its new
//! address.
//!
//! A caller keeps the listener address it was configured with: it answers a challenge only
//! when it comes from there, and answers there. So a forwarder that relays the host's
//! challenges gets no answer to relay back, and cannot lead the caller away either.
//!
//! Must never: move `Link::peer` except through a validated path response or a revert to the
//! previous validated address, move a caller's peer, or send more to an unvalidated address
//! than the budget allows.

use std::net::SocketAddr;
use std::time::Instant;

use crate::protocol::security::path::{PATH_BODY_LEN, PathChange, PathFrame};
use crate::protocol::wire::{HEADER_LEN, Kind};

use super::Connection;

/// Whether a control body is a path frame (types 8 and 9), read before `Control::decode`.
pub(super) fn is_path_body(body: &[u8]) -> bool {
    matches!(
        body.first(),
        Some(&crate::protocol::security::path::CONTROL_PATH_CHALLENGE)
            | Some(&crate::protocol::security::path::CONTROL_PATH_RESPONSE)
    )
}

impl Connection {
    /// A path frame came, authenticated, from `from`.
    pub(super) fn on_path_frame(&mut self, body: &[u8], from: SocketAddr, now: Instant) {
        let Ok(frame) = PathFrame::decode(body) else {
            self.stats.invalid_datagrams += 1;
            return;
        };
        let Some(l) = self.link.as_mut() else {
            return;
        };
        match frame {
            PathFrame::Challenge(_) => {
                // A listener answers where the challenge came from (the address being
                // validated); a caller only answers its listener, at its address.
                let to = if l.follows_peer() { from } else { l.peer };
                if to != from {
                    self.stats.path_challenges_ignored += 1;
                } else if let Some(answer) = frame.answer() {
                    self.send_path_frame(&answer, to);
                }
            }
            PathFrame::Response(token) => {
                if l.follows_peer() {
                    l.path.on_path_response(from, &token, now);
                    l.peer = l.path.current();
                }
            }
        }
        self.drive_path(now);
    }

    /// Counts what the last datagrams did to the path.
    pub(super) fn note_path_change(&mut self) {
        let Some(change) = self.link.as_mut().and_then(|l| l.path.take_change()) else {
            return;
        };
        match change {
            PathChange::Migrated => self.stats.path_migrations += 1,
            PathChange::ForwardingDetected => self.stats.path_forwarding_detected += 1,
            PathChange::Reverted => self.stats.path_reverts += 1,
        }
    }

    /// Sends a due challenge to the address being probed, if the budget allows.
    pub(super) fn drive_path(&mut self, now: Instant) {
        self.note_path_change();
        let Some(l) = self.link.as_mut() else {
            return;
        };
        let sealed_len = HEADER_LEN + PATH_BODY_LEN + l.seal.tag_len();
        if let Some((to, frame)) = l.path.poll_challenge(now, sealed_len) {
            l.path.on_sent(to, sealed_len);
            self.stats.path_challenges_sent += 1;
            self.send_path_frame(&frame, to);
        }
    }

    fn send_path_frame(&mut self, frame: &PathFrame, to: SocketAddr) {
        let Some(l) = self.link.as_mut() else {
            return;
        };
        match l.seal_datagram(Kind::Control, &frame.encode()) {
            Some(d) => self.queue(d, to),
            None => self.stats.seal_failures += 1,
        }
    }
}
