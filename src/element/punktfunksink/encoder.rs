//! Steering the upstream encoder's bitrate (congestion control, `congestion-control=encoder`).
//!
//! Owns: finding the video encoder upstream of the sink (through parsers, queues, capsfilters,
//! tees and bins), knowing which property sets its bitrate and in which unit, remembering the
//! bitrate the user configured (the ceiling), and setting a new one. It never sets a bitrate
//! above that ceiling or below the floor it is given, and never touches an element it does not
//! recognise as a video encoder.
//!
//! It also bounds the encoder's rate-control buffer (VBV / CPB, `encoder-buffer` on the sink, 34 ms
//! by default, 0 = leave it): that buffer is what lets one frame be much larger than the average.
//! x264enc's default of 600 ms lets a keyframe of a 12 Mbit/s stream be 120–470 kB, 5–20 average
//! frames: at the bottleneck it takes 80–300 ms to cross, every frame behind it waits, and a 50 ms
//! drop-tail queue overflows. Bounded to two frames (34 ms at 60 fps) keyframes are about twice a
//! P-frame (measured with `pattern=snow`, 12 Mbit/s: 40–45 kB against 22 kB). The bound only ever
//! lowers the encoder's buffer (a smaller one the user set stays), in the encoder's own unit:
//! milliseconds (x264enc, vaapih26xenc) or kbit (nvenc, va), the latter rescaled with every bitrate
//! set. Encoders whose buffer cannot be set while they run (x265enc's `option-string`)
//! or that are not known here are left as they are.

use gst::prelude::*;

/// How an encoder's bitrate property counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitrateUnit {
    /// kbit/s (x264enc, x265enc, nvh264enc, vaapih264enc, vah264enc, qsv, msdk, amf, …).
    Kbps,
    /// bit/s (openh264enc, mpph264enc's `bps`).
    Bps,
}

/// Known encoders: factory name prefix → (property, unit). Checked before the generic rule.
const KNOWN: &[(&str, &str, BitrateUnit)] = &[
    ("x264enc", "bitrate", BitrateUnit::Kbps),
    ("x265enc", "bitrate", BitrateUnit::Kbps),
    ("nvh264enc", "bitrate", BitrateUnit::Kbps),
    ("nvh265enc", "bitrate", BitrateUnit::Kbps),
    ("nvcudah264enc", "bitrate", BitrateUnit::Kbps),
    ("nvcudah265enc", "bitrate", BitrateUnit::Kbps),
    ("nvautogpuh264enc", "bitrate", BitrateUnit::Kbps),
    ("nvautogpuh265enc", "bitrate", BitrateUnit::Kbps),
    ("vaapih264enc", "bitrate", BitrateUnit::Kbps),
    ("vaapih265enc", "bitrate", BitrateUnit::Kbps),
    ("vah264enc", "bitrate", BitrateUnit::Kbps),
    ("vah265enc", "bitrate", BitrateUnit::Kbps),
    ("vah264lpenc", "bitrate", BitrateUnit::Kbps),
    ("vah265lpenc", "bitrate", BitrateUnit::Kbps),
    ("qsvh264enc", "bitrate", BitrateUnit::Kbps),
    ("qsvh265enc", "bitrate", BitrateUnit::Kbps),
    ("msdkh264enc", "bitrate", BitrateUnit::Kbps),
    ("msdkh265enc", "bitrate", BitrateUnit::Kbps),
    ("amfh264enc", "bitrate", BitrateUnit::Kbps),
    ("amfh265enc", "bitrate", BitrateUnit::Kbps),
    ("openh264enc", "bitrate", BitrateUnit::Bps),
    ("mpph264enc", "bps", BitrateUnit::Bps),
    ("mpph265enc", "bps", BitrateUnit::Bps),
];

/// How an encoder's rate-control buffer size counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferUnit {
    /// Milliseconds of the bitrate (x264enc `vbv-buf-capacity`, vaapi `cpb-length`).
    Millis,
    /// kbit (nvenc `vbv-buffer-size`, va `cpb-size`; 0 there means the encoder's default).
    Kbits,
}

/// Known encoders: factory name → (buffer property, unit).
const KNOWN_BUFFER: &[(&str, &str, BufferUnit)] = &[
    ("x264enc", "vbv-buf-capacity", BufferUnit::Millis),
    ("vaapih264enc", "cpb-length", BufferUnit::Millis),
    ("vaapih265enc", "cpb-length", BufferUnit::Millis),
    ("nvh264enc", "vbv-buffer-size", BufferUnit::Kbits),
    ("nvh265enc", "vbv-buffer-size", BufferUnit::Kbits),
    ("nvcudah264enc", "vbv-buffer-size", BufferUnit::Kbits),
    ("nvcudah265enc", "vbv-buffer-size", BufferUnit::Kbits),
    ("nvautogpuh264enc", "vbv-buffer-size", BufferUnit::Kbits),
    ("nvautogpuh265enc", "vbv-buffer-size", BufferUnit::Kbits),
    ("vah264enc", "cpb-size", BufferUnit::Kbits),
    ("vah265enc", "cpb-size", BufferUnit::Kbits),
    ("vah264lpenc", "cpb-size", BufferUnit::Kbits),
    ("vah265lpenc", "cpb-size", BufferUnit::Kbits),
];

