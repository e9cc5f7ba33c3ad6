//! A UDP impairment relay: sits between callers and listeners and forwards datagrams both ways
//! through the sans-IO network emulator ([`crate::testkit::impair::netem`]): loss (iid,
//! Gilbert-Elliott, trace-driven), delay and jitter, reordering, duplication, and a rate-limited
//! drop-tail bottleneck with a rate schedule that several flows share.
//!
//! The kernel here has no `netem`, so tests, benchmarks, the demo and `examples/relay.rs` put
//! this relay on the path instead. It only forwards to the upstream addresses it was given and
//! to the last address that spoke to each front socket — it never sends anywhere else.
//!
//! # Flows and the shared bottleneck
//!
//! A relay forwards one or more *pairs* ([`RelayFlow`]): a front socket bound on `listen` that a
//! caller sends to, and `upstream`, the listener it forwards to. Each pair has two emulator
//! flows: *down* (upstream → caller: the video when the src calls the relay) and *up* (caller →
//! upstream: control and input). Every pair's down flow crosses the one shared
//! [`RelayConfig::down_bottleneck`] (if set) and every up flow the shared
//! [`RelayConfig::up_bottleneck`], so two streams through one 20 Mbit/s bottleneck compete for
//! it as they would for a real link; [`Relay::flow_stats`] shows what each got. A direction
//! whose [`ImpairConfig::bottleneck`] is set crosses that private bottleneck instead.
//! Rate schedules count from the moment the relay starts.
//!
//! # Threads
//!
//! One receive thread per socket pushes arrivals into the emulator; one send thread sleeps
//! until the emulator's next due delivery (or a new arrival) and sends what is due. The relay's
//! own scheduling adds tens of microseconds (condition-variable wake-up) to each delivery.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::testkit::impair::netem::{
    BottleneckConfig, FlowId, FlowStats, LinkId, LinkStats, Netem,
};
use crate::testkit::impair::{ImpairConfig, ImpairStats};
use crate::transport::udp::{UdpOptions, UdpTransport};
use crate::transport::{RecvBatch, Transport};

/// Most spare buffers kept for reuse.
const MAX_FREE_BUFFERS: usize = 4096;

/// Datagrams per send call at most.
const CHUNK: usize = 64;

/// One listen → upstream pair and the impairments of each direction.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayFlow {
    /// Where the front socket binds (port 0 for an ephemeral port).
    pub listen: SocketAddr,
    /// The listener datagrams from the front peer go to.
    pub upstream: SocketAddr,
    /// Impairments of upstream → front peer (seed, loss, delay, …).
    pub down: ImpairConfig,
    /// Impairments of front peer → upstream.
    pub up: ImpairConfig,
}

/// A relay's pairs and shared bottlenecks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayConfig {
    /// The pairs to forward, each with its own front socket.
    pub flows: Vec<RelayFlow>,
    /// Shared by every pair's down direction (unless the direction has its own).
    pub down_bottleneck: Option<BottleneckConfig>,
    /// Shared by every pair's up direction (unless the direction has its own).
    pub up_bottleneck: Option<BottleneckConfig>,
}

/// Counters of one pair.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayFlowStats {
    /// Upstream → front peer.
    pub down: FlowStats,
    /// Front peer → upstream.
    pub up: FlowStats,
    /// Datagrams from an address other than the upstream at the back socket, or from
    /// upstream before any front peer spoke: not forwarded.
    pub unroutable: u64,
    /// Sends the kernel refused (peer gone, buffers full).
    pub send_errors: u64,
}

/// A datagram inside the emulator: its bytes, the socket it leaves by and where to.
#[derive(Clone)]
struct Packet {
    buf: Vec<u8>,
    socket: usize,
    to: SocketAddr,
}

struct PairState {
    down: FlowId,
    up: FlowId,
    upstream: SocketAddr,
    client: Option<SocketAddr>,
    unroutable: u64,
    send_errors: u64,
}

struct Core {
    net: Netem<Packet>,
    pairs: Vec<PairState>,
    down_link: Option<LinkId>,
    up_link: Option<LinkId>,
    free: Vec<Vec<u8>>,
}

