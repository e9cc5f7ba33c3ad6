//! `punktfunksink`'s own properties: their declarations (ParamSpecs, after the common ones),
//! their values ([`SinkSettings`]) and defaults, and their part of the session configuration
//! (FEC, MTU, pacing, repair budget, congestion control, DSCP).
//!
//! Owns: the `GstPunktfunkFecMode` enum type and the sink's `DEFAULT_*` values. Must never: hold
//! a lock or do I/O (plain data, copied out by the element before any work).

use gst::glib;
use gst::prelude::*;

use crate::element::properties::common_properties;
use crate::element::settings::{ConnectionMode, OwnSettings};
use crate::protocol::security::handshake::Role;
use crate::protocol::time::pacing::PacingConfig;
use crate::protocol::wire::{DEFAULT_MTU, MAX_DATAGRAM_BYTES, MIN_MTU};
use crate::session::{
    Config, CongestionConfig, DEFAULT_CLIENT_BITRATE_FLOOR_BPS, InputFrom, MAX_CLIENTS,
};
use crate::transport::udp::UdpOptions;

use super::congestion::{
    CongestionControl, DEFAULT_CONGESTION_CONTROL, DEFAULT_ENCODER_BUFFER_MS, DEFAULT_LINK_SHARE,
    DEFAULT_MAX_BITRATE, DEFAULT_MIN_BITRATE,
};

pub(crate) const DEFAULT_FEC_PERCENT: u32 = 20;
pub(crate) const DEFAULT_FEC_MODE: FecModeSetting = FecModeSetting::Target;
pub(crate) const DEFAULT_PACING_RATE: u64 = 0;
pub(crate) const DEFAULT_DSCP: u32 = 0;
// Defaults from the session's `Config` (see docs/PROTOCOL.md §9, §10).
pub(crate) const DEFAULT_FEC_TARGET: f64 = crate::protocol::fec::adaptive::DEFAULT_TARGET;
pub(crate) const DEFAULT_FEC_FLOOR: u32 = 5;
pub(crate) const DEFAULT_FEC_CEILING: u32 = 100;
pub(crate) const DEFAULT_REPAIR_SHARE: f64 = 0.25;
pub(crate) const DEFAULT_MAX_CLIENTS: u32 = 1;
pub(crate) const DEFAULT_CLIENT_BITRATE_FLOOR_KBPS: u32 =
    (DEFAULT_CLIENT_BITRATE_FLOOR_BPS / 1000) as u32;

/// `punktfunksink`'s own properties.
#[derive(Debug, Clone)]
pub(crate) struct SinkSettings {
    pub(crate) fec_percent: u32,
    pub(crate) fec_mode: FecModeSetting,
    pub(crate) mtu: u32,
    pub(crate) pacing_rate: u64,
    pub(crate) dscp: u32,
    pub(crate) fec_target: f64,
    pub(crate) fec_floor: u32,
    pub(crate) fec_ceiling: u32,
    pub(crate) repair_share: f64,
    pub(crate) congestion_control: CongestionControl,
    pub(crate) min_bitrate: u64,
    pub(crate) max_bitrate: u64,
    pub(crate) encoder_buffer: u32,
    pub(crate) link_share: u32,
    pub(crate) max_clients: u32,
    pub(crate) input_from: InputFromSetting,
    pub(crate) client_bitrate_floor: u32,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            fec_percent: DEFAULT_FEC_PERCENT,
            fec_mode: DEFAULT_FEC_MODE,
            mtu: DEFAULT_MTU as u32,
            pacing_rate: DEFAULT_PACING_RATE,
            dscp: DEFAULT_DSCP,
            fec_target: DEFAULT_FEC_TARGET,
            fec_floor: DEFAULT_FEC_FLOOR,
            fec_ceiling: DEFAULT_FEC_CEILING,
            repair_share: DEFAULT_REPAIR_SHARE,
            congestion_control: DEFAULT_CONGESTION_CONTROL,
            min_bitrate: DEFAULT_MIN_BITRATE,
            max_bitrate: DEFAULT_MAX_BITRATE,
            encoder_buffer: DEFAULT_ENCODER_BUFFER_MS,
            link_share: DEFAULT_LINK_SHARE,
            max_clients: DEFAULT_MAX_CLIENTS,
            input_from: InputFromSetting::First,
            client_bitrate_floor: DEFAULT_CLIENT_BITRATE_FLOOR_KBPS,
        }
    }
}

impl OwnSettings for SinkSettings {
    const ROLE: Role = Role::Host;
    const DEFAULT_MODE: ConnectionMode = ConnectionMode::Listener;

    fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "fec-percent" => self.fec_percent = value.get().unwrap_or(DEFAULT_FEC_PERCENT),
            "fec-mode" => self.fec_mode = value.get().unwrap_or(DEFAULT_FEC_MODE),
            "mtu" => self.mtu = value.get().unwrap_or(DEFAULT_MTU as u32),
            "pacing-rate" => self.pacing_rate = value.get().unwrap_or(DEFAULT_PACING_RATE),
            "dscp" => self.dscp = value.get().unwrap_or(DEFAULT_DSCP),
            "fec-target" => self.fec_target = value.get().unwrap_or(DEFAULT_FEC_TARGET),
            "fec-floor" => self.fec_floor = value.get().unwrap_or(DEFAULT_FEC_FLOOR),
            "fec-ceiling" => self.fec_ceiling = value.get().unwrap_or(DEFAULT_FEC_CEILING),
            "repair-share" => self.repair_share = value.get().unwrap_or(DEFAULT_REPAIR_SHARE),
            "congestion-control" => {
                self.congestion_control = value.get().unwrap_or(DEFAULT_CONGESTION_CONTROL)
            }
            "min-bitrate" => self.min_bitrate = value.get().unwrap_or(DEFAULT_MIN_BITRATE),
            "max-bitrate" => self.max_bitrate = value.get().unwrap_or(DEFAULT_MAX_BITRATE),
            "encoder-buffer" => {
                self.encoder_buffer = value.get().unwrap_or(DEFAULT_ENCODER_BUFFER_MS)
            }
            "link-share" => self.link_share = value.get().unwrap_or(DEFAULT_LINK_SHARE),
            "max-clients" => self.max_clients = value.get().unwrap_or(DEFAULT_MAX_CLIENTS),
            "input-from" => self.input_from = value.get().unwrap_or(InputFromSetting::First),
            "client-bitrate-floor" => {
                self.client_bitrate_floor = value.get().unwrap_or(DEFAULT_CLIENT_BITRATE_FLOOR_KBPS)
            }
            _ => return false,
        }
        true
    }

    fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "fec-percent" => self.fec_percent.to_value(),
            "fec-mode" => self.fec_mode.to_value(),
            "mtu" => self.mtu.to_value(),
            "pacing-rate" => self.pacing_rate.to_value(),
            "dscp" => self.dscp.to_value(),
            "fec-target" => self.fec_target.to_value(),
            "fec-floor" => self.fec_floor.to_value(),
            "fec-ceiling" => self.fec_ceiling.to_value(),
            "repair-share" => self.repair_share.to_value(),
            "congestion-control" => self.congestion_control.to_value(),
            "min-bitrate" => self.min_bitrate.to_value(),
            "max-bitrate" => self.max_bitrate.to_value(),
            "encoder-buffer" => self.encoder_buffer.to_value(),
            "link-share" => self.link_share.to_value(),
            "max-clients" => self.max_clients.to_value(),
            "input-from" => self.input_from.to_value(),
            "client-bitrate-floor" => self.client_bitrate_floor.to_value(),
            _ => return None,
        })
    }

    fn configure(&self, config: &mut Config) {
        config.fec_percent = self.fec_percent.min(100) as u8;
        config.fec_mode = self.fec_mode.into();
        config.mtu = self.mtu as usize;
        config.fec_target.target = self.fec_target;
        config.fec_target.floor_percent = self.fec_floor.min(100) as u8;
        config.fec_target.ceiling_percent = self.fec_ceiling.min(200) as u16;
        config.repair_history.budget_share = self.repair_share;
        config.pacing = PacingConfig {
            rate_bps: self.pacing_rate,
            ..PacingConfig::default()
        };
        let cc = self.congestion_control;
        config.congestion = CongestionConfig {
            enabled: cc != CongestionControl::None,
            pace: cc == CongestionControl::Encoder,
            min_bitrate_bps: self.min_bitrate,
            max_bitrate_bps: self.max_bitrate,
            start_bitrate_bps: 0,
            link_share_percent: self.link_share,
        };
        config.max_clients = self.max_clients.clamp(1, MAX_CLIENTS as u32) as usize;
        config.input_from = self.input_from.into();
        config.client_bitrate_floor_bps = u64::from(self.client_bitrate_floor) * 1000;
    }

    fn udp_options(&self) -> UdpOptions {
        UdpOptions {
            dscp: self.dscp.min(63) as u8,
            ..UdpOptions::default()
        }
    }
}

/// How the sink chooses its FEC share (the `fec-mode` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPunktfunkFecMode")]
pub(crate) enum FecModeSetting {
    #[enum_value(name = "Fixed: always fec-percent", nick = "fixed")]
    Fixed = 0,
    /// Deprecated alias of `Target`, kept so that existing pipelines still parse.
    #[enum_value(name = "Adaptive: deprecated alias of target", nick = "adaptive")]
    Adaptive = 1,
    #[enum_value(
        name = "Target: per block, the least parity that keeps its failure probability under fec-target, from the client's loss model",
        nick = "target"
    )]
    Target = 2,
}

