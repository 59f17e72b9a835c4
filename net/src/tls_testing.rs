//! Test PKIs: a CA and certificates it signs, written as PEM files
//! (rcgen). Used by `net`'s unit tests and, through `#[path]`, by the
//! integration tests of `net` and `core`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA whose files live in `dir`.
pub struct Ca {
    pub dir: PathBuf,
    pub name: String,
    cert: rcgen::Certificate,
    key: KeyPair,
    /// `(cn, serial)` of every certificate issued, serials from 1000 up.
    issued: Mutex<Vec<(String, u64)>>,
}

impl Ca {
    pub fn new(dir: &std::path::Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Ca {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            cert,
            key,
            issued: Mutex::new(Vec::new()),
        }
    }

    pub fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A certificate for 127.0.0.1/localhost with subject CN `cn`,
    /// usable by servers and clients: `(cert, key)` files.
    pub fn issue(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.issue_for(
            cn,
            vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
            ],
        )
    }

    /// A certificate with these subject alternative names.
    pub fn issue_for(&self, cn: &str, sans: Vec<SanType>) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let serial = {
            let mut issued = self.issued.lock().unwrap();
            let serial = 1000 + issued.len() as u64;
            issued.push((cn.to_string(), serial));
            serial
        };
        p.serial_number = Some(serial.into());
        p.subject_alt_names = sans;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let base = format!("{}-{cn}", self.name);
        let (c, k) = (
            self.dir.join(format!("{base}.pem")),
            self.dir.join(format!("{base}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A CRL signed by this CA revoking the certificates issued to `cns`,
    /// written as PEM (`<name>-crl.pem`), or as DER with `der`.
    pub fn crl(&self, cns: &[&str], der: bool) -> PathBuf {
        let issued = self.issued.lock().unwrap();
        let revoked_certs = issued
            .iter()
            .filter(|(cn, _)| cns.contains(&cn.as_str()))
            .map(|(_, serial)| rcgen::RevokedCertParams {
                serial_number: (*serial).into(),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: 1u64.into(),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.cert, &self.key)
        .unwrap();
        let path = self.dir.join(format!(
            "{}-crl.{}",
            self.name,
            if der { "der" } else { "pem" }
        ));
        if der {
            std::fs::write(&path, crl.der()).unwrap();
        } else {
            std::fs::write(&path, crl.pem().unwrap()).unwrap();
        }
        path
    }
}
