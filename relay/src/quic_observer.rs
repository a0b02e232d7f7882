//! The QUIC observer's driver: keeps an observer-only replica linked to a publisher (the
//! leader's, or a relay of its room) over QUIC with mutual TLS. It is the same
//! `Role::Observer` core the gateway drives; only the upstream differs.
//!
//! It connects to the first reachable upstream of its list (host names resolved again
//! at every attempt), says its last logged zxid and any snapshot it holds part of, and
//! feeds the core what comes back: a snapshot (written whole and checked before it is
//! installed), committed transactions (logged before they are applied), the answers to
//! forwarded syncs and revalidations, and heartbeats (answered with the sessions its
//! clients kept alive). Clients are served once the publisher says `UpToDate` and the
//! replica is within `max_lag_ms` of the leader. After any failure the core is told the
//! upstream is lost, and the next upstream is tried with backoff and jitter, resuming
//! from the last zxid.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use geokeeper_core::lag::Behind;
use geokeeper_core::net::{ToUpstream, UpstreamMsg};
use geokeeper_core::server::{Input, SyncInfo};
use geokeeper_core::snapshot::{self, Compression};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::gateway::{ask, backoff, reset_data};
use crate::publisher::{read_frame, FrameError, LeaderClock};
use crate::wire::{self, Down, Resume, TxnUnstream, Up, WireError};

#[derive(Debug, Clone)]
pub struct ObserverSettings {
    /// `host:port` of each upstream publisher, in order of preference.
    pub upstreams: Vec<String>,
    pub client_config: quinn::ClientConfig,
    /// `dataDir/version-2`: snapshots, and a snapshot being received.
    pub snap_dir: PathBuf,
    pub compression: Compression,
    pub max_backoff: Duration,
    /// Clients are served only within this lag of the leader (ms).
    pub max_lag_ms: u64,
}

/// Counters for `mntr`.
#[derive(Debug, Default)]
pub struct ObserverStats {
    pub upstream: Mutex<String>,
    pub bytes_wire: AtomicU64,
    pub bytes_raw: AtomicU64,
    pub snapshots: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    /// Transfers resumed after a cut rather than started over.
    pub snapshot_resumes: AtomicU64,
    /// The size of the last snapshot received.
    pub snapshot_size: AtomicU64,
    pub reconnects: AtomicU64,
    pub lag_ms: AtomicU64,
    /// Bytes sent upstream: the hello, forwarded requests and touches.
    pub bytes_up: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("link to {0}: {1}")]
    Conn(String, quinn::ConnectionError),
    #[error("link to {0}: write: {1}")]
    Write(String, quinn::WriteError),
    #[error("link to {0}: {1}")]
    Frame(String, FrameError),
    #[error("link to {0}: the publisher ended the stream")]
    Ended(String),
    #[error("snapshot from {0}: {1}")]
    Snapshot(String, String),
    #[error("resync from scratch: {0}")]
    Resync(String),
    #[error("the server is gone")]
    ServerGone,
}

