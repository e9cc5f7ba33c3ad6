use super::*;
use crate::protocol::fec::coder::{MAX_SHARDS_PER_BLOCK, parity_for};
use proptest::prelude::*;

const TICK: Duration = Duration::from_millis(100);

/// A client that reports cumulative counters every 100 ms.
struct Client {
    received: u64,
    lost: u64,
    now: Instant,
}

impl Client {
    fn new() -> Self {
        Client {
            received: 0,
            lost: 0,
            now: Instant::now(),
        }
    }

    /// Advances 100 ms with `packets` sent of which `lost` were lost, and reports.
    fn report(&mut self, fec: &mut AdaptiveFec, packets: u64, lost: u64) {
        self.now += TICK;
        self.received += packets - lost;
        self.lost += lost;
        fec.on_loss_report(self.received, self.lost, self.now);
    }
}

#[test]
fn starts_at_base_and_clamps_max() {
    let f = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
    assert_eq!(f.percent(), 20);
    assert_eq!(f.base_percent(), 20);
    assert_eq!(f.max_percent(), 100);
    assert_eq!(f.mode(), FecMode::Adaptive);
    assert_eq!(
        AdaptiveFec::new(FecMode::Adaptive, 50, 10).max_percent(),
        50
    );
    assert_eq!(f.window_loss(), None);
}

#[test]
fn fixed_mode_always_returns_base() {
    let mut f = AdaptiveFec::new(FecMode::Fixed, 15, 100);
    let mut c = Client::new();
    for _ in 0..20 {
        c.report(&mut f, 1000, 400);
        assert_eq!(f.percent(), 15);
    }
    for _ in 0..200 {
        c.report(&mut f, 1000, 0);
        assert_eq!(f.percent(), 15);
    }
}

#[test]
fn loss_raises_at_once() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
    let mut c = Client::new();
    c.report(&mut f, 1000, 0);
    assert_eq!(f.percent(), 10);
    // 10 % loss: ceil(30 + 5) = 35.
    c.report(&mut f, 1000, 200);
    // Window: 200 lost of 2000 = 10 %.
    assert_eq!(f.window_loss(), Some(0.1));
    assert_eq!(f.percent(), 35);
    // Heavier loss raises further, up to max.
    c.report(&mut f, 1000, 900);
    assert_eq!(f.percent(), 100);
    let mut g = AdaptiveFec::new(FecMode::Adaptive, 10, 40);
    Client::new().report(&mut g, 100, 50);
    assert_eq!(g.percent(), 40);
}

#[test]
fn raise_is_exact_and_never_below_base() {
    // 1 % loss: ceil(3 + 5) = 8, below a base of 10.
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
    Client::new().report(&mut f, 1000, 10);
    assert_eq!(f.percent(), 10);
    // 1 lost of 3: ceil(100) + 5 = 105 → max 100; 1 of 7: ceil(42.86) + 5 = 48.
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
    Client::new().report(&mut f, 7, 1);
    assert_eq!(f.percent(), 48);
    // A tiny loss still raises from a base of 0 to at least 6.
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
    Client::new().report(&mut f, 1_000_000, 1);
    assert_eq!(f.percent(), 6);
}

#[test]
fn clean_link_does_not_raise() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
    let mut c = Client::new();
    for _ in 0..50 {
        c.report(&mut f, 1000, 0);
        assert_eq!(f.percent(), 0);
    }
}

#[test]
fn lowers_slowly_to_base() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
    let mut c = Client::new();
    c.report(&mut f, 1000, 100);
    assert_eq!(f.percent(), 35);
    let raised_at = c.now;
    let mut last = f.percent();
    let mut last_change = raised_at;
    for _ in 0..200 {
        c.report(&mut f, 1000, 0);
        let p = f.percent();
        assert!(p <= last);
        if p < last {
            assert_eq!(last - p, 1);
            assert!(c.now - last_change >= LOWER_STEP_INTERVAL);
            last_change = c.now;
        }
        last = p;
    }
    // 20 s of clean reports are enough to come back down from 35 to 10 at 1 / 0.5 s...
    assert_eq!(f.percent(), 10);
    // ...and it took at least 25 × 0.5 s.
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
    let mut c = Client::new();
    c.report(&mut f, 1000, 100);
    for _ in 0..100 {
        c.report(&mut f, 1000, 0);
    }
    assert!(f.percent() > 10, "lowered too fast: {}", f.percent());
}

#[test]
fn moderate_loss_holds_the_share() {
    // At 35 % parity a block survives 25.9 % loss; a third of that is 8.6 %.
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
    let mut c = Client::new();
    c.report(&mut f, 1000, 100);
    assert_eq!(f.percent(), 35);
    for _ in 0..50 {
        // 9 % loss: not clean (≥ 8.6 %), and the target (32) does not raise it either.
        c.report(&mut f, 1000, 90);
        assert_eq!(f.percent(), 35);
    }
}

#[test]
fn never_lowers_below_what_the_window_calls_for() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
    let mut c = Client::new();
    c.report(&mut f, 1000, 100);
    assert_eq!(f.percent(), 35);
    for _ in 0..100 {
        // 5 % loss is clean at 35 % (below 8.6 %) but calls for 20 %.
        c.report(&mut f, 1000, 50);
    }
    assert_eq!(f.percent(), 20);
}

