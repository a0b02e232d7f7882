//! Quorum TLS: a Java ensemble whose quorum links are TLS only (`sslQuorum=true`, PEM key
//! and trust stores), and a gateway that follows it with its own PEM certificate. A
//! gateway with a certificate from another CA, or without TLS, is not let in.

mod support;

use std::time::{Duration, Instant};

use support::certs::Ca;
use support::gk::Geokeeper;
use support::java_ensemble::JavaEnsemble;
use support::java_zk::four_letter;
use support::rawzk::RawZk;

fn gateway(e: &JavaEnsemble, id: u64, tls: &str) -> (Geokeeper, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("myid"), format!("{id}\n")).expect("myid");
    let gk = Geokeeper::start_on(
        data.path(),
        &format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=10\npeerType=observer\n4lw.commands.whitelist=*\n{}server.{id}=127.0.0.1:1:2:observer\n{tls}\n",
            e.server_lines
        ),
    );
    (gk, data)
}

fn synced(gk: &Geokeeper) -> bool {
    four_letter(gk.addr, "mntr").contains("zk_observer_synced\t1")
}

#[test]
fn a_gateway_follows_an_ensemble_over_quorum_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "cluster");
    let e = {
        // Each member's certificate names its own address.
        let probe = JavaEnsemble::server_addresses(3);
        for (i, ip) in probe.iter().enumerate() {
            ca.leaf(&format!("zk{}.pem", i + 1), &[ip]);
        }
        JavaEnsemble::start_on_addresses(
            &probe,
            &format!(
                "sslQuorum=true\n\
                 ssl.quorum.keyStore.location={d}/zk{{id}}.pem\nssl.quorum.keyStore.type=PEM\n\
                 ssl.quorum.trustStore.location={t}\nssl.quorum.trustStore.type=PEM\n\
                 ssl.quorum.hostnameVerification=false\n",
                d = dir.path().display(),
                t = ca.trust_store.display()
            ),
        )
    };
    let leader = e.members[e.leader().expect("leader")].client;

    // The gateway checks the leader's certificate, its name included.
    let key = ca.leaf("gateway.pem", &["127.0.0.1"]);
    let (gk, _d) = gateway(
        &e,
        30,
        &format!(
            "sslQuorum=true\nssl.quorum.keyStore.location={}\nssl.quorum.keyStore.type=PEM\n\
             ssl.quorum.trustStore.location={}\nssl.quorum.trustStore.type=PEM\n",
            key.display(),
            ca.trust_store.display()
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !synced(&gk) {
        assert!(Instant::now() < deadline, "no sync over TLS:\n{}", gk.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gk.log().contains("quorum TLS: key store"));
    assert!(!gk.log().contains("not encrypted"));
    let mut z = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).expect("session");
    assert!(z.response.time_out > 0);
    let create = geokeeper_core::request::Request::Create {
        op: geokeeper_core::proto::OpCode::Create,
        req: geokeeper_core::proto::records::CreateRequest {
            path: "/over-tls".into(),
            data: None,
            acl: geokeeper_core::acl::open_acl_unsafe(),
            flags: 0,
        },
    };
    let f = z
        .call(geokeeper_core::proto::OpCode::Create, &create)
        .reply
        .expect("reply");
    assert_eq!(f.header.err, 0, "a write forwarded over TLS");
    let mut l = RawZk::connect(leader, 0, &[0; 16], 0, 10_000).expect("session");
    let exists =
        geokeeper_core::request::Request::Exists(geokeeper_core::proto::records::ExistsRequest {
            path: "/over-tls".into(),
            watch: false,
        });
    let f = l
        .call(geokeeper_core::proto::OpCode::Exists, &exists)
        .reply
        .expect("reply");
    assert_eq!(f.header.err, 0, "at the leader");

    // A certificate from another CA, and no TLS at all: never in sync.
    let other = Ca::new(dir.path(), "other");
    let stranger = other.leaf("stranger.pem", &["127.0.0.1"]);
    let (bad, _d1) = gateway(
        &e,
        31,
        &format!(
            "sslQuorum=true\nssl.quorum.keyStore.location={}\nssl.quorum.trustStore.location={}\n",
            stranger.display(),
            ca.trust_store.display()
        ),
    );
    let (plain, _d2) = gateway(&e, 32, "");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!synced(&bad), "a stranger's certificate is refused");
    assert!(
        bad.log().contains("quorum TLS handshake failed"),
        "{}",
        bad.log()
    );
    assert!(!synced(&plain), "a plaintext link is refused");
    assert!(plain.log().contains("not encrypted"));
}
