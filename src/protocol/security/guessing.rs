//! The listener's budget for passphrase guesses, on `now: Instant`.
//!
//! Why: with a passphrase, every hello the listener answers lets the caller test one guess (the
//! PAKE allows no offline test, but the answer's key confirmation says yes or no). The
//! listener cannot tell a right guess from a wrong one when it answers; it learns it only when
//! the caller confirms the session with its first sealed datagram. So an answer is charged when
//! it goes out and refunded when its session is confirmed: what stays charged are the guesses
//! that failed.
//!
//! [`GuessBudget::check`] decides before any crypto whether a hello from a source may be
//! answered; [`GuessBudget::answered`] charges an answer that went out;
//! [`GuessBudget::confirmed`] refunds a source's answers once one of its sessions is confirmed.
//!
//! - Per source (the [`SourceKey`] of the rate limits: an IPv4 address or an IPv6 /64): the
//!   first [`GuessConfig::free`] answers without a confirmation go out at once (a caller keeps
//!   that many hellos in flight); after that each further answer waits a back-off that doubles
//!   from [`GuessConfig::backoff_first`] to [`GuessConfig::backoff_max`]. With the defaults one
//!   address gets 4 guesses at once, 10 in its first minute and 3 a minute after that.
//! - In total, for sources that are not known (below): a global token bucket
//!   ([`GuessConfig::global_rate`], [`GuessConfig::global_burst`]), 1 a second after a burst
//!   of 16.
//! - The first answer to a source never answered before comes from a separate newcomer bucket
//!   ([`GuessConfig::newcomer_burst`]) while it lasts, so a flood from many addresses that
//!   each already failed cannot keep a new address (the owner's) waiting for the global bucket.
//! - A source that confirmed a session (it knew the passphrase) is known: up to
//!   [`GuessConfig::max_known`] such sources are kept apart from strangers and never wait for
//!   the global or the newcomer bucket, only for their own back-off, which a client with the
//!   right passphrase never builds up.
//!
//! The trade-off: an owner at an address it used before always gets through; an owner at a
//! new address gets through at once unless an attacker has spent the newcomer bucket on more
//! fresh addresses than [`GuessConfig::newcomer_burst`], and then it competes with the
//! attacker's addresses for the global bucket until it refills. Without that bucket a fresh
//! owner would compete with every address of the flood; with a per-address first answer free
//! of any total, an attacker with many addresses (an IPv6 /48 holds 65,536 /64s) would get as
//! many guesses as it has addresses.
//!
//! Memory: one record per source answered (~64 bytes) in a map of at most
//! [`GuessConfig::max_sources`]; a refused hello creates none. Records idle for
//! [`GuessConfig::forget_after`] are dropped once a second, and when the map is full the
//! least recently answered source goes. This module owns no sockets, reads no clock and sees
//! no handshake bytes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::bucket::{SourceKey, TokenBucket};

/// Limits of a [`GuessBudget`].
#[derive(Debug, Clone, Copy)]
pub struct GuessConfig {
    /// Answers a source gets without a confirmation before its back-off starts (a caller
    /// keeps four hellos in flight).
    pub free: u32,
    /// The wait after the `free`-th unconfirmed answer; it doubles with each further one.
    pub backoff_first: Duration,
    /// The longest wait between two answers to one source: its sustained guessing rate.
    pub backoff_max: Duration,
    /// Answers a second in total to sources that are not known, and the burst.
    pub global_rate: f64,
    /// Answers at once in total to sources that are not known, before the rate applies.
    pub global_burst: f64,
    /// First answers to sources never answered before, apart from the global bucket.
    pub newcomer_rate: f64,
    /// First answers at once to new sources, before the newcomer rate applies.
    pub newcomer_burst: f64,
    /// Sources with a record at once (~64 bytes each).
    pub max_sources: usize,
    /// Sources that confirmed a session, remembered apart from the rest.
    pub max_known: usize,
    /// A source not answered for this long starts over.
    pub forget_after: Duration,
}

