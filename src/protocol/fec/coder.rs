//! Forward error correction: the [`FecCoder`] seam and the Reed-Solomon GF(2^8) coder, plus the
//! block layout that splits a frame's data shards into FEC blocks.
//!
//! A frame of `n` data shards is cut into `ceil(n / MAX_DATA_SHARDS_PER_BLOCK)` blocks whose
//! sizes differ by at most one shard; each block gets its own parity. Both ends compute the
//! layout from the frame length, shard size and block count alone, so no per-block table
//! travels on the wire. This module never allocates per shard: coders are cached per `(k, m)`.

use reed_solomon_erasure::galois_8::{self, ReedSolomon};

use crate::protocol::wire::FEC_SCHEME_RS8;

/// Largest total of data + parity shards in one GF(2^8) block.
pub(crate) const MAX_SHARDS_PER_BLOCK: usize = 256;

/// Data shards per block before a frame is split into several blocks. Larger blocks survive
/// random loss better for the same parity share (at 10 % loss and 20 % FEC a 64-shard block
/// fails 2 % of the time, a 128-shard block 0.3 %), but the encoding cost per data shard grows
/// with `m`, so the host path would miss its per-datagram budget beyond this.
pub(crate) const MAX_DATA_SHARDS_PER_BLOCK: usize = 128;

/// Parity shards per block, at least, whenever FEC is on: one parity shard cannot repair the
/// common case of two losses in a small frame.
pub(crate) const MIN_PARITY: usize = 2;

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
    /// Computes parity shards `first_row … first_row + out.len() − 1` of `data` (shard indices
    /// `k + first_row …` of the block). Repair uses it to send rows beyond a block's original
    /// `m`: new parity, never copies. A scheme whose rows for `(k, m)` are not a prefix of
    /// those for `(k, m' > m)` cannot repair and keeps this default.
    fn encode_rows(
        &mut self,
        data: &[&[u8]],
        first_row: usize,
        out: &mut [&mut [u8]],
    ) -> Result<(), FecError> {
        if first_row == 0 {
            self.encode(data, out)
        } else {
            Err(FecError::BadParameters)
        }
    }
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

/// Parity shards per block size: entry `k` is the `m` a block of `k` data shards gets. The
/// packetizer takes one per frame, so blocks of different `k` get different `m` (the
/// target-driven controller fills it from the loss model; fixed and adaptive shares are
/// [`ParityTable::from_percent`]). Copying it is 258 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ParityTable {
    m: [u8; MAX_SHARDS_PER_BLOCK + 1],
    /// Frames of one block of at most this many data shards send part of their parity behind
    /// the next frame ([`trailing_parity`]); 0: none.
    trail_max_k: u8,
    /// No frame pairs ([`ParityTable::pairs`]), whatever `trail_max_k` says.
    no_pairs: bool,
}

/// Largest block whose parity may trail behind the next frame: a small frame cannot protect
/// itself against a burst longer than its parity, a large one (720p at 20 Mbit/s, ≥ 30 data
/// shards) can, and holding its rows would only delay their repair.
pub(crate) const MAX_TRAILING_K: usize = 16;

/// Largest paired frame ([`ParityTable::pairs`]): a 720p frame at 20 Mbit/s and 60 fps has
/// ~35 data shards and twice that at its largest P-frames; a window of two such frames and the
/// newer one's rows stays within one Reed-Solomon block of [`MAX_SHARDS_PER_BLOCK`] shards
/// (80 + 80 + 80 < 256), and its solve within the reassembler's bounds. Keyframes are larger
/// and keep their own rows.
pub(crate) const MAX_PAIRED_K: usize = 80;

/// Whether a one-block frame of `k` data shards has a paired frame's size (too large to trail,
/// at most [`MAX_PAIRED_K`]): the host pairs only such frames, the client takes paired rows
/// only on them.
pub(crate) fn pairable(k: usize) -> bool {
    k > MAX_TRAILING_K && k <= MAX_PAIRED_K
}

/// How many of the `m` parity rows of a one-block frame of `k` data shards trail behind the
/// next frame's datagrams: `min(m, k + 1)`; the rest (`m − k − 1`, when positive) follow the
/// frame's own data. A burst that takes the frame's data whole then leaves `k + 1` rows on
/// their way, one to spare; a lossless frame still completes on its last data shard, and a
/// lossy one is rebuilt one frame interval later, far inside a round trip. 0 for `m < 2` or
/// `k > MAX_TRAILING_K`.
pub(crate) fn trailing_parity(k: usize, m: usize) -> usize {
    if m < 2 || k == 0 || k > MAX_TRAILING_K {
        return 0;
    }
    m.min(k + 1)
}

