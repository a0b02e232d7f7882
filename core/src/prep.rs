//! Prepare: turns a write request into ZooKeeper's transaction record, as
//! `PrepRequestProcessor` does, checking it against the tree *plus* every transaction
//! prepared but not yet applied (`outstandingChanges`), so that a batch waiting for one
//! group commit sees its own effects.
//!
//! Every write gets a transaction: a request that fails validation becomes an error
//! transaction (`ErrorTxn`) that still takes a zxid, is logged and is applied, exactly as
//! ZooKeeper does; the reply's zxid is that error transaction's. The check order below is
//! ZooKeeper 3.8's, so that a request with two faults reports the same one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::acl::{check_acl, fixup_acl, AuthProviders};
use crate::path::validate_path;
use crate::proto::perms;
use crate::proto::records::{Acl, Id};
use crate::proto::txn::*;
use crate::proto::{ErrorCode, OpCode};
use crate::request::{MultiOp, Request};
use crate::tree::{
    ephemeral, node_digest, DataTree, NodeStat, CONFIG, DIGEST_VERSION, QUOTA, ROOT, ZOOKEEPER,
};

/// What Prep knows of a node: the tree's view plus pending changes (`ChangeRecord`).
#[derive(Debug, Clone)]
struct ChangeRecord {
    zxid: i64,
    /// `None`: deleted by a pending transaction.
    stat: Option<NodeStat>,
    child_count: i32,
    acl: Arc<[Acl]>,
    data: Option<Bytes>,
    /// This node's digest after the change (0 when deleted).
    node_digest: i64,
    /// The tree digest after this change.
    tree_digest: i64,
}

/// Settings Prep consults.
#[derive(Debug, Clone, Default)]
pub struct PrepSettings {
    pub extended_types: bool,
    pub skip_acl: bool,
    pub reconfig_enabled: bool,
    pub digest_enabled: bool,
    /// `zookeeper.enforceQuota`: hard quota limits refuse creates and setData.
    pub enforce_quota: bool,
    /// The registered authentication providers: which ACL schemes are valid and matched.
    pub auth_providers: AuthProviders,
}

/// The session's standing as Prep's `checkSession` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Live,
    Closing,
    Unknown,
}

/// Who asks.
pub struct Caller<'a> {
    pub session: i64,
    pub session_state: SessionState,
    pub auth: &'a [Id],
}

#[derive(Debug, Default)]
pub struct Prep {
    pub settings: PrepSettings,
    changes: HashMap<String, ChangeRecord>,
    order: VecDeque<(i64, String)>,
    /// The server-wide `RateLogger` of `ZooKeeperServer`, for "Quota exceeded" warnings.
    quota_log: crate::ratelog::RateLogger,
}

type PResult<T> = Result<T, ErrorCode>;

fn tree_key(path: &str) -> &str {
    if path.is_empty() {
        ROOT
    } else {
        path
    }
}

/// `getParentPathAndValidate` / `validatePathForCreate`: the text before the last slash.
fn parent_of(path: &str) -> PResult<&str> {
    match path.rfind('/') {
        Some(i) if !path.contains('\0') => Ok(&path[..i]),
        _ => Err(ErrorCode::BadArguments),
    }
}

fn is_special(path: &str) -> bool {
    path == ROOT || path == ZOOKEEPER || path == QUOTA || path == CONFIG
}

/// `checkAndIncVersion`.
fn check_version(current: i32, expected: i32) -> PResult<i32> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// `CreateMode.fromFlag` as (sequential, ephemeral, container, ttl).
#[derive(Debug, Clone, Copy)]
struct CreateMode {
    sequential: bool,
    ephemeral: bool,
    container: bool,
    ttl: bool,
}

impl CreateMode {
    fn from_flags(flags: i32) -> PResult<CreateMode> {
        let m = |sequential, ephemeral, container, ttl| CreateMode {
            sequential,
            ephemeral,
            container,
            ttl,
        };
        Ok(match flags {
            0 => m(false, false, false, false),
            1 => m(false, true, false, false),
            2 => m(true, false, false, false),
            3 => m(true, true, false, false),
            4 => m(false, false, true, false),
            5 => m(false, false, false, true),
            6 => m(true, false, false, true),
            _ => return Err(ErrorCode::BadArguments),
        })
    }
}

impl Prep {
    pub fn new(settings: PrepSettings) -> Self {
        Prep {
            settings,
            ..Default::default()
        }
    }

    /// Whether transactions are prepared but not applied yet.
    pub fn has_outstanding(&self) -> bool {
        !self.order.is_empty()
    }

    /// Forgets the changes of transactions up to `zxid`, now applied to the tree.
    pub fn applied(&mut self, zxid: i64) {
        while let Some((z, _)) = self.order.front() {
            if *z > zxid {
                break;
            }
            let Some((z, path)) = self.order.pop_front() else {
                break;
            };
            if self.changes.get(&path).is_some_and(|c| c.zxid == z) {
                self.changes.remove(&path);
            }
        }
    }

