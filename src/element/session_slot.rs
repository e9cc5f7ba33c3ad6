//! The session an element runs between `start()` and `stop()`, and what the properties read
//! from it: `stats` (with the last session's counters after stop), `bound-port`, and the bound
//! `port` (listener) or `bind-port` (caller) while running, each announced with `notify`.
//!
//! Owns: opening a session from the common settings (security warning, endpoints, config,
//! bind) and closing it. Must never: hold its lock while anything blocks or calls out (the
//! session is cloned out, `notify` is emitted with no lock held), or hand out a session after
//! `close`.

use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;

use crate::protocol::security::handshake::Role;
use crate::session::{Session, Stats};

use super::lock;
use super::net::{bind_transport, session_error};
use super::settings::{ConnectionMode, OwnSettings, Settings};
use super::stats::{session_stats, stats_structure};

/// The running session and the mode it was started in (settings may change while running;
/// they take effect at the next start).
struct Running {
    session: Session,
    mode: ConnectionMode,
}

/// An element's session slot: empty while stopped.
pub(crate) struct SessionSlot {
    role: Role,
    running: Mutex<Option<Running>>,
    /// Counters and bound port of the last session, so `stats` still answers after `stop`.
    last: Mutex<Option<(Stats, u32)>>,
}

impl SessionSlot {
    pub(crate) fn new(role: Role) -> Self {
        SessionSlot {
            role,
            running: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// A handle to the running session (cheap: sessions are shared handles).
    pub(crate) fn session(&self) -> Option<Session> {
        lock(&self.running).as_ref().map(|r| r.session.clone())
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// The local UDP port bound while running, 0 when stopped.
    pub(crate) fn bound_port(&self) -> u32 {
        lock(&self.running)
            .as_ref()
            .map_or(0, |r| u32::from(r.session.local_addr().port()))
    }

    /// The `stats` structure: the running session's counters, else the last session's, else
    /// zeros.
    pub(crate) fn stats(&self) -> gst::Structure {
        if let Some(session) = self.session() {
            let port = u32::from(session.local_addr().port());
            return session_stats(&session, port);
        }
        match lock(&self.last).as_ref() {
            Some((stats, port)) => stats_structure(stats, *port),
            None => stats_structure(
                &Stats {
                    role: Some(self.role),
                    ..Stats::default()
                },
                0,
            ),
        }
    }

    /// The properties whose value comes from the running session: `stats`, `bound-port`, and
    /// the local port a session bound — `port` for a listener, `bind-port` for a caller (as
    /// `udpsrc` reads back `port`). `None`: read the setting.
    pub(crate) fn runtime_property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        match pspec.name() {
            "stats" => Some(self.stats().to_value()),
            "bound-port" => Some(self.bound_port().to_value()),
            name @ ("port" | "bind-port") => {
                let running = lock(&self.running);
                let r = running.as_ref()?;
                (name == local_port_property(r.mode))
                    .then(|| u32::from(r.session.local_addr().port()).to_value())
            }
            _ => None,
        }
    }

    /// Starts a session as `settings` ask ([`Settings::config`]), on a socket opened with
    /// the element's [`OwnSettings::udp_options`]. Posts the warning about an unauthenticated
    /// peer, and notifies the bound port.
    pub(crate) fn open<O: OwnSettings>(
        &self,
        element: &gst::Element,
        cat: gst::DebugCategory,
        all: &Settings<O>,
    ) -> Result<Session, gst::ErrorMessage> {
        let settings = &all.common;
        if let Some(w) = settings.security_warning() {
            gst::warning!(cat, obj = element, "{w}");
            gst::element_warning!(element, gst::ResourceError::Settings, ("{w}"));
        }
        let ep = settings.endpoints()?;
        let config = all.config(&ep)?;
        // Checked before binding, so a setting error never holds a port.
        config.validate().map_err(session_error)?;
        // Safe by default: refused before binding when the address is known to be exposed.
        config.check_exposure(ep.bind).map_err(exposure_error)?;
        let transport = bind_transport(ep.bind, &all.own.udp_options())?;
        let session = Session::new(config, transport).map_err(session_error)?;
        let local = session.local_addr();
        match ep.peer {
            Some(peer) => gst::info!(cat, obj = element, "bound {local}, calling {peer}"),
            None => gst::info!(cat, obj = element, "listening on {local}"),
        }
        *lock(&self.running) = Some(Running {
            session: session.clone(),
            mode: settings.mode,
        });
        notify_ports(element, settings.mode);
        Ok(session)
    }

    /// Ends the running session, if any: keeps its counters for `stats` and notifies the ports
    /// (which read the settings again). The caller's clones of the session stay usable until
    /// dropped; the socket closes with the last one.
    pub(crate) fn close(&self, element: &gst::Element) -> Option<Session> {
        let r = lock(&self.running).take()?;
        let port = u32::from(r.session.local_addr().port());
        *lock(&self.last) = Some((r.session.stats(), port));
        notify_ports(element, r.mode);
        Some(r.session)
    }
}

/// The property that holds the local port: a listener binds `port`, a caller `bind-port`.
fn local_port_property(mode: ConnectionMode) -> &'static str {
    match mode {
        ConnectionMode::Listener => "port",
        ConnectionMode::Caller => "bind-port",
    }
}

fn notify_ports(element: &gst::Element, mode: ConnectionMode) {
    element.notify(local_port_property(mode));
    element.notify("bound-port");
}

/// A listener that would be open to anyone: an element error that says what to set.
fn exposure_error(e: crate::session::Error) -> gst::ErrorMessage {
    let what = match e {
        crate::session::Error::InvalidArg(w) => w,
        _ => crate::session::UNAUTHENTICATED_LISTENER,
    };
    gst::error_msg!(gst::ResourceError::NotAuthorized, ("{what}"))
}
