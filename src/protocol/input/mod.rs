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
//!
//! Parts: this file holds the body layout constants and the event type bytes; `event` encodes
//! and decodes one event, `sender` and `receiver` are the two ends of the reliable channel.

mod event;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;

pub use event::{InputEvent, TouchPhase};
pub use receiver::InputReceiver;
pub(crate) use sender::InputSender;

/// Longest key name carried, in bytes. GstNavigation key names ("Return", "KP_Add",
/// "XF86AudioRaiseVolume") are far shorter; a longer one is cut on a char boundary when sent.
pub(crate) const MAX_KEY_BYTES: usize = 64;

/// Bytes before the first event of an input body: `first_seq: u64` and `count: u16`.
pub(crate) const BODY_HEADER_LEN: usize = 10;

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
