//! The emulator on virtual time.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Everything due up to `until`, polling at each due time (as a driver would).
fn drain_until<P: Clone>(net: &mut Netem<P>, until: Instant) -> Vec<Delivery<P>> {
    let mut out: Vec<Delivery<P>> = Vec::new();
    while let Some(t) = net.poll_timeout().filter(|t| *t <= until) {
        while let Some(d) = net.poll(t) {
            // (Polled at `t` or, if a push came later, at that push's time.)
            assert!(out.last().is_none_or(|l| l.at <= d.at), "delivery order");
            out.push(d);
        }
    }
    out
}

fn drain_all<P: Clone>(net: &mut Netem<P>) -> Vec<Delivery<P>> {
    drain_until(net, net.start() + Duration::from_secs(1 << 30))
}

#[test]
fn clean_path_delivers_at_once_in_order() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(PathConfig::default(), 1, None);
    for i in 0..100u32 {
        let t = t0 + us(u64::from(i));
        assert_eq!(net.push(t, f, 100, i), Verdict::Accepted { copies: 1 });
        let d = net.poll(t).expect("due at once");
        assert_eq!((d.at, d.flow, d.payload), (t, f, i));
        assert!(net.poll(t).is_none());
    }
    assert_eq!(net.poll_timeout(), None);
    let s = net.flow_stats(f);
    assert_eq!(
        (s.offered, s.delivered, s.delivered_bytes),
        (100, 100, 10_000)
    );
}

#[test]
fn iid_loss_over_1e5_packets_matches_and_counts() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            loss: LossModel::Iid(0.1),
            ..Default::default()
        },
        7,
        None,
    );
    let (mut lost, mut got) = (0, Vec::new());
    for i in 0..100_000u32 {
        if net.push(t0, f, 1, i) == Verdict::Lost {
            lost += 1;
        }
        got.extend(std::iter::from_fn(|| net.poll(t0)));
    }
    let s = net.flow_stats(f);
    assert_eq!(s.lost, lost);
    assert_eq!(got.len() as u64, 100_000 - lost);
    let rate = lost as f64 / 1e5;
    assert!((rate - 0.1).abs() < 0.004, "{rate}");
    assert!(got.windows(2).all(|w| w[0].payload < w[1].payload));
}

#[test]
fn issue8_gilbert_elliott_path_bursts_over_1e5() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            loss: LossModel::gilbert(0.01, 0.3),
            ..Default::default()
        },
        8,
        None,
    );
    let n = 100_000usize;
    let mut lost = vec![false; n];
    for (i, l) in lost.iter_mut().enumerate() {
        *l = net.push(t0, f, 1, i) == Verdict::Lost;
    }
    let losses = lost.iter().filter(|l| **l).count();
    let bursts = lost
        .iter()
        .enumerate()
        .filter(|(i, l)| **l && (*i == 0 || !lost[i - 1]))
        .count();
    let rate = losses as f64 / n as f64;
    let burst = losses as f64 / bursts as f64;
    assert!((rate - 0.0323).abs() < 0.004, "loss {rate}");
    assert!((burst - 3.33).abs() < 0.3, "burst {burst}");
}

#[test]
fn delay_and_jitter_stay_in_bounds_and_keep_order() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            delay: 10 * MS,
            jitter: 2 * MS,
            ..Default::default()
        },
        3,
        None,
    );
    // One packet a millisecond: jitter (±2 ms) would reorder them if order were not kept.
    let n = 10_000u64;
    for i in 0..n {
        net.push(t0 + ms(i), f, 100, i);
    }
    assert_eq!(net.poll_timeout().map(|t| t >= t0 + 8 * MS), Some(true));
    let got = drain_all(&mut net);
    assert_eq!(got.len() as u64, n);
    let mut sum = Duration::ZERO;
    for (k, d) in got.iter().enumerate() {
        assert_eq!(d.payload, k as u64, "order kept");
        let sent = t0 + ms(d.payload);
        let delay = d.at - sent;
        assert!(delay >= 8 * MS && delay <= 12 * MS, "{delay:?}");
        sum += delay;
    }
    let mean = sum / n as u32;
    // Uniform ±2 ms around 10 ms, nudged up a little by order keeping.
    assert!(
        mean >= 10 * MS - us(100) && mean <= 10 * MS + us(600),
        "{mean:?}"
    );
}

