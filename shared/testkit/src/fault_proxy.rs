//! A reverse proxy in front of a real [`Registry`](crate::Registry) that answers chosen
//! requests with errors: HTTP 500s, 429s with `Retry-After`, for every matching request or
//! only the first few — or forwards them late ([`FaultRule::slow`]), so that scans take a
//! known time.
//!
//! Why: a real `docker-registry` cannot be told to fail. Rate limits, server errors and flaky
//! upstreams are what a scanner's retry logic exists for, and testing that logic against the
//! real registry means putting something between the two that fails on purpose — while every
//! other request (method, path, query, headers, body, and the registry's whole answer) goes
//! through untouched, so the registry's real behaviour is what the client sees otherwise.
//!
//! Images are referenced through the proxy ([`FaultProxy::host`]); rules ([`FaultRule`]) match
//! request paths and can be added while the proxy runs. Each rule counts the requests it
//! answered ([`FaultProxy::answered`]), so a test can tell that a client really retried.
//!
//! ```no_run
//! use trawl_testkit::{FaultProxy, FaultRule, Registry};
//!
//! # fn example() -> anyhow::Result<()> {
//! let registry = Registry::start()?;
//! let proxy = FaultProxy::start(&registry)?;
//! let limited = proxy.add_rule(FaultRule::rate_limited("/v2/team/app/blobs/", 1));
//! let flaky = proxy.add_rule(FaultRule::status("/v2/*/manifests/*", 500).first(2));
//! // Pull `{proxy.host()}/team/app:1.0`; afterwards:
//! assert!(proxy.answered(limited) >= 1 && proxy.answered(flaky) <= 2);
//! # Ok(())
//! # }
//! ```
//!
//! Like the other server fixtures it is synchronous to start and stop: it runs on its own
//! thread and Tokio runtime, and stops when dropped.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::push::RegistryEndpoint;

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Which requests a [`FaultRule`] answers, and how.
///
/// The pattern is matched against the request path (without the query). Without `*` it is a
/// prefix (`/v2/team/app/blobs/` matches every blob of `team/app`); with `*` it must match the
/// whole path, each `*` standing for any run of characters (`/v2/*/manifests/*`).
#[derive(Debug, Clone)]
pub struct FaultRule {
    pattern: String,
    method: Option<Method>,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    content_type: &'static str,
    limit: Option<u64>,
    /// Forward after this long instead of answering with the fault ([`FaultRule::slow`]).
    delay: Option<std::time::Duration>,
}

impl FaultRule {
    /// Answers requests whose path matches `pattern` with `status` (and a short text body).
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code (100–999): a mistake in the test itself.
    pub fn status(pattern: &str, status: u16) -> FaultRule {
        let status = StatusCode::from_u16(status).expect("FaultRule::status: not an HTTP status code");
        FaultRule {
            pattern: pattern.to_owned(),
            method: None,
            status,
            headers: Vec::new(),
            body: Bytes::from(format!(
                "{} {}: fault injected by trawl-testkit FaultProxy\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("error")
            )),
            content_type: "text/plain; charset=utf-8",
            limit: None,
            delay: None,
        }
    }

    /// Forwards matching requests to the registry after `delay`, as a slow
    /// or distant registry answers: scans then take a predictable time.
    pub fn slow(pattern: &str, delay: std::time::Duration) -> FaultRule {
        FaultRule { delay: Some(delay), ..FaultRule::status(pattern, 200) }
    }

    /// Answers matching requests `429 Too Many Requests` with `Retry-After: <seconds>` and the
    /// OCI error envelope a distribution registry sends (`TOOMANYREQUESTS`).
    pub fn rate_limited(pattern: &str, retry_after_secs: u64) -> FaultRule {
        let body = serde_json::json!({"errors": [{
            "code": "TOOMANYREQUESTS",
            "message": "too many requests: fault injected by trawl-testkit FaultProxy",
            "detail": null,
        }]});
        FaultRule::status(pattern, 429).header(RETRY_AFTER.as_str(), &retry_after_secs.to_string()).json_body(body)
    }

    /// Only requests with this method (`GET`, `HEAD`, …) match.
    ///
    /// # Panics
    /// If `method` is not a valid method token.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(Method::from_bytes(method.as_bytes()).expect("FaultRule::method: not an HTTP method"));
        self
    }

    /// Adds a header to the answer (e.g. `Retry-After`).
    ///
    /// # Panics
    /// If `name` or `value` is not valid in an HTTP header.
    pub fn header(mut self, name: &str, value: &str) -> FaultRule {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("FaultRule::header: invalid header name");
        let value = HeaderValue::from_str(value).expect("FaultRule::header: invalid header value");
        self.headers.push((name, value));
        self
    }

    /// Replaces the answer's body with text.
    pub fn body(mut self, body: impl Into<Bytes>) -> FaultRule {
        self.body = body.into();
        self.content_type = "text/plain; charset=utf-8";
        self
    }

    /// Replaces the answer's body with JSON.
    pub fn json_body(mut self, body: serde_json::Value) -> FaultRule {
        self.body = Bytes::from(body.to_string());
        self.content_type = "application/json";
        self
    }

    /// Answers only the first `k` matching requests; later ones are forwarded.
    pub fn first(mut self, k: u64) -> FaultRule {
        self.limit = Some(k);
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && path_matches(&self.pattern, path)
    }
}

/// Whether `path` matches `pattern` (see [`FaultRule`]).
fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            // The last part anchors the end; the `*` before it takes whatever is left over.
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// A rule's handle, returned by [`FaultProxy::add_rule`], for reading its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(usize);

