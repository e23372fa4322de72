//! Python package versions (PEP 440), parsed and ordered as Python's `packaging.version.Version` does.
//!
//! `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`, with PEP 440's normalisation: case-insensitive; an optional
//! leading `v`; surrounding whitespace; `alpha`/`beta`/`c`/`pre`/`preview` spell `a`/`b`/`rc`/`rc`/`rc`; `rev`
//! and `r` spell `post`; `-`, `_` or `.` may separate (or be omitted around) the pre, post and dev parts; a
//! bare `-N` is a post-release; a missing number is 0; local segments may be separated by `-`, `_` or `.`.
//! So `1.0a1 == 1.0-alpha.1 == 1.0.0a1`, `1.0.post1 == 1.0-1 == 1.0r1`, `v1.0 == 1.0`.
//!
//! Order (`packaging`'s `_cmpkey`): epoch; release with trailing zeros dropped; then a dev-only release
//! (`1.0.dev1`) before any pre-release, pre-releases by (a < b < rc, number), then the final release; then
//! post-releases after everything of the same release; then `.devN` before the release it qualifies; a local
//! version sorts after the same public version, local segments comparing numbers by value and above strings.
//! Numbers have no size limit, as in Python.
//!
//! Strings that are not PEP 440 versions (`packaging`'s old `LegacyVersion` territory: `2004d`,
//! `0.9.8-final`, `dev`, ...) are rejected with an error, as `packaging` ≥ 22 rejects them; ordering them the
//! old way would be a guess. One intended divergence on absurd input: Python's case-insensitive regex also
//! accepts a few non-ASCII letters that fold to ASCII ones (the Kelvin sign for `k`, long s for `s`); any
//! non-ASCII character other than surrounding whitespace is rejected here.

use std::cmp::Ordering;

use crate::num::cmp_digits;
use crate::{Scheme, VersionError};

#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u16,
    len: u16,
}

/// A parsed PEP 440 version.
#[derive(Clone, Debug)]
pub struct Pep440Version {
    /// The input, lowercased and trimmed; spans point into it.
    text: Box<str>,
    epoch: Span,
    release: Vec<Span>,
    /// How many release components take part in comparison (trailing zeros dropped).
    release_cmp_len: usize,
    /// Pre-release kind (0 = a, 1 = b, 2 = rc) and number.
    pre: Option<(u8, Span)>,
    post: Option<Span>,
    dev: Option<Span>,
    local: Option<Span>,
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_sep(&mut self) -> bool {
        matches!(self.peek(), Some(b'-' | b'_' | b'.')) && {
            self.pos += 1;
            true
        }
    }

