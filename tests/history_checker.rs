//! The history checker of `support::history` on histories built by hand and by a seeded
//! simulator: what ZooKeeper allows must pass (concurrent writes in either order, writes
//! whose outcome the client never learnt, reads that overlap writes or lag behind them),
//! and what it forbids must be reported, naming the operations (a stale read after the
//! session's own write or after a sync, a lost write, a value nobody wrote, a zxid going
//! back, new data before the watch event).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::history::*;

fn st(version: i32, czxid: i64, mzxid: i64) -> Stat {
    Stat::new(version, czxid, mzxid)
}

// Requests.

fn create(path: &str, data: &str) -> Op {
    Op::create(path, data)
}

fn set_data(path: &str, data: &str, version: i32) -> Op {
    Op::set_data(path, data, version)
}

fn delete(path: &str, version: i32) -> Op {
    Op::delete(path, version)
}

fn get(path: &str) -> Op {
    Op::get_data(path, false)
}

fn get_watch(path: &str) -> Op {
    Op::get_data(path, true)
}

fn exists(path: &str) -> Op {
    Op::exists(path, false)
}

fn exists_watch(path: &str) -> Op {
    Op::exists(path, true)
}

fn sync(path: &str) -> Op {
    Op::sync(path)
}

// Outcomes.

fn created(zxid: i64) -> Outcome {
    Outcome::Ok(Reply::Created(Some(st(0, zxid, zxid))))
}

fn set(version: i32, czxid: i64, mzxid: i64) -> Outcome {
    Outcome::Ok(Reply::Set(st(version, czxid, mzxid)))
}

fn data(d: &str, version: i32, czxid: i64, mzxid: i64) -> Outcome {
    Outcome::Ok(Reply::Data(
        d.as_bytes().to_vec(),
        st(version, czxid, mzxid),
    ))
}

fn stat(version: i32, czxid: i64, mzxid: i64) -> Outcome {
    Outcome::Ok(Reply::Exists(Some(st(version, czxid, mzxid))))
}

/// Any other definite error: no effect, no constraint.
fn other(name: &str) -> Outcome {
    Outcome::Err(ZkError::Other(name.to_owned()))
}

const NONE: Outcome = Outcome::Ok(Reply::Exists(None));
const DELETED: Outcome = Outcome::Ok(Reply::Deleted);
const SYNCED: Outcome = Outcome::Ok(Reply::Synced);
const NO_NODE: Outcome = Outcome::Err(ZkError::NoNode);
const NODE_EXISTS: Outcome = Outcome::Err(ZkError::NodeExists);
const BAD_VERSION: Outcome = Outcome::Err(ZkError::BadVersion);
const NOT_EMPTY: Outcome = Outcome::Err(ZkError::NotEmpty);
const UNKNOWN: Outcome = Outcome::Unknown;

/// A hand-built history on a clock of integer ticks. Replies and events are recorded in
/// call order, which is the order each session received them.
struct Script {
    h: History,
}

impl Script {
    fn new() -> Script {
        Script { h: History::new() }
    }

    /// An operation invoked at `from` and answered at `to`.
    fn op(&self, s: SessionId, op: Op, from: u64, to: u64, out: Outcome, zxid: i64) -> OpId {
        let id = self.h.invoke_at(s, op, from);
        let zxid = (zxid != 0).then_some(zxid);
        self.h.complete_at(id, out, zxid, to);
        id
    }

    fn start(&self, s: SessionId, op: Op, from: u64) -> OpId {
        self.h.invoke_at(s, op, from)
    }

    fn end(&self, id: OpId, out: Outcome, zxid: i64, to: u64) {
        self.h.complete_at(id, out, (zxid != 0).then_some(zxid), to);
    }

    fn event(&self, s: SessionId, path: &str, kind: EventKind) {
        self.h.event(s, path, kind);
    }

    fn passes(&self) -> Summary {
        match self.h.check() {
            Ok(summary) => summary,
            Err(v) => panic!("{}history:\n{}", render(&v), self.h.dump()),
        }
    }

    /// Checks that the history breaks `g`, and that the report names `ops`.
    fn breaks(&self, g: Guarantee, ops: &[OpId]) -> Vec<Violation> {
        let v = match self.h.check() {
            Ok(s) => panic!(
                "expected a violation of {g}, passed: {s}\n{}",
                self.h.dump()
            ),
            Err(v) => v,
        };
        let names_all = |x: &Violation| {
            ops.iter()
                .all(|id| x.ops.contains(id) && x.message.contains(&format!("{id} ")))
        };
        assert!(
            v.iter().any(|x| x.guarantee == g && names_all(x)),
            "expected a violation of {g} naming {ops:?}, got:\n{}",
            render(&v)
        );
        v
    }
}

// -- linearizable histories pass ----------------------------------------------------------

