//! The host's side of the reliable channel: delivers the events of input bodies in sequence
//! order, each exactly once, and says which cumulative ack to send back.
//!
//! Must never: deliver an event twice or out of order (a lost key release is a stuck key), buffer
//! more than [`RECEIVE_WINDOW`] events ahead, allocate for what a body claims rather than what it
//! carries, or change its state for a body that fails to decode.

use std::collections::VecDeque;

use super::{InputEvent, RECEIVE_WINDOW};
use crate::protocol::wire::{Reader, WireError};

/// The host's side of input delivery: turns input bodies into events delivered in sequence
/// order, each exactly once, and reports the cumulative ack to send back.
#[derive(Debug, Default)]
pub struct InputReceiver {
    next_expected: u64,
    /// Events ahead of `next_expected`: slot `i` holds sequence `next_expected + i`.
    /// At most [`RECEIVE_WINDOW`] slots.
    pub(super) ahead: VecDeque<Option<InputEvent>>,
    /// Events of the body being decoded, kept between calls so steady state does not allocate.
    pub(super) scratch: Vec<InputEvent>,
}

impl InputReceiver {
    /// A receiver that expects sequence number 0 first.
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
