//! Helpers shared by the schemes: arbitrary-length decimal comparison and `Ord` boilerplate.

use std::cmp::Ordering;

/// `digits` without its leading `0`s (so `"000"` becomes `""`, which compares as zero).
pub(crate) fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits.iter().position(|&c| c != b'0').unwrap_or(digits.len());
    &digits[start..]
}

/// Compares two ASCII decimal strings by value, of any length, ignoring leading zeros.
pub(crate) fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (trim_zeros(a), trim_zeros(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether `s` is a non-empty run of ASCII digits.
pub(crate) fn is_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Implements `PartialEq`, `Eq` and `PartialOrd` from a type's `Ord`, so equality is the ordering's.
macro_rules! ord_via_cmp {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == std::cmp::Ordering::Equal
            }
        }
        impl Eq for $t {}
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_compare_by_value() {
        assert_eq!(cmp_digits(b"010", b"10"), Ordering::Equal);
        assert_eq!(cmp_digits(b"9", b"10"), Ordering::Less);
        assert_eq!(cmp_digits(b"", b"0"), Ordering::Equal);
        assert_eq!(cmp_digits(b"123456789012345678901234567890", b"123456789012345678901234567891"), Ordering::Less);
        assert!(is_digits(b"0123") && !is_digits(b"") && !is_digits(b"1a"));
    }
}
