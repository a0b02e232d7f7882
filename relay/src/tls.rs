//! TLS for links to a ZooKeeper leader (`sslQuorum=true`): rustls on ring, this server's
//! certificate chain and key from one PEM file (as ZooKeeper's PEM key store holds them),
//! the CA certificates from another (its PEM trust store). A Java leader with quorum TLS
//! asks every learner for a certificate (`ssl.quorum.clientAuth` defaults to need), so the
//! link always presents ours.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// A node's certificate chain and private key, and the CA certificates it trusts.
pub(crate) type PemStores = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    rustls::RootCertStore,
);

/// This node's chain and key from a PEM key store, and the CA certificates of a PEM trust
/// store: the layout of ZooKeeper's PEM stores, shared by quorum TLS and the relay.
pub(crate) fn load_pem_stores(key_store: &Path, trust_store: &Path) -> Result<PemStores, TlsError> {
    load_pem(key_store, key_store, trust_store)
}

/// A certificate chain, its private key and CA certificates from PEM files; the chain and
/// the key may be one file.
pub(crate) fn load_pem(cert: &Path, key: &Path, ca: &Path) -> Result<PemStores, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, e))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no CERTIFICATE in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| pem_err(key, format!("no usable private key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| pem_err(ca, e))? {
        roots
            .add(c.map_err(|e| pem_err(ca, e))?)
            .map_err(|e| pem_err(ca, e))?;
    }
    if roots.is_empty() {
        return Err(pem_err(ca, "no CERTIFICATE in the trust store"));
    }
    Ok((chain, key, roots))
}

/// ring, the provider quinn builds on: one provider for the whole process. (rustls
/// 0.23.48 deprecates it for lacking post-quantum key exchange; a Java 17 leader offers
/// none either.)
pub(crate) fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client side ready to connect.
#[derive(Clone)]
pub struct QuorumTls {
    pub config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    Pem { path: String, why: String },
    #[error("quorum TLS: {0}")]
    Rustls(#[from] Error),
    #[error("quorum TLS: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

fn pem_err(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

impl QuorumTls {
    /// From ZooKeeper's PEM key store (private key and certificate chain) and PEM trust
    /// store (CA certificates). Without hostname verification the leader's certificate
    /// must still chain to the trust store; only its name is not checked against the
    /// address (`ssl.quorum.hostnameVerification=false`).
    pub fn from_pem_files(
        key_store: &Path,
        trust_store: &Path,
        hostname_verification: bool,
    ) -> Result<QuorumTls, TlsError> {
        let (chain, key, roots) = load_pem_stores(key_store, trust_store)?;
        let provider = ring_provider();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()?;
        let verifier: Arc<dyn ServerCertVerifier> = if hostname_verification {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain, key)?;
        Ok(QuorumTls {
            config: Arc::new(config),
        })
    }

    /// The name to verify for `host` (a DNS name or an IP literal).
    pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned()).map_err(|e| TlsError::Pem {
            path: host.to_owned(),
            why: format!("not a host name for TLS: {e}"),
        })
    }
}

/// The WebPKI verifier, with a name mismatch forgiven (everything else still checked).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