    fn eat_str(&mut self, word: &str) -> bool {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// One or more digits; the span of them.
    fn digits(&mut self) -> Option<Span> {
        let n = self.s[self.pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let span = Span { start: self.pos as u16, len: n as u16 };
        self.pos += n;
        Some(span)
    }

    /// `[-_.]? (one of words) [-_.]? N?`, all or nothing; returns the index of the word and the number.
    fn labelled(&mut self, words: &[&str]) -> Option<(usize, Span)> {
        let save = self.pos;
        self.eat_sep();
        let Some(i) = words.iter().position(|w| self.eat_str(w)) else {
            self.pos = save;
            return None;
        };
        // The separator after the label is optional and greedy; when no number follows it stays consumed,
        // which never hurts: every later part accepts a missing separator, and a `-N` post-release after it
        // would have been taken as this part's number.
        self.eat_sep();
        Some((i, self.digits().unwrap_or_default()))
    }
}

impl Pep440Version {
    /// Parses a PEP 440 version as `packaging.version.Version` does.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError::invalid(Scheme::Pep440, input, reason);
        let trimmed = input.trim_matches(is_py_space);
        if trimmed.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Pep440 });
        }
        if !trimmed.is_ascii() {
            return Err(err("non-ASCII character"));
        }
        let text = trimmed.to_ascii_lowercase();
        let mut c = Cursor { s: text.as_bytes(), pos: 0 };
        c.eat(b'v');
        // Epoch: digits followed by '!'.
        let save = c.pos;
        let epoch = match c.digits() {
            Some(e) if c.eat(b'!') => e,
            _ => {
                c.pos = save;
                Span::default()
            }
        };
        // Release: N(.N)*
        let mut release = Vec::with_capacity(4);
        release.push(c.digits().ok_or_else(|| err("no release number"))?);
        loop {
            let save = c.pos;
            if c.eat(b'.') {
                if let Some(n) = c.digits() {
                    release.push(n);
                    continue;
                }
            }
            c.pos = save;
            break;
        }
        let pre = c.labelled(&["alpha", "a", "beta", "b", "preview", "pre", "c", "rc"]).map(|(i, n)| {
            let kind = match i {
                0 | 1 => 0,
                2 | 3 => 1,
                _ => 2,
            };
            (kind, n)
        });
        let post = {
            let save = c.pos;
            if c.eat(b'-') {
                match c.digits() {
                    Some(n) => Some(n),
                    None => {
                        c.pos = save;
                        c.labelled(&["post", "rev", "r"]).map(|(_, n)| n)
                    }
                }
            } else {
                c.labelled(&["post", "rev", "r"]).map(|(_, n)| n)
            }
        };
        let dev = c.labelled(&["dev"]).map(|(_, n)| n);
        let local = if c.eat(b'+') {
            let start = c.pos;
            loop {
                let n = c.s[c.pos..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
                if n == 0 {
                    return Err(err("empty local version segment"));
                }
                c.pos += n;
                if !c.eat_sep() {
                    break;
                }
            }
            Some(Span { start: start as u16, len: (c.pos - start) as u16 })
        } else {
            None
        };
        if c.pos != c.s.len() {
            return Err(err("not a PEP 440 version"));
        }
        let zero = |s: &Span| text.as_bytes()[usize::from(s.start)..][..usize::from(s.len)].iter().all(|&b| b == b'0');
        let release_cmp_len = release.iter().rposition(|s| !zero(s)).map_or(0, |i| i + 1);
        Ok(Pep440Version { text: text.into(), epoch, release, release_cmp_len, pre, post, dev, local })
    }

    fn get(&self, s: Span) -> &[u8] {
        &self.text.as_bytes()[usize::from(s.start)..][..usize::from(s.len)]
    }

    /// Whether this is a pre-release or a development release (PEP 440's `is_prerelease`).
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// The normalised form, as `str(packaging.version.Version(...))` prints it.
    pub fn normalized(&self) -> String {
        fn num(out: &mut String, digits: &[u8]) {
            let t = crate::num::trim_zeros(digits);
            out.push_str(if t.is_empty() { "0" } else { std::str::from_utf8(t).unwrap_or("0") });
        }
        let mut out = String::new();
        if !crate::num::trim_zeros(self.get(self.epoch)).is_empty() {
            num(&mut out, self.get(self.epoch));
            out.push('!');
        }
        for (i, r) in self.release.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            num(&mut out, self.get(*r));
        }
        if let Some((kind, n)) = self.pre {
            out.push_str(["a", "b", "rc"][usize::from(kind)]);
            num(&mut out, self.get(n));
        }
        if let Some(n) = self.post {
            out.push_str(".post");
            num(&mut out, self.get(n));
        }
        if let Some(n) = self.dev {
            out.push_str(".dev");
            num(&mut out, self.get(n));
        }
        if let Some(l) = self.local {
            out.push('+');
            for (i, seg) in self.get(l).split(|&b| matches!(b, b'-' | b'_' | b'.')).enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if seg.iter().all(u8::is_ascii_digit) {
                    num(&mut out, seg);
                } else {
                    out.push_str(std::str::from_utf8(seg).unwrap_or(""));
                }
            }
        }
        out
    }

    fn cmp_release(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.release[..self.release_cmp_len], &other.release[..other.release_cmp_len]);
        for (x, y) in a.iter().zip(b) {
            let r = cmp_digits(self.get(*x), other.get(*y));
            if r != Ordering::Equal {
                return r;
            }
        }
        a.len().cmp(&b.len())
    }

    /// `_cmpkey`'s pre-release slot: 0 = dev-only release (−∞), 1 = a pre-release, 2 = none (+∞).
    fn pre_rank(&self) -> u8 {
        match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => 0,
            (None, _, _) => 2,
            (Some(_), _, _) => 1,
        }
    }

    fn cmp_local(&self, other: &Self) -> Ordering {
        let (a, b) = match (self.local, other.local) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => (self.get(a), other.get(b)),
        };
        let sep = |b: &u8| matches!(b, b'-' | b'_' | b'.');
        let (mut ia, mut ib) = (a.split(sep), b.split(sep));
        loop {
            match (ia.next(), ib.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => {
                    let r = match (x.iter().all(u8::is_ascii_digit), y.iter().all(u8::is_ascii_digit)) {
                        (true, true) => cmp_digits(x, y),
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        (false, false) => x.cmp(y),
                    };
                    if r != Ordering::Equal {
                        return r;
                    }
                }
            }
        }
    }
}

