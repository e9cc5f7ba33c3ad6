//! Running one row: the pipeline's set-up and teardown, the per-frame recorder the probes
//! fill, and the end of the row.

use super::*;

mod probes;

use probes::{install_probes, reference_checksums};

/// Per-frame state while the row runs.
#[derive(Default)]
struct Frame {
    record: FrameRecord,
    au: Vec<u8>,
    vcl_arrived: Vec<bool>,
    last_vcl_at: u64,
    checksum: Option<u64>,
}

#[derive(Default)]
struct Recorder {
    capture_by_pts: HashMap<u64, u64>,
    frames: Vec<Frame>,
    by_fingerprint: HashMap<u64, (u32, usize)>,
    arrival: Splitter,
    /// Frames given an index (measured ones plus a margin that tells when to stop).
    limit: u32,
    /// The highest frame index decoded so far.
    newest_decoded: Option<u32>,
    /// Running time the last frame was encoded (for the tail deadline).
    all_encoded_at: Option<Instant>,
    /// The src's frame-age report (punktfunk rows), read once the last measured frame arrived.
    src_frame_age: Option<SrcFrameAge>,
}

impl Recorder {
    fn arrived(&mut self, fingerprint: u64, at: u64) {
        let Some(&(idx, pos)) = self.by_fingerprint.get(&fingerprint) else {
            return;
        };
        let f = &mut self.frames[idx as usize];
        if f.record.arrival_ns.is_some() || f.vcl_arrived[pos] {
            return;
        }
        f.vcl_arrived[pos] = true;
        f.last_vcl_at = f.last_vcl_at.max(at);
        if f.vcl_arrived.iter().all(|&a| a) {
            f.record.arrival_ns = Some(f.last_vcl_at);
        }
    }
}

type Shared = Arc<(Mutex<Recorder>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Recorder> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer's PTS as running time in its pad's segment (encoders may shift PTS — x264enc adds
/// 1000 hours — and compensate in the segment; running time is what stays the same).
fn pts_running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u64> {
    let pts = buffer.pts()?;
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let seg = ev.segment().downcast_ref::<gst::ClockTime>()?;
    seg.to_running_time(pts).map(gst::ClockTime::nseconds)
}

fn running_time(pad: &gst::Pad) -> u64 {
    pad.parent_element()
        .and_then(|e| e.current_running_time())
        .map_or(0, gst::ClockTime::nseconds)
}

/// The port a listener element bound (after its start).
fn bound_port(element: &gst::Element, transport: Transport, srt_port: u16) -> Option<u16> {
    let port = match transport {
        // `port` reads back the bound port after start; `bound-port` is read where it is 0.
        Transport::Punktfunk | Transport::PunktfunkCaller | Transport::PunktfunkSplit => {
            let p: u32 = element.property("port");
            if p != 0 {
                p
            } else if element.find_property("bound-port").is_some() {
                element.property::<u32>("bound-port")
            } else {
                0
            }
        }
        Transport::Rtp => element.property::<i32>("port").max(0) as u32,
        Transport::Srt(_) => u32::from(srt_port),
    };
    u16::try_from(port).ok().filter(|&p| p != 0)
}

/// `srtsrc` binds the port it is given and cannot report one the kernel chose (it has no
/// read-back property), so for SRT alone a free port is found by binding port 0 and releasing it
/// just before the listener binds it. Another process could take it in between; the row would
/// then fail with an error, not measure the wrong thing.
fn free_udp_port() -> io::Result<u16> {
    let s = UdpSocket::bind(("127.0.0.1", 0))?;
    Ok(s.local_addr()?.port())
}

fn set_caller_port(element: &gst::Element, transport: Transport, port: u16) {
    match transport {
        Transport::Punktfunk | Transport::PunktfunkCaller | Transport::PunktfunkSplit => {
            element.set_property("port", u32::from(port))
        }
        Transport::Rtp => element.set_property("port", i32::from(port)),
        // The URI's query replaces every SRT parameter, so it repeats the latency.
        Transport::Srt(ms) => element.set_property(
            "uri",
            format!("srt://127.0.0.1:{port}?mode=caller&latency={ms}"),
        ),
    }
}

/// A 64-bit checksum of the visible pixels of a decoded picture.
fn picture_checksum(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<u64> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let mut h = HASH_SEED;
    for plane in 0..frame.n_planes() {
        let data = frame.plane_data(plane).ok()?;
        let stride = usize::try_from(*frame.plane_stride().get(plane as usize)?).ok()?;
        let comp = u8::try_from(plane).ok()?;
        let row = info.comp_width(comp) as usize * info.comp_pstride(comp).max(1) as usize;
        for y in 0..info.comp_height(comp) as usize {
            let line = data.get(y * stride..y * stride + row)?;
            h = hash64(line, h);
        }
    }
    Some(h)
}

fn frame_meta(buffer: &gst::BufferRef) -> Option<u32> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|m| {
            m.reference()
                .structure(0)
                .is_some_and(|s| s.name() == FRAME_META)
        })
        .and_then(|m| u32::try_from(m.timestamp().nseconds()).ok())
}

