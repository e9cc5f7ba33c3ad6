//! The audio stream of a session: Opus (or any small packets) beside the video, in the same
//! session (handshake, keys, socket, replay window) with its own sequence space, protection
//! and counters.
//!
//! Host: [`Connection::submit_audio`] numbers a packet, seals it and queues it at once: audio
//! never enters the video's pacing plan, so it leaves ahead of the rest of a frame being paced,
//! and nothing throttles or drops it to make room for video. Every block of packets is followed
//! by its parity, as many as the video's loss model plans for a block of that size (see
//! [`crate::protocol::audio`]). [`Connection::set_audio_info`] announces the stream; the info
//! is resent until the client acknowledges it, in every session.
//!
//! Client: audio bodies go to the [`AudioReceiver`]; packets come out in sequence order as
//! [`Event::Audio`], packets given up as [`Event::AudioLost`], both on their own queue
//! ([`Connection::poll_audio_event`]) so a thread that waits for audio never takes video
//! events and the other way round; [`Event::AudioInfo`] comes on both queues.
//!
//! Must never: hold video back for audio or audio for video, allocate towards a sequence number
//! a peer made up, or deliver a packet twice.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::audio::{
    AudioBody, AudioOutput, AudioReceiver, AudioSender, MAX_AUDIO_CAPS, MAX_AUDIO_PAYLOAD,
};
use crate::protocol::security::handshake::Role;
use crate::protocol::wire::Kind;

use super::{Connection, Error, Event, Result, Stats};

/// The audio info is sent again this often until the client acknowledges it.
const AUDIO_INFO_RESEND: Duration = Duration::from_millis(50);

/// Audio events held for a user who does not poll them (about 2.5 s of 5 ms packets); older
/// ones are dropped first and counted.
pub const MAX_AUDIO_EVENTS: usize = 512;

/// The audio half of a connection (both roles; each uses its part).
pub(super) struct AudioState {
    sender: AudioSender,
    receiver: AudioReceiver,
    /// The session the sequence spaces belong to (0 = none yet).
    session_id: u32,
    /// Host: the announced caps and their generation.
    info: Option<(u32, String)>,
    /// Host: the generation the client acknowledged in this session.
    info_acked: u32,
    /// Host: when the unacknowledged info goes again.
    info_resend_at: Option<Instant>,
    /// Client: the generation handed out in this session.
    info_seen: u32,
    events: VecDeque<Event>,
    bodies: Vec<Vec<u8>>,
    parity_sent: u64,
    /// Host: bytes of the audio datagrams sent since the last video frame left (congestion
    /// control counts them with that frame).
    wire_bytes_since_frame: u64,
}

impl AudioState {
    /// Host: the audio bytes sent since the last call (the congestion controller adds them to
    /// the frame that leaves now).
    pub(super) fn take_wire_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.wire_bytes_since_frame)
    }

    pub(super) fn new() -> AudioState {
        AudioState {
            sender: AudioSender::new(),
            receiver: AudioReceiver::new(),
            session_id: 0,
            info: None,
            info_acked: 0,
            info_resend_at: None,
            info_seen: 0,
            events: VecDeque::new(),
            bodies: Vec::new(),
            parity_sent: 0,
            wire_bytes_since_frame: 0,
        }
    }
}

impl Connection {
    /// Host: sends one audio packet (`data`, 1..=[`MAX_AUDIO_PAYLOAD`] bytes, captured at
    /// `capture_us` in the host clock, lasting `duration_us`) at once, with the parity of its
    /// block when it completes one. Without a client the packet is dropped and counted.
    /// `Err(InvalidArg)` on a client or for an empty or oversized packet, `Err(Closed)` after
    /// [`Connection::close`].
    pub fn submit_audio(
        &mut self,
        now: Instant,
        data: &[u8],
        capture_us: u64,
        duration_us: u32,
    ) -> Result<()> {
        self.require_host("submit_audio is for the host")?;
        if self.closed {
            return Err(Error::Closed);
        }
        if data.is_empty() || data.len() > MAX_AUDIO_PAYLOAD {
            return Err(Error::InvalidArg("audio packet must be 1 to 1500 bytes"));
        }
        if self.link.is_none() {
            self.stats.audio_packets_dropped_no_peer += 1;
            return Ok(());
        }
        self.audio_follow_session();
        self.audio_send_info_due(now);
        let Some(host) = self.side.host() else {
            return Err(Error::InvalidArg("submit_audio is for the host"));
        };
        let plan = host.fec.parity_table();
        let mut bodies = std::mem::take(&mut self.audio.bodies);
        bodies.clear();
        let before = self.audio.sender.parity_sent();
        self.audio.sender.push(
            capture_us,
            duration_us,
            data,
            |k| plan.parity(k),
            &mut bodies,
        );
        self.audio.parity_sent += self.audio.sender.parity_sent() - before;
        self.stats.audio_packets_sent += 1;
        for b in &bodies {
            self.audio_seal(b);
        }
        self.audio.bodies = bodies;
        Ok(())
    }

    /// Host: announces (or changes) the audio stream's caps, e.g.
    /// `audio/x-opus, rate=48000, channels=2`. Sent reliably to the client now and to every
    /// client that connects later ([`Event::AudioInfo`] there).
    pub fn set_audio_info(&mut self, now: Instant, caps: &str) -> Result<()> {
        self.require_host("set_audio_info is for the host")?;
        if caps.is_empty() || caps.len() > MAX_AUDIO_CAPS {
            return Err(Error::InvalidArg("audio caps must be 1 to 1024 bytes"));
        }
        if self.audio.info.as_ref().is_some_and(|(_, c)| c == caps) {
            return Ok(());
        }
        let generation = self.audio.info.as_ref().map_or(0, |(g, _)| *g) + 1;
        self.audio.info = Some((generation, caps.to_owned()));
        self.audio.info_resend_at = Some(now);
        if self.link.is_some() {
            self.audio_follow_session();
            self.audio_send_info_due(now);
        }
        Ok(())
    }

