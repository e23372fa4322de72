//! Hostile input: random and garbage strings never make parsing or comparison panic, and whatever parses
//! is totally ordered (antisymmetric, transitive, equality consistent with the order) in every scheme.

mod common;

use std::cmp::Ordering;

use common::*;
use trawl_version::{compare, Scheme, Version, VersionError, MAX_VERSION_LEN};

const TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    "00",
    "01",
    "10",
    "99999999999999999999",
    "4294967296",
    ".",
    ".",
    "-",
    "-",
    "_",
    "+",
    "~",
    "^",
    ":",
    "!",
    "@",
    " ",
    "a",
    "b",
    "c",
    "p",
    "r",
    "x",
    "z",
    "A",
    "RC",
    "rc",
    "alpha",
    "beta",
    "pre",
    "post",
    "dev",
    "SNAPSHOT",
    "ga",
    "final",
    "release",
    "sp",
    "cr",
    "m",
    "patch",
    "pl",
    "stable",
    "git",
    "svn",
    "hg",
    "cvs",
    "-r",
    "v",
    "go",
    "dev-",
    ".x",
    "*",
    "as",
    "\t",
    "\n",
    "é",
    "ß",
    "İ",
    "\u{0}",
    "\u{a0}",
    "🦀",
    "#",
    "/",
    ",",
];

fn garbage(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = String::new();
        if i % 3 == 0 {
            // Raw characters, including arbitrary Unicode scalar values.
            for _ in 0..rng.below(24) {
                let c = match rng.below(4) {
                    0 => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?'),
                    1 => (b'0' + rng.below(10) as u8) as char,
                    _ => b".-_+~^:!abcdeprvxRC "[rng.below(20)] as char,
                };
                s.push(c);
            }
        } else {
            // Version-looking token soup.
            for _ in 0..rng.below(12) {
                s.push_str(TOKENS[rng.below(TOKENS.len())]);
            }
        }
        out.push(s);
    }
    out
}

#[test]
fn garbage_never_panics_and_parsed_garbage_is_totally_ordered() {
    let strings = garbage(6_000, 0xDEAD_BEEF);
    for scheme in Scheme::ALL {
        let (parsed, _) = parse_all(scheme, &strings);
        for v in &parsed {
            assert_eq!(v.scheme(), scheme);
            assert_eq!(v.cmp_to(v), Some(Ordering::Equal), "reflexive: {v:?}");
        }
        check_total_order(&parsed, 30_000, 0xBEEF ^ scheme as u64);
        check_sorted_consistency(&parsed, 30_000, 0xF00D ^ scheme as u64);
        eprintln!("{scheme}: {} of {} garbage strings parse; all orderings total", parsed.len(), strings.len());
    }
}

#[test]
fn oversized_input_is_refused_without_work() {
    let long = "1.".repeat(MAX_VERSION_LEN) + "1";
    for scheme in Scheme::ALL {
        match Version::parse(scheme, &long) {
            Err(VersionError::TooLong { scheme: s, len, max }) => {
                assert_eq!((s, len, max), (scheme, long.len(), MAX_VERSION_LEN));
            }
            other => panic!("{scheme}: expected TooLong, got {other:?}"),
        }
    }
    // The longest accepted input still parses and compares.
    let max = "1.".repeat(MAX_VERSION_LEN / 2 - 1) + "1";
    assert!(max.len() <= MAX_VERSION_LEN);
    for scheme in [Scheme::Dpkg, Scheme::Rpm, Scheme::Apk, Scheme::Pep440, Scheme::Maven, Scheme::RubyGems] {
        assert_eq!(compare(scheme, &max, &max).unwrap(), Ordering::Equal, "{scheme}");
    }
}

#[test]
fn errors_name_the_scheme() {
    for scheme in Scheme::ALL {
        for bad in ["", "   "] {
            if let Err(e) = Version::parse(scheme, bad) {
                assert_eq!(e.scheme(), scheme);
                assert!(e.to_string().contains(scheme.name()), "{e}");
            }
        }
    }
    let e = Version::parse(Scheme::Pep440, "1.0-beta-x").unwrap_err();
    assert_eq!(e.to_string(), "invalid pep440 version \"1.0-beta-x\": not a PEP 440 version");
}