impl std::fmt::Debug for ParityTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pick: Vec<(usize, u8)> = [1, 2, 4, 8, 16, 32, 64, 78, 128]
            .iter()
            .map(|&k| (k, self.m[k]))
            .collect();
        f.debug_struct("ParityTable").field("k_m", &pick).finish()
    }
}

impl ParityTable {
    /// Every block size at `percent` FEC ([`parity_for`]).
    pub fn from_percent(percent: u8) -> Self {
        let mut m = [0u8; MAX_SHARDS_PER_BLOCK + 1];
        for (k, v) in m.iter_mut().enumerate() {
            *v = parity_for(k, percent) as u8;
        }
        ParityTable {
            m,
            trail_max_k: 0,
            no_pairs: false,
        }
    }

    /// Frames of one block of at most `k` data shards (capped at [`MAX_TRAILING_K`]) send
    /// part of their parity behind the next frame; 0 turns it off.
    pub(crate) fn set_trailing(&mut self, k: usize) {
        self.trail_max_k = k.min(MAX_TRAILING_K) as u8;
    }

    /// Lets large frames pair where small ones trail (the default), or not: while congestion
    /// control paces frames evenly at a bottleneck, a paired frame's rows, which leave in one
    /// run behind its data, would stand in the queue as a burst.
    pub(crate) fn set_pairing(&mut self, on: bool) {
        self.no_pairs = !on;
    }

    /// Whether a one-block frame of `k` data shards sends its parity behind the next frame
    /// (when it has at least two rows).
    pub fn trails(&self, k: usize) -> bool {
        k >= 1 && k <= self.trail_max_k as usize
    }

    /// Whether a frame of `data_shards` shards (in `blocks` blocks) is a *paired* frame: on a
    /// path where small frames trail (PROTOCOL §9.4), one block of more than
    /// [`MAX_TRAILING_K`] and at most [`MAX_PAIRED_K`] data shards, with parity. Its rows go right behind its data as window
    /// rows over it and the paired frame before it.
    pub fn pairs(&self, data_shards: usize, blocks: usize) -> bool {
        blocks == 1
            && !self.no_pairs
            && self.trail_max_k > 0
            && pairable(data_shards)
            && self.parity(data_shards) > 0
    }

    /// Parity rows of a frame of `data_shards` shards (in `blocks` blocks) that trail behind
    /// the next frame (see [`trailing_parity`]).
    pub fn trailing(&self, data_shards: usize, blocks: usize) -> usize {
        if blocks != 1 || data_shards > self.trail_max_k as usize {
            return 0;
        }
        trailing_parity(data_shards, self.parity(data_shards))
    }

    /// Parity shards for a block of `k` data shards (0 for `k` = 0 or beyond GF(2^8)).
    pub fn parity(&self, k: usize) -> usize {
        self.m.get(k).map_or(0, |&m| m as usize)
    }

