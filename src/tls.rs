//! TLS (SPEC "TLS"), with rustls and its `ring` provider (which builds
//! without cmake or nasm).
//!
//! * [`server_config`]: the certificate chain and key of `serve --tls-cert
//!   --tls-key`, read from PEM files and checked to belong together before
//!   the server listens, and read again when the files change.
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

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

/// The one crypto provider of kvr, server and clients alike.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: the chain of `cert` (leaf first) and the key of `key`,
/// and from then on whatever the two files hold: a certificate renewed in
/// place (certbot, cert-manager, a copy) is served to new connections
/// within about two seconds, without a restart (see [`ServedCert`]).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let first = certified_key(cert, key)?;
    // Served all the same at start, as before; a reload refuses it.
    if let Some(why) = first.cert.first().and_then(out_of_date) {
        crate::server::log::event(format_args!(
            "kvr serve: warning: the certificate in --tls-cert {} {why}: every client refuses \
             it; renew it (a running server reads --tls-cert and --tls-key again when they \
             change)",
            cert.display()
        ));
    }
    let served = Arc::new(ServedCert {
        current: RwLock::new(Arc::new(first)),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    });
    served.clone().follow()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(served);
    // The server speaks HTTP/1.1 only; a client offering just h2 is told so
    // in the handshake instead of failing later.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The chain of `cert` and the key of `key`, checked to belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain = read_certs(cert, "--tls-cert")?;
    if leaf_is_ca(&chain) {
        // Accepted (it is a valid certificate), but every client will refuse it.
        crate::server::log::event(format_args!(
            "kvr serve: warning: the certificate in --tls-cert {} is a CA certificate \
             (basicConstraints CA:TRUE, as `openssl req -x509` makes by default): TLS clients \
             refuse it as a server's certificate; {CA_AS_LEAF_FIX}",
            cert.display()
        ));
    }
    let key_pem = read(key, "--tls-key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        // What the file holds instead, where PEM says (an audit was told
        // "no items found" of both).
        let holds = |label: &str| key_pem.windows(label.len()).any(|w| w == label.as_bytes());
        let why = if holds("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            "it holds an encrypted (passphrase-protected) key, which a server that starts on \
             its own cannot open; decrypt it once (openssl pkey -in KEY -out KEY.plain) and \
             give that"
                .to_string()
        } else if holds("-----BEGIN CERTIFICATE-----") {
            "it holds a certificate, not a key; give the file of the certificate's private \
             key (-----BEGIN PRIVATE KEY-----)"
                .to_string()
        } else {
            format!(
                "no private key in PEM form ({}); give the key of the certificate, e.g. a file \
                 starting with -----BEGIN PRIVATE KEY-----",
                pem_error(&e)
            )
        };
        Error::invalid(format!("--tls-key {}: {why}", key.display()))
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| {
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
    })
}

/// A PEM error in words: the marker a cut file lacks as text, not as the
/// list of its bytes that the error's own text shows.
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::MissingSectionEnd { end_marker } => format!(
            "a block has no -----END {}----- line: the file may be cut short",
            String::from_utf8_lossy(end_marker)
        ),
        other => other.to_string(),
    }
}

/// Why `leaf` is not valid now (expired, or not yet valid), if so.
fn out_of_date(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let validity = parsed.validity();
    let now = i64::try_from(crate::types::now_ms() / 1000).ok()?;
    if validity.not_after.timestamp() < now {
        Some(format!("expired on {}", validity.not_after))
    } else if validity.not_before.timestamp() > now {
        Some(format!("is not valid before {}", validity.not_before))
    } else {
        None
    }
}

/// How often [`ServedCert::follow`] looks at the certificate's files.
const FILES_POLL: Duration = Duration::from_secs(1);

/// The certificate and key `serve` answers every handshake with (its HTTP
/// and raft listeners alike), read again when their files change, as etcd
/// and Caddy do: certificates are renewed every few weeks, and a restart
/// for each would take a standalone server away from its clients.
#[derive(Debug)]
pub struct ServedCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ServedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// What says a file changed: its inode (a renamed or re-linked file, as
/// Kubernetes swaps a secret's `..data` link), length and times.
type Stamp = Option<(u64, u64, SystemTime, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(
            m.ctime().max(0) as u64,
            m.ctime_nsec().clamp(0, 999_999_999) as u32,
        );
    Some((m.ino(), m.len(), m.modified().ok()?, changed))
}

