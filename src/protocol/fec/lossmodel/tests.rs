use super::*;

use crate::protocol::test_rng::Rng;

fn brute_force_tail(model: &GilbertElliott, n: usize, m: usize) -> f64 {
    // Every state sequence and every loss pattern given it: 4^n terms.
    let pb = model.bad_share();
    let mut total = 0.0;
    for states in 0u32..(1 << n) {
        let mut ps = if states & 1 == 1 { pb } else { 1.0 - pb };
        for t in 1..n {
            let (prev, cur) = ((states >> (t - 1)) & 1, (states >> t) & 1);
            ps *= match (prev, cur) {
                (0, 0) => 1.0 - model.p,
                (0, 1) => model.p,
                (1, 0) => model.r,
                _ => 1.0 - model.r,
            };
        }
        for losses in 0u32..(1 << n) {
            if (losses.count_ones() as usize) <= m {
                continue;
            }
            let mut pl = ps;
            for t in 0..n {
                let e = if (states >> t) & 1 == 1 {
                    model.loss_bad
                } else {
                    model.loss_good
                };
                pl *= if (losses >> t) & 1 == 1 { e } else { 1.0 - e };
            }
            total += pl;
        }
    }
    total
}

#[test]
fn dp_equals_brute_force_for_small_n() {
    let models = [
        GilbertElliott {
            p: 0.01,
            r: 0.3,
            loss_good: 0.0,
            loss_bad: 1.0,
        },
        GilbertElliott {
            p: 0.2,
            r: 0.5,
            loss_good: 0.05,
            loss_bad: 0.7,
        },
        GilbertElliott::iid(0.1),
    ];
    for model in &models {
        let t = FailureTable::new(model, 8);
        for n in 1..=7 {
            for m in 0..n {
                let want = brute_force_tail(model, n, m);
                let got = t.tail(n, m);
                assert!(
                    (got - want).abs() <= 1e-12 + 1e-9 * want,
                    "{model:?} n {n} m {m}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn iid_chain_equals_the_binomial_tail() {
    for q in [0.001, 0.05, 0.1, 0.2, 0.5] {
        let t = FailureTable::new(&GilbertElliott::iid(q), 256);
        for &(k, m) in &[(1, 2), (10, 2), (32, 4), (78, 16), (128, 26), (128, 128)] {
            let want = binomial_tail(k + m, q, m);
            let got = t.block_failure(k, m);
            assert!(
                (got - want).abs() <= 1e-15 + 1e-9 * want,
                "q {q} k {k} m {m}: {got} vs {want}"
            );
        }
    }
    // The figures in docs/PROTOCOL.md §4.
    assert!((binomial_tail(12, 0.05, 2) - 2.0e-2).abs() < 1e-3);
    assert!((binomial_tail(154, 0.1, 26) - 2.8e-3).abs() < 1e-4);
}

#[test]
fn dp_agrees_with_monte_carlo() {
    // The path: enter 1 %, leave 30 % (3.2 % loss, mean burst 3.3).
    let model = GilbertElliott {
        p: 0.01,
        r: 0.3,
        loss_good: 0.0,
        loss_bad: 1.0,
    };
    let t = FailureTable::new(&model, 256);
    let mut rng = Rng::new(0x1234_5678);
    for &(k, m) in &[(32, 2), (32, 4), (78, 6)] {
        let n = k + m;
        let trials = 200_000;
        let mut fails = 0u32;
        for _ in 0..trials {
            let mut bad = rng.unit() < model.bad_share();
            let mut lost = 0;
            for _ in 0..n {
                if bad {
                    lost += 1;
                }
                bad = if bad {
                    rng.unit() >= model.r
                } else {
                    rng.unit() < model.p
                };
            }
            if lost > m {
                fails += 1;
            }
        }
        let mc = f64::from(fails) / f64::from(trials);
        let exact = t.block_failure(k, m);
        // Five standard errors of the Monte Carlo estimate.
        let se = (exact * (1.0 - exact) / f64::from(trials)).sqrt();
        assert!(
            (mc - exact).abs() <= 5.0 * se,
            "k {k} m {m}: monte carlo {mc} vs exact {exact} (se {se})"
        );
    }
}

#[test]
fn gilbert_fit_reads_rate_and_burst_length() {
    let c = LossCounts {
        packets: 10_000,
        lost: 320,
        bursts: 97,
    };
    let g = GilbertElliott::from_counts(&c).unwrap();
    assert!((g.loss_rate() - 0.032).abs() < 1e-9);
    assert!((g.mean_burst() - 320.0 / 97.0).abs() < 1e-9);
    assert_eq!(GilbertElliott::from_counts(&LossCounts::default()), None);
    let clean = GilbertElliott::from_counts(&LossCounts {
        packets: 50,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(clean.loss_rate(), 0.0);
    // Everything lost.
    let all = GilbertElliott::from_counts(&LossCounts {
        packets: 5,
        lost: 5,
        bursts: 1,
    })
    .unwrap();
    assert!(all.loss_rate() > 0.8);
}

fn t0() -> Instant {
    Instant::now()
}

#[test]
fn estimator_counts_losses_and_runs() {
    let mut e = LossEstimator::default();
    let t = t0();
    // 0..1000 with runs lost: {10}, {20,21,22}, {500..=509}.
    let lost = |pn: u64| pn == 10 || (20..=22).contains(&pn) || (500..=509).contains(&pn);
    for pn in 0..1000 {
        if !lost(pn) {
            e.on_packet(pn, t);
        }
    }
    let r = e.report(t + Duration::from_millis(100));
    assert_eq!(r.recent, r.window);
    assert_eq!(r.window.lost, 14);
    assert_eq!(r.window.bursts, 3);
    assert_eq!(r.window.packets, 1000);
    assert_eq!(r.burst_hist, [1, 0, 1, 0, 0, 1, 0, 0]);
    let mut b = Vec::new();
    r.encode(&mut Writer::new(&mut b));
    assert_eq!(b.len(), LOSS_MODEL_LEN);
    assert_eq!(LossModelReport::decode(&mut Reader::new(&b)), Ok(r));
}

#[test]
fn estimator_tolerates_reordering_by_count_and_time() {
    let mut e = LossEstimator::default();
    let t = t0();
    for pn in 0..100u64 {
        if pn != 50 {
            e.on_packet(pn, t);
        }
    }
    // 50 arrives late but within the reorder count and time: not lost.
    e.on_packet(50, t + Duration::from_millis(5));
    for pn in 100..200 {
        e.on_packet(pn, t + Duration::from_millis(6));
    }
    let r = e.report(t + Duration::from_millis(60));
    assert_eq!(r.window.lost, 0);
    assert_eq!(r.window.packets, 200);
    // A gap older than the time rule is lost even with few packets after it.
    let mut e = LossEstimator::default();
    e.on_packet(0, t);
    e.on_packet(2, t);
    let r = e.report(t + Duration::from_millis(1));
    assert_eq!(r.window.lost, 0, "still within the reorder time");
    let r = e.report(t + Duration::from_millis(50));
    assert_eq!(r.window.lost, 1);
    // Arriving after that is late, not double counted.
    e.on_packet(1, t + Duration::from_millis(51));
    assert_eq!(e.stats().late, 1);
    assert_eq!(e.stats().lost, 1);
}

#[test]
fn estimator_window_slides_and_memory_is_bounded() {
    let mut e = LossEstimator::default();
    let mut t = t0();
    let mut pn = 0u64;
    // One lossy second, then clean seconds: the window forgets the loss.
    for i in 0..40 {
        for _ in 0..200 {
            if i >= 10 || !pn.is_multiple_of(10) {
                e.on_packet(pn, t);
            }
            pn += 1;
        }
        t += Duration::from_millis(100);
        let r = e.report(t);
        if i < 10 {
            assert!(r.window.lost > 0);
        }
        if i >= 21 {
            assert_eq!(r.window.lost, 0, "report {i}");
        }
        assert!(r.window_ms <= 1100);
    }
    // A huge jump is a restart, not 10^9 losses, and pending stays bounded.
    e.on_packet(pn + 1_000_000_000, t);
    assert_eq!(e.stats().discontinuities, 1);
    e.on_packet(pn + 1_000_000_000 + 60_000, t);
    assert!(e.pending.len() <= MAX_PENDING);
}

#[test]
fn decode_rejects_inconsistent_reports() {
    let good = LossModelReport {
        window_ms: 1000,
        recent: LossCounts {
            packets: 100,
            lost: 3,
            bursts: 1,
        },
        window: LossCounts {
            packets: 1000,
            lost: 30,
            bursts: 10,
        },
        burst_hist: [5, 3, 1, 1, 0, 0, 0, 0],
    };
    let enc = |r: &LossModelReport| {
        let mut b = Vec::new();
        r.encode(&mut Writer::new(&mut b));
        b
    };
    assert_eq!(
        LossModelReport::decode(&mut Reader::new(&enc(&good))),
        Ok(good)
    );
    let mut bad = good;
    bad.window.lost = 1001;
    assert!(LossModelReport::decode(&mut Reader::new(&enc(&bad))).is_err());
    let mut bad = good;
    bad.burst_hist[7] = 1;
    assert!(LossModelReport::decode(&mut Reader::new(&enc(&bad))).is_err());
    let mut bad = good;
    bad.recent.packets = 1001;
    assert!(LossModelReport::decode(&mut Reader::new(&enc(&bad))).is_err());
    let mut bad = good;
    bad.window.bursts = 31;
    assert!(LossModelReport::decode(&mut Reader::new(&enc(&bad))).is_err());
    let mut bad = good;
    bad.burst_hist = [u32::MAX, 11, 0, 0, 0, 0, 0, 0];
    assert!(LossModelReport::decode(&mut Reader::new(&enc(&bad))).is_err());
}
