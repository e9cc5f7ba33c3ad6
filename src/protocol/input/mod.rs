//! Input events (keyboard, mouse, touch, gamepad) and their reliable, ordered delivery from the
//! client to the host.
//!
//! This module owns the byte layout of one input event and of an input datagram body
//! (`first_seq: u64, count: u16, count × event`), the client's retransmission queue
//! ([`InputSender`]) and the host's in-order delivery ([`InputReceiver`]). Acknowledgements are
//! cumulative ("I have every event below N") and travel as control messages, which the session
//! carries; this module only produces and consumes the number.
//!
//! It must never read a clock (time is always an argument), touch a socket, panic on bytes from
//! the network, allocate in proportion to what a body *claims* rather than to what it carries,
//! or deliver an event twice or out of order: a lost key release is a stuck key on the host.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::wire::{Reader, WireError, Writer};

/// Longest key name carried, in bytes. GstNavigation key names ("Return", "KP_Add",
/// "XF86AudioRaiseVolume") are far shorter; a longer one is cut on a char boundary when sent.
pub const MAX_KEY_BYTES: usize = 64;

/// Bytes before the first event of an input body: `first_seq: u64` and `count: u16`.
pub const BODY_HEADER_LEN: usize = 10;

/// How far beyond the next expected sequence number the receiver buffers events. Anything
/// further ahead is dropped: the sender retransmits it once the gap is filled, and the bound
/// keeps a hostile or confused peer from making the host hold unbounded state.
pub const RECEIVE_WINDOW: u64 = 1024;

/// Event type bytes on the wire.
mod ty {
    pub(super) const KEY: u8 = 1;
    pub(super) const MOUSE_MOVE: u8 = 2;
    pub(super) const MOUSE_MOVE_RELATIVE: u8 = 3;
    pub(super) const MOUSE_BUTTON: u8 = 4;
    pub(super) const SCROLL: u8 = 5;
    pub(super) const TOUCH: u8 = 6;
    pub(super) const TOUCH_FRAME: u8 = 7;
    pub(super) const GAMEPAD_BUTTON: u8 = 8;
    pub(super) const GAMEPAD_AXIS: u8 = 9;
    pub(super) const GAMEPAD_CONNECTED: u8 = 10;
}

/// Where a touch point is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TouchPhase {
    Down = 0,
    Motion = 1,
    Up = 2,
    Cancel = 3,
}

impl TouchPhase {
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
        pressed: bool,
        key: String,
        keycode: u32,
        modifiers: u32,
    },
    /// Absolute pointer position.
    MouseMove { x: f64, y: f64 },
    /// Relative pointer motion (pointer lock, games).
    MouseMoveRelative { dx: f64, dy: f64 },
    /// A pointer button press or release at a position.
    MouseButton {
        button: u32,
        pressed: bool,
        x: f64,
        y: f64,
        modifiers: u32,
    },
    /// A scroll of `(dx, dy)` with the pointer at `(x, y)`.
    Scroll {
        x: f64,
        y: f64,
        dx: f64,
        dy: f64,
        modifiers: u32,
    },
    /// One touch point changing; a [`InputEvent::TouchFrame`] ends a group of them.
    Touch {
        id: u32,
        phase: TouchPhase,
        x: f64,
        y: f64,
        pressure: f64,
    },
    /// End of a group of touch point changes that belong together.
    TouchFrame,
    /// A gamepad button; `value` is the analogue amount (0.0..=1.0) for triggers.
    GamepadButton {
        pad: u8,
        button: u16,
        pressed: bool,
        value: f32,
    },
    /// A gamepad axis position.
    GamepadAxis { pad: u8, axis: u16, value: f32 },
    /// A gamepad was plugged in or removed.
    GamepadConnected { pad: u8, connected: bool },
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

/// [`InputSender::push`] refused an event: `max_pending` events are already waiting for an ack.
/// The link is down or far behind; the caller counts the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputQueueFull;

impl fmt::Display for InputQueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input queue full: too many events waiting for acknowledgement"
        )
    }
}

impl std::error::Error for InputQueueFull {}

