//! A Distribution API client for crawling: list repositories and tags, resolve
//! tags to manifest digests. It never downloads blobs; that is the scanners' job.
//!
//! Authentication follows the registry's lead. Requests go out anonymously
//! until a `401` says otherwise: a `Basic` challenge switches the client to
//! basic auth for every later request; a `Bearer` challenge sends it to the
//! token realm (with the basic credentials if there are any, anonymously
//! otherwise) for a token, cached per scope (`registry:catalog:*`,
//! `repository:NAME:pull`) until shortly before it expires.
//!
//! A registry is untrusted input. Every body read is capped, pagination is
//! capped and may not leave the registry's origin or revisit a page, names are
//! checked against the Distribution grammar before they go into a URL, and a
//! 429's `Retry-After` is honoured only up to a bound. Credentials live in
//! one field that no `Debug`, error or log line prints.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trawl_protocol::registry::{CredentialSource, RegistryConfigError};
use trawl_protocol::{RegistryConfig, RegistryLogin};

use super::parse::{is_digest, is_repository_name, is_tag, next_link, parse_challenge, parse_retry_after, Challenge};
use super::CrawlError;

/// The manifest media types a crawl accepts, most specific first: an index
/// is what a multi-platform tag points at, and scanners pick the platform.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Default `n` of catalog and tag list requests.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// Default cap on the pages of one listing.
pub const DEFAULT_MAX_PAGES: usize = 100_000;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const LIST_BODY_LIMIT: usize = 8 << 20;
const MANIFEST_BODY_LIMIT: usize = 4 << 20;
const TOKEN_BODY_LIMIT: usize = 1 << 20;
// Page and body caps alone still allow terabytes of names; no real registry
// has a million repositories or a million tags in one repository.
const MAX_ENTRIES: usize = 1_000_000;
const CATALOG_SCOPE: &str = "registry:catalog:*";
// The token spec's default when a token server omits `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
// Renew a little early so a token does not expire between check and use.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
// One token per repository scope: bounded so a huge crawl cannot grow the cache without end.
const TOKEN_CACHE_LIMIT: usize = 4096;

/// How a client retries: 429s after `Retry-After`, 5xx and transport failures after a backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a request answered 429 is sent again.
    pub rate_limit_retries: u32,
    /// The longest `Retry-After` the client waits; a longer one fails at once as rate limited.
    pub max_retry_after: Duration,
    /// The wait after a 429 without a (readable) `Retry-After`.
    pub default_retry_after: Duration,
    /// The waits before each retry of a 5xx or transport failure; its length is the retry count.
    pub backoff: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rate_limit_retries: 3,
            max_retry_after: Duration::from_secs(30),
            default_retry_after: Duration::from_secs(1),
            backoff: vec![Duration::from_millis(200), Duration::from_secs(1)],
        }
    }
}

/// A tag and the manifest it points at now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResolvedTag {
    /// Repository name, e.g. `library/debian`.
    pub repository: String,
    /// Tag, e.g. `12`.
    pub tag: String,
    /// Manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// Manifest media type (an image manifest or an index).
    pub media_type: String,
}

/// A crawling client for one registry configuration.
pub struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    base: Url,
    plain_http: bool,
    // The only place a secret lives; see the `Debug` impl.
    login: Option<RegistryLogin>,
    // "user \"ci\", password from file /run/…": what auth errors tell the operator to check.
    credentials_source: Option<String>,
    page_size: usize,
    max_pages: usize,
    retry: RetryPolicy,
    auth: Mutex<AuthCache>,
}

#[derive(Default)]
struct AuthCache {
    /// The registry asked for basic auth once: send it up front from now on.
    basic: bool,
    tokens: HashMap<String, CachedToken>,
}

struct CachedToken {
    token: String,
    renew_at: Instant,
}

/// What one request presents.
enum Credential {
    Anonymous,
    Basic,
    Bearer(String),
}

