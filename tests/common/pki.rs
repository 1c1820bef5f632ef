//! A throwaway certificate authority and server certificates, made with
//! rcgen when a test runs and written into its temp dir: no key is ever
//! committed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA and one server certificate it signed, as PEM files.
pub struct Pki {
    /// The CA's certificate: what a client gives as `--cacert`.
    pub ca: PathBuf,
    /// The server's certificate chain and key: `--tls-cert`, `--tls-key`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A CA named `name` and a certificate for `localhost` and 127.0.0.1,
    /// in files `DIR/NAME-*.pem`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        Self::for_names(dir, name, &["localhost", "127.0.0.1"])
    }

    /// As [`Pki::new`], with the certificate valid for `names` only.
    pub fn for_names(dir: &Path, name: &str, names: &[&str]) -> Pki {
        Ca::new(dir, name).issue(dir, name, names)
    }

    /// `--tls-cert CERT --tls-key KEY` for `kvr serve`.
    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// A certificate authority that signs several certificates (one per
/// cluster node).
pub struct Ca {
    /// The CA's certificate, `DIR/NAME-ca.pem`: what is given as `--cacert`.
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("kvr test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        Ca {
            ca,
            issuer: Issuer::new(ca_params, ca_key),
        }
    }

    /// A certificate for `names` (host names or IP addresses) with a key of
    /// its own, in `DIR/NAME-cert.pem` and `DIR/NAME-key.pem`.
    pub fn issue(&self, dir: &Path, name: &str, names: &[&str]) -> Pki {
        self.issue_with(dir, name, names, |_| {})
    }

    /// As [`Ca::issue`], valid only in 2020: expired.
    pub fn issue_expired(&self, dir: &Path, name: &str, names: &[&str]) -> Pki {
        self.issue_with(dir, name, names, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 12, 31);
        })
    }

    fn issue_with(
        &self,
        dir: &Path,
        name: &str,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Pki {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        adjust(&mut params);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("kvr test server {name}"));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pki = Pki {
            ca: self.ca.clone(),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }
}
