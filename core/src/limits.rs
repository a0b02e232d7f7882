//! The client port's admission limits, as ZooKeeper 3.8 enforces them:
//!
//! * [`ConnLimits`]: `maxCnxns` (every connection together, default 0 = no limit) and
//!   `maxClientCnxns` (connections from one address, default 60, 0 = no limit), checked
//!   right after `accept` (`NIOServerCnxnFactory.AcceptThread.doAccept`). A refused socket
//!   is closed at once, nothing sent, with ZooKeeper's rate-limited log line.
//! * [`Throttle`]: `globalOutstandingLimit` (`ServerCnxn.incrOutstandingAndCheckThrottle`,
//!   `ZooKeeperServer.shouldThrottle`). When more requests are outstanding server-wide than
//!   the limit, a connection that has requests of its own outstanding stops being read
//!   until one of its replies is written to its socket and the condition no longer
//!   holds. Nothing is dropped and no error is returned: TCP backpressure does the rest.
//! * [`ConnThrottle`]'s unread bound: replies and events a client has not read yet may
//!   take at most `jute.maxbuffer` (plus the one reply that crossed the line); past it the
//!   connection's reader stops and the core holds its requests already read, in order,
//!   until the socket has taken the bytes. A client that never reads costs that much.
//!
//! The accept loop owns [`ConnLimits`] alone; connection tasks give their slot back
//! through a channel when they end, so no lock is shared. The throttle is two atomic
//! counters and a wake-up per connection: the read and write paths never take a lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use tracing::error;

use crate::ratelog::RateLogger;

/// The client port's limits as configured; the defaults are ZooKeeper's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// `maxClientCnxns`: connections from one address; 0 means no limit.
    pub max_client_cnxns: u32,
    /// `maxCnxns` (`zookeeper.maxCnxns`): connections in total; 0 means no limit.
    pub max_cnxns: u32,
    /// `globalOutstandingLimit` (`zookeeper.globalOutstandingLimit`).
    pub global_outstanding_limit: u32,
    /// The longest buffer or string inside a record: `jute.maxbuffer` +
    /// `zookeeper.jute.maxbuffer.extrasize` (see [`crate::proto::frame::max_record_len`]).
    pub max_record_len: usize,
    /// `zookeeper.nio.sessionlessCnxnTimeout`: how long a connection may go without
    /// completing its ConnectRequest (ZooKeeper's connection expirer closes it then).
    pub sessionless_cnxn_timeout: std::time::Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        let max_buffer = crate::proto::frame::DEFAULT_MAX_BUFFER;
        ClientLimits {
            max_client_cnxns: 60,
            max_cnxns: 0,
            global_outstanding_limit: 1000,
            max_record_len: crate::proto::frame::max_record_len(max_buffer, None),
            sessionless_cnxn_timeout: std::time::Duration::from_millis(10_000),
        }
    }
}

/// Counts connections per address and in total; see the module documentation.
#[derive(Debug)]
pub struct ConnLimits {
    max_client_cnxns: u32,
    max_cnxns: u32,
    per_ip: HashMap<IpAddr, u32>,
    total: u32,
    released_tx: mpsc::UnboundedSender<IpAddr>,
    released_rx: mpsc::UnboundedReceiver<IpAddr>,
    /// `acceptErrorLogger`.
    log: RateLogger,
    /// Connections refused so far (`connection_rejected` in `mntr`).
    rejected: u64,
}

/// A connection's place in [`ConnLimits`]; dropping it gives the place back.
#[derive(Debug)]
pub struct ConnSlot {
    ip: IpAddr,
    released: mpsc::UnboundedSender<IpAddr>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let _ = self.released.send(self.ip);
    }
}

impl ConnLimits {
    pub fn new(max_client_cnxns: u32, max_cnxns: u32) -> Self {
        let (released_tx, released_rx) = mpsc::unbounded_channel();
        ConnLimits {
            max_client_cnxns,
            max_cnxns,
            per_ip: HashMap::new(),
            total: 0,
            released_tx,
            released_rx,
            log: RateLogger::default(),
            rejected: 0,
        }
    }

    /// Connections refused so far (`connection_rejected`).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Admits a connection just accepted from `ip`, or refuses it (the caller closes the
    /// socket) after logging as ZooKeeper does. `now_ms` paces the rate-limited log.
    pub fn admit(&mut self, ip: IpAddr, now_ms: u64) -> Option<ConnSlot> {
        while let Ok(gone) = self.released_rx.try_recv() {
            self.total = self.total.saturating_sub(1);
            if let Some(n) = self.per_ip.get_mut(&gone) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&gone);
                }
            }
        }
        let refusal = if self.max_cnxns > 0 && self.total >= self.max_cnxns {
            error!(
                "Too many connections {} - max is {}",
                self.total, self.max_cnxns
            );
            Some(format!(
                "Too many connections max allowed is {}",
                self.max_cnxns
            ))
        } else {
            let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
            (self.max_client_cnxns > 0 && from_ip >= self.max_client_cnxns).then(|| {
                format!(
                    "Too many connections from /{ip} - max is {}",
                    self.max_client_cnxns
                )
            })
        };
        if let Some(why) = refusal {
            self.rejected += 1;
            self.log
                .log(now_ms, format!("Error accepting new connection: {why}"));
            return None;
        }
        // A successful accept writes out the count of refusals not logged yet.
        self.log.flush();
        self.total += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        Some(ConnSlot {
            ip,
            released: self.released_tx.clone(),
        })
    }
}

