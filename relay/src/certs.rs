//! Development certificates for the relay's mutual TLS (`geokeeper certs`): a cluster CA
//! and, for each relay node, a certificate naming its identity (the URI SAN
//! `geokeeper://relay/room/<room>/node/<id>` that [`crate::quic`] checks) and the host
//! names and addresses it is reached by, written as the PEM stores
//! [`RelayTls::from_pem_files`](crate::quic::RelayTls::from_pem_files) reads. Examples and
//! tests need no outside tools; production deployments point at their own PEM files.
//!
//! The directory's layout:
//! - `ca.pem`: the CA certificate, every node's trust store;
//! - `ca-key.pem` (mode 0600): the CA's key, kept so that a later run adds nodes to the
//!   same cluster: when both files are there, they are reused, never replaced;
//! - `<name>.pem` (mode 0600): a node's key store, its private key then its certificate
//!   (ZooKeeper's PEM key store layout, the one `load_pem_stores` reads).
//!
//! A relay node both accepts (publisher) and connects (subscriber), so each certificate is
//! valid for server and client authentication alike.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::quic::Identity;

/// The trust store's file name.
pub const TRUST_STORE: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY: &str = "ca-key.pem";
/// The names a node's certificate carries when none are given: a cluster on one machine.
pub const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// A new CA's validity, in days (ten years: it outlives many rounds of node certificates).
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// A node certificate's validity, in days.
pub const DEFAULT_NODE_DAYS: u32 = 365;

/// The longest validity: a hundred years, far inside X.509's dates (up to the year 9999).
pub const MAX_DAYS: u32 = 36_500;

/// Certificates are valid from an hour ago: another machine's clock a little behind ours
/// must not see them as not yet valid.
const BACKDATE: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// One relay node to issue a certificate for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The key store's file name without `.pem`.
    pub name: String,
    pub identity: Identity,
    /// DNS names and IP addresses for the certificate's SANs: whatever peers pass to
    /// `connect()` as the server name.
    pub hosts: Vec<String>,
}

impl NodeSpec {
    /// A node with the [`DEFAULT_HOSTS`].
    pub fn new(name: &str, node: u64, room: &str) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            identity: Identity {
                room: room.to_owned(),
                node,
            },
            hosts: DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect(),
        }
    }

    /// Adds host names or addresses not already there.
    pub fn add_hosts<S: AsRef<str>>(&mut self, hosts: &[S]) {
        for h in hosts {
            let h = h.as_ref();
            if !self.hosts.iter().any(|x| x == h) {
                self.hosts.push(h.to_owned());
            }
        }
    }

    /// Why this node cannot be issued a certificate, if it cannot.
    fn check(&self) -> Result<(), String> {
        let n = &self.name;
        let name_ok = !n.is_empty()
            && n.len() <= 64
            && !n.starts_with(['.', '-'])
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(format!(
                "node name {n:?}: up to 64 letters, digits, '-', '_' or '.', not starting with '.' or '-' (it names the file {n}.pem)"
            ));
        }
        let file = format!("{n}.pem");
        if file == TRUST_STORE || file == CA_KEY {
            return Err(format!(
                "node name {n:?} is taken: {file} is the CA's own file"
            ));
        }
        // The relay's own reading of the URI SAN decides what a valid room is.
        if Identity::from_uri(&self.identity.uri()).as_ref() != Some(&self.identity) {
            return Err(format!(
                "node {n:?}: room {:?} must be letters, digits, '-', '_' or '.'",
                self.identity.room
            ));
        }
        if self.hosts.is_empty() {
            return Err(format!(
                "node {n:?}: no hosts; a relay node is also a server and its certificate must name the host peers connect to"
            ));
        }
        for h in &self.hosts {
            san_for_host(h).map_err(|why| format!("node {n:?}: {why}"))?;
        }
        Ok(())
    }
}

/// `NAME=ID@ROOM`, the command line's form, with the [`DEFAULT_HOSTS`].
impl FromStr for NodeSpec {
    type Err = CertError;

    fn from_str(s: &str) -> Result<NodeSpec, CertError> {
        let bad = |why: &str| {
            CertError::Invalid(format!(
                "{s:?}: {why} (expected NAME=ID@ROOM, e.g. leader=1@A)"
            ))
        };
        let (name, rest) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (id, room) = rest.rsplit_once('@').ok_or_else(|| bad("no '@'"))?;
        let id = id
            .parse::<u64>()
            .map_err(|_| bad("the node id is not a number"))?;
        let spec = NodeSpec::new(name, id, room);
        spec.check().map_err(CertError::Invalid)?;
        Ok(spec)
    }
}

