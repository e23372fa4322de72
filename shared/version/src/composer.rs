//! PHP package versions (Packagist), normalised by Composer and ordered by PHP's `version_compare`.
//!
//! Composer first normalises a version (composer/semver `VersionParser::normalize`): an optional `v`;
//! one to four dot-separated numbers padded to four (`1.2` → `1.2.0.0`), or a date-like version
//! (`2023-01-05` → `2023.01.05`); a stability modifier, `-`, `_`, `.` or nothing before it, spelled
//! `alpha`/`a`, `beta`/`b`, `RC`, `patch`/`pl`/`p` (any case) with optional numbers (`-beta.2` →
//! `-beta2`), `stable` meaning none; an optional `-dev` suffix; `+build` metadata, `@stability` flags and
//! `x as y` aliases stripped; numeric branches `1.x-dev` → `1.9999999.9999999.9999999-dev`. The normalised
//! strings are then compared by PHP's `version_compare`, which splits them at `.`, `-` and digit/letter
//! changes and ranks the parts: `dev` < `alpha` < `beta` < `RC` < a number < `patch`, and the end of a
//! version just below any number. So `1.0.0-dev < 1.0.0-alpha1 < 1.0.0-beta < 1.0.0-RC1 < 1.0.0 <
//! 1.0.0-patch1 < 1.0.0.1`.
//!
//! Named branches (`dev-main`, `master`) are not versions: Composer never orders them against anything, so
//! they are rejected here, as is anything `normalize` rejects. One divergence: PHP reads each number with
//! `strtol`, which saturates at 2^63 − 1; numbers here compare by value, any length.

use std::cmp::Ordering;

use crate::num::cmp_digits;
use crate::{Scheme, VersionError};

#[derive(Clone, Debug)]
enum Elem {
    /// Digits without leading zeros.
    Num(Box<str>),
    /// A word, by `version_compare`'s special-form rank (−1 for unknown words).
    Word(i8),
}

/// A parsed Composer version: the normalised string and its `version_compare` parts.
#[derive(Clone, Debug)]
pub struct ComposerVersion {
    normalized: Box<str>,
    elems: Vec<Elem>,
}

const END_RANK: i8 = 4;

fn is_pcre_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `([.-]?dev)?$`: `Some(has_dev)` when `r` is exactly that.
fn dev_tail(r: &str) -> Option<bool> {
    if r.is_empty() {
        return Some(false);
    }
    let r = r.strip_prefix(['.', '-']).unwrap_or(r);
    r.eq_ignore_ascii_case("dev").then_some(true)
}

struct Modifier<'a> {
    stability: Option<&'a str>,
    numbers: &'a str,
    dev: bool,
}

/// Matches composer's `$modifierRegex` followed by the end of the string, in PCRE's backtracking order.
fn modifier(rest: &str) -> Option<Modifier<'_>> {
    const STABILITIES: [&str; 9] = ["stable", "beta", "b", "RC", "alpha", "a", "patch", "pl", "p"];
    let mut starts = vec![rest];
    if let Some(r) = rest.strip_prefix(['.', '_', '-']) {
        starts.insert(0, r);
    }
    for r in starts {
        for alt in STABILITIES {
            if !starts_with_ci(r, alt) {
                continue;
            }
            let (stability, after) = r.split_at(alt.len());
            // ((?:[.-]?\d+)*+): possessive, so as many as possible.
            let b = after.as_bytes();
            let mut n = 0;
            loop {
                let sep = usize::from(matches!(b.get(n), Some(b'.' | b'-')));
                let digits = b[(n + sep).min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    break;
                }
                n += sep + digits;
            }
            if let Some(dev) = dev_tail(&after[n..]) {
                return Some(Modifier { stability: Some(stability), numbers: &after[..n], dev });
            }
        }
        if let Some(dev) = dev_tail(r) {
            return Some(Modifier { stability: None, numbers: "", dev });
        }
    }
    None
}