/// The server-wide side of `globalOutstandingLimit`.
#[derive(Debug)]
pub struct Throttle {
    limit: i64,
    /// Requests read (with xid > 0) and not yet answered, over every connection.
    outstanding: AtomicI64,
}

impl Throttle {
    pub fn new(global_outstanding_limit: u32) -> Arc<Throttle> {
        Arc::new(Throttle {
            limit: global_outstanding_limit as i64,
            outstanding: AtomicI64::new(0),
        })
    }

    /// Requests outstanding server-wide.
    pub fn outstanding(&self) -> i64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// One connection's share, for its reader and writer tasks and the core.
    /// `max_unsent`: how many bytes of replies and events may wait for the client to read
    /// them before the connection's requests are held back.
    pub fn connection(self: &Arc<Self>, max_unsent: usize) -> Arc<ConnThrottle> {
        Arc::new(ConnThrottle {
            global: self.clone(),
            outstanding: AtomicI64::new(0),
            unsent: AtomicUsize::new(0),
            max_unsent,
            held: AtomicBool::new(false),
            resume: Notify::new(),
        })
    }
}

/// Whether `frame` (length prefix included) answers a request that counts as outstanding:
/// a reply header with a positive xid. Events (−1), pings (−2), auth (−4), setWatches
/// (−8) and a ConnectResponse (whose first field is 0) do not.
pub fn answers_counted_request(frame: &[u8]) -> bool {
    frame
        .get(4..8)
        .is_some_and(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]) > 0)
}

/// A connection's share of the limits; see [`Throttle`]. Dropping the last handle (the
/// connection is gone) takes what it still had outstanding off the global count.
///
/// Besides `globalOutstandingLimit`, one connection can never make the server hold more
/// than `max_unsent` bytes (plus the one reply that crossed the line) of replies and
/// events its client has not read: past that its reader stops reading and the core holds
/// back the requests already read, until the socket takes the bytes. A client that never
/// reads its socket therefore costs `max_unsent` bytes, not the size of everything it
/// asked for. Requests count as outstanding until their reply is written to the socket,
/// not merely queued, so a slow reader cannot hide from the global limit either.
#[derive(Debug)]
pub struct ConnThrottle {
    global: Arc<Throttle>,
    outstanding: AtomicI64,
    /// Bytes the core produced for this connection that are not yet written to its socket.
    unsent: AtomicUsize,
    max_unsent: usize,
    /// The core holds requests of this connection until `unsent` is back under the bound;
    /// whoever brings it under (the writer) tells the core.
    held: AtomicBool,
    resume: Notify,
}

impl ConnThrottle {
    /// The reader handed on a request with this xid. Pings (−2), auth (−4) and
    /// setWatches (−8) never count.
    pub fn request_read(&self, xid: i32) {
        if xid > 0 {
            self.outstanding.fetch_add(1, Ordering::Relaxed);
            self.global.outstanding.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A reply to a counted request was written to the socket: that request is no longer
    /// outstanding. Never below zero.
    pub fn reply_written(&self) {
        let taken = self
            .outstanding
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > 0).then_some(n - 1)
            });
        if taken.is_ok() {
            self.global.outstanding.fetch_sub(1, Ordering::Relaxed);
            self.resume.notify_one();
        }
    }

    /// The core produced `bytes` for this connection.
    pub fn produced(&self, bytes: usize) {
        self.unsent.fetch_add(bytes, Ordering::AcqRel);
    }

    /// `bytes` of what was produced reached the socket. True when the core held this
    /// connection's requests and may now go on with them (it is told once).
    #[must_use]
    pub fn written(&self, bytes: usize) -> bool {
        let before = self.unsent.fetch_sub(bytes, Ordering::AcqRel);
        let now = before.saturating_sub(bytes);
        if now > self.max_unsent {
            return false;
        }
        if before > self.max_unsent {
            self.resume.notify_one();
        }
        self.held.swap(false, Ordering::AcqRel)
    }

    /// Bytes produced and not yet written.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Acquire)
    }

    /// Whether the client has more unread than the bound allows.
    pub fn over_unsent(&self) -> bool {
        self.unsent() > self.max_unsent
    }

    /// Called by the core before it holds a request back: true when it must hold it (the
    /// bound is still exceeded; the writer will say when it is not), false when the
    /// writer got under the bound meanwhile and the request can go on.
    pub fn hold(&self) -> bool {
        self.held.store(true, Ordering::Release);
        if self.over_unsent() {
            true
        } else {
            // Whoever clears the flag first goes on; the writer may have done so already.
            !self.held.swap(false, Ordering::AcqRel)
        }
    }

    /// `shouldThrottle`: more requests outstanding server-wide than the limit, and some of
    /// them this connection's; or this connection's unread bytes over its bound.
    pub fn should_throttle(&self) -> bool {
        let global = self.global.outstanding.load(Ordering::Relaxed) > self.global.limit
            && self.outstanding.load(Ordering::Relaxed) > 0;
        global || self.over_unsent()
    }

    /// Waits, without reading, while the connection is throttled (`disableRecv` until
    /// `enableRecv`). Returns whether it had to wait. Unthrottled, this is three atomic
    /// loads: the wake-up list (and its lock) is only touched by a connection that waits.
    pub async fn wait_readable(&self) -> bool {
        if !self.should_throttle() {
            return false;
        }
        loop {
            let resumed = self.resume.notified();
            tokio::pin!(resumed);
            // Registered before the check, so a reply leaving in between still wakes it.
            resumed.as_mut().enable();
            if !self.should_throttle() {
                return true;
            }
            resumed.await;
        }
    }
}

