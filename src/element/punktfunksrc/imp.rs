//! `punktfunksrc` implementation: a live `PushSrc` whose `create` blocks in
//! [`Session::poll_frame`] and turns session events into caps, buffers, EOS and messages.
//!
//! Only the streaming thread blocks (in `create`, on a clone of the [`Session`], with no
//! element mutex held); `unlock` wakes it at once. Input (Navigation events, action signals)
//! is sent from whatever thread it arrives on: the session allows that concurrently.
//!
//! Audio: when the host announces audio, an `audio` sometimes pad appears (module `audio`),
//! fed by its own thread blocked in [`Session::poll_audio`] (for a host without audio the pad
//! appears too, with a GAP to preroll on, once module `streams` decided there is none); from
//! then on both pads take their PTS from the host's capture time on one timeline (module
//! `timeline`) and the latency query answers `latency`, so sinks with `sync=true` play sound
//! and picture together. Video-only
//! streams are stamped on arrival and report no latency, as before audio existed.
//!
//! Preroll: when the host's stream info first sets the caps and nothing went downstream yet,
//! a segment and a GAP event follow at once, so downstream sinks preroll before the first
//! picture (see `push_preroll_gap`; one pipeline holding the host must never wait on it).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use super::audio::{AudioOutput, Refusal};
use super::settings::{self, SrcSettings};
use super::streams::{HostStreams, StreamsNews, StreamsWatch};
use super::timeline::Timeline;

mod audio_pad;
use super::uri::{PunktfunkUri, URI_SCHEME};
use crate::element::caps::audio_caps_refusal;
use crate::element::capture_time::attach_host_timestamp;
use crate::element::input_message::input_from_structure;
use crate::element::navigation::navigation_to_input;
use crate::element::peer::{PeerChange, PeerEvents, post_element_message};
use crate::element::properties::Core;
use crate::element::settings::ConnectionMode;
use crate::element::stats::StatsTicker;
use crate::element::{POLL_SLICE, debug_category, lock};
use crate::protocol::input::InputEvent;
use crate::protocol::media::timing::FrameTiming;
use crate::session::{self, AudioPacket, Event, Session, monotonic_us};
use audio_pad::audio_loop;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| debug_category("punktfunksrc", "punktfunk receiver"));

/// Told what the src learns of the host's streams (the `punktfunkurisrc` bin around it).
pub(in crate::element::punktfunksrc) type StreamsHook = Arc<dyn Fn(StreamsNews) + Send + Sync>;

/// What the streaming thread keeps between `create` calls.
#[derive(Default)]
struct Stream {
    /// Caps negotiated from the host's stream info.
    caps: Option<gst::Caps>,
    /// Dropping delta frames until a keyframe.
    waiting_keyframe: bool,
    /// The next buffer pushed carries DISCONT.
    discont: bool,
    /// A frame arrived since start.
    seen_frame: bool,
    /// Something that prerolls a sink (a buffer or a gap) went downstream since start.
    prerolled: bool,
    stats: StatsTicker,
}

impl Stream {
    fn new(wait_for_keyframe: bool) -> Self {
        Stream {
            waiting_keyframe: wait_for_keyframe,
            discont: true,
            ..Stream::default()
        }
    }
}

pub(crate) struct PunktfunkSrc {
    core: Core<SrcSettings>,
    stream: Mutex<Stream>,
    /// Peer messages of the running session; only the streaming thread reports them.
    peer: Mutex<Option<PeerEvents>>,
    /// Set by `unlock`: `create` returns `Flushing` at once.
    flushing: AtomicBool,
    /// Frames dropped while waiting for a keyframe or for caps.
    frames_dropped: AtomicU64,
    /// The `audio` pad and its thread.
    audio: AudioOutput,
    /// Capture time → PTS for both pads, and the A/V skew.
    timeline: Mutex<Timeline>,
    /// Which streams the host sends, once known.
    streams: Mutex<StreamsWatch>,
    streams_hook: Mutex<Option<StreamsHook>>,
}

