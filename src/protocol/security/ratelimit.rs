//! Handshake admission for a listener: token buckets per source and in total, on `now: Instant`,
//! and the decision whether a hello is processed, answered with a cookie, or dropped.
//!
//! Why: a hello costs the listener a SPAKE2 and an X25519 exchange (~0.2 ms) and a pending
//! session; a flood of (possibly replayed, possibly spoofed) hellos must neither starve a
//! legitimate caller nor make the listener an amplifier. [`HandshakeGate::admit`] decides in a
//! few hash lookups, before any crypto:
//!
//! 1. A hello with a valid cookie proved its source address ([`super::cookie`]).
//! 2. Under load (the global bucket is below half, or the connection says its pending sessions
//!    are full or the source has a passphrase guess outstanding), a hello without one is
//!    answered with a CookieReply (itself limited by a reply bucket) and costs no other state:
//!    spoofed sources never get further.
//! 3. Otherwise the source's bucket (IPv4 address or IPv6 /64) and the global bucket must each
//!    give a token; failed and successful handshakes count alike. (What an answered hello
//!    costs against passphrase guessing is decided after this gate, by
//!    [`super::guessing::GuessBudget`].)
//!
//! The per-source map is bounded ([`RateLimitConfig::max_sources`]): idle entries (whose bucket
//! has refilled, so forgetting them changes nothing) are dropped once a second, and when it is
//! still full the least recently seen source is evicted. This module owns no sockets and reads
//! no clock; it never sees handshake bytes beyond the cookie.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::bucket::{SourceKey, TokenBucket};
use super::cookie::{Cookie, CookieSecret};
use super::guessing::GuessConfig;

/// Limits of a [`RateLimiter`] and a [`HandshakeGate`].
#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    /// Hellos a second from one source (WireGuard uses 20).
    pub per_source_rate: f64,
    /// Hellos one source may send at once before its rate applies.
    pub per_source_burst: f64,
    /// Hellos a second processed in total: ~0.2 ms each, so 500/s is a tenth of a core.
    pub global_rate: f64,
    /// Hellos processed at once in total before the global rate applies.
    pub global_burst: f64,
    /// Cookie replies a second in total (each no larger than the hello it answers).
    pub reply_rate: f64,
    /// Cookie replies sent at once before their rate applies.
    pub reply_burst: f64,
    /// Sources tracked at once (~64 bytes each).
    pub max_sources: usize,
    /// The passphrase-guessing budget: what a hello that gets through costs when it is
    /// answered (see [`super::guessing`]).
    pub guesses: GuessConfig,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_source_rate: 20.0,
            per_source_burst: 5.0,
            global_rate: 500.0,
            global_burst: 100.0,
            reply_rate: 2_000.0,
            reply_burst: 200.0,
            max_sources: 4_096,
            guesses: GuessConfig::default(),
        }
    }
}

struct Entry {
    bucket: TokenBucket,
    last_seen: Instant,
}

/// Per-source buckets in a bounded map, plus a global bucket. See the module docs.
pub(crate) struct RateLimiter {
    cfg: RateLimitConfig,
    sources: HashMap<SourceKey, Entry>,
    global: TokenBucket,
    last_gc: Instant,
}

impl RateLimiter {
    pub(crate) fn new(cfg: RateLimitConfig, now: Instant) -> RateLimiter {
        RateLimiter {
            cfg,
            sources: HashMap::new(),
            global: TokenBucket::new(cfg.global_rate, cfg.global_burst, now),
            last_gc: now,
        }
    }

    /// Sources tracked now (never above `max_sources`).
    pub(crate) fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Whether the global bucket is below half: the gate asks for cookies then.
    pub(crate) fn busy(&mut self, now: Instant) -> bool {
        self.global.level(now) < self.cfg.global_burst / 2.0
    }

