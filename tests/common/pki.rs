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
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("kvr test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "kvr test server");
        let cert = params.signed_by(&key, &issuer).unwrap();

        let pki = Pki {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
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
