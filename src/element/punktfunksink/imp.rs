//! `punktfunksink` implementation: a `BaseSink` that hands each access unit to a host
//! [`Session`] and runs a receive thread for what the client sends back.
//!
//! Threads: the streaming thread runs `render` (seal + paced send, bounded by the frame
//! interval); the receive thread blocks in [`Session::poll_input`] so keyframe requests and
//! input are handled at once even when no frame flows, and posts the periodic stats. No element
//! mutex is held while either blocks: both work on a clone of the [`Session`].
//!
//! Audio: an `audio` request pad (module `audio`) with its own chain function, run by its own
//! upstream streaming thread; it never waits for the video pad, so an audio-only session (no
//! video linked) streams with the default `async=false`.
//!
//! Latency: `sync=false` and `async=false` by default (set in `constructed`, both still
//! settable). A live network sender sends each access unit the moment it arrives — the receiver
//! has no jitter buffer that a clock wait here could feed — and does not hold state changes on
//! preroll, so a host chain and a client chain can share one pipeline.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::audio::{AudioInput, EosAction, is_audio_request, submit};
use super::clients::{post_client_message, signals};
use super::congestion::{Attach, CongestionControl, Steering, bandwidth_structure};
use super::settings::{self, FEC_MODE_ADAPTIVE_DEPRECATED, FecModeSetting, SinkSettings};
use crate::element::caps::codec_of;
use crate::element::capture_time::capture_timing;
use crate::element::input_message::input_structure;
use crate::element::navigation::input_to_navigation;
use crate::element::peer::{PeerChange, PeerEvents, post_element_message};
use crate::element::properties::Core;
use crate::element::settings::DEFAULT_STATS_INTERVAL_MS;
use crate::element::stats::{StatsTicker, session_stats};
use crate::element::{POLL_SLICE, debug_category, lock};
use crate::protocol::media::annexb::{Codec, ParameterSets};
use crate::session::{self, Event, PeerEvent, Session};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| debug_category("punktfunksink", "punktfunk sender"));

