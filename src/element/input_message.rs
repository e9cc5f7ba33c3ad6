//! The `punktfunk-input` structure: how an [`InputEvent`] appears as an element message on the
//! sink's bus, and how an application hands one to the src's `send-input` action signal.
//!
//! Owns: both directions of that mapping. Must never: panic on a structure an application built
//! by hand — every field is checked and a wrong one is an `Err` naming it.

use crate::protocol::input::{InputEvent, TouchPhase};

use super::navigation::TOUCH_CANCEL_ALL;

/// Name of the element message the sink posts for every input event.
pub(crate) const INPUT_NAME: &str = "punktfunk-input";

/// The `punktfunk-input` structure of an input event: field `type` (the GstNavigation-style
/// name, e.g. "key-press", "gamepad-axis") and the event's fields.
pub(crate) fn input_structure(ev: &InputEvent) -> gst::Structure {
    let b = gst::Structure::builder(INPUT_NAME).field("type", ev.name());
    let b = match ev {
        InputEvent::Key {
            pressed,
            key,
            keycode,
            modifiers,
        } => b
            .field("key", key.as_str())
            .field("keycode", *keycode)
            .field("pressed", *pressed)
            .field("modifiers", *modifiers),
        InputEvent::MouseMove { x, y } => b.field("x", *x).field("y", *y),
        InputEvent::MouseMoveRelative { dx, dy } => b.field("dx", *dx).field("dy", *dy),
        InputEvent::MouseButton {
            button,
            pressed,
            x,
            y,
            modifiers,
        } => b
            .field("button", *button)
            .field("pressed", *pressed)
            .field("x", *x)
            .field("y", *y)
            .field("modifiers", *modifiers),
        InputEvent::Scroll {
            x,
            y,
            dx,
            dy,
            modifiers,
        } => b
            .field("x", *x)
            .field("y", *y)
            .field("dx", *dx)
            .field("dy", *dy)
            .field("modifiers", *modifiers),
        InputEvent::Touch {
            id, x, y, pressure, ..
        } => b
            .field("id", *id)
            .field("x", *x)
            .field("y", *y)
            .field("pressure", *pressure),
        InputEvent::TouchFrame => b,
        InputEvent::GamepadButton {
            pad,
            button,
            pressed,
            value,
        } => b
            .field("pad", u32::from(*pad))
            .field("button", u32::from(*button))
            .field("pressed", *pressed)
            .field("value", f64::from(*value)),
        InputEvent::GamepadAxis { pad, axis, value } => b
            .field("pad", u32::from(*pad))
            .field("axis", u32::from(*axis))
            .field("value", f64::from(*value)),
        InputEvent::GamepadConnected { pad, connected } => b
            .field("pad", u32::from(*pad))
            .field("connected", *connected),
    };
    b.build()
}

/// An unsigned field given as any integer type (structures parsed from strings hold `gint`).
fn field_u64(s: &gst::StructureRef, name: &str) -> Result<Option<u64>, String> {
    let Ok(v) = s.value(name) else {
        return Ok(None);
    };
    let n = super::unsigned_of(v).ok_or_else(|| format!("field '{name}' must be an integer"))?;
    n.map(Some)
        .ok_or_else(|| format!("field '{name}' must not be negative"))
}

fn field_uint<T: TryFrom<u64>>(
    s: &gst::StructureRef,
    name: &str,
    default: Option<T>,
) -> Result<T, String> {
    match field_u64(s, name)? {
        Some(v) => T::try_from(v).map_err(|_| format!("field '{name}' is out of range")),
        None => default.ok_or_else(|| format!("field '{name}' is missing")),
    }
}

/// A float field given as double, float or integer.
fn field_f64(s: &gst::StructureRef, name: &str, default: Option<f64>) -> Result<f64, String> {
    let Ok(v) = s.value(name) else {
        return default.ok_or_else(|| format!("field '{name}' is missing"));
    };
    let x = if let Ok(x) = v.get::<f64>() {
        x
    } else if let Ok(x) = v.get::<f32>() {
        x.into()
    } else if let Ok(x) = v.get::<i32>() {
        x.into()
    } else if let Ok(x) = v.get::<u32>() {
        x.into()
    } else {
        return Err(format!("field '{name}' must be a number"));
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("field '{name}' must be finite"))
    }
}

fn field_bool(s: &gst::StructureRef, name: &str, default: Option<bool>) -> Result<bool, String> {
    match s.value(name) {
        Ok(v) => v
            .get::<bool>()
            .map_err(|_| format!("field '{name}' must be a boolean")),
        Err(_) => default.ok_or_else(|| format!("field '{name}' is missing")),
    }
}

