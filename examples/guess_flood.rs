//! Online passphrase guessing against a listener through real UDP on loopback: a host session
//! with a passphrase on 127.0.0.1, guessers with a wrong passphrase at 127.0.0.2, .3, ... (real
//! caller connections, so they answer cookies), and the owner with the right passphrase
//! starting during the flood. Prints the guesses tested (handshake answers the guessers got)
//! per second, the rate after the first burst, and how long the owner took to connect.
//!
//! ```text
//! cargo run --release --example guess_flood -- --addresses 1 --seconds 60
//! cargo run --release --example guess_flood -- --addresses 253 --seconds 30 --owner-after 10
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Connection, Mode, Session};
use gstpunktfunk::transport::udp::{UdpOptions, UdpTransport};

const PASS: &str = "correct horse battery staple";

struct Guesser {
    socket: UdpSocket,
    conn: Connection,
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help") {
        println!(
            "guess_flood [--addresses N (1..=253)] [--seconds S] [--owner-after S] [--retry-ms MS]"
        );
        return;
    }
    let addresses = arg(&args, "--addresses", 253).clamp(1, 253) as u8;
    let seconds = arg(&args, "--seconds", 30);
    let owner_after = arg(&args, "--owner-after", 10);
    let retry = Duration::from_millis(arg(&args, "--retry-ms", 50).max(1));

    let mut h = Config::new(Role::Host, Mode::Listener);
    h.passphrase = Some(PASS.into());
    let host = Session::new(
        h,
        UdpTransport::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default())
            .expect("bind the host"),
    )
    .expect("host");
    host.set_stream_info("video/x-h264, stream-format=byte-stream, alignment=au")
        .expect("stream info");
    let host_addr = host.local_addr();
    {
        let host = host.clone();
        std::thread::spawn(move || while host.poll_input(Duration::from_millis(50)).is_ok() {});
    }

    let start = Instant::now();
    let mut guessers: Vec<Guesser> = (0..addresses)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i));
            let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind a guesser");
            socket.set_nonblocking(true).expect("nonblocking");
            let mut c = Config::new(Role::Client, Mode::Caller);
            c.peer = Some(host_addr);
            c.passphrase = Some(format!("guess {i}"));
            c.handshake_retry = retry;
            c.handshake_first_retry = retry;
            c.timeout = Duration::from_secs(3600);
            Guesser {
                socket,
                conn: Connection::new(c, start).expect("guesser"),
            }
        })
        .collect();

    let guesses = |g: &[Guesser]| -> u64 { g.iter().map(|g| g.conn.stats().auth_failures).sum() };
    let mut per_second = Vec::new();
    let mut last_count = 0;
    let mut next_report = start + Duration::from_secs(1);
    let mut owner: Option<(Session, Instant)> = None;
    let mut owner_took = None;
    let mut buf = [0u8; 2048];
    let end = start + Duration::from_secs(seconds);
    while Instant::now() < end {
        let now = Instant::now();
        for g in guessers.iter_mut() {
            while let Ok((n, from)) = g.socket.recv_from(&mut buf) {
                g.conn.handle_datagram(now, from, &mut buf[..n]);
            }
            if g.conn.poll_timeout().is_some_and(|t| t <= now) {
                g.conn.handle_timeout(now);
            }
            while let Some(t) = g.conn.poll_transmit() {
                let _ = g.socket.send_to(&t.contents, t.destination);
            }
            while g.conn.poll_event().is_some() {}
        }
        if now >= next_report {
            let count = guesses(&guessers);
            per_second.push(count - last_count);
            last_count = count;
            next_report += Duration::from_secs(1);
        }
        if owner.is_none() && now >= start + Duration::from_secs(owner_after) {
            let mut c = Config::new(Role::Client, Mode::Caller);
            c.peer = Some(host_addr);
            c.passphrase = Some(PASS.into());
            let t = UdpTransport::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default())
                .expect("bind the owner");
            let s = Session::new(c, t).expect("owner");
            {
                let s = s.clone();
                std::thread::spawn(
                    move || while s.poll_frame(Duration::from_millis(50)).is_ok() {},
                );
            }
            owner = Some((s, Instant::now()));
        }
        if owner_took.is_none()
            && let Some((s, t0)) = owner.as_ref()
            && s.is_connected()
        {
            owner_took = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let total = guesses(&guessers);
    let hellos: u64 = guessers
        .iter()
        .map(|g| g.conn.stats().handshakes_sent)
        .sum();
    let hs = host.stats();
    println!("guessers: {addresses} addresses (127.0.0.2..), a hello every {retry:?} each");
    println!("guesses tested per second: {per_second:?}");
    let first = per_second.first().copied().unwrap_or(0);
    let after: u64 = per_second.iter().skip(5).sum();
    let after_s = per_second.len().saturating_sub(5).max(1);
    println!(
        "first second: {first}; after the first 5 s: {after} in {after_s} s = {:.2}/s; \
         total {total} guesses for {hellos} hellos in {seconds} s",
        after as f64 / after_s as f64
    );
    println!(
        "host: guesses refused {}, confirmations failed {}, cookies sent {}, hellos dropped {}",
        hs.guesses_refused, hs.confirmations_failed, hs.cookies_sent, hs.hellos_dropped
    );
    match (owner.as_ref(), owner_took) {
        (Some(_), Some(t)) => println!("owner (127.0.0.1) connected {t:?} after starting"),
        (Some(_), None) => println!("owner (127.0.0.1) did not connect"),
        (None, _) => println!("owner not started (--owner-after beyond --seconds)"),
    }
}
