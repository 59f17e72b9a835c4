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
//! - [`Protocol`]: `--tls-min-version --tls-max-version --cipher-suites`,
//!   for both ports and the peer dialer. As in Go (and so etcd), the cipher
//!   suite list governs TLS 1.2 only: every TLS 1.3 suite stays enabled.
//!   Go's names of suites rustls does not provide (CBC, RC4, 3DES, RSA key
//!   exchange) are refused by name; unknown names get etcd's error.
//! - [`AllowedName`] (`--peer-cert-allowed-cn`,
//!   `--peer-cert-allowed-hostname`, `--client-cert-allowed-hostname`) is
//!   checked on the leaf after chain verification, as etcd's
//!   `VerifyPeerCertificate` does, by the listener (client certificates)
//!   and by the peer dialer (the server's certificate).
//! - CRLs (`--client-crl-file`, `--peer-crl-file`, PEM or DER): a client
//!   certificate whose serial a CRL of its issuer lists is refused at the
//!   handshake. Only the leaf is checked, as in etcd; unlike etcd, the CRL's
//!   signature must verify against the issuer (rustls), so a CRL of another
//!   CA revokes nothing. The file is read at start (an unreadable one
//!   stops it) and again whenever its modification time or length
//!   changes, so a new revocation needs no restart (etcd reads it at
//!   every handshake).
//! - [`self_signed`]: `--auto-tls` / `--peer-auto-tls` certificates.
//!
//! Failures name the file, in Go's words where etcd prints Go's error
//! (`open x.pem: no such file or directory`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, CipherSuite, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTls {
    /// `--cert-file`: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// `--key-file`.
    pub key: PathBuf,
    /// `--trusted-ca-file`: the CAs a client certificate must chain to.
    pub trusted_ca: Option<PathBuf>,
    /// `--client-cert-auth`: a client must present a valid certificate.
    pub client_cert_auth: bool,
    /// `--client-crl-file`: revoked client certificates (with
    /// `client_cert_auth`; read and checked at start either way).
    pub crl: Option<PathBuf>,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-cn` /
    /// `--peer-cert-allowed-hostname` (with `client_cert_auth`).
    pub allowed: Option<AllowedName>,
    /// Versions and cipher suites.
    pub protocol: Protocol,
}

impl ServerTls {
    /// The rustls server config, offering `alpn` (empty: no ALPN).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = load_certs(&self.cert)?;
        let key = load_key(&self.key)?;
        let crls = self.crl.as_deref().map(load_crls).transpose()?;
        let builder = rustls::ServerConfig::builder_with_provider(self.protocol.provider()?)
            .with_protocol_versions(&self.protocol.versions())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.client_cert_auth {
            let roots = Arc::new(load_roots(self.trusted_ca.as_deref())?);
            let verifier = client_verifier(roots.clone(), crls).map_err(|e| match &self.crl {
                Some(crl) => TlsError::Pem {
                    path: crl.clone(),
                    what: e,
                },
                None => TlsError::Config(e),
            })?;
            let verifier: Arc<dyn ClientCertVerifier> = match &self.crl {
                // etcd reads the CRL file at every handshake, so a new
                // revocation needs no restart: reread when it changes.
                Some(path) => Arc::new(CrlReloading {
                    path: path.clone(),
                    roots,
                    hints: verifier.root_hint_subjects().to_vec(),
                    current: std::sync::Mutex::new((file_stamp(path), verifier)),
                }),
                None => verifier,
            };
            match &self.allowed {
                Some(allowed) => builder.with_client_cert_verifier(Arc::new(AllowedClient {
                    inner: verifier,
                    allowed: allowed.clone(),
                })),
                None => builder.with_client_cert_verifier(verifier),
            }
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
    /// The name the server's verified certificate must carry (the peer
    /// dialer's `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`).
    pub allowed: Option<AllowedName>,
    /// Versions and cipher suites.
    pub protocol: Protocol,
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
        let builder = rustls::ClientConfig::builder_with_provider(self.protocol.provider()?)
            .with_protocol_versions(&self.protocol.versions())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider())))
        } else if let Some(allowed) = &self.allowed {
            let roots = Arc::new(load_roots(self.ca.as_deref())?);
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Config(format!("server certificate verifier: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AllowedServer {
                    inner,
                    allowed: allowed.clone(),
                }))
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

/// Every CRL in a PEM file (`X509 CRL` blocks), or the file as one DER
/// CRL when it holds no PEM (etcd reads both).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let pem = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("bad CRL PEM: {e}"),
        })?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    if bytes.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CRL found".into(),
        });
    }
    Ok(vec![CertificateRevocationListDer::from(bytes)])
}

/// A TLS protocol version (`--tls-min-version`, `--tls-max-version`).
/// rustls has nothing older than TLS 1.2, nor has etcd since 3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLS1.2`.
    Tls12,
    /// `TLS1.3`.
    Tls13,
}

