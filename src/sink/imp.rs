//! `punktfunksink` implementation: a `BaseSink` that hands each access unit to a host
//! [`Session`] and runs a receive thread for what the client sends back.
//!
//! Threads: the streaming thread runs `render` (seal + paced send, bounded by the frame
//! interval); the receive thread blocks in [`Session::poll_input`] so keyframe requests and
//! input are handled at once even when no frame flows, and posts the periodic stats. No element
//! mutex is held while either blocks: both work on a clone of the [`Session`].

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::common::{
    self, Codec, CommonSettings, ConnectionMode, FecModeSetting, PEER_CONNECTED_NAME,
    PEER_DISCONNECTED_NAME, ParameterSets,
};
use crate::protocol::handshake::Role;
use crate::protocol::pacing::PacingConfig;
use crate::protocol::wire::{DEFAULT_MTU, MAX_DATAGRAM_BYTES, MIN_MTU};
use crate::session::{self, Event, Session, Stats};
use crate::transport::udp::UdpOptions;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "punktfunksink",
        gst::DebugColorFlags::empty(),
        Some("punktfunk sender"),
    )
});

const DEFAULT_FEC_PERCENT: u32 = 20;
const DEFAULT_FEC_MODE: FecModeSetting = FecModeSetting::Fixed;
const DEFAULT_PACING_RATE: u64 = 0;
const DEFAULT_DSCP: u32 = 0;
/// Longest single wait of the receive thread; it also bounds how late a changed
/// `stats-interval` takes effect.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// The same handshake failure from the same address is posted as a warning at most this often
/// (a caller with a wrong passphrase retries every 200 ms).
const HANDSHAKE_WARNING_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    fec_percent: u32,
    fec_mode: FecModeSetting,
    mtu: u32,
    pacing_rate: u64,
    dscp: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(ConnectionMode::Listener),
            fec_percent: DEFAULT_FEC_PERCENT,
            fec_mode: DEFAULT_FEC_MODE,
            mtu: DEFAULT_MTU as u32,
            pacing_rate: DEFAULT_PACING_RATE,
            dscp: DEFAULT_DSCP,
        }
    }
}

/// Runtime state between `start` and `stop`.
struct State {
    session: Session,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What only the streaming thread touches (caps and parameter-set cache).
#[derive(Default)]
struct Stream {
    codec: Option<Codec>,
    params: ParameterSets,
    /// Reused buffer for a keyframe with the cached parameter sets prepended.
    scratch: Vec<u8>,
}

pub struct PunktfunkSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stream: Mutex<Stream>,
    /// `stats-interval` as the receive thread reads it (changeable while playing).
    stats_interval: Arc<AtomicU32>,
    /// Counters of the last session, so `stats` still answers after `stop`.
    last_stats: Mutex<Option<(Stats, u32)>>,
}

