//! ACLs and `addauth` as ZooKeeper 3.8 has them, scheme by scheme: the same zkCli and kazoo
//! scripts run against Apache ZooKeeper 3.8 (Debian's 3.8.0) and geokeeper, each on a fresh
//! server, and the normalised outputs must be equal; raw-protocol checks compare the exact
//! replies of refused `addauth` requests. IPv6 `ip` ACLs, which ZooKeeper 3.8 refuses, are
//! a geokeeper extension and are checked against geokeeper alone.
//!
//! What is deliberately left out of the comparisons: `exists` (`stat`) on a node the client
//! may not read, which Debian's 3.8.0 answers with the stat and 3.8.4 (and geokeeper) with
//! NoAuth; and the order of `whoami` ids, which the normalisers sort (see README).

mod support;

use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::time::Duration;

use geokeeper_core::proto::records::{
    Acl, AuthPacket, CreateRequest, DeleteRequest, Id, SetAclRequest, SetDataRequest,
};
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use support::gk::{refused_start, Geokeeper};
use support::java_zk::{kazoo_with_options, normalize_zkcli, zkcli, JavaZk};
use support::rawzk::{Frame, Lost, RawZk, AUTH_XID};

/// `super:admin` as both servers' superDigest.
const SUPER_DIGEST: &str =
    "DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=";
/// `digest:alice:` + base64(sha1("alice:secret")).
const ALICE: &str = "digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

/// Starts Apache ZooKeeper and geokeeper with the same zoo.cfg lines.
fn servers(cfg: &str) -> (JavaZk, Geokeeper) {
    std::thread::scope(|s| {
        let zk = s.spawn(|| JavaZk::start(cfg));
        let gk = Geokeeper::start(cfg);
        (zk.join().expect("JavaZk"), gk)
    })
}

fn assert_same(what: &str, zk: &str, gk: &str) {
    if zk != gk {
        println!("==== {what}: Apache ZooKeeper ====\n{zk}");
        println!("==== {what}: geokeeper ====\n{gk}");
    }
    assert_eq!(zk, gk, "{what}: outputs differ");
}

/// Runs `client` against both servers at once and asserts equal outputs; returns them.
fn compare(
    what: &str,
    zk: &JavaZk,
    gk: &Geokeeper,
    client: impl Fn(SocketAddr) -> String + Sync,
) -> String {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| client(zk.addr));
        let b = s.spawn(|| client(gk.addr));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_same(what, &a, &b);
    a
}

/// Runs one zkCli script against two fresh servers with `cfg`; returns the (equal)
/// normalised output.
fn compare_zkcli(what: &str, cfg: &str, script: &[&str]) -> String {
    let (zk, gk) = servers(cfg);
    compare(what, &zk, &gk, |addr| {
        settle_auth_failure(&normalize_zkcli(&zkcli(addr, script)))
    })
}