/// The receive thread between `start` and `stop`.
struct Receiver {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What only the streaming thread touches (caps and parameter-set cache).
#[derive(Default)]
struct Stream {
    codec: Option<Codec>,
    params: ParameterSets,
    /// Reused buffer for a keyframe with the cached parameter sets prepended.
    scratch: Vec<u8>,
}

pub(crate) struct PunktfunkSink {
    core: Core<SinkSettings>,
    receiver: Mutex<Option<Receiver>>,
    stream: Mutex<Stream>,
    /// `stats-interval` as the receive thread reads it (changeable while playing).
    stats_interval: Arc<AtomicU32>,
    /// Congestion control: the encoder steered from the receive thread.
    steering: Mutex<Steering>,
    /// The `audio` request pad.
    audio: AudioInput,
}

impl Default for PunktfunkSink {
    fn default() -> Self {
        PunktfunkSink {
            core: Core::new(*CAT),
            receiver: Mutex::new(None),
            stream: Mutex::new(Stream::default()),
            stats_interval: Arc::new(AtomicU32::new(DEFAULT_STATS_INTERVAL_MS)),
            steering: Mutex::new(Steering::new(CongestionControl::None, 0, 0, 0)),
            audio: AudioInput::default(),
        }
    }
}

/// The receive thread: control and input from the client, peer changes, periodic stats.
fn receive_loop(
    element: glib::WeakRef<super::PunktfunkSink>,
    session: Session,
    stop: Arc<AtomicBool>,
    stats_interval: Arc<AtomicU32>,
    mut peer: PeerEvents,
) {
    let mut ticker = StatsTicker::default();
    while !stop.load(Ordering::Acquire) {
        let timeout = ticker.wait(
            Instant::now(),
            stats_interval.load(Ordering::Relaxed),
            POLL_SLICE,
        );
        let polled = session.poll_peer_event(timeout);
        let Some(element) = element.upgrade() else {
            break;
        };
        match polled {
            Ok(Some(ev)) => element.imp().on_event(ev, &session, &mut peer),
            Ok(None) => {}
            Err(session::Error::Closed) => {
                gst::debug!(CAT, obj = element, "session closed, receive thread ends");
                break;
            }
            Err(e) => {
                // Not expected from a bound UDP socket; keep serving but do not spin.
                gst::warning!(CAT, obj = element, "receive error: {e}");
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
        if ticker.due(Instant::now(), stats_interval.load(Ordering::Relaxed)) {
            let port = u32::from(session.local_addr().port());
            let s = session_stats(&session, port);
            post_element_message(element.upcast_ref(), s);
        }
    }
}

impl PunktfunkSink {
    fn request_keyframe_upstream(&self) {
        let ev = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        let pushed = self.obj().sink_pad().push_event(ev);
        gst::debug!(
            CAT,
            imp = self,
            "ForceKeyUnit sent upstream (handled: {pushed})"
        );
    }

    /// The running session, if started.
    pub(super) fn session(&self) -> Option<Session> {
        self.core.slot.session()
    }

    fn on_event(&self, ev: PeerEvent, session: &Session, peer: &mut PeerEvents) {
        let multi = session.config().max_clients > 1;
        if multi {
            post_client_message(self.obj().upcast_ref(), &ev, session.peers().len());
        }
        let client = ev.peer;
        let ev = match peer.handle(self.obj().upcast_ref(), ev.event) {
            Ok(PeerChange::Up) => {
                // A new client cannot decode before the next keyframe: ask for one now. With
                // several clients the peers ask themselves, coalesced across clients.
                if !multi {
                    self.request_keyframe_upstream();
                }
                return;
            }
            Ok(_) => return,
            Err(ev) => ev,
        };
        match ev {
            Event::KeyframeRequest => {
                gst::debug!(CAT, imp = self, "client asks for a keyframe");
                self.request_keyframe_upstream();
            }
            Event::Bandwidth(update) => self.on_bandwidth(&update),
            Event::Input(input) => {
                gst::log!(CAT, imp = self, "input {input:?}");
                let mut s = input_structure(&input);
                if let Some(id) = client.filter(|_| multi) {
                    s.set("client-id", id.0);
                }
                post_element_message(self.obj().upcast_ref(), s);
                if let Some(nav) = input_to_navigation(&input) {
                    let handled = self.obj().sink_pad().push_event(nav);
                    gst::log!(
                        CAT,
                        imp = self,
                        "navigation event upstream (handled: {handled})"
                    );
                }
            }
            other => {
                gst::trace!(CAT, imp = self, "event {other:?}");
            }
        }
    }

    /// A bandwidth update: steer the encoder, tell the application, and ask for a keyframe
    /// when a sharp fall cost the client frames.
    fn on_bandwidth(&self, update: &session::BandwidthUpdate) {
        let (encoder_bps, changed) = lock(&self.steering).on_update(update);
        if changed {
            gst::debug!(
                CAT,
                imp = self,
                "encoder bitrate {encoder_bps} bit/s (estimate {} bit/s, {:?})",
                update.estimate_bps,
                update.state
            );
        }
        post_element_message(
            self.obj().upcast_ref(),
            bandwidth_structure(update, encoder_bps),
        );
        if update.keyframe {
            gst::debug!(CAT, imp = self, "frames lost in a sharp fall: keyframe");
            self.request_keyframe_upstream();
        }
    }

    /// Looks for the encoder to steer (once per start, as soon as the sink pad is linked) and
    /// logs what its rate-control buffer was bounded to.
    fn find_encoder(&self) {
        let pad = self.obj().sink_pad().clone();
        let bounded = lock(&self.steering).find(pad.upcast_ref());
        if let Some(b) = bounded {
            gst::info!(
                CAT,
                imp = self,
                "{}'s {} bounded from {} to {}",
                b.encoder,
                b.property,
                b.before,
                b.after
            );
        }
    }

    /// Finds the encoder to steer (once per start, when caps arrive) and bounds the target.
    fn attach_encoder(&self, session: &Session) {
        self.find_encoder();
        let pad = self.obj().sink_pad().clone();
        let (attach, mode, name) = {
            let mut s = lock(&self.steering);
            let a = s.attach(pad.upcast_ref());
            (a, s.mode(), s.encoder_name())
        };
        let (min, max) = match attach {
            Attach::Nothing => return,
            Attach::Found { min_bps, max_bps } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "congestion control steers {} between {min_bps} and {max_bps} bit/s",
                    name.unwrap_or_default()
                );
                (min_bps, max_bps)
            }
            Attach::NotFound { min_bps, max_bps } => {
                if mode == CongestionControl::Encoder {
                    gst::element_imp_warning!(
                        self,
                        gst::CoreError::Negotiation,
                        ("congestion-control=encoder: no upstream encoder whose bitrate can be set"),
                        [
                            "Only punktfunk-bandwidth messages are posted; set congestion-control=report to silence this, or steer the encoder from those messages"
                        ]
                    );
                }
                (min_bps, max_bps)
            }
        };
        if let Err(e) = session.set_bitrate_bounds(min, max) {
            gst::warning!(CAT, imp = self, "cannot bound the bitrate: {e}");
        }
    }

    /// An Opus packet on the audio pad: to the client at once, with its capture time.
    fn audio_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(session) = self.core.slot.session() else {
            return Err(gst::FlowError::Flushing);
        };
        let (capture_us, duration_us) = self.audio.timing(self.obj().upcast_ref(), &buffer);
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Failed to map buffer"));
            gst::FlowError::Error
        })?;
        if map.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        if let Err(e) = submit(&session, map.as_slice(), capture_us, duration_us) {
            // One packet: the client conceals it. The session counts what it drops.
            gst::warning!(
                CAT,
                imp = self,
                "audio packet of {} bytes not sent: {e}",
                map.len()
            );
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn audio_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => return self.audio_caps(c.caps()),
            gst::EventView::Segment(s) if !self.audio.set_segment(s.segment()) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "The audio pad takes time segments, not {:?}",
                        s.segment().format()
                    )
                );
                return false;
            }
            gst::EventView::FlushStop(_) | gst::EventView::StreamStart(_) => self.audio.restart(),
            gst::EventView::Eos(_) => self.on_eos(false),
            _ => {}
        }
        gst::log!(CAT, obj = pad, "audio event {:?}", event.type_());
        true
    }

    fn audio_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::AcceptCaps(q) = query.view_mut() {
            let caps = q.caps_owned();
            let refused = self.audio.refuse(&caps);
            if let Some(Some(why)) = &refused {
                self.post_audio_refusal(why);
            }
            q.set_result(refused.is_none());
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn post_audio_refusal(&self, why: &str) {
        gst::element_imp_error!(
            self,
            gst::CoreError::Negotiation,
            ("{why}"),
            [
                "punktfunksink's audio pad carries Opus packets: audio/x-opus, rate=48000, channels=1 or 2"
            ]
        );
    }

    /// Caps on the audio pad: refused with a clear error unless Opus, else announced.
    fn audio_caps(&self, caps: &gst::CapsRef) -> bool {
        if let Some(refused) = self.audio.refuse(caps) {
            if let Some(why) = refused {
                self.post_audio_refusal(&why);
            }
            return false;
        }
        let Some(text) = self.audio.set_caps(caps) else {
            return true;
        };
        gst::debug!(CAT, imp = self, "audio caps {text}");
        if let Some(session) = self.core.slot.session()
            && let Err(e) = session.set_audio_info(&text)
        {
            gst::warning!(CAT, imp = self, "cannot announce the audio: {e}");
        }
        true
    }

    /// EOS on the video pad (`video`) or the audio pad: bye once every linked pad is done.
    fn on_eos(&self, video: bool) {
        let video_linked = self.obj().sink_pad().is_linked();
        let action = self.audio.on_eos(video, video_linked);
        if action == EosAction::Wait {
            gst::debug!(
                CAT,
                imp = self,
                "EOS on one pad (video: {video}); the other streams on"
            );
            return;
        }
        if let Some(session) = self.core.slot.session() {
            gst::info!(CAT, imp = self, "EOS: saying bye to the client");
            if let Err(e) = session.close() {
                gst::warning!(CAT, imp = self, "bye failed: {e}");
            }
        }
        if action == EosAction::ByeAndPostEos {
            let obj = self.obj();
            let _ = obj.post_message(gst::message::Eos::builder().src(&*obj).build());
        }
    }

    /// `request_new_pad`: the one audio pad.
    fn request_pad_from(&self, templ: &gst::PadTemplate, name: Option<&str>) -> Option<gst::Pad> {
        if !is_audio_request(templ, name) {
            return None;
        }
        self.request_audio_pad(templ)
    }

    /// `release_pad`.
    fn release_requested_pad(&self, pad: &gst::Pad) {
        self.release_audio_pad(pad);
    }

    fn request_audio_pad(&self, templ: &gst::PadTemplate) -> Option<gst::Pad> {
        let pad = gst::Pad::builder_from_template(templ)
            .name(crate::element::caps::AUDIO_PAD)
            .chain_function(|_pad, parent, buffer| {
                PunktfunkSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.audio_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                PunktfunkSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.audio_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                PunktfunkSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.audio_query(pad, query),
                )
            })
            .build();
        if !self.audio.claim(&pad) {
            gst::element_imp_warning!(
                self,
                gst::CoreError::Pad,
                ("punktfunksink has one audio pad, and it is already requested")
            );
            return None;
        }
        let obj = self.obj();
        // A pad requested while playing streams at once.
        if obj.current_state() > gst::State::Ready && pad.set_active(true).is_err() {
            self.audio.unclaim(&pad);
            return None;
        }
        if obj.add_pad(&pad).is_err() {
            self.audio.unclaim(&pad);
            return None;
        }
        gst::debug!(CAT, imp = self, "audio pad requested");
        Some(pad)
    }

    fn release_audio_pad(&self, pad: &gst::Pad) {
        if !self.audio.unclaim(pad) {
            return;
        }
        // Waits for a running chain call to return; new ones see a flushing pad.
        let _ = pad.set_active(false);
        let _ = self.obj().remove_pad(pad);
        gst::debug!(CAT, imp = self, "audio pad released");
    }

    /// Stops and joins the receive thread, if one runs.
    fn stop_receiver(&self) {
        let Some(receiver) = lock(&self.receiver).take() else {
            return;
        };
        receiver.stop.store(true, Ordering::Release);
        if let Some(session) = self.core.slot.session() {
            session.wake();
        }
        receiver.thread.thread().unpark();
        if receiver.thread.join().is_err() {
            gst::error!(CAT, imp = self, "receive thread panicked");
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for PunktfunkSink {
    const NAME: &'static str = "GstPunktfunkSink";
    type Type = super::PunktfunkSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for PunktfunkSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::properties);
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(signals);
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        // Send each access unit as soon as it arrives and never hold a state change on preroll
        // (see the module docs and the README's "Latency and defaults").
        obj.set_sync(false);
        obj.set_async(false);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.core
            .set_property(self.obj().upcast_ref(), value, pspec);
        if pspec.name() == "fec-mode" && value.get() == Ok(FecModeSetting::Adaptive) {
            gst::warning!(CAT, imp = self, "{FEC_MODE_ADAPTIVE_DEPRECATED}");
        }
        let interval = lock(&self.core.settings).common.stats_interval_ms;
        self.stats_interval.store(interval, Ordering::Relaxed);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.core.property(pspec)
    }
}