impl Default for PunktfunkSink {
    fn default() -> Self {
        PunktfunkSink {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            stream: Mutex::new(Stream::default()),
            stats_interval: Arc::new(AtomicU32::new(common::DEFAULT_STATS_INTERVAL_MS)),
            last_stats: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the element down with a poisoned lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PunktfunkSink {
    fn session(&self) -> Option<Session> {
        lock(&self.state).as_ref().map(|s| s.session.clone())
    }

    fn stats_structure(&self) -> gst::Structure {
        if let Some(s) = self.session() {
            let port = u32::from(s.local_addr().port());
            return common::stats_structure(&s.stats(), port);
        }
        match lock(&self.last_stats).as_ref() {
            Some((s, port)) => common::stats_structure(s, *port),
            None => common::stats_structure(
                &Stats {
                    role: Some(Role::Host),
                    ..Stats::default()
                },
                0,
            ),
        }
    }
}

/// The receive thread: control and input from the client, peer changes, periodic stats.
fn receive_loop(
    element: glib::WeakRef<super::PunktfunkSink>,
    session: Session,
    stop: Arc<AtomicBool>,
    stats_interval: Arc<AtomicU32>,
) {
    let mut next_stats: Option<Instant> = None;
    let mut last_handshake_warning: Option<(Instant, std::net::SocketAddr, String)> = None;
    while !stop.load(Ordering::Acquire) {
        let interval = stats_interval.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut timeout = POLL_SLICE;
        if interval > 0 {
            let due = *next_stats.get_or_insert(now + Duration::from_millis(interval.into()));
            timeout = timeout.min(due.saturating_duration_since(now));
        } else {
            next_stats = None;
        }
        let polled = session.poll_input(timeout);
        let Some(element) = element.upgrade() else {
            break;
        };
        let imp = element.imp();
        match polled {
            Ok(Some(ev)) => imp.on_event(ev, &mut last_handshake_warning),
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
        if let Some(due) = next_stats
            && Instant::now() >= due
        {
            let interval = stats_interval.load(Ordering::Relaxed);
            next_stats = (interval > 0).then(|| due + Duration::from_millis(interval.into()));
            // After a long stall, do not post a burst of catch-up messages.
            if let Some(n) = next_stats
                && n < Instant::now()
            {
                next_stats = Some(Instant::now() + Duration::from_millis(interval.into()));
            }
            let port = u32::from(session.local_addr().port());
            let s = common::stats_structure(&session.stats(), port);
            let _ = element.post_message(gst::message::Element::builder(s).src(&element).build());
        }
    }
}

impl PunktfunkSink {
    fn post_element_message(&self, s: gst::Structure) {
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

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

    fn on_event(
        &self,
        ev: Event,
        last_warning: &mut Option<(Instant, std::net::SocketAddr, String)>,
    ) {
        match ev {
            Event::KeyframeRequest => {
                gst::debug!(CAT, imp = self, "client asks for a keyframe");
                self.request_keyframe_upstream();
            }
            Event::Input(input) => {
                gst::log!(CAT, imp = self, "input {input:?}");
                self.post_element_message(common::input_structure(&input));
                if let Some(nav) = common::input_to_navigation(&input) {
                    let handled = self.obj().sink_pad().push_event(nav);
                    gst::log!(
                        CAT,
                        imp = self,
                        "navigation event upstream (handled: {handled})"
                    );
                }
            }
            Event::Connected { peer, session_id } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "client {peer} connected (session {session_id:08x})"
                );
                self.post_element_message(
                    gst::Structure::builder(PEER_CONNECTED_NAME)
                        .field("peer", peer.to_string())
                        .field("session-id", session_id)
                        .build(),
                );
                // A new client cannot decode before the next keyframe: ask for one now.
                self.request_keyframe_upstream();
            }
            Event::Disconnected { reason } => {
                let reason = common::disconnect_reason(reason);
                gst::info!(
                    CAT,
                    imp = self,
                    "client gone ({reason}); waiting for the next one"
                );
                self.post_element_message(
                    gst::Structure::builder(PEER_DISCONNECTED_NAME)
                        .field("reason", reason)
                        .build(),
                );
            }
            Event::HandshakeFailed { from, reason } => {
                // Worded from the listener's side (see `HandshakeFailure`'s Display).
                let reason = reason.to_string();
                gst::info!(CAT, imp = self, "handshake from {from} refused: {reason}");
                let now = Instant::now();
                let repeat = last_warning.as_ref().is_some_and(|(t, a, r)| {
                    *a == from
                        && *r == reason
                        && now.duration_since(*t) < HANDSHAKE_WARNING_INTERVAL
                });
                if !repeat {
                    *last_warning = Some((now, from, reason.clone()));
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::NotAuthorized,
                        ("Refused a connection from {from}: {reason}")
                    );
                }
            }
            Event::LossReport(r) => {
                gst::trace!(CAT, imp = self, "loss report {r:?}");
            }
            other => {
                gst::trace!(CAT, imp = self, "event {other:?}");
            }
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
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = common::common_properties(ConnectionMode::Listener);
            props.extend([
                glib::ParamSpecUInt::builder("fec-percent")
                    .nick("FEC percent")
                    .blurb(
                        "Parity share of every FEC block in percent (0 = no FEC; at least 2 parity shards a block when on). Default 20",
                    )
                    .maximum(100)
                    .default_value(DEFAULT_FEC_PERCENT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("fec-mode", DEFAULT_FEC_MODE)
                    .nick("FEC mode")
                    .blurb(
                        "fixed: always fec-percent; adaptive: fec-percent as a floor, raised from the client's loss reports. Default fixed",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("mtu")
                    .nick("MTU")
                    .blurb(
                        "Largest datagram (UDP payload) in bytes; 1400 (default) fits a 1500-byte path with IPv6 and tunnel headers",
                    )
                    .minimum(MIN_MTU as u32)
                    .maximum(MAX_DATAGRAM_BYTES as u32)
                    .default_value(DEFAULT_MTU as u32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("pacing-rate")
                    .nick("Pacing rate")
                    .blurb(
                        "Sending rate after a frame's initial burst, in bits per second (0 = automatic, the default: a frame is spread over half its frame interval, at least 200 Mbit/s). A rate too low to send a frame within one frame interval is raised for that frame, so the streaming thread never blocks longer than a frame interval",
                    )
                    .default_value(DEFAULT_PACING_RATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("dscp")
                    .nick("DSCP")
                    .blurb(
                        "DiffServ code point for outgoing datagrams (0..63, e.g. 46 = EF, 34 = AF41; 0 = leave unmarked, the default)",
                    )
                    .maximum(63)
                    .default_value(DEFAULT_DSCP)
                    .mutable_ready()
                    .build(),
            ]);
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let running = lock(&self.state).is_some();
        let mut settings = lock(&self.settings);
        if pspec.name() == "passphrase" {
            gst::debug!(CAT, imp = self, "passphrase set");
        } else {
            gst::debug!(CAT, imp = self, "set {} = {value:?}", pspec.name());
        }
        if running && pspec.name() != "stats-interval" {
            gst::warning!(
                CAT,
                imp = self,
                "{} changed while running: takes effect at the next start",
                pspec.name()
            );
        }
        if settings.common.set_property(value, pspec) {
            if pspec.name() == "stats-interval" {
                self.stats_interval
                    .store(settings.common.stats_interval_ms, Ordering::Relaxed);
            }
            return;
        }
        match pspec.name() {
            "fec-percent" => settings.fec_percent = value.get().unwrap_or(DEFAULT_FEC_PERCENT),
            "fec-mode" => settings.fec_mode = value.get().unwrap_or(DEFAULT_FEC_MODE),
            "mtu" => settings.mtu = value.get().unwrap_or(DEFAULT_MTU as u32),
            "pacing-rate" => settings.pacing_rate = value.get().unwrap_or(DEFAULT_PACING_RATE),
            "dscp" => settings.dscp = value.get().unwrap_or(DEFAULT_DSCP),
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
            "fec-percent" => settings.fec_percent.to_value(),
            "fec-mode" => settings.fec_mode.to_value(),
            "mtu" => settings.mtu.to_value(),
            "pacing-rate" => settings.pacing_rate.to_value(),
            "dscp" => settings.dscp.to_value(),
            // GObject only asks for readable properties this element installed.
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for PunktfunkSink {}

impl ElementImpl for PunktfunkSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "punktfunk sender",
                "Sink/Network",
                "Sends H.264/H.265 access units over UDP with low latency, FEC, pacing and encryption; turns the receiver's keyframe requests and input into upstream events",
                "punktfunk developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = common::stream_caps();
            // The template is static and well-formed; failing here is a programming error.
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static sink pad template");
            vec![sink]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for PunktfunkSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        gst::debug!(CAT, imp = self, "starting with {settings:?}");
        if let Some(w) = settings.common.security_warning() {
            gst::warning!(CAT, imp = self, "{w}");
            gst::element_imp_warning!(self, gst::ResourceError::Settings, ("{w}"));
        }
        let ep = settings.common.endpoints()?;
        let mut config = settings.common.config(Role::Host, &ep)?;
        config.fec_percent = settings.fec_percent.min(100) as u8;
        config.fec_mode = settings.fec_mode.into();
        config.mtu = settings.mtu as usize;
        config.pacing = PacingConfig {
            rate_bps: settings.pacing_rate,
            ..PacingConfig::default()
        };
        config.validate().map_err(common::session_error)?;
        let opts = UdpOptions {
            dscp: settings.dscp.min(63) as u8,
            ..UdpOptions::default()
        };
        let transport = common::bind_transport(ep.bind, &opts)?;
        let session = Session::new(config, transport).map_err(common::session_error)?;
        let local = session.local_addr();
        match ep.peer {
            Some(peer) => gst::info!(CAT, imp = self, "bound {local}, calling {peer}"),
            None => gst::info!(CAT, imp = self, "listening on {local}"),
        }

        *lock(&self.stream) = Stream::default();
        self.stats_interval
            .store(settings.common.stats_interval_ms, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let weak = self.obj().downgrade();
            let session = session.clone();
            let stop = stop.clone();
            let interval = self.stats_interval.clone();
            std::thread::Builder::new()
                .name("punktfunksink-rx".into())
                .spawn(move || receive_loop(weak, session, stop, interval))
                .map_err(|e| {
                    gst::error_msg!(
                        gst::CoreError::Thread,
                        ("Could not start the receive thread: {e}")
                    )
                })?
        };
        *lock(&self.state) = Some(State {
            session,
            stop,
            thread: Some(thread),
        });
        self.obj().notify("bound-port");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        if let Some(mut state) = state {
            state.stop.store(true, Ordering::Release);
            state.session.wake();
            if let Some(t) = state.thread.take() {
                t.thread().unpark();
                if t.join().is_err() {
                    gst::error!(CAT, imp = self, "receive thread panicked");
                }
            }
            let port = u32::from(state.session.local_addr().port());
            *lock(&self.last_stats) = Some((state.session.stats(), port));
            // Dropping the last clone of the session closes the socket. No bye here: a sink
            // that restarts is a host restart, which the client rides out; EOS says bye.
        }
        lock(&self.stream).params.clear();
        self.obj().notify("bound-port");
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let codec = Codec::from_caps(caps)
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported caps {caps}"))?;
        let session = self
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
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(session) = self.session() else {
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

        match session.submit_frame(frame, keyframe) {
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
        if let gst::EventView::Eos(_) = event.view()
            && let Some(session) = self.session()
        {
            gst::info!(CAT, imp = self, "EOS: saying bye to the client");
            if let Err(e) = session.close() {
                gst::warning!(CAT, imp = self, "bye failed: {e}");
            }
        }
        self.parent_event(event)
    }
}