struct Shared {
    core: Mutex<Core>,
    cv: Condvar,
    stop: AtomicBool,
    /// Front socket of pair i at 2i, back socket at 2i + 1.
    sockets: Vec<UdpTransport>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running relay. Dropping it stops the threads.
pub struct Relay {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// One pair: binds the front socket on `listen` (port 0 for an ephemeral port) and forwards
    /// to `upstream`. `down` impairs what flows upstream → front peer (e.g. video to a client
    /// that calls the relay), `up` what flows front peer → upstream.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        down: ImpairConfig,
        up: ImpairConfig,
    ) -> io::Result<Relay> {
        Relay::start_with(RelayConfig {
            flows: vec![RelayFlow {
                listen,
                upstream,
                down,
                up,
            }],
            ..RelayConfig::default()
        })
    }

    /// Any number of pairs with shared bottlenecks. See the module docs.
    pub fn start_with(config: RelayConfig) -> io::Result<Relay> {
        if config.flows.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a relay needs at least one listen → upstream pair",
            ));
        }
        let opts = UdpOptions::default();
        let start = Instant::now();
        let mut net = Netem::new(start);
        let down_link = config.down_bottleneck.clone().map(|b| net.add_link(b));
        let up_link = config.up_bottleneck.clone().map(|b| net.add_link(b));
        let mut sockets = Vec::new();
        let mut pairs = Vec::new();
        let mut addrs = Vec::new();
        for f in &config.flows {
            let front = UdpTransport::bind(f.listen, &opts)?;
            let back_bind: SocketAddr = if f.upstream.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            let back = UdpTransport::bind(back_bind, &opts)?;
            addrs.push(front.local_addr());
            sockets.push(front);
            sockets.push(back);
            let mut link_for = |cfg: &ImpairConfig, shared: Option<LinkId>| {
                cfg.bottleneck.clone().map(|b| net.add_link(b)).or(shared)
            };
            let (dl, ul) = (link_for(&f.down, down_link), link_for(&f.up, up_link));
            pairs.push(PairState {
                down: net.add_flow(f.down.path(), f.down.seed, dl),
                up: net.add_flow(f.up.path(), f.up.seed, ul),
                upstream: f.upstream,
                client: None,
                unroutable: 0,
                send_errors: 0,
            });
        }
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                net,
                pairs,
                down_link,
                up_link,
                free: Vec::new(),
            }),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            sockets,
        });
        let mut relay = Relay {
            shared,
            addrs,
            threads: Vec::new(),
        };
        for socket in 0..relay.shared.sockets.len() {
            let sh = relay.shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("relay-rx-{socket}"))
                .spawn(move || receive_loop(&sh, socket))?;
            relay.threads.push(t);
        }
        let sh = relay.shared.clone();
        let t = std::thread::Builder::new()
            .name("relay-tx".into())
            .spawn(move || send_loop(&sh))?;
        relay.threads.push(t);
        Ok(relay)
    }

    /// Where the caller of the first pair should send (its front socket).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The front socket of each pair, in the order given.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Counters of pair `i` (`None` if there is no such pair).
    pub fn flow_stats(&self, i: usize) -> Option<RelayFlowStats> {
        let core = self.shared.lock();
        let p = core.pairs.get(i)?;
        Some(RelayFlowStats {
            down: core.net.flow_stats(p.down),
            up: core.net.flow_stats(p.up),
            unroutable: p.unroutable,
            send_errors: p.send_errors,
        })
    }

    /// The shared down bottleneck's counters and its rate now (bits/s), if there is one.
    pub fn down_link_stats(&self) -> Option<(LinkStats, u64)> {
        let core = self.shared.lock();
        let l = core.down_link?;
        Some((
            core.net.link_stats(l),
            core.net.link_rate(l, Instant::now()),
        ))
    }

    /// The shared up bottleneck's counters and its rate now (bits/s), if there is one.
    pub fn up_link_stats(&self) -> Option<(LinkStats, u64)> {
        let core = self.shared.lock();
        let l = core.up_link?;
        Some((
            core.net.link_stats(l),
            core.net.link_rate(l, Instant::now()),
        ))
    }

    /// Impairment counters of what went to the first pair's front peer (downstream).
    pub fn down_stats(&self) -> ImpairStats {
        self.flow_stats(0)
            .map(|s| s.down.into())
            .unwrap_or_default()
    }

    /// Impairment counters of what went upstream from the first pair's front peer.
    pub fn up_stats(&self) -> ImpairStats {
        self.flow_stats(0).map(|s| s.up.into()).unwrap_or_default()
    }
}

