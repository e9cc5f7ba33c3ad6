//! The reassembler is the client's firewall: every opened video body goes through
//! [`Reassembler::push`]. Whatever arrives, it must not panic, must keep its buffers under the
//! memory cap, must hand frames out strictly in index order (lost runs included), must let go of
//! everything once time has run out, and must never hand out a frame that differs from what the
//! host sent.
//!
//! First byte, mode (`% 3`):
//! 0. hostile: records `[op][dt ms][len: u16 le][body]` pushed into a reassembler with a small
//!    memory cap chosen by `op`, the fake clock advanced by `dt`;
//! 1. genuine: frames cut by the real packetizer, with datagrams dropped, reordered and
//!    duplicated as the input says; every frame whose blocks are within the parity budget must
//!    come out byte-exact, and no other frame may;
//! 2. like 1, with header bytes of some datagrams corrupted: only the safety checks apply.

#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::fec::coder::{BlockLayout, FecCoder, FecError, ReedSolomon8, parity_for};
use gstpunktfunk::protocol::media::packetizer::{Datagrams, FrameParams, Packetizer};
use gstpunktfunk::protocol::media::reassembler::{Output, Reassembler, ReassemblerConfig};
use gstpunktfunk::protocol::wire::{HEADER_LEN, VIDEO_HEADER_LEN, seq_diff};
use libfuzzer_sys::fuzz_target;

/// Building a Reed-Solomon coder inverts a matrix, which under the sanitizer costs more than a
/// whole run, and `ReedSolomon8` keeps only a few. Coders are kept here per `(k, m)` across runs
/// (coding is a pure function of the shards, so sharing them does not make runs depend on each
/// other); the genuine mode uses a few FEC shares so that the set stays small.
static CODERS: Mutex<Option<HashMap<(usize, usize), ReedSolomon8>>> = Mutex::new(None);

/// Coders kept at most; the cache starts over beyond this.
const MAX_CODERS: usize = 1024;

struct SharedCoder;

impl SharedCoder {
    fn with<T>(k: usize, m: usize, f: impl FnOnce(&mut ReedSolomon8) -> T) -> T {
        let mut g = CODERS.lock().unwrap_or_else(PoisonError::into_inner);
        let map = g.get_or_insert_with(HashMap::new);
        if map.len() >= MAX_CODERS && !map.contains_key(&(k, m)) {
            map.clear();
        }
        f(map.entry((k, m)).or_default())
    }
}

impl FecCoder for SharedCoder {
    fn scheme(&self) -> u8 {
        ReedSolomon8::new().scheme()
    }
    fn max_shards(&self) -> usize {
        ReedSolomon8::new().max_shards()
    }
    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        Self::with(data.len(), parity.len(), |c| c.encode(data, parity))
    }
    fn reconstruct(
        &mut self,
        k: usize,
        shards: &mut [&mut [u8]],
        present: &[bool],
    ) -> Result<(), FecError> {
        let m = shards.len().saturating_sub(k);
        Self::with(k, m, |c| c.reconstruct(k, shards, present))
    }
}

/// Reads the fuzz input front to back; runs dry into zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A reassembler with its invariants checked after every call.
struct Checked {
    r: Reassembler,
    cfg: ReassemblerConfig,
    /// Highest frame index accounted for (delivered or reported lost).
    last: Option<u32>,
    delivered: BTreeMap<u32, Vec<u8>>,
}

impl Checked {
    fn new(cfg: ReassemblerConfig) -> Self {
        Checked {
            r: Reassembler::new(cfg, Box::new(SharedCoder)),
            cfg,
            last: None,
            delivered: BTreeMap::new(),
        }
    }

    fn push(&mut self, body: &[u8], now: Instant) {
        let _ = self.r.push(body, now);
        self.check();
    }

    fn timeout(&mut self, now: Instant) {
        self.r.handle_timeout(now);
        self.check();
    }

    fn reset(&mut self) {
        self.r.reset();
        self.last = None;
        self.check();
    }

    fn check(&mut self) {
        let s = self.r.stats();
        assert!(
            s.memory_in_use <= self.cfg.memory_cap,
            "memory {} over cap {}",
            s.memory_in_use,
            self.cfg.memory_cap
        );
        assert!(s.memory_peak <= self.cfg.memory_cap);
        while let Some(o) = self.r.poll() {
            match o {
                Output::Frame(f) => {
                    assert!(!f.data.is_empty() && f.data.len() <= self.cfg.max_frame_bytes);
                    if let Some(l) = self.last {
                        assert!(
                            seq_diff(f.index, l) > 0,
                            "frame {} delivered after {l}",
                            f.index
                        );
                    }
                    self.last = Some(f.index);
                    self.delivered.insert(f.index, f.data);
                }
                Output::Lost { first_index, count } => {
                    assert!(count > 0);
                    if let Some(l) = self.last {
                        assert!(
                            seq_diff(first_index, l) > 0,
                            "frames from {first_index} reported lost after {l}"
                        );
                    }
                    self.last = Some(first_index.wrapping_add(count - 1));
                }
            }
        }
    }

    /// Lets all the time in the world pass: nothing may stay in flight.
    fn finish(&mut self, now: Instant) {
        self.timeout(now + Duration::from_secs(3600));
        assert_eq!(
            self.r.stats().memory_in_use,
            0,
            "memory held after every timeout"
        );
        assert_eq!(self.r.next_timeout(), None);
    }
}