#[test]
fn one_session_doing_everything_in_turn_passes() {
    let s = Script::new();
    s.op(1, create("/a", "a0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "a1", -1), 20, 30, set(1, 1, 2), 2);
    s.op(1, get("/a"), 40, 50, data("a1", 1, 1, 2), 2);
    s.op(1, exists("/a"), 60, 70, stat(1, 1, 2), 2);
    s.op(1, set_data("/a", "a2", 1), 80, 90, set(2, 1, 3), 3);
    s.op(1, sync("/a"), 95, 96, SYNCED, 3);
    s.op(1, delete("/a", 2), 100, 110, DELETED, 4);
    s.op(1, get("/a"), 120, 130, NO_NODE, 4);
    s.op(1, exists("/a"), 140, 150, NONE, 4);
    let summary = s.passes();
    assert_eq!(summary.of(OpKind::SetData).ok, 2);
    assert_eq!(
        summary.of(OpKind::GetData),
        KindCount {
            ok: 1,
            failed: 1,
            unknown: 0
        }
    );
    assert_eq!(summary.ops(), 9);
    assert_eq!((summary.paths, summary.sessions), (1, 1));
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for first_wins in [false, true] {
        let s = Script::new();
        s.op(1, create("/a", "a0"), 0, 10, created(1), 1);
        // s1 invoked first, s2 answered first: either order of effect is fine.
        let x = s.start(1, set_data("/a", "x", -1), 20);
        let y = s.start(2, set_data("/a", "y", -1), 25);
        let (vx, vy) = if first_wins { (1, 2) } else { (2, 1) };
        s.end(y, set(vy, 1, 1 + vy as i64), 1 + vy as i64, 40);
        s.end(x, set(vx, 1, 1 + vx as i64), 1 + vx as i64, 50);
        let last = if first_wins { "y" } else { "x" };
        s.op(3, get("/a"), 60, 70, data(last, 2, 1, 3), 3);
        s.passes();
    }
}

#[test]
fn conditional_writes_racing_for_one_version_pass_when_one_fails() {
    let s = Script::new();
    s.op(1, create("/a", "a0"), 0, 10, created(1), 1);
    let x = s.start(1, set_data("/a", "x", 0), 20);
    let y = s.start(2, set_data("/a", "y", 0), 21);
    s.end(y, BAD_VERSION, 3, 40);
    s.end(x, set(1, 1, 2), 2, 41);
    s.op(2, get("/a"), 50, 60, data("x", 1, 1, 2), 3);
    s.passes();
}

#[test]
fn reads_overlapping_a_write_may_see_the_old_or_the_new_value() {
    let s = Script::new();
    s.op(1, create("/a", "old"), 0, 10, created(1), 1);
    let w = s.start(1, set_data("/a", "new", -1), 20);
    s.op(2, get("/a"), 22, 30, data("new", 1, 1, 2), 2);
    s.op(3, get("/a"), 25, 35, data("old", 0, 1, 1), 1);
    s.end(w, set(1, 1, 2), 2, 50);
    s.passes();
}

/// A follower serves reads from its own copy: without a sync, another session may read
/// an older state than a write already acknowledged elsewhere.
#[test]
fn stale_read_by_another_session_without_sync_passes() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "v1", -1), 20, 30, set(1, 1, 2), 2);
    s.op(2, get("/a"), 40, 50, data("v0", 0, 1, 1), 1);
    s.op(2, get("/a"), 60, 70, data("v0", 0, 1, 1), 1);
    s.op(2, get("/a"), 80, 90, data("v1", 1, 1, 2), 2);
    s.op(3, exists("/a"), 95, 99, NONE, 0);
    s.passes();
}

#[test]
fn unknown_write_that_took_effect_passes() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "u", -1), 20, 30, UNKNOWN, 0);
    // Seen long after the client gave up on it, with the zxid a read reports.
    s.op(2, get("/a"), 200, 210, data("u", 1, 1, 7), 7);
    s.op(2, set_data("/a", "w", 1), 220, 230, set(2, 1, 8), 8);
    s.passes();
}

#[test]
fn unknown_write_that_never_took_effect_passes() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "u", -1), 20, 30, UNKNOWN, 0);
    s.op(1, delete("/a", -1), 25, 26, UNKNOWN, 0);
    s.op(2, get("/a"), 40, 50, data("v0", 0, 1, 1), 1);
    s.op(2, set_data("/a", "w", -1), 60, 70, set(1, 1, 3), 3);
    s.op(2, get("/a"), 80, 90, data("w", 1, 1, 3), 3);
    s.passes();
}

/// Nobody read its data, but the next write's version counts it.
#[test]
fn unknown_write_seen_only_through_a_later_version_passes() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "u", -1), 20, 30, UNKNOWN, 0);
    s.op(2, set_data("/a", "w", -1), 40, 50, set(2, 1, 3), 3);
    s.op(2, get("/a"), 60, 70, data("w", 2, 1, 3), 3);
    s.passes();
}

#[test]
fn retried_create_finding_its_own_node_passes() {
    let s = Script::new();
    s.op(1, create("/a", "c"), 0, 10, UNKNOWN, 0);
    s.op(1, create("/a", "c"), 20, 30, NODE_EXISTS, 6);
    s.op(1, get("/a"), 40, 50, data("c", 0, 5, 5), 6);
    s.passes();
}

#[test]
fn failed_writes_consistent_with_the_state_pass() {
    let s = Script::new();
    s.op(1, create("/p/a", "a"), 0, 5, NO_NODE, 1);
    s.op(1, create("/a", "a"), 10, 20, created(2), 2);
    s.op(1, set_data("/a", "b", 5), 30, 40, BAD_VERSION, 3);
    s.op(2, delete("/a", 3), 30, 40, BAD_VERSION, 4);
    s.op(2, create("/a", "c"), 50, 60, NODE_EXISTS, 5);
    s.op(2, delete("/a", -1), 62, 64, NOT_EMPTY, 6);
    s.op(1, set_data("/a", "d", -1), 55, 65, other("NoAuth"), 6);
    s.op(1, delete("/a", 0), 70, 80, DELETED, 7);
    s.op(1, set_data("/a", "e", -1), 90, 100, NO_NODE, 8);
    s.op(2, delete("/a", -1), 90, 100, NO_NODE, 9);
    s.passes();
}

