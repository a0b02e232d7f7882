//! The reference clients through the gateway, side by side with a Java observer: two
//! fresh Apache ZooKeeper 3.8 ensembles of three participants, one with a Java observer
//! and one followed by a geokeeper gateway; zkCli, the C client shell cli_mt, kazoo and
//! the `zookeeper-client` crate run the same scripts against the observer of each, and
//! the normalised outputs must be equal (the normalisers remove zxids, times, session
//! ids and addresses; see tests/reference_clients.rs).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::gk::Geokeeper;
use support::java_ensemble::JavaEnsemble;
use support::java_zk::{cli_mt, four_letter, kazoo, normalize_cli_mt, normalize_zkcli, zkcli};

/// Every znode under `/` but `/zookeeper/config` (each server's own): path, stat, data,
/// read after a sync.
fn tree_dump(addr: SocketAddr) -> Vec<(String, String)> {
    use geokeeper_core::proto::records::*;
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;
    use support::rawzk::{decode_body, Body, RawZk};
    let mut z = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("connect");
    // The super user reads everything.
    let auth = AuthPacket {
        r#type: 0,
        scheme: "digest".into(),
        auth: b"super:admin".to_vec().into(),
    };
    let f = z
        .call_with_xid(-4, OpCode::Auth, &Request::Auth(auth))
        .reply;
    assert_eq!(f.expect("auth").header.err, 0);
    let _ = z.call(
        OpCode::Sync,
        &Request::Sync(SyncRequest { path: "/".into() }),
    );
    let mut out = Vec::new();
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        let f = z
            .call(
                OpCode::GetData,
                &Request::GetData(GetDataRequest {
                    path: p.clone(),
                    watch: false,
                }),
            )
            .reply
            .expect("getData");
        let Body::GetData(d) = decode_body(OpCode::GetData as i32, &f.body) else {
            panic!("getData {p}")
        };
        let f = z
            .call(
                OpCode::GetChildren,
                &Request::GetChildren(GetChildrenRequest {
                    path: p.clone(),
                    watch: false,
                }),
            )
            .reply
            .expect("getChildren");
        let Body::GetChildren(c) = decode_body(OpCode::GetChildren as i32, &f.body) else {
            panic!("getChildren {p}")
        };
        for k in c.children {
            todo.push(if p == "/" {
                format!("/{k}")
            } else {
                format!("{p}/{k}")
            });
        }
        if p != "/zookeeper/config" {
            out.push((p, format!("{:?} {:?}", d.stat, d.data)));
        }
    }
    out.sort();
    out
}

/// For every server of both ensembles: TTL nodes, and the super digest `super:admin`.
const CFG: &str = "extendedTypesEnabled=true\n\
                   DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=";

struct Pair {
    _java: JavaEnsemble,
    _ours: JavaEnsemble,
    _data: tempfile::TempDir,
    gk: Geokeeper,
    /// The Java observer's client address.
    observer: SocketAddr,
}

fn pair() -> Pair {
    let (java, ours) = std::thread::scope(|s| {
        let a = s.spawn(|| JavaEnsemble::start_with_observers(3, 1, CFG));
        let b = s.spawn(|| JavaEnsemble::start(3, CFG));
        (a.join().expect("java"), b.join().expect("ours"))
    });
    let observer = java.members[3].client;
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("myid"), "4\n").expect("myid");
    let gk = Geokeeper::start_on(
        data.path(),
        &format!(
            "tickTime=500\ninitLimit=20\nsyncLimit=10\npeerType=observer\n4lw.commands.whitelist=*\n{}server.4=127.0.0.1:1:2:observer\n{CFG}\n",
            ours.server_lines
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in [gk.addr, observer] {
        while !four_letter(addr, "mntr").contains("zk_server_state\tobserver")
            || RawProbe::refused(addr)
        {
            assert!(
                Instant::now() < deadline,
                "{addr} not serving as an observer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Pair {
        _java: java,
        _ours: ours,
        _data: data,
        gk,
        observer,
    }
}

/// Whether a server refuses sessions yet (an observer does until it has synced).
struct RawProbe;
impl RawProbe {
    fn refused(addr: SocketAddr) -> bool {
        support::rawzk::RawZk::connect(addr, 0, &[0; 16], 0, 4_000)
            .map(|z| {
                let ok = z.response.time_out > 0;
                z.disconnect();
                !ok
            })
            .unwrap_or(true)
    }
}

fn assert_same(what: &str, java: &str, gk: &str) {
    if java != gk {
        println!("==== {what}: Java observer ====\n{java}");
        println!("==== {what}: geokeeper gateway ====\n{gk}");
    }
    assert_eq!(java, gk, "{what}: outputs differ");
}

/// Runs `client` against both observers and compares; `expect` must appear in the
/// output (the script really ran).
fn compare(what: &str, p: &Pair, expect: &str, client: impl Fn(SocketAddr) -> String + Sync) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| client(p.observer));
        let b = s.spawn(|| client(p.gk.addr));
        (a.join().expect("java"), b.join().expect("gk"))
    });
    assert_same(what, &a, &b);
    assert!(
        a.contains(expect),
        "{what}: {expect:?} not in the output:\n{a}"
    );
}

