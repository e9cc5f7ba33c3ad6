//! Host path, stage by stage, in memory: packetize, FEC encode (20 %), seal (AES-256-GCM, with
//! each backend behind the `crypto::Aead` seam: `aes-gcm` and `ring`), the three together, and
//! the same through `Session::seal_frame_into`; and the client's FEC
//! recovery in the reassembler at 0, 1, 5 and 20 % of a frame's datagrams dropped (all data
//! shards; 20 % is capped at the frame's parity budget), with a fresh random loss pattern per
//! frame (as on a real link: the decoder inverts a new matrix nearly every frame) and with one
//! fixed pattern (its inverted matrix stays cached: the best case).
//!
//! Two frame sizes: a 1080p60 access unit at 50 Mbit/s (50e6 / 8 / 60 = 104,167 bytes, cut
//! into 78 data and 16 parity datagrams of 1,386 bytes) and a frame of exactly 64 full data
//! shards (86,400 bytes: 64 data and 13 parity datagrams of 1,400 bytes, the block the design's
//! scale figures use).
//!
//! Criterion reports time per frame and datagrams per second (`Throughput::Elements` is the
//! frame's datagram count, parity included). With `cargo bench` a summary table follows with
//! ns per datagram from a plain timing loop: the median of several runs, by the thread's CPU
//! time (robust against other processes taking the core on a shared machine) and by the wall
//! clock, against the design's target of 1.5 µs per datagram for the whole host path.
//!
//! Run: `cargo bench --bench host_path` (about two and a half minutes on two cores).
//! Summary only: `cargo bench --bench host_path -- summary_only` (a filter that matches no
//! criterion benchmark; about a minute).
//!
//! Fixed work for instruction counts (`valgrind --tool=callgrind`, repeatable where timings on a
//! shared machine are not): `HOST_PATH_FIXED=<frames>,<frame>,<aead>` (e.g.
//! `2000,1080p60_50Mbps,aes-gcm`) seals that many frames through `Session::seal_frame_into`
//! inside `seal_frames` (never inlined, so `--toggle-collect=*seal_frames*` counts exactly
//! them), after a few unmeasured ones, prints the datagram count and skips everything else.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use gstpunktfunk::protocol::fec::coder::{BlockLayout, ReedSolomon8, parity_for, parity_rows};
use gstpunktfunk::protocol::media::packetizer::{Datagrams, FrameParams, Packetizer, seal_all};
use gstpunktfunk::protocol::media::reassembler::{Output, Reassembler, ReassemblerConfig};
use gstpunktfunk::protocol::security::crypto::{Aead, AeadBackend};
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::wire::{DEFAULT_MTU, HEADER_LEN, TAG_LEN};
use gstpunktfunk::session::{Config, Mode, Session};
use gstpunktfunk::testkit::memory::MemoryTransport;
use gstpunktfunk::testkit::rng::Rng;

/// 50 Mbit/s at 60 frames a second, in bytes per frame.
const FRAME_1080P60_50M: usize = 104_167;
const FEC_PERCENT: u8 = 20;
const KEY: [u8; 32] = [0x42; 32];
/// The design's host-path budget per datagram.
const TARGET_NS: f64 = 1500.0;

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    len: usize,
}

fn cases() -> [Case; 2] {
    [
        Case {
            name: "1080p60_50Mbps",
            len: FRAME_1080P60_50M,
        },
        Case {
            name: "64_data_shards",
            len: 64 * Packetizer::max_shard(DEFAULT_MTU, TAG_LEN),
        },
    ]
}

/// The AEAD backends behind the `crypto::Aead` seam, with the names the reports use.
const BACKENDS: [(AeadBackend, &str); 2] = [
    (AeadBackend::AesGcm, "aes-gcm"),
    (AeadBackend::Ring, "ring"),
];

