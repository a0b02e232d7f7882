//! The gateway's driver: keeps a geokeeper observer linked to an Apache ZooKeeper
//! ensemble's leader. It finds the leader, syncs, feeds the core everything the link
//! receives (committed transactions, the leader's database, the answers to forwarded
//! syncs and revalidations), writes the core's packets to the leader, and after any
//! failure tells the core the leader is lost and starts again from the core's last
//! zxid, with backoff and jitter, finding the new leader after an election.
//!
//! Durability: a SNAP's tree is written as a snapshot in the data directory before the
//! core installs it (the log is then discarded: the snapshot covers it); committed
//! transactions are logged by the core before they are applied. `acceptedEpoch` and
//! `currentEpoch` are kept in the snapshot directory as ZooKeeper keeps them. A resync
//! from scratch (a digest mismatch, TRUNC) empties the data directory first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use geokeeper_core::learner::{Event, LearnerStart};
use geokeeper_core::net::{ToUpstream, UpstreamMsg};
use geokeeper_core::server::{Input, SyncInfo};
use geokeeper_core::snapshot::{self, Compression};
use geokeeper_core::tree::DataTree;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::learner_link::{follow, LinkError, LinkSettings, Sink, Synced};

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub link: LinkSettings,
    /// `myid`: the id the leader knows this observer by, and the top byte of the
    /// session ids it hands out.
    pub server_id: u64,
    /// `dataDir/version-2`: snapshots, and the epoch files.
    pub snap_dir: PathBuf,
    /// `dataLogDir/version-2`.
    pub log_dir: PathBuf,
    pub compression: Compression,
    /// The longest pause between two attempts to reach a leader.
    pub max_backoff: Duration,
    /// Start at a random server of the list (observer masters: spread the observers).
    pub spread: bool,
}