/// Parses a structure shaped like the `punktfunk-input` message (any structure name) into an
/// input event. `type` picks the event; for press/release types `pressed` may be left out;
/// `modifiers`, `keycode`, `pressure` and `value` default to 0.
pub(crate) fn input_from_structure(s: &gst::StructureRef) -> Result<InputEvent, String> {
    let ty: String = s
        .get::<String>("type")
        .map_err(|_| "field 'type' (string) is missing".to_string())?;
    let modifiers = || field_uint::<u32>(s, "modifiers", Some(0));
    let touch = |phase: TouchPhase| -> Result<InputEvent, String> {
        Ok(InputEvent::Touch {
            id: field_uint(s, "id", None)?,
            phase,
            x: field_f64(s, "x", Some(0.0))?,
            y: field_f64(s, "y", Some(0.0))?,
            pressure: field_f64(s, "pressure", Some(0.0))?,
        })
    };
    let ev = match ty.as_str() {
        "key-press" | "key-release" | "key" => {
            let pressed = field_bool(s, "pressed", (ty != "key").then_some(ty == "key-press"))?;
            let key: String = s
                .get::<String>("key")
                .map_err(|_| "field 'key' (string) is missing".to_string())?;
            InputEvent::Key {
                pressed,
                key,
                keycode: field_uint(s, "keycode", Some(0))?,
                modifiers: modifiers()?,
            }
        }
        "mouse-move" => InputEvent::MouseMove {
            x: field_f64(s, "x", None)?,
            y: field_f64(s, "y", None)?,
        },
        "mouse-move-relative" => InputEvent::MouseMoveRelative {
            dx: field_f64(s, "dx", None)?,
            dy: field_f64(s, "dy", None)?,
        },
        "mouse-button-press" | "mouse-button-release" | "mouse-button" => {
            let implied = (ty != "mouse-button").then_some(ty == "mouse-button-press");
            InputEvent::MouseButton {
                button: field_uint(s, "button", None)?,
                pressed: field_bool(s, "pressed", implied)?,
                x: field_f64(s, "x", Some(0.0))?,
                y: field_f64(s, "y", Some(0.0))?,
                modifiers: modifiers()?,
            }
        }
        "mouse-scroll" => InputEvent::Scroll {
            x: field_f64(s, "x", Some(0.0))?,
            y: field_f64(s, "y", Some(0.0))?,
            dx: field_f64(s, "dx", Some(0.0))?,
            dy: field_f64(s, "dy", Some(0.0))?,
            modifiers: modifiers()?,
        },
        "touch-down" => touch(TouchPhase::Down)?,
        "touch-motion" => touch(TouchPhase::Motion)?,
        "touch-up" => touch(TouchPhase::Up)?,
        "touch-cancel" => InputEvent::Touch {
            id: field_uint(s, "id", Some(TOUCH_CANCEL_ALL))?,
            phase: TouchPhase::Cancel,
            x: field_f64(s, "x", Some(0.0))?,
            y: field_f64(s, "y", Some(0.0))?,
            pressure: 0.0,
        },
        "touch-frame" => InputEvent::TouchFrame,
        "gamepad-button" => InputEvent::GamepadButton {
            pad: field_uint(s, "pad", Some(0))?,
            button: field_uint(s, "button", None)?,
            pressed: field_bool(s, "pressed", None)?,
            value: field_f64(s, "value", Some(0.0))? as f32,
        },
        "gamepad-axis" => InputEvent::GamepadAxis {
            pad: field_uint(s, "pad", Some(0))?,
            axis: field_uint(s, "axis", None)?,
            value: field_f64(s, "value", None)? as f32,
        },
        "gamepad-connected" => InputEvent::GamepadConnected {
            pad: field_uint(s, "pad", Some(0))?,
            connected: field_bool(s, "connected", Some(true))?,
        },
        other => return Err(format!("unknown input type '{other}'")),
    };
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<InputEvent> {
        vec![
            InputEvent::Key {
                pressed: true,
                key: "a".into(),
                keycode: 38,
                modifiers: 1,
            },
            InputEvent::MouseMove { x: 1.5, y: 2.0 },
            InputEvent::MouseMoveRelative { dx: -3.0, dy: 4.0 },
            InputEvent::MouseButton {
                button: 3,
                pressed: false,
                x: 5.0,
                y: 6.0,
                modifiers: 0,
            },
            InputEvent::Scroll {
                x: 1.0,
                y: 2.0,
                dx: 0.0,
                dy: -1.0,
                modifiers: 4,
            },
            InputEvent::Touch {
                id: 7,
                phase: TouchPhase::Motion,
                x: 10.0,
                y: 11.0,
                pressure: 0.5,
            },
            InputEvent::TouchFrame,
            InputEvent::GamepadButton {
                pad: 1,
                button: 2,
                pressed: true,
                value: 1.0,
            },
            InputEvent::GamepadAxis {
                pad: 0,
                axis: 5,
                value: -0.25,
            },
            InputEvent::GamepadConnected {
                pad: 3,
                connected: false,
            },
        ]
    }

    #[test]
    fn every_event_survives_the_structure_round_trip() {
        gst::init().expect("gst init");
        for ev in every_kind() {
            let s = input_structure(&ev);
            assert_eq!(s.name(), INPUT_NAME);
            assert_eq!(input_from_structure(&s).as_ref(), Ok(&ev), "{s}");
        }
    }

    #[test]
    fn a_wrong_field_is_named_not_a_panic() {
        gst::init().expect("gst init");
        let parse = |text: &str| {
            let s: gst::Structure = text.parse().expect("structure");
            input_from_structure(&s)
        };
        assert_eq!(
            parse("x, type=mouse-move, x=1.0"),
            Err("field 'y' is missing".into())
        );
        assert_eq!(
            parse("x, type=gamepad-axis, pad=300, axis=1, value=0.5"),
            Err("field 'pad' is out of range".into())
        );
        assert_eq!(
            parse("x, type=key-press, key=a, keycode=-1"),
            Err("field 'keycode' must not be negative".into())
        );
        assert_eq!(
            parse("x, type=teleport"),
            Err("unknown input type 'teleport'".into())
        );
        // Press/release types imply `pressed`.
        assert_eq!(
            parse("x, type=key-release, key=b"),
            Ok(InputEvent::Key {
                pressed: false,
                key: "b".into(),
                keycode: 0,
                modifiers: 0,
            })
        );
    }
}
