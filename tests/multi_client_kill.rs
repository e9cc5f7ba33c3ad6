//! A client process killed with SIGKILL frees its slot within the sink's `timeout`, and the
//! caller that was refused as busy takes it, while the other client keeps decoding.
//!
//! The killed client must be a process of its own (a crash leaves no goodbye on the wire), so
//! this file has its own `main` (`harness = false`): started with `PUNKTFUNK_KILL_CHILD_PORT`
//! set it is the child, a `punktfunksrc` pipeline calling that port until its stdin closes or it
//! is killed; started plainly it is the test. Every wait has a timeout.

#[allow(dead_code)]
#[path = "pipelines/support.rs"]
mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Pipe, Tap, WAIT, bound_port, pad, stat};

const CHILD_PORT: &str = "PUNKTFUNK_KILL_CHILD_PORT";
const CONNECTED: &str = "punktfunk-client-connected";
const DISCONNECTED: &str = "punktfunk-client-disconnected";
const REFUSED: &str = "punktfunk-peer-refused";
/// The sink's `timeout` in this test (ms): short, so the test stays short.
const TIMEOUT_MS: u64 = 1000;

fn main() {
    if let Ok(port) = std::env::var(CHILD_PORT) {
        child(port.parse().expect("a port number"));
        return;
    }
    a_killed_client_frees_its_slot_within_timeout_and_the_next_takes_it();
    println!("test a_killed_client_frees_its_slot_within_timeout_and_the_next_takes_it ... ok");
}

/// The child: a client pipeline calling `port`, until stdin closes (the parent ended) or it is
/// killed.
fn child(port: u16) {
    support::init();
    let c = Pipe::launch(
        "child",
        &format!("punktfunksrc port={port} ! h264parse ! avdec_h264 ! fakesink sync=false"),
    );
    c.play();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    c.stop();
}

/// Kills the child when the test ends, whichever way.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn decoding(name: &'static str, port: u16) -> (Pipe, Tap<support::Au>) {
    let c = Pipe::launch(
        name,
        &format!(
            "punktfunksrc name=src port={port} ! h264parse ! avdec_h264 name=dec \
             ! fakesink sync=false"
        ),
    );
    let tap = Tap::buffers(&pad(&c.el("dec"), "src"), false, "decoded pictures");
    c.play();
    (c, tap)
}

fn a_killed_client_frees_its_slot_within_timeout_and_the_next_takes_it() {
    support::init();
    let h = Pipe::launch(
        "host",
        &format!(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
             ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! punktfunksink name=sink address=127.0.0.1 port=0 max-clients=2 \
             timeout={TIMEOUT_MS}"
        ),
    );
    h.play();
    let sink = h.el("sink");
    let port = bound_port(&sink);

    // Client A: another process.
    let child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_PORT, port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the client process");
    let mut child = ChildGuard(child);
    let a = h.wait_element(CONNECTED, WAIT);
    let a_id = a.get::<u64>("id").unwrap();

    // Client B, in this process, fills the second slot; client C is refused as busy.
    let (b, b_pics) = decoding("client-b", port);
    let b_id = h.wait_element(CONNECTED, WAIT).get::<u64>("id").unwrap();
    b_pics.wait_len(10, WAIT);
    let (c, c_pics) = decoding("client-c", port);
    h.wait_element(REFUSED, WAIT);
    assert_eq!(c_pics.len(), 0);
    assert_eq!(stat(&sink, "clients"), 2);

    // SIGKILL: no goodbye reaches the host. A's slot frees once `timeout` passed without a
    // datagram from it, not sooner, and C takes it.
    child.0.kill().expect("SIGKILL the client process");
    let killed = Instant::now();
    let gone = h.wait_element(DISCONNECTED, WAIT);
    let freed_after = killed.elapsed();
    assert_eq!(gone.get::<u64>("id").unwrap(), a_id);
    assert_eq!(gone.get::<String>("reason").unwrap(), "timeout");
    assert!(
        freed_after >= Duration::from_millis(TIMEOUT_MS) - Duration::from_millis(100),
        "freed {freed_after:?} after the kill, before the timeout"
    );
    // Bounded by the timeout and the liveness checks, well short of the barring of a
    // disconnected address (10 s) or anything else.
    assert!(
        freed_after < Duration::from_millis(TIMEOUT_MS) * 4,
        "freed only {freed_after:?} after the kill"
    );
    let c_id = h.wait_element(CONNECTED, WAIT).get::<u64>("id").unwrap();
    assert!(c_id != a_id && c_id != b_id);
    c_pics.wait_len(10, WAIT);
    // B kept decoding throughout.
    let b_before = b_pics.len();
    b_pics.wait_len(b_before + 10, WAIT);
    assert_eq!(stat(&sink, "clients"), 2);
    eprintln!("slot freed {freed_after:?} after SIGKILL (timeout {TIMEOUT_MS} ms)");

    for p in [&b, &c, &h] {
        p.stop();
    }
    h.assert_no_errors();
    b.assert_no_errors();
    c.assert_no_errors();
}
