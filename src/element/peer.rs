//! What both elements say about their peer: `punktfunk-peer-connected` /
//! `punktfunk-peer-disconnected` / `punktfunk-peer-refused` / `punktfunk-peer-replaced` /
//! `punktfunk-media-stalled` element messages, handshakes refused (a warning, rate-limited),
//! a listener that refused ours (an error or a warning that says what to change) and a caller
//! that got no answer.
//!
//! Owns: [`PeerEvents`], the one place session events about the peer become bus messages.
//! Must never: flood the bus (a caller with a wrong passphrase retries every 200 ms: the same
//! refusal is posted at most once per [`HANDSHAKE_WARNING_INTERVAL`]), or decide what an element
//! does next — it reports a [`PeerChange`] and the element reacts (ask for a keyframe, mark a
//! discontinuity, stop streaming).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::protocol::wire::RejectReason;
use crate::session::{DisconnectReason, Event, HandshakeFailure};

use super::settings::CommonSettings;

/// Name of the element message posted when a session with a peer comes up.
pub(crate) const PEER_CONNECTED_NAME: &str = "punktfunk-peer-connected";
/// Name of the element message posted when the peer goes away.
pub(crate) const PEER_DISCONNECTED_NAME: &str = "punktfunk-peer-disconnected";
/// Listener: a newcomer was refused because the current peer still answers (field `peer`).
pub(crate) const PEER_REFUSED_NAME: &str = "punktfunk-peer-refused";
/// Listener: a newcomer replaced the current peer (fields `old-peer`, `peer`).
pub(crate) const PEER_REPLACED_NAME: &str = "punktfunk-peer-replaced";
/// Client: keep-alives flow but video stopped while the host reports sending (field `frames`).
pub(crate) const MEDIA_STALLED_NAME: &str = "punktfunk-media-stalled";

/// The same handshake failure from the same address is posted as a warning at most this often
/// (a caller with a wrong passphrase retries every 200 ms).
pub(crate) const HANDSHAKE_WARNING_INTERVAL: Duration = Duration::from_secs(5);

/// What a peer event means for the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerChange {
    /// A session with a peer is up (first, or after a restart of either side).
    Up,
    /// The peer is gone.
    Down,
    /// Reported; nothing changes.
    Unchanged,
    /// The peer refused us for a reason retrying cannot fix; an error has been posted.
    Fatal,
}

/// Human name of a disconnect reason (field `reason` of `punktfunk-peer-disconnected`).
pub(crate) fn disconnect_reason(r: DisconnectReason) -> &'static str {
    match r {
        DisconnectReason::Timeout => "timeout",
        DisconnectReason::Bye => "bye",
        DisconnectReason::Replaced => "replaced",
        DisconnectReason::MediaStalled => "media-stalled",
    }
}

