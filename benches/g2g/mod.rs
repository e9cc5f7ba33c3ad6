//! The glass-to-glass harness: one GStreamer pipeline per row (live source → real encoder →
//! transport sender → the project's UDP relay → transport receiver → decoder → appsink), with
//! every frame timed on the pipeline's own clock from capture to arrival and to decoding.
//!
//! It owns the row model (a [`Transport`] × [`Codec`] × [`PathSpec`] → [`RowResult`] of
//! per-frame [`FrameRecord`]s) so that later benchmarks (loss models, bottlenecks) can add rows
//! or path kinds without touching the measurement. It never touches the plugin's internals: the
//! elements are used through GStreamer, and the relay only through [`start_relay`].
//!
//! How a frame is followed:
//!
//! - **capture**: a probe on the source's src pad records, per PTS, the running time at which
//!   the raw picture left the source (the source produces a picture and then waits for the
//!   clock, so this is when a camera would have handed it over);
//! - **encoded**: a probe on the encoder's src pad gives the access unit its frame index (by PTS,
//!   which the zero-latency encoders keep), keeps a copy for the reference decode, and records the
//!   fingerprints of its VCL NAL units (see [`annexb`]);
//! - **arrival**: a probe on the receiver's src pad (before parser and decoder) cuts what comes
//!   out into NAL units; a frame has arrived when all of its VCL NAL units came out intact, at the
//!   time the chunk holding the last byte came out. For SRT, whose source emits arbitrary chunks,
//!   that is the chunk that completed the picture, found once the next start code shows;
//! - **decoded**: a probe on the decoder's sink pad names each access unit by fingerprint and tags
//!   it with a `GstReferenceTimestampMeta` (`timestamp/x-g2g-frame`, the frame index) that the
//!   decoder copies to the picture; the appsink records when the picture came out and a checksum
//!   of its visible pixels;
//! - **shown**: after the row, the sender's access units are decoded locally; a picture counts as
//!   shown when its checksum equals the local decode's. Pictures broken by loss (or decoded from a
//!   broken reference) do not count, and their latency is not in the statistics.
//!
//! All probes read the same pipeline clock, so both latencies are exact differences of running
//! times. A row with host and client in two pipelines ([`Transport::PunktfunkSplit`]) gives the
//! client the host's clock and base time, so the same holds across them. Nothing here sleeps to synchronise: the row ends when the receiver decoded a picture a
//! safe margin past the last measured one, or at a deadline when it never does.

pub mod annexb;
pub mod args;
pub mod report;
#[allow(dead_code)] // used by benches/loss_resilience.rs and benches/wan.rs
pub mod synthetic;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use gstpunktfunk::testkit::impair::netem::BottleneckConfig;
use gstpunktfunk::testkit::impair::{ImpairConfig, ImpairStats, LossModel};
use gstpunktfunk::testkit::relay::{Relay, RelayConfig, RelayFlow};

use annexb::{HASH_SEED, NalSyntax, Splitter, hash64, vcl_fingerprints};

/// Caps name of the reference-timestamp meta that carries a frame index through the decoder.
const FRAME_META: &str = "timestamp/x-g2g-frame";

/// How long a row waits after the last measured frame was encoded before giving up on the rest.
const TAIL_DEADLINE: Duration = Duration::from_secs(2);

/// Most time a row may take to reach PAUSED / to decode its reference.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// The encoders compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    X264,
    X265,
}

impl Codec {
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "x264" | "h264" => Some(Codec::X264),
            "x265" | "h265" | "hevc" => Some(Codec::X265),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Codec::X264 => "x264",
            Codec::X265 => "x265",
        }
    }

    pub fn syntax(self) -> NalSyntax {
        match self {
            Codec::X264 => NalSyntax::H264,
            Codec::X265 => NalSyntax::H265,
        }
    }

    /// The encoder as a user of a low-latency link configures it.
    fn encoder(self, bitrate_kbps: u32, key_int: u32) -> String {
        match self {
            Codec::X264 => format!(
                "x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} \
                 threads=1 key-int-max={key_int}"
            ),
            Codec::X265 => format!(
                "x265enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} \
                 key-int-max={key_int} log-level=none"
            ),
        }
    }

    fn media(self) -> &'static str {
        match self {
            Codec::X264 => "video/x-h264",
            Codec::X265 => "video/x-h265",
        }
    }

    fn au_caps(self) -> String {
        format!("{},stream-format=byte-stream,alignment=au", self.media())
    }

    fn parser(self) -> &'static str {
        match self {
            Codec::X264 => "h264parse",
            Codec::X265 => "h265parse",
        }
    }

    fn decoder(self) -> &'static str {
        match self {
            Codec::X264 => "avdec_h264",
            Codec::X265 => "avdec_h265",
        }
    }

    fn rtp(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Codec::X264 => ("rtph264pay", "rtph264depay", "H264"),
            Codec::X265 => ("rtph265pay", "rtph265depay", "H265"),
        }
    }

    fn elements(self) -> [&'static str; 4] {
        match self {
            Codec::X264 => ["x264enc", "h264parse", "avdec_h264", "rtph264pay"],
            Codec::X265 => ["x265enc", "h265parse", "avdec_h265", "rtph265pay"],
        }
    }
}

