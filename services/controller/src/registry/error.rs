//! What can go wrong while crawling, worded for the operator who has to fix it.
//!
//! Every variant carries the registry's configured name and owned strings
//! only (no `reqwest::Error`), so errors can be cloned into a crawl report and
//! compared in tests. No variant ever holds a credential: messages name the
//! environment variable or file the secret comes from, never its value.

use std::time::Duration;

/// Why talking to a registry failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrawlError {
    /// The registry configuration (URL, globs, client set-up) is unusable.
    #[error("registry {registry:?}: configuration: {reason}; fix the registry configuration")]
    Config {
        /// The configuration's name.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// The credentials named by the configuration could not be read.
    #[error("registry {registry:?}: credentials: {reason}; provide them to the controller or fix the configuration")]
    Credentials {
        /// The configuration's name.
        registry: String,
        /// What is missing: a variable or file name, never a value.
        reason: String,
    },
    /// The registry or its token server could not be reached (connection refused, DNS, TLS, timeout).
    #[error(
        "registry {registry:?}: cannot reach {url}: {reason}; check the URL, the network and that the registry is up"
    )]
    Unreachable {
        /// The configuration's name.
        registry: String,
        /// The URL that failed (never carries credentials).
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The registry (or its token server) refused the request after authenticating.
    #[error("registry {registry:?}: {request} was refused ({status}): {hint}")]
    Auth {
        /// The configuration's name.
        registry: String,
        /// The request, e.g. `GET /v2/_catalog`.
        request: String,
        /// 401 or 403.
        status: u16,
        /// What to check: the credentials' source (variable or file), never their value.
        hint: String,
    },
    /// The repository, tag or endpoint does not exist.
    #[error(
        "registry {registry:?}: {request}: not found (404); check the repository and tag names (the image may have been deleted)"
    )]
    NotFound {
        /// The configuration's name.
        registry: String,
        /// The request.
        request: String,
    },
    /// The registry kept answering 429, or asked for a longer wait than the crawler accepts.
    #[error("registry {registry:?}: {request}: rate limited (429){}; crawl less often or with less concurrency", retry_after_text(.retry_after))]
    RateLimited {
        /// The configuration's name.
        registry: String,
        /// The request.
        request: String,
        /// How long the registry asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The registry kept failing with a 5xx status.
    #[error(
        "registry {registry:?}: {request}: server error {status} after {attempts} attempts; the registry is failing, check its logs and crawl again later"
    )]
    ServerError {
        /// The configuration's name.
        registry: String,
        /// The request.
        request: String,
        /// The last status.
        status: u16,
        /// How many times the request was sent.
        attempts: u32,
    },
    /// The answer was not what the Distribution API specifies (not JSON, too large, bad digest, bad link).
    #[error(
        "registry {registry:?}: {request}: unexpected response: {reason}; check that the URL points at a container registry"
    )]
    BadResponse {
        /// The configuration's name.
        registry: String,
        /// The request.
        request: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Pagination did not end within the page cap.
    #[error(
        "registry {registry:?}: {request}: still paginating after {pages} pages; the registry keeps sending next links, report it to its operators"
    )]
    TooManyPages {
        /// The configuration's name.
        registry: String,
        /// The first page's request.
        request: String,
        /// The cap that was reached.
        pages: usize,
    },
    /// A repository name or tag is not valid Distribution syntax, so it cannot be put in a URL.
    #[error("registry {registry:?}: {what} {name:?} is not a valid name; skip it or fix the configuration")]
    InvalidName {
        /// The configuration's name.
        registry: String,
        /// `repository` or `tag`.
        what: &'static str,
        /// The offending name.
        name: String,
    },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", asked to retry after {} s", d.as_secs()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_failed_and_what_to_do() {
        let e = CrawlError::RateLimited {
            registry: "hub".into(),
            request: "GET /v2/_catalog".into(),
            retry_after: Some(Duration::from_secs(120)),
        };
        assert_eq!(
            e.to_string(),
            "registry \"hub\": GET /v2/_catalog: rate limited (429), asked to retry after 120 s; crawl less often or with less concurrency"
        );
        let e = CrawlError::ServerError {
            registry: "hub".into(),
            request: "HEAD /v2/a/manifests/1".into(),
            status: 503,
            attempts: 3,
        };
        assert!(e.to_string().contains("503 after 3 attempts"), "{e}");
    }
}
