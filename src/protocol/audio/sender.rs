//! The host's half of the audio stream: sequence numbers and parity across packets.

use std::collections::{HashMap, VecDeque};

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::wire::{AudioBody, AudioRecord};
use super::{
    AUDIO_BLOCK_SPAN, AUDIO_LONG_BLOCK_SPAN, MAX_BLOCK_DATA, MIN_AUDIO_PARITY, MIN_BLOCK_DATA,
};

/// Numbers audio packets and protects each block of consecutive packets with parity. A
/// packet's data body is ready at once (it never waits for its block); when a block is
/// complete its parity bodies are queued and leave one behind each packet of the next block
/// (the rest before the next block's parity, if it has fewer packets), so the parity is spread
/// over time like the data it protects.
pub struct AudioSender {
    next_seq: u64,
    /// Data and parity counts of the block being filled, fixed by its first packet.
    block_data: usize,
    block_parity: usize,
    /// Records of the block being filled (buffers reused).
    records: Vec<Vec<u8>>,
    filled: usize,
    /// Parity bodies of the last complete block not sent yet.
    pending: VecDeque<Vec<u8>>,
    coders: HashMap<(usize, usize), ReedSolomon>,
    parity_bufs: Vec<Vec<u8>>,
    parity_sent: u64,
}

impl Default for AudioSender {
    fn default() -> Self {
        AudioSender::new()
    }
}

impl AudioSender {
    /// A sender whose first packet gets sequence number 0.
    pub fn new() -> Self {
        AudioSender {
            next_seq: 0,
            block_data: MIN_BLOCK_DATA,
            block_parity: MIN_AUDIO_PARITY,
            records: Vec::new(),
            filled: 0,
            pending: VecDeque::new(),
            coders: HashMap::new(),
            parity_bufs: Vec::new(),
            parity_sent: 0,
        }
    }

    /// Starts the sequence space again (a new session).
    pub fn reset(&mut self) {
        self.next_seq = 0;
        self.filled = 0;
        self.pending.clear();
    }

    /// The sequence number the next packet gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Data packets of the block being filled (or of the next one).
    pub fn block_data(&self) -> usize {
        self.block_data
    }

    /// Parity packets of the block being filled (or of the last one).
    pub fn block_parity(&self) -> usize {
        self.block_parity
    }

    /// Parity packets produced so far.
    pub fn parity_sent(&self) -> u64 {
        self.parity_sent
    }

    /// Data packets of a block of packets lasting `duration_us` each.
    pub fn block_data_for(duration_us: u32) -> usize {
        Self::packets_in(AUDIO_BLOCK_SPAN, duration_us)
    }

    /// Data and parity packets of the next block when the loss model plans `plan(k)` parity
    /// for `k` data packets: a block of [`AUDIO_BLOCK_SPAN`] with [`Self::parity_for_plan`];
    /// or, when the plan asks for three quarters of that block or more (bursty loss, which
    /// the short block barely survives: under Gilbert-Elliott 1 %/30 % the plan moves between
    /// 7 and 8 of 8, and a mode that flipped with it would be short half the time), a block of
    /// [`AUDIO_LONG_BLOCK_SPAN`] with as much parity as data.
    pub fn plan_block(duration_us: u32, plan: impl Fn(usize) -> usize) -> (usize, usize) {
        let short = Self::block_data_for(duration_us);
        let planned = plan(short);
        let long = Self::packets_in(AUDIO_LONG_BLOCK_SPAN, duration_us);
        if planned * 4 < short * 3 || long <= short {
            return (short, Self::parity_for_plan(short, planned));
        }
        (long, Self::parity_for_plan(long, long))
    }

    fn packets_in(span: std::time::Duration, duration_us: u32) -> usize {
        let span = span.as_micros() as usize;
        (span / (duration_us as usize).max(1)).clamp(MIN_BLOCK_DATA, MAX_BLOCK_DATA)
    }

    /// Parity of a block of `k` data packets when the loss model plans `planned`: at least
    /// half the block (and [`MIN_AUDIO_PARITY`]), at most as much as its data. Audio is a few
    /// hundred kbit/s beside megabits of video, and until the first loss reports have sized
    /// the plan a stream would otherwise start nearly unprotected.
    pub fn parity_for_plan(k: usize, planned: usize) -> usize {
        let floor = MIN_AUDIO_PARITY.max(k.div_ceil(2));
        planned.clamp(floor, k.max(floor))
    }