#[test]
fn deleted_and_recreated_nodes_pass() {
    let s = Script::new();
    s.op(1, create("/a", "same"), 0, 10, created(1), 1);
    s.op(2, get("/a"), 15, 18, data("same", 0, 1, 1), 1);
    s.op(1, delete("/a", -1), 20, 30, DELETED, 2);
    s.op(1, create("/a", "same"), 40, 50, created(3), 3);
    s.op(1, get("/a"), 60, 70, data("same", 0, 3, 3), 3);
    // Session 2 lags behind but never goes back.
    s.op(2, exists("/a"), 60, 70, stat(0, 1, 1), 1);
    s.op(2, exists("/a"), 80, 90, NONE, 2);
    s.op(2, get("/a"), 100, 110, data("same", 0, 3, 3), 3);
    s.passes();
}

#[test]
fn watch_event_before_the_new_data_passes() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(2, get_watch("/a"), 20, 30, data("v0", 0, 1, 1), 1);
    s.op(2, exists_watch("/b"), 20, 30, NONE, 1);
    s.op(1, set_data("/a", "v1", -1), 40, 50, set(1, 1, 2), 2);
    s.op(1, create("/b", "b"), 40, 50, created(3), 3);
    s.event(2, "/a", EventKind::NodeDataChanged);
    s.op(2, get_watch("/a"), 60, 70, data("v1", 1, 1, 2), 3);
    s.event(2, "/b", EventKind::NodeCreated);
    s.op(2, exists("/b"), 60, 70, stat(0, 3, 3), 3);
    // The watch set again at v1 is still pending, and nothing changed since.
    s.op(2, get("/a"), 80, 90, data("v1", 1, 1, 2), 3);
    s.passes();
}

#[test]
fn read_after_sync_seeing_acknowledged_writes_passes() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "v1", -1), 20, 30, set(1, 1, 2), 2);
    s.op(2, sync("/a"), 40, 50, SYNCED, 2);
    s.op(2, get("/a"), 60, 70, data("v1", 1, 1, 2), 2);
    // A write that overlapped the sync may or may not be seen.
    let w = s.start(1, set_data("/a", "v2", -1), 45);
    s.op(3, sync("/a"), 46, 47, SYNCED, 2);
    s.op(3, get("/a"), 48, 49, data("v1", 1, 1, 2), 2);
    s.end(w, set(2, 1, 3), 3, 55);
    s.passes();
}

#[test]
fn node_declared_before_the_history_passes() {
    let s = Script::new();
    s.h.initial("/a", "init", st(4, 10, 12));
    s.op(1, get("/a"), 0, 10, data("init", 4, 10, 12), 20);
    s.op(1, set_data("/a", "x", 4), 20, 30, set(5, 10, 21), 21);
    s.passes();
}

#[test]
fn session_moving_to_another_replica_keeps_its_zxids() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(5), 5);
    s.op(1, get("/a"), 20, 30, data("v0", 0, 5, 5), 7);
    // Connection cut; the session resumes on a replica that has caught up to 0x7.
    s.op(1, get("/a"), 40, 50, UNKNOWN, 0);
    s.op(1, exists("/a"), 60, 70, stat(0, 5, 5), 7);
    s.op(1, exists("/a"), 80, 90, stat(0, 5, 5), 9);
    s.passes();
}

#[test]
fn recorder_is_shared_across_threads() {
    // Sessions on threads against one register behind a lock: linearizable by construction.
    struct Node {
        zxid: i64,
        node: Option<(Vec<u8>, Stat)>,
    }
    let h = Arc::new(History::new());
    let server = Arc::new(Mutex::new(Node {
        zxid: 0,
        node: None,
    }));
    let threads: Vec<_> = (0..4)
        .map(|t: i64| {
            let (h, server) = (h.clone(), server.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                for n in 0..150 {
                    let d = format!("t{t}-{n}").into_bytes();
                    let op = match rng.random_range(0..4) {
                        0 => Op::create("/a", d.clone()),
                        1 => Op::set_data("/a", d.clone(), -1),
                        2 => delete("/a", -1),
                        _ => get("/a"),
                    };
                    let id = h.invoke(t, op.clone());
                    let (out, zxid) = {
                        let mut s = server.lock().unwrap();
                        let zxid = s.zxid + 1;
                        let out = match (&op, &s.node) {
                            (Op::Create { .. }, None) => {
                                s.node = Some((d, st(0, zxid, zxid)));
                                created(zxid)
                            }
                            (Op::Create { .. }, Some(_)) => NODE_EXISTS,
                            (Op::SetData { .. }, Some((_, old))) => {
                                let new = st(old.version + 1, old.czxid, zxid);
                                s.node = Some((d, new));
                                Outcome::Ok(Reply::Set(new))
                            }
                            (Op::Delete { .. }, Some(_)) => {
                                s.node = None;
                                DELETED
                            }
                            (Op::GetData { .. }, Some((d, st))) => {
                                Outcome::Ok(Reply::Data(d.clone(), *st))
                            }
                            _ => NO_NODE,
                        };
                        if op.kind() != OpKind::GetData {
                            s.zxid = zxid;
                        }
                        (out, s.zxid)
                    };
                    h.complete(id, out, Some(zxid));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(h.len(), 600);
    let summary = h.check().unwrap_or_else(|v| panic!("{}", render(&v)));
    assert_eq!(summary.ops(), 600);
    assert_eq!(summary.sessions, 4);
}

// -- violations are reported, naming the operations ----------------------------------------

#[test]
fn stale_read_after_the_sessions_own_write_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let w = s.op(1, set_data("/a", "v1", -1), 20, 30, set(1, 1, 2), 2);
    let r = s.op(1, get("/a"), 40, 50, data("v0", 0, 1, 1), 2);
    s.breaks(Guarantee::SessionOrder, &[w, r]);
    s.breaks(Guarantee::Linearizable, &[r]);
}

#[test]
fn stale_read_after_sync_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let w = s.op(1, set_data("/a", "v1", -1), 20, 30, set(1, 1, 2), 2);
    let y = s.op(2, sync("/a"), 40, 50, SYNCED, 2);
    let r = s.op(2, get("/a"), 60, 70, data("v0", 0, 1, 1), 2);
    s.breaks(Guarantee::SyncedRead, &[w, y, r]);
    s.breaks(Guarantee::Linearizable, &[r]);
}

#[test]
fn no_node_after_sync_following_an_acknowledged_create_fails() {
    let s = Script::new();
    let w = s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let y = s.op(2, sync("/a"), 20, 30, SYNCED, 1);
    let r = s.op(2, exists("/a"), 40, 50, NONE, 1);
    s.breaks(Guarantee::SyncedRead, &[w, y, r]);
}

#[test]
fn lost_write_fails() {
    // The second write's reply says version 1: the first, acknowledged, was lost.
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "x", -1), 20, 30, set(1, 1, 2), 2);
    let lost = s.op(2, set_data("/a", "y", -1), 40, 50, set(1, 1, 3), 3);
    s.breaks(Guarantee::Linearizable, &[lost]);
}