/// The transports compared, on the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `punktfunksink` → `punktfunksrc` with default properties (apart from sync/async, see
    /// the TODO in [`Transport::pipeline`]), the sink listening, the source calling.
    Punktfunk,
    /// `rtpXpay config-interval=-1 ! udpsink` → `udpsrc ! rtpjitterbuffer latency=0 ! rtpXdepay`:
    /// RTP without any repair.
    Rtp,
    /// `srtsink` (caller) → `srtsrc` (listener) at this latency in ms.
    Srt(u32),
    // Loss resilience rows (benches/loss_resilience.rs).
    /// `punktfunksink mode=caller` → `punktfunksrc mode=listener`, both with
    /// [`PASSPHRASE`], otherwise default properties: the set-up of issue 8.
    PunktfunkCaller,
    // WAN rows (benches/wan.rs).
    /// As [`Transport::Punktfunk`], but host (source, encoder, sink) and client (src, decoder)
    /// in two pipelines of this process, sharing one clock and base time so their running
    /// times compare.
    PunktfunkSplit,
}

/// The passphrase of [`Transport::PunktfunkCaller`] rows.
pub const PASSPHRASE: &str = "g2g-loss-resilience";

impl Transport {
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "punktfunk" => Some(Transport::Punktfunk),
            "rtp" => Some(Transport::Rtp),
            "punktfunk-caller" => Some(Transport::PunktfunkCaller),
            "punktfunk-2p" => Some(Transport::PunktfunkSplit),
            _ => s
                .strip_prefix("srt")
                .and_then(|ms| ms.parse().ok())
                .map(Transport::Srt),
        }
    }

    pub fn label(self) -> String {
        match self {
            Transport::Punktfunk => "punktfunk".into(),
            Transport::Rtp => "rtp".into(),
            Transport::Srt(ms) => format!("srt{ms}"),
            Transport::PunktfunkCaller => "punktfunk-caller".into(),
            Transport::PunktfunkSplit => "punktfunk-2p".into(),
        }
    }

    fn elements(self) -> &'static [&'static str] {
        match self {
            Transport::Punktfunk | Transport::PunktfunkCaller | Transport::PunktfunkSplit => {
                &["punktfunksink", "punktfunksrc"]
            }
            Transport::Rtp => &["udpsink", "udpsrc", "rtpjitterbuffer"],
            Transport::Srt(_) => &["srtsink", "srtsrc"],
        }
    }

    /// Whether the receiver's src pad emits whole access units (else arbitrary chunks).
    fn emits_access_units(self) -> bool {
        !matches!(self, Transport::Srt(_))
    }

    /// The row's pipeline description and the names of its listener, its caller and the element
    /// whose src pad is the arrival point. Ports are placeholders that [`run_row`] sets once the
    /// listener is bound and the relay runs.
    fn pipeline(
        self,
        head: &str,
        codec: Codec,
        tail: &str,
        srt_port: u16,
        sink_props: &str,
    ) -> Layout {
        match self {
            // Default properties, as users run it (sync=false async=false are the sink's defaults).
            Transport::Punktfunk | Transport::PunktfunkSplit => {
                let host =
                    format!("{head} ! punktfunksink name=tx address=127.0.0.1 port=0 {sink_props}");
                let client = format!("punktfunksrc name=rx port=1 ! {tail}");
                Layout {
                    description: format!("{host} {client}"),
                    split: (self == Transport::PunktfunkSplit).then_some((host, client)),
                    listener: "tx",
                    caller: "rx",
                    arrival: "rx",
                }
            }
            // A network sink that waited for the clock would add the pipeline latency (which in
            // one pipeline includes the receiver's) before sending; no sender here does.
            Transport::Rtp => {
                let (pay, depay, name) = codec.rtp();
                Layout {
                    description: format!(
                        "{head} ! {pay} config-interval=-1 ! udpsink name=tx host=127.0.0.1 port=1 \
                         sync=false async=false \
                         udpsrc name=listen address=127.0.0.1 port=0 \
                         caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name={name},payload=96\" \
                         ! rtpjitterbuffer latency=0 ! {depay} name=rx ! {caps} ! {tail}",
                        caps = codec.au_caps()
                    ),
                    split: None,
                    listener: "listen",
                    caller: "tx",
                    arrival: "rx",
                }
            }
            Transport::Srt(ms) => Layout {
                description: format!(
                    "{head} ! srtsink name=tx uri=\"srt://127.0.0.1:1?mode=caller&latency={ms}\" \
                     sync=false async=false \
                     srtsrc name=rx uri=\"srt://127.0.0.1:{srt_port}?mode=listener&latency={ms}\" \
                     ! {media},stream-format=byte-stream ! {tail}",
                    media = codec.media()
                ),
                split: None,
                listener: "rx",
                caller: "tx",
                arrival: "rx",
            },
            Transport::PunktfunkCaller => Layout {
                description: format!(
                    "{head} ! punktfunksink name=tx mode=caller address=127.0.0.1 port=1 \
                     passphrase={PASSPHRASE} {sink_props} \
                     punktfunksrc name=rx mode=listener address=127.0.0.1 port=0 \
                     passphrase={PASSPHRASE} ! {tail}"
                ),
                split: None,
                listener: "rx",
                caller: "tx",
                arrival: "rx",
            },
        }
    }

    /// Whether this is one of the project's own transports (whose elements have `stats`).
    pub fn is_punktfunk(self) -> bool {
        matches!(
            self,
            Transport::Punktfunk | Transport::PunktfunkCaller | Transport::PunktfunkSplit
        )
    }
}