impl_element_class!(
    PunktfunkSink,
    "punktfunk sender",
    "Sink/Network",
    "Sends H.264/H.265 access units over UDP with low latency, FEC, pacing and encryption; turns the receiver's keyframe requests and input into upstream events",
    "sink",
    gst::PadDirection::Sink,
    requests
);

impl BaseSinkImpl for PunktfunkSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.core.settings();
        gst::debug!(CAT, imp = self, "starting with {settings:?}");
        if settings.own.fec_mode == FecModeSetting::Adaptive {
            // Posted at start as well as logged when set: a pipeline parsed from a string sets
            // its properties before the element has a bus.
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                ("{}", FEC_MODE_ADAPTIVE_DEPRECATED)
            );
        }
        let session = self
            .core
            .slot
            .open(self.obj().upcast_ref(), *CAT, &settings)?;
        *lock(&self.stream) = Stream::default();
        self.audio.reset();
        if let Some(caps) = self.audio.caps()
            && let Err(e) = session.set_audio_info(&caps)
        {
            gst::warning!(CAT, imp = self, "cannot announce the audio: {e}");
        }
        *lock(&self.steering) = Steering::new(
            settings.own.congestion_control,
            settings.own.min_bitrate,
            settings.own.max_bitrate,
            settings.own.encoder_buffer,
        );
        // Upstream elements are still in READY: an encoder found now gets its rate-control
        // buffer bounded before its first frame.
        self.find_encoder();
        self.stats_interval
            .store(settings.common.stats_interval_ms, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let spawned = {
            let weak = self.obj().downgrade();
            let stop = stop.clone();
            let interval = self.stats_interval.clone();
            let peer = PeerEvents::new(*CAT, &settings.common);
            std::thread::Builder::new()
                .name("punktfunksink-rx".into())
                .spawn(move || receive_loop(weak, session, stop, interval, peer))
        };
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                self.core.slot.close(self.obj().upcast_ref());
                return Err(gst::error_msg!(
                    gst::CoreError::Thread,
                    ("Could not start the receive thread: {e}")
                ));
            }
        };
        *lock(&self.receiver) = Some(Receiver { stop, thread });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.stop_receiver();
        // Dropping the last clone of the session closes the socket. No bye here: a sink that
        // restarts is a host restart, which the client rides out; EOS says bye.
        self.core.slot.close(self.obj().upcast_ref());
        lock(&self.stream).params.clear();
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let codec =
            codec_of(caps).ok_or_else(|| gst::loggable_error!(CAT, "unsupported caps {caps}"))?;
        let session = self
            .core
            .slot
            .session()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        {
            let mut stream = lock(&self.stream);
            if stream.codec != Some(codec) {
                stream.params.clear();
            }
            stream.codec = Some(codec);
        }
        gst::debug!(CAT, imp = self, "stream caps {caps}");
        session
            .set_stream_info(&caps.to_string())
            .map_err(|e| gst::loggable_error!(CAT, "cannot announce stream info: {e}"))?;
        self.attach_encoder(&session);
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(session) = self.core.slot.session() else {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Not started"));
            return Err(gst::FlowError::Error);
        };
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Failed to map buffer"));
            gst::FlowError::Error
        })?;
        let data = map.as_slice();
        if data.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);

        let mut stream = lock(&self.stream);
        let Stream {
            codec,
            params,
            scratch,
        } = &mut *stream;
        let Some(codec) = *codec else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("No caps set"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let frame: &[u8] = match params.observe(codec, data, keyframe) {
            Some(prefix) => {
                gst::log!(
                    CAT,
                    imp = self,
                    "keyframe without parameter sets: prepending {} cached bytes",
                    prefix.len()
                );
                scratch.clear();
                scratch.extend_from_slice(prefix);
                scratch.extend_from_slice(data);
                scratch
            }
            None => data,
        };

        let timing = capture_timing(self.obj().upcast_ref(), buffer);
        match session.submit_frame_timed(frame, keyframe, timing) {
            Ok(Some(report)) => {
                gst::trace!(
                    CAT,
                    imp = self,
                    "frame of {} bytes (key: {keyframe}): {} datagrams sent, {} dropped",
                    frame.len(),
                    report.sent,
                    report.dropped
                );
            }
            Ok(None) => {
                gst::trace!(CAT, imp = self, "no client: frame not sent");
            }
            Err(session::Error::Io(e)) => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Write,
                    ("Could not send a frame: {e}")
                );
            }
            Err(session::Error::Packetize(e)) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Encode,
                    ("Dropped a frame of {} bytes: {e}", frame.len())
                );
            }
            Err(session::Error::Closed) => {
                // After EOS said bye; nothing more is sent.
                gst::debug!(CAT, imp = self, "session closed: frame not sent");
            }
            Err(e @ session::Error::InvalidArg(_)) => {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("{e}"));
                return Err(gst::FlowError::Error);
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => self.on_eos(true),
            gst::EventView::FlushStop(_) | gst::EventView::StreamStart(_) => {
                self.audio.restart_video()
            }
            _ => {}
        }
        self.parent_event(event)
    }
}
