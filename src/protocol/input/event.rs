//! One input event: its kinds ([`InputEvent`], [`TouchPhase`]) and its byte layout (a type byte,
//! then the fields, big-endian).
//!
//! Owns encoding and decoding of single events. Must never: panic on bytes from the network,
//! accept a non-finite float or an over-long key name (a body the host refuses is retransmitted
//! forever), or know about sequence numbers and acknowledgements (the sender and receiver do).

use super::{MAX_KEY_BYTES, ty};
use crate::protocol::wire::{Reader, WireError, Writer};

/// Where a touch point is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TouchPhase {
    /// The point touched the surface.
    Down = 0,
    /// The point moved.
    Motion = 1,
    /// The point left the surface.
    Up = 2,
    /// The system took the touch away (no release happened).
    Cancel = 3,
}

impl TouchPhase {
    /// The phase of a wire byte; an unknown byte is an error.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::Down,
            1 => Self::Motion,
            2 => Self::Up,
            3 => Self::Cancel,
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

/// One input event as the client captured it. Coordinates are in the stream's pixel space,
/// as GstNavigation reports them; `modifiers` are `GstNavigationModifierType` bits.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// A key press or release. `key` is the GstNavigation key name ("a", "Return"), at most
    /// [`MAX_KEY_BYTES`] bytes; `keycode` the X11 keysym, or 0 when unknown.
    Key {
        /// True for a press, false for a release.
        pressed: bool,
        /// The GstNavigation key name.
        key: String,
        /// The X11 keysym, or 0 when unknown.
        keycode: u32,
        /// `GstNavigationModifierType` bits held at the time.
        modifiers: u32,
    },
    /// Absolute pointer position.
    MouseMove {
        /// Horizontal position, pixels.
        x: f64,
        /// Vertical position, pixels.
        y: f64,
    },
    /// Relative pointer motion (pointer lock, games).
    MouseMoveRelative {
        /// Horizontal motion, pixels.
        dx: f64,
        /// Vertical motion, pixels.
        dy: f64,
    },
    /// A pointer button press or release at a position.
    MouseButton {
        /// The GstNavigation button number (1 = left, 2 = middle, 3 = right).
        button: u32,
        /// True for a press, false for a release.
        pressed: bool,
        /// Horizontal pointer position, pixels.
        x: f64,
        /// Vertical pointer position, pixels.
        y: f64,
        /// `GstNavigationModifierType` bits held at the time.
        modifiers: u32,
    },
    /// A scroll of `(dx, dy)` with the pointer at `(x, y)`.
    Scroll {
        /// Horizontal pointer position, pixels.
        x: f64,
        /// Vertical pointer position, pixels.
        y: f64,
        /// Horizontal scroll amount, in GstNavigation scroll units.
        dx: f64,
        /// Vertical scroll amount, in GstNavigation scroll units.
        dy: f64,
        /// `GstNavigationModifierType` bits held at the time.
        modifiers: u32,
    },
    /// One touch point changing; a [`InputEvent::TouchFrame`] ends a group of them.
    Touch {
        /// The touch point's identifier, stable from `Down` to `Up` or `Cancel`.
        id: u32,
        /// What the point did.
        phase: TouchPhase,
        /// Horizontal position, pixels.
        x: f64,
        /// Vertical position, pixels.
        y: f64,
        /// Pressure as GstNavigation reports it, 0.0..=1.0; a non-finite value is sent as 0.0.
        pressure: f64,
    },
    /// End of a group of touch point changes that belong together.
    TouchFrame,
    /// A gamepad button; `value` is the analogue amount (0.0..=1.0) for triggers.
    GamepadButton {
        /// Which gamepad, as the client numbers them.
        pad: u8,
        /// The button number.
        button: u16,
        /// True for a press, false for a release.
        pressed: bool,
        /// Analogue amount, 0.0..=1.0.
        value: f32,
    },
    /// A gamepad axis position.
    GamepadAxis {
        /// Which gamepad, as the client numbers them.
        pad: u8,
        /// The axis number.
        axis: u16,
        /// The axis position as the client reports it, usually -1.0..=1.0.
        value: f32,
    },
    /// A gamepad was plugged in or removed.
    GamepadConnected {
        /// Which gamepad, as the client numbers them.
        pad: u8,
        /// True when plugged in, false when removed.
        connected: bool,
    },
}

/// What a non-finite float is sent as: the receiver rejects NaN and infinities, and a body it
/// rejects would be retransmitted forever, blocking every later event.
fn finite64(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

fn finite32(v: f32) -> f32 {
    if v.is_finite() { v } else { 0.0 }
}

fn read_f64(r: &mut Reader<'_>) -> Result<f64, WireError> {
    let v = r.f64()?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(WireError::Limit("non-finite float"))
    }
}

fn read_f32(r: &mut Reader<'_>) -> Result<f32, WireError> {
    let v = r.f32()?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(WireError::Limit("non-finite float"))
    }
}

/// Bytes of `key` that [`Writer::string`] writes with a limit of [`MAX_KEY_BYTES`].
fn key_wire_len(key: &str) -> usize {
    let mut end = key.len().min(MAX_KEY_BYTES);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    end
}