impl ServedCert {
    /// Looks at both files every [`FILES_POLL`], on a thread of its own for
    /// as long as the process runs. A change is read once the files have
    /// stood still for a poll (a renewal writes the certificate, then the
    /// key); files that cannot be used then (a key of another certificate,
    /// a file half written) are logged and the certificate before is kept,
    /// until they change again.
    fn follow(self: Arc<Self>) -> Result<()> {
        let files = |s: &ServedCert| (stamp(&s.cert), stamp(&s.key));
        let mut served = files(&self);
        let mut last = served;
        std::thread::Builder::new()
            .name("kvr-tls-files".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FILES_POLL);
                    let now = files(&self);
                    let settled = now == last;
                    last = now;
                    if !settled || now == served {
                        continue;
                    }
                    served = now;
                    self.reload();
                }
            })
            .map_err(|e| Error::io("cannot start the thread that follows --tls-cert", e))?;
        Ok(())
    }

    /// Reads the files again, and serves what they hold if it can be used.
    fn reload(&self) {
        let (cert, key) = (self.cert.display(), self.key.display());
        let new = certified_key(&self.cert, &self.key).and_then(|new| {
            // One out of date would be refused by every client, where the
            // one served now may still be good.
            match new.cert.first().and_then(out_of_date) {
                Some(why) => Err(Error::invalid(format!("its certificate {why}"))),
                None => Ok(new),
            }
        });
        match new {
            Ok(new) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                crate::server::log::event(format_args!(
                    "kvr serve: --tls-cert {cert} and --tls-key {key} changed: new connections \
                     get the certificate they hold now"
                ));
            }
            Err(e) => crate::server::log::event(format_args!(
                "kvr serve: warning: --tls-cert {cert} or --tls-key {key} changed, and cannot \
                 be used: {e}; the certificate read before is still served, and the files are \
                 read again when they next change"
            )),
        }
    }
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
/// error to report for talking to the server at `url`. For callers that do
/// not track `--cacert`; the `--server` client uses [`failure_given`].
pub fn failure(url: &str, e: &(dyn std::error::Error + 'static)) -> Option<Error> {
    find(e).map(|tls| describe(url, tls, CaCert::Unknown))
}

/// [`failure`] of a cluster's leader that cannot verify a joining node's
/// raft certificate: the advice is for the joiner's certificate, or the
/// members' `--cacert` (the joiner's own `--cacert` changes nothing).
pub fn joiner_failure(url: &str, e: &(dyn std::error::Error + 'static)) -> Option<Error> {
    find(e).map(|tls| describe(url, tls, CaCert::Joiner))
}

/// [`failure`] for a client that knows its `--cacert` (`None`: not given),
/// so the advice fits: "give that CA with --cacert" only when it was not.
pub fn failure_given(
    url: &str,
    e: &(dyn std::error::Error + 'static),
    cacert: Option<&Path>,
) -> Option<Error> {
    find(e).map(|tls| describe(url, tls, CaCert::Given(cacert)))
}

fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
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

/// What the client was told about extra trust anchors.
#[derive(Clone, Copy)]
enum CaCert<'a> {
    /// The caller does not say (cluster mode, bench).
    Unknown,
    /// `--cacert` as given: `None` when it was not.
    Given(Option<&'a Path>),
    /// A cluster member checking a node that asks to join.
    Joiner,
}

fn describe(url: &str, e: &rustls::Error, cacert: CaCert<'_>) -> Error {
    let message = match e {
        rustls::Error::InvalidCertificate(c) => format!(
            "the certificate of kvr server at {url} could not be verified: {}",
            certificate_problem(c, cacert)
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

/// Why a certificate was refused, and what to do, in words: never a Rust
/// debug value.
/// What to do about a CA certificate served as the server's own.
const CA_AS_LEAF_FIX: &str = "serve (--tls-cert) a leaf certificate signed by that CA, or a \
     self-signed one made with `openssl req -x509 … -addext basicConstraints=critical,CA:FALSE` \
     and given to clients with --cacert";

fn certificate_problem(c: &CertificateError, cacert: CaCert<'_>) -> String {
    const RENEW: &str = "give the server a new certificate (serve --tls-cert)";
    let trust_hint = match cacert {
        CaCert::Given(Some(path)) => format!(
            "give the CA that signed the server's certificate with --cacert (now {}), or, if \
             an intermediate CA signed it, serve the certificate followed by that \
             intermediate in --tls-cert",
            path.display()
        ),
        CaCert::Joiner => "the members trust the system's CAs and those of their own \
                           --cacert: give the joining node a certificate one of them signed \
                           (its --tls-cert), or restart the members with --cacert naming the CA \
                           that signed it"
            .to_string(),
        _ => "if the server's certificate is signed by your own CA, give that CA with --cacert \
              PEM (or KVR_CACERT)"
            .to_string(),
    };
    match c {
        CertificateError::UnknownIssuer => match cacert {
            CaCert::Given(Some(_)) => format!(
                "it is not signed by a certificate authority this client trusts (the \
                 system's, or those in --cacert); {trust_hint}"
            ),
            _ => format!(
                "it is not signed by a certificate authority this client trusts; {trust_hint}"
            ),
        },
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => format!(
            "its signature does not verify: a certificate authority this client trusts has \
             the name of its issuer but did not sign it (another CA of the same name, or one \
             made again with a new key), or it uses an unsupported algorithm; {trust_hint}"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            if matches!(cacert, CaCert::Joiner) =>
        {
            // The joining node's operator has no URL to change (found by
            // an audit): the members check the address it advertises.
            format!(
                "it is not valid for the joining node's advertised address ({c}); give the \
                 joining node a certificate (its --tls-cert) whose subjectAltName names that \
                 address, or --advertise-raft / --advertise-url with a name the certificate \
                 holds"
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "it is not valid for the host name in the URL ({c}); use a URL with a name \
                 the certificate is valid for, or {RENEW} that names this host in its \
                 subjectAltName"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("it has expired ({c}); {RENEW}, or check this computer's clock")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("it is not valid yet ({c}); check the clocks of this computer and the server")
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!("it is not meant for a TLS server ({c}); {RENEW} for server authentication")
        }
        CertificateError::BadEncoding => format!("it is not a well-formed certificate; {RENEW}"),
        CertificateError::Revoked => format!("it has been revoked; {RENEW}"),
        CertificateError::UnhandledCriticalExtension => {
            format!("it has a critical extension this client does not understand; {RENEW}")
        }
        CertificateError::Other(other) if is_ca_used_as_end_entity(other) => format!(
            "it is a CA certificate (basicConstraints CA:TRUE), which TLS does not accept as \
             a server's own certificate; {CA_AS_LEAF_FIX}"
        ),
        CertificateError::Other(other) => format!("it was refused ({other})"),
        // Other variants print as their Rust name and fields: keep the name.
        other => {
            let name = format!("{other:?}");
            let name = name.split([' ', '{', '(']).next().unwrap_or_default();
            format!("it was refused ({name})")
        }
    }
}

/// rustls reports a CA certificate used as a server's certificate as
/// webpki's `CaUsedAsEndEntity`, wrapped in `Other`; webpki is not a direct
/// dependency, so it is recognized by its text (its Display is its name).
fn is_ca_used_as_end_entity(other: &rustls::OtherError) -> bool {
    other.to_string().contains("CaUsedAsEndEntity")
}

/// Whether the first certificate of `chain` (the server's own) is a CA
/// certificate, which clients refuse (see `certificate_problem`): verified
/// the way a client verifies it, with the certificate as its own root.
pub fn leaf_is_ca(chain: &[CertificateDer<'static>]) -> bool {
    let Some(leaf) = chain.first() else {
        return false;
    };
    let mut roots = RootCertStore::empty();
    if roots.add(leaf.clone()).is_err() {
        return false;
    }
    let Ok(verifier) =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
    else {
        return false;
    };
    let Ok(name) = ServerName::try_from("kvr.invalid") else {
        return false;
    };
    use rustls::client::danger::ServerCertVerifier;
    matches!(
        verifier.verify_server_cert(
            leaf,
            &chain[1..],
            &name,
            &[],
            rustls_pki_types::UnixTime::now()
        ),
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(o)))
            if is_ca_used_as_end_entity(&o)
    )
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
                "{flag} {}: not a PEM certificate file ({})",
                path.display(),
                pem_error(&e)
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
