//! `punktfunksrc` implementation: a live `PushSrc` whose `create` blocks in
//! [`Session::poll_frame`] and turns session events into caps, buffers, EOS and messages.
//!
//! Only the streaming thread blocks (in `create`, on a clone of the [`Session`], with no
//! element mutex held); `unlock` wakes it at once. Input (Navigation events, action signals)
//! is sent from whatever thread it arrives on: the session allows that concurrently.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use crate::common::{
    self, CommonSettings, ConnectionMode, PEER_CONNECTED_NAME, PEER_DISCONNECTED_NAME, PunktfunkUri,
};
use crate::protocol::handshake::Role;
use crate::protocol::input::InputEvent;
use crate::protocol::wire::RejectReason;
use crate::session::{self, Event, Session, Stats};
use crate::transport::udp::UdpOptions;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "punktfunksrc",
        gst::DebugColorFlags::empty(),
        Some("punktfunk receiver"),
    )
});

const DEFAULT_WAIT_FOR_KEYFRAME: bool = true;
const DEFAULT_REQUEST_KEYFRAME: bool = true;
/// Longest single wait in `create`; bounds how late a changed `stats-interval` takes effect.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// The same handshake failure from the same address is posted as a warning at most this often.
const HANDSHAKE_WARNING_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    wait_for_keyframe: bool,
    request_keyframe: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(ConnectionMode::Caller),
            wait_for_keyframe: DEFAULT_WAIT_FOR_KEYFRAME,
            request_keyframe: DEFAULT_REQUEST_KEYFRAME,
        }
    }
}

/// The settings `create` reads for every event (changeable while playing).
#[derive(Debug, Clone, Copy)]
struct Flags {
    wait_for_keyframe: bool,
    request_keyframe: bool,
}

/// Runtime state between `start` and `stop`.
struct State {
    session: Session,
    /// `address:port` and `timeout` as started, for messages.
    target: String,
    timeout_ms: u32,
}

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
    next_stats: Option<Instant>,
    last_handshake_warning: Option<(Instant, std::net::SocketAddr, String)>,
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

pub struct PunktfunkSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stream: Mutex<Stream>,
    /// Set by `unlock`: `create` returns `Flushing` at once.
    flushing: AtomicBool,
    /// Frames dropped while waiting for a keyframe or for caps.
    frames_dropped: AtomicU64,
    /// Counters of the last session, so `stats` still answers after `stop`.
    last_stats: Mutex<Option<(Stats, u32)>>,
}