impl Default for PunktfunkSrc {
    fn default() -> Self {
        PunktfunkSrc {
            core: Core::new(*CAT),
            stream: Mutex::new(Stream::default()),
            peer: Mutex::new(None),
            flushing: AtomicBool::new(false),
            frames_dropped: AtomicU64::new(0),
            audio: AudioOutput::default(),
            timeline: Mutex::new(Timeline::default()),
            streams: Mutex::new(StreamsWatch::default()),
            streams_hook: Mutex::new(None),
        }
    }
}

impl PunktfunkSrc {
    fn stats_structure(&self) -> gst::Structure {
        let mut s = self.core.slot.stats();
        s.set(
            "frames-dropped-waiting-keyframe",
            self.frames_dropped.load(Ordering::Relaxed),
        );
        s.set("audio-packets-concealed", self.audio.concealed());
        s.set("av-skew-us", lock(&self.timeline).skew_us());
        s
    }

    /// Queues an input event for the host. False when not running or the queue is full.
    fn send_input(&self, ev: InputEvent) -> bool {
        let Some(session) = self.core.slot.session() else {
            gst::debug!(CAT, imp = self, "input {ev:?} dropped: not running");
            return false;
        };
        match session.send_input(ev) {
            Ok(()) => true,
            Err(e) => {
                gst::warning!(CAT, imp = self, "input not sent: {e}");
                false
            }
        }
    }

    fn request_keyframe(&self, session: &Session, why: &str) {
        match session.request_keyframe() {
            Ok(true) => gst::debug!(CAT, imp = self, "keyframe requested ({why})"),
            Ok(false) => gst::trace!(CAT, imp = self, "keyframe request throttled ({why})"),
            Err(e) => gst::warning!(CAT, imp = self, "keyframe request failed: {e}"),
        }
    }

    fn running_time_now(&self) -> Option<gst::ClockTime> {
        let obj = self.obj();
        let clock = obj.clock()?;
        let base = obj.base_time()?;
        clock.time().checked_sub(base)
    }