#[test]
fn conditional_write_on_an_overwritten_version_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "x", 0), 20, 30, set(1, 1, 2), 2);
    let w = s.op(2, set_data("/a", "y", 0), 40, 50, set(1, 1, 3), 3);
    s.breaks(Guarantee::Linearizable, &[w]);
}

/// The zxids of this history look fine (increasing, each stat its own), and data and
/// versions still admit no order: a create succeeds on a node that exists.
#[test]
fn second_create_without_a_delete_fails_even_with_consistent_zxids() {
    let s = Script::new();
    s.op(1, create("/a", "x"), 0, 10, created(1), 1);
    let c = s.op(2, create("/a", "y"), 20, 30, created(2), 2);
    s.breaks(Guarantee::Linearizable, &[c]);
}

#[test]
fn read_of_a_value_no_write_produced_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "v1", -1), 20, 30, set(1, 1, 2), 2);
    let r = s.op(2, get("/a"), 40, 50, data("v9", 1, 1, 2), 2);
    s.breaks(Guarantee::Linearizable, &[r]);
}

#[test]
fn read_from_the_future_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let r = s.op(2, get("/a"), 20, 30, data("v1", 1, 1, 2), 2);
    s.op(1, set_data("/a", "v1", -1), 40, 50, set(1, 1, 2), 2);
    s.breaks(Guarantee::Linearizable, &[r]);
}

#[test]
fn unknown_write_cannot_explain_a_read_before_its_invocation() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let r = s.op(2, get("/a"), 20, 30, data("u", 1, 1, 2), 2);
    s.op(1, set_data("/a", "u", -1), 40, 50, UNKNOWN, 0);
    s.breaks(Guarantee::Linearizable, &[r]);
}

#[test]
fn stat_of_another_incarnation_fails() {
    // Same data and version as the node created at 0x1, but the czxid of none.
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let r = s.op(2, exists("/a"), 20, 30, stat(0, 7, 7), 7);
    s.breaks(Guarantee::Linearizable, &[r]);
}

#[test]
fn bad_version_for_an_unconditional_write_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let w = s.op(1, set_data("/a", "x", -1), 20, 30, BAD_VERSION, 2);
    s.breaks(Guarantee::Linearizable, &[w]);
}

#[test]
fn reply_zxid_going_back_across_a_move_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(5), 5);
    let a = s.op(1, get("/a"), 20, 30, data("v0", 0, 5, 5), 0x10);
    // Reconnected to a replica that is behind what the session already saw.
    let b = s.op(1, exists("/b"), 40, 50, NONE, 0xc);
    s.breaks(Guarantee::SessionOrder, &[a, b]);
}

#[test]
fn read_going_back_after_a_move_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    s.op(1, set_data("/a", "v1", -1), 20, 30, set(1, 1, 2), 2);
    let a = s.op(2, get("/a"), 40, 50, data("v1", 1, 1, 2), 0);
    let b = s.op(2, get("/a"), 60, 70, data("v0", 0, 1, 1), 0);
    s.breaks(Guarantee::SessionOrder, &[a, b]);
    s.breaks(Guarantee::Linearizable, &[b]);
}

#[test]
fn no_node_after_seeing_the_node_with_no_delete_anywhere_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let a = s.op(2, exists("/a"), 20, 30, stat(0, 1, 1), 1);
    let b = s.op(2, get("/a"), 40, 50, NO_NODE, 1);
    s.breaks(Guarantee::SessionOrder, &[a, b]);
    s.breaks(Guarantee::Linearizable, &[b]);
}