impl Default for PunktfunkSrc {
    fn default() -> Self {
        PunktfunkSrc {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            stream: Mutex::new(Stream::default()),
            flushing: AtomicBool::new(false),
            frames_dropped: AtomicU64::new(0),
            last_stats: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the element down with a poisoned lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PunktfunkSrc {
    fn session(&self) -> Option<Session> {
        lock(&self.state).as_ref().map(|s| s.session.clone())
    }

    fn stats_structure(&self) -> gst::Structure {
        let mut s = if let Some(s) = self.session() {
            common::stats_structure(&s.stats(), u32::from(s.local_addr().port()))
        } else {
            match lock(&self.last_stats).as_ref() {
                Some((s, port)) => common::stats_structure(s, *port),
                None => common::stats_structure(
                    &Stats {
                        role: Some(Role::Client),
                        ..Stats::default()
                    },
                    0,
                ),
            }
        };
        s.set(
            "frames-dropped-waiting-keyframe",
            self.frames_dropped.load(Ordering::Relaxed),
        );
        s
    }

    fn post_element_message(&self, s: gst::Structure) {
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    /// Queues an input event for the host. False when not running or the queue is full.
    fn send_input(&self, ev: InputEvent) -> bool {
        let Some(session) = self.session() else {
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

    fn maybe_post_stats(&self, interval_ms: u32) {
        let now = Instant::now();
        let due = {
            let mut stream = lock(&self.stream);
            if interval_ms == 0 {
                stream.next_stats = None;
                return;
            }
            let interval = Duration::from_millis(interval_ms.into());
            let next = *stream.next_stats.get_or_insert(now + interval);
            if now < next {
                return;
            }
            // After a stall, do not post a burst of catch-up messages.
            let mut n = next + interval;
            if n <= now {
                n = now + interval;
            }
            stream.next_stats = Some(n);
            true
        };
        if due {
            self.post_element_message(self.stats_structure());
        }
    }

    /// Time until the next stats message is due (bounded by [`POLL_SLICE`]).
    fn poll_timeout(&self, interval_ms: u32) -> Duration {
        if interval_ms == 0 {
            return POLL_SLICE;
        }
        let now = Instant::now();
        let mut stream = lock(&self.stream);
        let next = *stream
            .next_stats
            .get_or_insert(now + Duration::from_millis(interval_ms.into()));
        POLL_SLICE.min(next.saturating_duration_since(now))
    }

    /// Turns one session event into a buffer to push, nothing (keep polling) or a flow return.
    fn handle_event(
        &self,
        session: &Session,
        ev: Event,
        settings: Flags,
    ) -> Result<Option<gst::Buffer>, gst::FlowError> {
        match ev {
            Event::StreamInfo(info) => {
                self.on_stream_info(&info.caps)?;
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
                Err(gst::FlowError::Eos)
            }
            Event::Rejected { reason } => {
                let describe = reason.describe();
                match reason {
                    RejectReason::BadPassphrase | RejectReason::PassphraseMismatch => {
                        gst::element_imp_error!(
                            self,
                            gst::ResourceError::NotAuthorized,
                            ("{describe} (check the passphrase on both ends)")
                        );
                        Err(gst::FlowError::Error)
                    }
                    RejectReason::EncryptMismatch => {
                        gst::element_imp_error!(
                            self,
                            gst::ResourceError::Settings,
                            ("{describe} (set the same encrypt value on both ends)")
                        );
                        Err(gst::FlowError::Error)
                    }
                    RejectReason::RoleMismatch | RejectReason::Busy => {
                        gst::element_imp_warning!(
                            self,
                            gst::ResourceError::Busy,
                            ("{describe}; still trying")
                        );
                        Ok(None)
                    }
                }
            }
            Event::ConnectTimeout => {
                let (target, timeout) = lock(&self.state)
                    .as_ref()
                    .map(|s| (s.target.clone(), s.timeout_ms))
                    .unwrap_or_default();
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::NotFound,
                    ("No answer from {target} after {timeout} ms (is the sender running?); still trying")
                );
                Ok(None)
            }
            Event::Connected { peer, session_id } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "connected to {peer} (session {session_id:08x})"
                );
                // A new session (first or after a restart of either side) starts afresh.
                self.mark_discont(settings.wait_for_keyframe);
                self.post_element_message(
                    gst::Structure::builder(PEER_CONNECTED_NAME)
                        .field("peer", peer.to_string())
                        .field("session-id", session_id)
                        .build(),
                );
                Ok(None)
            }
            Event::Disconnected { reason } => {
                let reason = common::disconnect_reason(reason);
                gst::info!(CAT, imp = self, "host gone ({reason})");
                self.mark_discont(settings.wait_for_keyframe);
                self.post_element_message(
                    gst::Structure::builder(PEER_DISCONNECTED_NAME)
                        .field("reason", reason)
                        .build(),
                );
                Ok(None)
            }
            Event::HandshakeFailed { from, reason } => {
                // Worded from the listener's side (see `HandshakeFailure`'s Display).
                let reason = reason.to_string();
                gst::info!(CAT, imp = self, "handshake from {from} refused: {reason}");
                let now = Instant::now();
                let post = {
                    let mut stream = lock(&self.stream);
                    let repeat = stream
                        .last_handshake_warning
                        .as_ref()
                        .is_some_and(|(t, a, r)| {
                            *a == from
                                && *r == reason
                                && now.duration_since(*t) < HANDSHAKE_WARNING_INTERVAL
                        });
                    if !repeat {
                        stream.last_handshake_warning = Some((now, from, reason.clone()));
                    }
                    !repeat
                };
                if post {
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::NotAuthorized,
                        ("Refused a connection from {from}: {reason}")
                    );
                }
                Ok(None)
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
        if self.obj().set_caps(&caps).is_err() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream cannot take the host's stream caps {caps}")
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        let mut stream = lock(&self.stream);
        stream.caps = Some(caps);
        Ok(())
    }

    fn on_frame(
        &self,
        session: &Session,
        f: crate::protocol::reassembler::Frame,
        settings: Flags,
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
        drop(stream);
        if first && !f.keyframe && settings.request_keyframe {
            self.request_keyframe(session, "first frame is not a keyframe");
        }

        let keyframe = f.keyframe;
        let len = f.data.len();
        let mut buffer = gst::Buffer::from_mut_slice(f.data);
        {
            let b = buffer.make_mut();
            b.set_pts(self.running_time_now());
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

/// The element behind a signal's first argument.
fn signal_element(args: &[glib::Value]) -> Option<super::PunktfunkSrc> {
    args.first()?.get::<super::PunktfunkSrc>().ok()
}

impl ObjectImpl for PunktfunkSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = common::common_properties(ConnectionMode::Caller);
            props.extend([
                glib::ParamSpecBoolean::builder("wait-for-keyframe")
                    .nick("Wait for keyframe")
                    .blurb(
                        "After start or a loss, drop delta frames until a keyframe arrives, so a decoder never sees a broken reference (default true)",
                    )
                    .default_value(DEFAULT_WAIT_FOR_KEYFRAME)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("request-keyframe")
                    .nick("Request keyframe")
                    .blurb(
                        "On start and after a loss, ask the sender for a keyframe (throttled to one request per 100 ms) (default true)",
                    )
                    .default_value(DEFAULT_REQUEST_KEYFRAME)
                    .mutable_playing()
                    .build(),
            ]);
            props
        });
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
                        let sent = (|| {
                            let obj = signal_element(args)?;
                            let pad = u8::try_from(args.get(1)?.get::<u32>().ok()?).ok()?;
                            let button = u16::try_from(args.get(2)?.get::<u32>().ok()?).ok()?;
                            let pressed = args.get(3)?.get::<bool>().ok()?;
                            let value = args.get(4)?.get::<f64>().ok()? as f32;
                            Some(obj.imp().send_input(InputEvent::GamepadButton {
                                pad,
                                button,
                                pressed,
                                value,
                            }))
                        })();
                        Some(sent.unwrap_or(false).to_value())
                    })
                    .build(),
                // send-gamepad-axis(pad, axis, value) -> sent
                glib::subclass::Signal::builder("send-gamepad-axis")
                    .param_types([u32::static_type(), u32::static_type(), f64::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let sent = (|| {
                            let obj = signal_element(args)?;
                            let pad = u8::try_from(args.get(1)?.get::<u32>().ok()?).ok()?;
                            let axis = u16::try_from(args.get(2)?.get::<u32>().ok()?).ok()?;
                            let value = args.get(3)?.get::<f64>().ok()? as f32;
                            Some(
                                obj.imp()
                                    .send_input(InputEvent::GamepadAxis { pad, axis, value }),
                            )
                        })();
                        Some(sent.unwrap_or(false).to_value())
                    })
                    .build(),
                // send-input(structure shaped like punktfunk-input) -> sent
                glib::subclass::Signal::builder("send-input")
                    .param_types([gst::Structure::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let sent = (|| {
                            let obj = signal_element(args)?;
                            let s = args.get(1)?.get::<gst::Structure>().ok()?;
                            match common::input_from_structure(&s) {
                                Ok(ev) => Some(obj.imp().send_input(ev)),
                                Err(e) => {
                                    gst::warning!(CAT, obj = obj, "send-input: {e}: {s}");
                                    Some(false)
                                }
                            }
                        })();
                        Some(sent.unwrap_or(false).to_value())
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
        let running = lock(&self.state).is_some();
        let mut settings = lock(&self.settings);
        if pspec.name() == "passphrase" {
            gst::debug!(CAT, imp = self, "passphrase set");
        } else {
            gst::debug!(CAT, imp = self, "set {} = {value:?}", pspec.name());
        }
        if running
            && !matches!(
                pspec.name(),
                "stats-interval" | "wait-for-keyframe" | "request-keyframe"
            )
        {
            gst::warning!(
                CAT,
                imp = self,
                "{} changed while running: takes effect at the next start",
                pspec.name()
            );
        }
        if settings.common.set_property(value, pspec) {
            return;
        }
        match pspec.name() {
            "wait-for-keyframe" => {
                settings.wait_for_keyframe = value.get().unwrap_or(DEFAULT_WAIT_FOR_KEYFRAME)
            }
            "request-keyframe" => {
                settings.request_keyframe = value.get().unwrap_or(DEFAULT_REQUEST_KEYFRAME)
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => return self.stats_structure().to_value(),
            "bound-port" => {
                return self
                    .session()
                    .map_or(0u32, |s| u32::from(s.local_addr().port()))
                    .to_value();
            }
            _ => {}
        }
        let settings = lock(&self.settings);
        if let Some(v) = settings.common.property(pspec) {
            return v;
        }
        match pspec.name() {
            "wait-for-keyframe" => settings.wait_for_keyframe.to_value(),
            "request-keyframe" => settings.request_keyframe.to_value(),
            // GObject only asks for readable properties this element installed.
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for PunktfunkSrc {}

impl ElementImpl for PunktfunkSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "punktfunk receiver",
                "Source/Network",
                "Receives a punktfunk stream over UDP (FEC repair, decryption, reassembly) and pushes whole H.264/H.265 access units, live; sends Navigation events and application input back to the sender",
                "punktfunk developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = common::stream_caps();
            // The template is static and well-formed; failing here is a programming error.
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static src pad template");
            vec![src]
        });
        TEMPLATES.as_ref()
    }
}

impl URIHandlerImpl for PunktfunkSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &[common::URI_SCHEME]
    }

    fn uri(&self) -> Option<String> {
        let settings = lock(&self.settings);
        Some(format!(
            "{}://{}",
            common::URI_SCHEME,
            settings.common.display_target()
        ))
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        if lock(&self.state).is_some() {
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
        let mut settings = lock(&self.settings);
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
        let settings = lock(&self.settings).clone();
        gst::debug!(CAT, imp = self, "starting with {settings:?}");
        if let Some(w) = settings.common.security_warning() {
            gst::warning!(CAT, imp = self, "{w}");
            gst::element_imp_warning!(self, gst::ResourceError::Settings, ("{w}"));
        }
        let ep = settings.common.endpoints()?;
        let config = settings.common.config(Role::Client, &ep)?;
        let transport = common::bind_transport(ep.bind, &UdpOptions::default())?;
        let session = Session::new(config, transport).map_err(common::session_error)?;
        let local = session.local_addr();
        match ep.peer {
            Some(peer) => gst::info!(CAT, imp = self, "bound {local}, calling {peer}"),
            None => gst::info!(CAT, imp = self, "listening on {local}"),
        }
        *lock(&self.stream) = Stream::new(settings.wait_for_keyframe);
        self.frames_dropped.store(0, Ordering::Relaxed);
        *lock(&self.state) = Some(State {
            session,
            target: settings.common.display_target(),
            timeout_ms: settings.common.timeout_ms,
        });
        self.obj().notify("bound-port");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        if let Some(state) = state {
            // Bye lets the host notice at once and wait for the next client.
            if let Err(e) = state.session.close() {
                gst::debug!(CAT, imp = self, "bye failed: {e}");
            }
            let port = u32::from(state.session.local_addr().port());
            *lock(&self.last_stats) = Some((state.session.stats(), port));
        }
        *lock(&self.stream) = Stream::default();
        self.obj().notify("bound-port");
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
            q.set(true, gst::ClockTime::ZERO, gst::ClockTime::NONE);
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn event(&self, event: &gst::Event) -> bool {
        if let gst::EventView::Navigation(_) = event.view() {
            return match common::navigation_to_input(event) {
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
        if let Some(s) = self.session() {
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
        let Some(session) = self.session() else {
            return Err(gst::FlowError::Flushing);
        };
        loop {
            if self.flushing.load(Ordering::Acquire) {
                return Err(gst::FlowError::Flushing);
            }
            let flags = {
                let s = lock(&self.settings);
                Flags {
                    wait_for_keyframe: s.wait_for_keyframe,
                    request_keyframe: s.request_keyframe,
                }
            };
            let interval = lock(&self.settings).common.stats_interval_ms;
            let polled = session.poll_frame(self.poll_timeout(interval));
            self.maybe_post_stats(interval);
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
