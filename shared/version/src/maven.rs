//! Maven artifact versions, ordered by Maven 3.9's `ComparableVersion`.
//!
//! Maven accepts any string. The (lowercased) version is cut into items at `.` and `-` and at every change
//! between digits and non-digits; a `-`, or a change from digits to letters, opens a nested list, so
//! `1.0-rc-1` is `[1, [rc1]]` and `1.2.3-SNAPSHOT` is `[1, 2, 3, [snapshot]]`; letters directly followed by
//! digits form one "combination" item (`alpha1`, `rc-1` meaning `rc1`). Trailing null items (`0`, the
//! empty qualifier, empty lists) are dropped, so `1.0.0 == 1`. Items compare as:
//!
//! * numbers by value, and above everything else (`1.1 > 1-1 > 1-sp > 1-rc`);
//! * qualifiers by rank: `alpha` < `beta` < `milestone` < `rc` = `cr` < `snapshot` < `""` = `ga` = `final` =
//!   `release` < `sp` < any other word, other words alphabetically; `a1`, `b1`, `m1` mean `alpha1`,
//!   `beta1`, `milestone1`;
//! * a combination by its word, then its number, and above the bare word (`rc1 > rc`);
//! * a nested list below a number but above a qualifier, lists element by element, a missing element
//!   counting as null.
//!
//! Maven's `compareTo` is not a total order on unusual inputs: item types rank numbers > lists > qualifiers
//! regardless of where each sits relative to a *missing* item, so e.g.
//! `1.2.GA.1 < 1.2-alpha < 1.2 < 1.2.GA.1` and `1-xyz < 1-0alpha < 1 < 1-xyz`. Sorting or range matching with such an order gives
//! answers that depend on the order of operations. Here every item is first placed relative to a missing
//! item (its class: pre-release qualifiers < lists that sort below nothing < items equal to nothing <
//! post-release and unknown qualifiers < lists above nothing < numbers), then compared within its class by
//! Maven's own rules. This agrees with Maven wherever Maven is consistent, which covers the versions seen in
//! practice (Maven's own `ComparableVersionTest` cases pass unchanged, see the tests); it differs only on
//! the cycles above and on these other edge cases:
//! * `1-ga1` (a combination whose word is a release alias) compares *equal* to `1` in Maven but *above*
//!   `1-ga`, which Maven also calls equal to `1`; here the number decides, so `1 == 1-ga < 1-ga1`.
//! * a `0` that normalisation keeps in the middle of a version counts as a number (above a missing item)
//!   rather than as nothing; it only matters before a list that itself sorts below nothing (`1.0-0alpha`).
//! * Maven keeps a run of ten or more zeros as a 64-bit or big-integer zero, which it ranks above every
//!   `int`-sized number (so `1.0000000000 > 1.5` there); numbers here compare by value, any length.
//! * Only ASCII digits are digits (Java's `Character.isDigit` also takes other scripts' digits), and
//!   lowercasing is Rust's Unicode lowercasing.

use std::cmp::Ordering;

use crate::num::cmp_digits;
use crate::{Scheme, VersionError};

#[derive(Clone, Debug)]
enum Item {
    /// Digits without leading zeros (`""` is zero).
    Num(Box<str>),
    /// A qualifier, aliases resolved.
    Str(Box<str>),
    /// A qualifier immediately followed by a number.
    Combo(Box<str>, Box<str>),
    /// A nested list and its precomputed class (see [`Item::class`]).
    List(Vec<Item>, u8),
}

/// A parsed Maven version.
#[derive(Clone, Debug)]
pub struct MavenVersion {
    items: Vec<Item>,
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE_INDEX: u8 = 5;

/// `comparableQualifier` as a sortable pair: known qualifiers by index, unknown ones after, alphabetically.
fn qualifier_rank(q: &str) -> (u8, &str) {
    if matches!(q, "ga" | "final" | "release") {
        return (RELEASE_INDEX, "");
    }
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => (i as u8, ""),
        None => (QUALIFIERS.len() as u8, q),
    }
}

fn string_item(value: &str, followed_by_digit: bool) -> Box<str> {
    let value = match value {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "cr" => "rc",
        v => v,
    };
    value.into()
}

/// Digits without leading zeros; `""` for zero.
fn number(digits: &str) -> Box<str> {
    digits.trim_start_matches('0').into()
}

