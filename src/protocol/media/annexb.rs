//! H.264 / H.265 Annex-B byte streams: finding the parameter sets (SPS/PPS, and VPS for H.265)
//! at the head of an access unit, and keeping the latest ones so they can be put in front of a
//! keyframe that lacks them (a client that joins late can then decode from its first keyframe).
//!
//! Owns: NAL unit classification and the parameter-set cache. Must never: parse slice data
//! (a frame costs a scan of its few leading small NAL units), allocate per call beyond the cache,
//! or panic on any input — the bytes come from an encoder but are treated as untrusted.

use std::ops::Range;

/// The codec of an Annex-B stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

impl Codec {
    /// The codec of a media type (`video/x-h264`, `video/x-h265`, as GStreamer caps name them).
    pub fn from_media_type(name: &str) -> Option<Codec> {
        match name {
            "video/x-h264" => Some(Codec::H264),
            "video/x-h265" => Some(Codec::H265),
            _ => None,
        }
    }

    /// The media type of this codec (the inverse of [`Codec::from_media_type`]).
    pub fn media_type(self) -> &'static str {
        match self {
            Codec::H264 => "video/x-h264",
            Codec::H265 => "video/x-h265",
        }
    }

    /// What a NAL unit with this header byte is.
    fn classify(self, header: u8) -> NalKind {
        match self {
            // H.264 (ITU-T H.264 table 7-1): 7 = SPS, 8 = PPS, 1..=5 = coded slices.
            Codec::H264 => match header & 0x1f {
                7 => NalKind::Sps,
                8 => NalKind::OtherParameterSet,
                1..=5 => NalKind::Slice,
                _ => NalKind::Other,
            },
            // H.265 (ITU-T H.265 table 7-1): 32 = VPS, 33 = SPS, 34 = PPS, 0..=31 = VCL.
            Codec::H265 => match (header >> 1) & 0x3f {
                33 => NalKind::Sps,
                32 | 34 => NalKind::OtherParameterSet,
                0..=31 => NalKind::Slice,
                _ => NalKind::Other,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalKind {
    Sps,
    OtherParameterSet,
    Slice,
    Other,
}

/// Position of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip ahead by 3 when the third byte cannot end a start code.
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// The parameter-set NAL units (with their start codes) at the head of an Annex-B access unit,
/// up to the first slice, and whether an SPS is among them.
pub fn leading_parameter_sets(codec: Codec, au: &[u8]) -> (Vec<Range<usize>>, bool) {
    let mut ranges = Vec::new();
    let mut has_sps = false;
    let Some(mut sc) = find_start_code(au, 0) else {
        return (ranges, false);
    };
    loop {
        // A four-byte start code (00 00 00 01) belongs to the unit it introduces.
        let unit_start = if sc > 0 && au[sc - 1] == 0 {
            sc - 1
        } else {
            sc
        };
        let payload = sc + 3;
        let Some(&header) = au.get(payload) else {
            break;
        };
        let kind = codec.classify(header);
        // Parameter sets precede the first slice of an access unit: stop there, so a frame
        // costs a scan of its few leading small NAL units, not of its slice data.
        if kind == NalKind::Slice {
            break;
        }
        let next = find_start_code(au, payload);
        if matches!(kind, NalKind::Sps | NalKind::OtherParameterSet) {
            let unit_end = match next {
                Some(n) if n > payload && au[n - 1] == 0 => n - 1,
                Some(n) => n,
                None => au.len(),
            };
            ranges.push(unit_start..unit_end);
            has_sps |= kind == NalKind::Sps;
        }
        match next {
            Some(n) => sc = n,
            None => break,
        }
    }
    (ranges, has_sps)
}

/// Latest parameter sets seen by the host, re-sent in front of keyframes that lack them so a
/// late joiner can decode.
#[derive(Debug, Default)]
pub struct ParameterSets {
    cached: Vec<u8>,
}

impl ParameterSets {
    /// Forgets the cached parameter sets.
    pub fn clear(&mut self) {
        self.cached.clear();
    }

    /// The cached parameter sets, Annex-B framed (empty when none are known).
    pub fn cached(&self) -> &[u8] {
        &self.cached
    }

    /// Looks at an access unit: an AU carrying an SPS replaces the cache with its parameter
    /// sets. Returns the bytes to prepend (the cache) when `keyframe` has no SPS of its own.
    pub fn observe(&mut self, codec: Codec, au: &[u8], keyframe: bool) -> Option<&[u8]> {
        let (ranges, has_sps) = leading_parameter_sets(codec, au);
        if has_sps {
            self.cached.clear();
            for r in ranges {
                self.cached.extend_from_slice(&au[r]);
            }
            return None;
        }
        (keyframe && !self.cached.is_empty()).then_some(&self.cached[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_h264() {
        let sps = [0, 0, 0, 1, 0x67, 1, 2, 3];
        let pps = [0, 0, 0, 1, 0x68, 4, 5];
        let idr = [0, 0, 0, 1, 0x65, 9, 9, 9];
        let aud = [0, 0, 0, 1, 0x09, 0xf0];
        let au: Vec<u8> = [&aud[..], &sps, &pps, &idr].concat();
        let mut p = ParameterSets::default();
        assert_eq!(p.observe(Codec::H264, &au, true), None);
        assert_eq!(p.cached(), [&sps[..], &pps].concat());
        // A keyframe without them gets the cached ones.
        assert_eq!(
            p.observe(Codec::H264, &idr, true),
            Some(&[&sps[..], &pps].concat()[..])
        );
        // A delta frame does not.
        assert_eq!(p.observe(Codec::H264, &[0, 0, 1, 0x41, 7], false), None);
        // Garbage never panics.
        for junk in [&[][..], &[0, 0, 1], &[0, 0, 0, 1], &[1, 2, 3, 0, 0]] {
            let _ = p.observe(Codec::H264, junk, true);
            let _ = p.observe(Codec::H265, junk, true);
        }
    }

    #[test]
    fn parameter_sets_h265() {
        let vps = [0, 0, 0, 1, 0x40, 1, 0xaa];
        let sps = [0, 0, 1, 0x42, 1, 0xbb];
        let pps = [0, 0, 1, 0x44, 1, 0xcc];
        let idr = [0, 0, 1, 0x26, 1, 0xdd];
        let au: Vec<u8> = [&vps[..], &sps, &pps, &idr].concat();
        let (ranges, has_sps) = leading_parameter_sets(Codec::H265, &au);
        assert!(has_sps);
        assert_eq!(ranges.len(), 3);
        assert_eq!(&au[ranges[0].clone()], &vps[..]);
        assert_eq!(&au[ranges[2].clone()], &pps[..]);
    }

    #[test]
    fn media_types_round_trip() {
        for c in [Codec::H264, Codec::H265] {
            assert_eq!(Codec::from_media_type(c.media_type()), Some(c));
        }
        assert_eq!(Codec::from_media_type("video/x-vp9"), None);
    }
}