/// Follows the upstreams until `shutdown` turns true or the core is gone.
pub async fn run(
    s: ObserverSettings,
    core: mpsc::UnboundedSender<UpstreamMsg>,
    mut from_core: mpsc::UnboundedReceiver<ToUpstream>,
    clock: Arc<LeaderClock>,
    stats: Arc<ObserverStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let endpoint = match client_endpoint() {
        Ok(e) => e,
        Err(e) => {
            warn!("cannot open a QUIC endpoint for the relay: {e}");
            return;
        }
    };
    let n = s.upstreams.len().max(1);
    let mut next = 0usize;
    let mut failures = 0u32;
    let mut reset = false;
    loop {
        if reset {
            remove_partials(&s.snap_dir);
            if let Err(e) = reset_data(&s.snap_dir, s.compression, &core).await {
                warn!("cannot empty the data directory for a resync: {e}");
            }
            reset = false;
        }
        while from_core.try_recv().is_ok() {}
        let upstream = s.upstreams[next % n].clone();
        let mut link = Link {
            s: &s,
            core: &core,
            clock: &clock,
            stats: &stats,
            upstream: upstream.clone(),
            synced: false,
            partial: None,
            last_zxid: 0,
            behind: Behind::default(),
            pending_up_to_date: None,
            kind: "DIFF",
            started: Instant::now(),
            t0: Instant::now(),
        };
        let r = tokio::select! {
            r = link.follow(&endpoint, &mut from_core) => r,
            _ = shutdown.changed() => {
                endpoint.close(0u32.into(), b"shutting down");
                return;
            }
        };
        let synced = link.synced;
        let Err(err) = r else { continue };
        match &err {
            LinkError::ServerGone => return,
            LinkError::Resync(_) => reset = true,
            _ => {}
        }
        warn!("{err}");
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        if core
            .send(UpstreamMsg::Input(Input::LeaderLost {
                reason: err.to_string(),
            }))
            .is_err()
        {
            return;
        }
        next += 1;
        let pause = if synced {
            failures = 0;
            backoff(0, s.max_backoff)
        } else if next % n == 0 {
            failures += 1;
            backoff(failures, s.max_backoff)
        } else {
            Duration::from_millis(10)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {
                endpoint.close(0u32.into(), b"shutting down");
                return;
            }
        }
    }
}

/// A snapshot being received: `relay-partial.<size>.<name>` in the snapshot directory.
struct Partial {
    name: String,
    size: u64,
    path: PathBuf,
    written: u64,
    file: tokio::fs::File,
}

const PARTIAL_PREFIX: &str = "relay-partial.";

/// The snapshot this replica holds part of, if any.
fn find_partial(dir: &Path) -> Option<Resume> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PARTIAL_PREFIX)) else {
            continue;
        };
        let Some((size, snap)) = rest.split_once('.') else {
            continue;
        };
        let (Ok(size), Ok(meta)) = (size.parse::<u64>(), e.metadata()) else {
            continue;
        };
        return Some(Resume {
            name: snap.to_string(),
            size,
            offset: meta.len().min(size),
        });
    }
    None
}

fn remove_partials(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PARTIAL_PREFIX))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A snapshot file name as publishers send them: `snapshot.<hex>` and an extension.
fn valid_snapshot_name(name: &str) -> bool {
    name.starts_with("snapshot.")
        && name.len() < 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// The subscriber's endpoint. It holds one connection at a time (to one upstream), so
/// its connection IDs are empty and packets to it are told apart by where they come
/// from: every packet of the stream down the WAN is 8 bytes shorter (a paced write's
/// packet is about 100 bytes).
fn client_endpoint() -> std::io::Result<quinn::Endpoint> {
    let mut config = quinn::EndpointConfig::default();
    config.cid_generator(|| Box::new(NoConnectionIds));
    let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))?;
    quinn::Endpoint::new(config, None, socket, Arc::new(quinn::TokioRuntime))
}

struct NoConnectionIds;

impl quinn::ConnectionIdGenerator for NoConnectionIds {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        quinn::ConnectionId::new(&[])
    }

    fn cid_len(&self) -> usize {
        0
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

struct Link<'a> {
    s: &'a ObserverSettings,
    core: &'a mpsc::UnboundedSender<UpstreamMsg>,
    clock: &'a LeaderClock,
    stats: &'a ObserverStats,
    upstream: String,
    /// This link reached UpToDate.
    synced: bool,
    partial: Option<Partial>,
    /// The last transaction received.
    last_zxid: i64,
    /// Leader positions its heartbeats announced that this link has not received.
    behind: Behind,
    /// UpToDate came, but the replica is further than `max_lag_ms` behind.
    pending_up_to_date: Option<i64>,
    kind: &'static str,
    started: Instant,
    /// The origin of this link's clock for [`Behind`].
    t0: Instant,
}