    fn current_digest(&self, tree: &DataTree) -> i64 {
        match self.order.back() {
            Some((_, path)) => self
                .changes
                .get(path)
                .map(|c| c.tree_digest)
                .unwrap_or_else(|| tree.digest()),
            None => tree.digest(),
        }
    }

    /// `getRecordForPath`.
    fn record(&self, tree: &DataTree, path: &str) -> PResult<ChangeRecord> {
        let key = tree_key(path);
        if let Some(c) = self.changes.get(key) {
            return match c.stat {
                Some(_) => Ok(c.clone()),
                None => Err(ErrorCode::NoNode),
            };
        }
        let n = tree.get(key).ok_or(ErrorCode::NoNode)?;
        // An ACL id missing from the cache fails the request (ZooKeeper's `convertLong`
        // throws and pRequest turns it into a MarshallingError txn); never an open znode.
        let Some(acl) = tree.acls.lookup(n.acl) else {
            tracing::error!(acl = n.acl, path, "ACL not available for long {}", n.acl);
            return Err(ErrorCode::MarshallingError);
        };
        Ok(ChangeRecord {
            zxid: -1,
            stat: Some(n.stat),
            child_count: n.child_count() as i32,
            acl: Arc::from(acl),
            data: n.data.map(Bytes::copy_from_slice),
            node_digest: node_digest(key, n.data_bytes(), &n.stat),
            tree_digest: 0,
        })
    }

    /// Records a pending change and moves the predicted digest (`precalculateDigest`).
    fn add_change(&mut self, tree: &DataTree, path: &str, mut rec: ChangeRecord) {
        let key = tree_key(path).to_owned();
        let prev = match self.changes.get(&key) {
            Some(c) => c.node_digest,
            None => tree
                .get(&key)
                .map(|n| node_digest(&key, n.data_bytes(), &n.stat))
                .unwrap_or(0),
        };
        let new = match &rec.stat {
            Some(s) => node_digest(&key, rec.data.as_deref().unwrap_or(&[]), s),
            None => 0,
        };
        rec.node_digest = new;
        rec.tree_digest = self
            .current_digest(tree)
            .wrapping_sub(prev)
            .wrapping_add(new);
        self.order.push_back((rec.zxid, key.clone()));
        self.changes.insert(key, rec);
    }

    /// Prepares one write. `hdr` carries the zxid and time already assigned; its type is
    /// set here (to `error` when the request fails).
    pub fn prepare(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        req: &Request,
        hdr: &mut TxnHeader,
    ) -> (TxnBody, Option<TxnDigest>) {
        let result = match req {
            // A read op in a multi fails the whole request (the op is not a transaction).
            Request::Multi(ops) if ops.iter().any(|o| o.is_read()) => {
                Err(ErrorCode::MarshallingError)
            }
            Request::Multi(ops) => Ok(self.prepare_multi(tree, caller, ops, hdr)),
            Request::Malformed { .. } => Err(ErrorCode::MarshallingError),
            _ => self.prepare_one(tree, caller, req, hdr.zxid, hdr.time),
        };
        match result {
            Ok(body) => {
                hdr.r#type = body.txn_type();
                let digest = self.settings.digest_enabled.then(|| TxnDigest {
                    version: DIGEST_VERSION,
                    tree_digest: self.current_digest(tree),
                });
                (body, digest)
            }
            Err(e) => {
                hdr.r#type = OpCode::Error as i32;
                (TxnBody::Error(ErrorTxn { err: e.code() }), None)
            }
        }
    }

