//! The workloads: a closed loop of N sessions with P requests in flight each over an op
//! mix, populating N znodes, watch fan-out, and waiting for a restarted server to serve.
//!
//! Every loop here is bounded twice: by its own count or duration, and by a hard deadline
//! after which a session's task is abandoned (a stalled server cannot hang the benchmark).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use geokeeper_core::acl::open_acl_unsafe;
use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{ErrorCode, OpCode};
use geokeeper_core::request::{MultiOp, Request};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::client::Session;
use super::report::{self, new_hist, record, OpStats, RunResult};
use super::sys;
use super::Progress;

/// How long a session's handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long in-flight requests may take to drain once a run's time is up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions opened at once (a burst of a thousand overflows a 50-entry listen backlog).
const CONNECT_CONCURRENCY: usize = 64;
/// `CreateMode.EPHEMERAL_SEQUENTIAL`.
const EPHEMERAL_SEQUENTIAL: i32 = 3;

/// One kind of request the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    Exists,
    Children,
    CreateSeqEph,
    /// A multi of check (any version) + setData on the same key.
    Multi,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Exists => "exists",
            Op::Children => "children",
            Op::CreateSeqEph => "create-seq-eph",
            Op::Multi => "multi",
        }
    }
}

impl FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Op, String> {
        Ok(match s.trim() {
            "get" => Op::Get,
            "set" => Op::Set,
            "exists" => Op::Exists,
            "children" => Op::Children,
            "create-seq-eph" | "create-sequential-ephemeral" | "cse" => Op::CreateSeqEph,
            "multi" | "multi-check-set" => Op::Multi,
            o => {
                return Err(format!(
                    "unknown op {o:?} (ops: get, set, exists, children, create-sequential-ephemeral, multi)"
                ))
            }
        })
    }
}

/// An op mix: `get=90,set=10` (weights, not necessarily summing to 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub Vec<(Op, u32)>);

impl FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut v: Vec<(Op, u32)> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (op, w) = match part.split_once('=') {
                Some((o, w)) => (
                    o,
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("bad weight in {part:?}"))?,
                ),
                None => (part, 1),
            };
            let op: Op = op.parse()?;
            if w == 0 {
                continue;
            }
            match v.iter_mut().find(|(o, _)| *o == op) {
                Some(e) => e.1 += w,
                None => v.push((op, w)),
            }
        }
        if v.is_empty() {
            return Err(format!("empty op mix {s:?}"));
        }
        Ok(Mix(v))
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(o, w)| format!("{}={w}", o.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Mix {
    fn total(&self) -> u64 {
        self.0.iter().map(|(_, w)| *w as u64).sum()
    }

    /// The index (into `self.0`) of the op a random number picks.
    fn pick(&self, r: u64) -> usize {
        let mut x = r % self.total();
        for (i, (_, w)) in self.0.iter().enumerate() {
            if x < *w as u64 {
                return i;
            }
            x -= *w as u64;
        }
        self.0.len() - 1
    }
}

/// xorshift64*: the generator needs cheap, reproducible choices, not good randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A value of `size` bytes (printable, so dumps of the data directory stay readable).
pub fn value_of(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Parses a connect string (`127.0.0.1:2181,127.0.0.2:2181`; port 2181 when omitted).
pub fn parse_hosts(s: &str) -> Result<Vec<SocketAddr>, String> {
    let mut v = Vec::new();
    for h in s.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        if h.contains('/') {
            return Err(format!("{h:?}: a chroot suffix is not supported"));
        }
        let with_port = if h.parse::<IpAddr>().is_ok() || !h.contains(':') {
            format!("{h}:2181")
        } else {
            h.to_string()
        };
        let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
            .map_err(|e| format!("{h:?}: {e}"))?
            .collect();
        let a = addrs.first().ok_or_else(|| format!("{h:?}: no address"))?;
        v.push(*a);
    }
    if v.is_empty() {
        return Err("no hosts".into());
    }
    Ok(v)
}

/// The local address session `i` connects from: spread over 127.0.0.2–127.0.0.251 when
/// the server is on IPv4 loopback, the system's choice otherwise.
fn source_for(server: SocketAddr, i: usize) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => {
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8)))
        }
        _ => None,
    }
}