/// A response whose status the retry loop did not consume; `body` is read only for 2xx.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Why one attempt failed in a way worth retrying.
enum Failure {
    Status(StatusCode),
    Transport(reqwest::Error),
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .field("url", &self.base.as_str())
            .field("username", &self.login.as_ref().map(|l| l.username.as_str()))
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Validates `config`, reads its credentials and builds the HTTP client.
    pub fn new(config: &RegistryConfig) -> Result<RegistryClient, CrawlError> {
        let registry = config.name.clone();
        let config_error = |e: RegistryConfigError| match e {
            RegistryConfigError::Invalid { field, reason, .. } => {
                CrawlError::Config { registry: registry.clone(), reason: format!("{field}: {reason}") }
            }
            RegistryConfigError::Credentials { reason, .. } => {
                CrawlError::Credentials { registry: registry.clone(), reason }
            }
        };
        config.validate().map_err(config_error)?;
        let login = config.login().map_err(config_error)?;
        let base = Url::parse(&config.url).map_err(|e| CrawlError::Config {
            registry: registry.clone(),
            reason: format!("url {:?}: {e}", config.url),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tls_danger_accept_invalid_certs(config.insecure_tls())
            // An https registry must not be downgraded by a redirect or a token realm.
            .https_only(!config.plain_http())
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("trawl-controller/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CrawlError::Config { registry: registry.clone(), reason: format!("HTTP client: {e}") })?;
        Ok(RegistryClient {
            http,
            registry,
            base,
            plain_http: config.plain_http(),
            login,
            credentials_source: config.credentials.as_ref().map(describe_credentials),
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
            retry: RetryPolicy::default(),
            auth: Mutex::new(AuthCache::default()),
        })
    }

    /// Sets `n`, the entries asked for per catalog or tag list page (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Sets the cap on pages per listing (at least 1); reaching it is [`CrawlError::TooManyPages`].
    pub fn with_max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    /// Sets how rate limits, server errors and transport failures are retried.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The configuration's name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Every repository in the registry (`/v2/_catalog`, all pages), sorted and deduplicated.
    pub async fn catalog(&self) -> Result<Vec<String>, CrawlError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let url = self.list_url("/v2/_catalog");
        self.paginate(url, CATALOG_SCOPE, |p: Page| p.repositories.unwrap_or_default()).await
    }

    /// Every tag of `repository` (`/v2/<name>/tags/list`, all pages), sorted and deduplicated.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, CrawlError> {
        #[derive(Deserialize)]
        struct Page {
            // `null` for a repository whose tags were all deleted.
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        self.check_repository(repository)?;
        let url = self.list_url(&format!("/v2/{repository}/tags/list"));
        self.paginate(url, &pull_scope(repository), |p: Page| p.tags.unwrap_or_default()).await
    }

    /// The manifest digest and media type `repository:tag` points at.
    ///
    /// A `HEAD` usually suffices (`Docker-Content-Digest`); when it names no
    /// digest or media type, the manifest is fetched (at most 4 MiB) and hashed.
    pub async fn resolve(&self, repository: &str, tag: &str) -> Result<ResolvedTag, CrawlError> {
        self.check_repository(repository)?;
        if !is_tag(tag) {
            return Err(CrawlError::InvalidName { registry: self.registry.clone(), what: "tag", name: tag.into() });
        }
        let url = self.endpoint(&format!("/v2/{repository}/manifests/{tag}"));
        let scope = pull_scope(repository);
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let resolved = |digest: String, media_type: String| ResolvedTag {
            repository: repository.into(),
            tag: tag.into(),
            digest,
            media_type,
        };
        match self.fetch(Method::HEAD, &url, &scope, Some(&accept), 0).await {
            Ok(reply) => {
                if let (Some(digest), Some(media_type)) = (header_digest(&reply.headers), content_type(&reply.headers))
                {
                    return Ok(resolved(digest, media_type));
                }
            }
            // Some registries and proxies do not implement HEAD on manifests; a GET tells the same.
            Err(CrawlError::BadResponse { .. }) => {}
            Err(e) => return Err(e),
        }
        let reply = self.fetch(Method::GET, &url, &scope, Some(&accept), MANIFEST_BODY_LIMIT).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&reply.body)));
        if let Some(claimed) = header_digest(&reply.headers).filter(|d| d.starts_with("sha256:")) {
            if claimed != digest {
                return Err(self.bad(
                    &Method::GET,
                    &url,
                    format!("the registry names the manifest {claimed}, but its bytes hash to {digest}"),
                ));
            }
        }
        #[derive(Deserialize)]
        struct Manifest {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let manifest: Manifest = serde_json::from_slice(&reply.body)
            .map_err(|e| self.bad(&Method::GET, &url, format!("the manifest is not JSON: {e}")))?;
        // The manifest's own field is authoritative; Content-Type is often a generic `application/json`.
        let media_type = manifest
            .media_type
            .or_else(|| content_type(&reply.headers))
            .ok_or_else(|| self.bad(&Method::GET, &url, "the manifest names no media type".into()))?;
        Ok(resolved(digest, media_type))
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    fn list_url(&self, path: &str) -> Url {
        let mut url = self.endpoint(path);
        url.query_pairs_mut().append_pair("n", &self.page_size.to_string());
        url
    }

