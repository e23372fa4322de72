//! Pushing images and indexes to a registry over the distribution HTTP API (plain HTTP).
//!
//! Authentication follows the registry's lead: a pusher first asks `GET /v2/`; if the answer is
//! a `Bearer` challenge (token auth), it fetches a `pull,push` token for the repository from the
//! challenge's realm (with the given basic credentials, or anonymously) and presents it on
//! every request. Otherwise the given credentials go as HTTP basic auth on every request.

use anyhow::{bail, Context, Result};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};

use crate::image::Artifact;
use crate::layer::{Blob, BlobData};
use crate::registry::Registry;

/// Something that names a registry: a [`Registry`], or a URL / `host:port` string
/// (`http://` is assumed when no scheme is given).
pub trait RegistryEndpoint {
    /// The base URL, e.g. `http://127.0.0.1:5000`, without a trailing slash.
    fn base_url(&self) -> String;
}

impl RegistryEndpoint for Registry {
    fn base_url(&self) -> String {
        self.url()
    }
}

impl RegistryEndpoint for str {
    fn base_url(&self) -> String {
        let s = self.trim_end_matches('/');
        if s.starts_with("http://") || s.starts_with("https://") {
            s.to_owned()
        } else {
            format!("http://{s}")
        }
    }
}

impl RegistryEndpoint for String {
    fn base_url(&self) -> String {
        self.as_str().base_url()
    }
}

impl<T: RegistryEndpoint + ?Sized> RegistryEndpoint for &T {
    fn base_url(&self) -> String {
        (**self).base_url()
    }
}

/// Pushes an image or index as `repo:tag` and returns its manifest digest.
///
/// Blobs go up with a monolithic upload (`POST /v2/<repo>/blobs/uploads/`, then `PUT
/// <location>?digest=…`), skipping those a `HEAD` finds already present; an index's images
/// are pushed (by digest) before the index itself. `auth` is HTTP basic auth sent on every
/// request, or — when the registry uses token auth — the credentials for the token request.
pub async fn push<R, A>(registry: &R, repo: &str, tag: &str, artifact: &A, auth: Option<(&str, &str)>) -> Result<String>
where
    R: RegistryEndpoint + ?Sized,
    A: Artifact + ?Sized,
{
    let pusher = Pusher::connect(registry, repo, auth).await?;
    for child in artifact.children() {
        pusher
            .push_one(repo, &child.manifest_digest, child)
            .await
            .with_context(|| format!("push index child {} to {}/{repo}", child.manifest_digest, pusher.base))?;
    }
    pusher.push_one(repo, tag, artifact).await.with_context(|| format!("push {}/{repo}:{tag}", pusher.base))
}

/// Uploads one blob to `repo` unless it is already there.
pub async fn push_blob<R: RegistryEndpoint + ?Sized>(
    registry: &R,
    repo: &str,
    blob: &Blob,
    auth: Option<(&str, &str)>,
) -> Result<()> {
    Pusher::connect(registry, repo, auth).await?.push_blob(repo, blob).await
}

/// `PUT`s raw manifest bytes as `repo:reference` with the given media type; returns the
/// digest the registry reports (`Docker-Content-Digest`).
pub async fn push_manifest<R: RegistryEndpoint + ?Sized>(
    registry: &R,
    repo: &str,
    reference: &str,
    media_type: &str,
    manifest: &[u8],
    auth: Option<(&str, &str)>,
) -> Result<String> {
    Pusher::connect(registry, repo, auth).await?.push_manifest(repo, reference, media_type, manifest).await
}

/// What a pusher presents on each request.
enum Auth {
    Anonymous,
    Basic(String, String),
    Bearer(String),
}

struct Pusher {
    client: Client,
    base: String,
    auth: Auth,
}

impl Pusher {
    /// A pusher for `repo`, authenticated the way the registry asks (see the module docs).
    async fn connect<R: RegistryEndpoint + ?Sized>(
        registry: &R,
        repo: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self> {
        let client = Client::builder().no_proxy().build().context("build HTTP client")?;
        let base = registry.base_url();
        let ping_url = format!("{base}/v2/");
        let ping = client.get(&ping_url).send().await.with_context(|| format!("GET {ping_url}"))?;
        let challenge = ping
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .filter(|_| ping.status() == StatusCode::UNAUTHORIZED)
            .and_then(bearer_challenge);
        let auth = match (challenge, credentials) {
            (Some(params), credentials) => Auth::Bearer(fetch_token(&client, &params, repo, credentials).await?),
            (None, Some((user, password))) => Auth::Basic(user.to_owned(), password.to_owned()),
            (None, None) => Auth::Anonymous,
        };
        Ok(Self { client, base, auth })
    }

    fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        let req = self.client.request(method, url);
        match &self.auth {
            Auth::Anonymous => req,
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Bearer(token) => req.bearer_auth(token),
        }
    }