struct Layout {
    description: String,
    /// Two pipelines instead of `description`: (host, client).
    split: Option<(String, String)>,
    listener: &'static str,
    caller: &'static str,
    arrival: &'static str,
}

/// What the relay does to the datagrams, in both directions (independently seeded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathSpec {
    /// Independent random loss, in percent of datagrams.
    pub loss_percent: f64,
    // Loss resilience rows (benches/loss_resilience.rs).
    /// Gilbert-Elliott bursts instead of iid loss: (p good → bad, r bad → good), everything
    /// lost in the bad state (`LossModel::gilbert`). `loss_percent` is then only the label's
    /// and the CSV's mean loss, p / (p + r).
    pub gilbert: Option<(f64, f64)>,
    // WAN rows (benches/wan.rs).
    /// One-way delay of each direction, and its uniform jitter (± this; order kept).
    pub delay: Duration,
    pub jitter: Duration,
}

impl PathSpec {
    /// Independent random loss of `percent` % of datagrams.
    pub fn iid(percent: f64) -> PathSpec {
        PathSpec {
            loss_percent: percent,
            gilbert: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }

    /// Gilbert bursts: good → bad with `p`, bad → good with `r`, all lost in the bad state.
    #[allow(dead_code)] // used by benches/loss_resilience.rs
    pub fn gilbert(p: f64, r: f64) -> PathSpec {
        PathSpec {
            loss_percent: 100.0 * p / (p + r),
            gilbert: Some((p, r)),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }

    /// The same loss over `delay` one way (each direction), jittered by ± `jitter`.
    #[allow(dead_code)] // used by benches/wan.rs
    pub fn with_delay(self, delay: Duration, jitter: Duration) -> PathSpec {
        PathSpec {
            delay,
            jitter,
            ..self
        }
    }

    pub fn label(&self) -> String {
        let loss = if let Some((p, r)) = self.gilbert {
            format!("GE {} %/{} %", p * 100.0, r * 100.0)
        } else if self.loss_percent == 0.0 {
            "none".into()
        } else {
            format!("{} % iid", self.loss_percent)
        };
        if self.delay.is_zero() && self.jitter.is_zero() {
            return loss;
        }
        format!(
            "{loss}, {} ± {} ms",
            self.delay.as_millis(),
            self.jitter.as_millis()
        )
    }

    fn impairment(&self, seed: u64) -> ImpairConfig {
        ImpairConfig {
            seed,
            loss: if let Some((p, r)) = self.gilbert {
                LossModel::gilbert(p, r)
            } else if self.loss_percent > 0.0 {
                LossModel::Iid(self.loss_percent / 100.0)
            } else {
                LossModel::None
            },
            delay: self.delay,
            jitter: self.jitter,
            ..ImpairConfig::default()
        }
    }
}

/// The one place that builds the project's relay: front socket on 127.0.0.1, port 0, forwarding
/// to `upstream` (the listener), with `path` applied to both directions and `bottleneck` (if
/// any) on the way towards the caller (the video direction).
pub fn start_relay(
    upstream: SocketAddr,
    path: &PathSpec,
    seed: u64,
    bottleneck: Option<&BottleneckConfig>,
) -> io::Result<Relay> {
    Relay::start_with(RelayConfig {
        flows: vec![RelayFlow {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            down: path.impairment(seed),
            up: path.impairment(seed ^ 0x5eed_5eed),
        }],
        down_bottleneck: bottleneck.cloned(),
        up_bottleneck: None,
    })
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct RowSpec {
    pub transport: Transport,
    pub codec: Codec,
    pub path: PathSpec,
    /// Frames measured (after the warm-up).
    pub frames: u32,
    /// Frames at the start left out of every statistic (connection set-up).
    pub warmup: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub key_int: u32,
    pub seed: u64,
    // Congestion control rows (benches/congestion.rs).
    /// Extra `punktfunksink` properties (e.g. `congestion-control=none`).
    pub sink_props: String,
    /// A rate limit with a drop-tail queue on the video direction of the relay.
    pub bottleneck: Option<BottleneckConfig>,
}

impl RowSpec {
    /// The elements this row needs that are not installed.
    pub fn missing_elements(&self) -> Vec<&'static str> {
        let mut need = vec!["videotestsrc", "appsink", "appsrc"];
        need.extend(self.codec.elements());
        need.extend(self.transport.elements());
        if self.transport == Transport::Rtp {
            need.push(self.codec.rtp().1);
        }
        need.into_iter()
            .filter(|e| gst::ElementFactory::find(e).is_none())
            .collect()
    }
}

/// What happened to one frame; times are pipeline running times in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct FrameRecord {
    pub index: u32,
    /// The picture's PTS as running time (its nominal capture time).
    pub pts_ns: u64,
    pub capture_ns: u64,
    pub encoded_ns: u64,
    pub bytes: usize,
    pub keyframe: bool,
    pub arrival_ns: Option<u64>,
    pub decoded_ns: Option<u64>,
    /// Decoded and identical to the local decode of the sender's stream.
    pub shown: bool,
}

impl FrameRecord {
    /// How much later than its PTS the source pushed the picture: zero when the machine keeps
    /// up, a backlog when the source and encoder thread is starved of CPU.
    pub fn source_lag_ms(&self) -> f64 {
        self.capture_ns.saturating_sub(self.pts_ns) as f64 / 1e6
    }

