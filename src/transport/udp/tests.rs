use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::SockaddrLike;

use super::recv::{is_stale_icmp_error, raw_to_std};
use super::send::{gso_run, is_buffer_full, is_gso_refusal};
use super::*;

const V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const V6: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0);

fn bind(addr: SocketAddr, opts: UdpOptions) -> UdpTransport {
    UdpTransport::bind(addr, &opts).expect("bind")
}

/// A payload of `len` bytes whose content depends on `i`.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
        .collect()
}

/// Receives until `n` datagrams came or 10 s passed.
fn recv_n(
    t: &UdpTransport,
    n: usize,
    slots: usize,
    slot_size: usize,
) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut batch = RecvBatch::new(slots, slot_size);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        let k = t
            .recv(&mut batch, Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(k, batch.len());
        for i in 0..k {
            let (d, from) = batch.get(i);
            got.push((d.to_vec(), from));
        }
    }
    got
}

fn check_exchange(addr: SocketAddr, opts: UdpOptions, payloads: &[Vec<u8>]) -> UdpTransport {
    let a = bind(addr, opts);
    let b = bind(addr, UdpOptions::default());
    assert_ne!(a.local_addr().port(), 0);
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    let out = a.send(&refs, b.local_addr()).unwrap();
    assert_eq!(
        out,
        SendOutcome {
            sent: payloads.len(),
            dropped: 0
        }
    );
    let got = recv_n(&b, payloads.len(), 64, 2048);
    assert_eq!(got.len(), payloads.len());
    for (i, (d, from)) in got.iter().enumerate() {
        assert_eq!(d, &payloads[i], "datagram {i}");
        assert_eq!(*from, a.local_addr());
    }
    a
}

fn varied(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| payload(i, 1 + (i * 97) % 1400)).collect()
}

/// Equal-size runs with shorter tails, interleaved with odd sizes.
fn runs() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut i = 0;
    let mut add = |len: usize, v: &mut Vec<Vec<u8>>| {
        v.push(payload(i, len));
        i += 1;
    };
    for _ in 0..150 {
        add(1200, &mut v); // > 64 segments and > 65000 bytes: several GSO messages
    }
    add(500, &mut v); // shorter tail
    for _ in 0..10 {
        add(1400, &mut v);
    }
    add(1, &mut v);
    add(1, &mut v);
    add(1400, &mut v);
    add(1500, &mut v); // longer: a new run
    add(1500, &mut v);
    add(700, &mut v);
    v
}

#[test]
fn v4_varied_sizes_byte_exact() {
    let a = check_exchange(V4, UdpOptions::default(), &varied(200));
    assert!(a.local_addr().is_ipv4());
}

#[test]
fn v6_varied_sizes_byte_exact() {
    let a = check_exchange(V6, UdpOptions::default(), &varied(200));
    assert!(a.local_addr().is_ipv6());
}

#[test]
fn gso_runs_byte_exact() {
    let a = check_exchange(V4, UdpOptions::default(), &runs());
    // Loopback supports GSO on any kernel new enough to have it.
    assert!(a.info().gso, "GSO was refused on loopback");
    let a = check_exchange(V6, UdpOptions::default(), &runs());
    assert!(a.info().gso);
}

#[test]
fn non_gso_runs_byte_exact() {
    let opts = UdpOptions {
        gso: false,
        ..Default::default()
    };
    let a = check_exchange(V4, opts, &runs());
    assert!(!a.info().gso);
    check_exchange(V6, opts, &runs());
}

#[test]
fn gso_refused_falls_back_and_stays_off() {
    let a = bind(V4, UdpOptions::default());
    assert!(a.info().gso);
    // SO_NO_CHECK (no UDP checksums) makes the kernel refuse GSO sends with EINVAL.
    let one: libc::c_int = 1;
    // SAFETY: valid fd, option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            a.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&one as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let b = bind(V4, UdpOptions::default());
    let payloads = runs();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    let out = a.send(&refs, b.local_addr()).unwrap();
    assert_eq!(out.sent, payloads.len());
    assert!(!a.info().gso, "GSO should have been switched off");
    let got = recv_n(&b, payloads.len(), 64, 2048);
    let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, payloads);
}

