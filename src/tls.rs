//! TLS (SPEC "TLS"), with rustls and its `ring` provider (which builds
//! without cmake or nasm).
//!
//! * [`server_config`]: the certificate chain and key of `serve --tls-cert
//!   --tls-key`, read from PEM files and checked to belong together before
//!   the server listens.
//! * [`roots`]: what a client trusts: the system's roots (as
//!   `rustls-native-certs` finds them: `SSL_CERT_FILE`, `SSL_CERT_DIR` or the
//!   distribution's bundle) plus `--cacert`. The server is verified by the
//!   host name (or IP address) of its URL.
//! * [`client_config`]: the same trust as a rustls client configuration
//!   (for `kvr bench`; the `--server` client gives [`roots`] to ureq).
//! * [`server_name`]: the host of a `HOST:PORT`, which a peer is verified
//!   by (cluster mode's node-to-node traffic).
//! * [`failure`]: a failed handshake in words, naming the server and what to
//!   do.
//!
//! Unreadable files are I/O failures (exit 3); files that hold no usable
//! certificate or key, or a key that does not match its certificate, are
//! bad input (exit 2). Either way `serve` stops before it listens.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

/// The one crypto provider of kvr, server and clients alike.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: the chain of `cert` (leaf first) and the key of `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = read_certs(cert, "--tls-cert")?;
    let key_pem = read(key, "--tls-key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Error::invalid(format!(
            "--tls-key {}: no private key in PEM form ({e}); give the key of the \
             certificate, e.g. a file starting with -----BEGIN PRIVATE KEY-----",
            key.display()
        ))
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?
        .with_no_client_auth();
    let mut config = builder.with_single_cert(chain, key_der).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                "the key does not belong to the certificate".to_string()
            }
            other => other.to_string(),
        };
        Error::invalid(format!(
            "cannot use --tls-cert {} with --tls-key {}: {why}",
            cert.display(),
            key.display()
        ))
    })?;
    // The server speaks HTTP/1.1 only; a client offering just h2 is told so
    // in the handshake instead of failing later.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The roots a client trusts: the system's plus those in `cacert`.
///
/// A system without a bundle (or with unreadable entries) still trusts
/// `--cacert`; a server no root vouches for then fails in the handshake,
/// with [`failure`]'s advice.
pub fn roots(cacert: Option<&Path>) -> Result<Vec<CertificateDer<'static>>> {
    let mut roots = rustls_native_certs::load_native_certs().certs;
    if let Some(path) = cacert {
        roots.extend(read_certs(path, "--cacert")?);
    }
    Ok(roots)
}

/// A rustls client configuration trusting [`roots`].
pub fn client_config(cacert: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(roots(cacert)?);
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name to verify the server at `addr` (`HOST:PORT`, `[V6]:PORT` or
/// HOST) by: its host.
pub fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::invalid(format!("{host:?} is not a host name for TLS")))
}

/// The TLS failure among `e` and its sources, if there is one, as the
/// error to report for talking to the server at `url`.
pub fn failure(url: &str, e: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(describe(url, tls));
        }
        // An io::Error's source() skips the error it wraps.
        cause = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

fn describe(url: &str, e: &rustls::Error) -> Error {
    let message = match e {
        rustls::Error::InvalidCertificate(c) => format!(
            "the certificate of kvr server at {url} could not be verified: {}; if the \
             server's certificate is signed by your own CA, give that CA with --cacert PEM \
             (or KVR_CACERT)",
            certificate_problem(c)
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => {
            format!(
                "kvr server at {url} does not speak TLS (is it serving plain HTTP, without \
                 --tls-cert?): use an http:// URL, or give the server a certificate"
            )
        }
        rustls::Error::AlertReceived(alert) => {
            format!("kvr server at {url} refused the TLS handshake: {alert:?}")
        }
        other => format!("TLS with kvr server at {url} failed: {other}"),
    };
    Error::Tls(message)
}

fn certificate_problem(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => {
            "it is not signed by a certificate authority this client trusts".to_string()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("it is not valid for the host name in the URL ({c})")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("it has expired ({c})")
        }
        other => other.to_string(),
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("cannot read {flag} {}", path.display()), e))
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::invalid(format!(
                "{flag} {}: not a PEM certificate file ({e})",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{flag} {}: no certificate in it (a PEM file with -----BEGIN CERTIFICATE----- \
             blocks is needed)",
            path.display()
        )));
    }
    Ok(certs)
}