    fn check_repository(&self, repository: &str) -> Result<(), CrawlError> {
        if is_repository_name(repository) {
            Ok(())
        } else {
            Err(CrawlError::InvalidName {
                registry: self.registry.clone(),
                what: "repository",
                name: repository.into(),
            })
        }
    }

    /// Follows `Link: <…>; rel="next"` from `first` until a page has none.
    async fn paginate<P: DeserializeOwned>(
        &self,
        first: Url,
        scope: &str,
        items: impl Fn(P) -> Vec<String>,
    ) -> Result<Vec<String>, CrawlError> {
        let mut seen = HashSet::new();
        let mut url = first.clone();
        let mut out = Vec::new();
        for _ in 0..self.max_pages {
            seen.insert(url.to_string());
            let reply = self.fetch(Method::GET, &url, scope, None, LIST_BODY_LIMIT).await?;
            let page: P = serde_json::from_slice(&reply.body)
                .map_err(|e| self.bad(&Method::GET, &url, format!("not a JSON listing: {e}")))?;
            out.extend(items(page));
            if out.len() > MAX_ENTRIES {
                return Err(self.bad(&Method::GET, &first, format!("the listing exceeds {MAX_ENTRIES} entries")));
            }
            let links = reply.headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok());
            let Some(target) = next_link(links) else {
                out.sort();
                out.dedup();
                return Ok(out);
            };
            let next = url
                .join(&target)
                .map_err(|e| self.bad(&Method::GET, &url, format!("next-page link {target:?}: {e}")))?;
            if next.origin() != self.base.origin() {
                // Following it would send the registry's credentials to another host.
                return Err(self.bad(
                    &Method::GET,
                    &url,
                    format!("the next-page link {target:?} leaves {}; refusing to follow it", self.base),
                ));
            }
            if seen.contains(next.as_str()) {
                return Err(self.bad(
                    &Method::GET,
                    &url,
                    format!("the next-page link {target:?} points back to a page already read"),
                ));
            }
            url = next;
        }
        Err(CrawlError::TooManyPages {
            registry: self.registry.clone(),
            request: describe(&Method::GET, &first),
            pages: self.max_pages,
        })
    }

