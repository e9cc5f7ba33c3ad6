//! A UDP impairment relay to put between punktfunksink and punktfunksrc (the kernel here has
//! no netem). The caller (usually the src) sends to the relay's listen address; the relay
//! forwards to the upstream (the listener, usually the sink) and back, impairing both ways, and
//! prints per-pair counters every second. `--help` lists every option.
//!
//! ```text
//! # 12 Mbit/s bottleneck with a 50 ms queue, stepping 12 → 30 → 8 → 30 Mbit/s:
//! cargo run --release --features testing --example relay -- --listen 127.0.0.1:7700 --upstream 127.0.0.1:7600 \
//!     --rate-schedule 0:12M,10s:30M,20s:8M,30s:30M --queue-ms 50
//! # Two streams through one 20 Mbit/s bottleneck:
//! cargo run --release --features testing --example relay -- --pair 127.0.0.1:7700,127.0.0.1:7600 \
//!     --pair 127.0.0.1:7701,127.0.0.1:7601 --rate 20M
//! # Gilbert-Elliott bursts (enter 1 %, leave 30 %), or a recorded trace:
//! cargo run --release --features testing --example relay -- --upstream 127.0.0.1:7600 --ge 0.01,0.3
//! cargo run --release --features testing --example relay -- --upstream 127.0.0.1:7600 --trace docs/traces/wifi-bursts.trace
//! # The WAN path of benches/wan/: 30 ms ± 5 ms and bursts (enter 2 %, leave 20 %), both ways:
//! cargo run --release --features testing --example relay -- --upstream 127.0.0.1:7600 --ge 0.02,0.2 \
//!     --delay-ms 30 --jitter-ms 5
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gstpunktfunk::testkit::impair::netem::{Netem, PathConfig, Verdict, parse_rate};
use gstpunktfunk::testkit::impair::{
    BottleneckConfig, ImpairConfig, LossModel, LossTrace, QueueLimit, RateSchedule,
};
use gstpunktfunk::testkit::relay::{Relay, RelayConfig, RelayFlow};

const HELP: &str = "\
relay: a UDP impairment relay (loss, bursts, traces, delay, jitter, reordering, duplication,
a shared rate-limited bottleneck).

PAIRS (at least one; the caller sends to LISTEN, the relay forwards to UPSTREAM and back)
  --listen ADDR:PORT        front socket of the first pair [127.0.0.1:0]
  --upstream ADDR:PORT      the listener it forwards to [127.0.0.1:7600]
  --pair LISTEN,UPSTREAM    one more pair (repeatable); every pair gets the same impairments,
                            its own random seeds and its own place in a trace

