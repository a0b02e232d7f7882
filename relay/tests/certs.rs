//! `geokeeper certs`' certificates on the relay's QUIC endpoints: what one run issues, the
//! endpoints accept with the right identity; a node added by a later run is trusted by the
//! first ones (the CA is reused); a node of another run's CA is refused, both ways.

use std::net::Ipv4Addr;
use std::path::Path;

use geokeeper_relay::certs::{issue, NodeSpec, Options, WrittenKind, CA_KEY, TRUST_STORE};
use geokeeper_relay::quic::RelayTls;
use x509_parser::extensions::GeneralName;

mod common;
use common::*;

fn nodes(specs: &[&str]) -> Vec<NodeSpec> {
    specs
        .iter()
        .map(|s| s.parse().expect("node spec"))
        .collect()
}

/// The subscriber side of a node's TLS.
fn client(tls: &RelayTls) -> quinn::ClientConfig {
    tls.client_config().expect("client config")
}

/// A node's TLS from a directory `certs` wrote.
fn tls(dir: &Path, name: &str) -> RelayTls {
    RelayTls::from_pem_files(&dir.join(format!("{name}.pem")), &dir.join(TRUST_STORE))
        .expect("the key store and trust store load")
}

#[tokio::test]
async fn issued_certificates_carry_the_relay_identity_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let summary = issue(d, &nodes(&["leader=1@A", "b3=3@B"]), &Options::default()).expect("issue");
    assert!(!summary.ca_reused);
    assert_eq!(summary.trust_store, d.join(TRUST_STORE));
    assert_eq!(summary.written.len(), 4, "{:?}", summary.written);

    let mut p = publisher(&tls(d, "leader"), &[id("B", 3)]);
    // Reached by its IP address and by its name: both are in its certificate.
    for server_name in ["127.0.0.1", "localhost"] {
        let echoed = subscribe(p.addr, server_name, client(&tls(d, "b3"))).await;
        assert_eq!(echoed.as_deref(), Ok(&b"hello"[..]), "as {server_name}");
        assert_eq!(p.results.recv().await.expect("result"), Ok(id("B", 3)));
    }
    // The publisher's own certificate names a node the configuration does not allow in.
    let err = subscribe(p.addr, "127.0.0.1", client(&tls(d, "leader")))
        .await
        .expect_err("not allowed");
    assert!(
        err.contains("node 1 of room A is not a relay peer"),
        "{err}"
    );
}

#[test]
fn certificates_say_what_a_relay_node_and_its_ca_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut spec: NodeSpec = "n7=7@eu-west".parse().expect("spec");
    spec.add_hosts(&["relay7.example.org", "10.1.2.3"]);
    issue(d, &[spec], &Options::default()).expect("issue");

    let pem = std::fs::read(d.join(TRUST_STORE)).expect("ca.pem");
    let (_, ca) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
    let ca = ca.parse_x509().expect("ca");
    assert!(ca.is_ca());
    let ku = ca.key_usage().expect("ku").expect("key usage");
    assert!(ku.value.key_cert_sign());

    // The key store: the private key, then the certificate.
    let ks = std::fs::read_to_string(d.join("n7.pem")).expect("n7.pem");
    assert!(ks.starts_with("-----BEGIN PRIVATE KEY-----"), "{ks}");
    let (_, leaf) = x509_parser::pem::parse_x509_pem(
        &ks.as_bytes()[ks.find("-----BEGIN CERT").expect("cert")..],
    )
    .expect("pem");
    let leaf = leaf.parse_x509().expect("leaf");
    assert!(!leaf.is_ca());
    assert_eq!(leaf.issuer(), ca.subject());
    let eku = leaf.extended_key_usage().expect("eku").expect("eku");
    assert!(eku.value.server_auth && eku.value.client_auth);
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .expect("san")
        .expect("san")
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => u.to_string(),
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d).to_string(),
            GeneralName::IPAddress(b) => <[u8; 16]>::try_from(*b)
                .map(|b| std::net::Ipv6Addr::from(b).to_string())
                .unwrap_or_default(),
            other => other.to_string(),
        })
        .collect();
    for want in [
        "geokeeper://relay/room/eu-west/node/7",
        "localhost",
        "127.0.0.1",
        "::1",
        "relay7.example.org",
        "10.1.2.3",
    ] {
        assert!(sans.iter().any(|s| s == want), "{want} in {sans:?}");
    }
    let days =
        (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 365, "a year, and an hour of clock skew");
    let days =
        (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 3650);
}