/// Posts `s` as an element message of `element`.
pub(crate) fn post_element_message(element: &gst::Element, s: gst::Structure) {
    // Fails only without a bus (an element outside any pipeline): nobody to tell.
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// What the thread that polls a session keeps to report peer events: where it calls and its
/// timeout (for the no-answer warning) and the last handshake warning (for the rate limit).
#[derive(Debug)]
pub(crate) struct PeerEvents {
    cat: gst::DebugCategory,
    target: String,
    timeout_ms: u32,
    last_warning: Option<(Instant, SocketAddr, String)>,
}

impl PeerEvents {
    /// For a session started with `settings`, logging to `cat`.
    pub(crate) fn new(cat: gst::DebugCategory, settings: &CommonSettings) -> Self {
        PeerEvents {
            cat,
            target: settings.display_target(),
            timeout_ms: settings.timeout_ms,
            last_warning: None,
        }
    }

    /// Reports `ev` on `element`'s bus if it is about the peer; hands any other event back.
    pub(crate) fn handle(
        &mut self,
        element: &gst::Element,
        ev: Event,
    ) -> Result<PeerChange, Event> {
        let cat = self.cat;
        match ev {
            Event::Connected { peer, session_id } => {
                gst::info!(
                    cat,
                    obj = element,
                    "peer {peer} connected (session {session_id:08x})"
                );
                post_element_message(
                    element,
                    gst::Structure::builder(PEER_CONNECTED_NAME)
                        .field("peer", peer.to_string())
                        .field("session-id", session_id)
                        .build(),
                );
                Ok(PeerChange::Up)
            }
            Event::Disconnected { reason } => {
                let reason = disconnect_reason(reason);
                gst::info!(cat, obj = element, "peer gone ({reason})");
                post_element_message(
                    element,
                    gst::Structure::builder(PEER_DISCONNECTED_NAME)
                        .field("reason", reason)
                        .build(),
                );
                Ok(PeerChange::Down)
            }
            Event::HandshakeFailed { from, reason } => {
                self.handshake_failed(element, from, reason, Instant::now());
                Ok(PeerChange::Unchanged)
            }
            Event::PeerRefused { from } => {
                post_element_message(
                    element,
                    gst::Structure::builder(PEER_REFUSED_NAME)
                        .field("peer", from.to_string())
                        .build(),
                );
                let reason = HandshakeFailure::Refused(RejectReason::Busy);
                self.handshake_failed(element, from, reason, Instant::now());
                Ok(PeerChange::Unchanged)
            }
            Event::PeerReplaced { old, new } => {
                gst::info!(cat, obj = element, "peer {old} replaced by {new}");
                post_element_message(
                    element,
                    gst::Structure::builder(PEER_REPLACED_NAME)
                        .field("old-peer", old.to_string())
                        .field("peer", new.to_string())
                        .build(),
                );
                Ok(PeerChange::Unchanged)
            }
            Event::MediaStalled { frames } => {
                gst::element_warning!(
                    element,
                    gst::ResourceError::Read,
                    (
                        "No video from {} although it reports {frames} frames sent since the last; asked for a keyframe, reconnecting if it lasts",
                        self.target
                    )
                );
                post_element_message(
                    element,
                    gst::Structure::builder(MEDIA_STALLED_NAME)
                        .field("frames", frames)
                        .build(),
                );
                Ok(PeerChange::Unchanged)
            }
            Event::Rejected { reason } => Ok(rejected_once(element, reason)),
            Event::RejectSustained { reason, count } => Ok(rejected(element, reason, count)),
            Event::ConnectTimeout => {
                gst::element_warning!(
                    element,
                    gst::ResourceError::NotFound,
                    (
                        "No answer from {} after {} ms (is the peer running?); still trying",
                        self.target,
                        self.timeout_ms
                    )
                );
                Ok(PeerChange::Unchanged)
            }
            other => Err(other),
        }
    }

    /// A listener refused a caller's handshake: a warning, unless the same refusal from the same
    /// address was posted less than [`HANDSHAKE_WARNING_INTERVAL`] ago.
    fn handshake_failed(
        &mut self,
        element: &gst::Element,
        from: SocketAddr,
        reason: HandshakeFailure,
        now: Instant,
    ) {
        // The typed reason words itself from the listener's side.
        let reason = reason.to_string();
        gst::info!(
            self.cat,
            obj = element,
            "handshake from {from} refused: {reason}"
        );
        let repeat = self.last_warning.as_ref().is_some_and(|(t, a, r)| {
            *a == from && *r == reason && now.duration_since(*t) < HANDSHAKE_WARNING_INTERVAL
        });
        if repeat {
            return;
        }
        gst::element_warning!(
            element,
            gst::ResourceError::NotAuthorized,
            ("Refused a connection from {from}: {reason}")
        );
        self.last_warning = Some((now, from, reason));
    }
}

/// One refusal of our hello (a Reject, or a failed key confirmation). Unauthenticated (anyone
/// who saw the hello could send it), so only a warning: the session keeps trying, and an error
/// follows only from [`rejected`] after a sustained series.
fn rejected_once(element: &gst::Element, reason: RejectReason) -> PeerChange {
    let describe = reason.describe();
    gst::element_warning!(
        element,
        gst::ResourceError::NotAuthorized,
        ("{describe}; still trying")
    );
    PeerChange::Unchanged
}

/// The listener kept refusing our hellos for the same reason (`count` times over at least
/// [`crate::session::REJECT_SERIES_SPAN`]): an error when only a change of settings helps, else
/// a warning (the session keeps trying).
fn rejected(element: &gst::Element, reason: RejectReason, count: u32) -> PeerChange {
    let _ = count;
    let describe = reason.describe();
    match reason {
        RejectReason::BadPassphrase | RejectReason::PassphraseMismatch => {
            gst::element_error!(
                element,
                gst::ResourceError::NotAuthorized,
                ("{describe} (check the passphrase on both ends)")
            );
            PeerChange::Fatal
        }
        RejectReason::EncryptMismatch => {
            gst::element_error!(
                element,
                gst::ResourceError::Settings,
                ("{describe} (set the same encrypt value on both ends)")
            );
            PeerChange::Fatal
        }
        RejectReason::RoleMismatch | RejectReason::Busy => {
            gst::element_warning!(
                element,
                gst::ResourceError::Busy,
                ("{describe}; still trying")
            );
            PeerChange::Unchanged
        }
    }
}