fn link_cfg(rate: u64, queue: QueueLimit) -> BottleneckConfig {
    BottleneckConfig {
        overhead_bytes: 0,
        ..BottleneckConfig::new(rate).with_queue(queue)
    }
}

#[test]
fn queue_delay_is_queued_bytes_over_rate() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    // 12 Mbit/s = 1.5 bytes/µs; 1500-byte packets leave every 1000 µs.
    let link = net.add_link(link_cfg(12_000_000, QueueLimit::Bytes(1 << 20)));
    let f = net.add_flow(
        PathConfig {
            delay: 5 * MS,
            ..Default::default()
        },
        1,
        Some(link),
    );
    for i in 0..40u64 {
        net.push(t0, f, 1500, i);
    }
    assert_eq!(net.link_stats(link).queued_bytes, 60_000);
    let got = drain_all(&mut net);
    for d in &got {
        // Packet i waits for the i before it and its own serialisation, plus the path delay.
        let expect = t0 + ms(d.payload + 1) + 5 * MS;
        assert_eq!(d.at, expect, "packet {}", d.payload);
    }
    // Queueing delay of the last = queue bytes / rate = 60,000 B / 1.5 B/µs = 40 ms.
    assert_eq!(got.last().map(|d| d.at - t0), Some(45 * MS));
}

#[test]
fn drop_tail_drops_when_full_and_per_flow_counters_agree() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    // 50 ms at 8 Mbit/s = 50,000 bytes: 40 packets of 1250 fit in the queue.
    let link = net.add_link(link_cfg(8_000_000, QueueLimit::Time(50 * MS)));
    let f = net.add_flow(PathConfig::default(), 1, Some(link));
    let verdicts: Vec<Verdict> = (0..100u32).map(|i| net.push(t0, f, 1250, i)).collect();
    assert!(
        verdicts[..40]
            .iter()
            .all(|v| *v == Verdict::Accepted { copies: 1 })
    );
    assert!(verdicts[40..].iter().all(|v| *v == Verdict::QueueDropped));
    // Once one packet has left (1.25 ms), there is room for one more.
    assert_eq!(
        net.push(t0 + us(1250), f, 1250, 100),
        Verdict::Accepted { copies: 1 }
    );
    assert_eq!(net.push(t0 + us(1250), f, 1250, 101), Verdict::QueueDropped);
    let got = drain_all(&mut net);
    let s = net.flow_stats(f);
    assert_eq!((s.queue_dropped, s.delivered), (61, 41));
    assert_eq!(got.len(), 41);
    let l = net.link_stats(link);
    assert_eq!(
        (l.forwarded, l.dropped, l.max_queued_bytes),
        (41, 61, 50_000)
    );
}

/// Offers `rate_bps` of `size`-byte packets on each flow, evenly spaced, for `secs`; returns
/// delivered bytes per flow per second.
fn offer_cbr(
    net: &mut Netem<u64>,
    flows: &[(FlowId, u64)],
    size: usize,
    secs: u64,
) -> Vec<Vec<u64>> {
    let t0 = net.start();
    let end = t0 + Duration::from_secs(secs);
    // Next send time per flow.
    let gaps: Vec<Duration> = flows
        .iter()
        .map(|(_, r)| Duration::from_nanos(size as u64 * 8 * 1_000_000_000 / r))
        .collect();
    let mut next: Vec<Instant> = vec![t0; flows.len()];
    let mut per_sec = vec![vec![0u64; secs as usize + 1]; flows.len()];
    let account = |d: Delivery<u64>, per_sec: &mut Vec<Vec<u64>>| {
        let sec = (d.at - t0).as_secs() as usize;
        if let Some(slot) = per_sec[d.flow.index()].get_mut(sec) {
            *slot += size as u64;
        }
    };
    let mut seq = 0u64;
    // Spacing varies uniformly in ±50 % around the mean, so the flows do not arrive in lock
    // step, which would make drop-tail pick favourites.
    let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
    let mut spread = move |gap: Duration| gap.mul_f64(0.5 + rng.next_f64());
    loop {
        let (i, &t) = next
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .expect("flows");
        if t >= end {
            break;
        }
        for d in drain_until(net, t) {
            account(d, &mut per_sec);
        }
        net.push(t, flows[i].0, size, seq);
        seq += 1;
        next[i] = t + spread(gaps[i]);
    }
    for d in drain_until(net, end) {
        account(d, &mut per_sec);
    }
    per_sec
}

