//! SASL logins (DIGEST-MD5, the mechanism ZooKeeper's server offers) with users from a
//! JAAS file in ZooKeeper's own format. Apache ZooKeeper 3.8 (Debian's 3.8.0) and
//! geokeeper get the same JAAS file and zoo.cfg; kazoo (with pure-sasl) and zkCli (with a
//! client JAAS file) log in to both, and the normalised outputs must be equal: successful
//! logins, refused passwords and users, `sasl` ACLs granting and denying, whoAmI, the super
//! user, and the raw bytes of the exchange where the wire is the point.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::gk::Geokeeper;
use support::java_zk::{kazoo_with_options, normalize_zkcli, zkcli, zkcli_with_jvm_flags, JavaZk};
use support::rawzk::{RawZk, AUTH_XID};

/// The users both servers accept, written as ZooKeeper documents it, with the JAAS
/// syntax's comments around.
const SERVER_JAAS: &str = r#"
// Users SASL clients may log in as (DIGEST-MD5).
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    /* the super user, when zookeeper.superUser names it */
    user_super="adminsecret"
    user_bob="bobsecret";
};

/* A client section in the same file is ignored by the server. */
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bobsecret";
};
"#;

/// Registers the `sasl` scheme (ACLs, whoAmI user names), as ZooKeeper 3.8 requires.
const SASL_PROVIDER: &str =
    "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

struct Servers {
    zk: JavaZk,
    gk: Geokeeper,
    /// Holds the JAAS files.
    dir: tempfile::TempDir,
}

/// Starts both servers with `SERVER_JAAS` as their login configuration (ZooKeeper: the
/// `-Djava.security.auth.login.config` JVM flag; geokeeper: the same property in zoo.cfg,
/// as a ZooKeeper user may write it) and `cfg` in zoo.cfg.
fn sasl_servers(cfg: &str) -> Servers {
    let dir = tempfile::tempdir().expect("tempdir");
    let jaas = dir.path().join("server.jaas");
    std::fs::write(&jaas, SERVER_JAAS).expect("write server.jaas");
    let flag = format!("-Djava.security.auth.login.config={}", jaas.display());
    let gk_cfg = format!("{cfg}\njava.security.auth.login.config={}", jaas.display());
    let (zk, gk) = std::thread::scope(|s| {
        let zk = s.spawn(|| JavaZk::start_with_jvm_flags(cfg, &[&flag]));
        let gk = Geokeeper::start(&gk_cfg);
        (zk.join().expect("JavaZk"), gk)
    });
    Servers { zk, gk, dir }
}

impl Servers {
    /// Runs `client` against both servers at once; asserts equal outputs and returns one.
    fn compare(&self, what: &str, client: impl Fn(SocketAddr) -> String + Sync) -> String {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| client(self.zk.addr));
            let b = s.spawn(|| client(self.gk.addr));
            (a.join().unwrap(), b.join().unwrap())
        });
        if a != b {
            println!("==== {what}: Apache ZooKeeper ====\n{a}");
            println!("==== {what}: geokeeper ====\n{b}");
        }
        assert_eq!(a, b, "{what}: outputs differ");
        a
    }

    /// A client JAAS file logging in as `user` with `password`.
    fn client_jaas(&self, user: &str, password: &str) -> PathBuf {
        let p = self
            .dir
            .path()
            .join(format!("client-{user}-{password}.jaas"));
        std::fs::write(
            &p,
            format!(
                "Client {{\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n    \
                 username=\"{user}\"\n    password=\"{password}\";\n}};\n"
            ),
        )
        .expect("write client jaas");
        p
    }
}

fn sasl_login(user: &str, password: &str) -> String {
    format!(
        r#"{{"sasl_options": {{"mechanism": "DIGEST-MD5", "username": "{user}", "password": "{password}"}}}}"#
    )
}

