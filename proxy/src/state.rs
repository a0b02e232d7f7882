//! What the proxy's tasks share: each upstream's health and sessions, placement, the
//! per-address connection counts, the requests in flight, the counters the four-letter
//! words report. Every lock here is held for a few field updates, never across I/O.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use geokeeper_conf::hosts::HostEntry;
use geokeeper_conf::ProxyConfig;
use geokeeper_core::lag::Behind;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::place::{Candidate, Placement};
use crate::probe::{ProbeError, Srvr};

/// An upstream's health, by its last probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet.
    Unknown,
    /// Unreachable, or it answered garbage.
    Down(String),
    /// Reachable, but it serves no clients.
    NotServing,
    /// Serving: its mode, last zxid, and how long it has been behind the newest zxid
    /// any upstream reported.
    Serving {
        mode: String,
        zxid: i64,
        lag_ms: u64,
    },
}

/// One upstream as the four-letter words show it.
#[derive(Debug, Clone)]
pub struct UpstreamView {
    pub entry: HostEntry,
    pub health: Health,
    pub sessions: usize,
    /// Sessions placed on it since the proxy started.
    pub placed: u64,
    pub eligible: bool,
}

struct Upstream {
    entry: HostEntry,
    health: Health,
    /// Client connections attached to it now.
    sessions: usize,
    placed: u64,
    behind: Behind,
    /// Probes failed in a row.
    failures: u32,
    /// Bumped when the upstream is found down: the sessions on it move.
    evict: watch::Sender<u64>,
}

