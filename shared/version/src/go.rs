//! Go module and Go toolchain versions.
//!
//! Module versions are semantic versions ordered by `golang.org/x/mod/semver`: SemVer 2.0.0 precedence, with
//! build metadata ignored, so `v2.0.0+incompatible == v2.0.0`. Go requires the `v` prefix but OSV writes Go
//! versions without it, so it is optional here. Like `x/mod/semver`, the shorthands `v1` and `v1.2` are
//! accepted and mean `v1.0.0` and `v1.2.0`. Pseudo-versions need no special case:
//! `v0.0.0-20191109021931-daa7c04131f5` and `v1.2.4-0.20191109021931-daa7c04131f5` are pre-releases whose
//! identifiers sort by their timestamp and below any tagged pre-release of the same base, which is exactly
//! how Go designed them.
//!
//! Toolchain versions (the `stdlib` and `toolchain` packages) are written `go1.21.3`, `go1.21rc2`, `go1.20`
//! by Go and `1.21.3`, `1.21.0-rc.2` by OSV (the Go vulnerability database's translation). A `go`-prefixed
//! version, or a bare one that is not semver (`1.21rc2`), is parsed with `go/version`'s grammar and mapped to
//! that same semver form, preserving `go/version`'s order: `go1.20rc1 < go1.20 == go1.20.0 < go1.20.1`; from
//! Go 1.21 on, `go1.21` names the language version, which sorts before `go1.21rc1 < go1.21.0` and maps to
//! `1.21.0-0` (the lowest pre-release, which is what the vulnerability database uses for it). As in
//! `go/version`, a `-suffix` after a `go` version is dropped (`go1.21.3-bigcorp`), and so is anything after a
//! space (`go1.21.3 X:boringcrypto`, as `runtime.Version()` reports experiments).
//!
//! A bare `1.21` is read as the module shorthand `v1.21` (= `1.21.0`); write `go1.21` for the language version.

use std::cmp::Ordering;

use crate::semver::{parse_core, SemverVersion};
use crate::{Scheme, VersionError};

/// A parsed Go module or toolchain version, in its semver form.
#[derive(Clone, Debug)]
pub struct GoVersion(SemverVersion);

impl GoVersion {
    /// Parses a Go module version (with or without `v`) or a Go toolchain version (`go1.21rc2`).
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Go });
        }
        let err = |reason| VersionError::invalid(Scheme::Go, input, reason);
        if let Some(tool) = s.strip_prefix("go") {
            let tool = tool.split(' ').next().unwrap_or(tool);
            let tool = tool.split('-').next().unwrap_or(tool);
            return toolchain(tool).map(GoVersion).map_err(err);
        }
        match s.strip_prefix('v') {
            Some(module) => parse_core(module, true).map(GoVersion).map_err(err),
            None => match parse_core(s, true) {
                Ok(v) => Ok(GoVersion(v)),
                Err(reason) => toolchain(s).map(GoVersion).map_err(|_| err(reason)),
            },
        }
    }

    /// Whether this is a pre-release (including pseudo-versions and toolchain betas and release candidates).
    pub fn is_prerelease(&self) -> bool {
        self.0.is_prerelease()
    }
}