    pub fn encoded_ms(&self) -> f64 {
        self.encoded_ns.saturating_sub(self.capture_ns) as f64 / 1e6
    }

    pub fn arrival_ms(&self) -> Option<f64> {
        self.arrival_ns
            .map(|t| t.saturating_sub(self.capture_ns) as f64 / 1e6)
    }

    pub fn decoded_ms(&self) -> Option<f64> {
        if !self.shown {
            return None;
        }
        self.decoded_ns
            .map(|t| t.saturating_sub(self.capture_ns) as f64 / 1e6)
    }
}

/// A finished row: every frame encoded up to the end of the measurement (warm-up included).
#[derive(Debug, Clone)]
pub struct RowResult {
    pub spec: RowSpec,
    pub frames: Vec<FrameRecord>,
    /// Errors posted on the bus, or why the row could not run.
    pub error: Option<String>,
    /// Relay counters: (towards the listener, towards the caller).
    pub relay: (ImpairStats, ImpairStats),
    /// punktfunk rows: the frame age `punktfunksrc` reports in `stats`, read when the last
    /// measured frame arrived.
    pub src_frame_age: Option<SrcFrameAge>,
    /// Sampled every ~100 ms while the row runs (punktfunk rows only).
    pub samples: Vec<Sample>,
    /// Running time at which the receiving side (the caller) was set to PLAYING.
    pub client_start_ns: u64,
}

/// The names `bwe-state` takes (so a [`Sample`] can keep one without allocating).
const BWE_STATES: [&str; 5] = ["off", "startup", "increase", "drain", "hold"];

/// The encoder's bitrate and the sender's estimate at one instant of a row.
#[derive(Debug, Clone, Copy, Default)]
#[allow(dead_code)] // read by benches/congestion.rs, not by glass_to_glass.rs
pub struct Sample {
    /// Seconds since the relay started (the bottleneck's rate schedule counts from then).
    pub t_s: f64,
    /// The encoder's `bitrate` property in kbit/s.
    pub encoder_kbps: u32,
    /// `bwe-estimate` and `bwe-target-bitrate` of the sink's stats, bit/s.
    pub estimate_bps: u64,
    pub target_bps: u64,
    /// `bwe-link-rate` (bit/s) and `bwe-state` ("" before a sample, "?" for a name not known).
    pub link_rate_bps: u64,
    pub state: &'static str,
    /// Frames the receiver pushed so far (`frames-received`) and gave up (`frames-lost`).
    pub frames_received: u64,
    pub frames_lost: u64,
    // Loss resilience (benches/loss_resilience.rs), cumulative counters of the sink's stats:
    /// `data-shards-sent`, `parity-shards-sent`, `repair-shards`, `repair-bytes`,
    /// `payload-bytes-sent`, and its smoothed `rtt-us`.
    pub data_shards: u64,
    pub parity_shards: u64,
    pub repair_shards: u64,
    pub repair_bytes: u64,
    pub payload_bytes: u64,
    /// `parity-bytes-sent` where the sink reports it (0 where it does not).
    pub parity_bytes: u64,
    pub rtt_us: u64,
    /// The src's `repair-requests`, `frames-repaired` and `keyframe-requests`.
    pub repair_requests: u64,
    pub frames_repaired: u64,
    pub keyframe_requests: u64,
    /// The src's `packets-received` and `packets-lost` (the loss it saw: the relay's plus any
    /// socket buffer overrun of a busy machine).
    pub packets_received: u64,
    pub packets_lost: u64,
}

/// `punktfunksrc`'s own frame-age report (issue 6): capture (host PTS) → complete, over the
/// frames it delivered in the second before the newest.
#[derive(Debug, Clone, Copy)]
pub struct SrcFrameAge {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub frames: u64,
    /// Arrival (running time) of the frame at which the stats were read; the window is the
    /// second before it.
    pub read_at_ns: u64,
}

/// Reads the frame-age fields of a `punktfunksrc`'s `stats`.
fn src_frame_age(src: &gst::Element, read_at_ns: u64) -> Option<SrcFrameAge> {
    let s = src.property::<gst::Structure>("stats");
    let us = |f: &str| s.get::<u64>(f).ok();
    Some(SrcFrameAge {
        p50_ms: us("frame-age-p50-us")? as f64 / 1e3,
        p99_ms: us("frame-age-p99-us")? as f64 / 1e3,
        frames: us("frame-age-frames")?,
        read_at_ns,
    })
}

impl RowResult {
    /// The frames that count: after the warm-up, up to the measured number.
    pub fn measured(&self) -> &[FrameRecord] {
        let start = (self.spec.warmup as usize).min(self.frames.len());
        let end = (start + self.spec.frames as usize).min(self.frames.len());
        &self.frames[start..end]
    }