    /// Takes a token from `ip`'s bucket and then from the global one; false if either is empty
    /// (a refused source does not drain the global bucket).
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = SourceKey::of(ip);
        if !self.sources.contains_key(&key) {
            self.make_room(now);
            let bucket = TokenBucket::new(self.cfg.per_source_rate, self.cfg.per_source_burst, now);
            self.sources.insert(
                key,
                Entry {
                    bucket,
                    last_seen: now,
                },
            );
        }
        let Some(e) = self.sources.get_mut(&key) else {
            return false;
        };
        e.last_seen = now;
        e.bucket.take(now) && self.global.take(now)
    }

    fn make_room(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_gc) >= Duration::from_secs(1)
            || self.sources.len() >= self.cfg.max_sources
        {
            self.last_gc = now;
            let idle = TokenBucket::new(self.cfg.per_source_rate, self.cfg.per_source_burst, now)
                .refill_time();
            self.sources
                .retain(|_, e| now.saturating_duration_since(e.last_seen) < idle);
        }
        while self.sources.len() >= self.cfg.max_sources.max(1) {
            let oldest = self
                .sources
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.sources.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// What to do with a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Run the handshake ([`super::handshake::Responder::respond`]).
    Process,
    /// Answer with this cookie ([`super::cookie::encode_reply`]) and keep nothing.
    SendCookie(Cookie),
    /// Drop silently (counted by the caller).
    Drop,
}

/// The listener's handshake admission: rate limits and cookies. See the module docs.
pub struct HandshakeGate {
    limiter: RateLimiter,
    cookies: CookieSecret,
    replies: TokenBucket,
}

impl HandshakeGate {
    /// A gate with the limits of `cfg` and a fresh random cookie secret.
    pub fn new(cfg: RateLimitConfig, now: Instant) -> HandshakeGate {
        HandshakeGate::with_cookie_secret(cfg, CookieSecret::new(now), now)
    }

    /// With a given cookie secret (tests, fuzzing).
    pub fn with_cookie_secret(
        cfg: RateLimitConfig,
        cookies: CookieSecret,
        now: Instant,
    ) -> HandshakeGate {
        HandshakeGate {
            limiter: RateLimiter::new(cfg, now),
            cookies,
            replies: TokenBucket::new(cfg.reply_rate, cfg.reply_burst, now),
        }
    }

    /// Decides about a hello from `from` carrying `cookie` (from
    /// [`super::handshake::peek_hello`]). `prove`: ask for a cookie whatever the load (the
    /// connection has no free slot for another unconfirmed session without evicting one, or the
    /// source has a guess outstanding).
    pub fn admit(
        &mut self,
        from: SocketAddr,
        cookie: Option<&Cookie>,
        prove: bool,
        now: Instant,
    ) -> Admission {
        let proven = cookie.is_some_and(|c| self.cookies.verify(from, c, now));
        if !proven && (prove || self.limiter.busy(now)) {
            return if self.replies.take(now) {
                Admission::SendCookie(self.cookies.make(from, now))
            } else {
                Admission::Drop
            };
        }
        if self.limiter.allow(from.ip(), now) {
            Admission::Process
        } else {
            Admission::Drop
        }
    }

