//! Synthetic access units for the benches that count frames byte-exact: each carries its index
//! in its first five bytes (7 bits a byte, high bit set, so no Annex B start code can appear)
//! and bytes from the test kit's generator seeded with the index after it (never zero), so a
//! delivered frame can be named and checked without keeping it.

use std::time::Instant;

use gst::prelude::*;
use gstpunktfunk::testkit::rng::Rng;

/// Frame `i` of `len` bytes.
pub fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    for k in 0..5 {
        out.push(0x80 | ((i >> (7 * (4 - k))) & 0x7f) as u8);
    }
    let mut rng = Rng::new(u64::from(i));
    while out.len() < len {
        out.extend(rng.next_u64().to_le_bytes().map(|b| b.max(1)));
    }
    out.truncate(len);
    out
}

/// The index a frame made by [`frame`] carries.
pub fn index(data: &[u8]) -> Option<u32> {
    let head = data.get(..5)?;
    Some(
        head.iter()
            .fold(0u32, |acc, b| (acc << 7) | u32::from(b & 0x7f)),
    )
}

/// A spread of sizes around a mean, the same for every run: `base + (i · φ) mod spread`.
pub fn spread(i: u32, base: usize, spread: usize) -> usize {
    base + (i as usize).wrapping_mul(2_654_435_761) % spread
}

/// Calls `seen(index, when, bytes)` for every buffer crossing `pad` that is a frame made by
/// [`frame`], at the moment it crosses.
pub fn probe(pad: &gst::Pad, seen: impl Fn(u32, Instant, &[u8]) + Send + Sync + 'static) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let at = Instant::now();
        if let Some(b) = info.buffer()
            && let Ok(m) = b.map_readable()
            && let Some(i) = index(&m)
        {
            seen(i, at, &m);
        }
        gst::PadProbeReturn::Ok
    });
}
