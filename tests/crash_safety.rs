//! Durability of the data directory against crashes and damage, with the real binary:
//!
//! * `acknowledged_write_survives_kill_9`: sessions write concurrently, the server is
//!   killed with SIGKILL at a random moment and restarted on the same directory, round
//!   after round; every acknowledged write must be there exactly as acknowledged (data,
//!   version, mzxid), an unacknowledged one either wholly there or wholly absent, in
//!   session order; sequence numbers never go back; the replayed tree's digest matches
//!   the logged one at every zxid after a fuzzy snapshot's window; no snapshot leaves a
//!   temporary file behind;
//! * a torn last entry, cut or zeroed at every byte, is cut back at startup;
//! * a corrupt or truncated newest snapshot gives way to the previous one plus the log;
//! * a log file missing between the snapshot and the rest of the log stops startup with
//!   an error that names the gap;
//! * a full disk fails writes with SystemError, loses nothing acknowledged, and writes
//!   succeed again once space returns, without a restart.
//!
//! `GK_CRASH_SEED` repeats a crash run's choices of operations and kill moments (thread
//! timing still differs); `GK_CRASH_ROUNDS` sets how many kills it makes (default 200);
//! `GK_CRASH_DEBUG=1` prints the server's restore lines at the end.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{ErrorCode, OpCode};
use geokeeper_core::request::{MultiOp, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::gk::{gk_tool, Geokeeper, StartError};
use support::rawzk::{decode_body, Body, Frame, OpResult, RawZk};

// ---------------------------------------------------------------------------------------
// Small client helpers
// ---------------------------------------------------------------------------------------

fn open_acl() -> Vec<Acl> {
    geokeeper_core::acl::open_acl_unsafe()
}

fn session(addr: SocketAddr, timeout_ms: i32) -> RawZk {
    let zk = RawZk::connect(addr, 0, &[0; 16], 0, timeout_ms)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e:?}"));
    assert!(zk.response.time_out > 0, "session refused by {addr}");
    zk
}

fn create_req(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create2,
        req: CreateRequest {
            path: path.into(),
            data: Some(data.to_vec().into()),
            acl: open_acl(),
            flags,
        },
    }
}

/// A request that must succeed; its reply frame.
fn must(zk: &mut RawZk, op: OpCode, req: &Request) -> Frame {
    let f = zk
        .call(op, req)
        .reply
        .unwrap_or_else(|e| panic!("{op:?} {req:?}: no reply: {e:?}"));
    assert_eq!(f.header.err, 0, "{op:?} {req:?} failed");
    f
}

fn create(zk: &mut RawZk, path: &str, data: &[u8]) {
    must(zk, OpCode::Create2, &create_req(path, data, 0));
}

/// Creates that must succeed, pipelined.
fn create_many(zk: &mut RawZk, paths: &[String], data: &[u8]) {
    for chunk in paths.chunks(256) {
        let mut xids = Vec::with_capacity(chunk.len());
        for p in chunk {
            let xid = zk.take_xid();
            zk.send(xid, OpCode::Create2, &create_req(p, data, 0))
                .expect("send create");
            xids.push(xid);
        }
        for (xid, p) in xids.into_iter().zip(chunk) {
            let f = zk.await_reply(xid).reply.expect("create reply");
            assert_eq!(f.header.err, 0, "create {p}");
        }
    }
}

/// getData: `None` for NoNode.
fn get(zk: &mut RawZk, path: &str) -> Option<(Vec<u8>, Stat)> {
    let req = Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    });
    let f = zk
        .call(OpCode::GetData, &req)
        .reply
        .unwrap_or_else(|e| panic!("getData {path}: no reply: {e:?}"));
    if f.header.err == ErrorCode::NoNode.code() {
        return None;
    }
    assert_eq!(f.header.err, 0, "getData {path}");
    match decode_body(OpCode::GetData as i32, &f.body) {
        Body::GetData(r) => Some((r.data.map(|d| d.to_vec()).unwrap_or_default(), r.stat)),
        b => panic!("getData {path}: {b:?}"),
    }
}

fn children(zk: &mut RawZk, path: &str) -> Vec<String> {
    let req = Request::GetChildren(GetChildrenRequest {
        path: path.into(),
        watch: false,
    });
    let f = must(zk, OpCode::GetChildren, &req);
    match decode_body(OpCode::GetChildren as i32, &f.body) {
        Body::GetChildren(r) => r.children,
        b => panic!("getChildren {path}: {b:?}"),
    }
}

/// getData of many paths, pipelined: all requests first, then the replies in order.
fn get_many(zk: &mut RawZk, paths: &[String]) -> Vec<Option<(Vec<u8>, Stat)>> {
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(256) {
        let mut xids = Vec::with_capacity(chunk.len());
        for p in chunk {
            let xid = zk.take_xid();
            let req = Request::GetData(GetDataRequest {
                path: p.clone(),
                watch: false,
            });
            zk.send(xid, OpCode::GetData, &req).expect("send getData");
            xids.push(xid);
        }
        for (xid, p) in xids.into_iter().zip(chunk) {
            let f = zk.await_reply(xid).reply.expect("getData reply");
            out.push(if f.header.err == ErrorCode::NoNode.code() {
                None
            } else {
                assert_eq!(f.header.err, 0, "getData {p}");
                match decode_body(OpCode::GetData as i32, &f.body) {
                    Body::GetData(r) => {
                        Some((r.data.map(|d| d.to_vec()).unwrap_or_default(), r.stat))
                    }
                    b => panic!("getData {p}: {b:?}"),
                }
            });
        }
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn fresh_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id()).rotate_left(32)
}

/// The log files of a version-2 directory, by first zxid.
fn log_files(dir: &Path) -> Vec<(i64, PathBuf)> {
    geokeeper_core::txnlog::log_files(dir).expect("list log files")
}

/// The snapshot files of a version-2 directory, newest first.
fn snapshot_files(dir: &Path) -> Vec<(i64, PathBuf)> {
    geokeeper_core::snapshot::snapshot_files(dir).expect("list snapshots")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("dir entry");
        let t = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).expect("copy");
        }
    }
}

/// The text a server logged since `from` bytes into its log file.
fn log_since(gk: &Geokeeper, from: usize) -> String {
    let l = gk.log();
    l.get(from..).unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------
// 1. acknowledged_write_survives_kill_9
// ---------------------------------------------------------------------------------------

/// A znode as a session last knew it.
#[derive(Clone, PartialEq, Eq)]
struct Val {
    data: Vec<u8>,
    version: i32,
    mzxid: i64,
}

impl std::fmt::Debug for Val {
    /// Data is `tag` plus padding dots: shown as the tag and the total length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.data);
        write!(
            f,
            "{{{:?}+{}B v{} mzxid {:#x}}}",
            text.trim_end_matches('.'),
            self.data.len(),
            self.version,
            self.mzxid
        )
    }
}

