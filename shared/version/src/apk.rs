//! Alpine (apk-tools) package versions: Alpine, Wolfi, Chainguard.
//!
//! A port of apk-tools' current `src/version.c` (the token-state rewrite, with `~hash` support). A version is
//! `digit{.digit}...{letter}{_suffix{number}}...{~hash}{-r#}`, read as a sequence of tokens: the initial
//! number, further `.`-numbers, one lowercase letter, suffixes (`_alpha`, `_beta`, `_pre`, `_rc` sort before
//! the bare version; `_cvs`, `_svn`, `_git`, `_hg`, `_p` after it), each optionally numbered, a `~` commit
//! hash, and the `-rN` package revision. Two versions are compared token by token:
//!
//! * numbers compare by value, except that a `.`-number with a leading zero (`1.02`) makes apk compare the
//!   two digit strings as strings, Gentoo-style;
//! * letters compare by character, suffixes by their rank, hashes as strings;
//! * when one version runs out of tokens, or the token kinds differ, a pre-release suffix loses, and otherwise
//!   the version whose next token is "later in the grammar" (revision after suffix after letter...) is the
//!   smaller one: `1.2 < 1.2a < 1.2.1`, `1.2_rc1 < 1.2 < 1.2_p1 < 1.2-r1`.
//!
//! Like apk, a version that stops conforming to the grammar part-way (`1.0bc`, `0.12.5.-r0`, both real) is
//! still ordered: the tokens before the bad spot count, and the bad spot itself sorts just below the end of a
//! version (so `1.0 < 1.0bc < 1.0b`, exactly apk's answer). apk-tools' own vectors rely on this. A string
//! whose *first* character is not a digit has no such prefix and is rejected.
//!
//! One deliberate divergence: apk reads numbers into a 32-bit integer that silently wraps; we compare numbers
//! of any length by value, which differs only for components of ten or more digits whose wrapped values
//! would order the other way.

use std::cmp::Ordering;

use crate::num::cmp_digits;
use crate::{Scheme, VersionError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is the pivot between pre-release and post-release suffixes.
const SUFFIX_NONE: u8 = 5;
const SUFFIXES: [(&str, u8); 9] =
    [("alpha", 1), ("beta", 2), ("pre", 3), ("rc", 4), ("cvs", 6), ("svn", 7), ("git", 8), ("hg", 9), ("p", 10)];

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    suffix: u8,
    start: u16,
    len: u16,
}

/// A parsed apk version.
#[derive(Clone, Debug)]
pub struct ApkVersion {
    text: Box<str>,
    /// Every token, the last one being `End` or `Invalid`.
    tokens: Vec<Token>,
}

impl ApkVersion {
    /// Tokenises an apk version; fails only when it does not start with a digit.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        if input.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Apk });
        }
        let b = input.as_bytes();
        if !b[0].is_ascii_digit() {
            return Err(VersionError::invalid(Scheme::Apk, input, "does not start with a digit"));
        }
        let mut tokens = Vec::with_capacity(8);
        let mut kind = Kind::InitialDigit;
        let run = |from: usize, pred: fn(&u8) -> bool| from + b[from..].iter().take_while(|c| pred(c)).count();
        // The first token is always the initial number.
        let end = run(0, u8::is_ascii_digit);
        tokens.push(Token { kind, suffix: 0, start: 0, len: end as u16 });
        let mut pos = end;
        loop {
            if pos == b.len() {
                tokens.push(Token { kind: Kind::End, suffix: 0, start: pos as u16, len: 0 });
                break;
            }
            let c = b[pos];
            let next = match c {
                b'a'..=b'z' if kind <= Kind::Digit => {
                    pos += 1;
                    Some(Token { kind: Kind::Letter, suffix: 0, start: (pos - 1) as u16, len: 1 })
                }
                b'.' | b'0'..=b'9' if kind <= Kind::Digit || (c != b'.' && kind == Kind::Suffix) => {
                    let new_kind = if kind == Kind::Suffix { Kind::SuffixNo } else { Kind::Digit };
                    if c == b'.' {
                        pos += 1;
                    }
                    let end = run(pos, u8::is_ascii_digit);
                    let t = (end > pos).then_some(Token {
                        kind: new_kind,
                        suffix: 0,
                        start: pos as u16,
                        len: (end - pos) as u16,
                    });
                    pos = end;
                    t
                }
                b'_' if kind <= Kind::SuffixNo => {
                    let end = run(pos + 1, u8::is_ascii_lowercase);
                    let name = &input[pos + 1..end];
                    let suffix = SUFFIXES.iter().find(|(s, _)| *s == name).map(|&(_, rank)| rank);
                    let t = suffix.map(|suffix| Token {
                        kind: Kind::Suffix,
                        suffix,
                        start: (pos + 1) as u16,
                        len: (end - pos - 1) as u16,
                    });
                    pos = end;
                    t
                }
                b'~' if kind < Kind::CommitHash => {
                    let end = run(pos + 1, |c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
                    let t = (end > pos + 1).then_some(Token {
                        kind: Kind::CommitHash,
                        suffix: 0,
                        start: (pos + 1) as u16,
                        len: (end - pos - 1) as u16,
                    });
                    pos = end;
                    t
                }
                b'-' if kind < Kind::RevisionNo && b.get(pos + 1) == Some(&b'r') => {
                    let end = run(pos + 2, u8::is_ascii_digit);
                    let t = (end > pos + 2).then_some(Token {
                        kind: Kind::RevisionNo,
                        suffix: 0,
                        start: (pos + 2) as u16,
                        len: (end - pos - 2) as u16,
                    });
                    pos = end;
                    t
                }
                _ => None,
            };
            match next {
                Some(t) => {
                    kind = t.kind;
                    tokens.push(t);
                }
                None => {
                    tokens.push(Token { kind: Kind::Invalid, suffix: 0, start: pos as u16, len: 0 });
                    break;
                }
            }
        }
        tokens.shrink_to_fit();
        Ok(ApkVersion { text: input.into(), tokens })
    }

    /// Whether apk-tools considers the whole string a valid version (`apk_version_validate`).
    pub fn is_strictly_valid(&self) -> bool {
        self.tokens.last().is_some_and(|t| t.kind == Kind::End)
    }

    fn value(&self, t: &Token) -> &[u8] {
        let start = usize::from(t.start);
        &self.text.as_bytes()[start..start + usize::from(t.len)]
    }

    fn token_cmp(&self, ta: &Token, other: &ApkVersion, tb: &Token) -> Ordering {
        let (va, vb) = (self.value(ta), other.value(tb));
        match ta.kind {
            Kind::Digit if va.first() == Some(&b'0') || vb.first() == Some(&b'0') => va.cmp(vb),
            Kind::InitialDigit | Kind::Digit | Kind::SuffixNo | Kind::RevisionNo => cmp_digits(va, vb),
            Kind::Letter => va.cmp(vb),
            Kind::Suffix => ta.suffix.cmp(&tb.suffix),
            _ => va.cmp(vb),
        }
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let mut i = 0;
        let (ta, tb) = loop {
            // Both token lists end in End or Invalid, and the loop stops at the first of those.
            let (Some(ta), Some(tb)) = (self.tokens.get(i), other.tokens.get(i)) else {
                return Ordering::Equal;
            };
            if ta.kind != tb.kind || ta.kind >= Kind::End {
                break (ta, tb);
            }
            let r = self.token_cmp(ta, other, tb);
            if r != Ordering::Equal {
                return r;
            }
            i += 1;
        };
        if ta.kind == tb.kind {
            return Ordering::Equal;
        }
        if ta.kind == Kind::Suffix && ta.suffix < SUFFIX_NONE {
            return Ordering::Less;
        }
        if tb.kind == Kind::Suffix && tb.suffix < SUFFIX_NONE {
            return Ordering::Greater;
        }
        tb.kind.cmp(&ta.kind)
    }
}