    /// Sends an authenticated request for `scope` and returns its 2xx reply,
    /// answering at most one basic and one bearer challenge on the way.
    async fn fetch(
        &self,
        method: Method,
        url: &Url,
        scope: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Reply, CrawlError> {
        let mut tried_basic = false;
        // A token fetched for this very request is used even if already stale in the cache's eyes.
        let mut fresh_token: Option<String> = None;
        loop {
            let credential = match &fresh_token {
                Some(token) => Credential::Bearer(token.clone()),
                None => self.credential_for(scope),
            };
            let reply = self.exchange(&method, url, &credential, accept, limit).await?;
            match reply.status {
                status if status.is_success() => return Ok(reply),
                StatusCode::UNAUTHORIZED => {
                    let challenges: Vec<Challenge> = reply
                        .headers
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .filter_map(parse_challenge)
                        .collect();
                    let bearer = challenges.iter().find_map(|c| match c {
                        Challenge::Bearer { realm, service, scope, error } => Some((realm, service, scope, error)),
                        Challenge::Basic => None,
                    });
                    if let (Some((realm, service, wanted, _)), None) = (bearer, &fresh_token) {
                        // The registry knows best which scope it wants (it may add actions).
                        let token =
                            self.fetch_token(realm, service.as_deref(), wanted.as_deref().unwrap_or(scope)).await?;
                        self.cache_token(scope, &token);
                        fresh_token = Some(token.token);
                        continue;
                    }
                    if challenges.contains(&Challenge::Basic) && self.login.is_some() && !tried_basic {
                        tried_basic = true;
                        self.lock_auth().basic = true;
                        continue;
                    }
                    let insufficient = bearer.and_then(|(_, _, _, e)| e.as_deref()) == Some("insufficient_scope");
                    return Err(self.refused(&method, url, 401, scope, insufficient || fresh_token.is_some()));
                }
                StatusCode::FORBIDDEN => return Err(self.refused(&method, url, 403, scope, true)),
                StatusCode::NOT_FOUND => {
                    return Err(CrawlError::NotFound {
                        registry: self.registry.clone(),
                        request: describe(&method, url),
                    })
                }
                status => return Err(self.bad(&method, url, format!("status {status}"))),
            }
        }
    }

    fn lock_auth(&self) -> MutexGuard<'_, AuthCache> {
        // The cache holds no invariant a panicking holder could break: ignore the poison.
        self.auth.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn credential_for(&self, scope: &str) -> Credential {
        let cache = self.lock_auth();
        if let Some(cached) = cache.tokens.get(scope).filter(|t| t.renew_at > Instant::now()) {
            return Credential::Bearer(cached.token.clone());
        }
        if cache.basic && self.login.is_some() {
            return Credential::Basic;
        }
        Credential::Anonymous
    }

    fn cache_token(&self, scope: &str, token: &TokenGrant) {
        let mut cache = self.lock_auth();
        if cache.tokens.len() >= TOKEN_CACHE_LIMIT {
            let now = Instant::now();
            cache.tokens.retain(|_, t| t.renew_at > now);
            if cache.tokens.len() >= TOKEN_CACHE_LIMIT {
                cache.tokens.clear();
            }
        }
        let lifetime = token.lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN);
        cache
            .tokens
            .insert(scope.to_owned(), CachedToken { token: token.token.clone(), renew_at: Instant::now() + lifetime });
    }

    /// Asks the challenge's realm for a token for `scope`.
    async fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<TokenGrant, CrawlError> {
        let token_request = format!("token request to {}", redact(realm));
        let bad = |reason: String| CrawlError::BadResponse {
            registry: self.registry.clone(),
            request: token_request.clone(),
            reason,
        };
        let mut url =
            Url::parse(realm).map_err(|e| bad(format!("the challenge's realm {realm:?} is not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.plain_http => {}
            other => {
                return Err(bad(format!(
                    "the token realm uses {other}:// for an https registry; refusing to send credentials there"
                )))
            }
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let credential = if self.login.is_some() { Credential::Basic } else { Credential::Anonymous };
        let reply = self.exchange(&Method::GET, &url, &credential, None, TOKEN_BODY_LIMIT).await?;
        match reply.status {
            status if status.is_success() => {}
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                let hint = match &self.credentials_source {
                    Some(source) => format!("the token server rejected the credentials; check the registry's credentials ({source})"),
                    None => "the token server wants credentials and none are configured; add \"credentials\" to the registry configuration".into(),
                };
                return Err(CrawlError::Auth {
                    registry: self.registry.clone(),
                    request: token_request,
                    status: status.as_u16(),
                    hint,
                });
            }
            status => return Err(bad(format!("the token server answered {status}"))),
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&reply.body).map_err(|e| bad(format!("the token response is not JSON: {e}")))?;
        // The spec names it `token`; OAuth2-style servers send `access_token`.
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the token response has no token".into()))?;
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("the token contains characters not allowed in a header".into()));
        }
        let lifetime = parsed.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok(TokenGrant { token, lifetime })
    }

