//! etcd's `Maintenance.Downgrade` request, read as etcd 3.5 reads it: an
//! action (VALIDATE 0, ENABLE 1, CANCEL 2) and, for the first two, a target
//! version that must parse as etcd's semver library parses it
//! (`major.minor.patch`, or `major.minor` with `.0` added) — else
//! `etcdserver: wrong downgrade target version format`. Only major and
//! minor count: a cluster version has no patch. An unknown action is
//! etcd's `etcdserver: unknown method`. What the node then answers is its
//! business ([`crate::ClusterService::downgrade`]).

use crate::status::EtcdError;

/// A cluster version as a downgrade names it: major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterVersion {
    /// Major.
    pub major: i64,
    /// Minor.
    pub minor: i64,
}

/// A Downgrade request, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    /// Whether the cluster could go to this version.
    Validate(ClusterVersion),
    /// Start going to this version.
    Enable(ClusterVersion),
    /// Stop a downgrade in progress.
    Cancel,
}

impl Downgrade {
    /// The request's `action` and `version`, checked as etcd 3.5 does.
    pub fn parse(action: i32, version: &str) -> Result<Downgrade, EtcdError> {
        match action {
            0 => Ok(Downgrade::Validate(target(version)?)),
            1 => Ok(Downgrade::Enable(target(version)?)),
            2 => Ok(Downgrade::Cancel),
            _ => Err(EtcdError::UnknownMethod),
        }
    }
}

/// etcd's `convertToClusterVersion`: `v`, else `v.0`, as a semver.
fn target(v: &str) -> Result<ClusterVersion, EtcdError> {
    semver(v)
        .or_else(|| semver(&format!("{v}.0")))
        .map(|(major, minor)| ClusterVersion { major, minor })
        .ok_or(EtcdError::WrongDowngradeVersionFormat)
}

/// Major and minor of `v` if it is a version as etcd's semver library
/// (go-semver) takes one: optional `+metadata` and `-prerelease` split
/// off (each dot-separated `[0-9A-Za-z-]+` words), then exactly three
/// dot-separated decimal integers (a sign and leading zeros allowed, as
/// Go's `ParseInt` allows them). The `semver` crate is stricter (no
/// leading zeros, no sign), so it would refuse targets etcd takes.
fn semver(v: &str) -> Option<(i64, i64)> {
    let (v, metadata) = v.split_once('+').unwrap_or((v, ""));
    let (v, pre) = v.split_once('-').unwrap_or((v, ""));
    let ident = |s: &str| {
        s.is_empty()
            || s.split('.')
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if !ident(pre) || !ident(metadata) {
        return None;
    }
    let parts: Vec<&str> = v.splitn(3, '.').collect();
    let [major, minor, patch] = parts.as_slice() else {
        return None;
    };
    let int = |s: &str| {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<i64>().ok()
    };
    int(patch)?;
    Some((int(major)?, int(minor)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: i64, minor: i64) -> ClusterVersion {
        ClusterVersion { major, minor }
    }

    #[test]
    fn targets_parse_as_etcds() {
        for (s, want) in [
            ("3.4", v(3, 4)),
            ("3.4.0", v(3, 4)),
            ("3.4.9", v(3, 4)),
            ("3.04", v(3, 4)),
            ("3.4.0-rc.1", v(3, 4)),
            ("3.4.0+git.abc", v(3, 4)),
            ("4.0", v(4, 0)),
        ] {
            assert_eq!(Downgrade::parse(0, s), Ok(Downgrade::Validate(want)), "{s}");
            assert_eq!(Downgrade::parse(1, s), Ok(Downgrade::Enable(want)), "{s}");
        }
        for s in [
            "", "3", "abc", "x.y", "3.4.5.6", "3..4", "3.4.x", "3.4-", "v3.4",
        ] {
            assert_eq!(
                Downgrade::parse(0, s),
                Err(EtcdError::WrongDowngradeVersionFormat),
                "{s:?}"
            );
        }
    }

    #[test]
    fn actions() {
        // Cancel takes no version: whatever is there is not read.
        assert_eq!(Downgrade::parse(2, "junk"), Ok(Downgrade::Cancel));
        assert_eq!(Downgrade::parse(3, "3.4"), Err(EtcdError::UnknownMethod));
        assert_eq!(Downgrade::parse(-1, ""), Err(EtcdError::UnknownMethod));
    }
}
