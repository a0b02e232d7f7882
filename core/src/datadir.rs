//! The data directory as a whole: restoring the tree and sessions at startup from the
//! newest good snapshot plus the log after it (`FileTxnSnapLog.restore`), and purging old
//! files (`PurgeTxnLog`).
//!
//! Layout, as ZooKeeper's: snapshots in `dataDir/version-2`, logs in
//! `dataLogDir/version-2` (the same directory unless dataLogDir is set).

use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{error, info, warn};

use crate::proto::txn::{TxnBody, TxnEntry};
use crate::snapshot::{self, SnapError};
use crate::tree::DataTree;
use crate::txnlog::{self, log_files, LogError};

/// `version-2` under a configured directory.
pub fn version_dir(dir: &Path) -> PathBuf {
    dir.join("version-2")
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Snapshot(#[from] SnapError),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("No snapshot found, but there are log entries in {0}. Something is broken! (set zookeeper.snapshot.trust.empty=true to replay the logs alone)")]
    NoSnapshot(PathBuf),
    #[error("missing transactions: after zxid {after:#x} the log continues at {next:#x} ({file}); the transactions in between are not in any log file, so starting would silently lose them")]
    Gap { after: i64, next: i64, file: String },
    #[error("{file}: transaction {zxid:#x} does not decode: {why}")]
    BadEntry {
        file: String,
        zxid: i64,
        why: String,
    },
}

/// What startup found.
#[derive(Debug)]
pub struct Restored {
    pub tree: DataTree,
    /// Live sessions and their timeouts; each expires unless its client comes back.
    pub sessions: Vec<(i64, i32)>,
    /// The snapshot the tree was loaded from (`None` for a fresh directory).
    pub snapshot_zxid: Option<i64>,
    pub replayed: usize,
}

/// Whether `next` may follow `prev` in a log: the next counter in the same epoch, or the
/// first transaction of a later epoch.
fn follows(prev: i64, next: i64) -> bool {
    next == prev + 1 || ((next >> 32) > (prev >> 32) && (next & 0xffff_ffff) <= 1)
}

/// Restores the data directory. A torn log tail (a crash mid-write) is cut off first;
/// a damaged newest snapshot gives way to the previous one; a gap in the history between
/// the snapshot and the log is an error.
pub fn restore(
    snap_dir: &Path,
    log_dir: &Path,
    trust_empty: bool,
) -> Result<Restored, RestoreError> {
    if let Some((file, at, why)) = txnlog::repair_tail(log_dir)? {
        warn!(
            "{}: the last transaction was partial ({why}); cut the log back to its last whole transaction at offset {at}",
            file.display()
        );
    }
    // Only this process writes snapshots here: any temporary file is a dead one's.
    for p in snapshot::remove_unfinished(snap_dir)
        .map_err(|e| RestoreError::Io(snap_dir.to_owned(), e))?
    {
        info!(
            "removed {}, left by a snapshot that did not finish",
            p.display()
        );
    }
    load(snap_dir, log_dir, trust_empty)
}

/// What [`restore`] does after its repairs, changing nothing on disk: loads the newest good
/// snapshot and replays the log after it, refusing a gap or an entry that does not decode.
/// `geokeeper log check` runs exactly this, so it accepts what startup accepts.
pub fn load(snap_dir: &Path, log_dir: &Path, trust_empty: bool) -> Result<Restored, RestoreError> {
    let started = Instant::now();
    let loaded = snapshot::load_newest(snap_dir)?;
    let has_logs = !log_files(log_dir)
        .map_err(|e| RestoreError::Io(log_dir.to_owned(), e))?
        .is_empty();
    let (mut tree, mut sessions, snapshot_zxid, zxid_digest) = match loaded {
        Some(l) => (l.tree, l.sessions, Some(l.zxid), l.zxid_digest),
        None if has_logs && !trust_empty => {
            return Err(RestoreError::NoSnapshot(log_dir.to_owned()))
        }
        None => (DataTree::new(), Vec::new(), None, None),
    };
    let base = tree.last_zxid();
    // A fuzzy snapshot already holds some transactions after its zxid, so digests cannot
    // match until the replay reaches the zxid of its trailer: compare the trailer there,
    // and each transaction only after it (`DataTree.compareSnapshotDigests`, `compareDigest`).
    let mut fuzzy = zxid_digest.filter(|(dz, _)| *dz >= base);
    if let Some((_, dd)) = fuzzy.filter(|(dz, _)| *dz == base) {
        if tree.digest() != dd {
            error!("Digests are not matching. Value is Zxid. zxid {base:#x}: the snapshot's trailer says {dd}, the tree has {}", tree.digest());
        }
        fuzzy = None;
    }
    let entries = txnlog::read_log(log_dir, base)?;
    let mut prev = base;
    let mut replayed = 0;
    let mut changes = Vec::new();
    for e in &entries {
        // Without a snapshot (trusted logs alone) the first entry may start anywhere.
        let first_without_snapshot = snapshot_zxid.is_none() && prev == 0;
        if !first_without_snapshot && !follows(prev, e.zxid) {
            let file = log_files(log_dir)
                .ok()
                .and_then(|f| {
                    f.iter()
                        .rev()
                        .find(|(z, _)| *z <= e.zxid)
                        .map(|(_, p)| p.display().to_string())
                })
                .unwrap_or_default();
            return Err(RestoreError::Gap {
                after: prev,
                next: e.zxid,
                file,
            });
        }
        let entry = TxnEntry::decode(&e.bytes).map_err(|err| RestoreError::BadEntry {
            file: log_dir.display().to_string(),
            zxid: e.zxid,
            why: err.to_string(),
        })?;
        match &entry.body {
            TxnBody::CreateSession(t) => {
                sessions.retain(|(id, _)| *id != entry.header.client_id);
                sessions.push((entry.header.client_id, t.time_out));
            }
            TxnBody::CloseSession(_) => sessions.retain(|(id, _)| *id != entry.header.client_id),
            _ => {}
        }
        changes.clear();
        tree.apply(&entry.header, &entry.body, &mut changes);
        if let Some((dz, dd)) = fuzzy {
            if dz == e.zxid {
                if tree.digest() != dd {
                    error!("Digests are not matching. Value is Zxid. zxid {dz:#x}: the snapshot's trailer says {dd}, the tree has {}", tree.digest());
                }
                fuzzy = None;
            }
        } else if let Some(d) = &entry.digest {
            if d.tree_digest != tree.digest() {
                warn!(
                    "Digests are not matching. Value is Zxid. zxid {:#x}: expected {}, tree has {}",
                    e.zxid,
                    d.tree_digest,
                    tree.digest()
                );
            }
        }
        prev = e.zxid;
        replayed += 1;
    }
    if let Some((dz, _)) = fuzzy {
        warn!("Highest txn zxid {prev:#x} is not covering the snapshot digest zxid {dz:#x}, which might lead to inconsistent state");
    }
    // Ephemerals of sessions that are gone (`ZooKeeperServer.loadData`): removed without a
    // transaction, as ZooKeeper does.
    let live: std::collections::HashSet<i64> = sessions.iter().map(|s| s.0).collect();
    let dead: Vec<i64> = tree
        .sessions_with_ephemerals()
        .map(|(s, _)| s)
        .filter(|s| !live.contains(s))
        .collect();
    let last = tree.last_zxid();
    for s in dead {
        tree.kill_session(s, &[], last, &mut changes);
    }
    tree.set_last_zxid(last);
    // ZooKeeper loads such a tree too (`addUsage` only logs "Ignoring acl"); the ids stay
    // unknown and every request on those znodes is refused, never granted.
    let orphans = tree.paths_with_unknown_acl();
    if let Some(first) = orphans.first() {
        error!(
            "{} znodes carry an ACL id the snapshot's ACL map lacks (first: {first}); every request on them fails with MarshallingError (ZooKeeper's \"Failed to fetch acls\")",
            orphans.len()
        );
    }
    info!(
        "Snapshot loaded in {} ms, highest zxid is {:#x}, digest is {}, {} txns replayed",
        started.elapsed().as_millis(),
        tree.last_zxid(),
        tree.digest(),
        replayed
    );
    Ok(Restored {
        tree,
        sessions,
        snapshot_zxid,
        replayed,
    })
}

/// `PurgeTxnLog.purge`: keeps the `keep` newest snapshots (at least 3), the log file they
/// need (the newest starting at or before the oldest kept snapshot) and every newer log;
/// removes the rest. Returns the removed files.
pub fn purge(snap_dir: &Path, log_dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    if keep < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "count should be greater than or equal to 3",
        ));
    }
    let snaps: Vec<(i64, PathBuf)> = snapshot::snapshot_files(snap_dir)?
        .into_iter()
        .filter(|(_, p)| snapshot::looks_valid(p))
        .take(keep)
        .collect();
    let Some((least, _)) = snaps.last().cloned() else {
        return Ok(Vec::new());
    };
    let logs = log_files(log_dir)?;
    let needed_from = logs
        .iter()
        .filter(|(z, _)| *z <= least)
        .map(|(z, _)| *z)
        .max();
    let mut removed = Vec::new();
    for (z, p) in logs {
        if z < least && Some(z) != needed_from {
            std::fs::remove_file(&p)?;
            removed.push(p);
        }
    }
    for (z, p) in snapshot::snapshot_files(snap_dir)? {
        if z < least {
            std::fs::remove_file(&p)?;
            removed.push(p);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::open_acl_unsafe;
    use crate::proto::txn::LogEntry;
    use crate::proto::txn::{CreateTxn, TxnHeader};
    use crate::storage::TxnLog;
    use crate::txnlog::FileTxnLog;
    use bytes::Bytes;

    fn create(zxid: i64, path: &str) -> LogEntry {
        let e = TxnEntry {
            header: TxnHeader {
                client_id: 0,
                cxid: 0,
                zxid,
                time: 100,
                r#type: 1,
            },
            body: TxnBody::Create(CreateTxn {
                path: path.into(),
                data: Some(Bytes::from_static(b"v")),
                acl: open_acl_unsafe(),
                ephemeral: false,
                parent_cversion: -1,
            }),
            digest: None,
        };
        LogEntry {
            zxid,
            bytes: e.to_bytes(),
        }
    }

    #[test]
    fn snapshot_plus_log_restores_and_a_gap_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let dir = version_dir(d.path());
        snapshot::write_tree(&dir, &DataTree::new(), &[]).unwrap();
        let mut log = FileTxnLog::open(&dir, 4096, false, 1000, 0).unwrap();
        log.append(&[create(1, "/a"), create(2, "/b")]).unwrap();
        log.roll();
        log.append(&[create(3, "/c")]).unwrap();
        let r = restore(&dir, &dir, false).unwrap();
        assert_eq!(r.tree.last_zxid(), 3);
        assert!(r.tree.contains("/c"));
        assert_eq!(r.replayed, 3);
        // Losing the first file leaves zxids 1 and 2 nowhere.
        std::fs::remove_file(dir.join("log.1")).unwrap();
        let e = restore(&dir, &dir, false).unwrap_err();
        assert!(
            matches!(
                e,
                RestoreError::Gap {
                    after: 0,
                    next: 3,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn logs_without_a_snapshot_are_refused_unless_trusted() {
        let d = tempfile::tempdir().unwrap();
        let dir = version_dir(d.path());
        let mut log = FileTxnLog::open(&dir, 4096, false, 1000, 0).unwrap();
        log.append(&[create(1, "/a")]).unwrap();
        assert!(matches!(
            restore(&dir, &dir, false),
            Err(RestoreError::NoSnapshot(_))
        ));
        assert!(restore(&dir, &dir, true).unwrap().tree.contains("/a"));
    }

    #[test]
    fn purge_keeps_the_newest_snapshots_and_the_logs_they_need() {
        let d = tempfile::tempdir().unwrap();
        let dir = version_dir(d.path());
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = DataTree::new();
        for z in [0i64, 8, 0x11, 0x19] {
            t.set_last_zxid(z);
            snapshot::write_tree(&dir, &t, &[]).unwrap();
        }
        for z in [1i64, 0xa, 0x13, 0x1b] {
            std::fs::write(dir.join(txnlog::log_name(z)), b"ZKLG").unwrap();
        }
        let removed: Vec<String> = purge(&dir, &dir, 3)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // log.1 (start 1 <= 8) holds what follows snapshot.8, so it stays.
        assert_eq!(removed, vec!["snapshot.0"]);
        assert!(purge(&dir, &dir, 2).is_err());
    }
}
