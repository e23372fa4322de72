//! Images in an OCI distribution registry, through `oci-client`.
//!
//! `oci-client` handles the token dance (anonymous and credentialed bearer
//! tokens) and basic auth; this module adds platform selection, the "is it an
//! image" checks, size caps on documents, and error messages a user can act on.
//!
//! Errors keep what a retrying caller needs apart: a 429 (or an OCI error
//! envelope with `TOOMANYREQUESTS`) becomes [`ImageError::RateLimited`], a
//! 5xx [`ImageError::RegistryUnavailable`]. `oci-client` does every request
//! itself — manifests, configs and layer blobs alike — and its errors carry
//! the status, URL and body but no response headers
//! (`OciDistributionError::ServerError`, `RegistryError` has not even the
//! status), so a registry's `Retry-After` cannot be seen on any path and
//! `retry_after` is always `None` here. Seeing it would take doing the blob
//! and manifest GETs with our own HTTP client (with `Client::auth`'s token).

use crate::error::ImageError;
use crate::manifest::{
    parse_manifest, select_platform, sha256_digest, ImageConfig, ManifestDoc, ACCEPTED_MANIFEST_TYPES,
};
use crate::source::{BlobStream, Credentials, ImageSource, LayerDescriptor, ResolvedImage, SourceOptions};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::str::FromStr;

/// An image in a registry.
pub struct RegistrySource {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    display: String,
    options: SourceOptions,
}