    /// Sends one request, retrying 429s, 5xx and transport failures per the
    /// retry policy; reads the body (bounded by `limit`) of a 2xx reply only.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        credential: &Credential,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Reply, CrawlError> {
        let mut failures = 0usize;
        let mut rate_limited = 0u32;
        loop {
            let mut builder = self.http.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                builder = builder.header(ACCEPT, accept);
            }
            builder = match (credential, &self.login) {
                (Credential::Basic, Some(login)) => builder.basic_auth(&login.username, Some(&login.password)),
                (Credential::Bearer(token), _) => builder.bearer_auth(token),
                (Credential::Anonymous | Credential::Basic, _) => builder,
            };
            let failure = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let asked = response
                            .headers()
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, SystemTime::now()));
                        let wait = asked.unwrap_or(self.retry.default_retry_after);
                        if rate_limited < self.retry.rate_limit_retries && wait <= self.retry.max_retry_after {
                            rate_limited += 1;
                            tracing::debug!(registry = %self.registry, request = %describe(method, url), wait_ms = wait.as_millis() as u64, "rate limited, waiting");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        return Err(CrawlError::RateLimited {
                            registry: self.registry.clone(),
                            request: describe(method, url),
                            retry_after: asked,
                        });
                    }
                    if status.is_server_error() {
                        Failure::Status(status)
                    } else if !status.is_success() {
                        return Ok(Reply { status, headers: response.headers().clone(), body: Bytes::new() });
                    } else {
                        let headers = response.headers().clone();
                        if *method == Method::HEAD {
                            return Ok(Reply { status, headers, body: Bytes::new() });
                        }
                        match read_bounded(response, limit).await {
                            Ok(Some(body)) => return Ok(Reply { status, headers, body }),
                            Ok(None) => {
                                return Err(self.bad(method, url, format!("the body is larger than {limit} bytes")))
                            }
                            Err(e) => Failure::Transport(e),
                        }
                    }
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() => Failure::Transport(e),
                Err(e) => return Err(self.bad(method, url, error_chain(e))),
            };
            if let Some(&wait) = self.retry.backoff.get(failures) {
                failures += 1;
                tracing::debug!(registry = %self.registry, request = %describe(method, url), attempt = failures, "retrying after a failure");
                tokio::time::sleep(wait).await;
                continue;
            }
            let attempts = u32::try_from(failures + 1).unwrap_or(u32::MAX);
            return Err(match failure {
                Failure::Status(status) => CrawlError::ServerError {
                    registry: self.registry.clone(),
                    request: describe(method, url),
                    status: status.as_u16(),
                    attempts,
                },
                Failure::Transport(e) => CrawlError::Unreachable {
                    registry: self.registry.clone(),
                    url: redact(url.as_str()),
                    reason: format!("{} (after {attempts} attempts)", error_chain(e)),
                },
            });
        }
    }

    fn bad(&self, method: &Method, url: &Url, reason: String) -> CrawlError {
        CrawlError::BadResponse { registry: self.registry.clone(), request: describe(method, url), reason }
    }

    /// The error for a request the registry refused although it was authenticated
    /// (`authenticated`) or because no credentials were offered.
    fn refused(&self, method: &Method, url: &Url, status: u16, scope: &str, authenticated: bool) -> CrawlError {
        let action = if scope == CATALOG_SCOPE {
            "list the repositories (registry:catalog:*); a registry that refuses the catalog can still be crawled by naming the repositories, without globs, in \"repositories\"".to_owned()
        } else {
            format!("pull ({scope})")
        };
        let hint = match &self.credentials_source {
            Some(source) => format!("check the registry's credentials ({source}) and that they may {action}"),
            None if authenticated => {
                format!("anonymous access may not {action}; add \"credentials\" to the registry configuration")
            }
            None => {
                format!("the registry wants credentials to {action}; add \"credentials\" to the registry configuration")
            }
        };
        CrawlError::Auth { registry: self.registry.clone(), request: describe(method, url), status, hint }
    }
}