#[tokio::test]
async fn a_node_added_later_is_trusted_by_the_first_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    issue(d, &nodes(&["a1=1@A"]), &Options::default()).expect("first run");
    let ca = std::fs::read(d.join(TRUST_STORE)).expect("ca.pem");
    let ca_key = std::fs::read(d.join(CA_KEY)).expect("ca-key.pem");
    // The first node loads its stores before the second run, as a running node would.
    let a1 = tls(d, "a1");

    let second = issue(d, &nodes(&["b2=2@B"]), &Options::default()).expect("second run");
    assert!(second.ca_reused);
    assert_eq!(
        second.written.len(),
        1,
        "only the new node's key store: {:?}",
        second.written
    );
    assert!(matches!(
        &second.written[0].kind,
        WrittenKind::KeyStore { identity, .. } if *identity == id("B", 2)
    ));
    assert_eq!(std::fs::read(d.join(TRUST_STORE)).expect("ca.pem"), ca);
    assert_eq!(std::fs::read(d.join(CA_KEY)).expect("ca-key.pem"), ca_key);
    let b2 = tls(d, "b2");

    // Each way round: the new node subscribes to the old one, and the old to the new.
    let mut p = publisher(&a1, &[id("B", 2)]);
    let echoed = subscribe(p.addr, "127.0.0.1", client(&b2)).await;
    assert_eq!(echoed.as_deref(), Ok(&b"hello"[..]));
    assert_eq!(p.results.recv().await.expect("result"), Ok(id("B", 2)));

    let mut p = publisher(&b2, &[id("A", 1)]);
    let echoed = subscribe(p.addr, "localhost", client(&a1)).await;
    assert_eq!(echoed.as_deref(), Ok(&b"hello"[..]));
    assert_eq!(p.results.recv().await.expect("result"), Ok(id("A", 1)));
}

#[tokio::test]
async fn a_node_of_another_runs_ca_is_refused_both_ways() {
    let ours = tempfile::tempdir().expect("tempdir");
    let theirs = tempfile::tempdir().expect("tempdir");
    issue(ours.path(), &nodes(&["a1=1@A"]), &Options::default()).expect("ours");
    // The same name and identity, from a run with its own CA.
    issue(
        theirs.path(),
        &nodes(&["a1=1@A", "b2=2@B"]),
        &Options::default(),
    )
    .expect("theirs");
    let a1 = tls(ours.path(), "a1");
    let stranger = tls(theirs.path(), "b2");

    // As a subscriber: the publisher's handshake fails.
    let mut p = publisher(&a1, &[id("B", 2)]);
    let err = subscribe(p.addr, "127.0.0.1", client(&stranger))
        .await
        .expect_err("another CA's client");
    let server_side = p
        .results
        .recv()
        .await
        .expect("result")
        .expect_err("refused");
    assert!(
        server_side.contains("handshake failed"),
        "publisher says {server_side}; subscriber says {err}"
    );

    // As a publisher: our subscriber does not trust its certificate.
    let mut p = publisher(&stranger, &[id("A", 1)]);
    let err = subscribe(p.addr, "127.0.0.1", client(&a1))
        .await
        .expect_err("another CA's server");
    assert!(err.contains("UnknownIssuer"), "{err}");
    let server_side = p
        .results
        .recv()
        .await
        .expect("result")
        .expect_err("refused");
    assert!(server_side.contains("handshake failed"), "{server_side}");
}