/// Opens `n` sessions over `hosts` (round robin), a few at a time.
pub async fn connect_all(
    hosts: &[SocketAddr],
    n: usize,
    timeout_ms: i32,
    bar: Option<&ProgressBar>,
) -> io::Result<Vec<Session>> {
    let mut out: Vec<Option<Session>> = (0..n).map(|_| None).collect();
    let mut i = 0;
    while i < n {
        let mut set = JoinSet::new();
        for j in i..(i + CONNECT_CONCURRENCY).min(n) {
            let addr = hosts[j % hosts.len()];
            set.spawn(async move {
                let s =
                    Session::connect_from(addr, source_for(addr, j), timeout_ms, CONNECT_TIMEOUT)
                        .await;
                (j, s)
            });
        }
        while let Some(r) = set.join_next().await {
            let (j, s) = r.map_err(io::Error::other)?;
            let s = s.map_err(|e| io::Error::new(e.kind(), format!("session {j}: {e}")))?;
            out[j] = Some(s);
            if let Some(b) = bar {
                b.inc(1);
            }
        }
        i += CONNECT_CONCURRENCY;
    }
    Ok(out.into_iter().flatten().collect())
}

/// A request waiting for its reply.
struct Pending {
    xid: i32,
    op: usize,
    start: Instant,
}

/// Keeps up to `in_flight` requests outstanding on `s`, asking `next` for each new one
/// until it says no more, and records every reply started at or after `from` and
/// received by `until` into `stats[op]`. Replies come back in request order (FIFO per
/// session); an error code equal to `tolerate` is not counted as an error.
#[allow(clippy::too_many_arguments)]
async fn pump<F>(
    s: &mut Session,
    in_flight: usize,
    mut next: F,
    from: Instant,
    until: Instant,
    stats: &mut [OpStats],
    tolerate: i32,
    done: &AtomicU64,
) -> io::Result<()>
where
    F: FnMut(Instant) -> Option<(usize, OpCode, Request)>,
{
    let mut q: VecDeque<Pending> = VecDeque::with_capacity(in_flight);
    let now = Instant::now();
    while q.len() < in_flight {
        let Some((op, code, req)) = next(now) else {
            break;
        };
        let x = s.queue(code, &req);
        q.push_back(Pending {
            xid: x,
            op,
            start: now,
        });
    }
    let t = Instant::now();
    q.iter_mut().for_each(|p| p.start = t);
    s.flush().await?;
    while !q.is_empty() {
        s.fill().await?;
        let mut added = 0usize;
        let mut got = 0u64;
        while let Some(f) = s.next_frame()? {
            if f.header.xid < 0 {
                // A notification or a ping reply: not an answer to a request.
                continue;
            }
            let p = q.pop_front().ok_or_else(|| {
                io::Error::other(format!("reply xid {} with nothing pending", f.header.xid))
            })?;
            if p.xid != f.header.xid {
                return Err(io::Error::other(format!(
                    "reply xid {} where {} was due: replies out of order",
                    f.header.xid, p.xid
                )));
            }
            let now = Instant::now();
            if p.start >= from && now <= until {
                let st = &mut stats[p.op];
                st.count += 1;
                if f.header.err != 0 && f.header.err != tolerate {
                    st.errors += 1;
                }
                record(&mut st.hist, now - p.start);
            }
            got += 1;
            if let Some((op, code, req)) = next(now) {
                let x = s.queue(code, &req);
                q.push_back(Pending {
                    xid: x,
                    op,
                    start: now,
                });
                added += 1;
            }
        }
        done.fetch_add(got, Ordering::Relaxed);
        if added > 0 {
            // The requests leave now, not when the reply that made room for them arrived.
            let t = Instant::now();
            let n = q.len();
            q.iter_mut().skip(n - added).for_each(|p| p.start = t);
            s.flush().await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The closed loop
// ---------------------------------------------------------------------------------------

/// A closed-loop run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub hosts: Vec<SocketAddr>,
    pub sessions: usize,
    pub in_flight: usize,
    pub mix: Mix,
    pub value_size: usize,
    pub keys: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub session_timeout_ms: i32,
    /// Parent of the keys (`{prefix}/k000000` …) and of the sequential ephemerals
    /// (`{prefix}/eph/n-…`).
    pub prefix: String,
    /// The server's pid, for its CPU seconds per operation.
    pub server_pid: Option<u32>,
}

impl LoadSpec {
    fn key_path(&self, i: usize) -> String {
        format!("{}/k{i:06}", self.prefix)
    }

    fn hosts_text(&self) -> String {
        self.hosts
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What the generator builds requests from, shared by all sessions.
struct Ctx {
    paths: Vec<String>,
    value: Bytes,
    eph_prefix: String,
    acl: Vec<Acl>,
}

impl Ctx {
    fn request(&self, op: Op, key: usize) -> (OpCode, Request) {
        let path = || self.paths[key].clone();
        match op {
            Op::Get => (
                OpCode::GetData,
                Request::GetData(GetDataRequest {
                    path: path(),
                    watch: false,
                }),
            ),
            Op::Set => (
                OpCode::SetData,
                Request::SetData(SetDataRequest {
                    path: path(),
                    data: Some(self.value.clone()),
                    version: -1,
                }),
            ),
            Op::Exists => (
                OpCode::Exists,
                Request::Exists(ExistsRequest {
                    path: path(),
                    watch: false,
                }),
            ),
            Op::Children => (
                OpCode::GetChildren,
                Request::GetChildren(GetChildrenRequest {
                    path: path(),
                    watch: false,
                }),
            ),
            Op::CreateSeqEph => (
                OpCode::Create,
                Request::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: self.eph_prefix.clone(),
                        data: Some(self.value.clone()),
                        acl: self.acl.clone(),
                        flags: EPHEMERAL_SEQUENTIAL,
                    },
                },
            ),
            Op::Multi => (
                OpCode::Multi,
                Request::Multi(vec![
                    MultiOp::Check(CheckVersionRequest {
                        path: path(),
                        version: -1,
                    }),
                    MultiOp::SetData(SetDataRequest {
                        path: path(),
                        data: Some(self.value.clone()),
                        version: -1,
                    }),
                ]),
            ),
        }
    }
}

/// Creates what a closed loop needs: the prefix, its keys with values of the run's size,
/// and the parent of the sequential ephemerals. Idempotent: existing keys get the value.
pub async fn prepare(spec: &LoadSpec) -> io::Result<()> {
    let value = value_of(spec.value_size);
    let mut s = Session::connect(spec.hosts[0], spec.session_timeout_ms, CONNECT_TIMEOUT).await?;
    for p in [spec.prefix.clone(), format!("{}/eph", spec.prefix)] {
        create_path(&mut s, &p, Bytes::new()).await?;
    }
    s.close(Duration::from_secs(5)).await;
    let paths: Vec<String> = (0..spec.keys).map(|i| spec.key_path(i)).collect();
    let paths = Arc::new(paths);
    let data = value.clone();
    let creates = paths.clone();
    run_batch(
        &spec.hosts,
        4,
        32,
        spec.keys,
        spec.session_timeout_ms,
        None,
        move |i| {
            (
                OpCode::Create,
                Request::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: creates[i].clone(),
                        data: Some(data.clone()),
                        acl: open_acl_unsafe(),
                        flags: 0,
                    },
                },
            )
        },
    )
    .await?;
    // Keys left by an earlier run may hold another size of value.
    let sets = paths.clone();
    run_batch(
        &spec.hosts,
        4,
        32,
        spec.keys,
        spec.session_timeout_ms,
        None,
        move |i| {
            (
                OpCode::SetData,
                Request::SetData(SetDataRequest {
                    path: sets[i].clone(),
                    data: Some(value.clone()),
                    version: -1,
                }),
            )
        },
    )
    .await?;
    Ok(())
}

