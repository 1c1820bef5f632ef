//! `--server` URLs: their normal form, the check that makes a URL no
//! request could reach a usage error, and the name lookup that makes a
//! name that does not resolve an unreachable server.

use crate::error::{Error, Result};

/// A `--server` URL as requests are made of it: `http://` when it names
/// no scheme, and no trailing `/`.
pub fn normal_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.trim_end_matches('/')),
        None => format!("http://{}", url.trim_end_matches('/')),
    }
}

/// A `--server` URL that no request could ever reach is a usage error
/// (exit 2), not a server that cannot be reached (exit 5, worth a retry).
pub fn check_url(url: &str) -> Result<()> {
    check_url_of("bad server URL", url)
}

/// [`check_url`] of a URL given as `what` (a flag such as `--join`).
pub fn check_url_of(what: &str, url: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(format!("{what} {url}: {why}")));
    // Requests are made by appending to the URL: a fragment would cut
    // their paths off, a query would be sent inside them.
    if url.contains('#') {
        return bad("a server URL takes no fragment (#...)");
    }
    if url.contains('?') {
        return bad("a server URL takes no query (?...)");
    }
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return bad("not a URL, e.g. http://127.0.0.1:7070");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return bad("the scheme must be http:// or https://");
    }
    let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
        return bad("it names no host");
    };
    // HOST[:PORT] after any user info; an IPv6 host is in brackets.
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    let port = match host_port.rsplit_once(']') {
        Some((_, rest)) => rest.strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, port)| port),
    };
    match port {
        Some(p) if !p.is_empty() && p.parse::<u16>().is_err() => {
            bad("the port must be a number from 0 to 65535")
        }
        _ => Ok(()),
    }
}

/// ureq's name lookup, with a name that does not resolve reported as
/// `HostNotFound` rather than as the I/O error of `getaddrinfo`: a server
/// whose name does not resolve cannot be reached, so the next URL of the
/// list is tried and giving up is exit 5 (SPEC "Command line").
#[derive(Debug, Default)]
pub(super) struct NameLookup(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for NameLookup {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        self.0.resolve(uri, config, timeout).map_err(|e| match e {
            ureq::Error::Io(_) => ureq::Error::HostNotFound,
            other => other,
        })
    }
}
