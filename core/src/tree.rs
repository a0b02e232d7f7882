//! The data tree: znodes with their stats, ACL ids and children, the per-session
//! ephemeral index, containers and TTL nodes, quota statistics and the 3.8 tree digest.
//!
//! The tree changes only through [`DataTree::apply`] (one committed transaction at a
//! time, whoever prepared it: this server, a geokeeper leader, or a Java leader's INFORM)
//! and answers reads through the query methods. It does no I/O and knows no clocks: times
//! come inside transactions. Every change reports what happened as [`Change`]s, which the
//! watch table turns into events.

use std::collections::{BTreeSet, HashMap, HashSet};
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

#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `None` is null data, which ZooKeeper keeps apart from empty data.
    pub data: Option<Bytes>,
    pub acl: i64,
    pub stat: NodeStat,
    pub children: HashSet<Box<str>>,
}

impl Node {
    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    pub fn data_bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }

    pub fn to_stat(&self) -> Stat {
        let s = &self.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            // The stored cversion counts child creates; clients see creates plus deletes,
            // which is twice the creates less the children still there (`DataNode.copyStat`).
            cversion: s
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(self.children.len() as i32),
            aversion: s.aversion,
            // Containers and TTL nodes show no owner (`getClientEphemeralOwner`).
            ephemeral_owner: match ephemeral::kind(s.ephemeral_owner) {
                ephemeral::Kind::Normal(o) => o,
                _ => 0,
            },
            data_length: self.data_len() as i32,
            num_children: self.children.len() as i32,
            pzxid: s.pzxid,
        }
    }
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

