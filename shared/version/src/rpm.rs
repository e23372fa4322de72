//! RPM package versions (`[epoch:]version[-release]`), ordered as rpm ≥ 4.15 orders them.
//!
//! Epoch, version and release are compared in turn with `rpmvercmp`: each string is cut into maximal runs of
//! ASCII digits or ASCII letters, everything else being a separator; runs are compared pairwise, numbers by
//! value, letters with `strcmp`, a number beating letters; `~` sorts before everything (even the end:
//! `1.0~rc1 < 1.0`) and `^` after the end but before anything else (`1.0 < 1.0^git1 < 1.0.1`). Separators
//! only separate, so `1.0 == 1_0`. The epoch is the leading run of digits when a `:` follows (absent means 0),
//! the release is everything after the last `-`.
//!
//! A missing release sorts before any release, even an empty one (`1.0 < 1.0- < 1.0-1`), which is what
//! `rpm.vercmp` (rpm 4.18's `rpmverCmp`) answers. Note that rpm's *dependency* matching (`rpmdsCompare`)
//! instead treats a missing release as a wildcard (`= 1.0` matches `1.0-7`); that is range semantics, not
//! an order, and belongs to the caller. An empty version part (`1:`, `-1`) is rejected rather than ordered.

use std::cmp::Ordering;

use crate::num::cmp_digits;
use crate::{Scheme, VersionError};

/// A parsed RPM EVR.
#[derive(Clone, Debug)]
pub struct RpmVersion {
    /// Epoch digits, then version, then release.
    text: Box<str>,
    epoch_end: usize,
    version_end: usize,
    has_release: bool,
}

impl RpmVersion {
    /// Splits an EVR the way rpm's `parseEVR` does.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        if input.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Rpm });
        }
        if input.contains('\0') {
            return Err(VersionError::invalid(Scheme::Rpm, input, "contains a NUL byte"));
        }
        let digits = input.bytes().take_while(u8::is_ascii_digit).count();
        let (epoch, rest) = if input.as_bytes().get(digits) == Some(&b':') {
            (&input[..digits], &input[digits + 1..])
        } else {
            ("", input)
        };
        let (version, release) = match rest.rfind('-') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if version.is_empty() {
            return Err(VersionError::invalid(Scheme::Rpm, input, "version part is empty"));
        }
        let mut text = String::with_capacity(input.len());
        text.push_str(epoch);
        text.push_str(version);
        text.push_str(release.unwrap_or(""));
        Ok(RpmVersion {
            text: text.into(),
            epoch_end: epoch.len(),
            version_end: epoch.len() + version.len(),
            has_release: release.is_some(),
        })
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.text.as_bytes(), other.text.as_bytes());
        cmp_digits(&a[..self.epoch_end], &b[..other.epoch_end])
            .then_with(|| rpmvercmp(&a[self.epoch_end..self.version_end], &b[other.epoch_end..other.version_end]))
            .then_with(|| match (self.has_release, other.has_release) {
                (true, true) => rpmvercmp(&a[self.version_end..], &b[other.version_end..]),
                (a, b) => a.cmp(&b),
            })
    }
}

ord_via_cmp!(RpmVersion);

/// rpm's `rpmvercmp` (rpm ≥ 4.15, with `^` support) on one version or release string.
pub fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let is_sep = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while a.get(i).is_some_and(is_sep) {
            i += 1;
        }
        while b.get(j).is_some_and(is_sep) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        // Tilde sorts before everything else, including the end of the string.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Caret sorts after the end of the string but before anything else.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else { break };
        let (si, sj) = (i, j);
        let numeric = ca.is_ascii_digit();
        let class: fn(&u8) -> bool = if numeric { u8::is_ascii_digit } else { u8::is_ascii_alphabetic };
        while a.get(i).is_some_and(class) {
            i += 1;
        }
        while b.get(j).is_some_and(class) {
            j += 1;
        }
        if sj == j {
            // Different segment types: numbers are newer than letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let r = if numeric { cmp_digits(&a[si..i], &b[sj..j]) } else { a[si..i].cmp(&b[sj..j]) };
        if r != Ordering::Equal {
            return r;
        }
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        RpmVersion::parse(a).unwrap().cmp(&RpmVersion::parse(b).unwrap())
    }

    fn vc(a: &str, b: &str) -> Ordering {
        rpmvercmp(a.as_bytes(), b.as_bytes())
    }

    #[test]
    fn rpmvercmp_basics() {
        // Cases from rpm's own test suite (tests/rpmvercmp.at).
        assert_eq!(vc("1.0", "1.0"), Ordering::Equal);
        assert_eq!(vc("1.0", "2.0"), Ordering::Less);
        assert_eq!(vc("2.0.1", "2.0.1a"), Ordering::Less);
        assert_eq!(vc("5.5p1", "5.5p2"), Ordering::Less);
        assert_eq!(vc("5.5p10", "5.5p1"), Ordering::Greater);
        assert_eq!(vc("10xyz", "10.1xyz"), Ordering::Less);
        assert_eq!(vc("xyz10", "xyz10.1"), Ordering::Less);
        assert_eq!(vc("xyz.4", "8"), Ordering::Less);
        assert_eq!(vc("1b.fc17", "1.fc17"), Ordering::Less);
        assert_eq!(vc("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(vc("1.0~rc1", "1.0~rc1~git123"), Ordering::Greater);
        assert_eq!(vc("1.0^", "1.0"), Ordering::Greater);
        assert_eq!(vc("1.0^git1", "1.01"), Ordering::Less);
        assert_eq!(vc("1.0^git1", "1.0.1"), Ordering::Less);
        assert_eq!(vc("1.0^20160101", "1.0.1"), Ordering::Less);
        assert_eq!(vc("1.0^20160101^git1", "1.0^20160101"), Ordering::Greater);
        assert_eq!(vc("1.0~rc1^git1", "1.0~rc1"), Ordering::Greater);
        assert_eq!(vc("1.0^git1~pre", "1.0^git1"), Ordering::Less);
        assert_eq!(vc("2.0_1", "2.0.1"), Ordering::Equal);
        assert_eq!(vc("1.0", "1_0"), Ordering::Equal);
        assert_eq!(vc("a", "1"), Ordering::Less);
    }

    #[test]
    fn evr() {
        assert_eq!(cmp("1:1.0-1", "2.0-1"), Ordering::Greater);
        assert_eq!(cmp("0:1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(cmp("1.0-1.el8", "1.0-1.el8_1"), Ordering::Less);
        assert_eq!(cmp("1.0-10.el8", "1.0-9.el8"), Ordering::Greater);
        assert_eq!(cmp("1.0", "1.0-1"), Ordering::Less);
        assert_eq!(cmp("1.0-", "1.0"), Ordering::Greater);
        assert_eq!(cmp("1.0-", "1.0-1"), Ordering::Less);
        assert_eq!(cmp("3.6.8-1.module_el8+123+abc", "3.6.8-1.module_el8+124+abb"), Ordering::Less);
        assert!(RpmVersion::parse("").is_err());
        assert!(RpmVersion::parse("1:-1").is_err());
    }
}
