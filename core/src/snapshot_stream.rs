//! ZooKeeper's serialized database arriving as a stream: what a leader sends a learner
//! after SNAP (`ZKDatabase.serializeSnapshot`: the sessions, then `DataTree.serialize`:
//! the ACL map and every node, parents first, ended by the path "/"), and what a snapshot
//! transfer between geokeeper replicas carries. The same records as a snapshot file's
//! body ([`crate::snapshot`]), without the file's header and seals.
//!
//! [`DatabaseStream`] installs each record into a fresh tree as soon as it is whole, so a
//! tree of a million znodes is never buffered as bytes: the caller feeds whatever arrived
//! and keeps only the unfinished record's bytes. Like every decoder here it never trusts a
//! length: a length is checked against `max_len` before anything waits for or allocates it.

use bytes::Bytes;

use crate::proto::records::Acl;
use crate::proto::{DecodeError, Reader, Record};
use crate::tree::{DataTree, NodeStat};

/// Why the stream cannot be installed: the link is dropped and the sync starts over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("serialized database: invalid length {len} at offset {offset}")]
    BadLength { offset: u64, len: i64 },
    #[error("serialized database: {0}")]
    Decode(#[from] DecodeError),
    #[error("serialized database: node {0} arrived before its parent")]
    Orphan(String),
    #[error("serialized database: it ended without a root node")]
    NoRoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    SessionCount,
    Sessions(usize),
    AclCount,
    Acls(usize),
    Nodes,
    Done,
}

/// Installs a serialized database record by record.
#[derive(Debug)]
pub struct DatabaseStream {
    part: Part,
    tree: DataTree,
    sessions: Vec<(i64, i32)>,
    max_len: usize,
    /// Bytes consumed so far (for error offsets).
    offset: u64,
    nodes: u64,
}

/// The length field at `at`: `Ok(None)` when it has not arrived; null (−1) counts as 0.
fn length_at(buf: &[u8], at: usize, max: usize, offset: u64) -> Result<Option<usize>, StreamError> {
    let Some(b) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    match len {
        -1 => Ok(Some(0)),
        n if n < 0 || n as usize > max => Err(StreamError::BadLength {
            offset: offset + at as u64,
            len: n as i64,
        }),
        n => Ok(Some(n as usize)),
    }
}

/// The size of a record made of length-prefixed fields and fixed ones, walked in order:
/// `Ok(None)` until every length it needs has arrived.
fn record_len(
    buf: &[u8],
    fields: &[Field],
    max: usize,
    offset: u64,
) -> Result<Option<usize>, StreamError> {
    let mut at = 0usize;
    for f in fields {
        match f {
            Field::Fixed(n) => at += n,
            Field::Lengthed => {
                let Some(n) = length_at(buf, at, max, offset)? else {
                    return Ok(None);
                };
                at += 4 + n;
            }
        }
    }
    Ok(Some(at))
}

enum Field {
    Fixed(usize),
    Lengthed,
}

/// A node record: path, data, ACL id, then the 60 bytes of `StatPersisted`.
const NODE: [Field; 4] = [
    Field::Lengthed,
    Field::Lengthed,
    Field::Fixed(8),
    Field::Fixed(60),
];

impl DatabaseStream {
    /// `max_len`: the longest buffer or string a record may hold (`jute.maxbuffer` plus
    /// extrasize, as for client records).
    pub fn new(max_len: usize) -> DatabaseStream {
        DatabaseStream {
            part: Part::SessionCount,
            tree: DataTree::empty(),
            sessions: Vec::new(),
            max_len,
            offset: 0,
            nodes: 0,
        }
    }

    /// Whether the end marker has been read.
    pub fn is_done(&self) -> bool {
        self.part == Part::Done
    }

    /// Nodes installed so far.
    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    /// Installs every whole record at the front of `buf` and returns how many bytes they
    /// took; the caller keeps the rest and feeds it again with more. Stops at the end
    /// marker: what follows it is not the database's.
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, StreamError> {
        let mut used = 0;
        while self.part != Part::Done {
            match self.record(&buf[used..])? {
                Some(n) => {
                    used += n;
                    self.offset += n as u64;
                }
                None => break,
            }
        }
        Ok(used)
    }

