//! `--auto-tls` and `--peer-auto-tls`: etcd's generated certificates.
//!
//! At start, before any listener is built, a port whose auto flag is set
//! and that has no `--cert-file`/`--key-file` (peer: `--peer-*`) gets a
//! self-signed pair under `<data-dir>/fixtures/client` or
//! `<data-dir>/fixtures/peer` ([`ferrocd_net::tls::self_signed`]): reused
//! when already there, else generated for the hosts of the listen URLs and
//! valid `--self-signed-cert-validity` years. Given files win, with etcd's
//! warning. Clients of a generated certificate must skip verification
//! (`etcdctl --insecure-skip-tls-verify`); the peer dialer of a member
//! with `--peer-auto-tls` does so itself, as etcd's does.
//!
//! The pair is generated whatever the URLs' scheme, as etcd does; on
//! `http://` URLs it is then ignored with the usual warning.
//!
//! etcd 3.5 replaces the port's whole TLS settings with the generated
//! pair's, so client-cert auth, the trusted CA, the CRL and the allowed
//! CN/hostname given with an auto flag are dropped (checked with etcd
//! 3.5.1: `--auto-tls --client-cert-auth --trusted-ca-file` serves a
//! client without a certificate). We do the same, with a warning naming
//! what is dropped; cipher suites and TLS versions stay.

use std::path::Path;

use url::Url;

use crate::config::{Config, TlsFlags};

/// Generate (or reuse) the pairs `cfg` asks for and point its TLS flags
/// at them.
pub(crate) fn resolve(cfg: &mut Config) -> anyhow::Result<()> {
    let dir = cfg.data_dir.join("fixtures");
    resolve_port(
        &mut cfg.client_tls,
        &cfg.listen_client_urls,
        &dir.join("client"),
        "client",
        false,
    )?;
    resolve_port(
        &mut cfg.peer_tls,
        &cfg.listen_peer_urls,
        &dir.join("peer"),
        "peer",
        true,
    )
}

fn resolve_port(
    tls: &mut TlsFlags,
    urls: &[Url],
    dir: &Path,
    port: &str,
    peer: bool,
) -> anyhow::Result<()> {
    if !tls.auto_tls {
        return Ok(());
    }
    if !tls.is_empty() {
        tracing::warn!("ignoring {port} auto TLS since certs given");
        return Ok(());
    }
    let hosts: Vec<String> = urls
        .iter()
        .filter_map(|u| u.host_str().map(str::to_string))
        .collect();
    // A peer's generated certificate is also its client certificate.
    let pair = ferrocd_net::tls::self_signed(dir, &hosts, tls.self_signed_cert_validity, peer)
        .map_err(|e| anyhow::anyhow!("failed to get {port} self-signed certs: {e}"))?;
    if let Some(until) = &pair.generated_until {
        tracing::warn!(
            certificate_validity_bound_not_after = %until,
            dir = %dir.display(),
            "automatically generate certificates"
        );
    }
    let prefix = if peer { "peer-" } else { "" };
    let own = if peer { "peer-" } else { "client-" };
    let dropped: Vec<String> = [
        (tls.client_cert_auth, format!("--{prefix}client-cert-auth")),
        (
            tls.trusted_ca_file.is_some(),
            format!("--{prefix}trusted-ca-file"),
        ),
        (tls.crl_file.is_some(), format!("--{own}crl-file")),
        (
            tls.allowed.is_some(),
            format!(
                "--{own}cert-allowed-{}",
                if peer { "cn/hostname" } else { "hostname" }
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if !dropped.is_empty() {
        tracing::warn!(
            ignored = %dropped.join(", "),
            "{port} auto TLS replaces these settings with the generated certificate's, as etcd does"
        );
    }
    *tls = TlsFlags {
        cert_file: Some(pair.cert),
        key_file: Some(pair.key),
        auto_tls: true,
        self_signed: true,
        self_signed_cert_validity: tls.self_signed_cert_validity,
        protocol: tls.protocol.clone(),
        ..TlsFlags::default()
    };
    Ok(())
}
