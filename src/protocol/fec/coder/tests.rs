use super::*;
use proptest::prelude::*;

use crate::protocol::test_rng::Rng;

/// Encodes `k` random data shards of `len` bytes with `m` parity shards.
fn encoded_block(rs: &mut ReedSolomon8, k: usize, m: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let data: Vec<Vec<u8>> = (0..k)
        .map(|_| (0..len).map(|_| rng.next() as u8).collect())
        .collect();
    let mut parity = vec![vec![0u8; len]; m];
    {
        let d: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
        rs.encode(&d, &mut p).unwrap();
    }
    data.into_iter().chain(parity).collect()
}

/// Drops the shards not in `present` (filling them with junk), rebuilds the block with the
/// fast path and with the crate's decoder, and checks both against the original.
fn check_pattern(rs: &mut ReedSolomon8, k: usize, block: &[Vec<u8>], present: &[bool]) {
    let mut fast: Vec<Vec<u8>> = block.to_vec();
    for (s, p) in fast.iter_mut().zip(present) {
        if !p {
            s.fill(0xa5);
        }
    }
    let mut old = fast.clone();
    let mut view: Vec<&mut [u8]> = fast.iter_mut().map(|v| v.as_mut_slice()).collect();
    rs.reconstruct(k, &mut view, present).unwrap();
    let mut view: Vec<&mut [u8]> = old.iter_mut().map(|v| v.as_mut_slice()).collect();
    reconstruct_with_crate(k, &mut view, present).unwrap();
    for i in 0..k {
        assert_eq!(fast[i], block[i], "k {k} shard {i} present {present:?}");
        assert_eq!(fast[i], old[i], "k {k} shard {i} present {present:?}");
    }
}

/// A random loss pattern over data and parity shards with at most `m` losses.
fn random_present(rng: &mut Rng, k: usize, m: usize) -> Vec<bool> {
    let mut present = vec![true; k + m];
    let losses = rng.below(m + 1);
    for _ in 0..losses {
        present[rng.below(k + m)] = false;
    }
    // Bias towards data losses, the case that needs solving.
    if rng.below(2) == 0 {
        let extra = rng.below(m + 1);
        for _ in 0..extra {
            let i = rng.below(k);
            if present.iter().filter(|p| !**p).count() < m {
                present[i] = false;
            }
        }
    }
    present
}

/// The parity part of the crate's own encoding matrix for `(k, m)`, read off its encoder:
/// with data shard `j` set to the unit vector `e_j`, byte `j` of parity shard `p` is
/// `A[p][j]`.
fn crate_matrix(k: usize, m: usize) -> Vec<u8> {
    let rs = ReedSolomon::new(k, m).unwrap();
    let mut data = vec![0u8; k * k];
    for j in 0..k {
        data[j * k + j] = 1;
    }
    let mut parity = vec![0u8; m * k];
    let d: Vec<&[u8]> = data.chunks_exact(k).collect();
    let mut p: Vec<&mut [u8]> = parity.chunks_exact_mut(k).collect();
    rs.encode_sep(&d, &mut p).unwrap();
    parity
}

#[test]
fn derived_rows_equal_the_crates_matrix_and_are_prefixes() {
    let shapes = [
        (1, 2),
        (1, 255),
        (2, 2),
        (5, 3),
        (10, 40),
        (32, 2),
        (78, 16),
        (128, 32),
        (128, 128),
        (200, 56),
        (250, 6),
        (255, 1),
    ];
    for &(k, m) in &shapes {
        let ours = parity_rows(k, m).unwrap();
        assert_eq!(ours, crate_matrix(k, m), "k {k} m {m}");
        // The property repair and the per-k cache rely on, checked on the crate itself:
        // the rows of (k, m) are the first rows of (k, m') for every m' > m.
        for m_small in [1, m / 2, m - 1] {
            if m_small >= 1 && m_small < m {
                assert_eq!(
                    crate_matrix(k, m_small),
                    ours[..m_small * k],
                    "k {k} m {m_small}"
                );
            }
        }
    }
    assert_eq!(parity_rows(0, 2), Err(FecError::BadParameters));
    assert_eq!(parity_rows(200, 57), Err(FecError::BadParameters));
}

