//! The reassembler's window rows (`media::shared_rows`): rows shared over a frame and the
//! windowed frames just before it (a small frame's trailing rows, a paired frame's rows), kept
//! with the frame that sent them, and the joint solve that rebuilds every incomplete windowed
//! frame their rows (and the frames' own rows) determine.
//!
//! Window rows take part in a block's bookkeeping as its own rows did (the shard index marks
//! them received, so the repair logic sees when they came) but are never rows of the block's
//! own Reed-Solomon decode. Towards what the block still needs (`needs`) a row counts while
//! every frame it names is in flight or kept ([`Reassembler::usable_window_rows`]); a row
//! naming a frame given up counts as lost, and the block is asked for. Delivered windowed
//! frames are kept (at most [`RETAINED`]) while later frames' rows may name them. A solve works
//! on coefficients first and pushes bytes only for the groups of unknowns in which something is
//! determined, so a paired frame's rows cost one byte solve once they can rebuild it, not one
//! per row.
//!
//! Must never: trust a row's window against frames it contradicts (such a row is skipped),
//! solve more than [`MAX_SOLVE_UNKNOWNS`] unknowns or [`MAX_SOLVE_WORK`] at once, or keep a row
//! past its frame.

use std::collections::VecDeque;
use std::time::Instant;

use reed_solomon_erasure::galois_8;

use super::{Reassembler, Rejected, Slot};
use crate::protocol::fec::coder::{MAX_PAIRED_K, MAX_SHARDS_PER_BLOCK};
use crate::protocol::fec::window::{Column, Equations, RowTables};
use crate::protocol::media::shared_rows::{MAX_WINDOW_FRAMES, OlderFrame, WindowExt};

/// Delivered windowed frames kept for the rows of the frames after them.
pub(super) const RETAINED: usize = MAX_WINDOW_FRAMES - 1;

/// Most unknowns one solve takes: two paired frames of [`MAX_PAIRED_K`] shards, or several
/// windows of 16-shard frames (a burst leaves a few frames incomplete at once, ~30 unknowns).
const MAX_SOLVE_UNKNOWNS: usize = 2 * MAX_PAIRED_K;

/// Most work one solve may cost, in GF(2^8) multiply-adds (equations × unknowns × the
/// unknowns and bytes of each equation): ~30 M, a few ms at worst. Real windows cost ~1 M (24 rows over 28 unknowns of
/// 1,400 bytes); an authenticated but hostile host naming huge shards cannot make each
/// datagram cost more.
const MAX_SOLVE_WORK: usize = 1 << 25;

