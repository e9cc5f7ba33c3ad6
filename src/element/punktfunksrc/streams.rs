//! Which streams the host sends, as far as the src can tell, and when it can tell.
//!
//! The client learns the video from the host's stream info (with the handshake when the host
//! has its caps, else with its first frame) and the audio from the audio info (sent at once in
//! every session, again every 50 ms until acknowledged). Nothing says "no audio" or "no
//! video", so the first of the two announcements starts [`STREAMS_BOUND`]: the other stream
//! counts as absent when it has not come by then. The decision is made once per start; it
//! lets `punktfunkurisrc` emit `no-more-pads` and lets the src give a linked `audio` branch a
//! pad that prerolls when the host sends no audio.
//!
//! Owns: that decision (pure logic, `now` passed in). Must never: read a clock, decide twice,
//! or decide before either stream was announced (a host that has not sent anything yet is not
//! a host without streams).

use std::time::{Duration, Instant};

/// How long after the first stream was announced the other one may still come: ten resends of
/// the audio info, and several round trips of a WAN path.
pub(crate) const STREAMS_BOUND: Duration = Duration::from_millis(500);

/// The streams the host sends, as decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HostStreams {
    pub(crate) video: bool,
    pub(crate) audio: bool,
}

/// What the src tells a bin around it (`punktfunkurisrc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamsNews {
    /// The host's video is announced; its caps and first buffers follow on the `src` pad
    /// right after this returns.
    Video,
    /// The streams are known (once per start); nothing later changes this decision.
    Decided(HostStreams),
}

/// The announcements seen since start, and whether the streams are decided.
#[derive(Debug, Default)]
pub(super) struct StreamsWatch {
    video: bool,
    audio: bool,
    first_at: Option<Instant>,
    decided: Option<HostStreams>,
}

impl StreamsWatch {
    /// The video was announced at `now`; the decision if this made it.
    pub(super) fn video(&mut self, now: Instant) -> Option<HostStreams> {
        self.video = true;
        self.announced(now)
    }

    /// The audio was announced (its pad added) at `now`; the decision if this made it.
    pub(super) fn audio(&mut self, now: Instant) -> Option<HostStreams> {
        self.audio = true;
        self.announced(now)
    }

    /// The decision, if the bound ran out by `now` and nothing decided before.
    pub(super) fn poll(&mut self, now: Instant) -> Option<HostStreams> {
        let first = self.first_at?;
        if self.decided.is_some() || now < first + STREAMS_BOUND {
            return None;
        }
        self.decide()
    }

    fn announced(&mut self, now: Instant) -> Option<HostStreams> {
        self.first_at.get_or_insert(now);
        if self.decided.is_some() || !(self.video && self.audio) {
            return None;
        }
        self.decide()
    }

    fn decide(&mut self) -> Option<HostStreams> {
        let d = HostStreams {
            video: self.video,
            audio: self.audio,
        };
        self.decided = Some(d);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_streams_decide_at_once() {
        let t = Instant::now();
        let mut w = StreamsWatch::default();
        assert_eq!(
            w.poll(t + Duration::from_secs(5)),
            None,
            "nothing announced"
        );
        assert_eq!(w.video(t), None);
        let both = HostStreams {
            video: true,
            audio: true,
        };
        assert_eq!(w.audio(t + Duration::from_millis(20)), Some(both));
        assert_eq!(w.poll(t + Duration::from_secs(5)), None, "decided twice");
    }

    #[test]
    fn one_stream_decides_when_the_bound_runs_out() {
        let t = Instant::now();
        let mut w = StreamsWatch::default();
        assert_eq!(w.video(t), None);
        assert_eq!(w.poll(t + STREAMS_BOUND - Duration::from_millis(1)), None);
        let video_only = HostStreams {
            video: true,
            audio: false,
        };
        assert_eq!(w.poll(t + STREAMS_BOUND), Some(video_only));
        assert_eq!(
            w.audio(t + STREAMS_BOUND * 2),
            None,
            "a late stream decides nothing"
        );
        assert_eq!(w.poll(t + STREAMS_BOUND * 3), None);

        let mut w = StreamsWatch::default();
        assert_eq!(w.audio(t), None);
        assert_eq!(
            w.poll(t + STREAMS_BOUND),
            Some(HostStreams {
                video: false,
                audio: true
            })
        );
    }
}