impl Drop for ConnThrottle {
    fn drop(&mut self) {
        let left = self.outstanding.swap(0, Ordering::Relaxed);
        self.global.outstanding.fetch_sub(left, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn max_client_cnxns_counts_per_address_and_frees_on_drop() {
        let mut l = ConnLimits::new(2, 0);
        let a = l.admit(ip("10.0.0.1"), 0).unwrap();
        let _b = l.admit(ip("10.0.0.1"), 0).unwrap();
        assert!(l.admit(ip("10.0.0.1"), 0).is_none());
        let _c = l.admit(ip("10.0.0.2"), 0).unwrap();
        drop(a);
        assert!(l.admit(ip("10.0.0.1"), 0).is_some());
    }

    #[test]
    fn max_cnxns_counts_every_address_and_zero_is_unlimited() {
        let mut l = ConnLimits::new(0, 2);
        let _a = l.admit(ip("10.0.0.1"), 0).unwrap();
        let _b = l.admit(ip("10.0.0.2"), 0).unwrap();
        assert!(l.admit(ip("10.0.0.3"), 0).is_none());
        let mut l = ConnLimits::new(0, 0);
        let held: Vec<_> = (0..1000).map(|_| l.admit(ip("10.0.0.1"), 0)).collect();
        assert!(held.iter().all(Option::is_some));
    }

    #[test]
    fn a_connection_is_throttled_only_with_requests_of_its_own_outstanding() {
        let t = Throttle::new(2);
        let a = t.connection(1 << 20);
        let b = t.connection(1 << 20);
        for xid in 1..=3 {
            a.request_read(xid);
        }
        // Pings and other special xids never count.
        a.request_read(-2);
        assert_eq!(t.outstanding(), 3);
        assert!(a.should_throttle());
        assert!(!b.should_throttle(), "b has nothing outstanding");
        b.request_read(1);
        assert!(b.should_throttle());
        a.reply_written();
        a.reply_written();
        assert_eq!(t.outstanding(), 2);
        assert!(!a.should_throttle());
        drop(b);
        assert_eq!(t.outstanding(), 1);
        // More replies than requests never take the count below zero.
        a.reply_written();
        a.reply_written();
        assert_eq!(t.outstanding(), 0);
        // Which frames answer counted requests.
        let header = |xid: i32| {
            let mut f = vec![0, 0, 0, 16];
            f.extend_from_slice(&xid.to_be_bytes());
            f.extend_from_slice(&[0; 12]);
            f
        };
        assert!(answers_counted_request(&header(7)));
        for xid in [-1, -2, -4, -8, 0] {
            assert!(!answers_counted_request(&header(xid)), "{xid}");
        }
        assert!(!answers_counted_request(&[0, 0]));
    }

    #[tokio::test]
    async fn a_throttled_reader_resumes_when_its_reply_is_written() {
        let t = Throttle::new(0);
        let a = t.connection(1 << 20);
        a.request_read(1);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.wait_readable().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        a.reply_written();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn unread_bytes_past_the_bound_stop_the_reader_and_hold_the_core() {
        let t = Throttle::new(1000);
        let a = t.connection(1000);
        a.produced(600);
        assert!(
            !a.should_throttle() && !a.hold(),
            "under the bound nothing is held"
        );
        a.produced(600);
        assert!(a.should_throttle());
        assert!(a.hold(), "over the bound the core holds");
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.wait_readable().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        assert!(!a.written(100), "still over: nobody is told");
        assert!(a.written(500), "under again: the core is told, once");
        assert!(waiter.await.unwrap());
        assert!(!a.written(0));
        assert_eq!(a.unsent(), 600);
        // The writer gets under before the core holds: the core goes on by itself.
        a.produced(1000);
        assert!(a.over_unsent());
        assert!(!a.written(1000), "nothing held yet");
        assert!(!a.hold());
    }
}
