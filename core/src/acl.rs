//! ACLs: the reference-counted ACL cache every znode points into, as ZooKeeper's
//! `ReferenceCountedACLCache` keeps it (snapshots store this map, so its ids are part of
//! the on-disk format), and the ids ZooKeeper predefines.

use std::collections::HashMap;
use std::sync::Arc;

use crate::proto::perms;
use crate::proto::records::{Acl, Id};

/// The cache id of "no ACL list given" (`OPEN_UNSAFE_ACL_ID`), read back as world:anyone ALL.
pub const OPEN_UNSAFE_ACL_ID: i64 = -1;

pub fn world_anyone() -> Id {
    Id {
        scheme: "world".into(),
        id: "anyone".into(),
    }
}

/// `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: world_anyone(),
    }]
}

/// `ZooDefs.Ids.READ_ACL_UNSAFE`.
pub fn read_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::READ,
        id: world_anyone(),
    }]
}

/// Interns ACL lists: each distinct list is stored once and znodes hold its id.
#[derive(Debug, Default, Clone)]
pub struct AclCache {
    by_id: HashMap<i64, (Arc<[Acl]>, u64)>,
    by_list: HashMap<Arc<[Acl]>, i64>,
    next_index: i64,
    open: Option<Arc<[Acl]>>,
}

impl AclCache {
    pub fn new() -> Self {
        AclCache::default()
    }

    /// Interns `acls` and counts one more user of it (`convertAcls`).
    pub fn intern(&mut self, acls: &[Acl]) -> i64 {
        if let Some(&id) = self.by_list.get(acls) {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.1 += 1;
            }
            return id;
        }
        self.next_index += 1;
        let id = self.next_index;
        let list: Arc<[Acl]> = acls.into();
        self.by_list.insert(list.clone(), id);
        self.by_id.insert(id, (list, 1));
        id
    }

    /// One user fewer of `id`; the list is forgotten with its last user (`removeUsage`).
    pub fn release(&mut self, id: i64) {
        if id == OPEN_UNSAFE_ACL_ID {
            return;
        }
        let Some(e) = self.by_id.get_mut(&id) else {
            return;
        };
        e.1 = e.1.saturating_sub(1);
        if e.1 == 0 {
            if let Some((list, _)) = self.by_id.remove(&id) {
                self.by_list.remove(&list);
            }
        }
    }

    /// The list behind `id` (`convertLong`). An id missing from the cache reads as an empty
    /// list rather than failing the read; snapshots that load check ids up front.
    pub fn get(&mut self, id: i64) -> Arc<[Acl]> {
        if id == OPEN_UNSAFE_ACL_ID {
            return self
                .open
                .get_or_insert_with(|| open_acl_unsafe().into())
                .clone();
        }
        self.by_id
            .get(&id)
            .map(|e| e.0.clone())
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// Read-only lookup; `None` for an unknown id.
    pub fn lookup(&self, id: i64) -> Option<&[Acl]> {
        self.by_id.get(&id).map(|e| &*e.0)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Entries for a snapshot: (id, list), in id order.
    pub fn entries(&self) -> Vec<(i64, &[Acl])> {
        let mut v: Vec<_> = self.by_id.iter().map(|(k, v)| (*k, &*v.0)).collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// Restores an entry from a snapshot, with no users yet; znodes add theirs as they
    /// load (`ReferenceCountedACLCache.deserialize` + `addUsage`).
    pub fn restore(&mut self, id: i64, acls: Vec<Acl>) {
        let list: Arc<[Acl]> = acls.into();
        self.by_list.insert(list.clone(), id);
        self.by_id.insert(id, (list, 0));
        self.next_index = self.next_index.max(id);
    }

    /// Counts one more user of an already known id (snapshot load).
    pub fn add_usage(&mut self, id: i64) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.1 += 1;
        }
    }

    /// Drops entries no znode uses (`purgeUnused`, after a snapshot load).
    pub fn purge_unused(&mut self) {
        let unused: Vec<i64> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.1 == 0)
            .map(|(k, _)| *k)
            .collect();
        for id in unused {
            if let Some((list, _)) = self.by_id.remove(&id) {
                self.by_list.remove(&list);
            }
        }
    }
}

/// Java's `String.split(sep)` field count: trailing empty fields are dropped.
fn java_split_count(s: &str, sep: char) -> usize {
    let parts: Vec<&str> = s.split(sep).collect();
    let mut n = parts.len();
    while n > 0 && parts[n - 1].is_empty() {
        n -= 1;
    }
    n
}

/// An authentication scheme the server knows (`ProviderRegistry`): `ip` and `digest` are
/// always there, as in ZooKeeper 3.8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ip,
    Digest,
}

impl Provider {
    pub fn for_scheme(scheme: &str) -> Option<Provider> {
        match scheme {
            "ip" => Some(Provider::Ip),
            "digest" => Some(Provider::Digest),
            _ => None,
        }
    }

    /// Whether an id of this scheme names an authenticated user (`isAuthenticated`): the
    /// `auth` ACL pseudo-scheme expands to those ids only.
    pub fn is_authenticated(self) -> bool {
        matches!(self, Provider::Digest)
    }

    /// `isValid`: whether `id` is a well-formed ACL id of this scheme.
    pub fn is_valid(self, id: &str) -> bool {
        match self {
            Provider::Digest => java_split_count(id, ':') == 2,
            Provider::Ip => ip_acl_parse(id).is_some(),
        }
    }

    /// `matches`: whether the client id `auth_id` satisfies the ACL id `acl_id`.
    pub fn matches(self, auth_id: &str, acl_id: &str) -> bool {
        match self {
            Provider::Digest => auth_id == acl_id,
            Provider::Ip => {
                let Some((net, bits)) = ip_acl_parse(acl_id) else {
                    return false;
                };
                let Some(addr) = v4(auth_id) else {
                    return false;
                };
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                (addr & mask) == (net & mask)
            }
        }
    }
}