fn hostile(mut inp: Input<'_>) {
    let Some(cfg_byte) = inp.u8() else { return };
    let memory_cap = [4 << 10, 64 << 10, 1 << 20, 0][usize::from(cfg_byte & 3)];
    let cfg = ReassemblerConfig {
        memory_cap,
        max_frame_bytes: if cfg_byte & 4 != 0 {
            memory_cap
        } else {
            ReassemblerConfig::default().max_frame_bytes
        },
        max_frames_in_flight: usize::from(cfg_byte >> 3 & 7) + 1,
        max_index_jump: if cfg_byte & 0x40 != 0 { 16 } else { 1 << 16 },
        ..ReassemblerConfig::default()
    };
    let mut c = Checked::new(cfg);
    let start = Instant::now();
    let mut now = start;
    while !inp.is_empty() {
        let op = inp.u8().unwrap_or(0);
        let dt = inp.u8().unwrap_or(0);
        now += Duration::from_millis(u64::from(dt));
        match op & 7 {
            6 => c.timeout(now),
            7 => c.reset(),
            _ => {
                let len = usize::from(inp.u16().unwrap_or(0));
                let body = inp.bytes(len);
                c.push(body, now);
            }
        }
    }
    c.finish(now);
}

/// A frame's bytes: a pattern that differs per frame and per position.
fn frame_bytes(index: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(index.wrapping_mul(7)) as u8
        })
        .collect()
}

fn genuine(mut inp: Input<'_>, corrupt: bool) {
    let mtu = 50 + usize::from(inp.u8().unwrap_or(0));
    let fec_percent = [0, 5, 10, 20, 33, 50, 100][usize::from(inp.u8().unwrap_or(0) % 7)];
    let first_index = inp.u32().unwrap_or(0);
    let mut packetizer = Packetizer::new(mtu, Box::new(SharedCoder));
    let mut c = Checked::new(ReassemblerConfig::default());
    let mut out = Datagrams::new();
    let start = Instant::now();
    let mut now = start;
    let mut expected: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut all_sent = Vec::new();
    let mut any_corrupted = false;
    let mut pn = 0u64;

    for f in 0..64u32 {
        if inp.is_empty() {
            break;
        }
        // [flags][len: u16][drop bitmap: one bit per datagram][corruption: 3 bytes if asked]
        let flags = inp.u8().unwrap_or(0);
        let len = 1 + usize::from(inp.u16().unwrap_or(0) % 4096);
        let index = first_index.wrapping_add(f);
        let data = frame_bytes(index, len);
        let params = FrameParams {
            frame_index: index,
            keyframe: flags & 1 != 0,
            fec_percent,
            session_id: 1,
            first_packet_number: pn,
            sealed: false,
            tag_len: 0,
            timing: Default::default(),
        };
        if packetizer.packetize(&data, &params, &mut out).is_err()
            || packetizer.encode_parity(fec_percent, &mut out).is_err()
        {
            continue;
        }
        pn += out.len() as u64;
        let bitmap = inp.bytes(out.len().div_ceil(8)).to_vec();
        let dropped = |i: usize| bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 != 0);

        // Recoverable iff every block keeps at least k of its k + m shards.
        let layout = BlockLayout::for_shards(out.data_count());
        let mut recoverable = true;
        let mut parity_base = out.data_count();
        for b in 0..layout.blocks {
            let k = layout.data_in_block(b);
            let m = parity_for(k, fec_percent);
            let first = layout.first_shard(b);
            let kept = (first..first + k)
                .chain(parity_base..parity_base + m)
                .filter(|&i| !dropped(i))
                .count();
            recoverable &= kept >= k;
            parity_base += m;
        }
        if recoverable {
            expected.insert(index, data);
        }

        let mut bodies: Vec<Vec<u8>> = (0..out.len())
            .filter(|&i| !dropped(i))
            .map(|i| out.get(i)[HEADER_LEN..].to_vec())
            .collect();
        if flags & 2 != 0 {
            bodies.reverse();
        }
        if flags & 4 != 0 && bodies.len() > 1 {
            let n = bodies.len();
            bodies.rotate_left(usize::from(flags >> 4) % n);
        }
        if corrupt && flags & 8 != 0 && !bodies.is_empty() {
            let which = usize::from(inp.u8().unwrap_or(0)) % bodies.len();
            let pos = usize::from(inp.u8().unwrap_or(0)) % VIDEO_HEADER_LEN;
            let x = inp.u8().unwrap_or(1);
            bodies[which][pos] ^= x;
            any_corrupted |= x != 0;
        }
        for b in &bodies {
            c.push(b, now);
            if flags & 0x80 != 0 {
                // A duplicate of every datagram changes nothing.
                c.push(b, now);
            }
        }
        all_sent.push(index);
        now += Duration::from_millis(1);
        c.timeout(now);
    }
    c.finish(now);
    if corrupt && any_corrupted {
        return;
    }
    for (index, data) in &expected {
        match c.delivered.get(index) {
            Some(got) => assert!(got == data, "frame {index} delivered with wrong bytes"),
            None => panic!("frame {index} was recoverable but not delivered"),
        }
    }
    for index in c.delivered.keys() {
        assert!(
            expected.contains_key(index),
            "frame {index} delivered although too many of its shards were dropped"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    match inp.u8().map(|m| m % 3) {
        Some(0) => hostile(inp),
        Some(1) => genuine(inp, false),
        Some(_) => genuine(inp, true),
        None => {}
    }
});
