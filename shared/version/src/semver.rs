//! SemVer 2.0.0 versions (npm, crates.io), ordered by SemVer precedence.
//!
//! `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`: the three numbers compare by value; a version with a pre-release
//! sorts before the same version without one; pre-release identifiers compare left to right, numeric ones by
//! value and below alphanumeric ones, alphanumeric ones by ASCII order, and a shorter list of otherwise equal
//! identifiers first. Build metadata is ignored (`1.0.0+a == 1.0.0+b`), as the specification says.
//!
//! Parsing is the specification's grammar (no leading zeros in numbers or numeric identifiers, no empty
//! identifiers), plus surrounding whitespace and one leading `v`/`V` or `=` as npm tolerates. The three core
//! numbers must fit in 64 bits, as in the `semver` crate Cargo uses.

use std::cmp::Ordering;

use crate::num::{cmp_digits, is_digits};
use crate::{Scheme, VersionError};

/// A parsed SemVer 2.0.0 version (also the form Go versions are ordered in).
#[derive(Clone, Debug)]
pub struct SemverVersion {
    major: u64,
    minor: u64,
    patch: u64,
    /// Pre-release identifiers joined by `.`; empty when there are none.
    pre: Box<str>,
}

impl SemverVersion {
    /// Parses a SemVer version, tolerating whitespace and a leading `v`, `V` or `=`.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Semver });
        }
        let s = s.strip_prefix('=').unwrap_or(s);
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        parse_core(s, false).map_err(|reason| VersionError::invalid(Scheme::Semver, input, reason))
    }

    /// Builds a version from already-validated parts (used for Go toolchain versions).
    pub(crate) fn from_parts(major: u64, minor: u64, patch: u64, pre: String) -> Self {
        SemverVersion { major, minor, patch, pre: pre.into() }
    }

    /// Whether the version has pre-release identifiers.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }
}

/// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]` with no prefix; with `shorthand`, also `MAJOR` and `MAJOR.MINOR`
/// alone (as `golang.org/x/mod/semver` accepts `v1` and `v1.2`).
pub(crate) fn parse_core(s: &str, shorthand: bool) -> Result<SemverVersion, &'static str> {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    if let Some(build) = build {
        if !build.split('.').all(is_identifier) {
            return Err("build metadata must be non-empty dot-separated [0-9A-Za-z-] identifiers");
        }
    }
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !is_identifier(id) {
                return Err("pre-release identifiers must be non-empty [0-9A-Za-z-] strings");
            }
            if is_digits(id.as_bytes()) && id.len() > 1 && id.starts_with('0') {
                return Err("numeric pre-release identifier has a leading zero");
            }
        }
    }
    let mut parts = core.split('.');
    let mut nums = [0u64; 3];
    let mut count = 0;
    for part in parts.by_ref().take(3) {
        nums[count] = parse_number(part)?;
        count += 1;
    }
    if parts.next().is_some() {
        return Err("more than three numeric components");
    }
    if count < 3 && !(shorthand && build.is_none() && pre.is_none()) {
        return Err("expected MAJOR.MINOR.PATCH");
    }
    Ok(SemverVersion { major: nums[0], minor: nums[1], patch: nums[2], pre: pre.unwrap_or("").into() })
}

fn parse_number(part: &str) -> Result<u64, &'static str> {
    if !is_digits(part.as_bytes()) {
        return Err("version numbers must be decimal digits");
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err("version number has a leading zero");
    }
    part.parse().map_err(|_| "version number does not fit in 64 bits")
}

fn is_identifier(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// SemVer precedence of two pre-release strings (`""` meaning none, which ranks highest).
fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (mut ia, mut ib) = (a.split('.'), b.split('.'));
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let (x, y) = (x.as_bytes(), y.as_bytes());
                let r = match (is_digits(x), is_digits(y)) {
                    (true, true) => cmp_digits(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if r != Ordering::Equal {
                    return r;
                }
            }
        }
    }
}

impl Ord for SemverVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(&self.pre, &other.pre))
    }
}

ord_via_cmp!(SemverVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        SemverVersion::parse(a).unwrap().cmp(&SemverVersion::parse(b).unwrap())
    }

    #[test]
    fn spec_example_chain() {
        // The precedence example from semver.org §11.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for w in chain.windows(2) {
            assert_eq!(cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn tricky() {
        assert_eq!(cmp("1.0.0+build.1", "1.0.0+build.2"), Ordering::Equal);
        assert_eq!(cmp("v1.2.3", "1.2.3"), Ordering::Equal);
        assert_eq!(cmp("1.0.0-alpha-1", "1.0.0-alpha.1"), Ordering::Greater, "'alpha-1' is one identifier");
        assert_eq!(cmp("1.0.0-1", "1.0.0-a"), Ordering::Less);
        assert_eq!(cmp("1.0.0-10", "1.0.0-9"), Ordering::Greater);
        assert_eq!(cmp("1.0.0-x.10", "1.0.0-x.9a"), Ordering::Less, "numeric below alphanumeric");
        assert_eq!(cmp("1.0.0-Z", "1.0.0-a"), Ordering::Less, "ASCII order");
        assert_eq!(cmp("1.0.0-0", "1.0.0"), Ordering::Less);
        assert_eq!(cmp("18446744073709551615.0.0", "1.0.0"), Ordering::Greater);
        assert_eq!(cmp("1.0.0-99999999999999999999999", "1.0.0-100000000000000000000000"), Ordering::Less);
    }

    #[test]
    fn rejects_non_semver() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.3-01",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "1.2.3-a_b",
            "1.2.x",
            "18446744073709551616.0.0",
            "vv1.0.0",
            "1.2.3 4",
        ] {
            assert!(SemverVersion::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["1.2.3-0a", "1.2.3-00a", "1.2.3+01", " =v1.2.3 ", "1.2.3-a-.--"] {
            assert!(SemverVersion::parse(good).is_ok(), "{good:?} should be accepted");
        }
    }
}
