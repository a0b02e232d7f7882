//! The data tree: znodes with their stats, ACL ids and children, the per-session
//! ephemeral index, containers and TTL nodes, quota statistics and the 3.8 tree digest.
//!
//! The tree changes only through [`DataTree::apply`] (one committed transaction at a
//! time, whoever prepared it: this server, a geokeeper leader, or a Java leader's INFORM)
//! and answers reads through the query methods. It does no I/O and knows no clocks: times
//! come inside transactions. Every change reports what happened as [`Change`]s, which the
//! watch table turns into events.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;

use crate::acl::{read_acl_unsafe, AclCache, OPEN_UNSAFE_ACL_ID};
use crate::proto::records::{Acl, Stat};
use crate::proto::txn::{TxnBody, TxnHeader};
use crate::proto::ErrorCode;

pub const ROOT: &str = "/";
pub const ZOOKEEPER: &str = "/zookeeper";
pub const QUOTA: &str = "/zookeeper/quota";
pub const CONFIG: &str = "/zookeeper/config";
pub const QUOTA_LIMITS: &str = "zookeeper_limits";
pub const QUOTA_STATS: &str = "zookeeper_stats";
/// Nodes under this prefix are left out of the digest (`ZooDefs.ZOOKEEPER_NODE_SUBTREE`).
const DIGEST_EXCLUDED: &str = "/zookeeper/";
/// `DigestCalculator.DIGEST_VERSION`.
pub const DIGEST_VERSION: i32 = 2;

/// How the top byte of `ephemeralOwner` marks non-session node kinds (`EphemeralType`).
pub mod ephemeral {
    /// A container's owner: exactly `Long.MIN_VALUE`.
    pub const CONTAINER: i64 = i64::MIN;
    /// TTL nodes: top byte 0xFF, the TTL in the low 40 bits.
    pub const TTL_MASK: i64 = 0xFF00_0000_0000_0000u64 as i64;
    pub const MAX_TTL: i64 = 0x00FF_FFFF_FFFF; // 40 bits

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Void,
        Normal(i64),
        Container,
        Ttl(i64),
    }

    pub fn kind(owner: i64) -> Kind {
        if owner == 0 {
            Kind::Void
        } else if owner == CONTAINER {
            Kind::Container
        } else if owner & TTL_MASK == TTL_MASK {
            Kind::Ttl(owner & MAX_TTL)
        } else {
            Kind::Normal(owner)
        }
    }

    pub fn ttl_owner(ttl: i64) -> i64 {
        TTL_MASK | (ttl & MAX_TTL)
    }
}

/// The persisted part of a znode's stat (`StatPersisted`); dataLength and numChildren are
/// derived when a `Stat` is produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// A znode as a query sees it: decoded from the tree's packed record, borrowing its data.
#[derive(Clone, Copy)]
pub struct NodeView<'a> {
    /// `None` is null data, which ZooKeeper keeps apart from empty data.
    pub data: Option<&'a [u8]>,
    pub acl: i64,
    pub stat: NodeStat,
    tree: &'a DataTree,
    id: Id,
}

impl std::fmt::Debug for NodeView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeView")
            .field("data", &self.data)
            .field("acl", &self.acl)
            .field("stat", &self.stat)
            .field("children", &self.child_count())
            .finish()
    }
}

impl<'a> NodeView<'a> {
    pub fn data_len(&self) -> usize {
        self.data.map_or(0, <[u8]>::len)
    }

    pub fn data_bytes(&self) -> &'a [u8] {
        self.data.unwrap_or(&[])
    }

    pub fn child_count(&self) -> usize {
        self.tree.slots[self.id as usize]
            .kids
            .as_ref()
            .map_or(0, |k| k.len())
    }

    /// The children's names, in no particular order (as ZooKeeper's set).
    pub fn children(&self) -> impl Iterator<Item = &'a str> + 'a {
        let tree = self.tree;
        tree.slots[self.id as usize]
            .kids
            .iter()
            .flat_map(|k| k.iter())
            .map(move |&c| tree.name(c))
    }

    pub fn to_stat(&self) -> Stat {
        let s = &self.stat;
        let kids = self.child_count() as i32;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            // The stored cversion counts child creates; clients see creates plus deletes,
            // which is twice the creates less the children still there (`DataNode.copyStat`).
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(kids),
            aversion: s.aversion,
            // Containers and TTL nodes show no owner (`getClientEphemeralOwner`).
            ephemeral_owner: match ephemeral::kind(s.ephemeral_owner) {
                ephemeral::Kind::Normal(o) => o,
                _ => 0,
            },
            data_length: self.data_len() as i32,
            num_children: kids,
            pzxid: s.pzxid,
        }
    }
}

/// A node's index in the tree's slot table.
type Id = u32;
const ROOT_ID: Id = 0;
/// The root's parent.
const NO_PARENT: Id = u32::MAX;
/// A slot on the free list.
const FREE: Id = u32::MAX - 1;

/// A parent's children, found by name (hashed by `DataTree::hash_name`).
type Kids = hashbrown::HashTable<Id>;

/// One znode, packed: a million znodes of 100 B should cost little more than their data.
/// `rec` holds the name, then the ACL id and the stat as zigzag varints (zxids and times
/// as deltas from czxid and ctime, so an ordinary node's stat takes ~15 bytes instead of
/// 60), a data-present byte, then the data. Leaves have no child table at all.
#[derive(Clone)]
struct Slot {
    rec: Box<[u8]>,
    parent: Id,
    name_len: u32,
    kids: Option<Box<Kids>>,
}

impl Slot {
    fn free() -> Slot {
        Slot {
            rec: Box::new([]),
            parent: FREE,
            name_len: 0,
            kids: None,
        }
    }

    fn is_live(&self) -> bool {
        self.parent != FREE
    }

    fn name(&self) -> &[u8] {
        &self.rec[..self.name_len as usize]
    }

    fn unpack(&self) -> (i64, NodeStat, Option<&[u8]>) {
        unpack(&self.rec[self.name_len as usize..])
    }
}

/// Longest packed header: 10 varints of at most 10 bytes and the data-present byte.
const MAX_HEADER: usize = 101;