/// Receives on one socket and pushes what it may forward into the emulator.
fn receive_loop(sh: &Shared, socket: usize) {
    let pair = socket / 2;
    let is_front = socket.is_multiple_of(2);
    let rx = &sh.sockets[socket];
    let mut batch = RecvBatch::new(64, 65_536);
    while !sh.stop.load(Ordering::Relaxed) {
        let n = match rx.recv(&mut batch, Some(Duration::from_millis(50))) {
            Ok(n) => n,
            Err(_) => {
                // ICMP errors surface here on some kernels; the path's business, not ours.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        let now = Instant::now();
        let mut core = sh.lock();
        let core = &mut *core;
        for i in 0..batch.len() {
            let (d, from) = batch.get(i);
            let p = &mut core.pairs[pair];
            let (flow, out_socket, to) = if is_front {
                p.client = Some(from);
                (p.up, socket + 1, p.upstream)
            } else {
                match p.client {
                    Some(c) if from == p.upstream => (p.down, socket - 1, c),
                    _ => {
                        p.unroutable += 1;
                        continue;
                    }
                }
            };
            let mut buf = core.free.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(d);
            let packet = Packet {
                buf,
                socket: out_socket,
                to,
            };
            core.net.push(now, flow, d.len(), packet);
        }
        sh.cv.notify_one();
    }
}

/// Sends deliveries as they fall due.
fn send_loop(sh: &Shared) {
    let mut due: Vec<(usize, Packet)> = Vec::new();
    let mut core = sh.lock();
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        while let Some(d) = core.net.poll(now) {
            // Flows were added down, up per pair: flow 2i and 2i + 1 belong to pair i.
            due.push((d.flow.index() / 2, d.payload));
        }
        if !due.is_empty() {
            drop(core);
            let errors = send_all(sh, &due);
            core = sh.lock();
            for (pair, n) in errors {
                core.pairs[pair].send_errors += n;
            }
            for (_, p) in due.drain(..) {
                if core.free.len() < MAX_FREE_BUFFERS {
                    core.free.push(p.buf);
                }
            }
            continue;
        }
        core = match core.net.poll_timeout() {
            None => sh.cv.wait(core).unwrap_or_else(|e| e.into_inner()),
            Some(t) => {
                sh.cv
                    .wait_timeout(core, t.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// Sends `due` in order, batching runs to the same socket and address; returns send errors
/// per pair.
fn send_all(sh: &Shared, due: &[(usize, Packet)]) -> Vec<(usize, u64)> {
    let mut errors = Vec::new();
    let mut i = 0;
    while i < due.len() {
        let (pair, first) = (&due[i].0, &due[i].1);
        let mut refs: [&[u8]; CHUNK] = [&[][..]; CHUNK];
        let mut n = 0;
        while i + n < due.len()
            && n < CHUNK
            && due[i + n].1.socket == first.socket
            && due[i + n].1.to == first.to
        {
            refs[n] = &due[i + n].1.buf;
            n += 1;
        }
        let failed = match sh.sockets[first.socket].send(&refs[..n], first.to) {
            Ok(o) => o.dropped as u64,
            Err(_) => n as u64,
        };
        if failed > 0 {
            errors.push((*pair, failed));
        }
        i += n;
    }
    errors
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for s in &self.shared.sockets {
            s.wake();
        }
        {
            let _core = self.shared.lock();
            self.shared.cv.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::impair::{LossModel, QueueLimit};

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().expect("literal")
    }

    fn bind() -> UdpTransport {
        UdpTransport::bind(local(), &UdpOptions::default()).expect("bind")
    }

    /// Receives until `done()` or 10 s; returns the datagrams with their sources.
    fn receive_until(
        t: &UdpTransport,
        mut done: impl FnMut(&[(Vec<u8>, SocketAddr)]) -> bool,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut got = Vec::new();
        let mut batch = RecvBatch::new(64, 2048);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&got) {
            assert!(
                Instant::now() < deadline,
                "gave up after {} datagrams",
                got.len()
            );
            let n = t
                .recv(&mut batch, Some(Duration::from_millis(20)))
                .expect("recv");
            for i in 0..n {
                let (d, from) = batch.get(i);
                got.push((d.to_vec(), from));
            }
        }
        got
    }

    #[test]
    fn forwards_both_ways_byte_exact_and_ignores_strangers() {
        let server = bind();
        let client = bind();
        let relay = Relay::start(
            local(),
            server.local_addr(),
            ImpairConfig::default(),
            ImpairConfig::default(),
        )
        .expect("relay");
        // Upstream has no peer yet: a stranger at the back socket is not forwarded.
        client.send(&[b"hello"], relay.addr()).expect("send");
        let got = receive_until(&server, |g| !g.is_empty());
        assert_eq!(got[0].0, b"hello");
        let back = got[0].1;
        let stranger = bind();
        stranger.send(&[b"junk"], back).expect("send");
        server.send(&[b"welcome", b"frame"], back).expect("send");
        let got = receive_until(&client, |g| g.len() >= 2);
        assert_eq!(got[0], (b"welcome".to_vec(), relay.addr()));
        assert_eq!(got[1].0, b"frame");
        // (The stranger's datagram may still be in flight: wait for it to be counted.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while relay.flow_stats(0).expect("pair").unroutable == 0 {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        let s = relay.flow_stats(0).expect("pair");
        assert_eq!((s.up.delivered, s.down.delivered), (1, 2));
        assert_eq!(relay.down_stats().delivered, 2);
        assert!(relay.flow_stats(1).is_none());
    }

    #[test]
    fn pairs_share_one_bottleneck_with_per_pair_counters() {
        const N: usize = 400;
        let servers = [bind(), bind()];
        let clients = [bind(), bind()];
        let lossy_up = |seed| ImpairConfig {
            seed,
            loss: LossModel::Iid(0.5),
            ..ImpairConfig::default()
        };
        let relay = Relay::start_with(RelayConfig {
            flows: (0..2)
                .map(|i| RelayFlow {
                    listen: local(),
                    upstream: servers[i].local_addr(),
                    down: ImpairConfig {
                        seed: i as u64,
                        ..ImpairConfig::default()
                    },
                    up: lossy_up(10 + i as u64),
                })
                .collect(),
            // 50 Mbit/s, 20 kB queue: two bursts of 400 × 1000 bytes overflow it.
            down_bottleneck: Some(
                BottleneckConfig::new(50_000_000).with_queue(QueueLimit::Bytes(20_000)),
            ),
            up_bottleneck: None,
        })
        .expect("relay");
        assert_eq!(relay.addrs().len(), 2);
        // Each client says hello until one gets through the 50 % up loss.
        let mut backs = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let mut got = Vec::new();
            while got.is_empty() {
                client.send(&[b"hi"], relay.addrs()[i]).expect("send");
                let mut batch = RecvBatch::new(8, 64);
                let n = servers[i]
                    .recv(&mut batch, Some(Duration::from_millis(200)))
                    .expect("recv");
                got.extend((0..n).map(|k| batch.get(k).1));
            }
            backs.push(got[0]);
        }
        // Both servers burst N datagrams tagged with their pair.
        for (i, s) in servers.iter().enumerate() {
            let payloads: Vec<Vec<u8>> = (0..N)
                .map(|k| {
                    let mut p = vec![i as u8; 1000];
                    p[1..3].copy_from_slice(&(k as u16).to_be_bytes());
                    p
                })
                .collect();
            for c in payloads.chunks(32) {
                let refs: Vec<&[u8]> = c.iter().map(|p| &p[..]).collect();
                s.send(&refs, backs[i]).expect("send");
            }
        }
        // Wait until the relay has accounted for every datagram of both bursts.
        let settled = || {
            (0..2).all(|i| {
                let s = relay.flow_stats(i).expect("pair").down;
                s.offered == N as u64 && s.delivered + s.queue_dropped == s.offered
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !settled() {
            assert!(Instant::now() < deadline, "{:?}", relay.flow_stats(0));
            // Polls a condition (the relay has no event to wait on).
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut total_dropped = 0;
        for (i, client) in clients.iter().enumerate() {
            let s = relay.flow_stats(i).expect("pair");
            assert!(s.down.queue_dropped > 0, "pair {i}: {s:?}");
            // The hellos went through the up direction's 50 % loss: the first that arrived ended
            // the retries.
            assert!(s.up.delivered >= 1);
            assert_eq!(s.up.lost + s.up.delivered, s.up.offered);
            total_dropped += s.down.queue_dropped;
            let got = receive_until(client, |g| g.len() as u64 == s.down.delivered);
            // Only this pair's datagrams, in order, byte-exact.
            let mut last = None;
            for (d, from) in &got {
                assert_eq!(*from, relay.addrs()[i]);
                assert_eq!(d.len(), 1000);
                assert!(d[3..].iter().all(|b| *b == i as u8) && d[0] == i as u8);
                let k = u16::from_be_bytes([d[1], d[2]]);
                assert!(last.is_none_or(|l| l < k));
                last = Some(k);
            }
        }
        let (link, rate) = relay.down_link_stats().expect("bottleneck");
        assert_eq!(rate, 50_000_000);
        assert_eq!(link.dropped, total_dropped);
        assert_eq!(link.forwarded + link.dropped, 2 * N as u64);
        assert!(link.max_queued_bytes <= 20_000);
        assert!(relay.up_link_stats().is_none());
    }

    /// The datagrams `cfg` lets through of `n` offered in a row (the emulator's own decisions
    /// for that seed: they depend on nothing but the seed and the packet sequence).
    fn predicted(cfg: &ImpairConfig, n: u32) -> Vec<u32> {
        use crate::testkit::impair::netem::Verdict;
        let t0 = Instant::now();
        let mut net: Netem<()> = Netem::new(t0);
        let f = net.add_flow(cfg.path(), cfg.seed, None);
        (0..n)
            .filter(|_| net.push(t0, f, 16, ()) != Verdict::Lost)
            .collect()
    }

    /// Sends `n` datagrams (sequence number, send time since `t0` in µs) in bursts of 20, each
    /// burst once the relay has taken the previous one in (`offered` reaches it), so no socket
    /// buffer overflows; `receiver` collects `expect` of them at the far end. Returns each
    /// arrival's sequence number and one-way delay.
    fn one_way(
        relay: &Relay,
        from: &UdpTransport,
        to: SocketAddr,
        receiver: &UdpTransport,
        n: u32,
        expect: usize,
        offered: impl Fn(&Relay) -> u64,
    ) -> Vec<(u32, Duration)> {
        let t0 = Instant::now();
        let before = offered(relay);
        std::thread::scope(|s| {
            let rx = s.spawn(|| {
                receive_until(receiver, |g| g.len() >= expect)
                    .into_iter()
                    .map(|(d, _)| {
                        let now = t0.elapsed();
                        let seq = u32::from_be_bytes(d[..4].try_into().expect("4 bytes"));
                        let sent = u64::from_be_bytes(d[4..12].try_into().expect("8 bytes"));
                        (seq, now.saturating_sub(Duration::from_micros(sent)))
                    })
                    .collect::<Vec<_>>()
            });
            for start in (0..n).step_by(20) {
                let burst: Vec<Vec<u8>> = (start..(start + 20).min(n))
                    .map(|i| {
                        let mut d = i.to_be_bytes().to_vec();
                        d.extend((t0.elapsed().as_micros() as u64).to_be_bytes());
                        d
                    })
                    .collect();
                let refs: Vec<&[u8]> = burst.iter().map(|d| &d[..]).collect();
                from.send(&refs, to).expect("send");
                let deadline = Instant::now() + Duration::from_secs(10);
                while offered(relay) < before + u64::from(start) + refs.len() as u64 {
                    assert!(Instant::now() < deadline, "the relay took nothing in");
                    // Polls a condition (the relay has no event to wait on).
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            rx.join().expect("receiver")
        })
    }

    #[test]
    fn wan_path_delays_jitters_and_loses_in_bursts_on_both_directions() {
        const N: u32 = 1500;
        let (delay, jitter) = (Duration::from_millis(30), Duration::from_millis(5));
        let wan = |seed, p, r| ImpairConfig {
            seed,
            loss: LossModel::gilbert(p, r),
            delay,
            jitter,
            ..ImpairConfig::default()
        };
        let (down, up) = (wan(7, 0.02, 0.20), wan(8, 0.01, 0.30));
        let server = bind();
        let client = bind();
        // The client's hello (on a clean path) tells the relay where the client is and the
        // server where the relay's back socket is.
        let relay =
            Relay::start(local(), server.local_addr(), down.clone(), up.clone()).expect("relay");
        let mut back = None;
        while back.is_none() {
            client.send(&[b"hello"], relay.addr()).expect("send");
            let mut batch = RecvBatch::new(8, 64);
            if server
                .recv(&mut batch, Some(Duration::from_millis(100)))
                .expect("recv")
                > 0
            {
                back = Some(batch.get(0).1);
            }
        }
        let back = back.expect("a hello got through");
        let hellos = relay.flow_stats(0).expect("pair").up.offered as u32;
        // The up direction's decisions continue after the hellos.
        let up_want: Vec<u32> = predicted(&up, hellos + N)
            .into_iter()
            .filter(|&i| i >= hellos)
            .map(|i| i - hellos)
            .collect();
        let down_want = predicted(&down, N);
        let ways = [
            (
                "up",
                one_way(
                    &relay,
                    &client,
                    relay.addr(),
                    &server,
                    N,
                    up_want.len(),
                    |r| r.flow_stats(0).expect("pair").up.offered,
                ),
                up_want,
                0.01 / 0.31,
            ),
            (
                "down",
                one_way(&relay, &server, back, &client, N, down_want.len(), |r| {
                    r.flow_stats(0).expect("pair").down.offered
                }),
                down_want,
                0.02 / 0.22,
            ),
        ];
        for (name, got, want, mean_loss) in ways {
            // Exactly the emulator's losses for the seed, in order.
            let seqs: Vec<u32> = got.iter().map(|g| g.0).collect();
            assert_eq!(seqs, want, "{name}");
            let loss = 1.0 - want.len() as f64 / f64::from(N);
            assert!(
                (loss - mean_loss).abs() < 0.5 * mean_loss,
                "{name}: loss {loss}"
            );
            let mut arrived = vec![false; N as usize];
            for &s in &seqs {
                arrived[s as usize] = true;
            }
            let bursts = (0..N as usize)
                .filter(|&i| !arrived[i] && (i == 0 || arrived[i - 1]))
                .count();
            assert!(
                bursts > 0 && bursts < (N as usize - seqs.len()),
                "{name}: no bursts"
            );
            // Never earlier than delay - jitter; jittered (spread over more than the jitter).
            let min = got.iter().map(|g| g.1).min().expect("arrivals");
            let max = got.iter().map(|g| g.1).max().expect("arrivals");
            assert!(min >= delay - jitter, "{name}: {min:?}");
            assert!(max - min >= jitter, "{name}: {min:?}..{max:?}");
        }
        let s = relay.flow_stats(0).expect("pair");
        assert_eq!(s.down.offered, u64::from(N));
        assert_eq!(s.up.offered, u64::from(N + hellos));
        assert_eq!((s.down.reordered, s.up.reordered), (0, 0));
    }
}