    /// Sources tracked by the rate limiter.
    pub fn tracked_sources(&self) -> usize {
        self.limiter.tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_refills_on_virtual_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + ms(99)));
        assert!(b.take(t0 + ms(100)));
        assert!(!b.take(t0 + ms(150)));
        // Never more than the burst, however long idle.
        assert_eq!(b.level(t0 + Duration::from_secs(3600)), 3.0);
        // A clock that goes backwards takes nothing away.
        assert_eq!(b.level(t0), 3.0);
    }

    #[test]
    fn per_source_limit_does_not_drain_the_global_bucket() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(RateLimitConfig::default(), t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..100).filter(|_| r.allow(a, t0)).count();
        assert_eq!(allowed, 5, "the burst");
        assert!(
            !r.busy(t0),
            "refused guesses cost the global bucket nothing"
        );
        // 20 a second afterwards.
        let later = (1..=100).filter(|i| r.allow(a, t0 + ms(10 * i))).count();
        assert_eq!(later, 20);
        // Another address of the same IPv6 /64 shares a bucket; another /64 does not.
        let p1: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let p2: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let p3: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!((0..10).filter(|_| r.allow(p1, t0)).count(), 5);
        assert!(!r.allow(p2, t0));
        assert!(r.allow(p3, t0));
    }

    #[test]
    fn source_map_stays_bounded_under_a_flood_of_addresses() {
        let t0 = Instant::now();
        let cfg = RateLimitConfig {
            max_sources: 256,
            global_rate: 1e9,
            global_burst: 1e9,
            ..RateLimitConfig::default()
        };
        let mut r = RateLimiter::new(cfg, t0);
        for i in 0..100_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            r.allow(ip, t0 + Duration::from_micros(i as u64));
            assert!(r.tracked() <= 256);
        }
        // A source seen a moment ago survives; the oldest were evicted first.
        let recent = IpAddr::from(99_999u32.to_be_bytes());
        assert!(r.sources.contains_key(&SourceKey::of(recent)));
        assert!(
            !r.sources
                .contains_key(&SourceKey::of(IpAddr::from(0u32.to_be_bytes())))
        );
    }

    /// A captured hello replayed from ~2,000 new source addresses a second must not keep a
    /// client with a 40 ms RTT from being confirmed. With the gate the flood turns
    /// into cookie replies (spoofed sources cannot answer them, and they cost no state), and
    /// the client, answering its cookie, is processed within one round trip.
    #[test]
    fn spoofed_hello_flood_cannot_starve_a_client_that_answers_its_cookie() {
        let t0 = Instant::now();
        let mut gate = HandshakeGate::with_cookie_secret(
            RateLimitConfig::default(),
            CookieSecret::with_secret([3; 32], t0),
            t0,
        );
        let client: SocketAddr = "198.51.100.20:40000".parse().unwrap();
        let rtt = ms(40);
        let mut processed_flood = 0;
        let mut cookie_replies = 0;
        let mut client_cookie = None;
        let mut client_in_at = None;
        let mut client_next = t0 + ms(100);
        // One simulated second: a spoofed hello every 0.5 ms, the client every 200 ms.
        for step in 0..2_000u32 {
            let now = t0 + Duration::from_micros(500 * step as u64);
            let spoofed = SocketAddr::from(((0x0a00_0000u32 + step).to_be_bytes(), 7600));
            match gate.admit(spoofed, None, false, now) {
                Admission::Process => processed_flood += 1,
                Admission::SendCookie(_) => cookie_replies += 1,
                Admission::Drop => {}
            }
            if client_in_at.is_none() && now >= client_next {
                match gate.admit(client, client_cookie.as_ref(), false, now) {
                    Admission::Process => client_in_at = Some(now),
                    // The reply arrives half an RTT later; the hello with the cookie another
                    // half later.
                    Admission::SendCookie(c) => {
                        client_cookie = Some(c);
                        client_next = now + rtt;
                    }
                    Admission::Drop => client_next = now + ms(200),
                }
            }
        }
        let t_in = client_in_at.expect("the client was processed within the second");
        assert!(t_in <= t0 + ms(100) + 2 * rtt, "{:?}", t_in - t0);
        // The flood got at most the global budget of real handshakes: burst + rate × 1 s.
        assert!(processed_flood <= 100 + 500, "{processed_flood}");
        assert!(cookie_replies > 1_000);
        // Cookie replies cost no per-source state.
        assert!(gate.tracked_sources() <= processed_flood + 1);
    }

    #[test]
    fn a_cookie_is_only_good_for_its_address() {
        let t0 = Instant::now();
        let mut gate = HandshakeGate::with_cookie_secret(
            RateLimitConfig::default(),
            CookieSecret::with_secret([3; 32], t0),
            t0,
        );
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1000".parse().unwrap();
        let Admission::SendCookie(c) = gate.admit(a, None, true, t0) else {
            panic!("pending full: cookie first")
        };
        assert_eq!(gate.admit(a, Some(&c), true, t0), Admission::Process);
        assert!(matches!(
            gate.admit(b, Some(&c), true, t0),
            Admission::SendCookie(_)
        ));
        // Not under load: no cookie needed.
        assert_eq!(gate.admit(b, None, false, t0), Admission::Process);
    }
}