fn tag_frame(buffer: &mut gst::BufferRef, index: u32) {
    let caps = gst::Caps::new_empty_simple(FRAME_META);
    gst::ReferenceTimestampMeta::add(
        buffer,
        &caps,
        gst::ClockTime::from_nseconds(u64::from(index)),
        gst::ClockTime::NONE,
    );
}

fn first_bus_error(bus: &gst::Bus) -> Option<String> {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            return Some(format!("{src}: {}", e.error()));
        }
    }
    None
}

/// Runs one row; never panics on what the pipeline does (errors end up in the result).
pub fn run_row(spec: &RowSpec) -> RowResult {
    let shared: Shared = Arc::new((Mutex::new(Recorder::default()), Condvar::new()));
    let mut result = RowResult {
        spec: spec.clone(),
        frames: Vec::new(),
        error: None,
        relay: Default::default(),
        src_frame_age: None,
        samples: Vec::new(),
        client_start_ns: 0,
    };
    match drive_row(spec, &shared, &mut result) {
        Ok(()) => {}
        Err(e) => result.error = Some(e),
    }
    let mut rec = lock(&shared);
    let total = (spec.warmup + spec.frames) as usize;
    rec.frames.truncate(total);
    if result.error.is_none() || !rec.frames.is_empty() {
        let aus: Vec<Vec<u8>> = rec.frames.iter().map(|f| f.au.clone()).collect();
        match reference_checksums(spec.codec, &aus) {
            Ok(reference) => {
                for (f, r) in rec.frames.iter_mut().zip(reference) {
                    f.record.shown =
                        f.record.decoded_ns.is_some() && r.is_some() && f.checksum == r;
                }
            }
            Err(e) => {
                result.error.get_or_insert(format!("reference decode: {e}"));
            }
        }
    }
    result.frames = rec.frames.iter().map(|f| f.record.clone()).collect();
    result.src_frame_age = rec.src_frame_age;
    result
}