#[test]
fn encode_is_byte_identical_to_the_crate() {
    let mut rs = ReedSolomon8::new();
    let mut rng = Rng::new(0xc0de);
    for &(k, m) in &[
        (1, 2),
        (3, 2),
        (32, 2),
        (78, 16),
        (128, 26),
        (128, 128),
        (240, 16),
    ] {
        let block = encoded_block(&mut rs, k, m, 1 + rng.below(200), rng.next());
        let len = block[0].len();
        let crate_rs = ReedSolomon::new(k, m).unwrap();
        let mut parity = vec![vec![0u8; len]; m];
        let d: Vec<&[u8]> = block[..k].iter().map(|v| v.as_slice()).collect();
        let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
        crate_rs.encode_sep(&d, &mut p).unwrap();
        assert_eq!(parity, block[k..], "k {k} m {m}");
    }
}

#[test]
fn encode_rows_continues_the_parity_sequence() {
    let mut rs = ReedSolomon8::new();
    let (k, m, e) = (40, 6, 9);
    let full = encoded_block(&mut rs, k, m + e, 64, 5);
    let data: Vec<&[u8]> = full[..k].iter().map(|v| v.as_slice()).collect();
    let mut extra = vec![vec![0xffu8; 64]; e];
    let mut out: Vec<&mut [u8]> = extra.iter_mut().map(|v| v.as_mut_slice()).collect();
    rs.encode_rows(&data, m, &mut out).unwrap();
    assert_eq!(extra, full[k + m..]);
    // Out of range: the block would pass 256 shards.
    let mut out: Vec<&mut [u8]> = extra.iter_mut().map(|v| v.as_mut_slice()).collect();
    assert_eq!(
        rs.encode_rows(&data, 256 - k - 1, &mut out),
        Err(FecError::BadParameters)
    );
    // Unequal lengths.
    let mut short = [0u8; 63];
    assert_eq!(
        rs.encode_rows(&data, m, &mut [&mut short[..]]),
        Err(FecError::Coder)
    );
}

#[test]
fn parity_matrix_matches_encoder() {
    let mut rs = ReedSolomon8::new();
    for &(k, m) in &[(1, 2), (5, 3), (78, 16), (128, 64), (200, 56)] {
        let block = encoded_block(&mut rs, k, m, 33, k as u64 * 131 + m as u64);
        let a = parity_rows(k, m).unwrap();
        assert_eq!(a.len(), k * m);
        for p in 0..m {
            for (b, &want) in block[k + p].iter().enumerate() {
                let mut acc = 0u8;
                for (j, shard) in block[..k].iter().enumerate() {
                    acc ^= galois_8::mul(a[p * k + j], shard[b]);
                }
                assert_eq!(acc, want);
            }
        }
    }
}

#[test]
fn fast_path_matches_crate_for_many_shapes() {
    let mut rs = ReedSolomon8::new();
    let mut rng = Rng::new(0x5eed_f00d);
    let mut ks: Vec<usize> = (1..=16).collect();
    ks.extend([17, 31, 32, 33, 47, 63, 64, 65, 77, 78, 96, 100, 127, 128]);
    for &k in &ks {
        let max_m = 64.min(MAX_SHARDS_PER_BLOCK - k);
        let mut ms = vec![2, 3, max_m];
        ms.push(2 + rng.below(max_m - 1));
        ms.push(2 + rng.below(max_m - 1));
        for &m in &ms {
            let len = 1 + rng.below(80);
            let block = encoded_block(&mut rs, k, m, len, rng.next());
            for _ in 0..4 {
                let present = random_present(&mut rng, k, m);
                check_pattern(&mut rs, k, &block, &present);
            }
            // The whole parity budget spent on data shards.
            let mut present = vec![true; k + m];
            let mut lost = 0;
            while lost < m.min(k) {
                let i = rng.below(k);
                if present[i] {
                    present[i] = false;
                    lost += 1;
                }
            }
            check_pattern(&mut rs, k, &block, &present);
        }
    }
    assert_eq!(rs.fallbacks(), 0);
}

