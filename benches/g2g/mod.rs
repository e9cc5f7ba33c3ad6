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
#[allow(dead_code)] // used by benches/loss_resilience.rs and benches/wan/
pub mod synthetic;

mod path;
mod record;
mod row;

pub use path::*;
pub use record::*;
pub use row::*;

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
    /// [`PASSPHRASE`], otherwise default properties: the loss-resilience set-up.
    PunktfunkCaller,
    // WAN rows (benches/wan/).
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
