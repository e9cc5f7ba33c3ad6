//! Forward error correction: the [`FecCoder`] seam and the Reed-Solomon GF(2^8) coder, plus the
//! block layout that splits a frame's data shards into FEC blocks.
//!
//! A frame of `n` data shards is cut into `ceil(n / MAX_DATA_SHARDS_PER_BLOCK)` blocks whose
//! sizes differ by at most one shard; each block gets its own parity. Both ends compute the
//! layout from the frame length, shard size and block count alone, so no per-block table
//! travels on the wire. This module never allocates per shard: coders are cached per `(k, m)`.

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::wire::FEC_SCHEME_RS8;

/// Largest total of data + parity shards in one GF(2^8) block.
pub const MAX_SHARDS_PER_BLOCK: usize = 256;

/// Data shards per block before a frame is split into several blocks. Larger blocks survive
/// random loss better for the same parity share (at 10 % loss and 20 % FEC a 64-shard block
/// fails 2 % of the time, a 128-shard block 0.3 %), but the encoding cost per data shard grows
/// with `m`, so the host path would miss its per-datagram budget beyond this.
pub const MAX_DATA_SHARDS_PER_BLOCK: usize = 128;

/// Parity shards per block, at least, whenever FEC is on: one parity shard cannot repair the
/// common case of two losses in a small frame.
pub const MIN_PARITY: usize = 2;

/// Errors from a coder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FecError {
    /// `k`/`m` outside what the scheme supports.
    BadParameters,
    /// Fewer than `k` shards present: the block cannot be rebuilt.
    TooFewShards,
    /// Shards of unequal length or an internal coder error.
    Coder,
}

impl std::fmt::Display for FecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FecError::BadParameters => write!(f, "FEC parameters out of range"),
            FecError::TooFewShards => write!(f, "too few shards to rebuild the block"),
            FecError::Coder => write!(f, "FEC coder error"),
        }
    }
}

impl std::error::Error for FecError {}

/// An erasure code over equal-sized shards. The seam lets a second scheme (e.g. GF(2^16) for
/// one-block jumbo frames) sit beside Reed-Solomon GF(2^8).
pub trait FecCoder: Send {
    /// Wire identifier of the scheme.
    fn scheme(&self) -> u8;
    /// Largest `k + m` per block.
    fn max_shards(&self) -> usize;
    /// Computes `parity.len()` parity shards from `data`.
    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError>;
    /// Rebuilds the missing data shards in place. `shards` holds all `k + m` shard buffers,
    /// `present[i]` says whether shard `i` arrived. Parity shards are not rebuilt.
    fn reconstruct(
        &mut self,
        k: usize,
        shards: &mut [&mut [u8]],
        present: &[bool],
    ) -> Result<(), FecError>;
}

/// Parity shards for a block of `k` data shards at `percent` FEC: `ceil(k · percent / 100)`,
/// at least [`MIN_PARITY`] when FEC is on, and never more than the block can hold.
pub fn parity_for(k: usize, percent: u8) -> usize {
    if percent == 0 || k == 0 {
        return 0;
    }
    let m = (k as u128 * percent as u128).div_ceil(100);
    let m = usize::try_from(m).unwrap_or(usize::MAX).max(MIN_PARITY);
    m.min(MAX_SHARDS_PER_BLOCK.saturating_sub(k))
}

/// How a frame's data shards fall into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLayout {
    /// Data shards in the frame.
    pub data_shards: usize,
    /// Blocks in the frame.
    pub blocks: usize,
}

impl BlockLayout {
    /// The layout the host uses for `data_shards` shards.
    pub fn for_shards(data_shards: usize) -> Self {
        BlockLayout {
            data_shards,
            blocks: data_shards.div_ceil(MAX_DATA_SHARDS_PER_BLOCK).max(1),
        }
    }

    /// A layout received from the wire, checked: every block needs at least one data shard and
    /// none may exceed the largest block any coder supports.
    pub fn checked(data_shards: usize, blocks: usize) -> Option<Self> {
        if blocks == 0 || data_shards < blocks {
            return None;
        }
        let l = BlockLayout {
            data_shards,
            blocks,
        };
        if l.data_in_block(0) >= MAX_SHARDS_PER_BLOCK {
            return None;
        }
        Some(l)
    }

    /// Data shards in block `b` (the first `n % blocks` blocks carry one extra).
    pub fn data_in_block(&self, b: usize) -> usize {
        let base = self.data_shards / self.blocks;
        base + usize::from(b < self.data_shards % self.blocks)
    }

    /// Index of block `b`'s first data shard within the frame.
    pub fn first_shard(&self, b: usize) -> usize {
        let base = self.data_shards / self.blocks;
        b * base + b.min(self.data_shards % self.blocks)
    }
}