    /// The first frame shown, counting from the start of the row.
    pub fn first_shown(&self) -> Option<u32> {
        self.frames.iter().find(|f| f.shown).map(|f| f.index)
    }
}

/// Per-frame state while the row runs.
#[derive(Default)]
struct Frame {
    record: FrameRecord,
    au: Vec<u8>,
    vcl_arrived: Vec<bool>,
    last_vcl_at: u64,
    checksum: Option<u64>,
}

#[derive(Default)]
struct Recorder {
    capture_by_pts: HashMap<u64, u64>,
    frames: Vec<Frame>,
    by_fingerprint: HashMap<u64, (u32, usize)>,
    arrival: Splitter,
    /// Frames given an index (measured ones plus a margin that tells when to stop).
    limit: u32,
    /// The highest frame index decoded so far.
    newest_decoded: Option<u32>,
    /// Running time the last frame was encoded (for the tail deadline).
    all_encoded_at: Option<Instant>,
    /// The src's frame-age report (punktfunk rows), read once the last measured frame arrived.
    src_frame_age: Option<SrcFrameAge>,
}

impl Recorder {
    fn arrived(&mut self, fingerprint: u64, at: u64) {
        let Some(&(idx, pos)) = self.by_fingerprint.get(&fingerprint) else {
            return;
        };
        let f = &mut self.frames[idx as usize];
        if f.record.arrival_ns.is_some() || f.vcl_arrived[pos] {
            return;
        }
        f.vcl_arrived[pos] = true;
        f.last_vcl_at = f.last_vcl_at.max(at);
        if f.vcl_arrived.iter().all(|&a| a) {
            f.record.arrival_ns = Some(f.last_vcl_at);
        }
    }
}

type Shared = Arc<(Mutex<Recorder>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Recorder> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer's PTS as running time in its pad's segment (encoders may shift PTS — x264enc adds
/// 1000 hours — and compensate in the segment; running time is what stays the same).
fn pts_running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u64> {
    let pts = buffer.pts()?;
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = ev.segment().downcast_ref::<gst::ClockTime>()?;
    seg.to_running_time(pts).map(gst::ClockTime::nseconds)
}

fn running_time(pad: &gst::Pad) -> u64 {
    pad.parent_element()
        .and_then(|e| e.current_running_time())
        .map_or(0, gst::ClockTime::nseconds)
}

/// The port a listener element bound (after its start).
fn bound_port(element: &gst::Element, transport: Transport, srt_port: u16) -> Option<u16> {
    let port = match transport {
        // `port` reads back the bound port once issue 6 lands; `bound-port` until then.
        Transport::Punktfunk | Transport::PunktfunkCaller | Transport::PunktfunkSplit => {
            let p: u32 = element.property("port");
            if p != 0 {
                p
            } else if element.find_property("bound-port").is_some() {
                element.property::<u32>("bound-port")
            } else {
                0
            }
        }
        Transport::Rtp => element.property::<i32>("port").max(0) as u32,
        Transport::Srt(_) => u32::from(srt_port),
    };
    u16::try_from(port).ok().filter(|&p| p != 0)
}

/// `srtsrc` binds the port it is given and cannot report one the kernel chose (it has no
/// read-back property), so for SRT alone a free port is found by binding port 0 and releasing it
/// just before the listener binds it. Another process could take it in between; the row would
/// then fail with an error, not measure the wrong thing.
fn free_udp_port() -> io::Result<u16> {
    let s = UdpSocket::bind(("127.0.0.1", 0))?;
    Ok(s.local_addr()?.port())
}

fn set_caller_port(element: &gst::Element, transport: Transport, port: u16) {
    match transport {
        Transport::Punktfunk | Transport::PunktfunkCaller | Transport::PunktfunkSplit => {
            element.set_property("port", u32::from(port))
        }
        Transport::Rtp => element.set_property("port", i32::from(port)),
        // The URI's query replaces every SRT parameter, so it repeats the latency.
        Transport::Srt(ms) => element.set_property(
            "uri",
            format!("srt://127.0.0.1:{port}?mode=caller&latency={ms}"),
        ),
    }
}

/// A 64-bit checksum of the visible pixels of a decoded picture.
fn picture_checksum(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<u64> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let mut h = HASH_SEED;
    for plane in 0..frame.n_planes() {
        let data = frame.plane_data(plane).ok()?;
        let stride = usize::try_from(*frame.plane_stride().get(plane as usize)?).ok()?;
        let comp = u8::try_from(plane).ok()?;
        let row = info.comp_width(comp) as usize * info.comp_pstride(comp).max(1) as usize;
        for y in 0..info.comp_height(comp) as usize {
            let line = data.get(y * stride..y * stride + row)?;
            h = hash64(line, h);
        }
    }
    Some(h)
}

fn frame_meta(buffer: &gst::BufferRef) -> Option<u32> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|m| {
            m.reference()
                .structure(0)
                .is_some_and(|s| s.name() == FRAME_META)
        })
        .and_then(|m| u32::try_from(m.timestamp().nseconds()).ok())
}

fn tag_frame(buffer: &mut gst::BufferRef, index: u32) {
    let caps = gst::Caps::new_empty_simple(FRAME_META);
    gst::ReferenceTimestampMeta::add(
        buffer,
        &caps,
        gst::ClockTime::from_nseconds(u64::from(index)),
        gst::ClockTime::NONE,
    );
}

fn first_bus_error(bus: &gst::Bus) -> Option<String> {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            return Some(format!("{src}: {}", e.error()));
        }
    }
    None
}

