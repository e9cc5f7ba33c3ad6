//! The src's audio half: the thread that polls the session's audio, the sometimes pad added
//! when the host announces audio, packets and losses (GAP events) pushed on it, and the latency
//! the pad answers; and which streams the host sends (module `streams`): when the host turns
//! out to send no audio, the `audio` pad appears anyway, with Opus caps and a GAP, so a linked
//! audio branch prerolls and the pipeline reaches PLAYING. Must never block the video thread or
//! push on a pad it has not added.

use super::*;

/// The audio thread: audio announcements, packets and losses from the host.
pub(super) fn audio_loop(
    element: glib::WeakRef<super::super::PunktfunkSrc>,
    session: Session,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        let polled = session.poll_audio(POLL_SLICE);
        let Some(element) = element.upgrade() else {
            break;
        };
        // The bound of the streams' decision may run out here (also in `create`): the video
        // thread may be held downstream (a sink prerolling on it) while the audio branch waits
        // for this.
        element.imp().check_streams();
        match polled {
            Ok(Some(ev)) => element.imp().on_audio_event(ev),
            Ok(None) => {}
            Err(session::Error::Closed) => break,
            Err(e) => {
                gst::warning!(CAT, obj = element, "audio receive error: {e}");
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
    }
}

impl PunktfunkSrc {
    pub(super) fn on_audio_event(&self, ev: Event) {
        match ev {
            Event::AudioInfo(caps) => self.on_audio_info(&caps),
            Event::Audio(packet) => self.on_audio(packet),
            Event::AudioLost { count, duration_us } => match self.audio.gap(count, duration_us) {
                Ok(true) => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "{count} audio packet(s) lost: gap of {duration_us} µs"
                    )
                }
                Ok(false) | Err(Refusal::Dropped) => {}
                Err(Refusal::Failed(e)) => self.audio_failed(e),
            },
            other => gst::trace!(CAT, imp = self, "audio thread ignores {other:?}"),
        }
    }

    /// The host announced audio (or new audio caps): the `audio` pad appears or changes caps.
    pub(super) fn on_audio_info(&self, caps_str: &str) {
        let caps = match gst::Caps::from_str(caps_str) {
            Ok(c) if c.is_fixed() && audio_caps_refusal(&c).is_none() => c,
            _ => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    ("The host's audio has caps this element cannot take: '{caps_str}'; audio is not played")
                );
                return;
            }
        };
        let first = {
            let mut timeline = lock(&self.timeline);
            let first = !timeline.has_audio();
            timeline.audio_announced();
            first
        };
        self.add_audio_pad(&caps, false);
        let obj = self.obj();
        if first {
            // Both streams are now stamped from capture time and need `latency`.
            let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
        }
    }

    /// The `audio` pad for `caps` (or the caps on it), unless it waits for the video's
    /// stream-start; `stand_in`: the pad of a host without audio, only where no pad is.
    pub(super) fn add_audio_pad(&self, caps: &gst::Caps, stand_in: bool) {
        let obj = self.obj();
        let weak = obj.downgrade();
        let query = move |pad: &gst::Pad, q: &mut gst::QueryRef| {
            weak.upgrade().is_some_and(|o| o.imp().audio_query(pad, q))
        };
        // The live video's segment starts at 0 (PTS are running time); BaseSrc::segment would
        // wait for the streaming thread's lock, which `create` holds.
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        match self.audio.announce(
            obj.upcast_ref(),
            caps,
            stand_in,
            segment.upcast_ref(),
            query,
        ) {
            Ok(true) => {
                gst::info!(CAT, imp = self, "audio pad added: {caps}");
                obj.no_more_pads();
                if lock(&self.timeline).has_audio() {
                    let decided = lock(&self.streams).audio(Instant::now());
                    if let Some(d) = decided {
                        self.streams_decided(d);
                    }
                } else {
                    self.push_audio_preroll_gap();
                }
            }
            Ok(false) => {}
            Err(()) => {
                gst::element_imp_error!(self, gst::CoreError::Pad, ("Could not add the audio pad"))
            }
        }
    }

    /// Lets whatever links `hook` know what the src learns of the host's streams.
    pub(in crate::element::punktfunksrc) fn set_streams_hook(&self, hook: Option<StreamsHook>) {
        *lock(&self.streams_hook) = hook;
    }

    fn tell(&self, news: StreamsNews) {
        let hook = lock(&self.streams_hook).clone();
        if let Some(hook) = hook {
            hook(news);
        }
    }

    /// The host's video is announced (first stream info since start): called before its caps
    /// and first buffer go out.
    pub(super) fn video_announced(&self) {
        self.tell(StreamsNews::Video);
        let decided = lock(&self.streams).video(Instant::now());
        if let Some(d) = decided {
            self.streams_decided(d);
        }
    }

    /// Decides the streams once the bound after the first announcement ran out. Called by the
    /// video and the audio thread after each poll, so a free one decides while the other is
    /// held downstream.
    pub(super) fn check_streams(&self) {
        let decided = lock(&self.streams).poll(Instant::now());
        if let Some(d) = decided {
            self.streams_decided(d);
        }
    }

    fn streams_decided(&self, d: HostStreams) {
        gst::info!(CAT, imp = self, "the host sends {d:?}");
        self.tell(StreamsNews::Decided(d));
        if !d.audio {
            // No audio: a pad anyway, so that a linked `audio` branch prerolls on a GAP and the
            // pipeline reaches PLAYING; Opus caps so a decoder there can negotiate. Real audio
            // announced later changes the caps on this pad.
            self.add_audio_pad(&placeholder_audio_caps(), true);
        }
    }

    /// The GAP an audio sink prerolls on, when the host sends no audio.
    fn push_audio_preroll_gap(&self) {
        let at = self.running_time_now().unwrap_or(gst::ClockTime::ZERO);
        let pushed = self.audio.preroll_gap(at);
        gst::debug!(
            CAT,
            imp = self,
            "no audio from the host: gap at {at} on the audio pad (pushed: {pushed})"
        );
    }

    pub(super) fn on_audio(&self, p: AudioPacket) {
        let arrival = monotonic_us();
        let now = self.running_time_now().map(|t| t.useconds());
        let pts = {
            let mut timeline = lock(&self.timeline);
            timeline.audio_arrived(p.capture_us, arrival);
            now.and_then(|n| timeline.pts_us(p.capture_us, n)).or(now)
        };
        let mut buffer = gst::Buffer::from_mut_slice(p.data);
        let timing = FrameTiming {
            capture_us: p.capture_us,
            duration_us: p.duration_us,
            ..FrameTiming::default()
        };
        attach_host_timestamp(buffer.make_mut(), &timing);
        gst::trace!(
            CAT,
            imp = self,
            "audio packet {} (recovered: {})",
            p.seq,
            p.recovered
        );
        if let Err(Refusal::Failed(e)) = self.audio.push(buffer, pts, p.duration_us) {
            self.audio_failed(e);
        }
    }

    pub(super) fn audio_failed(&self, e: gst::FlowError) {
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("Audio streaming stopped: downstream returned {e:?}")
        );
    }

    /// The latency both pads report: `latency` once the host sends audio (capture-time PTS),
    /// else none (arrival-time PTS).
    pub(super) fn latency(&self) -> gst::ClockTime {
        if !lock(&self.timeline).has_audio() {
            return gst::ClockTime::ZERO;
        }
        let ms = lock(&self.core.settings).own.latency_ms;
        gst::ClockTime::from_mseconds(ms.into())
    }

    pub(super) fn audio_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            q.set(true, self.latency(), gst::ClockTime::NONE);
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }
}

/// The caps of the `audio` pad of a host that sends no audio: what `opusenc` gives for stereo.
fn placeholder_audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-opus")
        .field("rate", 48_000i32)
        .field("channels", 2i32)
        .field("channel-mapping-family", 0i32)
        .build()
}