/// Reed-Solomon over GF(2^8) (`reed-solomon-erasure`, SIMD-accelerated), with a small cache of
/// coders per `(k, m)` since building one inverts a matrix.
pub struct ReedSolomon8 {
    cache: Vec<((usize, usize), ReedSolomon)>,
}

/// Coders kept per `ReedSolomon8`. Frames of one stream use few distinct `(k, m)` pairs.
const CODER_CACHE: usize = 32;

impl Default for ReedSolomon8 {
    fn default() -> Self {
        Self::new()
    }
}

impl ReedSolomon8 {
    pub fn new() -> Self {
        ReedSolomon8 { cache: Vec::new() }
    }

    fn coder(&mut self, k: usize, m: usize) -> Result<&ReedSolomon, FecError> {
        if k == 0 || m == 0 || k + m > MAX_SHARDS_PER_BLOCK {
            return Err(FecError::BadParameters);
        }
        if let Some(pos) = self.cache.iter().position(|(km, _)| *km == (k, m)) {
            // Move to the front so that the least recently used coder is evicted last.
            if pos != 0 {
                let e = self.cache.remove(pos);
                self.cache.insert(0, e);
            }
        } else {
            let rs = ReedSolomon::new(k, m).map_err(|_| FecError::BadParameters)?;
            if self.cache.len() == CODER_CACHE {
                self.cache.pop();
            }
            self.cache.insert(0, ((k, m), rs));
        }
        Ok(&self.cache[0].1)
    }
}

impl FecCoder for ReedSolomon8 {
    fn scheme(&self) -> u8 {
        FEC_SCHEME_RS8
    }

    fn max_shards(&self) -> usize {
        MAX_SHARDS_PER_BLOCK
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        let rs = self.coder(data.len(), parity.len())?;
        rs.encode_sep(data, parity).map_err(|_| FecError::Coder)
    }

    fn reconstruct(
        &mut self,
        k: usize,
        shards: &mut [&mut [u8]],
        present: &[bool],
    ) -> Result<(), FecError> {
        if shards.len() != present.len() || k >= shards.len() {
            return Err(FecError::BadParameters);
        }
        if present.iter().filter(|p| **p).count() < k {
            return Err(FecError::TooFewShards);
        }
        let m = shards.len() - k;
        let rs = self.coder(k, m)?;
        let mut view: Vec<(&mut [u8], bool)> = shards
            .iter_mut()
            .zip(present)
            .map(|(s, p)| (&mut **s, *p))
            .collect();
        rs.reconstruct_data(&mut view).map_err(|_| FecError::Coder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_rule() {
        assert_eq!(parity_for(1, 20), 2);
        assert_eq!(parity_for(10, 20), 2);
        assert_eq!(parity_for(11, 20), 3);
        assert_eq!(parity_for(64, 20), 13);
        assert_eq!(parity_for(128, 20), 26);
        assert_eq!(parity_for(128, 0), 0);
        assert_eq!(parity_for(128, 100), 128);
        assert_eq!(parity_for(200, 100), 56);
    }

    #[test]
    fn layout_is_balanced_and_complete() {
        for n in 1..2000 {
            let l = BlockLayout::for_shards(n);
            let mut total = 0;
            for b in 0..l.blocks {
                let k = l.data_in_block(b);
                assert!((1..=MAX_DATA_SHARDS_PER_BLOCK).contains(&k));
                assert_eq!(l.first_shard(b), total);
                total += k;
            }
            assert_eq!(total, n);
            assert_eq!(BlockLayout::checked(n, l.blocks), Some(l));
        }
        assert_eq!(BlockLayout::checked(3, 4), None);
        assert_eq!(BlockLayout::checked(3, 0), None);
        assert_eq!(BlockLayout::checked(1000, 1), None);
    }

    #[test]
    fn rebuilds_missing_data() {
        let mut rs = ReedSolomon8::new();
        let k = 5;
        let m = 3;
        let data: Vec<Vec<u8>> = (0..k).map(|i| vec![i as u8 * 7 + 1; 64]).collect();
        let mut parity = vec![vec![0u8; 64]; m];
        {
            let d: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
            let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
            rs.encode(&d, &mut p).unwrap();
        }
        let mut all: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
        let present = [false, true, false, true, false, true, true, true];
        for (s, p) in all.iter_mut().zip(present) {
            if !p {
                s.fill(0xee);
            }
        }
        let mut view: Vec<&mut [u8]> = all.iter_mut().map(|v| v.as_mut_slice()).collect();
        rs.reconstruct(k, &mut view, &present).unwrap();
        for i in 0..k {
            assert_eq!(all[i], data[i]);
        }
        let mut view: Vec<&mut [u8]> = all.iter_mut().map(|v| v.as_mut_slice()).collect();
        let too_few = [false, false, false, true, false, true, true, true];
        assert_eq!(
            rs.reconstruct(k, &mut view, &too_few),
            Err(FecError::TooFewShards)
        );
    }
}
