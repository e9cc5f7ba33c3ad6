//! The client's half of the audio stream: in-order delivery, recovery, and a deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::protocol::wire::WireError;

use super::wire::{AudioBody, AudioRecord};
use super::{MAX_BLOCK_DATA, MAX_PENDING_BLOCKS};

/// What a packet is held for beyond the time its block's parity takes: twice the arrival jitter
/// of a loaded path (± 5 ms), since the packet waited from may come early and the parity late.
pub const AUDIO_JITTER_MARGIN: Duration = Duration::from_millis(12);

/// The hold is never shorter or longer than this, whatever packet durations claim.
pub const MIN_AUDIO_HOLD: Duration = Duration::from_millis(10);
/// See [`MIN_AUDIO_HOLD`].
pub const MAX_AUDIO_HOLD: Duration = Duration::from_millis(200);

/// Packet duration assumed before a packet said its own (5 ms Opus).
const DEFAULT_DURATION_US: u32 = 5_000;

/// Longest gap reported as one [`AudioOutput::Lost`] (a longer jump is an outage: the stream
/// goes on from the packet that arrived, and the gap reported is capped).
pub const MAX_REPORTED_GAP: Duration = Duration::from_secs(10);

/// Packets held for delivery at most (beyond the next one missing).
const MAX_READY: usize = 1024;

/// One audio packet as delivered to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// Sequence number in the session's audio stream (starts at 0 with every session).
    pub seq: u64,
    /// Capture time in the host clock (the clock of the video frames' capture time), µs.
    pub capture_us: u64,
    /// The packet's duration, µs.
    pub duration_us: u32,
    /// The encoded packet.
    pub data: Vec<u8>,
    /// Rebuilt from the block's parity.
    pub recovered: bool,
}

/// What the receiver hands out, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioOutput {
    /// The next packet.
    Packet(AudioPacket),
    /// `count` packets given up (their total duration estimated from the packets around).
    Lost {
        /// Packets given up.
        count: u32,
        /// Their estimated total duration, µs.
        duration_us: u64,
    },
}

/// Counters of the receiver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AudioReceiverStats {
    /// Packets delivered as received.
    pub received: u64,
    /// Packets delivered after recovery from parity.
    pub recovered: u64,
    /// Packets given up.
    pub lost: u64,
    /// Bodies refused: malformed, inconsistent with their block, or beyond the limits.
    pub dropped: u64,
    /// Shards that came after their packets were delivered or given up, or twice.
    pub late: u64,
}

struct Block {
    k: usize,
    m: usize,
    /// Data shards then parity shards, as received or rebuilt.
    shards: Vec<Option<Vec<u8>>>,
    arrived: Vec<Option<Instant>>,
    recovered: Vec<bool>,
    /// Length of this block's parity shards (all equal), once one arrived.
    parity_len: Option<usize>,
}

impl Block {
    fn new(k: usize, m: usize) -> Block {
        Block {
            k,
            m,
            shards: vec![None; k + m],
            arrived: vec![None; k + m],
            recovered: vec![false; k],
            parity_len: None,
        }
    }
}

/// Puts audio packets back in order, rebuilds lost ones from parity, and gives up a missing
/// packet once later ones have waited for it for about a block's span.
pub struct AudioReceiver {
    /// The sequence number delivered next (`None` before the first shard).
    next: Option<u64>,
    blocks: BTreeMap<u64, Block>,
    out: VecDeque<AudioOutput>,
    coders: HashMap<(usize, usize), ReedSolomon>,
    last_duration_us: u32,
    /// Data packets per block, as the latest shard said.
    last_block_data: usize,
    stats: AudioReceiverStats,
}

impl Default for AudioReceiver {
    fn default() -> Self {
        AudioReceiver::new()
    }
}

impl AudioReceiver {
    /// A receiver waiting for its first packet.
    pub fn new() -> Self {
        AudioReceiver {
            next: None,
            blocks: BTreeMap::new(),
            out: VecDeque::new(),
            coders: HashMap::new(),
            last_duration_us: DEFAULT_DURATION_US,
            last_block_data: MAX_BLOCK_DATA,
            stats: AudioReceiverStats::default(),
        }
    }

    /// Forgets the stream (a new session numbers from 0 again). Counters stay.
    pub fn reset(&mut self) {
        self.next = None;
        self.blocks.clear();
        self.out.clear();
    }

    /// The counters so far.
    pub fn stats(&self) -> AudioReceiverStats {
        self.stats
    }

