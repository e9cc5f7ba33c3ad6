//! Tests of single events (layouts of every kind, truncation, bad enums, non-finite floats, key
//! names); the channel and the property tests are in the submodules.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::protocol::wire::{Reader, WireError, Writer};

mod channel;
mod props;

const RTO: Duration = Duration::from_millis(30);

fn key(pressed: bool, n: u32) -> InputEvent {
    InputEvent::Key {
        pressed,
        key: format!("k{n}"),
        keycode: n,
        modifiers: 0,
    }
}

fn all_kinds() -> Vec<InputEvent> {
    vec![
        InputEvent::Key {
            pressed: true,
            key: "Return".into(),
            keycode: 0xff0d,
            modifiers: 4,
        },
        InputEvent::Key {
            pressed: false,
            key: "ä".into(),
            keycode: 0,
            modifiers: 0,
        },
        InputEvent::MouseMove { x: 10.5, y: -3.0 },
        InputEvent::MouseMoveRelative { dx: -1.25, dy: 7.0 },
        InputEvent::MouseButton {
            button: 1,
            pressed: true,
            x: 1.0,
            y: 2.0,
            modifiers: 1,
        },
        InputEvent::MouseButton {
            button: 3,
            pressed: false,
            x: 1.0,
            y: 2.0,
            modifiers: 0,
        },
        InputEvent::Scroll {
            x: 5.0,
            y: 6.0,
            dx: 0.0,
            dy: -1.0,
            modifiers: 8,
        },
        InputEvent::Touch {
            id: 7,
            phase: TouchPhase::Down,
            x: 1.0,
            y: 2.0,
            pressure: 0.5,
        },
        InputEvent::Touch {
            id: 7,
            phase: TouchPhase::Motion,
            x: 1.5,
            y: 2.5,
            pressure: 0.6,
        },
        InputEvent::Touch {
            id: 7,
            phase: TouchPhase::Up,
            x: 1.5,
            y: 2.5,
            pressure: 0.0,
        },
        InputEvent::Touch {
            id: 8,
            phase: TouchPhase::Cancel,
            x: 0.0,
            y: 0.0,
            pressure: 0.0,
        },
        InputEvent::TouchFrame,
        InputEvent::GamepadButton {
            pad: 1,
            button: 304,
            pressed: true,
            value: 1.0,
        },
        InputEvent::GamepadAxis {
            pad: 1,
            axis: 2,
            value: -0.75,
        },
        InputEvent::GamepadConnected {
            pad: 3,
            connected: true,
        },
    ]
}

fn roundtrip(ev: &InputEvent) -> InputEvent {
    let mut b = Vec::new();
    ev.encode(&mut b);
    assert_eq!(b.len(), ev.encoded_len(), "{ev:?}");
    let mut r = Reader::new(&b);
    let d = InputEvent::decode(&mut r).unwrap();
    r.finish().unwrap();
    d
}

#[test]
fn every_kind_roundtrips() {
    for ev in all_kinds() {
        assert_eq!(roundtrip(&ev), ev);
    }
}

#[test]
fn names() {
    let names: Vec<_> = all_kinds().iter().map(InputEvent::name).collect();
    assert_eq!(
        names,
        [
            "key-press",
            "key-release",
            "mouse-move",
            "mouse-move-relative",
            "mouse-button-press",
            "mouse-button-release",
            "mouse-scroll",
            "touch-down",
            "touch-motion",
            "touch-up",
            "touch-cancel",
            "touch-frame",
            "gamepad-button",
            "gamepad-axis",
            "gamepad-connected",
        ]
    );
}

#[test]
fn decode_rejects_non_finite_floats() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut b = vec![ty::MOUSE_MOVE];
        Writer::new(&mut b).f64(1.0).f64(bad);
        assert_eq!(
            InputEvent::decode(&mut Reader::new(&b)),
            Err(WireError::Limit("non-finite float"))
        );
    }
    let mut b = vec![ty::GAMEPAD_AXIS, 0, 0, 1];
    Writer::new(&mut b).f32(f32::NAN);
    assert_eq!(
        InputEvent::decode(&mut Reader::new(&b)),
        Err(WireError::Limit("non-finite float"))
    );
}

#[test]
fn encode_makes_non_finite_floats_sendable() {
    let ev = InputEvent::Scroll {
        x: f64::NAN,
        y: f64::INFINITY,
        dx: 1.0,
        dy: f64::NEG_INFINITY,
        modifiers: 0,
    };
    assert_eq!(
        roundtrip(&ev),
        InputEvent::Scroll {
            x: 0.0,
            y: 0.0,
            dx: 1.0,
            dy: 0.0,
            modifiers: 0
        }
    );
    let ev = InputEvent::GamepadButton {
        pad: 0,
        button: 1,
        pressed: true,
        value: f32::NAN,
    };
    assert!(matches!(
        roundtrip(&ev),
        InputEvent::GamepadButton { value, .. } if value == 0.0
    ));
}

#[test]
fn long_key_names_are_cut_on_send_and_refused_on_receive() {
    let long = "é".repeat(40); // 80 bytes
    let ev = InputEvent::Key {
        pressed: true,
        key: long.clone(),
        keycode: 0,
        modifiers: 0,
    };
    match roundtrip(&ev) {
        InputEvent::Key { key, .. } => {
            assert_eq!(key.len(), 64);
            assert!(long.starts_with(&key));
        }
        other => panic!("{other:?}"),
    }
    let mut b = vec![ty::KEY, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    Writer::new(&mut b).u16(65).bytes(&[b'a'; 65]);
    assert_eq!(
        InputEvent::decode(&mut Reader::new(&b)),
        Err(WireError::Limit("string length"))
    );
}

#[test]
fn decode_rejects_bad_enums_and_truncation() {
    assert_eq!(
        InputEvent::decode(&mut Reader::new(&[0])),
        Err(WireError::UnknownKind(0))
    );
    assert_eq!(
        InputEvent::decode(&mut Reader::new(&[200])),
        Err(WireError::UnknownKind(200))
    );
    assert_eq!(
        InputEvent::decode(&mut Reader::new(&[ty::GAMEPAD_CONNECTED, 0, 2])),
        Err(WireError::UnknownKind(2))
    );
    let mut b = vec![ty::TOUCH, 0, 0, 0, 1, 9];
    Writer::new(&mut b).f64(0.0).f64(0.0).f64(0.0);
    assert_eq!(
        InputEvent::decode(&mut Reader::new(&b)),
        Err(WireError::UnknownKind(9))
    );
    for ev in all_kinds() {
        let mut b = Vec::new();
        ev.encode(&mut b);
        for cut in 0..b.len() {
            assert_eq!(
                InputEvent::decode(&mut Reader::new(&b[..cut])),
                Err(WireError::Truncated),
                "{ev:?} cut at {cut}"
            );
        }
    }
}

fn collect(rx: &mut InputReceiver, body: &[u8]) -> Result<Vec<InputEvent>, WireError> {
    let mut got = Vec::new();
    let n = rx.on_body(body, &mut |e| got.push(e))?;
    assert_eq!(n, got.len());
    Ok(got)
}

fn body(first_seq: u64, events: &[InputEvent]) -> Vec<u8> {
    let mut b = Vec::new();
    Writer::new(&mut b).u64(first_seq).u16(events.len() as u16);
    for e in events {
        e.encode(&mut b);
    }
    b
}