/// Runs one row; never panics on what the pipeline does (errors end up in the result).
pub fn run_row(spec: &RowSpec) -> RowResult {
    let shared: Shared = Arc::new((Mutex::new(Recorder::default()), Condvar::new()));
    let mut result = RowResult {
        spec: spec.clone(),
        frames: Vec::new(),
        error: None,
        relay: Default::default(),
        src_frame_age: None,
        samples: Vec::new(),
        client_start_ns: 0,
    };
    match drive_row(spec, &shared, &mut result) {
        Ok(()) => {}
        Err(e) => result.error = Some(e),
    }
    let mut rec = lock(&shared);
    let total = (spec.warmup + spec.frames) as usize;
    rec.frames.truncate(total);
    if result.error.is_none() || !rec.frames.is_empty() {
        let aus: Vec<Vec<u8>> = rec.frames.iter().map(|f| f.au.clone()).collect();
        match reference_checksums(spec.codec, &aus) {
            Ok(reference) => {
                for (f, r) in rec.frames.iter_mut().zip(reference) {
                    f.record.shown =
                        f.record.decoded_ns.is_some() && r.is_some() && f.checksum == r;
                }
            }
            Err(e) => {
                result.error.get_or_insert(format!("reference decode: {e}"));
            }
        }
    }
    result.frames = rec.frames.iter().map(|f| f.record.clone()).collect();
    result.src_frame_age = rec.src_frame_age;
    result
}

