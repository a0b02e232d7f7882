//! The leader's clock that a publisher's heartbeats carry (and against which its
//! subscribers measure their lag) is moved by the log thread as it publishes each batch,
//! not by the publisher's task when it gets to the batch in its queue: under saturation
//! that task can trail the log, and heartbeats would then announce the publisher's
//! position as the leader's, making every subscriber look caught up. Checked in process,
//! with a publisher that never reads its queue at all.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use geokeeper_core::net::{serve, NetSettings};
use geokeeper_core::publish::LeaderClock;
use geokeeper_core::server::{Clock, Server, Settings};
use geokeeper_core::tree::DataTree;
use support::rawzk::RawZk;
use support::relay::create;

#[test]
fn the_log_thread_moves_the_leaders_clock_before_the_publisher_reads_its_queue() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The publisher's queue: held open, never read.
    let (publish, _queue) = tokio::sync::mpsc::unbounded_channel();
    let clock = Arc::new(LeaderClock::default());
    let settings = NetSettings {
        max_buffer: 0xfffff,
        container_check_interval: Duration::from_secs(3600),
        snapshots: None,
        four_letter: Default::default(),
        limits: Default::default(),
        publish: Some(publish),
        own_clock: Some(clock.clone()),
    };
    let server = Server::new(Settings::default(), DataTree::new(), Clock::default());
    let log = geokeeper_core::storage::MemoryLog::new(1000);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let served = rt.spawn(serve(listener, server, Box::new(log), settings, stop_rx));

    let mut z = RawZk::connect(addr, 0, &[0; 16], 0, 30_000).expect("session");
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64;
    let session_zxid = clock.zxid.load(Ordering::Relaxed);
    assert!(session_zxid > 0, "the createSession moved it");
    for i in 0..5 {
        let (err, zxid) = create(&mut z, &format!("/n{i}"), b"v", 0);
        assert_eq!(err, 0);
        // The reply comes after the fsync, and the clock moved before it.
        assert_eq!(clock.zxid.load(Ordering::Relaxed), zxid, "create {i}");
        let t = clock.time_ms.load(Ordering::Relaxed);
        assert!(
            t >= before_ms - 1_000 && t <= before_ms + 60_000,
            "the transaction's own time: {t} vs {before_ms}"
        );
    }
    let _ = stop_tx.send(true);
    let _ = rt.block_on(served);
}
