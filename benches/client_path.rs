//! Client path over real UDP on 127.0.0.1: `recvmmsg` + AEAD open + reassembly with FEC
//! recovery, in a client `Session` calling `poll_frame` on one core, at 5 % loss.
//!
//! A host session and a client session connect over loopback (a real handshake). The host then
//! seals a run of 1080p60-at-50-Mbit/s frames (104,167 bytes, 78 + 16 datagrams) ahead of time;
//! a sender thread on the other core replays those datagrams from a plain `UdpTransport`
//! (sendmmsg + GSO), dropping 5 % of them by a seeded PRNG (iid, deterministic), and staying at
//! most a window of frames ahead of what the client has delivered so that the kernel's receive
//! buffer never overflows (the client is what is measured, not the socket buffer). The client
//! runs on the calling thread, pinned to CPU 0; the sender to CPU 1.
//!
//! Reported per run: payload Gbit/s delivered (wall clock), the client thread's CPU time per
//! datagram and the payload rate that CPU cost allows on one core, frames delivered and lost,
//! shards rebuilt, kernel receive-buffer drops, and heap allocations on the client thread per
//! datagram and per frame (a counting allocator). Target: >= 5 Gbit/s of payload on one core.
//!
//! Both AEAD backends behind the `crypto::Aead` seam are measured: `aes-gcm` (the default) and
//! `ring`.
//!
//! Run: `cargo bench --bench client_path` (3 runs of 2,000 frames per backend, about half a
//! minute).
//! Without `--bench` (as `cargo test --benches` runs it) it does one short run as a smoke test.
//!
//! Fixed work for instruction counts (`valgrind --tool=callgrind --separate-threads=yes`,
//! repeatable where timings on a shared machine are not): `CLIENT_PATH_FIXED=<frames>,<aead>`
//! (e.g. `600,aes-gcm`) does one run of that many frames with that backend only, with a repair
//! deadline of seconds (so that a client slowed down by valgrind gives no frame up). The client
//! thread's work is inside `receive` (never inlined, so `--toggle-collect=*receive*` counts it,
//! and `Connection::handle_datagram` within it is the per-datagram receive path).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::media::packetizer::Datagrams;
use gstpunktfunk::protocol::security::crypto::AeadBackend;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Event, Mode, Session};
use gstpunktfunk::transport::Transport;
use gstpunktfunk::transport::udp::{UdpOptions, UdpTransport};
use rand_xoshiro::SplitMix64;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

/// 50 Mbit/s at 60 frames a second, in bytes per frame.
const FRAME_LEN: usize = 104_167;
/// Share of datagrams the sender drops, in percent.
const LOSS_PERCENT: u64 = 5;
const TARGET_GBPS: f64 = 5.0;

// ----- allocation counting on the client thread -----

struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ----- small helpers -----

/// Pins the calling thread to one CPU (best effort: ignored where it fails).
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// UDP datagrams the kernel dropped for full receive buffers, machine-wide
/// (`/proc/net/snmp`, `Udp: RcvbufErrors`); `None` where it cannot be read.
fn kernel_rcvbuf_errors() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let col = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(col)?.parse().ok()
}

fn frame(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 ^ seed).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

fn bind() -> UdpTransport {
    UdpTransport::bind("127.0.0.1:0".parse().expect("addr"), &UdpOptions::default())
        .expect("bind 127.0.0.1:0")
}

/// A host (listener) and a client (caller) connected over loopback, sealing with `backend`.
/// `patient`: the client gives no frame up for seconds, so that a client slowed down (under
/// valgrind) still does the same work per frame as at full speed.
fn connect(backend: AeadBackend, patient: bool) -> (Session, Session) {
    let mut hc = Config::new(Role::Host, Mode::Listener);
    hc.aead = backend;
    let host = Session::new(hc, bind()).expect("host");
    let mut cc = Config::client_caller(host.local_addr());
    cc.aead = backend;
    if patient {
        cc.repair_deadline = Some(Duration::from_secs(5));
    }
    let client = Session::new(cc, bind()).expect("client session");
    let poll = Duration::from_millis(5);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        while let Ok(Some(_)) = client.poll_frame(poll) {}
        while let Ok(Some(_)) = host.poll_input(poll) {}
        if host.is_connected() && client.is_connected() {
            return (host, client);
        }
    }
    panic!("host and client did not connect over loopback");
}

struct RunResult {
    frames: usize,
    delivered: u64,
    lost: u64,
    payload: u64,
    datagrams_sent: u64,
    datagrams_dropped: u64,
    datagrams_received: u64,
    recovered: u64,
    kernel_drops: Option<u64>,
    wall: Duration,
    cpu: Duration,
    allocs: u64,
    window: usize,
}

