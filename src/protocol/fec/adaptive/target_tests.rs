use super::*;
use crate::protocol::fec::lossmodel::{LossCounts, binomial_tail};
use proptest::prelude::*;

const TICK: Duration = Duration::from_millis(100);

fn report(window: LossCounts, recent: LossCounts) -> LossModelReport {
    let mut burst_hist = [0; 8];
    burst_hist[0] = window.bursts;
    LossModelReport {
        window_ms: 1000,
        recent,
        window,
        burst_hist,
    }
}

fn counts(packets: u32, lost: u32, bursts: u32) -> LossCounts {
    LossCounts {
        packets,
        lost,
        bursts,
    }
}

/// Counts whose Gilbert fit is exactly iid loss `q` (p = q, r = 1 − q).
fn iid_counts(q_permille: u32) -> LossCounts {
    let packets = 100_000;
    let lost = packets / 1000 * q_permille;
    let bursts = lost / 1000 * (1000 - q_permille);
    counts(packets, lost, bursts)
}

/// Target mode at 1e-4 (the figures below are for that target, not the default).
/// (Every block planned as one run of consecutive datagrams: trailing parity off.)
fn target() -> AdaptiveFec {
    AdaptiveFec::new(FecMode::Target, 20, 100)
        .with_target(TargetConfig {
            target: 1e-4,
            ..TargetConfig::default()
        })
        .with_trailing(0)
}

/// Failure of a block whose last `t` rows are sent after `gap` other datagrams, by seeded
/// Monte Carlo over the Gilbert chain.
fn monte_carlo_split(p: f64, r: f64, k: usize, m: usize, t: usize, gap: usize) -> f64 {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut unit = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let pb = p / (p + r);
    let trials = 400_000u32;
    let mut fails = 0u32;
    for _ in 0..trials {
        let mut bad = unit() < pb;
        let mut lost = 0;
        for i in 0..k + m + gap {
            let mine = i < k + m - t || i >= k + m - t + gap;
            lost += usize::from(bad && mine);
            bad = if bad { unit() >= r } else { unit() < p };
        }
        fails += u32::from(lost > m);
    }
    f64::from(fails) / f64::from(trials)
}

/// The split plan: a small block's failure over its two runs (data, and the trailing rows
/// a frame later) matches Monte Carlo with a frame's datagrams between them, lies far below
/// the consecutive block's, and the controller picks the least `m` that meets the target
/// under it; on a path where repair cannot land in time the target is ten times tighter,
/// on one where it can (or before an RTT) it is the configured one.
#[test]
fn small_blocks_are_planned_with_their_parity_apart_and_by_the_round_trip() {
    let (p, r) = (0.02, 0.2);
    let g = GilbertElliott {
        p,
        r,
        loss_good: 0.0,
        loss_bad: 1.0,
    };
    let t = FailureTable::new(&g, MAX_SHARDS_PER_BLOCK);
    for (k, m) in [(7, 4), (7, 8), (3, 4)] {
        let tr = trailing_parity(k, m);
        let exact = t.split_block_failure(k, m, tr);
        let mc = monte_carlo_split(p, r, k, m, tr, 15);
        assert!(
            (exact - mc).abs() < 0.15 * exact + 2e-4,
            "k {k} m {m}: {exact} vs {mc}"
        );
        // Apart, a burst that takes the data whole leaves the rows (m > k) to rebuild it.
        if m > k {
            assert!(exact < t.block_failure(k, m) / 2.0, "k {k} m {m}");
        }
    }
    let c = LossCounts {
        packets: 100_000,
        lost: 9_000,
        bursts: 1_800,
    };
    let plan = |f: &mut AdaptiveFec| {
        f.on_loss_model(&report(c, c), Instant::now());
        f.block_parity(7)
    };
    let mut lan = AdaptiveFec::new(FecMode::Target, 20, 100);
    lan.set_path(Duration::from_millis(1), Duration::from_micros(16_667));
    let mut wan = AdaptiveFec::new(FecMode::Target, 20, 100);
    wan.set_path(Duration::from_millis(60), Duration::from_micros(16_667));
    let (m_lan, m_wan) = (plan(&mut lan), plan(&mut wan));
    assert!(m_wan >= m_lan, "{m_wan} < {m_lan}");
    let models: Vec<FailureTable> = [&report(c, c).window]
        .into_iter()
        .filter_map(GilbertElliott::from_counts)
        .map(|g| FailureTable::new(&g, MAX_SHARDS_PER_BLOCK))
        .collect();
    let cfg = TargetConfig::default();
    let fails = |m: usize| models[0].split_block_failure(7, m, trailing_parity(7, m));
    if m_lan > cfg.floor(7) && m_lan < cfg.ceiling(7) {
        assert!(fails(m_lan) <= cfg.target && fails(m_lan - 1) > cfg.target);
    }
    // Large blocks keep the configured target on both paths (a loss shows at once).
    assert!(repair_in_time(Duration::from_millis(60), Duration::ZERO));
    assert!(!repair_in_time(
        Duration::from_millis(60),
        Duration::from_micros(19_667)
    ));
    assert!(repair_in_time(Duration::from_millis(1), Duration::ZERO));
}

