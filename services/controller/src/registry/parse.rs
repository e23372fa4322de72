//! Parsers for what a registry sends back: `WWW-Authenticate` challenges,
//! `Link` headers, `Retry-After`, and the name, tag and digest grammars.
//!
//! They are pure functions over strings so the awkward cases (quoted commas,
//! relative links, HTTP dates) are unit-tested without a server. All of them
//! treat their input as hostile: malformed input yields `None`, never a panic.

use std::time::{Duration, SystemTime};

/// An authentication challenge from a `401` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP basic auth.
    Basic,
    /// The Docker token flow: fetch a token from `realm`.
    Bearer { realm: String, service: Option<String>, scope: Option<String>, error: Option<String> },
}

/// The challenge of one `WWW-Authenticate` value; `None` for schemes we do not speak.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = auth_params(rest);
    let get = |name: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    Some(Challenge::Bearer { realm: get("realm")?, service: get("service"), scope: get("scope"), error: get("error") })
}

/// RFC 7235 auth-params: `key=token` or `key="quoted \"string\""`, comma-separated.
fn auth_params(mut rest: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let (value, remainder) = value_and_rest(after);
        params.push((key.trim().to_owned(), value));
        rest = remainder;
    }
    params
}

/// Splits a token or quoted string off the front of `s`, up to the next top-level comma.
fn value_and_rest(s: &str) -> (String, &str) {
    let s = s.trim_start();
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => return (value, &quoted[i + 1..]),
                c => value.push(c),
            }
        }
        // An unterminated quote swallows the rest, which is the most forgiving reading.
        (value, "")
    } else {
        let end = s.find([',', ';']).unwrap_or(s.len());
        (s[..end].trim().to_owned(), &s[end..])
    }
}

/// The target of the `rel="next"` link among `Link` header values, unresolved.
pub(crate) fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for value in values {
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            let Some(inner) = rest.strip_prefix('<') else { break };
            let Some(close) = inner.find('>') else { break };
            let target = &inner[..close];
            rest = &inner[close + 1..];
            let mut is_next = false;
            // Parameters run until the next link, which starts after a top-level comma.
            loop {
                rest = rest.trim_start_matches([' ', '\t']);
                let Some(param) = rest.strip_prefix(';') else { break };
                let param = param.trim_start();
                let Some((key, after)) = param.split_once('=') else {
                    rest = "";
                    break;
                };
                let (v, remainder) = value_and_rest(after);
                if key.trim().eq_ignore_ascii_case("rel")
                    && v.split_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
                {
                    is_next = true;
                }
                rest = remainder;
            }
            if is_next {
                return Some(target.to_owned());
            }
        }
    }
    None
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date (a past date is no wait).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether `name` is a Distribution repository name: `/`-separated components of
/// lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`, at most 255 bytes.
///
/// Checked before a name goes into a URL, so a hostile catalog cannot smuggle
/// `..`, `?` or `%` into a request path.
pub(crate) fn is_repository_name(name: &str) -> bool {
    name.len() <= 255 && !name.is_empty() && name.split('/').all(is_path_component)
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else { return false };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: exactly `.`, `_` or `__`, or any number of `-`.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        match &b[start..i] {
            b"." | b"_" | b"__" => {}
            sep if sep.iter().all(|&x| x == b'-') => {}
            _ => return false,
        }
    }
    true
}

/// Whether `tag` is a Distribution tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Whether `digest` is `sha256:` + 64 or `sha512:` + 128 lowercase hex digits.
pub(crate) fn is_digest(digest: &str) -> bool {
    let hex =
        |h: &str, len: usize| h.len() == len && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match digest.split_once(':') {
        Some(("sha256", h)) => hex(h, 64),
        Some(("sha512", h)) => hex(h, 128),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="trawl-testkit""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer Realm=https://auth/token, service=s"),
            Some(Challenge::Bearer {
                realm: "https://auth/token".into(),
                service: Some("s".into()),
                scope: None,
                error: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=s"), None, "no realm, no token flow");
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#).map(|_| ()), Some(()));
    }

    #[test]
    fn next_links() {
        assert_eq!(next_link([r#"</v2/_catalog?last=b&n=2>; rel="next""#]).as_deref(), Some("/v2/_catalog?last=b&n=2"));
        assert_eq!(
            next_link([r#"<https://r/a?x=1,2>; rel="prev", <https://r/b>; title="a, b"; rel="last next""#]).as_deref(),
            Some("https://r/b")
        );
        assert_eq!(next_link(["</p>; rel=prev", "</q>;rel=next"]).as_deref(), Some("/q"));
        assert_eq!(next_link([r#"</p>; rel="prev""#]), None);
        assert_eq!(next_link(["garbage", "<unclosed; rel=next"]), None);
    }

    #[test]
    fn retry_after() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn names_tags_and_digests() {
        for ok in ["a", "library/debian", "a.b_c__d---e/f0", "x/y/z"] {
            assert!(is_repository_name(ok), "{ok}");
        }
        for bad in ["", "A", "a/", "/a", "a//b", "..", "a/../b", "a?b", "a%2fb", "a:b", "a..b", "a___b", "-a"] {
            assert!(!is_repository_name(bad), "{bad}");
        }
        assert!(!is_repository_name(&"a".repeat(256)));
        for ok in ["latest", "1.0", "_x", "V1-rc.2"] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", &"a".repeat(129)] {
            assert!(!is_tag(bad), "{bad}");
        }
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("md5:{}", "a".repeat(32))));
    }
}