fn put_varint(buf: &mut [u8; MAX_HEADER], at: &mut usize, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf[*at] = (z as u8) | 0x80;
        *at += 1;
        z >>= 7;
    }
    buf[*at] = z as u8;
    *at += 1;
}

fn get_varint(b: &[u8], at: &mut usize) -> i64 {
    let mut z = 0u64;
    let mut shift = 0;
    while let Some(&byte) = b.get(*at) {
        *at += 1;
        z |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// The packed header of a record (ACL id, stat, data present); returns its length.
fn pack_header(acl: i64, s: &NodeStat, has_data: bool, buf: &mut [u8; MAX_HEADER]) -> usize {
    let mut at = 0;
    put_varint(buf, &mut at, acl);
    put_varint(buf, &mut at, s.czxid);
    put_varint(buf, &mut at, s.mzxid.wrapping_sub(s.czxid));
    put_varint(buf, &mut at, s.pzxid.wrapping_sub(s.czxid));
    put_varint(buf, &mut at, s.ctime);
    put_varint(buf, &mut at, s.mtime.wrapping_sub(s.ctime));
    put_varint(buf, &mut at, s.version as i64);
    put_varint(buf, &mut at, s.cversion as i64);
    put_varint(buf, &mut at, s.aversion as i64);
    put_varint(buf, &mut at, s.ephemeral_owner);
    buf[at] = has_data as u8;
    at + 1
}

/// Decodes what `pack_header` wrote, followed by the data.
fn unpack(b: &[u8]) -> (i64, NodeStat, Option<&[u8]>) {
    let mut at = 0;
    let acl = get_varint(b, &mut at);
    let czxid = get_varint(b, &mut at);
    let mzxid = czxid.wrapping_add(get_varint(b, &mut at));
    let pzxid = czxid.wrapping_add(get_varint(b, &mut at));
    let ctime = get_varint(b, &mut at);
    let mtime = ctime.wrapping_add(get_varint(b, &mut at));
    let version = get_varint(b, &mut at) as i32;
    let cversion = get_varint(b, &mut at) as i32;
    let aversion = get_varint(b, &mut at) as i32;
    let ephemeral_owner = get_varint(b, &mut at);
    let has_data = b.get(at).copied().unwrap_or(0) != 0;
    let data = has_data.then(|| b.get(at + 1..).unwrap_or(&[]));
    let stat = NodeStat {
        czxid,
        mzxid,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        ephemeral_owner,
        pzxid,
    };
    (acl, stat, data)
}

fn pack(name: &[u8], acl: i64, stat: &NodeStat, data: Option<&[u8]>) -> Box<[u8]> {
    let mut hdr = [0u8; MAX_HEADER];
    let h = pack_header(acl, stat, data.is_some(), &mut hdr);
    let d = data.unwrap_or(&[]);
    let mut v = Vec::with_capacity(name.len() + h + d.len());
    v.extend_from_slice(name);
    v.extend_from_slice(&hdr[..h]);
    v.extend_from_slice(d);
    v.into_boxed_slice()
}

/// What a transaction did to the tree, in order; the watch table maps these to events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created {
        path: String,
        acl: Arc<[Acl]>,
        parent_acl: Arc<[Acl]>,
    },
    Deleted {
        path: String,
        acl: Arc<[Acl]>,
        parent_acl: Arc<[Acl]>,
    },
    DataChanged {
        path: String,
        acl: Arc<[Acl]>,
    },
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Created { path, .. }
            | Change::Deleted { path, .. }
            | Change::DataChanged { path, .. } => path,
        }
    }
}

/// The outcome of one (sub-)transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    /// Nothing to return (createSession, check, delete, …).
    Done,
    Created {
        path: String,
        stat: Stat,
    },
    Stat(Stat),
    Error(ErrorCode),
    Multi(Vec<TxnResult>),
    /// A closeSession: the ephemerals that went with it.
    SessionClosed(Vec<String>),
}