    /// A createSession transaction for a new connection.
    pub fn prepare_create_session(
        &mut self,
        tree: &DataTree,
        timeout: i32,
        hdr: &mut TxnHeader,
    ) -> (TxnBody, Option<TxnDigest>) {
        hdr.r#type = OpCode::CreateSession as i32;
        let digest = self.settings.digest_enabled.then(|| TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: self.current_digest(tree),
        });
        (
            TxnBody::CreateSession(CreateSessionTxn { time_out: timeout }),
            digest,
        )
    }

    /// A closeSession: lists the session's ephemerals, counting pending creates and
    /// deletes, and records their deletion.
    pub fn prepare_close_session(
        &mut self,
        tree: &DataTree,
        session: i64,
        hdr: &mut TxnHeader,
    ) -> (TxnBody, Option<TxnDigest>) {
        hdr.r#type = OpCode::CloseSession as i32;
        let mut es: std::collections::BTreeSet<String> =
            tree.ephemerals_of(session).into_iter().cloned().collect();
        for (path, c) in &self.changes {
            match &c.stat {
                None => {
                    es.remove(path);
                }
                Some(s) if s.ephemeral_owner == session => {
                    es.insert(path.clone());
                }
                _ => {}
            }
        }
        let zxid = hdr.zxid;
        for p in &es {
            // Only for the digest, and only the parent's pzxid (PrepRequestProcessor,
            // closeSession): its child count is left as it is, so until the close is
            // applied a delete of the parent still finds the ephemeral and gets NotEmpty,
            // as in ZooKeeper.
            if self.settings.digest_enabled {
                if let Ok(parent) = parent_of(p) {
                    if let Ok(mut pr) = self.record(tree, parent) {
                        pr.zxid = zxid;
                        if let Some(s) = pr.stat.as_mut() {
                            s.pzxid = zxid;
                        }
                        self.add_change(tree, parent, pr);
                    }
                }
            }
            self.add_change(tree, p, deleted(zxid));
        }
        let digest = self.settings.digest_enabled.then(|| TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: self.current_digest(tree),
        });
        (
            TxnBody::CloseSession(CloseSessionTxn {
                paths2_delete: es.into_iter().collect(),
            }),
            digest,
        )
    }

    fn check_session(&self, caller: &Caller<'_>) -> PResult<()> {
        match caller.session_state {
            SessionState::Live => Ok(()),
            SessionState::Closing => Err(ErrorCode::SessionExpired),
            SessionState::Unknown => Err(ErrorCode::UnknownSession),
        }
    }

    fn check_acl(&self, acl: &[Acl], perm: i32, caller: &Caller<'_>) -> PResult<()> {
        let providers = &self.settings.auth_providers;
        if check_acl(providers, acl, perm, caller.auth, self.settings.skip_acl) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn prepare_one(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        req: &Request,
        zxid: i64,
        time: i64,
    ) -> PResult<TxnBody> {
        match req {
            Request::Create { op, req } => self.create(
                tree, caller, *op, &req.path, &req.data, &req.acl, req.flags, -1, zxid, time,
            ),
            Request::CreateTtl(r) => self.create(
                tree,
                caller,
                OpCode::CreateTtl,
                &r.path,
                &r.data,
                &r.acl,
                r.flags,
                r.ttl,
                zxid,
                time,
            ),
            Request::Delete(r) => self.delete(tree, caller, &r.path, r.version, zxid),
            Request::DeleteContainer(path) => self.delete_container(tree, path, zxid),
            Request::SetData(r) => {
                self.set_data(tree, caller, &r.path, &r.data, r.version, zxid, time)
            }
            Request::SetAcl(r) => self.set_acl(tree, caller, &r.path, &r.acl, r.version, zxid),
            Request::Check(r) => self.check(tree, caller, &r.path, r.version),
            Request::Reconfig(_) => {
                // A standalone 3.8 server: reconfig is off by default; when enabled it is
                // still not a leader, and the cast ZooKeeper makes fails as Unimplemented.
                if !self.settings.reconfig_enabled {
                    return Err(ErrorCode::ReconfigDisabled);
                }
                self.check_session(caller)?;
                Err(ErrorCode::Unimplemented)
            }
            _ => Err(ErrorCode::MarshallingError),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        op: OpCode,
        path: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        flags: i32,
        ttl: i64,
        zxid: i64,
        time: i64,
    ) -> PResult<TxnBody> {
        let mode = CreateMode::from_flags(flags)?;
        // validateCreateRequest
        if mode.ttl && !self.settings.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        if mode.ttl {
            if ttl > ephemeral::MAX_TTL || ttl <= 0 {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 || op == OpCode::CreateTtl {
            // createTTL with a non-TTL mode: ZooKeeper accepts it here and then fails while
            // applying it (stopping the server); refusing it up front is the safe reading.
            return Err(ErrorCode::BadArguments);
        }
        if mode.ephemeral {
            // `checkGlobalSession`: an unknown session is reported as expired.
            match caller.session_state {
                SessionState::Live => {}
                _ => return Err(ErrorCode::SessionExpired),
            }
        } else {
            self.check_session(caller)?;
        }
        let parent_path = parent_of(path)?;
        let list_acl = fixup_acl(&self.settings.auth_providers, acl, caller.auth)?;
        let parent = self.record(tree, parent_path)?;
        self.check_acl(&parent.acl, perms::CREATE, caller)?;
        let parent_stat = parent.stat.unwrap_or_default();
        let mut path = path.to_owned();
        if mode.sequential {
            path.push_str(&format!("{:010}", parent_stat.cversion));
        }
        validate_path(&path).map_err(|_| ErrorCode::BadArguments)?;
        if self.record(tree, &path).is_ok() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            ephemeral::kind(parent_stat.ephemeral_owner),
            ephemeral::Kind::Normal(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let len = data.as_ref().map_or(0, |d| d.len() as i64);
        self.check_quota(tree, &path, len, 1, time)?;
        let new_cversion = parent_stat.cversion.wrapping_add(1);
        let body = match op {
            OpCode::CreateContainer => TxnBody::CreateContainer(CreateContainerTxn {
                path: path.clone(),
                data: data.clone(),
                acl: list_acl.clone(),
                parent_cversion: new_cversion,
            }),
            OpCode::CreateTtl => TxnBody::CreateTtl(CreateTtlTxn {
                path: path.clone(),
                data: data.clone(),
                acl: list_acl.clone(),
                parent_cversion: new_cversion,
                ttl,
            }),
            _ => {
                let t = CreateTxn {
                    path: path.clone(),
                    data: data.clone(),
                    acl: list_acl.clone(),
                    ephemeral: mode.ephemeral,
                    parent_cversion: new_cversion,
                };
                if op == OpCode::Create2 {
                    TxnBody::Create2(t)
                } else {
                    TxnBody::Create(t)
                }
            }
        };
        let owner = if mode.container {
            ephemeral::CONTAINER
        } else if mode.ttl {
            ephemeral::ttl_owner(ttl)
        } else if mode.ephemeral {
            caller.session
        } else {
            0
        };
        let mut pr = parent;
        pr.zxid = zxid;
        pr.child_count += 1;
        if let Some(s) = pr.stat.as_mut() {
            s.cversion = new_cversion;
            s.pzxid = zxid;
        }
        self.add_change(tree, parent_path, pr);
        let stat = NodeStat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            ephemeral_owner: owner,
            pzxid: zxid,
            ..NodeStat::default()
        };
        self.add_change(
            tree,
            &path,
            ChangeRecord {
                zxid,
                stat: Some(stat),
                child_count: 0,
                acl: list_acl.into(),
                data: data.clone(),
                node_digest: 0,
                tree_digest: 0,
            },
        );
        Ok(body)
    }

    fn delete(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        path: &str,
        version: i32,
        zxid: i64,
    ) -> PResult<TxnBody> {
        self.check_session(caller)?;
        let parent_path = parent_of(path)?;
        if is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = self.record(tree, parent_path)?;
        self.check_acl(&parent.acl, perms::DELETE, caller)?;
        let node = self.record(tree, path)?;
        check_version(node.stat.unwrap_or_default().version, version)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.record_delete(tree, parent_path, parent, path, zxid);
        Ok(TxnBody::Delete(DeleteTxn {
            path: path.to_owned(),
        }))
    }

    fn record_delete(
        &mut self,
        tree: &DataTree,
        parent_path: &str,
        mut parent: ChangeRecord,
        path: &str,
        zxid: i64,
    ) {
        parent.zxid = zxid;
        parent.child_count -= 1;
        if let Some(s) = parent.stat.as_mut() {
            s.pzxid = zxid;
        }
        self.add_change(tree, parent_path, parent);
        self.add_change(tree, path, deleted(zxid));
    }

    fn delete_container(&mut self, tree: &DataTree, path: &str, zxid: i64) -> PResult<TxnBody> {
        let parent_path = parent_of(path)?;
        if is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.record(tree, path)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(
            ephemeral::kind(node.stat.unwrap_or_default().ephemeral_owner),
            ephemeral::Kind::Normal(_)
        ) {
            return Err(ErrorCode::BadVersion);
        }
        let parent = self.record(tree, parent_path)?;
        self.record_delete(tree, parent_path, parent, path, zxid);
        Ok(TxnBody::DeleteContainer(DeleteTxn {
            path: path.to_owned(),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn set_data(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        path: &str,
        data: &Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
    ) -> PResult<TxnBody> {
        self.check_session(caller)?;
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let mut node = self.record(tree, path)?;
        self.check_acl(&node.acl, perms::WRITE, caller)?;
        // Quota before version, as `PrepRequestProcessor` orders them.
        let len = |d: &Option<Bytes>| d.as_ref().map_or(0, |d| d.len() as i64);
        self.check_quota(tree, path, len(data) - len(&node.data), 0, time)?;
        let mut stat = node.stat.unwrap_or_default();
        let new_version = check_version(stat.version, version)?;
        stat.version = new_version;
        stat.mtime = time;
        stat.mzxid = zxid;
        node.stat = Some(stat);
        node.zxid = zxid;
        node.data = data.clone();
        self.add_change(tree, path, node);
        Ok(TxnBody::SetData(SetDataTxn {
            path: path.to_owned(),
            data: data.clone(),
            version: new_version,
        }))
    }

    /// `ZooKeeperServer.checkQuota`: with `enforceQuota`, a change that takes the count or
    /// bytes under a quota past its limit is logged ("Quota exceeded: …", rate-limited),
    /// and refused with QuotaExceeded if that limit is a hard one (`countHardLimit`,
    /// `byteHardLimit`); a soft one (`count`, `bytes`) only counts when no hard one is
    /// set. Count is checked before bytes. It reads the committed `zookeeper_limits` and
    /// `zookeeper_stats` nodes, not pending changes, so the ops of one multi do not see
    /// each other here. Without `enforceQuota` nothing is checked or logged, as in 3.8.
    fn check_quota(
        &mut self,
        tree: &DataTree,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
        now_ms: i64,
    ) -> PResult<()> {
        if !self.settings.enforce_quota {
            return Ok(());
        }
        let Some(prefix) = tree.max_prefix_with_quota(path) else {
            return Ok(());
        };
        let track = |name: &str, missing: &str| {
            let p = format!("{}{prefix}/{name}", crate::tree::QUOTA);
            let n = tree.get(&p);
            if n.is_none() {
                tracing::error!("{missing} {p}");
            }
            n.map(|n| crate::tree::StatsTrack::parse(n.data_bytes()))
        };
        let Some(limits) = track(crate::tree::QUOTA_LIMITS, "Missing limit node for quota") else {
            return Ok(());
        };
        // (dimension, diff, soft limit key, hard limit key, usage key)
        let checks = [
            ("Count", count_diff, "count", "countHardLimit", "count"),
            ("Byte", bytes_diff, "bytes", "byteHardLimit", "bytes"),
        ];
        let wanted = |(_, diff, soft, hard, _): &(&str, i64, &str, &str, &str)| {
            *diff != 0 && (limits.get(soft) > -1 || limits.get(hard) > -1)
        };
        if !checks.iter().any(wanted) {
            return Ok(());
        }
        let Some(current) = track(crate::tree::QUOTA_STATS, "Missing node for stat") else {
            return Ok(());
        };
        for check @ (dim, diff, soft, hard, usage) in checks {
            if !wanted(&check) {
                continue;
            }
            // Java's long arithmetic: a client may have written any number there.
            let new = current.get(usage).wrapping_add(diff);
            let is_hard = limits.get(hard) > -1;
            let limit = limits.get(if is_hard { hard } else { soft });
            if new > limit {
                let kind = if is_hard { "hard" } else { "soft" };
                self.quota_log.log(
                    now_ms.max(0) as u64,
                    format!(
                        "Quota exceeded: {prefix} [current {usage}={new}, {kind}{dim}Limit={limit}]"
                    ),
                );
                if is_hard {
                    return Err(ErrorCode::QuotaExceeded);
                }
            }
        }
        Ok(())
    }

    fn set_acl(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        path: &str,
        acl: &[Acl],
        version: i32,
        zxid: i64,
    ) -> PResult<TxnBody> {
        self.check_session(caller)?;
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let list_acl = fixup_acl(&self.settings.auth_providers, acl, caller.auth)?;
        let mut node = self.record(tree, path)?;
        self.check_acl(&node.acl, perms::ADMIN, caller)?;
        let mut stat = node.stat.unwrap_or_default();
        let new_version = check_version(stat.aversion, version)?;
        stat.aversion = new_version;
        node.stat = Some(stat);
        node.zxid = zxid;
        // ZooKeeper's pending record keeps the old ACL (`pRequest2Txn` case setACL bumps
        // only the aversion): requests prepared before this one is applied are still
        // checked against the old list, as pipelined clients see with ZooKeeper.
        self.add_change(tree, path, node);
        Ok(TxnBody::SetAcl(SetAclTxn {
            path: path.to_owned(),
            acl: list_acl,
            version: new_version,
        }))
    }

    fn check(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        path: &str,
        version: i32,
    ) -> PResult<TxnBody> {
        self.check_session(caller)?;
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let node = self.record(tree, path)?;
        self.check_acl(&node.acl, perms::READ, caller)?;
        let v = check_version(node.stat.unwrap_or_default().version, version)?;
        Ok(TxnBody::Check(CheckVersionTxn {
            path: path.to_owned(),
            version: v,
        }))
    }

    /// A multi: each op prepared in turn against the changes of the ops before it. At the
    /// first failure, the changes this multi made are rolled back; that op becomes an
    /// error record with its code and every later op an error record with
    /// RuntimeInconsistency, while earlier ops keep their records (the apply step turns
    /// them into OK results), as `PrepRequestProcessor` writes it.
    fn prepare_multi(
        &mut self,
        tree: &DataTree,
        caller: &Caller<'_>,
        ops: &[MultiOp],
        hdr: &TxnHeader,
    ) -> TxnBody {
        let saved_changes = self.changes.clone();
        let saved_len = self.order.len();
        let mut failed = false;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            if failed {
                out.push(TxnBody::Error(ErrorTxn {
                    err: ErrorCode::RuntimeInconsistency.code(),
                }));
                continue;
            }
            let req = match op {
                MultiOp::Create { op, req } => Request::Create {
                    op: *op,
                    req: req.clone(),
                },
                MultiOp::CreateTtl(r) => Request::CreateTtl(r.clone()),
                MultiOp::Delete(r) => Request::Delete(r.clone()),
                MultiOp::SetData(r) => Request::SetData(r.clone()),
                MultiOp::Check(r) => Request::Check(r.clone()),
                MultiOp::GetChildren(_) | MultiOp::GetData(_) => Request::Malformed {
                    op: OpCode::Multi,
                    reason: "read op in multi".into(),
                },
            };
            match self.prepare_one(tree, caller, &req, hdr.zxid, hdr.time) {
                Ok(b) => out.push(b),
                Err(e) => {
                    failed = true;
                    out.push(TxnBody::Error(ErrorTxn { err: e.code() }));
                    self.changes = saved_changes.clone();
                    self.order.truncate(saved_len);
                }
            }
        }
        TxnBody::Multi(out)
    }
}

fn deleted(zxid: i64) -> ChangeRecord {
    ChangeRecord {
        zxid,
        stat: None,
        child_count: -1,
        acl: Arc::from(Vec::new()),
        data: None,
        node_digest: 0,
        tree_digest: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::open_acl_unsafe;
    use crate::proto::records::CreateRequest;

    fn caller() -> Caller<'static> {
        Caller {
            session: 7,
            session_state: SessionState::Live,
            auth: &[],
        }
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"d")),
                acl: open_acl_unsafe(),
                flags,
            },
        }
    }

    fn hdr(zxid: i64) -> TxnHeader {
        TxnHeader {
            client_id: 7,
            cxid: 1,
            zxid,
            time: 1000,
            r#type: 0,
        }
    }

    /// Prepares and applies in one step, returning the error code if any.
    fn run(
        p: &mut Prep,
        t: &mut DataTree,
        req: &Request,
        zxid: i64,
    ) -> (TxnBody, Option<TxnDigest>) {
        let mut h = hdr(zxid);
        let (body, digest) = p.prepare(t, &caller(), req, &mut h);
        t.apply(&h, &body, &mut vec![]);
        p.applied(zxid);
        (body, digest)
    }

    /// ZooKeeper's tree digest computed from scratch, sharing no code with the tree or
    /// prep: a bitwise CRC-32 (IEEE, reflected 0xEDB88320) per znode over the path (the
    /// root as ""), the data, then czxid, mzxid, pzxid, ctime, mtime, version, cversion,
    /// aversion and ephemeralOwner big-endian (`DigestCalculator.calculateDigest`), summed
    /// as Java longs over every znode outside `/zookeeper/` (`NodeHashMapImpl`).
    fn digest_from_scratch(t: &DataTree) -> i64 {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut c = !0u32;
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        (c >> 1) ^ 0xEDB8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let mut sum = 0i64;
        for path in t.walk() {
            if path.starts_with("/zookeeper/") {
                continue;
            }
            let n = t.get(&path).expect("walked");
            let s = n.stat;
            let mut b = if path == "/" {
                Vec::new()
            } else {
                path.as_bytes().to_vec()
            };
            b.extend_from_slice(n.data_bytes());
            for v in [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            for v in [s.version, s.cversion, s.aversion] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            b.extend_from_slice(&s.ephemeral_owner.to_be_bytes());
            sum = sum.wrapping_add(i64::from(crc32(&b)));
        }
        sum
    }

    /// Every digest prep predicts, several writes ahead of the tree, is the digest of the
    /// tree once those writes are applied, computed from scratch.
    #[test]
    fn predicted_digests_equal_the_applied_trees_digest_from_scratch() {
        let mut t = DataTree::new();
        let mut p = Prep::new(PrepSettings {
            digest_enabled: true,
            ..Default::default()
        });
        let set = |path: &str, data: &'static [u8]| {
            Request::SetData(crate::proto::records::SetDataRequest {
                path: path.into(),
                data: Some(Bytes::from_static(data)),
                version: -1,
            })
        };
        let delete = |path: &str| {
            Request::Delete(crate::proto::records::DeleteRequest {
                path: path.into(),
                version: -1,
            })
        };
        let reqs = vec![
            create("/a", 0),
            create("/a/s-", 2),
            create("/a/e", 1),
            set("/a", b"longer data"),
            create("/b", 0),
            delete("/b"),
            set("/", b"root"),
            create("/a", 0), // NodeExists: an error txn, no digest
            Request::Multi(vec![
                MultiOp::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: "/m".into(),
                        data: None,
                        acl: open_acl_unsafe(),
                        flags: 0,
                    },
                },
                MultiOp::SetData(crate::proto::records::SetDataRequest {
                    path: "/m".into(),
                    data: Some(Bytes::from_static(b"x")),
                    version: 0,
                }),
                MultiOp::Delete(crate::proto::records::DeleteRequest {
                    path: "/a/e".into(),
                    version: -1,
                }),
            ]),
            delete("/a/s-0000000000"),
        ];
        // Prepared all before any is applied, as under pipelining.
        let mut prepared = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let mut h = hdr(i as i64 + 1);
            h.time = 1000 + i as i64;
            let (body, digest) = p.prepare(&t, &caller(), r, &mut h);
            prepared.push((h, body, digest));
        }
        let mut checked = 0;
        for (h, body, digest) in prepared {
            t.apply(&h, &body, &mut vec![]);
            p.applied(h.zxid);
            if let Some(d) = digest {
                assert_eq!(d.tree_digest, digest_from_scratch(&t), "zxid {}", h.zxid);
                checked += 1;
            }
        }
        assert_eq!(
            checked, 9,
            "every write but the failed one carries a digest"
        );
    }

    #[test]
    fn pending_changes_are_seen_before_apply() {
        let mut t = DataTree::new();
        let mut p = Prep::new(PrepSettings {
            digest_enabled: true,
            ..Default::default()
        });
        let mut h1 = hdr(1);
        let (b1, d1) = p.prepare(&t, &caller(), &create("/a", 0), &mut h1);
        assert!(matches!(b1, TxnBody::Create(_)));
        let mut h2 = hdr(2);
        let (b2, _) = p.prepare(&t, &caller(), &create("/a/s-", 2), &mut h2);
        match &b2 {
            TxnBody::Create(c) => assert_eq!(c.path, "/a/s-0000000000"),
            other => panic!("{other:?}"),
        }
        let mut h3 = hdr(3);
        let (b3, d3) = p.prepare(&t, &caller(), &create("/a", 0), &mut h3);
        assert_eq!(
            b3,
            TxnBody::Error(ErrorTxn {
                err: ErrorCode::NodeExists.code()
            })
        );
        assert!(d3.is_none(), "error txns carry no digest");
        t.apply(&h1, &b1, &mut vec![]);
        assert_eq!(
            d1.unwrap().tree_digest,
            t.digest(),
            "predicted digest equals the applied one"
        );
    }

    /// `checkQuota`: only with enforceQuota; a hard limit refuses, a soft one only logs;
    /// and whatever a client wrote into the stats node, nothing overflows.
    #[test]
    fn quota_hard_limits_refuse_soft_ones_pass_and_stats_never_overflow() {
        let set = |path: &str, data: &str| {
            Request::SetData(crate::proto::records::SetDataRequest {
                path: path.into(),
                data: Some(Bytes::from(data.to_owned())),
                version: -1,
            })
        };
        let err = |b: &TxnBody| match b {
            TxnBody::Error(e) => e.err,
            _ => 0,
        };
        for enforce in [false, true] {
            let mut t = DataTree::new();
            let mut p = Prep::new(PrepSettings {
                enforce_quota: enforce,
                ..Default::default()
            });
            let mut z = 0;
            let mut step = |p: &mut Prep, t: &mut DataTree, r: &Request| {
                z += 1;
                err(&run(p, t, r, z).0)
            };
            for path in ["/h", "/s", "/zookeeper/quota/h", "/zookeeper/quota/s"] {
                assert_eq!(step(&mut p, &mut t, &create(path, 0)), 0);
            }
            let limits = |data: &'static str| Request::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: String::new(),
                    data: Some(Bytes::from_static(data.as_bytes())),
                    acl: open_acl_unsafe(),
                    flags: 0,
                },
            };
            for (q, data) in [
                ("h", "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2"),
                ("s", "count=2,bytes=-1"),
            ] {
                let mut r = limits(data);
                if let Request::Create { req, .. } = &mut r {
                    req.path = format!("/zookeeper/quota/{q}/zookeeper_limits");
                }
                assert_eq!(step(&mut p, &mut t, &r), 0);
                let mut r = limits("count=0,bytes=0");
                if let Request::Create { req, .. } = &mut r {
                    req.path = format!("/zookeeper/quota/{q}/zookeeper_stats");
                }
                assert_eq!(step(&mut p, &mut t, &r), 0);
            }
            let refused = if enforce { -125 } else { 0 };
            assert_eq!(step(&mut p, &mut t, &create("/h/1", 0)), 0);
            assert_eq!(step(&mut p, &mut t, &create("/h/2", 0)), refused);
            for i in 1..4 {
                assert_eq!(step(&mut p, &mut t, &create(&format!("/s/{i}"), 0)), 0);
            }
            // A client may write anything into the stats node.
            let stats = "/zookeeper/quota/h/zookeeper_stats";
            let max = set(stats, "count=9223372036854775807,bytes=9223372036854775807");
            assert_eq!(step(&mut p, &mut t, &max), 0);
            // Java's long wraps to Long.MIN_VALUE, which is under any limit.
            assert_eq!(step(&mut p, &mut t, &create("/h/3", 0)), 0);
            let min = set(stats, "count=-9223372036854775808,bytes=x");
            assert_eq!(step(&mut p, &mut t, &min), 0);
            assert_eq!(step(&mut p, &mut t, &create("/h/4", 0)), 0);
            assert_eq!(step(&mut p, &mut t, &create("/h/4/a", 0)), 0);
        }
    }

    /// Requests with several faults at once: the answer is the first fault in
    /// PrepRequestProcessor's order (3.8.4): for create, the flags (`CreateMode.fromFlag`),
    /// TTL without extended types (Unimplemented), the path's slash and NUL
    /// (`validatePathForCreate`), the ACL (`fixupACL`), the parent (NoNode), its CREATE
    /// permission, the full path check, NodeExists, an ephemeral parent; for delete, the
    /// special paths, the parent, its DELETE permission, the node, the version, children;
    /// for setData, the path, the node, WRITE, the version; for setACL, the path, the
    /// ACL, the node, ADMIN, the aversion.
    #[test]
    fn check_order_matches_zookeeper() {
        use crate::proto::records::{DeleteRequest, SetAclRequest, SetDataRequest};
        let mut t = DataTree::new();
        let alice_only = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "digest".into(),
                id: "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=".into(),
            },
        }];
        let open = open_acl_unsafe();
        // /e ephemeral; /locked and its children readable by alice only; /p with a child.
        for (path, acl, owner) in [
            ("/e", &open, 7),
            ("/locked", &alice_only, 0),
            ("/locked/kid", &alice_only, 0),
            ("/locked/kid/grandkid", &alice_only, 0),
            ("/p", &open, 0),
            ("/p/c", &open, 0),
        ] {
            t.create_node(path, Some(b"d"), acl, owner, -1, 1, 1, &mut vec![])
                .unwrap();
        }
        let mut p = Prep::new(PrepSettings::default());
        let with = |path: &str, flags: i32, acl: &[Acl]| Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: None,
                acl: acl.to_vec(),
                flags,
            },
        };
        let bogus = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "bogus".into(),
                id: "x".into(),
            },
        }];
        let delete = |path: &str, version: i32| {
            Request::Delete(DeleteRequest {
                path: path.into(),
                version,
            })
        };
        let set = |path: &str, version: i32| {
            Request::SetData(SetDataRequest {
                path: path.into(),
                data: None,
                version,
            })
        };
        let set_acl = |path: &str, acl: &[Acl], version: i32| {
            Request::SetAcl(SetAclRequest {
                path: path.into(),
                acl: acl.to_vec(),
                version,
            })
        };
        use ErrorCode::*;
        let cases: Vec<(&str, Request, ErrorCode)> = vec![
            (
                "bad flags, bad ACL, no parent",
                with("/missing/x", 9, &bogus),
                BadArguments,
            ),
            (
                "TTL mode, bad ACL, no parent",
                with("/missing/x", 5, &bogus),
                Unimplemented,
            ),
            (
                "NUL in path, bad ACL, no parent",
                with("/missing\0/x", 0, &bogus),
                BadArguments,
            ),
            (
                "bad ACL, no parent",
                with("/missing/x", 0, &bogus),
                InvalidAcl,
            ),
            (
                "trailing slash, no parent",
                with("/nope/bad/", 0, &open),
                NoNode,
            ),
            (
                "double slash, parent \"/p/\" missing",
                with("/p//x", 0, &open),
                NoNode,
            ),
            (
                "no CREATE on the parent, trailing slash",
                with("/locked/", 0, &open),
                NoAuth,
            ),
            (
                "no CREATE on the parent, node exists",
                with("/locked/kid", 0, &open),
                NoAuth,
            ),
            ("node exists", with("/e", 0, &open), NodeExists),
            (
                "ephemeral parent",
                with("/e/x", 1, &open),
                NoChildrenForEphemerals,
            ),
            (
                "special path, wrong version",
                delete("/zookeeper", 5),
                BadArguments,
            ),
            ("no parent, wrong version", delete("/missing/x", 5), NoNode),
            (
                "no DELETE on the parent, children, wrong version",
                delete("/locked/kid", 5),
                NoAuth,
            ),
            ("children, wrong version", delete("/p", 5), BadVersion),
            ("children", delete("/p", -1), NotEmpty),
            ("bad path, no node", set("/missing/", 3), BadArguments),
            ("no WRITE, wrong version", set("/locked", 9), NoAuth),
            (
                "bad path, bad ACL",
                set_acl("/missing/", &bogus, 0),
                BadArguments,
            ),
            (
                "bad ACL, no node",
                set_acl("/missing", &bogus, 0),
                InvalidAcl,
            ),
            (
                "no ADMIN, wrong aversion",
                set_acl("/locked", &open, 9),
                NoAuth,
            ),
        ];
        for (i, (what, req, want)) in cases.into_iter().enumerate() {
            let mut h = hdr(10 + i as i64);
            let (body, _) = p.prepare(&t, &caller(), &req, &mut h);
            assert_eq!(
                body,
                TxnBody::Error(ErrorTxn { err: want.code() }),
                "{what}: {req:?}"
            );
        }
    }

    #[test]
    fn failed_multi_rolls_back_and_marks_later_ops() {
        let mut t = DataTree::new();
        let mut p = Prep::new(PrepSettings::default());
        let ops = vec![
            MultiOp::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: "/m".into(),
                    data: None,
                    acl: open_acl_unsafe(),
                    flags: 0,
                },
            },
            MultiOp::Delete(crate::proto::records::DeleteRequest {
                path: "/nope".into(),
                version: -1,
            }),
            MultiOp::Delete(crate::proto::records::DeleteRequest {
                path: "/m".into(),
                version: -1,
            }),
        ];
        let (b, _) = run(&mut p, &mut t, &Request::Multi(ops), 1);
        match b {
            TxnBody::Multi(v) => {
                assert!(matches!(v[0], TxnBody::Create(_)));
                assert_eq!(
                    v[1],
                    TxnBody::Error(ErrorTxn {
                        err: ErrorCode::NoNode.code()
                    })
                );
                assert_eq!(
                    v[2],
                    TxnBody::Error(ErrorTxn {
                        err: ErrorCode::RuntimeInconsistency.code()
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(!t.contains("/m"));
        assert!(!p.has_outstanding());
    }
}
