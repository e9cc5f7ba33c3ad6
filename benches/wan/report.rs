//! The report: the markdown table, the freeze breakdown, the CSV and the SVG plot.

use super::*;

pub(crate) fn path_label((p, r): (f64, f64)) -> String {
    format!(
        "enter {} % / leave {} % (≈ {:.1} % loss, bursts {:.1})",
        p * 100.0,
        r * 100.0,
        100.0 * p / (p + r),
        1.0 / r
    )
}

pub(crate) fn target_shown(path: (f64, f64)) -> Option<f64> {
    TARGET_SHOWN
        .iter()
        .find(|(p, r, _)| (p - path.0).abs() < 1e-9 && (r - path.1).abs() < 1e-9)
        .map(|t| t.2)
}

/// Per row: keyframes the encoder made in the window, and the freezes over the target taken
/// apart ([`freeze_breakdown`]).
pub(crate) fn freezes(o: &Options, rows: &[Row]) -> String {
    let rtt = 2.0 * o.delay.as_secs_f64() * 1e3;
    let mut s = String::from(
        "\nFreezes over one RTT + two frame intervals, longest first (ms since the client \
         started; \"sent\": the encoder's output; arrival: capture → arrival):\n\n",
    );
    for r in rows.iter().filter(|r| r.transport == "punktfunk") {
        let target = rtt + 2.0 * r.frame_ms;
        let keys = r.measured().filter(|p| p.keyframe).count();
        let list = freeze_breakdown(r, target, 3);
        let _ = writeln!(
            s,
            "- {}/{} {} ({} pipeline(s)): {keys} keyframe(s) in the window; {}",
            r.path.0 * 100.0,
            r.path.1 * 100.0,
            r.stream,
            r.pipelines,
            if list.is_empty() {
                "no freeze over the target".to_string()
            } else {
                list.join("; ")
            }
        );
    }
    s
}

pub(crate) fn ok(met: bool) -> &'static str {
    if met { "" } else { " ✗" }
}

pub(crate) fn table(o: &Options, rows: &[Row]) -> String {
    let one_way = o.delay.as_secs_f64() * 1e3;
    let rtt = 2.0 * one_way;
    let p99_target = one_way + rtt + 20.0;
    let frame_ms = 1e3 / 60.0;
    let freeze_target = rtt + 2.0 * frame_ms;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Path: {one_way:.0} ms one way ± {:.0} ms jitter (order kept), Gilbert-Elliott bursts on both \
         directions. Targets: pictures shown ≥ 99.5 % at 2 %/20 % and ≥ 99.9 % at 1 %/30 %; first \
         picture ≤ {TARGET_FIRST_MS:.0} ms after the client starts; capture → arrival p99 ≤ one way + \
         one RTT + 20 = {p99_target:.0} ms; longest freeze ≤ one RTT + two frame intervals = \
         {freeze_target:.0} ms (at 60 fps); 0 corrupt. ✗ marks a missed target.\n",
        o.jitter.as_secs_f64() * 1e3
    );
    s.push_str(
        "| bursts | stream | pipelines | transport | pictures shown | first picture, ms | capture → arrival p50 / p99 / max, ms \
         | longest freeze, ms | redundancy overhead | corrupt / missing | repaired / repair req. / keyframe req. | fps achieved / encoder rate at the end |\n\
         |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let m = r.summary();
        let mut shown = if m.measured == 0 {
            "–".to_string()
        } else {
            let pct = 100.0 * m.shown as f64 / m.measured as f64;
            let met = target_shown(r.path).is_none_or(|t| pct >= t);
            format!("{pct:.2} % ({} / {}){}", m.shown, m.measured, ok(met))
        };
        if let Some(e) = &r.error {
            shown = format!("{shown} (error: {})", e.replace('|', "/"));
        }
        let _ = writeln!(
            s,
            "| {}/{} | {} | {} | {} | {shown} | {} | {} | {} | {} | {} / {} | {} | {} |",
            r.path.0 * 100.0,
            r.path.1 * 100.0,
            r.stream,
            r.pipelines,
            r.transport,
            m.first_ms.map_or("never ✗".into(), |f| format!(
                "{f:.0}{}",
                ok(f <= TARGET_FIRST_MS)
            )),
            m.arrival.map_or("–".into(), |p| format!(
                "{:.1} / {:.1}{} / {:.1}",
                p.p50,
                p.p99,
                ok(p.p99 <= p99_target),
                p.max
            )),
            m.freeze_ms.map_or("–".into(), |f| format!(
                "{f:.0}{}",
                ok(f <= rtt + 2.0 * r.frame_ms)
            )),
            r.overhead
                .map_or("–".into(), |v| format!("{:.1} %", v * 100.0)),
            m.corrupt,
            m.measured.saturating_sub(m.shown + m.corrupt),
            r.repair
                .map_or("–".into(), |(a, b, c)| format!("{a} / {b} / {c}")),
            match (r.achieved_fps, r.encoder_kbps) {
                (Some(f), Some(k)) => format!("{f:.1} / {:.2} Mbit/s", f64::from(k) / 1e3),
                (Some(f), None) => format!("{f:.1}"),
                _ => "–".into(),
            },
        );
    }
    s
}