impl Link<'_> {
    fn input(&self, i: Input) -> Result<(), LinkError> {
        self.core
            .send(UpstreamMsg::Input(i))
            .map_err(|_| LinkError::ServerGone)
    }

    async fn follow(
        &mut self,
        endpoint: &quinn::Endpoint,
        from_core: &mut mpsc::UnboundedReceiver<ToUpstream>,
    ) -> Result<(), LinkError> {
        let up = self.upstream.clone();
        // Resolved again at every attempt: a name may move to another address.
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(&up)
            .await
            .map_err(|e| LinkError::Resolve(up.clone(), e.to_string()))?
            .collect();
        let host = up
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(&up)
            .to_string();
        // The first address the endpoint can reach (an IPv4 endpoint skips IPv6 ones).
        let mut last_err = LinkError::Resolve(up.clone(), "no address".into());
        let mut connected = None;
        for addr in addrs {
            match endpoint.connect_with(self.s.client_config.clone(), addr, &host) {
                Ok(connecting) => match connecting.await {
                    Ok(c) => {
                        connected = Some(c);
                        break;
                    }
                    Err(e) => last_err = LinkError::Conn(format!("{up} ({addr})"), e),
                },
                Err(e) => last_err = LinkError::Connect(format!("{up} ({addr})"), e.to_string()),
            }
        }
        let conn = connected.ok_or(last_err)?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| LinkError::Conn(up.clone(), e))?;
        let last_zxid = ask(self.core, UpstreamMsg::LastReceived)
            .await
            .ok_or(LinkError::ServerGone)?;
        self.last_zxid = last_zxid;
        let resume = find_partial(&self.s.snap_dir);
        info!(upstream = %up, last_zxid = format_args!("{last_zxid:#x}"), resume = ?resume, "connected to the upstream");
        if let Ok(mut u) = self.stats.upstream.lock() {
            *u = up.clone();
        }
        self.started = Instant::now();
        self.write(
            &mut send,
            &Up::Hello {
                version: wire::VERSION,
                last_zxid,
                resume,
            },
        )
        .await?;
        let mut buf = BytesMut::new();
        let mut unstream = TxnUnstream::new().map_err(|e| {
            LinkError::Frame(
                up.clone(),
                FrameError::Wire(WireError::Malformed {
                    kind: "Txns",
                    why: format!("zstd: {e}"),
                }),
            )
        })?;
        loop {
            tokio::select! {
                f = read_frame(&mut recv, &mut buf) => {
                    let (kind, body) = match f {
                        Ok(Some(f)) => f,
                        Ok(None) => return Err(LinkError::Ended(up)),
                        Err(FrameError::Io(e)) => {
                            // A closed connection says why in its close frame.
                            if let Some(reason) = conn.close_reason() {
                                return Err(LinkError::Conn(up, reason));
                            }
                            return Err(LinkError::Frame(up, FrameError::Io(e)));
                        }
                        Err(e) => return Err(LinkError::Frame(up, e)),
                    };
                    let wire_len = body.len() as u64 + 5;
                    let down = Down::decode_with(kind, body, Some(&mut unstream))
                        .map_err(|e| LinkError::Frame(up.clone(), FrameError::Wire(e)))?;
                    self.stats.bytes_wire.fetch_add(wire_len, Ordering::Relaxed);
                    self.down(down, &mut send, wire_len).await?;
                }
                d = conn.read_datagram() => {
                    // Heartbeats come as datagrams, ahead of the stream's data.
                    let mut b = match d {
                        Ok(b) => BytesMut::from(&b[..]),
                        Err(e) => return Err(LinkError::Conn(up, e)),
                    };
                    let (kind, body) = match wire::split_frame(&mut b) {
                        Ok(Some(f)) => f,
                        Ok(None) => continue,
                        Err(e) => return Err(LinkError::Frame(up, FrameError::Wire(e))),
                    };
                    match Down::decode(kind, body) {
                        Ok(hb @ Down::Heartbeat { .. }) => self.down(hb, &mut send, 0).await?,
                        Ok(other) => warn!(upstream = %up, "a datagram that is no heartbeat: {other:?}; ignored"),
                        Err(e) => return Err(LinkError::Frame(up, FrameError::Wire(e))),
                    }
                }
                m = from_core.recv() => match m {
                    Some(ToUpstream::Packet(p)) => self.write(&mut send, &Up::Forward(p)).await?,
                    Some(ToUpstream::Resync(reason)) => {
                        conn.close(0u32.into(), b"resync");
                        return Err(LinkError::Resync(reason));
                    }
                    None => return Err(LinkError::ServerGone),
                },
            }
        }
    }

    async fn write(&self, send: &mut quinn::SendStream, up: &Up) -> Result<(), LinkError> {
        let mut b = BytesMut::new();
        up.encode(&mut b);
        send.write_all(&b)
            .await
            .map_err(|e| LinkError::Write(self.upstream.clone(), e))?;
        self.stats
            .bytes_up
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn down(
        &mut self,
        d: Down,
        send: &mut quinn::SendStream,
        wire_len: u64,
    ) -> Result<(), LinkError> {
        match d {
            Down::Txns(entries) => {
                let raw: u64 = entries.iter().map(|e| e.bytes.len() as u64 + 12).sum();
                self.stats
                    .bytes_raw
                    .fetch_add(raw.max(wire_len), Ordering::Relaxed);
                if let Some(l) = entries.last() {
                    self.last_zxid = l.zxid;
                    self.behind.reached(l.zxid);
                }
                if !entries.is_empty() {
                    self.input(Input::Committed(entries))?;
                }
                self.maybe_up_to_date()?;
            }
            Down::SnapBegin {
                name,
                zxid,
                size,
                offset,
            } => self.snap_begin(name, zxid, size, offset).await?,
            Down::SnapChunk { offset, crc, data } => {
                self.stats.bytes_raw.fetch_add(wire_len, Ordering::Relaxed);
                let up = self.upstream.clone();
                let p = self.partial.as_mut().ok_or_else(|| {
                    LinkError::Snapshot(up.clone(), "a chunk before SnapBegin".into())
                })?;
                if offset != p.written || p.written + data.len() as u64 > p.size {
                    return Err(LinkError::Snapshot(
                        up,
                        format!(
                            "a chunk at {offset}, expected {} (size {})",
                            p.written, p.size
                        ),
                    ));
                }
                if crc32fast::hash(&data) != crc {
                    return Err(LinkError::Snapshot(
                        up,
                        format!("the chunk at {offset} fails its checksum"),
                    ));
                }
                p.file
                    .write_all(&data)
                    .await
                    .map_err(|e| LinkError::Snapshot(up.clone(), e.to_string()))?;
                p.written += data.len() as u64;
                self.stats
                    .snapshot_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Down::SnapEnd => self.snap_end().await?,
            Down::UpToDate { zxid } => {
                self.pending_up_to_date = Some(zxid);
                self.maybe_up_to_date()?;
            }
            Down::Heartbeat {
                leader_zxid,
                leader_time_ms,
                publisher_zxid: _,
            } => {
                self.clock.set(leader_zxid, leader_time_ms);
                self.behind
                    .leader_at(leader_zxid, self.last_zxid, self.now_ms());
                self.input(Input::LeaderPing { zxid: leader_zxid })?;
                let touched = ask(self.core, UpstreamMsg::TakeTouched)
                    .await
                    .ok_or(LinkError::ServerGone)?;
                if !touched.is_empty() {
                    self.write(send, &Up::Touch(touched)).await?;
                }
                self.maybe_up_to_date()?;
            }
            Down::Synced => self.input(Input::Synced)?,
            Down::Revalidated { session, valid } => {
                self.input(Input::Revalidated { session, valid })?
            }
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// How long this link has known of a leader position it has not received (0 when
    /// it has everything the heartbeats announced): see [`Behind`].
    fn lag_ms(&self) -> u64 {
        self.behind.lag_ms(self.last_zxid, self.now_ms())
    }

    fn maybe_up_to_date(&mut self) -> Result<(), LinkError> {
        let lag = self.lag_ms();
        self.stats.lag_ms.store(lag, Ordering::Relaxed);
        let Some(zxid) = self.pending_up_to_date else {
            return Ok(());
        };
        if lag > self.s.max_lag_ms {
            return Ok(());
        }
        self.pending_up_to_date = None;
        self.synced = true;
        info!(
            upstream = %self.upstream,
            zxid = format_args!("{zxid:#x}"),
            kind = self.kind,
            ms = self.started.elapsed().as_millis() as u64,
            lag_ms = lag,
            "in sync with the upstream"
        );
        self.input(Input::UpToDate(SyncInfo {
            leader: self.upstream.clone(),
            epoch: (zxid >> 32) as u32,
            kind: self.kind,
            duration_ms: self.started.elapsed().as_millis() as u64,
        }))
    }

    async fn snap_begin(
        &mut self,
        name: String,
        zxid: i64,
        size: u64,
        offset: u64,
    ) -> Result<(), LinkError> {
        let up = self.upstream.clone();
        let bad = |why: String| LinkError::Snapshot(up.clone(), why);
        if !valid_snapshot_name(&name) {
            return Err(bad(format!("a snapshot named {name:?}")));
        }
        self.kind = "SNAP";
        let path = self
            .s
            .snap_dir
            .join(format!("{PARTIAL_PREFIX}{size}.{name}"));
        let file = if offset == 0 {
            remove_partials(&self.s.snap_dir);
            tokio::fs::File::create(&path).await
        } else {
            tokio::fs::OpenOptions::new().write(true).open(&path).await
        }
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        let have = file.metadata().await.map_err(|e| bad(e.to_string()))?.len();
        if have < offset {
            return Err(bad(format!(
                "resume at {offset}, but only {have} bytes are here"
            )));
        }
        file.set_len(offset).await.map_err(|e| bad(e.to_string()))?;
        let mut file = file;
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| bad(e.to_string()))?;
        info!(upstream = %up, snapshot = %name, zxid = format_args!("{zxid:#x}"), size, from = offset, "receiving a snapshot");
        self.stats.snapshot_size.store(size, Ordering::Relaxed);
        if offset > 0 {
            self.stats.snapshot_resumes.fetch_add(1, Ordering::Relaxed);
        }
        self.partial = Some(Partial {
            name,
            size,
            path,
            written: offset,
            file,
        });
        Ok(())
    }

    async fn snap_end(&mut self) -> Result<(), LinkError> {
        let up = self.upstream.clone();
        let bad = |why: String| LinkError::Snapshot(up.clone(), why);
        let p = self
            .partial
            .take()
            .ok_or_else(|| bad("SnapEnd before SnapBegin".into()))?;
        if p.written != p.size {
            return Err(bad(format!(
                "SnapEnd after {} of {} bytes",
                p.written, p.size
            )));
        }
        p.file.sync_all().await.map_err(|e| bad(e.to_string()))?;
        drop(p.file);
        let final_path = self.s.snap_dir.join(&p.name);
        let (partial, dir) = (p.path.clone(), self.s.snap_dir.clone());
        let fp = final_path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            // Checked whole before it takes the place of a snapshot.
            let loaded =
                snapshot::load(&partial_as_snapshot(&partial, &fp)?).map_err(|e| e.to_string());
            if loaded.is_err() {
                let _ = std::fs::remove_file(&fp);
            }
            let _ = std::fs::File::open(&dir).and_then(|d| d.sync_all());
            loaded
        })
        .await
        .map_err(|e| bad(e.to_string()))?
        .map_err(bad)?;
        self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        info!(
            upstream = %self.upstream,
            zxid = format_args!("{:#x}", loaded.zxid),
            nodes = loaded.tree.node_count(),
            ms = self.started.elapsed().as_millis() as u64,
            "snapshot received and checked: installing it"
        );
        self.last_zxid = loaded.zxid;
        self.input(Input::Install {
            tree: Box::new(loaded.tree),
            sessions: loaded.sessions,
        })
    }
}