    /// Sets the parity of block size `k`, clamped so that `k + m ≤ 256`.
    pub fn set(&mut self, k: usize, m: usize) {
        if let Some(v) = self.m.get_mut(k) {
            *v = m.min(MAX_SHARDS_PER_BLOCK.saturating_sub(k)) as u8;
        }
    }
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

/// Reed-Solomon over GF(2^8), byte-compatible with `reed-solomon-erasure` (scheme 1 on the
/// wire), with the parity matrix derived in closed form instead of by matrix inversion.
///
/// The crate's encoding matrix is `V · V_top⁻¹`, with `V[r][c] = r^c` the Vandermonde matrix of
/// the `k + m` points `0, 1, …, k + m − 1` and `V_top` its first `k` rows. Row `x` of that
/// product is the vector `c` with `Σ_j c_j · j^col = x^col` for every `col < k`: the Lagrange
/// basis over the nodes `0 … k − 1` evaluated at `x`,
/// `A[x][j] = L_j(x) = Π_{l≠j} (x − l) / (j − l)` (subtraction is XOR). Two consequences:
///
/// - a row depends on `k` and its own index only, so the rows of `(k, m)` are a prefix of the
///   rows of `(k, m')` for every `m' > m` (tested against the crate). One table per `k`
///   serves every `m`, and repair shards (rows `m … m + e − 1` of an already-sent block) are
///   just further rows of it;
/// - a row costs `O(k)` once the `k` denominators `Π_{l≠j} (j − l)` are known (`O(k²)` once
///   per `k`): a `(128, 32)` table takes microseconds where the crate's constructor inverts a
///   `128 × 128` matrix (milliseconds). No frame waits for a coder when `(k, m)` changes.
///
/// Encoding multiplies the rows with the SIMD `galois_8` slice kernels (the same ones the crate
/// uses). Recovery does not invert a `k × k` decode matrix per loss pattern either: since the
/// code is systematic (parity = `A · data`), `e` missing data shards are solved from `e` present
/// parity shards with an `e × e` system: subtract the present data's share from each chosen
/// parity shard (the syndrome), then multiply by the inverse of `A[P][M]` (chosen parity rows ×
/// missing data columns). That costs `O(e³ + e·k·shard_len)` instead of `O(k³ + …)`. Should that
/// submatrix ever be singular (it is not for an MDS code), the crate's own decoder rebuilds the
/// block.
pub struct ReedSolomon8 {
    /// Row tables per `k`, most recently used first.
    cache: Vec<RowTable>,
    /// Reused between calls: missing data indices.
    missing: Vec<usize>,
    /// Reused between calls: the parity shards chosen to solve for the missing data.
    chosen: Vec<usize>,
    /// Reused between calls: the `e × 2e` augmented matrix of the Gauss-Jordan inversion.
    aug: Vec<u8>,
    /// Reused between calls: one syndrome per chosen parity shard, `e × shard_len` bytes.
    syndromes: Vec<u8>,
    /// Times the fast path found a singular system and fell back to the crate's decoder.
    fallbacks: u64,
}

/// The parity rows of the encoding matrix for one `k`, built as far as used so far.
struct RowTable {
    k: usize,
    /// `1 / Π_{l≠j} (j ⊕ l)` for every node `j < k`.
    denom_inv: Vec<u8>,
    /// Parity rows `0 … rows − 1` (row `p` is matrix row `k + p`), `k` bytes each.
    rows: Vec<u8>,
}

impl RowTable {
    fn new(k: usize) -> Self {
        let denom_inv = (0..k)
            .map(|j| {
                let d = (0..k)
                    .filter(|&l| l != j)
                    .fold(1u8, |acc, l| galois_8::mul(acc, (j ^ l) as u8));
                galois_8::div(1, d)
            })
            .collect();
        RowTable {
            k,
            denom_inv,
            rows: Vec::new(),
        }
    }

    fn built(&self) -> usize {
        self.rows.len() / self.k.max(1)
    }

    /// Makes sure parity rows `0 … m − 1` exist (`k + m ≤ 256` checked by the caller).
    fn ensure(&mut self, m: usize) {
        let k = self.k;
        for p in self.built()..m {
            let x = k + p;
            // N(x) = Π_l (x ⊕ l); x ≥ k > l, so no factor is zero.
            let n = (0..k).fold(1u8, |acc, l| galois_8::mul(acc, (x ^ l) as u8));
            for j in 0..k {
                let lj = galois_8::mul(galois_8::div(n, (x ^ j) as u8), self.denom_inv[j]);
                self.rows.push(lj);
            }
        }
    }

    fn row(&self, p: usize) -> &[u8] {
        &self.rows[p * self.k..(p + 1) * self.k]
    }
}

/// The parity part (`m × k`, row-major) of the encoding matrix of `(k, m)`, as
/// [`ReedSolomon8`] derives it. Exposed for tests and benchmarks (coder build time).
pub fn parity_rows(k: usize, m: usize) -> Result<Vec<u8>, FecError> {
    if k == 0 || k + m > MAX_SHARDS_PER_BLOCK {
        return Err(FecError::BadParameters);
    }
    let mut t = RowTable::new(k);
    t.ensure(m);
    Ok(t.rows)
}

/// Row tables kept per `ReedSolomon8`. Each holds at most `k · (256 − k) ≤ 16 KiB`, so the
/// cache stays under 1 MiB even when a hostile peer cycles through every `k`.
const CODER_CACHE: usize = 64;

impl Default for ReedSolomon8 {
    fn default() -> Self {
        Self::new()
    }
}

impl ReedSolomon8 {
    /// An empty coder; matrices are built on first use per `(k, m)`.
    pub fn new() -> Self {
        ReedSolomon8 {
            cache: Vec::new(),
            missing: Vec::new(),
            chosen: Vec::new(),
            aug: Vec::new(),
            syndromes: Vec::new(),
            fallbacks: 0,
        }
    }

