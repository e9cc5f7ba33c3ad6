//! The client's side: video in (reassembly), stream info, reliable input out, loss reports and
//! keyframe requests.
//!
//! What the client measures and tells the host starts here (the loss report); its neighbours
//! are `repair` (loss model, repair requests, deadlines), `frame_clock` (frame ages) and `congestion`
//! (bandwidth feedback). Must never: deliver a frame twice, or send input outside the current
//! session.

use std::time::Instant;

use crate::protocol::control::StreamInfo;
use crate::protocol::fec::report::LossReport;
use crate::protocol::input::InputEvent;
use crate::protocol::media::reassembler::Output;
use crate::protocol::wire::{HEADER_LEN, Kind, TAG_LEN};

use super::link::Link;
use super::{ClientState, Connection, Error, Event, Result};

/// Input datagrams sent per call at most; the rest follows on the next timer.
const MAX_INPUT_DATAGRAMS_PER_CALL: usize = 8;

impl Connection {
    /// Client: queues an input event for reliable, ordered delivery and sends what is due at
    /// once (also without a session: it waits for the next one). `Err(InvalidArg)` when the
    /// queue is full (counted), `Err(Closed)` after [`Connection::close`].
    pub fn send_input(&mut self, now: Instant, ev: InputEvent) -> Result<()> {
        let closed = self.closed;
        let client = self.require_client("send_input is for the client")?;
        if closed {
            return Err(Error::Closed);
        }
        if client.input_tx.push(ev).is_err() {
            self.stats.input_dropped += 1;
            return Err(Error::InvalidArg("input queue full"));
        }
        self.stats.input_sent += 1;
        self.transmit_input(now);
        Ok(())
    }

    /// Client: asks the host for a keyframe, naming the newest frame it cannot decode (see
    /// `keyframe`): at most once per `Config::keyframe_request_interval`, unless it names a
    /// newer loss than the last request. Returns whether a request went out.
    pub fn request_keyframe(&mut self, now: Instant) -> Result<bool> {
        self.require_client("request_keyframe is for the client")?;
        Ok(self.ask_keyframe(now, false))
    }

    pub(super) fn on_video(&mut self, body: &[u8], now: Instant) {
        // Frames this shard shows lost whole are held before it is taken: a frame it completes
        // would otherwise release (give up) them before their repair is asked for.
        self.hold_unseen_before(body, now);
        // Rejections are counted by the reassembler itself.
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let pushed = c.reassembler.push(body, now);
        self.count_repair_shard(body, &pushed, now);
        self.drain_reassembler();
        self.check_repair(now);
    }

    pub(super) fn on_stream_info(&mut self, info: StreamInfo) {
        let Some(c) = self.side.client_mut() else {
            return;
        };
        if info.generation <= c.info_generation {
            return;
        }
        c.info_generation = info.generation;
        self.events.push_back(Event::StreamInfo(info));
    }

    pub(super) fn drain_reassembler(&mut self) {
        while let Some(c) = self.side.client_mut()
            && let Some(o) = c.reassembler.poll()
        {
            match &o {
                Output::Frame(f) => {
                    c.keyframe.on_delivered(f.index, f.keyframe);
                    self.record_frame_age(f);
                }
                Output::Lost { first_index, count } => c.keyframe.on_lost(*first_index, *count),
            }
            self.repair_on_output(&o);
            self.events.push_back(match o {
                Output::Frame(f) => Event::Frame(f),
                Output::Lost { count, .. } => Event::FramesLost { count },
            });
        }
    }

    /// The loss report due now: the counters so far and the loss model's interval that ends
    /// now.
    pub(super) fn loss_report(
        c: &mut ClientState,
        link: Option<&Link>,
        now: Instant,
    ) -> LossReport {
        let r = c.reassembler.stats();
        let (received, lost) = link.map_or((0, 0), |l| (l.received, l.packets_lost()));
        let model = c.repair.estimator.report(now);
        c.repair.on_model(&model);
        LossReport {
            packets_received: received,
            packets_lost: lost,
            packets_recovered: r.shards_recovered,
            frames_lost: r.frames_lost,
            frames_delivered: r.frames_delivered,
            info_generation: c.info_generation,
            model,
        }
    }

    /// Sends input bodies that are due (new events, or retransmissions after the RTO).
    pub(super) fn transmit_input(&mut self, now: Instant) {
        let rto = self.rto();
        let (Some(link), Some(client)) = (self.link.as_mut(), self.side.client_mut()) else {
            return;
        };
        let max = self.cfg.mtu - HEADER_LEN - TAG_LEN;
        for _ in 0..MAX_INPUT_DATAGRAMS_PER_CALL {
            if !client
                .input_tx
                .poll_transmit(now, rto, max, &mut self.scratch)
            {
                break;
            }
            let Some(d) = link.seal_datagram(Kind::Input, &self.scratch) else {
                self.stats.seal_failures += 1;
                continue;
            };
            self.transmits.push_back(super::Transmit {
                destination: link.peer,
                contents: d,
            });
        }
    }
}