#[test]
fn a_lossy_report_restarts_the_clean_run() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
    let mut c = Client::new();
    c.report(&mut f, 1000, 100);
    assert_eq!(f.percent(), 35);
    for _ in 0..10 {
        for _ in 0..4 {
            c.report(&mut f, 1000, 0);
        }
        // Loss above the clean line every 0.5 s; the window's average stays below a raise.
        c.report(&mut f, 1000, 100);
    }
    assert_eq!(f.percent(), 35);
}

#[test]
fn reordered_and_duplicated_reports_are_ignored() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
    let t = Instant::now();
    f.on_loss_report(1000, 0, t + TICK);
    f.on_loss_report(2000, 10, t + TICK * 2);
    assert_eq!(f.percent(), 10);
    // An older report arriving late: received went backwards, ignored.
    f.on_loss_report(1500, 300, t + TICK * 3);
    // Received forward but lost backwards: also ignored.
    f.on_loss_report(2500, 5, t + TICK * 3);
    assert_eq!(f.last, Some((2000, 10)));
    assert_eq!(f.percent(), 10);
    // The loss arrives: 190 lost of 2000 in the newest interval, 200 of 4200 in the window
    // (4.76 %): ceil(14.29) + 5 = 20.
    f.on_loss_report(4000, 200, t + TICK * 5);
    let raised = f.percent();
    assert_eq!(raised, 20);
    // Duplicates of it change nothing (no new packets: no information).
    for i in 0..20 {
        f.on_loss_report(4000, 200, t + TICK * 5 + Duration::from_millis(i));
    }
    assert_eq!(f.percent(), raised);
    assert_eq!(f.last, Some((4000, 200)));
    // Duplicates of a clean report neither count as clean time nor break the clean run.
    let start = t + TICK * 6;
    f.on_loss_report(100_000, 200, start);
    for i in 0..1000 {
        f.on_loss_report(100_000, 200, start + Duration::from_micros(i * 400));
    }
    assert_eq!(f.percent(), raised);
    f.on_loss_report(200_000, 200, start + LOWER_STEP_INTERVAL);
    assert_eq!(f.percent(), raised - 1);
}

#[test]
fn first_report_counts_from_session_start() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
    f.on_loss_report(900, 100, Instant::now());
    assert_eq!(f.percent(), 35);
}

#[test]
fn huge_counters_do_not_overflow() {
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 255);
    let t = Instant::now();
    f.on_loss_report(u64::MAX, u64::MAX, t);
    assert_eq!(f.percent(), 155);
    f.on_loss_report(u64::MAX, u64::MAX, t + TICK);
    assert_eq!(f.percent(), 155);
}

#[test]
fn parity_for_rules() {
    assert_eq!(parity_for(10, 0), 0);
    assert_eq!(parity_for(0, 20), 0);
    assert_eq!(parity_for(1, 1), 2);
    assert_eq!(parity_for(10, 20), 2);
    assert_eq!(parity_for(64, 20), 13);
    assert_eq!(parity_for(100, 20), 20);
    assert_eq!(parity_for(101, 20), 21);
    assert_eq!(parity_for(200, 50), 56);
    assert_eq!(parity_for(250, 20), 6);
    assert_eq!(parity_for(255, 20), 1);
    assert_eq!(parity_for(256, 20), 0);
    assert_eq!(parity_for(1000, 20), 0);
    assert_eq!(parity_for(100, 255), 156);
    assert_eq!(parity_for(usize::MAX, 255), 0);
}

proptest! {
    #[test]
    fn prop_parity_for(k in 0usize..400, pct in any::<u8>()) {
        let m = parity_for(k, pct);
        if pct == 0 || k == 0 {
            prop_assert_eq!(m, 0);
        } else {
            prop_assert!(k + m <= MAX_SHARDS_PER_BLOCK || m == 0);
            let want = (k * pct as usize).div_ceil(100).max(2);
            prop_assert_eq!(m, want.min(MAX_SHARDS_PER_BLOCK.saturating_sub(k)));
            // Enough parity for the requested share whenever the block has room.
            if k + want <= MAX_SHARDS_PER_BLOCK {
                prop_assert!(m * 100 >= k * pct as usize);
            }
        }
    }

    /// Any report stream — lost, duplicated, reordered, hostile counters — keeps the share
    /// in [base, max] and never lowers it faster than one point per 500 ms.
    #[test]
    fn prop_share_stays_in_bounds_and_lowers_slowly(
        base in 0u8..60,
        max in 0u8..=255,
        reports in proptest::collection::vec(
            (0u64..1_000_000, 0u64..100_000, 0u64..300), 1..200),
    ) {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, base, max);
        let mut now = Instant::now();
        let mut prev = f.percent();
        let mut last_lower: Option<Instant> = None;
        for (received, lost, gap_ms) in reports {
            now += Duration::from_millis(gap_ms);
            f.on_loss_report(received, lost, now);
            let p = f.percent();
            prop_assert!(p >= base && p <= max.max(base));
            if p < prev {
                prop_assert_eq!(prev - p, 1);
                if let Some(t) = last_lower {
                    prop_assert!(now - t >= LOWER_STEP_INTERVAL);
                }
                last_lower = Some(now);
            }
            prev = p;
        }
    }
}
