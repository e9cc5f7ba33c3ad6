//! The two primitives that every limit in [`super`] is built from: a [`TokenBucket`] on virtual
//! time and the [`SourceKey`] that per-source state is kept under.
//!
//! Owns no policy: [`super::ratelimit`] and [`super::guessing`] decide what a token pays for.
//! Must never read a clock (the time of each call is an argument).

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` stored.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate_per_s: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate_per_s.max(0.0),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if now > self.last {
            self.last = now;
        }
    }

    /// Tokens available now.
    pub(crate) fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Returns `n` tokens taken earlier (never above the burst).
    pub(crate) fn put_back(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + n.max(0.0)).min(self.burst);
    }

    /// How long until the bucket is full again from empty (entries idle that long are fresh).
    pub(crate) fn refill_time(&self) -> Duration {
        if self.rate > 0.0 {
            Duration::from_secs_f64(self.burst / self.rate)
        } else {
            Duration::MAX
        }
    }
}

/// A source as rate limiting sees it: an IPv4 address or an IPv6 /64 (one host usually owns a
/// whole /64, so per-address limits would be free to evade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SourceKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl SourceKey {
    pub(crate) fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&v6.octets()[..8]);
                    SourceKey::V6Prefix(p)
                }
            },
        }
    }
}