/// `go/version`'s `cutInt`: a decimal number without a needless leading zero.
fn cut_int(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || (n > 1 && s.starts_with('0')) {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// Parses a toolchain version without its `go` prefix (`1.21.3`, `1.21rc2`, `1.20`) into semver form.
fn toolchain(s: &str) -> Result<SemverVersion, &'static str> {
    const BAD: &str = "not a Go toolchain version (go1.N[.P] or go1.N{alpha,beta,rc}K)";
    let (major, rest) = cut_int(s).ok_or(BAD)?;
    if rest.is_empty() {
        return Ok(SemverVersion::from_parts(major, 0, 0, String::new()));
    }
    let rest = rest.strip_prefix('.').ok_or(BAD)?;
    let (minor, rest) = cut_int(rest).ok_or(BAD)?;
    if rest.is_empty() {
        // Before Go 1.21, "1.N" is the release 1.N.0; from 1.21 on it is the language version, below 1.N rc1.
        let pre = if minor < 21 { "" } else { "0" };
        return Ok(SemverVersion::from_parts(major, minor, 0, pre.to_owned()));
    }
    if let Some(rest) = rest.strip_prefix('.') {
        let (patch, rest) = cut_int(rest).ok_or(BAD)?;
        if !rest.is_empty() {
            return Err(BAD);
        }
        return Ok(SemverVersion::from_parts(major, minor, patch, String::new()));
    }
    let kind_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if kind_len == 0 {
        return Err(BAD);
    }
    let (kind, rest) = rest.split_at(kind_len);
    let mut pre = kind.to_owned();
    if !rest.is_empty() {
        let (n, rest) = cut_int(rest).ok_or(BAD)?;
        if !rest.is_empty() {
            return Err(BAD);
        }
        pre.push('.');
        pre.push_str(&n.to_string());
    }
    Ok(SemverVersion::from_parts(major, minor, 0, pre))
}

impl Ord for GoVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

ord_via_cmp!(GoVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        GoVersion::parse(a).unwrap().cmp(&GoVersion::parse(b).unwrap())
    }

    #[test]
    fn modules() {
        assert_eq!(cmp("v2.0.0+incompatible", "2.0.0"), Ordering::Equal);
        assert_eq!(cmp("v1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(cmp("v1", "v1.0.0"), Ordering::Equal);
        assert_eq!(cmp("0.0.0-20191109021931-daa7c04131f5", "0.0.0-20200101000000-000000000000"), Ordering::Less);
        assert_eq!(cmp("0.0.0-20191109021931-daa7c04131f5", "0.0.1"), Ordering::Less);
        assert_eq!(cmp("1.2.4-0.20191109021931-daa7c04131f5", "1.2.3"), Ordering::Greater);
        assert_eq!(cmp("1.2.4-0.20191109021931-daa7c04131f5", "1.2.4-rc.1"), Ordering::Less);
        assert_eq!(cmp("1.2.4-rc.1.0.20191109021931-daa7c04131f5", "1.2.4-rc.1"), Ordering::Greater);
        assert_eq!(cmp("1.2.4-rc.1.0.20191109021931-daa7c04131f5", "1.2.4-rc.2"), Ordering::Less);
        for bad in ["v1.2-pre", "v1.2.3.4", "v01.2.3", "vv1.0.0", "1.2.3-01", "go1.9.2rc2", "go1.021", "go", "latest"] {
            assert!(GoVersion::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn toolchains() {
        assert_eq!(cmp("go1.21.3", "1.21.3"), Ordering::Equal);
        assert_eq!(cmp("go1.21rc2", "1.21.0-rc.2"), Ordering::Equal);
        assert_eq!(cmp("1.21rc2", "1.21.0-rc.2"), Ordering::Equal);
        assert_eq!(cmp("go1.20", "1.20.0"), Ordering::Equal);
        assert_eq!(cmp("go1.20rc1", "go1.20"), Ordering::Less);
        assert_eq!(cmp("go1.20beta1", "go1.20rc1"), Ordering::Less);
        assert_eq!(cmp("go1.21", "go1.21rc1"), Ordering::Less);
        assert_eq!(cmp("go1.21rc1", "go1.21.0"), Ordering::Less);
        assert_eq!(cmp("go1.21", "1.21.0-0"), Ordering::Equal);
        assert_eq!(cmp("go1.21rc", "go1.21rc1"), Ordering::Less);
        assert_eq!(cmp("go1", "1.0.0"), Ordering::Equal);
        assert_eq!(cmp("go1.21.3 X:boringcrypto", "1.21.3"), Ordering::Equal);
        assert_eq!(cmp("go1.21.3-bigcorp", "1.21.3"), Ordering::Equal);
        assert_eq!(cmp("go1.9.2", "go1.10"), Ordering::Less);
    }
}