impl RegistrySource {
    /// Prepares access to `reference` (`HOST/REPO:TAG` or `HOST/REPO@DIGEST`).
    pub fn new(reference: &str, options: SourceOptions) -> Result<Self, ImageError> {
        let parsed = Reference::from_str(reference)
            .map_err(|e| ImageError::InvalidReference { reference: reference.to_string(), reason: e.to_string() })?;
        let config = ClientConfig {
            protocol: if options.plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            accept_invalid_certificates: options.insecure_tls,
            // We select platforms ourselves, to report what an index offers.
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        };
        let client = Client::try_from(config)
            .map_err(|e| ImageError::Unsupported(format!("cannot create a registry client: {e}")))?;
        let auth = match &options.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
            Credentials::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        };
        Ok(RegistrySource { client, display: parsed.whole(), reference: parsed, auth, options })
    }

    fn registry(&self) -> String {
        self.reference.resolve_registry().to_string()
    }

    /// Maps an `oci-client` error to one a user can act on.
    fn map_err(&self, e: OciDistributionError) -> ImageError {
        let registry = self.registry();
        let reference = self.display.clone();
        match e {
            OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
                ImageError::Unauthorized { registry, reference }
            }
            OciDistributionError::ImageManifestNotFoundError(_) => ImageError::NotFound { reference },
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    ImageError::NotFound { reference }
                } else if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                    ImageError::Unauthorized { registry, reference }
                } else {
                    let reason = envelope
                        .errors
                        .iter()
                        .map(|e| format!("{:?}: {}", e.code, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    if codes.iter().any(|c| matches!(c, OciErrorCode::Toomanyrequests)) {
                        // The envelope's status is not kept by oci-client, nor any header.
                        ImageError::RateLimited { registry, reference, retry_after: None, reason: clip(&reason) }
                    } else {
                        ImageError::Registry { registry, reference, reason }
                    }
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => ImageError::NotFound { reference },
                401 | 403 => ImageError::Unauthorized { registry, reference },
                429 => ImageError::RateLimited {
                    registry,
                    reference,
                    retry_after: None,
                    reason: format!("HTTP 429: {}", clip(&message)),
                },
                500..=599 => {
                    ImageError::RegistryUnavailable { registry, reference, status: code, reason: clip(&message) }
                }
                _ => ImageError::Registry { registry, reference, reason: format!("HTTP {code}: {message}") },
            },
            OciDistributionError::RequestError(err) if err.is_connect() || err.is_timeout() => {
                // The hint only helps someone who has not already asked for plain HTTP.
                let hint = if self.options.plain_http { "" } else { " (for a plain-HTTP registry, pass --plain-http)" };
                ImageError::Unreachable { registry, reason: format!("{}{hint}", describe_reqwest(&err)) }
            }
            OciDistributionError::RequestError(err) => {
                ImageError::Registry { registry, reference, reason: describe_reqwest(&err) }
            }
            other => ImageError::Registry { registry, reference, reason: other.to_string() },
        }
    }

    async fn fetch_manifest(&self, reference: &Reference) -> Result<(bytes::Bytes, String), ImageError> {
        let (body, digest) = self
            .client
            .pull_manifest_raw(reference, &self.auth, ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|e| self.map_err(e))?;
        if body.len() as u64 > self.options.max_document_bytes {
            return Err(ImageError::LimitExceeded {
                what: format!("manifest of {}", self.display),
                reason: format!("{} bytes", body.len()),
                flag: "--max-document-size",
            });
        }
        // oci-client checks a pinned digest; compute ours for tags too.
        let computed = sha256_digest(&body);
        if reference.digest().is_some_and(|d| d != computed) {
            return Err(ImageError::DigestMismatch { what: "manifest".into(), expected: digest, actual: computed });
        }
        Ok((body, computed))
    }

    async fn fetch_config(
        &self,
        reference: &Reference,
        desc: &crate::manifest::Descriptor,
    ) -> Result<Vec<u8>, ImageError> {
        if desc.size > self.options.max_document_bytes {
            return Err(ImageError::LimitExceeded {
                what: format!("config {}", desc.digest),
                reason: format!("{} bytes", desc.size),
                flag: "--max-document-size",
            });
        }
        let oci_desc = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let sized = self.client.pull_blob_stream(reference, &oci_desc).await.map_err(|e| self.map_err(e))?;
        let mut out = Vec::new();
        let mut stream = sized.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImageError::Registry {
                registry: self.registry(),
                reference: self.display.clone(),
                reason: format!("reading config {}: {e}", desc.digest),
            })?;
            out.extend_from_slice(&chunk);
            if out.len() as u64 > self.options.max_document_bytes {
                return Err(ImageError::LimitExceeded {
                    what: format!("config {}", desc.digest),
                    reason: "too large".into(),
                    flag: "--max-document-size",
                });
            }
        }
        let actual = sha256_digest(&out);
        if actual != desc.digest {
            return Err(ImageError::DigestMismatch {
                what: "image config".into(),
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(out)
    }
}

/// Longest part of a registry's error body kept in a message (load balancers answer with whole HTML pages).
const MAX_MESSAGE_CHARS: usize = 300;

/// A registry's error body as a one-line message of bounded length.
fn clip(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "no message".into();
    }
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

fn describe_reqwest(err: &dyn std::error::Error) -> String {
    // Walk the source chain: reqwest's top-level message is terse ("error
    // sending request"), the cause ("connection refused") is what helps.
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

#[async_trait]
impl ImageSource for RegistrySource {
    async fn resolve(&self) -> Result<ResolvedImage, ImageError> {
        let (body, digest) = self.fetch_manifest(&self.reference).await?;
        let (manifest, manifest_digest, index_digest, image_ref) = match parse_manifest(&body, None, &self.display)? {
            ManifestDoc::Image(m) => (m, digest, None, self.reference.clone()),
            ManifestDoc::Index(entries) => {
                let chosen = select_platform(&entries, &self.options.platform, &self.display)?;
                crate::manifest::validate_digest(&chosen.digest)
                    .map_err(|r| ImageError::malformed("image index", r))?;
                let child = self.reference.clone_with_digest(chosen.digest.clone());
                let (child_body, child_digest) = self.fetch_manifest(&child).await?;
                if child_digest != chosen.digest {
                    return Err(ImageError::DigestMismatch {
                        what: "platform manifest".into(),
                        expected: chosen.digest.clone(),
                        actual: child_digest,
                    });
                }
                match parse_manifest(&child_body, Some(&chosen.media_type), &self.display)? {
                    ManifestDoc::Image(m) => (m, child_digest, Some(digest), child),
                    ManifestDoc::Index(_) => {
                        return Err(ImageError::malformed("image index", "an index entry points at another index"))
                    }
                }
            }
        };
        let config_bytes = self.fetch_config(&image_ref, &manifest.config).await?;
        let config = ImageConfig::parse(&config_bytes, &manifest.config.digest)?;
        let mut layers: Vec<LayerDescriptor> = manifest
            .layers
            .iter()
            .map(|l| LayerDescriptor {
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: None,
                created_by: None,
            })
            .collect();
        ResolvedImage::attach_config_details(&mut layers, &config);
        Ok(ResolvedImage {
            reference: self.display.clone(),
            manifest_digest,
            index_digest,
            media_type: manifest.media_type,
            config_digest: manifest.config.digest.clone(),
            config,
            layers,
        })
    }

    fn verifies_digests(&self) -> bool {
        // oci-client's blob stream checks the sha256 itself; `open_blob`
        // turns its verdict into `ImageError::DigestMismatch`.
        true
    }

    async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobStream, ImageError> {
        let desc = OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size as i64,
            ..Default::default()
        };
        let sized = self.client.pull_blob_stream(&self.reference, &desc).await.map_err(|e| self.map_err(e))?;
        let expected = layer.digest.clone();
        // oci-client verifies digests too; surface its verdict as our typed error.
        Ok(sized
            .stream
            .map_err(move |e| {
                if let Some(oci_client::errors::DigestError::VerificationError { actual, .. }) =
                    e.get_ref().and_then(|i| i.downcast_ref::<oci_client::errors::DigestError>())
                {
                    return std::io::Error::other(ImageError::DigestMismatch {
                        what: format!("layer {expected}"),
                        expected: expected.clone(),
                        actual: actual.clone(),
                    });
                }
                e
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};
    use std::time::Duration;
    use trawl_testkit::{FaultProxy, FaultRule, ImageBuilder, LayerBuilder, Registry};

    fn source(reference: &str) -> RegistrySource {
        RegistrySource::new(reference, SourceOptions { plain_http: true, ..Default::default() }).unwrap()
    }

    fn server_error(code: u16, message: &str) -> OciDistributionError {
        OciDistributionError::ServerError { code, url: "http://r/v2/a/blobs/x".into(), message: message.into() }
    }

    #[test]
    fn rate_limits_and_server_errors_have_their_own_variants() {
        let s = source("127.0.0.1:5000/team/app:1");
        match s.map_err(server_error(429, "slow down")) {
            ImageError::RateLimited { retry_after: None, reason, registry, .. } => {
                assert_eq!((reason.as_str(), registry.as_str()), ("HTTP 429: slow down", "127.0.0.1:5000"));
            }
            other => panic!("{other:?}"),
        }
        for code in [500, 502, 503, 599] {
            match s.map_err(server_error(code, "<html>\n  <h1>Bad   gateway</h1>\n</html>")) {
                ImageError::RegistryUnavailable { status, reason, .. } => {
                    assert_eq!(status, code);
                    assert_eq!(reason, "<html> <h1>Bad gateway</h1> </html>");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let long = "x".repeat(5000);
        let ImageError::RegistryUnavailable { reason, .. } = s.map_err(server_error(500, &long)) else { panic!() };
        assert_eq!(reason.chars().count(), MAX_MESSAGE_CHARS + 1, "clipped, with an ellipsis");
        let ImageError::RegistryUnavailable { reason, .. } = s.map_err(server_error(503, "")) else { panic!() };
        assert_eq!(reason, "no message");
        // Other statuses keep the generic variant, with the status in the text.
        let ImageError::Registry { reason, .. } = s.map_err(server_error(408, "timeout")) else { panic!("408") };
        assert_eq!(reason, "HTTP 408: timeout");
        // A 429 with the OCI envelope has lost its status inside oci-client; the code says it.
        let envelope = OciEnvelope {
            errors: vec![OciError {
                code: OciErrorCode::Toomanyrequests,
                message: "pull rate limit".into(),
                detail: serde_json::Value::Null,
            }],
        };
        let err = s.map_err(OciDistributionError::RegistryError { envelope, url: "http://r/v2/".into() });
        let ImageError::RateLimited { retry_after, reason, .. } = &err else { panic!("{err:?}") };
        assert_eq!((*retry_after, reason.as_str()), (None, "Toomanyrequests: pull rate limit"));
        let expected = "registry 127.0.0.1:5000 rate-limited the pull of 127.0.0.1:5000/team/app:1: \
                        Toomanyrequests: pull rate limit";
        assert_eq!(err.to_string(), expected);
        let with_delay = ImageError::RateLimited {
            registry: "r".into(),
            reference: "r/a:1".into(),
            retry_after: Some(Duration::from_millis(1500)),
            reason: "HTTP 429: slow down".into(),
        };
        assert_eq!(
            with_delay.to_string(),
            "registry r rate-limited the pull of r/a:1 (it asked to retry after 2 s): HTTP 429: slow down"
        );
    }

    /// A real registry behind a fault proxy: what oci-client makes of a 429 and a 500 on
    /// the image config, and that the proxy passes everything else through.
    #[tokio::test]
    async fn registry_faults_seen_through_a_proxy_keep_their_kind() {
        let registry = Registry::start().unwrap();
        let proxy = FaultProxy::start(&registry).unwrap();
        let image = ImageBuilder::new().layer(LayerBuilder::new().file("etc/hello", "hi\n", 0o644)).build().unwrap();
        for repo in ["ok/app", "limited/app", "down/app", "flaky/app"] {
            trawl_testkit::push(&registry, repo, "v1", &image, None).await.unwrap();
        }
        let limited = proxy.add_rule(FaultRule::rate_limited("/v2/limited/app/blobs/", 1));
        let plain_429 = proxy.add_rule(FaultRule::status("/v2/*/manifests/v1", 429).method("GET").first(1));
        let down = proxy.add_rule(FaultRule::status("/v2/down/app/blobs/", 500));
        let flaky = proxy.add_rule(FaultRule::status("/v2/flaky/app/blobs/*", 503).first(1));
        let at = |repo: &str| source(&format!("{}/{repo}:v1", proxy.host()));

        // The first manifest GET of all gets a bare 429 (no envelope).
        let err = at("ok/app").resolve().await.err().unwrap();
        assert!(matches!(&err, ImageError::RateLimited { reason, .. } if reason.starts_with("HTTP 429")), "{err:?}");
        assert_eq!(proxy.answered(plain_429), 1);

        // Passed through: the image resolves and its layer streams and verifies.
        let ok = at("ok/app");
        let resolved = ok.resolve().await.unwrap();
        assert_eq!(resolved.manifest_digest, image.manifest_digest);
        let bytes: Vec<bytes::Bytes> = ok.open_blob(&resolved.layers[0]).await.unwrap().try_collect().await.unwrap();
        assert_eq!(bytes.iter().map(|b| b.len() as u64).sum::<u64>(), image.layers[0].size);

        let err = at("limited/app").resolve().await.err().unwrap();
        let ImageError::RateLimited { retry_after, reason, .. } = &err else { panic!("{err:?}") };
        assert!(retry_after.is_none() && reason.starts_with("Toomanyrequests"), "{err:?}");
        assert_eq!(proxy.answered(limited), 1);

        let err = at("down/app").resolve().await.err().unwrap();
        assert!(matches!(&err, ImageError::RegistryUnavailable { status: 500, .. }), "{err:?}");
        assert!(err.to_string().contains("is unavailable (HTTP 500)"), "{err}");
        assert_eq!(proxy.answered(down), 1);

        // Only the first blob request of `flaky` fails.
        let err = at("flaky/app").resolve().await.err().unwrap();
        assert!(matches!(&err, ImageError::RegistryUnavailable { status: 503, .. }), "{err:?}");
        at("flaky/app").resolve().await.unwrap();
        assert_eq!(proxy.answered(flaky), 1);
        assert_eq!(proxy.upstream_errors(), 0);
    }
}