/// After a refused `addauth` or SASL login the Java client is in AUTH_FAILED: a command it
/// had already sent fails with `KeeperErrorCode = AuthFailed for <path>`, one it had not
/// yet sent prints `Not connected`. Which of the two a command gets depends on whether the
/// server's refusal arrived before zkCli read that command, a race inside the client seen
/// against either server, so both read the same here.
fn settle_auth_failure(out: &str) -> String {
    out.lines()
        .map(|l| {
            if l == "Not connected" || l.starts_with("KeeperErrorCode = AuthFailed for ") {
                "<auth failed>\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn every_operation_needs_its_own_permission() {
    let a_acl = format!("world:anyone:a,{ALICE}:cdrwa");
    let ra_acl = format!("world:anyone:ra,{ALICE}:cdrwa");
    let m_acl = format!("world:anyone:r,{ALICE}:cdrwa");
    let out = compare_zkcli(
        "permission per operation",
        SUPER_DIGEST,
        &[
            "create /p open",
            // READ only: reads pass; write, create, setAcl do not.
            "create /p/r r world:anyone:r",
            "get /p/r",
            "ls /p/r",
            "getAllChildrenNumber /p/r",
            "getAcl /p/r",
            "set /p/r x",
            "create /p/r/c",
            "setAcl /p/r world:anyone:cdrwa",
            // WRITE only: set passes; reads and getAcl (READ or ADMIN) do not.
            "create /p/w w world:anyone:w",
            "set /p/w written",
            "get /p/w",
            "ls /p/w",
            "getAcl /p/w",
            "getAllChildrenNumber /p/w",
            // CREATE only: children can be made but not deleted (DELETE on the parent).
            "create /p/c c world:anyone:c",
            "create /p/c/kid k",
            "create -s /p/c/seq- k",
            "get /p/c",
            "delete /p/c/kid",
            // DELETE only: children can be deleted but not made.
            "create /p/d d",
            "create /p/d/kid k",
            "setAcl /p/d world:anyone:d",
            "delete /p/d/kid",
            "create /p/d/kid2",
            "get /p/d",
            // ADMIN: getAcl unmasked, setAcl with right and wrong ACL versions.
            &format!("create /p/a a {a_acl}"),
            "getAcl -s /p/a",
            "get /p/a",
            &format!("setAcl -v 1 /p/a {ra_acl}"),
            &format!("setAcl -v 0 /p/a {ra_acl}"),
            "setAcl -v 0 /p/a world:anyone:a",
            "getAcl -s /p/a",
            "get /p/a",
            // READ without ADMIN: digest ids are masked in getAcl.
            &format!("create /p/m m {m_acl}"),
            "getAcl /p/m",
            "setAcl /p/m world:anyone:cdrwa",
            // Deleting a node needs DELETE on its parent, whatever the node's own ACL.
            "create /p/gone g world:anyone:",
            "delete /p/gone",
            "delete /p",
            // addauth digest: the right user sees digests and may change the ACL.
            "addauth digest alice:secret",
            "whoami",
            "getAcl /p/m",
            "setAcl /p/m world:anyone:r",
            "getAcl /p/m",
            "get /p/w",
            // The super user passes every check.
            "addauth digest super:admin",
            "whoami",
            "get /p/w",
            "ls /p/c",
            "delete /p/c/kid",
            "create /p/d/kid3",
            "setAcl /p/r world:anyone:cdrwa",
            "getAcl /p/r",
            "getAcl /p/w",
        ],
    );
    // The comparison is what matters; these make sure the script ran to its end.
    assert!(out.contains("'digest,'alice:x"), "{out}");
    assert!(out.contains("Insufficient permission"), "{out}");
    assert!(out.contains("super:"), "{out}");
}

#[test]
fn ip_acls_match_addresses_and_cidr_ranges() {
    // The clients connect from 127.0.0.1 (to 127.0.0.x).
    let out = compare_zkcli(
        "ip ACLs",
        "",
        &[
            "create /i open",
            "create /i/self x ip:127.0.0.1:cdrwa",
            "get /i/self",
            "create /i/net8 x ip:127.0.0.0/8:r",
            "get /i/net8",
            "set /i/net8 y",
            "create /i/host-bits x ip:127.255.255.255/8:r",
            "get /i/host-bits",
            "create /i/all x ip:0.0.0.0/0:r",
            "get /i/all",
            "create /i/upper-half x ip:128.0.0.0/1:r",
            "get /i/upper-half",
            "create /i/lower-half x ip:0.0.0.0/1:r",
            "get /i/lower-half",
            "create /i/other x ip:127.0.0.2/32:r",
            "get /i/other",
            "create /i/pair x ip:127.0.0.0/31:r",
            "get /i/pair",
            "create /i/twentythree x ip:127.0.0.0/23:r",
            "get /i/twentythree",
            // Integer.parseInt accepts signs and leading zeros.
            "create /i/neg x ip:-0.0.0.0:r",
            "get /i/neg",
            "create /i/zeros x ip:127.000.0.01:r",
            "get /i/zeros",
            "create /i/plus x ip:127.0.0.1/+8:r",
            "get /i/plus",
            // Malformed ids: InvalidACL.
            "create /i/bad x ip:127.0.0.1/:r",
            "create /i/bad x ip:127.0.0.1/33:r",
            "create /i/bad x ip:127.0.0.1/-1:r",
            "create /i/bad x ip:1.2.3:r",
            "create /i/bad x ip:1.2.3.4.:r",
            "create /i/bad x ip:256.0.0.1:r",
            "create /i/bad x ip:a.b.c.d:r",
            "create /i/bad x ip::r",
            // ip is not an authenticated scheme: `auth` has nothing to expand to.
            "create /i/bad x auth::r",
            // addauth ip re-adds the connection's own address, whatever the bytes.
            "addauth ip 10.9.8.7",
            "whoami",
            "getAcl /i/net8",
            "ls /i",
        ],
    );
    assert!(out.contains("Acl is not valid : /i/bad"), "{out}");
}

#[test]
fn schemes_without_a_provider_are_invalid_and_addauth_sasl_fails() {
    // By default only ip and digest are registered (ZooKeeper's ProviderRegistry).
    let out = compare_zkcli(
        "schemes without provider",
        "",
        &[
            "create /s x sasl:bob:cdrwa",
            "create /s x x509:CN=bob:cdrwa",
            "create /s x super:bob:cdrwa",
            "create /s x world:nobody:cdrwa",
            "create /s x",
            "setAcl /s sasl:bob:r",
            "getAcl /s",
            "addauth sasl bob",
            "get /s",
        ],
    );
    assert!(out.ends_with("<auth failed>\n<auth failed>\n"), "{out}");
}

#[test]
fn the_sasl_scheme_is_valid_once_its_provider_is_registered() {
    let provider = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
    compare_zkcli(
        "sasl scheme with provider",
        provider,
        &[
            "create /s x sasl:bob:cdrwa",
            "getAcl /s",
            "get /s",
            "create /k x sasl:zk/host@EXAMPLE.COM:r",
            "getAcl /k",
            "create /bad x sasl:a@b@c:r",
            "create /bad x sasl:a/b/c@R:r",
            "whoami",
            // The provider refuses addauth: SASL ids only come from the SASL exchange.
            "addauth sasl bob",
            "ls /",
        ],
    );
}

#[test]
fn skip_acl_lets_every_operation_through() {
    compare_zkcli(
        "skipACL=yes",
        "skipACL=yes",
        &[
            &format!("create /locked x {ALICE}:cdrwa"),
            "get /locked",
            "set /locked y",
            "create /locked/kid",
            "delete /locked/kid",
            "getAcl /locked",
            "setAcl /locked world:anyone:r",
            "ls /locked",
            // ACLs are still validated.
            "create /bad x foo:bar:r",
            "create /bad x auth::r",
            "delete /locked",
            "ls /",
        ],
    );
}

#[test]
fn the_digest_provider_can_be_switched_off() {
    compare_zkcli(
        "DigestAuthenticationProvider.enabled=false",
        "DigestAuthenticationProvider.enabled=false",
        &[
            &format!("create /d x {ALICE}:cdrwa"),
            "create /ip x ip:127.0.0.1:cdrwa",
            "get /ip",
            "whoami",
            "addauth digest alice:secret",
            "get /ip",
        ],
    );
}

#[test]
fn kazoo_acl_errors_and_auth_data() {
    let (zk, gk) = servers(SUPER_DIGEST);
    let alice = r#"{"auth_data": [["digest", "alice:secret"]]}"#;
    let anon = "{}";
    let admin = r#"{"auth_data": [["digest", "super:admin"]]}"#;
    let steps: [(&str, &str); 4] = [
        (
            alice,
            r#"[{"op": "create", "path": "/k", "data": "v", "acl": [[31, "auth", ""]]},
                {"op": "get_acls", "path": "/k"},
                {"op": "create", "path": "/k/r", "acl": [[1, "world", "anyone"], [31, "auth", ""]]},
                {"op": "create", "path": "/bad", "acl": [[31, "digest", "nocolon"]]},
                {"op": "set_acls", "path": "/k", "acl": [[17, "world", "anyone"], [31, "auth", ""]], "version": 5},
                {"op": "set_acls", "path": "/k", "acl": [[17, "world", "anyone"], [31, "auth", ""]], "version": 0},
                {"op": "get_acls", "path": "/k"},
                {"op": "whoami"}]"#,
        ),
        (
            anon,
            r#"[{"op": "get", "path": "/k"},
                {"op": "get_acls", "path": "/k"},
                {"op": "get_acls", "path": "/k/r"},
                {"op": "children", "path": "/k"},
                {"op": "set", "path": "/k", "data": "w"},
                {"op": "create", "path": "/k/x"},
                {"op": "delete", "path": "/k/r"},
                {"op": "set_acls", "path": "/k", "acl": [[31, "world", "anyone"]]},
                {"op": "multi", "ops": [{"op": "create", "path": "/m"}, {"op": "set", "path": "/k", "data": "z"}]},
                {"op": "whoami"},
                {"op": "add_auth", "scheme": "digest", "credential": "alice:secret"},
                {"op": "get", "path": "/k"},
                {"op": "whoami"}]"#,
        ),
        (
            admin,
            r#"[{"op": "whoami"},
                {"op": "set", "path": "/k", "data": "by-super"},
                {"op": "delete", "path": "/k/r"},
                {"op": "get_acls", "path": "/k"}]"#,
        ),
        (
            anon,
            r#"[{"op": "add_auth", "scheme": "nosuch", "credential": "x"},
                {"op": "get", "path": "/"}]"#,
        ),
    ];
    compare("kazoo ACL sessions", &zk, &gk, |addr| {
        steps
            .iter()
            .map(|(client, ops)| kazoo_with_options(addr, client, ops))
            .collect::<Vec<_>>()
            .join("")
    });
}

