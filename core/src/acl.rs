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

static OPEN_ACL_UNSAFE: std::sync::LazyLock<Vec<Acl>> = std::sync::LazyLock::new(open_acl_unsafe);

/// A list that grants no permission to anyone (every check of it fails): what an ACL id
/// missing from the cache stands for where a list must be produced.
fn grants_nothing() -> Vec<Acl> {
    vec![Acl {
        perms: 0,
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

    /// The list behind `id` for filtering watch events. An id the cache does not hold
    /// (a damaged or foreign snapshot) reads as a list that grants nothing to anyone: an
    /// unknown id must never open a znode (`convertLong` throws rather than guess).
    pub fn get(&mut self, id: i64) -> Arc<[Acl]> {
        if id == OPEN_UNSAFE_ACL_ID {
            return self
                .open
                .get_or_insert_with(|| open_acl_unsafe().into())
                .clone();
        }
        match self.by_id.get(&id) {
            Some(e) => e.0.clone(),
            None => {
                tracing::error!(acl = id, "ACL not available for long {id}");
                Arc::from(grants_nothing())
            }
        }
    }

    /// The list behind `id` (`convertLong`): world:anyone ALL for [`OPEN_UNSAFE_ACL_ID`],
    /// `None` for an id the cache does not hold. Callers refuse the request then, as
    /// ZooKeeper's "Failed to fetch acls" does; they never treat the znode as open.
    pub fn lookup(&self, id: i64) -> Option<&[Acl]> {
        if id == OPEN_UNSAFE_ACL_ID {
            return Some(&OPEN_ACL_UNSAFE[..]);
        }
        self.by_id.get(&id).map(|e| &*e.0)
    }

    /// The list stored under `id`, as a snapshot's ACL map holds it: `None` for an unknown
    /// id and for [`OPEN_UNSAFE_ACL_ID`], which ZooKeeper's map never holds.
    pub fn stored(&self, id: i64) -> Option<&[Acl]> {
        self.by_id.get(&id).map(|e| &*e.0)
    }

    /// Whether `id` names a list (or is [`OPEN_UNSAFE_ACL_ID`]).
    pub fn knows(&self, id: i64) -> bool {
        id == OPEN_UNSAFE_ACL_ID || self.by_id.contains_key(&id)
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

/// An authentication scheme the server knows (`ProviderRegistry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `IPAuthenticationProvider`, always registered.
    Ip,
    /// `DigestAuthenticationProvider`, registered unless
    /// `zookeeper.DigestAuthenticationProvider.enabled=false`.
    Digest,
    /// `SASLAuthenticationProvider`, registered only when an `authProvider.N` names it.
    Sasl,
}

impl Provider {
    /// Whether an id of this scheme names an authenticated user (`isAuthenticated`): the
    /// `auth` ACL pseudo-scheme expands to those ids only.
    pub fn is_authenticated(self) -> bool {
        matches!(self, Provider::Digest | Provider::Sasl)
    }

    /// `isValid`: whether `id` is a well-formed ACL id of this scheme.
    pub fn is_valid(self, id: &str) -> bool {
        match self {
            Provider::Digest => java_split_count(id, ':') == 2,
            Provider::Ip => ip_acl_parse(id).is_some(),
            Provider::Sasl => is_kerberos_name(id),
        }
    }
}

/// The class names `zookeeper.authProvider.*` may give (ZooKeeper instantiates the class;
/// geokeeper knows these).
const IP_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.IPAuthenticationProvider";
const DIGEST_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.DigestAuthenticationProvider";
const SASL_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

/// The providers a server has registered, as ZooKeeper's `ProviderRegistry` builds them
/// from system properties: `ip` always, `digest` unless disabled, and one more per
/// `zookeeper.authProvider.<anything>` property naming a provider class. Only these
/// schemes can appear in new ACLs, be matched by an ACL check or be given to `addauth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProviders {
    pub digest: bool,
    pub sasl: bool,
    /// `zookeeper.letAnySaslUserDoX`: a `sasl` ACL entry with this id matches every SASL
    /// user (`SASLAuthenticationProvider.matches`).
    pub any_sasl_user: Option<String>,
}

impl Default for AuthProviders {
    /// ZooKeeper's registry with no properties set: `ip` and `digest`.
    fn default() -> Self {
        AuthProviders {
            digest: true,
            sasl: false,
            any_sasl_user: None,
        }
    }
}

impl AuthProviders {
    /// Builds the registry from Java system properties (`ProviderRegistry.initialize`).
    /// Returns the registry and a warning for each provider class geokeeper cannot load,
    /// which ZooKeeper logs (`Problems loading <class>`) and skips.
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (AuthProviders, Vec<String>) {
        let mut reg = AuthProviders::default();
        let mut warnings = Vec::new();
        for (key, value) in props {
            if key == "zookeeper.DigestAuthenticationProvider.enabled" {
                // `Boolean.parseBoolean`: only a case-insensitive "true" keeps it on.
                reg.digest = value.eq_ignore_ascii_case("true");
            } else if key == "zookeeper.letAnySaslUserDoX" {
                reg.any_sasl_user = Some(value.to_owned());
            } else if key.starts_with("zookeeper.authProvider.") {
                match value.trim() {
                    SASL_PROVIDER_CLASS => reg.sasl = true,
                    // Already there: registering them again changes nothing.
                    IP_PROVIDER_CLASS | DIGEST_PROVIDER_CLASS => {}
                    other => warnings.push(format!(
                        "Problems loading {other}: geokeeper knows only the ip, digest and sasl authentication providers ({key})"
                    )),
                }
            }
        }
        (reg, warnings)
    }

    /// The provider of `scheme`, if registered (`ProviderRegistry.getProvider`).
    pub fn get(&self, scheme: &str) -> Option<Provider> {
        match scheme {
            "ip" => Some(Provider::Ip),
            "digest" if self.digest => Some(Provider::Digest),
            "sasl" if self.sasl => Some(Provider::Sasl),
            _ => None,
        }
    }

    /// The registered schemes as ZooKeeper's `listProviders` prints them (each followed
    /// by a space), for the log line of a refused `addauth`.
    pub fn list(&self) -> String {
        let mut s = String::from("ip ");
        if self.digest {
            s.push_str("digest ");
        }
        if self.sasl {
            s.push_str("sasl ");
        }
        s
    }

    /// `matches`: whether the client id `auth_id` satisfies the ACL id `acl_id`.
    pub fn matches(&self, p: Provider, auth_id: &str, acl_id: &str) -> bool {
        match p {
            Provider::Digest => auth_id == acl_id,
            Provider::Ip => ip_matches(auth_id, acl_id),
            Provider::Sasl => {
                auth_id == "super"
                    || auth_id == acl_id
                    || self.any_sasl_user.as_deref() == Some(acl_id)
            }
        }
    }

    /// The user name `whoAmI` reports for an id (`AuthUtil.getUser`): the provider's
    /// `getUserName`, or empty when no provider is registered for the scheme (`super`,
    /// and `sasl` without `SASLAuthenticationProvider`).
    pub fn user_name(&self, id: &Id) -> String {
        match self.get(&id.scheme) {
            Some(Provider::Digest) => id.id.split(':').next().unwrap_or("").to_owned(),
            Some(Provider::Ip | Provider::Sasl) => id.id.clone(),
            None => String::new(),
        }
    }
}

/// The `ip` id of a connection from `addr`, written as Java's `getHostAddress` writes it
/// (ZooKeeper adds it to every connection): dotted quad for IPv4, including IPv4-mapped
/// IPv6 peers (Java hands those out as IPv4 addresses), and for IPv6 the eight groups in
/// lowercase hex without zero compression (`0:0:0:0:0:0:0:1`).
pub fn ip_id(addr: std::net::IpAddr) -> String {
    match addr.to_canonical() {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => {
            let groups: Vec<String> = a.segments().iter().map(|g| format!("{g:x}")).collect();
            groups.join(":")
        }
    }
}

/// `new KerberosName(id)` does not throw: the id is `service[/host]@realm` with no other
/// `/` or `@`, or it holds no `@` at all.
fn is_kerberos_name(id: &str) -> bool {
    let Some((principal, realm)) = id.split_once('@') else {
        return true;
    };
    if realm.contains(['@', '/']) {
        return false;
    }
    principal
        .split_once('/')
        .is_none_or(|(_, host)| !host.contains('/'))
}

/// Java's `Integer.parseInt`, for the decimal fields of ip ACLs: an optional sign, then
/// ASCII digits (leading zeros allowed), within `i32`.
fn java_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = s.parse().ok()?;
    i32::try_from(v).ok().map(i64::from)
}

/// A dotted IPv4 address as `IPAuthenticationProvider` reads it (four decimal fields).
fn v4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        let n = java_parse_int(p)?;
        if !(0..=255).contains(&n) {
            return None;
        }
        v = (v << 8) | n as u32;
    }
    Some(v)
}