impl Default for GuessConfig {
    fn default() -> Self {
        GuessConfig {
            free: 4,
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(20),
            global_rate: 1.0,
            global_burst: 16.0,
            newcomer_rate: 1.0 / 60.0,
            newcomer_burst: 1_024.0,
            max_sources: 4_096,
            max_known: 32,
            forget_after: Duration::from_secs(600),
        }
    }
}

/// Where an answer's cost was taken from (hand it back to [`GuessBudget::answered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// A known source: only its own back-off.
    Known,
    /// A source's first answer, from the newcomer bucket.
    Newcomer,
    /// The global bucket.
    Global,
}

/// Why a hello goes unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The source's own back-off: `unconfirmed` answers in a row were never confirmed; the
    /// next one goes out after `wait`.
    Source { unconfirmed: u32, wait: Duration },
    /// The global budget is spent (guessing from many addresses); the source itself has
    /// `unconfirmed` answers outstanding.
    Global { unconfirmed: u32 },
}

struct Record {
    /// Answers since the last confirmation.
    unconfirmed: u32,
    /// Of those, charged to the global bucket (refunded on confirmation).
    global_charges: u32,
    next_allowed: Instant,
    last_answered: Instant,
}

/// The listener's guessing budget. See the module docs.
pub(crate) struct GuessBudget {
    cfg: GuessConfig,
    sources: HashMap<SourceKey, Record>,
    /// Sources that confirmed a session, and when they last did.
    known: HashMap<SourceKey, Instant>,
    global: TokenBucket,
    newcomers: TokenBucket,
    last_gc: Instant,
}

impl GuessBudget {
    pub(crate) fn new(cfg: GuessConfig, now: Instant) -> GuessBudget {
        GuessBudget {
            cfg,
            sources: HashMap::new(),
            known: HashMap::new(),
            global: TokenBucket::new(cfg.global_rate, cfg.global_burst, now),
            newcomers: TokenBucket::new(cfg.newcomer_rate, cfg.newcomer_burst, now),
            last_gc: now,
        }
    }

