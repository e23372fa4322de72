//! A real token server for the Docker registry token authentication flow (the one Docker Hub,
//! GHCR and Harbor use), so that tests can run `docker-registry` with `auth: token` and no mocks.
//!
//! The flow: a registry answers an unauthenticated request with `401` and
//! `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the client asks the realm
//! (`GET /token?service=…&scope=repository:NAME:pull,push`, with HTTP basic credentials or
//! anonymously) for a token; the server answers `{"token": "<JWT>", …}` with the actions it
//! grants; the client retries with `Authorization: Bearer <JWT>`, and the registry checks the
//! JWT's signature, issuer, audience, lifetime and `access` claim.
//!
//! How the registry comes to trust our signature: at start-up [`TokenServer::start`] generates
//! a P-256 key and a self-signed certificate for it (`rcgen`), and the registry's
//! `rootcertbundle` is that certificate. Every token is an ES256 JWT (`jsonwebtoken`) whose
//! header carries the certificate as a one-element `x5c` chain. Distribution checks `x5c`
//! first: it verifies the leaf against the bundle (a self-signed leaf that *is* a bundle
//! certificate verifies trivially) and takes the signing key from it. We use `x5c` rather
//! than a `kid` because it is the standard JWS header (RFC 7515), while distribution reads a
//! `kid` as a libtrust fingerprint, a Docker-only encoding.
//!
//! Every token request is recorded ([`TokenServer::requests`]) so tests can assert that the
//! flow really happened, and who asked for what. Passwords are never recorded.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use axum::extract::{Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The `service` the registry names in its challenge and expects as the tokens' audience.
pub const TOKEN_SERVICE: &str = "trawl-testkit-registry";
/// The `iss` claim of every token; the registry trusts only this issuer.
pub const TOKEN_ISSUER: &str = "trawl-testkit-token-server";
/// Lifetime of an issued token, in seconds (`expires_in` and the `exp` claim).
pub const TOKEN_LIFETIME_SECS: u64 = 300;

/// Actions the server ever grants: registries also know `delete` and `*`, which no test needs.
const GRANTABLE: [&str; 2] = ["pull", "push"];

/// Actions granted on one repository, as in the JWT's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// Repository name, e.g. `library/app`.
    pub repository: String,
    /// Granted actions, sorted (`pull`, `push`); never empty.
    pub actions: Vec<String>,
}

/// One request to the token endpoint, as recorded by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user named by the request's basic credentials (empty if the `Authorization` header
    /// could not be decoded); `None` for an anonymous request.
    pub account: Option<String>,
    /// The `scope` values asked for, split on spaces, in request order.
    pub scopes: Vec<String>,
    /// The HTTP status answered: 200 (token issued), 401 (bad credentials), 400 (bad request).
    pub status: u16,
    /// What the issued token grants (empty when nothing was granted or nothing was issued).
    pub granted: Vec<Grant>,
}

impl TokenRequest {
    /// Whether a token was issued (it may still grant nothing).
    pub fn issued(&self) -> bool {
        self.status == 200
    }
}