/// An address in an ip ACL or a connection's ip id: IPv4 as ZooKeeper 3.8 reads it or,
/// a geokeeper extension (3.8 refuses them with InvalidACL), an IPv6 literal in any
/// standard form (`::1`, `fe80::1:2`, `0:0:0:0:0:0:0:1`, `::ffff:10.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpValue {
    V4(u32),
    V6(u128),
}

impl IpValue {
    fn parse(s: &str) -> Option<IpValue> {
        if let Some(a) = v4(s) {
            return Some(IpValue::V4(a));
        }
        s.parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| IpValue::V6(u128::from(a)))
    }

    fn bits(self) -> u32 {
        match self {
            IpValue::V4(_) => 32,
            IpValue::V6(_) => 128,
        }
    }
}

/// `addr[/bits]`, bits within the address length.
fn ip_acl_parse(id: &str) -> Option<(IpValue, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    let net = IpValue::parse(addr)?;
    let bits = match bits {
        None => net.bits(),
        Some(b) => {
            let b = java_parse_int(b)?;
            if !(0..=i64::from(net.bits())).contains(&b) {
                return None;
            }
            b as u32
        }
    };
    Some((net, bits))
}

/// `IPAuthenticationProvider.matches`: both addresses masked to the ACL's prefix length,
/// then compared. An address of the other family never matches.
fn ip_matches(auth_id: &str, acl_id: &str) -> bool {
    let Some((net, bits)) = ip_acl_parse(acl_id) else {
        return false;
    };
    match (net, IpValue::parse(auth_id)) {
        (IpValue::V4(n), Some(IpValue::V4(a))) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            a & mask == n & mask
        }
        (IpValue::V6(n), Some(IpValue::V6(a))) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            a & mask == n & mask
        }
        _ => false,
    }
}