/// One run: seal `frames` frames, replay them with loss, receive them in the client.
fn run(host: &Session, client: &Session, frames: usize, seed: u64) -> RunResult {
    // Seal ahead of time: the host path is measured elsewhere.
    // On a helper thread, so that the client thread's profile shows the client path alone.
    let sealed: Vec<Datagrams> = std::thread::scope(|s| {
        s.spawn(|| {
            let data = frame(FRAME_LEN, seed as u32);
            (0..frames)
                .map(|i| {
                    host.seal_frame_into(&data, i % 120 == 0, Datagrams::new())
                        .expect("seal")
                        .expect("connected")
                        .into_buffer()
                })
                .collect()
        })
        .join()
        .expect("sealing thread")
    });
    let wire_per_frame = sealed[0].wire_bytes();
    // Stay well inside the receive buffer (the kernel charges ~2x a datagram's size).
    let rcvbuf = client.stats().recv_buffer as usize;
    let window = (rcvbuf / (wire_per_frame * 3)).clamp(2, 64);

    let to: SocketAddr = client.local_addr();
    let accounted = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(2));
    let before = client.stats();
    let kernel_before = kernel_rcvbuf_errors();

    let sender = {
        let accounted = accounted.clone();
        let done = done.clone();
        let start = start.clone();
        std::thread::spawn(move || {
            pin_to(1);
            let tx = bind();
            // SplitMix64: a deterministic drop pattern.
            let mut rng = SplitMix64::seed_from_u64(seed);
            let mut refs: Vec<&[u8]> = Vec::with_capacity(128);
            let (mut sent, mut dropped) = (0u64, 0u64);
            start.wait();
            for (i, d) in sealed.iter().enumerate() {
                while i as u64 >= accounted.load(Ordering::Acquire) + window as u64 {
                    std::hint::spin_loop();
                    std::thread::yield_now();
                }
                refs.clear();
                for j in 0..d.len() {
                    if rng.next_u64() % 100 < LOSS_PERCENT {
                        dropped += 1;
                    } else {
                        refs.push(d.get(j));
                    }
                }
                let o = tx.send(&refs, to).expect("send");
                sent += o.sent as u64;
            }
            done.store(true, Ordering::Release);
            (sent, dropped)
        })
    };

    pin_to(0);
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    let cpu0 = thread_cpu();
    start.wait();
    let t0 = Instant::now();
    COUNTED.with(|c| c.set(true));
    let (delivered, lost, payload, t_last) = receive(client, frames, &done, &accounted);
    COUNTED.with(|c| c.set(false));
    let cpu = thread_cpu() - cpu0;
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    let (sent, dropped) = sender.join().expect("sender");
    let after = client.stats();
    let kernel_drops = match (kernel_before, kernel_rcvbuf_errors()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    RunResult {
        frames,
        delivered,
        lost,
        payload,
        datagrams_sent: sent,
        datagrams_dropped: dropped,
        datagrams_received: after.packets_received - before.packets_received,
        recovered: after.fec_recovered - before.fec_recovered,
        kernel_drops,
        wall: t_last - t0,
        cpu,
        allocs,
        window,
    }
}

/// The client's side of a run: polls until `frames` frames are delivered or lost (or the
/// sender is done and nothing came for 200 ms), telling the sender how far it got. Returns
/// frames delivered, frames lost, payload bytes and when the last frame came. Never inlined:
/// the fixed mode's instruction counts toggle on it.
#[inline(never)]
fn receive(
    client: &Session,
    frames: usize,
    done: &AtomicBool,
    accounted: &AtomicU64,
) -> (u64, u64, u64, Instant) {
    let mut delivered = 0u64;
    let mut lost = 0u64;
    let mut payload = 0u64;
    let mut t_last = Instant::now();
    let mut idle_since: Option<Instant> = None;
    while delivered + lost < frames as u64 {
        match client.poll_frame(Duration::from_millis(20)) {
            Ok(Some(Event::Frame(f))) => {
                delivered += 1;
                payload += f.data.len() as u64;
                t_last = Instant::now();
                idle_since = None;
            }
            Ok(Some(Event::FramesLost { count })) => {
                lost += u64::from(count);
                idle_since = None;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                // Frames whose every datagram was lost are never seen; stop once the sender
                // is done and nothing has come for a while.
                let now = Instant::now();
                if done.load(Ordering::Acquire)
                    && now.duration_since(*idle_since.get_or_insert(now))
                        > Duration::from_millis(200)
                {
                    break;
                }
            }
        }
        accounted.store(delivered + lost, Ordering::Release);
    }
    (delivered, lost, payload, t_last)
}

/// The AEAD backends behind the `crypto::Aead` seam, with the names the report uses.
const BACKENDS: [(AeadBackend, &str); 2] = [
    (AeadBackend::AesGcm, "aes-gcm"),
    (AeadBackend::Ring, "ring"),
];