#[test]
fn new_data_before_the_watch_event_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let w = s.op(2, get_watch("/a"), 20, 30, data("v0", 0, 1, 1), 1);
    s.op(1, set_data("/a", "v1", -1), 40, 50, set(1, 1, 2), 2);
    let r = s.op(2, get("/a"), 60, 70, data("v1", 1, 1, 2), 2);
    s.event(2, "/a", EventKind::NodeDataChanged);
    let v = s.breaks(Guarantee::WatchBeforeData, &[w, r]);
    assert_eq!(v.len(), 1, "{}", render(&v));
}

#[test]
fn node_created_before_the_exists_watch_event_fails() {
    let s = Script::new();
    let w = s.op(2, exists_watch("/a"), 0, 5, NONE, 0);
    s.op(1, create("/a", "v0"), 10, 20, created(1), 1);
    // The session's own create fails on the new node before the NodeCreated event.
    let r = s.op(2, create("/a", "mine"), 30, 40, NODE_EXISTS, 2);
    s.event(2, "/a", EventKind::NodeCreated);
    s.breaks(Guarantee::WatchBeforeData, &[w, r]);
}

#[test]
fn own_write_answered_before_the_watch_event_fails() {
    let s = Script::new();
    s.op(1, create("/a", "v0"), 0, 10, created(1), 1);
    let w = s.op(1, exists_watch("/a"), 20, 30, stat(0, 1, 1), 1);
    // A children event does not fire a data watch.
    s.event(1, "/a", EventKind::NodeChildrenChanged);
    let r = s.op(1, delete("/a", -1), 40, 50, DELETED, 2);
    s.event(1, "/a", EventKind::NodeDeleted);
    s.breaks(Guarantee::WatchBeforeData, &[w, r]);
}

#[test]
fn reply_of_the_wrong_kind_and_double_completion_are_reported() {
    let s = Script::new();
    let a = s.op(1, get("/a"), 0, 10, NONE, 0);
    s.end(a, NO_NODE, 0, 20);
    let v = s.breaks(Guarantee::WellFormed, &[a]);
    assert!(
        v.iter().any(|v| v.message.contains("twice")),
        "{}",
        render(&v)
    );
}

#[test]
fn search_limit_is_reported_not_passed() {
    let s = Script::new();
    for n in 0..10 {
        let d = n.to_string();
        s.op(1, set_data("/a", &d, -1), n * 10, n * 10 + 5, UNKNOWN, 0);
    }
    s.op(1, create("/a", "c"), 200, 210, created(1), 1);
    let limits = Limits {
        max_steps_per_path: 1,
    };
    let v = s.h.check_with(limits).expect_err("search limit");
    assert_eq!(v[0].guarantee, Guarantee::SearchLimit, "{}", render(&v));
    s.passes();
}

// -- seeded random histories ----------------------------------------------------------------

/// One simulated operation as its client saw it: its interval, what it was told, and the
/// zxid of the reply.
#[derive(Clone, Debug)]
struct Sim {
    session: SessionId,
    op: Op,
    invoke: u64,
    complete: u64,
    outcome: Outcome,
    zxid: Option<i64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Create,
    Set,
    SetIfVersion,
    Delete,
    DeleteIfVersion,
    GetData,
    Exists,
    Sync,
}

type NodeState = Option<(Vec<u8>, Stat)>;

/// Per path, every state with the zxid that made it.
type PathStates = HashMap<String, Vec<(i64, NodeState)>>;

struct Params {
    sessions: usize,
    per_session: usize,
    paths: usize,
    /// Percentage of operations whose outcome the client does not learn.
    unknown: u32,
}