/// A frame's bytes: anything but zeros, so that neither FEC nor AES meets a trivial input.
fn frame(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

fn params(frame_index: u32, first_packet_number: u64) -> FrameParams {
    FrameParams {
        frame_index,
        keyframe: false,
        fec_percent: FEC_PERCENT,
        session_id: 0x1234_5678,
        first_packet_number,
        sealed: true,
        tag_len: TAG_LEN,
        timing: Default::default(),
    }
}

/// Everything one host-path case needs, set up once.
struct HostPath {
    frame: Vec<u8>,
    packetizer: Packetizer,
    aead: Box<dyn Aead>,
    out: Datagrams,
    next_pn: u64,
}

impl HostPath {
    fn new(len: usize, backend: AeadBackend) -> Self {
        let mut h = HostPath {
            frame: frame(len),
            packetizer: Packetizer::new(DEFAULT_MTU, Box::new(ReedSolomon8::new())),
            aead: backend.make(&KEY),
            out: Datagrams::new(),
            next_pn: 0,
        };
        h.whole();
        h
    }

    fn packetize(&mut self) {
        let p = params(0, self.next_pn);
        self.packetizer
            .packetize(black_box(&self.frame), &p, &mut self.out)
            .expect("packetize");
    }

    fn fec(&mut self) {
        self.packetizer
            .encode_parity(FEC_PERCENT, &mut self.out)
            .expect("encode_parity");
    }

    fn seal(&mut self) {
        seal_all(&mut self.out, &*self.aead);
    }

    /// Packetize + FEC + seal, with fresh packet numbers as a sender uses them.
    fn whole(&mut self) {
        self.packetize();
        self.fec();
        self.seal();
        self.next_pn += self.out.len() as u64;
    }

    fn datagrams(&self) -> usize {
        self.out.len()
    }
}

/// How the dropped datagrams are chosen for each frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// The same data shards every frame: the decoder's cache of inverted matrices always hits.
    Fixed,
    /// Different data shards every frame (seeded PRNG), as random loss does: the decoder
    /// inverts a fresh matrix for nearly every frame.
    Random,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Fixed => "fixed_pattern",
            Pattern::Random => "random_pattern",
        }
    }
}

/// One frame's opened video bodies fed to a reassembler frame after frame, with a share of
/// them dropped.
struct Recovery {
    bodies: Vec<Vec<u8>>,
    data_count: usize,
    drop: Vec<bool>,
    drops: usize,
    pattern: Pattern,
    rng: Rng,
    reassembler: Reassembler,
    index: u32,
    frame_len: usize,
}

impl Recovery {
    /// Drops `percent` % of the frame's datagrams (rounded up, at most its parity), all of them
    /// data shards: the case that makes the client rebuild the most.
    fn new(len: usize, percent: u32, pattern: Pattern) -> Self {
        let mut h = HostPath::new(len, AeadBackend::default());
        h.packetize();
        h.fec();
        let d = &h.out;
        let total = d.len();
        let n = d.data_count();
        let layout = BlockLayout::for_shards(n);
        // The frames here are one block each, so the whole parity is one block's budget.
        assert_eq!(layout.blocks, 1, "recovery bench assumes a one-block frame");
        let parity = parity_for(n, FEC_PERCENT);
        let drops = ((total as u32 * percent).div_ceil(100) as usize).min(parity);
        let bodies = (0..total)
            .map(|i| {
                let g = d.get(i);
                g[HEADER_LEN..g.len() - TAG_LEN].to_vec()
            })
            .collect();
        let mut r = Recovery {
            bodies,
            data_count: n,
            drop: vec![false; total],
            drops,
            pattern,
            rng: Rng::new(0x5eed),
            reassembler: Reassembler::new(
                ReassemblerConfig::default(),
                Box::new(ReedSolomon8::new()),
            ),
            index: 0,
            frame_len: len,
        };
        // Spread evenly over the frame for the fixed pattern.
        for i in 0..drops {
            r.drop[i * n / drops.max(1)] = true;
        }
        // Check once that the frame comes out whole and was really rebuilt.
        for _ in 0..3 {
            let f = r.frame();
            assert_eq!(f.0, len);
            assert_eq!(f.1 as usize, drops);
        }
        r
    }

    fn datagrams_pushed(&self) -> usize {
        self.bodies.len() - self.drops
    }

    /// Pushes the next frame; returns its length and the shards rebuilt.
    fn frame(&mut self) -> (usize, u32) {
        if self.pattern == Pattern::Random {
            self.drop.fill(false);
            let mut left = self.drops;
            while left > 0 {
                let i = (self.rng.next_u64() % self.data_count as u64) as usize;
                if !self.drop[i] {
                    self.drop[i] = true;
                    left -= 1;
                }
            }
        }
        let now = Instant::now();
        let index = self.index.to_be_bytes();
        self.index = self.index.wrapping_add(1);
        let mut got = (0, 0);
        for (b, &dropped) in self.bodies.iter_mut().zip(&self.drop) {
            if dropped {
                continue;
            }
            b[..4].copy_from_slice(&index);
            let _ = self.reassembler.push(b, now);
        }
        while let Some(o) = self.reassembler.poll() {
            if let Output::Frame(f) = o {
                got = (f.data.len(), f.recovered_shards);
                black_box(f.data);
            }
        }
        got
    }
}