#[derive(Debug)]
struct Pending {
    event: InputEvent,
    /// Cached [`InputEvent::encoded_len`], so packing a body never re-measures strings.
    len: usize,
    /// Last time this event went out; `None` until its first transmission.
    last_tx: Option<Instant>,
}

/// The client's side of input delivery: numbers events, keeps them until acknowledged, and
/// builds input bodies — new events at once, old ones again when they have been out longer
/// than the retransmission timeout.
///
/// Sequence numbers start at 0 for each sender (one per session) and increase by one per event.
#[derive(Debug)]
pub struct InputSender {
    max_pending: usize,
    queue: VecDeque<Pending>,
    /// Sequence number of `queue[0]`: everything below it is acknowledged.
    base_seq: u64,
    /// Index of the first event never sent. Bodies always cover a contiguous range that
    /// reaches the first unsent event, so sent events are always a prefix of the queue.
    unsent_from: usize,
    /// Earliest `last_tx` among the sent events (exact), so an idle `poll_transmit` is O(1).
    earliest_tx: Option<Instant>,
    /// The latest `now` seen, to report unsent events as due in [`InputSender::next_timeout`].
    last_poll: Option<Instant>,
}

impl InputSender {
    /// A sender that holds at most `max_pending` unacknowledged events (at least 1).
    pub fn new(max_pending: usize) -> Self {
        InputSender {
            max_pending: max_pending.max(1),
            queue: VecDeque::new(),
            base_seq: 0,
            unsent_from: 0,
            earliest_tx: None,
            last_poll: None,
        }
    }

    /// Queues an event for delivery and returns its sequence number. Call
    /// [`InputSender::poll_transmit`] afterwards: new events are due at once.
    pub fn push(&mut self, ev: InputEvent) -> Result<u64, InputQueueFull> {
        if self.queue.len() >= self.max_pending {
            return Err(InputQueueFull);
        }
        let seq = self.base_seq.wrapping_add(self.queue.len() as u64);
        let len = ev.encoded_len();
        self.queue.push_back(Pending {
            event: ev,
            len,
            last_tx: None,
        });
        Ok(seq)
    }

    /// Events pushed and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// True when some event has never been sent.
    pub fn has_unsent(&self) -> bool {
        self.unsent_from < self.queue.len()
    }

    /// Sequence number the next pushed event gets.
    pub fn next_seq(&self) -> u64 {
        self.base_seq.wrapping_add(self.queue.len() as u64)
    }

    fn due(last_tx: Option<Instant>, now: Instant, rto: Duration) -> bool {
        last_tx.is_some_and(|t| now.saturating_duration_since(t) >= rto)
    }

    fn recompute_earliest(&mut self) {
        self.earliest_tx = self
            .queue
            .iter()
            .take(self.unsent_from)
            .filter_map(|p| p.last_tx)
            .min();
    }

    /// Builds one input body into `out` (cleared first) if any event is unsent or was last sent
    /// at least `rto` ago, and returns true; returns false (with `out` empty) when nothing is
    /// due. Call it until it returns false.
    ///
    /// The body starts at the oldest unacknowledged event when the events that are due still
    /// fit behind it, so every body also repeats what is in flight (cheap insurance at high
    /// loss), and carries as many consecutive events as fit in `max_len` bytes — always at least
    /// one, even if that one alone is larger. Every event in it counts as sent at `now`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        rto: Duration,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        self.last_poll = Some(self.last_poll.map_or(now, |t| t.max(now)));
        let n = self.queue.len();
        if n == 0 {
            return false;
        }
        // The first event that needs to go out: the oldest overdue one, else the oldest unsent.
        let overdue = if Self::due(self.earliest_tx, now, rto) {
            self.queue
                .iter()
                .take(self.unsent_from)
                .position(|p| Self::due(p.last_tx, now, rto))
        } else {
            None
        };
        let start = match overdue {
            Some(i) => i,
            None if self.unsent_from < n => self.unsent_from,
            None => return false,
        };

        let budget = max_len.saturating_sub(BODY_HEADER_LEN);
        let max_count = u16::MAX as usize;
        let mut used = self.queue[start].len;
        let mut end = start + 1;
        while end < n && end - start < max_count && used + self.queue[end].len <= budget {
            used += self.queue[end].len;
            end += 1;
        }
        let mut first = start;
        while first > 0 && end - first < max_count && used + self.queue[first - 1].len <= budget {
            first -= 1;
            used += self.queue[first].len;
        }