/// The SAN for a host: an IP address (bracketed IPv6 accepted) or a DNS name.
fn san_for_host(host: &str) -> Result<SanType, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // rustls is what checks the name at connect time: refuse here what it would refuse there.
    match ServerName::try_from(host) {
        Ok(ServerName::DnsName(_)) => host
            .try_into()
            .map(SanType::DnsName)
            .map_err(|e| format!("host {host:?}: {e}")),
        _ => Err(format!(
            "host {host:?} is neither a DNS name nor an IP address"
        )),
    }
}

/// A topology file: the nodes of a cluster, one `[[node]]` table each.
///
/// ```toml
/// [[node]]
/// name = "leader"        # leader.pem
/// id = 1
/// room = "A"
/// hosts = ["127.0.0.1", "localhost"]   # optional; DEFAULT_HOSTS when left out
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub nodes: Vec<NodeSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    #[serde(default)]
    node: Vec<NodeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    name: String,
    id: u64,
    room: String,
    hosts: Option<Vec<String>>,
}

impl Topology {
    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> Result<Topology, CertError> {
        let text = fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        Topology::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a topology; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Topology, CertError> {
        let err = |why: String| CertError::Topology {
            file: file.to_owned(),
            why,
        };
        let parsed: TopologyFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if parsed.node.is_empty() {
            return Err(err("no [[node]] table".into()));
        }
        let mut nodes = Vec::with_capacity(parsed.node.len());
        for (i, n) in parsed.node.into_iter().enumerate() {
            let mut spec = NodeSpec::new(&n.name, n.id, &n.room);
            if let Some(hosts) = n.hosts {
                spec.hosts = hosts;
            }
            spec.check()
                .map_err(|why| err(format!("[[node]] #{}: {why}", i + 1)))?;
            nodes.push(spec);
        }
        let topology = Topology { nodes };
        check_distinct(&topology.nodes).map_err(|e| err(e.to_string()))?;
        Ok(topology)
    }
}

/// Validity periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// A new CA's validity (a reused CA keeps its own).
    pub ca_days: u32,
    /// Each node certificate's, cut short at the CA's end.
    pub node_days: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ca_days: DEFAULT_CA_DAYS,
            node_days: DEFAULT_NODE_DAYS,
        }
    }
}

/// What [`issue`] did.
#[derive(Debug)]
pub struct Summary {
    /// `ca.pem`, the trust store every node is given.
    pub trust_store: PathBuf,
    /// The CA's common name.
    pub ca_name: String,
    /// Whether the CA was found in the directory (and nodes were added to it).
    pub ca_reused: bool,
    /// Every file written, in order.
    pub written: Vec<Written>,
}

