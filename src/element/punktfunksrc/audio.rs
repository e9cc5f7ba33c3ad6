//! The src's `audio` sometimes pad: added when the host announces audio (or, with stand-in
//! caps and a GAP to preroll on, when it sends none), fed by its own
//! thread that polls [`Session::poll_audio`]; a lost packet becomes a GAP event of its
//! duration, which `opusdec plc=true` conceals.
//!
//! Owns: the pad (its creation from the announced caps, its sticky events, its removal at
//! stop), the audio thread, the next audio PTS (where a gap starts) and the count of concealed
//! packets. Must never: block the video's `create`, or treat an unlinked audio pad as an error
//! (a client may want only the picture).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gst::prelude::*;

use crate::element::caps::AUDIO_PAD;
use crate::element::lock;
use crate::session::Session;

/// The audio thread between `start` and `stop`.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The audio side of `punktfunksrc`.
#[derive(Default)]
pub(super) struct AudioOutput {
    pad: Mutex<Option<gst::Pad>>,
    /// Serialises announcements: the info comes on both of the session's queues, so the
    /// streaming thread and the audio thread may see it at once.
    announcing: Mutex<()>,
    /// Caps announced before the video pad's stream-start: the pad waits for it (a second
    /// source pad before then would leave `BaseSrc` without a stream id).
    pending: Mutex<Option<gst::Caps>>,
    worker: Mutex<Option<Worker>>,
    /// End of the last audio pushed (µs of running time): where a gap starts.
    next_pts_us: Mutex<Option<u64>>,
    /// Lost packets a GAP event stood in for.
    concealed: AtomicU64,
    /// Downstream failed (not-negotiated, error): the error is posted once, audio stops.
    failed: AtomicBool,
}

/// What becomes of an audio buffer or gap that downstream refused.
pub(super) enum Refusal {
    /// Unlinked, flushing or at EOS: dropped quietly.
    Dropped,
    /// A real failure, reported once.
    Failed(gst::FlowError),
}

