//! A consistency checker for client histories: tests run real clients through replicas
//! while a seeded schedule delays, cuts and kills things, record every request and reply
//! in a [`History`], and ask [`History::check`] whether what the clients saw is something
//! ZooKeeper allows. A failure names the operations involved, so a failing seed can be
//! read rather than re-run under a debugger.
//!
//! The guarantees checked are the ones ZooKeeper documents ("ZooKeeper Programmer's Guide",
//! *Consistency Guarantees*, and the ZooKeeper paper's A-linearizability):
//!
//! 1. **Writes are linearizable, per path** ([`Guarantee::Linearizable`]). Each path is a
//!    register whose state is *absent* or *(data, version, czxid, mzxid)*. Successful
//!    writes move it; failed writes (`NodeExists`, `NoNode`, `BadVersion`, `NotEmpty`) are
//!    decided by the leader in the same order, so they constrain the state at their
//!    linearization point; an outcome the client cannot know (connection loss, timeout)
//!    may have taken effect at any moment after its invocation, or never. Reads are *not*
//!    linearizable in ZooKeeper (a follower serves them from its own, possibly stale, copy),
//!    so a read may return any state of the write order that is not older than what its
//!    own session already saw or wrote, not older than every write acknowledged before a
//!    `sync` its session completed, and not newer than the moment the read returned. The
//!    search is Wing & Gong's, with Lowe's memoization of (linearized set, state); see
//!    *Limits* below.
//! 2. **A session never goes back** ([`Guarantee::SessionOrder`]): the zxid in the header
//!    of every reply a session receives is non-decreasing in arrival order, also after the
//!    session moves to another replica; and a read never returns a state of a path older
//!    than one the session already saw (a lower mzxid, a lower version of the same
//!    incarnation, or `NoNode` when no delete could have happened).
//! 3. **`sync` then read** ([`Guarantee::SyncedRead`]): a read issued after its session's
//!    `sync` completed sees every write acknowledged to any client before that `sync` was
//!    invoked.
//! 4. **The watch event comes before the data** ([`Guarantee::WatchBeforeData`]): once a
//!    session has a data watch on a path (`getData`/`exists` with `watch`), no reply to that
//!    session may show the path changed (another mzxid, version, czxid, or existence)
//!    before the watch's event arrived.
//!
//! Checks 2 and 3 are also implied by check 1 (the search places every read after its own
//! session's earlier operations and after the writes a `sync` covers); they are run on
//! their own because their messages name the two operations that disagree, where a failed
//! search can only say where it got stuck.
//!
//! # Recording
//!
//! [`History::invoke`] before a request is sent (or [`History::invoke_at`] with a time of
//! the test's own), [`History::complete`] when its reply arrives or when the client gives
//! up on it with [`Outcome::Unknown`], and [`History::event`] when a watch event arrives.
//! Times are nanoseconds from the history's creation. The order of `complete` and `event`
//! calls for one session is taken as the order in which that session received them: record
//! them from the code that reads the connection, or keep one request in flight per session
//! when a client library delivers replies and events on different tasks. An operation never
//! completed counts as unknown.
//!
//! # How check 1 works, and its limits
//!
//! * Paths are independent registers: use persistent, non-sequential znodes (an ephemeral
//!   node vanishes with its session, a sequential create's path is not known in advance);
//!   cross-path rules (a parent must exist, a node with children cannot be deleted) only
//!   relax the check (`Create` failing with `NoNode` says only that the path is absent).
//!   Paths that exist before the history starts are declared with [`History::initial`].
//! * zxids prune the search; they prove nothing on their own. Successful writes whose
//!   reply carried a stat take effect in zxid order. A state carries the czxid and mzxid its
//!   stats reported, learnt from a read when the write that made it reported none (and then
//!   neither another write's zxid nor lower than the writes before it), and two reads of
//!   one state must agree on them. A history whose data and versions admit no order fails
//!   however consistent its zxids look; when only its zxids are wrong, a second search
//!   that ignores them says so.
//! * Before any search, two acknowledged writes (on any paths) whose zxids contradict real
//!   time, and a read that returned data no write carried or the mzxid of a write that
//!   reported another state, are reported by name.
//! * The search is exponential in the worst case (the problem is NP-complete). What keeps
//!   it small: one search per path; reads and failed writes placed as soon as they fit
//!   (placing an operation that changes nothing never hurts; one that would teach the state
//!   a zxid is a choice instead, as it may belong to a later state that looks the same); a
//!   write of unknown outcome whose data a read returned is required, with that read's
//!   stat; other unknown writes that cannot be told apart (same kind, expected version and
//!   data, or data no read returned) are taken in invocation order, a conditional one
//!   before an unconditional one; and the memo (keyed by 128-bit Zobrist hashes) skips a
//!   configuration when one with the same successful writes and state, as many or more of
//!   each session's other operations placed and a subset of its unknown writes was
//!   explored.
//! * Measured on simulated runs: a linearizable history of 3,600 operations on one path by
//!   12 sessions, 3–10% of them with unknown outcome, checks in 5–40 ms. A non-linearizable
//!   one must exhaust the search: the same history with one write moved out of zxid order
//!   is rejected in about 0.2 s, and most such runs are decided within a second. Past
//!   [`Limits::max_steps_per_path`] steps (1,000,000 by default: about a second, and 100
//!   bytes of memo a step with a dozen sessions) the path is reported as
//!   [`Guarantee::SearchLimit`], with where the search got stuck, never passed. On a path
//!   that checks 2–4 already found at fault the search gets at most 100,000 steps and is
//!   not reported when it runs out.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A ZooKeeper session as the test names it (its session id is the natural choice; it
/// stays the same when the session moves to another replica).
pub type SessionId = i64;

/// One recorded operation, in invocation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The part of a znode's stat the checker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stat {
    pub version: i32,
    pub czxid: i64,
    pub mzxid: i64,
}

impl Stat {
    pub fn new(version: i32, czxid: i64, mzxid: i64) -> Stat {
        Stat {
            version,
            czxid,
            mzxid,
        }
    }
}

/// A request. `version` is the expected version (-1: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Delete {
        path: String,
        version: i32,
    },
    GetData {
        path: String,
        watch: bool,
    },
    Exists {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
}

impl Op {
    pub fn create(path: &str, data: impl Into<Vec<u8>>) -> Op {
        Op::Create {
            path: path.to_owned(),
            data: data.into(),
        }
    }

    pub fn set_data(path: &str, data: impl Into<Vec<u8>>, version: i32) -> Op {
        Op::SetData {
            path: path.to_owned(),
            data: data.into(),
            version,
        }
    }

    pub fn delete(path: &str, version: i32) -> Op {
        Op::Delete {
            path: path.to_owned(),
            version,
        }
    }

    pub fn get_data(path: &str, watch: bool) -> Op {
        Op::GetData {
            path: path.to_owned(),
            watch,
        }
    }

    pub fn exists(path: &str, watch: bool) -> Op {
        Op::Exists {
            path: path.to_owned(),
            watch,
        }
    }

    pub fn sync(path: &str) -> Op {
        Op::Sync {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::SetData { path, .. }
            | Op::Delete { path, .. }
            | Op::GetData { path, .. }
            | Op::Exists { path, .. }
            | Op::Sync { path } => path,
        }
    }

    pub fn kind(&self) -> OpKind {
        match self {
            Op::Create { .. } => OpKind::Create,
            Op::SetData { .. } => OpKind::SetData,
            Op::Delete { .. } => OpKind::Delete,
            Op::GetData { .. } => OpKind::GetData,
            Op::Exists { .. } => OpKind::Exists,
            Op::Sync { .. } => OpKind::Sync,
        }
    }

    fn is_read(&self) -> bool {
        matches!(self, Op::GetData { .. } | Op::Exists { .. })
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::SetData { .. } | Op::Delete { .. }
        )
    }

    fn sets_watch(&self) -> bool {
        matches!(
            self,
            Op::GetData { watch: true, .. } | Op::Exists { watch: true, .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    Create,
    SetData,
    Delete,
    GetData,
    Exists,
    Sync,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Create => "create",
            OpKind::SetData => "setData",
            OpKind::Delete => "delete",
            OpKind::GetData => "getData",
            OpKind::Exists => "exists",
            OpKind::Sync => "sync",
        })
    }
}

/// A successful reply, one variant per request kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `create` (with the new node's stat when the client asked for it, as `create2` does).
    Created(Option<Stat>),
    Set(Stat),
    Deleted,
    Data(Vec<u8>, Stat),
    /// `exists`: the stat, or `None` when there is no node.
    Exists(Option<Stat>),
    Synced,
}

/// A definite error: the request had no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZkError {
    NoNode,
    NodeExists,
    BadVersion,
    NotEmpty,
    /// Any other definite error (`NoAuth`, `BadArguments`, …): no effect, no constraint.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Reply),
    Err(ZkError),
    /// Connection loss, timeout, session expiry while in flight: a write may or may not
    /// have taken effect, at any time after its invocation; a read is dropped.
    Unknown,
}

/// A watch event's type, named as ZooKeeper's `Watcher.Event.EventType` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum EventKind {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
}

/// The guarantee a [`Violation`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guarantee {
    /// The recording itself is inconsistent (a reply of the wrong kind, a double completion).
    WellFormed,
    Linearizable,
    SessionOrder,
    SyncedRead,
    WatchBeforeData,
    /// The linearizability search gave up: undecided, reported rather than passed.
    SearchLimit,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guarantee::WellFormed => "well-formed history",
            Guarantee::Linearizable => "linearizable writes",
            Guarantee::SessionOrder => "session order",
            Guarantee::SyncedRead => "sync then read",
            Guarantee::WatchBeforeData => "watch event before data",
            Guarantee::SearchLimit => "search limit",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub guarantee: Guarantee,
    /// The operations involved, described in `message`.
    pub ops: Vec<OpId>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.guarantee, self.message)
    }
}