/// One change a write makes to one znode of the worker's directory.
#[derive(Debug, Clone)]
enum Effect {
    Create {
        name: String,
        data: Vec<u8>,
    },
    /// A sequential create: the name is known only from the reply (or found by its data).
    SeqCreate {
        data: Vec<u8>,
    },
    Set {
        name: String,
        old: Val,
        data: Vec<u8>,
    },
    Delete {
        name: String,
        old: Val,
    },
}

/// One write request: a single operation, or a multi of several effects.
#[derive(Debug, Clone)]
struct Op {
    xid: i32,
    multi: bool,
    /// A multi whose last operation is a check that cannot pass: it must change nothing.
    fails: bool,
    effects: Vec<Effect>,
    /// A passing check inside a multi (path, version).
    check: Option<(String, i32)>,
}

const KEYS: usize = 12;
/// Static znodes on either side of the workers' directories.
const BALLAST: [&str; 2] = ["/a", "/z"];
const BALLAST_NODES: usize = 2500;
/// Requests each session keeps in flight.
const WINDOW: usize = 3;
const WORKERS: usize = 6;

/// The number of a sequential node's name (`s-0000000042` is 42).
fn seq_number(name: &str) -> i64 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

fn dir_of(w: usize) -> String {
    format!("/crash/w{w}")
}

impl Op {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Create { name, .. }
                | Effect::Set { name, .. }
                | Effect::Delete { name, .. } => Some(name.as_str()),
                Effect::SeqCreate { .. } => None,
            })
            .chain(self.check.iter().map(|c| c.0.as_str()))
    }

    fn request(&self, dir: &str) -> (OpCode, Request) {
        let path = |n: &str| format!("{dir}/{n}");
        if !self.multi {
            return match &self.effects[0] {
                Effect::Create { name, data } => {
                    (OpCode::Create2, create_req(&path(name), data, 0))
                }
                Effect::SeqCreate { data } => (OpCode::Create2, create_req(&path("s-"), data, 2)),
                Effect::Set { name, old, data } => (
                    OpCode::SetData,
                    Request::SetData(SetDataRequest {
                        path: path(name),
                        data: Some(data.clone().into()),
                        version: old.version,
                    }),
                ),
                Effect::Delete { name, old } => (
                    OpCode::Delete,
                    Request::Delete(DeleteRequest {
                        path: path(name),
                        version: old.version,
                    }),
                ),
            };
        }
        let mut ops: Vec<MultiOp> = self
            .effects
            .iter()
            .map(|e| match e {
                Effect::Create { name, data } => MultiOp::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: path(name),
                        data: Some(data.clone().into()),
                        acl: open_acl(),
                        flags: 0,
                    },
                },
                Effect::SeqCreate { data } => MultiOp::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: path("s-"),
                        data: Some(data.clone().into()),
                        acl: open_acl(),
                        flags: 2,
                    },
                },
                Effect::Set { name, old, data } => MultiOp::SetData(SetDataRequest {
                    path: path(name),
                    data: Some(data.clone().into()),
                    version: old.version,
                }),
                Effect::Delete { name, old } => MultiOp::Delete(DeleteRequest {
                    path: path(name),
                    version: old.version,
                }),
            })
            .collect();
        if let Some((name, version)) = &self.check {
            ops.insert(
                ops.len() / 2,
                MultiOp::Check(CheckVersionRequest {
                    path: path(name),
                    version: *version,
                }),
            );
        }
        if self.fails {
            // The worker's directory is never set, so its version is 0.
            ops.push(MultiOp::Check(CheckVersionRequest {
                path: dir.to_string(),
                version: 12345,
            }));
        }
        (OpCode::Multi, Request::Multi(ops))
    }
}

/// Picks the next write of worker `w`, on znodes no request in flight touches.
fn next_op(
    rng: &mut StdRng,
    model: &BTreeMap<String, Val>,
    busy: &BTreeSet<String>,
    tag: &str,
) -> Op {
    // Every value written is unique: `tag.k` plus padding of random length.
    let mut k = 0;
    let mut data = |rng: &mut StdRng| {
        k += 1;
        let mut d = format!("{tag}.{k}").into_bytes();
        d.extend(std::iter::repeat_n(b'.', rng.random_range(0..120)));
        d
    };
    let absent: Vec<String> = (0..KEYS)
        .map(|k| format!("k{k:02}"))
        .filter(|k| !model.contains_key(k) && !busy.contains(k))
        .collect();
    let present: Vec<String> = model
        .keys()
        .filter(|k| !busy.contains(*k))
        .cloned()
        .collect();
    let single = |e: Effect| Op {
        xid: 0,
        multi: false,
        fails: false,
        effects: vec![e],
        check: None,
    };
    let roll = if model.len() > 2 * KEYS && !present.is_empty() {
        60 // too many sequential nodes: delete one
    } else {
        rng.random_range(0..100)
    };
    let pick = |rng: &mut StdRng, v: &[String]| v[rng.random_range(0..v.len())].clone();
    match roll {
        0..22 if !absent.is_empty() => {
            let name = pick(rng, &absent);
            single(Effect::Create {
                name,
                data: data(rng),
            })
        }
        30..55 if !present.is_empty() => {
            let name = pick(rng, &present);
            let old = model[&name].clone();
            single(Effect::Set {
                name,
                old,
                data: data(rng),
            })
        }
        55..68 if !present.is_empty() => {
            let name = pick(rng, &present);
            let old = model[&name].clone();
            single(Effect::Delete { name, old })
        }
        68..93 => {
            let mut effects = Vec::new();
            let mut used = BTreeSet::new();
            let n = rng.random_range(2..=4);
            for _ in 0..n {
                let r = rng.random_range(0..10);
                if r == 0 {
                    effects.push(Effect::SeqCreate { data: data(rng) });
                    continue;
                }
                let cands: Vec<&String> = absent
                    .iter()
                    .chain(present.iter())
                    .filter(|k| !used.contains(*k))
                    .collect();
                if cands.is_empty() {
                    break;
                }
                let name = cands[rng.random_range(0..cands.len())].clone();
                used.insert(name.clone());
                match model.get(&name) {
                    None => effects.push(Effect::Create {
                        name,
                        data: data(rng),
                    }),
                    Some(old) if r < 7 => effects.push(Effect::Set {
                        name,
                        old: old.clone(),
                        data: data(rng),
                    }),
                    Some(old) => effects.push(Effect::Delete {
                        name,
                        old: old.clone(),
                    }),
                }
            }
            if effects.is_empty() {
                effects.push(Effect::SeqCreate { data: data(rng) });
            }
            let spare: Vec<&String> = present.iter().filter(|k| !used.contains(*k)).collect();
            let check = if !spare.is_empty() && rng.random_bool(0.3) {
                let name = spare[rng.random_range(0..spare.len())].clone();
                let v = model[&name].version;
                Some((name, v))
            } else {
                None
            };
            Op {
                xid: 0,
                multi: true,
                fails: false,
                effects,
                check,
            }
        }
        93.. => {
            // Would create, set and delete, then fails its last check: nothing may stay.
            let mut effects = vec![Effect::SeqCreate { data: data(rng) }];
            if !absent.is_empty() {
                effects.push(Effect::Create {
                    name: pick(rng, &absent),
                    data: data(rng),
                });
            }
            if !present.is_empty() {
                let name = pick(rng, &present);
                let old = model[&name].clone();
                effects.push(Effect::Set {
                    name,
                    old,
                    data: data(rng),
                });
            }
            Op {
                xid: 0,
                multi: true,
                fails: true,
                effects,
                check: None,
            }
        }
        _ => single(Effect::SeqCreate { data: data(rng) }),
    }
}

