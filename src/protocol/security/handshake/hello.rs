//! The hello's clear bytes: what a listener reads before any crypto ([`peek_hello`]) and what a
//! caller puts into a hello besides its keys ([`HelloParams`]).
//!
//! Owns the hello's layout checks (one fixed length, known flags, zero reserved byte, a cookie
//! only with its flag). Must never: do crypto or keep state, so a listener can run it on every
//! datagram from anyone.

use super::super::cookie::{COOKIE_LEN, Cookie};
use super::{
    COOKIE_AT, FLAG_COOKIE, FLAG_ENCRYPT, FLAG_PASSPHRASE, HANDSHAKE_VERSION, HELLO_BODY_LEN,
    HELLO_CLEAR_LEN, NOISE_KEY_LEN, NOISE_TAG_LEN, Role,
};
use crate::protocol::wire::WireError;

/// What [`peek_hello`] reads from a hello's clear bytes without any crypto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloPeek {
    /// The caller's role.
    pub role: Role,
    /// The caller uses a passphrase.
    pub passphrase: bool,
    /// The caller wants the session sealed.
    pub encrypt: bool,
    /// The echoed cookie, if the hello carries one.
    pub cookie: Option<Cookie>,
}

/// Parses the clear part of a hello body (length, version, flags, role, cookie) for the
/// listener's cheap checks — cookie and rate limit — before [`Responder::respond`].
pub fn peek_hello(body: &[u8]) -> Result<HelloPeek, WireError> {
    if body.len() != HELLO_BODY_LEN {
        return Err(if body.len() < HELLO_BODY_LEN {
            WireError::Truncated
        } else {
            WireError::Limit("hello length")
        });
    }
    if body[0] != HANDSHAKE_VERSION {
        return Err(WireError::BadVersion(body[0]));
    }
    let flags = body[1];
    if flags & !(FLAG_PASSPHRASE | FLAG_ENCRYPT | FLAG_COOKIE) != 0 {
        return Err(WireError::Limit("handshake flags"));
    }
    let role = Role::from_u8(body[2])?;
    if body[3] != 0 {
        return Err(WireError::Limit("handshake reserved byte"));
    }
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(&body[COOKIE_AT..COOKIE_AT + COOKIE_LEN]);
    let cookie = if flags & FLAG_COOKIE != 0 {
        Some(Cookie(c))
    } else if c != [0; COOKIE_LEN] {
        return Err(WireError::Limit("cookie without flag"));
    } else {
        None
    };
    Ok(HelloPeek {
        role,
        passphrase: flags & FLAG_PASSPHRASE != 0,
        encrypt: flags & FLAG_ENCRYPT != 0,
        cookie,
    })
}

/// Length of the hello's Noise payload for a mode, so that every hello is [`HELLO_BODY_LEN`].
pub(super) fn hello_payload_len(pake: bool) -> usize {
    let tag = if pake { NOISE_TAG_LEN } else { 0 };
    HELLO_BODY_LEN - HELLO_CLEAR_LEN - NOISE_KEY_LEN - tag
}

/// What a caller puts into one hello besides its keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloParams {
    /// The caller's wall clock, ms since the Unix epoch (the connection reads it).
    pub unix_ms: u64,
    /// Incremented per hello by the caller, so hellos within one ms still differ.
    pub counter: u32,
    /// A cookie from the listener's CookieReply, if it asked for one.
    pub cookie: Option<Cookie>,
}