/// A client connection's counters, kept by its own task without taking the registry's
/// lock on every frame; `cons` reads them.
#[derive(Debug)]
pub(crate) struct ConnStats {
    pub peer: SocketAddr,
    pub session: AtomicI64,
    /// The upstream's index, or `usize::MAX` for none.
    pub upstream: AtomicUsize,
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

impl ConnStats {
    pub(crate) fn new(peer: SocketAddr) -> ConnStats {
        ConnStats {
            peer,
            session: AtomicI64::new(0),
            upstream: AtomicUsize::new(usize::MAX),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }

    pub(crate) fn on(&self, session: i64, upstream: usize) {
        self.session.store(session, Ordering::Relaxed);
        self.upstream.store(upstream, Ordering::Relaxed);
    }
}

/// A client connection as `cons` shows it.
#[derive(Debug, Clone)]
pub(crate) struct ConnView {
    pub peer: SocketAddr,
    pub session: i64,
    pub upstream: Option<usize>,
    pub received: u64,
    pub sent: u64,
}

pub struct Shared {
    pub cfg: ProxyConfig,
    ups: Mutex<Vec<Upstream>>,
    place: Mutex<Placement>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    conns: Mutex<HashMap<u64, Arc<ConnStats>>>,
    /// The newest zxid any upstream reported: the reference for lag.
    reference_zxid: AtomicU64,
    /// Requests relayed and not yet answered, all connections together.
    pub(crate) outstanding: AtomicUsize,
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) refused_cnxns: AtomicU64,
    /// Sessions moved to another upstream, and those that could not be.
    pub(crate) reattached: AtomicU64,
    pub(crate) reattach_failed: AtomicU64,
    /// Sessions moved back to a better room (`proxy.returnHomeMs`).
    pub(crate) moved_home: AtomicU64,
    /// The next free slot for a re-attachment (`proxy.reattachPerSecond`).
    next_reattach: Mutex<Instant>,
    /// Each upstream's room rank (0: the proxy's own room, then the preferred others).
    ranks: Vec<usize>,
    /// For each rank r: since when an eligible upstream of rank r or better has been there
    /// without a break (`None`: there is none now).
    ranked_since: Mutex<Vec<Option<Instant>>>,
    /// Bumped when `ranked_since` changes: sessions placed outside the best room look
    /// again whether to move back.
    rerank: watch::Sender<u64>,
    pub(crate) started: Instant,
}

/// Failed probes in a row after which an upstream's sessions move elsewhere.
const EVICT_AFTER_FAILURES: u32 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(cfg: ProxyConfig) -> Shared {
        let ups = cfg
            .upstreams
            .iter()
            .map(|e| Upstream {
                entry: e.clone(),
                health: Health::Unknown,
                sessions: 0,
                placed: 0,
                behind: Behind::default(),
                failures: 0,
                evict: watch::channel(0).0,
            })
            .collect();
        let place = Placement::new(&cfg.room, &cfg.prefer_rooms);
        let ranks = cfg
            .upstreams
            .iter()
            .map(|e| place.rank(e.room.as_deref().unwrap_or(&cfg.room)))
            .collect();
        Shared {
            ranked_since: Mutex::new(vec![None; place.ranks()]),
            ranks,
            rerank: watch::channel(0).0,
            moved_home: AtomicU64::new(0),
            place: Mutex::new(place),
            cfg,
            ups: Mutex::new(ups),
            per_ip: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            reference_zxid: AtomicU64::new(0),
            outstanding: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            refused_cnxns: AtomicU64::new(0),
            reattached: AtomicU64::new(0),
            reattach_failed: AtomicU64::new(0),
            next_reattach: Mutex::new(Instant::now()),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records a probe's answer for upstream `index`.
    pub fn probed(&self, index: usize, answer: Result<Srvr, ProbeError>) {
        let health = match answer {
            Ok(Srvr::NotServing) => Health::NotServing,
            Err(e) => Health::Down(e.to_string()),
            Ok(Srvr::Serving { mode, zxid }) => {
                let reference = self
                    .reference_zxid
                    .fetch_max(zxid.max(0) as u64, Ordering::Relaxed)
                    .max(zxid.max(0) as u64) as i64;
                let now = self.now_ms();
                let mut ups = lock(&self.ups);
                let Some(u) = ups.get_mut(index) else { return };
                u.behind.leader_at(reference, zxid, now);
                let lag_ms = u.behind.lag_ms(zxid, now);
                Health::Serving { mode, zxid, lag_ms }
            }
        };
        let mut ups = lock(&self.ups);
        let Some(u) = ups.get_mut(index) else { return };
        let was_ok = matches!(u.health, Health::Serving { .. });
        let is_ok = matches!(health, Health::Serving { .. });
        if matches!(health, Health::Down(_)) {
            u.failures += 1;
            // Unreachable (or answering garbage) twice in a row: a replica that is gone
            // without closing its connections (cut off, hung) - its sessions move. Once
            // could be a busy moment.
            if u.failures == EVICT_AFTER_FAILURES && u.sessions > 0 {
                warn!(upstream = %u.entry.address, sessions = u.sessions, "upstream down: moving its sessions");
                u.evict.send_modify(|g| *g += 1);
            }
        } else {
            u.failures = 0;
        }
        if was_ok != is_ok || matches!(u.health, Health::Unknown) {
            match &health {
                Health::Serving { mode, zxid, .. } => {
                    info!(upstream = %u.entry.address, %mode, zxid = format_args!("{zxid:#x}"), "upstream serving")
                }
                Health::NotServing => {
                    info!(upstream = %u.entry.address, "upstream reachable but not serving")
                }
                Health::Down(why) => warn!(upstream = %u.entry.address, "upstream down: {why}"),
                Health::Unknown => {}
            }
        }
        u.health = health;
        self.rerank(&ups);
    }

    /// Brings `ranked_since` up to date with the upstreams' health.
    fn rerank(&self, ups: &[Upstream]) {
        let best = ups
            .iter()
            .zip(&self.ranks)
            .filter(|(u, _)| self.eligible(u, 0))
            .map(|(_, r)| *r)
            .min();
        let now = Instant::now();
        let mut since = lock(&self.ranked_since);
        let mut changed = false;
        for (r, s) in since.iter_mut().enumerate() {
            let there = best.is_some_and(|b| b <= r);
            if there != s.is_some() {
                *s = there.then_some(now);
                changed = true;
            }
        }
        if changed {
            self.rerank.send_modify(|g| *g += 1);
        }
    }

    /// For a session on upstream `index`: since when a better room (one earlier in the
    /// order of placement) has had an eligible upstream, or `None`.
    pub(crate) fn better_since(&self, index: usize) -> Option<Instant> {
        let rank = *self.ranks.get(index)?;
        let better = rank.checked_sub(1)?;
        lock(&self.ranked_since).get(better).copied().flatten()
    }

    /// Changes when a room gains or loses its last eligible upstream.
    pub(crate) fn reranks(&self) -> watch::Receiver<u64> {
        self.rerank.subscribe()
    }

    fn eligible(&self, u: &Upstream, min_zxid: i64) -> bool {
        matches!(&u.health, Health::Serving { zxid, lag_ms, .. }
            if *lag_ms <= self.cfg.max_lag_ms && *zxid >= min_zxid)
    }

    /// Picks an upstream for a session that has seen `min_zxid`, skipping `tried`;
    /// counts the session on it. Those whose last probe showed `min_zxid` come first;
    /// when none did, any healthy one (a probe is up to an interval old, and the server
    /// itself refuses a client that has seen more than it has).
    pub(crate) fn attach(&self, min_zxid: i64, tried: &[usize]) -> Option<(usize, String)> {
        let mut ups = lock(&self.ups);
        let candidates = |min: i64| -> Vec<Candidate> {
            ups.iter()
                .enumerate()
                .map(|(index, u)| Candidate {
                    index,
                    room: u.entry.room.clone().unwrap_or_default(),
                    weight: u.entry.weight,
                    eligible: !tried.contains(&index) && self.eligible(u, min),
                })
                .collect()
        };
        let (known, any) = (candidates(min_zxid), candidates(i64::MIN));
        let index = {
            let mut place = lock(&self.place);
            place.pick(&known).or_else(|| place.pick(&any))?
        };
        let u = &mut ups[index];
        u.sessions += 1;
        u.placed += 1;
        Some((index, u.entry.address.clone()))
    }

    pub(crate) fn detach(&self, index: usize) {
        if let Some(u) = lock(&self.ups).get_mut(index) {
            u.sessions = u.sessions.saturating_sub(1);
        }
    }

    /// Changes when upstream `index` is found down: a session on it moves.
    pub(crate) fn evictions(&self, index: usize) -> Option<watch::Receiver<u64>> {
        lock(&self.ups).get(index).map(|u| u.evict.subscribe())
    }

    /// An upstream that failed a session's handshake or its stream is suspect until its
    /// next probe says otherwise.
    pub(crate) fn suspect(&self, index: usize, why: &str) {
        let mut ups = lock(&self.ups);
        if let Some(u) = ups.get_mut(index) {
            if matches!(u.health, Health::Serving { .. }) {
                warn!(upstream = %u.entry.address, "upstream failed a session: {why}");
                u.health = Health::Down(why.to_string());
            }
        }
        self.rerank(&ups);
    }

    /// How long a session that lost its upstream waits before it re-attaches: sessions
    /// take turns at `reattachPerSecond`, each at a point within its slot drawn from its
    /// id, so that a replica's thousands of sessions neither stampede the survivors and
    /// the leader nor arrive in lockstep.
    pub(crate) fn reattach_slot(&self, session_id: i64) -> std::time::Duration {
        let interval = std::time::Duration::from_secs(1)
            .checked_div(self.cfg.reattach_per_second.max(1) as u32)
            .unwrap_or_default();
        let now = Instant::now();
        let mut next = lock(&self.next_reattach);
        let slot = (*next).max(now);
        *next = slot + interval;
        let mix = (session_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let jitter = interval.mul_f64(mix as f64 / f64::from(u32::MAX));
        (slot - now) + jitter
    }

    /// Counts a connection from `ip`; false when `maxClientCnxns` is reached.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let max = self.cfg.max_client_cnxns;
        let mut m = lock(&self.per_ip);
        let n = m.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            self.refused_cnxns.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn leave(&self, ip: IpAddr) {
        let mut m = lock(&self.per_ip);
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    pub fn upstreams(&self) -> Vec<UpstreamView> {
        lock(&self.ups)
            .iter()
            .map(|u| UpstreamView {
                entry: u.entry.clone(),
                health: u.health.clone(),
                sessions: u.sessions,
                placed: u.placed,
                eligible: self.eligible(u, 0),
            })
            .collect()
    }

    /// The newest zxid an upstream reported.
    pub fn reference_zxid(&self) -> i64 {
        self.reference_zxid.load(Ordering::Relaxed) as i64
    }

    pub(crate) fn connections(&self) -> Vec<ConnView> {
        let mut v: Vec<ConnView> = lock(&self.conns)
            .values()
            .map(|c| ConnView {
                peer: c.peer,
                session: c.session.load(Ordering::Relaxed),
                upstream: Some(c.upstream.load(Ordering::Relaxed)).filter(|&u| u != usize::MAX),
                received: c.received.load(Ordering::Relaxed),
                sent: c.sent.load(Ordering::Relaxed),
            })
            .collect();
        v.sort_by_key(|c| c.peer);
        v
    }

    pub(crate) fn register(&self, id: u64, c: Arc<ConnStats>) {
        lock(&self.conns).insert(id, c);
    }

    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }
}