/// A seeded run against a simulated ZooKeeper: writes take effect in one order (each at a
/// moment within its interval, or for an unknown outcome at any moment after invocation,
/// or never); a read returns the state at some zxid between what its session already saw
/// (its own writes, earlier reads, a sync) and the present, as a lagging replica would.
/// Returns the operations and, per path, every state with the zxid that made it.
fn simulate(seed: u64, p: &Params) -> (Vec<Sim>, PathStates) {
    let mut rng = StdRng::seed_from_u64(seed);
    let paths: Vec<String> = (0..p.paths).map(|k| format!("/p{k}")).collect();
    struct Plan {
        session: usize,
        shape: Shape,
        path: String,
        data: Vec<u8>,
        invoke: u64,
        complete: u64,
        unknown: bool,
        effect: Option<u64>,
    }
    let mut plans = Vec::new();
    for s in 0..p.sessions {
        let mut t = rng.random_range(0..40u64);
        for n in 0..p.per_session {
            let invoke = t + rng.random_range(0..20);
            let complete = invoke + rng.random_range(2..80);
            t = complete;
            let shape = match rng.random_range(0..100) {
                0..12 => Shape::Create,
                12..32 => Shape::Set,
                32..40 => Shape::SetIfVersion,
                40..47 => Shape::Delete,
                47..52 => Shape::DeleteIfVersion,
                52..80 => Shape::GetData,
                80..94 => Shape::Exists,
                _ => Shape::Sync,
            };
            let unknown = rng.random_range(0..100) < p.unknown;
            let effect = if !unknown {
                Some(rng.random_range(invoke + 1..complete))
            } else if rng.random_bool(0.5) {
                Some(invoke + rng.random_range(1..300))
            } else {
                None
            };
            plans.push(Plan {
                session: s,
                shape,
                path: paths[rng.random_range(0..paths.len())].clone(),
                data: format!("s{s}-{n}").into_bytes(),
                invoke,
                complete,
                unknown,
                effect,
            });
        }
    }
    let mut order: Vec<usize> = (0..plans.len())
        .filter(|&k| plans[k].effect.is_some())
        .collect();
    order.sort_by_key(|&k| (plans[k].effect, k));

    let mut zxid = 0i64;
    let mut states: PathStates = paths.iter().map(|p| (p.clone(), vec![(0, None)])).collect();
    let mut floor = vec![0i64; p.sessions];
    let mut known_version: Vec<HashMap<String, i32>> = vec![HashMap::new(); p.sessions];
    let mut sims: Vec<Option<Sim>> = vec![None; plans.len()];
    for k in order {
        let pl = &plans[k];
        let s = pl.session;
        let history = states.get_mut(&pl.path).unwrap();
        let current = history.last().unwrap().1.clone();
        let guess = |rng: &mut StdRng| {
            if rng.random_bool(0.7) {
                known_version[s].get(&pl.path).copied().unwrap_or(0)
            } else {
                rng.random_range(0..4)
            }
        };
        let (op, outcome, reply_zxid) = match pl.shape {
            Shape::Create
            | Shape::Set
            | Shape::SetIfVersion
            | Shape::Delete
            | Shape::DeleteIfVersion => {
                zxid += 1;
                let expected = match pl.shape {
                    Shape::SetIfVersion | Shape::DeleteIfVersion => guess(&mut rng),
                    _ => -1,
                };
                let fits = |st: &Stat| expected == -1 || expected == st.version;
                let (op, outcome, next) = match (pl.shape, &current) {
                    (Shape::Create, None) => {
                        let st = st(0, zxid, zxid);
                        (
                            Op::create(&pl.path, pl.data.clone()),
                            Outcome::Ok(Reply::Created(Some(st))),
                            Some(Some((pl.data.clone(), st))),
                        )
                    }
                    (Shape::Create, Some(_)) => {
                        (Op::create(&pl.path, pl.data.clone()), NODE_EXISTS, None)
                    }
                    (Shape::Set | Shape::SetIfVersion, state) => {
                        let op = Op::set_data(&pl.path, pl.data.clone(), expected);
                        match state {
                            None => (op, NO_NODE, None),
                            Some((_, old)) if !fits(old) => (op, BAD_VERSION, None),
                            Some((_, old)) => {
                                let st = st(old.version + 1, old.czxid, zxid);
                                let next = Some(Some((pl.data.clone(), st)));
                                (op, Outcome::Ok(Reply::Set(st)), next)
                            }
                        }
                    }
                    (_, state) => {
                        let op = Op::delete(&pl.path, expected);
                        match state {
                            None => (op, NO_NODE, None),
                            Some((_, old)) if !fits(old) => (op, BAD_VERSION, None),
                            Some(_) => (op, DELETED, Some(None)),
                        }
                    }
                };
                if let Some(next) = next {
                    history.push((zxid, next));
                }
                if !pl.unknown {
                    floor[s] = zxid;
                    if let Outcome::Ok(Reply::Created(Some(st)) | Reply::Set(st)) = &outcome {
                        known_version[s].insert(pl.path.clone(), st.version);
                    }
                }
                (op, outcome, zxid)
            }
            Shape::GetData | Shape::Exists => {
                // A lagging replica: any zxid between the session's floor and now.
                let z = if rng.random_bool(0.5) {
                    zxid
                } else {
                    rng.random_range(floor[s]..=zxid)
                };
                floor[s] = z;
                let at = history.partition_point(|(hz, _)| *hz <= z) - 1;
                let state = history[at].1.clone();
                if let Some((_, st)) = &state {
                    known_version[s].insert(pl.path.clone(), st.version);
                }
                let outcome = match (pl.shape, state) {
                    (Shape::GetData, Some((d, st))) => Outcome::Ok(Reply::Data(d, st)),
                    (Shape::GetData, None) => NO_NODE,
                    (_, state) => Outcome::Ok(Reply::Exists(state.map(|(_, st)| st))),
                };
                let op = if pl.shape == Shape::GetData {
                    Op::get_data(&pl.path, false)
                } else {
                    Op::exists(&pl.path, false)
                };
                (op, outcome, z)
            }
            Shape::Sync => {
                floor[s] = zxid;
                (Op::sync(&pl.path), SYNCED, zxid)
            }
        };
        sims[k] = Some(Sim {
            session: s as SessionId,
            op,
            invoke: pl.invoke,
            complete: pl.complete,
            outcome: if pl.unknown { UNKNOWN } else { outcome },
            zxid: (!pl.unknown).then_some(reply_zxid),
        });
    }
    // Operations that never took effect: unknown writes and reads the client gave up on.
    let out = plans
        .iter()
        .zip(sims)
        .map(|(pl, sim)| {
            sim.unwrap_or_else(|| Sim {
                session: pl.session as SessionId,
                op: match pl.shape {
                    Shape::Create => Op::create(&pl.path, pl.data.clone()),
                    Shape::Set | Shape::SetIfVersion => Op::set_data(&pl.path, pl.data.clone(), -1),
                    Shape::Delete | Shape::DeleteIfVersion => Op::delete(&pl.path, -1),
                    Shape::GetData => Op::get_data(&pl.path, false),
                    Shape::Exists => Op::exists(&pl.path, false),
                    Shape::Sync => Op::sync(&pl.path),
                },
                invoke: pl.invoke,
                complete: pl.complete,
                outcome: UNKNOWN,
                zxid: None,
            })
        })
        .collect();
    (out, states)
}