/// A host session connected to a client over the in-memory pair (single-threaded handshake).
fn connected_host(backend: AeadBackend) -> (Session, Session) {
    let (a, b) = MemoryTransport::pair();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut hc = Config::new(Role::Host, Mode::Listener);
    hc.aead = backend;
    let host = Session::new(hc, a).expect("host");
    let listener: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let mut cc = Config::client_caller(listener);
    cc.aead = backend;
    let client = Session::new(cc, b).expect("client");
    let poll = Duration::from_millis(2);
    for _ in 0..200 {
        while let Ok(Some(_)) = client.poll_frame(poll) {}
        while let Ok(Some(_)) = host.poll_input(poll) {}
        if host.is_connected() && client.is_connected() {
            return (host, client);
        }
    }
    panic!("host and client did not connect over the memory pair");
}

fn bench_host(c: &mut Criterion) {
    for case in cases() {
        let mut h = HostPath::new(case.len, AeadBackend::default());
        let n = h.datagrams() as u64;
        let mut g = c.benchmark_group(format!("host_path/{}", case.name));
        g.throughput(Throughput::Elements(n));
        g.bench_function("packetize", |b| b.iter(|| h.packetize()));
        h.packetize();
        g.bench_function("fec_encode_20pct", |b| b.iter(|| h.fec()));
        for (backend, name) in BACKENDS {
            let mut h = HostPath::new(case.len, backend);
            h.packetize();
            h.fec();
            g.bench_function(format!("seal/{name}"), |b| b.iter(|| h.seal()));
            g.bench_function(format!("whole/{name}"), |b| b.iter(|| h.whole()));

            let (host, _client) = connected_host(backend);
            let data = frame(case.len);
            let mut buf = Some(Datagrams::new());
            g.bench_function(format!("session_seal_frame_into/{name}"), |b| {
                b.iter(|| {
                    let f = host
                        .seal_frame_into(black_box(&data), false, buf.take().unwrap_or_default())
                        .expect("seal_frame_into")
                        .expect("connected");
                    buf = Some(f.into_buffer());
                })
            });
        }
        g.finish();
    }
}

/// Building a coder for a new `(k, m)`: the crate's constructor (Vandermonde matrix times the
/// inverse of its top `k × k`, as the previous coder cache did for every new pair) against the
/// closed-form rows `ReedSolomon8` derives (`fec.rs`).
fn coder_build_ns(k: usize, m: usize) -> ((f64, f64), (f64, f64)) {
    let before = median_ns(
        || {
            black_box(reed_solomon_erasure::galois_8::ReedSolomon::new(k, m).expect("coder"));
        },
        20,
        9,
    );
    let after = median_ns(
        || {
            black_box(parity_rows(k, m).expect("rows"));
        },
        20,
        9,
    );
    (before, after)
}

fn bench_coder_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("coder_build");
    for (k, m) in [(32, 4), (128, 32)] {
        g.bench_function(format!("crate_new/{k}_{m}"), |b| {
            b.iter(|| reed_solomon_erasure::galois_8::ReedSolomon::new(k, m).expect("coder"))
        });
        g.bench_function(format!("derived_rows/{k}_{m}"), |b| {
            b.iter(|| parity_rows(k, m).expect("rows"))
        });
    }
    g.finish();
}

fn bench_recovery(c: &mut Criterion) {
    for case in cases() {
        for pattern in [Pattern::Random, Pattern::Fixed] {
            let mut g = c.benchmark_group(format!("fec_recovery/{}/{}", case.name, pattern.name()));
            for pct in [0u32, 1, 5, 20] {
                if pct == 0 && pattern == Pattern::Fixed {
                    continue;
                }
                let mut r = Recovery::new(case.len, pct, pattern);
                g.throughput(Throughput::Elements(r.datagrams_pushed() as u64));
                g.bench_with_input(BenchmarkId::new("drop_pct", pct), &pct, |b, _| {
                    b.iter(|| r.frame())
                });
            }
            g.finish();
        }
    }
}