LOSS (the down direction, upstream -> caller; the up direction gets the same unless --up-loss)
  --loss P                  independent loss with probability P (0..1)
  --burst N                 with --loss: Gilbert-Elliott bursts of mean length N at mean loss P
  --ge P,R[,LG,LB]          Gilbert-Elliott: P = good->bad, R = bad->good per packet; loss
                            probability LG in the good state [0] and LB in the bad state [1]
  --trace FILE              replay a loss/arrival trace (format: docs/BENCHMARKS.md,
                            \"Impairment models\"); loops when exhausted
  --up-loss P               independent loss P on the up direction instead (0 = clean)

DELAY, REORDERING, DUPLICATION (both directions)
  --delay-ms MS             fixed one-way delay
  --jitter-ms MS            uniform jitter within delay +- MS (a flow's order is kept)
  --reorder P               hold back a datagram with probability P ...
  --reorder-depth N         ... until N later ones passed [3] (or 5 ms at most)
  --duplicate P             send a datagram twice with probability P

BOTTLENECK (shared by every pair's down direction)
  --rate RATE               link rate in bits/s: 12M, 800k, 1.5G, 20000000
  --rate-schedule SCHED     rate over time: TIME:RATE steps, comma-separated, starting at 0,
                            e.g. 0:12M,10s:30M,20s:8M (times: 10s, 500ms, 1min; the last rate
                            holds; the clock starts when the relay starts)
  --queue-ms MS             drop-tail queue of MS milliseconds at the current rate [50]
  --queue-bytes N           drop-tail queue of N bytes instead
  --overhead BYTES          bytes counted on the link per datagram besides the payload [28]
  --up-rate RATE            a second bottleneck (same queue) shared by the up directions

RUN
  --seed N                  seed of the random decisions [1]
  --seconds S               stop after S seconds (default: run until killed)
  --record-trace FILE       write PACKETS packets of the down loss model as a trace and exit
  --packets N               for --record-trace [100000]
  -h, --help                this text
";

struct Args {
    pairs: Vec<(SocketAddr, SocketAddr)>,
    listen: SocketAddr,
    upstream: SocketAddr,
    loss: LossModel,
    up_loss: Option<f64>,
    burst: Option<f64>,
    iid: f64,
    reorder: f64,
    reorder_depth: usize,
    duplicate: f64,
    delay: Duration,
    jitter: Duration,
    rate: Option<u64>,
    schedule: Option<RateSchedule>,
    queue: Option<QueueLimit>,
    overhead: Option<usize>,
    up_rate: Option<u64>,
    seed: u64,
    seconds: Option<u64>,
    record: Option<String>,
    packets: usize,
}

fn fail(msg: &str) -> ! {
    eprintln!("relay: {msg}\n(relay --help lists the options)");
    std::process::exit(2)
}

fn prob(flag: &str, v: &str) -> f64 {
    match v.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => p,
        _ => fail(&format!(
            "{flag} takes a probability from 0 to 1, not `{v}`"
        )),
    }
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| fail(&format!("{flag}: bad number `{v}`")))
}

fn addr(flag: &str, v: &str) -> SocketAddr {
    v.parse()
        .unwrap_or_else(|_| fail(&format!("{flag}: `{v}` is not ADDR:PORT")))
}

fn millis(flag: &str, v: &str) -> Duration {
    let ms: f64 = num(flag, v);
    if !(0.0..=1e9).contains(&ms) {
        fail(&format!("{flag}: {v} ms out of range"));
    }
    Duration::from_secs_f64(ms / 1000.0)
}

fn parse() -> Args {
    let mut a = Args {
        pairs: Vec::new(),
        listen: "127.0.0.1:0".parse().expect("literal"),
        upstream: "127.0.0.1:7600".parse().expect("literal"),
        loss: LossModel::None,
        up_loss: None,
        burst: None,
        iid: 0.0,
        reorder: 0.0,
        reorder_depth: 3,
        duplicate: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        rate: None,
        schedule: None,
        queue: None,
        overhead: None,
        up_rate: None,
        seed: 1,
        seconds: None,
        record: None,
        packets: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            print!("{HELP}");
            std::process::exit(0);
        }
        let Some(v) = it.next() else {
            fail(&format!("{flag} needs a value"))
        };
        let f = flag.as_str();
        match f {
            "--listen" => a.listen = addr(f, &v),
            "--upstream" => a.upstream = addr(f, &v),
            "--pair" => {
                let (l, u) = v
                    .split_once(',')
                    .unwrap_or_else(|| fail("--pair takes LISTEN,UPSTREAM"));
                a.pairs.push((addr(f, l), addr(f, u)));
            }
            "--loss" => a.iid = prob(f, &v),
            "--up-loss" => a.up_loss = Some(prob(f, &v)),
            "--burst" => a.burst = Some(num(f, &v)),
            "--ge" => {
                let parts: Vec<f64> = v.split(',').map(|p| prob(f, p)).collect();
                let (lg, lb) = match parts.len() {
                    2 => (0.0, 1.0),
                    4 => (parts[2], parts[3]),
                    _ => fail("--ge takes P,R or P,R,LOSS_GOOD,LOSS_BAD"),
                };
                a.loss = LossModel::GilbertElliott {
                    p_good_to_bad: parts[0],
                    p_bad_to_good: parts[1],
                    loss_good: lg,
                    loss_bad: lb,
                };
            }
            "--trace" => {
                let t = LossTrace::load(&v).unwrap_or_else(|e| fail(&e.to_string()));
                a.loss = LossModel::trace(t);
            }
            "--reorder" => a.reorder = prob(f, &v),
            "--reorder-depth" => a.reorder_depth = num(f, &v),
            "--duplicate" => a.duplicate = prob(f, &v),
            "--delay-ms" => a.delay = millis(f, &v),
            "--jitter-ms" => a.jitter = millis(f, &v),
            "--rate" => a.rate = Some(parse_rate(&v).unwrap_or_else(|e| fail(&e))),
            "--up-rate" => a.up_rate = Some(parse_rate(&v).unwrap_or_else(|e| fail(&e))),
            "--rate-schedule" => a.schedule = Some(v.parse().unwrap_or_else(|e: String| fail(&e))),
            "--queue-ms" => a.queue = Some(QueueLimit::Time(millis(f, &v))),
            "--queue-bytes" => a.queue = Some(QueueLimit::Bytes(num(f, &v))),
            "--overhead" => a.overhead = Some(num(f, &v)),
            "--seed" => a.seed = num(f, &v),
            "--seconds" => a.seconds = Some(num(f, &v)),
            "--record-trace" => a.record = Some(v),
            "--packets" => a.packets = num(f, &v),
            _ => fail(&format!("unknown option {flag}")),
        }
    }
    if a.iid > 0.0 {
        if !matches!(a.loss, LossModel::None) {
            fail("--loss does not combine with --ge or --trace");
        }
        a.loss = match a.burst {
            Some(b) if b > 1.0 => LossModel::bursts(a.iid, b),
            _ => LossModel::Iid(a.iid),
        };
    }
    a
}