/// Which property and unit size `element`'s rate-control buffer, if we know it.
fn buffer_property(element: &gst::Element) -> Option<(&'static str, BufferUnit)> {
    let name = element.factory()?.name();
    let &(_, prop, unit) = KNOWN_BUFFER.iter().find(|(n, _, _)| name.as_str() == *n)?;
    element.find_property(prop).map(|_| (prop, unit))
}

/// The encoder's rate-control buffer as bounded by the sink.
#[derive(Debug, Clone)]
struct BufferBound {
    property: &'static str,
    unit: BufferUnit,
    /// What the encoder had when found (its own unit; 0 = the encoder's default).
    configured: u64,
    /// The bound, in milliseconds of the bitrate.
    ms: u64,
}

impl BufferBound {
    /// The value to set at `bitrate_bps`: the bound in the encoder's unit, never above a
    /// non-zero configured value, at least 1.
    fn value_at(&self, bitrate_bps: u64) -> u64 {
        let bound = match self.unit {
            BufferUnit::Millis => self.ms,
            BufferUnit::Kbits => bitrate_bps.saturating_mul(self.ms) / 1_000_000,
        };
        let bound = bound.max(1);
        if self.configured > 0 {
            bound.min(self.configured)
        } else {
            bound
        }
    }
}

/// Upstream hops searched before giving up (parsers, queues, capsfilters, converters).
const MAX_HOPS: usize = 32;

/// Which property and unit steer `element`'s bitrate, if it is a video encoder we can drive.
pub(crate) fn bitrate_property(element: &gst::Element) -> Option<(&'static str, BitrateUnit)> {
    let factory = element.factory()?;
    let name = factory.name();
    if let Some(&(_, prop, unit)) = KNOWN.iter().find(|(n, _, _)| name.as_str() == *n) {
        return element.find_property(prop).map(|_| (prop, unit));
    }
    let klass = factory.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or("");
    if !(klass.contains("Encoder") && klass.contains("Video")) {
        return None;
    }
    // An encoder we do not know: use a `bitrate` property whose description names its unit.
    let pspec = element.find_property("bitrate")?;
    let blurb = pspec.blurb().unwrap_or("").to_ascii_lowercase();
    let unit = if blurb.contains("kbit") || blurb.contains("kbps") {
        BitrateUnit::Kbps
    } else if blurb.contains("bit/s") || blurb.contains("bps") || blurb.contains("bits per") {
        BitrateUnit::Bps
    } else {
        return None;
    };
    Some(("bitrate", unit))
}

/// The element that actually produces data for `pad` (through ghost pads and proxies).
fn producer_of(pad: &gst::Pad) -> Option<(gst::Element, gst::Pad)> {
    let mut peer = pad.peer()?;
    for _ in 0..MAX_HOPS {
        // A bin's ghost src pad: follow it to its target inside the bin.
        if let Some(ghost) = peer.downcast_ref::<gst::GhostPad>() {
            peer = ghost.target()?;
            continue;
        }
        let parent = peer.parent_element()?;
        return Some((parent, peer));
    }
    None
}

/// Walks upstream from `sinkpad` to the first video encoder with a bitrate we know how to set.
/// Elements with one sink pad (parsers, queues, capsfilters, tees) are passed through.
pub(crate) fn find_upstream_encoder(sinkpad: &gst::Pad) -> Option<gst::Element> {
    let mut pad = sinkpad.clone();
    for _ in 0..MAX_HOPS {
        let (element, _) = producer_of(&pad)?;
        if bitrate_property(&element).is_some() {
            return Some(element);
        }
        let mut sinks = element.sink_pads().into_iter();
        let next = sinks.next()?;
        if sinks.next().is_some() {
            // A muxer or compositor: its input is not one stream we can steer.
            return None;
        }
        pad = next;
    }
    None
}

/// A found encoder and the range it may be driven in.
#[derive(Debug, Clone)]
pub(crate) struct EncoderControl {
    element: gst::Element,
    property: &'static str,
    unit: BitrateUnit,
    /// The bitrate set on the encoder when it was found (bit/s): never exceeded.
    configured_bps: u64,
    last_set_bps: u64,
    buffer: Option<BufferBound>,
}

