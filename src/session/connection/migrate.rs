//! Path validation in the session (issue 9, finding 5): the peer's address moves only after a
//! challenge to the new address is answered from it (`protocol::path`).
//!
//! The link's [`crate::protocol::path::Path`] sees every authenticated datagram (after the
//! replay window committed it); only the newest packet number from a new address starts a
//! probe. Challenges go out from the timers and right after the datagram that started a probe,
//! within the anti-amplification budget (3× the bytes received from that address). Media and
//! control keep going to the validated address meanwhile; NAT rebinding is followed once the
//! client answers from its new address.
//!
//! Must never: move `Link::peer` except through a validated path response, or send more to an
//! unvalidated address than the budget allows.

use std::net::SocketAddr;
use std::time::Instant;

use crate::protocol::path::{PATH_BODY_LEN, PathFrame};
use crate::protocol::wire::{HEADER_LEN, Kind};

use super::Connection;

/// Whether a control body is a path frame (types 8 and 9), read before `Control::decode`.
pub(super) fn is_path_body(body: &[u8]) -> bool {
    matches!(
        body.first(),
        Some(&crate::protocol::path::CONTROL_PATH_CHALLENGE)
            | Some(&crate::protocol::path::CONTROL_PATH_RESPONSE)
    )
}

impl Connection {
    /// A path frame came, authenticated, from `from`.
    pub(super) fn on_path_frame(&mut self, body: &[u8], from: SocketAddr, now: Instant) {
        let Ok(frame) = PathFrame::decode(body) else {
            self.stats.invalid_datagrams += 1;
            return;
        };
        match frame {
            PathFrame::Challenge(_) => {
                // Answer where the challenge came from (that is the address being validated).
                if let Some(answer) = frame.answer() {
                    self.send_path_frame(&answer, from);
                }
            }
            PathFrame::Response(token) => {
                if let Some(l) = self.link.as_mut()
                    && l.path.on_path_response(from, &token)
                {
                    l.peer = l.path.current();
                    self.stats.path_migrations += 1;
                }
            }
        }
        self.drive_path(now);
    }

    /// Sends a due challenge to the address being probed, if the budget allows.
    pub(super) fn drive_path(&mut self, now: Instant) {
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