/// Records the simulated operations; replies in completion order, as they arrived.
fn record(sims: &[Sim]) -> History {
    let h = History::new();
    let ids: Vec<OpId> = sims
        .iter()
        .map(|s| h.invoke_at(s.session, s.op.clone(), s.invoke))
        .collect();
    let mut order: Vec<usize> = (0..sims.len()).collect();
    order.sort_by_key(|&k| (sims[k].complete, k));
    for k in order {
        h.complete_at(
            ids[k],
            sims[k].outcome.clone(),
            sims[k].zxid,
            sims[k].complete,
        );
    }
    h
}

fn params(rng: &mut StdRng) -> Params {
    Params {
        sessions: rng.random_range(2..6),
        per_session: rng.random_range(10..60),
        paths: rng.random_range(1..4),
        unknown: rng.random_range(0..12),
    }
}

#[test]
fn random_linearizable_histories_pass() {
    let mut steps = 0;
    for seed in 0..200 {
        let p = params(&mut StdRng::seed_from_u64(seed ^ 0xfeed));
        let (sims, _) = simulate(seed, &p);
        let h = record(&sims);
        match h.check() {
            Ok(summary) => steps += summary.search_steps,
            Err(v) => panic!("seed {seed}: {}history:\n{}", render(&v), h.dump()),
        }
    }
    println!("200 histories, {steps} search steps");
}

/// One corruption of a linearizable history, each of which must be reported, naming the
/// operation changed: a read returning data nobody wrote, a read returning an older state
/// than its session had already seen, a write moved after one with a higher zxid, or (in a
/// run where every outcome is known, so nothing else can explain it) a delete moved after
/// the create that followed it, which only the search can tell.
#[test]
fn random_histories_with_one_corruption_fail() {
    let mut tried = [0; 4];
    for seed in 0..600 {
        let p = params(&mut StdRng::seed_from_u64(seed ^ 0xfeed));
        let (sims, states) = simulate(seed, &p);
        let (all_known, _) = simulate(seed, &Params { unknown: 0, ..p });
        let mut rng = StdRng::seed_from_u64(seed ^ 0xbad);
        let reads: Vec<usize> = (0..sims.len())
            .filter(|&k| matches!(sims[k].outcome, Outcome::Ok(Reply::Data(..))))
            .collect();
        for (variant, count) in tried.iter_mut().enumerate() {
            let mut bad = if variant == 3 {
                all_known.clone()
            } else {
                sims.clone()
            };
            let corrupted = match variant {
                0 if !reads.is_empty() => {
                    let k = reads[rng.random_range(0..reads.len())];
                    if let Outcome::Ok(Reply::Data(d, _)) = &mut bad[k].outcome {
                        *d = b"nobody wrote this".to_vec();
                    }
                    k
                }
                1 => match older_than_seen(&sims, &reads, &states) {
                    Some((k, outcome)) => {
                        bad[k].outcome = outcome;
                        k
                    }
                    None => continue,
                },
                2 => match reordered_write(&sims) {
                    Some((w, next)) => {
                        bad[w].invoke = sims[next].complete + 1;
                        bad[w].complete = bad[w].invoke + 1;
                        w
                    }
                    None => continue,
                },
                3 => match moved_delete(&all_known) {
                    Some((d, create)) => {
                        bad[d].invoke = all_known[create].complete + 1;
                        bad[d].complete = bad[d].invoke + 1;
                        // The search says where it got stuck: at the create.
                        create
                    }
                    None => continue,
                },
                _ => continue,
            };
            *count += 1;
            let h = record(&bad);
            match h.check() {
                Ok(_) => panic!(
                    "seed {seed}, corruption {variant}: #{corrupted} changed, passed:\n{}",
                    h.dump()
                ),
                Err(v) => assert!(
                    v.iter().any(|v| names(v, corrupted)),
                    "seed {seed}, corruption {variant}: the report does not name #{corrupted}:\n{}",
                    render(&v)
                ),
            }
        }
    }
    assert!(
        tried[0] > 100 && tried[1] > 100 && tried[2] > 30 && tried[3] > 10,
        "too few corrupted histories: {tried:?}"
    );
}

/// A read whose session had already seen (or written) version v ≥ 1 of the node it read,
/// with the state of version v−1 of that node in place of its result.
fn older_than_seen(sims: &[Sim], reads: &[usize], states: &PathStates) -> Option<(usize, Outcome)> {
    for &r in reads.iter().rev() {
        let Outcome::Ok(Reply::Data(_, now)) = &sims[r].outcome else {
            continue;
        };
        let path = sims[r].op.path();
        let seen = sims
            .iter()
            .filter(|s| {
                s.session == sims[r].session && s.op.path() == path && s.complete < sims[r].invoke
            })
            .filter_map(|s| match &s.outcome {
                Outcome::Ok(Reply::Data(_, st) | Reply::Set(st) | Reply::Exists(Some(st))) => {
                    Some(*st)
                }
                _ => None,
            })
            .filter(|st| st.czxid == now.czxid && st.version >= 1)
            .max_by_key(|st| st.version);
        let Some(seen) = seen else {
            continue;
        };
        let older = states[path].iter().find_map(|(_, state)| match state {
            Some((d, st)) if st.czxid == seen.czxid && st.version == seen.version - 1 => {
                Some(Outcome::Ok(Reply::Data(d.clone(), *st)))
            }
            _ => None,
        });
        if let Some(older) = older {
            return Some((r, older));
        }
    }
    None
}