/// A reply as "(xid, zxid, err) body N bytes", or why there was none.
fn show_reply(reply: Result<Frame, Lost>) -> String {
    match reply {
        Ok(f) => format!(
            "({}, {}, {}) body {} bytes",
            f.header.xid,
            f.header.zxid,
            f.header.err,
            f.body.len()
        ),
        Err(e) => format!("no reply: {e:?}"),
    }
}

/// Sends `addauth scheme auth` with xid `xid` on a fresh session; returns the reply
/// header (xid, zxid, err), the body's length, and whether the server then closed.
fn raw_addauth(addr: SocketAddr, xid: i32, scheme: &str, auth: &[u8]) -> String {
    let mut c = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
    let req = Request::Auth(AuthPacket {
        r#type: 0,
        scheme: scheme.into(),
        auth: auth.to_vec().into(),
    });
    let reply = show_reply(c.call_with_xid(xid, OpCode::Auth, &req).reply);
    let closed = c.closed_within(Duration::from_secs(2));
    format!("{scheme}: {reply}, closed {closed:?}\n")
}

#[test]
fn refused_addauth_answers_auth_failed_with_zxid_0_and_closes() {
    let provider = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
    for cfg in ["", provider] {
        let (zk, gk) = servers(cfg);
        let out = compare(&format!("raw addauth ({cfg:?})"), &zk, &gk, |addr| {
            [
                raw_addauth(addr, AUTH_XID, "digest", b"alice:secret"),
                raw_addauth(addr, 77, "ip", b"anything"),
                raw_addauth(addr, 77, "bogus", b"x"),
                raw_addauth(addr, AUTH_XID, "sasl", b"bob"),
                raw_addauth(addr, AUTH_XID, "x509", b""),
            ]
            .concat()
        });
        assert!(
            out.contains("bogus: (77, 0, -115) body 0 bytes, closed Ok(true)"),
            "{out}"
        );
        assert!(
            out.contains("digest: (-4, 0, 0) body 0 bytes, closed Ok(false)"),
            "{out}"
        );
    }
}