/// Every violation, one paragraph each, for a panic message.
pub fn render(violations: &[Violation]) -> String {
    let mut s = format!("{} violation(s):\n", violations.len());
    for v in violations {
        s.push_str(&format!("{v}\n"));
    }
    s
}

/// Operations of one kind by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// What a passing check looked at.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub kinds: BTreeMap<OpKind, KindCount>,
    pub paths: usize,
    pub sessions: usize,
    pub events: usize,
    /// Nodes the linearizability search visited, over all paths.
    pub search_steps: u64,
}

impl Summary {
    pub fn of(&self, kind: OpKind) -> KindCount {
        self.kinds.get(&kind).copied().unwrap_or_default()
    }

    pub fn ops(&self) -> usize {
        self.kinds
            .values()
            .map(|c| c.ok + c.failed + c.unknown)
            .sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ops on {} paths by {} sessions, {} events, {} search steps:",
            self.ops(),
            self.paths,
            self.sessions,
            self.events,
            self.search_steps
        )?;
        for (kind, c) in &self.kinds {
            write!(f, " {kind} {}/{}/{}", c.ok, c.failed, c.unknown)?;
        }
        f.write_str(" (ok/failed/unknown)")
    }
}

/// Bounds on the work [`History::check_with`] does.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_steps_per_path: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps_per_path: 1_000_000,
        }
    }
}

/// The recorder: cheap to share (`Arc<History>`) and to call from async client code; one
/// short lock per call.
pub struct History {
    origin: Instant,
    log: Mutex<Log>,
}

#[derive(Debug, Clone, Default)]
struct Log {
    ops: Vec<Entry>,
    events: Vec<EventEntry>,
    /// Arrival sequence shared by completions and events.
    next_seq: u64,
    initial: BTreeMap<String, (Vec<u8>, Stat)>,
    /// Misuse of the recorder, reported as [`Guarantee::WellFormed`].
    misuse: Vec<(Option<usize>, String)>,
}

#[derive(Debug, Clone)]
struct Entry {
    session: SessionId,
    op: Op,
    invoked: u64,
    completed: Option<u64>,
    outcome: Outcome,
    reply_zxid: Option<i64>,
    seq: u64,
}

#[derive(Debug, Clone)]
struct EventEntry {
    session: SessionId,
    path: String,
    kind: EventKind,
    at: u64,
    seq: u64,
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            origin: Instant::now(),
            log: Mutex::new(Log::default()),
        }
    }

    /// Nanoseconds since this history was created: the clock of `invoke` and `complete`.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panicking client task must not hide what was recorded before it.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request about to be sent.
    pub fn invoke(&self, session: SessionId, op: Op) -> OpId {
        let at = self.now();
        self.invoke_at(session, op, at)
    }

    pub fn invoke_at(&self, session: SessionId, op: Op, at: u64) -> OpId {
        let mut log = self.log();
        log.ops.push(Entry {
            session,
            op,
            invoked: at,
            completed: None,
            outcome: Outcome::Unknown,
            reply_zxid: None,
            seq: u64::MAX,
        });
        OpId(log.ops.len() - 1)
    }

    /// Records the reply to `id` (or that it will never come: [`Outcome::Unknown`]) and the
    /// zxid of the reply's header, when the client exposes it.
    pub fn complete(&self, id: OpId, outcome: Outcome, reply_zxid: Option<i64>) {
        let at = self.now();
        self.complete_at(id, outcome, reply_zxid, at);
    }

    pub fn complete_at(&self, id: OpId, outcome: Outcome, reply_zxid: Option<i64>, at: u64) {
        let mut guard = self.log();
        let log = &mut *guard;
        let seq = log.next_seq;
        let Some(e) = log.ops.get_mut(id.0) else {
            let m = format!("complete({id}): no such operation");
            log.misuse.push((None, m));
            return;
        };
        if e.completed.is_some() {
            let m = format!("complete({id}) called twice");
            log.misuse.push((Some(id.0), m));
            return;
        }
        if at < e.invoked {
            let m = format!(
                "{id} completed at {at} before its invocation at {}",
                e.invoked
            );
            log.misuse.push((Some(id.0), m));
            return;
        }
        e.completed = Some(at);
        e.reply_zxid = if outcome == Outcome::Unknown {
            None
        } else {
            reply_zxid
        };
        e.outcome = outcome;
        e.seq = seq;
        log.next_seq += 1;
    }

    /// Records a watch event delivered to `session`.
    pub fn event(&self, session: SessionId, path: &str, kind: EventKind) {
        let at = self.now();
        let mut log = self.log();
        let seq = log.next_seq;
        log.next_seq += 1;
        log.events.push(EventEntry {
            session,
            path: path.to_owned(),
            kind,
            at,
            seq,
        });
    }

    /// Declares that `path` exists with `data` and `stat` before the first operation.
    pub fn initial(&self, path: &str, data: impl Into<Vec<u8>>, stat: Stat) {
        self.log()
            .initial
            .insert(path.to_owned(), (data.into(), stat));
    }

    pub fn len(&self) -> usize {
        self.log().ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every operation and event, one a line, for a failing test's output.
    pub fn dump(&self) -> String {
        let log = self.log().clone();
        let mut lines: Vec<(u64, String)> = Vec::new();
        for i in 0..log.ops.len() {
            lines.push((log.ops[i].invoked, describe(&log, i)));
        }
        for e in &log.events {
            lines.push((
                e.at,
                format!(
                    "event s{:#x} {:?} {} (arrival {})",
                    e.session, e.kind, e.path, e.seq
                ),
            ));
        }
        lines.sort_by_key(|l| l.0);
        lines.into_iter().map(|l| l.1 + "\n").collect()
    }

    pub fn check(&self) -> Result<Summary, Vec<Violation>> {
        self.check_with(Limits::default())
    }

    pub fn check_with(&self, limits: Limits) -> Result<Summary, Vec<Violation>> {
        let log = self.log().clone();
        Checker::new(&log, limits).run()
    }
}

// ---------------------------------------------------------------------------------------
// Descriptions

fn show_data(d: &[u8]) -> String {
    if d.len() <= 40 && d.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(d))
    } else {
        let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "<{} bytes {hex}{}>",
            d.len(),
            if d.len() > 16 { "…" } else { "" }
        )
    }
}

fn show_stat(s: &Stat) -> String {
    format!("v{} czxid {:#x} mzxid {:#x}", s.version, s.czxid, s.mzxid)
}

fn show_time(t: u64) -> String {
    let s = t.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// `#12 s0x5 setData /a "x3" v-1 [1_200..1_900] → ok v4 czxid 0x3 mzxid 0x1a, zxid 0x1a`
fn describe(log: &Log, i: usize) -> String {
    let e = &log.ops[i];
    let op = match &e.op {
        Op::Create { path, data } => format!("create {path} {}", show_data(data)),
        Op::SetData {
            path,
            data,
            version,
        } => format!("setData {path} {} v{version}", show_data(data)),
        Op::Delete { path, version } => format!("delete {path} v{version}"),
        Op::GetData { path, watch } => {
            format!("getData {path}{}", if *watch { " watch" } else { "" })
        }
        Op::Exists { path, watch } => {
            format!("exists {path}{}", if *watch { " watch" } else { "" })
        }
        Op::Sync { path } => format!("sync {path}"),
    };
    let end = e.completed.map_or("…".to_owned(), show_time);
    let outcome = match &e.outcome {
        Outcome::Unknown => "unknown".to_owned(),
        Outcome::Err(err) => format!("{err:?}"),
        Outcome::Ok(Reply::Created(Some(s))) | Outcome::Ok(Reply::Set(s)) => {
            format!("ok {}", show_stat(s))
        }
        Outcome::Ok(Reply::Data(d, s)) => format!("ok {} {}", show_data(d), show_stat(s)),
        Outcome::Ok(Reply::Exists(Some(s))) => format!("ok {}", show_stat(s)),
        Outcome::Ok(Reply::Exists(None)) => "ok none".to_owned(),
        Outcome::Ok(_) => "ok".to_owned(),
    };
    let zxid = e
        .reply_zxid
        .map_or(String::new(), |z| format!(", zxid {z:#x}"));
    format!(
        "#{i} s{:#x} {op} [{}..{end}] → {outcome}{zxid}",
        e.session,
        show_time(e.invoked)
    )
}

// ---------------------------------------------------------------------------------------
// The checks

/// What a reply says about its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obs {
    Absent,
    /// Present, with the stat when the reply carries one.
    Present(Option<Stat>),
    /// Present with a version other than this (a `BadVersion`).
    VersionNot(i32),
}

fn observation(op: &Op, outcome: &Outcome) -> Option<Obs> {
    use Outcome::{Err, Ok};
    Some(match (op, outcome) {
        (Op::GetData { .. }, Ok(Reply::Data(_, s)))
        | (Op::Exists { .. }, Ok(Reply::Exists(Some(s))))
        | (Op::SetData { .. }, Ok(Reply::Set(s))) => Obs::Present(Some(*s)),
        (Op::Create { .. }, Ok(Reply::Created(s))) => Obs::Present(*s),
        (Op::GetData { .. } | Op::Exists { .. }, Err(ZkError::NoNode))
        | (Op::Exists { .. }, Ok(Reply::Exists(None)))
        | (Op::SetData { .. } | Op::Delete { .. } | Op::Create { .. }, Err(ZkError::NoNode))
        | (Op::Delete { .. }, Ok(Reply::Deleted)) => Obs::Absent,
        (Op::Create { .. }, Err(ZkError::NodeExists))
        | (Op::Delete { .. }, Err(ZkError::NotEmpty)) => Obs::Present(None),
        (Op::SetData { version, .. } | Op::Delete { version, .. }, Err(ZkError::BadVersion)) => {
            Obs::VersionNot(*version)
        }
        _ => return None,
    })
}