    /// One record from the front of `buf`, installed; `None` when it is not whole yet.
    fn record(&mut self, buf: &[u8]) -> Result<Option<usize>, StreamError> {
        let (max, offset) = (self.max_len, self.offset);
        match self.part {
            Part::SessionCount | Part::AclCount => {
                let Some(b) = buf.get(..4) else {
                    return Ok(None);
                };
                let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if n < -1 {
                    return Err(StreamError::BadLength {
                        offset,
                        len: n as i64,
                    });
                }
                let n = n.max(0) as usize;
                self.part = match self.part {
                    Part::SessionCount => Part::Sessions(n),
                    _ => Part::Acls(n),
                };
                self.advance_empty_lists();
                Ok(Some(4))
            }
            Part::Sessions(left) => {
                let Some(b) = buf.get(..12) else {
                    return Ok(None);
                };
                let mut r = Reader::new(b);
                let id = r.read_i64()?;
                let timeout = r.read_i32()?;
                self.sessions.push((id, timeout));
                self.part = Part::Sessions(left - 1);
                self.advance_empty_lists();
                Ok(Some(12))
            }
            Part::Acls(left) => {
                // long id, then vector<ACL>: int count, each ACL an int and two strings.
                let Some(count) = length_at(buf, 8, max / 12, offset)? else {
                    return Ok(None);
                };
                let mut fields = vec![Field::Fixed(12)];
                for _ in 0..count {
                    fields.extend([Field::Fixed(4), Field::Lengthed, Field::Lengthed]);
                }
                let Some(len) = record_len(buf, &fields, max, offset)? else {
                    return Ok(None);
                };
                let Some(rec) = buf.get(..len) else {
                    return Ok(None);
                };
                let mut r = Reader::new(rec).with_max_len(max);
                let id = r.read_i64()?;
                let list = r.read_vec(12, Acl::decode)?;
                self.tree.acls.restore(id, list);
                self.part = Part::Acls(left - 1);
                self.advance_empty_lists();
                Ok(Some(len))
            }
            Part::Nodes => {
                let Some(len) = record_len(buf, &NODE[..1], max, offset)? else {
                    return Ok(None);
                };
                let Some(path) = buf.get(4..len) else {
                    return Ok(None);
                };
                if path == b"/" {
                    self.part = Part::Done;
                    return Ok(Some(len));
                }
                let Some(len) = record_len(buf, &NODE, max, offset)? else {
                    return Ok(None);
                };
                let Some(rec) = buf.get(..len) else {
                    return Ok(None);
                };
                let mut r = Reader::new(rec).with_max_len(max);
                let path = r.read_string()?;
                let data = r.read_buffer_opt()?.map(Bytes::copy_from_slice);
                let acl = r.read_i64()?;
                let stat = NodeStat {
                    czxid: r.read_i64()?,
                    mzxid: r.read_i64()?,
                    ctime: r.read_i64()?,
                    mtime: r.read_i64()?,
                    version: r.read_i32()?,
                    cversion: r.read_i32()?,
                    aversion: r.read_i32()?,
                    ephemeral_owner: r.read_i64()?,
                    pzxid: r.read_i64()?,
                };
                let path = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                if !self.tree.restore_node(&path, data.as_deref(), acl, stat) {
                    return Err(StreamError::Orphan(path));
                }
                self.nodes += 1;
                Ok(Some(len))
            }
            Part::Done => Ok(None),
        }
    }

    /// After a count or an element, an exhausted list moves on to the next part.
    fn advance_empty_lists(&mut self) {
        loop {
            self.part = match self.part {
                Part::Sessions(0) => Part::AclCount,
                Part::Acls(0) => Part::Nodes,
                _ => return,
            };
        }
    }

    /// The installed tree, as of `zxid` (the SNAP's), and the sessions it listed.
    pub fn finish(mut self, zxid: i64) -> Result<(DataTree, Vec<(i64, i32)>), StreamError> {
        if !self.tree.contains("/") {
            return Err(StreamError::NoRoot);
        }
        self.tree.acls.purge_unused();
        self.tree.set_last_zxid(zxid);
        Ok((self.tree, self.sessions))
    }
}