/// Sends `body` raw under opcode `op` (auth 100, sasl 102) with `xid` on a fresh session:
/// the reply or its absence, and whether the server then closed.
fn raw_malformed(addr: SocketAddr, xid: i32, op: i32, body: &[u8]) -> String {
    let mut c = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
    c.send_raw(xid, op, body).expect("send");
    let closed = c.closed_within(Duration::from_secs(2));
    let closed = match closed {
        Ok(c) => format!("closed {c}, nothing sent"),
        Err(f) => format!(
            "answered ({}, {}, {})",
            f.header.xid, f.header.zxid, f.header.err
        ),
    };
    format!("op {op} xid {xid} body {body:02x?}: {closed}\n")
}

#[test]
fn malformed_auth_and_sasl_bodies_close_the_connection_unanswered() {
    let provider = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
    let (zk, gk) = servers(provider);
    let out = compare("malformed auth and sasl bodies", &zk, &gk, |addr| {
        [
            // AuthPacket: int type, then a string that is cut short.
            raw_malformed(addr, AUTH_XID, 100, &[0, 0, 0, 0, 0, 0, 0, 9, b'd']),
            raw_malformed(addr, 5, 100, &[0, 0]),
            // GetSASLRequest: a buffer whose length runs past the frame.
            raw_malformed(addr, 1, 102, &[0, 0, 0, 40, 1, 2]),
            raw_malformed(addr, 1, 102, &[]),
        ]
        .concat()
    });
    assert_eq!(out.matches("closed true, nothing sent").count(), 4, "{out}");
}