/// Whether `now` shows the path changed since `baseline` (a read's observation).
fn changed(baseline: Obs, now: Obs) -> bool {
    match (baseline, now) {
        (Obs::Absent, Obs::Absent) => false,
        (Obs::Absent, _) | (_, Obs::Absent) => true,
        (Obs::Present(Some(a)), Obs::Present(Some(b))) => a != b,
        (Obs::Present(Some(a)), Obs::VersionNot(v)) => a.version == v,
        _ => false,
    }
}

fn reply_fits(op: &Op, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Ok(r) => matches!(
            (op, r),
            (Op::Create { .. }, Reply::Created(_))
                | (Op::SetData { .. }, Reply::Set(_))
                | (Op::Delete { .. }, Reply::Deleted)
                | (Op::GetData { .. }, Reply::Data(..))
                | (Op::Exists { .. }, Reply::Exists(_))
                | (Op::Sync { .. }, Reply::Synced)
        ),
        _ => true,
    }
}

/// At most this many violations of one guarantee are listed.
const MAX_REPORTED: usize = 25;

struct Checker<'a> {
    log: &'a Log,
    limits: Limits,
    /// Operations with a reply of the wrong kind are left out of every check.
    valid: Vec<bool>,
    violations: Vec<Violation>,
    summary: Summary,
    /// Per path: (invocation, completion) of every delete that may have taken effect
    /// (successful or unknown; `u64::MAX` when unknown).
    deletes: HashMap<&'a str, Vec<(u64, u64)>>,
}

impl<'a> Checker<'a> {
    fn new(log: &'a Log, limits: Limits) -> Checker<'a> {
        Checker {
            log,
            limits,
            valid: vec![true; log.ops.len()],
            violations: Vec::new(),
            summary: Summary::default(),
            deletes: HashMap::new(),
        }
    }

    fn d(&self, i: usize) -> String {
        describe(self.log, i)
    }

    fn report(&mut self, guarantee: Guarantee, ops: &[usize], message: String) {
        self.violations.push(Violation {
            guarantee,
            ops: ops.iter().map(|&i| OpId(i)).collect(),
            message,
        });
    }

    fn definite(&self, i: usize) -> bool {
        self.valid[i] && self.log.ops[i].outcome != Outcome::Unknown
    }

    fn run(mut self) -> Result<Summary, Vec<Violation>> {
        self.well_formed();
        self.count();
        let log = self.log;
        for (i, e) in log.ops.iter().enumerate() {
            if let Op::Delete { path, .. } = &e.op {
                let complete = match (&e.outcome, e.completed) {
                    (Outcome::Ok(_), Some(c)) if self.valid[i] => c,
                    (Outcome::Unknown, _) => u64::MAX,
                    _ => continue,
                };
                self.deletes
                    .entry(path.as_str())
                    .or_default()
                    .push((e.invoked, complete));
            }
        }
        let mut paths: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in self.log.ops.iter().enumerate() {
            if self.valid[i] && !matches!(e.op, Op::Sync { .. }) {
                paths.entry(e.op.path()).or_default().push(i);
            }
        }
        self.summary.paths = paths.len();
        let sync_floors = self.sync_floors();
        self.zxid_order();
        self.session_order();
        self.synced_reads(&paths, &sync_floors);
        self.watches();
        // Paths already known to fail get a smaller search budget, and no report of their
        // search running out of it.
        let failing: HashSet<&str> = self
            .violations
            .iter()
            .flat_map(|v| v.ops.iter().map(|id| log.ops[id.0].op.path()))
            .collect();
        for (path, ops) in &paths {
            self.linearizable(path, ops, &sync_floors, failing.contains(path));
        }
        if self.violations.is_empty() {
            return Ok(self.summary);
        }
        let mut v = self.violations;
        v.sort_by_key(|v| (v.guarantee, v.ops.first().copied()));
        let mut out: Vec<Violation> = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let g = v[i].guarantee;
            let n = v[i..].iter().take_while(|x| x.guarantee == g).count();
            out.extend(v[i..i + n.min(MAX_REPORTED)].iter().cloned());
            if n > MAX_REPORTED {
                if let Some(last) = out.last_mut() {
                    last.message
                        .push_str(&format!("\n(and {} more of this kind)", n - MAX_REPORTED));
                }
            }
            i += n;
        }
        Err(out)
    }

    fn well_formed(&mut self) {
        for (op, m) in &self.log.misuse {
            let m = match op {
                Some(i) => format!("{m}: {}", self.d(*i)),
                None => m.clone(),
            };
            let ops: Vec<usize> = op.iter().copied().collect();
            self.report(Guarantee::WellFormed, &ops, m);
        }
        for i in 0..self.log.ops.len() {
            let e = &self.log.ops[i];
            if !reply_fits(&e.op, &e.outcome) {
                self.valid[i] = false;
                let m = format!("reply of the wrong kind: {}", self.d(i));
                self.report(Guarantee::WellFormed, &[i], m);
            }
        }
    }

    fn count(&mut self) {
        let mut sessions = HashSet::new();
        for (i, e) in self.log.ops.iter().enumerate() {
            sessions.insert(e.session);
            let c = self.summary.kinds.entry(e.op.kind()).or_default();
            match &e.outcome {
                _ if !self.valid[i] => {}
                Outcome::Ok(_) => c.ok += 1,
                Outcome::Err(_) => c.failed += 1,
                Outcome::Unknown => c.unknown += 1,
            }
        }
        for e in &self.log.events {
            sessions.insert(e.session);
        }
        self.summary.sessions = sessions.len();
        self.summary.events = self.log.events.len();
    }

    /// For every read: the latest invocation time of a `sync` its session completed before
    /// the read was invoked (0 when none), with that sync.
    fn sync_floors(&self) -> HashMap<usize, (u64, usize)> {
        let mut syncs: HashMap<SessionId, Vec<(u64, u64, usize)>> = HashMap::new();
        for (i, e) in self.log.ops.iter().enumerate() {
            if let (Op::Sync { .. }, Outcome::Ok(_), Some(c)) = (&e.op, &e.outcome, e.completed) {
                if self.valid[i] {
                    syncs.entry(e.session).or_default().push((c, e.invoked, i));
                }
            }
        }
        let mut floors = HashMap::new();
        for (i, e) in self.log.ops.iter().enumerate() {
            if !e.op.is_read() || !self.definite(i) {
                continue;
            }
            let best = syncs
                .get(&e.session)
                .into_iter()
                .flatten()
                .filter(|(c, _, _)| *c < e.invoked)
                .max_by_key(|(_, inv, _)| *inv);
            if let Some(&(_, inv, s)) = best {
                floors.insert(i, (inv, s));
            }
        }
        floors
    }

    // -- 1. linearizable writes -----------------------------------------------------------

