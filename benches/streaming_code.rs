//! What parity shared over a window of frames (a streaming code, `protocol::fec::window`) buys
//! a small-frame stream over the WAN path of `docs/wan.md`, against the per-frame trailing
//! Reed-Solomon rows the host sends today, on the same loss at the same overhead.
//!
//! A Monte Carlo of the wire order alone (no session, no timing): frames of 5–9 data datagrams
//! (x264 640x360 at 4 Mbit/s sends ~7), each send carrying the frame's data and then the
//! trailing rows of the frame before (PROTOCOL §9.3); Gilbert-Elliott bursts counted in
//! datagrams take datagrams in that order. For each frame it asks whether the frame's data
//! shards are determined by what arrived — its data, and every row that covers it or its
//! neighbours — by two moments:
//! - **own rows**: the rows sent with the next frame have arrived (one way + a frame interval
//!   after the frame left, ≈ 47 ms on the 30 ms path);
//! - **budget**: the rows sent with the frame after next-but-one have arrived as well (one way +
//!   three frame intervals, ≈ 80 ms: a frame rebuilt then still shows within one RTT + two
//!   frame intervals of the frame before it).
//!
//! A frame not rebuilt by the budget needs a repair round trip (or an early ask that must
//! not fail): those are the frames that can freeze the picture past one RTT + two frame
//! intervals (`docs/wan_protection.md`). Decoding is the real joint decoder
//! (`protocol::fec::window::Equations`) over the exact Reed-Solomon rows the coder sends.
//!
//! Run: `cargo bench --features testing --bench streaming_code -- [--frames N] [--seed S]`.

use std::time::Instant;

use gstpunktfunk::protocol::fec::window::{Column, Equations, RowTables, encode_window_rows};
use gstpunktfunk::testkit::rng::Rng;

/// Gilbert-Elliott loss counted in datagrams: every datagram in the bad state is lost.
struct Bursts {
    enter: f64,
    leave: f64,
    bad: bool,
}

impl Bursts {
    fn lost(&mut self, rng: &mut Rng) -> bool {
        self.bad = if self.bad {
            !rng.chance(self.leave)
        } else {
            rng.chance(self.enter)
        };
        self.bad
    }
}

/// How a frame's parity is made and sent.
#[derive(Clone, Copy)]
struct Scheme {
    name: &'static str,
    /// Rows over the frame alone, as `f(k)`.
    own: fn(usize) -> usize,
    /// Rows over the window of the last `window` frames (the frame and those before it).
    shared: fn(usize) -> usize,
    window: usize,
    /// Own rows that go right behind the frame's data instead of behind the next frame.
    with_data: fn(usize) -> usize,
}

/// Today's plan on this path: `max(k, 8)` rows (the ceiling of a small block), of which
/// `min(m, k + 1)` trail behind the next frame.
fn today_m(k: usize) -> usize {
    k.max(8)
}
fn today_with_data(k: usize) -> usize {
    today_m(k) - today_m(k).min(k + 1)
}
fn none(_: usize) -> usize {
    0
}
fn eight(_: usize) -> usize {
    8
}
fn six(_: usize) -> usize {
    6
}
fn five(_: usize) -> usize {
    5
}
fn four(_: usize) -> usize {
    4
}
fn three(_: usize) -> usize {
    3
}
fn two(_: usize) -> usize {
    2
}

const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "per frame, trailing (today)",
        own: today_m,
        shared: none,
        window: 1,
        with_data: today_with_data,
    },
    Scheme {
        name: "window 2, 8 rows",
        own: none,
        shared: eight,
        window: 2,
        with_data: none,
    },
    Scheme {
        name: "window 3, 8 rows",
        own: none,
        shared: eight,
        window: 3,
        with_data: none,
    },
    Scheme {
        name: "window 3, 4 own + 4 shared",
        own: four,
        shared: four,
        window: 3,
        with_data: none,
    },
    Scheme {
        name: "window 3, 6 rows",
        own: none,
        shared: six,
        window: 3,
        with_data: none,
    },
    Scheme {
        name: "window 3, 5 rows",
        own: none,
        shared: five,
        window: 3,
        with_data: none,
    },
    Scheme {
        name: "window 3, 3 own + 2 shared",
        own: three,
        shared: two,
        window: 3,
        with_data: none,
    },
    Scheme {
        name: "window 3, 4 rows",
        own: none,
        shared: four,
        window: 3,
        with_data: none,
    },
];

/// One frame on the wire: which data shards and which rows arrived.
struct Sent {
    k: usize,
    data: Vec<bool>,
    own: Vec<bool>,
    shared: Vec<bool>,
}

