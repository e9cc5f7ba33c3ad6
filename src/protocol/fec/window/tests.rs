use super::*;
use crate::protocol::fec::coder::{FecCoder, ReedSolomon8};
use crate::protocol::test_rng::Rng;

/// `frames` frames of `ks[i]` random data shards; shard `j` of frame `i` is `len − (i + j) % 3`
/// bytes long, so windows mix shard lengths.
fn frames(ks: &[usize], len: usize, seed: u64) -> Vec<Vec<Vec<u8>>> {
    let mut rng = Rng::new(seed);
    ks.iter()
        .enumerate()
        .map(|(i, &k)| {
            (0..k)
                .map(|j| (0..len - (i + j) % 3).map(|_| rng.next() as u8).collect())
                .collect()
        })
        .collect()
}

/// Rows `0 … rows − 1` of the window made of `frames[range]`.
fn window_rows(frames: &[Vec<Vec<u8>>], rows: usize, len: usize) -> Vec<Vec<u8>> {
    let views: Vec<Vec<&[u8]>> = frames
        .iter()
        .map(|f| f.iter().map(|s| s.as_slice()).collect())
        .collect();
    let views: Vec<&[&[u8]]> = views.iter().map(|v| v.as_slice()).collect();
    let mut out = vec![vec![0u8; len]; rows];
    let mut o: Vec<&mut [u8]> = out.iter_mut().map(|v| v.as_mut_slice()).collect();
    encode_window_rows(&views, 0, &mut o).unwrap();
    out
}

#[test]
fn a_window_of_one_frame_is_the_frames_own_reed_solomon_rows() {
    let len = 40;
    let f = frames(&[7], len, 1);
    let padded: Vec<Vec<u8>> = f[0]
        .iter()
        .map(|s| {
            let mut p = s.clone();
            p.resize(len, 0);
            p
        })
        .collect();
    let mut parity = vec![vec![0u8; len]; 5];
    {
        let d: Vec<&[u8]> = padded.iter().map(|v| v.as_slice()).collect();
        let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
        ReedSolomon8::new().encode(&d, &mut p).unwrap();
    }
    assert_eq!(window_rows(&f, 5, len), parity);
}

/// A frame lost whole whose own rows came short is rebuilt byte-exact from its own surviving
/// rows together with rows of the next frames' windows — although no set of rows alone
/// (own, or either window) is enough.
#[test]
fn rows_of_three_windows_together_rebuild_a_frame_no_window_could_alone() {
    let len = 32;
    let ks = [6, 7, 5, 6, 7];
    let f = frames(&ks, len, 2);
    // Frame 2 is lost whole; frames 0, 1, 3 and 4 arrived. Window rows over three frames:
    // frame 2's own window (0, 1, 2), frame 3's (1, 2, 3) and frame 4's (2, 3, 4), 4 rows each,
    // of which 2, 3 and 2 arrived: 7 rows for 5 unknowns, at most 3 from any one window.
    let arrived = [
        (2usize, vec![0usize, 3]),
        (3, vec![1, 2, 3]),
        (4, vec![0, 2]),
    ];
    let mut eq = Equations::new(ks[2], len).unwrap();
    for (newest, rows) in &arrived {
        let win = &f[newest - 2..=*newest];
        let payloads = window_rows(win, 4, len);
        let mut cols = Vec::new();
        for (i, frame) in win.iter().enumerate() {
            for (j, s) in frame.iter().enumerate() {
                cols.push(if newest - 2 + i == 2 {
                    Column::Unknown(j)
                } else {
                    Column::Known(s)
                });
            }
        }
        // Any single window's rows leave frame 2 undetermined.
        let mut alone = Equations::new(ks[2], 0).unwrap();
        for &r in rows {
            alone.push_row(&cols, r, &[]).unwrap();
            eq.push_row(&cols, r, &payloads[r]).unwrap();
        }
        assert!(alone.solve().iter().all(|s| s.is_none()));
    }
    let solved = eq.solve();
    for (j, s) in solved.iter().enumerate() {
        let mut want = f[2][j].clone();
        want.resize(len, 0);
        assert_eq!(s.as_deref(), Some(want.as_slice()), "shard {j}");
    }
}

