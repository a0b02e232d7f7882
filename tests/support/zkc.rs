//! Helpers for tests that drive geokeeper with the `zookeeper-client` crate: connecting,
//! the usual create options, and waiting for watch events with a deadline so that a
//! missing event fails the test instead of hanging it.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use zookeeper_client::{
    Acls, Client, CreateMode, CreateOptions, EventType, OneshotWatcher, PersistentWatcher,
    WatchedEvent,
};

/// How long a test waits for something that should happen promptly.
pub const PROMPT: Duration = Duration::from_secs(5);

/// Connects a new session with the crate's default timeout.
pub async fn connect(addr: SocketAddr) -> Client {
    within(PROMPT, Client::connect(&addr.to_string()))
        .await
        .expect("connect")
}

/// Connects a new session asking for `timeout`.
pub async fn connect_with_timeout(addr: SocketAddr, timeout: Duration) -> Client {
    within(
        PROMPT,
        Client::connector()
            .with_session_timeout(timeout)
            .connect(&addr.to_string()),
    )
    .await
    .expect("connect")
}

pub fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

pub fn ephemeral() -> CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(Acls::anyone_all())
}

pub fn mode(mode: CreateMode) -> CreateOptions<'static> {
    mode.with_acls(Acls::anyone_all())
}

/// Awaits `f`, failing the test if it takes longer than `d`.
pub async fn within<T>(d: Duration, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(d, f).await {
        Ok(v) => v,
        Err(_) => panic!("nothing happened within {d:?}"),
    }
}

/// The event of a one-shot watch, which must come promptly.
pub async fn fired(w: OneshotWatcher) -> WatchedEvent {
    within(PROMPT, w.changed()).await
}

/// The next event of a persistent watch, which must come promptly.
pub async fn next(w: &mut PersistentWatcher) -> WatchedEvent {
    within(PROMPT, w.changed()).await
}

/// Asserts that a persistent watch delivers nothing more within `d`.
pub async fn quiet(w: &mut PersistentWatcher, d: Duration) {
    if let Ok(e) = tokio::time::timeout(d, w.changed()).await {
        panic!("unexpected event {e:?}");
    }
}

/// The event of a one-shot watch if it has already been delivered, without waiting at
/// all: used to check that an event arrived before some reply.
pub async fn already_fired(w: OneshotWatcher) -> Option<WatchedEvent> {
    tokio::time::timeout(Duration::ZERO, w.changed()).await.ok()
}

/// The next event of a persistent watch if it has already been delivered.
pub async fn already_next(w: &mut PersistentWatcher) -> Option<WatchedEvent> {
    tokio::time::timeout(Duration::ZERO, w.changed()).await.ok()
}

/// `(event type, path)` of a node event.
pub fn ev(e: &WatchedEvent) -> (EventType, &str) {
    (e.event_type, e.path.as_str())
}
