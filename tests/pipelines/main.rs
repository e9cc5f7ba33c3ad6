//! Whole-pipeline tests: real encoders (`x264enc`, `x265enc`) → `punktfunksink` → (impairment
//! relay) → `punktfunksrc` → real decoders (`avdec_h264`, `avdec_h265`), over 127.0.0.1 on
//! ephemeral ports.
//!
//! What they show: access units arrive byte-exact through 5 % loss and every frame decodes; an
//! unrecoverable loss heals through the keyframe loop without a broken frame reaching the
//! decoder; Navigation events and gamepad signals reach the host; host EOS ends the client;
//! client and host restarts recover; a wrong passphrase delivers nothing; play/stop cycles leak
//! nothing; `playbin` opens `punktfunk://` URIs; a host chain and a client chain share one
//! pipeline with default properties.
//!
//! Synchronisation is on real signals only — bus messages, pad probes and the first blocked
//! buffer, all through channels with timeouts — never on sleeps. The tests run one at a time
//! (see [`support::serial`]).

mod control;
mod lifecycle;
mod loss;
mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::NavigationEvent;
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::Relay;

use support::{
    Au, DropRelay, Pipe, Tap, WAIT, bound_port, call_the_sinks_port, fd_count, pad, serial, stat,
    thread_count,
};

const PEER_CONNECTED: &str = "punktfunk-peer-connected";
const PEER_DISCONNECTED: &str = "punktfunk-peer-disconnected";
const INPUT: &str = "punktfunk-input";

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An encoder and the decoder chain for its stream.
struct Codec {
    name: &'static str,
    bitstream: Bitstream,
    enc: &'static str,
    caps: &'static str,
    parse: &'static str,
    dec: &'static str,
}

const H264: Codec = Codec {
    name: "H.264",
    bitstream: Bitstream::H264,
    enc: "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30",
    caps: "video/x-h264,stream-format=byte-stream,alignment=au",
    parse: "h264parse",
    dec: "avdec_h264",
};

const H265: Codec = Codec {
    name: "HEVC",
    bitstream: Bitstream::H265,
    enc: "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30",
    caps: "video/x-h265,stream-format=byte-stream,alignment=au",
    parse: "h265parse",
    dec: "avdec_h265",
};

/// A live test pattern at 320x240 → encoder (named `enc`) → `punktfunksink` (named `sink`,
/// listening on 127.0.0.1 on an ephemeral port).
fn host_desc(
    codec: &Codec,
    src_props: &str,
    fps: u32,
    enc_props: &str,
    sink_props: &str,
) -> String {
    format!(
        "videotestsrc is-live=true {src_props} \
         ! video/x-raw,width=320,height=240,framerate={fps}/1 \
         ! {enc} {enc_props} name=enc ! {caps} \
         ! punktfunksink name=sink address=127.0.0.1 port=0 {sink_props}",
        enc = codec.enc,
        caps = codec.caps,
    )
}

/// A host streaming H.264 until stopped.
fn live_host(sink_props: &str) -> Pipe {
    Pipe::launch("host", &host_desc(&H264, "", 30, "", sink_props))
}

/// `punktfunksrc` (named `src`) calling `port` → parser → decoder (named `dec`) → `fakesink`
/// (named `out`).
fn decoding_client(codec: &Codec, port: u16, src_props: &str) -> Pipe {
    Pipe::launch(
        "client",
        &format!(
            "punktfunksrc name=src port={port} {src_props} ! {parse} ! {dec} name=dec \
             ! fakesink name=out sync=false",
            parse = codec.parse,
            dec = codec.dec,
        ),
    )
}

#[derive(Clone, Copy)]
enum Bitstream {
    H264,
    H265,
}

impl Bitstream {
    /// (parameter set, SPS, slice) for a NAL unit header byte.
    fn classify(self, header: u8) -> (bool, bool, bool) {
        match self {
            Bitstream::H264 => {
                let t = header & 0x1f;
                (t == 7 || t == 8, t == 7, (1..=5).contains(&t))
            }
            Bitstream::H265 => {
                let t = (header >> 1) & 0x3f;
                ((32..=34).contains(&t), t == 33, t <= 31)
            }
        }
    }

