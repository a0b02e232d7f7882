//! Data-directory compatibility with Apache ZooKeeper 3.8, both ways, with real processes
//! and real clients:
//!
//! * a directory Apache ZooKeeper wrote (several snapshots and rolled logs, every node kind,
//!   a session still live when the JVM is killed with SIGKILL) loads in geokeeper with every
//!   znode, stat field, ACL and session as ZooKeeper served them;
//! * what geokeeper writes is read by ZooKeeper's own tools (TxnLogToolkit,
//!   SnapshotFormatter), and ZooKeeper started on it serves the same tree without a digest
//!   mismatch;
//! * geokeeper killed with SIGKILL and restarted keeps everything and carries on (sequence
//!   numbers, zxids, container and TTL cleanup, session expiry);
//! * `geokeeper log dump | log check | snapshot dump | purge` work on both servers' files,
//!   repair a torn tail and leave a directory geokeeper restores from.
//!
//! Trees are compared through [`RawZk`] as the super user: every znode with its data, full
//! stat and ACL.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use support::gk::{gk_tool, Geokeeper};
use support::java_zk::{kazoo, snapshot_formatter, txn_log_toolkit, zkcli, JavaZk};
use support::rawzk::{decode_body, Body, RawZk, AUTH_XID};
use support::zkc::{mode, persistent};
use zookeeper_client::{Acl as ZkAcl, Acls, AuthId, Client, CreateMode, Permission, SessionInfo};

/// `super:superpw`, so that the dumps read every node whatever its ACL.
const SUPER_CFG: &str =
    "DigestAuthenticationProvider.superDigest=super:g9oN2HttPfn8MMWJZ2r45Np/LIA=";
/// `digest` ids of the users the workload authenticates as (`user:base64(sha1(user:pw))`).
const ALICE_ID: &str = "alice:l+tY9T55txG8G/8vAjsjlr4obeM=";
const BOB_ID: &str = "bob:Jvpu9LQQB32r8eilpJuBAcq+cxA=";

/// Settings both servers get: TTL and container nodes, a snapshot every 6..10 txns, small
/// log files, short ticks so that 4 s sessions are allowed and expire promptly.
fn common_cfg() -> String {
    format!("tickTime=500\nextendedTypesEnabled=true\nsnapCount=10\npreAllocSize=64\n{SUPER_CFG}")
}

/// geokeeper's settings: `common_cfg` plus how often containers and TTL nodes are checked.
fn gk_cfg(container_check_ms: u64) -> String {
    format!(
        "{}\nznode.container.checkIntervalMs={container_check_ms}",
        common_cfg()
    )
}

/// The timeout of the sessions left live at a crash.
const LIVE_TIMEOUT: Duration = Duration::from_secs(4);

/// Runs blocking work (process starts, raw clients, sleeps) without stalling the clients'
/// tasks on this runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ---------------------------------------------------------------------------------------
// Dumps
// ---------------------------------------------------------------------------------------

/// One znode as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Znode {
    data: Option<Vec<u8>>,
    stat: Stat,
    acl: Vec<Acl>,
    children: Vec<String>,
}

type Dump = BTreeMap<String, Znode>;

fn reply_body(zk: &mut RawZk, op: OpCode, req: &Request, path: &str) -> Option<Body> {
    let x = zk.call(op, req);
    let f = x
        .reply
        .unwrap_or_else(|e| panic!("{op:?} {path}: no reply: {e:?}"));
    match f.header.err {
        0 => Some(decode_body(op as i32, &f.body)),
        // Gone between listing its parent and reading it.
        -101 => None,
        err => panic!("{op:?} {path}: error {err}"),
    }
}

/// Every znode under "/" with its data, stat, ACL and children, read as the super user
/// in a session of its own (closed at the end).
fn dump(addr: SocketAddr) -> Dump {
    let mut zk = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("connect for a dump");
    assert!(zk.response.time_out > 0, "session refused");
    let auth = zk.call_with_xid(
        AUTH_XID,
        OpCode::Auth,
        &Request::Auth(AuthPacket {
            r#type: 0,
            scheme: "digest".into(),
            auth: b"super:superpw".to_vec().into(),
        }),
    );
    assert_eq!(auth.reply.expect("auth reply").header.err, 0);
    let mut out = Dump::new();
    let mut todo = vec!["/".to_string()];
    while let Some(path) = todo.pop() {
        let data = reply_body(
            &mut zk,
            OpCode::GetData,
            &Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }),
            &path,
        );
        let Some(Body::GetData(data)) = data else {
            continue;
        };
        let Some(Body::GetChildren2(kids)) = reply_body(
            &mut zk,
            OpCode::GetChildren2,
            &Request::GetChildren2(GetChildren2Request {
                path: path.clone(),
                watch: false,
            }),
            &path,
        ) else {
            continue;
        };
        let Some(Body::GetAcl(acl)) = reply_body(
            &mut zk,
            OpCode::GetAcl,
            &Request::GetAcl(GetAclRequest { path: path.clone() }),
            &path,
        ) else {
            continue;
        };
        let mut children = kids.children.clone();
        children.sort();
        for c in &children {
            todo.push(if path == "/" {
                format!("/{c}")
            } else {
                format!("{path}/{c}")
            });
        }
        out.insert(
            path,
            Znode {
                data: data.data.map(|d| d.to_vec()),
                stat: data.stat,
                acl: acl.acl,
                children,
            },
        );
    }
    let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
    out
}

fn show(n: Option<&Znode>) -> String {
    match n {
        None => "absent".into(),
        Some(n) => format!(
            "data {:?}\n      {:?}\n      acl {:?}\n      children {:?}",
            n.data
                .as_ref()
                .map(|d| String::from_utf8_lossy(d).into_owned()),
            n.stat,
            n.acl,
            n.children
        ),
    }
}

