//! Whether the examples can open a video window. Without a display server `autovideosink`
//! falls through its candidates to console sinks, and DirectFB's crashes the process; the
//! examples ask first and run headless instead, saying so.
//!
//! Only the environment is read (no connection is made): a display server is announced by
//! `WAYLAND_DISPLAY` or `DISPLAY` on Linux and the BSDs; macOS and Windows always have one.

use std::ffi::OsString;

/// Why no window can be opened, or `None` when a display is announced. `var` reads an
/// environment variable (`std::env::var_os` in the examples).
pub fn missing_display(var: impl Fn(&str) -> Option<OsString>) -> Option<&'static str> {
    if cfg!(any(target_os = "macos", windows)) {
        return None;
    }
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if set("WAYLAND_DISPLAY") || set("DISPLAY") {
        None
    } else {
        Some("neither DISPLAY nor WAYLAND_DISPLAY is set")
    }
}

/// [`missing_display`] on this process's environment.
pub fn missing_display_here() -> Option<&'static str> {
    missing_display(|name| std::env::var_os(name))
}

#[cfg(all(test, not(any(target_os = "macos", windows))))]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn no_display_variable_means_no_window() {
        assert!(missing_display(env(&[])).is_some());
        // Set but empty (`DISPLAY= cmd`) announces nothing either.
        assert!(missing_display(env(&[("DISPLAY", ""), ("WAYLAND_DISPLAY", "")])).is_some());
        assert!(missing_display(env(&[("XDG_SESSION_TYPE", "tty")])).is_some());
    }

    #[test]
    fn x11_or_wayland_announce_a_display() {
        assert_eq!(missing_display(env(&[("DISPLAY", ":0")])), None);
        assert_eq!(
            missing_display(env(&[("WAYLAND_DISPLAY", "wayland-0")])),
            None
        );
        assert_eq!(
            missing_display(env(&[("DISPLAY", ""), ("WAYLAND_DISPLAY", "wayland-1")])),
            None
        );
    }
}