/// One file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub kind: WrittenKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenKind {
    /// The CA certificate (a new CA).
    TrustStore { ca_name: String, days: u32 },
    /// The CA's private key.
    CaKey,
    /// A node's private key and certificate.
    KeyStore {
        identity: Identity,
        hosts: Vec<String>,
        days: u32,
    },
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            WrittenKind::TrustStore { ca_name, days } => write!(
                f,
                "{path}: trust store, the CA certificate \"{ca_name}\" (valid {days} days)"
            ),
            WrittenKind::CaKey => write!(
                f,
                "{path}: the CA's private key (mode 0600; keep it to add nodes later, deploy it nowhere)"
            ),
            WrittenKind::KeyStore {
                identity,
                hosts,
                days,
            } => write!(
                f,
                "{path}: key store of {identity} ({}, {}; valid {days} days)",
                identity.uri(),
                hosts.join(", ")
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A node, host or option that cannot be issued.
    #[error("{0}")]
    Invalid(String),
    #[error("{file}: {why}")]
    Topology { file: String, why: String },
    /// An existing CA that cannot be used.
    #[error("{path}: {why}")]
    Ca { path: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io_err(path: &Path, source: io::Error) -> CertError {
    CertError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn ca_err(path: &Path, why: impl fmt::Display) -> CertError {
    CertError::Ca {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Two nodes with one file or one identity would make one of them unusable.
fn check_distinct(nodes: &[NodeSpec]) -> Result<(), CertError> {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for n in nodes {
        if !names.insert(&n.name) {
            return Err(CertError::Invalid(format!(
                "node name {:?} is given twice",
                n.name
            )));
        }
        if !ids.insert(&n.identity) {
            return Err(CertError::Invalid(format!(
                "{} is given twice (node {:?})",
                n.identity, n.name
            )));
        }
    }
    Ok(())
}

/// The CA that signs, its name and its end of validity.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    name: String,
    not_after: SystemTime,
}

/// Issues a certificate for each node into `dir` (created if missing), signed by the CA
/// found there (`ca.pem` and `ca-key.pem`) or by a new one. Node key stores already there
/// are replaced. Everything is checked before anything is written.
pub fn issue(dir: &Path, nodes: &[NodeSpec], opts: &Options) -> Result<Summary, CertError> {
    for n in nodes {
        n.check().map_err(CertError::Invalid)?;
    }
    check_distinct(nodes)?;
    for days in [opts.ca_days, opts.node_days] {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(CertError::Invalid(format!(
                "a validity of {days} days: give 1 to {MAX_DAYS}"
            )));
        }
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let trust_store = dir.join(TRUST_STORE);
    let ca_key = dir.join(CA_KEY);
    let now = SystemTime::now();
    let mut written = Vec::new();

    let have_cert = trust_store
        .try_exists()
        .map_err(|e| io_err(&trust_store, e))?;
    let have_key = ca_key.try_exists().map_err(|e| io_err(&ca_key, e))?;
    let (ca, ca_reused) = match (have_cert, have_key) {
        (true, true) => {
            let ca = load_ca(&trust_store, &ca_key, now)?;
            debug!(
                "adding to the CA \"{}\" of {}",
                ca.name,
                trust_store.display()
            );
            (ca, true)
        }
        (false, false) => {
            let (ca, cert_pem, key_pem) = new_ca(now, opts.ca_days)?;
            // The key first: a crash between the two leaves a key with no certificate,
            // refused by the next run, never a trust store nobody can sign for.
            write_file(&ca_key, key_pem.as_bytes(), true)?;
            written.push(Written {
                path: ca_key.clone(),
                kind: WrittenKind::CaKey,
            });
            write_file(&trust_store, cert_pem.as_bytes(), false)?;
            written.push(Written {
                path: trust_store.clone(),
                kind: WrittenKind::TrustStore {
                    ca_name: ca.name.clone(),
                    days: opts.ca_days,
                },
            });
            (ca, false)
        }
        // Never replace half a CA: the nodes issued by it would silently stop trusting
        // the ones issued now.
        (true, false) => {
            return Err(ca_err(
                &ca_key,
                format!(
                    "missing beside {TRUST_STORE}: nodes cannot be added to that CA; move {TRUST_STORE} away to start a new one"
                ),
            ))
        }
        (false, true) => {
            return Err(ca_err(
                &trust_store,
                format!(
                    "missing beside {CA_KEY}: restore it, or move {CA_KEY} away to start a new CA"
                ),
            ))
        }
    };

    for node in nodes {
        let path = dir.join(format!("{}.pem", node.name));
        let (pem, days) = node_key_store(node, &ca, now, opts.node_days)?;
        write_file(&path, pem.as_bytes(), true)?;
        debug!(file = %path.display(), "issued a certificate for {}", node.identity);
        written.push(Written {
            path,
            kind: WrittenKind::KeyStore {
                identity: node.identity.clone(),
                hosts: node.hosts.clone(),
                days,
            },
        });
    }
    Ok(Summary {
        trust_store,
        ca_name: ca.name,
        ca_reused,
        written,
    })
}

/// A new self-signed CA, valid for `days`: (the CA, its certificate PEM, its key PEM).
fn new_ca(now: SystemTime, days: u32) -> Result<(Ca, String, String), CertError> {
    // A random suffix tells one development CA from another in every error that names
    // an issuer.
    let name = format!("geokeeper development CA {:08x}", rand::random::<u32>());
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "geokeeper");
    p.distinguished_name.push(DnType::CommonName, name.as_str());
    // It signs node certificates only, never another CA.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let not_after = now + DAY * days;
    p.not_before = (now - BACKDATE).into();
    p.not_after = not_after.into();
    let key = KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    let key_pem = key.serialize_pem();
    Ok((
        Ca {
            issuer: Issuer::new(p, key),
            name,
            not_after,
        },
        cert.pem(),
        key_pem,
    ))
}

/// The CA of an earlier run: the certificate of `trust_store` whose public key is the key
/// in `key_file` (a trust store may list more CAs, as during a CA rotation), checked to be
/// a CA still in date.
fn load_ca(trust_store: &Path, key_file: &Path, now: SystemTime) -> Result<Ca, CertError> {
    let key_pem = fs::read_to_string(key_file).map_err(|e| io_err(key_file, e))?;
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| ca_err(key_file, format!("not a usable PEM private key: {e}")))?;
    let spki = key.subject_public_key_info();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(trust_store)
        .map_err(|e| ca_err(trust_store, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| ca_err(trust_store, e))?;
    let mut found = None;
    for der in &certs {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| ca_err(trust_store, format!("unreadable certificate: {e}")))?;
        if cert.public_key().raw == spki.as_slice() {
            found = Some((der, cert));
            break;
        }
    }
    let (der, cert) = found.ok_or_else(|| {
        ca_err(
            trust_store,
            format!(
                "no certificate for the key in {CA_KEY} ({} certificate(s) read)",
                certs.len()
            ),
        )
    })?;
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let can_sign = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    if !is_ca || !can_sign {
        return Err(ca_err(
            trust_store,
            "the certificate for that key is not a CA (basic constraints CA:true, key usage certificate sign)",
        ));
    }
    let not_after = SystemTime::from(cert.validity().not_after.to_datetime());
    if not_after <= now {
        return Err(ca_err(
            trust_store,
            format!(
                "the CA expired on {}; move {TRUST_STORE} and {CA_KEY} away to start a new CA (and reissue every node)",
                cert.validity().not_after
            ),
        ));
    }
    // rcgen copies the subject into each node's issuer field, one attribute per RDN (it
    // panics on an empty RDN): refuse here what it cannot copy.
    if !cert.subject().iter().all(|rdn| rdn.iter().count() == 1) {
        return Err(ca_err(
            trust_store,
            "the CA's subject has a multi-valued or empty RDN, which cannot be copied into node certificates",
        ));
    }
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("(no common name)")
        .to_owned();
    let issuer = Issuer::from_ca_cert_der(der, key)
        .map_err(|e| ca_err(trust_store, format!("cannot sign with this CA: {e}")))?;
    Ok(Ca {
        issuer,
        name,
        not_after,
    })
}

/// A node's key store (its key, then its certificate) and the certificate's validity in
/// whole days.
fn node_key_store(
    node: &NodeSpec,
    ca: &Ca,
    now: SystemTime,
    days: u32,
) -> Result<(String, u32), CertError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "geokeeper");
    p.distinguished_name
        .push(DnType::CommonName, node.name.as_str());
    let uri = node
        .identity
        .uri()
        .try_into()
        .map_err(|e| CertError::Invalid(format!("node {:?}: {e}", node.name)))?;
    p.subject_alt_names.push(SanType::URI(uri));
    for h in &node.hosts {
        p.subject_alt_names
            .push(san_for_host(h).map_err(CertError::Invalid)?);
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    let wanted = now + DAY * days;
    let not_after = if wanted > ca.not_after {
        warn!(
            "{}: valid only until the CA's end, before the {days} days asked",
            node.name
        );
        ca.not_after
    } else {
        wanted
    };
    p.not_before = (now - BACKDATE).into();
    p.not_after = not_after.into();
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &ca.issuer)?;
    let days = not_after
        .duration_since(now)
        .map(|d| (d.as_secs() / DAY.as_secs()) as u32)
        .unwrap_or(0);
    Ok((format!("{}{}", key.serialize_pem(), cert.pem()), days))
}