    /// The next audio event ([`Event::Audio`], [`Event::AudioLost`]), if any. Call it until
    /// `None` after every call that handles datagrams or timeouts, like
    /// [`Connection::poll_event`].
    pub fn poll_audio_event(&mut self) -> Option<Event> {
        self.audio.events.pop_front()
    }

    /// An authenticated audio datagram's body.
    pub(super) fn on_audio(&mut self, body: &[u8], now: Instant) {
        let Ok(b) = AudioBody::decode(body) else {
            self.stats.audio_datagrams_dropped += 1;
            return;
        };
        self.audio_follow_session();
        match (b, self.cfg.role) {
            (b @ AudioBody::Shard { .. }, Role::Client) => {
                if self.audio.receiver.push(&b, now).is_err() {
                    self.stats.audio_datagrams_dropped += 1;
                }
                self.audio_drain();
            }
            (AudioBody::Info { generation, caps }, Role::Client) => {
                self.audio_send(&AudioBody::InfoAck { generation });
                if generation > self.audio.info_seen {
                    self.audio.info_seen = generation;
                    // On both queues: a client whose video thread is held downstream (a sink
                    // prerolling) still learns of the audio on its audio thread.
                    self.audio.events.push_back(Event::AudioInfo(caps.clone()));
                    self.events.push_back(Event::AudioInfo(caps));
                }
            }
            (AudioBody::InfoAck { generation }, Role::Host) => {
                self.audio.info_acked = self.audio.info_acked.max(generation);
            }
            _ => self.stats.audio_datagrams_dropped += 1,
        }
    }

    /// When the audio stream needs [`Connection::handle_timeout`]: the client's deadline for
    /// a missing packet, the host's resend of unacknowledged info.
    pub(super) fn audio_timeout(&self) -> Option<Instant> {
        self.link.as_ref()?;
        match self.cfg.role {
            Role::Client => self.audio.receiver.next_timeout(),
            Role::Host => {
                // A new session gets the info at once, without waiting for its first audio.
                let new_session = self
                    .link
                    .as_ref()
                    .is_some_and(|l| l.session_id != self.audio.session_id);
                let due = self.audio.info.is_some() && (new_session || self.audio_info_pending());
                let at = match self.audio.info_resend_at {
                    Some(t) if !new_session => t,
                    _ => self.epoch,
                };
                due.then_some(at)
            }
        }
    }

    pub(super) fn audio_on_timeout(&mut self, now: Instant) {
        if self.link.is_none() {
            return;
        }
        match self.cfg.role {
            Role::Client => {
                self.audio.receiver.handle_timeout(now);
                self.audio_drain();
            }
            Role::Host => {
                self.audio_follow_session();
                self.audio_send_info_due(now);
            }
        }
    }

    /// Fills the audio counters of `s`.
    pub(super) fn audio_stats(&self, s: &mut Stats) {
        let r = self.audio.receiver.stats();
        s.audio_packets_received = r.received;
        s.audio_packets_recovered = r.recovered;
        s.audio_packets_lost = r.lost;
        s.audio_packets_late = r.late;
        s.audio_parity_sent = self.audio.parity_sent;
        if self.side.host().is_some() {
            let (k, m) = (
                self.audio.sender.block_data(),
                self.audio.sender.block_parity(),
            );
            s.audio_fec_percent = (m * 100 / k) as u32;
        }
    }

    fn audio_info_pending(&self) -> bool {
        self.audio
            .info
            .as_ref()
            .is_some_and(|(g, _)| *g > self.audio.info_acked)
    }

    /// A new session starts the audio sequence spaces (and the info handshake) again.
    fn audio_follow_session(&mut self) {
        let Some(id) = self.link.as_ref().map(|l| l.session_id) else {
            return;
        };
        if id == self.audio.session_id {
            return;
        }
        self.audio.session_id = id;
        self.audio.sender.reset();
        self.audio.receiver.reset();
        self.audio.info_acked = 0;
        self.audio.info_seen = 0;
        self.audio.info_resend_at = None;
    }

    /// Host: sends the audio info if the client has not acknowledged it and it is due.
    fn audio_send_info_due(&mut self, now: Instant) {
        if !self.audio_info_pending() || self.audio.info_resend_at.is_some_and(|t| now < t) {
            return;
        }
        let Some((generation, caps)) = self.audio.info.clone() else {
            return;
        };
        self.audio_send(&AudioBody::Info { generation, caps });
        self.audio.info_resend_at = Some(now + AUDIO_INFO_RESEND);
    }

    fn audio_send(&mut self, body: &AudioBody<'_>) {
        let mut b = Vec::new();
        body.encode(&mut b);
        self.audio_seal(&b);
    }

    fn audio_seal(&mut self, body: &[u8]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let Some(d) = link.seal_datagram(Kind::Audio, body) else {
            self.stats.seal_failures += 1;
            return;
        };
        let to = link.peer;
        self.audio.wire_bytes_since_frame += d.len() as u64;
        self.queue(d, to);
    }

    fn audio_drain(&mut self) {
        while let Some(o) = self.audio.receiver.poll() {
            if self.audio.events.len() >= MAX_AUDIO_EVENTS {
                self.audio.events.pop_front();
                self.stats.audio_events_dropped += 1;
            }
            self.audio.events.push_back(match o {
                AudioOutput::Packet(p) => Event::Audio(p),
                AudioOutput::Lost { count, duration_us } => Event::AudioLost { count, duration_us },
            });
        }
    }
}
