//! Pushing images and indexes to a registry over the distribution HTTP API (plain HTTP).

use anyhow::{bail, Context, Result};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
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
/// request.
pub async fn push<R, A>(registry: &R, repo: &str, tag: &str, artifact: &A, auth: Option<(&str, &str)>) -> Result<String>
where
    R: RegistryEndpoint + ?Sized,
    A: Artifact + ?Sized,
{
    let pusher = Pusher::new(registry, auth)?;
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
    Pusher::new(registry, auth)?.push_blob(repo, blob).await
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
    Pusher::new(registry, auth)?.push_manifest(repo, reference, media_type, manifest).await
}

struct Pusher {
    client: Client,
    base: String,
    auth: Option<(String, String)>,
}

impl Pusher {
    fn new<R: RegistryEndpoint + ?Sized>(registry: &R, auth: Option<(&str, &str)>) -> Result<Self> {
        let client = Client::builder().no_proxy().build().context("build HTTP client")?;
        Ok(Self { client, base: registry.base_url(), auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())) })
    }

    fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        let req = self.client.request(method, url);
        match &self.auth {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
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
