//! Trace-driven loss: a text file that says, packet by packet, what happens to each datagram.
//!
//! # Format (version 1)
//!
//! UTF-8 text, one *event* per line; everything from `#` to the end of a line is a comment,
//! blank lines are ignored. An event is
//!
//! ```text
//! EVENT[*COUNT] [+DELAY_US]
//! ```
//!
//! - `EVENT` is `deliver` (or `0`, "not lost") or `drop` (or `1`, "lost") — the `0`/`1` spelling
//!   is the one loss-indicator traces use.
//! - `*COUNT` repeats the event for `COUNT` consecutive packets (1 ..= 4,294,967,295), so long
//!   clean stretches stay one line: `deliver*950`.
//! - `+DELAY_US` (deliveries only) adds that many microseconds of one-way delay to the packet, on
//!   top of the path's fixed delay and jitter (0 ..= 10,000,000, i.e. at most 10 s).
//!
//! The n-th packet a flow offers gets the n-th event. When the trace is exhausted it starts again
//! from the top (a trace is a loop), so a short recording can drive a long run.
//!
//! ```text
//! # synthetic Wi-Fi-like bursts
//! deliver*120
//! drop*3
//! deliver +1800      # a late one (link-layer retries)
//! deliver*40
//! 1
//! 0
//! ```
//!
//! The loader is a firewall like any other decoder of outside bytes: errors name the line and
//! what is wrong, sizes are capped ([`MAX_TRACE_BYTES`], [`MAX_TRACE_LINES`]), nothing panics.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest trace file [`LossTrace::load`] reads.
pub const MAX_TRACE_BYTES: u64 = 64 << 20;

/// Most event lines in one trace (each costs 12 bytes in memory: 48 MB at the limit).
pub const MAX_TRACE_LINES: usize = 4_000_000;

/// Largest per-packet extra delay a trace may ask for, in microseconds (10 s).
pub const MAX_TRACE_DELAY_US: u32 = 10_000_000;

/// Why a trace could not be loaded.
#[derive(Debug)]
pub enum TraceError {
    /// The file could not be read.
    Io {
        /// The file asked for.
        path: PathBuf,
        /// What reading it reported.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_TRACE_BYTES`].
    TooLarge {
        /// The file's size, bytes.
        bytes: u64,
    },
    /// Line `line` (1-based) is not a valid event.
    Line {
        /// The line number, 1-based.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The trace holds no event (only blank lines and comments).
    Empty,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io { path, source } => {
                write!(f, "cannot read trace {}: {source}", path.display())
            }
            TraceError::TooLarge { bytes } => write!(
                f,
                "trace is {bytes} bytes, more than the {MAX_TRACE_BYTES} a trace may have \
                 (use `deliver*N` runs to shorten it)"
            ),
            TraceError::Line { line, message } => write!(f, "trace line {line}: {message}"),
            TraceError::Empty => write!(
                f,
                "trace has no events (expected lines such as `deliver`, `drop*3`, `0`, `1`)"
            ),
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One line of a trace: `count` packets delivered (with `delay_us` extra) or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    deliver: bool,
    count: u32,
    delay_us: u32,
}

/// A parsed loss/arrival trace (see the module docs for the format). Cheap to share: the loss
/// model holds it in an `Arc` and every flow keeps its own position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossTrace {
    runs: Vec<Run>,
    packets: u64,
    dropped: u64,
}

impl LossTrace {
    /// Parses trace text.
    pub fn parse(text: &str) -> Result<LossTrace, TraceError> {
        let mut runs = Vec::new();
        let (mut packets, mut dropped) = (0u64, 0u64);
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            if runs.len() == MAX_TRACE_LINES {
                return Err(TraceError::Line {
                    line,
                    message: format!("more than {MAX_TRACE_LINES} events"),
                });
            }
            let run = parse_line(content).map_err(|message| TraceError::Line { line, message })?;
            packets += u64::from(run.count);
            if !run.deliver {
                dropped += u64::from(run.count);
            }
            runs.push(run);
        }
        if runs.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(LossTrace {
            runs,
            packets,
            dropped,
        })
    }

    /// Reads and parses a trace file.
    pub fn load(path: impl AsRef<Path>) -> Result<LossTrace, TraceError> {
        use std::io::Read;
        let path = path.as_ref();
        let io_err = |source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let mut text = String::new();
        file.take(MAX_TRACE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        if text.len() as u64 > MAX_TRACE_BYTES {
            return Err(TraceError::TooLarge {
                bytes: text.len() as u64,
            });
        }
        LossTrace::parse(&text)
    }

    /// A trace from per-packet outcomes (`None` = dropped, `Some(extra delay)` = delivered),
    /// run-length encoded. Delays are rounded down to microseconds and capped at
    /// [`MAX_TRACE_DELAY_US`]. Returns [`TraceError::Empty`] for no events.
    pub fn from_outcomes(
        outcomes: impl IntoIterator<Item = Option<Duration>>,
    ) -> Result<LossTrace, TraceError> {
        let mut runs: Vec<Run> = Vec::new();
        let (mut packets, mut dropped) = (0u64, 0u64);
        for o in outcomes {
            let run = Run {
                deliver: o.is_some(),
                count: 1,
                delay_us: o.map_or(0, |d| {
                    d.as_micros().min(u128::from(MAX_TRACE_DELAY_US)) as u32
                }),
            };
            packets += 1;
            dropped += u64::from(!run.deliver);
            match runs.last_mut() {
                Some(last)
                    if last.deliver == run.deliver
                        && last.delay_us == run.delay_us
                        && last.count < u32::MAX =>
                {
                    last.count += 1
                }
                _ => runs.push(run),
            }
        }
        if runs.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(LossTrace {
            runs,
            packets,
            dropped,
        })
    }

    /// The trace as text in the format [`LossTrace::parse`] reads (run-length encoded).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for r in &self.runs {
            s.push_str(if r.deliver { "deliver" } else { "drop" });
            if r.count > 1 {
                s.push_str(&format!("*{}", r.count));
            }
            if r.delay_us > 0 {
                s.push_str(&format!(" +{}", r.delay_us));
            }
            s.push('\n');
        }
        s
    }

    /// Packets in one pass of the trace.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Fraction of the packets in one pass that are dropped.
    pub fn mean_loss(&self) -> f64 {
        self.dropped as f64 / self.packets.max(1) as f64
    }
}

