//! The host's half of the audio stream: sequence numbers and parity across packets.

use std::collections::HashMap;

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::wire::{AudioBody, AudioRecord};
use super::{AUDIO_BLOCK_DATA, MAX_AUDIO_PARITY, MIN_AUDIO_PARITY};

/// Numbers audio packets and protects each block of [`AUDIO_BLOCK_DATA`] consecutive packets
/// with parity. A packet's data body is ready at once (it never waits for its block); the
/// block's parity bodies follow the block's last packet.
pub struct AudioSender {
    next_seq: u64,
    /// Parity of the block being filled, fixed when its first packet arrives.
    block_parity: usize,
    /// Records of the block being filled (buffers reused).
    records: Vec<Vec<u8>>,
    filled: usize,
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
    pub fn new() -> Self {
        AudioSender {
            next_seq: 0,
            block_parity: MIN_AUDIO_PARITY,
            records: (0..AUDIO_BLOCK_DATA).map(|_| Vec::new()).collect(),
            filled: 0,
            coders: HashMap::new(),
            parity_bufs: Vec::new(),
            parity_sent: 0,
        }
    }

    /// Starts the sequence space again (a new session).
    pub fn reset(&mut self) {
        self.next_seq = 0;
        self.filled = 0;
    }

    /// The sequence number the next packet gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Parity packets produced so far.
    pub fn parity_sent(&self) -> u64 {
        self.parity_sent
    }

    /// The parity a block gets when the plan asks for `planned` parity packets per
    /// [`AUDIO_BLOCK_DATA`] data packets.
    pub fn parity_for_plan(planned: usize) -> usize {
        planned.clamp(MIN_AUDIO_PARITY, MAX_AUDIO_PARITY)
    }

    /// Numbers one packet and appends the bodies to send now to `out`: its data body, then,
    /// if it completes a block, the block's parity bodies. `parity` (clamped to
    /// [`MIN_AUDIO_PARITY`]..=[`MAX_AUDIO_PARITY`]) applies from the next block on. `data`
    /// must be at most [`super::MAX_AUDIO_PAYLOAD`] bytes (the caller checks). Returns the
    /// packet's sequence number.
    pub fn push(
        &mut self,
        capture_us: u64,
        duration_us: u32,
        data: &[u8],
        parity: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> u64 {
        if self.filled == 0 {
            self.block_parity = Self::parity_for_plan(parity);
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
        let (k, m) = (AUDIO_BLOCK_DATA as u8, self.block_parity as u8);
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
        if self.filled == AUDIO_BLOCK_DATA {
            self.filled = 0;
            self.emit_parity(block, out);
        }
        seq
    }

    fn emit_parity(&mut self, block: u64, out: &mut Vec<Vec<u8>>) {
        let (k, m) = (AUDIO_BLOCK_DATA, self.block_parity);
        let len = self.records.iter().map(Vec::len).max().unwrap_or(0);
        for r in &mut self.records {
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
        let data: Vec<&[u8]> = self.records.iter().map(Vec::as_slice).collect();
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
            out.push(body);
            self.parity_sent += 1;
        }
    }
}
