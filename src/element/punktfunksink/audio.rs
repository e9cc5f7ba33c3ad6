//! The sink's `audio` request pad: Opus packets go to [`Session::submit_audio`] stamped with
//! their capture time on the same host clock as the video's, and the pad's caps go to
//! [`Session::set_audio_info`] so the client can add its `audio` pad.
//!
//! Owns: the one audio pad (request, release, its chain, event and query functions), its
//! segment, its caps check and when the sink says it is done (EOS of every linked pad). Must
//! never: wait for the video pad (an audio-only session has none linked), hold a lock while
//! the session sends, or take audio other than Opus (see [`audio_caps_refusal`]).

use std::sync::Mutex;

use gst::prelude::*;

use crate::element::caps::{AUDIO_PAD, audio_caps_refusal};
use crate::element::capture_time::host_capture_us;
use crate::element::lock;
use crate::session::{self, Session};

/// What the sink does after an EOS on one of its pads.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EosAction {
    /// Another linked pad still streams: nothing yet.
    Wait,
    /// Every linked pad is done: say bye to the client.
    Bye,
    /// As `Bye`, and post the EOS message: `BaseSink` posts one only for the video pad, which
    /// is not linked in an audio-only session.
    ByeAndPostEos,
}

#[derive(Default)]
struct State {
    /// The audio pad's segment: its running time is the base of the capture time.
    segment: gst::FormattedSegment<gst::ClockTime>,
    /// The caps announced to the client, as a string.
    caps: Option<String>,
    /// Caps refused (and reported) last, so a retry does not post the error again.
    refused: Option<gst::Caps>,
    audio_eos: bool,
    video_eos: bool,
}

/// The audio side of `punktfunksink`: at most one `audio` pad.
#[derive(Default)]
pub(super) struct AudioInput {
    pad: Mutex<Option<gst::Pad>>,
    state: Mutex<State>,
}

impl AudioInput {
    /// The audio pad, while one is requested.
    pub(super) fn pad(&self) -> Option<gst::Pad> {
        lock(&self.pad).clone()
    }

    /// Claims the one audio pad slot; false when a pad is already requested.
    pub(super) fn claim(&self, pad: &gst::Pad) -> bool {
        let mut slot = lock(&self.pad);
        if slot.is_some() {
            return false;
        }
        *slot = Some(pad.clone());
        let mut st = lock(&self.state);
        st.segment = gst::FormattedSegment::new();
        st.audio_eos = false;
        true
    }

    /// Forgets `pad` if it is the audio pad; whether it was.
    pub(super) fn unclaim(&self, pad: &gst::Pad) -> bool {
        let mut slot = lock(&self.pad);
        if slot.as_ref() != Some(pad) {
            return false;
        }
        *slot = None;
        let mut st = lock(&self.state);
        st.caps = None;
        st.audio_eos = false;
        true
    }

    /// A fresh start: no EOS seen on either pad.
    pub(super) fn reset(&self) {
        let mut st = lock(&self.state);
        st.audio_eos = false;
        st.video_eos = false;
    }

    /// The audio caps to announce again to a session opened after they were set.
    pub(super) fn caps(&self) -> Option<String> {
        lock(&self.state).caps.clone()
    }

    /// Why `caps` cannot go on the audio pad, once per distinct caps (a refused caps event is
    /// retried by upstream; the error is posted once).
    pub(super) fn refuse(&self, caps: &gst::CapsRef) -> Option<Option<String>> {
        let why = audio_caps_refusal(caps)?;
        let mut st = lock(&self.state);
        if st.refused.as_deref() == Some(caps) {
            return Some(None);
        }
        st.refused = Some(caps.to_owned());
        Some(Some(why))
    }

    /// New caps on the audio pad (already checked): the string to announce, when it changed.
    pub(super) fn set_caps(&self, caps: &gst::CapsRef) -> Option<String> {
        let text = caps.to_string();
        let mut st = lock(&self.state);
        if st.caps.as_deref() == Some(text.as_str()) {
            return None;
        }
        st.caps = Some(text.clone());
        Some(text)
    }

    /// A segment on the audio pad; false when it is not in time.
    pub(super) fn set_segment(&self, segment: &gst::Segment) -> bool {
        match segment.downcast_ref::<gst::ClockTime>() {
            Some(s) => {
                lock(&self.state).segment = s.clone();
                true
            }
            None => false,
        }
    }

    /// A flush on the audio pad, or a new stream: it streams again.
    pub(super) fn restart(&self) {
        lock(&self.state).audio_eos = false;
    }

    /// A flush or new stream on the video pad.
    pub(super) fn restart_video(&self) {
        lock(&self.state).video_eos = false;
    }

    /// EOS on the video pad (`video`) or the audio pad: what the sink does now.
    pub(super) fn on_eos(&self, video: bool, video_linked: bool) -> EosAction {
        let audio_linked = self.pad().is_some_and(|p| p.is_linked());
        let mut st = lock(&self.state);
        if video {
            st.video_eos = true;
        } else {
            st.audio_eos = true;
        }
        let video_done = st.video_eos || !video_linked;
        let audio_done = st.audio_eos || !audio_linked;
        match (video_done && audio_done, video, video_linked) {
            (false, _, _) => EosAction::Wait,
            (true, false, false) => EosAction::ByeAndPostEos,
            (true, _, _) => EosAction::Bye,
        }
    }

    /// The capture time (host clock, µs; 0 when unknown) and duration (µs) of an audio buffer.
    pub(super) fn timing(&self, element: &gst::Element, buffer: &gst::BufferRef) -> (u64, u32) {
        let duration = buffer
            .duration()
            .map_or(0, |d| u32::try_from(d.useconds()).unwrap_or(u32::MAX));
        let capture = {
            let st = lock(&self.state);
            host_capture_us(element, &st.segment, buffer.pts())
        };
        (capture.unwrap_or(0), duration)
    }
}

/// Whether `templ` is the audio pad's template and `name` (if any) the audio pad's name.
pub(super) fn is_audio_request(templ: &gst::PadTemplate, name: Option<&str>) -> bool {
    templ.name_template() == AUDIO_PAD && name.is_none_or(|n| n == AUDIO_PAD)
}

/// Sends one Opus packet; what went wrong, for the element to log (never fatal: one lost
/// packet is concealed by the client's decoder).
pub(super) fn submit(
    session: &Session,
    data: &[u8],
    capture_us: u64,
    duration_us: u32,
) -> Result<(), session::Error> {
    match session.submit_audio(data, capture_us, duration_us) {
        Err(session::Error::Closed) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}