/// The freezes of a row longer than `target` ms, longest first (at most `n`), each taken apart:
/// the last picture shown before it, the frame that ended it, and what the frames between them
/// did (never shown: lost, and the keyframe that ended the wait; shown late: held by repair).
/// Times in ms: "sent" is the encoder's output, arrival counts from capture.
pub(crate) fn freeze_breakdown(r: &Row, target: f64, n: usize) -> Vec<String> {
    let measured: Vec<&Pic> = r.measured().collect();
    let mut shown: Vec<&Pic> = measured
        .iter()
        .copied()
        .filter(|p| p.shown_at_ms.is_some())
        .collect();
    shown.sort_by(|a, b| {
        a.shown_at_ms
            .unwrap_or(0.0)
            .total_cmp(&b.shown_at_ms.unwrap_or(0.0))
    });
    let mut gaps: Vec<(f64, &Pic, &Pic)> = shown
        .windows(2)
        .map(|w| {
            (
                w[1].shown_at_ms.unwrap_or(0.0) - w[0].shown_at_ms.unwrap_or(0.0),
                w[0],
                w[1],
            )
        })
        .filter(|g| g.0 > target)
        .collect();
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total = gaps.len();
    let mut out: Vec<String> = gaps
        .into_iter()
        .take(n)
        .map(|(gap, a, b)| {
            let between: Vec<&Pic> = measured
                .iter()
                .copied()
                .filter(|p| p.index > a.index && p.index < b.index)
                .collect();
            let never = between.iter().filter(|p| !p.shown).count();
            let first = measured.iter().find(|p| p.index == a.index + 1);
            let sent = |p: &Pic| p.encoded_ms.map_or("–".into(), |e| format!("{e:.0}"));
            let arrival = |p: &Pic| p.arrival_ms.map_or("never".into(), |v| format!("{v:.0}"));
            let cause = if never > 0 {
                format!(
                    "{never} frame(s) never shown (first #{}, sent {}, arrival {}); ended by {}#{} \
                     sent {} ({:.0} after the last picture), arrival {}",
                    a.index + 1,
                    first.map_or("–".into(), |p| sent(p)),
                    first.map_or("–".into(), |p| arrival(p)),
                    if b.keyframe { "keyframe " } else { "" },
                    b.index,
                    sent(b),
                    b.encoded_ms.unwrap_or(0.0) - a.shown_at_ms.unwrap_or(0.0),
                    arrival(b)
                )
            } else {
                // Frames delivered behind it within a frame interval: held while it was repaired.
                let shown_at = b.shown_at_ms.unwrap_or(0.0);
                let held = measured
                    .iter()
                    .filter(|p| {
                        p.index > b.index
                            && p.shown_at_ms.is_some_and(|t| t - shown_at < r.frame_ms)
                    })
                    .count();
                format!(
                    "held by #{} (sent {}, arrival {}), {held} frame(s) behind it shown with it",
                    a.index + 1,
                    first.map_or("–".into(), |p| sent(p)),
                    first.map_or("–".into(), |p| arrival(p)),
                )
            };
            format!(
                "{gap:.0} ms after #{} (shown at {:.0}): {cause}",
                a.index,
                a.shown_at_ms.unwrap_or(0.0)
            )
        })
        .collect();
    if total > n {
        out.push(format!("and {} more", total - n));
    }
    out
}