/// Whether frame `n`'s data is determined by the data and rows of frames up to `upto`.
fn rebuilt(s: &[Sent], sch: &Scheme, n: usize, upto: usize, co: &mut RowTables) -> bool {
    if s[n].data.iter().all(|&d| d) {
        return true;
    }
    let w = sch.window;
    // Unknowns: missing data of frames that rows up to `upto` can reach back to.
    let lo = n.saturating_sub(2 * (w - 1));
    let mut index = vec![Vec::new(); upto + 1];
    let mut count = 0usize;
    for (f, idx) in index.iter_mut().enumerate().skip(lo) {
        *idx = s[f]
            .data
            .iter()
            .map(|&arrived| {
                if arrived {
                    None
                } else {
                    count += 1;
                    Some(count - 1)
                }
            })
            .collect();
    }
    let mut eq = Equations::new(count, 0).unwrap();
    let column = |f: usize, j: usize| -> Column<'static> {
        match index[f].get(j).copied().flatten() {
            Some(i) if f >= lo => Column::Unknown(i),
            _ => Column::Known(&[]),
        }
    };
    for f in n.saturating_sub(w - 1)..=upto {
        let own: Vec<Column<'static>> = (0..s[f].k).map(|j| column(f, j)).collect();
        for (r, _) in s[f].own.iter().enumerate().filter(|(_, a)| **a) {
            eq.push_coefficients(co.row(s[f].k, r).unwrap(), &own, &[])
                .unwrap();
        }
        if s[f].shared.iter().any(|&a| a) {
            let first = (f + 1).saturating_sub(w);
            let cols: Vec<Column<'static>> = (first..=f)
                .flat_map(|g| (0..s[g].k).map(move |j| (g, j)))
                .map(|(g, j)| column(g, j))
                .collect();
            let k = cols.len();
            for (r, _) in s[f].shared.iter().enumerate().filter(|(_, a)| **a) {
                eq.push_coefficients(co.row(k, r).unwrap(), &cols, &[])
                    .unwrap();
            }
        }
    }
    let solved = eq.solve();
    index[n].iter().flatten().all(|&i| solved[i].is_some())
}

struct Outcome {
    data: usize,
    rows: usize,
    hit: usize,
    by_own: usize,
    by_budget: usize,
}

fn run(
    sch: &Scheme,
    enter: f64,
    leave: f64,
    frames: usize,
    seed: u64,
    co: &mut RowTables,
) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut path = Bursts {
        enter,
        leave,
        bad: false,
    };
    let mut ks_rng = Rng::new(seed ^ 0x5eed);
    let ks: Vec<usize> = (0..frames)
        .map(|_| 5 + (ks_rng.next_u64() % 5) as usize)
        .collect();
    let mut s: Vec<Sent> = Vec::with_capacity(frames);
    let mut rows = 0;
    for (n, &k) in ks.iter().enumerate() {
        let (own, shared, with_data) = ((sch.own)(k), (sch.shared)(k), (sch.with_data)(k));
        rows += own + shared;
        let mut sent = Sent {
            k,
            data: (0..k).map(|_| !path.lost(&mut rng)).collect(),
            own: vec![false; own],
            shared: vec![false; shared],
        };
        // Rows that go with the data: the last ones of the frame's own rows.
        for r in own - with_data..own {
            sent.own[r] = !path.lost(&mut rng);
        }
        s.push(sent);
        // Then the frame before's trailing rows.
        if n > 0 {
            let prev = &mut s[n - 1];
            let trailing = prev.own.len() - (sch.with_data)(prev.k);
            for r in 0..trailing {
                prev.own[r] = !path.lost(&mut rng);
            }
            for r in 0..prev.shared.len() {
                prev.shared[r] = !path.lost(&mut rng);
            }
        }
    }
    let data: usize = ks.iter().sum();
    let mut o = Outcome {
        data,
        rows,
        hit: 0,
        by_own: 0,
        by_budget: 0,
    };
    // Frames far enough from both ends that every window and row is in the run.
    for n in 8..frames - 4 {
        if s[n].data.iter().all(|&d| d) {
            continue;
        }
        o.hit += 1;
        if !rebuilt(&s, sch, n, n, co) {
            o.by_own += 1;
            if sch.window == 1 || !rebuilt(&s, sch, n, n + sch.window - 1, co) {
                o.by_budget += 1;
            }
        }
    }
    o
}

