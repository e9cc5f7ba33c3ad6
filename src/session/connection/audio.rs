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
//! The host's half ([`HostAudio`]) lives in the host's state and the client's ([`ClientAudio`])
//! in the client's (`side`), so neither end holds or checks the other's.
//!
//! Must never: hold video back for audio or audio for video, allocate towards a sequence number
//! a peer made up, or deliver a packet twice.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::audio::{
    AudioBody, AudioOutput, AudioReceiver, AudioSender, MAX_AUDIO_CAPS, MAX_AUDIO_PAYLOAD,
};
use crate::protocol::wire::Kind;

use super::{Connection, Error, Event, Result, Side, Stats};

/// The audio info is sent again this often until the client acknowledges it.
const AUDIO_INFO_RESEND: Duration = Duration::from_millis(50);

/// Audio events held for a user who does not poll them (about 2.5 s of 5 ms packets); older
/// ones are dropped first and counted.
pub const MAX_AUDIO_EVENTS: usize = 512;

/// The host's half of the audio stream: numbering and parity, the announced info.
#[derive(Default)]
pub(super) struct HostAudio {
    sender: AudioSender,
    /// The session the sequence space belongs to (0 = none yet).
    session_id: u32,
    /// The announced caps and their generation.
    info: Option<(u32, String)>,
    /// The generation the client acknowledged in this session.
    info_acked: u32,
    /// When the unacknowledged info goes again.
    info_resend_at: Option<Instant>,
    /// Reused buffer for a packet's bodies (the packet and its block's parity).
    bodies: Vec<Vec<u8>>,
    parity_sent: u64,
    /// Bytes of the audio datagrams sent since the last video frame left (congestion control
    /// counts them with that frame).
    wire_bytes_since_frame: u64,
}

impl HostAudio {
    /// The audio bytes sent since the last call (the congestion controller adds them to the
    /// frame that leaves now).
    pub(super) fn take_wire_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.wire_bytes_since_frame)
    }

    /// A new session starts the sequence space and the info handshake again.
    fn follow(&mut self, session_id: u32) {
        if session_id != self.session_id {
            self.session_id = session_id;
            self.sender.reset();
            self.info_acked = 0;
            self.info_resend_at = None;
        }
    }

    fn info_pending(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|(g, _)| *g > self.info_acked)
    }

    /// When the info must go (again) in session `session_id`, if it must.
    fn timeout(&self, session_id: u32, epoch: Instant) -> Option<Instant> {
        // A new session gets the info at once, without waiting for its first audio.
        let new_session = session_id != self.session_id;
        let due = self.info.is_some() && (new_session || self.info_pending());
        let at = match self.info_resend_at {
            Some(t) if !new_session => t,
            _ => epoch,
        };
        due.then_some(at)
    }
}

/// The client's half of the audio stream: reception, the info seen, the audio event queue.
#[derive(Default)]
pub(super) struct ClientAudio {
    receiver: AudioReceiver,
    /// The session the sequence space belongs to (0 = none yet).
    session_id: u32,
    /// The info generation handed out in this session.
    info_seen: u32,
    events: VecDeque<Event>,
}