/// Of the `picked` equations (independent, see [`independent`]), those worth solving with their
/// bytes, and the unknowns they involve (`kept[id]`): the groups of unknowns (joined by the
/// equations that name them together) in which at least one unknown is `determined`. A group
/// with none determines nothing yet, and pushing its rows costs as much as the others': a
/// paired frame's rows are solved once they can rebuild something, not on each row as it
/// arrives, and a frame that waits for more rows does not hold up one that is solvable.
fn worth_solving(
    eqs: &[(Vec<Column<'_>>, usize, &[u8])],
    picked: &[usize],
    determined: &[bool],
) -> (Vec<usize>, Vec<bool>) {
    let unknowns = determined.len();
    let mut parent: Vec<usize> = (0..unknowns).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let unknowns_of = |cols: &[Column<'_>]| -> Vec<usize> {
        cols.iter()
            .filter_map(|c| match c {
                Column::Unknown(u) => Some(*u),
                Column::Known(_) => None,
            })
            .collect()
    };
    for &i in picked {
        let us = unknowns_of(&eqs[i].0);
        for w in us.windows(2) {
            let (ra, rb) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            parent[ra] = rb;
        }
    }
    let mut useful = vec![false; unknowns];
    for (u, &d) in determined.iter().enumerate() {
        if d {
            let r = root(&mut parent, u);
            useful[r] = true;
        }
    }
    let kept: Vec<bool> = (0..unknowns)
        .map(|u| useful[root(&mut parent, u)])
        .collect();
    let rows = picked
        .iter()
        .copied()
        .filter(|&i| unknowns_of(&eqs[i].0).first().is_some_and(|&u| kept[u]))
        .collect();
    (rows, kept)
}

/// Which unknowns the `picked` equations determine, from their coefficients alone.
fn determined(
    eqs: &[(Vec<Column<'_>>, usize, &[u8])],
    picked: &[usize],
    unknowns: usize,
    tables: &mut RowTables,
) -> Vec<bool> {
    let Ok(mut system) = Equations::new(unknowns, 0) else {
        return vec![false; unknowns];
    };
    for &i in picked {
        let (cols, row, _) = &eqs[i];
        let pushed = tables
            .row(cols.len(), *row)
            .and_then(|c| system.push_coefficients(c, cols, &[]));
        if pushed.is_err() {
            return vec![false; unknowns];
        }
    }
    system.solve().iter().map(Option::is_some).collect()
}

/// The equations worth pushing, by index into `eqs`: in order, each one independent (over the
/// `unknowns`) of those picked before it, until every unknown has one.
/// The others only repeat what the picked ones say, and pushing one costs folding every known
/// column of its window: a paired frame that lost 5 data shards holds ~30 rows over ~65 known
/// shards, where 5 rows are enough. Coefficients only: ~unknowns² per equation.
#[allow(clippy::type_complexity)]
fn independent(
    eqs: &[(Vec<Column<'_>>, usize, &[u8])],
    unknowns: usize,
    tables: &mut RowTables,
) -> Vec<usize> {
    // Reduced rows, each with its pivot (coefficient 1 there, 0 at the pivots before it).
    let mut basis: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut picked = Vec::new();
    for (i, (cols, row, _)) in eqs.iter().enumerate() {
        if basis.len() == unknowns {
            break;
        }
        let Ok(coeffs) = tables.row(cols.len(), *row) else {
            continue;
        };
        let mut v = vec![0u8; unknowns];
        for (&c, col) in coeffs.iter().zip(cols) {
            if let Column::Unknown(u) = col
                && let Some(x) = v.get_mut(*u)
            {
                *x = c;
            }
        }
        for (p, b) in &basis {
            let f = v[*p];
            if f != 0 {
                for (x, &y) in v.iter_mut().zip(b) {
                    *x ^= galois_8::mul(f, y);
                }
            }
        }
        if let Some(p) = v.iter().position(|&x| x != 0) {
            let inv = galois_8::div(1, v[p]);
            for x in &mut v {
                *x = galois_8::mul(*x, inv);
            }
            basis.push((p, v));
            picked.push(i);
        }
    }
    picked
}

/// A window row, kept with the frame that sent it.
pub(super) struct WindowRow {
    /// Row number in the window's code.
    row: usize,
    older: Vec<OlderFrame>,
    bytes: Vec<u8>,
}

/// A delivered windowed frame: its data shards, zero-padded, back to back.
pub(super) struct Retained {
    index: u32,
    frame_len: u32,
    shard_size: usize,
    data: Vec<u8>,
}

/// Retained frames, oldest first.
#[derive(Default)]
pub(super) struct RetainedFrames(VecDeque<Retained>);

impl RetainedFrames {
    /// Keeps a delivered windowed frame (`data` padded to whole shards).
    pub(super) fn keep(&mut self, index: u32, frame_len: u32, shard_size: usize, data: &[u8]) {
        if self.0.len() == RETAINED {
            self.0.pop_front();
        }
        self.0.push_back(Retained {
            index,
            frame_len,
            shard_size,
            data: data.to_vec(),
        });
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn get(&self, index: u32) -> Option<&Retained> {
        self.0.iter().find(|r| r.index == index)
    }
}

/// The columns of frame `f` of layout `layout` in a window row: its data shards known (in
/// flight and received or rebuilt, or retained) or unknowns (numbered into `ids`; a frame
/// never seen or given up is all unknowns). `None` when the frame contradicts the layout.
fn columns<'a>(
    slots: &'a [Slot],
    retained: &'a RetainedFrames,
    ids: &mut Vec<(u32, usize)>,
    f: u32,
    layout: OlderFrame,
) -> Option<Vec<Column<'a>>> {
    let ss = layout.shard_size as usize;
    let k = layout.data_shards();
    let mut id_of = |j: usize| match ids.iter().position(|&x| x == (f, j)) {
        Some(i) => i,
        None => {
            ids.push((f, j));
            ids.len() - 1
        }
    };
    if let Some(s) = slots.iter().find(|s| s.index == f) {
        if s.frame_len != layout.frame_len
            || s.shard_size != layout.shard_size
            || s.layout.blocks != 1
        {
            return None;
        }
        let blk = &s.blocks[0];
        return Some(
            (0..k)
                .map(|j| {
                    if blk.done || blk.has(j) {
                        Column::Known(&s.data[j * ss..(j + 1) * ss])
                    } else {
                        Column::Unknown(id_of(j))
                    }
                })
                .collect(),
        );
    }
    if let Some(r) = retained.get(f) {
        if r.frame_len != layout.frame_len || r.shard_size != ss {
            return None;
        }
        return Some(
            (0..k)
                .map(|j| Column::Known(&r.data[j * ss..(j + 1) * ss]))
                .collect(),
        );
    }
    Some((0..k).map(|j| Column::Unknown(id_of(j))).collect())
}

impl Reassembler {
    /// Whether an older frame of the window of frame `index`'s row is still incomplete in
    /// flight (the row may rebuild it, though `index` itself is complete).
    pub(super) fn serves_older(&self, index: u32, ext: &WindowExt) -> bool {
        (1..=ext.older.len() as u32).any(|back| {
            self.slots
                .iter()
                .any(|s| s.index == index.wrapping_sub(back) && !s.complete())
        })
    }

    /// Takes a window row of the frame in slot `pos`, its header and block checked like any
    /// shard's (not a duplicate; on a complete frame only if it [`serves_older`] frames).
    ///
    /// [`serves_older`]: Reassembler::serves_older
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_window_row(
        &mut self,
        pos: usize,
        m: usize,
        si: usize,
        row: usize,
        ext: WindowExt,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), Rejected> {
        let index = self.slots[pos].index;
        let need = bytes.len() + ext.older.len() * std::mem::size_of::<OlderFrame>();
        if !self.make_room(need, pos) {
            return Err(Rejected::Memory);
        }
        let pos = self
            .slots
            .iter()
            .position(|s| s.index == index)
            .ok_or(Rejected::Memory)?;
        let slot = &mut self.slots[pos];
        slot.bytes += need;
        self.stats.memory_in_use += need;
        self.stats.memory_peak = self.stats.memory_peak.max(self.stats.memory_in_use);
        slot.last_activity = now;
        let blk = &mut slot.blocks[0];
        blk.m = m as u16;
        blk.set(si);
        blk.set_shared(si);
        blk.note_original(si, now);
        self.windows_seen = true;
        slot.window_rows.push(WindowRow {
            row,
            older: ext.older,
            bytes: bytes.to_vec(),
        });
        self.solve_windows();
        Ok(())
    }

    /// Window rows of `s` counted as received towards its block: those whose older frames
    /// are all in flight or retained (a frame in flight but incomplete is being rebuilt or
    /// repaired itself). A row naming a frame given up or never seen cannot rebuild anything
    /// alone: the block is asked for as if it had been lost.
    pub(super) fn usable_window_rows(&self, s: &Slot) -> usize {
        s.window_rows
            .iter()
            .filter(|w| {
                (1..=w.older.len() as u32).all(|back| {
                    let f = s.index.wrapping_sub(back);
                    self.slots.iter().any(|o| o.index == f) || self.retained.get(f).is_some()
                })
            })
            .count()
    }

    /// Rebuilds what the window rows in flight determine (see the module docs).
    pub(super) fn solve_windows(&mut self) {
        if !self
            .slots
            .iter()
            .any(|s| s.layout.blocks == 1 && !s.complete())
            || self.slots.iter().all(|s| s.window_rows.is_empty())
        {
            return;
        }
        // Unknowns, as (frame index, data shard).
        let mut ids: Vec<(u32, usize)> = Vec::new();
        let solved = {
            let (slots, retained) = (&self.slots, &self.retained);
            // Frames some window row in flight names.
            let named = |i: u32| {
                slots.iter().any(|s| {
                    s.window_rows
                        .iter()
                        .any(|w| (1..=w.older.len() as u32).any(|b| s.index.wrapping_sub(b) == i))
                })
            };
            // Each equation: its columns, row number, bytes.
            let mut eqs: Vec<(Vec<Column<'_>>, usize, &[u8])> = Vec::new();
            for s in slots {
                if s.layout.blocks != 1
                    || !(s.trailing || !s.window_rows.is_empty() || named(s.index))
                {
                    continue;
                }
                let own = OlderFrame {
                    frame_len: s.frame_len,
                    shard_size: s.shard_size,
                };
                let ss = s.shard_size as usize;
                let blk = &s.blocks[0];
                // The frame's own columns, the same in every row that names it.
                let Some(own_cols) = columns(slots, retained, &mut ids, s.index, own) else {
                    continue;
                };
                // The frame's own Reed-Solomon rows (with its data, and repair rows), while
                // it is incomplete.
                if !blk.done {
                    let k = s.layout.data_in_block(0);
                    for (i, bytes) in blk.parity.chunks_exact(ss.max(1)).enumerate() {
                        if blk.has(k + i) && !blk.is_shared(k + i) {
                            eqs.push((own_cols.clone(), i, bytes));
                        }
                    }
                }
                for w in &s.window_rows {
                    let mut cols = Vec::new();
                    let mut ok = true;
                    for (back, layout) in w.older.iter().enumerate().rev() {
                        let f = s.index.wrapping_sub(back as u32 + 1);
                        match columns(slots, retained, &mut ids, f, *layout) {
                            Some(c) => cols.extend(c),
                            None => ok = false,
                        }
                    }
                    cols.extend_from_slice(&own_cols);
                    if ok {
                        eqs.push((cols, w.row, &w.bytes));
                    }
                }
            }
            // Coefficients first (no bytes): the independent rows, and what they determine.
            if ids.is_empty() || ids.len() > MAX_SHARDS_PER_BLOCK {
                return;
            }
            let mut tables = RowTables::default();
            let picked = independent(&eqs, ids.len(), &mut tables);
            let determined = determined(&eqs, &picked, ids.len(), &mut tables);
            if !determined.contains(&true) {
                return;
            }
            let (rows, kept) = worth_solving(&eqs, &picked, &determined);
            let len = rows.iter().map(|&i| eqs[i].2.len()).max().unwrap_or(0);
            let unknowns = kept.iter().filter(|&&k| k).count();
            let work = rows.len() * unknowns * (unknowns + len);
            if unknowns == 0 || unknowns > MAX_SOLVE_UNKNOWNS || work > MAX_SOLVE_WORK {
                return;
            }
            // Unknowns renumbered over the groups kept.
            let mut renum = vec![usize::MAX; ids.len()];
            let mut back = Vec::with_capacity(unknowns);
            for (i, _) in kept.iter().enumerate().filter(|(_, k)| **k) {
                renum[i] = back.len();
                back.push(i);
            }
            let Ok(mut system) = Equations::new(unknowns, len) else {
                return;
            };
            for (cols, row, bytes) in rows.into_iter().map(|i| &eqs[i]) {
                let cols: Vec<Column<'_>> = cols
                    .iter()
                    .map(|c| match c {
                        Column::Unknown(u) => Column::Unknown(renum[*u]),
                        known => *known,
                    })
                    .collect();
                let pushed = tables
                    .row(cols.len(), *row)
                    .and_then(|c| system.push_coefficients(c, &cols, bytes));
                if pushed.is_err() {
                    break;
                }
            }
            let values = system.solve();
            let mut solved = vec![None; ids.len()];
            for (v, i) in values.into_iter().zip(back) {
                solved[i] = v;
            }
            solved
        };
        for (i, value) in solved.into_iter().enumerate() {
            let (f, j) = ids[i];
            let Some(value) = value else { continue };
            let Some(slot) = self.slots.iter_mut().find(|s| s.index == f) else {
                continue;
            };
            let ss = slot.shard_size as usize;
            let blk = &mut slot.blocks[0];
            if blk.done || blk.has(j) || value.len() < ss {
                continue;
            }
            slot.data[j * ss..(j + 1) * ss].copy_from_slice(&value[..ss]);
            blk.set(j);
            blk.data_count += 1;
            blk.total_count += 1;
            slot.recovered += 1;
            self.stats.shards_recovered += 1;
            let k = slot.layout.data_in_block(0);
            if blk.data_count as usize == k {
                blk.done = true;
                let freed = blk.parity.len();
                blk.parity = Vec::new();
                slot.bytes -= freed;
                self.stats.memory_in_use -= freed;
                slot.blocks_done += 1;
            }
        }
    }
}