fn parse_item(combination: bool, digit: bool, buf: &str) -> Item {
    if combination {
        let buf = buf.replace('-', "");
        let index = buf.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
        let digits: String = buf[index..].chars().filter(char::is_ascii_digit).collect();
        Item::Combo(string_item(&buf[..index], true), number(&digits))
    } else if digit {
        Item::Num(number(buf))
    } else {
        Item::Str(string_item(buf, false))
    }
}

/// Where an item sorts relative to a missing one (`⊥`), as a class; classes order items first:
/// pre-release qualifiers (0) < lists below `⊥` (1) < items equal to `⊥` (2) < post-release qualifiers (3)
/// < lists above `⊥` (4) < numbers (5).
const CLASS_NULL: u8 = 2;

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Num(n) => n.is_empty(),
            Item::Str(s) => s.is_empty(),
            Item::Combo(..) => false,
            Item::List(l, _) => l.is_empty(),
        }
    }

    /// A qualifier's sort key: rank, then a bare word before a word with a number, then the number.
    fn qualifier_key(&self) -> ((u8, &str), bool, &str) {
        match self {
            Item::Str(s) => (qualifier_rank(s), false, ""),
            Item::Combo(s, n) => (qualifier_rank(s), true, n),
            _ => ((0, ""), false, ""),
        }
    }

    fn class(&self) -> u8 {
        match self {
            Item::Num(_) => 5,
            Item::Str(_) | Item::Combo(..) => {
                let (rank, combo, n) = self.qualifier_key();
                // Divergence (see the module docs): a release-word tie is broken by the number.
                match rank.cmp(&(RELEASE_INDEX, "")).then(if combo && !n.is_empty() {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }) {
                    Ordering::Less => 0,
                    Ordering::Equal => CLASS_NULL,
                    Ordering::Greater => 3,
                }
            }
            Item::List(_, class) => *class,
        }
    }

    fn cmp_item(&self, other: &Item) -> Ordering {
        let class = self.class();
        class.cmp(&other.class()).then_with(|| match (self, other) {
            _ if class == CLASS_NULL => Ordering::Equal,
            (Item::Num(a), Item::Num(b)) => cmp_digits(a.as_bytes(), b.as_bytes()),
            (Item::List(a, _), Item::List(b, _)) => cmp_lists(a, b),
            _ => {
                let ((ra, wa), ca, na) = self.qualifier_key();
                let ((rb, wb), cb, nb) = other.qualifier_key();
                (ra, wa).cmp(&(rb, wb)).then(ca.cmp(&cb)).then_with(|| cmp_digits(na.as_bytes(), nb.as_bytes()))
            }
        })
    }
}

/// Lists compare item by item, the shorter one padded with `⊥`.
fn cmp_lists(a: &[Item], b: &[Item]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let r = match (a.get(i), b.get(i)) {
            (Some(l), Some(r)) => l.cmp_item(r),
            (Some(l), None) => l.class().cmp(&CLASS_NULL),
            (None, Some(r)) => CLASS_NULL.cmp(&r.class()),
            (None, None) => Ordering::Equal,
        };
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

/// Wraps a finished (normalised) list as an item, computing its class once.
fn list_item(items: Vec<Item>) -> Item {
    let class = match cmp_lists(&items, &[]) {
        Ordering::Less => 1,
        Ordering::Equal => CLASS_NULL,
        Ordering::Greater => 4,
    };
    Item::List(items, class)
}

/// `ListItem.normalize()` of Maven 3.9.
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if !list[i].is_null() {
            continue;
        }
        let remove = match list.get(i + 1) {
            None | Some(Item::Str(_)) => true,
            Some(Item::List(next, _)) => matches!(next.first(), Some(Item::Combo(..) | Item::Str(_))),
            _ => false,
        };
        if remove {
            list.remove(i);
        }
    }
}