ord_via_cmp!(ApkVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        ApkVersion::parse(a).unwrap().cmp(&ApkVersion::parse(b).unwrap())
    }

    #[test]
    fn suffixes_and_revisions() {
        assert_eq!(cmp("1.2_alpha1", "1.2_beta"), Ordering::Less);
        assert_eq!(cmp("1.2_rc9", "1.2"), Ordering::Less);
        assert_eq!(cmp("1.2", "1.2_p1"), Ordering::Less);
        assert_eq!(cmp("1.2_p1", "1.2-r1"), Ordering::Greater, "a post-release suffix outranks a revision");
        assert_eq!(cmp("1.2_git20200101", "1.2_p0"), Ordering::Less);
        assert_eq!(cmp("1.2-r9", "1.2-r10"), Ordering::Less);
        assert_eq!(cmp("1.2-r0", "1.2"), Ordering::Greater);
        assert_eq!(cmp("0.1.0_alpha_pre2", "0.1.0_alpha"), Ordering::Less);
    }

    #[test]
    fn letters_and_numbers() {
        assert_eq!(cmp("1.2", "1.2a"), Ordering::Less);
        assert_eq!(cmp("1.2a", "1.2.1"), Ordering::Less);
        assert_eq!(cmp("1.2a", "1.2b"), Ordering::Less);
        assert_eq!(cmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(cmp("1.02", "1.1"), Ordering::Less, "leading zero: string comparison");
        assert_eq!(cmp("1.0", "1.00"), Ordering::Less);
        assert_eq!(cmp("006", "1.06-r6"), Ordering::Greater, "the initial number is always numeric");
        assert_eq!(cmp("1.0_pre20191002222144", "1.0_pre20210530193627"), Ordering::Less);
    }

    #[test]
    fn commit_hash() {
        assert_eq!(cmp("1.0~abc", "1.0~abd"), Ordering::Less);
        assert_eq!(cmp("1.0~abc-r1", "1.0~abc-r2"), Ordering::Less);
        assert!(ApkVersion::parse("1.0~abc").unwrap().is_strictly_valid());
        assert!(!ApkVersion::parse("1.0~").unwrap().is_strictly_valid());
    }

    #[test]
    fn invalid_tails_order_like_apk() {
        assert_eq!(cmp("1.0", "1.0bc"), Ordering::Less);
        assert_eq!(cmp("1.0bc", "1.0b"), Ordering::Less);
        assert_eq!(cmp("0.12.5.-r0", "0.12.5-r0"), Ordering::Less);
        assert_eq!(cmp("0.12.5.-r0", "0.12.4-r9"), Ordering::Greater);
        assert_eq!(cmp("23_foo", "4_beta"), Ordering::Greater);
        assert!(!ApkVersion::parse("1.0bc").unwrap().is_strictly_valid());
        for bad in ["", "r1", "_1", "v1.0", ".1"] {
            assert!(ApkVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