/// `parent`, `name` of an absolute path. The root's parent is "".
pub fn split_path(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// `DataTree` keeps the root under both `""` and `"/"`, so every lookup of `""` (a read of
/// `""`, the parent of `/x`) finds the root.
fn root_alias(path: &str) -> &str {
    if path.is_empty() {
        ROOT
    } else {
        path
    }
}

fn join(parent: &str, child: &str) -> String {
    let mut p = String::with_capacity(parent.len() + 1 + child.len());
    p.push_str(parent);
    if parent != "/" {
        p.push('/');
    }
    p.push_str(child);
    p
}

/// The digest of one znode (`DigestCalculator.calculateDigest`): CRC32 of the path (the
/// root as ""), the data, then czxid, mzxid, pzxid, ctime, mtime, version, cversion,
/// aversion, ephemeralOwner, big-endian.
pub fn node_digest(path: &str, data: &[u8], s: &NodeStat) -> i64 {
    if path.starts_with(DIGEST_EXCLUDED) {
        return 0;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(if path == "/" { b"" } else { path.as_bytes() });
    h.update(data);
    let mut b = [0u8; 60];
    b[0..8].copy_from_slice(&s.czxid.to_be_bytes());
    b[8..16].copy_from_slice(&s.mzxid.to_be_bytes());
    b[16..24].copy_from_slice(&s.pzxid.to_be_bytes());
    b[24..32].copy_from_slice(&s.ctime.to_be_bytes());
    b[32..40].copy_from_slice(&s.mtime.to_be_bytes());
    b[40..44].copy_from_slice(&s.version.to_be_bytes());
    b[44..48].copy_from_slice(&s.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&s.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    h.update(&b);
    h.finalize() as i64
}

/// Parsed `zookeeper_stats` / `zookeeper_limits` data (`StatsTrack`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    pub entries: std::collections::BTreeMap<String, i64>,
}

impl StatsTrack {
    pub fn parse(data: &[u8]) -> StatsTrack {
        let mut t = StatsTrack::default();
        let s = String::from_utf8_lossy(data);
        for pair in s.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let (Some(k), v) = (kv.next(), kv.next()) else {
                continue;
            };
            let v = match v {
                None | Some("") => -1,
                Some(v) => v.trim().parse().unwrap_or(-1),
            };
            t.entries.insert(k.to_owned(), v);
        }
        t
    }

    pub fn get(&self, k: &str) -> i64 {
        self.entries.get(k).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, k: &str, v: i64) {
        self.entries.insert(k.to_owned(), v);
    }

    /// `count=…,bytes=…` first, then any other keys sorted after a trick `=` that old
    /// parsers ignore (`StatsTrack.toString`).
    pub fn to_bytes(&self) -> Bytes {
        let mut s = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let rest: Vec<_> = self
            .entries
            .iter()
            .filter(|(k, _)| k.as_str() != "count" && k.as_str() != "bytes")
            .collect();
        if !rest.is_empty() {
            s.push('=');
            for (k, v) in rest {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        Bytes::from(s)
    }
}

#[derive(Clone)]
pub struct DataTree {
    /// Every znode, by id; the root is always slot 0 (free until a root exists).
    slots: Vec<Slot>,
    free: Vec<Id>,
    live: usize,
    hasher: hashbrown::DefaultHashBuilder,
    /// Each session's ephemeral paths (`DataTree.ephemerals`: a hash set, as ZooKeeper's;
    /// a sorted set cost a dozen long-prefix comparisons per create under a busy parent).
    ephemerals: HashMap<i64, hashbrown::HashSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    pub acls: AclCache,
    /// Paths that carry a quota (have a `zookeeper_limits` node).
    quota_paths: BTreeSet<String>,
    digest: i64,
    data_size: i64,
    last_zxid: i64,
}

impl std::fmt::Debug for DataTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.live)
            .field("digest", &self.digest)
            .field("last_zxid", &self.last_zxid)
            .finish()
    }
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`
    /// (world-readable only, ZOOKEEPER-2014), all with zero stats, as `DataTree()` builds it.
    pub fn new() -> Self {
        let mut t = DataTree::empty();
        let cfg_acl = t.acls.intern(&read_acl_unsafe());
        // `DataTree()` gives the built-in nodes empty data, not null.
        let zero = NodeStat::default();
        t.restore_node(ROOT, Some(&[]), OPEN_UNSAFE_ACL_ID, zero);
        t.restore_node(ZOOKEEPER, Some(&[]), OPEN_UNSAFE_ACL_ID, zero);
        t.restore_node(QUOTA, Some(&[]), OPEN_UNSAFE_ACL_ID, zero);
        // `addConfigNode` sets its ACL through setACL with version -1, which leaves
        // aversion at -1.
        let cfg_stat = NodeStat {
            aversion: -1,
            ..zero
        };
        t.restore_node(CONFIG, Some(&[]), cfg_acl, cfg_stat);
        // `restore_node` counted the uses; the built-in nodes hold their ACLs as
        // `DataTree()` does (interned once above, used by the config node).
        t.acls.release(cfg_acl);
        t
    }

    /// A tree with no nodes at all, not even the root: what a snapshot loads into.
    pub fn empty() -> Self {
        DataTree {
            slots: vec![Slot::free()],
            free: Vec::new(),
            live: 0,
            hasher: hashbrown::DefaultHashBuilder::default(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            acls: AclCache::new(),
            quota_paths: BTreeSet::new(),
            digest: 0,
            data_size: 0,
            last_zxid: 0,
        }
    }

    /// Room for `nodes` znodes without regrowing the slot table (snapshot loading).
    pub fn reserve(&mut self, nodes: usize) {
        self.slots.reserve(nodes.saturating_sub(self.slots.len()));
    }

    // ---- the slot table ----

    fn hash_name(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    fn name(&self, id: Id) -> &str {
        // Names come in as `&str` and are stored whole, so this never fails.
        std::str::from_utf8(self.slots[id as usize].name()).unwrap_or("")
    }

    fn child(&self, parent: Id, name: &[u8]) -> Option<Id> {
        let kids = self.slots[parent as usize].kids.as_ref()?;
        let h = self.hash_name(name);
        kids.find(h, |&c| self.slots[c as usize].name() == name)
            .copied()
    }

    /// The id of `path` (`""` and `"/"` are the root).
    fn find(&self, path: &str) -> Option<Id> {
        if !self.slots[ROOT_ID as usize].is_live() {
            return None;
        }
        if path.is_empty() || path == ROOT {
            return Some(ROOT_ID);
        }
        let mut cur = ROOT_ID;
        for comp in path.strip_prefix('/')?.split('/') {
            cur = self.child(cur, comp.as_bytes())?;
        }
        Some(cur)
    }

    fn view(&self, id: Id) -> NodeView<'_> {
        let (acl, stat, data) = self.slots[id as usize].unpack();
        NodeView {
            data,
            acl,
            stat,
            tree: self,
            id,
        }
    }

    /// Links a new node under `parent` (which must not have a child `name`), counting it
    /// in the digest.
    fn link(
        &mut self,
        parent: Id,
        path: &str,
        name: &str,
        acl: i64,
        stat: &NodeStat,
        data: Option<&[u8]>,
    ) -> Id {
        let slot = Slot {
            rec: pack(name.as_bytes(), acl, stat, data),
            parent,
            name_len: name.len() as u32,
            kids: None,
        };
        let id = if parent == NO_PARENT {
            self.slots[ROOT_ID as usize] = slot;
            ROOT_ID
        } else if let Some(id) = self.free.pop() {
            self.slots[id as usize] = slot;
            id
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as Id
        };
        if parent != NO_PARENT {
            let h = self.hash_name(name.as_bytes());
            let mut kids = self.slots[parent as usize].kids.take().unwrap_or_default();
            kids.insert_unique(h, id, |&c| {
                self.hasher.hash_one(self.slots[c as usize].name())
            });
            self.slots[parent as usize].kids = Some(kids);
        }
        self.live += 1;
        self.digest = self
            .digest
            .wrapping_add(node_digest(path, data.unwrap_or(&[]), stat));
        self.data_size += node_size(path, data.unwrap_or(&[]));
        id
    }

    /// Unlinks `name` from `parent` and frees it (and, should a replay ever delete a node
    /// that still has children, its whole subtree); returns its ACL id, stat and data length.
    fn unlink(&mut self, parent: Id, path: &str, name: &str) -> Option<(i64, NodeStat, usize)> {
        let id = self.child(parent, name.as_bytes())?;
        let h = self.hash_name(name.as_bytes());
        if let Some(mut kids) = self.slots[parent as usize].kids.take() {
            if let Ok(e) = kids.find_entry(h, |&c| c == id) {
                e.remove();
            }
            if !kids.is_empty() {
                self.slots[parent as usize].kids = Some(kids);
            }
        }
        let (acl, stat, data) = self.slots[id as usize].unpack();
        let len = data.map_or(0, <[u8]>::len);
        self.digest = self
            .digest
            .wrapping_sub(node_digest(path, data.unwrap_or(&[]), &stat));
        self.data_size -= node_size(path, data.unwrap_or(&[]));
        let mut stack = vec![id];
        while let Some(x) = stack.pop() {
            let slot = std::mem::replace(&mut self.slots[x as usize], Slot::free());
            if let Some(k) = slot.kids {
                tracing::warn!(path, "deleted a node that still had children");
                stack.extend(k.iter().copied());
            }
            self.free.push(x);
            self.live -= 1;
        }
        Some((acl, stat, len))
    }

    /// Rewrites a node's stat and ACL id (and its data, when `data` is given), keeping the
    /// digest and data size current. The record is rewritten in place when its length
    /// does not change.
    fn rewrite<R>(
        &mut self,
        id: Id,
        path: &str,
        data: Option<Option<&[u8]>>,
        f: impl FnOnce(&mut i64, &mut NodeStat) -> R,
    ) -> R {
        let slot = &self.slots[id as usize];
        let (mut acl, mut stat, old) = slot.unpack();
        let before = node_digest(path, old.unwrap_or(&[]), &stat);
        let old_size = node_size(path, old.unwrap_or(&[]));
        let r = f(&mut acl, &mut stat);
        let new = match data {
            Some(d) => d,
            None => old,
        };
        let after = node_digest(path, new.unwrap_or(&[]), &stat);
        let new_size = node_size(path, new.unwrap_or(&[]));
        let mut hdr = [0u8; MAX_HEADER];
        let h = pack_header(acl, &stat, new.is_some(), &mut hdr);
        let n = slot.name_len as usize;
        let old_hdr = slot.rec.len() - n - old.map_or(0, <[u8]>::len);
        let same_len = n + h + new.map_or(0, <[u8]>::len) == slot.rec.len();
        if data.is_none() && h == old_hdr {
            self.slots[id as usize].rec[n..n + h].copy_from_slice(&hdr[..h]);
        } else if same_len {
            let rec = &mut self.slots[id as usize].rec;
            rec[n..n + h].copy_from_slice(&hdr[..h]);
            if let Some(d) = data.flatten() {
                rec[n + h..].copy_from_slice(d);
            }
        } else {
            let name = slot.name().to_vec();
            self.slots[id as usize].rec = pack(&name, acl, &stat, new);
        }
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        self.data_size += new_size - old_size;
        r
    }

    /// Changes a node's stat in place (by path), taking its old digest out and the new
    /// one in.
    fn change_stat<R>(&mut self, path: &str, f: impl FnOnce(&mut NodeStat) -> R) -> Option<R> {
        let id = self.find(path)?;
        Some(self.rewrite(id, root_alias(path), None, |_, s| f(s)))
    }

    // ---- queries ----

    pub fn get(&self, path: &str) -> Option<NodeView<'_>> {
        self.find(path).map(|id| self.view(id))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    pub fn node_count(&self) -> usize {
        self.live
    }

    /// The 3.8 tree digest (`DataTree.getTreeDigest`).
    pub fn digest(&self) -> i64 {
        self.digest
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// `approximateDataSize`: path lengths plus data lengths.
    pub fn approximate_data_size(&self) -> i64 {
        self.data_size
    }

    pub fn acl_of(&mut self, path: &str) -> Option<Arc<[Acl]>> {
        let id = self.get(path)?.acl;
        Some(self.acls.get(id))
    }

    /// A session's ephemeral paths, sorted.
    pub fn ephemerals_of(&self, session: i64) -> Vec<&String> {
        let mut v: Vec<&String> = self
            .ephemerals
            .get(&session)
            .into_iter()
            .flatten()
            .collect();
        v.sort_unstable();
        v
    }

    pub fn sessions_with_ephemerals(&self) -> impl Iterator<Item = (i64, usize)> + '_ {
        self.ephemerals.iter().map(|(s, p)| (*s, p.len()))
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    pub fn containers(&self) -> impl Iterator<Item = &String> {
        self.containers.iter()
    }

    pub fn ttls(&self) -> impl Iterator<Item = &String> {
        self.ttls.iter()
    }

    /// Children of `path`, sorted by name.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let n = self.get(path)?;
        let mut v: Vec<String> = n.children().map(str::to_owned).collect();
        v.sort_unstable();
        Some(v)
    }

    /// `getAllChildrenNumber`: every descendant of `path`, not counting `path` itself.
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        let id = self.find(path)?;
        // ZooKeeper counts the keys that start with `path + "/"`: for `""` that is every
        // key but `""`, so the root itself is counted too.
        let mut count = if path.is_empty() { 1i64 } else { 0 };
        let mut stack = vec![id];
        while let Some(x) = stack.pop() {
            if let Some(k) = &self.slots[x as usize].kids {
                count += k.len() as i64;
                stack.extend(k.iter().copied());
            }
        }
        Some(count.min(i32::MAX as i64) as i32)
    }

    /// Every path of the tree, parents before children, siblings sorted (snapshots, dumps).
    pub fn walk(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.live);
        if !self.slots[ROOT_ID as usize].is_live() {
            return out;
        }
        let mut stack = vec![(ROOT_ID, ROOT.to_string())];
        while let Some((id, p)) = stack.pop() {
            if let Some(k) = &self.slots[id as usize].kids {
                let mut kids: Vec<(&str, Id)> = k.iter().map(|&c| (self.name(c), c)).collect();
                kids.sort_unstable_by(|a, b| b.0.cmp(a.0));
                for (name, c) in kids {
                    stack.push((c, join(&p, name)));
                }
            }
            out.push(p);
        }
        out
    }

    /// Paths of the znodes whose ACL id the ACL cache does not hold, parents first. Every
    /// request on them is refused; after a restore there should be none.
    pub fn paths_with_unknown_acl(&self) -> Vec<String> {
        let any = self
            .slots
            .iter()
            .any(|s| s.is_live() && !self.acls.knows(s.unpack().0));
        if !any {
            return Vec::new();
        }
        self.walk()
            .into_iter()
            .filter(|p| self.get(p).is_some_and(|n| !self.acls.knows(n.acl)))
            .collect()
    }

    // ---- applying transactions ----

    /// Applies one committed transaction. Errors inside it (a create that finds its node
    /// already there while the log is replayed over a fuzzy snapshot, say) are reported in
    /// the result, exactly as `DataTree.processTxn` reports them, and never abort.
    pub fn apply(
        &mut self,
        hdr: &TxnHeader,
        body: &TxnBody,
        changes: &mut Vec<Change>,
    ) -> TxnResult {
        let r = self.apply_body(hdr, body, changes);
        // `processTxn`: lastProcessedZxid only ever moves forward.
        if hdr.zxid > self.last_zxid {
            self.last_zxid = hdr.zxid;
        }
        r
    }

    fn apply_body(
        &mut self,
        hdr: &TxnHeader,
        body: &TxnBody,
        changes: &mut Vec<Change>,
    ) -> TxnResult {
        let zxid = hdr.zxid;
        let time = hdr.time;
        let res = match body {
            TxnBody::Create(t) | TxnBody::Create2(t) => {
                let owner = if t.ephemeral { hdr.client_id } else { 0 };
                let top_level_create = matches!(body, TxnBody::Create(_));
                let r = self
                    .create_node(
                        &t.path,
                        t.data.as_deref(),
                        &t.acl,
                        owner,
                        t.parent_cversion,
                        zxid,
                        time,
                        changes,
                    )
                    .map(|stat| TxnResult::Created {
                        path: t.path.clone(),
                        stat,
                    });
                // Replaying a create over a fuzzy snapshot that already has the node: the
                // parent's cversion and pzxid still move forward to what the create
                // left (`DataTree.processTxn`, setCversionPzxid; plain create only).
                if top_level_create && r == Err(ErrorCode::NodeExists) {
                    let parent = split_path(&t.path).0.to_owned();
                    let cv = t.parent_cversion;
                    self.change_stat(&parent, |p| advance_cversion(p, cv, zxid));
                }
                r
            }
            TxnBody::CreateContainer(t) => self
                .create_node(
                    &t.path,
                    t.data.as_deref(),
                    &t.acl,
                    ephemeral::CONTAINER,
                    t.parent_cversion,
                    zxid,
                    time,
                    changes,
                )
                .map(|stat| TxnResult::Created {
                    path: t.path.clone(),
                    stat,
                }),
            TxnBody::CreateTtl(t) => self
                .create_node(
                    &t.path,
                    t.data.as_deref(),
                    &t.acl,
                    ephemeral::ttl_owner(t.ttl),
                    t.parent_cversion,
                    zxid,
                    time,
                    changes,
                )
                .map(|stat| TxnResult::Created {
                    path: t.path.clone(),
                    stat,
                }),
            TxnBody::Delete(t) | TxnBody::DeleteContainer(t) => self
                .delete_node(&t.path, zxid, changes)
                .map(|_| TxnResult::Done),
            TxnBody::SetData(t) => self
                .set_data(&t.path, t.data.as_deref(), t.version, zxid, time, changes)
                .map(TxnResult::Stat),
            TxnBody::SetAcl(t) => self
                .set_acl(&t.path, &t.acl, t.version)
                .map(TxnResult::Stat),
            TxnBody::Check(_) => Ok(TxnResult::Done),
            TxnBody::CreateSession(_) => Ok(TxnResult::Done),
            TxnBody::CloseSession(t) => Ok(TxnResult::SessionClosed(self.kill_session(
                hdr.client_id,
                &t.paths2_delete,
                zxid,
                changes,
            ))),
            TxnBody::Error(t) => Ok(TxnResult::Error(
                ErrorCode::from_i32(t.err).unwrap_or(ErrorCode::SystemError),
            )),
            TxnBody::Reconfig(t) => self
                .set_data(&t.path, t.data.as_deref(), t.version, zxid, time, changes)
                .map(TxnResult::Stat),
            TxnBody::Multi(ops) => {
                // All sub-transactions share the multi's zxid and time. If the leader
                // recorded a failure, nothing applies: ops before the first error record
                // report OK, error records their code, later ops RuntimeInconsistency
                // (`DataTree.processTxn`, multi).
                let failed = ops.iter().any(|o| matches!(o, TxnBody::Error(_)));
                let mut post_failed = false;
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    let r = match op {
                        TxnBody::Error(e) => {
                            post_failed = true;
                            TxnResult::Error(
                                ErrorCode::from_i32(e.err).unwrap_or(ErrorCode::SystemError),
                            )
                        }
                        _ if failed => TxnResult::Error(if post_failed {
                            ErrorCode::RuntimeInconsistency
                        } else {
                            ErrorCode::Ok
                        }),
                        _ => self.apply_body(hdr, op, changes),
                    };
                    results.push(r);
                }
                Ok(TxnResult::Multi(results))
            }
        };
        res.unwrap_or_else(TxnResult::Error)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Stat, ErrorCode> {
        let (parent, name) = split_path(path);
        let Some(pid) = self.find(parent) else {
            return Err(ErrorCode::NoNode);
        };
        if name.is_empty() {
            return Err(ErrorCode::NodeExists);
        }
        if let Some(existing) = self.child(pid, name.as_bytes()) {
            // Replaying a fuzzy snapshot's window: ZooKeeper writes the ACL map before the
            // nodes, so a node created in between can carry an id the map lacks. Its create
            // txn, replayed here, interns the list again, and ids are handed out in txn
            // order, so it gets the same id back (`DataTree.createNode` interns before this
            // check for that reason). A node whose id is known keeps its count unchanged.
            let held = self.view(existing).acl;
            if !self.acls.knows(held) {
                let id = self.acls.intern(acl);
                if id == held {
                    tracing::info!(path, acl = id, "ACL id restored by log replay");
                } else {
                    self.acls.release(id);
                }
            }
            return Err(ErrorCode::NodeExists);
        }
        let acl_id = self.acls.intern(acl);
        self.rewrite(pid, root_alias(parent), None, |_, p| {
            advance_cversion(p, parent_cversion, zxid)
        });
        let stat = NodeStat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid: zxid,
        };
        let id = self.link(pid, path, name, acl_id, &stat, data);
        let reply = self.view(id).to_stat();
        let bytes = data.map_or(0, <[u8]>::len) as i64;
        self.index_kind(path, owner);
        if let Some(qp) = parent.strip_prefix(QUOTA) {
            if name == QUOTA_LIMITS {
                self.quota_paths.insert(trim_quota_path(qp));
            }
            if name == QUOTA_STATS {
                self.recount_quota(&trim_quota_path(qp));
            }
        }
        if let Some(prefix) = self.max_prefix_with_quota(path) {
            self.update_quota_stat(&prefix, bytes, 1);
        }
        let parent_acl = self.acl_of(parent).unwrap_or_else(|| Arc::from(Vec::new()));
        changes.push(Change::Created {
            path: path.to_owned(),
            acl: self.acls.get(acl_id),
            parent_acl,
        });
        Ok(reply)
    }

    /// Adds a node to the ephemeral, container or TTL index its owner puts it in.
    fn index_kind(&mut self, path: &str, owner: i64) {
        match ephemeral::kind(owner) {
            ephemeral::Kind::Container => {
                self.containers.insert(path.to_owned());
            }
            ephemeral::Kind::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
            ephemeral::Kind::Normal(s) => {
                self.ephemerals
                    .entry(s)
                    .or_default()
                    .insert(path.to_owned());
            }
            ephemeral::Kind::Void => {}
        }
    }

    pub fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        changes: &mut Vec<Change>,
    ) -> Result<(), ErrorCode> {
        let (parent, name) = split_path(path);
        let Some(pid) = self.find(parent) else {
            return Err(ErrorCode::NoNode);
        };
        // The parent's pzxid moves even when the child is already gone (a replay over a
        // fuzzy snapshot), but only forwards.
        let gone = self.unlink(pid, path, name);
        self.rewrite(pid, root_alias(parent), None, |_, p| {
            if zxid > p.pzxid {
                p.pzxid = zxid;
            }
        });
        let Some((acl_id, stat, len)) = gone else {
            return Err(ErrorCode::NoNode);
        };
        let acl = self.acls.get(acl_id);
        self.acls.release(acl_id);
        match ephemeral::kind(stat.ephemeral_owner) {
            ephemeral::Kind::Container => {
                self.containers.remove(path);
            }
            ephemeral::Kind::Ttl(_) => {
                self.ttls.remove(path);
            }
            ephemeral::Kind::Normal(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            ephemeral::Kind::Void => {}
        }
        if name == QUOTA_LIMITS {
            if let Some(qp) = parent.strip_prefix(QUOTA) {
                self.quota_paths.remove(&trim_quota_path(qp));
            }
        }
        if let Some(prefix) = self.max_prefix_with_quota(path) {
            self.update_quota_stat(&prefix, -(len as i64), -1);
        }
        let parent_acl = self.acl_of(parent).unwrap_or_else(|| Arc::from(Vec::new()));
        changes.push(Change::Deleted {
            path: path.to_owned(),
            acl,
            parent_acl,
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn set_data(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Stat, ErrorCode> {
        let id = self.find(path).ok_or(ErrorCode::NoNode)?;
        let new_len = data.map_or(0, <[u8]>::len) as i64;
        let old_len = self.view(id).data_len() as i64;
        let acl_id = self.rewrite(id, root_alias(path), Some(data), |acl, s| {
            s.mtime = time;
            s.mzxid = zxid;
            s.version = version;
            *acl
        });
        let stat = self.view(id).to_stat();
        if let Some(prefix) = self.max_prefix_with_quota(path) {
            self.update_quota_stat(&prefix, new_len - old_len, 0);
        }
        changes.push(Change::DataChanged {
            path: path.to_owned(),
            acl: self.acls.get(acl_id),
        });
        Ok(stat)
    }

    pub fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<Stat, ErrorCode> {
        let id = self.find(path).ok_or(ErrorCode::NoNode)?;
        let old = self.view(id).acl;
        self.acls.release(old);
        let new = self.acls.intern(acl);
        self.rewrite(id, root_alias(path), None, |a, s| {
            s.aversion = version;
            *a = new;
        });
        Ok(self.view(id).to_stat())
    }

    /// Removes a closed session's ephemerals (`killSession`). A 3.8 closeSession txn lists
    /// them (`paths2Delete`); an older one is empty and the ephemeral index is used. Each
    /// deletion is applied like a delete at `zxid`, so watchers see NodeDeleted.
    pub fn kill_session(
        &mut self,
        session: i64,
        listed: &[String],
        zxid: i64,
        changes: &mut Vec<Change>,
    ) -> Vec<String> {
        let mut paths: Vec<String> = if listed.is_empty() {
            self.ephemerals
                .get(&session)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        } else {
            listed.to_vec()
        };
        paths.sort_unstable();
        let mut gone = Vec::with_capacity(paths.len());
        for p in paths {
            if self.delete_node(&p, zxid, changes).is_ok() {
                gone.push(p);
            }
        }
        self.ephemerals.remove(&session);
        gone
    }

    // ---- quotas ----

    /// The deepest quota'd path that is `path` or one of its ancestors, except the root
    /// and `/zookeeper` (`getMaxPrefixWithQuota`).
    pub fn max_prefix_with_quota(&self, path: &str) -> Option<String> {
        if self.quota_paths.is_empty() {
            return None;
        }
        let mut best: Option<&String> = None;
        for q in &self.quota_paths {
            let is_prefix = q == "/"
                || path == q.as_str()
                || (path.starts_with(q.as_str()) && path.as_bytes().get(q.len()) == Some(&b'/'));
            if is_prefix && best.is_none_or(|b| q.len() > b.len()) {
                best = Some(q);
            }
        }
        match best {
            Some(b) if b != "/" && b != ZOOKEEPER && !b.is_empty() => Some(b.clone()),
            _ => None,
        }
    }

    pub fn quota_paths(&self) -> impl Iterator<Item = &String> {
        self.quota_paths.iter()
    }

    fn stats_path(prefix: &str) -> String {
        format!("{QUOTA}{prefix}/{QUOTA_STATS}")
    }

    /// `updateQuotaStat`: adjusts the counters in `zookeeper_stats` in place, outside of
    /// any transaction (the node is under `/zookeeper/`, so the digest does not see it).
    fn update_quota_stat(&mut self, prefix: &str, bytes_diff: i64, count_diff: i64) {
        let sp = Self::stats_path(prefix);
        let Some(id) = self.find(&sp) else {
            tracing::error!(path = %sp, "missing node for quota stat");
            return;
        };
        let mut t = StatsTrack::parse(self.view(id).data_bytes());
        // Java's long arithmetic: the stats node holds whatever a client last wrote there.
        t.set("count", t.get("count").wrapping_add(count_diff));
        t.set("bytes", t.get("bytes").wrapping_add(bytes_diff));
        let new = t.to_bytes();
        self.rewrite(id, &sp, Some(Some(&new)), |_, _| ());
    }

    /// `updateQuotaForPath`: counts the subtree when its `zookeeper_stats` appears.
    fn recount_quota(&mut self, path: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack: Vec<Id> = self.find(path).into_iter().collect();
        while let Some(x) = stack.pop() {
            count += 1;
            bytes += self.view(x).data_len() as i64;
            if let Some(k) = &self.slots[x as usize].kids {
                stack.extend(k.iter().copied());
            }
        }
        let mut t = StatsTrack::default();
        t.set("count", count);
        t.set("bytes", bytes);
        let sp = Self::stats_path(path);
        let new = t.to_bytes();
        if let Some(id) = self.find(&sp) {
            self.rewrite(id, &sp, Some(Some(&new)), |_, _| ());
        }
    }

    /// Restores a node from a snapshot as is (stats, ACL id, owner). False when its parent
    /// is not in the tree (snapshots list parents first). A node already there is
    /// replaced, keeping its children. Used by snapshot loading.
    pub fn restore_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: i64,
        stat: NodeStat,
    ) -> bool {
        let path = root_alias(path);
        let pid = if path == ROOT {
            NO_PARENT
        } else {
            match self.find(split_path(path).0) {
                Some(p) => p,
                None => return false,
            }
        };
        self.acls.add_usage(acl);
        let existing = if pid == NO_PARENT {
            self.find(ROOT)
        } else {
            self.child(pid, split_path(path).1.as_bytes())
        };
        if let Some(id) = existing {
            let old = self.view(id).acl;
            self.acls.release(old);
            self.rewrite(id, path, Some(data), |a, s| {
                *a = acl;
                *s = stat;
            });
            return true;
        }
        let name = if pid == NO_PARENT {
            ""
        } else {
            split_path(path).1
        };
        self.link(pid, path, name, acl, &stat, data);
        self.index_kind(path, stat.ephemeral_owner);
        if let Some(qp) = split_path(path).0.strip_prefix(QUOTA) {
            if split_path(path).1 == QUOTA_LIMITS {
                self.quota_paths.insert(trim_quota_path(qp));
            }
        }
        true
    }
}

/// A create's effect on its parent: cversion becomes the txn's `parentCVersion` (-1: one
/// more) and pzxid the create's zxid, but only forwards, so that replaying a create of a
/// node that came and went inside a fuzzy snapshot moves nothing back.
fn advance_cversion(p: &mut NodeStat, parent_cversion: i32, zxid: i64) {
    let cv = if parent_cversion == -1 {
        p.cversion + 1
    } else {
        parent_cversion
    };
    if cv > p.cversion {
        p.cversion = cv;
        p.pzxid = zxid;
    }
}

/// `getNodeSize`: what a znode adds to `approximateDataSize`.
fn node_size(path: &str, data: &[u8]) -> i64 {
    (path.len() + data.len()) as i64
}

/// `Quotas.trimQuotaPath`: "/a/b" from the part of a quota path after `/zookeeper/quota`.
fn trim_quota_path(rest: &str) -> String {
    if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::open_acl_unsafe;

    fn create(t: &mut DataTree, path: &str, zxid: i64) -> Result<Stat, ErrorCode> {
        t.create_node(
            path,
            Some(b"x"),
            &open_acl_unsafe(),
            0,
            -1,
            zxid,
            1000 + zxid,
            &mut vec![],
        )
    }

    #[test]
    fn fresh_tree_has_the_system_nodes() {
        let t = DataTree::new();
        assert_eq!(t.children("/").unwrap(), vec!["zookeeper"]);
        assert_eq!(t.children(ZOOKEEPER).unwrap(), vec!["config", "quota"]);
        assert_eq!(t.node_count(), 4);
    }

    #[test]
    fn replaying_a_create_over_a_fuzzy_snapshot_node_restores_its_acl_id() {
        // ZooKeeper wrote the ACL map (ids 1..=1) before `/late` was created with a new
        // list, which got id 2; the snapshot holds `/late` with id 2 and no entry for it.
        let read_only = crate::acl::read_acl_unsafe();
        let mut t = DataTree::empty();
        t.acls.restore(1, open_acl_unsafe());
        assert!(t.restore_node("/", None, 1, NodeStat::default()));
        let stat = NodeStat {
            czxid: 9,
            mzxid: 9,
            pzxid: 9,
            ..Default::default()
        };
        assert!(t.restore_node("/late", Some(b"x"), 2, stat));
        assert!(t.restore_node("/known", Some(b"x"), 1, stat));
        assert_eq!(t.paths_with_unknown_acl(), ["/late"]);
        // Replaying a create of a node that is there and known changes no count.
        let res = t.create_node("/known", None, &open_acl_unsafe(), 0, -1, 9, 0, &mut vec![]);
        assert_eq!(res, Err(ErrorCode::NodeExists));
        // Replaying its create interns the list again, under the same id.
        let res = t.create_node("/late", Some(b"x"), &read_only, 0, -1, 9, 0, &mut vec![]);
        assert_eq!(res, Err(ErrorCode::NodeExists));
        assert!(t.paths_with_unknown_acl().is_empty());
        assert_eq!(t.acls.lookup(2), Some(&read_only[..]));
        // One user: deleting the node forgets the list.
        t.delete_node("/late", 10, &mut vec![]).unwrap();
        assert_eq!(t.acls.lookup(2), None);
    }

    #[test]
    fn create_and_delete_move_the_parent_stat() {
        let mut t = DataTree::new();
        let s = create(&mut t, "/a", 5).unwrap();
        assert_eq!((s.czxid, s.mzxid, s.pzxid, s.version), (5, 5, 5, 0));
        create(&mut t, "/a/b", 6).unwrap();
        let a = t.get("/a").unwrap().to_stat();
        assert_eq!((a.cversion, a.pzxid, a.num_children), (1, 6, 1));
        assert_eq!(
            DataTree::new().get("/").unwrap().to_stat().cversion,
            -1,
            "a fresh root shows -1, as ZooKeeper's"
        );
        assert_eq!(create(&mut t, "/a/b", 7), Err(ErrorCode::NodeExists));
        assert_eq!(create(&mut t, "/x/y", 7), Err(ErrorCode::NoNode));
        t.delete_node("/a/b", 8, &mut vec![]).unwrap();
        let a = t.get("/a").unwrap().to_stat();
        assert_eq!((a.cversion, a.pzxid, a.num_children), (2, 8, 0));
    }

    #[test]
    fn digest_is_independent_of_history() {
        let mut a = DataTree::new();
        create(&mut a, "/a", 1).unwrap();
        create(&mut a, "/b", 2).unwrap();
        a.delete_node("/b", 3, &mut vec![]).unwrap();
        let mut b = DataTree::new();
        create(&mut b, "/a", 1).unwrap();
        b.change_stat("/", |r| r.pzxid = 3);
        b.change_stat("/", |r| r.cversion = 2);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), DataTree::new().digest());
    }

    proptest::proptest! {
        #[test]
        fn packed_records_hold_any_stat_acl_and_data(
            f in proptest::array::uniform9(proptest::num::i64::ANY),
            acl in proptest::num::i64::ANY,
            data in proptest::option::of(proptest::collection::vec(0u8..=255, 0..40)),
            name in "[a-z0-9]{0,12}",
        ) {
            let stat = NodeStat {
                czxid: f[0],
                mzxid: f[1],
                ctime: f[2],
                mtime: f[3],
                version: f[4] as i32,
                cversion: f[5] as i32,
                aversion: f[6] as i32,
                ephemeral_owner: f[7],
                pzxid: f[8],
            };
            let rec = pack(name.as_bytes(), acl, &stat, data.as_deref());
            let (a, s, d) = unpack(&rec[name.len()..]);
            proptest::prop_assert_eq!(&rec[..name.len()], name.as_bytes());
            proptest::prop_assert_eq!((a, s, d), (acl, stat, data.as_deref()));
        }
    }

    #[test]
    fn rewrites_in_place_and_by_reallocation_keep_the_digest() {
        // One tree changed through every rewrite path (same length in place, longer and
        // shorter data, null data, a stat that grows), one built directly in the end state.
        let mut a = DataTree::new();
        create(&mut a, "/n", 1).unwrap();
        for (i, d) in [&b"y"[..], b"longer data", b"", b"zz"]
            .into_iter()
            .enumerate()
        {
            a.set_data(
                "/n",
                Some(d),
                i as i32 + 1,
                10 + i as i64,
                5000,
                &mut vec![],
            )
            .unwrap();
        }
        a.set_data("/n", None, 5, 1 << 40, 6000, &mut vec![])
            .unwrap();
        let n = a.get("/n").unwrap();
        assert_eq!((n.data, n.stat.version, n.stat.mzxid), (None, 5, 1 << 40));
        let mut b = DataTree::new();
        create(&mut b, "/n", 1).unwrap();
        b.set_data("/n", None, 5, 1 << 40, 6000, &mut vec![])
            .unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.approximate_data_size(), b.approximate_data_size());
        assert_eq!(a.get("/").unwrap().to_stat(), b.get("/").unwrap().to_stat());
        // Deleted slots are reused; lookups of bad paths find nothing.
        a.delete_node("/n", 1 << 41, &mut vec![]).unwrap();
        create(&mut a, "/m", (1 << 41) + 1).unwrap();
        assert_eq!(a.node_count(), 5);
        for bad in ["/m/", "//m", "m", "/m//", "/zookeeper/"] {
            assert!(a.get(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn stats_track_formats_like_zookeeper() {
        let t = StatsTrack::parse(b"count=1,bytes=5=;countHardLimit=3");
        assert_eq!(t.get("count"), 1);
        assert_eq!(t.get("countHardLimit"), 3);
        assert_eq!(&t.to_bytes()[..], b"count=1,bytes=5=;countHardLimit=3");
        assert_eq!(
            &StatsTrack::parse(b"count=-1,bytes=10").to_bytes()[..],
            b"count=-1,bytes=10"
        );
    }

    #[test]
    fn quota_stats_follow_creates_deletes_and_sets() {
        let mut t = DataTree::new();
        create(&mut t, "/q", 1).unwrap();
        create(&mut t, "/zookeeper/quota/q", 2).unwrap();
        t.create_node(
            "/zookeeper/quota/q/zookeeper_limits",
            Some(b"count=10,bytes=-1"),
            &open_acl_unsafe(),
            0,
            -1,
            3,
            0,
            &mut vec![],
        )
        .unwrap();
        t.create_node(
            "/zookeeper/quota/q/zookeeper_stats",
            Some(b"count=0,bytes=0"),
            &open_acl_unsafe(),
            0,
            -1,
            4,
            0,
            &mut vec![],
        )
        .unwrap();
        let stats = |t: &DataTree| {
            t.get("/zookeeper/quota/q/zookeeper_stats")
                .unwrap()
                .data_bytes()
                .to_vec()
        };
        assert_eq!(&stats(&t)[..], b"count=1,bytes=1");
        create(&mut t, "/q/a", 5).unwrap();
        assert_eq!(&stats(&t)[..], b"count=2,bytes=2");
        t.set_data("/q/a", Some(b"hello"), 1, 6, 0, &mut vec![])
            .unwrap();
        assert_eq!(&stats(&t)[..], b"count=2,bytes=6");
        t.delete_node("/q/a", 7, &mut vec![]).unwrap();
        assert_eq!(&stats(&t)[..], b"count=1,bytes=1");
    }
}