/// Creates one persistent znode; an existing one is fine.
async fn create_path(s: &mut Session, path: &str, data: Bytes) -> io::Result<()> {
    let req = Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.to_owned(),
            data: Some(data),
            acl: open_acl_unsafe(),
            flags: 0,
        },
    };
    let f = s
        .call(OpCode::Create, &req, Duration::from_secs(30))
        .await?;
    match f.header.err {
        0 => Ok(()),
        e if e == ErrorCode::NodeExists.code() => Ok(()),
        e => Err(io::Error::other(format!("create {path}: error {e}"))),
    }
}

/// Sends `count` requests made by `make(i)` over `sessions` sessions with `in_flight`
/// outstanding each, sessions taking the next index as they go; NodeExists is no error.
/// Returns the create latencies and counts, and the time it took.
async fn run_batch<M>(
    hosts: &[SocketAddr],
    sessions: usize,
    in_flight: usize,
    count: usize,
    timeout_ms: i32,
    bar: Option<ProgressBar>,
    make: M,
) -> io::Result<(OpStats, Duration, Vec<String>)>
where
    M: Fn(usize) -> (OpCode, Request) + Send + Sync + 'static,
{
    let sessions = sessions.max(1).min(count.max(1));
    let conns = connect_all(hosts, sessions, timeout_ms, None).await?;
    let make = Arc::new(make);
    let cursor = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let far = start + Duration::from_secs(365 * 24 * 3600);
    let mut set = JoinSet::new();
    for mut s in conns {
        let (make, cursor, done) = (make.clone(), cursor.clone(), done.clone());
        set.spawn(async move {
            let mut stats = vec![OpStats::new("create")];
            let next = |_now: Instant| {
                let i = cursor.fetch_add(1, Ordering::Relaxed);
                (i < count).then(|| {
                    let (code, req) = make(i);
                    (0, code, req)
                })
            };
            let r = pump(
                &mut s,
                in_flight,
                next,
                start,
                far,
                &mut stats,
                ErrorCode::NodeExists.code(),
                &done,
            )
            .await;
            s.close(Duration::from_secs(5)).await;
            (stats, r)
        });
    }
    let ticker = bar.map(|b| spawn_ticker(b, done.clone()));
    let mut total = OpStats::new("create");
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        let (stats, res) = r.map_err(io::Error::other)?;
        total.merge(&stats[0]);
        if let Err(e) = res {
            failures.push(e.to_string());
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }
    let took = start.elapsed();
    if failures.len() == sessions {
        return Err(io::Error::other(format!(
            "every session failed: {}",
            failures[0]
        )));
    }
    Ok((total, took, failures))
}