impl TlsVersion {
    /// etcd's names, `TLS1.2` and `TLS1.3`; anything else gets etcd's
    /// error.
    pub fn parse(s: &str) -> Result<TlsVersion, TlsError> {
        match s {
            "TLS1.2" => Ok(TlsVersion::Tls12),
            "TLS1.3" => Ok(TlsVersion::Tls13),
            _ => Err(TlsError::Config(format!(
                "unexpected TLS version {s:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    }

    /// etcd's name.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        }
    }
}

/// Go's names (etcd's `--cipher-suites` values) of the TLS 1.2 suites
/// rustls provides; Go spells the ChaCha20 ones both ways.
const TLS12_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.3 names Go accepts in the list; they change nothing (Go enables
/// every TLS 1.3 suite whatever the list says), and so here.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Names etcd 3.5 (Go) accepts that rustls does not provide: CBC, RC4,
/// 3DES and RSA key exchange. Refused by name rather than as unknown.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// TLS versions and TLS 1.2 cipher suites (`--tls-min-version`,
/// `--tls-max-version`, `--cipher-suites`). The default: TLS 1.2 and 1.3,
/// rustls's suites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protocol {
    /// Lowest version offered (`None`: TLS 1.2).
    pub min: Option<TlsVersion>,
    /// Highest version offered (`None`: TLS 1.3).
    pub max: Option<TlsVersion>,
    /// Go names of the TLS 1.2 suites allowed (empty: all rustls has).
    pub cipher_suites: Vec<String>,
}

impl Protocol {
    /// Check the names and the combination, with etcd's messages (those of
    /// the 3.5 releases that have `--tls-min-version`).
    pub fn validate(&self) -> Result<(), TlsError> {
        self.suites()?;
        let (min, max) = self.bounds();
        if min > max {
            return Err(TlsError::Config(format!(
                "min version ({}) is greater than max version ({})",
                min.name(),
                max.name()
            )));
        }
        if min == TlsVersion::Tls13 && !self.cipher_suites.is_empty() {
            return Err(TlsError::Config(
                "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
            ));
        }
        Ok(())
    }

    fn bounds(&self) -> (TlsVersion, TlsVersion) {
        (
            self.min.unwrap_or(TlsVersion::Tls12),
            self.max.unwrap_or(TlsVersion::Tls13),
        )
    }

    /// The TLS 1.2 suites the list names (`None`: no list).
    fn suites(&self) -> Result<Option<Vec<CipherSuite>>, TlsError> {
        if self.cipher_suites.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for name in &self.cipher_suites {
            if let Some((_, s)) = TLS12_SUITES.iter().find(|(n, _)| n == name) {
                out.push(*s);
            } else if GO_ONLY_SUITES.contains(&name.as_str()) {
                return Err(TlsError::Config(format!(
                    "TLS cipher suite {name:?} is not supported by ferrocd (rustls provides TLS 1.2 suites with ECDHE and AES-GCM or ChaCha20-Poly1305 only)"
                )));
            } else if !TLS13_NAMES.contains(&name.as_str()) {
                return Err(TlsError::Config(format!(
                    "unexpected TLS cipher suite {name:?}"
                )));
            }
        }
        Ok(Some(out))
    }

    /// The ring provider with only the allowed TLS 1.2 suites (and every
    /// TLS 1.3 one).
    pub(crate) fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        self.validate()?;
        let mut p = rustls::crypto::ring::default_provider();
        if let Some(allowed) = self.suites()? {
            p.cipher_suites.retain(|s| match s {
                SupportedCipherSuite::Tls13(_) => true,
                SupportedCipherSuite::Tls12(_) => allowed.contains(&s.suite()),
            });
        }
        Ok(Arc::new(p))
    }

    /// The versions between `min` and `max`.
    pub(crate) fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        let (min, max) = self.bounds();
        [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect()
    }
}

/// The name a verified certificate must carry (etcd's `AllowedCN` /
/// `AllowedHostname`). Only the leaf is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedName {
    /// The subject's common name must be exactly this.
    Cn(String),
    /// The certificate must be valid for this host name or IP address:
    /// its subject alternative names, as Go's `VerifyHostname` checks
    /// them since Go 1.15 (the CN is not looked at).
    Hostname(String),
}

/// etcd's words when [`AllowedName`] refuses a certificate (`Debug` too:
/// rustls prints its `OtherError`s with it).
#[derive(thiserror::Error)]
#[error("client certificate authentication failed")]
struct NotAllowed;

impl std::fmt::Debug for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl AllowedName {
    /// Whether `leaf` carries the name.
    pub fn allows(&self, leaf: &CertificateDer<'_>) -> bool {
        match self {
            AllowedName::Cn(cn) => {
                let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
                    return false;
                };
                // Go keeps the last CN attribute of the subject.
                let last = cert
                    .subject()
                    .iter_common_name()
                    .filter_map(|a| a.as_str().ok())
                    .last();
                last == Some(cn.as_str())
            }
            AllowedName::Hostname(host) => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let (Ok(name), Ok(ee)) = (
                    ServerName::try_from(host),
                    webpki::EndEntityCert::try_from(leaf),
                ) else {
                    return false;
                };
                ee.verify_is_valid_for_subject_name(&name).is_ok()
            }
        }
    }

    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.allows(leaf) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotAllowed)),
            )))
        }
    }
}