    async fn push_one<A: Artifact + ?Sized>(&self, repo: &str, reference: &str, artifact: &A) -> Result<String> {
        for blob in artifact.blobs() {
            self.push_blob(repo, &blob).await?;
        }
        let digest =
            self.push_manifest(repo, reference, artifact.manifest_media_type(), artifact.manifest_bytes()).await?;
        if digest != artifact.manifest_digest() {
            bail!("registry stored the manifest as {digest}, expected {}", artifact.manifest_digest());
        }
        Ok(digest)
    }

    async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<()> {
        let blob_url = format!("{}/v2/{repo}/blobs/{}", self.base, blob.digest);
        let head = self.request(Method::HEAD, &blob_url).send().await.with_context(|| format!("HEAD {blob_url}"))?;
        match head.status() {
            StatusCode::OK => return Ok(()),
            StatusCode::NOT_FOUND => {}
            s => bail!("HEAD {blob_url}: unexpected status {s}"),
        }

        let start_url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self.request(Method::POST, &start_url).header(CONTENT_LENGTH, 0).send().await?;
        if resp.status() != StatusCode::ACCEPTED {
            bail!("POST {start_url}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .context("upload start response has no Location")?;
        let mut upload_url = Url::parse(&start_url)?.join(location).context("resolve upload Location")?;
        upload_url.query_pairs_mut().append_pair("digest", &blob.digest);

        let body = match &blob.data {
            BlobData::Memory(bytes) => reqwest::Body::from(bytes.clone()),
            BlobData::File(path) => reqwest::Body::from(
                tokio::fs::File::open(path).await.with_context(|| format!("open blob file {}", path.display()))?,
            ),
        };
        let resp = self
            .request(Method::PUT, upload_url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, blob.size)
            .body(body)
            .send()
            .await
            .with_context(|| format!("upload blob {}", blob.digest))?;
        if resp.status() != StatusCode::CREATED {
            bail!("upload of blob {} failed: {} {}", blob.digest, resp.status(), resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, manifest: &[u8]) -> Result<String> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self
            .request(Method::PUT, &url)
            .header(CONTENT_TYPE, media_type)
            .body(manifest.to_vec())
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        if resp.status() != StatusCode::CREATED {
            bail!("PUT {url}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|d| d.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| crate::layer::sha256_digest(manifest));
        Ok(digest)
    }
}

/// The parameters of a `Bearer …` challenge (`realm`, `service`, `scope`, …), keys lowercased;
/// `None` for any other scheme.
fn bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let (scheme, mut rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // RFC 7235 auth-params: `key=token` or `key="quoted \"string\""`, comma-separated.
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let mut value = String::new();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end..];
        } else {
            let end = after.find(',').unwrap_or(after.len());
            value.push_str(after[..end].trim());
            rest = &after[end..];
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    Some(params)
}

/// Asks the challenge's realm for a `pull,push` token on `repo`.
async fn fetch_token(
    client: &Client,
    challenge: &[(String, String)],
    repo: &str,
    credentials: Option<(&str, &str)>,
) -> Result<String> {
    let param = |name: &str| challenge.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let realm = param("realm").context("the registry's Bearer challenge names no realm")?;
    let mut url = Url::parse(realm).with_context(|| format!("token realm {realm:?} is not a URL"))?;
    if let Some(service) = param("service") {
        url.query_pairs_mut().append_pair("service", service);
    }
    url.query_pairs_mut().append_pair("scope", &format!("repository:{repo}:pull,push"));
    let mut request = client.get(url.clone());
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let resp = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await.with_context(|| format!("read the token response from {realm}"))?;
    if status != StatusCode::OK {
        bail!("token server {realm} refused a push token for {repo}: {status} {}", String::from_utf8_lossy(&body));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("token response from {realm} is not JSON"))?;
    // The spec names it `token`; OAuth2-style servers send `access_token`.
    json.get("token")
        .or_else(|| json.get("access_token"))
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .with_context(|| format!("token response from {realm} has no token"))
}

#[cfg(test)]
mod tests {
    use super::bearer_challenge;

    #[test]
    fn parses_bearer_challenges() {
        let params = bearer_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push",error="x\"y""#,
        )
        .unwrap();
        let expect = [
            ("realm", "http://127.0.0.1:1/token"),
            ("service", "reg"),
            ("scope", "repository:a/b:pull,push"),
            ("error", "x\"y"),
        ];
        assert_eq!(params, expect.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(bearer_challenge("bearer realm=r, Service=s").unwrap()[1], ("service".into(), "s".into()));
        assert!(bearer_challenge(r#"Basic realm="trawl-testkit""#).is_none());
    }
}