    /// Times recovery fell back to the crate's full `k × k` decoder because the `e × e` system
    /// was singular (never expected for this code).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks
    }

    /// Builds the rows for `(k, m)` ahead of use (e.g. for the block sizes a stream is about to
    /// use); a later encode or recovery with any `m' ≤ m` for this `k` does no matrix work.
    pub fn prepare(&mut self, k: usize, m: usize) -> Result<(), FecError> {
        self.table(k, m).map(|_| ())
    }

    /// Moves the row table for `k` to the front of the cache (building it if needed) and makes
    /// sure it holds at least `m` parity rows.
    fn table(&mut self, k: usize, m: usize) -> Result<&mut RowTable, FecError> {
        if k == 0 || k + m > MAX_SHARDS_PER_BLOCK {
            return Err(FecError::BadParameters);
        }
        if let Some(pos) = self.cache.iter().position(|e| e.k == k) {
            // Move to the front so that the least recently used table is evicted first.
            if pos != 0 {
                let e = self.cache.remove(pos);
                self.cache.insert(0, e);
            }
        } else {
            if self.cache.len() == CODER_CACHE {
                self.cache.pop();
            }
            self.cache.insert(0, RowTable::new(k));
        }
        let t = &mut self.cache[0];
        t.ensure(m);
        Ok(t)
    }
}

/// The crate's own recovery (inverts a `k × k` matrix), the fallback of the fast path.
fn reconstruct_with_crate(
    k: usize,
    shards: &mut [&mut [u8]],
    present: &[bool],
) -> Result<(), FecError> {
    let rs = ReedSolomon::new(k, shards.len() - k).map_err(|_| FecError::BadParameters)?;
    let mut view: Vec<(&mut [u8], bool)> = shards
        .iter_mut()
        .zip(present)
        .map(|(s, p)| (&mut **s, *p))
        .collect();
    rs.reconstruct_data(&mut view).map_err(|_| FecError::Coder)
}

/// Inverts the `e × e` matrix held in the left half of `aug` (`e` rows of `2e` bytes; the right
/// half is overwritten) by Gauss-Jordan elimination over GF(2^8). On success the right half
/// holds the inverse. Returns `false` if the matrix is singular.
fn invert_in_place(aug: &mut [u8], e: usize) -> bool {
    let w = 2 * e;
    for r in 0..e {
        let row = &mut aug[r * w..(r + 1) * w];
        row[e..].fill(0);
        row[e + r] = 1;
    }
    for col in 0..e {
        let Some(pivot) = (col..e).find(|&r| aug[r * w + col] != 0) else {
            return false;
        };
        if pivot != col {
            for c in 0..w {
                aug.swap(pivot * w + c, col * w + c);
            }
        }
        // Columns left of `col` are already zero in the pivot row: only `col..2e` changes.
        let scale = galois_8::div(1, aug[col * w + col]);
        for v in &mut aug[col * w + col..(col + 1) * w] {
            *v = galois_8::mul(*v, scale);
        }
        for r in 0..e {
            let f = aug[r * w + col];
            if r == col || f == 0 {
                continue;
            }
            let (src, dst) = if col < r {
                let (lo, hi) = aug.split_at_mut(r * w);
                (&lo[col * w..(col + 1) * w], &mut hi[..w])
            } else {
                let (lo, hi) = aug.split_at_mut(col * w);
                (&hi[..w], &mut lo[r * w..(r + 1) * w])
            };
            galois_8::mul_slice_xor(f, &src[col..], &mut dst[col..]);
        }
    }
    true
}

/// Shard lengths for encoding: every shard non-empty and of one length.
fn check_lengths(data: &[&[u8]], out: &[&mut [u8]]) -> Result<(), FecError> {
    let len = data
        .first()
        .map(|d| d.len())
        .ok_or(FecError::BadParameters)?;
    if len == 0 || data.iter().any(|d| d.len() != len) || out.iter().any(|p| p.len() != len) {
        return Err(FecError::Coder);
    }
    Ok(())
}

impl FecCoder for ReedSolomon8 {
    fn scheme(&self) -> u8 {
        FEC_SCHEME_RS8
    }