/// Renames the received file to its snapshot name (same directory, so atomic).
fn partial_as_snapshot(partial: &Path, snapshot: &Path) -> Result<PathBuf, String> {
    std::fs::rename(partial, snapshot).map_err(|e| format!("{}: {e}", snapshot.display()))?;
    Ok(snapshot.to_path_buf())
}

impl ObserverStats {
    /// `mntr` lines (keys without `zk_`).
    pub fn mntr_lines(&self) -> Vec<(String, String)> {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        vec![
            (
                "relay_upstream".to_string(),
                self.upstream.lock().map(|u| u.clone()).unwrap_or_default(),
            ),
            ("relay_bytes_in".into(), n(&self.bytes_wire)),
            ("relay_bytes_in_uncompressed".into(), n(&self.bytes_raw)),
            ("relay_snapshots_received".into(), n(&self.snapshots)),
            (
                "relay_snapshot_bytes_received".into(),
                n(&self.snapshot_bytes),
            ),
            ("relay_snapshot_resumes".into(), n(&self.snapshot_resumes)),
            ("relay_snapshot_size".into(), n(&self.snapshot_size)),
            ("relay_reconnects".into(), n(&self.reconnects)),
            ("relay_lag_ms".into(), n(&self.lag_ms)),
            ("relay_bytes_sent_upstream".into(), n(&self.bytes_up)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_lag_ms: u64) -> ObserverSettings {
        let provider = crate::tls::ring_provider();
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls 1.3")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client config");
        ObserverSettings {
            upstreams: vec![],
            client_config: quinn::ClientConfig::new(Arc::new(crypto)),
            snap_dir: PathBuf::new(),
            compression: Compression::None,
            max_backoff: Duration::from_secs(1),
            max_lag_ms,
        }
    }

    /// After UpToDate an observer serves only within `max_lag_ms` of the leader: while
    /// it has not received a position the heartbeats announced more than that long ago,
    /// it waits.
    #[test]
    fn clients_are_served_only_within_the_lag_bound() {
        let s = settings(1_000);
        let (core, mut rx) = mpsc::unbounded_channel();
        let clock = LeaderClock::default();
        let stats = ObserverStats::default();
        let ago = |ms: u64| Instant::now() - Duration::from_millis(ms);
        let mut link = Link {
            s: &s,
            core: &core,
            clock: &clock,
            stats: &stats,
            upstream: "up:1".into(),
            synced: false,
            partial: None,
            last_zxid: 50,
            behind: Behind::default(),
            pending_up_to_date: None,
            kind: "SNAP",
            started: Instant::now(),
            t0: ago(10_000),
        };
        // The heartbeats said 80 five seconds ago and 90 a tenth of a second ago.
        link.behind.leader_at(80, 50, 5_000);
        link.behind.leader_at(90, 50, 9_900);
        link.pending_up_to_date = Some(50);
        link.maybe_up_to_date().expect("core");
        assert!(rx.try_recv().is_err(), "served 5 s behind the leader");
        assert!(!link.synced);
        let lag = stats.lag_ms.load(Ordering::Relaxed);
        assert!((5_000..6_000).contains(&lag), "lag {lag}");
        // 80 arrives: behind only what was announced 0.1 s ago.
        link.last_zxid = 85;
        link.behind.reached(85);
        link.maybe_up_to_date().expect("core");
        match rx.try_recv() {
            Ok(UpstreamMsg::Input(Input::UpToDate(info))) => {
                assert_eq!(info.kind, "SNAP");
                assert_eq!(info.leader, "up:1");
            }
            other => panic!("expected UpToDate, got {other:?}"),
        }
        assert!(link.synced);
        // Everything announced received: no lag however old the announcements.
        link.last_zxid = 90;
        assert_eq!(link.lag_ms(), 0);
    }
}