/// zkCli logged in with the client JAAS file `jaas` (or anonymous), normalised.
fn zkcli_as(addr: SocketAddr, jaas: Option<&Path>, script: &[&str]) -> String {
    let out = match jaas {
        Some(j) => {
            let flag = format!("-Djava.security.auth.login.config={}", j.display());
            zkcli_with_jvm_flags(addr, &[&flag], script)
        }
        None => zkcli(addr, script),
    };
    settle_auth_failure(&normalize_zkcli(&out))
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
fn kazoo_digest_md5_login_grants_sasl_acls() {
    let s = sasl_servers(SASL_PROVIDER);
    let bob = sasl_login("bob", "bobsecret");
    let sup = sasl_login("super", "adminsecret");
    let steps: Vec<(String, &str)> = vec![
        (
            bob.clone(),
            r#"[{"op": "whoami"},
                {"op": "create", "path": "/kz", "data": "b", "acl": [[31, "sasl", "bob"]]},
                {"op": "get", "path": "/kz"},
                {"op": "get_acls", "path": "/kz"},
                {"op": "create", "path": "/kz2", "data": "a", "acl": [[31, "auth", ""]]},
                {"op": "get_acls", "path": "/kz2"},
                {"op": "create", "path": "/bad", "acl": [[31, "sasl", "a@b@c"]]},
                {"op": "add_auth", "scheme": "digest", "credential": "alice:secret"},
                {"op": "whoami"},
                {"op": "create", "path": "/both", "acl": [[31, "auth", ""]]},
                {"op": "get_acls", "path": "/both", "sort": true}]"#,
        ),
        // Without SASL: the sasl ACL denies.
        (
            "{}".into(),
            r#"[{"op": "whoami"}, {"op": "get", "path": "/kz"}, {"op": "set", "path": "/kz", "data": "x"},
                {"op": "get_acls", "path": "/kz"}]"#,
        ),
        // A SASL user named "super" matches every sasl ACL entry (SASLAuthenticationProvider),
        // but is not the super user: a digest ACL still denies it.
        (
            sup,
            r#"[{"op": "whoami"}, {"op": "get", "path": "/kz"}, {"op": "set", "path": "/kz", "data": "by-super"},
                {"op": "create", "path": "/alice", "acl": [[31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="]]},
                {"op": "get", "path": "/alice"}]"#,
        ),
        (
            bob,
            r#"[{"op": "get", "path": "/kz"}, {"op": "delete", "path": "/kz"}]"#,
        ),
    ];
    let out = s.compare("kazoo SASL sessions", |addr| {
        steps
            .iter()
            .map(|(client, ops)| kazoo_with_options(addr, client, ops))
            .collect::<Vec<_>>()
            .join("")
    });
    assert!(
        out.contains(r#"[["ip", "127.0.0.1"], ["sasl", "bob"]]"#),
        "{out}"
    );
    assert!(out.contains("NoAuthError"), "{out}");
}

#[test]
fn wrong_passwords_and_unknown_users_are_refused() {
    let s = sasl_servers(SASL_PROVIDER);
    let out = s.compare("refused SASL logins", |addr| {
        [
            kazoo_with_options(addr, &sasl_login("bob", "wrong"), "[]"),
            kazoo_with_options(addr, &sasl_login("nobody", "nope"), "[]"),
            kazoo_with_options(addr, &sasl_login("Bob", "wrong"), "[]"),
            // The server is unharmed.
            kazoo_with_options(
                addr,
                &sasl_login("bob", "bobsecret"),
                r#"[{"op": "whoami"}]"#,
            ),
        ]
        .concat()
    });
    assert_eq!(
        out.matches(r#"{"start": "AUTH_FAILED"}"#).count(),
        3,
        "{out}"
    );

    // A deliberate difference. ZooKeeper's callback handler is shared by all connections
    // and keeps the last user name it found: a user missing from the JAAS section is then
    // checked against *that* user's password, so after a login as bob, "nobody" with bob's
    // password gets in as sasl:nobody (seen against 3.8.0 while writing this test).
    // geokeeper refuses users it does not know.
    let gk = kazoo_with_options(s.gk.addr, &sasl_login("nobody", "bobsecret"), "[]");
    assert_eq!(gk, "[{\"start\": \"AUTH_FAILED\"}]\n");
}

#[test]
fn zkcli_logs_in_with_a_client_jaas_file() {
    let s = sasl_servers(SASL_PROVIDER);
    let bob = s.client_jaas("bob", "bobsecret");
    let wrong = s.client_jaas("bob", "nope");
    let out = s.compare("zkCli SASL sessions", |addr| {
        [
            zkcli_as(
                addr,
                Some(&bob),
                &[
                    "whoami",
                    "create /s data sasl:bob:cdrwa",
                    "getAcl /s",
                    "get /s",
                    "create /s2 x auth::cdrwa",
                    "getAcl /s2",
                    "create /carol x sasl:carol:cdrwa",
                    "get /carol",
                    "setAcl /carol world:anyone:r",
                ],
            ),
            "-- anonymous --\n".into(),
            zkcli_as(
                addr,
                None,
                &["whoami", "get /s", "ls /s", "getAcl /s", "get /s2"],
            ),
            "-- wrong password --\n".into(),
            zkcli_as(addr, Some(&wrong), &["get /s"]),
        ]
        .concat()
    });
    assert!(out.contains("sasl: bob"), "{out}");
    assert!(
        out.ends_with("-- wrong password --\n<auth failed>\n<auth failed>\n"),
        "{out}"
    );
}

#[test]
fn super_user_property_makes_a_sasl_user_super() {
    // zoo.cfg's `superUser` is the system property `zookeeper.superUser`.
    let s = sasl_servers(&format!("{SASL_PROVIDER}\nsuperUser=bob"));
    let out = s.compare("SASL super user", |addr| {
        [
            kazoo_with_options(
                addr,
                r#"{"auth_data": [["digest", "alice:secret"]]}"#,
                r#"[{"op": "create", "path": "/a", "data": "x", "acl": [[31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="]]}]"#,
            ),
            kazoo_with_options(
                addr,
                &sasl_login("bob", "bobsecret"),
                r#"[{"op": "whoami"}, {"op": "get", "path": "/a"}, {"op": "set_acls", "path": "/a", "acl": [[1, "world", "anyone"]]}]"#,
            ),
        ]
        .concat()
    });
    assert!(out.contains(r#"["super", ""]"#), "{out}");
}

#[test]
fn without_the_sasl_provider_logins_work_but_the_scheme_does_not() {
    // Verified on 3.8.0: the id is added with an empty whoAmI user; `sasl:` ACLs are
    // invalid and `auth` has nothing it may expand to.
    let s = sasl_servers("");
    let bob = s.client_jaas("bob", "bobsecret");
    s.compare("SASL without its provider", |addr| {
        [
            kazoo_with_options(
                addr,
                &sasl_login("bob", "bobsecret"),
                r#"[{"op": "whoami"},
                    {"op": "create", "path": "/s", "acl": [[31, "sasl", "bob"]]},
                    {"op": "create", "path": "/s", "acl": [[31, "auth", ""]]},
                    {"op": "create", "path": "/open", "data": "o"}]"#,
            ),
            zkcli_as(
                addr,
                Some(&bob),
                &["whoami", "create /z x sasl:bob:r", "get /open"],
            ),
        ]
        .concat()
    });
}

/// The raw DIGEST-MD5 exchange, step by step: an empty first token gets the challenge
/// (its nonce replaced by `<nonce>` so that two servers compare), a token that is not a
/// digest-response (here the start of a GSSAPI token, what a Kerberos client would send)
/// gets AuthFailed with a null token, then the connection closes.
fn raw_exchange(addr: SocketAddr, second: &[u8]) -> String {
    let mut c = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
    let mut out = String::new();
    for (xid, token) in [(1, &b""[..]), (2, second)] {
        let mut body = (token.len() as i32).to_be_bytes().to_vec();
        body.extend_from_slice(token);
        c.send_raw(xid, 102, &body).expect("send sasl");
        match c.read_frame() {
            Ok(f) => {
                let h = &f.header;
                let text = String::from_utf8_lossy(&f.body).into_owned();
                let text = match (text.find("nonce=\""), text.find("\",charset")) {
                    (Some(a), Some(b)) if b > a + 7 => {
                        assert_eq!(b - (a + 7), 40, "a 40-character nonce");
                        format!("{}<nonce>{}", &text[..a + 7], &text[b..])
                    }
                    _ => format!("{:02x?}", f.body),
                };
                out.push_str(&format!("({}, {}, {}) {text}\n", h.xid, h.zxid, h.err));
            }
            Err(e) => out.push_str(&format!("no reply: {e:?}\n")),
        }
    }
    out.push_str(&format!(
        "closed: {:?}\n",
        c.closed_within(Duration::from_secs(2))
    ));
    out
}

#[test]
fn raw_exchange_challenge_then_failure_with_a_body_then_close() {
    let s = sasl_servers(SASL_PROVIDER);
    let gssapi = [
        0x60, 0x82, 0x02, 0x5b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12,
    ];
    let out = s.compare("raw SASL exchange", |addr| raw_exchange(addr, &gssapi));
    // The 4-byte length prefix of the token is part of the body shown.
    assert!(
        out.starts_with("(1, 0, 0) \0\0\0erealm=\"zk-sasl-md5\",nonce=\"<nonce>\",charset=utf-8,algorithm=md5-sess\n"),
        "{out}"
    );
    assert!(
        out.contains("(2, 0, -115) [ff, ff, ff, ff]\nclosed: Ok(true)"),
        "{out}"
    );
    s.compare("raw SASL garbage", |addr| {
        raw_exchange(addr, b"response=00")
    });
}

#[test]
fn sasl_on_a_server_without_a_login_answers_ok_with_no_token() {
    // No JAAS file: ZooKeeper's connection has no SASL server. The reply is OK with a null
    // token, nothing is added, and the connection stays.
    let zk = JavaZk::start("");
    let gk = Geokeeper::start("");
    let probe = |addr: SocketAddr| {
        let mut c = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
        c.send_raw(1, 102, &0i32.to_be_bytes()).expect("send");
        let f = c.read_frame().expect("reply");
        let after = c.call_with_xid(
            AUTH_XID,
            geokeeper_core::proto::OpCode::Auth,
            &geokeeper_core::request::Request::Auth(geokeeper_core::proto::records::AuthPacket {
                r#type: 0,
                scheme: "ip".into(),
                auth: Vec::new().into(),
            }),
        );
        format!(
            "({}, {}, {}) {:02x?}; then addauth ip: {:?}\n",
            f.header.xid,
            f.header.zxid,
            f.header.err,
            f.body,
            after.reply.map(|r| r.header.err)
        )
    };
    let (a, b) = (probe(zk.addr), probe(gk.addr));
    assert_eq!(a, b);
    assert_eq!(a, "(1, 0, 0) [ff, ff, ff, ff]; then addauth ip: Ok(0)\n");

    // The Java client gives up on its own ("the quorum member's saslToken is null"):
    // AuthFailed, whichever server.
    let dir = tempfile::tempdir().expect("tempdir");
    let jaas = dir.path().join("client.jaas");
    std::fs::write(
        &jaas,
        "Client { org.apache.zookeeper.server.auth.DigestLoginModule required \
         username=\"bob\" password=\"bobsecret\"; };\n",
    )
    .expect("write client jaas");
    let (a, b) = (
        zkcli_as(zk.addr, Some(&jaas), &["ls /"]),
        zkcli_as(gk.addr, Some(&jaas), &["ls /"]),
    );
    assert_eq!(a, b);
    assert_eq!(a, "<auth failed>\n<auth failed>\n");
}

#[test]
fn a_kerberos_login_section_stops_geokeeper_at_startup() {
    // ZooKeeper cannot log in without a KDC and refuses to start; geokeeper, which offers
    // DIGEST-MD5 only, refuses any section that is not DigestLoginModule, with
    // ZooKeeper's message.
    let dir = tempfile::tempdir().expect("tempdir");
    let jaas = dir.path().join("krb.jaas");
    std::fs::write(
        &jaas,
        "Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  \
         keyTab=\"/nonexistent/zk.keytab\"\n  principal=\"zookeeper/localhost@EXAMPLE.COM\";\n};\n",
    )
    .expect("write jaas");
    let addr = support::java_zk::free_loopback_addr();
    let err = Geokeeper::try_start_at(
        addr,
        &format!("java.security.auth.login.config={}", jaas.display()),
    )
    .err()
    .expect("geokeeper must refuse to start");
    assert!(
        err.contains(
            "Could not configure server because SASL configuration did not allow the  ZooKeeper server to authenticate itself properly: javax.security.auth.login.LoginException"
        ),
        "{err}"
    );

    // A JAAS file that does not parse stops it too, naming the file.
    std::fs::write(&jaas, "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_bob=\"x\"\n").expect("write jaas");
    let err = Geokeeper::try_start_at(
        support::java_zk::free_loopback_addr(),
        &format!("java.security.auth.login.config={}", jaas.display()),
    )
    .err()
    .expect("geokeeper must refuse to start");
    assert!(
        err.contains(&format!(
            "No JAAS configuration section named 'Server' was found in '{}'.",
            jaas.display()
        )),
        "{err}"
    );
}

/// An anonymous raw session's first request (getData "/"): its reply as (xid, zxid, err),
/// and how the connection ended.
fn raw_anonymous_request(addr: SocketAddr) -> String {
    let mut c = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
    c.send_raw(7, 4, b"\0\0\0\x01/\0").expect("send getData");
    let reply = match c.read_frame() {
        Ok(f) => format!(
            "getData: ({}, {}, {}) {} body bytes\n",
            f.header.xid,
            f.header.zxid,
            f.header.err,
            f.body.len()
        ),
        Err(e) => format!("getData: no reply: {e:?}\n"),
    };
    format!(
        "{reply}closed: {:?}\n",
        c.closed_within(Duration::from_secs(2))
    )
}

#[test]
fn session_require_client_sasl_auth_closes_anonymous_and_failed_sessions() {
    let s = sasl_servers(&format!(
        "{SASL_PROVIDER}\nsessionRequireClientSASLAuth=true"
    ));
    // Anonymous: the first request is answered -124 with zxid 0 and no body, then the close.
    let out = s.compare("anonymous request", raw_anonymous_request);
    assert_eq!(
        out, "getData: (7, 0, -124) 0 body bytes\nclosed: Ok(true)\n",
        "{out}"
    );
    // A failed login is -124 (not AuthFailed) with an empty SetSASLResponse, then the close.
    let out = s.compare("failed SASL login", |addr| {
        raw_exchange(addr, b"response=00")
    });
    assert!(
        out.ends_with("(2, 0, -124) [ff, ff, ff, ff]\nclosed: Ok(true)\n"),
        "{out}"
    );
    // kazoo: an anonymous session cannot do anything (whether kazoo reports CONNECTED
    // before the close is a race inside kazoo, seen against both servers, so only the
    // outcome is compared); a SASL login works as usual.
    for addr in [s.zk.addr, s.gk.addr] {
        let out = kazoo_with_options(
            addr,
            "{}",
            r#"[{"op": "create", "path": "/anon", "data": "x"}]"#,
        );
        assert!(!out.contains(r#"{"ok": "/anon"}"#), "{addr}: {out}");
    }
    let out = s.compare("kazoo under sessionRequireClientSASLAuth", |addr| {
        kazoo_with_options(
            addr,
            &sasl_login("bob", "bobsecret"),
            r#"[{"op": "create", "path": "/bob", "data": "x"}, {"op": "exists", "path": "/anon"},
                {"op": "whoami"}]"#,
        )
    });
    assert!(out.contains(r#"{"ok": "/bob"}, {"ok": null}"#), "{out}");
}