/// Moves `bar` to the number of operations done, every 200 ms, until aborted (or a day).
fn spawn_ticker(bar: ProgressBar, done: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..(5 * 86_400) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bar.set_position(done.load(Ordering::Relaxed));
        }
    })
}

/// Runs the closed loop: `sessions` sessions, each keeping `in_flight` requests of the
/// mix outstanding, for warm-up plus duration; reports the measured window.
pub async fn run_load(spec: &LoadSpec, progress: &Progress) -> io::Result<RunResult> {
    let ctx = Arc::new(Ctx {
        paths: (0..spec.keys.max(1)).map(|i| spec.key_path(i)).collect(),
        value: value_of(spec.value_size),
        eph_prefix: format!("{}/eph/n-", spec.prefix),
        acl: open_acl_unsafe(),
    });
    let conns = connect_all(&spec.hosts, spec.sessions, spec.session_timeout_ms, None).await?;
    let start = Instant::now();
    let from = start + spec.warmup;
    let until = from + spec.duration;
    let done = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    let ops: Vec<Op> = spec.mix.0.iter().map(|(o, _)| *o).collect();
    for (i, mut s) in conns.into_iter().enumerate() {
        let (ctx, done, mix, ops) = (ctx.clone(), done.clone(), spec.mix.clone(), ops.clone());
        let (keys, in_flight) = (ctx.paths.len() as u64, spec.in_flight);
        set.spawn(async move {
            let mut stats: Vec<OpStats> = ops.iter().map(|o| OpStats::new(o.name())).collect();
            let mut rng = Rng::new(i as u64 + 1);
            let next = |now: Instant| {
                if now >= until {
                    return None;
                }
                let op = mix.pick(rng.next());
                let key = (rng.next() % keys) as usize;
                let (code, req) = ctx.request(ops[op], key);
                Some((op, code, req))
            };
            let r = tokio::time::timeout_at(
                (until + DRAIN_TIMEOUT).into(),
                pump(&mut s, in_flight, next, from, until, &mut stats, 0, &done),
            )
            .await;
            let r = match r {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "replies did not drain in time",
                )),
            };
            if r.is_ok() {
                s.close(Duration::from_secs(5)).await;
            }
            (stats, r.map_err(|e| format!("session {i}: {e}")))
        });
    }
    // CPU seconds of the server, of this process and of the machine over the window.
    let pid = spec.server_pid;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let a = sys::CpuSample::take(pid);
        tokio::time::sleep_until(until.into()).await;
        sys::CpuUse::between(&a, &sys::CpuSample::take(pid))
    });
    let bar = progress.bar(
        (spec.warmup + spec.duration).as_millis() as u64,
        "{spinner} {elapsed_precise} [{bar:30}] {msg}",
    );
    let ticker = {
        let bar = bar.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let total = until.duration_since(start).as_millis() as u64;
            let mut last = 0u64;
            let mut at = Instant::now();
            while Instant::now() < until + DRAIN_TIMEOUT {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let d = done.load(Ordering::Relaxed);
                let rate = (d - last) as f64 / at.elapsed().as_secs_f64().max(1e-3);
                let phase = if Instant::now() < from {
                    "warm-up"
                } else {
                    "measuring"
                };
                bar.set_message(format!("{phase}  {rate:.0} ops/s"));
                bar.set_position((start.elapsed().as_millis() as u64).min(total));
                last = d;
                at = Instant::now();
            }
        })
    };
    let mut merged: Vec<OpStats> = ops.iter().map(|o| OpStats::new(o.name())).collect();
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        let (stats, res) = r.map_err(io::Error::other)?;
        for (m, s) in merged.iter_mut().zip(&stats) {
            m.merge(s);
        }
        if let Err(e) = res {
            failures.push(e);
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    let cpu = cpu.await.unwrap_or_default();
    if failures.len() == spec.sessions {
        return Err(io::Error::other(format!(
            "every session failed: {}",
            failures[0]
        )));
    }
    failures.truncate(5);
    Ok(RunResult {
        workload: spec.mix.to_string(),
        hosts: spec.hosts_text(),
        sessions: spec.sessions,
        in_flight: spec.in_flight,
        value_size: spec.value_size,
        keys: spec.keys,
        warmup: spec.warmup,
        window: spec.duration,
        ops: merged,
        cpu,
        failures,
    })
}