/// The serialized database as a leader sends it after SNAP (`serializeSnapshot`):
/// sessions, the ACL map, every node with its parent before it, then the `"/"`
/// terminator. The signature string that follows on the wire is not part of it.
pub fn encode_database(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
    let mut acls = std::collections::BTreeMap::new();
    let mut nodes = Vec::new();
    for p in tree.walk() {
        if let Some(n) = tree.get(&p) {
            if let Some(l) = tree.acls.stored(n.acl) {
                acls.entry(n.acl).or_insert_with(|| std::sync::Arc::from(l));
            }
            crate::snapshot::encode_node(&p, &n, &mut nodes);
        }
    }
    let mut db = Vec::with_capacity(4 + sessions.len() * 12);
    db.extend_from_slice(&(sessions.len() as i32).to_be_bytes());
    for (id, t) in sessions {
        db.extend_from_slice(&id.to_be_bytes());
        db.extend_from_slice(&t.to_be_bytes());
    }
    db.extend(crate::snapshot::encode_acl_map(&acls));
    db.extend(nodes);
    db.extend_from_slice(&1i32.to_be_bytes());
    db.push(b'/');
    db
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{open_acl_unsafe, read_acl_unsafe};
    use crate::snapshot::{encode_acl_map, encode_node};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// A tree as a leader would stream it: sessions, ACL map, nodes, "/".
    fn serialized(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(&(sessions.len() as i32).to_be_bytes());
        for (id, t) in sessions {
            w.extend_from_slice(&id.to_be_bytes());
            w.extend_from_slice(&t.to_be_bytes());
        }
        let mut acls = BTreeMap::new();
        let mut nodes = Vec::new();
        for p in tree.walk() {
            let n = tree.get(&p).unwrap();
            if let Some(l) = tree.acls.stored(n.acl) {
                acls.insert(n.acl, Arc::from(l));
            }
            encode_node(&p, &n, &mut nodes);
        }
        w.extend_from_slice(&encode_acl_map(&acls));
        w.extend_from_slice(&nodes);
        w.extend_from_slice(&1i32.to_be_bytes());
        w.push(b'/');
        w
    }

    #[test]
    fn encode_database_is_what_a_leader_streams() {
        let t = sample();
        let s = [(0x42, 30_000), (0x43, 4_000)];
        assert_eq!(encode_database(&t, &s), serialized(&t, &s));
    }

    fn sample() -> DataTree {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        t.create_node("/a", Some(b"x"), &open_acl_unsafe(), 0, -1, 2, 10, &mut ch)
            .unwrap();
        t.create_node("/a/b", None, &read_acl_unsafe(), 7, -1, 3, 11, &mut ch)
            .unwrap();
        for i in 0..50 {
            let data = vec![b'v'; i * 7];
            t.create_node(
                &format!("/a/n{i}"),
                Some(&data),
                &open_acl_unsafe(),
                0,
                -1,
                4 + i as i64,
                12,
                &mut ch,
            )
            .unwrap();
        }
        t.set_last_zxid(60);
        t
    }

    #[test]
    fn any_chunking_installs_the_same_tree() {
        let t = sample();
        let sessions = vec![(7, 30_000), (8, 4_000)];
        let mut bytes = serialized(&t, &sessions);
        let end = bytes.len();
        bytes.extend_from_slice(b"after the database");
        for chunk in [1, 2, 3, 7, 64, 1000, usize::MAX] {
            let mut s = DatabaseStream::new(1 << 20);
            let mut pending: Vec<u8> = Vec::new();
            let mut fed = 0;
            while !s.is_done() {
                let take = chunk.min(bytes.len() - fed);
                pending.extend_from_slice(&bytes[fed..fed + take]);
                fed += take;
                let used = s.feed(&pending).unwrap();
                pending.drain(..used);
            }
            // It stops at the end marker: the rest is left to the caller.
            assert_eq!(fed - pending.len(), end, "chunk {chunk}");
            let (got, got_sessions) = s.finish(60).unwrap();
            assert_eq!(got_sessions, sessions);
            assert_eq!(got.digest(), t.digest(), "chunk {chunk}");
            assert_eq!(got.walk(), t.walk());
            for p in t.walk() {
                let (a, b) = (t.get(&p).unwrap(), got.get(&p).unwrap());
                assert_eq!((a.stat, a.data_bytes()), (b.stat, b.data_bytes()), "{p}");
                assert_eq!(t.acls.lookup(a.acl), got.acls.lookup(b.acl), "{p}");
            }
        }
    }

    #[test]
    fn lengths_are_checked_before_waiting_for_them() {
        let mut s = DatabaseStream::new(1000);
        // No sessions, no ACLs, then a node whose path claims 2 GB.
        let mut b = vec![0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(s.feed(&b), Err(StreamError::BadLength { .. })));
        let mut s = DatabaseStream::new(1000);
        assert!(matches!(
            s.feed(&(-5i32).to_be_bytes()),
            Err(StreamError::BadLength { len: -5, .. })
        ));
        // A child before its parent.
        let mut s = DatabaseStream::new(1000);
        let t = sample();
        let mut w = vec![0, 0, 0, 0, 0, 0, 0, 0];
        encode_node("/a/b", &t.get("/a/b").unwrap(), &mut w);
        assert_eq!(s.feed(&w), Err(StreamError::Orphan("/a/b".into())));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut s = DatabaseStream::new(256);
            let _ = s.feed(&bytes);
        }
    }
}