impl EncoderControl {
    /// Wraps `element` if it is an encoder we can steer; reads its configured bitrate.
    pub(crate) fn new(element: gst::Element) -> Option<EncoderControl> {
        let (property, unit) = bitrate_property(&element)?;
        let raw = read_uint(&element, property)?;
        let configured_bps = to_bps(raw, unit);
        Some(EncoderControl {
            element,
            property,
            unit,
            configured_bps,
            last_set_bps: configured_bps,
            buffer: None,
        })
    }

    /// Bounds the encoder's rate-control buffer to `ms` milliseconds of its bitrate (never
    /// raising a smaller one). Returns `(property, before, after)` in the encoder's unit, or
    /// `None` when the encoder's buffer is not known or `ms` is 0.
    pub(crate) fn bound_buffer(&mut self, ms: u64) -> Option<(&'static str, u64, u64)> {
        if ms == 0 {
            return None;
        }
        let (property, unit) = buffer_property(&self.element)?;
        let configured = read_uint(&self.element, property)?;
        let bound = BufferBound {
            property,
            unit,
            configured,
            ms,
        };
        let value = bound.value_at(self.last_set_bps);
        if value != configured && !write_uint(&self.element, property, value) {
            return None;
        }
        self.buffer = Some(bound);
        Some((property, configured, value))
    }

    pub(crate) fn element(&self) -> &gst::Element {
        &self.element
    }

    pub(crate) fn configured_bps(&self) -> u64 {
        self.configured_bps
    }

    pub(crate) fn current_bps(&self) -> u64 {
        self.last_set_bps
    }

    /// Sets the encoder's bitrate to `bps`, clamped to `[min_bps, ceiling]` where the ceiling is
    /// the configured bitrate (or `max_bps` when that is lower and non-zero). Returns what was
    /// set (bit/s), or `None` when nothing changed.
    pub(crate) fn set_bps(&mut self, bps: u64, min_bps: u64, max_bps: u64) -> Option<u64> {
        let mut ceiling = self.configured_bps;
        if max_bps > 0 {
            ceiling = ceiling.min(max_bps);
        }
        let target = bps.min(ceiling).max(min_bps.min(ceiling));
        let raw = from_bps(target, self.unit).max(1);
        let set = to_bps(raw, self.unit);
        if set == self.last_set_bps {
            return None;
        }
        if !write_uint(&self.element, self.property, raw) {
            return None;
        }
        self.last_set_bps = set;
        // A buffer in kbit holds fewer milliseconds at a higher bitrate: rescale it.
        if let Some(b) = self.buffer.as_ref().filter(|b| b.unit == BufferUnit::Kbits) {
            write_uint(&self.element, b.property, b.value_at(set));
        }
        Some(set)
    }
}

fn to_bps(raw: u64, unit: BitrateUnit) -> u64 {
    match unit {
        BitrateUnit::Kbps => raw.saturating_mul(1000),
        BitrateUnit::Bps => raw,
    }
}

fn from_bps(bps: u64, unit: BitrateUnit) -> u64 {
    match unit {
        BitrateUnit::Kbps => bps / 1000,
        BitrateUnit::Bps => bps,
    }
}

fn read_uint(element: &gst::Element, prop: &str) -> Option<u64> {
    crate::element::unsigned_of(&element.property_value(prop)).flatten()
}

