//! Parity shared over a window of consecutive frames (a streaming code), and the joint decoder
//! that combines every row touching a set of frames.
//!
//! A *window row* of frame `n` over a window of `w` frames is a Reed-Solomon parity row of the
//! block made of the data shards of frames `n − w + 1 … n`, oldest first, each shard
//! zero-padded to the longest shard of the window: row `r` is row `r` of
//! [`parity_rows`]`(Σk, ·)`, the row [`ReedSolomon8`](super::coder::ReedSolomon8) computes for
//! that block. A frame's own rows are the window of one frame. In an MDS code every square
//! submatrix of the parity part is invertible, so once the other frames of a window are known,
//! its rows act on the remaining frame as that frame's own rows would: a row shared by three
//! frames protects each of them, which is where a streaming code saves redundancy against
//! bursts that hit one frame at a time.
//!
//! [`Equations`] takes rows as linear equations over the data shards still unknown (known
//! shards folded into the right-hand side by [`Equations::push_row`]) and solves for every
//! unknown they determine, whichever frame's rows determine it.
//!
//! Owns the arithmetic only: it never parses a datagram, never decides which rows a frame sends
//! and never keeps shards beyond one solve. Bounded: at most [`MAX_SHARDS_PER_BLOCK`] unknowns
//! and equations a solve.

use reed_solomon_erasure::galois_8;

use super::coder::{FecError, MAX_SHARDS_PER_BLOCK, parity_rows};

/// One column of a window row: a data shard already known (its bytes, unpadded) or the index
/// of an unknown of the [`Equations`] it goes into.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    /// A data shard that arrived or was rebuilt.
    Known(&'a [u8]),
    /// A data shard still missing: unknown number `i`.
    Unknown(usize),
}

/// Computes rows `first_row … first_row + out.len() − 1` of the window made of `frames` (each
/// a frame's data shards, oldest frame first). Every output shard must be at least as long as
/// the longest data shard; shorter data shards count as zero-padded.
pub fn encode_window_rows(
    frames: &[&[&[u8]]],
    first_row: usize,
    out: &mut [&mut [u8]],
) -> Result<(), FecError> {
    let k: usize = frames.iter().map(|f| f.len()).sum();
    let rows = first_row + out.len();
    let coeffs = parity_rows(k, rows)?;
    let longest = frames.iter().flat_map(|f| f.iter()).map(|s| s.len()).max();
    if out.iter().any(|o| Some(o.len()) < longest) {
        return Err(FecError::Coder);
    }
    for (r, o) in out.iter_mut().enumerate() {
        o.fill(0);
        let row = &coeffs[(first_row + r) * k..(first_row + r + 1) * k];
        for (c, shard) in frames.iter().flat_map(|f| f.iter()).enumerate() {
            xor_mul(row[c], shard, &mut o[..shard.len()]);
        }
    }
    Ok(())
}

/// `out ^= c · input` over GF(2^8) (the crate's SIMD routine wants neither slice empty).
fn xor_mul(c: u8, input: &[u8], out: &mut [u8]) {
    if c != 0 && !input.is_empty() {
        galois_8::mul_slice_xor(c, input, out);
    }
}

/// The rows of the window codes one solve (or one simulation) uses: [`parity_rows`] per
/// window size, computed once and grown when a later row is asked for (row `r` of a code does
/// not depend on how many rows were computed). Building a matrix costs `O(k² · rows)`; a solve
/// that rebuilt it for every equation spent more on that than on the elimination.
#[derive(Debug, Default)]
pub struct RowTables(Vec<(usize, usize, Vec<u8>)>);

impl RowTables {
    /// Row `r` of the code over `k` data shards (`k` coefficients).
    pub fn row(&mut self, k: usize, r: usize) -> Result<&[u8], FecError> {
        let i = match self.0.iter().position(|t| t.0 == k) {
            Some(i) => i,
            None => {
                self.0.push((k, 0, Vec::new()));
                self.0.len() - 1
            }
        };
        let t = &mut self.0[i];
        if r >= t.1 {
            let rows = (r + 1).max(2 * t.1);
            t.2 = parity_rows(k, rows)?;
            t.1 = rows;
        }
        Ok(&t.2[r * k..(r + 1) * k])
    }
}