/// Writes `path` whole or not at all (a temporary file renamed over it); a private key
/// is created with mode 0600, so it is never readable by others, not even for a moment.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp, e)),
    }
    let mut open = OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(if private { 0o600 } else { 0o644 });
    }
    let result = open.open(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_all()
    });
    let result = result.and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> NodeSpec {
        s.parse().expect("node spec")
    }

    #[test]
    fn command_line_nodes_read_name_id_and_room() {
        let n = spec("leader=1@eu-west.2");
        assert_eq!(n.name, "leader");
        assert_eq!(
            n.identity,
            Identity {
                room: "eu-west.2".into(),
                node: 1
            }
        );
        assert_eq!(n.hosts, DEFAULT_HOSTS.map(String::from).to_vec());
        for bad in [
            "leader",
            "leader=1",
            "leader=x@A",
            "=1@A",
            "le/ader=1@A",
            "../x=1@A",
            "ca=1@A",
            "ca-key=1@A",
            "leader=1@",
            "leader=1@a b",
            "leader=1@A/node/2",
        ] {
            assert!(bad.parse::<NodeSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_become_dns_or_ip_sans_and_junk_is_refused() {
        assert!(matches!(
            san_for_host("127.0.0.1"),
            Ok(SanType::IpAddress(_))
        ));
        assert!(matches!(san_for_host("[::1]"), Ok(SanType::IpAddress(_))));
        assert!(matches!(
            san_for_host("relay-1.example.org"),
            Ok(SanType::DnsName(_))
        ));
        for bad in ["", "a b", "under_score..x", "é.example"] {
            assert!(san_for_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_topology_names_file_and_node_in_its_errors() {
        let t = Topology::parse(
            "[[node]]\nname = \"leader\"\nid = 1\nroom = \"A\"\nhosts = [\"127.0.0.1\", \"localhost\"]\n\n[[node]]\nname = \"b3\"\nid = 3\nroom = \"B\"\n",
            "topo.toml",
        )
        .expect("topology");
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[0].hosts, ["127.0.0.1", "localhost"]);
        assert_eq!(t.nodes[1].hosts, DEFAULT_HOSTS.map(String::from).to_vec());

        let err = |text: &str| {
            Topology::parse(text, "topo.toml")
                .expect_err(text)
                .to_string()
        };
        let e = err("[[node]]\nname = \"a\"\nid = 1\nroom = \"A\"\nport = 3\n");
        assert!(e.starts_with("topo.toml: ") && e.contains("port"), "{e}");
        let e = err("[[node]]\nname = \"a\"\nid = 1\nroom = \"A\"\n[[node]]\nname = \"b\"\nid = 2\nroom = \"A B\"\n");
        assert!(e.contains("[[node]] #2") && e.contains("room"), "{e}");
        let e = err("[[node]]\nname = \"a\"\nid = 1\nroom = \"A\"\n[[node]]\nname = \"a\"\nid = 2\nroom = \"A\"\n");
        assert!(e.contains("given twice"), "{e}");
        let e = err("[[node]]\nname = \"a\"\nid = 1\nroom = \"A\"\n[[node]]\nname = \"b\"\nid = 1\nroom = \"A\"\n");
        assert!(e.contains("node 1 of room A is given twice"), "{e}");
        let e = err("[[node]]\nname = \"a\"\nid = 1\nroom = \"A\"\nhosts = []\n");
        assert!(e.contains("no hosts"), "{e}");
        assert!(err("").contains("no [[node]]"));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_the_trust_store_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let s = issue(dir.path(), &[spec("a=1@A")], &Options::default()).expect("issue");
        assert!(!s.ca_reused);
        let mode = |f: &str| {
            fs::metadata(dir.path().join(f))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(CA_KEY), 0o600);
        assert_eq!(mode("a.pem"), 0o600);
        assert_eq!(mode(TRUST_STORE) & 0o077 & !0o044, 0);
        let files: Vec<_> = s.written.iter().map(|w| w.path.clone()).collect();
        assert_eq!(
            files,
            [CA_KEY, TRUST_STORE, "a.pem"].map(|f| dir.path().join(f))
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 3);
    }

    #[test]
    fn half_a_ca_or_a_mismatched_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        issue(d, &[], &Options::default()).expect("first CA");
        let other = tempfile::tempdir().expect("tempdir");
        issue(other.path(), &[], &Options::default()).expect("second CA");
        let ca = fs::read(d.join(TRUST_STORE)).expect("read");

        fs::copy(other.path().join(CA_KEY), d.join(CA_KEY)).expect("copy");
        let e = issue(d, &[spec("a=1@A")], &Options::default()).expect_err("mismatch");
        assert!(e.to_string().contains("no certificate for the key"), "{e}");

        fs::remove_file(d.join(CA_KEY)).expect("rm");
        let e = issue(d, &[spec("a=1@A")], &Options::default()).expect_err("no key");
        assert!(e.to_string().contains("ca-key.pem: missing"), "{e}");
        assert_eq!(fs::read(d.join(TRUST_STORE)).expect("read"), ca);

        fs::write(d.join(CA_KEY), "not a key").expect("write");
        let e = issue(d, &[spec("a=1@A")], &Options::default()).expect_err("junk key");
        assert!(
            e.to_string().contains("not a usable PEM private key"),
            "{e}"
        );
        assert!(!d.join("a.pem").exists());
    }

    #[test]
    fn node_certificates_end_with_their_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options {
            ca_days: 10,
            node_days: 365,
        };
        let s = issue(dir.path(), &[spec("a=1@A")], &opts).expect("issue");
        let days = s
            .written
            .iter()
            .find_map(|w| match &w.kind {
                WrittenKind::KeyStore { days, .. } => Some(*days),
                _ => None,
            })
            .expect("key store");
        assert!(days <= 10, "{days}");

        for (ca_days, node_days) in [(0, 1), (1, 0), (MAX_DAYS + 1, 1), (1, u32::MAX)] {
            let opts = Options { ca_days, node_days };
            let e = issue(dir.path(), &[spec("b=2@A")], &opts).expect_err("days");
            assert!(e.to_string().contains("validity"), "{e}");
        }
    }
}