/// Whose input the sink takes when several clients watch (the `input-from` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPunktfunkInputFrom")]
pub(crate) enum InputFromSetting {
    #[enum_value(
        name = "First: the first client to connect controls, the others watch",
        nick = "first"
    )]
    First = 0,
    #[enum_value(name = "All: every client's input is taken", nick = "all")]
    All = 1,
    #[enum_value(
        name = "None: nobody controls until the give-control signal names a client",
        nick = "none"
    )]
    None = 2,
}

impl From<InputFromSetting> for InputFrom {
    fn from(s: InputFromSetting) -> Self {
        match s {
            InputFromSetting::First => InputFrom::First,
            InputFromSetting::All => InputFrom::All,
            InputFromSetting::None => InputFrom::None,
        }
    }
}

/// The warning the sink posts when `fec-mode=adaptive` is set.
pub(crate) const FEC_MODE_ADAPTIVE_DEPRECATED: &str =
    "fec-mode=adaptive is deprecated and now means fec-mode=target; set fec-mode=target";

impl From<FecModeSetting> for crate::protocol::fec::adaptive::FecMode {
    fn from(m: FecModeSetting) -> Self {
        match m {
            FecModeSetting::Fixed => Self::Fixed,
            // `adaptive` is an alias: `fec-percent` then means what it means under `target`
            // (the share until the first loss model report).
            FecModeSetting::Adaptive | FecModeSetting::Target => Self::Target,
        }
    }
}

/// Registers the sink's enum types for documentation (gst-inspect shows them).
pub(crate) fn mark_plugin_api() {
    FecModeSetting::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    CongestionControl::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    InputFromSetting::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
}