/// CPU time the calling thread has used. Unlike wall-clock time it does not count the
/// moments another process had the core, which on a shared two-core machine is most of the
/// noise.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median nanoseconds per call of `f` over `rounds` runs of `iters` calls, by the thread's CPU
/// time and by the wall clock.
fn median_ns(mut f: impl FnMut(), iters: u32, rounds: usize) -> (f64, f64) {
    for _ in 0..iters {
        f();
    }
    let mut cpu = Vec::with_capacity(rounds);
    let mut wall = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (c, t) = (thread_cpu(), Instant::now());
        for _ in 0..iters {
            f();
        }
        wall.push(t.elapsed().as_nanos() as f64 / f64::from(iters));
        cpu.push((thread_cpu() - c).as_nanos() as f64 / f64::from(iters));
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    (cpu[rounds / 2], wall[rounds / 2])
}

fn summary() {
    const ITERS: u32 = 300;
    const ROUNDS: usize = 9;
    println!();
    println!(
        "Summary: median of {ROUNDS} runs of {ITERS} frames, by the thread's CPU time (wall clock \
         in brackets); ns per datagram = ns per frame / datagrams in the frame"
    );
    println!(
        "{:<16} {:<34} {:>6} {:>10} {:>12} {:>14} {:>8}  target",
        "frame", "stage", "dgrams", "ns/frame", "ns/datagram", "(wall ns/dg)", "Gbit/s"
    );
    for case in cases() {
        let mut h = HostPath::new(case.len, AeadBackend::default());
        let n = h.datagrams();
        let dlen = h.out.datagram_len();
        let row = |stage: &str, (cpu, wall): (f64, f64), whole: bool| {
            let per = cpu / n as f64;
            let verdict = match (whole, per <= TARGET_NS) {
                (false, _) => "",
                (true, true) => "met (<= 1500 ns)",
                (true, false) => "MISSED (> 1500 ns)",
            };
            println!(
                "{:<16} {:<34} {:>6} {:>10.0} {:>12.1} {:>14} {:>8.2}  {verdict}",
                case.name,
                stage,
                n,
                cpu,
                per,
                format!("({:.1})", wall / n as f64),
                case.len as f64 * 8.0 / cpu
            );
        };
        row(
            "packetize",
            median_ns(|| h.packetize(), ITERS, ROUNDS),
            false,
        );
        h.packetize();
        row(
            "fec_encode_20pct",
            median_ns(|| h.fec(), ITERS, ROUNDS),
            false,
        );
        for (backend, name) in BACKENDS {
            let mut h = HostPath::new(case.len, backend);
            h.packetize();
            h.fec();
            row(
                &format!("seal {name}"),
                median_ns(|| h.seal(), ITERS, ROUNDS),
                false,
            );
            row(
                &format!("whole (pkt+fec+seal) {name}"),
                median_ns(|| h.whole(), ITERS, ROUNDS),
                true,
            );
            let (host, _client) = connected_host(backend);
            let data = frame(case.len);
            let mut buf = Some(Datagrams::new());
            let t = median_ns(
                || {
                    let f = host
                        .seal_frame_into(&data, false, buf.take().unwrap_or_default())
                        .expect("seal_frame_into")
                        .expect("connected");
                    buf = Some(f.into_buffer());
                },
                ITERS,
                ROUNDS,
            );
            row(&format!("Session::seal_frame_into {name}"), t, true);
        }
        println!(
            "{:<16} ({} bytes, {} datagrams of {} bytes, {} data)",
            "",
            case.len,
            n,
            dlen,
            h.out.data_count()
        );
    }
    println!();
    println!("Coder build for a new (k, m), CPU time (wall clock in brackets)");
    for (k, m) in [(32, 4), (78, 16), (128, 32)] {
        let ((bc, bw), (ac, aw)) = coder_build_ns(k, m);
        println!(
            "  k {k:>3} m {m:>2}: crate ReedSolomon::new {:>9.1} µs ({:.1}); derived rows {:>7.1} µs ({:.1})",
            bc / 1e3,
            bw / 1e3,
            ac / 1e3,
            aw / 1e3
        );
    }
    println!();
    println!("FEC encode of one block, crate encoder vs ReedSolomon8 (same run), CPU time");
    for (k, m) in [(78usize, 16usize), (64, 13)] {
        let len = Packetizer::max_shard(DEFAULT_MTU, TAG_LEN);
        let data: Vec<Vec<u8>> = (0..k).map(|i| frame(len + i)[i..].to_vec()).collect();
        let d: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        let mut parity = vec![vec![0u8; len]; m];
        let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(k, m).expect("coder");
        let (crate_cpu, _) = median_ns(
            || {
                let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
                rs.encode_sep(&d, &mut p).expect("encode");
            },
            ITERS,
            ROUNDS,
        );
        let mut ours = ReedSolomon8::new();
        let (ours_cpu, _) = median_ns(
            || {
                let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
                gstpunktfunk::protocol::fec::coder::FecCoder::encode(&mut ours, &d, &mut p)
                    .expect("encode");
            },
            ITERS,
            ROUNDS,
        );
        println!(
            "  k {k:>3} m {m:>2}: crate {:>8.0} ns/block ({:.1} ns/data shard); ReedSolomon8 {:>8.0} ns/block ({:.1} ns/data shard)",
            crate_cpu,
            crate_cpu / k as f64,
            ours_cpu,
            ours_cpu / k as f64
        );
    }
    println!();
    println!(
        "FEC recovery in the reassembler (data shards dropped, rebuilt from parity), CPU time"
    );
    println!(
        "{:<16} {:<15} {:>6} {:>8} {:>7} {:>10} {:>12} {:>14} {:>8}",
        "frame",
        "pattern",
        "drop %",
        "dropped",
        "pushed",
        "ns/frame",
        "ns/datagram",
        "(wall ns/dg)",
        "Gbit/s"
    );
    for case in cases() {
        for pattern in [Pattern::Random, Pattern::Fixed] {
            for pct in [0u32, 1, 5, 20] {
                if pct == 0 && pattern == Pattern::Fixed {
                    continue;
                }
                let mut r = Recovery::new(case.len, pct, pattern);
                let (cpu, wall) = median_ns(
                    || {
                        black_box(r.frame());
                    },
                    ITERS,
                    ROUNDS,
                );
                let n = r.datagrams_pushed() as f64;
                println!(
                    "{:<16} {:<15} {:>6} {:>8} {:>7} {:>10.0} {:>12.1} {:>14} {:>8.2}",
                    case.name,
                    pattern.name(),
                    pct,
                    r.drops,
                    r.datagrams_pushed(),
                    cpu,
                    cpu / n,
                    format!("({:.1})", wall / n),
                    r.frame_len as f64 * 8.0 / cpu
                );
            }
        }
    }
}