/// rustls's client certificate verifier over `roots`, checking `crls`
/// when given (the leaf's serial only, and a certificate no CRL speaks
/// for passes, as etcd).
fn client_verifier(
    roots: Arc<RootCertStore>,
    crls: Option<Vec<CertificateRevocationListDer<'static>>>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
    if let Some(crls) = crls {
        verifier = verifier
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    verifier
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}

/// What identifies a version of a file: its modification time and
/// length (`None`: unreadable).
type Stamp = Option<(std::time::SystemTime, u64)>;

fn file_stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Client certificate verification against a CRL file that is read
/// again when it changes (etcd reads it at every handshake). A file that
/// became unreadable or invalid refuses every client certificate until
/// it is mended, as etcd's handshake fails then.
#[derive(Debug)]
struct CrlReloading {
    path: PathBuf,
    roots: Arc<RootCertStore>,
    /// The roots' names, sent in the certificate request.
    hints: Vec<DistinguishedName>,
    /// The file's stamp when it was last read, and its verifier.
    current: std::sync::Mutex<(Stamp, Arc<dyn ClientCertVerifier>)>,
}

impl CrlReloading {
    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let stamp = file_stamp(&self.path);
        let mut cur = self.current.lock().expect("crl verifier lock");
        if stamp.is_none() || stamp != cur.0 {
            let fresh = load_crls(&self.path)
                .map_err(|e| e.to_string())
                .and_then(|crls| client_verifier(self.roots.clone(), Some(crls)))
                .map_err(|e| rustls::Error::General(format!("{}: {e}", self.path.display())))?;
            *cur = (stamp, fresh);
        }
        Ok(cur.1.clone())
    }
}

