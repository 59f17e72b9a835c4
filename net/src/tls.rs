//! TLS configuration for the client and peer ports and for our clients
//! (rustls with the `ring` provider; PEM files as etcd takes them).
//!
//! - [`ServerTls`]: a listener's certificate and key, and whether (and
//!   against which CA) clients must present a certificate: etcd's
//!   `--cert-file --key-file --trusted-ca-file --client-cert-auth`, and the
//!   `--peer-*` twins. As in etcd (Go's `tls.RequireAndVerifyClientCert`),
//!   a trusted CA without client-cert-auth asks for no client certificate,
//!   and client-cert-auth without a trusted CA verifies against the
//!   system's CA bundle.
//! - [`ClientTls`]: what a dialer trusts and presents: etcdctl's `--cacert
//!   --cert --key --insecure-skip-tls-verify`; the peer dialer uses the
//!   member's peer certificate as its client certificate and the peer CA
//!   as its roots. The server name is the endpoint's host (an IP address
//!   must be in the certificate's IP SANs, as Go checks it).
//!
//! Failures name the file, in Go's words where etcd prints Go's error
//! (`open x.pem: no such file or directory`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The rustls configs the functions here build (so callers need not
/// depend on rustls themselves).
pub use rustls::{ClientConfig, ServerConfig};

/// ALPN protocols the client port offers: gRPC needs `h2`; the JSON
/// gateway and `/metrics` are served over HTTP/1.1 too. A connection that
/// offers none (the binary protocol's client) is accepted as well.
pub const CLIENT_PORT_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Where the system's CA bundle is looked for when no CA file is given
/// (after `$SSL_CERT_FILE`), the paths Go's `crypto/x509` reads first.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// A TLS file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading a file failed (Go's `open <path>: <reason>` wording).
    #[error("open {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Go's text for the OS error.
        reason: String,
    },
    /// The file holds no usable PEM of the expected kind.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the combination (e.g. a key that does not match).
    #[error("{0}")]
    Config(String),
}

/// The crypto provider every config here uses (explicit, so no process
/// default has to be installed).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open_error(path: &Path, e: &std::io::Error) -> TlsError {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    TlsError::Open {
        path: path.to_path_buf(),
        reason,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| open_error(path, &e))
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("bad certificate PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: format!("no private key found: {e}"),
    })
}

/// The CAs in `path`, or the system's bundle when `None`.
pub fn load_roots(path: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let path: PathBuf = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let found = env
                .into_iter()
                .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
                .find(|p| p.is_file());
            match found {
                Some(p) => p,
                // No bundle on this system: nothing is trusted, and every
                // peer certificate fails verification (with that reason).
                None => return Ok(roots),
            }
        }
    };
    for cert in load_certs(&path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.clone(),
            what: format!("bad CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A listener's TLS settings (etcd's `TLSInfo` on the server side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// `--cert-file`: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// `--key-file`.
    pub key: PathBuf,
    /// `--trusted-ca-file`: the CAs a client certificate must chain to.
    pub trusted_ca: Option<PathBuf>,
    /// `--client-cert-auth`: a client must present a valid certificate.
    pub client_cert_auth: bool,
}

impl ServerTls {
    /// The rustls server config, offering `alpn` (empty: no ALPN).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = load_certs(&self.cert)?;
        let key = load_key(&self.key)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.client_cert_auth {
            let roots = Arc::new(load_roots(self.trusted_ca.as_deref())?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("{}: {e}", self.cert.display())))?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

/// A dialer's TLS settings (etcdctl's `--cacert --cert --key
/// --insecure-skip-tls-verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CAs the server certificate must chain to (`None`: the system's).
    pub ca: Option<PathBuf>,
    /// A client certificate to present (with `key`).
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    pub key: Option<PathBuf>,
    /// Name to verify the server certificate against (`None`: the
    /// endpoint's host).
    pub server_name: Option<String>,
    /// Accept any server certificate (still checks the handshake's
    /// signatures, so the connection is encrypted, but not authenticated).
    pub insecure_skip_verify: bool,
}

impl ClientTls {
    /// TLS that trusts the CAs in `ca`.
    pub fn with_ca(ca: impl Into<PathBuf>) -> Self {
        Self {
            ca: Some(ca.into()),
            ..Self::default()
        }
    }

    /// Present `cert` (with `key`) to servers that ask for one.
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// The rustls client config, asking for `alpn` (empty: no ALPN).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider())))
        } else {
            builder.with_root_certificates(load_roots(self.ca.as_deref())?)
        };
        let mut cfg = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(load_certs(c)?, load_key(k)?)
                .map_err(|e| TlsError::Config(format!("{}: {e}", c.display())))?,
            (None, None) => builder.with_no_client_auth(),
            (c, k) => {
                return Err(TlsError::Config(format!(
                    "a client certificate needs both a cert and a key file (cert: {}, key: {})",
                    c.as_deref()
                        .map_or(String::new(), |p| p.display().to_string()),
                    k.as_deref()
                        .map_or(String::new(), |p| p.display().to_string()),
                )));
            }
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// The name to verify `host` (an endpoint's host, IP or DNS name) as.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string())
            .map_err(|e| TlsError::Config(format!("invalid server name {name:?}: {e}")))
    }
}

/// `--insecure-skip-tls-verify`: any certificate is accepted; the
/// handshake signatures are still verified with it.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Test PKIs (rcgen); the integration tests include the same file.
#[cfg(test)]
#[path = "tls_testing.rs"]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::Ca;
    use super::*;

    #[test]
    fn configs_load_and_files_are_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let (cert, key) = ca.issue("server");
        let server = ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            trusted_ca: Some(ca.pem()),
            client_cert_auth: true,
        };
        server.server_config(CLIENT_PORT_ALPN).unwrap();
        ClientTls::with_ca(ca.pem())
            .identity(&cert, &key)
            .client_config(&[])
            .unwrap();

        let missing = ServerTls {
            cert: dir.path().join("nope.pem"),
            ..server.clone()
        };
        let e = missing.server_config(&[]).unwrap_err().to_string();
        assert!(
            e.starts_with("open ") && e.ends_with("nope.pem: no such file or directory"),
            "{e}"
        );
        // a key file in place of the certificate, and the reverse
        let e = ServerTls {
            cert: key.clone(),
            ..server.clone()
        }
        .server_config(&[])
        .unwrap_err();
        assert!(e.to_string().contains("no certificate found"), "{e}");
        let e = ServerTls {
            key: cert.clone(),
            ..server.clone()
        }
        .server_config(&[])
        .unwrap_err();
        assert!(e.to_string().contains("no private key found"), "{e}");
        // a key that does not belong to the certificate
        let (_, other_key) = ca.issue("other");
        let e = ServerTls {
            key: other_key,
            ..server
        }
        .server_config(&[])
        .unwrap_err();
        assert!(matches!(e, TlsError::Config(_)), "{e}");
        // half a client identity
        let half = ClientTls {
            cert: Some(cert),
            ..ClientTls::default()
        };
        assert!(half.client_config(&[]).is_err());
    }

    #[test]
    fn server_names() {
        let t = ClientTls::default();
        assert!(matches!(
            t.server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            t.server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            t.server_name("localhost").unwrap(),
            ServerName::DnsName(_)
        ));
        let t = ClientTls {
            server_name: Some("etcd.example".into()),
            ..ClientTls::default()
        };
        assert_eq!(
            t.server_name("127.0.0.1").unwrap(),
            ServerName::try_from("etcd.example").unwrap()
        );
    }
}