    /// Sources with a record now (never above `max_sources`), and known sources (never above
    /// `max_known`).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        (self.sources.len(), self.known.len())
    }

    /// Answers to `ip` since its last confirmation.
    pub(crate) fn unconfirmed(&self, ip: IpAddr) -> u32 {
        self.sources
            .get(&SourceKey::of(ip))
            .map_or(0, |r| r.unconfirmed)
    }

    /// Whether a hello from `ip` may be answered now, and from which budget. Takes nothing:
    /// charge with [`GuessBudget::answered`] once the answer went out.
    pub(crate) fn check(&mut self, ip: IpAddr, now: Instant) -> Result<Charge, Refusal> {
        self.gc(now);
        let key = SourceKey::of(ip);
        let rec = self.sources.get(&key);
        let unconfirmed = rec.map_or(0, |r| r.unconfirmed);
        if let Some(r) = rec
            && r.unconfirmed >= self.cfg.free
            && now < r.next_allowed
        {
            return Err(Refusal::Source {
                unconfirmed,
                wait: r.next_allowed - now,
            });
        }
        if self.known.contains_key(&key) {
            Ok(Charge::Known)
        } else if rec.is_none() && self.newcomers.level(now) >= 1.0 {
            Ok(Charge::Newcomer)
        } else if self.global.level(now) >= 1.0 {
            Ok(Charge::Global)
        } else {
            Err(Refusal::Global { unconfirmed })
        }
    }

    /// An answer to `ip` went out under `charge` (from [`GuessBudget::check`] just before).
    pub(crate) fn answered(&mut self, ip: IpAddr, charge: Charge, now: Instant) {
        let taken = match charge {
            Charge::Known => true,
            Charge::Newcomer => self.newcomers.take(now),
            Charge::Global => self.global.take(now),
        };
        // Checked just before; a bucket that ran dry in between (it cannot: nothing else
        // takes) still charges the global one.
        if !taken {
            self.global.take(now);
        }
        let key = SourceKey::of(ip);
        if !self.sources.contains_key(&key) {
            self.make_room();
        }
        let cfg = self.cfg;
        let r = self.sources.entry(key).or_insert(Record {
            unconfirmed: 0,
            global_charges: 0,
            next_allowed: now,
            last_answered: now,
        });
        r.unconfirmed = r.unconfirmed.saturating_add(1);
        if charge == Charge::Global {
            r.global_charges = r.global_charges.saturating_add(1);
        }
        r.last_answered = now;
        if r.unconfirmed >= cfg.free {
            let doublings = (r.unconfirmed - cfg.free).min(16);
            let wait = cfg
                .backoff_first
                .saturating_mul(1 << doublings)
                .min(cfg.backoff_max);
            r.next_allowed = now + wait;
        }
    }

    /// A session with `ip` was confirmed: it knew the passphrase. Its unconfirmed answers are
    /// forgiven (and their global tokens returned), and it becomes known.
    pub(crate) fn confirmed(&mut self, ip: IpAddr, now: Instant) {
        let key = SourceKey::of(ip);
        if let Some(r) = self.sources.get_mut(&key) {
            self.global.put_back(f64::from(r.global_charges), now);
            r.unconfirmed = 0;
            r.global_charges = 0;
            r.next_allowed = now;
        }
        if !self.known.contains_key(&key) && self.known.len() >= self.cfg.max_known.max(1) {
            let oldest = self.known.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.known.remove(&k);
            }
        }
        self.known.insert(key, now);
    }

    fn gc(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_gc) < Duration::from_secs(1) {
            return;
        }
        self.last_gc = now;
        let forget = self.cfg.forget_after;
        self.sources.retain(|_, r| {
            now.saturating_duration_since(r.last_answered) < forget || now < r.next_allowed
        });
    }

    fn make_room(&mut self) {
        while self.sources.len() >= self.cfg.max_sources.max(1) {
            let oldest = self
                .sources
                .iter()
                .min_by_key(|(_, r)| r.last_answered)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Answers `src` gets in `[from, to)` when it sends a hello every `every` and none is ever
    /// confirmed.
    fn guesses(
        b: &mut GuessBudget,
        src: IpAddr,
        t0: Instant,
        from: Duration,
        to: Duration,
        every: Duration,
    ) -> usize {
        let mut n = 0;
        let mut t = from;
        while t < to {
            if let Ok(c) = b.check(src, t0 + t) {
                b.answered(src, c, t0 + t);
                n += 1;
            }
            t += every;
        }
        n
    }

    #[test]
    fn one_address_sustains_three_guesses_a_minute() {
        let t0 = Instant::now();
        let mut b = GuessBudget::new(GuessConfig::default(), t0);
        let a = ip("192.0.2.1");
        let s = Duration::from_secs;
        let every = Duration::from_millis(50);
        // 4 at once, then after 1, 2, 4, 8, 16 and 20 s: 4 + 6 in the first minute.
        assert_eq!(guesses(&mut b, a, t0, s(0), s(1), every), 4);
        assert_eq!(guesses(&mut b, a, t0, s(1), s(60), every), 6);
        for minute in 1..10 {
            let n = guesses(&mut b, a, t0, s(60 * minute), s(60 * (minute + 1)), every);
            assert!(n <= 3, "minute {minute}: {n}");
        }
    }

    #[test]
    fn many_addresses_together_get_one_guess_a_second_after_the_first_burst() {
        let t0 = Instant::now();
        let mut b = GuessBudget::new(GuessConfig::default(), t0);
        let mut total_after_burst = 0;
        let mut first_second = 0;
        // 253 addresses, each sending a hello every 100 ms, for two minutes.
        for step in 0..1_200u64 {
            let now = t0 + Duration::from_millis(100 * step);
            for i in 1..=253u8 {
                let src = IpAddr::from([127, 0, 0, i]);
                if let Ok(c) = b.check(src, now) {
                    b.answered(src, c, now);
                    if step < 10 {
                        first_second += 1;
                    } else {
                        total_after_burst += 1;
                    }
                }
            }
        }
        // The burst: each address's first answer (newcomers) and the global burst.
        assert!(first_second <= 253 + 16, "{first_second}");
        // After it: the global rate, 1 a second over 119 s (+1 for rounding).
        assert!(total_after_burst <= 120, "{total_after_burst}");
        assert!(total_after_burst >= 100, "{total_after_burst}");
    }

    #[test]
    fn the_owner_gets_through_a_flood_new_or_known() {
        let t0 = Instant::now();
        let mut b = GuessBudget::new(GuessConfig::default(), t0);
        let ms = Duration::from_millis;
        // A flood that spent the global bucket: every address failed before.
        for step in 0..100u64 {
            let now = t0 + ms(100 * step);
            for i in 2..=253u8 {
                let src = IpAddr::from([127, 0, 0, i]);
                if let Ok(c) = b.check(src, now) {
                    b.answered(src, c, now);
                }
            }
        }
        let now = t0 + ms(10_000);
        assert!(matches!(
            b.check(ip("127.0.0.2"), now),
            Err(Refusal::Source { .. } | Refusal::Global { .. })
        ));
        // A new address: the newcomer bucket.
        let owner = ip("127.0.0.1");
        let c = b.check(owner, now).expect("a new address is answered");
        assert_eq!(c, Charge::Newcomer);
        b.answered(owner, c, now);
        b.confirmed(owner, now);
        // Known from now on: answered whatever the global bucket holds, again and again.
        for k in 1..=20u64 {
            let t = now + ms(50 * k);
            assert_eq!(b.check(owner, t), Ok(Charge::Known));
            b.answered(owner, Charge::Known, t);
            b.confirmed(owner, t);
        }
    }

    #[test]
    fn a_confirmed_session_forgives_the_sources_answers() {
        let t0 = Instant::now();
        let mut b = GuessBudget::new(GuessConfig::default(), t0);
        let a = ip("2001:db8::1");
        for _ in 0..4 {
            let c = b.check(a, t0).unwrap();
            b.answered(a, c, t0);
        }
        assert!(matches!(
            b.check(a, t0),
            Err(Refusal::Source { unconfirmed: 4, .. })
        ));
        // Same /64: the same source.
        assert!(b.check(ip("2001:db8::2"), t0).is_err());
        b.confirmed(ip("2001:db8::2"), t0);
        assert_eq!(b.check(a, t0), Ok(Charge::Known));
        // The global tokens its answers took are back.
        assert_eq!(b.global.level(t0), 16.0);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let t0 = Instant::now();
        let cfg = GuessConfig {
            max_sources: 256,
            max_known: 8,
            global_rate: 1e9,
            global_burst: 1e9,
            ..GuessConfig::default()
        };
        let mut b = GuessBudget::new(cfg, t0);
        for i in 0..100_000u32 {
            let src = IpAddr::from(i.to_be_bytes());
            let now = t0 + Duration::from_micros(u64::from(i));
            if let Ok(c) = b.check(src, now) {
                b.answered(src, c, now);
            }
            if i % 1_000 == 0 {
                b.confirmed(src, now);
            }
            let (s, k) = b.tracked();
            assert!(s <= 256 && k <= 8, "{s} {k}");
        }
        // The most recent source still has its record; idle ones are forgotten.
        let later = t0 + Duration::from_secs(3_600);
        b.check(ip("192.0.2.9"), later).unwrap();
        assert_eq!(b.tracked().0, 0);
    }
}
