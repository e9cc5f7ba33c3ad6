//! The synthetic row: appsrc → punktfunksink (listening) → relay → punktfunksrc (calling) →
//! appsink, in two pipelines; delivery counted byte-exact.

use super::*;

/// Frame `i` of the synthetic stream: no zero byte (no Annex-B start code, so no parameter
/// sets for the sink to find), the index in the first five bytes, content from the index.
pub(crate) fn syn_frame(i: u32, key: bool) -> Vec<u8> {
    let len = if key {
        SYN_KEY_BYTES
    } else {
        synthetic::spread(i, SYN_DELTA_BYTES, 3_000)
    };
    synthetic::frame(i, len)
}

#[derive(Default)]
pub(crate) struct SynRecord {
    /// Per index: when it was pushed, its hash and length.
    pub(crate) sent: HashMap<u32, (Instant, u64, usize)>,
    /// Per index: when the src pushed it out, its hash and length (first copy).
    pub(crate) got: HashMap<u32, (Instant, u64, usize)>,
}

pub(crate) fn launch(d: &str) -> Result<gst::Pipeline, String> {
    gst::parse::launch(d)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

pub(crate) fn synthetic_row(o: &Options, path: (f64, f64)) -> Row {
    let stream = format!(
        "synthetic 60 fps ≈ 20 Mbit/s ({} kB key / {} kB delta)",
        SYN_KEY_BYTES / 1000,
        SYN_DELTA_BYTES / 1000
    );
    let mut row = Row::new(stream, "2", "punktfunk".into(), path, SYN_FPS);
    let t = Instant::now();
    if let Err(e) = synthetic_run(o, path, &mut row) {
        row.error = Some(e);
    }
    row.seconds = t.elapsed().as_secs_f64();
    row
}

pub(crate) fn synthetic_run(o: &Options, path: (f64, f64), row: &mut Row) -> Result<(), String> {
    let host = launch(
        "appsrc name=in is-live=true format=time \
         caps=video/x-h264,stream-format=byte-stream,alignment=au \
         ! punktfunksink name=sink address=127.0.0.1 port=0",
    )?;
    let client = launch("punktfunksrc name=src port=1 ! appsink name=out sync=false")?;
    let rec: Arc<Mutex<SynRecord>> = Arc::default();
    let key_wanted = Arc::new(AtomicBool::new(false));
    let outcome = synthetic_drive(o, path, &host, &client, &rec, &key_wanted, row);
    let _ = client.set_state(gst::State::Null);
    let _ = host.set_state(gst::State::Null);
    outcome
}

pub(crate) fn synthetic_drive(
    o: &Options,
    path: (f64, f64),
    host: &gst::Pipeline,
    client: &gst::Pipeline,
    rec: &Arc<Mutex<SynRecord>>,
    key_wanted: &Arc<AtomicBool>,
    row: &mut Row,
) -> Result<(), String> {
    let sink = host.by_name("sink").ok_or("no sink")?;
    let src = client.by_name("src").ok_or("no src")?;
    let appsrc = host
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    // The encoder's part: a keyframe request from the sink makes the next frame a keyframe.
    let k = key_wanted.clone();
    appsrc
        .static_pad("src")
        .ok_or("appsrc has no src pad")?
        .add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(ev) = info.event()
                && gst_video::UpstreamForceKeyUnitEvent::parse(ev).is_ok()
            {
                k.store(true, Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        });
    let r = rec.clone();
    let pad = src.static_pad("src").ok_or("src has no src pad")?;
    synthetic::probe(&pad, move |i, at, m| {
        let h = hash64(m, HASH_SEED);
        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
        r.got.entry(i).or_insert((at, h, m.len()));
    });
    host.set_state(gst::State::Playing)
        .map_err(|e| format!("host: {e}"))?;
    let port = u16::try_from(sink.property::<u32>("port"))
        .ok()
        .filter(|&p| p != 0)
        .ok_or("the sink reported no bound port")?;
    let relay = g2g::start_relay(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &path_spec(o, path),
        seed_of(path, 0x5e),
        None,
    )
    .map_err(|e| format!("relay: {e}"))?;
    src.set_property("port", u32::from(relay.addr().port()));
    client
        .set_state(gst::State::Playing)
        .map_err(|e| format!("client: {e}"))?;
    // Frames are pushed on the 60 fps clock from the moment the client starts; the sink drops
    // those it has no peer for yet (start-up is part of the measurement).
    let t0 = Instant::now();
    let total = (o.seconds * f64::from(SYN_FPS)).round() as u32;
    let interval = Duration::from_nanos(1_000_000_000 / u64::from(SYN_FPS));
    let mut last_key = 0u32;
    for i in 0..total {
        let due = t0 + interval * i;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w); // the source's frame clock, not synchronisation
        }
        let key =
            i == 0 || i - last_key >= SYN_KEY_INTERVAL || key_wanted.swap(false, Ordering::SeqCst);
        if key {
            last_key = i;
        }
        let data = syn_frame(i, key);
        let (h, len) = (hash64(&data, HASH_SEED), data.len());
        let mut buf = gst::Buffer::from_mut_slice(data);
        {
            let b = buf.get_mut().ok_or("fresh buffer not writable")?;
            b.set_pts(gst::ClockTime::from_nseconds(
                (interval * i).as_nanos() as u64
            ));
            if !key {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        rec.lock()
            .unwrap_or_else(|e| e.into_inner())
            .sent
            .insert(i, (Instant::now(), h, len));
        appsrc
            .push_buffer(buf)
            .map_err(|e| format!("push {i}: {e:?}"))?;
    }
    let last = stats_sample(&sink);
    if std::env::var_os("WAN_DEBUG").is_some() {
        eprintln!("sink stats: {}", sink.property::<gst::Structure>("stats"));
    }
    row.overhead = overhead(&last);
    row.rtt_ms = (last.rtt_us > 0).then(|| last.rtt_us as f64 / 1e3);
    let src_stats = src.property::<gst::Structure>("stats");
    let get = |f: &str| src_stats.get::<u64>(f).unwrap_or(0);
    row.repair = Some((
        get("frames-repaired"),
        get("repair-requests"),
        get("keyframe-requests"),
    ));
    // The last frames get the repair deadline's worth of time to arrive: the src ends with EOS
    // after the sink's goodbye.
    let _ = appsrc.end_of_stream();
    if let Some(bus) = client.bus() {
        let _ = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(3),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
    }
    drop(relay);
    let rec = rec.lock().unwrap_or_else(|e| e.into_inner());
    let ms = |at: Instant| at.saturating_duration_since(t0).as_secs_f64() * 1e3;
    for i in 0..total {
        let Some(&(sent_at, h, len)) = rec.sent.get(&i) else {
            continue;
        };
        let got = rec.got.get(&i);
        let exact = got.is_some_and(|&(_, gh, gl)| gh == h && gl == len);
        row.pics.push(Pic {
            t_ms: ms(sent_at),
            shown: exact,
            corrupt: got.is_some() && !exact,
            arrival_ms: got
                .map(|&(at, ..)| at.saturating_duration_since(sent_at).as_secs_f64() * 1e3),
            shown_at_ms: got.filter(|_| exact).map(|&(at, ..)| ms(at)),
            index: i,
            keyframe: false,
            encoded_ms: None,
        });
    }
    row.end_ms = row.pics.last().map_or(0.0, |p| p.t_ms);
    Ok(())
}
