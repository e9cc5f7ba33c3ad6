//! What a host serving several peers on one socket asks of each peer's connection to route a
//! datagram to it (`session::peers`): which session ids and addresses it knows, and whether it
//! is free for a newcomer.
//!
//! Read-only questions plus one constructor that reuses the passphrase key, so a peer slot can
//! be renewed without the key derivation. Must never change a connection's state.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use crate::protocol::security::handshake::Psk;
use crate::protocol::wire::{Kind, RejectReason};

use super::{Config, Connection, Result};

impl Connection {
    /// Whether `session_id` is this connection's current session or one it answered and
    /// waits to see confirmed.
    pub(crate) fn owns_session(&self, session_id: u32) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.session_id == session_id)
            || self.pending.iter().any(|p| p.session_id == session_id)
    }

    /// Whether `addr` is this connection's peer, a peer being probed on its path, or the
    /// source of a handshake it answered (its restarts and duplicate hellos come back here).
    pub(crate) fn knows_address(&self, addr: SocketAddr) -> bool {
        self.link.as_ref().is_some_and(|l| l.peer == addr)
            || self.pending.iter().any(|p| p.peer == addr)
            || self.last_hello.as_ref().is_some_and(|h| h.from == addr)
    }

    /// Whether this connection retired `session_id` (its peer's late datagrams get a Reset
    /// with the token from here).
    pub(crate) fn retired_session(&self, session_id: u32) -> bool {
        !self.reset_body(session_id).is_empty()
    }

    /// A Reject for hello `attempt`: the clear 17 bytes every refusal takes.
    pub(crate) fn reject_datagram(attempt: u32, reason: RejectReason) -> Vec<u8> {
        super::clear_datagram(Kind::Reject, attempt, &[reason as u8])
    }

    /// Whether a handshake is answered and waits for its confirmation.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The passphrase key this connection derived, for [`Connection::new_sharing_key`].
    pub(crate) fn psk(&self) -> Option<Psk> {
        self.hs.psk.clone()
    }

    /// [`Connection::new_at`] with the passphrase key already derived (`psk` from
    /// [`Connection::psk`] of a connection with the same passphrase): no key stretching.
    pub(crate) fn new_sharing_key(
        config: Config,
        now: Instant,
        wall: SystemTime,
        psk: Option<Psk>,
    ) -> Result<Connection> {
        config.validate()?;
        let unkeyed = Config {
            passphrase: None,
            ..config.clone()
        };
        let mut c = Connection::new_at(unkeyed, now, wall)?;
        c.hs.psk = psk;
        c.guard = super::guard::Guard::new(&c.hs, &config, now, wall);
        c.cfg = config;
        Ok(c)
    }
}