// ---------------------------------------------------------------------------------------
// Populate
// ---------------------------------------------------------------------------------------

/// Creating `count` znodes of `value_size` bytes.
#[derive(Debug, Clone)]
pub struct PopulateSpec {
    pub hosts: Vec<SocketAddr>,
    pub count: usize,
    pub value_size: usize,
    pub sessions: usize,
    pub in_flight: usize,
    /// The znodes go under this parent…
    pub parent: String,
    /// …in directories of this many (`{parent}/d0000/n0000`); 0: all directly under it.
    pub per_dir: usize,
    pub session_timeout_ms: i32,
    pub server_pid: Option<u32>,
}

impl PopulateSpec {
    pub fn leaf(&self, i: usize) -> String {
        match (i.checked_div(self.per_dir), i.checked_rem(self.per_dir)) {
            (Some(d), Some(n)) => format!("{}/d{d:04}/n{n:04}", self.parent),
            _ => format!("{}/n{i:07}", self.parent),
        }
    }

    /// The last znode a full run creates (a probe that the data is all there).
    pub fn last_leaf(&self) -> String {
        self.leaf(self.count.saturating_sub(1))
    }
}

/// Creates the parent, the directories, then the znodes; NodeExists counts as done, so an
/// interrupted run can be completed.
pub async fn populate(spec: &PopulateSpec, progress: &Progress) -> io::Result<RunResult> {
    let cpu0 = sys::CpuSample::take(spec.server_pid);
    let mut s = Session::connect(spec.hosts[0], spec.session_timeout_ms, CONNECT_TIMEOUT).await?;
    let mut at = String::new();
    for part in spec.parent.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        create_path(&mut s, &at, Bytes::new()).await?;
    }
    s.close(Duration::from_secs(5)).await;
    if spec.per_dir > 0 {
        let dirs = spec.count.div_ceil(spec.per_dir);
        let parent = spec.parent.clone();
        run_batch(
            &spec.hosts,
            spec.sessions,
            spec.in_flight,
            dirs,
            spec.session_timeout_ms,
            None,
            move |d| {
                (
                    OpCode::Create,
                    Request::Create {
                        op: OpCode::Create,
                        req: CreateRequest {
                            path: format!("{parent}/d{d:04}"),
                            data: Some(Bytes::new()),
                            acl: open_acl_unsafe(),
                            flags: 0,
                        },
                    },
                )
            },
        )
        .await?;
    }
    let value = value_of(spec.value_size);
    let leaf_spec = spec.clone();
    let acl = open_acl_unsafe();
    let bar = progress.bar(
        spec.count as u64,
        "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} znodes ({per_sec}, eta {eta})",
    );
    let (stats, took, failures) = run_batch(
        &spec.hosts,
        spec.sessions,
        spec.in_flight,
        spec.count,
        spec.session_timeout_ms,
        Some(bar.clone()),
        move |i| {
            (
                OpCode::Create,
                Request::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: leaf_spec.leaf(i),
                        data: Some(value.clone()),
                        acl: acl.clone(),
                        flags: 0,
                    },
                },
            )
        },
    )
    .await?;
    bar.finish_and_clear();
    let cpu = sys::CpuUse::between(&cpu0, &sys::CpuSample::take(spec.server_pid));
    Ok(RunResult {
        workload: "populate".into(),
        hosts: spec
            .hosts
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(","),
        sessions: spec.sessions,
        in_flight: spec.in_flight,
        value_size: spec.value_size,
        keys: spec.count,
        warmup: Duration::ZERO,
        window: took,
        ops: vec![stats],
        cpu,
        failures: failures.into_iter().take(5).collect(),
    })
}

// ---------------------------------------------------------------------------------------
// Watch fan-out
// ---------------------------------------------------------------------------------------