/// The width of the time bins of the CSV and the plot.
pub(crate) const BIN_MS: f64 = 250.0;

/// Per bin of capture time since the client started: (frames captured, shown, corrupt).
pub(crate) fn bins(r: &Row) -> Vec<(u32, u32, u32)> {
    let n = (r.end_ms / BIN_MS).ceil().max(0.0) as usize + 1;
    let mut out = vec![(0u32, 0u32, 0u32); n];
    for p in r.pics.iter().filter(|p| p.t_ms >= 0.0) {
        let b = &mut out[((p.t_ms / BIN_MS) as usize).min(n - 1)];
        b.0 += 1;
        b.1 += u32::from(p.shown);
        b.2 += u32::from(p.corrupt);
    }
    out
}

/// Shown pictures over time: one line per row and bin.
pub(crate) fn csv(rows: &[Row]) -> String {
    let mut s = String::from("bursts,stream,pipelines,transport,t_s,captured,shown,corrupt\n");
    for r in rows {
        for (i, (captured, shown, corrupt)) in bins(r).into_iter().enumerate() {
            let _ = writeln!(
                s,
                "{}/{},{},{},{},{:.2},{captured},{shown},{corrupt}",
                r.path.0 * 100.0,
                r.path.1 * 100.0,
                r.stream.replace(',', ";"),
                r.pipelines,
                r.transport,
                i as f64 * BIN_MS / 1e3,
            );
        }
    }
    s
}

pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(140, 86, 75),
];

/// Share of pictures shown per bin of capture time, one panel per burst setting, one line per
/// row.
pub(crate) fn plot(
    o: &Options,
    rows: &[Row],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let t_max = rows.iter().map(|r| r.end_ms).fold(1000.0, f64::max) / 1e3;
    let root = SVGBackend::new(path, (1000, 380 * o.paths.len() as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "Pictures shown over a WAN path ({} ms one way ± {} ms, bursts both ways)",
            o.delay.as_millis(),
            o.jitter.as_millis()
        ),
        ("sans-serif", 18),
    )?;
    let panels = root.split_evenly((o.paths.len(), 1));
    for (panel, &p) in panels.iter().zip(&o.paths) {
        let mut chart = ChartBuilder::on(panel)
            .caption(path_label(p), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..t_max, 0.0..105.0)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the client started (capture time)")
            .y_desc("% of pictures shown (0.25 s bins)")
            .draw()?;
        for (i, r) in rows.iter().filter(|r| r.path == p).enumerate() {
            let count = bins(r);
            let color = PALETTE[i % PALETTE.len()];
            let label = format!("{}, {} pipeline(s), {}", r.stream, r.pipelines, r.transport);
            chart
                .draw_series(LineSeries::new(
                    count
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.0 > 0)
                        .map(|(b, c)| {
                            (
                                (b as f64 + 0.5) * BIN_MS / 1e3,
                                100.0 * f64::from(c.1) / f64::from(c.0),
                            )
                        }),
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

pub(crate) fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("wan: cannot write {}: {e}", path.display());
    }
}
