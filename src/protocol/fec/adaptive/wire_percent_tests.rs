use super::{AdaptiveFec, FecMode};
use std::time::{Duration, Instant};

#[test]
fn wire_percent_moves_in_steps_above_the_base() {
    let t = Instant::now();
    let mut f = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
    assert_eq!(f.wire_percent(), 20, "the base is used as it is");
    // 1 lost in 100: the controller asks for ceil(3 + 5) = 8 < base: stays at 20.
    f.on_loss_report(99, 1, t);
    assert_eq!(f.wire_percent(), 20);
    // 11 % loss in the window: the controller moves above the base, the wire share is the
    // next multiple of 5 at or above it.
    f.on_loss_report(99 + 89, 1 + 11, t + Duration::from_millis(100));
    let p = f.percent();
    assert!(p > 20);
    assert_eq!(f.wire_percent(), p.div_ceil(5) * 5);
    assert!(f.wire_percent() >= p && f.wire_percent() - p < 5);
    // Never above the maximum.
    let mut g = AdaptiveFec::new(FecMode::Adaptive, 20, 37);
    g.on_loss_report(50, 50, t);
    assert_eq!(g.percent(), 37);
    assert_eq!(g.wire_percent(), 37);
    // Fixed mode is the base, unrounded.
    assert_eq!(AdaptiveFec::new(FecMode::Fixed, 23, 100).wire_percent(), 23);
}
