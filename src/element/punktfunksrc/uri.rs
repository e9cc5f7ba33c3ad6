//! The `punktfunk://[passphrase@]host:port` URI of `punktfunksrc` (so `playbin` and
//! `gst-play-1.0` can open a stream).
//!
//! Owns: parsing and printing the URI. Must never: show or log the passphrase
//! ([`PunktfunkUri::to_public_string`] and the `Debug` impl leave it out).

use std::fmt;
use std::net::Ipv6Addr;

use crate::element::net::host_port;
use crate::element::settings::DEFAULT_PORT;

/// URI scheme of `punktfunksrc`.
pub(crate) const URI_SCHEME: &str = "punktfunk";

/// What a `punktfunk://[passphrase@]host:port` URI says.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PunktfunkUri {
    pub(crate) passphrase: Option<String>,
    /// Host name or IP literal, without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Debug for PunktfunkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PunktfunkUri")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

impl PunktfunkUri {
    /// Parses `punktfunk://[passphrase@]host[:port][/]` (IPv6 hosts in brackets; the
    /// passphrase percent-encoded where it holds `@`, `:`, `/` or `%`; port defaults to 7600).
    pub(crate) fn parse(uri: &str) -> Result<PunktfunkUri, String> {
        let uri = uri.trim();
        let rest = uri
            .split_once("://")
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(URI_SCHEME))
            .map(|(_, rest)| rest)
            .ok_or_else(|| format!("not a {URI_SCHEME}:// URI"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("a punktfunk URI has no path, query or fragment".into());
        }
        let (passphrase, hostport) = match rest.rsplit_once('@') {
            Some((user, hp)) => {
                let p = percent_decode(user)?;
                (if p.is_empty() { None } else { Some(p) }, hp)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("unterminated '[' in IPv6 address")?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(format!("'{h}' is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("expected ':port' after ']'")?),
            };
            (h.to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err("an IPv6 address must be written in brackets: [::1]:7600".into());
                }
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("the URI names no host".into());
        }
        let port = match port {
            None => DEFAULT_PORT as u16,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("'{p}' is not a port (1..65535)")),
            },
        };
        Ok(PunktfunkUri {
            passphrase,
            host,
            port,
        })
    }

    /// The URI without the passphrase (which must never be shown).
    pub(crate) fn to_public_string(&self) -> String {
        format!(
            "{URI_SCHEME}://{}",
            host_port(&self.host, u32::from(self.port))
        )
    }
}

/// Decodes `%XX` escapes (UTF-8 result required).
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid %-escape in passphrase")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "passphrase is not UTF-8 after %-decoding".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        let u = PunktfunkUri::parse("punktfunk://127.0.0.1:7611").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 7611);
        assert_eq!(u.passphrase, None);
        let u = PunktfunkUri::parse("punktfunk://se%40cret%3A1@[::1]:9000/").unwrap();
        assert_eq!(u.passphrase.as_deref(), Some("se@cret:1"));
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 9000);
        assert_eq!(u.to_public_string(), "punktfunk://[::1]:9000");
        let u = PunktfunkUri::parse("PUNKTFUNK://host.example").unwrap();
        assert_eq!(u.port, 7600);
        for bad in [
            "http://x:1",
            "punktfunk://",
            "punktfunk://::1:7600",
            "punktfunk://[::1",
            "punktfunk://h:0",
            "punktfunk://h:99999",
            "punktfunk://p%zz@h:1",
            "punktfunk://h:1/path",
        ] {
            assert!(PunktfunkUri::parse(bad).is_err(), "{bad}");
        }
    }
}