/// `ZooKeeperServer.checkACL`: whether ids `auth` may do `perm` on a node with `acl`.
/// Only entries whose scheme has a registered provider can match.
pub fn check_acl(
    providers: &AuthProviders,
    acl: &[Acl],
    perm: i32,
    auth: &[Id],
    skip_acl: bool,
) -> bool {
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
        if let Some(p) = providers.get(&a.id.scheme) {
            if auth
                .iter()
                .any(|x| x.scheme == a.id.scheme && providers.matches(p, &x.id, &a.id.id))
            {
                return true;
            }
        }
    }
    false
}

/// `PrepRequestProcessor.fixupACL`: drops duplicates, expands `auth` to the client's
/// authenticated ids, and refuses an empty list, an unknown scheme or a malformed id.
pub fn fixup_acl(
    providers: &AuthProviders,
    acls: &[Acl],
    auth: &[Id],
) -> Result<Vec<Acl>, crate::proto::ErrorCode> {
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
                // Ids without a registered provider (`super`, `sasl` without
                // SASLAuthenticationProvider) are skipped, as ZooKeeper skips them.
                if providers
                    .get(&cid.scheme)
                    .is_some_and(|p| p.is_authenticated())
                {
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
            match providers.get(&a.id.scheme) {
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

    const P: AuthProviders = AuthProviders {
        digest: true,
        sasl: false,
        any_sasl_user: None,
    };

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
        assert!(check_acl(
            &P,
            &acl,
            perms::READ,
            &[id("ip", "10.1.2.3")],
            false
        ));
        assert!(!check_acl(
            &P,
            &acl,
            perms::WRITE,
            &[id("ip", "10.1.2.3")],
            false
        ));
        assert!(!check_acl(
            &P,
            &acl,
            perms::READ,
            &[id("ip", "11.1.2.3")],
            false
        ));
        assert!(check_acl(
            &P,
            &acl,
            perms::WRITE,
            &[id("digest", "u:hash")],
            false
        ));
        assert!(check_acl(&P, &acl, perms::WRITE, &[id("super", "")], false));
        assert!(check_acl(&P, &acl, perms::WRITE, &[], true));
        assert!(check_acl(&P, &[], perms::WRITE, &[], false));
    }

    #[test]
    fn fixup_expands_auth_and_refuses_bad_ids() {
        let auth = vec![id("ip", "127.0.0.1"), id("digest", "u:h")];
        let got = fixup_acl(
            &P,
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
            &P,
            &[Acl {
                perms: 31,
                id: id("auth", "")
            }],
            &auth[..1]
        )
        .is_err());
        assert!(fixup_acl(&P, &[], &auth).is_err());
        assert!(fixup_acl(
            &P,
            &[Acl {
                perms: 31,
                id: id("world", "x")
            }],
            &auth
        )
        .is_err());
        assert!(fixup_acl(
            &P,
            &[Acl {
                perms: 31,
                id: id("digest", "nocolon")
            }],
            &auth
        )
        .is_err());
        assert!(fixup_acl(
            &P,
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
            fixup_acl(&P, &[dup.clone(), dup.clone()], &auth).unwrap(),
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

    fn acl(perms: i32, scheme: &str, i: &str) -> Acl {
        Acl {
            perms,
            id: id(scheme, i),
        }
    }

    #[test]
    fn ip_ids_parse_as_integer_parse_int_reads_them() {
        // Verified on 3.8.0: `127.0.0.1/8` and `-0.0.0.0` are valid; 3.8's parser takes
        // signs and leading zeros, not empty fields or bits.
        for ok in [
            "127.0.0.1",
            "127.0.0.1/8",
            "-0.0.0.0",
            "+1.02.003.4",
            "0.0.0.0/0",
            "1.2.3.4/32",
        ] {
            assert!(Provider::Ip.is_valid(ok), "{ok}");
        }
        for bad in [
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.256",
            "1.2.3.4/",
            "1.2.3.4/33",
            "1.2.3.4/-1",
            "a.b.c.d",
            "1..3.4",
            "1.2.3.4/8/8",
            "",
        ] {
            assert!(!Provider::Ip.is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn ip_acls_match_cidr_ranges() {
        let m = |client: &str, acl: &str| P.matches(Provider::Ip, client, acl);
        assert!(m("127.0.0.1", "127.0.0.1"));
        assert!(!m("127.0.0.2", "127.0.0.1"));
        assert!(m("127.200.3.4", "127.0.0.0/8"));
        assert!(m("127.200.3.4", "127.255.255.255/8"));
        assert!(!m("128.0.0.1", "127.0.0.0/8"));
        assert!(m("10.1.2.3", "0.0.0.0/0"));
        assert!(m("10.1.2.3", "10.1.2.0/23"));
        assert!(m("10.1.3.3", "10.1.2.0/23"));
        assert!(!m("10.1.4.3", "10.1.2.0/23"));
        assert!(!m("10.1.2.3", "1.2.3.4/33"));
    }

    #[test]
    fn ip_acls_accept_ipv6_as_an_extension() {
        // ZooKeeper 3.8 refuses these with InvalidACL; geokeeper accepts and matches them.
        for ok in [
            "::1",
            "::1/128",
            "fe80::/10",
            "2001:db8::/32",
            "0:0:0:0:0:0:0:1",
            "::ffff:10.0.0.1",
            "::/0",
        ] {
            assert!(Provider::Ip.is_valid(ok), "{ok}");
        }
        for bad in ["::1/129", "::1/", "fe80::1%eth0", "[::1]", ":::1", "::1/-1"] {
            assert!(!Provider::Ip.is_valid(bad), "{bad}");
        }
        let m = |client: &str, acl: &str| P.matches(Provider::Ip, client, acl);
        let v6 = ip_id("::1".parse().unwrap());
        assert_eq!(v6, "0:0:0:0:0:0:0:1");
        assert!(m(&v6, "::1"));
        assert!(m(&v6, "::/0"));
        assert!(!m(&v6, "::2"));
        assert!(!m(&v6, "0.0.0.0/0"), "families never match each other");
        assert!(!m("127.0.0.1", "::/0"));
        let link = ip_id("fe80::abcd:1".parse().unwrap());
        assert_eq!(link, "fe80:0:0:0:0:0:abcd:1");
        assert!(m(&link, "fe80::/10"));
        assert!(m(&link, "fe80::abcd:0/112"));
        assert!(!m(&link, "fe80::abce:0/112"));
        assert!(!m("2001:db9::1", "2001:db8::/32"));
        assert!(m("2001:db8:ffff::1", "2001:db8::/32"));
    }

    #[test]
    fn ipv4_mapped_peers_get_an_ipv4_id() {
        assert_eq!(ip_id("::ffff:127.0.0.1".parse().unwrap()), "127.0.0.1");
        assert_eq!(ip_id("10.0.0.7".parse().unwrap()), "10.0.0.7");
    }

    #[test]
    fn sasl_is_a_scheme_only_when_its_provider_is_registered() {
        let with_sasl = AuthProviders { sasl: true, ..P };
        let acls = [acl(31, "sasl", "bob")];
        assert_eq!(
            fixup_acl(&P, &acls, &[]),
            Err(crate::proto::ErrorCode::InvalidAcl)
        );
        assert_eq!(fixup_acl(&with_sasl, &acls, &[]).unwrap(), acls.to_vec());
        // Kerberos name syntax decides validity.
        for ok in ["bob", "a/b/c", "u/h@R", "zk@EXAMPLE.COM", "@"] {
            assert!(Provider::Sasl.is_valid(ok), "{ok}");
        }
        for bad in ["a@b@c", "a/b/c@R", "a@b/c"] {
            assert!(!Provider::Sasl.is_valid(bad), "{bad}");
        }
        let bob = [id("ip", "127.0.0.1"), id("sasl", "bob")];
        assert!(check_acl(&with_sasl, &acls, perms::READ, &bob, false));
        assert!(
            !check_acl(&P, &acls, perms::READ, &bob, false),
            "no provider, no match"
        );
        let carol = [id("sasl", "carol")];
        assert!(!check_acl(&with_sasl, &acls, perms::READ, &carol, false));
        // A SASL user named "super" matches every sasl entry; letAnySaslUserDoX names an
        // ACL id that every SASL user matches.
        assert!(check_acl(
            &with_sasl,
            &acls,
            perms::READ,
            &[id("sasl", "super")],
            false
        ));
        let any = AuthProviders {
            any_sasl_user: Some("anyone-sasl".into()),
            ..with_sasl.clone()
        };
        let open = [acl(1, "sasl", "anyone-sasl")];
        assert!(check_acl(&any, &open, perms::READ, &carol, false));
        assert!(!check_acl(&with_sasl, &open, perms::READ, &carol, false));
        // `auth` expands to the sasl id only when the provider is registered.
        let auth = [acl(31, "auth", "")];
        assert_eq!(
            fixup_acl(&with_sasl, &auth, &bob).unwrap(),
            vec![acl(31, "sasl", "bob")]
        );
        assert!(fixup_acl(&P, &auth, &bob).is_err());
    }

    #[test]
    fn the_registry_follows_the_properties() {
        let (reg, warnings) = AuthProviders::from_properties([
            (
                "zookeeper.authProvider.1",
                "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
            ),
            ("zookeeper.authProvider.sasl2", "com.example.Nope"),
            ("zookeeper.DigestAuthenticationProvider.enabled", "false"),
            ("zookeeper.letAnySaslUserDoX", "x"),
        ]);
        assert!(reg.sasl && !reg.digest);
        assert_eq!(reg.any_sasl_user.as_deref(), Some("x"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("com.example.Nope"));
        assert_eq!(reg.get("digest"), None);
        assert_eq!(reg.list(), "ip sasl ");
        assert_eq!(AuthProviders::default().list(), "ip digest ");
        assert_eq!(
            AuthProviders::from_properties([]).0,
            AuthProviders::default()
        );
    }

    #[test]
    fn who_am_i_names_users_through_their_provider() {
        let with_sasl = AuthProviders { sasl: true, ..P };
        assert_eq!(P.user_name(&id("digest", "bob:hash=")), "bob");
        assert_eq!(P.user_name(&id("ip", "127.0.0.1")), "127.0.0.1");
        assert_eq!(P.user_name(&id("super", "")), "");
        // Verified on 3.8.0: without SASLAuthenticationProvider the sasl id has no user.
        assert_eq!(P.user_name(&id("sasl", "bob")), "");
        assert_eq!(with_sasl.user_name(&id("sasl", "bob")), "bob");
    }
}
