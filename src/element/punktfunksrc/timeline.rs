//! One timeline for the src's two streams: the host's capture time becomes the PTS of video
//! and audio alike, so sinks with `sync=true` play what was captured together at the same
//! moment; and the A/V arrival skew for the stats.
//!
//! Owns: the offset from host capture time to this pipeline's running time, fixed by the first
//! stamped packet once the host announced audio (video-only streams keep their arrival-time
//! PTS), and the smoothed skew. Must never: read a clock (the caller passes the times), or let
//! a PTS run backwards by more than a host clock jump (a jump re-anchors the offset).

/// A mapped PTS this far before the running time now, or after it, means the host's clock
/// jumped (another host, a reboot): the offset is taken afresh.
const REANCHOR_BEHIND_US: i64 = 2_000_000;
const REANCHOR_AHEAD_US: i64 = 10_000_000;

/// Weight of a new sample in the smoothed skew (1/8, as RFC 6298 smooths an RTT).
const SKEW_GAIN_SHIFT: u32 = 3;

#[derive(Debug, Default)]
pub(super) struct Timeline {
    /// The host announced audio in this run: both streams take their PTS from capture time.
    audio: bool,
    /// Running time (µs) − host capture time (µs).
    offset_us: Option<i64>,
    /// Arrival (client monotonic µs) − capture (host µs) of the latest audio packet.
    audio_transit_us: Option<i64>,
    /// Smoothed video transit − audio transit (µs): how much later than the sound of the same
    /// instant the picture arrives.
    skew_us: Option<i64>,
}

impl Timeline {
    /// The host announced audio: from now on both streams are stamped from capture time.
    pub(super) fn audio_announced(&mut self) {
        self.audio = true;
    }

    pub(super) fn has_audio(&self) -> bool {
        self.audio
    }

    /// The PTS (µs of running time) of a packet captured at `capture_us` (host clock) that
    /// arrived at running time `now_us`; `None` where arrival time stamps it (video-only
    /// streams, a host that sent no capture time).
    pub(super) fn pts_us(&mut self, capture_us: u64, now_us: u64) -> Option<u64> {
        if !self.audio || capture_us == 0 {
            return None;
        }
        let capture = i64::try_from(capture_us).ok()?;
        let now = i64::try_from(now_us).ok()?;
        let mapped = self.offset_us.map(|o| capture + o);
        let offset = match mapped {
            Some(pts) if pts >= now - REANCHOR_BEHIND_US && pts <= now + REANCHOR_AHEAD_US => {
                self.offset_us?
            }
            _ => {
                let o = now - capture;
                self.offset_us = Some(o);
                o
            }
        };
        u64::try_from(capture + offset).ok()
    }

    /// An audio packet captured at `capture_us` arrived at `arrival_us` (monotonic µs).
    pub(super) fn audio_arrived(&mut self, capture_us: u64, arrival_us: u64) {
        if capture_us != 0 {
            self.audio_transit_us = Some(arrival_us as i64 - capture_us as i64);
        }
    }

    /// A video frame captured at `capture_us` arrived at `arrival_us` (monotonic µs): one skew
    /// sample against the latest audio packet's transit.
    pub(super) fn video_arrived(&mut self, capture_us: u64, arrival_us: u64) {
        let Some(audio) = self.audio_transit_us else {
            return;
        };
        if capture_us == 0 {
            return;
        }
        let sample = arrival_us as i64 - capture_us as i64 - audio;
        self.skew_us = Some(match self.skew_us {
            None => sample,
            Some(s) => s + ((sample - s) >> SKEW_GAIN_SHIFT),
        });
    }

    /// The smoothed A/V arrival skew (µs; positive: the picture arrives after the sound of the
    /// same instant); 0 until both streams arrived.
    pub(super) fn skew_us(&self) -> i64 {
        self.skew_us.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_only_streams_keep_arrival_time() {
        let mut t = Timeline::default();
        assert_eq!(t.pts_us(5_000_000, 1_000), None);
    }

    #[test]
    fn both_streams_share_one_offset_once_audio_is_announced() {
        let mut t = Timeline::default();
        t.audio_announced();
        // The first packet anchors: captured at 5 s on the host, here at running time 1 ms.
        assert_eq!(t.pts_us(5_000_000, 1_000), Some(1_000));
        // A video frame of the same instant arriving 30 ms later gets the same PTS.
        assert_eq!(t.pts_us(5_000_000, 31_000), Some(1_000));
        // Spacing follows capture time, not arrival.
        assert_eq!(t.pts_us(5_005_000, 9_000), Some(6_000));
        assert_eq!(
            t.pts_us(0, 9_000),
            None,
            "no capture time: arrival stamps it"
        );
    }

    #[test]
    fn a_host_clock_jump_re_anchors() {
        let mut t = Timeline::default();
        t.audio_announced();
        assert_eq!(t.pts_us(5_000_000, 1_000), Some(1_000));
        // A new host whose clock reads 1 s now: mapped 4 s in the past, so re-anchored.
        assert_eq!(t.pts_us(1_000_000, 100_000), Some(100_000));
        assert_eq!(t.pts_us(1_005_000, 101_000), Some(105_000));
    }

    #[test]
    fn skew_is_video_transit_minus_audio_transit_smoothed() {
        let mut t = Timeline::default();
        t.video_arrived(1_000, 50_000);
        assert_eq!(t.skew_us(), 0, "no audio yet");
        t.audio_arrived(1_000, 11_000); // audio transit 10 ms
        t.video_arrived(1_000, 41_000); // video transit 40 ms
        assert_eq!(t.skew_us(), 30_000);
        t.video_arrived(2_000, 34_000); // 32 ms − 10 ms = 22 ms
        assert_eq!(t.skew_us(), 30_000 - 1_000);
    }
}