    /// How long a packet that arrived waits for an earlier missing one: until the parity of
    /// its block can have arrived. A block's parity follows its last packet one by one behind
    /// the next block's packets, so for the first packet of a block of `k` that is up to
    /// `2k - 2` packet durations after the packet behind it, plus the jitter margin.
    pub fn hold(&self) -> Duration {
        let packets = (2 * self.last_block_data).saturating_sub(2).max(1) as u64;
        let span = Duration::from_micros(self.last_duration_us as u64 * packets);
        (span + AUDIO_JITTER_MARGIN).clamp(MIN_AUDIO_HOLD, MAX_AUDIO_HOLD)
    }

    /// Takes one data or parity body (already opened) that arrived at `now`. Refused bodies
    /// are counted, never fatal.
    pub fn push(&mut self, body: &AudioBody<'_>, now: Instant) -> Result<(), WireError> {
        let r = self.push_inner(body, now);
        if r.is_err() {
            self.stats.dropped += 1;
        }
        self.deliver();
        r
    }

    fn push_inner(&mut self, body: &AudioBody<'_>, now: Instant) -> Result<(), WireError> {
        let &AudioBody::Shard {
            block,
            k,
            m,
            index,
            shard,
        } = body
        else {
            return Err(WireError::UnknownKind(0));
        };
        let (k, m, index) = (k as usize, m as usize, index as usize);
        self.last_block_data = k;
        let next = *self.next.get_or_insert(block);
        if block + k as u64 <= next {
            self.stats.late += 1;
            return Ok(());
        }
        let window = (MAX_PENDING_BLOCKS * MAX_BLOCK_DATA) as u64;
        if block > next + window {
            // Far ahead: an outage longer than the window (or a peer that lies). Go on from
            // this block instead of holding anything towards it.
            self.jump_to(block);
        }
        if !self.blocks.contains_key(&block) && self.blocks.len() >= MAX_PENDING_BLOCKS {
            return Err(WireError::Limit("audio blocks pending"));
        }
        let b = self.blocks.entry(block).or_insert_with(|| Block::new(k, m));
        if b.k != k || b.m != m {
            return Err(WireError::Limit("audio block size changed"));
        }
        if b.shards[index].is_some() {
            self.stats.late += 1;
            return Ok(());
        }
        if index < k {
            let rec = AudioRecord::decode(shard)?;
            if b.parity_len.is_some_and(|l| shard.len() > l) {
                return Err(WireError::Limit("audio record longer than its parity"));
            }
            self.last_duration_us = if rec.duration_us == 0 {
                DEFAULT_DURATION_US
            } else {
                rec.duration_us
            };
        } else {
            if b.parity_len.is_some_and(|l| l != shard.len())
                || b.shards[..k]
                    .iter()
                    .flatten()
                    .any(|d| d.len() > shard.len())
            {
                return Err(WireError::Limit("audio parity length"));
            }
            b.parity_len = Some(shard.len());
        }
        b.shards[index] = Some(shard.to_vec());
        b.arrived[index] = Some(now);
        self.try_recover(block);
        Ok(())
    }

    /// Rebuilds the block's missing data shards once enough shards are there.
    fn try_recover(&mut self, start: u64) {
        let Some(b) = self.blocks.get_mut(&start) else {
            return;
        };
        let Some(len) = b.parity_len else {
            return;
        };
        let present = b.shards.iter().filter(|s| s.is_some()).count();
        let missing: Vec<usize> = (0..b.k).filter(|&i| b.shards[i].is_none()).collect();
        if missing.is_empty() || present < b.k {
            return;
        }
        let coder = self
            .coders
            .entry((b.k, b.m))
            .or_insert_with(|| ReedSolomon::new(b.k, b.m).expect("block limits fit GF(2^8)"));
        let mut shards: Vec<Option<Vec<u8>>> = b
            .shards
            .iter()
            .map(|s| {
                s.as_ref().map(|v| {
                    let mut v = v.clone();
                    v.resize(len, 0);
                    v
                })
            })
            .collect();
        if coder.reconstruct_data(&mut shards).is_err() {
            return;
        }
        for i in missing {
            let Some(s) = shards[i].take() else { continue };
            // A rebuilt record that does not parse means the block was inconsistent: leave
            // the packet missing (it is given up by the deadline).
            if AudioRecord::decode(&s).is_err() {
                self.stats.dropped += 1;
                continue;
            }
            b.shards[i] = Some(s);
            b.recovered[i] = true;
        }
    }

    /// Gives up everything before `seq` at once (an outage longer than the window).
    fn jump_to(&mut self, seq: u64) {
        let Some(next) = self.next else { return };
        if seq <= next {
            return;
        }
        let gap = seq - next;
        let max_gap = MAX_REPORTED_GAP.as_micros() as u64 / self.last_duration_us.max(1) as u64;
        self.report_lost(gap.min(max_gap));
        self.blocks.clear();
        self.next = Some(seq);
    }