    /// The parameter-set NAL units (each with its start code) in front of the first slice of
    /// an Annex-B access unit, and whether an SPS is among them.
    fn leading_parameter_sets(self, au: &[u8]) -> (Vec<u8>, bool) {
        // Start codes `00 00 01`; a unit starts at its start code (with the zero in front of
        // a 4-byte one) and ends where the next unit starts.
        let mut starts: Vec<(usize, usize)> = Vec::new(); // (unit start, header index)
        let mut i = 0;
        while i + 3 < au.len() {
            if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
                let unit = if i > 0 && au[i - 1] == 0 { i - 1 } else { i };
                starts.push((unit, i + 3));
                i += 3;
            } else {
                i += 1;
            }
        }
        let (mut params, mut has_sps) = (Vec::new(), false);
        for (n, &(unit, header)) in starts.iter().enumerate() {
            let (param, sps, slice) = self.classify(au[header]);
            if slice {
                break;
            }
            if param {
                let end = starts.get(n + 1).map_or(au.len(), |&(next, _)| next);
                params.extend_from_slice(&au[unit..end]);
                has_sps |= sps;
            }
        }
        (params, has_sps)
    }
}

/// What the host's access units look like on the wire, per the sink's contract: unchanged,
/// except that a keyframe without an SPS gets the latest parameter sets in front (so a client
/// that joins at a forced keyframe can decode). Returns them and how many got parameter sets.
fn on_the_wire(bitstream: Bitstream, sent: &[Au]) -> (Vec<Au>, usize) {
    let mut cached: Vec<u8> = Vec::new();
    let mut prepended = 0;
    let wire = sent
        .iter()
        .map(|a| {
            let (params, has_sps) = bitstream.leading_parameter_sets(&a.data);
            let mut data = a.data.clone();
            if has_sps {
                cached = params;
            } else if a.keyframe() && !cached.is_empty() {
                data = [&cached[..], &a.data[..]].concat();
                prepended += 1;
            }
            Au {
                data,
                flags: a.flags,
            }
        })
        .collect();
    (wire, prepended)
}

fn iid_loss(p: f64, seed: u64) -> ImpairConfig {
    ImpairConfig {
        seed,
        loss: LossModel::Iid(p),
        ..ImpairConfig::default()
    }
}

fn is_force_key_unit(e: &gst::Event) -> bool {
    gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok()
}

fn is_navigation(e: &gst::Event) -> bool {
    e.type_() == gst::EventType::Navigation
}

/// A DELTA_UNIT buffer that also carries DISCONT: a decoder would get a frame whose reference
/// is missing.
fn is_broken_delta(a: &Au) -> bool {
    a.flags
        .contains(gst::BufferFlags::DELTA_UNIT | gst::BufferFlags::DISCONT)
}

/// Checks that `received` is `sent` (as on the wire) with only whole runs of frames left out,
/// each run followed by a keyframe flagged DISCONT (what `wait-for-keyframe` must do after a
/// loss), every access unit byte-exact. Returns the number of runs left out after the first received frame.
fn check_gaps_heal_at_keyframes(sent: &[Au], received: &[Au]) -> usize {
    let mut next = 0; // index in `sent` of the next expected access unit
    let mut gaps = 0;
    for (i, r) in received.iter().enumerate() {
        // Earliest match first, so a contiguous match always wins over a gap.
        let j = (next..sent.len())
            .find(|&j| sent[j].data == r.data)
            .unwrap_or_else(|| {
                panic!(
                    "received access unit {i} ({r:?}) matches no sent access unit at or after {next} \
                     (of {}): not byte-exact or out of order",
                    sent.len()
                )
            });
        assert_eq!(
            r.keyframe(),
            sent[j].keyframe(),
            "received access unit {i} and sent {j}: keyframe flags differ"
        );
        if j > next || i == 0 {
            assert!(
                r.keyframe(),
                "received access unit {i} follows left-out frames {next}..{j} but is not a keyframe: \
                 a decoder would get a broken reference"
            );
            assert!(
                r.flags.contains(gst::BufferFlags::DISCONT),
                "received access unit {i} follows left-out frames {next}..{j} without DISCONT"
            );
            if i > 0 {
                gaps += 1;
            }
        }
        next = j + 1;
    }
    gaps
}