/// Host and client cost of a window of `w` frames of `k` shards of 1,200 bytes with `m` rows:
/// encoding its rows, and rebuilding the newest frame's last `lost` data shards from the first
/// `pushed` of its rows with the frames before it known (the reassembler pushes as many
/// independent rows as there are unknowns). Returns µs per window, per solve.
fn costs(rng: &mut Rng, w: usize, k: usize, m: usize, lost: usize, pushed: usize) -> (f64, f64) {
    const LEN: usize = 1200;
    let frames: Vec<Vec<Vec<u8>>> = (0..w)
        .map(|_| {
            (0..k)
                .map(|_| (0..LEN).map(|_| rng.next_u64() as u8).collect())
                .collect()
        })
        .collect();
    let views: Vec<Vec<&[u8]>> = frames
        .iter()
        .map(|f| f.iter().map(|s| s.as_slice()).collect())
        .collect();
    let views: Vec<&[&[u8]]> = views.iter().map(|v| v.as_slice()).collect();
    let mut rows = vec![vec![0u8; LEN]; m];
    let reps = (40_000 / (m * w * k)).max(20);
    let t = Instant::now();
    for _ in 0..reps {
        let mut out: Vec<&mut [u8]> = rows.iter_mut().map(|v| v.as_mut_slice()).collect();
        encode_window_rows(&views, 0, &mut out).unwrap();
    }
    let encode = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    let cols_total = w * k;
    let first_lost = cols_total - lost;
    let t = Instant::now();
    for _ in 0..reps {
        let cols: Vec<Column<'_>> = (0..cols_total)
            .map(|c| {
                if c >= first_lost {
                    Column::Unknown(c - first_lost)
                } else {
                    Column::Known(&frames[c / k][c % k])
                }
            })
            .collect();
        let mut eq = Equations::new(lost, LEN).unwrap();
        // As the client's reassembler does: the code's rows computed once per solve.
        let mut tables = RowTables::default();
        for (r, row) in rows.iter().enumerate().take(pushed) {
            eq.push_coefficients(tables.row(cols_total, r).unwrap(), &cols, row)
                .unwrap();
        }
        let solved = eq.solve();
        assert_eq!(
            solved[lost - 1].as_deref(),
            Some(frames[w - 1][k - 1].as_slice())
        );
    }
    let solve = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    (encode, solve)
}

fn main() {
    let mut frames = 200_000usize;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--frames" => frames = args.next().and_then(|v| v.parse().ok()).unwrap_or(frames),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--bench" => {}
            other => eprintln!("ignored argument {other}"),
        }
    }
    let mut co = RowTables::default();
    let (encode, solve) = costs(&mut Rng::new(seed), 3, 7, 8, 7, 8);
    println!(
        "Cost, three 7-shard frames of 1,200-byte shards: encoding a window's 8 rows {encode:.1} µs; \
         rebuilding a frame lost whole from them (7 unknowns, 8 rows) {solve:.1} µs"
    );
    // A paired 720p frame (~35 data shards, as many rows) against its own rows.
    let (own, _) = costs(&mut Rng::new(seed), 1, 35, 35, 5, 35);
    let (encode, solve) = costs(&mut Rng::new(seed), 2, 35, 35, 5, 30);
    let (_, solve_min) = costs(&mut Rng::new(seed), 2, 35, 35, 5, 5);
    println!(
        "Cost, a paired frame of 35 shards after one of 35: encoding its 35 rows {encode:.1} µs \
         (its own rows: {own:.1} µs); rebuilding 5 lost data shards from the 30 rows that \
         arrived {solve:.1} µs (from 5 of them, as the reassembler picks: {solve_min:.1} µs)\n"
    );
    println!(
        "{frames} frames of 5–9 data datagrams a path, seed {seed}; per 1,200 frames (a 20 s row at 60 fps)\n"
    );
    println!(
        "| bursts enter / leave | scheme | overhead (rows / data) | frames that lost data | not rebuilt by their own rows (≈ 47 ms) | not rebuilt within the budget (≈ 80 ms): need a round trip |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let per = |x: usize| x as f64 * 1200.0 / frames as f64;
    for (enter, leave) in [(0.02, 0.20), (0.01, 0.30)] {
        for sch in SCHEMES {
            let o = run(sch, enter, leave, frames, seed, &mut co);
            println!(
                "| {:.0} % / {:.0} % | {} | {:.0} % | {:.1} | {:.2} | {:.2} |",
                enter * 100.0,
                leave * 100.0,
                sch.name,
                o.rows as f64 * 100.0 / o.data as f64,
                per(o.hit),
                per(o.by_own),
                per(o.by_budget),
            );
        }
    }
}