impl MavenVersion {
    /// Parses a Maven version; every non-empty string is one, as in Maven.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        if input.is_empty() {
            return Err(VersionError::Empty { scheme: Scheme::Maven });
        }
        let version = input.to_lowercase();
        let chars: Vec<(usize, char)> = version.char_indices().collect();
        let end = version.len();
        // The chain of open lists: each list's sub-list (if any) is its last item, so a stack suffices.
        let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
        let mut is_digit = false;
        let mut is_combination = false;
        let mut start = 0usize; // byte offset
        macro_rules! list {
            () => {
                stack.last_mut().expect("the root list is never popped while parsing")
            };
        }
        for (k, &(i, c)) in chars.iter().enumerate() {
            if c == '.' {
                if i == start {
                    list!().push(Item::Num("".into()));
                } else {
                    let item = parse_item(is_combination, is_digit, &version[start..i]);
                    list!().push(item);
                }
                is_combination = false;
                start = i + 1;
            } else if c == '-' {
                if i == start {
                    list!().push(Item::Num("".into()));
                } else {
                    // "X-1" is read as "X1".
                    if !is_digit && k + 1 != chars.len() && chars[k + 1].1.is_ascii_digit() {
                        is_combination = true;
                        continue;
                    }
                    let item = parse_item(is_combination, is_digit, &version[start..i]);
                    list!().push(item);
                }
                start = i + 1;
                if !list!().is_empty() {
                    stack.push(Vec::new());
                }
                is_combination = false;
            } else if c.is_ascii_digit() {
                if !is_digit && i > start {
                    is_combination = true;
                    if !list!().is_empty() {
                        stack.push(Vec::new());
                    }
                }
                is_digit = true;
            } else {
                if is_digit && i > start {
                    let item = parse_item(is_combination, true, &version[start..i]);
                    list!().push(item);
                    start = i;
                    stack.push(Vec::new());
                    is_combination = false;
                }
                is_digit = false;
            }
        }
        if end > start {
            if !is_digit && !list!().is_empty() {
                stack.push(Vec::new());
            }
            let item = parse_item(is_combination, is_digit, &version[start..]);
            list!().push(item);
        }
        // Close the chain from the innermost list out, normalising each.
        let mut child: Option<Vec<Item>> = None;
        while let Some(mut list) = stack.pop() {
            if let Some(c) = child.take() {
                list.push(list_item(c));
            }
            normalize(&mut list);
            child = Some(list);
        }
        Ok(MavenVersion { items: child.unwrap_or_default() })
    }

    /// Maven's canonical form (`ComparableVersion.getCanonical()`), e.g. `1-rc1` for `1.0.0-RC-1`.
    pub fn canonical(&self) -> String {
        fn write(items: &[Item], out: &mut String) {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(if matches!(item, Item::List(..)) { '-' } else { '.' });
                }
                match item {
                    Item::Num(n) => out.push_str(if n.is_empty() { "0" } else { n }),
                    Item::Str(s) => out.push_str(s),
                    Item::Combo(s, n) => {
                        out.push_str(s);
                        out.push_str(if n.is_empty() { "0" } else { n });
                    }
                    Item::List(l, _) => write(l, out),
                }
            }
        }
        let mut out = String::new();
        write(&self.items, &mut out);
        out
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_lists(&self.items, &other.items)
    }
}