#[test]
fn large_blocks_full_budget() {
    // k + m up to 256 (the GF(2^8) limit), every data shard that parity can cover lost.
    let mut rs = ReedSolomon8::new();
    let mut rng = Rng::new(77);
    for &(k, m) in &[(128, 128), (200, 56), (250, 6), (1, 255), (56, 200)] {
        let block = encoded_block(&mut rs, k, m, 17, rng.next());
        for _ in 0..3 {
            let mut present = vec![true; k + m];
            let mut lost = 0;
            while lost < m.min(k) {
                let i = rng.below(k + m);
                if present[i] {
                    present[i] = false;
                    lost += 1;
                }
            }
            check_pattern(&mut rs, k, &block, &present);
        }
    }
    assert_eq!(rs.fallbacks(), 0);
}

#[test]
fn singular_system_falls_back_to_crate() {
    let mut rs = ReedSolomon8::new();
    let (k, m) = (10, 4);
    let block = encoded_block(&mut rs, k, m, 40, 9);
    let mut present = vec![true; k + m];
    present[2] = false;
    present[7] = false;
    // Build the cached matrix, then zero the row of the first present parity shard: the
    // 2 × 2 system becomes singular and the crate's decoder must take over.
    check_pattern(&mut rs, k, &block, &present);
    assert_eq!(rs.fallbacks(), 0);
    let t = rs.table(k, m).unwrap();
    t.rows[..k].fill(0);
    check_pattern(&mut rs, k, &block, &present);
    assert_eq!(rs.fallbacks(), 1);
}

#[test]
fn shard_length_errors_match_crate() {
    let mut rs = ReedSolomon8::new();
    let (k, m) = (4, 2);
    let mut block = encoded_block(&mut rs, k, m, 8, 3);
    let present = [false, true, true, true, true, true];
    // A present shard of another length.
    block[3].push(0);
    let mut view: Vec<&mut [u8]> = block.iter_mut().map(|v| v.as_mut_slice()).collect();
    assert_eq!(rs.reconstruct(k, &mut view, &present), Err(FecError::Coder));
    // A missing data shard of another length.
    let mut block = encoded_block(&mut rs, k, m, 8, 3);
    block[0].pop();
    let mut view: Vec<&mut [u8]> = block.iter_mut().map(|v| v.as_mut_slice()).collect();
    assert_eq!(rs.reconstruct(k, &mut view, &present), Err(FecError::Coder));
    // Empty shards.
    let mut block = vec![Vec::new(); k + m];
    let mut view: Vec<&mut [u8]> = block.iter_mut().map(|v| v.as_mut_slice()).collect();
    assert_eq!(rs.reconstruct(k, &mut view, &present), Err(FecError::Coder));
    // A missing parity shard's buffer is not looked at.
    let mut block = encoded_block(&mut rs, k, m, 8, 3);
    block[5].clear();
    let present = [false, true, true, true, true, false];
    let mut view: Vec<&mut [u8]> = block.iter_mut().map(|v| v.as_mut_slice()).collect();
    rs.reconstruct(k, &mut view, &present).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn fast_path_equals_crate(
        k in 1usize..=128,
        m_pick in 0usize..1000,
        seed in any::<u64>(),
        len in 1usize..300,
    ) {
        let max_m = 64.min(MAX_SHARDS_PER_BLOCK - k);
        let m = 2 + m_pick % (max_m - 1);
        let mut rs = ReedSolomon8::new();
        let block = encoded_block(&mut rs, k, m, len, seed);
        let mut rng = Rng::new(seed);
        let present = random_present(&mut rng, k, m);
        check_pattern(&mut rs, k, &block, &present);
        prop_assert_eq!(rs.fallbacks(), 0);
    }
}

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