#[test]
fn iid_choice_is_the_least_parity_under_the_binomial_tail() {
    for q in [10u32, 50, 100, 200] {
        // Base 0: the first report raises every block size straight to what it asks.
        let mut f = AdaptiveFec::new(FecMode::Target, 0, 100);
        let c = iid_counts(q);
        f.on_loss_model(&report(c, c), Instant::now());
        let cfg = *f.target_config();
        let qf = f64::from(q) / 1000.0;
        for k in [1usize, 2, 5, 10, 20, 32, 64, 78, 100, 128] {
            let m = f.block_parity(k);
            assert!(
                m >= cfg.floor(k) && m <= cfg.ceiling(k),
                "q {q} k {k} m {m}"
            );
            let fail = binomial_tail(k + m, qf, m);
            if m < cfg.ceiling(k) {
                assert!(
                    fail <= cfg.target * (1.0 + 1e-9),
                    "q {q} k {k} m {m}: {fail}"
                );
            }
            if m > cfg.floor(k) {
                let less = binomial_tail(k + m - 1, qf, m - 1);
                assert!(
                    less > cfg.target,
                    "q {q} k {k}: m {m} not the least ({less})"
                );
            }
        }
    }
    // Some figures (checked with an independent exact binomial sum): at 10 % iid a 32-shard
    // block needs 13 parity shards, a 128-shard block 31; at 20 % a one-shard frame 5.
    let mut f = target();
    let c = iid_counts(100);
    f.on_loss_model(&report(c, c), Instant::now());
    assert_eq!(f.block_parity(32), 13);
    assert_eq!(f.block_parity(128), 31);
    let mut f = target();
    let c = iid_counts(200);
    f.on_loss_model(&report(c, c), Instant::now());
    assert_eq!(f.block_parity(1), 5);
}

/// Block failure of `(k, m)` under the Gilbert chain, by seeded Monte Carlo.
fn monte_carlo(p: f64, r: f64, k: usize, m: usize, trials: u32) -> f64 {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let pb = p / (p + r);
    let mut fails = 0u32;
    for _ in 0..trials {
        let mut bad = unit() < pb;
        let mut lost = 0;
        for _ in 0..k + m {
            lost += usize::from(bad);
            bad = if bad { unit() >= r } else { unit() < p };
        }
        fails += u32::from(lost > m);
    }
    f64::from(fails) / f64::from(trials)
}

#[test]
fn burst_choice_holds_the_target_by_monte_carlo() {
    // The path: enter 1 %, leave 30 %. Counts with exactly that fit.
    let c = counts(31_000, 1_000, 300);
    let mut f = target();
    f.on_loss_model(&report(c, c), Instant::now());
    let k = 32;
    let m = f.block_parity(k);
    let cfg = *f.target_config();
    assert!(m > cfg.floor(k) && m < cfg.ceiling(k), "m {m}");
    // The choice is the least m within the target by the exact tail…
    let exact = FailureTable::new(&GilbertElliott::from_counts(&c).unwrap(), 256);
    assert!(exact.block_failure(k, m) <= cfg.target);
    assert!(exact.block_failure(k, m - 1) > cfg.target);
    // …and a simulation of the chain agrees with that tail at m and m − 1 (4 standard
    // errors).
    let trials = 2_000_000;
    for mm in [m - 1, m] {
        let mc = monte_carlo(0.01, 0.3, k, mm, trials);
        let want = exact.block_failure(k, mm);
        let se = (want / f64::from(trials)).sqrt();
        assert!(
            (mc - want).abs() <= 4.0 * se,
            "k {k} m {mm}: {mc} vs {want}"
        );
    }
    // Long geometric bursts dominate: a 32-shard block needs 27 parity shards for 1e-4.
    assert_eq!(m, 27);
    // Bursts need far more parity than iid loss of the same rate.
    let mut g = target();
    let iid = iid_counts(32);
    g.on_loss_model(&report(iid, iid), Instant::now());
    assert!(g.block_parity(k) < m);
}