/// `n` frames of `data` through `Session::seal_frame_into`, reusing one buffer; returns the
/// datagrams sealed. Never inlined: the fixed mode's instruction counts toggle on it.
#[inline(never)]
fn seal_frames(host: &Session, data: &[u8], n: usize, buf: &mut Option<Datagrams>) -> usize {
    let mut datagrams = 0;
    for _ in 0..n {
        let f = host
            .seal_frame_into(black_box(data), false, buf.take().unwrap_or_default())
            .expect("seal_frame_into")
            .expect("connected");
        datagrams += f.datagrams().len();
        *buf = Some(f.into_buffer());
    }
    datagrams
}

/// `HOST_PATH_FIXED=<frames>,<frame>,<aead>`: see the module docs.
fn fixed(spec: &str) {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let [n, case, aead] = parts[..] else {
        panic!("HOST_PATH_FIXED=<frames>,<frame>,<aead>, got {spec:?}");
    };
    let n: usize = n.parse().expect("frame count");
    let case = cases()
        .into_iter()
        .find(|c| c.name == case)
        .expect("frame: 1080p60_50Mbps or 64_data_shards");
    let (backend, _) = BACKENDS
        .into_iter()
        .find(|(_, name)| *name == aead)
        .expect("aead: aes-gcm or ring");
    let (host, _client) = connected_host(backend);
    let data = frame(case.len);
    let mut buf = None;
    seal_frames(&host, &data, 20, &mut buf);
    let datagrams = black_box(seal_frames(&host, &data, n, &mut buf));
    println!(
        "fixed: {n} frames of {} ({} bytes), {aead}: {datagrams} datagrams in seal_frames",
        case.name, case.len
    );
}

fn main() {
    if let Ok(spec) = std::env::var("HOST_PATH_FIXED") {
        fixed(&spec);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_host(&mut c);
    bench_recovery(&mut c);
    bench_coder_build(&mut c);
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` runs each benchmark once instead.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