/// `\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3})?` matching all of `s`.
fn date_shape(s: &[u8]) -> bool {
    fn digits(s: &[u8], n: usize) -> bool {
        s.len() >= n && s[..n].iter().all(u8::is_ascii_digit)
    }
    fn skip_sep(s: &[u8]) -> impl Iterator<Item = &[u8]> {
        let with = matches!(s.first(), Some(b'.' | b':' | b'-')).then(|| &s[1..]);
        with.into_iter().chain(std::iter::once(s))
    }
    fn tail(s: &[u8]) -> bool {
        s.is_empty() || skip_sep(s).any(|r| (1..=3).contains(&r.len()) && digits(r, r.len()))
    }
    fn groups(s: &[u8], count: usize) -> bool {
        (count >= 1 && tail(s)) || (count < 6 && skip_sep(s).any(|r| digits(r, 2) && groups(&r[2..], count + 1)))
    }
    digits(s, 4) && groups(&s[4..], 0)
}

fn expand_stability(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "a" => "alpha".into(),
        "b" => "beta".into(),
        "p" | "pl" => "patch".into(),
        "rc" => "RC".into(),
        other => other.into(),
    }
}

/// composer/semver `VersionParser::normalize`, minus branch names (which it returns as `dev-…`).
fn normalize(input: &str) -> Result<String, &'static str> {
    let mut version = input.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0b']);
    // Strip aliasing: "<a> as <b>".
    if let Some((a, rest)) = version.split_once(' ') {
        let rest = rest.trim_start_matches(' ');
        if let Some(b) = rest.strip_prefix("as ") {
            let b = b.trim_start_matches(' ');
            let plain = |t: &str| !t.is_empty() && !t.contains(|c: char| c == ',' || is_pcre_space(c));
            if plain(a) && plain(b) {
                version = a;
            }
        }
    }
    // Strip a stability flag.
    if let Some(at) = version.rfind('@') {
        let flag = &version[at + 1..];
        if ["stable", "RC", "beta", "alpha", "dev"].iter().any(|f| f.eq_ignore_ascii_case(flag)) {
            version = &version[..at];
        }
    }
    if matches!(version, "master" | "trunk" | "default") || starts_with_ci(version, "dev-") {
        return Err("branch names are not ordered");
    }
    // Strip build metadata.
    if let Some((v, build)) = version.split_once('+') {
        if !v.is_empty()
            && !v.contains(|c: char| c == ',' || is_pcre_space(c))
            && !build.is_empty()
            && !build.contains(is_pcre_space)
        {
            version = v;
        }
    }
    let body = version.strip_prefix(['v', 'V']).unwrap_or(version);
    // Classical versioning.
    let b = body.as_bytes();
    let major = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if (1..=5).contains(&major) {
        let mut parts = vec![&body[..major]];
        let mut pos = major;
        while parts.len() < 4 && b.get(pos) == Some(&b'.') {
            let n = b[pos + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                break;
            }
            parts.push(&body[pos + 1..pos + 1 + n]);
            pos += 1 + n;
        }
        if let Some(m) = modifier(&body[pos..]) {
            let mut out = parts.join(".");
            for _ in parts.len()..4 {
                out.push_str(".0");
            }
            return Ok(with_modifier(out, &m));
        }
    }
    // Date-based versioning.
    let run = b.iter().take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b':' | b'-')).count();
    let date_len = b[..run].iter().rposition(u8::is_ascii_digit).map_or(0, |i| i + 1);
    if date_shape(&b[..date_len]) {
        if let Some(m) = modifier(&body[date_len..]) {
            let out: String = body[..date_len].chars().map(|c| if c.is_ascii_digit() { c } else { '.' }).collect();
            return Ok(with_modifier(out, &m));
        }
    }
    // Numeric dev branches: "(.*?)[.-]?dev$".
    if version.len() >= 3
        && version.is_char_boundary(version.len() - 3)
        && version[version.len() - 3..].eq_ignore_ascii_case("dev")
    {
        let name = &version[..version.len() - 3];
        let name = name.strip_suffix(['.', '-']).unwrap_or(name);
        if let Some(branch) = numeric_branch(name) {
            return Ok(branch);
        }
    }
    Err("not a version Composer can normalize")
}

fn with_modifier(mut out: String, m: &Modifier<'_>) -> String {
    if let Some(stability) = m.stability {
        if stability == "stable" {
            return out;
        }
        out.push('-');
        out.push_str(&expand_stability(stability));
        out.push_str(m.numbers.trim_start_matches(['.', '-']));
    }
    if m.dev {
        out.push_str("-dev");
    }
    out
}