impl Ord for Pep440Version {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_digits(self.get(self.epoch), other.get(other.epoch))
            .then_with(|| self.cmp_release(other))
            .then_with(|| self.pre_rank().cmp(&other.pre_rank()))
            .then_with(|| match (self.pre, other.pre) {
                (Some((ka, na)), Some((kb, nb))) => ka.cmp(&kb).then_with(|| cmp_digits(self.get(na), other.get(nb))),
                _ => Ordering::Equal,
            })
            .then_with(|| match (self.post, other.post) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => cmp_digits(self.get(a), other.get(b)),
            })
            .then_with(|| match (self.dev, other.dev) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => cmp_digits(self.get(a), other.get(b)),
            })
            .then_with(|| self.cmp_local(other))
    }
}

ord_via_cmp!(Pep440Version);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Pep440Version {
        Pep440Version::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        v(a).cmp(&v(b))
    }

    #[test]
    fn normalisation() {
        for (raw, norm) in [
            ("1.0a1", "1.0a1"),
            ("1.0-alpha.1", "1.0a1"),
            ("1.0.ALPHA-1", "1.0a1"),
            ("1.0c2", "1.0rc2"),
            ("1.0preview", "1.0rc0"),
            ("1.0.post1", "1.0.post1"),
            ("1.0-1", "1.0.post1"),
            ("1.0r", "1.0.post0"),
            ("1.0-rev-2", "1.0.post2"),
            ("v1.0", "1.0"),
            (" 1.0\n", "1.0"),
            ("1!01.002", "1!1.2"),
            ("0!1.0", "1.0"),
            ("1.0.dev", "1.0.dev0"),
            ("1.0a.-dev", "1.0a0.dev0"),
            ("1.0a-", "1.0a0"),
            ("1.0+Ubuntu-1_02", "1.0+ubuntu.1.2"),
            ("1.0a1.post2.dev3+local.7", "1.0a1.post2.dev3+local.7"),
        ] {
            assert_eq!(v(raw).normalized(), norm, "{raw:?}");
        }
    }

    #[test]
    fn ordering() {
        let chain = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.1.dev1",
            "1!0.1",
        ];
        for w in chain.windows(2) {
            assert_eq!(cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(cmp("1.0", "1.0.0.0"), Ordering::Equal);
        assert_eq!(cmp("1.0+a", "1.0+A"), Ordering::Equal);
        assert_eq!(cmp("1.0+1", "1.0+01"), Ordering::Equal);
        assert_eq!(cmp("1.0+1.a", "1.0+1"), Ordering::Greater);
        assert_eq!(cmp("1.99999999999999999999999", "1.100000000000000000000000"), Ordering::Less);
    }

    #[test]
    fn rejects_legacy_versions() {
        for bad in [
            "",
            "2004d",
            "0.9.8-final",
            "1.0b3.4",
            "dev",
            "1.0-b-2.1",
            "1.0+",
            "1.0+a..b",
            "1.0.",
            "1..0",
            "1.0.post.1.1",
            "1.0ß",
            "a1",
            "1.0-",
        ] {
            assert!(Pep440Version::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
