//! The path a row runs over: the relay's impairment ([`PathSpec`]), starting the relay, and
//! the row's whole specification ([`RowSpec`]).

use super::*;

/// What the relay does to the datagrams, in both directions (independently seeded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathSpec {
    /// Independent random loss, in percent of datagrams.
    pub loss_percent: f64,
    // Loss resilience rows (benches/loss_resilience.rs).
    /// Gilbert-Elliott bursts instead of iid loss: (p good → bad, r bad → good), everything
    /// lost in the bad state (`LossModel::gilbert`). `loss_percent` is then only the label's
    /// and the CSV's mean loss, p / (p + r).
    pub gilbert: Option<(f64, f64)>,
    // WAN rows (benches/wan/).
    /// One-way delay of each direction, and its uniform jitter (± this; order kept).
    pub delay: Duration,
    pub jitter: Duration,
}

impl PathSpec {
    /// Independent random loss of `percent` % of datagrams.
    pub fn iid(percent: f64) -> PathSpec {
        PathSpec {
            loss_percent: percent,
            gilbert: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }

    /// Gilbert bursts: good → bad with `p`, bad → good with `r`, all lost in the bad state.
    #[allow(dead_code)] // used by benches/loss_resilience.rs
    pub fn gilbert(p: f64, r: f64) -> PathSpec {
        PathSpec {
            loss_percent: 100.0 * p / (p + r),
            gilbert: Some((p, r)),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }

    /// The same loss over `delay` one way (each direction), jittered by ± `jitter`.
    #[allow(dead_code)] // used by benches/wan/
    pub fn with_delay(self, delay: Duration, jitter: Duration) -> PathSpec {
        PathSpec {
            delay,
            jitter,
            ..self
        }
    }

    pub fn label(&self) -> String {
        let loss = if let Some((p, r)) = self.gilbert {
            format!("GE {} %/{} %", p * 100.0, r * 100.0)
        } else if self.loss_percent == 0.0 {
            "none".into()
        } else {
            format!("{} % iid", self.loss_percent)
        };
        if self.delay.is_zero() && self.jitter.is_zero() {
            return loss;
        }
        format!(
            "{loss}, {} ± {} ms",
            self.delay.as_millis(),
            self.jitter.as_millis()
        )
    }

    fn impairment(&self, seed: u64) -> ImpairConfig {
        ImpairConfig {
            seed,
            loss: if let Some((p, r)) = self.gilbert {
                LossModel::gilbert(p, r)
            } else if self.loss_percent > 0.0 {
                LossModel::Iid(self.loss_percent / 100.0)
            } else {
                LossModel::None
            },
            delay: self.delay,
            jitter: self.jitter,
            ..ImpairConfig::default()
        }
    }
}

/// The one place that builds the project's relay: front socket on 127.0.0.1, port 0, forwarding
/// to `upstream` (the listener), with `path` applied to both directions and `bottleneck` (if
/// any) on the way towards the caller (the video direction).
pub fn start_relay(
    upstream: SocketAddr,
    path: &PathSpec,
    seed: u64,
    bottleneck: Option<&BottleneckConfig>,
) -> io::Result<Relay> {
    Relay::start_with(RelayConfig {
        flows: vec![RelayFlow {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            down: path.impairment(seed),
            up: path.impairment(seed ^ 0x5eed_5eed),
        }],
        down_bottleneck: bottleneck.cloned(),
        up_bottleneck: None,
    })
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct RowSpec {
    pub transport: Transport,
    pub codec: Codec,
    pub path: PathSpec,
    /// Frames measured (after the warm-up).
    pub frames: u32,
    /// Frames at the start left out of every statistic (connection set-up).
    pub warmup: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub key_int: u32,
    pub seed: u64,
    // Congestion control rows (benches/congestion.rs).
    /// Extra `punktfunksink` properties (e.g. `congestion-control=none`).
    pub sink_props: String,
    /// A rate limit with a drop-tail queue on the video direction of the relay.
    pub bottleneck: Option<BottleneckConfig>,
}

impl RowSpec {
    /// The elements this row needs that are not installed.
    pub fn missing_elements(&self) -> Vec<&'static str> {
        let mut need = vec!["videotestsrc", "appsink", "appsrc"];
        need.extend(self.codec.elements());
        need.extend(self.transport.elements());
        if self.transport == Transport::Rtp {
            need.push(self.codec.rtp().1);
        }
        need.into_iter()
            .filter(|e| gst::ElementFactory::find(e).is_none())
            .collect()
    }
}