/// Asserts two dumps are equal, listing every znode that differs.
fn assert_same_tree(expected: &Dump, actual: &Dump, what: &str) {
    let mut diffs = String::new();
    for p in expected
        .keys()
        .chain(actual.keys().filter(|p| !expected.contains_key(*p)))
    {
        let (e, a) = (expected.get(p), actual.get(p));
        if e != a {
            diffs.push_str(&format!(
                "{p}\n  expected {}\n  actual   {}\n",
                show(e),
                show(a)
            ));
        }
    }
    assert!(diffs.is_empty(), "{what}: znodes differ:\n{diffs}");
}

/// The highest zxid any znode's stat holds.
fn max_zxid(d: &Dump) -> i64 {
    d.values()
        .map(|n| n.stat.czxid.max(n.stat.mzxid).max(n.stat.pzxid))
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

fn ttl(ms: u64) -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(ms))
}

/// What the workload leaves running: sessions that stay live (each with ephemerals) until
/// their clients are dropped; they are detached, so dropping does not close them.
struct Live {
    main: Client,
    clients: Vec<Client>,
    /// (session, an ephemeral it owns)
    sessions: Vec<(SessionInfo, String)>,
}

async fn connect_detached(addr: SocketAddr) -> Client {
    Client::connector()
        .with_session_timeout(LIVE_TIMEOUT)
        .with_detached()
        .connect(&addr.to_string())
        .await
        .expect("connect")
}