/// `CLIENT_PATH_FIXED=<frames>,<aead>`: see the module docs.
fn fixed(spec: &str) {
    let (n, aead) = spec
        .split_once(',')
        .expect("CLIENT_PATH_FIXED=<frames>,<aead>");
    let frames: usize = n.trim().parse().expect("frame count");
    let (backend, name) = BACKENDS
        .into_iter()
        .find(|(_, name)| *name == aead.trim())
        .expect("aead: aes-gcm or ring");
    let (host, client) = connect(backend, true);
    let res = run(&host, &client, frames, 0x5eed);
    println!(
        "fixed: {name}, {} frames: {} delivered, {} lost, {} datagrams received, {} rebuilt, \
         kernel drops {:?}",
        res.frames,
        res.delivered,
        res.lost,
        res.datagrams_received,
        res.recovered,
        res.kernel_drops
    );
    let _ = client.close();
    let _ = host.close();
}

fn main() {
    if let Ok(spec) = std::env::var("CLIENT_PATH_FIXED") {
        fixed(&spec);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (runs, frames) = if full { (3, 2000) } else { (1, 60) };
    println!(
        "client_path: UDP loopback, {FRAME_LEN}-byte frames, {LOSS_PERCENT} % iid loss, \
         GSO on the sender; client on CPU 0, sender on CPU 1"
    );
    println!(
        "{:<8} {:>3} {:>6} {:>6} {:>5} {:>8} {:>8} {:>6} {:>7} {:>8} {:>9} {:>6} {:>10} {:>10} {:>9} {:>8}",
        "aead",
        "run",
        "frames",
        "deliv",
        "lost",
        "dg sent",
        "dg recv",
        "rebuilt",
        "k.drops",
        "wall ms",
        "Gbit/s",
        "cpu %",
        "cpu ns/dg",
        "cpu Gbit/s",
        "allocs/dg",
        "allocs/f"
    );
    let mut medians = Vec::new();
    for (backend, name) in BACKENDS {
        let (host, client) = connect(backend, false);
        let mut gbps = Vec::new();
        let mut cap = Vec::new();
        for r in 0..runs {
            let res = run(&host, &client, frames, 0x5eed + r as u64);
            let wall = res.wall.as_secs_f64();
            let g = res.payload as f64 * 8.0 / wall / 1e9;
            let cpu_per_dg = res.cpu.as_nanos() as f64 / res.datagrams_received.max(1) as f64;
            // Payload a fully busy core would deliver at this CPU cost per datagram.
            let payload_per_dg = res.payload as f64 / res.datagrams_received.max(1) as f64;
            let c = payload_per_dg * 8.0 / cpu_per_dg;
            gbps.push(g);
            cap.push(c);
            println!(
                "{:<8} {:>3} {:>6} {:>6} {:>5} {:>8} {:>8} {:>6} {:>7} {:>8.1} {:>9.2} {:>6.0} {:>10.0} {:>10.2} {:>9.3} {:>8.1}",
                name,
                r + 1,
                res.frames,
                res.delivered,
                res.lost,
                res.datagrams_sent,
                res.datagrams_received,
                res.recovered,
                res.kernel_drops
                    .map_or_else(|| "?".to_owned(), |d| d.to_string()),
                wall * 1e3,
                g,
                res.cpu.as_secs_f64() / wall * 100.0,
                cpu_per_dg,
                c,
                res.allocs as f64 / res.datagrams_received.max(1) as f64,
                res.allocs as f64 / res.delivered.max(1) as f64,
            );
            println!(
                "{:<8}     sender dropped {} of {} datagrams on purpose ({:.2} %), window {} \
                 frames, recv buffer {} bytes",
                "",
                res.datagrams_dropped,
                res.datagrams_dropped + res.datagrams_sent,
                res.datagrams_dropped as f64 * 100.0
                    / (res.datagrams_dropped + res.datagrams_sent).max(1) as f64,
                res.window,
                client.stats().recv_buffer
            );
        }
        gbps.sort_by(f64::total_cmp);
        cap.sort_by(f64::total_cmp);
        medians.push((name, gbps[gbps.len() / 2], cap[cap.len() / 2]));
        let _ = client.close();
        let _ = host.close();
    }
    for (name, g, c) in medians {
        let verdict = match (full, g >= TARGET_GBPS) {
            (false, _) => "not judged (smoke run without --bench)",
            (true, true) => "met",
            (true, false) => "MISSED",
        };
        println!(
            "median {name}: {g:.2} Gbit/s delivered (wall clock), {c:.2} Gbit/s per core at the \
             measured client CPU cost; target >= {TARGET_GBPS} Gbit/s: {verdict}"
        );
    }
}