    fn linearizable(
        &mut self,
        path: &str,
        ops: &[usize],
        floors: &HashMap<usize, (u64, usize)>,
        failing: bool,
    ) {
        if self.impossible_reads(path, ops) {
            return;
        }
        let mut data = DataNames::default();
        // Only data some read returned can be told apart; every other value is one value.
        for &i in ops {
            if let (Op::GetData { .. }, Outcome::Ok(Reply::Data(d, _))) =
                (&self.log.ops[i].op, &self.log.ops[i].outcome)
            {
                data.intern(d);
            }
        }
        let seen = self.seen_writes(path, ops);
        let (lin_ops, sessions) = self.lin_ops(ops, floors, &data, &seen, true);
        if lin_ops.is_empty() {
            return;
        }
        let initial = self.initial_state(path, &data, true);
        let diagnostic_budget = self.limits.max_steps_per_path.min(100_000);
        let budget = if failing {
            diagnostic_budget
        } else {
            self.limits.max_steps_per_path
        };
        let mut search = Search::new(&lin_ops, sessions, initial, budget);
        let verdict = search.run();
        self.summary.search_steps += search.steps;
        let unknown = lin_ops
            .iter()
            .filter(|o| o.class == Class::MaybeWrite)
            .count();
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Limit if failing => {}
            Verdict::Limit => {
                let mut m = format!(
                    "path {path}, {} operations ({unknown} with unknown outcome): undecided after \
                     {} search steps (raise Limits::max_steps_per_path, or shorten the history)",
                    lin_ops.len(),
                    search.steps,
                );
                let ids = self.explain(&mut m, &lin_ops, &search, &data);
                self.report(Guarantee::SearchLimit, &ids, m);
            }
            Verdict::NotLinearizable => {
                // Tell a wrong zxid from a wrong value: search again, zxids ignored. Without
                // their pruning a failing search can be long, hence the smaller budget.
                let (plain_ops, _) = self.lin_ops(ops, floors, &data, &seen, false);
                let initial = self.initial_state(path, &data, false);
                let mut plain = Search::new(&plain_ops, sessions, initial, diagnostic_budget);
                let plain_verdict = plain.run();
                self.summary.search_steps += plain.steps;
                let mut m = format!(
                    "path {path}, {} operations ({unknown} with unknown outcome): {}",
                    lin_ops.len(),
                    match plain_verdict {
                        Verdict::NotLinearizable => "no linearization",
                        Verdict::Linearizable => {
                            "data and versions admit a linearization, but none agrees with the \
                             zxids the replies reported (writes take effect in zxid order, a read \
                             returns the czxid and mzxid of the state it saw)"
                        }
                        Verdict::Limit => {
                            "no linearization agrees with the zxids the replies reported \
                             (ignoring zxids: undecided within the search budget)"
                        }
                    }
                );
                let ids = self.explain(&mut m, &lin_ops, &search, &data);
                self.report(Guarantee::Linearizable, &ids, m);
            }
        }
    }

    /// Reads that returned a state no write made: data no write carried, or the mzxid of a
    /// write whose reply reported another state. Reported here, by name, rather than left to
    /// the search. Returns whether there were any.
    fn impossible_reads(&mut self, path: &str, ops: &[usize]) -> bool {
        let log = self.log;
        let mut carried: HashSet<&[u8]> = HashSet::new();
        let mut made: HashMap<i64, (&[u8], Stat, Option<usize>)> = HashMap::new();
        if let Some((d, s)) = log.initial.get(path) {
            carried.insert(d);
            made.insert(s.mzxid, (d, *s, None));
        }
        for &i in ops {
            let e = &log.ops[i];
            if let Op::Create { data, .. } | Op::SetData { data, .. } = &e.op {
                if matches!(e.outcome, Outcome::Ok(_) | Outcome::Unknown) {
                    carried.insert(data);
                }
                if let Some(Obs::Present(Some(s))) = observation(&e.op, &e.outcome) {
                    made.insert(s.mzxid, (data, s, Some(i)));
                }
            }
        }
        let mut found = false;
        for &i in ops {
            let e = &log.ops[i];
            let (data, stat) = match &e.outcome {
                Outcome::Ok(Reply::Data(d, s)) => (Some(d.as_slice()), *s),
                Outcome::Ok(Reply::Exists(Some(s))) if matches!(e.op, Op::Exists { .. }) => {
                    (None, *s)
                }
                _ => continue,
            };
            let why = match (data, made.get(&stat.mzxid)) {
                (Some(d), _) if !carried.contains(d) => {
                    format!("no write of {path} carried {}", show_data(d))
                }
                (d, Some(&(wd, ws, w))) if d.is_some_and(|d| d != wd) || ws != stat => {
                    let by = w.map_or("the initial state".to_owned(), |w| self.d(w));
                    format!(
                        "its mzxid is the one of {by}, which made {} {}",
                        show_data(wd),
                        show_stat(&ws)
                    )
                }
                _ => continue,
            };
            found = true;
            let m = format!(
                "path {path}: a read returned a state no write made ({why}):\n    {}",
                self.d(i)
            );
            self.report(Guarantee::Linearizable, &[i], m);
        }
        found
    }

    /// Successful writes whose replies reported their zxid, on every path, took effect in
    /// zxid order: one acknowledged before another was invoked has the lower zxid, since
    /// ZooKeeper's leader numbers transactions in the order it commits them.
    fn zxid_order(&mut self) {
        let log = self.log;
        let mut writes: Vec<(i64, u64, u64, usize)> = Vec::new();
        for (i, e) in log.ops.iter().enumerate() {
            if let (true, Some(Obs::Present(Some(s))), Some(c)) = (
                e.op.is_write() && self.valid[i],
                observation(&e.op, &e.outcome),
                e.completed,
            ) {
                writes.push((s.mzxid, e.invoked, c, i));
            }
        }
        writes.sort_unstable();
        // The earliest acknowledged of the writes with a higher zxid.
        let mut first_after: Option<(u64, usize)> = None;
        for &(_, invoked, completed, i) in writes.iter().rev() {
            if let Some((c, j)) = first_after {
                if c < invoked {
                    let m = format!(
                        "a write was acknowledged before one with a lower zxid was invoked:\n    \
                         {}\n    {}",
                        self.d(j),
                        self.d(i)
                    );
                    self.report(Guarantee::Linearizable, &[j, i], m);
                }
            }
            if first_after.is_none_or(|(c, _)| completed < c) {
                first_after = Some((completed, i));
            }
        }
    }

    /// Writes of unknown outcome that a read proves took effect: the only write of the path
    /// carrying data some read returned. That read's stat is the one of the state the write
    /// made, zxid included.
    fn seen_writes(&self, path: &str, ops: &[usize]) -> HashMap<usize, Stat> {
        let mut carriers: HashMap<&[u8], (usize, usize)> = HashMap::new();
        if let Some((d, _)) = self.log.initial.get(path) {
            carriers.insert(d, (1, usize::MAX));
        }
        let mut reads: HashMap<&[u8], Stat> = HashMap::new();
        for &i in ops {
            let e = &self.log.ops[i];
            match (&e.op, &e.outcome) {
                (
                    Op::Create { data, .. } | Op::SetData { data, .. },
                    Outcome::Ok(_) | Outcome::Unknown,
                ) => {
                    let c = carriers.entry(data).or_insert((0, i));
                    c.0 += 1;
                }
                (Op::GetData { .. }, Outcome::Ok(Reply::Data(d, stat))) => {
                    reads.entry(d).or_insert(*stat);
                }
                _ => {}
            }
        }
        carriers
            .into_iter()
            .filter(|(_, (n, i))| *n == 1 && *i != usize::MAX)
            .filter(|(_, (_, i))| self.log.ops[*i].outcome == Outcome::Unknown)
            .filter_map(|(d, (_, i))| Some((i, *reads.get(d)?)))
            .collect()
    }

    /// The operations on one path as the search sees them, and how many sessions made them.
    /// Without `zxids`, every czxid and mzxid is left unknown.
    fn lin_ops(
        &self,
        ops: &[usize],
        floors: &HashMap<usize, (u64, usize)>,
        data: &DataNames,
        seen: &HashMap<usize, Stat>,
        zxids: bool,
    ) -> (Vec<LinOp>, usize) {
        let mut sessions: HashMap<SessionId, usize> = HashMap::new();
        let mut lin_ops = Vec::new();
        for &i in ops {
            let e = &self.log.ops[i];
            let Some((mut action, mut class)) = classify(&e.op, &e.outcome, data) else {
                continue;
            };
            // A write a read proves took effect must be placed, with the stat that read saw.
            if let (Some(s), Action::Create { stat, .. } | Action::Set { stat, .. }) =
                (seen.get(&i), &mut action)
            {
                *stat = Some(*s);
                class = Class::Write;
            }
            if !zxids {
                action.forget_zxids();
            }
            let n = sessions.len();
            let session = *sessions.entry(e.session).or_insert(n);
            let complete = match (&e.outcome, class) {
                (Outcome::Unknown, _) | (_, Class::MaybeWrite) => u64::MAX,
                _ => e.completed.unwrap_or(u64::MAX),
            };
            let zxid = match action {
                Action::Create { stat: Some(s), .. } => s.czxid,
                Action::Set { stat: Some(s), .. } => s.mzxid,
                _ => UNKNOWN_ZXID,
            };
            // A write's reply header carries its zxid in ZooKeeper: a hint for the order to
            // try, never a constraint.
            let hint = match (zxid, class, e.reply_zxid) {
                (UNKNOWN_ZXID, Class::Write, Some(z)) if zxids => z,
                (UNKNOWN_ZXID, _, _) => i64::MAX,
                (z, _, _) => z,
            };
            lin_ops.push(LinOp {
                index: i,
                session,
                invoke: e.invoked,
                complete,
                class,
                action,
                sync_floor: floors.get(&i).map_or(0, |f| f.0),
                zxid,
                hint,
            });
        }
        (lin_ops, sessions.len())
    }

    fn initial_state(&self, path: &str, data: &DataNames, zxids: bool) -> Reg {
        match self.log.initial.get(path) {
            Some((d, s)) => Reg::Present {
                data: data.id(d),
                version: s.version,
                czxid: if zxids { s.czxid } else { UNKNOWN_ZXID },
                mzxid: if zxids { s.mzxid } else { UNKNOWN_ZXID },
            },
            None => Reg::Absent,
        }
    }

    /// Appends where the search got stuck; returns the operations named.
    fn explain(
        &self,
        m: &mut String,
        ops: &[LinOp],
        search: &Search<'_>,
        data: &DataNames,
    ) -> Vec<usize> {
        let Some(best) = &search.best else {
            return Vec::new();
        };
        let definite = ops.iter().filter(|o| o.class != Class::MaybeWrite).count();
        m.push_str(&format!(
            ". The longest consistent order places {} of the {definite} definite operations",
            best.placed
        ));
        if best.recent.is_empty() {
            m.push(';');
        } else {
            m.push_str(", ending with:");
            for &k in &best.recent {
                m.push_str(&format!("\n    {}", self.d(ops[k].index)));
            }
            m.push_str("\n ");
        }
        m.push_str(&format!(
            " then the node is {}, and none of these can come next:",
            best.state.show(data)
        ));
        let mut ids = Vec::new();
        for &k in &best.stuck {
            ids.push(ops[k].index);
            m.push_str(&format!("\n    {}", self.d(ops[k].index)));
        }
        ids
    }

    // -- 2. sessions never go back -----------------------------------------------------------

    /// Each session's completed operations in arrival order.
    fn arrivals(&self) -> BTreeMap<SessionId, Vec<usize>> {
        let mut by_session: BTreeMap<SessionId, Vec<usize>> = BTreeMap::new();
        for (i, e) in self.log.ops.iter().enumerate() {
            if self.definite(i) {
                by_session.entry(e.session).or_default().push(i);
            }
        }
        for v in by_session.values_mut() {
            v.sort_by_key(|&i| self.log.ops[i].seq);
        }
        by_session
    }

    /// Whether a delete of `path` (successful or unknown) may have run after `after` and
    /// before `before`.
    fn delete_possible(&self, path: &str, after: u64, before: u64) -> bool {
        self.deletes
            .get(path)
            .is_some_and(|d| d.iter().any(|&(inv, c)| inv < before && c >= after))
    }

    fn session_order(&mut self) {
        let log = self.log;
        for (session, ops) in self.arrivals() {
            // Reply zxids, in arrival order.
            let mut last: Option<(i64, usize)> = None;
            for &i in &ops {
                let Some(z) = log.ops[i].reply_zxid else {
                    continue;
                };
                match last {
                    Some((prev, j)) if z < prev => {
                        let m = format!(
                            "session {session:#x} received zxid {z:#x} after {prev:#x}:\n    {}\n    {}",
                            self.d(j),
                            self.d(i)
                        );
                        self.report(Guarantee::SessionOrder, &[j, i], m);
                    }
                    _ => last = Some((z, i)),
                }
            }
            // Reads never older than what the session saw or wrote: per path, the newest
            // stat seen (by mzxid), and the op that saw it.
            let mut seen: HashMap<&str, (Stat, usize)> = HashMap::new();
            for &i in &ops {
                let e = &log.ops[i];
                let path = e.op.path();
                let Some(obs) = observation(&e.op, &e.outcome) else {
                    continue;
                };
                if e.op.is_read() {
                    if let Some(&(s, j)) = seen.get(path) {
                        let older = match obs {
                            Obs::Present(Some(now)) => {
                                now.mzxid < s.mzxid
                                    || (now.czxid == s.czxid && now.version < s.version)
                            }
                            Obs::Absent => {
                                let a = &log.ops[j];
                                // After its own write a session knows the node existed
                                // from the write's invocation; a read may have seen an
                                // older state than its own time.
                                let after = if a.op.is_write() { a.invoked } else { 0 };
                                let before = e.completed.unwrap_or(u64::MAX);
                                !self.delete_possible(path, after, before)
                            }
                            _ => false,
                        };
                        if older {
                            let m = format!(
                                "session {session:#x} read an older state of {path} than it had \
                                 already seen:\n    {}\n    {}",
                                self.d(j),
                                self.d(i)
                            );
                            self.report(Guarantee::SessionOrder, &[j, i], m);
                            continue;
                        }
                    }
                }
                if let Obs::Present(Some(now)) = obs {
                    if seen.get(path).is_none_or(|(s, _)| now.mzxid > s.mzxid) {
                        seen.insert(path, (now, i));
                    }
                }
            }
        }
    }

    // -- 3. sync then read ----------------------------------------------------------------

    fn synced_reads(
        &mut self,
        paths: &BTreeMap<&str, Vec<usize>>,
        floors: &HashMap<usize, (u64, usize)>,
    ) {
        let log = self.log;
        // Per path: acknowledged creates and setDatas with a stat, by completion time, with
        // running maxima of mzxid and of invocation time.
        struct Acked {
            complete: u64,
            max_mzxid: (i64, usize),
            max_invoke: (u64, usize),
        }
        let mut acked: HashMap<&str, Vec<Acked>> = HashMap::new();
        for (path, ops) in paths {
            let mut w: Vec<(u64, i64, u64, usize)> = ops
                .iter()
                .filter(|&&i| self.log.ops[i].op.is_write())
                .filter_map(|&i| {
                    let e = &self.log.ops[i];
                    match observation(&e.op, &e.outcome) {
                        Some(Obs::Present(Some(s))) => {
                            Some((e.completed.unwrap_or(u64::MAX), s.mzxid, e.invoked, i))
                        }
                        _ => None,
                    }
                })
                .collect();
            w.sort_unstable();
            let mut list = Vec::new();
            let mut mz = (i64::MIN, usize::MAX);
            let mut mi = (0, usize::MAX);
            for (complete, mzxid, invoke, i) in w {
                if mzxid > mz.0 {
                    mz = (mzxid, i);
                }
                if mi.1 == usize::MAX || invoke > mi.0 {
                    mi = (invoke, i);
                }
                list.push(Acked {
                    complete,
                    max_mzxid: mz,
                    max_invoke: mi,
                });
            }
            acked.insert(path, list);
        }
        let mut reads: Vec<(&usize, &(u64, usize))> = floors.iter().collect();
        reads.sort();
        for (&r, &(floor, sync)) in reads {
            let e = &log.ops[r];
            let path = e.op.path();
            let Some(list) = acked.get(path) else {
                continue;
            };
            let n = list.partition_point(|a| a.complete < floor);
            if n == 0 {
                continue;
            }
            let last = &list[n - 1];
            let stale = match observation(&e.op, &e.outcome) {
                Some(Obs::Present(Some(s))) if s.mzxid < last.max_mzxid.0 => Some(last.max_mzxid.1),
                Some(Obs::Absent) => {
                    let (inv, w) = last.max_invoke;
                    let before = e.completed.unwrap_or(u64::MAX);
                    (!self.delete_possible(path, inv, before)).then_some(w)
                }
                _ => None,
            };
            if let Some(w) = stale {
                let m = format!(
                    "a read after sync misses a write acknowledged before the sync:\n    \
                     write {}\n    sync  {}\n    read  {}",
                    self.d(w),
                    self.d(sync),
                    self.d(r)
                );
                self.report(Guarantee::SyncedRead, &[w, sync, r], m);
            }
        }
    }

    // -- 4. watch event before data ------------------------------------------------------

    fn watches(&mut self) {
        let log = self.log;
        enum Item {
            Reply(usize),
            Event(usize),
        }
        let mut by_session: BTreeMap<SessionId, Vec<(u64, Item)>> = BTreeMap::new();
        for (i, e) in self.log.ops.iter().enumerate() {
            if self.definite(i) {
                by_session
                    .entry(e.session)
                    .or_default()
                    .push((e.seq, Item::Reply(i)));
            }
        }
        for (k, e) in self.log.events.iter().enumerate() {
            by_session
                .entry(e.session)
                .or_default()
                .push((e.seq, Item::Event(k)));
        }
        for (session, mut items) in by_session {
            items.sort_by_key(|x| x.0);
            // Per path: what the watch-setting read saw, and that read.
            let mut armed: HashMap<&str, (Obs, usize)> = HashMap::new();
            for (_, item) in &items {
                match *item {
                    Item::Event(k) => {
                        let ev = &log.events[k];
                        if ev.kind != EventKind::NodeChildrenChanged {
                            armed.remove(ev.path.as_str());
                        }
                    }
                    Item::Reply(i) => {
                        let e = &log.ops[i];
                        let path = e.op.path();
                        let Some(obs) = observation(&e.op, &e.outcome) else {
                            continue;
                        };
                        if let Some(&(base, w)) = armed.get(path) {
                            if changed(base, obs) {
                                let m = format!(
                                    "session {session:#x} got a reply showing {path} changed \
                                     before the event of its watch:\n    watch {}\n    reply {}",
                                    self.d(w),
                                    self.d(i)
                                );
                                self.report(Guarantee::WatchBeforeData, &[w, i], m);
                                // One report per watch.
                                armed.remove(path);
                                continue;
                            }
                        }
                        // getData on a missing node sets no watch; exists does.
                        let sets = e.op.sets_watch()
                            && !(matches!(e.op, Op::GetData { .. }) && obs == Obs::Absent);
                        if sets && !armed.contains_key(path) {
                            armed.insert(path, (obs, i));
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The linearizability search

const UNKNOWN_ZXID: i64 = i64::MIN;
/// The data of writes no read returned: indistinguishable, so one value.
const UNSEEN: u32 = 0;

#[derive(Default)]
struct DataNames {
    ids: HashMap<Vec<u8>, u32>,
    names: Vec<Vec<u8>>,
}

impl DataNames {
    fn intern(&mut self, d: &[u8]) {
        if !self.ids.contains_key(d) {
            self.names.push(d.to_vec());
            self.ids.insert(d.to_vec(), self.names.len() as u32);
        }
    }

    fn id(&self, d: &[u8]) -> u32 {
        self.ids.get(d).copied().unwrap_or(UNSEEN)
    }

    fn show(&self, id: u32) -> String {
        match id.checked_sub(1).and_then(|k| self.names.get(k as usize)) {
            Some(d) => show_data(d),
            None => "<data no read returned>".to_owned(),
        }
    }
}

/// A path's state. czxid and mzxid may be [`UNKNOWN_ZXID`] until a read reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Absent,
    Present {
        data: u32,
        version: i32,
        czxid: i64,
        mzxid: i64,
    },
}

impl Reg {
    fn show(&self, data: &DataNames) -> String {
        let z = |z: i64| {
            if z == UNKNOWN_ZXID {
                "?".to_owned()
            } else {
                format!("{z:#x}")
            }
        };
        match *self {
            Reg::Absent => "absent".to_owned(),
            Reg::Present {
                data: d,
                version,
                czxid,
                mzxid,
            } => format!(
                "present with {} v{version} czxid {} mzxid {}",
                data.show(d),
                z(czxid),
                z(mzxid)
            ),
        }
    }
}

/// The search's state: the path's state, and the highest zxid of a write placed so far
/// (or reported for the state a write of unknown zxid made): ZooKeeper applies writes in
/// zxid order, so every write placed next must have a higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cfg {
    reg: Reg,
    last: i64,
}

impl Cfg {
    fn mix(&self, salt: u64) -> u64 {
        let h = splitmix(salt ^ self.last as u64);
        match self.reg {
            Reg::Absent => splitmix(h ^ 0x5bd1_e995),
            Reg::Present {
                data,
                version,
                czxid,
                mzxid,
            } => {
                let h = splitmix(h ^ ((data as u64) << 32 | version as u32 as u64));
                let h = splitmix(h ^ czxid as u64);
                splitmix(h ^ mzxid as u64)
            }
        }
    }
}

/// What an operation requires of the state, and does to it.
#[derive(Debug, Clone, Copy)]
enum Action {
    ReadData {
        data: u32,
        stat: Stat,
    },
    ReadStat(Stat),
    Absent,
    Present,
    VersionNot(i32),
    Create {
        data: u32,
        stat: Option<Stat>,
    },
    Set {
        data: u32,
        expected: i32,
        stat: Option<Stat>,
    },
    Delete {
        expected: i32,
    },
}

impl Action {
    fn forget_zxids(&mut self) {
        let forget = |s: &mut Stat| {
            s.czxid = UNKNOWN_ZXID;
            s.mzxid = UNKNOWN_ZXID;
        };
        match self {
            Action::ReadData { stat, .. } | Action::ReadStat(stat) => forget(stat),
            Action::Create {
                stat: Some(stat), ..
            }
            | Action::Set {
                stat: Some(stat), ..
            } => forget(stat),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// getData / exists: may return a stale state (see the module doc).
    Read,
    /// A failed write: decided in write order, changes nothing.
    WriteObserver,
    /// A successful write.
    Write,
    /// A write with unknown outcome: optional, and may take effect any time after invocation.
    MaybeWrite,
}

fn classify(op: &Op, outcome: &Outcome, data: &DataNames) -> Option<(Action, Class)> {
    use Outcome::{Err, Ok, Unknown};
    Some(match (op, outcome) {
        (Op::Create { data: d, .. }, Unknown) => (
            Action::Create {
                data: data.id(d),
                stat: None,
            },
            Class::MaybeWrite,
        ),
        (
            Op::SetData {
                data: d, version, ..
            },
            Unknown,
        ) => (
            Action::Set {
                data: data.id(d),
                expected: *version,
                stat: None,
            },
            Class::MaybeWrite,
        ),
        (Op::Delete { version, .. }, Unknown) => {
            (Action::Delete { expected: *version }, Class::MaybeWrite)
        }
        (Op::Create { data: d, .. }, Ok(Reply::Created(stat))) => (
            Action::Create {
                data: data.id(d),
                stat: *stat,
            },
            Class::Write,
        ),
        (
            Op::SetData {
                data: d, version, ..
            },
            Ok(Reply::Set(stat)),
        ) => (
            Action::Set {
                data: data.id(d),
                expected: *version,
                stat: Some(*stat),
            },
            Class::Write,
        ),
        (Op::Delete { version, .. }, Ok(Reply::Deleted)) => {
            (Action::Delete { expected: *version }, Class::Write)
        }
        (Op::GetData { .. }, Ok(Reply::Data(d, stat))) => (
            Action::ReadData {
                data: data.id(d),
                stat: *stat,
            },
            Class::Read,
        ),
        (Op::Exists { .. }, Ok(Reply::Exists(Some(stat)))) => {
            (Action::ReadStat(*stat), Class::Read)
        }
        (Op::Exists { .. }, Ok(Reply::Exists(None)))
        | (Op::GetData { .. } | Op::Exists { .. }, Err(ZkError::NoNode)) => {
            (Action::Absent, Class::Read)
        }
        // A create fails with NoNode when the parent is missing: then so is the node.
        (Op::Create { .. } | Op::SetData { .. } | Op::Delete { .. }, Err(ZkError::NoNode)) => {
            (Action::Absent, Class::WriteObserver)
        }
        // NotEmpty: ZooKeeper checks the version before the children
        // (PrepRequestProcessor); only existence is assumed here.
        (Op::Create { .. }, Err(ZkError::NodeExists))
        | (Op::Delete { .. }, Err(ZkError::NotEmpty)) => (Action::Present, Class::WriteObserver),
        (Op::SetData { version, .. } | Op::Delete { version, .. }, Err(ZkError::BadVersion)) => {
            (Action::VersionNot(*version), Class::WriteObserver)
        }
        // Unknown reads say nothing; other errors had no effect and constrain nothing.
        _ => return None,
    })
}

/// The zxids of the writes whose replies reported them. A write of unknown outcome that
/// took effect had a zxid of its own, none of these.
type Taken = HashSet<i64>;

/// The state after a read reported `stat` (czxid, mzxid) of it, or `None` if they
/// disagree with what is known. A state made by a write of unknown zxid learns them here;
/// that write came after every write placed before it, so its mzxid must be higher.
fn learn_stat(
    czxid: i64,
    mzxid: i64,
    last: i64,
    stat: &Stat,
    taken: &Taken,
) -> Option<(i64, i64, i64)> {
    let learnt = |known: i64, seen: i64| {
        (known == seen || (known == UNKNOWN_ZXID && !taken.contains(&seen))).then_some(seen)
    };
    let c = learnt(czxid, stat.czxid)?;
    let m = learnt(mzxid, stat.mzxid)?;
    if mzxid == UNKNOWN_ZXID && m != UNKNOWN_ZXID {
        if m <= last {
            return None;
        }
        return Some((c, m, m));
    }
    Some((c, m, last))
}

/// The state after an operation that changes nothing, if it fits the state.
fn observe(cfg: Cfg, a: &Action, taken: &Taken) -> Option<Cfg> {
    let Cfg { reg, last } = cfg;
    match (*a, reg) {
        (
            Action::ReadData { data: d, stat },
            Reg::Present {
                data,
                version,
                czxid,
                mzxid,
            },
        ) if d == data && d != UNSEEN && stat.version == version => {
            let (czxid, mzxid, last) = learn_stat(czxid, mzxid, last, &stat, taken)?;
            Some(Cfg {
                reg: Reg::Present {
                    data,
                    version,
                    czxid,
                    mzxid,
                },
                last,
            })
        }
        (
            Action::ReadStat(stat),
            Reg::Present {
                data,
                version,
                czxid,
                mzxid,
            },
        ) if stat.version == version => {
            let (czxid, mzxid, last) = learn_stat(czxid, mzxid, last, &stat, taken)?;
            Some(Cfg {
                reg: Reg::Present {
                    data,
                    version,
                    czxid,
                    mzxid,
                },
                last,
            })
        }
        (Action::Absent, Reg::Absent) | (Action::Present, Reg::Present { .. }) => Some(cfg),
        (Action::VersionNot(v), Reg::Present { version, .. }) if v != -1 && v != version => {
            Some(cfg)
        }
        _ => None,
    }
}

/// The state after a write, if the write can take effect now.
fn apply(cfg: Cfg, a: &Action, taken: &Taken) -> Option<Cfg> {
    let Cfg { reg, last } = cfg;
    // A write with a known zxid comes after every write placed before it.
    let after = |z: i64| z == UNKNOWN_ZXID || z > last;
    let top = |z: i64| if z == UNKNOWN_ZXID { last } else { z };
    match (*a, reg) {
        (Action::Create { data, stat }, Reg::Absent) => match stat {
            // A new node's stat: version 0, modified when created.
            Some(st) if st.version != 0 || st.mzxid != st.czxid || !after(st.czxid) => None,
            Some(st) => Some(Cfg {
                reg: Reg::Present {
                    data,
                    version: 0,
                    czxid: st.czxid,
                    mzxid: st.mzxid,
                },
                last: top(st.czxid),
            }),
            None => Some(Cfg {
                reg: Reg::Present {
                    data,
                    version: 0,
                    czxid: UNKNOWN_ZXID,
                    mzxid: UNKNOWN_ZXID,
                },
                last,
            }),
        },
        (
            Action::Set {
                data,
                expected,
                stat,
            },
            Reg::Present { version, czxid, .. },
        ) if expected == -1 || expected == version => {
            let version = version.wrapping_add(1);
            match stat {
                Some(st) => {
                    if st.version != version || !after(st.mzxid) {
                        return None;
                    }
                    // A node created by a write of unknown outcome has a zxid of its own.
                    let fits =
                        czxid == st.czxid || (czxid == UNKNOWN_ZXID && !taken.contains(&st.czxid));
                    let czxid = fits.then_some(st.czxid)?;
                    Some(Cfg {
                        reg: Reg::Present {
                            data,
                            version,
                            czxid,
                            mzxid: st.mzxid,
                        },
                        last: top(st.mzxid),
                    })
                }
                None => Some(Cfg {
                    reg: Reg::Present {
                        data,
                        version,
                        czxid,
                        mzxid: UNKNOWN_ZXID,
                    },
                    last,
                }),
            }
        }
        (Action::Delete { expected }, Reg::Present { version, .. })
            if expected == -1 || expected == version =>
        {
            Some(Cfg {
                reg: Reg::Absent,
                last,
            })
        }
        _ => None,
    }
}

/// Two unknown writes with the same signature are interchangeable.
fn signature(a: &Action) -> (u8, u32, i32) {
    match *a {
        Action::Create { data, .. } => (0, data, -1),
        Action::Set { data, expected, .. } => (1, data, expected),
        Action::Delete { expected } => (2, 0, expected),
        _ => (3, 0, 0),
    }
}

struct LinOp {
    /// Index in the log.
    index: usize,
    /// Dense session number within the path.
    session: usize,
    invoke: u64,
    /// `u64::MAX` for unknown outcomes.
    complete: u64,
    class: Class,
    action: Action,
    /// Reads: invocation time of the latest sync their session completed before them.
    sync_floor: u64,
    /// A successful write's zxid, from the stat of its reply.
    zxid: i64,
    /// The order writes are tried in: their zxid, or the one of their reply header.
    hint: i64,
}

impl LinOp {
    fn definite(&self) -> bool {
        self.class != Class::MaybeWrite
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The memo's keys are already uniform hashes.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64 ^ (n >> 64) as u64;
    }
}

/// Positions in the sorted lists below of their first operation not yet linearized.
#[derive(Clone)]
struct Cursors {
    def_by_complete: usize,
    wc_by_invoke: usize,
    known_by_zxid: usize,
    session_def_by_complete: Vec<usize>,
    session_reads_by_invoke: Vec<usize>,
    session_def_by_invoke: Vec<usize>,
    /// Per class of interchangeable unknown writes.
    class_first: Vec<usize>,
}

struct Saved {
    cursors: Cursors,
    cfg: Cfg,
    hash: (u64, u64),
    observer_hash: (u64, u64),
    order_len: usize,
}

struct Frame {
    saved: Saved,
    candidates: Vec<usize>,
    next: usize,
}

enum Step {
    Done,
    Dead,
    Limit,
    Branch(Vec<usize>),
}

enum Verdict {
    Linearizable,
    NotLinearizable,
    Limit,
}

/// The furthest the search got, for the failure message.
struct Best {
    placed: usize,
    state: Reg,
    /// The last operations placed (up to four).
    recent: Vec<usize>,
    /// The operations that could not come next.
    stuck: Vec<usize>,
}

/// Wing & Gong's search over one path. An operation may be linearized once every
/// operation that must precede it is: for a write (or failed write), every definite
/// operation that completed before it was invoked; for a read, its own session's
/// operations that completed before it was invoked and every operation that completed
/// before its latest `sync` was invoked. Reads and failed writes are placed as soon as they
/// fit; the search branches only over writes, and of the successful writes whose zxid is
/// known only ever tries the one with the lowest.
struct Search<'a> {
    ops: &'a [LinOp],
    limit: u64,
    keys: Vec<(u64, u64)>,
    def_by_complete: Vec<usize>,
    /// Definite writes and failed writes.
    wc_by_invoke: Vec<usize>,
    /// Successful writes with a known zxid.
    known_by_zxid: Vec<usize>,
    taken: Taken,
    /// Unknown writes by signature, each class in invocation order.
    classes: Vec<Vec<usize>>,
    class_of: Vec<usize>,
    session_def_by_complete: Vec<Vec<usize>>,
    session_reads_by_invoke: Vec<Vec<usize>>,
    session_def_by_invoke: Vec<Vec<usize>>,
    lin: Vec<bool>,
    order: Vec<usize>,
    cfg: Cfg,
    /// Zobrist hashes of the successful writes placed, and of the reads and failed writes.
    hash: (u64, u64),
    observer_hash: (u64, u64),
    cursors: Cursors,
    definite_total: usize,
    definite_left: usize,
    /// Operations of `session_def_by_invoke` placed.
    in_session_order_placed: usize,
    /// Bit of each unknown write in `used`.
    unknown_bit: Vec<usize>,
    /// The unknown writes placed, as a bitset.
    used: Vec<u64>,
    /// Explored configurations: a hash of the successful writes placed and the state (and
    /// of the other operations placed, when they are not a prefix of each session's), to a
    /// list (`memo_next`) of how far each session got (`memo_sessions`) and which unknown
    /// writes were placed (`memo_bits`).
    memo: HashMap<u128, u32, BuildHasherDefault<KeyHasher>>,
    memo_next: Vec<u32>,
    memo_sessions: Vec<u32>,
    memo_bits: Vec<u64>,
    steps: u64,
    best: Option<Best>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [LinOp], sessions: usize, initial: Reg, limit: u64) -> Search<'a> {
        let by = |f: &dyn Fn(&LinOp) -> bool, key: &dyn Fn(&LinOp) -> (i64, u64, u64)| {
            let mut v: Vec<usize> = (0..ops.len()).filter(|&k| f(&ops[k])).collect();
            v.sort_by_key(|&k| (key(&ops[k]), k));
            v
        };
        let by_complete = |o: &LinOp| (0, o.complete, o.invoke);
        let by_invoke = |o: &LinOp| (0, o.invoke, o.complete);
        let mut session_def_by_complete = Vec::new();
        let mut session_reads_by_invoke = Vec::new();
        let mut session_def_by_invoke = Vec::new();
        for s in 0..sessions {
            session_def_by_complete.push(by(&|o| o.session == s && o.definite(), &by_complete));
            session_reads_by_invoke.push(by(
                &|o| o.session == s && o.class == Class::Read,
                &by_invoke,
            ));
            session_def_by_invoke.push(by(
                &|o| o.session == s && o.definite() && o.complete != u64::MAX,
                &by_invoke,
            ));
        }
        let keys = (0..ops.len() as u64)
            .map(|k| {
                (
                    splitmix(2 * k + 0x1000),
                    splitmix(2 * k + 0x1001 + (1 << 40)),
                )
            })
            .collect();
        let last = match initial {
            Reg::Present { mzxid, .. } => mzxid,
            Reg::Absent => UNKNOWN_ZXID,
        };
        let mut class_index: HashMap<(u8, u32, i32), usize> = HashMap::new();
        let mut classes: Vec<Vec<usize>> = Vec::new();
        let mut class_of = vec![usize::MAX; ops.len()];
        for k in by(&|o| o.class == Class::MaybeWrite, &by_invoke) {
            let n = classes.len();
            let c = *class_index.entry(signature(&ops[k].action)).or_insert(n);
            if c == n {
                classes.push(Vec::new());
            }
            classes[c].push(k);
            class_of[k] = c;
        }
        let definite_total = ops.iter().filter(|o| o.definite()).count();
        let mut unknown_bit = vec![usize::MAX; ops.len()];
        let mut unknowns = 0;
        for (k, o) in ops.iter().enumerate() {
            if !o.definite() {
                unknown_bit[k] = unknowns;
                unknowns += 1;
            }
        }
        Search {
            ops,
            limit,
            keys,
            def_by_complete: by(&|o| o.definite(), &by_complete),
            wc_by_invoke: by(
                &|o| matches!(o.class, Class::Write | Class::WriteObserver),
                &by_invoke,
            ),
            known_by_zxid: by(
                &|o| o.class == Class::Write && o.zxid != UNKNOWN_ZXID,
                &|o| (o.zxid, o.invoke, o.complete),
            ),
            class_of,
            taken: ops
                .iter()
                .map(|o| o.zxid)
                .filter(|&z| z != UNKNOWN_ZXID)
                .collect(),
            session_def_by_complete,
            session_reads_by_invoke,
            session_def_by_invoke,
            lin: vec![false; ops.len()],
            order: Vec::new(),
            cfg: Cfg { reg: initial, last },
            hash: (0, 0),
            observer_hash: (0, 0),
            cursors: Cursors {
                def_by_complete: 0,
                wc_by_invoke: 0,
                known_by_zxid: 0,
                session_def_by_complete: vec![0; sessions],
                session_reads_by_invoke: vec![0; sessions],
                session_def_by_invoke: vec![0; sessions],
                class_first: vec![0; classes.len()],
            },
            classes,
            definite_total,
            definite_left: definite_total,
            in_session_order_placed: 0,
            unknown_bit,
            used: vec![0; unknowns.div_ceil(64)],
            memo: HashMap::default(),
            memo_next: Vec::new(),
            memo_sessions: Vec::new(),
            memo_bits: Vec::new(),
            steps: 0,
            best: None,
        }
    }

    fn run(&mut self) -> Verdict {
        let root = self.save();
        let mut stack = Vec::new();
        match self.enter() {
            Step::Done => return Verdict::Linearizable,
            Step::Limit => return Verdict::Limit,
            Step::Dead => return Verdict::NotLinearizable,
            Step::Branch(candidates) => stack.push(Frame {
                saved: root,
                candidates,
                next: 0,
            }),
        }
        while let Some(top) = stack.last_mut() {
            let Some(&k) = top.candidates.get(top.next) else {
                if let Some(f) = stack.pop() {
                    self.restore(&f.saved);
                }
                continue;
            };
            top.next += 1;
            let Some(next) = self.step(k) else {
                continue;
            };
            let saved = self.save();
            self.linearize(k, next);
            match self.enter() {
                Step::Done => return Verdict::Linearizable,
                Step::Limit => return Verdict::Limit,
                Step::Dead => self.restore(&saved),
                Step::Branch(candidates) => stack.push(Frame {
                    saved,
                    candidates,
                    next: 0,
                }),
            }
        }
        Verdict::NotLinearizable
    }

    fn save(&self) -> Saved {
        Saved {
            cursors: self.cursors.clone(),
            cfg: self.cfg,
            hash: self.hash,
            observer_hash: self.observer_hash,
            order_len: self.order.len(),
        }
    }

    fn restore(&mut self, saved: &Saved) {
        for &k in &self.order[saved.order_len..] {
            self.lin[k] = false;
            if self.ops[k].definite() {
                self.definite_left += 1;
                if self.ops[k].complete != u64::MAX {
                    self.in_session_order_placed -= 1;
                }
            } else {
                let b = self.unknown_bit[k];
                self.used[b / 64] &= !(1 << (b % 64));
            }
        }
        self.order.truncate(saved.order_len);
        self.cursors = saved.cursors.clone();
        self.cfg = saved.cfg;
        self.hash = saved.hash;
        self.observer_hash = saved.observer_hash;
    }

    fn linearize(&mut self, k: usize, cfg: Cfg) {
        self.lin[k] = true;
        self.order.push(k);
        self.cfg = cfg;
        if self.ops[k].definite() && self.ops[k].complete != u64::MAX {
            self.in_session_order_placed += 1;
        }
        if matches!(self.ops[k].class, Class::Read | Class::WriteObserver) {
            self.definite_left -= 1;
            self.observer_hash.0 ^= self.keys[k].0;
            self.observer_hash.1 ^= self.keys[k].1;
        } else if self.ops[k].definite() {
            self.definite_left -= 1;
            self.hash.0 ^= self.keys[k].0;
            self.hash.1 ^= self.keys[k].1;
        } else {
            let b = self.unknown_bit[k];
            self.used[b / 64] |= 1 << (b % 64);
        }
        let advance = |list: &[usize], cursor: &mut usize, lin: &[bool]| {
            while list.get(*cursor).is_some_and(|&k| lin[k]) {
                *cursor += 1;
            }
        };
        let s = self.ops[k].session;
        let c = &mut self.cursors;
        advance(&self.def_by_complete, &mut c.def_by_complete, &self.lin);
        advance(&self.wc_by_invoke, &mut c.wc_by_invoke, &self.lin);
        advance(&self.known_by_zxid, &mut c.known_by_zxid, &self.lin);
        advance(
            &self.session_def_by_complete[s],
            &mut c.session_def_by_complete[s],
            &self.lin,
        );
        advance(
            &self.session_reads_by_invoke[s],
            &mut c.session_reads_by_invoke[s],
            &self.lin,
        );
        advance(
            &self.session_def_by_invoke[s],
            &mut c.session_def_by_invoke[s],
            &self.lin,
        );
        if let Some(class) = self.classes.get(self.class_of[k]) {
            advance(class, &mut c.class_first[self.class_of[k]], &self.lin);
        }
    }

    /// The earliest completion among definite operations not yet linearized: nothing
    /// invoked after it may be linearized before it.
    fn horizon(&self) -> u64 {
        self.def_by_complete
            .get(self.cursors.def_by_complete)
            .map_or(u64::MAX, |&k| self.ops[k].complete)
    }

    fn session_horizon(&self, s: usize) -> u64 {
        self.session_def_by_complete[s]
            .get(self.cursors.session_def_by_complete[s])
            .map_or(u64::MAX, |&k| self.ops[k].complete)
    }

    /// Reads and failed writes that may be linearized now, in no particular order.
    fn eligible_observers(&self) -> Vec<usize> {
        let t = self.horizon();
        let mut out = Vec::new();
        for &k in &self.wc_by_invoke[self.cursors.wc_by_invoke..] {
            let o = &self.ops[k];
            if o.invoke > t {
                break;
            }
            if !self.lin[k] && o.class == Class::WriteObserver {
                out.push(k);
            }
        }
        for s in 0..self.session_reads_by_invoke.len() {
            let ts = self.session_horizon(s);
            let from = self.cursors.session_reads_by_invoke[s];
            for &k in &self.session_reads_by_invoke[s][from..] {
                let o = &self.ops[k];
                if o.invoke > ts {
                    break;
                }
                if !self.lin[k] && o.sync_floor <= t {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Places every read and failed write that fits the state as it is, until none does.
    /// One that would teach the state a zxid it does not know is left to `candidates`: it
    /// may belong to a later state that looks the same.
    /// Returns the eligible ones left.
    fn place_observers(&mut self) -> Vec<usize> {
        loop {
            let mut placed = false;
            let mut left = Vec::new();
            for k in self.eligible_observers() {
                if observe(self.cfg, &self.ops[k].action, &self.taken) == Some(self.cfg) {
                    self.linearize(k, self.cfg);
                    placed = true;
                } else {
                    left.push(k);
                }
            }
            if !placed {
                return left;
            }
        }
    }

    /// The state after placing operation `k`, if it fits.
    fn step(&self, k: usize) -> Option<Cfg> {
        let o = &self.ops[k];
        match o.class {
            Class::Read | Class::WriteObserver => observe(self.cfg, &o.action, &self.taken),
            Class::Write | Class::MaybeWrite => apply(self.cfg, &o.action, &self.taken),
        }
    }

    /// What may be placed next, most likely first: reads that would learn a zxid, writes.
    fn candidates(&self, observers: &[usize]) -> Vec<usize> {
        let t = self.horizon();
        let mut learning: Vec<usize> = observers
            .iter()
            .copied()
            .filter(|&k| self.step(k).is_some())
            .collect();
        learning.sort_by_key(|&k| (self.ops[k].complete, self.ops[k].invoke));
        // Known zxids are applied in order: only the lowest not yet placed may come next.
        let next_known = self.known_by_zxid.get(self.cursors.known_by_zxid).copied();
        let mut out = Vec::new();
        for &k in &self.wc_by_invoke[self.cursors.wc_by_invoke..] {
            let o = &self.ops[k];
            if o.invoke > t {
                break;
            }
            if self.lin[k] || o.class != Class::Write {
                continue;
            }
            if o.zxid != UNKNOWN_ZXID && next_known != Some(k) {
                continue;
            }
            if apply(self.cfg, &o.action, &self.taken).is_some() {
                out.push(k);
            }
        }
        // Of interchangeable unknown writes, only the earliest invoked is tried.
        let mut unknown = Vec::new();
        for (class, &first) in self.classes.iter().zip(&self.cursors.class_first) {
            let Some(&k) = class.get(first) else {
                continue;
            };
            let o = &self.ops[k];
            if o.invoke <= t && apply(self.cfg, &o.action, &self.taken).is_some() {
                unknown.push((k, signature(&o.action)));
            }
        }
        // Where a conditional write applies, an unconditional one of the same kind and data
        // does the same; using the conditional one, which fits fewer states, never hurts.
        let conditional: Vec<(u8, u32)> = unknown
            .iter()
            .filter(|(_, (_, _, v))| *v != -1)
            .map(|(_, (kind, d, _))| (*kind, *d))
            .collect();
        out.extend(
            unknown
                .iter()
                .filter(|(_, (kind, d, v))| *v != -1 || !conditional.contains(&(*kind, *d)))
                .map(|(k, _)| *k),
        );
        out.sort_by_key(|&k| {
            let o = &self.ops[k];
            (!o.definite(), o.hint, o.complete, o.invoke)
        });
        learning.extend(out);
        learning
    }

    fn enter(&mut self) -> Step {
        self.steps += 1;
        if self.steps > self.limit {
            return Step::Limit;
        }
        let observers = self.place_observers();
        if self.definite_left == 0 {
            return Step::Done;
        }
        self.note_progress(&observers);
        if self.explored() {
            return Step::Dead;
        }
        let candidates = self.candidates(&observers);
        if candidates.is_empty() {
            Step::Dead
        } else {
            Step::Branch(candidates)
        }
    }

    /// Whether a configuration at least as promising as this one was reached before;
    /// records this one if not. With the same successful writes placed and the same state,
    /// one that placed a superset of the reads and failed writes and a subset of the
    /// unknown writes can do all this one can: placing an operation that changes nothing
    /// never hurts, and an unknown write need never take effect nor precede anything. So
    /// the earlier one either failed, or is an ancestor still being explored. A session with
    /// one request in flight at a time has its operations placed in invocation order; then
    /// how many were placed says which.
    fn explored(&mut self) -> bool {
        let sessions = self.session_def_by_invoke.len();
        let prefix = self.in_session_order_placed
            == self.cursors.session_def_by_invoke.iter().sum::<usize>();
        let (h0, h1, salt) = if prefix {
            (self.hash.0, self.hash.1, 0x243f_6a88)
        } else {
            (
                self.hash.0 ^ self.observer_hash.0,
                self.hash.1 ^ self.observer_hash.1,
                0x1319_8a2e,
            )
        };
        let key = ((h0 ^ self.cfg.mix(salt)) as u128) << 64 | (h1 ^ self.cfg.mix(!salt)) as u128;
        let words = self.used.len();
        let head = self.memo.get(&key).copied().unwrap_or(u32::MAX);
        let mut node = head;
        while node != u32::MAX {
            let n = node as usize;
            let bits = &self.memo_bits[n * words..][..words];
            let fewer_unknowns = bits.iter().zip(&self.used).all(|(b, u)| b & !u == 0);
            let got = &self.memo_sessions[n * sessions..][..sessions];
            let further = !prefix
                || got
                    .iter()
                    .zip(&self.cursors.session_def_by_invoke)
                    .all(|(&g, &c)| g as usize >= c);
            if fewer_unknowns && further {
                return true;
            }
            node = self.memo_next[n];
        }
        let n = u32::try_from(self.memo_next.len()).unwrap_or(u32::MAX - 1);
        self.memo.insert(key, n);
        self.memo_next.push(head);
        self.memo_bits.extend_from_slice(&self.used);
        self.memo_sessions
            .extend(self.cursors.session_def_by_invoke.iter().map(|&c| {
                if prefix {
                    c as u32
                } else {
                    0
                }
            }));
        false
    }

    fn note_progress(&mut self, observers: &[usize]) {
        let placed = self.definite_total - self.definite_left;
        if self.best.as_ref().is_some_and(|b| b.placed >= placed) {
            return;
        }
        // The next write in zxid order, the first operation that must be placed, and the
        // reads and failed writes waiting for a state that fits them.
        let mut stuck: Vec<usize> = Vec::new();
        let next_known = self.known_by_zxid.get(self.cursors.known_by_zxid);
        let first_due = self.def_by_complete.get(self.cursors.def_by_complete);
        for &k in next_known.into_iter().chain(first_due) {
            if !stuck.contains(&k) {
                stuck.push(k);
            }
        }
        for &k in observers {
            if stuck.len() >= 6 {
                break;
            }
            if !stuck.contains(&k) {
                stuck.push(k);
            }
        }
        let recent = self.order[self.order.len().saturating_sub(4)..].to_vec();
        self.best = Some(Best {
            placed,
            state: self.cfg.reg,
            recent,
            stuck,
        });
    }
}
