//! The caps both elements carry — H.264 and H.265 byte-stream, one access unit per buffer, on
//! the video pads; Opus packets on the `audio` pads — and the codec a caps structure names.
//!
//! Owns: the pad templates and which audio caps the `audio` pads take. Must never: accept
//! another stream format or alignment on the video pads (the protocol carries whole Annex-B
//! access units, one per frame), or audio other than Opus at 48 kHz in one or two channels.

use crate::protocol::media::annexb::Codec;

/// Name of the audio pads: the sink's request pad and the src's sometimes pad.
pub(crate) const AUDIO_PAD: &str = "audio";

/// The caps of both video pads: H.264 and H.265 byte-stream, one access unit per buffer.
pub(crate) fn stream_caps() -> gst::Caps {
    let codec = |c: Codec| {
        gst::Structure::builder(c.media_type())
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build()
    };
    gst::Caps::builder_full()
        .structure(codec(Codec::H264))
        .structure(codec(Codec::H265))
        .build()
}

/// The caps of the audio pads: Opus, 48 kHz, mono or stereo (channel mapping family 0, the
/// only one `opusenc` uses for up to two channels).
pub(crate) fn audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-opus")
        .field("rate", 48_000i32)
        .field("channels", gst::IntRange::new(1i32, 2))
        .build()
}

/// Why `caps` cannot go on an audio pad, in words a person can act on; `None` when they can.
pub(crate) fn audio_caps_refusal(caps: &gst::CapsRef) -> Option<String> {
    if caps.is_subset(&audio_caps()) && !caps.is_empty() {
        return None;
    }
    let what = match caps.structure(0) {
        Some(s) if s.name() == "audio/x-opus" => {
            "Opus at 48 kHz in one or two channels (set opusenc's input to rate=48000 and channels=1 or 2)"
        }
        _ => {
            "Opus packets (encode with opusenc first: … ! audioconvert ! audioresample ! opusenc frame-size=5 ! s.audio)"
        }
    };
    Some(format!("The audio pad takes {what}, not {caps}"))
}

/// The codec of fixed caps, if they are one this plugin carries.
pub(crate) fn codec_of(caps: &gst::CapsRef) -> Option<Codec> {
    Codec::from_media_type(caps.structure(0)?.name().as_str())
}

/// The pads of an element in `direction`: one always-present video pad named `name` with
/// [`stream_caps`], and the [`AUDIO_PAD`] template with [`audio_caps`] (requested on the sink,
/// sometimes present on the src, added when the host announces audio).
pub(crate) fn pad_templates(name: &str, direction: gst::PadDirection) -> Vec<gst::PadTemplate> {
    let audio_presence = match direction {
        gst::PadDirection::Sink => gst::PadPresence::Request,
        _ => gst::PadPresence::Sometimes,
    };
    // The templates are static and well-formed; failing here is a programming error.
    let video = gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &stream_caps())
        .expect("static pad template");
    let audio = gst::PadTemplate::new(AUDIO_PAD, direction, audio_presence, &audio_caps())
        .expect("static pad template");
    vec![video, audio]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn refusal(caps: &str) -> Option<String> {
        gst::init().expect("gst init");
        audio_caps_refusal(&gst::Caps::from_str(caps).expect("caps"))
    }

    #[test]
    fn opus_mono_and_stereo_at_48_khz_are_taken() {
        assert_eq!(refusal("audio/x-opus,rate=48000,channels=1"), None);
        assert_eq!(
            refusal("audio/x-opus,rate=48000,channels=2,channel-mapping-family=0"),
            None
        );
    }

    #[test]
    fn other_audio_is_refused_with_what_to_change() {
        let raw = refusal("audio/x-raw,format=S16LE,rate=48000,channels=2").expect("refused");
        assert!(raw.contains("opusenc"), "{raw}");
        assert!(raw.contains("audio/x-raw"), "{raw}");
        let six = refusal("audio/x-opus,rate=48000,channels=6").expect("refused");
        assert!(six.contains("one or two channels"), "{six}");
        let slow = refusal("audio/x-opus,rate=16000,channels=1").expect("refused");
        assert!(slow.contains("48 kHz"), "{slow}");
    }
}