#[test]
fn rises_within_one_report_and_falls_slowly_to_the_floor() {
    let mut f = target();
    let cfg = *f.target_config();
    let mut now = Instant::now();
    let clean = counts(2_000, 0, 0);
    // Clean: settles from 20 % to the floor within 5 s.
    let ks = [32usize, 78, 128];
    let mut settled_at = None;
    for i in 0..50 {
        now += TICK;
        f.on_loss_model(&report(clean, counts(200, 0, 0)), now);
        if settled_at.is_none() && ks.iter().all(|&k| f.block_parity(k) == cfg.floor(k)) {
            settled_at = Some(i + 1);
        }
    }
    let settled = settled_at.expect("settles at the floor");
    assert!(settled * 100 <= 5_000, "took {settled} reports");
    // At the floor, a 720p (32 shards) and a 1080p (78 shards) frame carry ≤ 10 % parity.
    assert!(f.block_parity(32) * 10 <= 32);
    assert!(f.block_parity(78) * 10 <= 78);
    // 10 % loss appears in the latest interval only: one report raises to what it asks.
    now += TICK;
    let recent = counts(200, 20, 18);
    let mut window = clean;
    window.packets += 200;
    window.lost += 20;
    window.bursts += 18;
    f.on_loss_model(&report(window, recent), now);
    let raised: Vec<usize> = ks.iter().map(|&k| f.block_parity(k)).collect();
    let tables = [FailureTable::new(
        &GilbertElliott::from_counts(&recent).unwrap(),
        256,
    )];
    let want = cfg.demand(&tables);
    for (&k, &m) in ks.iter().zip(&raised) {
        assert!(m >= want.parity(k), "k {k}");
        assert!(m > cfg.floor(k));
    }
    // Clean again: nothing falls during the hold, then at most a quarter of the gap (at
    // least one shard) per decay interval.
    let raised_at = now;
    let mut prev = raised.clone();
    let mut last_fall = None::<Instant>;
    for _ in 0..100 {
        now += TICK;
        f.on_loss_model(&report(clean, counts(200, 0, 0)), now);
        let cur: Vec<usize> = ks.iter().map(|&k| f.block_parity(k)).collect();
        if cur != prev {
            assert!(now.duration_since(raised_at) >= cfg.hold);
            if let Some(t) = last_fall {
                assert!(now.duration_since(t) >= cfg.decay_interval);
            }
            last_fall = Some(now);
            for (i, &k) in ks.iter().enumerate() {
                assert!(cur[i] <= prev[i]);
                let gap = prev[i] - cfg.floor(k);
                assert!(prev[i] - cur[i] <= (gap / 4).max(1), "k {k}");
            }
        }
        prev = cur;
    }
    assert!(ks.iter().all(|&k| f.block_parity(k) == cfg.floor(k)));
}

#[test]
fn repair_margin_keeps_an_answer_within_the_repair_target() {
    let mut f = target();
    assert_eq!(f.repair_margin(), RepairMargin::NONE);
    // Bursts entering at 2 % and leaving at 20 % (mean 5 datagrams): counts with exactly
    // that fit.
    let c = counts(11_000, 1_000, 200);
    f.on_loss_model(&report(c, c), Instant::now());
    let exact = FailureTable::new(&GilbertElliott::from_counts(&c).unwrap(), 256);
    let margin = f.repair_margin();
    for n in [1usize, 2, 3, 8, 20, 64] {
        let e = margin.extra(n);
        assert!(e <= MAX_REPAIR_MARGIN);
        if e < MAX_REPAIR_MARGIN {
            assert!(exact.block_failure(n, e) <= REPAIR_TARGET, "n {n} e {e}");
        }
        if e > 0 {
            assert!(exact.block_failure(n, e - 1) > REPAIR_TARGET, "n {n} e {e}");
        }
    }
    // One row asked needs rows beyond a mean burst; iid loss of the same rate far fewer.
    assert!(margin.extra(1) > 5, "{}", margin.extra(1));
    let mut g = target();
    let iid = iid_counts(91);
    g.on_loss_model(&report(iid, iid), Instant::now());
    assert!(g.repair_margin().extra(1) < margin.extra(1) / 2);
    // Outside target mode, none.
    let mut a = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
    a.on_loss_model(&report(c, c), Instant::now());
    assert_eq!(a.repair_margin(), RepairMargin::NONE);
}