/// What one session did before the server died.
struct WorkerRun {
    model: BTreeMap<String, Val>,
    /// The highest sequence number handed out in the worker's directory so far.
    max_seq: i64,
    /// Requests sent and never answered, in the order sent.
    pending: Vec<Op>,
    acked: u64,
    violations: Vec<String>,
}

/// Applies an acknowledged write to the model, checking the reply against it.
fn acknowledge(
    w: usize,
    op: &Op,
    f: &Frame,
    model: &mut BTreeMap<String, Val>,
    max_seq: &mut i64,
    violations: &mut Vec<String>,
) {
    let dir = dir_of(w);
    let zxid = f.header.zxid;
    let (opcode, _) = op.request(&dir);
    let body = decode_body(opcode as i32, &f.body);
    if op.fails {
        match &body {
            Body::Multi { results, .. }
                if results.iter().all(|r| matches!(r.2, OpResult::Error(_))) => {}
            b => violations.push(format!(
                "w{w}: failing multi {op:?} answered {:?} {b:?}",
                f.header
            )),
        }
        return;
    }
    if f.header.err != 0 {
        violations.push(format!("w{w}: {op:?} failed: {:?} {body:?}", f.header));
        return;
    }
    // Names handed out to sequential creates, in order.
    let mut seq_names: Vec<String> = match (&body, op.multi) {
        (Body::Create2(c), false) => vec![c.path.clone()],
        (Body::Multi { results, .. }, true) => results
            .iter()
            .filter_map(|r| match &r.2 {
                OpResult::Create(p) if p.contains("/s-") => Some(p.clone()),
                OpResult::Create2(p, _) if p.contains("/s-") => Some(p.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    seq_names.reverse();
    for e in &op.effects {
        match e {
            Effect::Create { name, data } => {
                model.insert(
                    name.clone(),
                    Val {
                        data: data.clone(),
                        version: 0,
                        mzxid: zxid,
                    },
                );
            }
            Effect::SeqCreate { data } => match seq_names.pop() {
                Some(p) => {
                    let name = p.rsplit('/').next().unwrap_or_default().to_string();
                    // Sequence numbers only grow (the parent's cversion), restarts or not.
                    let seq = seq_number(&name);
                    if seq <= *max_seq {
                        violations.push(format!(
                            "w{w}: {p} handed out after sequence number {max_seq}"
                        ));
                    }
                    *max_seq = seq.max(*max_seq);
                    model.insert(
                        name,
                        Val {
                            data: data.clone(),
                            version: 0,
                            mzxid: zxid,
                        },
                    );
                }
                None => violations.push(format!(
                    "w{w}: no sequential name in the reply to {op:?}: {body:?}"
                )),
            },
            Effect::Set { name, old, data } => {
                if let (false, Body::Stat(s)) = (op.multi, &body) {
                    if s.version != old.version + 1 || s.mzxid != zxid {
                        violations.push(format!(
                            "w{w}: setData {name} answered {s:?} at zxid {zxid:#x}"
                        ));
                    }
                }
                model.insert(
                    name.clone(),
                    Val {
                        data: data.clone(),
                        version: old.version + 1,
                        mzxid: zxid,
                    },
                );
            }
            Effect::Delete { name, .. } => {
                model.remove(name);
            }
        }
    }
}

/// One session's load until the connection dies.
fn worker(
    addr: SocketAddr,
    w: usize,
    round: usize,
    seed: u64,
    mut model: BTreeMap<String, Val>,
    mut max_seq: i64,
    stop: Arc<AtomicBool>,
) -> WorkerRun {
    let mut run = WorkerRun {
        model: BTreeMap::new(),
        max_seq,
        pending: Vec::new(),
        acked: 0,
        violations: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let Ok(mut zk) = RawZk::connect(addr, 0, &[0; 16], 0, 2000) else {
        run.model = model;
        return run;
    };
    if zk.response.time_out <= 0 {
        run.model = model;
        return run;
    }
    let dir = dir_of(w);
    let mut inflight: std::collections::VecDeque<Op> = Default::default();
    let mut n = 0u64;
    'outer: loop {
        while inflight.len() < WINDOW && !stop.load(Ordering::Relaxed) {
            let busy: BTreeSet<String> = inflight
                .iter()
                .flat_map(|o| o.names().map(str::to_string))
                .collect();
            n += 1;
            let tag = format!("w{w}.r{round}.n{n}");
            let mut op = next_op(&mut rng, &model, &busy, &tag);
            op.xid = zk.take_xid();
            let (code, req) = op.request(&dir);
            let sent = zk.send(op.xid, code, &req);
            inflight.push_back(op);
            if sent.is_err() {
                break 'outer;
            }
        }
        let Some(front_xid) = inflight.front().map(|o| o.xid) else {
            break;
        };
        let f = match zk.read_frame() {
            Ok(f) => f,
            Err(_) => break,
        };
        if f.header.xid != front_xid {
            run.violations.push(format!(
                "w{w}: reply {:?} arrived while xid {front_xid} was the oldest in flight",
                f.header
            ));
            break;
        }
        let Some(op) = inflight.pop_front() else {
            break;
        };
        acknowledge(w, &op, &f, &mut model, &mut max_seq, &mut run.violations);
        run.acked += 1;
        if !run.violations.is_empty() {
            break;
        }
    }
    run.model = model;
    run.max_seq = max_seq;
    run.pending = inflight.into_iter().collect();
    run
}

#[derive(Default, Debug)]
struct CrashStats {
    acked: u64,
    unacked_applied: u64,
    unacked_absent: u64,
    restarts: u64,
    restart_ms_max: u128,
}

/// Reads every worker's directory from the restarted server and checks it against the
/// models and the requests that were in flight; the models become what was found.
fn verify(
    addr: SocketAddr,
    models: &mut [BTreeMap<String, Val>],
    max_seq: &mut [i64],
    pending: &mut [Vec<Op>],
    stats: &mut CrashStats,
    round: usize,
) -> Vec<String> {
    let mut zk = session(addr, 4000);
    let mut violations = Vec::new();
    for w in 0..models.len() {
        let dir = dir_of(w);
        let names = children(&mut zk, &dir);
        let paths: Vec<String> = names.iter().map(|n| format!("{dir}/{n}")).collect();
        let vals = get_many(&mut zk, &paths);
        let mut observed: BTreeMap<String, Val> = BTreeMap::new();
        for (n, v) in names.iter().zip(vals) {
            if let Some((data, stat)) = v {
                observed.insert(
                    n.clone(),
                    Val {
                        data,
                        version: stat.version,
                        mzxid: stat.mzxid,
                    },
                );
            }
        }
        let before = &models[w];
        let mut after = before.clone();
        let mut claimed: BTreeSet<String> = BTreeSet::new();
        let mut seen_absent = false;
        for op in pending[w].drain(..) {
            // Whether each effect is there; a write is all there or not at all.
            let mut here = Vec::new();
            for e in &op.effects {
                let st = match e {
                    Effect::Create { name, data } => match observed.get(name) {
                        Some(v) if v.data == *data && v.version == 0 => Ok(true),
                        None => Ok(false),
                        Some(v) => Err(format!("{name} is {v:?}")),
                    },
                    Effect::SeqCreate { data } => {
                        let found = observed.iter().find(|(n, v)| {
                            !before.contains_key(*n) && !claimed.contains(*n) && v.data == *data
                        });
                        match found {
                            Some((n, v)) if v.version == 0 => {
                                claimed.insert(n.clone());
                                Ok(true)
                            }
                            Some((n, v)) => Err(format!("{n} is {v:?}")),
                            None => Ok(false),
                        }
                    }
                    Effect::Set { name, old, data } => match observed.get(name) {
                        Some(v) if v.data == *data && v.version == old.version + 1 => Ok(true),
                        Some(v) if v == old => Ok(false),
                        v => Err(format!("{name} is {v:?}, was {old:?}")),
                    },
                    Effect::Delete { name, old } => match observed.get(name) {
                        None => Ok(true),
                        Some(v) if v == old => Ok(false),
                        Some(v) => Err(format!("{name} is {v:?}, was {old:?}")),
                    },
                };
                here.push(st);
            }
            let bad: Vec<&String> = here.iter().filter_map(|s| s.as_ref().err()).collect();
            if !bad.is_empty() {
                violations.push(format!("w{w}: unacknowledged {op:?} left {bad:?}"));
                continue;
            }
            let applied = here.iter().filter(|s| matches!(s, Ok(true))).count();
            if op.fails {
                if applied > 0 {
                    violations.push(format!("w{w}: failed multi {op:?} was partly applied"));
                }
                continue;
            }
            if applied != 0 && applied != here.len() {
                violations.push(format!(
                    "w{w}: unacknowledged multi {op:?} half applied: {applied} of {} effects",
                    here.len()
                ));
                continue;
            }
            if applied == 0 {
                seen_absent = true;
                stats.unacked_absent += 1;
                continue;
            }
            if seen_absent {
                violations.push(format!(
                    "w{w}: {op:?} is there but an earlier write of the same session is not (session order)"
                ));
            }
            stats.unacked_applied += 1;
            for e in &op.effects {
                match e {
                    Effect::Create { name, .. } | Effect::Set { name, .. } => {
                        after.insert(name.clone(), observed[name].clone());
                    }
                    Effect::Delete { name, .. } => {
                        after.remove(name);
                    }
                    Effect::SeqCreate { .. } => {}
                }
            }
        }
        for n in &claimed {
            // Only claimed by writes found applied (a failed multi's claim is a violation).
            after.insert(n.clone(), observed[n].clone());
            max_seq[w] = max_seq[w].max(seq_number(n));
        }
        // Everything else must be exactly as acknowledged.
        for (n, v) in &after {
            match observed.get(n) {
                Some(o) if o == v => {}
                o => violations.push(format!(
                    "w{w} round {round}: acknowledged {dir}/{n} = {v:?}, found {o:?}"
                )),
            }
        }
        for (n, o) in &observed {
            if !after.contains_key(n) {
                violations.push(format!(
                    "w{w} round {round}: {dir}/{n} = {o:?} was never written"
                ));
            }
        }
        models[w] = observed;
    }
    let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
    violations
}

/// Kill -9 at a random moment of a concurrent write load, restart on the same directory,
/// check every acknowledged write; repeat.
#[test]
fn acknowledged_write_survives_kill_9() {
    let seed = env_u64("GK_CRASH_SEED").unwrap_or_else(fresh_seed);
    let rounds = env_u64("GK_CRASH_ROUNDS").unwrap_or(200) as usize;
    eprintln!("acknowledged_write_survives_kill_9: seed {seed} (GK_CRASH_SEED={seed} to repeat), {rounds} rounds (GK_CRASH_ROUNDS)");
    let mut rng = StdRng::seed_from_u64(seed);
    let data = tempfile::tempdir().expect("tempdir");
    // Small snapCount and preAllocSize: kills land while the log rolls, grows and while
    // fuzzy snapshots are written. A short tickTime lets dead rounds' sessions expire.
    let cfg = "tickTime=200\nsnapCount=1000\npreAllocSize=64\nmaxSessionTimeout=4000";
    let mut gk = Geokeeper::start_on(&data.path().join("data"), cfg);
    {
        let mut zk = session(gk.addr, 4000);
        // Ballast on both sides of /crash in the walk, so that a snapshot takes several
        // slices with requests applied between them: really fuzzy.
        for side in BALLAST {
            create(&mut zk, side, b"");
            let paths: Vec<String> = (0..BALLAST_NODES)
                .map(|i| format!("{side}/b{i:05}"))
                .collect();
            create_many(&mut zk, &paths, &[b'b'; 50]);
        }
        create(&mut zk, "/crash", b"");
        for w in 0..WORKERS {
            create(&mut zk, &dir_of(w), b"");
        }
        let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
    }
    let mut models: Vec<BTreeMap<String, Val>> = vec![BTreeMap::new(); WORKERS];
    let mut pending: Vec<Vec<Op>> = vec![Vec::new(); WORKERS];
    let mut max_seq: Vec<i64> = vec![-1; WORKERS];
    let mut stats = CrashStats::default();
    let started = Instant::now();
    for round in 0..=rounds {
        if round > 0 {
            let t = Instant::now();
            let log_at = gk.log().len();
            gk.restart();
            stats.restarts += 1;
            stats.restart_ms_max = stats.restart_ms_max.max(t.elapsed().as_millis());
            let mut violations = verify(
                gk.addr,
                &mut models,
                &mut max_seq,
                &mut pending,
                &mut stats,
                round,
            );
            // The replayed tree must equal the live one at every zxid after a snapshot's
            // fuzzy window: ZooKeeper's digests say so.
            let restart_log = log_since(&gk, log_at);
            for l in restart_log.lines() {
                if l.contains("Digests are not matching")
                    || l.contains("not covering the snapshot digest")
                {
                    violations.push(format!("restart {round}: {l}"));
                }
            }
            if !violations.is_empty() {
                panic!(
                    "seed {seed}, after kill {round}:\n{}\nserver log of this start:\n{}",
                    violations.join("\n"),
                    log_since(&gk, log_at)
                );
            }
            if round % 25 == 0 || round == rounds {
                eprintln!(
                    "  round {round}: {:.1}s, {} acknowledged, {} unacknowledged there, {} not, slowest restart {} ms",
                    started.elapsed().as_secs_f64(),
                    stats.acked,
                    stats.unacked_applied,
                    stats.unacked_absent,
                    stats.restart_ms_max
                );
            }
        }
        if round == rounds {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let model = std::mem::take(&mut models[w]);
                let seq = max_seq[w];
                let s = rng.random::<u64>();
                let stop = stop.clone();
                let addr = gk.addr;
                std::thread::spawn(move || worker(addr, w, round, s, model, seq, stop))
            })
            .collect();
        let delay = rng.random_range(0..400u64);
        std::thread::sleep(Duration::from_millis(delay));
        gk.kill();
        stop.store(true, Ordering::Relaxed);
        let mut violations = Vec::new();
        for (w, h) in handles.into_iter().enumerate() {
            let run = h.join().expect("worker thread");
            stats.acked += run.acked;
            models[w] = run.model;
            max_seq[w] = run.max_seq;
            pending[w] = run.pending;
            violations.extend(run.violations);
        }
        if !violations.is_empty() {
            panic!("seed {seed}, round {round}:\n{}", violations.join("\n"));
        }
    }
    let leftovers = wait_no_temporaries(&data.path().join("data").join("version-2"));
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let mut zk = session(gk.addr, 4000);
    for side in BALLAST {
        assert_eq!(
            children(&mut zk, side).len(),
            BALLAST_NODES,
            "ballast under {side}"
        );
    }
    // What the kills hit, from the server's own log.
    let log = gk.log();
    if std::env::var("GK_CRASH_DEBUG").is_ok() {
        for l in log.lines().filter(|l| {
            l.contains("Digests") || l.contains("Reading snapshot") || l.contains("Snapshot loaded")
        }) {
            eprintln!("{l}");
        }
    }
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    eprintln!(
        "server log: {} snapshots taken, {} torn tails cut, {} 'Digests are not matching', {} 'Too busy to snap'",
        count("Snapshot taken"),
        count("cut the log back"),
        count("Digests are not matching"),
        count("Too busy to snap")
    );
    eprintln!(
        "acknowledged_write_survives_kill_9: seed {seed}: {rounds} kills in {:.1}s; {stats:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(stats.acked > 0, "no write was ever acknowledged");
}

// ---------------------------------------------------------------------------------------
// 2. A torn last entry, at every byte
// ---------------------------------------------------------------------------------------

/// A crash mid-write leaves the last entry cut short (the file ends inside it) or partly
/// written over the preallocated zeros. At every byte of the last entry, either way, the
/// server must start, say that it cut the log back (when anything of the entry was
/// written), hold everything before that entry, and keep working across another restart.
#[test]
fn torn_last_log_entry_is_cut_back_at_every_byte() {
    let base = tempfile::tempdir().expect("tempdir");
    let pristine = base.path().join("pristine");
    let cfg = "preAllocSize=64";
    let nodes: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("/t/n{i:02}"),
                format!("value of n{i:02}").into_bytes(),
            )
        })
        .collect();
    {
        let mut gk = Geokeeper::start_on(&pristine, cfg);
        let mut zk = session(gk.addr, 30000);
        create(&mut zk, "/t", b"");
        for (p, d) in &nodes {
            create(&mut zk, p, d);
        }
        create(&mut zk, "/t/last", b"the last entry of the log");
        // No closeSession: the create of /t/last stays the last entry.
        gk.kill();
    }
    let v2 = pristine.join("version-2");
    let (_, log_path) = log_files(&v2).pop().expect("a log file");
    let scan = geokeeper_core::txnlog::scan_file(&log_path).expect("scan the log");
    let last = scan.entries.last().expect("entries");
    let txn = geokeeper_core::proto::txn::TxnEntry::decode(&last.bytes).expect("decode");
    assert!(
        format!("{:?}", txn.body).contains("/t/last"),
        "last entry is {txn:?}"
    );
    let start = last.offset as usize;
    let end = start + 12 + last.bytes.len() + 1;
    let full = std::fs::read(&log_path).expect("read log");
    let log_name = log_path.file_name().unwrap().to_string_lossy().into_owned();
    let mut cases = Vec::new();
    for cut in start + 1..end {
        cases.push((cut, true));
        cases.push((cut, false));
    }
    let t = Instant::now();
    let check = |(cut, truncate): (usize, bool)| -> Result<(), String> {
        let case = format!(
            "{} at byte {cut} (entry {start}..{end})",
            if truncate { "truncated" } else { "zeroed" }
        );
        let dir = base.path().join(format!("case-{cut}-{truncate}"));
        copy_dir(&pristine, &dir);
        let path = dir.join("version-2").join(&log_name);
        let mut b = full.clone();
        if truncate {
            b.truncate(cut);
        } else {
            b[cut..end].fill(0);
        }
        std::fs::write(&path, &b).map_err(|e| e.to_string())?;
        let mut gk = Geokeeper::try_start_on(&dir, cfg)
            .map_err(|(e, log)| format!("{case}: did not start ({e:?}):\n{log}"))?;
        let log = gk.log();
        let said = format!("cut the log back to its last whole transaction at offset {start}");
        let wrote_something = full[start..cut].iter().any(|x| *x != 0);
        if wrote_something && !(log.contains(&said) && log.contains(&log_name)) {
            return Err(format!("{case}: no line saying the tail was cut:\n{log}"));
        }
        if !wrote_something && log.contains("cut the log back") {
            return Err(format!("{case}: cut a tail of zeros:\n{log}"));
        }
        let mut zk = session(gk.addr, 30000);
        let mut expect: Vec<String> = nodes.iter().map(|(p, _)| p[3..].to_string()).collect();
        let mut kids = children(&mut zk, "/t");
        kids.sort();
        if kids != expect {
            return Err(format!("{case}: children of /t are {kids:?}"));
        }
        let paths: Vec<String> = nodes.iter().map(|(p, _)| p.clone()).collect();
        for ((p, d), got) in nodes.iter().zip(get_many(&mut zk, &paths)) {
            if got.as_ref().map(|g| &g.0) != Some(d) {
                return Err(format!("{case}: {p} is {got:?}"));
            }
        }
        // The repaired file is now an older file: the next start must read past it.
        create(&mut zk, "/t/after", b"after the cut");
        gk.restart();
        let mut zk = session(gk.addr, 30000);
        expect.push("after".into());
        expect.sort();
        let mut kids = children(&mut zk, "/t");
        kids.sort();
        if kids != expect {
            return Err(format!(
                "{case}: after a second restart, children of /t are {kids:?}\n{}",
                gk.log()
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    };
    // Two at a time: each case is two short-lived processes.
    let halves: [Vec<(usize, bool)>; 2] = [
        cases.iter().step_by(2).copied().collect(),
        cases.iter().skip(1).step_by(2).copied().collect(),
    ];
    let check = &check;
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .into_iter()
            .map(|half| {
                s.spawn(move || {
                    half.into_iter()
                        .filter_map(|c| check(c).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    eprintln!(
        "torn tail: {} cases ({} bytes of entry, truncated and zeroed) in {:.1}s",
        cases.len(),
        end - start,
        t.elapsed().as_secs_f64()
    );
    assert!(
        errors.is_empty(),
        "{} of {} cases failed:\n{}",
        errors.len(),
        cases.len(),
        errors.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 3. A damaged newest snapshot
// ---------------------------------------------------------------------------------------

/// A data directory with several snapshots and log files: `snapCount=40` and 150 creates.
/// Returns the created (path, data) pairs.
fn populate_with_snapshots(data: &Path, cfg: &str) -> Vec<(String, Vec<u8>)> {
    let mut gk = Geokeeper::start_on(data, cfg);
    let mut zk = session(gk.addr, 30000);
    create(&mut zk, "/s", b"");
    let nodes: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| {
            (
                format!("/s/n{i:03}"),
                format!("data {i} {}", "x".repeat(i % 40)).into_bytes(),
            )
        })
        .collect();
    for (p, d) in &nodes {
        create(&mut zk, p, d);
    }
    // Snapshots are written in the background: wait for the ones the rolls started.
    let v2 = data.join("version-2");
    let t = Instant::now();
    while snapshot_files(&v2).len() < 4 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    gk.kill();
    assert!(
        snapshot_files(&v2).len() >= 3,
        "too few snapshots: {:?}",
        snapshot_files(&v2)
    );
    assert!(
        log_files(&v2).len() >= 3,
        "too few log files: {:?}",
        log_files(&v2)
    );
    nodes
}

fn check_nodes(addr: SocketAddr, nodes: &[(String, Vec<u8>)], case: &str) {
    let mut zk = session(addr, 30000);
    let paths: Vec<String> = nodes.iter().map(|(p, _)| p.clone()).collect();
    for ((p, d), got) in nodes.iter().zip(get_many(&mut zk, &paths)) {
        assert_eq!(got.as_ref().map(|g| &g.0), Some(d), "{case}: {p}");
    }
    let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
}

#[test]
fn damaged_newest_snapshot_gives_way_to_the_previous_one_and_the_log() {
    let base = tempfile::tempdir().expect("tempdir");
    let pristine = base.path().join("pristine");
    let cfg = "snapCount=40\npreAllocSize=64";
    let nodes = populate_with_snapshots(&pristine, cfg);
    let snaps = snapshot_files(&pristine.join("version-2"));
    let newest = snaps[0]
        .1
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let previous = snaps[1]
        .1
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    type Damage = fn(&mut Vec<u8>);
    let cases: [(&str, Damage, &str); 4] = [
        (
            "truncated to half",
            |b| b.truncate(b.len() / 2),
            "incomplete: no end seal",
        ),
        ("empty", |b| b.clear(), "incomplete: no end seal"),
        (
            "one byte flipped in the middle",
            |b| {
                let i = b.len() / 2;
                b[i] ^= 0x5a;
            },
            "problem reading snap file",
        ),
        (
            "seal intact, digest trailer garbled",
            |b| {
                let i = b.len() - 20;
                b[i] ^= 0x01;
            },
            "problem reading snap file",
        ),
    ];
    for (i, (what, damage, says)) in cases.iter().enumerate() {
        let dir = base.path().join(format!("case-{i}"));
        copy_dir(&pristine, &dir);
        let path = dir.join("version-2").join(&newest);
        let mut b = std::fs::read(&path).expect("read snapshot");
        damage(&mut b);
        std::fs::write(&path, &b).expect("write snapshot");
        let case = format!("newest snapshot {newest} {what}");
        let gk = Geokeeper::try_start_on(&dir, cfg)
            .unwrap_or_else(|(e, log)| panic!("{case}: did not start ({e:?}):\n{log}"));
        let log = gk.log();
        let skipped = log
            .lines()
            .any(|l| l.contains(&newest) && l.contains(says) && l.contains("trying an older one"));
        assert!(
            skipped,
            "{case}: no line saying it was skipped ({says}):\n{log}"
        );
        let read = log
            .lines()
            .any(|l| l.contains("Reading snapshot") && l.contains(&previous));
        assert!(read, "{case}: no line saying {previous} was read:\n{log}");
        check_nodes(gk.addr, &nodes, &case);
        eprintln!("{case}: skipped for {previous} plus the log");
    }
}

/// `snapSizeLimitInKb`: large values bring snapshots long before `snapCount` would, so
/// the log a restart must replay stays bounded (`SyncRequestProcessor`).
#[test]
fn large_values_bring_snapshots_by_log_size() {
    let base = tempfile::tempdir().expect("tempdir");
    let data = base.path().join("data");
    let gk = Geokeeper::start_on(&data, "snapCount=100000\nsnapSizeLimitInKb=1024");
    let mut zk = session(gk.addr, 30_000);
    let value = vec![b'v'; 100_000];
    must(&mut zk, OpCode::Create2, &create_req("/big", &value, 0));
    // 4 MB of log: with a 1 MiB limit, a snapshot every 0.5 to 1 MiB.
    for _ in 0..40 {
        let set = Request::SetData(SetDataRequest {
            path: "/big".into(),
            data: Some(value.clone().into()),
            version: -1,
        });
        must(&mut zk, OpCode::SetData, &set);
    }
    let v2 = data.join("version-2");
    let deadline = Instant::now() + Duration::from_secs(20);
    let taken = loop {
        let taken: Vec<i64> = snapshot_files(&v2)
            .into_iter()
            .map(|(z, _)| z)
            .filter(|&z| z > 0)
            .collect();
        if taken.len() >= 4 || Instant::now() > deadline {
            break taken;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        taken.len() >= 4,
        "41 writes of 100 kB with a 1 MiB limit: snapshots at {taken:x?}\n{}",
        gk.log()
    );
    // Each snapshot also started a new log file, so no log file holds much more than the
    // limit's worth of transactions.
    let logs = log_files(&v2);
    assert!(logs.len() >= 5, "{logs:?}");
}

// ---------------------------------------------------------------------------------------
// 4. A gap between the snapshot and the log
// ---------------------------------------------------------------------------------------

#[test]
fn missing_middle_log_file_is_a_startup_error_naming_the_gap() {
    let base = tempfile::tempdir().expect("tempdir");
    let pristine = base.path().join("pristine");
    let cfg = "snapCount=40\npreAllocSize=64";
    populate_with_snapshots(&pristine, cfg);
    let logs = log_files(&pristine.join("version-2"));
    let m = logs.len() / 2;
    assert!(m >= 1 && m + 1 < logs.len(), "{logs:?}");
    let (missing, _) = logs[m];
    let (next, _) = logs[m + 1];
    // Only a snapshot older than the next file's start needs the missing file: the newer
    // ones are gone (deleted, or damaged so that the older one is used).
    for (i, how) in ["deleted", "damaged"].iter().enumerate() {
        let dir = base.path().join(format!("case-{i}"));
        copy_dir(&pristine, &dir);
        let v2 = dir.join("version-2");
        std::fs::remove_file(v2.join(format!("log.{missing:x}"))).expect("remove log");
        let mut kept = 0i64;
        for (z, p) in snapshot_files(&v2) {
            if z >= next - 1 {
                if i == 0 {
                    std::fs::remove_file(&p).expect("remove snapshot");
                } else {
                    let b = std::fs::read(&p).expect("read snapshot");
                    std::fs::write(&p, &b[..b.len() / 3]).expect("truncate snapshot");
                }
            } else {
                kept = kept.max(z);
            }
        }
        let after = kept.max(missing - 1);
        let case = format!("log.{missing:x} missing, newer snapshots {how}");
        match Geokeeper::try_start_on(&dir, cfg) {
            Ok(gk) => panic!("{case}: the server started:\n{}", gk.log()),
            Err((StartError::Exited(code), log)) => {
                assert!(code.is_some_and(|c| c != 0), "{case}: exit code {code:?}");
                let line = log
                    .lines()
                    .find(|l| l.contains("missing transactions"))
                    .unwrap_or_else(|| {
                        panic!("{case}: no line about missing transactions:\n{log}")
                    });
                assert!(
                    line.contains(&format!("after zxid {after:#x}"))
                        && line.contains(&format!("continues at {next:#x}")),
                    "{case}: expected the gap {after:#x}..{next:#x} named: {line}"
                );
                eprintln!("{case}: exit code {code:?}: {line}");
            }
            Err((e, log)) => panic!("{case}: {e:?}:\n{log}"),
        }
        // The checker refuses what startup refuses, naming the same gap.
        let (code, out, err) = gk_tool(&["log", "check", &dir.display().to_string()]);
        assert_eq!(code, 1, "{case}: log check: {out}{err}");
        assert!(
            out.contains("startup would refuse")
                && out.contains(&format!("after zxid {after:#x}"))
                && out.contains(&format!("continues at {next:#x}")),
            "{case}: log check should name the gap {after:#x}..{next:#x}: {out}{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. A full disk
// ---------------------------------------------------------------------------------------

/// The `*.tmp` files of a version-2 directory once no snapshot is being written (waiting
/// up to 5 s for one in progress).
fn wait_no_temporaries(dir: &Path) -> Vec<String> {
    let list = || -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("version-2")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    };
    let t = Instant::now();
    while !list().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    list()
}

/// A tmpfs mounted for one test, unmounted when dropped (even on a failed assertion).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Fills the file system under `path` with one file, then gives back `leave` bytes.
fn fill(path: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(_) => break,
        }
    }
    let _ = f.flush();
    f.set_len(len.saturating_sub(leave)).expect("shrink filler");
}

#[test]
fn full_disk_fails_writes_cleanly_and_recovers_without_restart() {
    let base = tempfile::tempdir().expect("tempdir");
    // The log alone fills the disk; then snapshots and log rolls fill it as well.
    for (i, snap_count) in [1_000_000, 100].into_iter().enumerate() {
        let mnt = base.path().join(format!("tmpfs-{i}"));
        // A small file system of its own is the only honest full disk; without one this
        // test proves nothing, so it fails (the test command runs as root, as CI does).
        let tmpfs = Tmpfs::mount(&mnt, "4m").unwrap_or_else(|why| {
            panic!("this test needs a 4 MB tmpfs (mount -t tmpfs, as root): {why}")
        });
        full_disk_case(&mnt, &format!("preAllocSize=64\nsnapCount={snap_count}"));
        drop(tmpfs);
    }
}

/// Fills the disk under a server whose dataDir is `mnt/data`, checks how writes fail and
/// that they come back, then that a restart finds exactly the acknowledged writes.
fn full_disk_case(mnt: &Path, cfg: &str) {
    let data = mnt.join("data");
    let mut gk = Geokeeper::start_on(&data, cfg);
    let mut zk = session(gk.addr, 30000);
    create(&mut zk, "/full", b"");
    let filler = mnt.join("filler");
    fill(&filler, 512 * 1024);
    let log_at = gk.log().len();

    // Pipelined creates of 1 KB until the log cannot take them.
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut inflight: std::collections::VecDeque<(i32, String, Vec<u8>)> = Default::default();
    let mut n = 0;
    let body = |n: usize| format!("{n:06}{}", "d".repeat(1000)).into_bytes();
    while n < 20_000 {
        while refused.is_empty() && inflight.len() < 8 {
            let p = format!("/full/n{n:06}");
            let d = body(n);
            let xid = zk.take_xid();
            zk.send(xid, OpCode::Create2, &create_req(&p, &d, 0))
                .expect("send");
            inflight.push_back((xid, p, d));
            n += 1;
        }
        let Some((xid, p, d)) = inflight.pop_front() else {
            break;
        };
        let f = zk.await_reply(xid).reply.expect("reply");
        match f.header.err {
            0 => acked.push((p, d)),
            e if e == ErrorCode::SystemError.code() => refused.push(p),
            e => panic!("create {p}: error {e}, expected OK or SystemError"),
        }
    }
    assert!(!refused.is_empty(), "the disk never filled");
    assert!(
        acked.len() > 100,
        "only {} writes before the disk was full",
        acked.len()
    );
    let log = log_since(&gk, log_at);
    let line = log
        .lines()
        .find(|l| l.contains("the transaction log failed"))
        .unwrap_or_else(|| panic!("no log line about the failed log:\n{log}"));
    assert!(line.contains("No space left on device"), "{line}");
    eprintln!(
        "disk full after {} writes; {} refused: {line}",
        acked.len(),
        refused.len()
    );

    // Reads go on; writes keep failing while the disk is full.
    assert_eq!(
        get(&mut zk, &acked[0].0).map(|g| g.0),
        Some(acked[0].1.clone())
    );
    let mut failed_again = false;
    for _ in 0..200 {
        let p = format!("/full/n{n:06}");
        let d = body(n);
        n += 1;
        let f = zk
            .call(OpCode::Create2, &create_req(&p, &d, 0))
            .reply
            .expect("reply");
        match f.header.err {
            0 => acked.push((p, d)),
            e if e == ErrorCode::SystemError.code() => {
                refused.push(p);
                failed_again = true;
                break;
            }
            e => panic!("create {p}: error {e}"),
        }
    }
    assert!(failed_again, "writes succeeded on a full disk");

    // Space comes back: writes succeed again, same process, same session.
    std::fs::remove_file(&filler).expect("remove filler");
    for _ in 0..100 {
        let p = format!("/full/n{n:06}");
        let d = body(n);
        n += 1;
        let f = zk
            .call(OpCode::Create2, &create_req(&p, &d, 0))
            .reply
            .expect("reply");
        assert_eq!(
            f.header.err,
            0,
            "create {p} after space returned:\n{}",
            log_since(&gk, log_at)
        );
        acked.push((p, d));
    }
    assert!(gk.is_running());

    // Nothing acknowledged is lost, nothing refused is there.
    gk.restart();
    let mut zk = session(gk.addr, 30000);
    let paths: Vec<String> = acked.iter().map(|a| a.0.clone()).collect();
    for ((p, d), got) in acked.iter().zip(get_many(&mut zk, &paths)) {
        assert_eq!(
            got.map(|g| g.0).as_ref(),
            Some(d),
            "acknowledged {p} after restart"
        );
    }
    for (p, got) in refused.iter().zip(get_many(&mut zk, &refused)) {
        assert!(got.is_none(), "refused {p} is there after restart");
    }
    // Snapshots that failed for lack of space, or died with the process, leave nothing.
    let leftovers = wait_no_temporaries(&data.join("version-2"));
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    eprintln!(
        "full disk ({}): {} acknowledged writes all there after restart, {} refused ones absent",
        cfg.replace('\n', " "),
        acked.len(),
        refused.len()
    );
    drop(zk);
    drop(gk);
}

// ---------------------------------------------------------------------------------------
// 6. A failed fsync
// ---------------------------------------------------------------------------------------

/// An LD_PRELOAD library whose `fdatasync` fails with EIO once each time the file named by
/// `GK_FAIL_FSYNC_FLAG` exists (the failing call removes it). `Err` when it cannot be built.
fn failing_fsync_shim(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("failsync.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *flag = getenv("GK_FAIL_FSYNC_FLAG");
    if (flag && unlink(flag) == 0) { errno = EIO; return -1; }
    return real(fd);
}
"#,
    )
    .map_err(|e| e.to_string())?;
    let lib = dir.join("libfailsync.so");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(lib)
}

/// When an fsync fails (EIO), the writes of that batch are refused with SystemError and
/// the server goes on. The refused batch's bytes must not stay in the log behind the next,
/// shorter batch: after a crash they would be replayed, and a write the client was told
/// had failed would be there.
#[test]
fn failed_fsync_leaves_no_refused_write_behind() {
    let base = tempfile::tempdir().expect("tempdir");
    // Without the shim no fsync can fail and this test would prove nothing: it fails.
    let shim = failing_fsync_shim(base.path()).unwrap_or_else(|why| {
        panic!("this test needs a C compiler for its fdatasync shim (./scripts/test.sh installs gcc): {why}")
    });
    let data = base.path().join("data");
    let flag = base.path().join("fail-next-fsync");
    let addr = support::java_zk::free_loopback_addr();
    let cfg_path = base.path().join("zoo.cfg");
    let cfg = "preAllocSize=64";
    std::fs::write(
        &cfg_path,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nclientPortAddress={}\n{cfg}\n",
            data.display(),
            addr.port(),
            addr.ip()
        ),
    )
    .expect("zoo.cfg");
    let log_path = base.path().join("geokeeper.log");
    let mut child = std::process::Command::new(support::gk::binary())
        .arg("serve")
        .arg("--config")
        .arg(&cfg_path)
        .env("LD_PRELOAD", &shim)
        .env("GK_FAIL_FSYNC_FLAG", &flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("spawn geokeeper");
    let t = Instant::now();
    let mut zk = loop {
        match RawZk::connect(addr, 0, &[0; 16], 0, 30000) {
            Ok(zk) if zk.response.time_out > 0 => break zk,
            _ if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                panic!(
                    "geokeeper did not start: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        }
    };
    create(&mut zk, "/f", b"");
    // Eight creates in flight when the fsync fails, then one of the same size.
    std::fs::write(&flag, b"").expect("flag");
    let xids: Vec<i32> = (1..=8)
        .map(|i| {
            let xid = zk.take_xid();
            zk.send(
                xid,
                OpCode::Create2,
                &create_req(&format!("/f/n{i:02}"), b"same size", 0),
            )
            .expect("send");
            xid
        })
        .collect();
    let mut refused = Vec::new();
    let mut acked = Vec::new();
    for (i, xid) in xids.into_iter().enumerate() {
        let f = zk.await_reply(xid).reply.expect("reply");
        let p = format!("/f/n{:02}", i + 1);
        match f.header.err {
            0 => acked.push(p),
            e if e == ErrorCode::SystemError.code() => refused.push(p),
            e => panic!("create {p}: error {e}"),
        }
    }
    assert!(!flag.exists(), "no fsync ran");
    assert!(!refused.is_empty(), "the failed fsync refused nothing");
    create(&mut zk, "/f/n09", b"same size");
    acked.push("/f/n09".into());
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("the transaction log failed"), "{log}");

    let gk = Geokeeper::start_on(&data, cfg);
    let mut zk = session(gk.addr, 30000);
    let mut kids = children(&mut zk, "/f");
    kids.sort();
    let want: Vec<String> = acked.iter().map(|p| p[3..].to_string()).collect();
    assert_eq!(kids, want, "after a crash; refused were {refused:?}");
    eprintln!(
        "failed fsync: {} refused writes stayed out after a crash, {} acknowledged there",
        refused.len(),
        acked.len()
    );
}