#[test]
fn rate_schedule_applies_at_the_right_virtual_time() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let sched: RateSchedule = "0:12M,3s:30M,6s:8M".parse().expect("schedule");
    let link = net.add_link(link_cfg(0, QueueLimit::Time(50 * MS)).with_schedule(sched));
    let f = net.add_flow(PathConfig::default(), 1, Some(link));
    // 40 Mbit/s offered: more than any step of the schedule.
    let per_sec = offer_cbr(&mut net, &[(f, 40_000_000)], 1000, 9);
    let mbit = |b: u64| b as f64 * 8.0 / 1e6;
    for (sec, want) in [
        (1, 12.0),
        (2, 12.0),
        (4, 30.0),
        (5, 30.0),
        (7, 8.0),
        (8, 8.0),
    ] {
        let got = mbit(per_sec[0][sec]);
        assert!(
            (got - want).abs() < want * 0.01,
            "second {sec}: {got} Mbit/s"
        );
    }
    assert_eq!(
        net.link_rate(link, t0 + Duration::from_millis(2999)),
        12_000_000
    );
    assert_eq!(net.link_rate(link, t0 + Duration::from_secs(3)), 30_000_000);
    // The step itself: the first second after each change is already at the new rate, give or
    // take the 50 ms queue that drains at the old one.
    let got = mbit(per_sec[0][3]);
    assert!((got - 30.0).abs() < 1.5, "second 3: {got}");
}

#[test]
fn shared_bottleneck_splits_capacity_between_flows() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let link = net.add_link(link_cfg(20_000_000, QueueLimit::Time(50 * MS)));
    let a = net.add_flow(PathConfig::default(), 1, Some(link));
    let b = net.add_flow(PathConfig::default(), 2, Some(link));
    // Both offer 15 Mbit/s into 20: each should get about half.
    let per_sec = offer_cbr(&mut net, &[(a, 15_000_000), (b, 15_000_000)], 1200, 10);
    let total = |v: &[u64]| v[1..10].iter().sum::<u64>() as f64 * 8.0 / 9.0 / 1e6;
    let (ra, rb) = (total(&per_sec[0]), total(&per_sec[1]));
    assert!((ra + rb - 20.0).abs() < 0.2, "sum {ra} + {rb}");
    assert!((ra - rb).abs() < 0.1 * 20.0, "a {ra} b {rb}");
    let (sa, sb) = (net.flow_stats(a), net.flow_stats(b));
    assert!(sa.queue_dropped > 0 && sb.queue_dropped > 0);
    assert_eq!(
        sa.offered,
        sa.delivered + sa.queue_dropped + net_in_flight_of(&net, a)
    );
    let l = net.link_stats(link);
    assert_eq!(l.dropped, sa.queue_dropped + sb.queue_dropped);
}

fn net_in_flight_of(net: &Netem<u64>, f: FlowId) -> u64 {
    let s = net.flow_stats(f);
    s.offered - s.delivered - s.queue_dropped - s.lost - s.overflow
}

#[test]
fn reordering_is_bounded_by_depth_and_everything_arrives_once() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            reorder: 0.1,
            reorder_depth: 3,
            ..Default::default()
        },
        5,
        None,
    );
    let n = 10_000u64;
    for i in 0..n {
        net.push(t0 + us(i * 10), f, 10, i);
    }
    let got: Vec<u64> = drain_all(&mut net).into_iter().map(|d| d.payload).collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "each exactly once");
    let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 500, "only {inversions} inversions");
    assert!(net.flow_stats(f).reordered > 800);
    // A held packet is overtaken by at most `depth` later ones — more only when several
    // held packets are released together.
    for (pos, &seq) in got.iter().enumerate() {
        assert!((pos as i64 - seq as i64).abs() <= 12, "{seq} at {pos}");
    }
}

#[test]
fn held_back_packets_leave_at_their_deadline_without_followers() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            reorder: 1.0,
            reorder_depth: 1000,
            delay: MS,
            ..Default::default()
        },
        3,
        None,
    );
    for i in 0..10u32 {
        net.push(t0, f, 10, i);
    }
    // Nothing is due before the hold expires at delay + DEFAULT_MAX_HOLD.
    assert!(net.poll(t0 + 5 * MS).is_none());
    assert_eq!(net.poll_timeout(), Some(t0 + MS + DEFAULT_MAX_HOLD));
    let got = drain_all(&mut net);
    assert_eq!(
        got.iter().map(|d| d.payload).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|d| d.at == t0 + MS + DEFAULT_MAX_HOLD));
}