/// Thousands of operations on one path, a dozen sessions, about a hundred unknown outcomes:
/// accepted quickly; and rejected quickly, naming the culprit, with one read returning data
/// nobody wrote, one returning a state older than its session had seen, one write moved
/// after one with a higher zxid, or (with every outcome known) one delete moved after the
/// create that followed it, which only the search can tell.
#[test]
fn thousands_of_operations_on_one_path_check_quickly() {
    let p = Params {
        sessions: 12,
        per_session: 300,
        paths: 1,
        unknown: 3,
    };
    let (sims, states) = simulate(7, &p);
    let h = record(&sims);
    let started = Instant::now();
    let summary = h.check().unwrap_or_else(|v| panic!("{}", render(&v)));
    let took = started.elapsed();
    println!("{summary} in {took:?}");
    assert_eq!(summary.ops(), 3600);
    assert!(took < Duration::from_secs(2), "{took:?}");

    let mut reads: Vec<usize> = (0..sims.len())
        .filter(|&k| matches!(sims[k].outcome, Outcome::Ok(Reply::Data(..))))
        .collect();
    reads.sort_by_key(|&k| sims[k].complete);
    for (what, k) in [
        ("late", reads[reads.len() - 1]),
        ("midway", reads[reads.len() / 2]),
    ] {
        let mut bad = sims.clone();
        if let Outcome::Ok(Reply::Data(d, _)) = &mut bad[k].outcome {
            *d = b"corrupt".to_vec();
        }
        let v = rejected_quickly(&bad, &format!("{what} read of data nobody wrote"));
        assert!(v
            .iter()
            .any(|v| v.guarantee == Guarantee::Linearizable && names(v, k)));
    }

    let mut bad = sims.clone();
    let (k, older) = older_than_seen(&sims, &reads, &states).expect("a read to make older");
    bad[k].outcome = older;
    let v = rejected_quickly(&bad, "read older than its session had seen");
    assert!(v
        .iter()
        .any(|v| v.guarantee == Guarantee::SessionOrder && names(v, k)));

    let (w, next) = reordered_write(&sims).expect("a write to move");
    let mut bad = sims.clone();
    bad[w].invoke = sims[next].complete + 1;
    bad[w].complete = bad[w].invoke + 1;
    let v = rejected_quickly(&bad, "write moved after the next one");
    assert!(v
        .iter()
        .any(|v| v.guarantee == Guarantee::Linearizable && names(v, w)));

    let (sims, _) = simulate(7, &Params { unknown: 0, ..p });
    let (d, create) = moved_delete(&sims).expect("a delete to move");
    let mut bad = sims.clone();
    bad[d].invoke = sims[create].complete + 1;
    bad[d].complete = bad[d].invoke + 1;
    let v = rejected_quickly(&bad, "delete moved after the next create");
    assert!(v
        .iter()
        .any(|v| v.guarantee == Guarantee::Linearizable && names(v, create)));
}

fn names(v: &Violation, op: usize) -> bool {
    v.ops.contains(&OpId(op)) && v.message.contains(&format!("#{op} "))
}

fn rejected_quickly(sims: &[Sim], what: &str) -> Vec<Violation> {
    let h = record(sims);
    let started = Instant::now();
    let v = h.check().expect_err(what);
    let took = started.elapsed();
    println!("{what}: rejected in {took:?}:\n{}", render(&v));
    assert!(took < Duration::from_secs(2), "{what}: {took:?}");
    v
}

/// The last operation of its session, so that moving it later keeps its session's arrival
/// order.
fn last_of_session(sims: &[Sim], k: usize) -> bool {
    sims.iter()
        .all(|s| s.session != sims[k].session || s.invoke <= sims[k].invoke)
}

/// A successful delete that was the last operation of its session, and the successful
/// create of that path by another session that came next.
fn moved_delete(sims: &[Sim]) -> Option<(usize, usize)> {
    let czxid = |s: &Sim| match &s.outcome {
        Outcome::Ok(Reply::Created(Some(st))) => Some(st.czxid),
        _ => None,
    };
    let d = (0..sims.len())
        .filter(|&k| sims[k].outcome == DELETED && last_of_session(sims, k))
        .max_by_key(|&k| sims[k].complete)?;
    let z = sims[d].zxid?;
    let create = (0..sims.len())
        .filter(|&k| sims[k].session != sims[d].session && sims[k].op.path() == sims[d].op.path())
        .filter(|&k| czxid(&sims[k]).is_some_and(|c| c > z))
        .min_by_key(|&k| czxid(&sims[k]))?;
    Some((d, create))
}

/// The last successful setData whose session did nothing after it, and the successful
/// write of another session (on any path) with the next zxid.
fn reordered_write(sims: &[Sim]) -> Option<(usize, usize)> {
    let zxid = |s: &Sim| match &s.outcome {
        Outcome::Ok(Reply::Set(st)) => Some(st.mzxid),
        Outcome::Ok(Reply::Created(Some(st))) => Some(st.czxid),
        _ => None,
    };
    let w = (0..sims.len())
        .filter(|&k| {
            matches!(sims[k].outcome, Outcome::Ok(Reply::Set(_))) && last_of_session(sims, k)
        })
        .max_by_key(|&k| sims[k].complete)?;
    let z = zxid(&sims[w])?;
    let next = (0..sims.len())
        .filter(|&k| sims[k].session != sims[w].session && zxid(&sims[k]).is_some_and(|n| n > z))
        .min_by_key(|&k| zxid(&sims[k]))?;
    Some((w, next))
}