fn parse_line(content: &str) -> Result<Run, String> {
    let mut tokens = content.split_whitespace();
    let head = tokens.next().unwrap_or("");
    let (event, count) = match head.split_once('*') {
        Some((e, c)) => {
            let count: u32 = c
                .parse()
                .map_err(|_| format!("bad repeat count `{c}` (expected 1 to {})", u32::MAX))?;
            if count == 0 {
                return Err("repeat count `*0` (expected at least 1)".into());
            }
            (e, count)
        }
        None => (head, 1),
    };
    let deliver = match event {
        "deliver" | "0" => true,
        "drop" | "1" => false,
        other => {
            return Err(format!(
                "unknown event `{other}` (expected deliver, drop, 0 or 1)"
            ));
        }
    };
    let mut delay_us = 0u32;
    if let Some(tok) = tokens.next() {
        let Some(us) = tok.strip_prefix('+') else {
            return Err(format!(
                "unexpected `{tok}` (an extra delay is written `+MICROSECONDS`)"
            ));
        };
        if !deliver {
            return Err("a dropped packet cannot have a delay".into());
        }
        delay_us = us
            .parse::<u32>()
            .ok()
            .filter(|d| *d <= MAX_TRACE_DELAY_US)
            .ok_or_else(|| {
                format!("bad delay `+{us}` (microseconds, 0 to {MAX_TRACE_DELAY_US})")
            })?;
    }
    if let Some(extra) = tokens.next() {
        return Err(format!("unexpected `{extra}` after the event"));
    }
    Ok(Run {
        deliver,
        count,
        delay_us,
    })
}

/// A flow's position in a trace.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceCursor {
    run: usize,
    used: u32,
}

impl TraceCursor {
    /// The next packet's fate: `None` = dropped, `Some(extra delay)` = delivered. Loops.
    pub(crate) fn next(&mut self, trace: &LossTrace) -> Option<Duration> {
        if self.run >= trace.runs.len() {
            self.run = 0;
            self.used = 0;
        }
        let r = trace.runs[self.run];
        self.used += 1;
        if self.used >= r.count {
            self.run += 1;
            self.used = 0;
        }
        r.deliver
            .then(|| Duration::from_micros(u64::from(r.delay_us)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(t: &LossTrace, n: usize) -> Vec<Option<u64>> {
        let mut c = TraceCursor::default();
        (0..n)
            .map(|_| c.next(t).map(|d| d.as_micros() as u64))
            .collect()
    }

    #[test]
    fn parses_every_spelling_and_loops() {
        let t =
            LossTrace::parse("# header\n\ndeliver\ndrop*2  # burst\n0\n1\ndeliver*2 +1500\n  \n")
                .unwrap();
        assert_eq!(t.packets(), 7);
        assert!((t.mean_loss() - 3.0 / 7.0).abs() < 1e-12);
        let d = Some(0);
        let late = Some(1500);
        assert_eq!(
            outcomes(&t, 9),
            vec![d, None, None, d, None, late, late, d, None]
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases = [
            ("deliver\ndorp\n", 2, "unknown event `dorp`"),
            ("drop +5\n", 1, "cannot have a delay"),
            ("deliver*0\n", 1, "*0"),
            ("deliver*x\n", 1, "bad repeat count"),
            ("deliver 5\n", 1, "+MICROSECONDS"),
            ("deliver +99999999999\n", 1, "bad delay"),
            ("deliver +10 +20\n", 1, "unexpected `+20`"),
        ];
        for (text, line, needle) in cases {
            let e = LossTrace::parse(text).unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(e, TraceError::Line { line: l, .. } if l == line),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
        assert!(matches!(
            LossTrace::parse("# only\n\n"),
            Err(TraceError::Empty)
        ));
        let e = LossTrace::load("/nonexistent/punktfunk.trace").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/punktfunk.trace"),
            "{e}"
        );
    }

    #[test]
    fn text_round_trips_through_outcomes() {
        let us = Duration::from_micros;
        let src = [
            Some(us(0)),
            Some(us(0)),
            None,
            None,
            None,
            Some(us(250)),
            Some(us(0)),
        ];
        let t = LossTrace::from_outcomes(src).unwrap();
        assert_eq!(t.to_text(), "deliver*2\ndrop*3\ndeliver +250\ndeliver\n");
        assert_eq!(LossTrace::parse(&t.to_text()).unwrap(), t);
        let mut c = TraceCursor::default();
        let back: Vec<_> = (0..7).map(|_| c.next(&t)).collect();
        assert_eq!(back, src);
    }

    #[test]
    fn hostile_input_never_panics() {
        for text in [
            "*",
            "**",
            "deliver*",
            "+",
            "deliver +",
            "deliver +-1",
            "\u{0}",
            "drop*4294967296",
            "deliver*4294967295 +10000000",
        ] {
            let _ = LossTrace::parse(text);
        }
        let t = LossTrace::parse("deliver*4294967295\ndrop*4294967295").unwrap();
        assert_eq!(t.packets(), 2 * u64::from(u32::MAX));
    }
}