#[test]
fn duplicates_are_counted_and_delivered_twice() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            duplicate: 0.05,
            ..Default::default()
        },
        8,
        None,
    );
    let n = 20_000usize;
    for i in 0..n {
        net.push(t0, f, 1, i);
    }
    let mut count = vec![0u32; n];
    for d in drain_all(&mut net) {
        count[d.payload] += 1;
    }
    let dups = net.flow_stats(f).duplicated;
    assert!((dups as f64 / n as f64 - 0.05).abs() < 0.01, "{dups}");
    assert_eq!(count.iter().filter(|&&c| c == 2).count() as u64, dups);
    assert!(count.iter().all(|&c| c == 1 || c == 2));
}

#[test]
fn same_seed_same_decisions_and_flows_do_not_disturb_each_other() {
    let run = |seed: u64, with_other: bool| {
        let t0 = Instant::now();
        let mut net = Netem::new(t0);
        let path = PathConfig {
            loss: LossModel::bursts(0.05, 2.0),
            duplicate: 0.02,
            jitter: MS,
            delay: 2 * MS,
            reorder: 0.01,
            ..Default::default()
        };
        let f = net.add_flow(path.clone(), seed, None);
        let g = net.add_flow(path, seed ^ 0xdead, None);
        let mut out = Vec::new();
        for i in 0..20_000u64 {
            let t = t0 + us(i * 50);
            out.push(net.push(t, f, 100, i));
            if with_other && i % 3 == 0 {
                net.push(t, g, 100, u64::MAX);
            }
        }
        let got: Vec<(Duration, u64)> = drain_all(&mut net)
            .into_iter()
            .filter(|d| d.flow == f)
            .map(|d| (d.at - t0, d.payload))
            .collect();
        (out, got)
    };
    let a = run(99, false);
    assert_eq!(a, run(99, false));
    assert_eq!(a, run(99, true), "another flow's traffic changed this flow");
    assert_ne!(a, run(100, false));
}

#[test]
fn trace_drives_loss_and_extra_delay() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let trace = LossTrace::parse("deliver*2\ndrop\ndeliver +3000\n").expect("trace");
    let f = net.add_flow(
        PathConfig {
            loss: LossModel::trace(trace),
            delay: MS,
            ..Default::default()
        },
        0,
        None,
    );
    let verdicts: Vec<Verdict> = (0..8u32).map(|i| net.push(t0, f, 1, i)).collect();
    let ok = Verdict::Accepted { copies: 1 };
    assert_eq!(
        verdicts,
        vec![ok, ok, Verdict::Lost, ok, ok, ok, Verdict::Lost, ok]
    );
    let got: Vec<(u32, Duration)> = drain_all(&mut net)
        .into_iter()
        .map(|d| (d.payload, d.at - t0))
        .collect();
    // The late packet holds back the ones after it (order is kept).
    assert_eq!(
        got,
        vec![
            (0, MS),
            (1, MS),
            (3, 4 * MS),
            (4, 4 * MS),
            (5, 4 * MS),
            (7, 4 * MS)
        ]
    );
}

#[test]
fn in_flight_is_bounded() {
    let t0 = Instant::now();
    let mut net = Netem::new(t0).with_max_packets(100);
    let f = net.add_flow(
        PathConfig {
            delay: Duration::from_secs(3600),
            ..Default::default()
        },
        0,
        None,
    );
    let overflow = (0..1000u32)
        .filter(|i| net.push(t0, f, 1000, *i) == Verdict::Overflow)
        .count();
    assert_eq!(overflow, 900);
    assert_eq!(net.in_flight(), 100);
    assert_eq!(net.flow_stats(f).overflow, 900);
}