/// Every node kind, through real clients (the Rust client, and zkCli for null data and
/// quotas): persistent with data, empty and null data, sequential (one deleted), ephemeral
/// and ephemeral-sequential of sessions left live, an ephemeral of a closed session,
/// containers (with and without a child), TTL nodes (plain and sequential; a short one if
/// `short_ttl`), ACLs of the world, digest, ip and auth schemes and a changed ACL, quotas
/// (count and bytes) with writes under them, a successful and a failed multi, error txns,
/// deleted nodes, and enough writes for several snapshots and rolled logs.
async fn workload(addr: SocketAddr, short_ttl: bool) -> Live {
    let main = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&addr.to_string())
        .await
        .expect("connect");
    main.auth("digest", b"alice:apw").await.unwrap();
    main.auth("digest", b"bob:bpw").await.unwrap();
    let open = persistent();
    main.create("/app", b"hello", &open).await.unwrap();
    main.set_data("/app", b"hello again", None).await.unwrap();
    main.create("/app/empty", b"", &open).await.unwrap();
    main.create("/app/big", &[b'x'; 3000], &open).await.unwrap();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let (_, seq) = main
            .create("/app/seq-", b"s", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        seqs.push(format!("/app/seq-{seq}"));
    }
    main.delete(&seqs[1], None).await.unwrap();
    // Error txns: NodeExists, NoNode, BadVersion.
    assert!(main.create("/app", b"", &open).await.is_err());
    assert!(main.delete("/nope", None).await.is_err());
    assert!(main.set_data("/app", b"x", Some(99)).await.is_err());

    main.create("/cont", b"c", &mode(CreateMode::Container))
        .await
        .unwrap();
    main.create("/cont/kid", b"k", &open).await.unwrap();
    main.create("/cont2", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    main.create("/ttl-long", b"t", &ttl(3_600_000))
        .await
        .unwrap();
    main.create(
        "/ttl-seq-",
        b"ts",
        &CreateMode::PersistentSequential
            .with_acls(Acls::anyone_all())
            .with_ttl(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    if short_ttl {
        main.create("/ttl-short", b"t", &ttl(1500)).await.unwrap();
    }

    main.create("/acl", b"", &open).await.unwrap();
    main.create(
        "/acl/world-read",
        b"r",
        &CreateMode::Persistent.with_acls(Acls::anyone_read()),
    )
    .await
    .unwrap();
    let digest = [
        ZkAcl::new(Permission::ALL, AuthId::new("digest", ALICE_ID)),
        ZkAcl::new(Permission::READ, AuthId::anyone()),
    ];
    main.create(
        "/acl/digest",
        b"d",
        &CreateMode::Persistent.with_acls(Acls::new(&digest)),
    )
    .await
    .unwrap();
    let ip = [ZkAcl::new(
        Permission::ALL,
        AuthId::new("ip", "127.0.0.0/8"),
    )];
    main.create(
        "/acl/ip",
        b"i",
        &CreateMode::Persistent.with_acls(Acls::new(&ip)),
    )
    .await
    .unwrap();
    main.create(
        "/acl/creator",
        b"",
        &CreateMode::Persistent.with_acls(Acls::creator_all()),
    )
    .await
    .unwrap();
    main.create("/acl/changed", b"", &open).await.unwrap();
    let bob = [ZkAcl::new(
        Permission::READ | Permission::WRITE,
        AuthId::new("digest", BOB_ID),
    )];
    main.set_acl("/acl/changed", &bob, None).await.unwrap();

    let out = blocking(|| {
        zkcli(
            addr,
            &[
                "create /app/null",
                "setquota -n 50 /app",
                "setquota -b 100000 /acl",
            ],
        )
    });
    for p in [
        "/app/null",
        "/zookeeper/quota/app/zookeeper_limits",
        "/zookeeper/quota/acl/zookeeper_stats",
    ] {
        assert!(
            main.check_stat(p).await.unwrap().is_some(),
            "zkCli did not make {p}:\n{out}"
        );
    }
    // Writes under the quotas after they were set.
    main.create("/app/after-quota", b"0123456789", &open)
        .await
        .unwrap();
    main.set_data("/app/big", &[b'y'; 100], None).await.unwrap();
    main.delete(&seqs[0], None).await.unwrap();

    // The successful multi comes from kazoo, whose creates in a multi are `create` (1), as
    // the Java client's and Curator's are: the Rust client sends `create2` (15), which
    // ZooKeeper 3.8.0 and 3.8.1 cannot replay from a log (see
    // `zookeeper_3_8_0_replays_a_multi_holding_create2`). Its failed multi below does no
    // harm there: a failed multi changes nothing either way.
    let ops = r#"[{"op": "multi", "ops": [
        {"op": "create", "path": "/multi", "data": "m"},
        {"op": "create", "path": "/multi/a", "data": ""},
        {"op": "set", "path": "/app", "data": "set by a multi", "version": -1},
        {"op": "check", "path": "/app/empty", "version": 0}]}]"#;
    let out = blocking(|| kazoo(addr, ops));
    assert!(
        main.check_stat("/multi/a").await.unwrap().is_some(),
        "kazoo multi: {out}"
    );
    let mut m = main.new_multi_writer();
    m.add_create("/multi/b", b"", &open).unwrap();
    m.add_delete("/nope", None).unwrap();
    assert!(m.commit().await.is_err());

    main.create("/gone", b"", &open).await.unwrap();
    main.create("/gone/x", b"", &open).await.unwrap();
    main.delete("/gone/x", None).await.unwrap();
    main.delete("/gone", None).await.unwrap();
    main.create("/counter", b"0", &open).await.unwrap();
    for i in 1..=30 {
        main.set_data("/counter", i.to_string().as_bytes(), None)
            .await
            .unwrap();
    }

    // An ephemeral whose session is closed before the end: gone with its session.
    let closed = Client::connector()
        .with_session_timeout(LIVE_TIMEOUT)
        .connect(&addr.to_string())
        .await
        .unwrap();
    closed
        .create("/closed-eph", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    drop(closed);
    let t = Instant::now();
    while main.check_stat("/closed-eph").await.unwrap().is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "closing the session left its ephemeral"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Sessions left live, each with ephemerals.
    let a = connect_detached(addr).await;
    a.create("/live-a", b"a", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    a.create("/app/eph-seq-", b"", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    let b = connect_detached(addr).await;
    b.create("/live-b", b"b", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let sessions = vec![
        (a.session().clone(), "/live-a".to_string()),
        (b.session().clone(), "/live-b".to_string()),
    ];
    Live {
        main,
        clients: vec![a, b],
        sessions,
    }
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// `(zxid, path)` of the `prefix.*` files in `dir`, oldest first.
fn files(dir: &Path, prefix: &str) -> Vec<(i64, PathBuf)> {
    let mut v: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let mut parts = name.split('.');
            if parts.next()? != prefix {
                return None;
            }
            let z = i64::from_str_radix(parts.next()?, 16).ok()?;
            parts.next().is_none().then(|| (z, e.path()))
        })
        .collect();
    v.sort();
    v
}

fn names(v: &[(i64, PathBuf)]) -> Vec<String> {
    v.iter()
        .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Runs `geokeeper args…`; returns (exit code, stdout, stderr).
fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// `N` in "EOF reached after N txns.".
fn eof_count(out: &str) -> Option<usize> {
    out.lines().find_map(|l| {
        l.strip_prefix("EOF reached after ")?
            .strip_suffix(" txns.")?
            .parse()
            .ok()
    })
}

/// The zxids of the txn lines of a log dump (`… session 0x… cxid 0x… zxid 0x<z> op …`),
/// as both TxnLogToolkit and `geokeeper log dump` print them.
fn dumped_zxids(out: &str) -> Vec<i64> {
    out.lines()
        .filter(|l| l.contains(" session 0x") && l.contains(" cxid 0x"))
        .filter_map(|l| {
            let z = l.split(" zxid 0x").nth(1)?.split(' ').next()?;
            i64::from_str_radix(z, 16).ok()
        })
        .collect()
}

/// `geokeeper log dump FILE`: the zxids it lists, checked against its own EOF count.
fn gk_log_zxids(file: &Path) -> Vec<i64> {
    let (code, out, err) = gk_tool(&["log", "dump", &path_arg(file)]);
    assert_eq!(
        code,
        0,
        "geokeeper log dump {}: {err}\n{out}",
        file.display()
    );
    let zxids = dumped_zxids(&out);
    assert_eq!(
        eof_count(&out),
        Some(zxids.len()),
        "geokeeper log dump {}:\n{out}",
        file.display()
    );
    zxids
}

/// Whether every line of `text` (or the whole text, if `lines` is false) parses as JSON.
fn parses_as_json(text: &str, lines: bool) -> Result<(), String> {
    let script = if lines {
        "import json,sys\nfor l in sys.stdin.read().splitlines():\n    json.loads(l)"
    } else {
        "import json,sys\njson.loads(sys.stdin.read())"
    };
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Waits until `cond` holds, polling, for at most `within`.
fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `path` exists, asked in a throwaway session.
fn exists(addr: SocketAddr, path: &str) -> bool {
    let mut zk = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("connect");
    let x = zk.call(
        OpCode::Exists,
        &Request::Exists(ExistsRequest {
            path: path.into(),
            watch: false,
        }),
    );
    let err = x.reply.expect("exists reply").header.err;
    let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
    match err {
        0 => true,
        -101 => false,
        e => panic!("exists {path}: error {e}"),
    }
}

/// A data directory at `to` holding every log of `log_from` and only the first snapshot
/// (`snapshot.0`) of `snap_from` (each a dataDir or dataLogDir, holding `version-2`), so
/// that a server started on it replays, and checks the digest of, every transaction ever
/// logged.
fn copy_for_full_replay(snap_from: &Path, log_from: &Path, to: &Path) {
    let dst = to.join("version-2");
    std::fs::create_dir_all(&dst).unwrap();
    for (_, p) in files(&log_from.join("version-2"), "log") {
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    let first = snap_from.join("version-2").join("snapshot.0");
    std::fs::copy(&first, dst.join("snapshot.0"))
        .unwrap_or_else(|e| panic!("{}: {e}", first.display()));
}

/// Lines of a ZooKeeper server log that report a digest mismatch.
fn digest_complaints(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("digests are not matching")
                || l.contains("digest mismatch")
                || l.contains("not covering the snapshot digest")
                || l.contains("of snapshot digest does not exist")
        })
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. ZooKeeper → geokeeper
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zookeeper_data_directory_loads_in_geokeeper_with_every_znode_stat_acl_and_session() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut java = blocking(|| JavaZk::start_on(&data, &common_cfg()));
    let live = workload(java.addr, true).await;
    let before = blocking(|| dump(java.addr));
    // A crash with the live sessions still connected: their sessions and ephemerals are
    // only in the snapshots and the log.
    blocking(|| java.kill());
    let Live {
        main,
        clients,
        sessions,
    } = live;
    drop(clients);
    drop(main);
    let v2 = data.join("version-2");
    let (snaps, logs) = (files(&v2, "snapshot"), files(&v2, "log"));
    assert!(
        snaps.len() >= 3 && logs.len() >= 3,
        "want several snapshots and logs: {:?} {:?}",
        names(&snaps),
        names(&logs)
    );

    let replay = tmp.path().join("replay");
    copy_for_full_replay(&data, &data, &replay);

    // No container or TTL check during the comparison: the short TTL node is still there
    // in ZooKeeper's tree, which never checked before the crash.
    let gk = blocking(|| Geokeeper::start_on(&data, &gk_cfg(3_600_000)));
    let started = Instant::now();
    let after = blocking(|| dump(gk.addr));
    assert_same_tree(
        &before,
        &after,
        "ZooKeeper before the crash vs geokeeper on its directory",
    );
    for (_, eph) in &sessions {
        assert!(after.contains_key(eph), "{eph} lost with its live session");
    }

    // The first live session comes back with its id and password and keeps its
    // ephemerals; the second never does and expires on schedule (it was there at start,
    // in the dump above).
    let (resumed_session, resumed_eph) = sessions[0].clone();
    let resumed = Client::connector()
        .with_session(resumed_session)
        .with_session_timeout(LIVE_TIMEOUT)
        .connect(&gk.connect_string())
        .await
        .expect("resume the live session");

    // From snapshot.0 alone, geokeeper replays all of ZooKeeper's log and each txn's
    // digest agrees with the tree geokeeper built.
    let full = blocking(|| Geokeeper::start_on(&replay, &gk_cfg(3_600_000)));
    let replayed = blocking(|| dump(full.addr));
    let log = full.log();
    drop(full);
    assert_same_tree(
        &before,
        &replayed,
        "ZooKeeper before the crash vs geokeeper replaying every log",
    );
    let complaints = digest_complaints(&log);
    assert!(
        complaints.is_empty(),
        "geokeeper's tree disagrees with ZooKeeper's logged digests:\n{}",
        complaints.join("\n")
    );

    let (_, gone_eph) = sessions[1].clone();
    let addr = gk.addr;
    blocking(|| {
        eventually(
            LIVE_TIMEOUT + Duration::from_secs(3),
            "the abandoned session expires",
            || !exists(addr, &gone_eph),
        )
    });
    assert!(
        started.elapsed() >= LIVE_TIMEOUT - Duration::from_millis(500),
        "expired after {:?}, timeout {LIVE_TIMEOUT:?}",
        started.elapsed()
    );
    assert!(resumed.check_stat(&resumed_eph).await.unwrap().is_some());
    assert!(resumed.check_stat("/app").await.unwrap().is_some());
    // The resumed session still owns its ephemerals: closing it removes them.
    drop(resumed);
    blocking(|| {
        eventually(
            Duration::from_secs(5),
            "closing the resumed session",
            || !exists(addr, &resumed_eph),
        )
    });

    // Containers and TTL nodes ZooKeeper made keep their kind: with a short check
    // interval, the expired TTL node goes, and a container goes once its last child does.
    let mut gk = gk;
    let cfg_path = gk.dir.path().join("zoo.cfg");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace(
        "znode.container.checkIntervalMs=3600000",
        "znode.container.checkIntervalMs=200",
    );
    std::fs::write(&cfg_path, cfg).unwrap();
    blocking(|| {
        gk.restart();
        eventually(Duration::from_secs(5), "the expired TTL node goes", || {
            !exists(gk.addr, "/ttl-short")
        });
    });
    let c = Client::connect(&gk.connect_string()).await.unwrap();
    c.delete("/cont/kid", None).await.unwrap();
    blocking(|| {
        eventually(Duration::from_secs(5), "the emptied container goes", || {
            !exists(gk.addr, "/cont")
        });
    });
    for p in ["/cont2", "/ttl-long", "/app"] {
        assert!(c.check_stat(p).await.unwrap().is_some(), "{p} went");
    }
}

// ---------------------------------------------------------------------------------------
// 2. geokeeper → ZooKeeper
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn geokeeper_files_are_read_by_zookeeper_tools_and_served_by_zookeeper() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut gk = blocking(|| Geokeeper::start_on(&data, &gk_cfg(200)));
    let live = workload(gk.addr, true).await;
    // geokeeper's own deleteContainer txns: an expired TTL node and an emptied container.
    live.main
        .create("/cont3", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    live.main
        .create("/cont3/k", b"", &persistent())
        .await
        .unwrap();
    live.main.delete("/cont3/k", None).await.unwrap();
    let addr = gk.addr;
    blocking(|| {
        eventually(
            Duration::from_secs(5),
            "geokeeper removes /cont3, /ttl-short",
            || !exists(addr, "/cont3") && !exists(addr, "/ttl-short"),
        )
    });
    let before = blocking(|| dump(gk.addr));
    blocking(|| gk.kill());
    drop(live);
    let v2 = data.join("version-2");
    let (snaps, logs) = (files(&v2, "snapshot"), files(&v2, "log"));
    assert!(
        snaps.len() >= 3 && logs.len() >= 3,
        "want several snapshots and logs: {:?} {:?}",
        names(&snaps),
        names(&logs)
    );

    // Every log file: TxnLogToolkit prints each txn geokeeper's dump lists, then the count.
    let mut last_zxid = 0;
    for (_, log) in &logs {
        let ours = gk_log_zxids(log);
        if let Some(z) = ours.last() {
            last_zxid = *z;
        }
        let run = blocking(|| txn_log_toolkit(&[], log));
        let what = format!("TxnLogToolkit {}:\n{}", log.display(), run.output);
        assert_eq!(run.code, Some(0), "{what}");
        assert!(
            run.output
                .contains("ZooKeeper Transactional Log File with dbid 0 txnlog format version 2"),
            "{what}"
        );
        assert_eq!(eof_count(&run.output), Some(ours.len()), "{what}");
        assert_eq!(dumped_zxids(&run.output), ours, "{what}");
        assert!(
            !run.output.contains("CRC ERROR") && !run.output.contains("partial"),
            "{what}"
        );
    }
    // Every snapshot: SnapshotFormatter reads it and lists the nodes geokeeper's dump does.
    for (_, snap) in &snaps {
        let run = blocking(|| snapshot_formatter(&[], snap));
        let what = format!("SnapshotFormatter {}:\n{}", snap.display(), run.output);
        assert_eq!(run.code, Some(0), "{what}");
        let (code, ours, err) = gk_tool(&["snapshot", "dump", &path_arg(snap)]);
        assert_eq!(code, 0, "geokeeper snapshot dump {}: {err}", snap.display());
        let count = |s: &str| {
            s.lines().find_map(|l| {
                l.strip_prefix("ZNode Details (count=")?
                    .strip_suffix("):")
                    .map(str::to_owned)
            })
        };
        assert!(count(&run.output).is_some(), "{what}");
        assert_eq!(
            count(&run.output),
            count(&ours),
            "{what}\ngeokeeper:\n{ours}"
        );
        let paths = |s: &str| {
            let mut v: Vec<String> = s
                .lines()
                .filter(|l| l.starts_with('/'))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            paths(&run.output),
            paths(&ours),
            "{what}\ngeokeeper:\n{ours}"
        );
        assert!(
            run.output
                .contains("Session Details (sid, timeout, ephemeralCount):"),
            "{what}"
        );
    }

    let replay = tmp.path().join("replay");
    copy_for_full_replay(&data, &data, &replay);

    // ZooKeeper on geokeeper's directory serves the same tree, and its digests agree.
    let java = blocking(|| JavaZk::start_on(&data, &common_cfg()));
    let after = blocking(|| dump(java.addr));
    let log = java.log();
    assert_same_tree(
        &before,
        &after,
        "geokeeper before the crash vs ZooKeeper on its directory",
    );
    // ZooKeeper read geokeeper's digest trailer, so the replay after it was checked.
    assert!(
        log.contains("The digest in the snapshot has digest version of 2"),
        "{log}"
    );
    let complaints = digest_complaints(&log);
    assert!(
        complaints.is_empty(),
        "ZooKeeper reports digest mismatches:\n{}",
        complaints.join("\n")
    );
    let highest = format!("highest zxid is 0x{last_zxid:x}");
    assert!(
        log.contains(&highest),
        "ZooKeeper's restore did not reach {highest}:\n{log}"
    );
    drop(java);

    // From snapshot.0 alone, ZooKeeper replays all of geokeeper's log and checks every
    // txn's digest against the tree it builds itself.
    let java = blocking(|| JavaZk::start_on(&replay, &common_cfg()));
    let replayed = blocking(|| dump(java.addr));
    let log = java.log();
    assert_same_tree(
        &before,
        &replayed,
        "geokeeper before the crash vs ZooKeeper replaying every log",
    );
    let complaints = digest_complaints(&log);
    assert!(
        complaints.is_empty(),
        "ZooKeeper replaying all of geokeeper's log reports digest mismatches:\n{}",
        complaints.join("\n")
    );
    assert!(log.contains(&highest), "{log}");
}

/// A known gap, kept as a test to run by hand (`--ignored`): geokeeper logs a `create2`
/// inside a multi as sub-txn type 15, as ZooKeeper 3.8.2+ does (ZOOKEEPER-4026). Debian's
/// ZooKeeper 3.8.0 (and 3.8.1) logs such an op as `create` (1) and, replaying a log, fails
/// the whole multi with "IOException: Invalid type of op: 15" (logged at DEBUG only), so
/// the multi's changes are lost and only a digest mismatch is reported. A snapshot taken
/// after the multi hides this; a replay from an older snapshot shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "ZooKeeper 3.8.0/3.8.1 cannot replay create2 inside a multi (fixed in 3.8.2)"]
async fn zookeeper_3_8_0_replays_a_multi_holding_create2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut gk = blocking(|| Geokeeper::start_on(&data, &gk_cfg(3_600_000)));
    let c = Client::connect(&gk.connect_string()).await.unwrap();
    let mut m = c.new_multi_writer();
    m.add_create("/m", b"", &persistent()).unwrap();
    m.commit().await.unwrap();
    blocking(|| gk.kill());
    let java = blocking(|| JavaZk::start_on(&data, &common_cfg()));
    let log = java.log();
    assert!(
        blocking(|| exists(java.addr, "/m")),
        "ZooKeeper dropped the multi:\n{}",
        digest_complaints(&log).join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 3. Restart
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn geokeeper_killed_and_restarted_keeps_everything_and_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The log in its own directory (dataLogDir), as production setups have it.
    let log_dir = tmp.path().join("txnlog");
    let cfg = format!("{}\ndataLogDir={}", gk_cfg(200), log_dir.display());
    let mut gk = blocking(|| Geokeeper::start_on(&data, &cfg));
    let live = workload(gk.addr, false).await;
    // A TTL node that expires only after the restart.
    let ttl_ms = 6000;
    // Before the request: the node's mtime is stamped when the create arrives.
    let ttl_made = Instant::now();
    live.main
        .create("/ttl-6s", b"", &ttl(ttl_ms))
        .await
        .unwrap();
    let before = blocking(|| dump(gk.addr));
    // SIGKILL; the clients go too, so that no session is resumed.
    blocking(|| gk.kill());
    drop(live);
    blocking(|| {
        std::thread::sleep(Duration::from_millis(200));
        gk.restart()
    });
    let restarted = Instant::now();
    let after = blocking(|| dump(gk.addr));
    assert_same_tree(&before, &after, "before SIGKILL vs after restart");
    assert!(files(&log_dir.join("version-2"), "log").len() >= 3);
    assert!(files(&data.join("version-2"), "log").is_empty());
    assert!(files(&data.join("version-2"), "snapshot").len() >= 3);

    let c = Client::connect(&gk.connect_string()).await.unwrap();
    c.auth("digest", b"super:superpw").await.unwrap();
    // Sequence numbers continue from the parent's stored cversion (its child creates: the
    // client sees creates plus deletes, `2 * creates - numChildren`); zxids from the last.
    let (st, seq) = c
        .create("/app/seq-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(
        seq.to_string(),
        format!(
            "{:010}",
            (before["/app"].stat.cversion + before["/app"].stat.num_children) / 2
        ),
        "sequence number after the restart"
    );
    let last = max_zxid(&before);
    assert!(
        st.czxid > last && st.czxid - last < 10 && st.czxid >> 32 == last >> 32,
        "the first create after the restart has zxid {:#x}; the last before it was {last:#x}",
        st.czxid
    );
    // Containers and TTL nodes are still cleaned up.
    c.delete("/cont/kid", None).await.unwrap();
    let addr = gk.addr;
    blocking(|| {
        eventually(Duration::from_secs(5), "the emptied container goes", || {
            !exists(addr, "/cont")
        });
        // The sessions nobody resumes (their ephemerals were in the dump after the
        // restart) expire on schedule and take their ephemerals.
        eventually(
            LIVE_TIMEOUT + Duration::from_secs(3),
            "abandoned sessions expire",
            || !exists(addr, "/live-a") && !exists(addr, "/live-b"),
        );
        assert!(
            restarted.elapsed() >= LIVE_TIMEOUT - Duration::from_millis(500),
            "expired {:?} after the restart, timeout {LIVE_TIMEOUT:?}",
            restarted.elapsed()
        );
        eventually(
            Duration::from_secs(ttl_ms / 1000 + 5),
            "the TTL node expires",
            || !exists(addr, "/ttl-6s"),
        );
        assert!(ttl_made.elapsed() >= Duration::from_millis(ttl_ms));
    });
    let kids = c.list_children("/app").await.unwrap();
    assert!(!kids.iter().any(|k| k.starts_with("eph-seq-")), "{kids:?}");
    for p in ["/cont2", "/ttl-long", "/app/null", "/acl/creator"] {
        assert!(c.check_stat(p).await.unwrap().is_some(), "{p} went");
    }

    // Both runs' logs, with the txns of the expiries and deletions geokeeper made itself,
    // replay in ZooKeeper from snapshot.0 to the same tree, every digest agreeing.
    let end = blocking(|| dump(gk.addr));
    blocking(|| gk.kill());
    let replay = tmp.path().join("replay");
    copy_for_full_replay(&data, &log_dir, &replay);
    let java = blocking(|| JavaZk::start_on(&replay, &common_cfg()));
    let replayed = blocking(|| dump(java.addr));
    assert_same_tree(
        &end,
        &replayed,
        "geokeeper after the restart vs ZooKeeper replaying both runs",
    );
    let complaints = digest_complaints(&java.log());
    assert!(
        complaints.is_empty(),
        "ZooKeeper reports digest mismatches:\n{}",
        complaints.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 4. Tools
// ---------------------------------------------------------------------------------------

/// Every snapshot file of `v2`, plain (`snapshot.<zxid>`) or gzip (`snapshot.<zxid>.gz`),
/// oldest first.
fn snapshot_paths(v2: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(i64, PathBuf)> = std::fs::read_dir(v2)
        .unwrap_or_else(|e| panic!("{}: {e}", v2.display()))
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix("snapshot.")?;
            let hex = rest.strip_suffix(".gz").unwrap_or(rest);
            let z = i64::from_str_radix(hex, 16).ok()?;
            Some((z, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// Waits (up to 30 s) until every snapshot in `v2` dumps cleanly, twice in a row 500 ms
/// apart with the same files (a snapshot thread may start a file just after a check).
fn wait_for_complete_snapshots(v2: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut clean_before: Option<Vec<PathBuf>> = None;
    loop {
        let all = snapshot_paths(v2);
        let bad: Vec<&PathBuf> = all
            .iter()
            .filter(|p| gk_tool(&["snapshot", "dump", &path_arg(p)]).0 != 0)
            .collect();
        if bad.is_empty() {
            if clean_before.as_ref() == Some(&all) {
                return;
            }
            clean_before = Some(all);
        } else {
            assert!(
                Instant::now() < deadline,
                "snapshots never completed: {bad:?}"
            );
            clean_before = None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `log dump` and `snapshot dump`, as text and as JSON, on every file of a directory.
fn dump_every_file(v2: &Path, whose: &str) {
    for (_, log) in files(v2, "log") {
        let zxids = gk_log_zxids(&log);
        let (code, out, err) = gk_tool(&["log", "dump", "--json", &path_arg(&log)]);
        assert_eq!(code, 0, "{whose} {}: {err}", log.display());
        assert_eq!(
            out.lines().count(),
            zxids.len(),
            "{whose} {}:\n{out}",
            log.display()
        );
        if let Err(e) = parses_as_json(&out, true) {
            panic!("{whose} log dump --json {}: {e}\n{out}", log.display());
        }
    }
    for (_, snap) in files(v2, "snapshot") {
        let (code, out, err) = gk_tool(&["snapshot", "dump", &path_arg(&snap)]);
        assert_eq!(code, 0, "{whose} {}: {err}", snap.display());
        assert!(
            out.contains("ZNode Details (count=") && out.contains("Last zxid: 0x"),
            "{out}"
        );
        let (code, out, err) = gk_tool(&["snapshot", "dump", "--json", &path_arg(&snap)]);
        assert_eq!(code, 0, "{whose} {}: {err}", snap.display());
        if let Err(e) = parses_as_json(&out, false) {
            panic!(
                "{whose} snapshot dump --json {}: {e}\n{out}",
                snap.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_and_snapshot_tools_check_repair_and_purge() {
    // ZooKeeper's files.
    let tmp = tempfile::tempdir().unwrap();
    let zk_data = tmp.path().join("zk");
    let mut java = blocking(|| JavaZk::start_on(&zk_data, &common_cfg()));
    {
        let c = Client::connect(&java.connect_string()).await.unwrap();
        c.create("/z", b"", &persistent()).await.unwrap();
        for i in 0..25 {
            c.create(&format!("/z/n{i}"), b"v", &persistent())
                .await
                .unwrap();
        }
        c.create("/z/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        // ZooKeeper writes snapshots from a background thread, in place: a kill before
        // it ends leaves a truncated file (which restore skips, but which no dump tool
        // can print). Let the snapshots finish before the kill.
        let v2 = zk_data.join("version-2");
        blocking(move || wait_for_complete_snapshots(&v2));
        blocking(|| java.kill());
    }
    let zk_v2 = zk_data.join("version-2");
    dump_every_file(&zk_v2, "ZooKeeper's");
    // geokeeper reads every txn of ZooKeeper's logs that ZooKeeper's own tool does.
    for (_, log) in files(&zk_v2, "log") {
        let run = blocking(|| txn_log_toolkit(&[], &log));
        assert_eq!(run.code, Some(0), "{}", run.output);
        assert_eq!(
            dumped_zxids(&run.output),
            gk_log_zxids(&log),
            "{}",
            log.display()
        );
    }
    let (code, out, err) = gk_tool(&["log", "check", &path_arg(&zk_data)]);
    assert_eq!(code, 0, "log check on ZooKeeper's directory: {out}{err}");
    assert!(out.starts_with("ok: "), "{out}");

    // geokeeper's files, a torn tail and its repair.
    let data = tmp.path().join("gk");
    let mut gk = blocking(|| Geokeeper::start_on(&data, &gk_cfg(3_600_000)));
    let live = workload(gk.addr, false).await;
    let acknowledged = blocking(|| dump(gk.addr));
    live.main
        .create("/torn", b"the last write", &persistent())
        .await
        .unwrap();
    blocking(|| gk.kill());
    drop(live);
    blocking(|| std::thread::sleep(Duration::from_millis(200)));
    let v2 = data.join("version-2");
    dump_every_file(&v2, "geokeeper's");
    let (code, out, err) = gk_tool(&["log", "check", &path_arg(&data)]);
    assert_eq!(code, 0, "log check on a good directory: {out}{err}");
    let total: usize = files(&v2, "log")
        .iter()
        .map(|(_, l)| gk_log_zxids(l).len())
        .sum();
    assert!(
        out.starts_with(&format!("ok: {total} transactions")),
        "{out}"
    );

    let (_, newest) = files(&v2, "log").pop().unwrap();
    let scan = geokeeper_core::txnlog::scan_file(&newest).unwrap();
    let last = scan
        .entries
        .last()
        .expect("the newest log holds the last write");
    let torn_at = last.offset + 12 + last.bytes.len() as u64 / 2;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.set_len(torn_at).unwrap();
    drop(f);
    let (code, out, err) = gk_tool(&["log", "check", &path_arg(&data)]);
    assert_eq!(code, 1, "log check on a torn tail: {out}{err}");
    assert!(out.contains("torn tail"), "{out}");
    let (code, out, err) = gk_tool(&["log", "check", "--truncate", &path_arg(&data)]);
    assert_eq!(code, 0, "log check --truncate: {out}{err}");
    assert!(out.contains("cut back"), "{out}");
    let (code, out, err) = gk_tool(&["log", "check", &path_arg(&data)]);
    assert_eq!(code, 0, "log check after the repair: {out}{err}");
    blocking(|| gk.restart());
    // Everything acknowledged before the torn write is there (the live sessions'
    // ephemerals too: their sessions have not expired yet); the torn write is not.
    let repaired = blocking(|| dump(gk.addr));
    assert!(!repaired.contains_key("/torn"), "the torn write came back");
    assert_same_tree(
        &acknowledged,
        &repaired,
        "acknowledged before the tear vs restored",
    );

    // Purge keeps the 3 newest snapshots and the logs they need; restore still works.
    blocking(|| gk.kill());
    let snaps = files(&v2, "snapshot");
    let logs = files(&v2, "log");
    assert!(snaps.len() > 3, "{:?}", names(&snaps));
    let kept_snaps = snaps[snaps.len() - 3..].to_vec();
    let least = kept_snaps[0].0;
    let needed = logs
        .iter()
        .filter(|(z, _)| *z <= least)
        .map(|(z, _)| *z)
        .max();
    let kept_logs: Vec<(i64, PathBuf)> = logs
        .iter()
        .filter(|(z, _)| *z >= least || Some(*z) == needed)
        .cloned()
        .collect();
    let cfg = path_arg(&gk.dir.path().join("zoo.cfg"));
    let (code, out, err) = gk_tool(&["purge", "--config", &cfg, "-n", "3"]);
    assert_eq!(code, 0, "purge: {out}{err}");
    assert_eq!(names(&files(&v2, "snapshot")), names(&kept_snaps), "{out}");
    assert_eq!(names(&files(&v2, "log")), names(&kept_logs), "{out}");
    blocking(|| gk.restart());
    let purged = blocking(|| dump(gk.addr));
    assert_same_tree(&repaired, &purged, "before purge vs restored after it");
}

/// `zookeeper.snapshot.compression.method=gz` (a zoo.cfg key both servers turn into that
/// property): ZooKeeper's gzip snapshots restore in geokeeper, geokeeper writes gzip
/// snapshots in turn, and ZooKeeper restores from those.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gzip_snapshots_restore_both_ways() {
    let gz = "snapshot.compression.method=gz";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let v2 = data.join("version-2");

    let mut java = blocking(|| JavaZk::start_on(&data, &format!("{}\n{gz}", common_cfg())));
    {
        let c = Client::connect(&java.connect_string()).await.unwrap();
        c.create("/g", b"", &persistent()).await.unwrap();
        for i in 0..40 {
            c.create(&format!("/g/z{i}"), b"from zookeeper", &persistent())
                .await
                .unwrap();
        }
    }
    let v = v2.clone();
    blocking(move || wait_for_complete_snapshots(&v));
    let before = blocking(|| dump(java.addr));
    blocking(|| java.kill());
    let zk_snaps = snapshot_paths(&v2);
    assert!(
        zk_snaps.iter().filter(|p| is_gz(p)).count() >= 2,
        "ZooKeeper wrote no gzip snapshots: {zk_snaps:?}"
    );
    // The dump's own session is a transaction, so ZooKeeper may have been killed in the
    // middle of one more snapshot: restore takes the newest complete one.
    let zk_newest = zk_snaps
        .iter()
        .rev()
        .find(|p| gk_tool(&["snapshot", "dump", &path_arg(p)]).0 == 0)
        .cloned()
        .unwrap();

    let mut gk = blocking(|| Geokeeper::start_on(&data, &format!("{}\n{gz}", gk_cfg(60_000))));
    let restored = blocking(|| dump(gk.addr));
    assert_same_tree(
        &before,
        &restored,
        "geokeeper on ZooKeeper's gzip snapshots",
    );
    assert!(
        gk.log()
            .contains(&format!("Reading snapshot {}", zk_newest.display())),
        "geokeeper did not restore from {}:\n{}",
        zk_newest.display(),
        gk.log()
    );
    {
        let c = Client::connect(&gk.addr.to_string()).await.unwrap();
        for i in 0..40 {
            c.create(&format!("/g/k{i}"), b"from geokeeper", &persistent())
                .await
                .unwrap();
        }
    }
    let v = v2.clone();
    let newest_before = zk_newest.clone();
    blocking(move || {
        // One taken after the creates began: the one geokeeper may write as it starts (as
        // ZooKeeper does after loading) can land after `newest_before` was read.
        eventually(Duration::from_secs(10), "a geokeeper gzip snapshot", || {
            snapshot_paths(&v).last().is_some_and(|p| {
                *p != newest_before
                    && is_gz(p)
                    && gk_tool(&["snapshot", "dump", &path_arg(p)])
                        .1
                        .contains("/g/k0")
            })
        })
    });
    let written = blocking(|| dump(gk.addr));
    blocking(|| gk.kill());
    // geokeeper's snapshots are renamed into place whole: the newest is the one to read.
    let gk_newest = snapshot_paths(&v2).last().cloned().unwrap();
    assert!(is_gz(&gk_newest) && gk_newest != zk_newest, "{gk_newest:?}");
    let (code, out, err) = gk_tool(&["snapshot", "dump", &path_arg(&gk_newest)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/g/k0"), "{out}");

    let java = blocking(|| JavaZk::start_on(&data, &format!("{}\n{gz}", common_cfg())));
    let after = blocking(|| dump(java.addr));
    let log = java.log();
    assert_same_tree(&written, &after, "ZooKeeper on geokeeper's gzip snapshots");
    assert!(
        log.contains(&format!("Reading snapshot {}", gk_newest.display())),
        "ZooKeeper did not restore from {}:\n{log}",
        gk_newest.display()
    );
    assert!(digest_complaints(&log).is_empty(), "{log}");
}