#[test]
fn enforce_auth_closes_sessions_without_an_identity_of_a_listed_scheme() {
    let cfg = "enforce.auth.enabled=true\nenforce.auth.schemes=digest";
    let (zk, gk) = servers(cfg);
    // Anonymous: the first request, whatever it is, gets -124 and zxid 0, then the close.
    let anonymous = |addr: SocketAddr, xid: i32, op: i32, body: &[u8]| {
        let mut c = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
        c.send_raw(xid, op, body).expect("send");
        let reply = show_reply(c.read_frame());
        format!(
            "op {op}: {reply}, closed {:?}\n",
            c.closed_within(Duration::from_secs(2))
        )
    };
    let out = compare("enforce.auth, anonymous", &zk, &gk, |addr| {
        [
            anonymous(addr, 1, 4, b"\0\0\0\x01/\0"),
            // create /anon with world:anyone ALL, persistent.
            anonymous(
                addr,
                2,
                1,
                b"\0\0\0\x05/anon\xff\xff\xff\xff\0\0\0\x01\0\0\0\x1f\0\0\0\x05world\0\0\0\x06anyone\0\0\0\0",
            ),
            anonymous(addr, -2, 11, b""),
        ]
        .concat()
    });
    assert_eq!(
        out,
        "op 4: (1, 0, -124) body 0 bytes, closed Ok(true)\n\
         op 1: (2, 0, -124) body 0 bytes, closed Ok(true)\n\
         op 11: (-2, 0, -124) body 0 bytes, closed Ok(true)\n"
    );
    // kazoo: anonymous writes never land (whether kazoo reports CONNECTED before the
    // close is a race inside kazoo, so only the outcome is compared); after addauth
    // digest they do.
    for addr in [zk.addr, gk.addr] {
        let out = kazoo_with_options(
            addr,
            "{}",
            r#"[{"op": "create", "path": "/anon", "data": "x"}]"#,
        );
        assert!(!out.contains(r#"{"ok": "/anon"}"#), "{addr}: {out}");
    }
    let out = compare("enforce.auth, kazoo", &zk, &gk, |addr| {
        kazoo_with_options(
            addr,
            r#"{"auth_data": [["digest", "alice:secret"]]}"#,
            r#"[{"op": "create", "path": "/alice", "data": "x"}, {"op": "exists", "path": "/anon"}, {"op": "whoami"}]"#,
        )
    });
    assert!(out.contains(r#"{"ok": "/alice"}, {"ok": null}"#), "{out}");
}

#[test]
fn enforce_auth_refuses_to_start_with_a_scheme_nobody_provides() {
    for (cfg, line) in [
        (
            "enforce.auth.enabled=true\nenforce.auth.schemes=digest,sasl",
            "Authentication scheme sasl is not available.",
        ),
        (
            "enforce.auth.enabled=true\nenforce.auth.schemes=super",
            "Authentication scheme super is not available.",
        ),
        (
            "enforce.auth.enabled=true",
            "zookeeper.enforce.auth.schemes must be  configured.",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = refused_start(dir.path(), cfg);
        assert!(log.contains(line), "{cfg}: expected {line:?} in\n{log}");
    }
}

/// Requests with several faults at once, from a session with no identity, on a tree that
/// alice's session built: each server must name the same fault first (the order of
/// PrepRequestProcessor's checks; core/src/prep.rs `check_order_matches_zookeeper` states
/// it per request type).
#[test]
fn error_precedence_matches_zookeeper() {
    let (zk, gk) = servers("");
    let acl = |scheme: &str, id: &str| {
        vec![Acl {
            perms: 31,
            id: Id {
                scheme: scheme.into(),
                id: id.into(),
            },
        }]
    };
    let open = acl("world", "anyone");
    let alice_only = acl("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    let bogus = acl("bogus", "x");
    let create = |path: &str, flags: i32, acl: &[Acl]| Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.into(),
            data: None,
            acl: acl.to_vec(),
            flags,
        },
    };
    let run = |addr: SocketAddr| -> String {
        let mut alice = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
        let auth = Request::Auth(AuthPacket {
            r#type: 0,
            scheme: "digest".into(),
            auth: b"alice:secret".to_vec().into(),
        });
        assert!(alice
            .call_with_xid(AUTH_XID, OpCode::Auth, &auth)
            .reply
            .is_ok());
        for (path, flags, acl) in [
            ("/e", 1, &open),
            ("/locked", 0, &alice_only),
            ("/locked/kid", 0, &alice_only),
            ("/locked/kid/grandkid", 0, &alice_only),
            ("/p", 0, &open),
            ("/p/c", 0, &open),
        ] {
            let r = alice.call(OpCode::Create, &create(path, flags, acl)).reply;
            assert_eq!(r.expect("reply").header.err, 0, "{path}");
        }
        let mut anon = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
        let delete = |path: &str, version: i32| {
            (
                OpCode::Delete,
                Request::Delete(DeleteRequest {
                    path: path.into(),
                    version,
                }),
            )
        };
        let set = |path: &str, version: i32| {
            (
                OpCode::SetData,
                Request::SetData(SetDataRequest {
                    path: path.into(),
                    data: None,
                    version,
                }),
            )
        };
        let set_acl = |path: &str, acl: &[Acl], version: i32| {
            (
                OpCode::SetAcl,
                Request::SetAcl(SetAclRequest {
                    path: path.into(),
                    acl: acl.to_vec(),
                    version,
                }),
            )
        };
        let c = |path: &str, flags: i32, acl: &[Acl]| (OpCode::Create, create(path, flags, acl));
        let cases = [
            c("/missing/x", 9, &bogus),
            c("/missing/x", 5, &bogus),
            c("/missing\0/x", 0, &bogus),
            c("/missing/x", 0, &bogus),
            c("/nope/bad/", 0, &open),
            c("/p//x", 0, &open),
            c("/locked/", 0, &open),
            c("/locked/kid", 0, &open),
            c("/e", 0, &open),
            c("/e/x", 1, &open),
            delete("/zookeeper", 5),
            delete("/missing/x", 5),
            delete("/locked/kid", 5),
            delete("/p", 5),
            delete("/p", -1),
            set("/missing/", 3),
            set("/locked", 9),
            set_acl("/missing/", &bogus, 0),
            set_acl("/missing", &bogus, 0),
            set_acl("/locked", &open, 9),
        ];
        let mut out = String::new();
        for (op, req) in cases {
            let err = anon.call(op, &req).reply.map(|f| f.header.err);
            out.push_str(&format!("{} {:?} -> {err:?}\n", op.name(), req));
        }
        out
    };
    let out = compare("error precedence", &zk, &gk, run);
    assert_eq!(out.matches("-> Ok(0)").count(), 0, "{out}");
}

/// A crafted snapshot: `/orphan` carries ACL id 77, which its ACL map lacks; `/open` carries
/// id -1 (world:anyone ALL, as ZooKeeper reads it). An unknown id grants nothing: every
/// request on `/orphan` is refused with MarshallingError, as ZooKeeper's `convertLong`
/// ("Failed to fetch acls") refuses it, and geokeeper names the znode at startup. Both
/// servers load the same directory and must answer alike.
#[test]
fn a_znode_whose_acl_id_the_snapshot_lacks_grants_nothing() {
    use geokeeper_core::tree::{DataTree, NodeStat};
    let base = tempfile::tempdir().expect("tempdir");
    let mut tree = DataTree::new();
    let stat = NodeStat {
        czxid: 1,
        mzxid: 1,
        pzxid: 1,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_000,
        ..Default::default()
    };
    assert!(tree.restore_node("/orphan", Some(b"secret"), 77, stat));
    assert!(tree.restore_node("/open", Some(b"o"), -1, stat));
    tree.set_last_zxid(1);
    for dir in ["gk", "zk"] {
        let v2 = base.path().join(dir).join("version-2");
        std::fs::create_dir_all(&v2).expect("mkdir");
        geokeeper_core::snapshot::write_tree(&v2, &tree, &[]).expect("snapshot");
    }
    let gk = Geokeeper::start_on(&base.path().join("gk"), "");
    let zk = JavaZk::start_on(&base.path().join("zk"), "");
    let out = compare("unknown ACL id", &zk, &gk, |addr| {
        let mut z = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
        let get = |path: &str| {
            Request::GetData(geokeeper_core::proto::records::GetDataRequest {
                path: path.into(),
                watch: false,
            })
        };
        let set = |path: &str| {
            Request::SetData(SetDataRequest {
                path: path.into(),
                data: Some(b"overwritten".to_vec().into()),
                version: -1,
            })
        };
        let mut out = String::new();
        for (op, req) in [
            (OpCode::GetData, get("/orphan")),
            (OpCode::SetData, set("/orphan")),
            (
                OpCode::Delete,
                Request::Delete(DeleteRequest {
                    path: "/orphan".into(),
                    version: -1,
                }),
            ),
            (OpCode::GetData, get("/open")),
            (OpCode::SetData, set("/open")),
            (OpCode::GetData, get("/orphan")),
        ] {
            let err = z.call(op, &req).reply.map(|f| f.header.err);
            out.push_str(&format!("{} -> {err:?}\n", op.name()));
        }
        out
    });
    assert_eq!(
        out,
        "getData -> Ok(-5)\nsetData -> Ok(-5)\ndelete -> Ok(-5)\ngetData -> Ok(0)\nsetData -> Ok(0)\ngetData -> Ok(-5)\n"
    );
    assert!(
        gk.log()
            .contains("carry an ACL id the snapshot's ACL map lacks (first: /orphan)"),
        "{}",
        gk.log()
    );
}

/// A free port on `[::1]`, or `None` when the host has no IPv6 loopback.
fn free_ipv6_loopback_addr() -> Option<SocketAddr> {
    let l = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).ok()?;
    l.local_addr().ok()
}

#[test]
fn ipv6_ip_acls_are_a_geokeeper_extension() {
    // An IPv4 client: IPv6 entries are accepted (ZooKeeper 3.8: InvalidACL) and never
    // match it; the other family's prefixes never match either.
    let gk = Geokeeper::start("");
    let v4 = normalize_zkcli(&zkcli(
        gk.addr,
        &[
            "create /v6 x ip:::1:cdrwa",
            "getAcl /v6",
            "get /v6",
            "create /v6all x ip:::/0:r",
            "get /v6all",
            "create /bad x ip:::1/129:r",
            "create /bad x ip:fe80::1%lo:r",
            "create /v4 x ip:0.0.0.0/0:r",
            "get /v4",
        ],
    ));
    assert_eq!(
        v4,
        "Created /v6\nInsufficient permission : /v6\nInsufficient permission : /v6\n\
         Created /v6all\nInsufficient permission : /v6all\n\
         KeeperErrorCode = InvalidACL for /bad\nAcl is not valid : /bad\n\
         KeeperErrorCode = InvalidACL for /bad\nAcl is not valid : /bad\nCreated /v4\nx\n"
    );

    // An IPv6 client: its ip id is Java's uncompressed form, and IPv6 addresses and
    // prefixes match it.
    let Some(gk6) = (0..5).find_map(|_| {
        let addr = free_ipv6_loopback_addr()?;
        Geokeeper::try_start_at(addr, "").ok()
    }) else {
        eprintln!("no IPv6 loopback here: skipping the IPv6 client half");
        return;
    };
    let ops = r#"[
        {"op": "whoami"},
        {"op": "create", "path": "/self", "data": "s", "acl": [[31, "ip", "::1"]]},
        {"op": "get", "path": "/self"},
        {"op": "create", "path": "/long", "data": "l", "acl": [[1, "ip", "0:0:0:0:0:0:0:1/128"]]},
        {"op": "get", "path": "/long"},
        {"op": "create", "path": "/all", "data": "a", "acl": [[1, "ip", "::/0"]]},
        {"op": "get", "path": "/all"},
        {"op": "create", "path": "/net", "data": "n", "acl": [[1, "ip", "::/127"]]},
        {"op": "get", "path": "/net"},
        {"op": "create", "path": "/two", "data": "t", "acl": [[1, "ip", "::2"]]},
        {"op": "get", "path": "/two"},
        {"op": "create", "path": "/link", "data": "k", "acl": [[1, "ip", "fe80::/10"]]},
        {"op": "get", "path": "/link"},
        {"op": "create", "path": "/v4", "data": "4", "acl": [[1, "ip", "127.0.0.1"]]},
        {"op": "get", "path": "/v4"},
        {"op": "get_acls", "path": "/self"}
    ]"#;
    let out = kazoo_with_options(gk6.addr, "{}", ops);
    let expected = concat!(
        r#"[{"start": "CONNECTED"}, {"ok": [["ip", "0:0:0:0:0:0:0:1"]]}, "#,
        r#"{"ok": "/self"}, {"ok": {"data": "s", "stat": {"version": 0, "cversion": 0, "aversion": 0, "dataLength": 1, "numChildren": 0, "ephemeral": false}}}, "#,
        r#"{"ok": "/long"}, {"ok": {"data": "l", "stat": {"version": 0, "cversion": 0, "aversion": 0, "dataLength": 1, "numChildren": 0, "ephemeral": false}}}, "#,
        r#"{"ok": "/all"}, {"ok": {"data": "a", "stat": {"version": 0, "cversion": 0, "aversion": 0, "dataLength": 1, "numChildren": 0, "ephemeral": false}}}, "#,
        r#"{"ok": "/net"}, {"ok": {"data": "n", "stat": {"version": 0, "cversion": 0, "aversion": 0, "dataLength": 1, "numChildren": 0, "ephemeral": false}}}, "#,
        r#"{"ok": "/two"}, {"error": "NoAuthError"}, "#,
        r#"{"ok": "/link"}, {"error": "NoAuthError"}, "#,
        r#"{"ok": "/v4"}, {"error": "NoAuthError"}, "#,
        r#"{"ok": {"acl": [[31, "ip", "::1"]], "aversion": 0}}]"#,
        "\n"
    );
    assert_eq!(out, expected);
}