impl ClientAudio {
    /// A new session starts the sequence space and the info handshake again.
    fn follow(&mut self, session_id: u32) {
        if session_id != self.session_id {
            self.session_id = session_id;
            self.receiver.reset();
            self.info_seen = 0;
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
        let Some(session_id) = self.link.as_ref().map(|l| l.session_id) else {
            self.stats.audio_packets_dropped_no_peer += 1;
            return Ok(());
        };
        self.audio_send_info_due(session_id, now);
        let Side::Host(host) = &mut self.side else {
            return Err(Error::InvalidArg("submit_audio is for the host"));
        };
        let host = &mut **host;
        let plan = host.fec.parity_table();
        let audio = &mut host.audio;
        let mut bodies = std::mem::take(&mut audio.bodies);
        bodies.clear();
        let before = audio.sender.parity_sent();
        audio.sender.push(
            capture_us,
            duration_us,
            data,
            |k| plan.parity(k),
            &mut bodies,
        );
        audio.parity_sent += audio.sender.parity_sent() - before;
        self.stats.audio_packets_sent += 1;
        let wire: u64 = bodies.iter().map(|b| self.audio_seal(b)).sum();
        if let Some(h) = self.side.host_mut() {
            h.audio.wire_bytes_since_frame += wire;
            h.audio.bodies = bodies;
        }
        Ok(())
    }

    /// Host: announces (or changes) the audio stream's caps, e.g.
    /// `audio/x-opus, rate=48000, channels=2`. Sent reliably to the client now and to every
    /// client that connects later ([`Event::AudioInfo`] there).
    pub fn set_audio_info(&mut self, now: Instant, caps: &str) -> Result<()> {
        let session_id = self.link.as_ref().map(|l| l.session_id);
        let audio = &mut self.require_host("set_audio_info is for the host")?.audio;
        if caps.is_empty() || caps.len() > MAX_AUDIO_CAPS {
            return Err(Error::InvalidArg("audio caps must be 1 to 1024 bytes"));
        }
        if audio.info.as_ref().is_some_and(|(_, c)| c == caps) {
            return Ok(());
        }
        let generation = audio.info.as_ref().map_or(0, |(g, _)| *g) + 1;
        audio.info = Some((generation, caps.to_owned()));
        audio.info_resend_at = Some(now);
        if let Some(id) = session_id {
            self.audio_send_info_due(id, now);
        }
        Ok(())
    }

    /// The next audio event ([`Event::Audio`], [`Event::AudioLost`]), if any (a host has
    /// none). Call it until `None` after every call that handles datagrams or timeouts, like
    /// [`Connection::poll_event`].
    pub fn poll_audio_event(&mut self) -> Option<Event> {
        self.side.client_mut()?.audio.events.pop_front()
    }

    /// An authenticated audio datagram's body.
    pub(super) fn on_audio(&mut self, body: &[u8], now: Instant) {
        let Ok(b) = AudioBody::decode(body) else {
            self.stats.audio_datagrams_dropped += 1;
            return;
        };
        let session_id = self.link.as_ref().map_or(0, |l| l.session_id);
        match (b, &mut self.side) {
            (b @ AudioBody::Shard { .. }, Side::Client(c)) => {
                c.audio.follow(session_id);
                if c.audio.receiver.push(&b, now).is_err() {
                    self.stats.audio_datagrams_dropped += 1;
                }
                self.audio_drain();
            }
            (AudioBody::Info { generation, caps }, Side::Client(c)) => {
                c.audio.follow(session_id);
                let new = generation > c.audio.info_seen;
                if new {
                    c.audio.info_seen = generation;
                    // On both queues: a client whose video thread is held downstream (a sink
                    // prerolling) still learns of the audio on its audio thread.
                    c.audio.events.push_back(Event::AudioInfo(caps.clone()));
                }
                self.audio_send(&AudioBody::InfoAck { generation });
                if new {
                    self.events.push_back(Event::AudioInfo(caps));
                }
            }
            (AudioBody::InfoAck { generation }, Side::Host(h)) => {
                h.audio.follow(session_id);
                h.audio.info_acked = h.audio.info_acked.max(generation);
            }
            (_, Side::Client(c)) => {
                c.audio.follow(session_id);
                self.stats.audio_datagrams_dropped += 1;
            }
            (_, Side::Host(h)) => {
                h.audio.follow(session_id);
                self.stats.audio_datagrams_dropped += 1;
            }
        }
    }

    /// When the audio stream needs [`Connection::handle_timeout`]: the client's deadline for
    /// a missing packet, the host's resend of unacknowledged info.
    pub(super) fn audio_timeout(&self) -> Option<Instant> {
        let link = self.link.as_ref()?;
        match &self.side {
            Side::Client(c) => c.audio.receiver.next_timeout(),
            Side::Host(h) => h.audio.timeout(link.session_id, self.epoch),
        }
    }

    pub(super) fn audio_on_timeout(&mut self, now: Instant) {
        let Some(session_id) = self.link.as_ref().map(|l| l.session_id) else {
            return;
        };
        match &mut self.side {
            Side::Client(c) => {
                c.audio.receiver.handle_timeout(now);
                self.audio_drain();
            }
            Side::Host(_) => self.audio_send_info_due(session_id, now),
        }
    }

    /// Fills the audio counters of `s`.
    pub(super) fn audio_stats(&self, s: &mut Stats) {
        match &self.side {
            Side::Client(c) => {
                let r = c.audio.receiver.stats();
                s.audio_packets_received = r.received;
                s.audio_packets_recovered = r.recovered;
                s.audio_packets_lost = r.lost;
                s.audio_packets_late = r.late;
            }
            Side::Host(h) => {
                s.audio_parity_sent = h.audio.parity_sent;
                let (k, m) = (h.audio.sender.block_data(), h.audio.sender.block_parity());
                s.audio_fec_percent = (m * 100 / k) as u32;
            }
        }
    }

    /// Host: follows session `session_id`, and sends the audio info if the client has not
    /// acknowledged it and it is due.
    fn audio_send_info_due(&mut self, session_id: u32, now: Instant) {
        let Some(h) = self.side.host_mut() else {
            return;
        };
        let audio = &mut h.audio;
        audio.follow(session_id);
        if !audio.info_pending() || audio.info_resend_at.is_some_and(|t| now < t) {
            return;
        }
        let Some((generation, caps)) = audio.info.clone() else {
            return;
        };
        audio.info_resend_at = Some(now + AUDIO_INFO_RESEND);
        let wire = self.audio_send(&AudioBody::Info { generation, caps });
        if let Some(h) = self.side.host_mut() {
            h.audio.wire_bytes_since_frame += wire;
        }
    }

    /// Seals and queues one audio body; returns the datagram's bytes (0 when none went).
    fn audio_send(&mut self, body: &AudioBody<'_>) -> u64 {
        let mut b = Vec::new();
        body.encode(&mut b);
        self.audio_seal(&b)
    }

    /// Seals `body` in the current session and queues it; returns the datagram's bytes (0
    /// without a session or when sealing failed).
    fn audio_seal(&mut self, body: &[u8]) -> u64 {
        let Some(link) = self.link.as_mut() else {
            return 0;
        };
        let Some(d) = link.seal_datagram(Kind::Audio, body) else {
            self.stats.seal_failures += 1;
            return 0;
        };
        let (to, len) = (link.peer, d.len() as u64);
        self.queue(d, to);
        len
    }

    /// Client: moves what the receiver has ready onto the audio event queue.
    fn audio_drain(&mut self) {
        let Some(c) = self.side.client_mut() else {
            return;
        };
        while let Some(o) = c.audio.receiver.poll() {
            if c.audio.events.len() >= MAX_AUDIO_EVENTS {
                c.audio.events.pop_front();
                self.stats.audio_events_dropped += 1;
            }
            c.audio.events.push_back(match o {
                AudioOutput::Packet(p) => Event::Audio(p),
                AudioOutput::Lost { count, duration_us } => Event::AudioLost { count, duration_us },
            });
        }
    }
}