impl AudioOutput {
    /// Starts the audio thread running `body(stop)`.
    pub(super) fn start(
        &self,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> std::io::Result<()> {
        self.concealed.store(0, Ordering::Relaxed);
        self.failed.store(false, Ordering::Relaxed);
        *lock(&self.next_pts_us) = None;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("punktfunksrc-audio".into())
            .spawn(move || body(flag))?;
        *lock(&self.worker) = Some(Worker { stop, thread });
        Ok(())
    }

    /// Stops and joins the audio thread (`session` wakes its poll), then removes the pad.
    pub(super) fn stop(&self, element: &gst::Element, session: Option<&Session>) {
        if let Some(w) = lock(&self.worker).take() {
            w.stop.store(true, Ordering::Release);
            if let Some(s) = session {
                s.wake();
            }
            // Deactivating the pad turns a push that waits downstream into Flushing.
            if let Some(pad) = self.pad() {
                let _ = pad.set_active(false);
            }
            let _ = w.thread.join();
        }
        if let Some(pad) = lock(&self.pad).take() {
            let _ = pad.set_active(false);
            let _ = element.remove_pad(&pad);
        }
    }

    pub(super) fn pad(&self) -> Option<gst::Pad> {
        lock(&self.pad).clone()
    }

    pub(super) fn concealed(&self) -> u64 {
        self.concealed.load(Ordering::Relaxed)
    }

    /// Caps that waited for the video's stream-start, once it went out.
    pub(super) fn take_pending(&self, element: &gst::Element) -> Option<gst::Caps> {
        let started = element
            .static_pad("src")
            .and_then(|p| p.sticky_event::<gst::event::StreamStart>(0))
            .is_some();
        if !started {
            return None;
        }
        lock(&self.pending).take()
    }

    /// The announced caps: a new pad (stream-start in the video's group, caps, segment), or
    /// new caps on the existing one (unless `stand_in`: the caps for a host without audio never
    /// replace real ones). `Ok(false)` when the pad waits for the video's stream-start
    /// ([`AudioOutput::take_pending`]); `Err` when it could not be added.
    pub(super) fn announce(
        &self,
        element: &gst::Element,
        caps: &gst::Caps,
        stand_in: bool,
        segment: &gst::Segment,
        query: impl Fn(&gst::Pad, &mut gst::QueryRef) -> bool + Send + Sync + 'static,
    ) -> Result<bool, ()> {
        let _one_at_a_time = lock(&self.announcing);
        if stand_in && (self.pad().is_some() || lock(&self.pending).is_some()) {
            return Ok(false);
        }
        if let Some(pad) = self.pad() {
            if pad.current_caps().as_ref() != Some(caps) {
                pad.push_event(gst::event::Caps::new(caps));
            }
            return Ok(false);
        }
        let video = element.static_pad("src");
        let video_start = video
            .as_ref()
            .and_then(|p| p.sticky_event::<gst::event::StreamStart>(0));
        let Some(video_start) = video_start else {
            *lock(&self.pending) = Some(caps.clone());
            return Ok(false);
        };
        let Some(templ) = element.pad_template(AUDIO_PAD) else {
            return Err(());
        };
        let pad = gst::Pad::builder_from_template(&templ)
            .name(AUDIO_PAD)
            .flags(gst::PadFlags::FIXED_CAPS)
            .query_function(move |pad, _parent, q| query(pad, q))
            .build();
        if pad.set_active(true).is_err() {
            return Err(());
        }
        let group = video_start.group_id().unwrap_or_else(gst::GroupId::next);
        let stream_id = pad.create_stream_id(element, Some(AUDIO_PAD));
        // Sticky events wait on the pad and reach whatever links it in `pad-added`.
        pad.push_event(
            gst::event::StreamStart::builder(stream_id.as_str())
                .group_id(group)
                .build(),
        );
        pad.push_event(gst::event::Caps::new(caps));
        pad.push_event(gst::event::Segment::new(segment));
        *lock(&self.pad) = Some(pad.clone());
        if element.add_pad(&pad).is_err() {
            *lock(&self.pad) = None;
            return Err(());
        }
        Ok(true)
    }

    /// Pushes one packet stamped `pts_us` (µs of running time).
    pub(super) fn push(
        &self,
        mut buffer: gst::Buffer,
        pts_us: Option<u64>,
        duration_us: u32,
    ) -> Result<(), Refusal> {
        let Some(pad) = self.pad() else {
            return Err(Refusal::Dropped);
        };
        if self.failed.load(Ordering::Relaxed) {
            return Err(Refusal::Dropped);
        }
        let duration = (duration_us != 0).then(|| u64::from(duration_us));
        {
            let b = buffer.make_mut();
            b.set_pts(pts_us.map(gst::ClockTime::from_useconds));
            b.set_duration(duration.map(gst::ClockTime::from_useconds));
        }
        if let Some(pts) = pts_us {
            *lock(&self.next_pts_us) = Some(pts + duration.unwrap_or(0));
        }
        self.result(pad.push(buffer).map(|_| ()))
    }

    /// `count` packets of `duration_us` in all were lost: a GAP where they belong, which the
    /// decoder fills by concealment. Nothing before the first packet (no place to put it).
    pub(super) fn gap(&self, count: u32, duration_us: u64) -> Result<bool, Refusal> {
        let Some(pad) = self.pad() else {
            return Err(Refusal::Dropped);
        };
        let start = {
            let mut next = lock(&self.next_pts_us);
            let Some(start) = *next else {
                return Ok(false);
            };
            *next = Some(start + duration_us);
            start
        };
        let ev = gst::event::Gap::builder(gst::ClockTime::from_useconds(start))
            .duration(gst::ClockTime::from_useconds(duration_us))
            .build();
        if pad.push_event(ev) {
            self.concealed
                .fetch_add(u64::from(count), Ordering::Relaxed);
            return Ok(true);
        }
        Ok(false)
    }

    /// A GAP at `at` (running time) without a duration: an audio sink downstream prerolls on it
    /// when no audio comes. Whether the pad took it.
    pub(super) fn preroll_gap(&self, at: gst::ClockTime) -> bool {
        self.pad()
            .is_some_and(|pad| pad.push_event(gst::event::Gap::builder(at).build()))
    }

    /// The host ended the stream: EOS on the audio pad too (the video's comes from `create`).
    pub(super) fn eos(&self) {
        if let Some(pad) = self.pad() {
            pad.push_event(gst::event::Eos::new());
        }
    }

    fn result(&self, r: Result<(), gst::FlowError>) -> Result<(), Refusal> {
        match r {
            Ok(()) => Ok(()),
            Err(gst::FlowError::NotLinked | gst::FlowError::Flushing | gst::FlowError::Eos) => {
                Err(Refusal::Dropped)
            }
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                Err(Refusal::Failed(e))
            }
        }
    }
}
