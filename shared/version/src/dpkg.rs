//! Debian package versions, ordered exactly as dpkg does (deb-version(7), `lib/dpkg/version.c`).
//!
//! A version is `[epoch:]upstream_version[-debian_revision]`: the epoch is a decimal number (0 when absent),
//! the revision is everything after the *last* hyphen, the upstream version everything between. Upstream and
//! revision are compared with dpkg's `verrevcmp`: alternately a run of non-digits, compared character by
//! character with letters sorting before non-letters and `~` before everything (even the end of the string),
//! then a run of digits compared numerically. A missing revision compares like `0`.
//!
//! Parsing follows dpkg's `parseversion`: leading and trailing blanks are trimmed; an empty version, embedded
//! blanks, an empty or non-numeric or too large epoch, an empty upstream version, or an empty revision are
//! errors. What dpkg only *warns* about (an upstream version not starting with a digit, characters outside the
//! allowed set) is accepted and ordered as dpkg orders it, because `dpkg --compare-versions` does the same.

use std::cmp::Ordering;

use crate::{Scheme, VersionError};

/// A parsed Debian version.
#[derive(Clone, Debug)]
pub struct DpkgVersion {
    epoch: u32,
    /// Upstream version followed by the revision; `split` is where the revision starts.
    text: Box<str>,
    split: usize,
}

impl DpkgVersion {
    /// Parses a Debian version the way dpkg's `parseversion` does.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError::invalid(Scheme::Dpkg, input, reason);
        let s = input.trim_matches(|c| c == ' ' || c == '\t');
        if s.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Dpkg });
        }
        if s.contains([' ', '\t']) {
            return Err(err("version string has embedded spaces"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() {
                    return Err(err("epoch in version is empty"));
                }
                if !e.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err("epoch in version is not number"));
                }
                let epoch = e.parse::<u32>().ok().filter(|&n| n <= i32::MAX as u32);
                let Some(epoch) = epoch else { return Err(err("epoch in version is too big")) };
                if rest.is_empty() {
                    return Err(err("nothing after colon in version number"));
                }
                (epoch, rest)
            }
            None => (0, s),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if rest.ends_with('-') {
            return Err(err("revision number is empty"));
        }
        if upstream.is_empty() {
            return Err(err("upstream version is empty"));
        }
        let mut text = String::with_capacity(upstream.len() + revision.len());
        text.push_str(upstream);
        text.push_str(revision);
        Ok(DpkgVersion { epoch, text: text.into(), split: upstream.len() })
    }

    fn upstream(&self) -> &[u8] {
        &self.text.as_bytes()[..self.split]
    }

    fn revision(&self) -> &[u8] {
        &self.text.as_bytes()[self.split..]
    }
}

impl Ord for DpkgVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream(), other.upstream()))
            .then_with(|| verrevcmp(self.revision(), other.revision()))
    }
}

ord_via_cmp!(DpkgVersion);

/// dpkg's weight of a non-digit character; the end of the string weighs 0.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` on one upstream version or revision.
pub(crate) fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Numeric part: skip leading zeros, then the longer run wins, else the first differing digit.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        DpkgVersion::parse(a).unwrap().cmp(&DpkgVersion::parse(b).unwrap())
    }

    #[test]
    fn tilde_sorts_before_everything() {
        assert_eq!(cmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0~~", "1.0~"), Ordering::Less);
        assert_eq!(cmp("1.0~~a", "1.0~"), Ordering::Less);
        assert_eq!(cmp("1.0~", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0", "1.0a"), Ordering::Less);
        assert_eq!(cmp("1.0a", "1.0+"), Ordering::Less, "letters sort before non-letters");
        assert_eq!(cmp("1.0+", "1.0."), Ordering::Less);
    }

    #[test]
    fn epoch_and_revision() {
        assert_eq!(cmp("1:0.1", "9.9"), Ordering::Greater);
        assert_eq!(cmp("0:1.0", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1.0", "1.0-0"), Ordering::Equal);
        assert_eq!(cmp("1.0-1", "1.0-1ubuntu1"), Ordering::Less);
        assert_eq!(cmp("1.0-1ubuntu1", "1.0-1+deb10u1"), Ordering::Less, "letters sort before `+`");
        assert_eq!(cmp("2.30-1-2", "2.30-1-10"), Ordering::Less, "revision starts at the last hyphen");
        assert_eq!(cmp("1:2:3-4", "1:2:3-5"), Ordering::Less, "colons after the epoch belong to upstream");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(cmp("1.01", "1.1"), Ordering::Equal);
        assert_eq!(cmp("1.9", "1.10"), Ordering::Less);
        assert_eq!(cmp("1.00000000000000000000000000001", "1.2"), Ordering::Less);
        assert_eq!(cmp("99999999999999999999999", "100000000000000000000000"), Ordering::Less);
    }

    #[test]
    fn parse_errors_follow_dpkg() {
        for bad in ["", "  ", ":1.0", "a:1.0", "1:", "1.0-", "-1", "1.0 2", "99999999999:1"] {
            assert!(DpkgVersion::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        // dpkg only warns about these, and still compares them.
        for warned in ["abc", "1.0_1", " 1.0 "] {
            assert!(DpkgVersion::parse(warned).is_ok(), "{warned:?} should be accepted");
        }
    }
}