        out.reserve(BODY_HEADER_LEN + used);
        Writer::new(out)
            .u64(self.base_seq.wrapping_add(first as u64))
            .u16((end - first) as u16);
        for p in self.queue.range_mut(first..end) {
            p.event.encode(out);
            p.last_tx = Some(now);
        }
        let all_sent_now = first == 0 && end >= self.unsent_from;
        self.unsent_from = self.unsent_from.max(end);
        if all_sent_now {
            self.earliest_tx = Some(now);
        } else {
            self.recompute_earliest();
        }
        true
    }

    /// Applies a cumulative acknowledgement: the receiver has every event below
    /// `next_expected`. Stale acks are ignored; an ack beyond what was ever sent only covers
    /// what was sent.
    pub fn on_ack(&mut self, next_expected: u64) {
        if next_expected <= self.base_seq {
            return;
        }
        let acked = (next_expected - self.base_seq).min(self.unsent_from as u64) as usize;
        if acked == 0 {
            return;
        }
        self.queue.drain(..acked);
        self.base_seq = self.base_seq.wrapping_add(acked as u64);
        self.unsent_from -= acked;
        self.recompute_earliest();
    }

    /// When [`InputSender::poll_transmit`] next has something to send: the earliest
    /// retransmission deadline, or the latest `now` it was given while some event is unsent
    /// (that is, at once). `None` when nothing is pending, or when events are pending but
    /// `poll_transmit` was never called.
    pub fn next_timeout(&self, rto: Duration) -> Option<Instant> {
        let retransmit = self.earliest_tx.and_then(|t| t.checked_add(rto));
        let unsent = if self.has_unsent() {
            self.last_poll
        } else {
            None
        };
        match (retransmit, unsent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The host's side of input delivery: turns input bodies into events delivered in sequence
/// order, each exactly once, and reports the cumulative ack to send back.
#[derive(Debug, Default)]
pub struct InputReceiver {
    next_expected: u64,
    /// Events ahead of `next_expected`: slot `i` holds sequence `next_expected + i`.
    /// At most [`RECEIVE_WINDOW`] slots.
    ahead: VecDeque<Option<InputEvent>>,
    /// Events of the body being decoded, kept between calls so steady state does not allocate.
    scratch: Vec<InputEvent>,
}

impl InputReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cumulative ack: every event below this number was delivered.
    pub fn next_expected(&self) -> u64 {
        self.next_expected
    }

    /// Events buffered ahead of a gap.
    pub fn buffered(&self) -> usize {
        self.ahead.iter().filter(|s| s.is_some()).count()
    }

    /// Decodes one input body and delivers, in order, every event that became deliverable;
    /// returns how many were delivered. Duplicates are ignored; events more than
    /// [`RECEIVE_WINDOW`] ahead of the next expected one are dropped (they will come again).
    /// A malformed body returns the error and changes nothing.
    pub fn on_body(
        &mut self,
        body: &[u8],
        deliver: &mut dyn FnMut(InputEvent),
    ) -> Result<usize, WireError> {
        self.scratch.clear();
        let first_seq = match self.decode_into_scratch(body) {
            Ok(s) => s,
            Err(e) => {
                self.scratch.clear();
                return Err(e);
            }
        };

        let mut delivered = 0;
        let mut events = std::mem::take(&mut self.scratch);
        for (i, ev) in events.drain(..).enumerate() {
            // Cannot overflow: decode checked first_seq + count.
            let seq = first_seq + i as u64;
            if seq < self.next_expected {
                continue;
            }
            let offset = seq - self.next_expected;
            if offset >= RECEIVE_WINDOW {
                break;
            }
            let offset = offset as usize;
            if self.ahead.len() <= offset {
                self.ahead.resize_with(offset + 1, || None);
            }
            if self.ahead[offset].is_none() {
                self.ahead[offset] = Some(ev);
            }
            while let Some(Some(_)) = self.ahead.front() {
                if let Some(Some(ev)) = self.ahead.pop_front() {
                    self.next_expected += 1;
                    delivered += 1;
                    deliver(ev);
                }
            }
        }
        self.scratch = events;
        Ok(delivered)
    }

    /// Parses the whole body into `scratch`; returns the first sequence number.
    fn decode_into_scratch(&mut self, body: &[u8]) -> Result<u64, WireError> {
        let mut r = Reader::new(body);
        let first_seq = r.u64()?;
        let count = r.u16()? as usize;
        // Every event takes at least one byte: a count beyond the bytes present is a lie,
        // caught before any work proportional to it.
        if count > r.remaining() {
            return Err(WireError::Truncated);
        }
        if first_seq.checked_add(count as u64).is_none() {
            return Err(WireError::Limit("input sequence number"));
        }
        for _ in 0..count {
            let ev = InputEvent::decode(&mut r)?;
            self.scratch.push(ev);
        }
        r.finish()?;
        Ok(first_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn sequence_numbers_start_at_zero_and_count_up() {
        let mut tx = InputSender::new(8);
        for i in 0..5 {
            assert_eq!(tx.push(key(true, i)), Ok(i as u64));
        }
        assert_eq!(tx.pending(), 5);
        assert_eq!(tx.next_seq(), 5);
    }

    #[test]
    fn queue_full_refuses() {
        let mut tx = InputSender::new(2);
        tx.push(key(true, 0)).unwrap();
        tx.push(key(true, 1)).unwrap();
        assert_eq!(tx.push(key(true, 2)), Err(InputQueueFull));
        assert_eq!(tx.pending(), 2);
        let t = Instant::now();
        let mut out = Vec::new();
        assert!(tx.poll_transmit(t, RTO, 1200, &mut out));
        tx.on_ack(1);
        assert_eq!(tx.push(key(true, 2)), Ok(2));
        assert_eq!(InputSender::new(0).max_pending, 1);
    }

    #[test]
    fn new_events_go_out_at_once_and_old_ones_after_rto() {
        let t0 = Instant::now();
        let mut tx = InputSender::new(64);
        let mut rx = InputReceiver::new();
        let mut out = Vec::new();
        assert!(!tx.poll_transmit(t0, RTO, 1200, &mut out));
        assert!(out.is_empty());
        assert_eq!(tx.next_timeout(RTO), None);

        tx.push(key(true, 1)).unwrap();
        assert!(tx.has_unsent());
        assert!(tx.poll_transmit(t0, RTO, 1200, &mut out));
        assert_eq!(
            collect(&mut InputReceiver::new(), &out).unwrap(),
            [key(true, 1)]
        );
        assert!(!tx.poll_transmit(t0, RTO, 1200, &mut out));
        assert_eq!(tx.next_timeout(RTO), Some(t0 + RTO));

        // A new event goes out before the first is due, together with it.
        let t1 = t0 + Duration::from_millis(1);
        tx.push(key(false, 1)).unwrap();
        assert_eq!(tx.next_timeout(RTO), Some(t0));
        assert!(tx.poll_transmit(t1, RTO, 1200, &mut out));
        assert_eq!(
            collect(&mut rx, &out).unwrap(),
            [key(true, 1), key(false, 1)]
        );
        assert!(!tx.poll_transmit(t1, RTO, 1200, &mut out));
        assert_eq!(tx.next_timeout(RTO), Some(t1 + RTO));

        // Not yet due, then due.
        assert!(!tx.poll_transmit(t1 + RTO / 2, RTO, 1200, &mut out));
        assert!(tx.poll_transmit(t1 + RTO, RTO, 1200, &mut out));
        assert_eq!(collect(&mut rx, &out).unwrap(), []);
        assert!(!tx.poll_transmit(t1 + RTO, RTO, 1200, &mut out));

        tx.on_ack(rx.next_expected());
        assert_eq!(tx.pending(), 0);
        assert_eq!(tx.next_timeout(RTO), None);
        assert!(!tx.poll_transmit(t1 + RTO * 10, RTO, 1200, &mut out));
    }

    #[test]
    fn acks_are_cumulative_stale_ones_ignored_and_clamped_to_what_was_sent() {
        let t0 = Instant::now();
        let mut tx = InputSender::new(64);
        let mut out = Vec::new();
        for i in 0..4 {
            tx.push(key(true, i)).unwrap();
        }
        assert!(tx.poll_transmit(t0, RTO, 1200, &mut out));
        for i in 4..6 {
            tx.push(key(true, i)).unwrap();
        }
        tx.on_ack(2);
        assert_eq!(tx.pending(), 4);
        tx.on_ack(1);
        assert_eq!(tx.pending(), 4);
        // Events 4 and 5 were never sent: an ack claiming them is a lie and covers only 0..4.
        tx.on_ack(100);
        assert_eq!(tx.pending(), 2);
        assert!(tx.has_unsent());
        assert!(tx.poll_transmit(t0, RTO, 1200, &mut out));
        let mut r = Reader::new(&out);
        assert_eq!(r.u64().unwrap(), 4);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(tx.push(key(true, 6)), Ok(6));
    }

    #[test]
    fn bodies_respect_max_len_but_always_carry_one_event() {
        let t0 = Instant::now();
        let mut tx = InputSender::new(100);
        for i in 0..50 {
            tx.push(key(i % 2 == 0, i)).unwrap();
        }
        let mut rx = InputReceiver::new();
        let mut got = Vec::new();
        let mut out = Vec::new();
        let mut bodies = 0;
        while tx.poll_transmit(t0, RTO, 100, &mut out) {
            assert!(out.len() <= 100);
            bodies += 1;
            got.extend(collect(&mut rx, &out).unwrap());
        }
        assert!(bodies > 5);
        assert_eq!(got.len(), 50);
        assert_eq!(rx.next_expected(), 50);

        // A budget too small for even one event still sends one per body.
        let mut tx = InputSender::new(10);
        tx.push(key(true, 1)).unwrap();
        tx.push(key(true, 2)).unwrap();
        assert!(tx.poll_transmit(t0, RTO, 0, &mut out));
        let mut r = Reader::new(&out);
        assert_eq!(r.u64().unwrap(), 0);
        assert_eq!(r.u16().unwrap(), 1);
        assert!(tx.poll_transmit(t0, RTO, 0, &mut out));
        assert!(!tx.poll_transmit(t0, RTO, 0, &mut out));
    }

    #[test]
    fn retransmissions_start_from_the_oldest_due_event_when_all_does_not_fit() {
        let t0 = Instant::now();
        let mut tx = InputSender::new(100);
        let mut out = Vec::new();
        for i in 0..20 {
            tx.push(key(true, i)).unwrap();
        }
        // Send them in small bodies at t0.
        while tx.poll_transmit(t0, RTO, 60, &mut out) {}
        // New event at t0+1ms: with a tight budget, the new one must not wait behind 20 old ones.
        let t1 = t0 + Duration::from_millis(1);
        tx.push(key(false, 20)).unwrap();
        assert!(tx.poll_transmit(t1, RTO, 60, &mut out));
        let mut r = Reader::new(&out);
        let first = r.u64().unwrap();
        let count = r.u16().unwrap() as u64;
        assert!(first <= 20 && first + count == 21, "{first} {count}");
        assert!(!tx.poll_transmit(t1, RTO, 60, &mut out));
        // At t0+RTO the old ones are due, from the oldest.
        assert!(tx.poll_transmit(t0 + RTO, RTO, 60, &mut out));
        assert_eq!(Reader::new(&out).u64().unwrap(), 0);
    }

    #[test]
    fn receiver_buffers_reordered_bodies_and_ignores_duplicates() {
        let evs: Vec<_> = (0..6).map(|i| key(i % 2 == 0, i)).collect();
        let mut rx = InputReceiver::new();
        assert_eq!(collect(&mut rx, &body(3, &evs[3..6])).unwrap(), []);
        assert_eq!(rx.buffered(), 3);
        assert_eq!(rx.next_expected(), 0);
        assert_eq!(collect(&mut rx, &body(1, &evs[1..2])).unwrap(), []);
        assert_eq!(collect(&mut rx, &body(0, &evs[0..3])).unwrap(), evs);
        assert_eq!(rx.next_expected(), 6);
        assert_eq!(rx.buffered(), 0);
        assert_eq!(collect(&mut rx, &body(0, &evs)).unwrap(), []);
        assert_eq!(collect(&mut rx, &body(4, &evs[4..])).unwrap(), []);
        assert_eq!(rx.next_expected(), 6);
        // An empty body is harmless.
        assert_eq!(collect(&mut rx, &body(99, &[])).unwrap(), []);
    }

    #[test]
    fn receiver_drops_events_beyond_its_window() {
        let mut rx = InputReceiver::new();
        let far = body(RECEIVE_WINDOW, &[key(true, 0)]);
        assert_eq!(collect(&mut rx, &far).unwrap(), []);
        assert_eq!(rx.buffered(), 0);
        assert!(rx.ahead.len() <= RECEIVE_WINDOW as usize);
        let edge = body(RECEIVE_WINDOW - 1, &[key(true, 0), key(true, 1)]);
        assert_eq!(collect(&mut rx, &edge).unwrap(), []);
        assert_eq!(rx.buffered(), 1);
        assert_eq!(rx.ahead.len(), RECEIVE_WINDOW as usize);
        let huge = body(u64::MAX - 5, &[key(true, 0)]);
        assert_eq!(collect(&mut rx, &huge).unwrap(), []);
        assert_eq!(rx.ahead.len(), RECEIVE_WINDOW as usize);
    }

    #[test]
    fn malformed_bodies_change_nothing() {
        let mut rx = InputReceiver::new();
        let good = key(true, 0);
        // Valid first event, garbage second: nothing delivered, ack unchanged.
        let mut b = body(0, &[good.clone(), good.clone()]);
        let second = BODY_HEADER_LEN + good.encoded_len();
        b[second] = 0xee;
        assert_eq!(
            rx.on_body(&b, &mut |_| panic!("delivered")),
            Err(WireError::UnknownKind(0xee))
        );
        assert_eq!(rx.next_expected(), 0);
        assert_eq!(rx.buffered(), 0);
        // Trailing bytes.
        let mut b = body(0, std::slice::from_ref(&good));
        b.push(0);
        assert_eq!(
            rx.on_body(&b, &mut |_| panic!("delivered")),
            Err(WireError::TrailingBytes)
        );
        // Sequence overflow.
        let b = body(u64::MAX, &[good.clone(), good.clone()]);
        assert_eq!(
            rx.on_body(&b, &mut |_| panic!("delivered")),
            Err(WireError::Limit("input sequence number"))
        );
        // Short header.
        assert_eq!(
            rx.on_body(&[0; 9], &mut |_| panic!()),
            Err(WireError::Truncated)
        );
        assert_eq!(rx.next_expected(), 0);
        assert_eq!(
            collect(&mut rx, &body(0, std::slice::from_ref(&good))).unwrap(),
            [good]
        );
    }

    #[test]
    fn lying_counts_do_not_allocate() {
        let mut rx = InputReceiver::new();
        let mut b = Vec::new();
        Writer::new(&mut b).u64(0).u16(u16::MAX).u8(ty::TOUCH_FRAME);
        assert_eq!(rx.on_body(&b, &mut |_| ()), Err(WireError::Truncated));
        assert_eq!(rx.scratch.capacity(), 0);
        // A count that fits the bytes present but whose events are short of bytes fails after
        // decoding at most as many events as there are bytes.
        let mut b = Vec::new();
        Writer::new(&mut b).u64(0).u16(40);
        b.extend(std::iter::repeat_n(ty::TOUCH_FRAME, 39));
        b.push(ty::MOUSE_MOVE);
        assert_eq!(rx.on_body(&b, &mut |_| ()), Err(WireError::Truncated));
        assert!(rx.scratch.capacity() <= 64);
        assert_eq!(rx.next_expected(), 0);
    }

    /// splitmix64: a tiny seeded PRNG so the loss pattern is reproducible.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// True with probability `percent` / 100.
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    /// What a simulated run produced.
    struct SimResult {
        /// Events the host saw, in delivery order.
        got: Vec<InputEvent>,
        /// Rounds until every event was delivered and acknowledged.
        rounds: usize,
        /// Most rounds between an event's push and its delivery.
        max_latency: usize,
    }

    /// Drives a sender and a receiver over a simulated link with loss in both directions,
    /// 10 ms of delay each way, reordering within a round and `per_round` new events every
    /// 5 ms round.
    fn simulate(
        seed: u64,
        loss_percent: u64,
        events: &[InputEvent],
        per_round: usize,
        max_len: usize,
        max_rounds: usize,
    ) -> SimResult {
        let step = Duration::from_millis(5);
        let delay = Duration::from_millis(10);
        let mut rng = SplitMix64(seed);
        let mut tx = InputSender::new(4096);
        let mut rx = InputReceiver::new();
        let mut now = Instant::now();
        let mut to_host: Vec<(Instant, Vec<u8>)> = Vec::new();
        let mut to_client: Vec<(Instant, u64)> = Vec::new();
        let mut got = Vec::new();
        let mut pushed_in = Vec::new();
        let mut max_latency = 0;
        let mut next = 0;
        let mut out = Vec::new();
        for round in 0..max_rounds {
            while next < events.len() && next < (round + 1) * per_round {
                assert_eq!(tx.push(events[next].clone()), Ok(next as u64));
                pushed_in.push(round);
                next += 1;
            }
            while tx.poll_transmit(now, RTO, max_len, &mut out) {
                assert!(!out.is_empty());
                if !rng.chance(loss_percent) {
                    to_host.push((now + delay, out.clone()));
                }
            }
            // Deliver what arrived, in a shuffled order.
            let (mut arrived, rest): (Vec<_>, Vec<_>) =
                to_host.drain(..).partition(|(at, _)| *at <= now);
            to_host = rest;
            for i in (1..arrived.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                arrived.swap(i, j);
            }
            for (_, b) in arrived {
                rx.on_body(&b, &mut |e| {
                    max_latency = max_latency.max(round - pushed_in[got.len()]);
                    got.push(e);
                })
                .unwrap();
                if !rng.chance(loss_percent) {
                    to_client.push((now + delay, rx.next_expected()));
                }
            }
            let (acks, rest): (Vec<_>, Vec<_>) =
                to_client.drain(..).partition(|(at, _)| *at <= now);
            to_client = rest;
            for (_, a) in acks {
                tx.on_ack(a);
            }
            if next == events.len() && tx.pending() == 0 {
                return SimResult {
                    got,
                    rounds: round,
                    max_latency,
                };
            }
            now += step;
        }
        SimResult {
            got,
            rounds: max_rounds,
            max_latency,
        }
    }

    #[test]
    fn a_thousand_key_pairs_survive_twenty_percent_loss_both_ways() {
        let events: Vec<_> = (0..1000u32)
            .flat_map(|i| [key(true, i), key(false, i)])
            .collect();
        for seed in [1, 2, 3, 0xdead_beef] {
            // 2000 events at 10 a round take 200 rounds (1 s) to push; the last must be
            // delivered and acknowledged within 40 more rounds (200 ms, 10 RTTs).
            let r = simulate(seed, 20, &events, 10, 1200, 240);
            assert_eq!(r.got.len(), events.len(), "seed {seed}");
            assert!(r.got == events, "seed {seed}: wrong order or content");
            assert!(r.rounds < 240, "seed {seed}: took {} rounds", r.rounds);
            // Low latency, not just eventual delivery: no event waits more than 100 ms.
            assert!(r.max_latency <= 20, "seed {seed}: {} rounds", r.max_latency);
        }
    }

    #[test]
    fn heavy_loss_and_one_event_per_body_still_delivers_in_order() {
        let events: Vec<_> = (0..300u32)
            .flat_map(|i| [key(true, i), key(false, i)])
            .collect();
        let r = simulate(7, 50, &events, 4, 40, 5000);
        assert!(r.got == events);
        assert!(r.rounds < 5000);
    }

    #[test]
    fn lossless_link_delivers_within_one_way_delay() {
        let events: Vec<_> = (0..100u32)
            .flat_map(|i| [key(true, i), key(false, i)])
            .collect();
        let r = simulate(9, 0, &events, 3, 1200, 200);
        assert!(r.got == events);
        // 10 ms one way = 2 rounds: nothing waits for a retransmission.
        assert_eq!(r.max_latency, 2);
    }

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
}