/// A dotted IPv4 address as `IPAuthenticationProvider` reads it (four decimal fields).
fn v4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        let n: i64 = p.parse().ok()?;
        if !(0..=255).contains(&n) {
            return None;
        }
        v = (v << 8) | n as u32;
    }
    Some(v)
}

/// `addr[/bits]`.
fn ip_acl_parse(id: &str) -> Option<(u32, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    let net = v4(addr)?;
    let bits = match bits {
        None => 32,
        Some(b) => {
            let b: i64 = b.parse().ok()?;
            if !(0..=32).contains(&b) {
                return None;
            }
            b as u32
        }
    };
    Some((net, bits))
}

/// `ZooKeeperServer.checkACL`: whether ids `auth` may do `perm` on a node with `acl`.
pub fn check_acl(acl: &[Acl], perm: i32, auth: &[Id], skip_acl: bool) -> bool {
    if skip_acl || acl.is_empty() {
        return true;
    }
    if auth.iter().any(|a| a.scheme == "super") {
        return true;
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return true;
        }
        if let Some(p) = Provider::for_scheme(&a.id.scheme) {
            if auth
                .iter()
                .any(|x| x.scheme == a.id.scheme && p.matches(&x.id, &a.id.id))
            {
                return true;
            }
        }
    }
    false
}

/// `PrepRequestProcessor.fixupACL`: drops duplicates, expands `auth` to the client's
/// authenticated ids, and refuses an empty list, an unknown scheme or a malformed id.
pub fn fixup_acl(acls: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, crate::proto::ErrorCode> {
    use crate::proto::ErrorCode::InvalidAcl;
    let mut uniq: Vec<&Acl> = Vec::with_capacity(acls.len());
    for a in acls {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(InvalidAcl);
    }
    let mut out = Vec::with_capacity(uniq.len());
    for a in uniq {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for cid in auth {
                if Provider::for_scheme(&cid.scheme).is_some_and(|p| p.is_authenticated()) {
                    any = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: cid.clone(),
                    });
                }
            }
            if !any {
                return Err(InvalidAcl);
            }
        } else {
            match Provider::for_scheme(&a.id.scheme) {
                Some(p) if p.is_valid(&a.id.id) => out.push(a.clone()),
                _ => return Err(InvalidAcl),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str, i: &str) -> Id {
        Id {
            scheme: s.into(),
            id: i.into(),
        }
    }

    #[test]
    fn acl_checks_follow_zookeeper() {
        let acl = vec![
            Acl {
                perms: perms::READ,
                id: id("ip", "10.0.0.0/8"),
            },
            Acl {
                perms: perms::ALL,
                id: id("digest", "u:hash"),
            },
        ];
        assert!(check_acl(&acl, perms::READ, &[id("ip", "10.1.2.3")], false));
        assert!(!check_acl(
            &acl,
            perms::WRITE,
            &[id("ip", "10.1.2.3")],
            false
        ));
        assert!(!check_acl(
            &acl,
            perms::READ,
            &[id("ip", "11.1.2.3")],
            false
        ));
        assert!(check_acl(
            &acl,
            perms::WRITE,
            &[id("digest", "u:hash")],
            false
        ));
        assert!(check_acl(&acl, perms::WRITE, &[id("super", "")], false));
        assert!(check_acl(&acl, perms::WRITE, &[], true));
        assert!(check_acl(&[], perms::WRITE, &[], false));
    }

    #[test]
    fn fixup_expands_auth_and_refuses_bad_ids() {
        let auth = vec![id("ip", "127.0.0.1"), id("digest", "u:h")];
        let got = fixup_acl(
            &[Acl {
                perms: 31,
                id: id("auth", ""),
            }],
            &auth,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![Acl {
                perms: 31,
                id: id("digest", "u:h")
            }]
        );
        assert!(fixup_acl(
            &[Acl {
                perms: 31,
                id: id("auth", "")
            }],
            &auth[..1]
        )
        .is_err());
        assert!(fixup_acl(&[], &auth).is_err());
        assert!(fixup_acl(
            &[Acl {
                perms: 31,
                id: id("world", "x")
            }],
            &auth
        )
        .is_err());
        assert!(fixup_acl(
            &[Acl {
                perms: 31,
                id: id("digest", "nocolon")
            }],
            &auth
        )
        .is_err());
        assert!(fixup_acl(
            &[Acl {
                perms: 31,
                id: id("ip", "1.2.3.4/33")
            }],
            &auth
        )
        .is_err());
        let dup = Acl {
            perms: 1,
            id: id("ip", "1.2.3.4"),
        };
        assert_eq!(
            fixup_acl(&[dup.clone(), dup.clone()], &auth).unwrap(),
            vec![dup]
        );
    }

    #[test]
    fn identical_lists_share_an_id_until_the_last_user_goes() {
        let mut c = AclCache::new();
        let a = c.intern(&open_acl_unsafe());
        let b = c.intern(&open_acl_unsafe());
        assert_eq!(a, 1);
        assert_eq!(a, b);
        let r = c.intern(&read_acl_unsafe());
        assert_eq!(r, 2);
        c.release(a);
        assert_eq!(&*c.get(a), &open_acl_unsafe()[..]);
        c.release(a);
        assert!(c.lookup(a).is_none());
        assert_eq!(c.intern(&open_acl_unsafe()), 3, "indexes are never reused");
        assert_eq!(&*c.get(OPEN_UNSAFE_ACL_ID), &open_acl_unsafe()[..]);
    }
}