    fn report_lost(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.lost += count;
        let count = count.min(u32::MAX as u64) as u32;
        let duration_us = count as u64 * self.last_duration_us as u64;
        match self.out.back_mut() {
            Some(AudioOutput::Lost {
                count: c,
                duration_us: d,
            }) => {
                *c = c.saturating_add(count);
                *d += duration_us;
            }
            _ => self.out.push_back(AudioOutput::Lost { count, duration_us }),
        }
    }

    /// The block holding `seq`, if one is known.
    fn block_of(&self, seq: u64) -> Option<(u64, &Block)> {
        self.blocks
            .range(..=seq)
            .next_back()
            .filter(|(s, b)| seq < **s + b.k as u64)
            .map(|(s, b)| (*s, b))
    }

    /// Hands out every packet that is next in order, and forgets blocks passed.
    fn deliver(&mut self) {
        let Some(mut next) = self.next else { return };
        while self.out.len() < MAX_READY {
            let Some((start, b)) = self.block_of(next) else {
                break;
            };
            let i = (next - start) as usize;
            let Some(shard) = b.shards[i].as_ref() else {
                break;
            };
            let recovered = b.recovered[i];
            let Ok(rec) = AudioRecord::decode(shard) else {
                break;
            };
            let packet = AudioPacket {
                seq: next,
                capture_us: rec.capture_us,
                duration_us: rec.duration_us,
                data: rec.data.to_vec(),
                recovered,
            };
            if recovered {
                self.stats.recovered += 1;
            } else {
                self.stats.received += 1;
            }
            self.out.push_back(AudioOutput::Packet(packet));
            next += 1;
        }
        self.next = Some(next);
        self.blocks.retain(|s, b| s + b.k as u64 > next);
    }