/// Writes an integer property of whatever integer type it has, clamped to the spec's range.
fn write_uint(element: &gst::Element, prop: &str, raw: u64) -> bool {
    let Some(pspec) = element.find_property(prop) else {
        return false;
    };
    let value: gst::glib::Value = if let Some(p) = pspec.downcast_ref::<gst::glib::ParamSpecUInt>()
    {
        (raw.clamp(u64::from(p.minimum()), u64::from(p.maximum())) as u32).to_value()
    } else if let Some(p) = pspec.downcast_ref::<gst::glib::ParamSpecInt>() {
        (raw.clamp(p.minimum().max(0) as u64, p.maximum().max(0) as u64) as i32).to_value()
    } else if let Some(p) = pspec.downcast_ref::<gst::glib::ParamSpecUInt64>() {
        raw.clamp(p.minimum(), p.maximum()).to_value()
    } else if let Some(p) = pspec.downcast_ref::<gst::glib::ParamSpecInt64>() {
        (raw.clamp(p.minimum().max(0) as u64, p.maximum().max(0) as u64) as i64).to_value()
    } else {
        return false;
    };
    element.set_property_from_value(prop, &value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        let _ = gst::init();
    }

    #[test]
    fn finds_x264enc_through_parser_queue_and_capsfilter_and_steers_it_in_kbps() {
        init();
        if gst::ElementFactory::find("x264enc").is_none() {
            panic!("x264enc missing: run scripts/setup.sh");
        }
        let p = gst::parse::launch(
            "videotestsrc ! x264enc name=enc bitrate=20000 ! queue ! h264parse ! \
             capsfilter caps=video/x-h264,alignment=au ! fakesink name=sink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = p.by_name("sink").unwrap();
        let pad = sink.static_pad("sink").unwrap();
        let enc = find_upstream_encoder(&pad).expect("encoder found");
        assert_eq!(enc.name(), "enc");
        let mut c = EncoderControl::new(enc.clone()).unwrap();
        assert_eq!(c.configured_bps(), 20_000_000);
        assert_eq!(c.set_bps(8_500_000, 500_000, 0), Some(8_500_000));
        assert_eq!(enc.property::<u32>("bitrate"), 8_500);
        // Never above what the user configured, never below the floor.
        assert_eq!(c.set_bps(50_000_000, 500_000, 0), Some(20_000_000));
        assert_eq!(enc.property::<u32>("bitrate"), 20_000);
        assert_eq!(c.set_bps(10_000, 500_000, 0), Some(500_000));
        assert_eq!(c.set_bps(10_000, 500_000, 0), None, "unchanged: no write");
        // A lower max-bitrate caps it further.
        assert_eq!(c.set_bps(50_000_000, 0, 12_000_000), Some(12_000_000));
    }

    #[test]
    fn x264enc_buffer_is_bounded_in_milliseconds_and_never_raised() {
        init();
        let enc = gst::ElementFactory::make("x264enc")
            .property("bitrate", 12_000u32)
            .build()
            .expect("x264enc (scripts/setup.sh)");
        assert_eq!(
            enc.property::<u32>("vbv-buf-capacity"),
            600,
            "x264enc's default"
        );
        let mut c = EncoderControl::new(enc.clone()).unwrap();
        assert_eq!(c.bound_buffer(34), Some(("vbv-buf-capacity", 600, 34)));
        assert_eq!(enc.property::<u32>("vbv-buf-capacity"), 34);
        // Milliseconds do not depend on the bitrate: a new bitrate leaves the buffer alone.
        c.set_bps(4_000_000, 500_000, 0);
        assert_eq!(enc.property::<u32>("vbv-buf-capacity"), 34);
        // A smaller buffer the user set stays; 0 leaves the encoder alone.
        let enc = gst::ElementFactory::make("x264enc")
            .property("vbv-buf-capacity", 20u32)
            .build()
            .unwrap();
        let mut c = EncoderControl::new(enc.clone()).unwrap();
        assert_eq!(c.bound_buffer(34), Some(("vbv-buf-capacity", 20, 20)));
        assert_eq!(c.bound_buffer(0), None);
        assert_eq!(enc.property::<u32>("vbv-buf-capacity"), 20);
    }

    #[test]
    fn a_buffer_in_kbit_follows_the_bitrate_and_keeps_a_smaller_configured_one() {
        let b = BufferBound {
            property: "vbv-buffer-size",
            unit: BufferUnit::Kbits,
            configured: 0,
            ms: 34,
        };
        // 0 = the encoder's default: bounded to 34 ms of the bitrate.
        assert_eq!(b.value_at(20_000_000), 680);
        assert_eq!(b.value_at(4_000_000), 136);
        assert_eq!(b.value_at(10_000), 1, "never 0 (0 means the default again)");
        let b = BufferBound {
            configured: 300,
            ..b
        };
        assert_eq!(b.value_at(20_000_000), 300);
        assert_eq!(b.value_at(4_000_000), 136);
        let m = BufferBound {
            unit: BufferUnit::Millis,
            configured: 600,
            ..b
        };
        assert_eq!(m.value_at(20_000_000), 34);
    }

    #[test]
    fn encoders_inside_a_bin_are_found_through_ghost_pads() {
        init();
        let p = gst::parse::launch(
            "videotestsrc ! bin.( x264enc name=inner bitrate=3000 ! h264parse ) ! fakesink name=sink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let pad = p.by_name("sink").unwrap().static_pad("sink").unwrap();
        let enc = find_upstream_encoder(&pad).expect("encoder inside bin");
        assert_eq!(enc.name(), "inner");
    }

    #[test]
    fn no_encoder_upstream_means_none() {
        init();
        let p = gst::parse::launch("videotestsrc ! queue ! fakesink name=sink")
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let pad = p.by_name("sink").unwrap().static_pad("sink").unwrap();
        assert!(find_upstream_encoder(&pad).is_none());
        // A non-encoder is never wrapped.
        let q = gst::ElementFactory::make("queue").build().unwrap();
        assert!(EncoderControl::new(q).is_none());
    }

    #[test]
    fn units_convert_both_ways() {
        assert_eq!(to_bps(8_000, BitrateUnit::Kbps), 8_000_000);
        assert_eq!(from_bps(8_000_999, BitrateUnit::Kbps), 8_000);
        assert_eq!(to_bps(123, BitrateUnit::Bps), 123);
        assert_eq!(from_bps(123, BitrateUnit::Bps), 123);
    }
}