struct ActiveRule {
    rule: FaultRule,
    answered: AtomicU64,
    enabled: AtomicBool,
}

impl ActiveRule {
    /// Counts one more answer unless the rule's limit is reached; whether it answers.
    fn take(&self) -> bool {
        self.answered
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                self.rule.limit.is_none_or(|k| n < k).then_some(n + 1)
            })
            .is_ok()
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    rules: Mutex<Vec<Arc<ActiveRule>>>,
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, Vec<Arc<ActiveRule>>> {
        // Rules are only ever pushed: a panic elsewhere leaves the list usable.
        self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fault-injecting reverse proxy on a free `127.0.0.1` port (plain HTTP); stops when
/// dropped. See the module docs.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (a [`Registry`](crate::Registry), or a base URL / `host:port`).
    pub fn start<R: RegistryEndpoint + ?Sized>(upstream: &R) -> Result<FaultProxy> {
        // No redirects followed: the client must see the registry's own answers.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("build the fault proxy's HTTP client")?;
        let shared = Arc::new(Shared {
            upstream: upstream.base_url(),
            client,
            rules: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
        });
        // Bound here, not on the server thread: the port is ours from now on and every start-up
        // error reaches the caller.
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("bind the fault proxy")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("start the fault proxy's runtime")?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("trawl-fault-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(e) = result {
                                eprintln!("trawl-testkit fault proxy stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime aborts connections still open (idle keep-alives).
            })
            .context("spawn the fault proxy thread")?;
        Ok(FaultProxy { addr, shared, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `127.0.0.1:PORT`: the registry host to reference images by, so they go through the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a rule, effective for the next request. Rules are tried in the order added; the
    /// first that matches (and has answers left) answers.
    pub fn add_rule(&self, rule: FaultRule) -> RuleId {
        let mut rules = self.shared.rules();
        rules.push(Arc::new(ActiveRule { rule, answered: AtomicU64::new(0), enabled: AtomicBool::new(true) }));
        RuleId(rules.len() - 1)
    }

    /// Stops a rule from answering (its count stays readable); matching requests are forwarded.
    pub fn remove_rule(&self, id: RuleId) {
        if let Some(rule) = self.shared.rules().get(id.0) {
            rule.enabled.store(false, Ordering::SeqCst);
        }
    }

    /// How many requests rule `id` has answered with its fault.
    pub fn answered(&self, id: RuleId) -> u64 {
        self.shared.rules().get(id.0).map_or(0, |r| r.answered.load(Ordering::SeqCst))
    }

    /// How many requests were forwarded to the registry (whatever it answered).
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// How many forwarded requests got no answer from the registry (answered `502` instead).
    pub fn upstream_errors(&self) -> u64 {
        self.shared.upstream_errors.load(Ordering::SeqCst)
    }
}

impl RegistryEndpoint for FaultProxy {
    fn base_url(&self) -> String {
        self.url()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("url", &self.url()).field("upstream", &self.shared.upstream).finish()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let rule = {
        let rules = shared.rules();
        rules
            .iter()
            .find(|r| {
                r.enabled.load(Ordering::SeqCst) && r.rule.matches(request.method(), request.uri().path()) && r.take()
            })
            .cloned()
    };
    match rule {
        Some(active) => match active.rule.delay {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                forward(&shared, request).await
            }
            None => fault_response(&active.rule),
        },
        None => forward(&shared, request).await,
    }
}

fn fault_response(rule: &FaultRule) -> Response {
    let mut response = Response::new(Body::from(rule.body.clone()));
    *response.status_mut() = rule.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(rule.content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(rule.body.len()));
    for (name, value) in &rule.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}

/// Sends `request` on to the registry and streams its answer back, both unchanged but for
/// hop-by-hop headers. `Host` is kept, so the registry's `Location`s point at the proxy.
async fn forward(shared: &Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", shared.upstream);
    let has_body = parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    let mut upstream = shared.client.request(parts.method, url).headers(without_hop_by_hop(&parts.headers));
    if has_body {
        upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    match upstream.send().await {
        Ok(answer) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = answer.status();
            *response.headers_mut() = without_hop_by_hop(answer.headers());
            *response.body_mut() = Body::from_stream(answer.bytes_stream());
            response
        }
        Err(e) => {
            shared.upstream_errors.fetch_add(1, Ordering::SeqCst);
            let mut response = Response::new(Body::from(format!("fault proxy: the registry did not answer: {e}\n")));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if !HOP_BY_HOP.contains(&n) && !named.iter().any(|c| c == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn patterns_are_prefixes_or_globs() {
        assert!(path_matches("/v2/poison-500/blobs/", "/v2/poison-500/blobs/sha256:ab"));
        assert!(!path_matches("/v2/poison-500/blobs/", "/v2/poison-500/manifests/v1"));
        assert!(path_matches("/v2/*/manifests/*", "/v2/team/app/manifests/v1"));
        assert!(!path_matches("/v2/*/manifests/*", "/v2/team/app/blobs/sha256:ab"));
        assert!(path_matches("/v2/*/blobs/sha256:ab", "/v2/a/b/blobs/sha256:ab"));
        assert!(!path_matches("/v2/*/blobs/sha256:ab", "/v2/a/b/blobs/sha256:abc"));
        assert!(path_matches("*", "/anything"));
        assert!(path_matches("/v2/*", "/v2/"));
        assert!(!path_matches("/v3/*", "/v2/x"));
    }
}
