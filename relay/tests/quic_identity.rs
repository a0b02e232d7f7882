//! The relay's QUIC endpoints: mutual TLS with the cluster CA and the peer identity in a
//! URI SAN. A configured node gets in; a peer with no certificate, one from another CA,
//! an expired one, or an identity the configuration does not name is refused, with a
//! reason on both sides.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use geokeeper_relay::quic::{Identity, RelayTls, ALPN};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

mod common;
use common::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("ca");
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, cert.pem()).expect("write");
    Ca {
        issuer: Issuer::new(p, key),
        pem,
    }
}

/// A node certificate (`127.0.0.1` as IP SAN, the relay identity as URI SAN), as a PEM
/// key store.
fn node(dir: &Path, ca: &Ca, file: &str, id: Option<&Identity>, expired: bool) -> PathBuf {
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    if let Some(id) = id {
        p.subject_alt_names
            .push(SanType::URI(id.uri().try_into().expect("ia5")));
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.issuer).expect("sign");
    let path = dir.join(file);
    std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write");
    path
}

/// The subscriber side of the key store at `key`, trusting the cluster CA at `ca`.
fn client_of(key: &Path, ca: &Path) -> quinn::ClientConfig {
    RelayTls::from_pem_files(key, ca)
        .expect("tls")
        .client_config()
        .expect("client config")
}

#[tokio::test]
async fn only_configured_nodes_of_the_cluster_get_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cluster = ca(d, "cluster");
    let other = ca(d, "other");
    let server_key = node(d, &cluster, "publisher.pem", Some(&id("A", 1)), false);
    let tls = RelayTls::from_pem_files(&server_key, &cluster.pem).expect("publisher tls");
    let mut p = publisher(&tls, &[id("B", 7)]);

    // A configured node: in, its identity read from the certificate.
    let b7 = node(d, &cluster, "b7.pem", Some(&id("B", 7)), false);
    let echoed = subscribe(p.addr, "127.0.0.1", client_of(&b7, &cluster.pem)).await;
    assert_eq!(echoed.as_deref(), Ok(&b"hello"[..]));
    assert_eq!(p.results.recv().await.expect("result"), Ok(id("B", 7)));

    // An identity the configuration does not name: closed with the reason.
    let b8 = node(d, &cluster, "b8.pem", Some(&id("B", 8)), false);
    let err = subscribe(p.addr, "127.0.0.1", client_of(&b8, &cluster.pem))
        .await
        .expect_err("refused");
    assert!(
        err.contains("node 8 of room B is not a relay peer"),
        "the subscriber learns why: {err}"
    );
    let server_side = p
        .results
        .recv()
        .await
        .expect("result")
        .expect_err("refused");
    assert!(server_side.contains("not a relay peer"), "{server_side}");

    // A certificate with no relay identity.
    let anon = node(d, &cluster, "anon.pem", None, false);
    let err = subscribe(p.addr, "127.0.0.1", client_of(&anon, &cluster.pem))
        .await
        .expect_err("refused");
    assert!(err.contains("names no relay identity"), "{err}");
    let _ = p
        .results
        .recv()
        .await
        .expect("result")
        .expect_err("refused");

    // Another CA's certificate, an expired one, none at all: the handshake fails.
    let stranger = node(d, &other, "stranger.pem", Some(&id("B", 7)), false);
    let expired = node(d, &cluster, "expired.pem", Some(&id("B", 7)), true);
    for (what, key) in [("another CA", stranger), ("expired", expired)] {
        let err = subscribe(p.addr, "127.0.0.1", client_of(&key, &cluster.pem))
            .await
            .expect_err(what);
        let server_side = p.results.recv().await.expect("result").expect_err(what);
        assert!(
            server_side.contains("handshake failed"),
            "{what}: publisher says {server_side}; subscriber says {err}"
        );
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cluster.pem).expect("pem") {
        roots.add(c.expect("cert")).expect("root");
    }
    let mut no_cert = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    no_cert.alpn_protocols = vec![ALPN.to_vec()];
    let no_cert = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(no_cert).expect("quic"),
    ));
    let err = subscribe(p.addr, "127.0.0.1", no_cert)
        .await
        .expect_err("no certificate");
    let server_side = p
        .results
        .recv()
        .await
        .expect("result")
        .expect_err("refused");
    assert!(
        server_side.contains("handshake failed"),
        "no certificate: publisher says {server_side}; subscriber says {err}"
    );
}
