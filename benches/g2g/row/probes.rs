//! The pad probes that time each frame (capture, encoded, arrival, decoded) and the local
//! reference decode that tells which pictures were shown intact.

use super::*;

pub(super) fn install_probes(
    spec: &RowSpec,
    shared: &Shared,
    vsrc: &gst::Element,
    enc: &gst::Element,
    arrival: &gst::Element,
    dec: &gst::Element,
    out: &gst::Element,
) -> Result<(), String> {
    let pad = |e: &gst::Element, n: &str| {
        e.static_pad(n)
            .ok_or_else(|| format!("{} has no {n} pad", e.name()))
    };
    let syntax = spec.codec.syntax();

    // Capture: when the raw picture leaves the source.
    let s = shared.clone();
    pad(vsrc, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(pts) = info.buffer().and_then(|b| pts_running_time(pad, b)) {
            let now = running_time(pad);
            let mut rec = lock(&s);
            rec.capture_by_pts.insert(pts, now);
        }
        gst::PadProbeReturn::Ok
    });

    // Encoded: index, fingerprints, a copy for the reference decode.
    let s = shared.clone();
    pad(enc, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let now = running_time(pad);
        let Ok(map) = buffer.map_readable() else {
            return gst::PadProbeReturn::Ok;
        };
        let vcl = vcl_fingerprints(syntax, &map);
        let mut rec = lock(&s);
        let index = rec.frames.len() as u32;
        if index >= rec.limit {
            return gst::PadProbeReturn::Ok;
        }
        let pts_ns = pts_running_time(pad, buffer).unwrap_or(0);
        let capture_ns = rec.capture_by_pts.remove(&pts_ns).unwrap_or(now);
        for (pos, fp) in vcl.iter().enumerate() {
            rec.by_fingerprint.entry(*fp).or_insert((index, pos));
        }
        rec.frames.push(Frame {
            record: FrameRecord {
                index,
                pts_ns,
                capture_ns,
                encoded_ns: now,
                bytes: map.len(),
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                ..FrameRecord::default()
            },
            au: map.to_vec(),
            vcl_arrived: vec![false; vcl.len()],
            ..Frame::default()
        });
        if index + 1 == rec.limit {
            rec.all_encoded_at = Some(Instant::now());
        }
        gst::PadProbeReturn::Ok
    });

    // Arrival: what the receiver emits, cut into NAL units.
    let s = shared.clone();
    let whole_aus = spec.transport.emits_access_units();
    let last_measured = (spec.warmup + spec.frames) as usize - 1;
    // punktfunksrc: its stats are read in this probe, on the thread that drives its session,
    // so the report covers exactly the frames delivered up to the last measured one.
    let src = arrival
        .factory()
        .is_some_and(|f| f.name() == "punktfunksrc");
    let src_element = arrival.downgrade();
    pad(arrival, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let now = running_time(pad);
        let Ok(map) = buffer.map_readable() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut guard = lock(&s);
        let rec = &mut *guard;
        let mut done = Vec::new();
        let mut take = |n: annexb::Nal<'_>| {
            if syntax.is_vcl(n.bytes) {
                done.push((hash64(n.bytes, HASH_SEED), n.last_byte_at));
            }
        };
        rec.arrival.push(&map, now, &mut take);
        if whole_aus {
            rec.arrival.flush(&mut take);
        }
        for (fp, at) in done {
            rec.arrived(fp, at);
        }
        if src
            && rec.src_frame_age.is_none()
            && let Some(at) = rec
                .frames
                .get(last_measured)
                .and_then(|f| f.record.arrival_ns)
        {
            rec.src_frame_age = src_element.upgrade().and_then(|e| src_frame_age(&e, at));
        }
        gst::PadProbeReturn::Ok
    });

    // Decoder input: name the access unit so the picture can be named.
    let s = shared.clone();
    pad(dec, "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_pad, info| {
        let index = {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(map) = buffer.map_readable() else {
                return gst::PadProbeReturn::Ok;
            };
            let rec = lock(&s);
            vcl_fingerprints(syntax, &map)
                .iter()
                .find_map(|fp| rec.by_fingerprint.get(fp).map(|&(i, _)| i))
        };
        if let (Some(index), Some(buffer)) = (index, info.buffer_mut()) {
            tag_frame(buffer.make_mut(), index);
        }
        gst::PadProbeReturn::Ok
    });

    // Decoded: when the picture came out, and what it looks like.
    let appsink = out
        .clone()
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "out is not an appsink".to_string())?;
    let s = shared.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let now = sink
                    .current_running_time()
                    .map_or(0, gst::ClockTime::nseconds);
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Some(index) = frame_meta(buffer) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let checksum = gst_video::VideoInfo::from_caps(caps)
                    .ok()
                    .and_then(|info| picture_checksum(buffer, &info));
                let mut rec = lock(&s);
                if let Some(f) = rec.frames.get_mut(index as usize)
                    && f.record.decoded_ns.is_none()
                {
                    f.record.decoded_ns = Some(now);
                    f.checksum = checksum;
                }
                rec.newest_decoded = rec.newest_decoded.max(Some(index));
                s.1.notify_all();
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// Decodes the sender's access units with the same parser and decoder, returning each picture's
/// checksum (by frame index; `None` where the decoder produced nothing).
pub(super) fn reference_checksums(
    codec: Codec,
    aus: &[Vec<u8>],
) -> Result<Vec<Option<u64>>, String> {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=in format=time caps={caps} ! {} ! {caps} ! {} ! appsink name=out sync=false",
        codec.parser(),
        codec.decoder(),
        caps = codec.au_caps(),
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline".to_string())?;
    let appsrc = pipeline
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    let appsink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let sums: Arc<Mutex<Vec<Option<u64>>>> = Arc::new(Mutex::new(vec![None; aus.len()]));
    let s = sums.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps())
                    && let Some(index) = frame_meta(buffer)
                    && let Ok(info) = gst_video::VideoInfo::from_caps(caps)
                {
                    let mut v = s.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = v.get_mut(index as usize) {
                        *slot = picture_checksum(buffer, &info);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    // 1/60 s per frame; the exact value does not matter, only that it increases.
    let duration = gst::ClockTime::from_nseconds(16_666_667);
    for (i, au) in aus.iter().enumerate() {
        let mut b = gst::Buffer::from_slice(au.clone());
        {
            let b = b.get_mut().ok_or("fresh buffer not writable")?;
            b.set_pts(duration * i as u64);
            b.set_duration(duration);
            tag_frame(b, i as u32);
        }
        appsrc.push_buffer(b).map_err(|e| format!("push: {e:?}"))?;
    }
    appsrc.end_of_stream().map_err(|e| format!("eos: {e:?}"))?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(STATE_TIMEOUT.as_secs() + aus.len() as u64 / 20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => return Err(e.error().to_string()),
        _ => return Err("timed out".into()),
    }
    let v = sums.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(v)
}
