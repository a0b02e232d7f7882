//! What a server publishes to the replicas that follow it over the relay (its
//! subscribers): every committed transaction, in zxid order (a leader's once its fsync
//! committed it; a replica's as it hands it to its log, already committed upstream), and
//! the answers to the requests subscribers forwarded, each placed after every transaction
//! logged before it. The log thread emits them ([`crate::net`]); the relay's publisher
//! fans them out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::proto::txn::LogEntry;

/// One thing the log thread publishes, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Committed transactions in zxid order (durable here on a leader; on their way to
    /// the log on a replica).
    Txns(Arc<[LogEntry]>),
    /// A new tree was installed here (a snapshot sync): the stream before this point
    /// does not continue into what follows. `zxid` is the installed tree's.
    Reset { zxid: i64 },
    /// An answer for a subscriber, after every transaction published before it.
    Answer { sub: u64, answer: SubscriberAnswer },
    /// An observer's own upstream: in sync (its subscribers' requests can reach the
    /// leader) or lost (they cannot: its subscribers go elsewhere until it is back).
    Upstream { in_sync: bool },
}

/// The leader's answer to a request a subscriber forwarded, as the learner protocol has
/// them: the rest (writes, sessions) comes back as committed transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberAnswer {
    /// The oldest sync the subscriber forwarded is answered (the leader's SYNC).
    Synced,
    /// REVALIDATE: whether the session is live at the leader.
    Revalidated { session: i64, valid: bool },
}

/// The leader's commit position as this server knows it: its own (a leader or gateway,
/// set by the log thread as it publishes), or the latest heartbeat from its upstream (an
/// observer). Read for the heartbeats a publisher sends and for an observer's lag.
#[derive(Debug, Default)]
pub struct LeaderClock {
    pub zxid: AtomicI64,
    pub time_ms: AtomicI64,
}

impl LeaderClock {
    pub fn set(&self, zxid: i64, time_ms: i64) {
        self.zxid.fetch_max(zxid, Ordering::Relaxed);
        self.time_ms.fetch_max(time_ms, Ordering::Relaxed);
    }

    /// Moves the clock to the last of `batch`, published now.
    pub fn published(&self, batch: &[LogEntry]) {
        if let Some(last) = batch.last() {
            self.set(last.zxid, entry_time(last).unwrap_or(0));
        }
    }
}

/// The header time (leader wall ms) of a logged transaction, read from its bytes
/// (TxnHeader: clientId 8, cxid 4, zxid 8, time 8); `None` if too short.
pub fn entry_time(e: &LogEntry) -> Option<i64> {
    let b = e.bytes.get(20..28)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(i64::from_be_bytes(a))
}
