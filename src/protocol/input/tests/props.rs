//! Property tests: any event round-trips, junk never panics or changes state, any loss pattern
//! delivers every event exactly once and in order.

use super::*;

fn finite() -> impl Strategy<Value = f64> {
    -1e9f64..1e9
}

fn arb_event() -> impl Strategy<Value = InputEvent> {
    let phase = prop_oneof![
        Just(TouchPhase::Down),
        Just(TouchPhase::Motion),
        Just(TouchPhase::Up),
        Just(TouchPhase::Cancel),
    ];
    prop_oneof![
        (
            any::<bool>(),
            "[A-Za-z0-9_]{0,64}",
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(pressed, key, keycode, modifiers)| InputEvent::Key {
                pressed,
                key,
                keycode,
                modifiers
            }),
        (finite(), finite()).prop_map(|(x, y)| InputEvent::MouseMove { x, y }),
        (finite(), finite()).prop_map(|(dx, dy)| InputEvent::MouseMoveRelative { dx, dy }),
        (
            any::<u32>(),
            any::<bool>(),
            finite(),
            finite(),
            any::<u32>()
        )
            .prop_map(|(button, pressed, x, y, modifiers)| {
                InputEvent::MouseButton {
                    button,
                    pressed,
                    x,
                    y,
                    modifiers,
                }
            }),
        (finite(), finite(), finite(), finite(), any::<u32>()).prop_map(
            |(x, y, dx, dy, modifiers)| InputEvent::Scroll {
                x,
                y,
                dx,
                dy,
                modifiers
            }
        ),
        (any::<u32>(), phase, finite(), finite(), 0.0f64..1.0).prop_map(
            |(id, phase, x, y, pressure)| InputEvent::Touch {
                id,
                phase,
                x,
                y,
                pressure
            }
        ),
        Just(InputEvent::TouchFrame),
        (any::<u8>(), any::<u16>(), any::<bool>(), -1.0f32..1.0).prop_map(
            |(pad, button, pressed, value)| InputEvent::GamepadButton {
                pad,
                button,
                pressed,
                value
            }
        ),
        (any::<u8>(), any::<u16>(), -1.0f32..1.0)
            .prop_map(|(pad, axis, value)| InputEvent::GamepadAxis { pad, axis, value }),
        (any::<u8>(), any::<bool>())
            .prop_map(|(pad, connected)| InputEvent::GamepadConnected { pad, connected }),
    ]
}

proptest! {
    #[test]
    fn prop_events_roundtrip(ev in arb_event()) {
        prop_assert_eq!(roundtrip(&ev), ev);
    }

    #[test]
    fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut r = Reader::new(&bytes);
        let _ = InputEvent::decode(&mut r);
    }

    #[test]
    fn prop_bodies_of_junk_never_panic_and_errors_change_nothing(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..20)
    ) {
        let mut rx = InputReceiver::new();
        for b in bodies {
            let before = rx.next_expected();
            let buffered = rx.buffered();
            let mut n = 0;
            let res = rx.on_body(&b, &mut |_| n += 1);
            match res {
                Ok(k) => {
                    prop_assert_eq!(k, n);
                    prop_assert_eq!(rx.next_expected(), before + k as u64);
                }
                Err(_) => {
                    prop_assert_eq!(n, 0);
                    prop_assert_eq!(rx.next_expected(), before);
                    prop_assert_eq!(rx.buffered(), buffered);
                }
            }
            prop_assert!(rx.ahead.len() <= RECEIVE_WINDOW as usize);
        }
    }

    /// Any loss pattern of bodies and acks (as long as the link eventually works), any body
    /// size: the host sees every event once, in order.
    #[test]
    fn prop_any_loss_pattern_delivers_exactly_once_in_order(
        events in proptest::collection::vec(arb_event(), 1..60),
        drops in proptest::collection::vec(any::<bool>(), 0..200),
        ack_drops in proptest::collection::vec(any::<bool>(), 0..200),
        max_len in 0usize..400,
        reverse in any::<bool>(),
    ) {
        let mut tx = InputSender::new(events.len());
        let mut rx = InputReceiver::new();
        for e in &events {
            tx.push(e.clone()).unwrap();
        }
        let mut got = Vec::new();
        let mut now = Instant::now();
        let mut out = Vec::new();
        let (mut d, mut a) = (drops.into_iter(), ack_drops.into_iter());
        for _ in 0..10_000 {
            let mut flight = Vec::new();
            while tx.poll_transmit(now, RTO, max_len, &mut out) {
                if !d.next().unwrap_or(false) {
                    flight.push(out.clone());
                }
            }
            if reverse {
                flight.reverse();
            }
            for b in flight {
                rx.on_body(&b, &mut |e| got.push(e)).unwrap();
                if !a.next().unwrap_or(false) {
                    tx.on_ack(rx.next_expected());
                }
            }
            if tx.pending() == 0 {
                break;
            }
            now += RTO;
        }
        prop_assert_eq!(tx.pending(), 0);
        // Compare through the wire form: events are finite, so this is exact.
        prop_assert_eq!(got, events);
    }
}