    /// Turns one session event into a buffer to push, nothing (keep polling) or a flow return.
    fn handle_event(
        &self,
        session: &Session,
        ev: Event,
        settings: SrcSettings,
    ) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let reported = match lock(&self.peer).as_mut() {
            Some(peer) => peer.handle(self.obj().upcast_ref(), ev),
            None => Err(ev),
        };
        let ev = match reported {
            // A new session (first or after a restart of either side) starts afresh; a lost
            // peer leaves a gap.
            Ok(PeerChange::Up | PeerChange::Down) => {
                self.mark_discont(settings.wait_for_keyframe);
                return Ok(None);
            }
            Ok(PeerChange::Unchanged) => return Ok(None),
            Ok(PeerChange::Fatal) => return Err(gst::FlowError::Error),
            Err(ev) => ev,
        };
        match ev {
            Event::StreamInfo(info) => {
                self.on_stream_info(&info.caps)?;
                Ok(None)
            }
            Event::AudioInfo(_) | Event::Audio(_) | Event::AudioLost { .. } => {
                self.on_audio_event(ev);
                Ok(None)
            }
            Event::Frame(f) => Ok(self.on_frame(session, f, settings)),
            Event::FramesLost { count } => {
                gst::debug!(CAT, imp = self, "{count} frame(s) lost");
                self.mark_discont(settings.wait_for_keyframe);
                if settings.request_keyframe {
                    self.request_keyframe(session, "loss");
                }
                Ok(None)
            }
            Event::EndOfStream => {
                gst::info!(CAT, imp = self, "the host ended the stream");
                self.audio.eos();
                Err(gst::FlowError::Eos)
            }
            other => {
                gst::trace!(CAT, imp = self, "ignoring {other:?}");
                Ok(None)
            }
        }
    }

    /// The next buffer carries DISCONT, and with `wait_for_keyframe` deltas are dropped until a
    /// keyframe (after a loss, a new session or a lost peer).
    fn mark_discont(&self, wait_for_keyframe: bool) {
        let mut stream = lock(&self.stream);
        stream.discont = true;
        if wait_for_keyframe {
            stream.waiting_keyframe = true;
        }
    }

    fn on_stream_info(&self, caps_str: &str) -> Result<(), gst::FlowError> {
        let caps = match gst::Caps::from_str(caps_str) {
            Ok(c) if c.is_fixed() => c,
            _ => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("The host's stream has caps this element cannot take: '{caps_str}'")
                );
                return Err(gst::FlowError::NotNegotiated);
            }
        };
        if lock(&self.stream).caps.as_ref() == Some(&caps) {
            return Ok(());
        }
        gst::info!(CAT, imp = self, "stream caps {caps}");
        if lock(&self.stream).caps.is_none() {
            self.video_announced();
        }
        if self.obj().set_caps(&caps).is_err() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream cannot take the host's stream caps {caps}")
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        let prerolled = {
            let mut stream = lock(&self.stream);
            stream.caps = Some(caps);
            std::mem::replace(&mut stream.prerolled, true)
        };
        if !prerolled {
            self.push_preroll_gap();
        }
        Ok(())
    }

    /// Lets downstream sinks preroll before the first picture: a segment and a gap at the
    /// running time now. In a pipeline that also holds the host (or any other branch with a
    /// sink that prerolls), the pipeline reaches PLAYING only once every sink prerolled; until
    /// then a prerolled sibling sink blocks its branch, its queue fills, a `tee` in front of
    /// the host's encoder stops, and the picture this source waits for is never sent. The gap
    /// breaks that circle as soon as the caps are known (with the session, before any frame).
    fn push_preroll_gap(&self) {
        let obj = self.obj();
        let pad = obj.src_pad();
        let segment = obj.segment();
        let at = self.running_time_now().unwrap_or(gst::ClockTime::ZERO);
        let seg_ok = pad.push_event(gst::event::Segment::new(&segment));
        let gap_ok = pad.push_event(gst::event::Gap::builder(at).build());
        gst::debug!(
            CAT,
            imp = self,
            "gap at {at} to preroll downstream (segment: {seg_ok}, gap: {gap_ok})"
        );
    }

    fn on_frame(
        &self,
        session: &Session,
        f: crate::protocol::media::reassembler::Frame,
        settings: SrcSettings,
    ) -> Option<gst::Buffer> {
        let mut stream = lock(&self.stream);
        if stream.caps.is_none() {
            // Frames cannot outrun the stream info unless its datagram was lost; the host
            // resends it after the next loss report.
            gst::debug!(CAT, imp = self, "frame before stream info: dropped");
            self.frames_dropped.fetch_add(1, Ordering::Relaxed);
            stream.discont = true;
            stream.waiting_keyframe |= settings.wait_for_keyframe;
            return None;
        }
        if f.discont {
            stream.discont = true;
            if settings.wait_for_keyframe {
                stream.waiting_keyframe = true;
            }
        }
        let first = !stream.seen_frame;
        stream.seen_frame = true;
        let waiting = stream.waiting_keyframe && !f.keyframe;
        if waiting {
            self.frames_dropped.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            gst::trace!(
                CAT,
                imp = self,
                "waiting for a keyframe: delta frame dropped"
            );
            if settings.request_keyframe {
                self.request_keyframe(session, "waiting for a keyframe");
            }
            return None;
        }
        stream.waiting_keyframe = false;
        let discont = std::mem::take(&mut stream.discont);
        stream.prerolled = true;
        drop(stream);
        if first && !f.keyframe && settings.request_keyframe {
            self.request_keyframe(session, "first frame is not a keyframe");
        }

        let keyframe = f.keyframe;
        let len = f.data.len();
        let timing = f.timing;
        let now = self.running_time_now();
        let pts = {
            let mut timeline = lock(&self.timeline);
            timeline.video_arrived(timing.capture_us, monotonic_us());
            now.and_then(|n| timeline.pts_us(timing.capture_us, n.useconds()))
                .map(gst::ClockTime::from_useconds)
                .or(now)
        };
        let mut buffer = gst::Buffer::from_mut_slice(f.data);
        {
            let b = buffer.make_mut();
            b.set_pts(pts);
            attach_host_timestamp(b, &timing);
            let mut flags = gst::BufferFlags::empty();
            if !keyframe {
                flags |= gst::BufferFlags::DELTA_UNIT;
            }
            if discont {
                flags |= gst::BufferFlags::DISCONT;
            }
            b.set_flags(flags);
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame {} of {len} bytes (key: {keyframe}, discont: {discont})",
            f.index
        );
        Some(buffer)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for PunktfunkSrc {
    const NAME: &'static str = "GstPunktfunkSrc";
    type Type = super::PunktfunkSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

/// An action signal's class handler: `event` builds the input event from the signal's
/// arguments (`None` when they are out of range); returns whether it was queued for the host.
fn send_from_signal(
    args: &[glib::Value],
    event: impl FnOnce(&super::PunktfunkSrc, &[glib::Value]) -> Option<InputEvent>,
) -> Option<glib::Value> {
    let sent = args
        .first()
        .and_then(|v| v.get::<super::PunktfunkSrc>().ok())
        .and_then(|obj| Some(obj.imp().send_input(event(&obj, args)?)));
    Some(sent.unwrap_or(false).to_value())
}

impl ObjectImpl for PunktfunkSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::properties);
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // send-gamepad-button(pad, button, pressed, value) -> sent
                glib::subclass::Signal::builder("send-gamepad-button")
                    .param_types([
                        u32::static_type(),
                        u32::static_type(),
                        bool::static_type(),
                        f64::static_type(),
                    ])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        send_from_signal(args, |_, a| {
                            Some(InputEvent::GamepadButton {
                                pad: u8::try_from(a.get(1)?.get::<u32>().ok()?).ok()?,
                                button: u16::try_from(a.get(2)?.get::<u32>().ok()?).ok()?,
                                pressed: a.get(3)?.get::<bool>().ok()?,
                                value: a.get(4)?.get::<f64>().ok()? as f32,
                            })
                        })
                    })
                    .build(),
                // send-gamepad-axis(pad, axis, value) -> sent
                glib::subclass::Signal::builder("send-gamepad-axis")
                    .param_types([u32::static_type(), u32::static_type(), f64::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        send_from_signal(args, |_, a| {
                            Some(InputEvent::GamepadAxis {
                                pad: u8::try_from(a.get(1)?.get::<u32>().ok()?).ok()?,
                                axis: u16::try_from(a.get(2)?.get::<u32>().ok()?).ok()?,
                                value: a.get(3)?.get::<f64>().ok()? as f32,
                            })
                        })
                    })
                    .build(),
                // send-input(structure shaped like punktfunk-input) -> sent
                glib::subclass::Signal::builder("send-input")
                    .param_types([gst::Structure::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        send_from_signal(args, |obj, a| {
                            let s = a.get(1)?.get::<gst::Structure>().ok()?;
                            input_from_structure(&s)
                                .map_err(|e| gst::warning!(CAT, obj = obj, "send-input: {e}: {s}"))
                                .ok()
                        })
                    })
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        // Buffers are stamped in `create` on arrival.
        obj.set_do_timestamp(false);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.core
            .set_property(self.obj().upcast_ref(), value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            // The session's counters and this element's own.
            return self.stats_structure().to_value();
        }
        self.core.property(pspec)
    }
}