impl ClientCertVerifier for CrlReloading {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let v = self.current.lock().expect("crl verifier lock").1.clone();
        v.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let v = self.current.lock().expect("crl verifier lock").1.clone();
        v.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let v = self.current.lock().expect("crl verifier lock").1.clone();
        v.supported_verify_schemes()
    }
}

/// rustls's client certificate verification, then [`AllowedName`].
#[derive(Debug)]
struct AllowedClient {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: AllowedName,
}

impl ClientCertVerifier for AllowedClient {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.allowed.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// rustls's server certificate verification, then [`AllowedName`] (etcd
/// applies its allowed CN/hostname to the peers it dials as well).
#[derive(Debug)]
struct AllowedServer {
    inner: Arc<WebPkiServerVerifier>,
    allowed: AllowedName,
}

impl ServerCertVerifier for AllowedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.allowed.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An `--auto-tls` / `--peer-auto-tls` certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// `<dir>/cert.pem`.
    pub cert: PathBuf,
    /// `<dir>/key.pem` (mode 0600).
    pub key: PathBuf,
    /// When the pair was generated now: the end of its validity (RFC
    /// 3339), for etcd's "automatically generate certificates" warning.
    pub generated_until: Option<String>,
}

/// etcd's `SelfCert`: reuse `dir/cert.pem` and `dir/key.pem` when both
/// exist (and rustls can use the key), else generate a self-signed pair
/// valid `validity_years` × 365 days from now, subject `O=etcd`, for
/// `hosts` (IP addresses become IP SANs, names DNS SANs), usable for
/// server authentication (and client authentication with `client_auth`).
///
/// The key is ECDSA P-256: etcd generates P-521, which rustls's ring
/// provider cannot sign with, so an etcd-made pair found here is replaced.
pub fn self_signed(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
    client_auth: bool,
) -> Result<SelfSigned, TlsError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    if validity_years == 0 {
        return Err(TlsError::Config(
            "selfSignedCertValidity is invalid,it should be greater than 0".into(),
        ));
    }
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        let usable = load_certs(&cert_path).is_ok()
            && load_key(&key_path)
                .ok()
                .is_some_and(|k| provider().key_provider.load_private_key(k).is_ok());
        if usable {
            return Ok(SelfSigned {
                cert: cert_path,
                key: key_path,
                generated_until: None,
            });
        }
    }
    let config = |e: rcgen::Error| TlsError::Config(format!("generating a certificate: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(config)?;
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now;
    let not_after = now + time::Duration::days(365 * i64::from(validity_years));
    p.not_after = not_after;
    // A random positive 128-bit serial, as Go's.
    let mut serial = [0u8; 16];
    provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|e| TlsError::Config(format!("generating a serial number: {e:?}")))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    if client_auth {
        p.extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    }
    for host in hosts {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(host.to_string().try_into().map_err(config)?),
        };
        if !p.subject_alt_names.contains(&san) {
            p.subject_alt_names.push(san);
        }
    }
    let cert = p.self_signed(&key).map_err(config)?;

    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| open_error(&path, &e)
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let write = |path: &Path, mode: u32, text: &str| -> Result<(), TlsError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(io(path))?;
        f.write_all(text.as_bytes()).map_err(io(path))?;
        f.sync_all().map_err(io(path))
    };
    write(&key_path, 0o600, &key.serialize_pem())?;
    write(&cert_path, 0o644, &cert.pem())?;
    let until = not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(SelfSigned {
        cert: cert_path,
        key: key_path,
        generated_until: Some(until),
    })
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
            ..Default::default()
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

    /// A handshake in memory; the negotiated version and suite, or the
    /// first side's error.
    fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> Result<(rustls::ProtocolVersion, CipherSuite), rustls::Error> {
        let mut c =
            rustls::ClientConnection::new(client, ServerName::try_from("localhost").unwrap())?;
        let mut s = rustls::ServerConnection::new(server)?;
        fn pump(
            from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
            to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        ) -> Result<(), rustls::Error> {
            let mut buf = Vec::new();
            while from.wants_write() {
                from.write_tls(&mut buf).unwrap();
            }
            let mut r = &buf[..];
            while !r.is_empty() {
                to.read_tls(&mut r).unwrap();
            }
            to.process_new_packets().map(|_| ())
        }
        for _ in 0..10 {
            pump(&mut c, &mut s)?;
            pump(&mut s, &mut c)?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok((
                    c.protocol_version().unwrap(),
                    c.negotiated_cipher_suite().unwrap().suite(),
                ));
            }
        }
        panic!("handshake did not finish");
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn protocol_versions_and_suites_as_etcd_checks_them() {
        let p = |min, max, suites: &[&str]| Protocol {
            min,
            max,
            cipher_suites: names(suites),
        };
        use TlsVersion::*;
        assert!(p(None, None, &[]).validate().is_ok());
        assert!(p(Some(Tls13), None, &[]).validate().is_ok());
        let e = p(Some(Tls13), Some(Tls12), &[]).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        let e = p(
            Some(Tls13),
            None,
            &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        )
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cipher suites cannot be configured when only TLS1.3 is enabled"
        );
        let e = p(None, None, &["BOGUS"]).validate().unwrap_err();
        assert_eq!(e.to_string(), r#"unexpected TLS cipher suite "BOGUS""#);
        // Go splits the list as given: " X" is another name.
        let e = p(
            None,
            None,
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                " TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ],
        )
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unexpected TLS cipher suite " TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384""#
        );
        let e = p(None, None, &["TLS_RSA_WITH_AES_128_CBC_SHA"])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("not supported by ferrocd"), "{e}");
        // both ChaCha spellings and Go's TLS 1.3 names are accepted
        assert!(
            p(
                None,
                None,
                &[
                    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
                    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                    "TLS_AES_128_GCM_SHA256"
                ]
            )
            .validate()
            .is_ok()
        );
        assert_eq!(TlsVersion::parse("TLS1.2").unwrap(), Tls12);
        assert_eq!(
            TlsVersion::parse("TLS1.1").unwrap_err().to_string(),
            r#"unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)"#
        );
    }

    #[test]
    fn versions_and_suites_are_negotiated_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let (cert, key) = ca.issue("server");
        let server = |protocol: Protocol| {
            ServerTls {
                cert: cert.clone(),
                key: key.clone(),
                protocol,
                ..Default::default()
            }
            .server_config(&[])
            .unwrap()
        };
        let client = |protocol: Protocol| {
            ClientTls {
                protocol,
                ..ClientTls::with_ca(ca.pem())
            }
            .client_config(&[])
            .unwrap()
        };
        let tls12 = |suites: &[&str]| Protocol {
            max: Some(TlsVersion::Tls12),
            cipher_suites: names(suites),
            ..Protocol::default()
        };
        let (v, _) = handshake(server(Protocol::default()), client(Protocol::default())).unwrap();
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
        // --cipher-suites: a TLS 1.2 client must use a listed suite
        let only = Protocol {
            cipher_suites: names(&["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]),
            ..Protocol::default()
        };
        let got = handshake(server(only.clone()), client(tls12(&[]))).unwrap();
        assert_eq!(
            got,
            (
                rustls::ProtocolVersion::TLSv1_2,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            )
        );
        let e = handshake(
            server(only.clone()),
            client(tls12(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])),
        )
        .unwrap_err();
        assert!(matches!(e, rustls::Error::PeerIncompatible(_)), "{e}");
        // ... and TLS 1.3 is untouched by the list, as in Go
        let (v, _) = handshake(server(only), client(Protocol::default())).unwrap();
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
        // --tls-min-version TLS1.3 refuses a TLS 1.2 client
        let min13 = Protocol {
            min: Some(TlsVersion::Tls13),
            ..Protocol::default()
        };
        assert!(handshake(server(min13.clone()), client(tls12(&[]))).is_err());
        let (v, _) = handshake(server(min13), client(Protocol::default())).unwrap();
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
        // --tls-max-version TLS1.2 refuses a TLS 1.3-only client
        let only13 = Protocol {
            min: Some(TlsVersion::Tls13),
            ..Protocol::default()
        };
        assert!(handshake(server(tls12(&[])), client(only13)).is_err());
    }

    #[test]
    fn a_changed_crl_file_is_read_again_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let (cert, key) = ca.issue("server");
        let (alice, alice_key) = ca.issue("alice");
        let (mallory, mallory_key) = ca.issue("mallory");
        let crl = ca.crl(&[], false);
        let server = ServerTls {
            cert,
            key,
            trusted_ca: Some(ca.pem()),
            client_cert_auth: true,
            crl: Some(crl.clone()),
            ..Default::default()
        }
        .server_config(&[])
        .unwrap();
        let client = |c: &PathBuf, k: &PathBuf| {
            ClientTls::with_ca(ca.pem())
                .identity(c, k)
                .client_config(&[])
                .unwrap()
        };
        assert!(handshake(server.clone(), client(&mallory, &mallory_key)).is_ok());
        // Revoked after start: the same server config refuses it now.
        assert_eq!(ca.crl(&["mallory"], false), crl);
        assert_eq!(
            handshake(server.clone(), client(&mallory, &mallory_key)).unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::Revoked)
        );
        assert!(handshake(server.clone(), client(&alice, &alice_key)).is_ok());
        // A CRL file that went away refuses everyone until it is back.
        std::fs::remove_file(&crl).unwrap();
        assert!(handshake(server.clone(), client(&alice, &alice_key)).is_err());
        ca.crl(&[], false);
        assert!(handshake(server.clone(), client(&alice, &alice_key)).is_ok());
        assert!(handshake(server, client(&mallory, &mallory_key)).is_ok());
    }

    #[test]
    fn crls_and_allowed_names_refuse_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let (cert, key) = ca.issue("server");
        let (alice, alice_key) = ca.issue("alice");
        let (mallory, mallory_key) = ca.issue("mallory");
        let (named, named_key) = ca.issue_for(
            "bob",
            vec![rcgen::SanType::DnsName(
                "allowed.example".try_into().unwrap(),
            )],
        );
        let server = |crl: Option<PathBuf>, allowed: Option<AllowedName>| {
            ServerTls {
                cert: cert.clone(),
                key: key.clone(),
                trusted_ca: Some(ca.pem()),
                client_cert_auth: true,
                crl,
                allowed,
                ..Default::default()
            }
            .server_config(&[])
            .unwrap()
        };
        let client = |c: &PathBuf, k: &PathBuf| {
            ClientTls::with_ca(ca.pem())
                .identity(c, k)
                .client_config(&[])
                .unwrap()
        };
        for der in [false, true] {
            let crl = Some(ca.crl(&["mallory"], der));
            assert!(handshake(server(crl.clone(), None), client(&alice, &alice_key)).is_ok());
            let e = handshake(server(crl, None), client(&mallory, &mallory_key)).unwrap_err();
            assert_eq!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::Revoked),
                "der: {der}"
            );
        }
        // a CRL of another CA revokes nothing here
        let other = Ca::new(dir.path(), "other");
        other.issue("x");
        let foreign = Some(other.crl(&["x"], false));
        assert!(handshake(server(foreign, None), client(&alice, &alice_key)).is_ok());

        let cn = Some(AllowedName::Cn("alice".into()));
        assert!(handshake(server(None, cn.clone()), client(&alice, &alice_key)).is_ok());
        let e = handshake(server(None, cn), client(&mallory, &mallory_key)).unwrap_err();
        assert!(
            e.to_string()
                .contains("client certificate authentication failed"),
            "{e}"
        );
        let host = Some(AllowedName::Hostname("allowed.example".into()));
        assert!(handshake(server(None, host.clone()), client(&named, &named_key)).is_ok());
        // the CN is not a host name (Go ignores it since 1.15)
        let by_cn = Some(AllowedName::Hostname("alice".into()));
        assert!(handshake(server(None, by_cn), client(&alice, &alice_key)).is_err());
        assert!(handshake(server(None, host), client(&alice, &alice_key)).is_err());
        let ip = Some(AllowedName::Hostname("127.0.0.1".into()));
        assert!(handshake(server(None, ip), client(&alice, &alice_key)).is_ok());

        // the dialer checks the server's certificate the same way
        let plain = ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            ..Default::default()
        }
        .server_config(&[])
        .unwrap();
        let dialer = |allowed| {
            ClientTls {
                allowed: Some(allowed),
                ..ClientTls::with_ca(ca.pem())
            }
            .client_config(&[])
            .unwrap()
        };
        assert!(handshake(plain.clone(), dialer(AllowedName::Cn("server".into()))).is_ok());
        let e = handshake(plain, dialer(AllowedName::Cn("alice".into()))).unwrap_err();
        assert!(
            e.to_string()
                .contains("client certificate authentication failed"),
            "{e}"
        );

        // a CRL file that is not one is named at start
        let e = ServerTls {
            crl: Some(cert.clone()),
            ..Default::default()
        };
        let e = ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            client_cert_auth: true,
            trusted_ca: Some(ca.pem()),
            ..e
        }
        .server_config(&[])
        .unwrap_err();
        assert!(
            e.to_string().starts_with(&cert.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn self_signed_pairs_are_generated_once_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures").join("peer");
        let e = self_signed(&fixtures, &names(&["127.0.0.1"]), 0, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "selfSignedCertValidity is invalid,it should be greater than 0"
        );
        let hosts = names(&["127.0.0.1", "localhost", "[::1]"]);
        let made = self_signed(&fixtures, &hosts, 3, true).unwrap();
        assert!(made.generated_until.is_some());
        assert_eq!(made.cert, fixtures.join("cert.pem"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&made.key), 0o600);
        assert_eq!(mode(&fixtures), 0o700);
        let der = load_certs(&made.cert).unwrap().remove(0);
        let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            x.subject()
                .iter_organization()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "etcd"
        );
        let days =
            (x.validity().not_after.timestamp() - x.validity().not_before.timestamp()) / 86_400;
        assert_eq!(days, 3 * 365);
        for host in ["127.0.0.1", "localhost", "::1"] {
            assert!(AllowedName::Hostname(host.into()).allows(&der), "{host}");
        }
        // usable as a server certificate by a client that skips verification
        let server = ServerTls {
            cert: made.cert.clone(),
            key: made.key.clone(),
            ..Default::default()
        }
        .server_config(&[])
        .unwrap();
        let skip = ClientTls {
            insecure_skip_verify: true,
            ..ClientTls::default()
        };
        assert!(handshake(server.clone(), skip.client_config(&[]).unwrap()).is_ok());
        // ... and not by one that verifies
        assert!(handshake(server, ClientTls::default().client_config(&[]).unwrap()).is_err());
        // a second start reuses the pair
        let again = self_signed(&fixtures, &hosts, 3, true).unwrap();
        assert_eq!(again.generated_until, None);
        assert_eq!(load_certs(&again.cert).unwrap()[0], der);
        // a pair rustls cannot use (etcd's P-521) is replaced
        std::fs::write(
            &made.key,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let replaced = self_signed(&fixtures, &hosts, 1, true).unwrap();
        assert!(replaced.generated_until.is_some());
    }
}