struct TokenGrant {
    token: String,
    lifetime: Duration,
}

fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// `GET /v2/_catalog?n=2`: the request as errors name it (path and query; no host, no secrets).
fn describe(method: &Method, url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{method} {}?{query}", url.path()),
        None => format!("{method} {}", url.path()),
    }
}

/// A URL without any user-info, for messages.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Where the credentials come from, for messages: names, never values.
fn describe_credentials(c: &CredentialSource) -> String {
    let user = match (&c.username, &c.username_env) {
        (Some(user), _) => format!("user {user:?}"),
        (None, Some(var)) => format!("user from environment variable {var}"),
        (None, None) => "no user".into(),
    };
    let password = match (&c.password_env, &c.password_file) {
        (Some(var), _) => format!("password from environment variable {var}"),
        (None, Some(path)) => format!("password from file {}", path.display()),
        (None, None) => "no password".into(),
    };
    format!("{user}, {password}")
}

fn header_digest(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| is_digest(d))
        .map(str::to_owned)
}

/// The media type of `Content-Type`, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next()?.trim();
    (!media_type.is_empty()).then(|| media_type.to_owned())
}

/// The body, or `None` if it is larger than `limit`; read chunk by chunk so an
/// oversized body is dropped as soon as it passes the limit.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Option<Bytes>, reqwest::Error> {
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(body)))
}

/// A transport error and its causes, without the URL (the caller names it).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "hunter2-secret\n").unwrap();
        let mut config = RegistryConfig::new("r", "https://registry.invalid");
        config.credentials = Some(CredentialSource {
            username: Some("ci".into()),
            password_file: Some(file.clone()),
            ..Default::default()
        });
        let client = RegistryClient::new(&config).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("ci"), "{debug}");
        let url = Url::parse("https://registry.invalid/v2/_catalog?n=5").unwrap();
        let err = client.refused(&Method::GET, &url, 401, CATALOG_SCOPE, true).to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("GET /v2/_catalog?n=5"), "{err}");
    }

    #[test]
    fn configuration_and_credential_problems_are_reported() {
        let mut config = RegistryConfig::new("r", "http://127.0.0.1:5000");
        assert!(matches!(RegistryClient::new(&config), Err(CrawlError::Config { .. })), "http needs insecure");
        config.insecure = true;
        config.credentials = Some(CredentialSource {
            username: Some("ci".into()),
            password_file: Some(PathBuf::from("/nonexistent/trawl-password")),
            ..Default::default()
        });
        match RegistryClient::new(&config) {
            Err(CrawlError::Credentials { reason, .. }) => assert!(reason.contains("/nonexistent/trawl-password")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn credential_sources_are_named_not_shown() {
        let c = CredentialSource {
            username_env: Some("REG_USER".into()),
            password_env: Some("REG_PASS".into()),
            ..Default::default()
        };
        assert_eq!(
            describe_credentials(&c),
            "user from environment variable REG_USER, password from environment variable REG_PASS"
        );
        assert_eq!(redact("https://u:p@auth.example/token?x=1"), "https://auth.example/token?x=1");
    }

    #[test]
    fn content_types_lose_their_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/vnd.oci.image.index.v1+json; charset=utf-8".parse().unwrap());
        assert_eq!(content_type(&headers).as_deref(), Some("application/vnd.oci.image.index.v1+json"));
        headers.insert("docker-content-digest", "sha256:nothex".parse().unwrap());
        assert_eq!(header_digest(&headers), None);
    }
}