/// W watcher sessions each holding a data watch on one znode; one setData; the time until
/// all W notifications have arrived. Watches are one-shot: once a round's W events are
/// in, every watcher re-arms (getData with watch), and the next round starts when all
/// have, so the re-arming traffic never overlaps the fan-out being timed.
#[derive(Debug, Clone)]
pub struct FanoutSpec {
    pub hosts: Vec<SocketAddr>,
    pub watchers: usize,
    /// Rounds are run until this many have been measured or `duration` has passed.
    pub max_rounds: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub value_size: usize,
    pub path: String,
    pub session_timeout_ms: i32,
    pub server_pid: Option<u32>,
}

pub struct FanoutResult {
    pub watchers: usize,
    pub rounds: u64,
    pub window: Duration,
    /// setData sent → last of the W notifications received, per round.
    pub all: OpStats,
    /// setData sent → each notification received.
    pub each: OpStats,
    /// The setData's own latency.
    pub set: OpStats,
    pub cpu: sys::CpuUse,
}

impl FanoutResult {
    /// Server CPU seconds per 1,000 notifications delivered.
    pub fn server_cpu_per_1k_events(&self) -> Option<f64> {
        self.cpu
            .server_s
            .filter(|_| self.each.count > 0)
            .map(|c| c * 1000.0 / self.each.count as f64)
    }

    pub fn others_cores(&self) -> Option<f64> {
        report::cores(self.cpu.others_s, self.window)
    }

    pub fn table(&self) -> String {
        let mut s = format!(
            "watch fan-out: {} watchers, {} rounds measured over {:.1} s\n{:<28} {:>10} {:>10} {:>10} {:>10}\n",
            self.watchers,
            self.rounds,
            self.window.as_secs_f64(),
            "",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs"
        );
        for (name, o) in [
            ("setData → all events", &self.all),
            ("setData → each event", &self.each),
            ("setData reply", &self.set),
        ] {
            s.push_str(&format!(
                "{:<28} {:>10} {:>10} {:>10} {:>10}\n",
                name,
                o.pct_us(50.0),
                o.pct_us(99.0),
                o.pct_us(99.9),
                o.hist.max()
            ));
        }
        if let Some(c) = self.server_cpu_per_1k_events() {
            s.push_str(&format!(
                "server CPU: {c:.4} s per 1,000 events delivered\n"
            ));
        }
        if let Some(c) = self.others_cores() {
            s.push_str(&format!(
                "other processes: {c:.2} cores of user CPU (noise when not near 0)\n"
            ));
        }
        s
    }

    pub fn json(&self) -> String {
        let mut j = report::Json::object();
        j.str("workload", "fanout")
            .num("watchers", self.watchers as f64)
            .num("rounds", self.rounds as f64)
            .num("duration_s", self.window.as_secs_f64());
        for (k, o) in [("all", &self.all), ("each", &self.each), ("set", &self.set)] {
            let mut x = report::Json::object();
            x.num("count", o.count as f64)
                .num("p50_us", o.pct_us(50.0) as f64)
                .num("p99_us", o.pct_us(99.0) as f64)
                .num("p999_us", o.pct_us(99.9) as f64)
                .num("max_us", o.hist.max() as f64);
            j.raw(k, &x.finish());
        }
        let per_1k = |c: Option<f64>| {
            c.filter(|_| self.each.count > 0)
                .map(|c| c * 1000.0 / self.each.count as f64)
        };
        j.opt("server_cpu_s_per_1k_events", per_1k(self.cpu.server_s))
            .opt("client_cpu_s_per_1k_events", per_1k(self.cpu.client_s))
            .opt("other_load_cores", self.others_cores());
        j.finish()
    }
}

struct FanShared {
    base: Instant,
    watchers: usize,
    armed: AtomicUsize,
    received: AtomicUsize,
    /// When the round's setData left, in ns since `base`.
    t0_ns: AtomicU64,
    /// The latest notification of the round, in ns since `base`.
    last_ns: AtomicU64,
    /// Whether the round's events are measured.
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Wakes the coordinator (all armed, all received).
    notify: Notify,
    /// The round whose events are all in: watchers re-arm when it moves.
    done_round: tokio::sync::watch::Sender<u64>,
    each: Mutex<Histogram<u64>>,
}