ord_via_cmp!(MavenVersion);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> MavenVersion {
        MavenVersion::parse(s).unwrap()
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        v(a).cmp(&v(b))
    }

    #[test]
    fn qualifier_order() {
        // From Maven's ComparableVersionTest.VERSIONS_QUALIFIER.
        let chain = [
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ];
        for w in chain.windows(2) {
            assert_eq!(cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn number_order() {
        // From Maven's ComparableVersionTest.VERSIONS_NUMBER.
        let chain = [
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1", "2.1.0.1", "2.2",
            "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11", "11", "11.a", "11b", "11c", "11m",
        ];
        for w in chain.windows(2) {
            assert_eq!(cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn equalities() {
        for (a, b) in [
            ("1", "1.0.0"),
            ("1-ga", "1"),
            ("1-final", "1"),
            ("1-release", "1"),
            ("1.0-GA", "1"),
            ("1-rc-1", "1-rc1"),
            ("1-cr1", "1-rc1"),
            ("1a1", "1-alpha-1"),
            ("1b2", "1-beta-2"),
            ("1m3", "1-milestone-3"),
            ("1X", "1x"),
            ("1-0", "1"),
            ("1.0000000000", "1"),
        ] {
            assert_eq!(cmp(a, b), Ordering::Equal, "{a} == {b}");
        }
        assert_eq!(v("1.0.0-RC-1").canonical(), "1-rc1");
        assert_eq!(cmp("1-ga1", "1-ga"), Ordering::Greater);
        assert_eq!(cmp("1-ga1", "1"), Ordering::Greater, "documented divergence: Maven says equal");
        assert_eq!(cmp("1.0.RC2", "1.0-RC3"), Ordering::Less);
        assert_eq!(cmp("1.0-RC3", "1.0.1"), Ordering::Less);
        assert_eq!(cmp("2.17.1", "2.15.0"), Ordering::Greater);
        assert_eq!(cmp("2.0.0-rc1", "2.0.0"), Ordering::Less);
        assert_eq!(cmp("1.2.3-SNAPSHOT", "1.2.3"), Ordering::Less);
        assert_eq!(cmp("1.2.3.Final", "1.2.3"), Ordering::Equal);
        assert_eq!(cmp("31.1-jre", "31.1-android"), Ordering::Greater);
        assert_eq!(cmp("32.0.0-jre", "31.1-jre"), Ordering::Greater);
        assert_eq!(cmp("1.0000000000", "1.5"), Ordering::Less, "documented divergence: Maven says greater");
    }

    #[test]
    fn maven_cycles_are_broken_consistently() {
        // Maven: 1.2.GA.1 < 1.2-alpha < 1.2 < 1.2.GA.1 (a cycle). Here: 1.2-alpha < 1.2 < 1.2.GA.1.
        assert_eq!(cmp("1.2-alpha", "1.2"), Ordering::Less);
        assert_eq!(cmp("1.2", "1.2.GA.1"), Ordering::Less);
        assert_eq!(cmp("1.2-alpha", "1.2.GA.1"), Ordering::Less);
        // Maven: 1-xyz < 1-0alpha < 1 < 1-xyz. Here: 1-0alpha < 1 < 1-xyz.
        assert_eq!(cmp("1-0alpha", "1"), Ordering::Less);
        assert_eq!(cmp("1", "1-xyz"), Ordering::Less);
        assert_eq!(cmp("1-0alpha", "1-xyz"), Ordering::Less);
        // Realistic neighbours keep Maven's answers.
        assert_eq!(cmp("1.0-1", "1.0.0.1"), Ordering::Less);
        assert_eq!(cmp("2-1", "2.0-1"), Ordering::Less);
        assert_eq!(cmp("2.0", "2-1"), Ordering::Less);
    }

    #[test]
    fn maven_issue_cases() {
        // From Maven's ComparableVersionTest: MNG-5568, MNG-6572, MNG-6964, MNG-7644, leading zeros, case.
        let ordered = [
            ("6.1.0rc3", "6.1.0"),
            ("6.1.0rc3", "6.1H.5-beta"),
            ("6.1.0", "6.1H.5-beta"),
            ("20190126.230843", "1234567890.12345"),
            ("1234567890.12345", "123456789012345.1H.5-beta"),
            ("123456789012345.1H.5-beta", "12345678901234567890.1H.5-beta"),
            ("1-0.alpha", "1"),
            ("1-0.beta", "1"),
            ("1-0.alpha", "1-0.beta"),
            ("0.7", "2"),
            ("0.2", "1.0.7"),
        ];
        for (a, b) in ordered {
            assert_eq!(cmp(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(cmp(b, a), Ordering::Greater, "{b} > {a}");
        }
        for x in ["abc", "alpha", "a", "beta", "b", "def", "milestone", "m", "RC"] {
            assert_eq!(cmp(&format!("1.0.0.{x}1"), &format!("1.0.0-{x}2")), Ordering::Less, "MNG-7644 {x}");
            assert_eq!(cmp(&format!("2-{x}"), &format!("2.0.{x}")), Ordering::Equal, "MNG-7644 {x}");
            assert_eq!(cmp(&format!("2-{x}"), &format!("2.0.0.{x}")), Ordering::Equal, "MNG-7644 {x}");
        }
        let ones = ["0000000000000000001", "0000000001", "000000001", "01", "1"];
        let zeros = ["0000000000000000000", "0000000000", "000000000", "00", "0"];
        for group in [&ones[..], &zeros[..]] {
            for a in group {
                for b in group {
                    assert_eq!(cmp(a, b), Ordering::Equal, "{a} == {b}");
                }
            }
        }
        for group in [
            &["1", "1Ga", "1GA", "1RELEASE", "1release", "1RELeaSE", "1Final", "1FinaL", "1FINAL"][..],
            &["1Cr", "1Rc", "1cR", "1rC"][..],
            &["1m3", "1Milestone3", "1MileStone3", "1MILESTONE3"][..],
            &["1-abcdefghijklmnopqrstuvwxyz", "1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"][..],
        ] {
            for a in group {
                for b in group {
                    assert_eq!(cmp(a, b), Ordering::Equal, "{a} == {b}");
                }
            }
        }
    }
}
