//! The relay's QUIC transport (geokeeper's own WAN stream between rooms): mutual TLS with
//! the cluster CA over quinn (rustls on ring, the process's one provider), ALPN
//! `geokeeper-relay/1`, and the identity of each peer — its node id and room, carried in
//! its certificate as a URI SAN `geokeeper://relay/room/<room>/node/<id>` — checked against
//! the configuration. The TLS verifier checks only the chain (signed by the cluster CA,
//! in date, usable for client or server auth); who the peer is, is this module's check.
//!
//! Built so far: the endpoints' TLS configuration, the identity check and the refusals.
//! The committed stream over it comes with the relay issue's next steps.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tracing::warn;

/// What both ends say in ALPN.
pub const ALPN: &[u8] = b"geokeeper-relay/1";

/// The application close code for a peer whose identity the configuration does not name.
pub const CLOSE_NOT_ALLOWED: u32 = 0x4e41; // "NA"

/// Who a relay peer is: a node of a room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub room: String,
    pub node: u64,
}

impl Identity {
    const PREFIX: &'static str = "geokeeper://relay/room/";

    /// The URI SAN that carries it.
    pub fn uri(&self) -> String {
        format!("{}{}/node/{}", Self::PREFIX, self.room, self.node)
    }

    /// Reads a URI SAN; `None` when it is not a relay identity.
    pub fn from_uri(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix(Self::PREFIX)?;
        let (room, node) = rest.split_once("/node/")?;
        let ok_room = !room.is_empty()
            && room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let node = node.parse().ok()?;
        ok_room.then(|| Identity {
            room: room.to_owned(),
            node,
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} of room {}", self.node, self.room)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayTlsError {
    #[error("{path}: {why}")]
    Pem { path: String, why: String },
    #[error("relay TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("relay TLS: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("relay TLS: {0}")]
    Quic(String),
}

/// Why a peer was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("relay handshake failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("the peer's certificate names no relay identity (a URI SAN geokeeper://relay/room/<room>/node/<id>): {0}")]
    NoIdentity(String),
    #[error("{0} is not a relay peer of this server's configuration")]
    NotAllowed(Identity),
}

/// This node's certificate chain and key, and the cluster CA.
#[derive(Clone)]
pub struct RelayTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for RelayTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RelayTls")
    }
}

impl RelayTls {
    /// From a PEM key store (private key and certificate chain) and a PEM file of CA
    /// certificates, the layout of the quorum TLS stores.
    pub fn from_pem_files(key_store: &Path, trust_store: &Path) -> Result<RelayTls, RelayTlsError> {
        Self::from_pem(key_store, key_store, trust_store)
    }

    /// From PEM files of this node's certificate chain, its private key (may be the same
    /// file) and the cluster's CA certificates.
    pub fn from_pem(cert: &Path, key: &Path, ca: &Path) -> Result<RelayTls, RelayTlsError> {
        let (chain, key, roots) = crate::tls::load_pem(cert, key, ca).map_err(|e| match e {
            crate::tls::TlsError::Pem { path, why } => RelayTlsError::Pem { path, why },
            other => RelayTlsError::Quic(other.to_string()),
        })?;
        let provider = crate::tls::ring_provider();
        Ok(RelayTls {
            chain,
            key: Arc::new(key),
            roots: Arc::new(roots),
            provider,
        })
    }

    /// The publisher's side: a client certificate signed by the cluster CA is required.
    /// `send_window` bounds what QUIC holds unacknowledged per subscriber, besides the
    /// publisher's own queue (`relay.bufferBytes`, which the caller passes here too): a
    /// stalled subscriber costs at most both, then it is let go.
    pub fn server_config(&self, send_window: u64) -> Result<quinn::ServerConfig, RelayTlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()?;
        let mut tls = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| RelayTlsError::Quic(e.to_string()))?;
        let mut c = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        c.transport_config(transport(send_window));
        Ok(c)
    }

    /// The subscriber's side: the publisher's chain is checked against the cluster CA and
    /// its name against the one connected to; this node's certificate is presented.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, RelayTlsError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| RelayTlsError::Quic(e.to_string()))?;
        let mut c = quinn::ClientConfig::new(Arc::new(crypto));
        c.transport_config(transport(u64::from(STREAM_WINDOW)));
        Ok(c)
    }
}