async fn watcher(
    mut s: Session,
    path: String,
    sh: Arc<FanShared>,
    max_wait: Duration,
) -> io::Result<()> {
    let arm = Request::GetData(GetDataRequest {
        path: path.clone(),
        watch: true,
    });
    let mut rounds = sh.done_round.subscribe();
    for round in 1u64.. {
        let f = s.call(OpCode::GetData, &arm, max_wait).await?;
        if f.header.err != 0 {
            return Err(io::Error::other(format!("getData: error {}", f.header.err)));
        }
        if sh.armed.fetch_add(1, Ordering::AcqRel) + 1 == sh.watchers {
            sh.notify.notify_one();
        }
        // The event, pinging while idle (read_frame does), within the bound.
        let deadline = Instant::now() + max_wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = s.read_frame(left).await?;
            // NodeDataChanged (3) on the watched path.
            if f.event().is_some_and(|e| e.r#type == 3 && e.path == *path) {
                break;
            }
        }
        let now = Instant::now();
        if sh.stop.load(Ordering::Acquire) {
            break;
        }
        let ns = now.duration_since(sh.base).as_nanos() as u64;
        sh.last_ns.fetch_max(ns, Ordering::AcqRel);
        if sh.measuring.load(Ordering::Acquire) {
            let t0 = sh.t0_ns.load(Ordering::Acquire);
            if let Ok(mut h) = sh.each.lock() {
                record(&mut h, Duration::from_nanos(ns.saturating_sub(t0)));
            }
        }
        if sh.received.fetch_add(1, Ordering::AcqRel) + 1 == sh.watchers {
            sh.notify.notify_one();
        }
        // Re-arm only once every watcher has its event (pinging meanwhile is not needed:
        // a round is far shorter than the session timeout).
        let wait = rounds.wait_for(|r| *r >= round);
        match tokio::time::timeout(max_wait, wait).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the round did not end",
                ))
            }
        }
        if sh.stop.load(Ordering::Acquire) {
            break;
        }
    }
    s.close(Duration::from_secs(5)).await;
    Ok(())
}

/// Waits until `counter` reaches `target`, within `within`.
async fn wait_count(
    sh: &FanShared,
    counter: &AtomicUsize,
    target: usize,
    within: Duration,
    what: &str,
) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = sh.notify.notified();
        if counter.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, n).await.is_err() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{what}: {} of {target} after {within:?}",
                    counter.load(Ordering::Acquire)
                ),
            ));
        }
    }
}