/// Fewer equations than unknowns determine nothing they do not pin down: with two frames
/// missing shards, a row of the newer frame's own window determines its shard while the older
/// frame's two unknowns, in one shared row, stay open.
#[test]
fn unknowns_the_rows_do_not_pin_down_stay_unsolved() {
    let len = 16;
    let f = frames(&[4, 4], len, 3);
    let mut eq = Equations::new(3, len).unwrap();
    // A row over both frames: frame 0's shards 1 and 2 unknown (0, 1), frame 1's shard 3 (2).
    let both = window_rows(&f, 1, len);
    let cols: Vec<Column<'_>> = [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    .iter()
    .map(|&(i, j)| match (i, j) {
        (0, 1) => Column::Unknown(0),
        (0, 2) => Column::Unknown(1),
        (1, 3) => Column::Unknown(2),
        _ => Column::Known(&f[i][j]),
    })
    .collect();
    eq.push_row(&cols, 0, &both[0]).unwrap();
    // Frame 1's own row.
    let own = window_rows(&f[1..], 1, len);
    let cols: Vec<Column<'_>> = (0..4)
        .map(|j| {
            if j == 3 {
                Column::Unknown(2)
            } else {
                Column::Known(&f[1][j])
            }
        })
        .collect();
    eq.push_row(&cols, 0, &own[0]).unwrap();
    let solved = eq.solve();
    assert!(solved[0].is_none() && solved[1].is_none());
    let mut want = f[1][3].clone();
    want.resize(len, 0);
    assert_eq!(solved[2].as_deref(), Some(want.as_slice()));
}

#[test]
fn random_losses_within_the_rows_received_are_rebuilt_byte_exact() {
    let mut rng = Rng::new(9);
    let len = 24;
    for round in 0..200 {
        let ks: Vec<usize> = (0..3).map(|_| 1 + rng.below(10)).collect();
        let f = frames(&ks, len, 100 + round);
        let k: usize = ks.iter().sum();
        let m = 1 + rng.below(8);
        let rows = window_rows(&f, m, len);
        let lost: Vec<bool> = (0..k).map(|_| rng.below(4) == 0).collect();
        let unknowns: Vec<usize> = (0..k).filter(|&c| lost[c]).collect();
        let flat: Vec<&Vec<u8>> = f.iter().flatten().collect();
        let cols: Vec<Column<'_>> = (0..k)
            .map(|c| match unknowns.iter().position(|&u| u == c) {
                Some(i) => Column::Unknown(i),
                None => Column::Known(flat[c]),
            })
            .collect();
        let mut eq = Equations::new(unknowns.len(), len).unwrap();
        let received: Vec<usize> = (0..m).filter(|_| rng.below(3) != 0).collect();
        for &r in &received {
            eq.push_row(&cols, r, &rows[r]).unwrap();
        }
        let solved = eq.solve();
        let all = unknowns.len() <= received.len();
        for (i, &c) in unknowns.iter().enumerate() {
            if all {
                let mut want = flat[c].clone();
                want.resize(len, 0);
                assert_eq!(solved[i].as_deref(), Some(want.as_slice()), "round {round}");
            } else if unknowns.len() > received.len() {
                // MDS: fewer rows than unknowns in one window pin down none of them.
                assert!(solved[i].is_none(), "round {round}");
            }
        }
    }
}

#[test]
fn bad_input_is_refused_not_a_panic() {
    assert_eq!(
        Equations::new(MAX_SHARDS_PER_BLOCK + 1, 0).err(),
        Some(FecError::BadParameters)
    );
    let mut eq = Equations::new(1, 4).unwrap();
    let long = [1u8; 5];
    // An unknown index out of range.
    assert_eq!(
        eq.push_row(&[Column::Unknown(1)], 0, &[0; 4]),
        Err(FecError::BadParameters)
    );
    // Bytes longer than the equations' shards.
    assert_eq!(
        eq.push_row(&[Column::Unknown(0)], 0, &long),
        Err(FecError::Coder)
    );
    assert_eq!(
        eq.push_row(&[Column::Known(&long), Column::Unknown(0)], 0, &[0; 4]),
        Err(FecError::Coder)
    );
    // A window beyond GF(2^8).
    let many = vec![Column::Unknown(0); 300];
    assert_eq!(eq.push_row(&many, 0, &[0; 4]), Err(FecError::BadParameters));
    // Equations are bounded.
    for _ in 0..MAX_SHARDS_PER_BLOCK {
        eq.push_row(&[Column::Unknown(0)], 0, &[0; 4]).unwrap();
    }
    assert_eq!(
        eq.push_row(&[Column::Unknown(0)], 0, &[0; 4]),
        Err(FecError::BadParameters)
    );
    // Output shorter than a data shard.
    let d = [1u8; 8];
    let frame: [&[u8]; 1] = [&d];
    let mut short = [0u8; 4];
    assert_eq!(
        encode_window_rows(&[&frame], 0, &mut [&mut short]),
        Err(FecError::Coder)
    );
}

#[test]
fn row_tables_give_the_coders_rows_and_grow_on_demand() {
    let mut t = RowTables::default();
    let want = parity_rows(21, 12).unwrap();
    for r in [3, 0, 11, 5] {
        assert_eq!(t.row(21, r).unwrap(), &want[r * 21..(r + 1) * 21]);
    }
    assert_eq!(t.row(7, 2).unwrap(), &parity_rows(7, 3).unwrap()[14..21]);
    assert_eq!(t.row(300, 0).err(), Some(FecError::BadParameters));
}