#[test]
fn reference_clients_through_the_gateway_behave_as_through_a_java_observer() {
    let p = pair();

    // Note: the probe sessions above went through the leader of each ensemble alike.
    let zk_script = [
        "create /a",
        "create /b \"\"",
        "create /c hello",
        "get /a",
        "get -s /c",
        "create -s /c/seq- s",
        "create -e /c/eph e",
        "create -e -s /c/eseq- x",
        "create -c /cont",
        "create -t 60000 /ttl t",
        "stat /c/eph",
        "create /c dup",
        "create /nope/child",
        "create /c/eph/child",
        "get /missing",
        "set /c world",
        "set -v 7 /c x",
        "get -s /c",
        "ls /c",
        "ls -s /c",
        "delete /c",
        "deleteall /c",
        "ls /",
        "sync /",
        "create /acl data",
        "setAcl /acl digest:alice:CRxVi7lmJ9rxk6eOTmRyPQTtIVs=:cdrwa",
        "get /acl",
        "addauth digest alice:secret",
        "get /acl",
        "getAcl /acl",
        "setAcl /acl world:anyone:r",
        "set /acl nope",
        "addauth digest super:admin",
        "set /acl yes",
        "whoami",
        "get -w /a",
        "set /a changed",
        "ls -w /",
        "create /d",
        "getEphemerals",
        "close",
    ];
    compare("zkCli", &p, "Node already exists: /c", |addr| {
        normalize_zkcli(&zkcli(addr, &zk_script))
    });

    let mt_script = [
        "create /mt",
        "create /mt/x",
        "create +s /mt/s",
        "create +e /mt/e",
        "create2 /mt/c2",
        "create +c /cont2",
        "create +t=60000 /ttl2",
        "create /mt",
        "create /nope/child",
        "get /mt",
        "set /mt hello",
        "get /mt",
        "set /nope x",
        "ls /mt",
        "ls2 /mt",
        "exists /mt/e",
        "wexists /mt/new",
        "create /mt/new",
        "delete /mt/x",
        "delete /mt",
        "aget /mt",
        "aset /mt async",
        "als /mt",
        "sync /mt",
        "sync /nope",
        "addauth digest alice:secret",
        "get bad",
    ];
    compare("cli_mt", &p, "hello", |addr| {
        normalize_cli_mt(&cli_mt(addr, &mt_script))
    });

    let ops = r#"[
        {"op": "create", "path": "/k", "data": "v1"},
        {"op": "create", "path": "/k/s-", "sequence": true},
        {"op": "create", "path": "/k/e", "data": "eph", "ephemeral": true},
        {"op": "create", "path": "/k/deep/er/path", "data": "mp", "makepath": true},
        {"op": "create", "path": "/k", "data": "dup"},
        {"op": "create", "path": "/nope/child"},
        {"op": "get", "path": "/k"},
        {"op": "exists", "path": "/k/e"},
        {"op": "children", "path": "/k"},
        {"op": "set", "path": "/k", "data": "v2"},
        {"op": "set", "path": "/k", "data": "v4", "version": 7},
        {"op": "watch", "path": "/k", "kind": "data"},
        {"op": "watch", "path": "/k", "kind": "children"},
        {"op": "watch", "path": "/k/new", "kind": "exists"},
        {"op": "set", "path": "/k", "data": "v5"},
        {"op": "events", "count": 1},
        {"op": "create", "path": "/k/new", "data": "n"},
        {"op": "events", "count": 3},
        {"op": "sync", "path": "/k"},
        {"op": "multi", "ops": [{"op": "create", "path": "/m", "data": "x"},
                                {"op": "set", "path": "/m", "data": "y"},
                                {"op": "check", "path": "/m", "version": 1},
                                {"op": "create", "path": "/m/s-", "sequence": true},
                                {"op": "create", "path": "/m/e", "ephemeral": true}]},
        {"op": "multi", "ops": [{"op": "create", "path": "/m2"},
                                {"op": "check", "path": "/m", "version": 7}]},
        {"op": "exists", "path": "/m2"},
        {"op": "multi", "ops": []},
        {"op": "delete", "path": "/k", "recursive": true},
        {"op": "children", "path": "/"}
    ]"#;
    compare("kazoo", &p, "\"CHILD\", \"path\": \"/k\"", |addr| {
        kazoo(addr, ops).replace("}, {", "},\n{")
    });

    // The Rust client crate: a session, a write, a watch and a read of it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = |addr: SocketAddr| -> String {
        rt.block_on(async move {
            let c = zookeeper_client::Client::connect(&addr.to_string())
                .await
                .expect("connect");
            let mut out = Vec::new();
            let opts = zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all());
            out.push(format!(
                "{:?}",
                c.create("/rust", b"r1", &opts)
                    .await
                    .map(|(s, _)| (s.version, s.data_length))
            ));
            out.push(format!("{:?}", c.create("/rust", b"r1", &opts).await.err()));
            let (data, stat, watcher) = c.get_and_watch_data("/rust").await.expect("get");
            out.push(format!("{data:?} {}", stat.version));
            let other = zookeeper_client::Client::connect(&addr.to_string())
                .await
                .expect("connect");
            other.set_data("/rust", b"r2", None).await.expect("set");
            let ev = watcher.changed().await;
            out.push(format!("{:?} {}", ev.event_type, ev.path));
            let (data, stat) = c.get_data("/rust").await.expect("get");
            out.push(format!("{data:?} {}", stat.version));
            c.sync("/rust").await.expect("sync");
            out.push(format!("{:?}", c.delete("/rust", Some(7)).await.err()));
            out.push(format!("{:?}", c.delete("/rust", None).await.is_ok()));
            out.join("\n")
        })
    };
    let (a, b) = (run(p.observer), run(p.gk.addr));
    assert_same("zookeeper-client", &a, &b);
    assert!(a.contains("NodeDataChanged /rust"), "{a}");

    // A seeded workload, half through the observers: every reply the same.
    let seed: u64 = std::env::var("GEOKEEPER_GATEWAY_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("GEOKEEPER_GATEWAY_DIFF_SEED={seed}");
    differential(&p, seed, 400);
    // Then the gateway's tree is its leader's, znode by znode, and its digest agreed
    // with the leader's after every transaction.
    let leader = p._ours.members[p._ours.leader().expect("leader")].client;
    let (l, g) = (tree_dump(leader), tree_dump(p.gk.addr));
    assert_eq!(l, g, "the gateway's tree is the leader's");
    assert!(
        four_letter(p.gk.addr, "mntr").contains("zk_digest_mismatches_count\t0"),
        "no digest mismatch"
    );
}

