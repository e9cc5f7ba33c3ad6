//! Helpers of the whole-pipeline tests: GStreamer set-up, pipelines whose bus messages arrive
//! on a channel, pad-probe taps that collect buffers or events, a UDP relay that drops on
//! command, and process resource counts. Every wait has a timeout and panics with what it was
//! waiting for; nothing here sleeps to synchronise.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Upper bound of any single wait on the network, a probe or the bus.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        gstpunktfunk::plugin_register_static().expect("register plugin");
    });
}

/// Runs the tests of this file one at a time: they share two CPU cores with real encoders and
/// decoders, and the leak test counts the threads and sockets of the whole process. Also
/// initialises GStreamer.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    init();
    // A failed test must not fail all that follow with a poisoned lock.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pipeline whose bus messages all go to a channel (a sync handler takes them off the bus).
/// Messages looked at are kept, so errors and warnings can be checked at the end. Dropping it
/// sets the pipeline to NULL.
pub struct Pipe {
    pub name: &'static str,
    pub pipeline: gst::Pipeline,
    msgs: mpsc::Receiver<gst::Message>,
    log: RefCell<Vec<gst::Message>>,
}

impl Pipe {
    pub fn launch(name: &'static str, desc: &str) -> Pipe {
        let pipeline = gst::parse::launch(desc)
            .unwrap_or_else(|e| panic!("{name}: cannot build '{desc}': {e}"))
            .downcast::<gst::Pipeline>()
            .expect("parse::launch of several elements gives a pipeline");
        Pipe::wrap(name, pipeline)
    }

    pub fn wrap(name: &'static str, pipeline: gst::Pipeline) -> Pipe {
        let (tx, msgs) = mpsc::channel();
        pipeline
            .bus()
            .expect("a pipeline has a bus")
            .set_sync_handler(move |_, m| {
                let _ = tx.send(m.to_owned());
                gst::BusSyncReply::Drop
            });
        Pipe {
            name,
            pipeline,
            msgs,
            log: RefCell::new(Vec::new()),
        }
    }

    pub fn el(&self, name: &str) -> gst::Element {
        self.pipeline
            .by_name(name)
            .unwrap_or_else(|| panic!("{}: no element '{name}'", self.name))
    }

    pub fn set(&self, state: gst::State) {
        if let Err(e) = self.pipeline.set_state(state) {
            self.drain();
            panic!(
                "{}: set_state({state:?}) failed: {e:?}; errors: {:?}",
                self.name,
                self.errors()
            );
        }
    }

    pub fn play(&self) {
        self.set(gst::State::Playing);
    }

    pub fn stop(&self) {
        self.set(gst::State::Null);
    }

    /// The next message `pred` accepts within `timeout`. An error message that `pred` does not
    /// accept fails the test at once.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&gst::Message) -> bool,
    ) -> gst::Message {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let m = self.msgs.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "{}: timed out after {timeout:?} waiting for {what}",
                    self.name
                )
            });
            self.log.borrow_mut().push(m.clone());
            if pred(&m) {
                return m;
            }
            if let gst::MessageView::Error(e) = m.view() {
                panic!(
                    "{}: error from {:?} while waiting for {what}: {} ({:?})",
                    self.name,
                    m.src().map(|s| s.name()),
                    e.error(),
                    e.debug()
                );
            }
        }
    }

    /// The next element message named `name` within `timeout`.
    pub fn wait_element(&self, name: &str, timeout: Duration) -> gst::Structure {
        let m = self.wait(name, timeout, |m| element_structure(m, name).is_some());
        element_structure(&m, name)
            .expect("accepted above")
            .to_owned()
    }

    pub fn wait_eos(&self, timeout: Duration) {
        self.wait("EOS", timeout, |m| {
            matches!(m.view(), gst::MessageView::Eos(_))
        });
    }

    /// Moves the messages that arrived so far into the log.
    pub fn drain(&self) {
        while let Ok(m) = self.msgs.try_recv() {
            self.log.borrow_mut().push(m);
        }
    }

    /// Error messages so far, as text.
    pub fn errors(&self) -> Vec<String> {
        self.drain();
        self.log
            .borrow()
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Error(e) => Some(format!(
                    "{:?}: {} ({:?})",
                    m.src().map(|s| s.name()),
                    e.error(),
                    e.debug()
                )),
                _ => None,
            })
            .collect()
    }

    /// Warning messages so far from the element named `element`, as text.
    pub fn warnings_from(&self, element: &str) -> Vec<String> {
        self.drain();
        self.log
            .borrow()
            .iter()
            .filter(|m| m.src().is_some_and(|s| s.name() == element))
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(format!("{} ({:?})", w.error(), w.debug())),
                _ => None,
            })
            .collect()
    }

    /// Every message so far (looked at or not), in order.
    #[allow(dead_code)] // used by tests/congestion_pipeline.rs only
    pub fn messages(&self) -> Vec<gst::Message> {
        self.drain();
        self.log.borrow().clone()
    }

    pub fn assert_no_errors(&self) {
        let errors = self.errors();
        assert!(
            errors.is_empty(),
            "{}: errors posted: {errors:#?}",
            self.name
        );
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The structure of an element message named `name`.
pub fn element_structure<'a>(m: &'a gst::Message, name: &str) -> Option<&'a gst::StructureRef> {
    match m.view() {
        gst::MessageView::Element(e) => e.structure().filter(|s| s.name() == name),
        _ => None,
    }
}

