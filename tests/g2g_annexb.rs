//! Tests of the glass-to-glass benchmark's Annex-B splitter (a bench target with
//! `harness = false` cannot run `#[test]`s of its own).
#[path = "../benches/g2g/annexb.rs"]
#[allow(dead_code)]
mod annexb;

use annexb::{NalSyntax, Splitter};

fn nals_of(chunks: &[&[u8]]) -> Vec<(Vec<u8>, u64)> {
    let mut s = Splitter::default();
    let mut v = Vec::new();
    for (t, c) in chunks.iter().enumerate() {
        s.push(c, t as u64, |n| v.push((n.bytes.to_vec(), n.last_byte_at)));
    }
    s.flush(|n| v.push((n.bytes.to_vec(), n.last_byte_at)));
    v
}

#[test]
fn chunked_stream_splits_like_the_whole_one_and_times_the_last_byte() {
    let stream = [
        0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9, 9, 0,
    ];
    let whole = nals_of(&[&stream]);
    assert_eq!(
        whole.iter().map(|n| n.0.clone()).collect::<Vec<_>>(),
        vec![vec![0x67, 1, 2], vec![0x68, 3], vec![0x65, 9, 9, 9]]
    );
    // Cut inside a start code and inside a NAL unit.
    let parts = nals_of(&[&stream[..9], &stream[9..13], &stream[13..18], &stream[18..]]);
    assert_eq!(
        parts,
        vec![
            (vec![0x67, 1, 2], 0),
            (vec![0x68, 3], 1),
            (vec![0x65, 9, 9, 9], 3)
        ]
    );
}

#[test]
fn vcl_types_per_codec() {
    assert!(NalSyntax::H264.is_vcl(&[0x65]));
    assert!(NalSyntax::H264.is_vcl(&[0x41]));
    assert!(!NalSyntax::H264.is_vcl(&[0x67]));
    assert!(!NalSyntax::H264.is_vcl(&[0x09]));
    assert!(NalSyntax::H265.is_vcl(&[0x26, 0x01])); // IDR_W_RADL
    assert!(NalSyntax::H265.is_vcl(&[0x02, 0x01])); // TRAIL_R
    assert!(!NalSyntax::H265.is_vcl(&[0x40, 0x01])); // VPS
    assert!(!NalSyntax::H265.is_vcl(&[0x4e, 0x01])); // prefix SEI
}

#[test]
fn fingerprints_ignore_start_codes_and_parameter_sets_but_not_damage() {
    let sent = [0, 0, 0, 1, 0x67, 5, 0, 0, 0, 1, 0x65, 7, 7, 7];
    // What a depayloader might emit: a repeated SPS, 3-byte start codes, trailing zeros.
    let relayed = [
        0, 0, 1, 0x67, 5, 0, 0, 1, 0x67, 5, 0, 0, 1, 0x65, 7, 7, 7, 0, 0,
    ];
    let damaged = [0, 0, 0, 1, 0x67, 5, 0, 0, 0, 1, 0x65, 7, 6, 7];
    let fp = |au: &[u8]| annexb::vcl_fingerprints(NalSyntax::H264, au);
    assert_eq!(fp(&sent).len(), 1);
    assert_eq!(fp(&sent), fp(&relayed));
    assert_ne!(fp(&sent), fp(&damaged));
}

#[test]
fn a_stream_without_start_codes_stays_bounded() {
    let mut s = Splitter::default();
    let junk = vec![0x55u8; 1 << 20];
    let mut n = 0;
    for t in 0..40 {
        s.push(&junk, t, |_| n += 1);
    }
    assert_eq!(n, 0);
}