/// Loss rate, mean burst length, mean delay, standard deviation, minimum and maximum of the
/// delay (ms) of each flow, all fed one packet every `gap`, interleaved (a gap above twice the
/// jitter, so order keeping never holds a packet back and the delays are the drawn ones).
fn path_statistics(net: &mut Netem<u64>, flows: &[FlowId], n: u64, gap: Duration) -> Vec<[f64; 6]> {
    let t0 = net.start();
    let sent = |i: u64| t0 + gap * (i as u32);
    let mut lost = vec![vec![false; n as usize]; flows.len()];
    for i in 0..n {
        for (k, f) in flows.iter().enumerate() {
            lost[k][i as usize] = net.push(sent(i), *f, 1200, i) == Verdict::Lost;
        }
    }
    let all = drain_all(net);
    flows
        .iter()
        .zip(&lost)
        .map(|(f, lost)| {
            let delays: Vec<f64> = all
                .iter()
                .filter(|d| d.flow == *f)
                .map(|d| (d.at - sent(d.payload)).as_secs_f64() * 1e3)
                .collect();
            let losses = lost.iter().filter(|l| **l).count();
            let bursts = (0..lost.len())
                .filter(|&i| lost[i] && (i == 0 || !lost[i - 1]))
                .count();
            assert_eq!(delays.len(), n as usize - losses);
            let mean = delays.iter().sum::<f64>() / delays.len() as f64;
            let var = delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64;
            [
                losses as f64 / n as f64,
                losses as f64 / bursts.max(1) as f64,
                mean,
                var.sqrt(),
                delays.iter().copied().fold(f64::INFINITY, f64::min),
                delays.iter().copied().fold(0.0, f64::max),
            ]
        })
        .collect()
}

#[test]
fn wan_path_both_directions_delay_jitter_and_bursts_over_1e5() {
    // The WAN benchmark's path: 30 ms ± 5 ms each way, bursts enter 2 % / leave 20 % on the
    // video direction and enter 1 % / leave 30 % on the back channel, independently seeded.
    let t0 = Instant::now();
    let mut net = Netem::new(t0).with_max_packets(1 << 18);
    let path = |p, r| PathConfig {
        loss: LossModel::gilbert(p, r),
        delay: 30 * MS,
        jitter: 5 * MS,
        ..Default::default()
    };
    let down = net.add_flow(path(0.02, 0.20), 19, None);
    let up = net.add_flow(path(0.01, 0.30), 20, None);
    let n = 100_000;
    let stats = path_statistics(&mut net, &[down, up], n, 11 * MS);
    for ((flow, p, r), [loss, burst, mean, sd, min, max]) in [(down, 0.02, 0.20), (up, 0.01, 0.30)]
        .into_iter()
        .zip(stats)
    {
        let (want_loss, want_burst) = (p / (p + r), 1.0 / r);
        assert!((loss - want_loss).abs() < 0.1 * want_loss, "loss {loss}");
        assert!(
            (burst - want_burst).abs() < 0.1 * want_burst,
            "burst {burst}"
        );
        // Uniform on [25, 35] ms: mean 30, standard deviation 10 / √12 = 2.89 ms, and over
        // 9e4 draws the extremes come within 0.1 ms of the bounds.
        assert!((mean - 30.0).abs() < 0.05, "mean delay {mean}");
        assert!((sd - 10.0 / 12f64.sqrt()).abs() < 0.05, "delay sd {sd}");
        assert!(
            (25.0..25.1).contains(&min) && max > 34.9 && max <= 35.0,
            "{min}..{max}"
        );
        let s = net.flow_stats(flow);
        assert_eq!((s.offered, s.reordered, s.duplicated), (n, 0, 0));
        assert_eq!(s.lost + s.delivered, n);
    }
}

#[test]
fn dense_traffic_through_jitter_keeps_order_within_delay_plus_jitter() {
    // 20 Mbit/s of 1,200-byte packets (one every 0.48 ms) through 30 ± 5 ms: no packet
    // overtakes another, none leaves before delay - jitter or after delay + jitter.
    let t0 = Instant::now();
    let mut net = Netem::new(t0);
    let f = net.add_flow(
        PathConfig {
            loss: LossModel::gilbert(0.02, 0.20),
            delay: 30 * MS,
            jitter: 5 * MS,
            ..Default::default()
        },
        5,
        None,
    );
    let gap = us(480);
    for i in 0..20_000u32 {
        net.push(t0 + gap * i, f, 1200, u64::from(i));
    }
    let got = drain_all(&mut net);
    assert!(got.windows(2).all(|w| w[0].payload < w[1].payload));
    for d in &got {
        let delay = d.at - (t0 + gap * d.payload as u32);
        assert!(delay >= 25 * MS && delay <= 35 * MS, "{delay:?}");
    }
    assert_eq!(got.len() as u64, net.flow_stats(f).delivered);
}
