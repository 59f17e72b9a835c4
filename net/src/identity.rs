//! Who is on the other end of a client connection: its address and, on a
//! TLS port with client-cert-auth, the verified certificate's Common Name.
//!
//! etcd uses that CN as the user name of a request that carries no auth
//! token (when auth is enabled). The accept loop ([`crate::serve_client_tls`])
//! records a [`ConnInfo`] per connection; every request of the connection
//! carries it as a request extension, whichever protocol it came by:
//!
//! - gRPC: tonic puts the connection's `ConnInfo` into each request's
//!   extensions ([`tonic::transport::server::Connected`]);
//! - the binary protocol: the fast server inserts the same `ConnInfo` into
//!   the `tonic::Request` it hands to the service objects;
//! - the JSON gateway: copied from the HTTP request into the request it
//!   builds for the service objects.
//!
//! So a service reads it the same way for all three:
//! `ClientIdentity::of(&request)`.

use std::net::SocketAddr;

/// The verified client certificate of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject's Common Name (the last CN attribute, as Go's
    /// `pkix.Name` reads it); empty when the certificate has none.
    pub common_name: String,
}

impl ClientIdentity {
    /// The identity of the connection `req` came on: `None` without TLS,
    /// or when the port does not verify client certificates.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<&ClientIdentity> {
        req.extensions().get::<ConnInfo>()?.identity.as_ref()
    }

    /// The identity in a verified end-entity certificate (DER).
    pub fn from_cert(der: &[u8]) -> Option<ClientIdentity> {
        Some(ClientIdentity {
            common_name: common_name(der)?.unwrap_or_default(),
        })
    }
}

/// What the accept loop knows about a client connection; a request
/// extension of every request made on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// The verified client certificate, on a TLS port with
    /// client-cert-auth.
    pub identity: Option<ClientIdentity>,
}

impl ConnInfo {
    /// The connection info of `req`, if it came through our accept loop.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<&ConnInfo> {
        req.extensions().get::<ConnInfo>()
    }
}

/// One DER element: `(tag, contents, rest)`. Only definite lengths of up
/// to 4 length bytes (DER has no others; a certificate is far smaller).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// id-at-commonName, 2.5.4.3.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// The subject CN of a certificate: `None` if the DER is not a
/// certificate, `Some(None)` if the subject has no CN.
///
/// ```text
/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
/// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
///     signature, issuer, validity, subject, ... }
/// Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
/// ```
fn common_name(der: &[u8]) -> Option<Option<String>> {
    let (SEQUENCE, cert, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    // serial, signature algorithm, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (SEQUENCE, mut rdns, _) = tlv(rest)? else {
        return None;
    };
    let mut cn = None;
    while !rdns.is_empty() {
        let (SET, mut set, next) = tlv(rdns)? else {
            return None;
        };
        rdns = next;
        while !set.is_empty() {
            let (SEQUENCE, atv, next) = tlv(set)? else {
                return None;
            };
            set = next;
            let (OID, oid, value) = tlv(atv)? else {
                return None;
            };
            if oid == OID_CN {
                let (tag, v, _) = tlv(value)?;
                cn = Some(directory_string(tag, v)?);
            }
        }
    }
    Some(cn)
}

/// A DirectoryString's text.
fn directory_string(tag: u8, v: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, T61String (read as UTF-8,
        // as Go does)
        0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8(v.to_vec()).ok(),
        // BMPString: UTF-16BE
        0x1e => {
            if !v.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = v
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in names {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_name_is_read_from_the_subject() {
        let der = cert_with(&[
            (rcgen::DnType::OrganizationName, "org"),
            (rcgen::DnType::CommonName, "alice"),
        ]);
        assert_eq!(
            ClientIdentity::from_cert(&der).unwrap().common_name,
            "alice"
        );
        let der = cert_with(&[(rcgen::DnType::CommonName, "r\u{00e9}sum\u{00e9} \u{4e2d}")]);
        assert_eq!(
            ClientIdentity::from_cert(&der).unwrap().common_name,
            "r\u{00e9}sum\u{00e9} \u{4e2d}"
        );
    }

    #[test]
    fn no_cn_and_garbage() {
        let der = cert_with(&[(rcgen::DnType::OrganizationName, "org")]);
        assert_eq!(ClientIdentity::from_cert(&der).unwrap().common_name, "");
        assert_eq!(ClientIdentity::from_cert(b"\x30\x05abc"), None);
        assert_eq!(ClientIdentity::from_cert(&[]), None);
        let der = cert_with(&[(rcgen::DnType::CommonName, "bob")]);
        // every truncation is rejected or read without panicking
        for n in 0..der.len() {
            let _ = ClientIdentity::from_cert(&der[..n]);
        }
    }

    #[test]
    fn bmp_strings() {
        assert_eq!(
            directory_string(0x1e, &[0, b'h', 0, b'i']).as_deref(),
            Some("hi")
        );
        assert_eq!(directory_string(0x1e, &[0]), None);
        assert_eq!(directory_string(0x04, b"x"), None);
    }
}
