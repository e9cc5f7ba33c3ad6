//! A UDP impairment relay to put between punktfunksink and punktfunksrc (the kernel here has
//! no netem). The caller (usually the src) sends to the relay's `--listen` address; the relay
//! forwards to `--upstream` (the listener, usually the sink) and back, impairing both ways.
//!
//! ```text
//! cargo run --release --features testing --example relay -- --listen 127.0.0.1:7700 --upstream 127.0.0.1:7600 \
//!     --loss 0.05 [--burst 3] [--reorder 0.01] [--duplicate 0.001] [--delay-ms 5] \
//!     [--up-loss 0.05] [--seed 1] [--seconds 60]
//! ```
//! `--loss` is the loss rate towards the caller (video), `--up-loss` towards the listener
//! (input and control; defaults to `--loss`). With `--burst N` losses come in Gilbert-Elliott
//! bursts of mean length N at the same average rate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gstpunktfunk::relay::Relay;
use gstpunktfunk::transport::impair::{ImpairConfig, LossModel};

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    loss: f64,
    up_loss: Option<f64>,
    burst: Option<f64>,
    reorder: f64,
    duplicate: f64,
    delay: Duration,
    seed: u64,
    seconds: Option<u64>,
}

fn usage() -> ! {
    eprintln!(
        "usage: relay --listen ADDR:PORT --upstream ADDR:PORT [--loss P] [--up-loss P] \
         [--burst N] [--reorder P] [--duplicate P] [--delay-ms MS] [--seed N] [--seconds S]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        listen: "127.0.0.1:0".parse().expect("literal"),
        upstream: "127.0.0.1:7600".parse().expect("literal"),
        loss: 0.0,
        up_loss: None,
        burst: None,
        reorder: 0.0,
        duplicate: 0.0,
        delay: Duration::ZERO,
        seed: 1,
        seconds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else { usage() };
        let num = |v: &str| v.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--listen" => a.listen = v.parse().unwrap_or_else(|_| usage()),
            "--upstream" => a.upstream = v.parse().unwrap_or_else(|_| usage()),
            "--loss" => a.loss = num(&v),
            "--up-loss" => a.up_loss = Some(num(&v)),
            "--burst" => a.burst = Some(num(&v)),
            "--reorder" => a.reorder = num(&v),
            "--duplicate" => a.duplicate = num(&v),
            "--delay-ms" => a.delay = Duration::from_secs_f64(num(&v) / 1000.0),
            "--seed" => a.seed = v.parse().unwrap_or_else(|_| usage()),
            "--seconds" => a.seconds = Some(v.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    a
}

fn model(loss: f64, burst: Option<f64>) -> LossModel {
    match burst {
        _ if loss <= 0.0 => LossModel::None,
        Some(b) if b > 1.0 => LossModel::bursts(loss, b),
        _ => LossModel::Iid(loss),
    }
}

fn main() {
    let a = parse();
    let cfg = |loss: f64, seed: u64| ImpairConfig {
        seed,
        loss: model(loss, a.burst),
        reorder: a.reorder,
        duplicate: a.duplicate,
        delay: a.delay,
        ..ImpairConfig::default()
    };
    let relay = match Relay::start(
        a.listen,
        a.upstream,
        cfg(a.loss, a.seed),
        cfg(a.up_loss.unwrap_or(a.loss), a.seed.wrapping_add(1)),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay: cannot bind {}: {e}", a.listen);
            std::process::exit(1);
        }
    };
    println!("relay: {} <-> {}", relay.addr(), a.upstream);
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let d = relay.down_stats();
        let u = relay.up_stats();
        println!(
            "relay: down sent {} dropped {} | up sent {} dropped {}",
            d.sent, d.dropped, u.sent, u.dropped
        );
        if a.seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
    }
}