/// `normalizeBranch` for numeric branch names (`1.x`, `v2.1.*`); `None` for named branches.
fn numeric_branch(name: &str) -> Option<String> {
    let name = name.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0b']);
    let name = name.strip_prefix(['v', 'V']).unwrap_or(name);
    let mut parts = name.split('.');
    let first = parts.next()?;
    if first.is_empty() || !first.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut out = first.to_owned();
    let mut count = 1;
    for part in parts {
        count += 1;
        if count > 4 || part.is_empty() {
            return None;
        }
        out.push('.');
        match part {
            "x" | "X" | "*" => out.push_str("9999999"),
            p if p.bytes().all(|c| c.is_ascii_digit()) => out.push_str(p),
            _ => return None,
        }
    }
    for _ in count..4 {
        out.push_str(".9999999");
    }
    out.push_str("-dev");
    Some(out)
}

/// `compare_special_version_forms`' rank of a word (prefix match, first hit wins).
fn word_rank(word: &str) -> i8 {
    const FORMS: [(&str, i8); 10] = [
        ("dev", 0),
        ("alpha", 1),
        ("a", 1),
        ("beta", 2),
        ("b", 2),
        ("RC", 3),
        ("rc", 3),
        ("#", 4),
        ("pl", 5),
        ("p", 5),
    ];
    FORMS.iter().find(|(f, _)| word.starts_with(f)).map_or(-1, |&(_, r)| r)
}

/// `php_canonicalize_version` followed by a split into parts.
fn elements(normalized: &str) -> Vec<Elem> {
    let mut canon = String::with_capacity(normalized.len() + 8);
    let mut prev: Option<char> = None;
    for c in normalized.chars() {
        let Some(lp) = prev else {
            canon.push(c);
            prev = Some(c);
            continue;
        };
        let dig = |x: char| x.is_ascii_digit();
        let ndig = |x: char| !x.is_ascii_digit() && x != '.';
        if matches!(c, '-' | '_' | '+') {
            if !canon.ends_with('.') {
                canon.push('.');
            }
        } else if (ndig(lp) && dig(c)) || (dig(lp) && ndig(c)) {
            if !canon.ends_with('.') {
                canon.push('.');
            }
            canon.push(c);
        } else if !c.is_ascii_alphanumeric() {
            if !canon.ends_with('.') {
                canon.push('.');
            }
        } else {
            canon.push(c);
        }
        prev = Some(c);
    }
    canon
        .split('.')
        .map(|p| {
            if p.bytes().next().is_some_and(|c| c.is_ascii_digit()) {
                Elem::Num(p.trim_start_matches('0').into())
            } else {
                Elem::Word(word_rank(p))
            }
        })
        .collect()
}

impl ComposerVersion {
    /// Normalises a Composer version; fails for branch names and what Composer cannot normalise.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        if input.trim().is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Composer });
        }
        let normalized = normalize(input).map_err(|reason| VersionError::invalid(Scheme::Composer, input, reason))?;
        let elems = elements(&normalized);
        Ok(ComposerVersion { normalized: normalized.into(), elems })
    }

    /// The normalised form, as `VersionParser::normalize` returns it (`1.2.0.0-beta1`).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

fn cmp_elem(a: &Elem, b: &Elem) -> Ordering {
    match (a, b) {
        (Elem::Num(x), Elem::Num(y)) => cmp_digits(x.as_bytes(), y.as_bytes()),
        (Elem::Num(_), Elem::Word(r)) => END_RANK.cmp(r),
        (Elem::Word(r), Elem::Num(_)) => r.cmp(&END_RANK),
        (Elem::Word(x), Elem::Word(y)) => x.cmp(y),
    }
}

/// How the parts left over on one side compare with the other side having ended.
fn cmp_tail(rest: &Elem) -> Ordering {
    match rest {
        Elem::Num(_) => Ordering::Greater,
        Elem::Word(r) => r.cmp(&END_RANK),
    }
}