#[test]
fn loss_with_a_growing_queue_raises_no_parity_and_parity_stays_within_the_data() {
    let mut f = target();
    let cfg = *f.target_config();
    let t0 = Instant::now();
    // Bursty loss (enter 1 %, leave 30 %) raised small blocks above their data (ceiling
    // 8 shards) and a 32-shard block to 27.
    let c = counts(31_000, 1_000, 300);
    f.on_loss_model(&report(c, c), t0);
    assert!(f.block_parity(2) > 2 && f.block_parity(32) > cfg.floor(32));
    let before = f.block_parity(32);
    // Congested: every block is capped at its data (not below the floor), and the same
    // loss (and worse) raises nothing for a second after the last congested verdict.
    f.on_congestion(true, t0 + TICK);
    for k in 1..MAX_SHARDS_PER_BLOCK {
        assert!(f.block_parity(k) <= k.max(cfg.floor(k)), "k {k}");
    }
    let heavy = counts(2_000, 1_000, 100);
    for i in 2..10 {
        f.on_loss_model(&report(heavy, heavy), t0 + TICK * i);
        assert!(f.block_parity(32) <= before, "raised while congested");
        assert!(f.block_parity(2) <= 2);
    }
    // A verdict that is not congested neither caps nor extends the memory.
    f.on_congestion(false, t0 + TICK * 10);
    // Past the memory, loss raises parity again.
    let later = t0 + TICK + CONGESTION_MEMORY + TICK;
    f.on_loss_model(&report(heavy, heavy), later);
    assert!(f.block_parity(32) > before);
    assert!(f.block_parity(2) > 2);
}

#[test]
fn other_modes_ignore_models_and_target_ignores_plain_reports() {
    let c = iid_counts(100);
    for mode in [FecMode::Fixed, FecMode::Adaptive] {
        let mut f = AdaptiveFec::new(mode, 20, 100);
        f.on_loss_model(&report(c, c), Instant::now());
        assert_eq!(f.parity_table(), &ParityTable::from_percent(20));
    }
    let mut f = target();
    f.on_loss_report(900, 100, Instant::now());
    assert_eq!(f.parity_table(), &ParityTable::from_percent(20));
    // Adaptive keeps its table in step with its share.
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
    f.on_loss_report(900, 100, Instant::now());
    assert_eq!(
        f.parity_table(),
        &ParityTable::from_percent(f.wire_percent())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any report stream keeps every block size within its floor and ceiling (after the
    /// first report) and within GF(2^8).
    #[test]
    fn prop_parity_stays_within_floor_and_ceiling(
        reports in proptest::collection::vec(
            (1u32..5_000, 0u32..1000, 0u32..1000, 0u64..400), 1..30),
    ) {
        let mut f = target();
        let cfg = *f.target_config();
        let mut now = Instant::now();
        for (packets, lost_pm, burst_pm, gap) in reports {
            now += Duration::from_millis(gap);
            let lost = packets / 1000 * lost_pm;
            let bursts = (lost / 1000 * burst_pm).min(packets - lost + 1);
            let c = counts(packets, lost, bursts);
            f.on_loss_model(&report(c, c), now);
            for k in 1..MAX_SHARDS_PER_BLOCK {
                let m = f.block_parity(k);
                prop_assert!(m >= cfg.floor(k) && m <= cfg.ceiling(k), "k {} m {}", k, m);
                prop_assert!(k + m <= MAX_SHARDS_PER_BLOCK);
            }
        }
    }
}