/// Linear equations over GF(2^8) whose unknowns are missing data shards of `len` bytes.
#[derive(Debug, Clone)]
pub struct Equations {
    unknowns: usize,
    len: usize,
    /// Each equation: `unknowns` coefficients, then `len` bytes of right-hand side.
    rows: Vec<Vec<u8>>,
}

impl Equations {
    /// No equations yet over `unknowns` shards of `len` bytes (`len` 0: coefficients only,
    /// to ask which unknowns a set of rows would determine).
    pub fn new(unknowns: usize, len: usize) -> Result<Self, FecError> {
        if unknowns > MAX_SHARDS_PER_BLOCK || len > u16::MAX as usize {
            return Err(FecError::BadParameters);
        }
        Ok(Equations {
            unknowns,
            len,
            rows: Vec::new(),
        })
    }

    /// Number of equations pushed.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no equation was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds row `row` of a window of `k = columns.len()` data shards, whose bytes are `payload`
    /// (ignored when the equations carry no bytes). Known columns are folded into the
    /// right-hand side. A row that names no unknown adds nothing.
    pub fn push_row(
        &mut self,
        columns: &[Column<'_>],
        row: usize,
        payload: &[u8],
    ) -> Result<(), FecError> {
        let k = columns.len();
        let coeffs = parity_rows(k, row + 1)?;
        self.push_coefficients(&coeffs[row * k..(row + 1) * k], columns, payload)
    }

    /// [`Equations::push_row`] with the row's coefficients given (row `r` of
    /// [`parity_rows`]`(columns.len(), ·)`, from [`RowTables`] where many rows are pushed).
    pub fn push_coefficients(
        &mut self,
        coeffs: &[u8],
        columns: &[Column<'_>],
        payload: &[u8],
    ) -> Result<(), FecError> {
        if self.rows.len() >= MAX_SHARDS_PER_BLOCK || coeffs.len() != columns.len() {
            return Err(FecError::BadParameters);
        }
        let mut eq = vec![0u8; self.unknowns + self.len];
        let (lhs, rhs) = eq.split_at_mut(self.unknowns);
        if self.len > 0 {
            if payload.len() > self.len {
                return Err(FecError::Coder);
            }
            rhs[..payload.len()].copy_from_slice(payload);
        }
        let mut names_unknown = false;
        for (&c, col) in coeffs.iter().zip(columns) {
            match *col {
                Column::Unknown(i) => {
                    let slot = lhs.get_mut(i).ok_or(FecError::BadParameters)?;
                    *slot = c;
                    names_unknown = true;
                }
                Column::Known(bytes) if self.len > 0 => {
                    if bytes.len() > self.len {
                        return Err(FecError::Coder);
                    }
                    xor_mul(c, bytes, &mut rhs[..bytes.len()]);
                }
                Column::Known(_) => {}
            }
        }
        if names_unknown {
            self.rows.push(eq);
        }
        Ok(())
    }

    /// Gauss-Jordan elimination; returns, per unknown, its bytes when the equations determine
    /// it (whatever the others), `None` otherwise. With `len` 0 a determined unknown is
    /// `Some` of no bytes.
    pub fn solve(mut self) -> Vec<Option<Vec<u8>>> {
        let n = self.unknowns;
        let mut pivots: Vec<(usize, usize)> = Vec::new();
        let mut next = 0usize;
        for col in 0..n {
            let Some(found) = (next..self.rows.len()).find(|&r| self.rows[r][col] != 0) else {
                continue;
            };
            self.rows.swap(next, found);
            let inv = galois_8::div(1, self.rows[next][col]);
            let mut pivot = std::mem::take(&mut self.rows[next]);
            for b in &mut pivot[col..] {
                *b = galois_8::mul(*b, inv);
            }
            for (r, row) in self.rows.iter_mut().enumerate() {
                if r == next || row[col] == 0 {
                    continue;
                }
                let f = row[col];
                xor_mul(f, &pivot[col..], &mut row[col..]);
            }
            self.rows[next] = pivot;
            pivots.push((next, col));
            next += 1;
        }
        let is_pivot: Vec<bool> = {
            let mut v = vec![false; n];
            for &(_, c) in &pivots {
                v[c] = true;
            }
            v
        };
        let mut out = vec![None; n];
        for &(r, c) in &pivots {
            let row = &self.rows[r];
            let free_clear = (0..n).all(|j| is_pivot[j] || row[j] == 0);
            if free_clear {
                out[c] = Some(row[n..].to_vec());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