fn drive_row(spec: &RowSpec, shared: &Shared, result: &mut RowResult) -> Result<(), String> {
    let codec = spec.codec;
    let transport = spec.transport;
    let head = format!(
        "videotestsrc name=vsrc is-live=true pattern=snow \
         ! video/x-raw,format=I420,width={},height={},framerate={}/1 ! {} ! {}",
        spec.width,
        spec.height,
        spec.fps,
        codec.encoder(spec.bitrate_kbps, spec.key_int),
        codec.au_caps()
    );
    // Byte-stream into the decoder (the parser would otherwise pick length-prefixed AVC/HVC1,
    // which the decoder-input probe does not read).
    let tail = format!(
        "{} ! {} ! {} name=dec ! appsink name=out sync=false",
        codec.parser(),
        codec.au_caps(),
        codec.decoder()
    );
    let srt_port = match transport {
        Transport::Srt(_) => free_udp_port().map_err(|e| format!("free port: {e}"))?,
        _ => 0,
    };
    let layout = transport.pipeline(&head, codec, &tail, srt_port, &spec.sink_props);
    let launch = |d: &str| -> Result<gst::Pipeline, String> {
        gst::parse::launch(d)
            .map_err(|e| format!("pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())
    };
    // `pipeline` holds the source and encoder (and, with one pipeline, everything); `client`
    // the receiving half when the row runs two pipelines.
    let (pipeline, client) = match &layout.split {
        Some((host, client)) => (launch(host)?, Some(launch(client)?)),
        None => (launch(&layout.description)?, None),
    };
    let by_name = |n: &str| {
        pipeline
            .by_name(n)
            .or_else(|| client.as_ref().and_then(|c| c.by_name(n)))
            .ok_or_else(|| format!("no element {n}"))
    };
    let (vsrc, enc, arrival, dec, out) = (
        by_name("vsrc")?,
        by_name("enc")?,
        by_name(layout.arrival)?,
        by_name("dec")?,
        by_name("out")?,
    );
    let (listener, caller) = (by_name(layout.listener)?, by_name(layout.caller)?);
    lock(shared).limit = spec.warmup + spec.frames + (spec.fps / 4).max(5);
    install_probes(spec, shared, &vsrc, &enc, &arrival, &dec, &out)?;

    let mut buses = vec![pipeline.bus().ok_or("no bus")?];
    if let Some(c) = &client {
        buses.push(c.bus().ok_or("no bus")?);
    }
    let bus_error = || buses.iter().find_map(first_bus_error);
    let outcome = (|| -> Result<(), String> {
        // The caller stays in NULL until the relay exists and it knows where to call.
        caller.set_locked_state(true);
        let first = if client.is_some() {
            gst::State::Playing
        } else {
            gst::State::Paused
        };
        pipeline
            .set_state(first)
            .map_err(|_| bus_error().unwrap_or_else(|| format!("{first:?} failed")))?;
        if client.is_some() {
            // Clock and base time are chosen once the host is PLAYING.
            let (done, ..) = pipeline.state(gst::ClockTime::from_seconds(STATE_TIMEOUT.as_secs()));
            done.map_err(|_| bus_error().unwrap_or_else(|| "host PLAYING failed".into()))?;
        }
        let port = bound_port(&listener, transport, srt_port)
            .ok_or_else(|| format!("{} did not report a bound port", layout.listener))?;
        let relay = start_relay(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &spec.path,
            spec.seed,
            spec.bottleneck.as_ref(),
        )
        .map_err(|e| format!("relay: {e}"))?;
        let relay_start = Instant::now();
        set_caller_port(&caller, transport, relay.addr().port());
        caller.set_locked_state(false);
        match &client {
            // The client's running time is the host's: one clock, one base time.
            Some(c) => {
                c.use_clock(Some(
                    &pipeline.clock().ok_or("the host pipeline has no clock")?,
                ));
                c.set_start_time(gst::ClockTime::NONE);
                c.set_base_time(pipeline.base_time().ok_or("the host has no base time")?);
                c.set_state(gst::State::Playing)
            }
            None => pipeline.set_state(gst::State::Playing),
        }
        .map_err(|_| bus_error().unwrap_or_else(|| "PLAYING failed".into()))?;
        result.client_start_ns = pipeline
            .current_running_time()
            .map_or(0, gst::ClockTime::nseconds);
        let sample = |samples: &mut Vec<Sample>| {
            if !transport.is_punktfunk() {
                return;
            }
            // The sink is "tx" and the src "rx" whichever of them listens.
            let (tx, rx) = if layout.listener == "tx" {
                (&listener, &caller)
            } else {
                (&caller, &listener)
            };
            let stats = tx.property::<gst::Structure>("stats");
            let rx = rx.property::<gst::Structure>("stats");
            let get = |s: &gst::Structure, f: &str| s.get::<u64>(f).unwrap_or(0);
            samples.push(Sample {
                t_s: relay_start.elapsed().as_secs_f64(),
                encoder_kbps: enc.property::<u32>("bitrate"),
                estimate_bps: get(&stats, "bwe-estimate"),
                target_bps: get(&stats, "bwe-target-bitrate"),
                link_rate_bps: get(&stats, "bwe-link-rate"),
                state: stats.get::<&str>("bwe-state").map_or("?", |n| {
                    BWE_STATES.into_iter().find(|s| *s == n).unwrap_or("?")
                }),
                frames_received: get(&rx, "frames-received"),
                frames_lost: get(&rx, "frames-lost"),
                // Loss resilience.
                data_shards: get(&stats, "data-shards-sent"),
                parity_shards: get(&stats, "parity-shards-sent"),
                repair_shards: get(&stats, "repair-shards"),
                repair_bytes: get(&stats, "repair-bytes"),
                payload_bytes: get(&stats, "payload-bytes-sent"),
                parity_bytes: get(&stats, "parity-bytes-sent"),
                rtt_us: get(&stats, "rtt-us"),
                repair_requests: get(&rx, "repair-requests"),
                frames_repaired: get(&rx, "frames-repaired"),
                keyframe_requests: get(&rx, "keyframe-requests"),
                packets_received: get(&rx, "packets-received"),
                packets_lost: get(&rx, "packets-lost"),
            });
        };
        let waited = wait_for_end(
            spec,
            shared,
            &buses,
            &mut |s| sample(s),
            &mut result.samples,
        );
        result.relay = (relay.up_stats(), relay.down_stats());
        waited
    })();
    // The receiving half first, so the host's goodbye does not race a client still running.
    if let Some(c) = &client {
        let _ = c.set_state(gst::State::Null);
    }
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// Waits until a picture decoded well past the last measured frame, or the tail deadline passed,
/// or the pipeline posted an error.
fn wait_for_end(
    spec: &RowSpec,
    shared: &Shared,
    buses: &[gst::Bus],
    sample: &mut dyn FnMut(&mut Vec<Sample>),
    samples: &mut Vec<Sample>,
) -> Result<(), String> {
    const SAMPLE_EVERY: Duration = Duration::from_millis(100);
    let mut next_sample = Instant::now();
    let last = spec.warmup + spec.frames;
    // Enough to notice a stalled pipeline, not to cut short a slow encoder: the whole row three
    // times over plus set-up.
    let row_deadline =
        Instant::now() + Duration::from_secs_f64(3.0 * last as f64 / spec.fps as f64 + 15.0);
    let mut rec = lock(shared);
    loop {
        if Instant::now() >= next_sample {
            // Reading element properties must not hold the recorder (probes take it).
            drop(rec);
            sample(samples);
            next_sample += SAMPLE_EVERY;
            rec = lock(shared);
        }
        if let Some(e) = buses.iter().find_map(first_bus_error) {
            return Err(e);
        }
        if rec.newest_decoded.is_some_and(|n| n + 1 >= rec.limit) {
            return Ok(());
        }
        let now = Instant::now();
        if rec.all_encoded_at.is_some_and(|t| now >= t + TAIL_DEADLINE) {
            return Ok(());
        }
        if now >= row_deadline {
            return Err(format!(
                "row did not finish in time ({} frames encoded, newest decoded {:?})",
                rec.frames.len(),
                rec.newest_decoded
            ));
        }
        // Woken by every decoded picture; the timeout only re-checks the bus and the deadlines.
        rec = shared
            .1
            .wait_timeout(rec, Duration::from_millis(50))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