    /// Numbers one packet and appends the bodies to send now to `out`: its data body, then one
    /// parity body of the previous block if any waits (all of them if this packet completes a
    /// block). `plan(k)` is the parity the loss model plans for `k` data packets; it sizes the
    /// block this packet starts (its length and its parity). `data` must be at most [`super::MAX_AUDIO_PAYLOAD`] bytes (the
    /// caller checks). Returns the packet's sequence number.
    pub fn push(
        &mut self,
        capture_us: u64,
        duration_us: u32,
        data: &[u8],
        plan: impl Fn(usize) -> usize,
        out: &mut Vec<Vec<u8>>,
    ) -> u64 {
        if self.filled == 0 {
            (self.block_data, self.block_parity) = Self::plan_block(duration_us, &plan);
            self.records.resize_with(self.block_data, Vec::new);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = self.filled;
        let block = seq - index as u64;
        let rec = &mut self.records[index];
        rec.clear();
        AudioRecord {
            capture_us,
            duration_us,
            data,
        }
        .encode(rec);
        let (k, m) = (self.block_data as u8, self.block_parity as u8);
        let mut body = Vec::with_capacity(rec.len() + 16);
        AudioBody::Shard {
            block,
            k,
            m,
            index: index as u8,
            shard: rec,
        }
        .encode(&mut body);
        out.push(body);
        self.filled += 1;
        let complete = self.filled == self.block_data;
        if complete {
            self.filled = 0;
            // What is left of the previous block's parity goes before this block's.
            out.extend(self.pending.drain(..));
            self.encode_parity(block);
        }
        if let Some(p) = self.pending.pop_front() {
            out.push(p);
        }
        seq
    }

    fn encode_parity(&mut self, block: u64) {
        let (k, m) = (self.block_data, self.block_parity);
        let len = self.records[..k].iter().map(Vec::len).max().unwrap_or(0);
        for r in &mut self.records[..k] {
            r.resize(len, 0);
        }
        self.parity_bufs.resize_with(m, Vec::new);
        for p in &mut self.parity_bufs[..m] {
            p.clear();
            p.resize(len, 0);
        }
        let coder = self
            .coders
            .entry((k, m))
            .or_insert_with(|| ReedSolomon::new(k, m).expect("block sizes are within GF(2^8)"));
        let data: Vec<&[u8]> = self.records[..k].iter().map(Vec::as_slice).collect();
        let mut parity: Vec<&mut [u8]> = self.parity_bufs[..m]
            .iter_mut()
            .map(Vec::as_mut_slice)
            .collect();
        if coder.encode_sep(&data, &mut parity).is_err() {
            // Equal lengths and counts are ensured above; without parity the block is merely
            // unprotected.
            return;
        }
        for (j, p) in self.parity_bufs[..m].iter().enumerate() {
            let mut body = Vec::with_capacity(p.len() + 16);
            AudioBody::Shard {
                block,
                k: k as u8,
                m: m as u8,
                index: (k + j) as u8,
                shard: p,
            }
            .encode(&mut body);
            self.pending.push_back(body);
            self.parity_sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_that_fills_a_short_block_gets_a_long_one() {
        // 5 ms packets: 8 in 40 ms, 16 in 80 ms.
        assert_eq!(AudioSender::plan_block(5_000, |_| 0), (8, 4));
        assert_eq!(AudioSender::plan_block(5_000, |k| k / 2 + 1), (8, 5));
        assert_eq!(AudioSender::plan_block(5_000, |k| 3 * k / 4 - 1), (8, 5));
        assert_eq!(AudioSender::plan_block(5_000, |k| 3 * k / 4), (16, 16));
        assert_eq!(AudioSender::plan_block(5_000, |k| k - 1), (16, 16));
        assert_eq!(AudioSender::plan_block(5_000, |k| k), (16, 16));
        assert_eq!(AudioSender::plan_block(5_000, |k| 3 * k), (16, 16));
        // 20 ms packets: 2 and 4; 2.5 ms packets: 16 either way (the wire's limit).
        assert_eq!(AudioSender::plan_block(20_000, |k| k), (4, 4));
        assert_eq!(AudioSender::plan_block(2_500, |k| k), (16, 16));
        assert_eq!(AudioSender::plan_block(2_500, |_| 1), (16, 8));
        assert_eq!(AudioSender::plan_block(10_000, |_| 2), (4, 2));
        assert_eq!(AudioSender::plan_block(10_000, |_| 3), (8, 8));
    }
}