/// The properties of `punktfunksink`.
pub(crate) fn properties() -> Vec<glib::ParamSpec> {
    let mut props = common_properties(ConnectionMode::Listener);
    props.extend([
                glib::ParamSpecUInt::builder("fec-percent")
                    .nick("FEC percent")
                    .blurb(
                        "Parity share of every FEC block in percent (0 = no FEC; at least 2 parity shards a block when on). Default 20",
                    )
                    .maximum(100)
                    .default_value(DEFAULT_FEC_PERCENT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("fec-mode", DEFAULT_FEC_MODE)
                    .nick("FEC mode")
                    .blurb(
                        "fixed: always fec-percent; target: per block, the least parity that keeps the block's failure probability under fec-target, from the client's loss model (fec-percent until the first report); adaptive: deprecated alias of target. Default target",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("mtu")
                    .nick("MTU")
                    .blurb(
                        "Largest datagram (UDP payload) in bytes; 1400 (default) fits a 1500-byte path with IPv6 and tunnel headers",
                    )
                    .minimum(MIN_MTU as u32)
                    .maximum(MAX_DATAGRAM_BYTES as u32)
                    .default_value(DEFAULT_MTU as u32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("pacing-rate")
                    .nick("Pacing rate")
                    .blurb(
                        "Sending rate after a frame's initial burst, in bits per second (0 = automatic, the default: a frame is spread over half its frame interval, at least 200 Mbit/s). A rate too low to send a frame within one frame interval is raised for that frame, so the streaming thread never blocks longer than a frame interval",
                    )
                    .default_value(DEFAULT_PACING_RATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("dscp")
                    .nick("DSCP")
                    .blurb(
                        "DiffServ code point for outgoing datagrams (0..63, e.g. 46 = EF, 34 = AF41; 0 = leave unmarked, the default)",
                    )
                    .maximum(63)
                    .default_value(DEFAULT_DSCP)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("fec-target")
                    .nick("FEC target")
                    .blurb(
                        "fec-mode=target: the largest acceptable probability that a block cannot be rebuilt by FEC (repair covers the rest within the deadline). Default 0.001",
                    )
                    .minimum(1e-9)
                    .maximum(0.5)
                    .default_value(DEFAULT_FEC_TARGET)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fec-floor")
                    .nick("FEC floor")
                    .blurb(
                        "fec-mode=target: least parity per block in percent (never below 2 shards). Default 5",
                    )
                    .maximum(100)
                    .default_value(DEFAULT_FEC_FLOOR)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fec-ceiling")
                    .nick("FEC ceiling")
                    .blurb(
                        "fec-mode=target: most parity per block in percent (never below 8 shards or the floor). Default 100",
                    )
                    .maximum(200)
                    .default_value(DEFAULT_FEC_CEILING)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("repair-share")
                    .nick("Repair share")
                    .blurb(
                        "Repair bytes allowed per media byte on average (new parity sent when the receiver asks; 0 = no repair). Default 0.25",
                    )
                    .minimum(0.0)
                    .maximum(4.0)
                    .default_value(DEFAULT_REPAIR_SHARE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(
                    "congestion-control",
                    DEFAULT_CONGESTION_CONTROL,
                )
                .nick("Congestion control")
                .blurb(
                    "none: fixed bitrate and pacing; report: estimate the path's bandwidth and post punktfunk-bandwidth messages; encoder (default): also set the upstream encoder's bitrate to the estimate (never above the bitrate configured on it, nor max-bitrate) and pace at it",
                )
                .mutable_ready()
                .build(),
                glib::ParamSpecUInt64::builder("min-bitrate")
                    .nick("Minimum bitrate")
                    .blurb(
                        "Congestion control never sets the encoder below this, in bits per second (default 500000)",
                    )
                    .default_value(DEFAULT_MIN_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bitrate")
                    .nick("Maximum bitrate")
                    .blurb(
                        "Congestion control never sets the encoder above this, in bits per second (0 = no cap beyond the bitrate configured on the encoder, the default)",
                    )
                    .default_value(DEFAULT_MAX_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("encoder-buffer")
                    .nick("Encoder buffer")
                    .blurb(
                        "With congestion-control=encoder: bound the upstream encoder's rate-control buffer (x264enc vbv-buf-capacity, nvenc vbv-buffer-size, vaapi cpb-length, va cpb-size) to this many milliseconds of its bitrate when the stream starts, so no frame (keyframes included) is much larger than that share of the path; a smaller buffer set on the encoder stays. default 34 = two frames at 60 fps; 0 = leave the encoder's buffer alone",
                    )
                    .maximum(10_000)
                    .default_value(DEFAULT_ENCODER_BUFFER_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("link-share")
                    .nick("Link share")
                    .blurb(
                        "Congestion control: the largest share, in percent, of the path's rate (measured from how the bottleneck spreads each frame) the stream may take, FEC and headers included. 100 (default) = as much as the path carries without a standing queue; less leaves each frame interval partly free, so frames cross sooner: at 60 fps, 60 keeps a frame's crossing near 10 ms, at the cost of bitrate",
                    )
                    .minimum(10)
                    .maximum(100)
                    .default_value(DEFAULT_LINK_SHARE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-clients")
                    .nick("Maximum clients")
                    .blurb(
                        "mode=listener: how many punktfunksrc callers it serves at once from one encoder, each with its own handshake, keys, FEC, repair and congestion estimate (1..64). A caller beyond the limit is refused as busy before any cryptography and gets in when a client leaves or times out. Default 1: one client, a newcomer waits until the current one stops answering",
                    )
                    .minimum(1)
                    .maximum(MAX_CLIENTS as u32)
                    .default_value(DEFAULT_MAX_CLIENTS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("input-from", InputFromSetting::First)
                    .nick("Input from")
                    .blurb(
                        "Whose input becomes upstream navigation events and punktfunk-input messages: first (default: the first client to connect controls, the others watch; when it leaves the longest connected client takes over), all, or none (until the give-control signal names a client). Input from a watching client is dropped and counted",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("client-bitrate-floor")
                    .nick("Client bitrate floor")
                    .blurb(
                        "max-clients > 1 with congestion control: the encoder follows the slowest client's bandwidth estimate down to this, in kbit/s; a client slower than it drops frames and recovers with its own keyframe requests instead of lowering everyone's picture. Default 3000",
                    )
                    .default_value(DEFAULT_CLIENT_BITRATE_FLOOR_KBPS)
                    .mutable_ready()
                    .build(),
    ]);
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sink's properties that take effect while playing: `stats-interval` only (the others
    /// get the "takes effect at the next start" warning).
    #[test]
    fn only_stats_interval_changes_while_playing() {
        gst::init().unwrap();
        let live = crate::element::properties::live_property_names(&properties());
        assert_eq!(live, ["stats-interval"]);
    }

    /// `fec-mode=adaptive` configures the session exactly as `fec-mode=target` does, so
    /// `fec-percent` keeps one meaning.
    #[test]
    fn fec_mode_adaptive_is_target() {
        use crate::protocol::fec::adaptive::FecMode;
        use crate::session::Mode;
        gst::init().unwrap();
        let configured = |mode: FecModeSetting| {
            let mut s = SinkSettings::default();
            assert!(s.set("fec-percent", &7u32.to_value()));
            assert!(s.set("fec-mode", &mode.to_value()));
            let mut config = Config::new(Role::Host, Mode::Listener);
            s.configure(&mut config);
            (config.fec_mode, config.fec_percent)
        };
        assert_eq!(configured(FecModeSetting::Adaptive), (FecMode::Target, 7));
        assert_eq!(
            configured(FecModeSetting::Adaptive),
            configured(FecModeSetting::Target)
        );
        assert_eq!(configured(FecModeSetting::Fixed), (FecMode::Fixed, 7));
    }
}