/// A running token server on a free `127.0.0.1` port, serving `GET /token`; stopped on drop.
///
/// Users with the right password get the `pull`/`push` actions they ask for on any
/// repository; anonymous requests get `pull` only on the configured public repositories (and
/// a token granting nothing elsewhere, as Docker Hub does); a wrong password gets `401`.
///
/// It runs on its own thread and Tokio runtime, so it keeps answering while a test blocks
/// its own thread (e.g. on `Command::output()` inside `#[tokio::test]`).
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cert_pem: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// State shared with the request handler.
struct Shared {
    /// `(name, password)` in the order given (the first is the registry's default user).
    users: Vec<(String, String)>,
    anonymous_pull: BTreeSet<String>,
    key: EncodingKey,
    /// Standard base64 of the certificate's DER: the JWS `x5c` chain.
    x5c: Vec<String>,
    next_id: AtomicU64,
    log: Mutex<Vec<TokenRequest>>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Vec<TokenRequest>> {
        // A handler that panicked mid-push leaves a usable Vec: ignore the poison.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TokenServer {
    /// Generates a signing key and certificate, binds a free loopback port and starts serving.
    ///
    /// `users` are `(name, password)` pairs; `anonymous_pull_repos` are the repository names
    /// anyone may pull. The server accepts connections as soon as this returns.
    pub fn start(users: &[(&str, &str)], anonymous_pull_repos: &[&str]) -> Result<Self> {
        let key_pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generate the token signing key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "trawl-testkit token signer");
        let cert = params.self_signed(&key_pair).context("self-sign the token signing certificate")?;
        let shared = Arc::new(Shared {
            users: users.iter().map(|(u, p)| ((*u).to_owned(), (*p).to_owned())).collect(),
            anonymous_pull: anonymous_pull_repos.iter().map(|r| (*r).to_owned()).collect(),
            // PKCS#8 DER, the form jsonwebtoken's ECDSA signer takes.
            key: EncodingKey::from_ec_der(&key_pair.serialize_der()),
            x5c: vec![base64::engine::general_purpose::STANDARD.encode(cert.der())],
            next_id: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
        });

        // Bind here, not on the server thread: the port is ours from now on (no race with other
        // tests) and every start-up error reaches the caller.
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("bind the token server")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the token server's runtime")?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let app = Router::new().route("/token", get(token_handler)).with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("trawl-token-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(e) = result {
                                eprintln!("trawl-testkit token server stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here aborts connections still open (idle keep-alives).
            })
            .context("spawn the token server thread")?;
        Ok(Self { addr, shared, cert_pem: cert.pem(), shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT/token`, the realm a registry names in its challenge.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM certificate of the signing key: the registry's `rootcertbundle`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The first `(user, password)` the server was started with.
    pub(crate) fn first_user(&self) -> Option<(String, String)> {
        self.shared.users.first().cloned()
    }

    /// Every token request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.log().clone()
    }

    /// How many tokens were issued to `account` (`None`: anonymous requests).
    pub fn issued_to(&self, account: Option<&str>) -> usize {
        self.shared.log().iter().filter(|r| r.issued() && r.account.as_deref() == account).count()
    }

    /// How many requests were refused with `401` (unknown user or wrong password).
    pub fn refused(&self) -> usize {
        self.shared.log().iter().filter(|r| r.status == 401).count()
    }

    /// Asks this server for a token over HTTP, as a registry client would, for `scopes` (e.g.
    /// `repository:library/app:pull`) with basic `credentials` or anonymously.
    ///
    /// The request is recorded like any other. Fails unless the server answers 200.
    pub async fn request_token(&self, credentials: Option<(&str, &str)>, scopes: &[&str]) -> Result<String> {
        let client = reqwest::Client::builder().no_proxy().build().context("build HTTP client")?;
        let mut query = vec![("service", TOKEN_SERVICE)];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        let mut url = reqwest::Url::parse(&self.realm())?;
        url.query_pairs_mut().extend_pairs(query);
        let mut request = client.get(url);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.context("GET token")?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            bail!("token server answered {status}: {}", response.text().await.unwrap_or_default());
        }
        let body: Value = serde_json::from_slice(&response.bytes().await?).context("token response is not JSON")?;
        body["token"].as_str().map(str::to_owned).context("token response has no \"token\"")
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("realm", &self.realm())
            .field("users", &self.shared.users.iter().map(|(u, _)| u).collect::<Vec<_>>())
            .field("anonymous_pull", &self.shared.anonymous_pull)
            .finish()
    }
}

/// The payload of a token (its JWT claims), decoded without checking the signature: for tests
/// that assert what a token grants.
pub fn token_claims(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("not a JWT: no payload segment")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("JWT payload is not base64url")?;
    serde_json::from_slice(&bytes).context("JWT payload is not JSON")
}

/// `GET /token?service=…&scope=…[&scope=…]`, per the Docker token authentication spec.
async fn token_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    // Clients may repeat `scope` or put several scopes in one, space-separated (OAuth2 style).
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
        .collect();
    let account = basic_user(&headers);
    let record = |status: u16, granted: Vec<Grant>| {
        let account = match &account {
            BasicAuth::Valid(user, _) => Some(user.clone()),
            BasicAuth::Malformed => Some(String::new()),
            BasicAuth::Absent => None,
        };
        shared.log().push(TokenRequest { account, scopes: scopes.clone(), status, granted });
    };

    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
        if service != TOKEN_SERVICE {
            record(400, Vec::new());
            return error(StatusCode::BAD_REQUEST, "unsupported", &format!("unknown service {service:?}"));
        }
    }
    let user = match &account {
        BasicAuth::Absent => None,
        BasicAuth::Valid(user, password) if shared.users.iter().any(|(u, p)| u == user && p == password) => {
            Some(user.as_str())
        }
        BasicAuth::Valid(..) | BasicAuth::Malformed => {
            record(401, Vec::new());
            let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid username or password");
            if let Ok(value) = format!("Basic realm=\"{TOKEN_ISSUER}\"").parse() {
                response.headers_mut().insert(WWW_AUTHENTICATE, value);
            }
            return response;
        }
    };

    let granted = grants(&shared, user, &scopes);
    let now = unix_now();
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": user.unwrap_or(""),
        // A string, not an array: distribution 2.8 reads `aud` into a Go string.
        "aud": TOKEN_SERVICE,
        "exp": now + TOKEN_LIFETIME_SECS,
        "nbf": now,
        "iat": now,
        "jti": format!("trawl-{now}-{}", shared.next_id.fetch_add(1, Ordering::Relaxed)),
        "access": granted.iter().map(|g| json!({
            "type": "repository",
            "name": g.repository,
            "actions": g.actions,
        })).collect::<Vec<_>>(),
    });
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    header.x5c = Some(shared.x5c.clone());
    let token = match jsonwebtoken::encode(&header, &claims, &shared.key) {
        Ok(token) => token,
        Err(e) => {
            record(500, Vec::new());
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &format!("cannot sign the token: {e}"));
        }
    };
    record(200, granted);
    let body = json!({"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME_SECS});
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// What `scopes` earn: a user gets the grantable actions asked for; anonymous gets `pull` on
/// public repositories. Scopes of other types (e.g. `registry:catalog:*`) earn nothing.
fn grants(shared: &Shared, user: Option<&str>, scopes: &[String]) -> Vec<Grant> {
    let mut by_repo: HashMap<String, BTreeSet<String>> = HashMap::new();
    for scope in scopes {
        let Some((kind, rest)) = scope.split_once(':') else { continue };
        let Some((name, actions)) = rest.rsplit_once(':') else { continue };
        // `repository(plugin):…` names a resource class; the type is what precedes it.
        if kind.split('(').next() != Some("repository") || name.is_empty() {
            continue;
        }
        for action in actions.split(',').filter(|a| GRANTABLE.contains(a)) {
            let allowed = user.is_some() || (action == "pull" && shared.anonymous_pull.contains(name));
            if allowed {
                by_repo.entry(name.to_owned()).or_default().insert(action.to_owned());
            }
        }
    }
    let mut grants: Vec<Grant> = by_repo
        .into_iter()
        .map(|(repository, actions)| Grant { repository, actions: actions.into_iter().collect() })
        .collect();
    grants.sort();
    grants
}

enum BasicAuth {
    Absent,
    Valid(String, String),
    /// An `Authorization` header that is not decodable basic auth: refused like a bad password.
    Malformed,
}

fn basic_user(headers: &HeaderMap) -> BasicAuth {
    let Some(value) = headers.get(AUTHORIZATION) else { return BasicAuth::Absent };
    let decoded = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|s| s.split_once(':')) {
        Some((user, password)) => BasicAuth::Valid(user.to_owned(), password.to_owned()),
        None => BasicAuth::Malformed,
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code.to_uppercase(), "message": message}]});
    (status, [(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
