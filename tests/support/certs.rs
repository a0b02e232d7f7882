//! Test certificates: a CA, and leaf certificates it signs (for servers and clients
//! alike, as ZooKeeper's quorum TLS uses one certificate both ways), written as PEM files
//! in ZooKeeper's PEM key store layout (private key, then the certificate) and trust
//! store layout (the CA certificate).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (a PEM trust store).
    pub trust_store: PathBuf,
    dir: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its trust store written under `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("CA certificate");
        let trust_store = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&trust_store, cert.pem()).expect("trust store");
        Ca {
            issuer: Issuer::new(p, key),
            trust_store,
            dir: dir.to_owned(),
        }
    }

    /// A leaf for `names` (IP literals become IP SANs), usable as server and client;
    /// returns its PEM key store (private key, then certificate).
    pub fn leaf(&self, file: &str, names: &[&str]) -> PathBuf {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.issuer).expect("leaf certificate");
        let path = self.dir.join(file);
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("key store");
        path
    }
}