/// A running element's `bound-port`.
pub fn bound_port(e: &gst::Element) -> u16 {
    let p = e.property::<u32>("bound-port");
    assert_ne!(p, 0, "{} has no bound port (not started?)", e.name());
    u16::try_from(p).expect("a UDP port")
}

/// Makes the caller `src` call the port the listener `sink` binds, as `notify::port` announces
/// it from the sink's start() (in one pipeline that is before the src starts: a bin starts its
/// sinks first).
pub fn call_the_sinks_port(sink: &gst::Element, src: &gst::Element) {
    let called = src.downgrade();
    sink.connect_notify(Some("port"), move |sink, _| {
        let port = sink.property::<u32>("port");
        if let (Some(src), true) = (called.upgrade(), port != 0) {
            src.set_property("port", port);
        }
    });
}

/// A counter of an element's `stats` structure.
pub fn stat(e: &gst::Element, field: &str) -> u64 {
    let s = e.property::<gst::Structure>("stats");
    s.get::<u64>(field)
        .unwrap_or_else(|_| panic!("no u64 field {field} in {s}"))
}

pub fn pad(e: &gst::Element, name: &str) -> gst::Pad {
    e.static_pad(name)
        .unwrap_or_else(|| panic!("{} has no pad {name}", e.name()))
}

/// What a pad probe saw, collected from a channel.
pub struct Tap<T> {
    what: String,
    rx: mpsc::Receiver<T>,
    items: RefCell<Vec<T>>,
}

/// A buffer seen by a [`Tap`]: its bytes (when kept) and flags.
#[derive(Clone)]
pub struct Au {
    pub data: Vec<u8>,
    pub flags: gst::BufferFlags,
}

impl Au {
    pub fn keyframe(&self) -> bool {
        !self.flags.contains(gst::BufferFlags::DELTA_UNIT)
    }
}

impl std::fmt::Debug for Au {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Au({} bytes, {:?})", self.data.len(), self.flags)
    }
}

impl Tap<Au> {
    /// Every buffer that passes `pad` (with its bytes when `keep_data`).
    pub fn buffers(pad: &gst::Pad, keep_data: bool, what: &str) -> Tap<Au> {
        let (tx, rx) = mpsc::channel();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                let data = if keep_data {
                    b.map_readable().map(|m| m.to_vec()).unwrap_or_default()
                } else {
                    Vec::new()
                };
                let _ = tx.send(Au {
                    data,
                    flags: b.flags(),
                });
            }
            gst::PadProbeReturn::Ok
        })
        .expect("buffer probe");
        Tap::new(what, rx)
    }
}

impl Tap<gst::Event> {
    /// Every upstream event that passes `pad`.
    pub fn upstream_events(pad: &gst::Pad, what: &str) -> Tap<gst::Event> {
        let (tx, rx) = mpsc::channel();
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(e) = info.event() {
                let _ = tx.send(e.clone());
            }
            gst::PadProbeReturn::Ok
        })
        .expect("event probe");
        Tap::new(what, rx)
    }
}