/// A reply as compared across the two ensembles: zxids, times and session ids masked
/// (the twin ensembles need not agree on them), children sorted (Java's are in hash
/// order).
fn normalized(err: i32, op: geokeeper_core::proto::OpCode, body: &[u8]) -> String {
    use support::rawzk::{decode_body, Body};
    let mut b = decode_body(op as i32, body);
    match &mut b {
        Body::GetChildren(c) => c.children.sort(),
        Body::GetChildren2(c) => c.children.sort(),
        _ => {}
    }
    let mut s = format!("{err} {b:?}");
    for key in [
        "czxid: ",
        "mzxid: ",
        "ctime: ",
        "mtime: ",
        "ephemeral_owner: ",
        "pzxid: ",
    ] {
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(i) = rest.find(key) {
            out.push_str(&rest[..i + key.len()]);
            rest = &rest[i + key.len()..];
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            out.push('_');
            rest = &rest[n..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

/// One seeded workload, half through each ensemble's observer (the Java observer, the
/// gateway) and half through a Java follower, step by step on both ensembles: every
/// reply must be the same.
fn differential(p: &Pair, seed: u64, steps: usize) {
    use geokeeper_core::proto::records::*;
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::{MultiOp, Request};
    use rand::{Rng, SeedableRng};
    use support::rawzk::RawZk;
    let connect = |addr| {
        let z = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("connect");
        assert!(z.response.time_out > 0, "session at {addr}");
        z
    };
    let follower = |e: &JavaEnsemble| {
        let leader = e.leader().expect("leader");
        e.members[(0..3).find(|&i| i != leader).expect("follower")].client
    };
    // [ensemble][0: observer, 1: follower]
    let mut clients = [
        [connect(p.observer), connect(follower(&p._java))],
        [connect(p.gk.addr), connect(follower(&p._ours))],
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let path = |rng: &mut rand::rngs::StdRng| {
        let depth = rng.random_range(1..=2);
        (0..depth)
            .map(|_| format!("/d{}", rng.random_range(0..4)))
            .collect::<String>()
    };
    let acl = geokeeper_core::acl::open_acl_unsafe;
    for step in 0..steps {
        let side = rng.random_range(0..2);
        let p1 = path(&mut rng);
        let (op, req) = match rng.random_range(0..9) {
            0 | 1 => (
                OpCode::Create2,
                Request::Create {
                    op: OpCode::Create2,
                    req: CreateRequest {
                        path: p1.clone(),
                        data: Some(vec![b'x'; rng.random_range(0..20)].into()),
                        acl: acl(),
                        flags: [0, 1, 2, 3][rng.random_range(0..4)],
                    },
                },
            ),
            2 => (
                OpCode::SetData,
                Request::SetData(SetDataRequest {
                    path: p1.clone(),
                    data: Some(vec![b'y'; rng.random_range(0..20)].into()),
                    version: [-1, 0, 1][rng.random_range(0..3)],
                }),
            ),
            3 => (
                OpCode::Delete,
                Request::Delete(DeleteRequest {
                    path: p1.clone(),
                    version: [-1, 0][rng.random_range(0..2)],
                }),
            ),
            4 => (
                OpCode::GetData,
                Request::GetData(GetDataRequest {
                    path: p1.clone(),
                    watch: false,
                }),
            ),
            5 => (
                OpCode::GetChildren2,
                Request::GetChildren2(GetChildren2Request {
                    path: p1.clone(),
                    watch: false,
                }),
            ),
            6 => (
                OpCode::Sync,
                Request::Sync(SyncRequest { path: p1.clone() }),
            ),
            7 => (
                OpCode::Exists,
                Request::Exists(ExistsRequest {
                    path: p1.clone(),
                    watch: false,
                }),
            ),
            _ => {
                let p2 = path(&mut rng);
                (
                    OpCode::Multi,
                    Request::Multi(vec![
                        MultiOp::Create {
                            op: OpCode::Create,
                            req: CreateRequest {
                                path: p1.clone(),
                                data: None,
                                acl: acl(),
                                flags: 0,
                            },
                        },
                        MultiOp::SetData(SetDataRequest {
                            path: p2,
                            data: Some(b"m".to_vec().into()),
                            version: -1,
                        }),
                    ]),
                )
            }
        };
        let replies: Vec<String> = clients
            .iter_mut()
            .map(|pair| {
                let z = &mut pair[side];
                if side == 1
                    || matches!(op, OpCode::GetData | OpCode::GetChildren2 | OpCode::Exists)
                {
                    // A read after a write on the other server: sync first, as a client
                    // that wants to see it must.
                    let _ = z.call(
                        OpCode::Sync,
                        &Request::Sync(SyncRequest { path: "/".into() }),
                    );
                }
                let f = z.call(op, &req).reply.expect("reply");
                normalized(f.header.err, op, &f.body)
            })
            .collect();
        assert_eq!(
            replies[0],
            replies[1],
            "seed {seed} step {step}: {} {req:?} through the {}",
            op.name(),
            ["observer", "follower"][side]
        );
    }
}