pub async fn fanout(spec: &FanoutSpec, progress: &Progress) -> io::Result<FanoutResult> {
    let max_wait = Duration::from_secs(30);
    let value = value_of(spec.value_size);
    let mut writer =
        Session::connect(spec.hosts[0], spec.session_timeout_ms, CONNECT_TIMEOUT).await?;
    create_path(&mut writer, &spec.path, value.clone()).await?;
    let bar = progress.bar(
        spec.watchers as u64,
        "{spinner} connecting watchers [{bar:30}] {pos}/{len}",
    );
    let conns = connect_all(
        &spec.hosts,
        spec.watchers,
        spec.session_timeout_ms,
        Some(&bar),
    )
    .await?;
    bar.finish_and_clear();
    let sh = Arc::new(FanShared {
        base: Instant::now(),
        watchers: conns.len(),
        armed: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        t0_ns: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        notify: Notify::new(),
        done_round: tokio::sync::watch::channel(0).0,
        each: Mutex::new(new_hist()),
    });
    let mut tasks = JoinSet::new();
    for s in conns {
        tasks.spawn(watcher(s, spec.path.clone(), sh.clone(), max_wait));
    }
    let set_req = Request::SetData(SetDataRequest {
        path: spec.path.clone(),
        data: Some(value),
        version: -1,
    });
    let mut all = OpStats::new("all");
    let mut set = OpStats::new("set");
    let start = Instant::now();
    let from = start + spec.warmup;
    let until = from + spec.duration;
    let mut cpu0 = None;
    let bar = progress.bar(
        spec.max_rounds as u64,
        "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} rounds {msg}",
    );
    let mut result: io::Result<()> = Ok(());
    let mut window_start = None;
    for round in 1..=(spec.max_rounds as u64 + 1_000_000) {
        if Instant::now() >= until || all.count as usize >= spec.max_rounds {
            break;
        }
        if let Err(e) = wait_count(&sh, &sh.armed, sh.watchers, max_wait, "watchers armed").await {
            result = Err(e);
            break;
        }
        let measuring = Instant::now() >= from;
        if measuring && cpu0.is_none() {
            cpu0 = Some(sys::CpuSample::take(spec.server_pid));
            window_start = Some(Instant::now());
        }
        sh.measuring.store(measuring, Ordering::Release);
        sh.armed.store(0, Ordering::Release);
        sh.received.store(0, Ordering::Release);
        sh.last_ns.store(0, Ordering::Release);
        let t0 = Instant::now();
        sh.t0_ns.store(
            t0.duration_since(sh.base).as_nanos() as u64,
            Ordering::Release,
        );
        match writer.call(OpCode::SetData, &set_req, max_wait).await {
            Ok(f) if f.header.err == 0 => {
                if measuring {
                    set.count += 1;
                    record(&mut set.hist, t0.elapsed());
                }
            }
            Ok(f) => {
                result = Err(io::Error::other(format!("setData: error {}", f.header.err)));
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        if let Err(e) = wait_count(&sh, &sh.received, sh.watchers, max_wait, "notifications").await
        {
            result = Err(e);
            break;
        }
        if measuring {
            let last = sh.last_ns.load(Ordering::Acquire);
            let t0 = sh.t0_ns.load(Ordering::Acquire);
            all.count += 1;
            record(&mut all.hist, Duration::from_nanos(last.saturating_sub(t0)));
            bar.set_position(all.count);
            bar.set_message(format!(
                "last {:.1} ms",
                last.saturating_sub(t0) as f64 / 1e6
            ));
        }
        sh.done_round.send_replace(round);
    }
    let window = window_start.map(|w| w.elapsed()).unwrap_or_default();
    let cpu = cpu0.map(|c| sys::CpuUse::between(&c, &sys::CpuSample::take(spec.server_pid)));
    bar.finish_and_clear();
    // Release the watchers: they see `stop` with the next event (or the next round) and
    // close their sessions.
    sh.stop.store(true, Ordering::Release);
    sh.done_round.send_replace(u64::MAX);
    let _ = writer.call(OpCode::SetData, &set_req, max_wait).await;
    writer.close(Duration::from_secs(5)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                break;
            }
        }
    }
    result?;
    let mut each = OpStats::new("each");
    if let Ok(h) = sh.each.lock() {
        each.count = h.len();
        let _ = each.hist.add(&*h);
    }
    Ok(FanoutResult {
        watchers: sh.watchers,
        rounds: all.count,
        window,
        all,
        each,
        set,
        cpu: cpu.unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------

/// Polls `addr` until a new session can read `probe` (the server has restored its data
/// and serves), or `within` passes or `alive` says the server died. Returns how long it
/// took from `since`.
pub async fn wait_serving(
    addr: SocketAddr,
    probe: &str,
    since: Instant,
    within: Duration,
    mut alive: impl FnMut() -> bool,
) -> io::Result<Duration> {
    let deadline = since + within;
    let mut last_err = String::from("not tried");
    while Instant::now() < deadline {
        if !alive() {
            return Err(io::Error::other(format!(
                "the server exited before serving ({last_err})"
            )));
        }
        match Session::connect(addr, 30_000, Duration::from_secs(2)).await {
            Ok(mut s) => match s.get(probe, Duration::from_secs(10)).await {
                Ok(f) if f.header.err == 0 => {
                    let took = since.elapsed();
                    s.close(Duration::from_secs(5)).await;
                    return Ok(took);
                }
                Ok(f) => last_err = format!("getData {probe}: error {}", f.header.err),
                Err(e) => last_err = e.to_string(),
            },
            Err(e) => last_err = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("not serving after {within:?} ({last_err})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_by_weight() {
        let m: Mix = "get=90,set=10".parse().unwrap();
        assert_eq!(m.0, vec![(Op::Get, 90), (Op::Set, 10)]);
        assert_eq!(m.to_string(), "get=90,set=10");
        let mut rng = Rng::new(7);
        let sets = (0..100_000).filter(|_| m.pick(rng.next()) == 1).count();
        assert!((9_000..11_000).contains(&sets), "{sets}");
        let m: Mix = "create-sequential-ephemeral=1,multi".parse().unwrap();
        assert_eq!(m.0, vec![(Op::CreateSeqEph, 1), (Op::Multi, 1)]);
        assert!("get=0".parse::<Mix>().is_err());
        assert!("put=1".parse::<Mix>().is_err());
    }

    #[test]
    fn hosts_take_a_default_port() {
        let h = parse_hosts("127.0.0.1,127.0.0.2:2182").unwrap();
        assert_eq!(h[0], "127.0.0.1:2181".parse().unwrap());
        assert_eq!(h[1], "127.0.0.2:2182".parse().unwrap());
        assert!(parse_hosts("127.0.0.1:2181/chroot").is_err());
    }

    #[test]
    fn populate_paths() {
        let mut p = PopulateSpec {
            hosts: vec![],
            count: 2500,
            value_size: 100,
            sessions: 1,
            in_flight: 1,
            parent: "/pop".into(),
            per_dir: 1000,
            session_timeout_ms: 30_000,
            server_pid: None,
        };
        assert_eq!(p.leaf(1234), "/pop/d0001/n0234");
        assert_eq!(p.last_leaf(), "/pop/d0002/n0499");
        p.per_dir = 0;
        assert_eq!(p.leaf(7), "/pop/n0000007");
    }
}
