//! Bad input from the quorum side, from a scripted leader: a digest that does not match,
//! an oversized packet, an unknown packet type, a SNAP that ends early, a SNAP with a
//! wrong signature. Each gets a clear log line and a new sync (from scratch after a
//! digest mismatch); nothing is half-applied, and the process and its client port live
//! on and serve again once synced.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use geokeeper_core::acl::open_acl_unsafe;
use geokeeper_core::proto::quorum::{split_packet, PacketType, QuorumPacket, SNAP_SIGNATURE};
use geokeeper_core::proto::records::*;
use geokeeper_core::proto::txn::{CreateTxn, TxnBody, TxnDigest, TxnEntry, TxnHeader};
use geokeeper_core::proto::{OpCode, Record};
use geokeeper_core::request::Request;
use geokeeper_core::snapshot_stream::encode_database;
use geokeeper_core::tree::{DataTree, DIGEST_VERSION};
use support::gk::Geokeeper;
use support::java_zk::{four_letter, free_loopback_addr};
use support::rawzk::{decode_body, Body, RawZk};

const EPOCH: i64 = 5;

/// A leader that speaks just enough of the learner protocol, and whatever else a test
/// makes it say.
struct FakeLeader {
    listener: TcpListener,
    tree: DataTree,
    counter: i64,
}

struct Link {
    s: TcpStream,
    buf: Vec<u8>,
    /// The learner's zxid in its ACKEPOCH.
    peer_zxid: i64,
}

impl Link {
    fn send(&mut self, p: QuorumPacket) {
        self.s
            .write_all(&p.to_bytes())
            .expect("send to the learner");
    }

    fn recv(&mut self) -> QuorumPacket {
        loop {
            if let Some((p, n)) = split_packet(&self.buf, 1 << 22).expect("a valid packet") {
                self.buf.drain(..n);
                return p;
            }
            let mut b = [0u8; 4096];
            let n = self.s.read(&mut b).expect("read from the learner");
            assert!(n > 0, "the learner closed the link");
            self.buf.extend_from_slice(&b[..n]);
        }
    }

    /// Whether the learner closes the link within `within` (it reads nothing more).
    fn closed_within(&mut self, within: Duration) -> bool {
        self.s.set_read_timeout(Some(within)).ok();
        let mut b = [0u8; 4096];
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.s.read(&mut b) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {} // ping replies
            }
        }
        false
    }
}

fn be_i32(v: i32) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

impl FakeLeader {
    fn new() -> FakeLeader {
        FakeLeader {
            listener: TcpListener::bind(free_loopback_addr()).expect("bind"),
            tree: DataTree::new(),
            counter: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("addr")
    }

    /// Accepts a learner and runs the handshake up to the sync choice.
    fn accept(&self) -> Link {
        self.listener
            .set_nonblocking(false)
            .expect("blocking listener");
        let (s, _) = self.listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let mut l = Link {
            s,
            buf: Vec::new(),
            peer_zxid: -1,
        };
        let hello = l.recv();
        assert_eq!(hello.kind(), Some(PacketType::ObserverInfo));
        l.send(QuorumPacket::new(
            PacketType::LeaderInfo,
            EPOCH << 32,
            Some(be_i32(0x10000)),
        ));
        let ack = l.recv();
        assert_eq!(ack.kind(), Some(PacketType::AckEpoch));
        l.peer_zxid = ack.zxid;
        l
    }

    /// SNAP, or an empty DIFF when the learner is where we are; then NEWLEADER and
    /// UPTODATE, each acknowledged.
    fn sync(&self, l: &mut Link) {
        if l.peer_zxid == self.tree.last_zxid() {
            l.send(QuorumPacket::new(
                PacketType::Diff,
                self.tree.last_zxid(),
                None,
            ));
        } else {
            self.send_snap(l, SNAP_SIGNATURE, usize::MAX);
        }
        self.finish_sync(l);
    }

    fn send_snap(&self, l: &mut Link, signature: &str, cut_at: usize) {
        let mut b = QuorumPacket::new(PacketType::Snap, self.tree.last_zxid(), None)
            .to_bytes()
            .to_vec();
        b.extend(encode_database(&self.tree, &[]));
        b.extend_from_slice(&(signature.len() as i32).to_be_bytes());
        b.extend_from_slice(signature.as_bytes());
        l.s.write_all(&b[..cut_at.min(b.len())]).expect("snap");
    }

    fn finish_sync(&self, l: &mut Link) {
        l.send(QuorumPacket::new(PacketType::NewLeader, EPOCH << 32, None));
        assert_eq!(l.recv().kind(), Some(PacketType::Ack));
        l.send(QuorumPacket::new(PacketType::UpToDate, -1, None));
        assert_eq!(l.recv().kind(), Some(PacketType::Ack));
    }

    /// Commits a create in the leader's tree and returns its INFORM; `bad_digest` sends
    /// a digest that is not the tree's.
    fn create(&mut self, path: &str, bad_digest: bool) -> QuorumPacket {
        self.counter += 1;
        let header = TxnHeader {
            client_id: 0x99,
            cxid: self.counter as i32,
            zxid: (EPOCH << 32) | self.counter,
            time: 1_700_000_000_000,
            r#type: OpCode::Create as i32,
        };
        let body = TxnBody::Create(CreateTxn {
            path: path.into(),
            data: Some(Bytes::from_static(b"d")),
            acl: open_acl_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
        });
        self.tree.apply(&header, &body, &mut Vec::new());
        let digest = TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: self.tree.digest() ^ i64::from(bad_digest),
        };
        let entry = TxnEntry {
            header,
            body,
            digest: Some(digest),
        };
        QuorumPacket::new(
            PacketType::Inform,
            entry.header.zxid,
            Some(entry.to_bytes()),
        )
    }
}

