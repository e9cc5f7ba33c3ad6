//! Frame timing between GStreamer and the session: the sink's capture time of video and audio
//! (buffer PTS → running time → pipeline clock time → host monotonic clock), the src's
//! `GstReferenceTimestampMeta` with the host's capture time, and the frame-age fields of the
//! `punktfunk-stats` structure.
//!
//! Owns: the mapping of the pipeline clock to `CLOCK_MONOTONIC` and the meta's caps name
//! ([`HOST_TIMESTAMP_CAPS`], a user-facing contract). Must never: block, or stamp a made-up
//! capture time (a buffer without a PTS, or a sink without a clock, sends none).

use gst::prelude::*;
use gst_base::prelude::*;

use crate::protocol::media::timing::FrameTiming;
use crate::session::{FrameTimingIn, Stats, monotonic_us};

/// Caps name of the reference timestamp meta the src attaches: the host's capture time in
/// nanoseconds of its monotonic clock (microsecond precision on the wire).
pub(crate) const HOST_TIMESTAMP_CAPS: &str = "timestamp/x-punktfunk-host";

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Whether `clock` reads `CLOCK_MONOTONIC` itself (GStreamer's default pipeline clock): then
/// clock time is host time exactly, with no sampling error.
fn is_monotonic_system_clock(clock: &gst::Clock) -> bool {
    clock.type_() == gst::SystemClock::static_type()
        && clock
            .downcast_ref::<gst::SystemClock>()
            .is_some_and(|c| c.clock_type() == gst::ClockType::Monotonic)
}

/// Pipeline clock time (ns) → host clock (µs of `CLOCK_MONOTONIC`).
fn clock_to_host_us(clock: &gst::Clock, clock_time: gst::ClockTime) -> Option<u64> {
    if is_monotonic_system_clock(clock) {
        return Some(clock_time.useconds());
    }
    // Another clock (a network clock, an audio clock): sample both together and shift.
    let clock_now = clock.time().useconds() as i128;
    let mono_now = monotonic_us() as i128;
    let host = clock_time.useconds() as i128 + mono_now - clock_now;
    u64::try_from(host).ok().filter(|&h| h != 0)
}

/// `pts` in `segment` as host clock time (µs of `CLOCK_MONOTONIC`), through the running time,
/// `element`'s base time and its pipeline clock: the capture time of both the sink's video
/// and its audio, so the client can play the two together.
pub(crate) fn host_capture_us(
    element: &gst::Element,
    segment: &gst::FormattedSegment<gst::ClockTime>,
    pts: Option<gst::ClockTime>,
) -> Option<u64> {
    let running = segment.to_running_time(pts?)?;
    let clock = element.clock()?;
    let base = element.base_time()?;
    clock_to_host_us(&clock, running.checked_add(base)?)
}

/// What the sink knows of `buffer`'s timing: its PTS as host clock time (through the
/// segment, the base time and the pipeline clock), and its duration.
pub(crate) fn capture_timing(sink: &gst_base::BaseSink, buffer: &gst::BufferRef) -> FrameTimingIn {
    let duration_us = buffer.duration().map_or(0, |d| clamp_u32(d.useconds()));
    let segment = sink.segment();
    let capture_us = segment
        .downcast_ref::<gst::ClockTime>()
        .and_then(|segment| host_capture_us(sink.upcast_ref(), segment, buffer.pts()));
    FrameTimingIn {
        capture_us,
        duration_us,
    }
}

/// Attaches the host's capture time as a `GstReferenceTimestampMeta`
/// ([`HOST_TIMESTAMP_CAPS`]); nothing when the host sent none.
pub(crate) fn attach_host_timestamp(buffer: &mut gst::BufferRef, t: &FrameTiming) {
    if t.capture_us == 0 {
        return;
    }
    let caps = gst::Caps::new_empty_simple(HOST_TIMESTAMP_CAPS);
    let duration =
        (t.duration_us != 0).then(|| gst::ClockTime::from_useconds(t.duration_us.into()));
    gst::ReferenceTimestampMeta::add(
        buffer,
        &caps,
        gst::ClockTime::from_useconds(t.capture_us),
        duration,
    );
}

/// The frame-age and clock-offset fields of `punktfunk-stats` (client; zeros on the host and
/// before the clock offset is known; `clock-offset-uncertainty-us` −1 while unknown).
pub(crate) fn add_timing_fields(s: &mut gst::StructureRef, st: &Stats) {
    let a = &st.frame_age;
    s.set("frame-age-frames", a.frames);
    s.set("frame-age-p50-us", a.age_p50_us);
    s.set("frame-age-p99-us", a.age_p99_us);
    s.set("frame-age-encode-p50-us", a.encode_p50_us);
    s.set("frame-age-host-p50-us", a.host_p50_us);
    s.set("frame-age-network-p50-us", a.network_p50_us);
    s.set("frame-age-network-p99-us", a.network_p99_us);
    s.set("frame-age-fec-wait-p50-us", a.fec_wait_p50_us);
    s.set("frame-age-fec-wait-p99-us", a.fec_wait_p99_us);
    s.set("clock-offset-us", st.clock_offset_us.unwrap_or(0));
    s.set(
        "clock-offset-uncertainty-us",
        st.clock_offset_uncertainty_us
            .map_or(-1, |u| i64::try_from(u).unwrap_or(i64::MAX)),
    );
}
