//! Where committed transactions go before they are acknowledged: the storage interface
//! the request pipeline writes through, and the in-memory store behind it until the
//! durable data directory (ZooKeeper's `version-2/log.*` and `snapshot.*`) implements it.

use std::collections::VecDeque;
use std::io;

use crate::proto::txn::LogEntry;

/// The transaction log as the pipeline sees it. `append` returns once every entry is
/// durable (for a file log: written and fsynced), so a caller may acknowledge them.
pub trait TxnLog: Send + 'static {
    fn append(&mut self, entries: &[LogEntry]) -> io::Result<()>;

    /// The zxid of the last durable entry (0 when empty).
    fn last_zxid(&self) -> i64;

    /// Entries after `zxid`, oldest first, as far as this log still holds them: the diff a
    /// replica catching up is sent. `None` when the log no longer reaches back that far.
    fn read_after(&self, zxid: i64) -> Option<Vec<LogEntry>>;

    /// Ends the current log file; the next entry starts a new one (after a snapshot).
    fn roll(&mut self) {}

    /// Drops every entry: a replica installed a new tree (a snapshot already on disk
    /// covers all it needs), so no older entry may be replayed over it.
    fn discard(&mut self) -> io::Result<()> {
        self.roll();
        Ok(())
    }

    /// How many fsyncs took longer than the warning threshold.
    fn fsync_threshold_exceeded(&self) -> u64 {
        0
    }
}

/// Keeps the most recent entries in memory and nothing on disk: a restart starts empty.
/// The tail it keeps (like ZooKeeper's `commitLogCount`) lets replicas catch up by diff.
#[derive(Debug)]
pub struct MemoryLog {
    tail: VecDeque<LogEntry>,
    keep: usize,
    last_zxid: i64,
}

impl MemoryLog {
    pub fn new(keep: usize) -> Self {
        MemoryLog {
            tail: VecDeque::new(),
            keep: keep.max(1),
            last_zxid: 0,
        }
    }
}

impl TxnLog for MemoryLog {
    fn append(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        for e in entries {
            self.last_zxid = e.zxid;
            if self.tail.len() == self.keep {
                self.tail.pop_front();
            }
            self.tail.push_back(e.clone());
        }
        Ok(())
    }

    fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    fn discard(&mut self) -> io::Result<()> {
        self.tail.clear();
        self.last_zxid = 0;
        Ok(())
    }

    fn read_after(&self, zxid: i64) -> Option<Vec<LogEntry>> {
        let first = self.tail.front()?.zxid;
        if zxid + 1 < first && zxid != self.last_zxid {
            return None;
        }
        Some(
            self.tail
                .iter()
                .filter(|e| e.zxid > zxid)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn e(z: i64) -> LogEntry {
        LogEntry {
            zxid: z,
            bytes: Bytes::new(),
        }
    }

    #[test]
    fn memory_log_keeps_a_tail_for_diffs() {
        let mut l = MemoryLog::new(3);
        l.append(&[e(1), e(2), e(3), e(4)]).unwrap();
        assert_eq!(l.last_zxid(), 4);
        let zx = |v: Vec<LogEntry>| v.into_iter().map(|e| e.zxid).collect::<Vec<_>>();
        assert_eq!(zx(l.read_after(2).unwrap()), vec![3, 4]);
        assert_eq!(zx(l.read_after(4).unwrap()), Vec::<i64>::new());
        assert!(
            l.read_after(0).is_none(),
            "entry 1 is gone: a diff cannot reach back"
        );
    }
}