fn drive_row(spec: &RowSpec, shared: &Shared, result: &mut RowResult) -> Result<(), String> {
    let codec = spec.codec;
    let transport = spec.transport;
    let head = format!(
        "videotestsrc name=vsrc is-live=true pattern=snow \
         ! video/x-raw,format=I420,width={},height={},framerate={}/1 ! {} ! {}",
        spec.width,
        spec.height,
        spec.fps,
        codec.encoder(spec.bitrate_kbps, spec.key_int),
        codec.au_caps()
    );
    // Byte-stream into the decoder (the parser would otherwise pick length-prefixed AVC/HVC1,
    // which the decoder-input probe does not read).
    let tail = format!(
        "{} ! {} ! {} name=dec ! appsink name=out sync=false",
        codec.parser(),
        codec.au_caps(),
        codec.decoder()
    );
    let srt_port = match transport {
        Transport::Srt(_) => free_udp_port().map_err(|e| format!("free port: {e}"))?,
        _ => 0,
    };
    let layout = transport.pipeline(&head, codec, &tail, srt_port, &spec.sink_props);
    let launch = |d: &str| -> Result<gst::Pipeline, String> {
        gst::parse::launch(d)
            .map_err(|e| format!("pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())
    };
    // `pipeline` holds the source and encoder (and, with one pipeline, everything); `client`
    // the receiving half when the row runs two pipelines.
    let (pipeline, client) = match &layout.split {
        Some((host, client)) => (launch(host)?, Some(launch(client)?)),
        None => (launch(&layout.description)?, None),
    };
    let by_name = |n: &str| {
        pipeline
            .by_name(n)
            .or_else(|| client.as_ref().and_then(|c| c.by_name(n)))
            .ok_or_else(|| format!("no element {n}"))
    };
    let (vsrc, enc, arrival, dec, out) = (
        by_name("vsrc")?,
        by_name("enc")?,
        by_name(layout.arrival)?,
        by_name("dec")?,
        by_name("out")?,
    );
    let (listener, caller) = (by_name(layout.listener)?, by_name(layout.caller)?);
    lock(shared).limit = spec.warmup + spec.frames + (spec.fps / 4).max(5);
    install_probes(spec, shared, &vsrc, &enc, &arrival, &dec, &out)?;

    let mut buses = vec![pipeline.bus().ok_or("no bus")?];
    if let Some(c) = &client {
        buses.push(c.bus().ok_or("no bus")?);
    }
    let bus_error = || buses.iter().find_map(first_bus_error);
    let outcome = (|| -> Result<(), String> {
        // The caller stays in NULL until the relay exists and it knows where to call.
        caller.set_locked_state(true);
        let first = if client.is_some() {
            gst::State::Playing
        } else {
            gst::State::Paused
        };
        pipeline
            .set_state(first)
            .map_err(|_| bus_error().unwrap_or_else(|| format!("{first:?} failed")))?;
        if client.is_some() {
            // Clock and base time are chosen once the host is PLAYING.
            let (done, ..) = pipeline.state(gst::ClockTime::from_seconds(STATE_TIMEOUT.as_secs()));
            done.map_err(|_| bus_error().unwrap_or_else(|| "host PLAYING failed".into()))?;
        }
        let port = bound_port(&listener, transport, srt_port)
            .ok_or_else(|| format!("{} did not report a bound port", layout.listener))?;
        let relay = start_relay(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &spec.path,
            spec.seed,
            spec.bottleneck.as_ref(),
        )
        .map_err(|e| format!("relay: {e}"))?;
        let relay_start = Instant::now();
        set_caller_port(&caller, transport, relay.addr().port());
        caller.set_locked_state(false);
        match &client {
            // The client's running time is the host's: one clock, one base time.
            Some(c) => {
                c.use_clock(Some(
                    &pipeline.clock().ok_or("the host pipeline has no clock")?,
                ));
                c.set_start_time(gst::ClockTime::NONE);
                c.set_base_time(pipeline.base_time().ok_or("the host has no base time")?);
                c.set_state(gst::State::Playing)
            }
            None => pipeline.set_state(gst::State::Playing),
        }
        .map_err(|_| bus_error().unwrap_or_else(|| "PLAYING failed".into()))?;
        result.client_start_ns = pipeline
            .current_running_time()
            .map_or(0, gst::ClockTime::nseconds);
        let sample = |samples: &mut Vec<Sample>| {
            if !transport.is_punktfunk() {
                return;
            }
            // The sink is "tx" and the src "rx" whichever of them listens.
            let (tx, rx) = if layout.listener == "tx" {
                (&listener, &caller)
            } else {
                (&caller, &listener)
            };
            let stats = tx.property::<gst::Structure>("stats");
            let rx = rx.property::<gst::Structure>("stats");
            let get = |s: &gst::Structure, f: &str| s.get::<u64>(f).unwrap_or(0);
            samples.push(Sample {
                t_s: relay_start.elapsed().as_secs_f64(),
                encoder_kbps: enc.property::<u32>("bitrate"),
                estimate_bps: get(&stats, "bwe-estimate"),
                target_bps: get(&stats, "bwe-target-bitrate"),
                link_rate_bps: get(&stats, "bwe-link-rate"),
                state: stats.get::<&str>("bwe-state").map_or("?", |n| {
                    BWE_STATES.into_iter().find(|s| *s == n).unwrap_or("?")
                }),
                frames_received: get(&rx, "frames-received"),
                frames_lost: get(&rx, "frames-lost"),
                // Loss resilience (issue 8).
                data_shards: get(&stats, "data-shards-sent"),
                parity_shards: get(&stats, "parity-shards-sent"),
                repair_shards: get(&stats, "repair-shards"),
                repair_bytes: get(&stats, "repair-bytes"),
                payload_bytes: get(&stats, "payload-bytes-sent"),
                parity_bytes: get(&stats, "parity-bytes-sent"),
                rtt_us: get(&stats, "rtt-us"),
                repair_requests: get(&rx, "repair-requests"),
                frames_repaired: get(&rx, "frames-repaired"),
                keyframe_requests: get(&rx, "keyframe-requests"),
                packets_received: get(&rx, "packets-received"),
                packets_lost: get(&rx, "packets-lost"),
            });
        };
        let waited = wait_for_end(
            spec,
            shared,
            &buses,
            &mut |s| sample(s),
            &mut result.samples,
        );
        result.relay = (relay.up_stats(), relay.down_stats());
        waited
    })();
    // The receiving half first, so the host's goodbye does not race a client still running.
    if let Some(c) = &client {
        let _ = c.set_state(gst::State::Null);
    }
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// Waits until a picture decoded well past the last measured frame, or the tail deadline passed,
/// or the pipeline posted an error.
fn wait_for_end(
    spec: &RowSpec,
    shared: &Shared,
    buses: &[gst::Bus],
    sample: &mut dyn FnMut(&mut Vec<Sample>),
    samples: &mut Vec<Sample>,
) -> Result<(), String> {
    const SAMPLE_EVERY: Duration = Duration::from_millis(100);
    let mut next_sample = Instant::now();
    let last = spec.warmup + spec.frames;
    // Enough to notice a stalled pipeline, not to cut short a slow encoder: the whole row three
    // times over plus set-up.
    let row_deadline =
        Instant::now() + Duration::from_secs_f64(3.0 * last as f64 / spec.fps as f64 + 15.0);
    let mut rec = lock(shared);
    loop {
        if Instant::now() >= next_sample {
            // Reading element properties must not hold the recorder (probes take it).
            drop(rec);
            sample(samples);
            next_sample += SAMPLE_EVERY;
            rec = lock(shared);
        }
        if let Some(e) = buses.iter().find_map(first_bus_error) {
            return Err(e);
        }
        if rec.newest_decoded.is_some_and(|n| n + 1 >= rec.limit) {
            return Ok(());
        }
        let now = Instant::now();
        if rec.all_encoded_at.is_some_and(|t| now >= t + TAIL_DEADLINE) {
            return Ok(());
        }
        if now >= row_deadline {
            return Err(format!(
                "row did not finish in time ({} frames encoded, newest decoded {:?})",
                rec.frames.len(),
                rec.newest_decoded
            ));
        }
        // Woken by every decoded picture; the timeout only re-checks the bus and the deadlines.
        rec = shared
            .1
            .wait_timeout(rec, Duration::from_millis(50))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn install_probes(
    spec: &RowSpec,
    shared: &Shared,
    vsrc: &gst::Element,
    enc: &gst::Element,
    arrival: &gst::Element,
    dec: &gst::Element,
    out: &gst::Element,
) -> Result<(), String> {
    let pad = |e: &gst::Element, n: &str| {
        e.static_pad(n)
            .ok_or_else(|| format!("{} has no {n} pad", e.name()))
    };
    let syntax = spec.codec.syntax();

    // Capture: when the raw picture leaves the source.
    let s = shared.clone();
    pad(vsrc, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(pts) = info.buffer().and_then(|b| pts_running_time(pad, b)) {
            let now = running_time(pad);
            let mut rec = lock(&s);
            rec.capture_by_pts.insert(pts, now);
        }
        gst::PadProbeReturn::Ok
    });

    // Encoded: index, fingerprints, a copy for the reference decode.
    let s = shared.clone();
    pad(enc, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let now = running_time(pad);
        let Ok(map) = buffer.map_readable() else {
            return gst::PadProbeReturn::Ok;
        };
        let vcl = vcl_fingerprints(syntax, &map);
        let mut rec = lock(&s);
        let index = rec.frames.len() as u32;
        if index >= rec.limit {
            return gst::PadProbeReturn::Ok;
        }
        let pts_ns = pts_running_time(pad, buffer).unwrap_or(0);
        let capture_ns = rec.capture_by_pts.remove(&pts_ns).unwrap_or(now);
        for (pos, fp) in vcl.iter().enumerate() {
            rec.by_fingerprint.entry(*fp).or_insert((index, pos));
        }
        rec.frames.push(Frame {
            record: FrameRecord {
                index,
                pts_ns,
                capture_ns,
                encoded_ns: now,
                bytes: map.len(),
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                ..FrameRecord::default()
            },
            au: map.to_vec(),
            vcl_arrived: vec![false; vcl.len()],
            ..Frame::default()
        });
        if index + 1 == rec.limit {
            rec.all_encoded_at = Some(Instant::now());
        }
        gst::PadProbeReturn::Ok
    });

    // Arrival: what the receiver emits, cut into NAL units.
    let s = shared.clone();
    let whole_aus = spec.transport.emits_access_units();
    let last_measured = (spec.warmup + spec.frames) as usize - 1;
    // punktfunksrc: its stats are read in this probe, on the thread that drives its session,
    // so the report covers exactly the frames delivered up to the last measured one.
    let src = arrival
        .factory()
        .is_some_and(|f| f.name() == "punktfunksrc");
    let src_element = arrival.downgrade();
    pad(arrival, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let now = running_time(pad);
        let Ok(map) = buffer.map_readable() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut guard = lock(&s);
        let rec = &mut *guard;
        let mut done = Vec::new();
        let mut take = |n: annexb::Nal<'_>| {
            if syntax.is_vcl(n.bytes) {
                done.push((hash64(n.bytes, HASH_SEED), n.last_byte_at));
            }
        };
        rec.arrival.push(&map, now, &mut take);
        if whole_aus {
            rec.arrival.flush(&mut take);
        }
        for (fp, at) in done {
            rec.arrived(fp, at);
        }
        if src
            && rec.src_frame_age.is_none()
            && let Some(at) = rec
                .frames
                .get(last_measured)
                .and_then(|f| f.record.arrival_ns)
        {
            rec.src_frame_age = src_element.upgrade().and_then(|e| src_frame_age(&e, at));
        }
        gst::PadProbeReturn::Ok
    });

    // Decoder input: name the access unit so the picture can be named.
    let s = shared.clone();
    pad(dec, "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_pad, info| {
        let index = {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(map) = buffer.map_readable() else {
                return gst::PadProbeReturn::Ok;
            };
            let rec = lock(&s);
            vcl_fingerprints(syntax, &map)
                .iter()
                .find_map(|fp| rec.by_fingerprint.get(fp).map(|&(i, _)| i))
        };
        if let (Some(index), Some(buffer)) = (index, info.buffer_mut()) {
            tag_frame(buffer.make_mut(), index);
        }
        gst::PadProbeReturn::Ok
    });

    // Decoded: when the picture came out, and what it looks like.
    let appsink = out
        .clone()
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "out is not an appsink".to_string())?;
    let s = shared.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let now = sink
                    .current_running_time()
                    .map_or(0, gst::ClockTime::nseconds);
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Some(index) = frame_meta(buffer) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let checksum = gst_video::VideoInfo::from_caps(caps)
                    .ok()
                    .and_then(|info| picture_checksum(buffer, &info));
                let mut rec = lock(&s);
                if let Some(f) = rec.frames.get_mut(index as usize)
                    && f.record.decoded_ns.is_none()
                {
                    f.record.decoded_ns = Some(now);
                    f.checksum = checksum;
                }
                rec.newest_decoded = rec.newest_decoded.max(Some(index));
                s.1.notify_all();
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// Decodes the sender's access units with the same parser and decoder, returning each picture's
/// checksum (by frame index; `None` where the decoder produced nothing).
fn reference_checksums(codec: Codec, aus: &[Vec<u8>]) -> Result<Vec<Option<u64>>, String> {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=in format=time caps={caps} ! {} ! {caps} ! {} ! appsink name=out sync=false",
        codec.parser(),
        codec.decoder(),
        caps = codec.au_caps(),
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline".to_string())?;
    let appsrc = pipeline
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    let appsink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let sums: Arc<Mutex<Vec<Option<u64>>>> = Arc::new(Mutex::new(vec![None; aus.len()]));
    let s = sums.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps())
                    && let Some(index) = frame_meta(buffer)
                    && let Ok(info) = gst_video::VideoInfo::from_caps(caps)
                {
                    let mut v = s.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = v.get_mut(index as usize) {
                        *slot = picture_checksum(buffer, &info);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    // 1/60 s per frame; the exact value does not matter, only that it increases.
    let duration = gst::ClockTime::from_nseconds(16_666_667);
    for (i, au) in aus.iter().enumerate() {
        let mut b = gst::Buffer::from_slice(au.clone());
        {
            let b = b.get_mut().ok_or("fresh buffer not writable")?;
            b.set_pts(duration * i as u64);
            b.set_duration(duration);
            tag_frame(b, i as u32);
        }
        appsrc.push_buffer(b).map_err(|e| format!("push: {e:?}"))?;
    }
    appsrc.end_of_stream().map_err(|e| format!("eos: {e:?}"))?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(STATE_TIMEOUT.as_secs() + aus.len() as u64 / 20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => return Err(e.error().to_string()),
        _ => return Err("timed out".into()),
    }
    let v = sums.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(v)
}
