//! .NET package versions, parsed and ordered as NuGet.Versioning's `NuGetVersion` does.
//!
//! `major[.minor[.patch[.revision]]][-label(.label)*][+metadata]`: one to four numbers (missing ones are
//! 0, leading zeros allowed, each a 32-bit signed value), then SemVer-style release labels and build
//! metadata, which is ignored. Labels compare pairwise: a label that .NET's `int.TryParse` reads as an
//! integer compares numerically and sorts before any other label; other labels compare ordinally,
//! case-insensitively (`1.0.0-RC1 == 1.0.0-rc1`); a version without labels sorts after one with labels,
//! and of two otherwise equal label lists the shorter sorts first. Like NuGet, all-digit labels with a
//! leading zero (`-01`) are rejected, and surrounding whitespace is trimmed.

use std::cmp::Ordering;

use crate::{Scheme, VersionError};

/// A parsed NuGet version.
#[derive(Clone, Debug)]
pub struct NuGetVersion {
    numbers: [u32; 4],
    /// Release labels joined by `.`; empty when there are none.
    labels: Box<str>,
}

fn is_part(s: &str, allow_leading_zeros: bool) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        && (allow_leading_zeros || !(s.len() > 1 && s.starts_with('0') && s.bytes().all(|c| c.is_ascii_digit())))
}

/// .NET's `int.TryParse` on a label (only digits and `-` can reach here): an optional minus and digits.
fn as_int(label: &str) -> Option<i32> {
    let digits = label.strip_prefix('-').unwrap_or(label);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    label.parse().ok()
}

impl NuGetVersion {
    /// Parses a NuGet version as `NuGetVersion.TryParse` does.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError::invalid(Scheme::NuGet, input, reason);
        let s = input.trim();
        if s.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::NuGet });
        }
        let (rest, metadata) = match s.split_once('+') {
            Some((r, m)) => (r, Some(m)),
            None => (s, None),
        };
        let (core, labels) = match rest.split_once('-') {
            Some((c, l)) => (c, Some(l)),
            None => (rest, None),
        };
        if let Some(m) = metadata {
            if !m.split('.').all(|p| is_part(p, true)) {
                return Err(err("build metadata must be non-empty [0-9A-Za-z-] parts"));
            }
        }
        if let Some(l) = labels {
            if !l.split('.').all(|p| is_part(p, false)) {
                return Err(err("release labels must be non-empty [0-9A-Za-z-] parts without leading zeros"));
            }
        }
        let mut numbers = [0u32; 4];
        for (i, part) in core.split('.').enumerate() {
            let Some(slot) = numbers.get_mut(i) else { return Err(err("more than four version numbers")) };
            if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err("version numbers must be decimal digits"));
            }
            let n: i32 = part.parse().map_err(|_| err("version number does not fit in 32 bits"))?;
            *slot = n.unsigned_abs();
        }
        Ok(NuGetVersion { numbers, labels: labels.unwrap_or("").into() })
    }

    /// Whether the version has release labels.
    pub fn is_prerelease(&self) -> bool {
        !self.labels.is_empty()
    }
}

fn cmp_label(a: &str, b: &str) -> Ordering {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.bytes().map(|c| c.to_ascii_uppercase()).cmp(b.bytes().map(|c| c.to_ascii_uppercase())),
    }
}

impl Ord for NuGetVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers.cmp(&other.numbers).then_with(|| match (self.labels.is_empty(), other.labels.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let (mut a, mut b) = (self.labels.split('.'), other.labels.split('.'));
                loop {
                    match (a.next(), b.next()) {
                        (None, None) => return Ordering::Equal,
                        (None, Some(_)) => return Ordering::Less,
                        (Some(_), None) => return Ordering::Greater,
                        (Some(x), Some(y)) => {
                            let r = cmp_label(x, y);
                            if r != Ordering::Equal {
                                return r;
                            }
                        }
                    }
                }
            }
        })
    }
}

ord_via_cmp!(NuGetVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        NuGetVersion::parse(a).unwrap().cmp(&NuGetVersion::parse(b).unwrap())
    }

    #[test]
    fn ordering() {
        assert_eq!(cmp("1.0", "1.0.0.0"), Ordering::Equal);
        assert_eq!(cmp("1", "1.0.0"), Ordering::Equal);
        assert_eq!(cmp("01.002", "1.2"), Ordering::Equal);
        assert_eq!(cmp("1.0.0.1", "1.0.0"), Ordering::Greater);
        assert_eq!(cmp("1.0.0-beta", "1.0.0"), Ordering::Less);
        assert_eq!(cmp("1.0.0-RC1", "1.0.0-rc1"), Ordering::Equal);
        assert_eq!(cmp("1.0.0-alpha.2", "1.0.0-alpha.10"), Ordering::Less);
        assert_eq!(cmp("1.0.0-2", "1.0.0-a"), Ordering::Less);
        assert_eq!(cmp("1.0.0-alpha", "1.0.0-alpha.1"), Ordering::Less);
        assert_eq!(cmp("1.0.0+build1", "1.0.0+build2"), Ordering::Equal);
        assert_eq!(cmp("13.0.1", "13.0.2-beta1"), Ordering::Less);
        assert_eq!(cmp("1.0.0-x.-5", "1.0.0-x.1"), Ordering::Less, "int.TryParse reads -5 as a number");
        assert_eq!(cmp("1.0.0-99999999999", "1.0.0-a"), Ordering::Less, "too big for int: compared as text");
    }

    #[test]
    fn validity() {
        for bad in ["", "a", "1.0.0.0.0", "1.0.0-", "1.0.0+", "1.0.0-01", "1..0", "2147483648.0", "1.0.0-a_b", "v1.0"] {
            assert!(NuGetVersion::parse(bad).is_err(), "{bad:?}");
        }
        for good in [" 1.0 ", "1.0.0-0", "1.0.0-0a", "1.0.0+01", "2147483647.0"] {
            assert!(NuGetVersion::parse(good).is_ok(), "{good:?}");
        }
    }
}