#[test]
fn gro_splits_coalesced_bursts() {
    let a = bind(V4, UdpOptions::default());
    let b = bind(
        V4,
        UdpOptions {
            gro: true,
            ..Default::default()
        },
    );
    assert!(b.info().gro);
    assert!(a.info().gso);
    // First a lone datagram (no GRO control message), so that a receiver which forgot to
    // restore msg_controllen would lose the segment size of every later buffer.
    a.send(&[b"lonely"], b.local_addr()).unwrap();
    let got = recv_n(&b, 1, 16, 65536);
    assert_eq!(got, vec![(b"lonely".to_vec(), a.local_addr())]);

    for round in 0..3 {
        let mut payloads: Vec<Vec<u8>> = (0..40).map(|i| payload(i + round * 100, 1000)).collect();
        payloads.push(payload(999, 123));
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        assert_eq!(a.send(&refs, b.local_addr()).unwrap().sent, 41);
        let got = recv_n(&b, 41, 16, 65536);
        let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, payloads, "round {round}");
    }
    assert!(b.gro_buffers() >= 3, "no coalesced buffer seen");
    assert_eq!(b.truncated(), 0);
}

#[test]
fn gro_buffer_larger_than_slot_keeps_whole_segments() {
    let a = bind(V4, UdpOptions::default());
    let b = bind(
        V4,
        UdpOptions {
            gro: true,
            ..Default::default()
        },
    );
    let payloads: Vec<Vec<u8>> = (0..10).map(|i| payload(i, 1000)).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    a.send(&refs, b.local_addr()).unwrap();
    let mut batch = RecvBatch::new(16, 4096);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() as u64 + b.truncated() < 10 && Instant::now() < deadline {
        let k = b
            .recv(&mut batch, Some(Duration::from_millis(200)))
            .unwrap();
        for i in 0..k {
            got.push(batch.get(i).0.to_vec());
        }
    }
    assert_eq!(got.len() as u64 + b.truncated(), 10);
    // What arrived is a byte-exact prefix (one coalesced buffer: 4 whole segments fit).
    assert_eq!(got[..], payloads[..got.len()]);
    assert!(!got.is_empty());
}

#[test]
fn oversize_datagrams_are_dropped_and_counted() {
    let a = bind(V4, UdpOptions::default());
    let b = bind(V4, UdpOptions::default());
    let big = payload(1, 150);
    let small = payload(2, 50);
    let exact = payload(3, 100);
    a.send(&[&big, &small, &big, &exact], b.local_addr())
        .unwrap();
    let got = recv_n(&b, 2, 8, 100);
    let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, vec![small, exact]);
    assert_eq!(b.truncated(), 2);
}