fn mntr(addr: SocketAddr, key: &str) -> String {
    four_letter(addr, "mntr")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("zk_{key}\t")).map(str::to_owned))
        .unwrap_or_default()
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// getData through a client of the gateway: the data, or the error code.
fn read(addr: SocketAddr, path: &str) -> Result<Vec<u8>, i32> {
    let mut z = RawZk::connect(addr, 0, &[0; 16], 0, 10_000).expect("session");
    let f = z
        .call(
            OpCode::GetData,
            &Request::GetData(GetDataRequest {
                path: path.into(),
                watch: false,
            }),
        )
        .reply
        .expect("reply");
    match decode_body(OpCode::GetData as i32, &f.body) {
        Body::GetData(d) if f.header.err == 0 => Ok(d.data.map(|b| b.to_vec()).unwrap_or_default()),
        _ => Err(f.header.err),
    }
}

#[test]
fn bad_input_from_the_leader_is_refused_and_resynced() {
    let mut leader = FakeLeader::new();
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("myid"), "21\n").expect("myid");
    let la = leader.addr();
    // Local sessions: the scripted leader answers no createSession.
    let gk = Geokeeper::start_on(
        data.path(),
        &format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=10\npeerType=observer\n4lw.commands.whitelist=*\nlocalSessionsEnabled=true\n\
             server.1={}:{}:1\nserver.2=127.0.0.1:1:2\nserver.3=127.0.0.1:3:4\nserver.21=127.0.0.1:5:6:observer\n",
            la.ip(),
            la.port()
        ),
    );
    let synced = || mntr(gk.addr, "observer_synced") == "1";

    // A good start: SNAP, then an INFORM.
    // /a is in the leader's tree before the gateway joins: it arrives in the SNAP.
    let _ = leader.create("/a", false);
    let mut l = leader.accept();
    assert_eq!(l.peer_zxid, 0);
    leader.sync(&mut l);
    wait_for("synced", Duration::from_secs(10), synced);
    l.send(leader.create("/b", false));
    wait_for("/b applied", Duration::from_secs(10), || {
        read(gk.addr, "/b").is_ok()
    });
    assert_eq!(read(gk.addr, "/a"), Ok(b"d".to_vec()));

    // An unknown packet type is ignored, as Observer.processPacket does; the link stays.
    l.send(QuorumPacket {
        r#type: 99,
        zxid: 0,
        data: None,
        authinfo: None,
    });
    l.send(leader.create("/c", false));
    wait_for("/c applied", Duration::from_secs(10), || {
        read(gk.addr, "/c").is_ok()
    });

    // A digest that does not match: logged, counted, and a sync from scratch.
    l.send(leader.create("/d", true));
    assert!(
        l.closed_within(Duration::from_secs(10)),
        "the link is dropped"
    );
    let mut l = leader.accept();
    assert_eq!(
        l.peer_zxid, 0,
        "a resync after a digest mismatch starts from scratch"
    );
    assert_eq!(mntr(gk.addr, "digest_mismatches_count"), "1");
    assert!(gk.log().contains("digest mismatch at zxid"), "{}", gk.log());
    leader.sync(&mut l);
    wait_for("synced again", Duration::from_secs(10), synced);
    assert_eq!(
        read(gk.addr, "/d"),
        Ok(b"d".to_vec()),
        "the leader's tree, whole"
    );
    let last = mntr(gk.addr, "observer_last_zxid");

    // An oversized packet: dropped at its length, nothing applied; a DIFF from where the
    // gateway was.
    let mut huge = QuorumPacket::new(PacketType::Inform, 0, None)
        .to_bytes()
        .to_vec();
    huge.truncate(12);
    huge.extend_from_slice(&(64i32 << 20).to_be_bytes());
    l.s.write_all(&huge).expect("send");
    assert!(
        l.closed_within(Duration::from_secs(10)),
        "the link is dropped"
    );
    let mut l = leader.accept();
    assert_eq!(
        format!("0x{:x}", l.peer_zxid),
        last,
        "resumes from its last zxid"
    );
    leader.sync(&mut l);
    wait_for(
        "synced after the oversized packet",
        Duration::from_secs(10),
        synced,
    );
    drop(l);

    // A SNAP that ends early, then one with the wrong signature: neither is installed.
    leader.create("/e", false);
    let mut l = leader.accept();
    leader.send_snap(&mut l, SNAP_SIGNATURE, 40);
    drop(l);
    let mut l = leader.accept();
    assert_eq!(
        format!("0x{:x}", l.peer_zxid),
        last,
        "nothing of the cut SNAP was installed"
    );
    leader.send_snap(&mut l, "BenWasNotHere", usize::MAX);
    assert!(
        l.closed_within(Duration::from_secs(10)),
        "a bad signature drops the link"
    );
    let mut l = leader.accept();
    assert_eq!(
        format!("0x{:x}", l.peer_zxid),
        last,
        "nor of the badly signed one"
    );
    leader.sync(&mut l);
    wait_for(
        "synced after the bad SNAPs",
        Duration::from_secs(10),
        synced,
    );
    assert_eq!(read(gk.addr, "/e"), Ok(b"d".to_vec()));
    assert!(
        gk.log().contains("BenWasNotHere"),
        "the bad signature is named in the log"
    );
}