/// Follows the ensemble until `shutdown` turns true or the core is gone.
pub async fn run(
    s: GatewaySettings,
    core: mpsc::UnboundedSender<UpstreamMsg>,
    mut from_core: mpsc::UnboundedReceiver<ToUpstream>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let mut first = if s.spread {
        rand::random_range(0..s.link.quorum_addrs.len().max(1))
    } else {
        s.link.first
    };
    let mut reset = false;
    loop {
        if reset {
            if let Err(e) = reset_data(&s.snap_dir, s.compression, &core).await {
                warn!("cannot empty the data directory for a resync: {e}");
            }
            reset = false;
        }
        // What the core had for the link it lost is void: its clients were closed.
        while from_core.try_recv().is_ok() {}
        let Some(last_zxid) = ask(&core, UpstreamMsg::LastReceived).await else {
            return;
        };
        let (accepted_epoch, current_epoch) = read_epochs(&s.snap_dir, last_zxid);
        let start = LearnerStart {
            server_id: s.server_id,
            last_zxid,
            accepted_epoch,
            current_epoch,
        };
        let mut sink = CoreSink {
            core: &core,
            s: &s,
            synced: false,
        };
        let mut link = s.link.clone();
        link.first = first;
        let r = tokio::select! {
            r = follow(&link, start, &mut sink, &mut from_core) => r,
            _ = shutdown.changed() => return,
        };
        let synced = sink.synced;
        let err = match r {
            Ok(()) => continue,
            Err(e) => e,
        };
        match &err {
            LinkError::ServerGone => return,
            LinkError::Resync(_) | LinkError::Truncate(_) => reset = true,
            _ => {}
        }
        warn!("{err}");
        let lost = Input::LeaderLost {
            reason: err.to_string(),
        };
        if core.send(UpstreamMsg::Input(lost)).is_err() {
            return;
        }
        // After a link that synced, the leader is most likely back (or re-elected) in a
        // moment; otherwise the next server is tried at once, and the pause grows only
        // once every server has been tried.
        let n = s.link.quorum_addrs.len().max(1);
        let pause = if synced {
            failures = 0;
            backoff(0, s.max_backoff)
        } else {
            first = first.wrapping_add(1);
            if first % n == 0 {
                failures += 1;
                backoff(failures, s.max_backoff)
            } else {
                Duration::from_millis(10)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// 0 after a link that synced (an election takes a moment: try again soon), then
/// doubling from 100 ms up to `max`, each with up to half of it again at random.
pub(crate) fn backoff(failures: u32, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::from_millis(50);
    }
    let base = Duration::from_millis(100)
        .saturating_mul(1 << failures.min(10))
        .min(max);
    let jitter = rand::random_range(0..=base.as_millis() as u64 / 2);
    base + Duration::from_millis(jitter)
}

pub(crate) async fn ask<T>(
    core: &mpsc::UnboundedSender<UpstreamMsg>,
    m: impl FnOnce(oneshot::Sender<T>) -> UpstreamMsg,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    core.send(m(tx)).ok()?;
    rx.await.ok()
}

/// Empties the data directory and installs a fresh tree: the next sync starts from
/// zxid 0 and rebuilds everything from the leader.
pub(crate) async fn reset_data(
    snap_dir: &Path,
    compression: Compression,
    core: &mpsc::UnboundedSender<UpstreamMsg>,
) -> std::io::Result<()> {
    let snap_dir = snap_dir.to_path_buf();
    let tree = tokio::task::spawn_blocking(move || -> std::io::Result<DataTree> {
        for (_, p) in snapshot::snapshot_files(&snap_dir)? {
            std::fs::remove_file(&p)?;
        }
        for f in ["acceptedEpoch", "currentEpoch"] {
            let _ = std::fs::remove_file(snap_dir.join(f));
        }
        let tree = DataTree::new();
        snapshot::write_tree_as(&snap_dir, &tree, &[], compression)?;
        Ok(tree)
    })
    .await
    .map_err(std::io::Error::other)??;
    warn!("data directory emptied: syncing again from the leader from zxid 0");
    let _ = core.send(UpstreamMsg::Input(Input::Install {
        tree: Box::new(tree),
        sessions: Vec::new(),
    }));
    Ok(())
}

/// ZooKeeper's `acceptedEpoch` and `currentEpoch` files (a decimal number each); the
/// epoch of the last zxid where one is missing or unreadable.
fn read_epochs(dir: &Path, last_zxid: i64) -> (u32, u32) {
    let fallback = (last_zxid >> 32) as u32;
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .unwrap_or(fallback)
    };
    (read("acceptedEpoch"), read("currentEpoch"))
}

/// Writes an epoch file as ZooKeeper's `writeLongToFile` does: to a temporary file,
/// synced, then renamed over the old one.
fn write_epoch(dir: &Path, name: &str, epoch: u32) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(epoch.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

struct CoreSink<'a> {
    core: &'a mpsc::UnboundedSender<UpstreamMsg>,
    s: &'a GatewaySettings,
    /// This link reached UPTODATE.
    synced: bool,
}

impl CoreSink<'_> {
    fn input(&self, i: Input) -> Result<(), LinkError> {
        self.core
            .send(UpstreamMsg::Input(i))
            .map_err(|_| LinkError::ServerGone)
    }
}

impl Sink for CoreSink<'_> {
    async fn events(&mut self, events: Vec<Event>) -> Result<(), LinkError> {
        let mut committed = Vec::new();
        for e in events {
            if let Event::Committed(entry) = e {
                committed.push(entry);
                continue;
            }
            if !committed.is_empty() {
                self.input(Input::Committed(std::mem::take(&mut committed)))?;
            }
            match e {
                Event::Snapshot {
                    tree,
                    sessions,
                    zxid,
                } => {
                    let (dir, compression) = (self.s.snap_dir.clone(), self.s.compression);
                    let started = std::time::Instant::now();
                    let (tree, sessions) = tokio::task::spawn_blocking(move || {
                        snapshot::write_tree_as(&dir, &tree, &sessions, compression)
                            .map(|_| (tree, sessions))
                    })
                    .await
                    .map_err(|e| LinkError::Snapshot(std::io::Error::other(e)))?
                    .map_err(LinkError::Snapshot)?;
                    info!(
                        zxid = format_args!("{zxid:#x}"),
                        ms = started.elapsed().as_millis() as u64,
                        "the leader's database is written as a snapshot"
                    );
                    self.input(Input::Install { tree, sessions })?;
                }
                Event::Truncate { zxid } => {
                    let last = ask(self.core, UpstreamMsg::LastReceived)
                        .await
                        .ok_or(LinkError::ServerGone)?;
                    if zxid < last {
                        return Err(LinkError::Truncate(zxid));
                    }
                }
                Event::Sync => self.input(Input::Synced)?,
                Event::Revalidated { session, valid } => {
                    self.input(Input::Revalidated { session, valid })?
                }
                Event::Committed(_)
                | Event::Send(_)
                | Event::Ping { .. }
                | Event::UpToDate { .. } => {}
            }
        }
        if !committed.is_empty() {
            self.input(Input::Committed(committed))?;
        }
        Ok(())
    }

    async fn up_to_date(&mut self, synced: Synced) -> Result<(), LinkError> {
        let dir = self.s.snap_dir.clone();
        let epoch = synced.epoch;
        let written = tokio::task::spawn_blocking(move || {
            write_epoch(&dir, "acceptedEpoch", epoch)?;
            write_epoch(&dir, "currentEpoch", epoch)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if let Err(e) = written {
            warn!("cannot write the epoch files: {e}");
        }
        self.synced = true;
        self.input(Input::UpToDate(SyncInfo {
            leader: synced.leader.to_string(),
            epoch: synced.epoch,
            kind: synced.kind,
            duration_ms: synced.duration.as_millis() as u64,
        }))
    }

    async fn ping(&mut self, zxid: i64) -> Result<Vec<(i64, i32)>, LinkError> {
        self.input(Input::LeaderPing { zxid })?;
        ask(self.core, UpstreamMsg::TakeTouched)
            .await
            .ok_or(LinkError::ServerGone)
    }
}