    fn max_shards(&self) -> usize {
        MAX_SHARDS_PER_BLOCK
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        if parity.is_empty() {
            return Err(FecError::BadParameters);
        }
        self.encode_rows(data, 0, parity)
    }

    fn encode_rows(
        &mut self,
        data: &[&[u8]],
        first_row: usize,
        out: &mut [&mut [u8]],
    ) -> Result<(), FecError> {
        let k = data.len();
        let end = first_row
            .checked_add(out.len())
            .ok_or(FecError::BadParameters)?;
        let t = self.table(k, end)?;
        check_lengths(data, out)?;
        // Data shard outer, parity row inner: each data shard is read from memory once.
        for (j, d) in data.iter().enumerate() {
            for (r, o) in out.iter_mut().enumerate() {
                let c = t.rows[(first_row + r) * k + j];
                if j == 0 {
                    galois_8::mul_slice(c, d, o);
                } else if c != 0 {
                    galois_8::mul_slice_xor(c, d, o);
                }
            }
        }
        Ok(())
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
        if k + m > MAX_SHARDS_PER_BLOCK {
            return Err(FecError::BadParameters);
        }

        // The same checks as the crate's decoder: present shards non-empty and of one length,
        // missing data shards of that length too (missing parity buffers are not looked at).
        let mut len = None;
        for (s, _) in shards.iter().zip(present).filter(|(_, p)| **p) {
            match len {
                None if s.is_empty() => return Err(FecError::Coder),
                None => len = Some(s.len()),
                Some(l) if l != s.len() => return Err(FecError::Coder),
                Some(_) => {}
            }
        }
        let Some(len) = len else {
            return Err(FecError::TooFewShards);
        };
        self.missing.clear();
        self.missing.extend((0..k).filter(|&i| !present[i]));
        let e = self.missing.len();
        if e == 0 {
            return Ok(());
        }
        if self.missing.iter().any(|&i| shards[i].len() != len) {
            return Err(FecError::Coder);
        }
        // The first `e` present parity shards: the same ones the crate's decoder would use, so
        // that even inconsistent input gives the same bytes as the crate.
        self.chosen.clear();
        self.chosen
            .extend((k..k + m).filter(|&i| present[i]).take(e));
        debug_assert_eq!(self.chosen.len(), e);
        let rows_needed = self.chosen.last().map_or(0, |&p| p - k + 1);
        self.table(k, rows_needed)?;

        let ReedSolomon8 {
            cache,
            missing,
            chosen,
            aug,
            syndromes,
            fallbacks,
        } = self;
        let t = &cache[0];

        // A[P][M] beside room for its inverse.
        aug.clear();
        aug.resize(2 * e * e, 0);
        for (r, &p) in chosen.iter().enumerate() {
            let row = t.row(p - k);
            for (c, &j) in missing.iter().enumerate() {
                aug[r * 2 * e + c] = row[j];
            }
        }
        if !invert_in_place(aug, e) {
            *fallbacks += 1;
            return reconstruct_with_crate(k, shards, present);
        }

        // Syndromes: s_p = parity_p − Σ_{j present} A[p][j] · data_j (subtraction is XOR).
        syndromes.clear();
        syndromes.resize(e * len, 0);
        for (s, &p) in syndromes.chunks_exact_mut(len).zip(chosen.iter()) {
            s.copy_from_slice(&shards[p][..]);
        }
        for j in (0..k).filter(|&j| present[j]) {
            let data = &shards[j][..];
            for (s, &p) in syndromes.chunks_exact_mut(len).zip(chosen.iter()) {
                let c = t.row(p - k)[j];
                if c != 0 {
                    galois_8::mul_slice_xor(c, data, s);
                }
            }
        }

        // x_i = Σ_r inv[i][r] · s_r.
        for (i, &dst) in missing.iter().enumerate() {
            let inv_row = &aug[i * 2 * e + e..(i + 1) * 2 * e];
            let out = &mut shards[dst][..];
            let mut written = false;
            for (&c, s) in inv_row.iter().zip(syndromes.chunks_exact(len)) {
                if c == 0 {
                    continue;
                }
                if written {
                    galois_8::mul_slice_xor(c, s, out);
                } else {
                    galois_8::mul_slice(c, s, out);
                    written = true;
                }
            }
            if !written {
                // An invertible matrix has no zero row; kept for robustness.
                out.fill(0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
