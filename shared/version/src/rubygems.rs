//! Ruby gem versions, parsed and ordered as RubyGems' `Gem::Version` does.
//!
//! A version matches `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?` (surrounding whitespace
//! allowed; blank means `0`). Each `-` is read as `.pre.`, and the version is cut into segments, the maximal
//! runs of digits (numbers) and of letters (strings): `1.0.0.rc1` is `[1, 0, 0, "rc", 1]`. A version with
//! any letter is a prerelease. Comparison uses the canonical segments, where trailing zeros are dropped from
//! the leading numeric part and from the rest separately (`1.0.a == 1.a`, `1.0 == 1`); segments then
//! compare pairwise, a missing one counting as `0`, numbers by value, strings byte-wise, and a string always
//! below a number, so `1.0.a < 1.0 < 1.0.1` and `1.0.rc1 < 1.0`.

use std::cmp::Ordering;

use crate::num::cmp_digits;
use crate::{Scheme, VersionError};

#[derive(Clone, Copy, Debug)]
enum Seg {
    Num { start: u16, len: u16 },
    Str { start: u16, len: u16 },
}

/// A parsed gem version.
#[derive(Clone, Debug)]
pub struct GemVersion {
    text: Box<str>,
    canonical: Vec<Seg>,
    prerelease: bool,
}

fn is_ruby_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn valid(s: &[u8]) -> bool {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    let mut rest = &s[digits..];
    // (\.[0-9a-zA-Z]+)*
    while let Some(after) = rest.strip_prefix(b".") {
        let n = after.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        if n == 0 {
            return false;
        }
        rest = &after[n..];
    }
    if rest.is_empty() {
        return true;
    }
    // -[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*
    let Some(pre) = rest.strip_prefix(b"-") else { return false };
    pre.split(|&c| c == b'.')
        .all(|part| !part.is_empty() && part.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-'))
}

impl GemVersion {
    /// Parses a gem version as `Gem::Version.new` does.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let trimmed = input.trim_matches(is_ruby_space);
        let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
        if !valid(trimmed.as_bytes()) {
            return Err(VersionError::invalid(Scheme::RubyGems, input, "malformed version number string"));
        }
        let text = trimmed.replace('-', ".pre.");
        let b = text.as_bytes();
        let mut segs = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let digit = b[i].is_ascii_digit();
            if !digit && !b[i].is_ascii_alphabetic() {
                i += 1;
                continue;
            }
            let class = |c: &u8| if digit { c.is_ascii_digit() } else { c.is_ascii_alphabetic() };
            let n = b[i..].iter().take_while(|c| class(c)).count();
            let (start, len) = (i as u16, n as u16);
            segs.push(if digit { Seg::Num { start, len } } else { Seg::Str { start, len } });
            i += n;
        }
        let prerelease = segs.iter().any(|s| matches!(s, Seg::Str { .. }));
        let is_zero = |s: &Seg| match *s {
            Seg::Num { start, len } => b[usize::from(start)..][..usize::from(len)].iter().all(|&c| c == b'0'),
            Seg::Str { .. } => false,
        };
        let string_start = segs.iter().position(|s| matches!(s, Seg::Str { .. })).unwrap_or(segs.len());
        let (numeric, strings) = segs.split_at(string_start);
        let keep = |part: &[Seg]| part.iter().rposition(|s| !is_zero(s)).map_or(0, |i| i + 1);
        let mut canonical = Vec::with_capacity(segs.len());
        canonical.extend_from_slice(&numeric[..keep(numeric)]);
        canonical.extend_from_slice(&strings[..keep(strings)]);
        Ok(GemVersion { text: text.into(), canonical, prerelease })
    }

    /// Whether the version contains a letter (`Gem::Version#prerelease?`).
    pub fn is_prerelease(&self) -> bool {
        self.prerelease
    }

    fn bytes(&self, start: u16, len: u16) -> &[u8] {
        &self.text.as_bytes()[usize::from(start)..][..usize::from(len)]
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Seg::Num { start: 0, len: 0 };
        for i in 0..self.canonical.len().max(other.canonical.len()) {
            let l = self.canonical.get(i).copied().unwrap_or(zero);
            let r = other.canonical.get(i).copied().unwrap_or(zero);
            let ord = match (l, r) {
                (Seg::Num { start: a, len: x }, Seg::Num { start: b, len: y }) => {
                    cmp_digits(self.bytes(a, x), other.bytes(b, y))
                }
                (Seg::Str { .. }, Seg::Num { .. }) => Ordering::Less,
                (Seg::Num { .. }, Seg::Str { .. }) => Ordering::Greater,
                (Seg::Str { start: a, len: x }, Seg::Str { start: b, len: y }) => {
                    self.bytes(a, x).cmp(other.bytes(b, y))
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

ord_via_cmp!(GemVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> GemVersion {
        GemVersion::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        v(a).cmp(&v(b))
    }

    #[test]
    fn ordering() {
        // Cases from RubyGems' test_gem_version.rb.
        assert_eq!(cmp("1.0", "1.0.a"), Ordering::Greater);
        assert_eq!(cmp("1.8.2", "0.0.0"), Ordering::Greater);
        assert_eq!(cmp("1.8.2", "1.8.2.a"), Ordering::Greater);
        assert_eq!(cmp("1.8.2.b", "1.8.2.a"), Ordering::Greater);
        assert_eq!(cmp("1.8.2.a10", "1.8.2.a9"), Ordering::Greater);
        assert_eq!(cmp("", "0"), Ordering::Equal);
        assert_eq!(cmp("0.beta.1", "0.0.beta.1"), Ordering::Equal);
        assert_eq!(cmp("0.0.beta", "0.0.beta.1"), Ordering::Less);
        assert_eq!(cmp("0.0.beta", "0.beta.1"), Ordering::Less);
        assert_eq!(cmp("5.a", "5.0.0.rc2"), Ordering::Less);
        assert_eq!(cmp("5.x", "5.0.0.rc2"), Ordering::Greater);
        assert_eq!(cmp("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(cmp("1.0-1", "1.0"), Ordering::Less, "'-' means .pre.");
        assert_eq!(cmp("1.0-1", "1.0.pre.1"), Ordering::Equal);
        assert_eq!(cmp("1.9.3", "1.9.3-p551"), Ordering::Greater);
        assert_eq!(cmp("1.0.0.rc1", "1.0.0.RC1"), Ordering::Greater, "strings compare byte-wise");
        assert_eq!(cmp("1.01", "1.1"), Ordering::Equal);
        assert_eq!(cmp("2.0.0.rc1", "2.0.0.beta2"), Ordering::Greater);
        assert!(v("1.0.a").is_prerelease() && !v("1.0").is_prerelease());
    }

    #[test]
    fn validity() {
        for good in ["1", " 1.0 ", "1.0.a", "1.0-beta-2", "1.0--1", "1.2a3", "\n"] {
            assert!(GemVersion::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["a", "1..0", "1.0.", "1.0-", "1.0-a..b", "junk", "1.0 2", "-1", "1.0_1", "v1.0"] {
            assert!(GemVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