fn bottleneck(a: &Args, rate: u64) -> BottleneckConfig {
    let mut b = BottleneckConfig::new(rate);
    if let Some(q) = a.queue {
        b.queue = q;
    }
    if let Some(o) = a.overhead {
        b.overhead_bytes = o;
    }
    b
}

/// Writes `a.packets` outcomes of the down loss model as a trace.
fn record_trace(a: &Args, path: &str) {
    let t0 = Instant::now();
    let mut net: Netem<()> = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            loss: a.loss.clone(),
            ..PathConfig::default()
        },
        a.seed,
        None,
    );
    let outcomes = (0..a.packets).map(|_| {
        let v = net.push(t0, f, 0, ());
        while net.poll(t0).is_some() {}
        matches!(v, Verdict::Accepted { .. }).then_some(Duration::ZERO)
    });
    let trace = LossTrace::from_outcomes(outcomes).unwrap_or_else(|e| fail(&e.to_string()));
    let header = format!(
        "# synthetic trace: {} packets of {:?}, seed {}, mean loss {:.4}\n",
        a.packets,
        a.loss,
        a.seed,
        trace.mean_loss()
    );
    if let Err(e) = std::fs::write(path, header + &trace.to_text()) {
        fail(&format!("cannot write {path}: {e}"));
    }
    println!(
        "relay: wrote {path}: {} packets, mean loss {:.4}",
        trace.packets(),
        trace.mean_loss()
    );
}

fn main() {
    let a = parse();
    if let Some(path) = &a.record {
        record_trace(&a, path);
        return;
    }
    let mut pairs = vec![(a.listen, a.upstream)];
    pairs.extend(a.pairs.iter().copied());
    let dir = |loss: LossModel, seed: u64| ImpairConfig {
        seed,
        loss,
        reorder: a.reorder,
        reorder_depth: a.reorder_depth,
        duplicate: a.duplicate,
        delay: a.delay,
        jitter: a.jitter,
        ..ImpairConfig::default()
    };
    let up_loss = match a.up_loss {
        Some(p) if p > 0.0 => match a.burst {
            Some(b) if b > 1.0 => LossModel::bursts(p, b),
            _ => LossModel::Iid(p),
        },
        Some(_) => LossModel::None,
        None => a.loss.clone(),
    };
    let flows = pairs
        .iter()
        .enumerate()
        .map(|(i, &(listen, upstream))| {
            let seed = a.seed.wrapping_add(2 * i as u64);
            RelayFlow {
                listen,
                upstream,
                down: dir(a.loss.clone(), seed),
                up: dir(up_loss.clone(), seed.wrapping_add(1)),
            }
        })
        .collect();
    let down_rate = match (&a.schedule, a.rate) {
        (Some(s), _) => Some(bottleneck(&a, 0).with_schedule(s.clone())),
        (None, Some(r)) => Some(bottleneck(&a, r)),
        (None, None) => None,
    };
    let relay = Relay::start_with(RelayConfig {
        flows,
        down_bottleneck: down_rate,
        up_bottleneck: a.up_rate.map(|r| bottleneck(&a, r)),
    })
    .unwrap_or_else(|e| {
        eprintln!("relay: cannot bind: {e}");
        std::process::exit(1)
    });
    for (i, (front, (_, upstream))) in relay.addrs().iter().zip(&pairs).enumerate() {
        println!("relay: pair {i}: {front} <-> {upstream}");
    }
    let start = Instant::now();
    let mut last_bytes = vec![0u64; pairs.len()];
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let t = start.elapsed().as_secs_f64();
        for (i, last) in last_bytes.iter_mut().enumerate() {
            let Some(s) = relay.flow_stats(i) else {
                continue;
            };
            let (d, u) = (s.down, s.up);
            let mbit = (d.delivered_bytes - *last) as f64 * 8.0 / 1e6;
            *last = d.delivered_bytes;
            println!(
                "relay {t:6.1}s pair {i}: down fwd {} ({:.1} MB, {mbit:.2} Mbit/s) lost {} \
                 queue-dropped {} | up fwd {} lost {} queue-dropped {}",
                d.delivered,
                d.delivered_bytes as f64 / 1e6,
                d.lost,
                d.queue_dropped,
                u.delivered,
                u.lost,
                u.queue_dropped
            );
        }
        if let Some((l, rate)) = relay.down_link_stats() {
            println!(
                "relay {t:6.1}s bottleneck: {:.2} Mbit/s, queued {} B (max {} B), dropped {}",
                rate as f64 / 1e6,
                l.queued_bytes,
                l.max_queued_bytes,
                l.dropped
            );
        }
        if a.seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
    }
}