impl Ord for ComposerVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.elems.iter().zip(&other.elems) {
            let r = cmp_elem(a, b);
            if r != Ordering::Equal {
                return r;
            }
        }
        let n = self.elems.len().min(other.elems.len());
        match (self.elems.get(n), other.elems.get(n)) {
            (Some(a), None) => cmp_tail(a),
            (None, Some(b)) => cmp_tail(b).reverse(),
            _ => Ordering::Equal,
        }
    }
}

ord_via_cmp!(ComposerVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        ComposerVersion::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).normalized().to_owned()
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        ComposerVersion::parse(a).unwrap().cmp(&ComposerVersion::parse(b).unwrap())
    }

    #[test]
    fn normalisation() {
        // From composer/semver's VersionParserTest::successfulNormalizedVersions.
        for (raw, norm) in [
            ("1.0.0", "1.0.0.0"),
            ("1.2.3.4", "1.2.3.4"),
            ("1.0.0RC1dev", "1.0.0.0-RC1-dev"),
            ("1.0.0-rC15-dev", "1.0.0.0-RC15-dev"),
            ("1.0.0.RC.15-dev", "1.0.0.0-RC15-dev"),
            ("1.0.0-rc1", "1.0.0.0-RC1"),
            ("1.0.0.pl3-dev", "1.0.0.0-patch3-dev"),
            ("1.0-dev", "1.0.0.0-dev"),
            ("0", "0.0.0.0"),
            ("10.4.13-beta", "10.4.13.0-beta"),
            ("10.4.13beta2", "10.4.13.0-beta2"),
            ("10.4.13beta.2", "10.4.13.0-beta2"),
            ("v1.13.11-beta.0", "1.13.11.0-beta0"),
            ("1.13.11.0-beta0", "1.13.11.0-beta0"),
            ("10.4.13-b", "10.4.13.0-beta"),
            ("10.4.13-b5", "10.4.13.0-beta5"),
            ("v1.0.0", "1.0.0.0"),
            ("v20100102", "20100102"),
            ("2010.01", "2010.01.0.0"),
            ("2010.01.02", "2010.01.02.0"),
            ("2010-01-02", "2010.01.02"),
            ("2010-01-02.5", "2010.01.02.5"),
            ("20100102-203040", "20100102.203040"),
            ("20100102203040-10", "20100102203040.10"),
            ("20100102-203040-p1", "20100102.203040-patch1"),
            ("1.0.0-beta.5+foo", "1.0.0.0-beta5"),
            ("1.0.0+foo", "1.0.0.0"),
            ("1.0.0-alpha.3.1+foo/-bar", "1.0.0.0-alpha3.1"),
            ("1.0.0@stable", "1.0.0.0"),
            ("1.0.0-stable", "1.0.0.0"),
            ("1.x-dev", "1.9999999.9999999.9999999-dev"),
            ("2.1.x-dev", "2.1.9999999.9999999-dev"),
            ("1.0.0 as 1.2.0", "1.0.0.0"),
            ("00.01.03.04", "00.01.03.04"),
            ("041.x-dev", "041.9999999.9999999.9999999-dev"),
            ("123456.0", "123456.0"),
        ] {
            assert_eq!(n(raw), norm, "{raw:?}");
        }
    }

    #[test]
    fn rejects() {
        for bad in ["", "a", "1.0.0-meh", "1.0.0.0.0", "feature-foo", "dev-master", "master", "1.0.0-1", "1.0.0 as"] {
            assert!(ComposerVersion::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn ordering() {
        let chain = [
            "1.0.0-dev",
            "1.0.0-alpha1",
            "1.0.0-alpha2",
            "1.0.0-beta",
            "1.0.0-beta2",
            "1.0.0-RC1",
            "1.0.0",
            "1.0.0-patch1",
            "1.0.1-dev",
            "1.0.1",
            "1.0.10",
            "1.1.x-dev",
            "2.0.0",
        ];
        for w in chain.windows(2) {
            assert_eq!(cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(cmp("v1.0", "1.0.0.0"), Ordering::Equal);
        assert_eq!(cmp("1.0.0-rc1", "1.0.0-RC1"), Ordering::Equal);
        assert_eq!(cmp("1.0.0-beta1-dev", "1.0.0-beta1"), Ordering::Less);
    }
}