#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: HashMap<Box<str>, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    pub acls: AclCache,
    /// Paths that carry a quota (have a `zookeeper_limits` node).
    quota_paths: BTreeSet<String>,
    digest: i64,
    data_size: i64,
    last_zxid: i64,
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
        let mut root = Node {
            // `DataTree()` gives the built-in nodes empty data, not null.
            data: Some(Bytes::new()),
            acl: OPEN_UNSAFE_ACL_ID,
            ..Node::default()
        };
        root.children.insert("zookeeper".into());
        let mut zk = Node {
            data: Some(Bytes::new()),
            acl: OPEN_UNSAFE_ACL_ID,
            ..Node::default()
        };
        zk.children.insert("quota".into());
        zk.children.insert("config".into());
        let quota = Node {
            data: Some(Bytes::new()),
            acl: OPEN_UNSAFE_ACL_ID,
            ..Node::default()
        };
        let cfg_acl = t.acls.intern(&read_acl_unsafe());
        // `addConfigNode` sets its ACL through setACL with version -1, which leaves
        // aversion at -1.
        let config = Node {
            data: Some(Bytes::new()),
            acl: cfg_acl,
            stat: NodeStat {
                aversion: -1,
                ..NodeStat::default()
            },
            ..Node::default()
        };
        t.insert_node(ROOT, root);
        t.insert_node(ZOOKEEPER, zk);
        t.insert_node(QUOTA, quota);
        t.insert_node(CONFIG, config);
        t.data_size = t
            .nodes
            .iter()
            .map(|(p, n)| node_size(p, n.data_bytes()))
            .sum();
        t
    }

    /// A tree with no nodes at all, not even the root: what a snapshot loads into.
    pub fn empty() -> Self {
        DataTree {
            nodes: HashMap::new(),
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

    // ---- the node map, keeping the digest current (`NodeHashMapImpl`) ----

    fn insert_node(&mut self, path: &str, node: Node) {
        self.digest = self
            .digest
            .wrapping_add(node_digest(path, node.data_bytes(), &node.stat));
        if let Some(old) = self.nodes.insert(path.into(), node) {
            self.digest = self
                .digest
                .wrapping_sub(node_digest(path, old.data_bytes(), &old.stat));
        }
    }

    fn remove_node(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        self.digest = self
            .digest
            .wrapping_sub(node_digest(path, old.data_bytes(), &old.stat));
        Some(old)
    }

    /// Changes a node in place, taking its old digest out and the new one in.
    fn change_node<R>(&mut self, path: &str, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        let n = self.nodes.get_mut(path)?;
        let before = node_digest(path, n.data_bytes(), &n.stat);
        let r = f(n);
        let after = node_digest(path, n.data_bytes(), &n.stat);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        Some(r)
    }

    // ---- queries ----

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(root_alias(path))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(root_alias(path))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
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

    pub fn ephemerals_of(&self, session: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session).into_iter().flatten()
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
        let mut v: Vec<String> = n.children.iter().map(|c| c.to_string()).collect();
        v.sort_unstable();
        Some(v)
    }

    /// `getAllChildrenNumber`: every descendant of `path`, not counting `path` itself.
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        let n = self.get(path)?;
        // ZooKeeper counts the keys that start with `path + "/"`: for `""` that is every
        // key but `""`, so the root itself is counted too.
        let mut count = if path.is_empty() { 1i64 } else { 0 };
        let mut stack: Vec<String> = n.children.iter().map(|c| join(path, c)).collect();
        while let Some(p) = stack.pop() {
            count += 1;
            if let Some(n) = self.nodes.get(p.as_str()) {
                stack.extend(n.children.iter().map(|c| join(&p, c)));
            }
        }
        Some(count.min(i32::MAX as i64) as i32)
    }

    /// Every path of the tree, parents before children (snapshots, dumps).
    pub fn walk(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![ROOT.to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(p.as_str()) {
                let mut kids: Vec<&str> = n.children.iter().map(|c| &**c).collect();
                kids.sort_unstable_by(|a, b| b.cmp(a));
                for c in kids {
                    stack.push(join(&p, c));
                }
            }
            out.push(p);
        }
        out
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
                        t.data.clone(),
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
                    self.change_node(&parent, |p| {
                        let cv = if cv == -1 { p.stat.cversion + 1 } else { cv };
                        if cv > p.stat.cversion {
                            p.stat.cversion = cv;
                            p.stat.pzxid = zxid;
                        }
                    });
                }
                r
            }
            TxnBody::CreateContainer(t) => self
                .create_node(
                    &t.path,
                    t.data.clone(),
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
                    t.data.clone(),
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
                .set_data(&t.path, t.data.clone(), t.version, zxid, time, changes)
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
                .set_data(&t.path, t.data.clone(), t.version, zxid, time, changes)
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
        data: Option<Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Stat, ErrorCode> {
        let (parent, name) = split_path(path);
        let Some(p) = self.nodes.get(parent) else {
            return Err(ErrorCode::NoNode);
        };
        if p.children.contains(name) {
            return Err(ErrorCode::NodeExists);
        }
        // `createNode` interns the ACL before it checks anything else; the reference is
        // released again below on failure paths that follow (none do after this point).
        let acl_id = self.acls.intern(acl);
        self.change_node(parent, |p| {
            let cv = if parent_cversion == -1 {
                p.stat.cversion + 1
            } else {
                parent_cversion
            };
            // A replayed create of a node that came and went inside a fuzzy snapshot must
            // not move the parent's cversion and pzxid backwards.
            if cv > p.stat.cversion {
                p.stat.cversion = cv;
                p.stat.pzxid = zxid;
            }
            p.children.insert(name.into());
        });
        let node = Node {
            data,
            acl: acl_id,
            stat: NodeStat {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner,
                pzxid: zxid,
            },
            children: HashSet::new(),
        };
        let stat = node.to_stat();
        let bytes = node.data_len() as i64;
        self.data_size += node_size(path, node.data_bytes());
        self.insert_node(path, node);
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
        Ok(stat)
    }

    pub fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        changes: &mut Vec<Change>,
    ) -> Result<(), ErrorCode> {
        let (parent, name) = split_path(path);
        // The parent's pzxid moves even when the child is already gone (a replay over a
        // fuzzy snapshot), but only forwards.
        if self
            .change_node(parent, |p| {
                p.children.remove(name);
                if zxid > p.stat.pzxid {
                    p.stat.pzxid = zxid;
                }
            })
            .is_none()
        {
            return Err(ErrorCode::NoNode);
        }
        let Some(node) = self.remove_node(path) else {
            return Err(ErrorCode::NoNode);
        };
        let acl = self.acls.get(node.acl);
        self.acls.release(node.acl);
        self.data_size -= node_size(path, node.data_bytes());
        match ephemeral::kind(node.stat.ephemeral_owner) {
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
            self.update_quota_stat(&prefix, -(node.data_len() as i64), -1);
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
        data: Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Stat, ErrorCode> {
        let new_len = data.as_ref().map_or(0, |d| d.len()) as i64;
        let new_size = node_size(path, data.as_deref().unwrap_or(&[]));
        let (old_len, old_size, stat) = self
            .change_node(path, |n| {
                let old = std::mem::replace(&mut n.data, data);
                n.stat.mtime = time;
                n.stat.mzxid = zxid;
                n.stat.version = version;
                (
                    old.as_ref().map_or(0, |d| d.len()) as i64,
                    node_size(path, old.as_deref().unwrap_or(&[])),
                    n.to_stat(),
                )
            })
            .ok_or(ErrorCode::NoNode)?;
        if let Some(prefix) = self.max_prefix_with_quota(path) {
            self.update_quota_stat(&prefix, new_len - old_len, 0);
        }
        self.data_size += new_size - old_size;
        let acl = self.acl_of(path).unwrap_or_else(|| Arc::from(Vec::new()));
        changes.push(Change::DataChanged {
            path: path.to_owned(),
            acl,
        });
        Ok(stat)
    }

    pub fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<Stat, ErrorCode> {
        let old = self.nodes.get(path).ok_or(ErrorCode::NoNode)?.acl;
        self.acls.release(old);
        let id = self.acls.intern(acl);
        self.change_node(path, |n| {
            n.stat.aversion = version;
            n.acl = id;
            n.to_stat()
        })
        .ok_or(ErrorCode::NoNode)
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
        let Some(n) = self.nodes.get_mut(sp.as_str()) else {
            tracing::error!(path = %sp, "missing node for quota stat");
            return;
        };
        let mut t = StatsTrack::parse(n.data_bytes());
        // Java's long arithmetic: the stats node holds whatever a client last wrote there.
        t.set("count", t.get("count").wrapping_add(count_diff));
        t.set("bytes", t.get("bytes").wrapping_add(bytes_diff));
        let new = t.to_bytes();
        self.data_size += new.len() as i64 - n.data_len() as i64;
        n.data = Some(new);
    }

    /// `updateQuotaForPath`: counts the subtree when its `zookeeper_stats` appears.
    fn recount_quota(&mut self, path: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![path.to_owned()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(p.as_str()) {
                count += 1;
                bytes += n.data_len() as i64;
                stack.extend(n.children.iter().map(|c| join(&p, c)));
            }
        }
        let mut t = StatsTrack::default();
        t.set("count", count);
        t.set("bytes", bytes);
        let sp = Self::stats_path(path);
        let new = t.to_bytes();
        let mut grow = 0;
        self.change_node(&sp, |n| {
            grow = new.len() as i64 - n.data_len() as i64;
            n.data = Some(new);
        });
        self.data_size += grow;
    }

    /// Restores a node from a snapshot as is (stats, ACL id, owner); the parent link is
    /// made when the parent is known. Used by snapshot loading.
    pub fn restore_node(&mut self, path: &str, data: Option<Bytes>, acl: i64, stat: NodeStat) {
        self.acls.add_usage(acl);
        let node = Node {
            data,
            acl,
            stat,
            children: HashSet::new(),
        };
        self.data_size += node_size(path, node.data_bytes());
        if path != ROOT {
            let (parent, name) = split_path(path);
            if let Some(p) = self.nodes.get_mut(parent) {
                p.children.insert(name.into());
            }
        }
        match ephemeral::kind(stat.ephemeral_owner) {
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
        if let Some(qp) = split_path(path).0.strip_prefix(QUOTA) {
            if split_path(path).1 == QUOTA_LIMITS {
                self.quota_paths.insert(trim_quota_path(qp));
            }
        }
        self.insert_node(path, node);
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
            Some(Bytes::from_static(b"x")),
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
        b.change_node("/", |r| r.stat.pzxid = 3);
        b.change_node("/", |r| r.stat.cversion = 2);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), DataTree::new().digest());
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
            Some(Bytes::from_static(b"count=10,bytes=-1")),
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
            Some(Bytes::from_static(b"count=0,bytes=0")),
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
        t.set_data(
            "/q/a",
            Some(Bytes::from_static(b"hello")),
            1,
            6,
            0,
            &mut vec![],
        )
        .unwrap();
        assert_eq!(&stats(&t)[..], b"count=2,bytes=6");
        t.delete_node("/q/a", 7, &mut vec![]).unwrap();
        assert_eq!(&stats(&t)[..], b"count=1,bytes=1");
    }
}
