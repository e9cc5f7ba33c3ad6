//! Steering the upstream encoder's bitrate (congestion control, `congestion-control=encoder`).
//!
//! Owns: finding the video encoder upstream of the sink (through parsers, queues, capsfilters,
//! tees and bins), knowing which property sets its bitrate and in which unit, remembering the
//! bitrate the user configured (the ceiling), and setting a new one. It never sets a bitrate
//! above that ceiling or below the floor it is given, and never touches an element it does not
//! recognise as a video encoder.

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
        })
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
    super::unsigned_of(&element.property_value(prop)).flatten()
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