/// The relay's one stream may have this much in flight unread: 16 MiB, 1 Gbit/s over a
/// 130 ms round trip (quinn's default, 1.25 MB, caps a stream at 25 MB/s over 50 ms).
const STREAM_WINDOW: u32 = 16 << 20;

/// A link is kept alive by a packet every second and declared dead after
/// [`IDLE_TIMEOUT`] without one: a WAN cut is noticed in seconds, a lost packet or two
/// is not a cut.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn transport(send_window: u64) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
    t.send_window(send_window);
    // Random loss on a WAN is no sign of congestion: a loss-based controller (Cubic,
    // quinn's default) holds a 50 ms, 1%-loss link to a few hundred kB/s (the Mathis
    // bound), far below a leader's commit rate. BBR paces to the measured bandwidth.
    // quinn calls its BBR experimental; every relay test and the benchmark run on it.
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    // A paced stream (a write every few ms) would be acknowledged every other packet, an
    // ACK packet up for every two transactions down: ask the peer to acknowledge every
    // tenth packet or after 25 ms (draft-ietf-quic-ack-frequency). Loss is still noticed
    // within a round trip plus 25 ms; nothing waits for an ACK but the sender's window.
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(quinn::VarInt::from_u32(9))
        .max_ack_delay(Some(std::time::Duration::from_millis(25)));
    t.ack_frequency_config(Some(acks));
    t.keep_alive_interval(Some(std::time::Duration::from_secs(1)));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// The relay identity in the peer's leaf certificate.
pub fn peer_identity(conn: &quinn::Connection) -> Result<Identity, AdmitError> {
    let chain = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| AdmitError::NoIdentity("no certificate".into()))?;
    chain_identity(&chain)
}

impl RelayTls {
    /// The relay identity this node's own certificate names.
    pub fn identity(&self) -> Result<Identity, AdmitError> {
        chain_identity(&self.chain)
    }
}

/// The relay identity in a chain's leaf certificate.
fn chain_identity(chain: &[CertificateDer<'static>]) -> Result<Identity, AdmitError> {
    let leaf = chain
        .first()
        .ok_or_else(|| AdmitError::NoIdentity("an empty chain".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| AdmitError::NoIdentity(format!("unreadable certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| AdmitError::NoIdentity(format!("unreadable SAN: {e}")))?;
    let mut uris = Vec::new();
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let x509_parser::extensions::GeneralName::URI(u) = name {
            if let Some(id) = Identity::from_uri(u) {
                return Ok(id);
            }
            uris.push(u.to_string());
        }
    }
    Err(AdmitError::NoIdentity(if uris.is_empty() {
        "no URI SAN".into()
    } else {
        format!("URI SANs {uris:?}")
    }))
}

/// Completes an incoming connection and lets it in only if its certificate names one
/// of `allowed`. A refused peer is closed with [`CLOSE_NOT_ALLOWED`] and a reason it can
/// log; both refusals are logged here.
pub async fn admit(
    incoming: quinn::Incoming,
    allowed: &HashSet<Identity>,
) -> Result<(quinn::Connection, Identity), AdmitError> {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            warn!(%remote, "relay peer refused: TLS handshake failed: {e}");
            return Err(e.into());
        }
    };
    let refuse = |conn: &quinn::Connection, e: AdmitError| {
        warn!(%remote, "relay peer refused: {e}");
        conn.close(CLOSE_NOT_ALLOWED.into(), e.to_string().as_bytes());
        e
    };
    match peer_identity(&conn) {
        Ok(id) if allowed.contains(&id) => Ok((conn, id)),
        Ok(id) => Err(refuse(&conn, AdmitError::NotAllowed(id))),
        Err(e) => Err(refuse(&conn, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_read_back_from_their_uri_and_nothing_else_does() {
        let id = Identity {
            room: "eu-west.2".into(),
            node: 42,
        };
        assert_eq!(id.uri(), "geokeeper://relay/room/eu-west.2/node/42");
        assert_eq!(Identity::from_uri(&id.uri()), Some(id));
        for bad in [
            "geokeeper://relay/room//node/1",
            "geokeeper://relay/room/a b/node/1",
            "geokeeper://relay/room/A/node/x",
            "geokeeper://relay/room/A/node/",
            "geokeeper://relay/room/A",
            "https://relay/room/A/node/1",
            "spiffe://cluster/ns/relay",
        ] {
            assert_eq!(Identity::from_uri(bad), None, "{bad}");
        }
    }
}