impl_element_class!(
    PunktfunkSrc,
    "punktfunk receiver",
    "Source/Network",
    "Receives a punktfunk stream over UDP (FEC repair, decryption, reassembly) and pushes whole H.264/H.265 access units, live; sends Navigation events and application input back to the sender",
    "src",
    gst::PadDirection::Src
);

impl URIHandlerImpl for PunktfunkSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &[URI_SCHEME]
    }

    fn uri(&self) -> Option<String> {
        let settings = lock(&self.core.settings);
        Some(format!(
            "{}://{}",
            URI_SCHEME,
            settings.common.display_target()
        ))
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        if self.core.slot.is_running() {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "Cannot change the URI while running",
            ));
        }
        let parsed = PunktfunkUri::parse(uri).map_err(|e| {
            glib::Error::new(
                gst::URIError::BadUri,
                &format!(
                    "Invalid punktfunk URI: {e} (expected punktfunk://[passphrase@]host:port)"
                ),
            )
        })?;
        gst::debug!(CAT, imp = self, "URI {}", parsed.to_public_string());
        let mut settings = lock(&self.core.settings);
        settings.common.mode = ConnectionMode::Caller;
        settings.common.address = Some(parsed.host);
        settings.common.port = u32::from(parsed.port);
        // Without one in the URI, a passphrase set as a property stays.
        if let Some(p) = parsed.passphrase {
            settings.common.passphrase = p;
        }
        Ok(())
    }
}

