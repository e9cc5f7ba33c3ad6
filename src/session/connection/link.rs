//! One established cryptographic session with the peer: its keys, packet numbers, replay
//! window, the peer's address and the reception counters behind loss reports.
//!
//! Owns sealing of single datagrams (control, input) and opening of every session datagram.
//! Frames are sealed outside the connection with the shared sealing key (see
//! [`super::FrameTicket`]). Must never open a datagram whose packet number the replay window
//! refuses, nor commit one that failed to authenticate.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::control::StreamInfo;
use crate::protocol::security::crypto::{Aead, AeadBackend, PlainAead};
use crate::protocol::security::handshake::Established;
use crate::protocol::security::path::Path;
use crate::protocol::security::replay::{ReplayError, ReplayWindow};
use crate::protocol::wire::{FLAG_SEALED, HEADER_LEN, Header, Kind};

pub(super) struct Link {
    pub(super) session_id: u32,
    /// Shared with frames being sealed outside the connection.
    pub(super) seal: Arc<dyn Aead>,
    open: Box<dyn Aead>,
    pub(super) next_pn: u64,
    replay: ReplayWindow,
    pub(super) peer: SocketAddr,
    /// Last authenticated datagram from the peer (peer timeout, Reset quiet time).
    pub(super) last_rx: Instant,
    pub(super) encrypt: bool,
    /// Packet numbers seen, for loss accounting (meaningful on the client).
    first_pn: Option<u64>,
    max_pn: u64,
    pub(super) received: u64,
    /// Stream info the peer sent in the handshake, handed out when the session is installed.
    pub(super) peer_info: Option<StreamInfo>,
    // Security.
    /// Secret of this session's reset tokens, and whether we were the caller.
    pub(super) reset_secret: zeroize::Zeroizing<[u8; 32]>,
    pub(super) initiator: bool,
    /// The validated address of the peer and any address being probed (see `migrate`).
    pub(super) path: Path,
}

/// Why a session datagram was not opened.
pub(super) enum OpenError {
    /// Sealed flag disagrees with the session, or too short for a tag.
    Invalid,
    Replay,
    Auth,
}

impl Link {
    pub(super) fn new(e: &Established, peer: SocketAddr, now: Instant, aead: AeadBackend) -> Link {
        let (seal, open): (Arc<dyn Aead>, Box<dyn Aead>) = if e.encrypt {
            (Arc::from(aead.make(&e.send_key)), aead.make(&e.recv_key))
        } else {
            (Arc::new(PlainAead), Box::new(PlainAead))
        };
        Link {
            session_id: e.session_id,
            seal,
            open,
            next_pn: 0,
            replay: ReplayWindow::new(),
            peer,
            last_rx: now,
            encrypt: e.encrypt,
            first_pn: None,
            max_pn: 0,
            received: 0,
            peer_info: e.peer_info.clone(),
            reset_secret: zeroize::Zeroizing::new(e.reset_secret),
            initiator: e.initiator,
            path: Path::new(peer),
        }
    }

    /// Datagrams of the peer that never arrived (gaps in its packet numbers).
    pub(super) fn packets_lost(&self) -> u64 {
        match self.first_pn {
            Some(f) => (self.max_pn - f + 1).saturating_sub(self.received),
            None => 0,
        }
    }

    /// Builds a sealed datagram of `kind` with `body`, taking the next packet number. `None`
    /// if sealing failed (a bug: debug builds panic in the AEAD; the caller counts it).
    pub(super) fn seal_datagram(&mut self, kind: Kind, body: &[u8]) -> Option<Vec<u8>> {
        let pn = self.next_pn;
        self.next_pn += 1;
        let h = Header {
            kind,
            flags: if self.encrypt { FLAG_SEALED } else { 0 },
            session_id: self.session_id,
            packet_number: pn,
        };
        let tag_len = self.seal.tag_len();
        let mut d = Vec::with_capacity(HEADER_LEN + body.len() + tag_len);
        d.extend_from_slice(&h.to_bytes());
        d.extend_from_slice(body);
        d.resize(HEADER_LEN + body.len() + tag_len, 0);
        let (hdr, rest) = d.split_at_mut(HEADER_LEN);
        let (b, tag) = rest.split_at_mut(body.len());
        self.seal.seal(pn, hdr, b, tag).then_some(d)
    }

    /// Checks and opens `buf` (header `h`) in place; on success the datagram counts as
    /// received at `now` from `from` and the body's range in `buf` is returned.
    pub(super) fn open_datagram(
        &mut self,
        h: &Header,
        buf: &mut [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<Range<usize>, OpenError> {
        if h.sealed() != self.encrypt || buf.len() < HEADER_LEN + self.open.tag_len() {
            return Err(OpenError::Invalid);
        }
        // Plausibility first: a replay costs no AEAD work, unless a copy of that number from
        // this address decides whether another address forwards the peer's datagrams
        // (`protocol::security::path`): then it is opened, never committed.
        match self.replay.check(h.packet_number) {
            Ok(()) => {}
            Err(ReplayError::Duplicate)
                if self.follows_peer() && self.path.wants_duplicate(from, now) =>
            {
                if self.open_in_place(h, buf).is_some() {
                    self.path.on_duplicate(from, now);
                    self.peer = self.path.current();
                }
                return Err(OpenError::Replay);
            }
            Err(_) => return Err(OpenError::Replay),
        }
        let body = self.open_in_place(h, buf).ok_or(OpenError::Auth)?;
        self.replay.commit(h.packet_number);
        self.last_rx = now;
        // Authenticated: the peer may have moved (NAT rebinding). Follow it only once the new
        // address answered a challenge (`migrate`); only the newest packet number starts one.
        if self.follows_peer() {
            self.path
                .on_authenticated(from, h.packet_number, buf.len(), now);
            self.peer = self.path.current();
        }
        self.received += 1;
        self.max_pn = self.max_pn.max(h.packet_number);
        if self.first_pn.is_none_or(|f| h.packet_number < f) {
            self.first_pn = Some(h.packet_number);
        }
        Ok(body)
    }

    /// Whether this end follows its peer to a new address: only a listener in a sealed session.
    /// A caller keeps the listener address it was configured with, whatever arrives from
    /// elsewhere (a forwarder could otherwise lead it away).
    pub(super) fn follows_peer(&self) -> bool {
        self.encrypt && !self.initiator
    }

    /// Authenticates and opens `buf` in place; the body's range, or `None` when the tag does
    /// not verify (or the datagram is too short for one). Commits nothing.
    fn open_in_place(&self, h: &Header, buf: &mut [u8]) -> Option<Range<usize>> {
        let tag_len = self.open.tag_len();
        if buf.len() < HEADER_LEN + tag_len {
            return None;
        }
        let body_end = buf.len() - tag_len;
        let (hdr, rest) = buf.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(body_end - HEADER_LEN);
        self.open.open(h.packet_number, hdr, body, tag).ok()?;
        Some(HEADER_LEN..body_end)
    }
}