#[test]
fn short_timeout_returns_zero() {
    let b = bind(V4, UdpOptions::default());
    let mut batch = RecvBatch::new(8, 2048);
    let start = Instant::now();
    assert_eq!(
        b.recv(&mut batch, Some(Duration::from_millis(20))).unwrap(),
        0
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(b.recv(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
    assert!(batch.is_empty());
}

#[test]
fn wake_interrupts_blocked_recv() {
    let b = Arc::new(bind(V4, UdpOptions::default()));
    let (tx, rx) = mpsc::channel();
    let b2 = b.clone();
    let start = Instant::now();
    let h = thread::spawn(move || {
        let mut batch = RecvBatch::new(8, 2048);
        let r = b2.recv(&mut batch, None).map_err(|e| e.kind());
        let _ = tx.send(r);
    });
    b.wake();
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("recv was not woken");
    assert_eq!(r, Ok(0));
    assert!(start.elapsed() < Duration::from_secs(5));
    h.join().unwrap();
    // The wake-up was consumed: the next recv waits for its timeout again.
    let mut batch = RecvBatch::new(8, 2048);
    let start = Instant::now();
    assert_eq!(
        b.recv(&mut batch, Some(Duration::from_millis(20))).unwrap(),
        0
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn send_while_other_thread_blocks_in_recv() {
    let a = bind(V4, UdpOptions::default());
    let b = Arc::new(bind(V4, UdpOptions::default()));
    let (tx, rx) = mpsc::channel();
    let b2 = b.clone();
    let h = thread::spawn(move || {
        let mut batch = RecvBatch::new(8, 2048);
        let n = b2.recv(&mut batch, Some(Duration::from_secs(10))).unwrap();
        let _ = tx.send((n, batch.get(0).0.to_vec()));
    });
    a.send(&[b"ping"], b.local_addr()).unwrap();
    let (n, d) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((n, d.as_slice()), (1, &b"ping"[..]));
    h.join().unwrap();
}

#[test]
fn info_reports_buffers_and_small_buffers_drop_not_block() {
    let a = bind(V4, UdpOptions::default());
    let info = a.info();
    assert!(info.send_buffer > 0 && info.recv_buffer > 0, "{info:?}");
    assert!(!info.gro);

    let small = UdpOptions {
        send_buffer: 4096,
        recv_buffer: 4096,
        ..Default::default()
    };
    let tx = bind(V4, small);
    let rx = bind(V4, small);
    assert!(tx.info().send_buffer < 1 << 20);
    let d = payload(0, 1000);
    let dgs: Vec<&[u8]> = vec![&d; 10_000];
    let out = tx.send(&dgs, rx.local_addr()).unwrap();
    assert_eq!(out.sent + out.dropped, 10_000);
    // The receiver, never read, lost most of it; what it kept is intact.
    let got = recv_n(&rx, 1, 64, 2048);
    assert!(!got.is_empty() && got.iter().all(|(g, _)| *g == d));
}

#[test]
fn closed_port_does_not_poison_later_sends() {
    let gone = bind(V4, UdpOptions::default()).local_addr();
    let a = bind(V4, UdpOptions::default());
    let b = bind(V4, UdpOptions::default());
    // Whatever the ICMP error does to this send, later ones must work.
    let _ = a.send(&[b"nobody"], gone);
    let _ = a.send(&[b"nobody"], gone);
    for i in 0..3u8 {
        let out = a.send(&[&[i; 10]], b.local_addr()).unwrap();
        assert_eq!(out.sent, 1);
        let got = recv_n(&b, 1, 8, 64);
        assert_eq!(got, vec![(vec![i; 10], a.local_addr())]);
    }
    // Receiving on the socket that provoked the ICMP errors is not an error either.
    let mut batch = RecvBatch::new(4, 64);
    assert_eq!(
        a.recv(&mut batch, Some(Duration::from_millis(10))).unwrap(),
        0
    );
}

#[test]
fn bad_destinations_are_errors_and_keep_gso() {
    let a = bind(V4, UdpOptions::default());
    let e = a.send(&[b"x"], V4).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = a
        .send(&[b"x"], SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(a.info().gso);
    assert_eq!(a.send(&[], V4).unwrap(), SendOutcome::default());
}

#[test]
fn dual_stack_socket_reaches_ipv4_peer() {
    let a = bind(
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        UdpOptions::default(),
    );
    let b = bind(V4, UdpOptions::default());
    // An IPv4 destination goes out v4-mapped; replies come back as plain IPv4 addresses.
    let payloads = runs();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    a.send(&refs, b.local_addr()).unwrap();
    let got = recv_n(&b, payloads.len(), 64, 2048);
    assert_eq!(got.len(), payloads.len());
    assert!(got.iter().zip(&payloads).all(|((g, _), p)| g == p));
    let from = got[0].1;
    assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    b.send(&[b"back"], from).unwrap();
    let back = recv_n(&a, 1, 8, 64);
    assert_eq!(back, vec![(b"back".to_vec(), b.local_addr())]);
}

#[test]
fn dscp_is_applied() {
    let opts = UdpOptions {
        dscp: 46,
        ..Default::default()
    };
    let a = bind(V4, opts);
    assert_eq!(socket::getsockopt(&a, sockopt::Ipv4Tos).unwrap(), 46 << 2);
    let a = bind(V6, opts);
    assert_eq!(
        socket::getsockopt(&a, sockopt::Ipv6TClass).unwrap(),
        46 << 2
    );
}

#[test]
fn gso_run_planning() {
    let a = [0u8; 1000];
    let short = [0u8; 10];
    let big = [0u8; 40000];
    assert_eq!(gso_run(&[]), 0);
    assert_eq!(gso_run(&[&a]), 1);
    assert_eq!(gso_run(&[&a, &a, &a]), 3);
    assert_eq!(gso_run(&[&a, &a, &short, &a]), 3);
    assert_eq!(gso_run(&[&short, &a]), 1);
    assert_eq!(gso_run(&[&big, &big]), 1);
    assert_eq!(gso_run(&[&[], &[]]), 1);
    assert_eq!(gso_run(&[&a, &[], &a]), 1);
    let many: Vec<&[u8]> = vec![&a; 200];
    assert_eq!(gso_run(&many), MAX_GSO_SEGMENTS);
    let b = [0u8; 1200];
    let many: Vec<&[u8]> = vec![&b; 200];
    assert_eq!(gso_run(&many), MAX_GSO_BYTES / 1200);
    let tiny = [0u8; 10];
    let many: Vec<&[u8]> = vec![&tiny; 200];
    assert_eq!(gso_run(&many), MAX_GSO_SEGMENTS);
}

#[test]
fn address_conversion() {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    assert_eq!(raw_to_std(&ss, 0), None);
    let mapped = SocketAddr::V6(SocketAddrV6::new(
        Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped(),
        4242,
        0,
        0,
    ));
    let s = SockaddrStorage::from(mapped);
    // SAFETY: copying `len` bytes of a sockaddr into a sockaddr_storage.
    unsafe {
        ptr::copy_nonoverlapping(
            s.as_ptr().cast::<u8>(),
            (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
            s.len() as usize,
        );
    }
    assert_eq!(
        raw_to_std(&ss, s.len()),
        Some("10.1.2.3:4242".parse().unwrap())
    );
    // Too short for the family.
    assert_eq!(raw_to_std(&ss, 8), None);
}

#[test]
fn error_classes() {
    assert!(is_buffer_full(Errno::EAGAIN) && is_buffer_full(Errno::ENOBUFS));
    assert!(!is_buffer_full(Errno::ECONNREFUSED));
    assert!(is_gso_refusal(Errno::EIO) && is_gso_refusal(Errno::EINVAL));
    assert!(!is_gso_refusal(Errno::ECONNREFUSED));
    assert!(is_stale_icmp_error(Errno::ECONNREFUSED));
}

#[test]
fn transport_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<UdpTransport>();
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn received_datagrams_carry_the_kernels_receive_time() {
    for (gro, stamps) in [(false, true), (true, true), (false, false)] {
        let opts = UdpOptions {
            gro,
            rx_timestamps: stamps,
            ..UdpOptions::default()
        };
        let a = bind(V4, opts);
        let b = bind(V4, opts);
        let before = realtime_ns();
        let d: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 1200)).collect();
        let refs: Vec<&[u8]> = d.iter().map(Vec::as_slice).collect();
        assert_eq!(a.send(&refs, b.local_addr()).unwrap().sent, 3);
        let mut batch = RecvBatch::new(8, 65536);
        let mut times = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while times.len() < 3 && Instant::now() < deadline {
            let k = b
                .recv(&mut batch, Some(Duration::from_millis(500)))
                .unwrap();
            for i in 0..k {
                times.push(batch.received_ns(i));
            }
        }
        let after = realtime_ns();
        assert_eq!(times.len(), 3, "gro {gro}");
        if !stamps {
            assert!(times.iter().all(Option::is_none), "{times:?}");
            continue;
        }
        let times: Vec<u64> = times.into_iter().map(|t| t.expect("stamped")).collect();
        assert!(
            times.iter().all(|&t| (before..=after).contains(&t)),
            "gro {gro}: {times:?} not within {before}..{after}"
        );
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