impl BaseSrcImpl for PunktfunkSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.core.settings();
        gst::debug!(CAT, imp = self, "starting with {settings:?}");
        self.core
            .slot
            .open(self.obj().upcast_ref(), *CAT, &settings)?;
        *lock(&self.stream) = Stream::new(settings.own.wait_for_keyframe);
        *lock(&self.peer) = Some(PeerEvents::new(*CAT, &settings.common));
        self.frames_dropped.store(0, Ordering::Relaxed);
        *lock(&self.timeline) = Timeline::default();
        *lock(&self.streams) = StreamsWatch::default();
        let started = self.core.slot.session().map(|session| {
            let weak = self.obj().downgrade();
            self.audio
                .start(move |stop| audio_loop(weak, session, stop))
        });
        if let Some(Err(e)) = started {
            self.core.slot.close(self.obj().upcast_ref());
            return Err(gst::error_msg!(
                gst::CoreError::Thread,
                ("Could not start the audio thread: {e}")
            ));
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let session = self.core.slot.session();
        self.audio.stop(self.obj().upcast_ref(), session.as_ref());
        drop(session);
        if let Some(session) = self.core.slot.close(self.obj().upcast_ref()) {
            // Bye lets the host notice at once and wait for the next client.
            if let Err(e) = session.close() {
                gst::debug!(CAT, imp = self, "bye failed: {e}");
            }
        }
        *lock(&self.stream) = Stream::default();
        *lock(&self.peer) = None;
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        // Once the host said what it sends, that is all this source can produce.
        let caps = lock(&self.stream)
            .caps
            .clone()
            .unwrap_or_else(|| self.obj().src_pad().pad_template_caps());
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        // Caps come from the host's stream info, set in `create` before the first buffer;
        // before that there is nothing to negotiate (a fixated template would be a guess).
        let caps = lock(&self.stream).caps.clone();
        match caps {
            Some(caps) => self
                .obj()
                .set_caps(&caps)
                .map_err(|_| gst::loggable_error!(CAT, "downstream refused {caps}")),
            None => Ok(()),
        }
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            // Live; buffers are stamped with the running time at which they leave the
            // reassembler and are pushed at once, with no buffering in this element, so it adds
            // no latency of its own (min 0) and holds nothing it could delay (max unbounded).
            // With audio, both streams carry capture-time PTS and sinks hold them `latency`.
            q.set(true, self.latency(), gst::ClockTime::NONE);
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn event(&self, event: &gst::Event) -> bool {
        if let gst::EventView::Navigation(_) = event.view() {
            return match navigation_to_input(event) {
                Some(ev) => {
                    gst::log!(CAT, imp = self, "navigation → {ev:?}");
                    self.send_input(ev)
                }
                None => {
                    gst::debug!(CAT, imp = self, "navigation event without an input form");
                    false
                }
            };
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::Release);
        if let Some(s) = self.core.slot.session() {
            s.wake();
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::Release);
        Ok(())
    }
}

impl PushSrcImpl for PunktfunkSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let Some(session) = self.core.slot.session() else {
            return Err(gst::FlowError::Flushing);
        };
        if let Some(caps) = self.audio.take_pending(self.obj().upcast_ref()) {
            self.add_audio_pad(&caps, false);
        }
        loop {
            if self.flushing.load(Ordering::Acquire) {
                return Err(gst::FlowError::Flushing);
            }
            let (flags, interval) = {
                let s = lock(&self.core.settings);
                (s.own, s.common.stats_interval_ms)
            };
            let timeout = lock(&self.stream)
                .stats
                .wait(Instant::now(), interval, POLL_SLICE);
            let polled = session.poll_frame(timeout);
            // Also checked on the audio thread: either may be held downstream by a pad that
            // waits for `no-more-pads` or for a sibling sink's preroll.
            self.check_streams();
            if lock(&self.stream).stats.due(Instant::now(), interval) {
                post_element_message(self.obj().upcast_ref(), self.stats_structure());
            }
            match polled {
                Ok(None) => {}
                Ok(Some(ev)) => {
                    if let Some(buffer) = self.handle_event(&session, ev, flags)? {
                        return Ok(CreateSuccess::NewBuffer(buffer));
                    }
                }
                Err(session::Error::Closed) => return Err(gst::FlowError::Flushing),
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("Receiving failed: {e}")
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }
}
