//! Names of the key-value and object-store buckets the services share
//! (defined in `nats/kv/` and `nats/objects/`), and the key scheme they use.

/// Admission-control storage: one JSON image record per manifest digest.
pub const IMAGES_BUCKET: &str = "TRAWL_IMAGES";
/// Admission-control storage: `<registry>/<repository>/<tag>` → manifest digest.
pub const TAGS_BUCKET: &str = "TRAWL_TAGS";
/// Full reports up to [`INLINE_REPORT_LIMIT`] bytes, keyed like [`IMAGES_BUCKET`].
pub const REPORTS_BUCKET: &str = "TRAWL_REPORTS";
/// Object store of full reports larger than [`INLINE_REPORT_LIMIT`].
pub const LARGE_REPORTS_BUCKET: &str = "TRAWL_LARGE_REPORTS";
/// Registry configurations.
pub const REGISTRIES_BUCKET: &str = "TRAWL_REGISTRIES";
/// The cluster-wide layer cache.
pub const LAYERS_BUCKET: &str = "TRAWL_LAYERS";
/// Controller coordination records.
pub const CONTROL_BUCKET: &str = "TRAWL_CONTROL";
/// Settings changed at run time (key [`AUTOSCALE_SETTINGS_KEY`]), kept without expiry.
pub const SETTINGS_BUCKET: &str = "TRAWL_SETTINGS";
/// The autoscaler's settings in [`SETTINGS_BUCKET`].
pub const AUTOSCALE_SETTINGS_KEY: &str = "autoscale";
/// The lead controller's lease ([`LEADER_KEY`]) and status; entries expire
/// after the bucket's max_age unless renewed.
pub const LEADER_BUCKET: &str = "TRAWL_LEADER";
/// The lease key in [`LEADER_BUCKET`].
pub const LEADER_KEY: &str = "lead";
/// The leader's autoscaler status in [`LEADER_BUCKET`].
pub const AUTOSCALE_STATUS_KEY: &str = "autoscale";

/// Largest encoded report kept in the [`REPORTS_BUCKET`] key-value bucket
/// (its values are limited to 1 MiB, headers included).
pub const INLINE_REPORT_LIMIT: usize = 1_000_000;

/// The key of an image in [`IMAGES_BUCKET`] and the report buckets:
/// `sha256:abc…` becomes `sha256.abc…` (key-value keys cannot hold `:`).
pub fn digest_key(digest: &str) -> String {
    escape_key(&digest.replacen(':', ".", 1))
}

/// The manifest digest a [`digest_key`] stands for.
pub fn digest_from_key(key: &str) -> String {
    unescape_key(key).replacen('.', ":", 1)
}

/// The key of a tag in [`TAGS_BUCKET`]: `<registry>/<repository>/<tag>`, escaped.
pub fn tag_key(registry: &str, repository: &str, tag: &str) -> String {
    format!("{}/{}/{}", escape_key(registry), escape_key(repository), escape_key(tag))
}

/// Makes any text a valid key-value key: bytes outside `[A-Za-z0-9_/-]` (and
/// a `.` that would make an empty subject token) become `=XX`, and `=` is
/// escaped too, so the mapping is reversible.
pub fn escape_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'/' | b'-')
            // A dot separates key tokens: allowed only between two non-dots, inside the text.
            || (b == b'.' && i > 0 && i + 1 < bytes.len() && bytes[i - 1] != b'.' && bytes[i + 1] != b'.');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("=00");
    }
    out
}

/// Reverses [`escape_key`].
pub fn unescape_key(key: &str) -> String {
    if key == "=00" {
        return String::new();
    }
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = key.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_reversible() {
        let valid = |k: &str| {
            !k.is_empty()
                && !k.starts_with('.')
                && !k.ends_with('.')
                && !k.contains("..")
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
        };
        for text in ["sha256:ab12", "library/debian", "v1..2", ".hidden", "a b*c>", "x=y", "1.0", ""] {
            let key = escape_key(text);
            assert!(valid(&key), "{text:?} -> {key:?}");
            assert_eq!(unescape_key(&key), text, "{key}");
        }
        assert_eq!(digest_key("sha256:ab12"), "sha256.ab12");
        assert_eq!(digest_from_key("sha256.ab12"), "sha256:ab12");
        assert_eq!(tag_key("local", "library/debian", "12.5"), "local/library/debian/12.5");
    }
}