impl<T: Clone> Tap<T> {
    fn new(what: &str, rx: mpsc::Receiver<T>) -> Tap<T> {
        Tap {
            what: what.to_owned(),
            rx,
            items: RefCell::new(Vec::new()),
        }
    }

    fn drain(&self) {
        while let Ok(x) = self.rx.try_recv() {
            self.items.borrow_mut().push(x);
        }
    }

    /// How many items arrived so far.
    pub fn len(&self) -> usize {
        self.drain();
        self.items.borrow().len()
    }

    /// All items so far, in order.
    pub fn items(&self) -> Vec<T> {
        self.drain();
        self.items.borrow().clone()
    }

    /// How many items so far `pred` accepts.
    pub fn count(&self, pred: impl Fn(&T) -> bool) -> usize {
        self.drain();
        self.items.borrow().iter().filter(|x| pred(x)).count()
    }

    /// Waits until `pred` accepts at least `n` items in total; returns them.
    pub fn wait_count(&self, n: usize, timeout: Duration, pred: impl Fn(&T) -> bool) -> Vec<T> {
        let end = Instant::now() + timeout;
        loop {
            let matched: Vec<T> = {
                self.drain();
                self.items
                    .borrow()
                    .iter()
                    .filter(|x| pred(x))
                    .cloned()
                    .collect()
            };
            if matched.len() >= n {
                return matched;
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(x) => self.items.borrow_mut().push(x),
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for {n} {} (have {})",
                    self.what,
                    matched.len()
                ),
            }
        }
    }

    /// Waits until at least `n` items arrived in total.
    pub fn wait_len(&self, n: usize, timeout: Duration) {
        self.wait_count(n, timeout, |_| true);
    }
}

/// A UDP relay between a caller and a listener that forwards everything, except that it drops
/// the next `n` datagrams towards the caller when told to ([`DropRelay::drop_next_down`]):
/// an unrecoverable loss on command.
pub struct DropRelay {
    addr: SocketAddr,
    drop_down: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DropRelay {
    pub fn start(upstream: SocketAddr) -> io::Result<DropRelay> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        let back = UdpSocket::bind("127.0.0.1:0")?;
        // The timeouts only bound how late the threads see `stop`.
        front.set_read_timeout(Some(Duration::from_millis(20)))?;
        back.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = front.local_addr()?;
        let (front2, back2) = (front.try_clone()?, back.try_clone()?);
        let stop = Arc::new(AtomicBool::new(false));
        let drop_down = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let caller: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let up = {
            let (stop, caller) = (stop.clone(), caller.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *caller.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                        let _ = back.send_to(&buf[..n], upstream);
                    }
                }
            })
        };
        let down = {
            let (stop, drop_down, dropped) = (stop.clone(), drop_down.clone(), dropped.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = back2.recv_from(&mut buf) else {
                        continue;
                    };
                    if from != upstream {
                        continue;
                    }
                    let drop_it = drop_down
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
                        .is_ok();
                    if drop_it {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let to = *caller.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(to) = to {
                        let _ = front2.send_to(&buf[..n], to);
                    }
                }
            })
        };
        Ok(DropRelay {
            addr,
            drop_down,
            dropped,
            stop,
            threads: vec![up, down],
        })
    }

    /// Where the caller sends.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops the next `n` datagrams from the listener to the caller.
    pub fn drop_next_down(&self, n: u64) {
        self.drop_down.fetch_add(n, Ordering::AcqRel);
    }

    /// Drops every datagram towards the caller until [`DropRelay::stop_dropping`].
    pub fn drop_all_down(&self) {
        self.drop_down.store(u64::MAX, Ordering::Release);
    }

    /// Forwards everything again.
    pub fn stop_dropping(&self) {
        self.drop_down.store(0, Ordering::Release);
    }

    /// Datagrams still to be dropped.
    pub fn pending_drops(&self) -> u64 {
        self.drop_down.load(Ordering::Acquire)
    }

    /// Datagrams dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for DropRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Open file descriptors of this process (sockets included).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}