    /// When the packet missing at the head of the line is given up, if one is missing and a
    /// later one waits for it.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.waiting_since().map(|t| t + self.hold())
    }

    /// The earliest arrival of anything after the missing next packet.
    fn waiting_since(&self) -> Option<Instant> {
        let next = self.next?;
        self.blocks
            .iter()
            .flat_map(|(s, b)| {
                b.arrived.iter().enumerate().filter_map(move |(i, t)| {
                    // Parity shards count: they leave after their block's last data packet.
                    let after = i >= b.k || s + i as u64 > next;
                    t.filter(|_| after)
                })
            })
            .min()
    }

    /// Gives up the missing packets whose wait is over; call it when
    /// [`AudioReceiver::next_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(deadline) = self.next_timeout() {
            if now < deadline {
                break;
            }
            let Some(next) = self.next else { break };
            // Skip to the next packet that is there (or to the first known block beyond).
            let mut target = None;
            for (s, b) in self.blocks.range(..) {
                for i in 0..b.k {
                    let seq = s + i as u64;
                    if seq > next && b.shards[i].is_some() {
                        target = Some(target.map_or(seq, |t: u64| t.min(seq)));
                    }
                }
            }
            let target = target.unwrap_or_else(|| {
                self.blocks
                    .iter()
                    .map(|(s, b)| s + b.k as u64)
                    .max()
                    .unwrap_or(next + 1)
                    .max(next + 1)
            });
            self.report_lost(target - next);
            self.next = Some(target);
            self.deliver();
        }
    }

    /// The next packet or loss, in sequence order.
    pub fn poll(&mut self) -> Option<AudioOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::super::AudioSender;
    use super::*;

    /// Bodies of `n` 10 ms packets (blocks of 4, parity 2), with the data sequence number of
    /// each data body (`None` for parity).
    fn stream(n: usize) -> Vec<(Option<u64>, Vec<u8>)> {
        let mut s = AudioSender::new();
        let mut all = Vec::new();
        for i in 0..n {
            let mut out = Vec::new();
            let data = vec![i as u8; 60 + i % 100];
            s.push(i as u64 * 10_000, 10_000, &data, |_| 2, &mut out);
            for b in out {
                let seq = match AudioBody::decode(&b).unwrap() {
                    AudioBody::Shard {
                        block, k, index, ..
                    } if index < k => Some(block + index as u64),
                    _ => None,
                };
                all.push((seq, b));
            }
        }
        all
    }

    fn without(all: &[(Option<u64>, Vec<u8>)], lose: impl Fn(u64) -> bool) -> Vec<Vec<u8>> {
        all.iter()
            .filter(|(seq, _)| !seq.is_some_and(&lose))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The sequence numbers of the packets among `outs`, in order.
    fn played(outs: &[AudioOutput]) -> Vec<u64> {
        outs.iter()
            .filter_map(|o| match o {
                AudioOutput::Packet(p) => Some(p.seq),
                _ => None,
            })
            .collect()
    }

    fn run(bodies: &[Vec<u8>], rx: &mut AudioReceiver, t0: Instant) -> Vec<AudioOutput> {
        let mut outs = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let now = t0 + Duration::from_micros(i as u64 * 5_000);
            rx.handle_timeout(now);
            let body = AudioBody::decode(b).unwrap();
            let _ = rx.push(&body, now);
            while let Some(o) = rx.poll() {
                outs.push(o);
            }
        }
        rx.handle_timeout(t0 + Duration::from_secs(10));
        while let Some(o) = rx.poll() {
            outs.push(o);
        }
        outs
    }

    #[test]
    fn in_order_without_loss_and_rebuilt_within_parity() {
        let t0 = Instant::now();
        let all = stream(40);
        let mut rx = AudioReceiver::new();
        let outs = run(&without(&all, |_| false), &mut rx, t0);
        assert_eq!(outs.len(), 40);
        // Lose two data packets of each of the first eight blocks: parity rebuilds them.
        let lost = |s: u64| s < 32 && s.is_multiple_of(2);
        let mut rx = AudioReceiver::new();
        let outs = run(&without(&all, lost), &mut rx, t0);
        assert_eq!(outs.len(), 40);
        for (i, o) in outs.iter().enumerate() {
            let AudioOutput::Packet(p) = o else {
                panic!("lost {o:?}")
            };
            assert_eq!(p.seq, i as u64);
            assert_eq!(p.data, vec![i as u8; 60 + i % 100]);
            assert_eq!(p.recovered, lost(i as u64), "packet {i}");
        }
        assert_eq!(rx.stats().recovered, 16);
    }

    #[test]
    fn a_burst_longer_than_parity_is_given_up_and_later_packets_flow() {
        let t0 = Instant::now();
        let all = stream(20);
        // Block 1: lose three of its data packets (two parity cannot rebuild them).
        let mut rx = AudioReceiver::new();
        let outs = run(&without(&all, |s| (4..7).contains(&s)), &mut rx, t0);
        assert_eq!(
            outs[4],
            AudioOutput::Lost {
                count: 3,
                duration_us: 30_000
            }
        );
        let seqs = played(&outs);
        let want: Vec<u64> = (0..20).filter(|s| !(4..7).contains(s)).collect();
        assert_eq!(seqs, want);
        assert_eq!(rx.stats().lost, 3);
    }

    #[test]
    fn a_sequence_number_far_ahead_allocates_nothing_towards_it() {
        let t0 = Instant::now();
        let all = without(&stream(8), |_| false);
        let mut rx = AudioReceiver::new();
        run(&all[..6], &mut rx, t0);
        let mut far = Vec::new();
        AudioBody::Shard {
            block: u64::MAX - 100,
            k: 4,
            m: 2,
            index: 1,
            shard: &[0u8; 20][..14],
        }
        .encode(&mut far);
        let body = AudioBody::decode(&far).unwrap();
        rx.push(&body, t0).unwrap();
        assert!(rx.blocks.len() <= 1);
        let lost: u64 = std::iter::from_fn(|| rx.poll())
            .map(|o| match o {
                AudioOutput::Lost { count, duration_us } => {
                    assert!(duration_us <= MAX_REPORTED_GAP.as_micros() as u64);
                    count as u64
                }
                _ => 0,
            })
            .sum();
        assert!(lost > 0);
    }

    /// A burst of 20 datagrams in a row (50 ms of a 5 ms stream with its parity): more than
    /// the parity of a 40 ms block can repair. A loss model that plans all of a short block's
    /// parity gets 80 ms blocks, and every packet plays.
    #[test]
    fn a_burst_of_twenty_datagrams_is_rebuilt_when_the_plan_is_bursty() {
        let t0 = Instant::now();
        let mut s = AudioSender::new();
        let mut rx = AudioReceiver::new();
        let mut datagrams = 0;
        let mut outs = Vec::new();
        for i in 0..96u64 {
            let now = t0 + Duration::from_micros(i * 5_000);
            rx.handle_timeout(now);
            let mut bodies = Vec::new();
            s.push(i * 5_000, 5_000, &[i as u8; 80], |k| k, &mut bodies);
            for b in bodies {
                datagrams += 1;
                if (40..60).contains(&datagrams) {
                    continue;
                }
                rx.push(&AudioBody::decode(&b).unwrap(), now).unwrap();
            }
            outs.extend(std::iter::from_fn(|| rx.poll()));
        }
        rx.handle_timeout(t0 + Duration::from_secs(10));
        outs.extend(std::iter::from_fn(|| rx.poll()));
        assert_eq!(
            played(&outs),
            (0..96).collect::<Vec<u64>>(),
            "{:?}",
            rx.stats()
        );
        assert!(rx.stats().recovered >= 9, "{:?}", rx.stats());
    }
}
