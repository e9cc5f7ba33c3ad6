//! Input events ↔ GstNavigation events: the src turns Navigation events from the video sink's
//! window into [`InputEvent`]s for the host; the sink turns received input back into upstream
//! Navigation events for the host's pipeline.
//!
//! Owns: the mapping in both directions. Must never: invent events GstNavigation cannot express
//! (relative motion and gamepads have no Navigation form: they travel only as input events and
//! `punktfunk-input` messages).

use gst_video::{NavigationEvent, NavigationModifierType};

use crate::protocol::input::{InputEvent, TouchPhase};

/// `GstNavigation` has one touch-cancel for all points; as an [`InputEvent::Touch`] it carries
/// this id ("every point").
pub(crate) const TOUCH_CANCEL_ALL: u32 = u32::MAX;

/// The GstNavigation event for an input event, where GstNavigation can express it (keys,
/// absolute mouse motion, buttons, scroll, touch). Relative motion and gamepads: `None`.
pub(crate) fn input_to_navigation(ev: &InputEvent) -> Option<gst::Event> {
    let nav = match ev {
        InputEvent::Key {
            pressed,
            key,
            modifiers,
            ..
        } => {
            let modifier_state = NavigationModifierType::from_bits_truncate(*modifiers);
            if *pressed {
                NavigationEvent::KeyPress {
                    key: key.clone(),
                    modifier_state,
                }
            } else {
                NavigationEvent::KeyRelease {
                    key: key.clone(),
                    modifier_state,
                }
            }
        }
        InputEvent::MouseMove { x, y } => NavigationEvent::MouseMove {
            x: *x,
            y: *y,
            modifier_state: NavigationModifierType::empty(),
        },
        InputEvent::MouseButton {
            button,
            pressed,
            x,
            y,
            modifiers,
        } => {
            let button = i32::try_from(*button).ok()?;
            let modifier_state = NavigationModifierType::from_bits_truncate(*modifiers);
            if *pressed {
                NavigationEvent::MouseButtonPress {
                    button,
                    x: *x,
                    y: *y,
                    modifier_state,
                }
            } else {
                NavigationEvent::MouseButtonRelease {
                    button,
                    x: *x,
                    y: *y,
                    modifier_state,
                }
            }
        }
        InputEvent::Scroll {
            x,
            y,
            dx,
            dy,
            modifiers,
        } => NavigationEvent::MouseScroll {
            x: *x,
            y: *y,
            delta_x: *dx,
            delta_y: *dy,
            modifier_state: NavigationModifierType::from_bits_truncate(*modifiers),
        },
        InputEvent::Touch {
            id,
            phase,
            x,
            y,
            pressure,
        } => {
            let modifier_state = NavigationModifierType::empty();
            match phase {
                TouchPhase::Down => NavigationEvent::TouchDown {
                    identifier: *id,
                    x: *x,
                    y: *y,
                    pressure: *pressure,
                    modifier_state,
                },
                TouchPhase::Motion => NavigationEvent::TouchMotion {
                    identifier: *id,
                    x: *x,
                    y: *y,
                    pressure: *pressure,
                    modifier_state,
                },
                TouchPhase::Up => NavigationEvent::TouchUp {
                    identifier: *id,
                    x: *x,
                    y: *y,
                    modifier_state,
                },
                TouchPhase::Cancel => NavigationEvent::TouchCancel { modifier_state },
            }
        }
        InputEvent::TouchFrame => NavigationEvent::TouchFrame {
            modifier_state: NavigationModifierType::empty(),
        },
        InputEvent::MouseMoveRelative { .. }
        | InputEvent::GamepadButton { .. }
        | InputEvent::GamepadAxis { .. }
        | InputEvent::GamepadConnected { .. } => return None,
    };
    Some(nav.build())
}

/// The input event for a GstNavigation event, where there is one (commands have none).
pub(crate) fn navigation_to_input(event: &gst::EventRef) -> Option<InputEvent> {
    let nav = NavigationEvent::parse(event).ok()?;
    Some(match nav {
        NavigationEvent::KeyPress {
            key,
            modifier_state,
        } => InputEvent::Key {
            pressed: true,
            key,
            keycode: 0,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::KeyRelease {
            key,
            modifier_state,
        } => InputEvent::Key {
            pressed: false,
            key,
            keycode: 0,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::MouseMove { x, y, .. } => InputEvent::MouseMove { x, y },
        NavigationEvent::MouseButtonPress {
            button,
            x,
            y,
            modifier_state,
        } => InputEvent::MouseButton {
            button: u32::try_from(button).ok()?,
            pressed: true,
            x,
            y,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::MouseButtonRelease {
            button,
            x,
            y,
            modifier_state,
        } => InputEvent::MouseButton {
            button: u32::try_from(button).ok()?,
            pressed: false,
            x,
            y,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::MouseScroll {
            x,
            y,
            delta_x,
            delta_y,
            modifier_state,
        } => InputEvent::Scroll {
            x,
            y,
            dx: delta_x,
            dy: delta_y,
            modifiers: modifier_state.bits(),
        },
        NavigationEvent::TouchDown {
            identifier,
            x,
            y,
            pressure,
            ..
        } => InputEvent::Touch {
            id: identifier,
            phase: TouchPhase::Down,
            x,
            y,
            pressure,
        },
        NavigationEvent::TouchMotion {
            identifier,
            x,
            y,
            pressure,
            ..
        } => InputEvent::Touch {
            id: identifier,
            phase: TouchPhase::Motion,
            x,
            y,
            pressure,
        },
        NavigationEvent::TouchUp {
            identifier, x, y, ..
        } => InputEvent::Touch {
            id: identifier,
            phase: TouchPhase::Up,
            x,
            y,
            pressure: 0.0,
        },
        NavigationEvent::TouchFrame { .. } => InputEvent::TouchFrame,
        NavigationEvent::TouchCancel { .. } => InputEvent::Touch {
            id: TOUCH_CANCEL_ALL,
            phase: TouchPhase::Cancel,
            x: 0.0,
            y: 0.0,
            pressure: 0.0,
        },
        _ => return None,
    })
}