impl InputEvent {
    /// The event's name as GstNavigation spells it ("key-press", "mouse-button-release", …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Key { pressed: true, .. } => "key-press",
            Self::Key { pressed: false, .. } => "key-release",
            Self::MouseMove { .. } => "mouse-move",
            Self::MouseMoveRelative { .. } => "mouse-move-relative",
            Self::MouseButton { pressed: true, .. } => "mouse-button-press",
            Self::MouseButton { pressed: false, .. } => "mouse-button-release",
            Self::Scroll { .. } => "mouse-scroll",
            Self::Touch { phase, .. } => match phase {
                TouchPhase::Down => "touch-down",
                TouchPhase::Motion => "touch-motion",
                TouchPhase::Up => "touch-up",
                TouchPhase::Cancel => "touch-cancel",
            },
            Self::TouchFrame => "touch-frame",
            Self::GamepadButton { .. } => "gamepad-button",
            Self::GamepadAxis { .. } => "gamepad-axis",
            Self::GamepadConnected { .. } => "gamepad-connected",
        }
    }

    /// Bytes [`InputEvent::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Self::Key { key, .. } => 1 + 4 + 4 + 2 + key_wire_len(key),
            Self::MouseMove { .. } | Self::MouseMoveRelative { .. } => 16,
            Self::MouseButton { .. } => 4 + 1 + 16 + 4,
            Self::Scroll { .. } => 32 + 4,
            Self::Touch { .. } => 4 + 1 + 24,
            Self::TouchFrame => 0,
            Self::GamepadButton { .. } => 1 + 2 + 1 + 4,
            Self::GamepadAxis { .. } => 1 + 2 + 4,
            Self::GamepadConnected { .. } => 1 + 1,
        }
    }

    /// Appends the type byte and the fields. A key name longer than [`MAX_KEY_BYTES`] is cut
    /// on a char boundary; a non-finite float is written as 0.0 (the receiver would reject it).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Self::Key {
                pressed,
                key,
                keycode,
                modifiers,
            } => {
                w.u8(ty::KEY)
                    .bool(*pressed)
                    .u32(*keycode)
                    .u32(*modifiers)
                    .string(key, MAX_KEY_BYTES);
            }
            Self::MouseMove { x, y } => {
                w.u8(ty::MOUSE_MOVE).f64(finite64(*x)).f64(finite64(*y));
            }
            Self::MouseMoveRelative { dx, dy } => {
                w.u8(ty::MOUSE_MOVE_RELATIVE)
                    .f64(finite64(*dx))
                    .f64(finite64(*dy));
            }
            Self::MouseButton {
                button,
                pressed,
                x,
                y,
                modifiers,
            } => {
                w.u8(ty::MOUSE_BUTTON)
                    .u32(*button)
                    .bool(*pressed)
                    .f64(finite64(*x))
                    .f64(finite64(*y))
                    .u32(*modifiers);
            }
            Self::Scroll {
                x,
                y,
                dx,
                dy,
                modifiers,
            } => {
                w.u8(ty::SCROLL)
                    .f64(finite64(*x))
                    .f64(finite64(*y))
                    .f64(finite64(*dx))
                    .f64(finite64(*dy))
                    .u32(*modifiers);
            }
            Self::Touch {
                id,
                phase,
                x,
                y,
                pressure,
            } => {
                w.u8(ty::TOUCH)
                    .u32(*id)
                    .u8(*phase as u8)
                    .f64(finite64(*x))
                    .f64(finite64(*y))
                    .f64(finite64(*pressure));
            }
            Self::TouchFrame => {
                w.u8(ty::TOUCH_FRAME);
            }
            Self::GamepadButton {
                pad,
                button,
                pressed,
                value,
            } => {
                w.u8(ty::GAMEPAD_BUTTON)
                    .u8(*pad)
                    .u16(*button)
                    .bool(*pressed)
                    .f32(finite32(*value));
            }
            Self::GamepadAxis { pad, axis, value } => {
                w.u8(ty::GAMEPAD_AXIS)
                    .u8(*pad)
                    .u16(*axis)
                    .f32(finite32(*value));
            }
            Self::GamepadConnected { pad, connected } => {
                w.u8(ty::GAMEPAD_CONNECTED).u8(*pad).bool(*connected);
            }
        }
    }

    /// Reads one event (type byte and fields) from untrusted bytes. Does not check that the
    /// reader is exhausted: a body holds several events.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.u8()? {
            ty::KEY => {
                let pressed = r.bool()?;
                let keycode = r.u32()?;
                let modifiers = r.u32()?;
                let key = r.string(MAX_KEY_BYTES)?;
                Self::Key {
                    pressed,
                    key,
                    keycode,
                    modifiers,
                }
            }
            ty::MOUSE_MOVE => Self::MouseMove {
                x: read_f64(r)?,
                y: read_f64(r)?,
            },
            ty::MOUSE_MOVE_RELATIVE => Self::MouseMoveRelative {
                dx: read_f64(r)?,
                dy: read_f64(r)?,
            },
            ty::MOUSE_BUTTON => Self::MouseButton {
                button: r.u32()?,
                pressed: r.bool()?,
                x: read_f64(r)?,
                y: read_f64(r)?,
                modifiers: r.u32()?,
            },
            ty::SCROLL => Self::Scroll {
                x: read_f64(r)?,
                y: read_f64(r)?,
                dx: read_f64(r)?,
                dy: read_f64(r)?,
                modifiers: r.u32()?,
            },
            ty::TOUCH => Self::Touch {
                id: r.u32()?,
                phase: TouchPhase::from_u8(r.u8()?)?,
                x: read_f64(r)?,
                y: read_f64(r)?,
                pressure: read_f64(r)?,
            },
            ty::TOUCH_FRAME => Self::TouchFrame,
            ty::GAMEPAD_BUTTON => Self::GamepadButton {
                pad: r.u8()?,
                button: r.u16()?,
                pressed: r.bool()?,
                value: read_f32(r)?,
            },
            ty::GAMEPAD_AXIS => Self::GamepadAxis {
                pad: r.u8()?,
                axis: r.u16()?,
                value: read_f32(r)?,
            },
            ty::GAMEPAD_CONNECTED => Self::GamepadConnected {
                pad: r.u8()?,
                connected: r.bool()?,
            },
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}
