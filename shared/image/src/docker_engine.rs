//! Images held by a Docker Engine API (`docker:NAME`, `docker-daemon:NAME`):
//! Docker itself, or Podman's compatible service.
//!
//! This is how NeuVector's standalone scanner reads local images from a
//! mounted `/var/run/docker.sock`: a CI job builds an image, never pushes it,
//! and scans it where it lies. The engine only offers whole-image export
//! (`docker save`), so [`DockerEngineSource`]:
//!
//! 1. checks that the endpoint is an engine at all (`GET /_ping`);
//! 2. inspects the image (`GET /images/{name}/json`) for its ID and size;
//! 3. exports it *by that ID* (`GET /images/{id}/get`, so a tag moved in
//!    between cannot swap the image) into a private temp file, capped at a
//!    limit derived from the inspected size;
//! 4. reads that `docker save` archive with [`DockerArchiveSource`] and checks
//!    that it really holds the inspected image.
//!
//! The archive is the only copy of layer bytes this crate ever writes to disk,
//! because the engine API cannot stream single layers. It lives in `TMPDIR`
//! (mode 0600) and is deleted when the source is dropped.
//!
//! The engine is trusted no more than a registry: everything it sends is
//! size-capped, and the archive goes through the same digest-verified,
//! bomb-guarded reading as any other image.
//!
//! HTTP/1.1 runs over the unix socket or plain TCP with hyper's low-level
//! client connection, one connection per request (three per image). TLS
//! endpoints (`https://`, `tcp://HOST:2376`) are refused with
//! [`ImageError::Unsupported`] until certificate options exist.

use crate::error::ImageError;
use crate::layout::DockerArchiveSource;
use crate::manifest::{sha256_digest, validate_digest};
use crate::source::{BlobStream, ImageSource, LayerDescriptor, ResolvedImage, SourceOptions};
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempPath;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::OnceCell;
use tokio::time::timeout;

/// The endpoint used when none is configured: Docker's own socket.
pub const DEFAULT_DOCKER_URL: &str = "unix:///var/run/docker.sock";

/// Largest export accepted by default, however large the engine says the image is.
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 64 << 30;

/// Docker's conventional plain-TCP port, used when a `tcp://` URL has none.
const DEFAULT_TCP_PORT: u16 = 2375;
/// Docker's conventional TLS port: a URL naming it needs certificates we cannot use yet.
const TLS_PORT: u16 = 2376;

/// An export may exceed the inspected `Size` (tar headers, padding, configs,
/// engines that count differently): this factor and slack absorb that.
const SIZE_HEADROOM_FACTOR: u64 = 2;
const SIZE_HEADROOM_BYTES: u64 = 64 << 20;

/// Time to connect and receive response headers for small requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Podman writes the whole export to its own temp file before answering, so
/// headers of `/images/{id}/get` may take as long as that copy does.
const EXPORT_HEADER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest silence tolerated in the middle of an export.
const EXPORT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Cap on an error body: we only want its `message`.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Longest engine message repeated in an error.
const MAX_MESSAGE_CHARS: usize = 500;

const TLS_UNSUPPORTED: &str = "TLS engine endpoints are not supported yet; use the unix socket \
     (unix:///var/run/docker.sock) or a plain-TCP endpoint (tcp://HOST:2375)";
const UNREACHABLE_HINT: &str =
    "is Docker running? set SCANNER_DOCKER_URL or --docker-url; for Podman run `podman system service`";

/// Characters left as they are in an image name inside a URL path: the
/// unreserved ones plus the separators of `repo/path:tag@sha256:…`, as
/// Docker's own client sends them.
const NAME_IN_PATH: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/').remove(b':').remove(b'@');

/// Where a Docker Engine API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEndpoint {
    /// A unix domain socket (`unix:///var/run/docker.sock`).
    Unix(PathBuf),
    /// Plain HTTP over TCP (`tcp://HOST:PORT`).
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl EngineEndpoint {
    /// Parses `unix:///PATH`, a bare absolute path, `tcp://HOST[:PORT]` or
    /// `http://HOST[:PORT]` (port 2375 when omitted). TLS endpoints and other
    /// schemes are [`ImageError::Unsupported`].
    pub fn parse(url: &str) -> Result<Self, ImageError> {
        let url = url.trim();
        let unsupported = |why: &str| ImageError::Unsupported(format!("Docker Engine endpoint {url:?}: {why}"));
        if let Some(path) = url.strip_prefix("unix://") {
            return Self::unix(path).map_err(|why| unsupported(&why));
        }
        if url.starts_with('/') {
            return Self::unix(url).map_err(|why| unsupported(&why));
        }
        if url.starts_with("https://") {
            return Err(unsupported(TLS_UNSUPPORTED));
        }
        if let Some(rest) = url.strip_prefix("tcp://").or_else(|| url.strip_prefix("http://")) {
            return Self::tcp(rest).map_err(|why| unsupported(&why));
        }
        Err(match url.split_once("://") {
            Some((scheme, _)) => unsupported(&format!(
                "{scheme}:// endpoints are not supported; use unix:///PATH or tcp://HOST:PORT (plain HTTP)"
            )),
            None => unsupported("not an endpoint URL; use unix:///PATH, an absolute socket path or tcp://HOST:PORT"),
        })
    }

    fn unix(path: &str) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err("unix:// needs an absolute socket path, as in unix:///var/run/docker.sock".into());
        }
        Ok(EngineEndpoint::Unix(PathBuf::from(path)))
    }

    /// `HOST[:PORT][/]`, with IPv6 hosts in brackets.
    fn tcp(rest: &str) -> Result<Self, String> {
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err("only HOST:PORT is accepted after tcp:// (no path, query or user)".into());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or("unclosed '[' in an IPv6 address")?;
                let port = match after {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or("expected :PORT after the IPv6 address")?),
                };
                (host, port)
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err("missing host".into());
        }
        let port = match port {
            None => DEFAULT_TCP_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| format!("invalid port {p:?}"))?,
        };
        if port == TLS_PORT {
            return Err(format!("port {TLS_PORT} is Docker's TLS port. {TLS_UNSUPPORTED}"));
        }
        Ok(EngineEndpoint::Tcp { host: host.to_string(), port })
    }

    /// The `Host` header: engines ignore it on a socket, but HTTP/1.1 requires one.
    fn host_header(&self) -> String {
        match self {
            EngineEndpoint::Unix(_) => "localhost".to_string(),
            EngineEndpoint::Tcp { .. } => self.authority(),
        }
    }

    fn authority(&self) -> String {
        match self {
            EngineEndpoint::Unix(path) => path.display().to_string(),
            EngineEndpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            EngineEndpoint::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

impl fmt::Display for EngineEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            EngineEndpoint::Tcp { .. } => write!(f, "tcp://{}", self.authority()),
        }
    }
}

/// An image in a Docker Engine API, exported once and then read as a
/// `docker save` archive (see the module docs).
pub struct DockerEngineSource {
    /// The image name or ID as the user gave it.
    name: String,
    /// `docker:NAME`, the reference reported in [`ResolvedImage::reference`].
    reference: String,
    endpoint: EngineEndpoint,
    max_document_bytes: u64,
    /// `None`: derived from the inspected size, at most [`DEFAULT_MAX_ARCHIVE_BYTES`].
    max_archive_bytes: Option<u64>,
    /// The export, made by the first `resolve` or `open_blob` and shared by all later calls.
    export: OnceCell<Export>,
}

/// A finished export: the archive reader, what it resolved to, and the file.
struct Export {
    archive: DockerArchiveSource,
    resolved: ResolvedImage,
    /// Declared last so the reader is dropped before the file is deleted.
    file: TempPath,
}

/// The parts of `GET /images/{name}/json` we use.
#[derive(Debug, Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Size", default)]
    size: Option<i64>,
    #[serde(rename = "RootFS", default)]
    root_fs: Option<InspectRootFs>,
}

#[derive(Debug, Deserialize)]
struct InspectRootFs {
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl DockerEngineSource {
    /// A source for image `name` (`repo:tag`, `repo@sha256:…` or an image ID)
    /// in the engine at `options.docker_url`. Nothing is contacted until the
    /// first [`ImageSource::resolve`] or [`ImageSource::open_blob`].
    pub fn new(name: &str, options: &SourceOptions) -> Result<Self, ImageError> {
        let reference = format!("docker:{name}");
        validate_name(name).map_err(|reason| ImageError::InvalidReference { reference: reference.clone(), reason })?;
        Ok(DockerEngineSource {
            name: name.to_string(),
            reference,
            endpoint: EngineEndpoint::parse(&options.docker_url)?,
            max_document_bytes: options.max_document_bytes,
            max_archive_bytes: None,
            export: OnceCell::new(),
        })
    }

    /// Replaces the default export cap (twice the inspected image size plus
    /// 64 MiB, at most [`DEFAULT_MAX_ARCHIVE_BYTES`]) with a fixed `bytes`.
    pub fn with_max_archive_bytes(mut self, bytes: u64) -> Self {
        self.max_archive_bytes = Some(bytes);
        self
    }

    /// The engine endpoint this source talks to.
    pub fn endpoint(&self) -> &EngineEndpoint {
        &self.endpoint
    }

    /// The private temp file holding the export, once made; it is deleted
    /// when the source is dropped.
    pub fn export_path(&self) -> Option<&Path> {
        self.export.get().map(|e| &*e.file as &Path)
    }

    /// The export, made on first use. A failed attempt is not cached: the next call retries.
    async fn export(&self) -> Result<&Export, ImageError> {
        self.export.get_or_try_init(|| self.make_export()).await
    }

    async fn make_export(&self) -> Result<Export, ImageError> {
        self.ping().await?;
        let inspect = self.inspect().await?;
        let limit = self.archive_limit(&inspect);
        let file = self.download(&inspect.id, limit).await?;
        let path = file.to_path_buf();
        let archive = blocking(&path, {
            let path = path.clone();
            move || DockerArchiveSource::open(&path, None)
        })
        .await
        .map_err(|e| self.relabel(e, &path))?;
        let mut resolved = archive.resolve().await.map_err(|e| self.relabel(e, &path))?;
        self.check_identity(&inspect, &resolved, &path).await?;
        resolved.reference = self.reference.clone();
        tracing::debug!(
            endpoint = %self.endpoint,
            image = %self.name,
            id = %inspect.id,
            layers = resolved.layers.len(),
            "exported the image from the Docker engine"
        );
        Ok(Export { archive, resolved, file })
    }

    /// `GET /_ping`: tells "nothing listening" and "not an engine" apart from image errors.
    async fn ping(&self) -> Result<(), ImageError> {
        let response = self.get("/_ping", REQUEST_TIMEOUT).await?;
        if let Some(version) = response.headers().get("api-version").and_then(|v| v.to_str().ok()) {
            tracing::debug!(endpoint = %self.endpoint, api_version = version, "Docker engine answered /_ping");
        }
        if !response.status().is_success() {
            return Err(self.engine_error("GET /_ping (is this a Docker Engine API?)", response).await);
        }
        Ok(())
    }

    /// `GET /images/{name}/json`, with a validated sha256 `Id`.
    async fn inspect(&self) -> Result<Inspect, ImageError> {
        let path = format!("/images/{}/json", utf8_percent_encode(&self.name, NAME_IN_PATH));
        let response = self.get(&path, REQUEST_TIMEOUT).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(ImageError::NotFound {
                    reference: format!(
                        "{} (not in the Docker Engine API at {}: pull it into that engine first, or scan it from its registry)",
                        self.reference, self.endpoint
                    ),
                })
            }
            // Docker's answer to a name it cannot parse.
            StatusCode::BAD_REQUEST => {
                let reason = error_message(response).await;
                return Err(ImageError::InvalidReference { reference: self.reference.clone(), reason });
            }
            _ => return Err(self.engine_error("image inspect", response).await),
        }
        let body = self.read_document(response, "image inspect").await?;
        let inspect: Inspect =
            serde_json::from_slice(&body).map_err(|e| ImageError::malformed(self.what("image inspect"), e))?;
        validate_digest(&inspect.id)
            .map_err(|r| ImageError::malformed(self.what("image inspect"), format!("image Id: {r}")))?;
        Ok(inspect)
    }

    /// The most bytes the export may have (see [`DockerEngineSource::with_max_archive_bytes`]).
    fn archive_limit(&self, inspect: &Inspect) -> u64 {
        if let Some(fixed) = self.max_archive_bytes {
            return fixed;
        }
        match inspect.size.and_then(|s| u64::try_from(s).ok()).filter(|&s| s > 0) {
            Some(size) => size
                .saturating_mul(SIZE_HEADROOM_FACTOR)
                .saturating_add(SIZE_HEADROOM_BYTES)
                .min(DEFAULT_MAX_ARCHIVE_BYTES),
            None => DEFAULT_MAX_ARCHIVE_BYTES,
        }
    }

    /// Streams `GET /images/{id}/get` into a new private temp file, at most `limit` bytes.
    async fn download(&self, id: &str, limit: u64) -> Result<TempPath, ImageError> {
        let path = format!("/images/{}/get", utf8_percent_encode(id, NAME_IN_PATH));
        let response = self.get(&path, EXPORT_HEADER_TIMEOUT).await?;
        if !response.status().is_success() {
            return Err(self.engine_error("image export", response).await);
        }
        let temp = tempfile::Builder::new()
            .prefix("trawl-docker-save-")
            .suffix(".tar")
            .tempfile()
            .map_err(|e| ImageError::io(format!("a temp file in {}", std::env::temp_dir().display()), e))?;
        // Split so the path (which deletes the file on drop) outlives the handle we write through.
        let (file, temp_path) = temp.into_parts();
        let io_err = |e: io::Error| ImageError::io(temp_path.display().to_string(), e);
        let mut out = BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
        let mut body = response.into_body();
        let mut written = 0u64;
        loop {
            let frame = match timeout(EXPORT_IDLE_TIMEOUT, body.frame()).await {
                Err(_) => return Err(self.broken_export(written, &format!("no data for {EXPORT_IDLE_TIMEOUT:?}"))),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(self.broken_export(written, &e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry no archive bytes.
            let Ok(data) = frame.into_data() else { continue };
            written += data.len() as u64;
            if written > limit {
                return Err(self.export_too_large(limit));
            }
            out.write_all(&data).await.map_err(io_err)?;
        }
        out.flush().await.map_err(io_err)?;
        Ok(temp_path)
    }

    /// The archive must hold the image that was inspected: its config digest
    /// is the image ID (classic store) or the ID names a manifest or index in
    /// the archive that leads to that config (containerd store, Docker ≥ 25),
    /// and its diff ids are the layers the engine listed.
    async fn check_identity(
        &self,
        inspect: &Inspect,
        resolved: &ResolvedImage,
        archive: &Path,
    ) -> Result<(), ImageError> {
        let mismatch = |reason: String| ImageError::malformed(self.what("image export"), reason);
        if resolved.config_digest != inspect.id {
            let (id, config, cap) = (inspect.id.clone(), resolved.config_digest.clone(), self.max_document_bytes);
            let leads = blocking(archive, {
                let archive = archive.to_path_buf();
                move || id_leads_to_config(&archive, &id, &config, cap)
            })
            .await?;
            if !leads {
                return Err(mismatch(format!(
                    "the engine reports image {} but exported an image with config {}",
                    inspect.id, resolved.config_digest
                )));
            }
        }
        let inspected_layers = inspect.root_fs.as_ref().map(|r| r.layers.as_slice()).unwrap_or_default();
        if !inspected_layers.is_empty() && inspected_layers != resolved.config.rootfs.diff_ids.as_slice() {
            return Err(mismatch(format!(
                "the engine lists {} layers for image {} but the exported config has different diff_ids",
                inspected_layers.len(),
                inspect.id
            )));
        }
        Ok(())
    }

    /// Sends `GET path` on a fresh connection and waits (at most `wait`) for the response head.
    async fn get(&self, path: &str, wait: Duration) -> Result<Response<Incoming>, ImageError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, self.endpoint.host_header())
            .header(header::USER_AGENT, concat!("trawl/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| ImageError::InvalidReference { reference: self.reference.clone(), reason: e.to_string() })?;
        let exchange = async {
            match &self.endpoint {
                EngineEndpoint::Unix(socket) => {
                    let stream = UnixStream::connect(socket).await.map_err(|e| self.unreachable(&e))?;
                    self.exchange(stream, request).await
                }
                EngineEndpoint::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await.map_err(|e| self.unreachable(&e))?;
                    self.exchange(stream, request).await
                }
            }
        };
        timeout(wait, exchange).await.map_err(|_| ImageError::Unreachable {
            registry: self.endpoint.to_string(),
            reason: format!("no answer to GET {path} within {wait:?}; {UNREACHABLE_HINT}"),
        })?
    }

    /// One HTTP/1.1 request on a connected stream.
    async fn exchange<S>(&self, stream: S, request: Request<Empty<Bytes>>) -> Result<Response<Incoming>, ImageError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let not_http = |e: hyper::Error| {
            self.registry_error(format!("no valid HTTP answer ({e}); is this a Docker Engine API endpoint?"))
        };
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(not_http)?;
        // The connection future does the socket I/O; it ends once the response
        // body has been read or dropped (the sender is gone by then).
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "Docker engine connection ended with an error");
            }
        });
        sender.send_request(request).await.map_err(not_http)
    }

    /// Reads a JSON response body of at most `max_document_bytes`.
    async fn read_document(&self, response: Response<Incoming>, what: &str) -> Result<Bytes, ImageError> {
        let cap = usize::try_from(self.max_document_bytes).unwrap_or(usize::MAX);
        match timeout(REQUEST_TIMEOUT, read_capped(response.into_body(), cap)).await {
            Err(_) => Err(self.registry_error(format!("{what}: the response stalled for {REQUEST_TIMEOUT:?}"))),
            Ok(Ok(body)) => Ok(body),
            Ok(Err(ReadError::TooLong)) => Err(ImageError::LimitExceeded {
                what: self.what(what),
                reason: format!("the response is larger than {} bytes", self.max_document_bytes),
                flag: "SourceOptions::max_document_bytes",
            }),
            Ok(Err(ReadError::Broken(e))) => Err(self.registry_error(format!("{what}: {e}"))),
        }
    }

    /// A `Registry`-class error carrying the engine's own `message`.
    async fn engine_error(&self, what: &str, response: Response<Incoming>) -> ImageError {
        let status = response.status().as_u16();
        let message = error_message(response).await;
        self.registry_error(format!("{what}: HTTP {status}: {message}"))
    }

    fn registry_error(&self, reason: String) -> ImageError {
        ImageError::Registry { registry: self.endpoint.to_string(), reference: self.reference.clone(), reason }
    }

    fn unreachable(&self, e: &io::Error) -> ImageError {
        let hint = match e.kind() {
            io::ErrorKind::PermissionDenied => {
                "run as a user allowed to use the socket (for Docker: root or the docker group)"
            }
            _ => UNREACHABLE_HINT,
        };
        ImageError::Unreachable { registry: self.endpoint.to_string(), reason: format!("{e}; {hint}") }
    }

    fn broken_export(&self, written: u64, why: &str) -> ImageError {
        self.registry_error(format!("image export broke off after {written} bytes: {why}"))
    }

    fn export_too_large(&self, limit: u64) -> ImageError {
        let reason = match self.max_archive_bytes {
            Some(_) => format!("the export passed {limit} bytes"),
            None => format!(
                "the export passed {limit} bytes (twice the size the engine reports for the image plus 64 MiB, \
                 at most {DEFAULT_MAX_ARCHIVE_BYTES})"
            ),
        };
        ImageError::LimitExceeded {
            what: self.what("image export"),
            reason,
            flag: "DockerEngineSource::with_max_archive_bytes",
        }
    }

    /// Names a document of this image for error messages.
    fn what(&self, document: &str) -> String {
        format!("{document} of {} from {}", self.reference, self.endpoint)
    }

    /// Errors from reading the archive name its temp file; name the export instead.
    fn relabel(&self, error: ImageError, archive: &Path) -> ImageError {
        let temp = archive.display().to_string();
        let label = format!("exported by {} for {}", self.endpoint, self.reference);
        let fix = |s: String| s.replace(&temp, &label);
        match error {
            ImageError::Malformed { what, reason } => ImageError::Malformed { what: fix(what), reason: fix(reason) },
            // Several images in an export of one name: the engine misbehaved, not the user.
            ImageError::InvalidReference { reason, .. } => {
                ImageError::malformed(format!("docker archive {label}"), fix(reason))
            }
            ImageError::NotFound { reference } => ImageError::NotFound { reference: fix(reference) },
            ImageError::Io { path, source } => ImageError::Io { path: fix(path), source },
            other => other,
        }
    }
}

#[async_trait]
impl ImageSource for DockerEngineSource {
    async fn resolve(&self) -> Result<ResolvedImage, ImageError> {
        Ok(self.export().await?.resolved.clone())
    }

    async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobStream, ImageError> {
        self.export().await?.archive.open_blob(layer).await
    }
}

/// Accepts what image names, digests and IDs are made of, and nothing that
/// could change the meaning of the request path (`..`, `?`, `#`, `%`, spaces).
fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 1024 {
        return Err("an image name must have 1 to 1024 characters".into());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b)) {
        return Err("an image name may only contain letters, digits and . _ - / : @".into());
    }
    if name.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err("an image name cannot have empty, `.` or `..` path components".into());
    }
    Ok(())
}

/// Why a capped body read failed.
enum ReadError {
    TooLong,
    Broken(String),
}

/// Collects a body of at most `cap` bytes.
async fn read_capped(body: Incoming, cap: usize) -> Result<Bytes, ReadError> {
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLong),
        Err(e) => Err(ReadError::Broken(e.to_string())),
    }
}

/// The engine's explanation of an error response (its reason phrase when the body has none).
async fn error_message(response: Response<Incoming>) -> String {
    let status = response.status();
    let body = match timeout(REQUEST_TIMEOUT, read_capped(response.into_body(), MAX_ERROR_BODY)).await {
        Ok(Ok(body)) => body,
        _ => Bytes::new(),
    };
    match engine_message(&body) {
        m if m.is_empty() => status.canonical_reason().unwrap_or("no message").to_string(),
        m => m,
    }
}

/// The `message` of an engine's JSON error body (or the body as text), on one
/// line and shortened: enough to act on, never a whole response.
fn engine_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct EngineErrorBody {
        message: String,
    }
    let text = match serde_json::from_slice::<EngineErrorBody>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

/// Runs blocking archive work off the async threads.
async fn blocking<T: Send + 'static>(
    archive: &Path,
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ImageError::io(archive.display().to_string(), io::Error::other(e.to_string())))?
}

/// Whether `id` is the digest of a manifest (or of an index of manifests)
/// stored in the archive whose config is `config_digest`. Docker's containerd
/// image store uses such a digest as the image ID and exports its blobs.
fn id_leads_to_config(archive: &Path, id: &str, config_digest: &str, cap: u64) -> Result<bool, ImageError> {
    let config_of = |doc: &serde_json::Value| doc["config"]["digest"].as_str() == Some(config_digest);
    let docs = read_blobs(archive, &[id.to_string()], cap)?;
    let Some(doc) = docs.get(id) else { return Ok(false) };
    if config_of(doc) {
        return Ok(true);
    }
    let children: Vec<String> = doc["manifests"]
        .as_array()
        .map(|list| list.iter().filter_map(|m| m["digest"].as_str()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(read_blobs(archive, &children, cap)?.values().any(config_of))
}

/// Reads the JSON documents stored as `blobs/sha256/<hex>` for `digests`,
/// skipping members larger than `cap`, whose bytes do not match their name,
/// or that are not JSON.
fn read_blobs(archive: &Path, digests: &[String], cap: u64) -> Result<HashMap<String, serde_json::Value>, ImageError> {
    let io_err = |e: io::Error| ImageError::io(archive.display().to_string(), e);
    let wanted: HashMap<String, &String> =
        digests.iter().filter_map(|d| validate_digest(d).ok().map(|hex| (format!("blobs/sha256/{hex}"), d))).collect();
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let mut tar = tar::Archive::new(std::fs::File::open(archive).map_err(io_err)?);
    for entry in tar.entries_with_seek().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_string();
        let Some(&digest) = wanted.get(&name) else { continue };
        if entry.size() > cap {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(io_err)?;
        if sha256_digest(&bytes) != *digest {
            continue;
        }
        if let Ok(doc) = serde_json::from_slice(&bytes) {
            found.insert(digest.clone(), doc);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<EngineEndpoint, String> {
        EngineEndpoint::parse(url).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_engine_endpoints() {
        let sock = EngineEndpoint::Unix("/var/run/docker.sock".into());
        assert_eq!(endpoint("unix:///var/run/docker.sock"), Ok(sock.clone()));
        assert_eq!(endpoint("/var/run/docker.sock"), Ok(sock));
        let tcp = |host: &str, port| Ok(EngineEndpoint::Tcp { host: host.into(), port });
        assert_eq!(endpoint("tcp://127.0.0.1:2375"), tcp("127.0.0.1", 2375));
        assert_eq!(endpoint("http://docker.internal:8080/"), tcp("docker.internal", 8080));
        assert_eq!(endpoint("tcp://localhost"), tcp("localhost", 2375));
        assert_eq!(endpoint("tcp://[::1]:2375"), tcp("::1", 2375));
        assert_eq!(endpoint("tcp://[::1]:2375").unwrap().to_string(), "tcp://[::1]:2375");
        assert_eq!(endpoint(DEFAULT_DOCKER_URL).unwrap().to_string(), DEFAULT_DOCKER_URL);
    }

    #[test]
    fn refuses_tls_and_odd_endpoints() {
        for url in ["https://host:2376", "tcp://host:2376"] {
            let e = endpoint(url).unwrap_err();
            assert!(e.contains("TLS engine endpoints are not supported yet"), "{url}: {e}");
        }
        for url in
            ["unix://relative.sock", "ssh://me@host", "tcp://:2375", "tcp://h:port", "tcp://h:1/x", "docker.sock"]
        {
            assert!(matches!(EngineEndpoint::parse(url), Err(ImageError::Unsupported(_))), "{url}");
        }
    }

    #[test]
    fn image_names_cannot_escape_the_request_path() {
        for ok in ["ubuntu:16.04", "localhost:5000/a/b@sha256:abc", "c33ee479e704", "sha256:c33e"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "../containers/json", "a//b", "/abs", "a?x=1", "a#b", "a%2Fb", "a b", "a/./b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            utf8_percent_encode("docker.io/lib/x:1@sha256:ab", NAME_IN_PATH).to_string(),
            "docker.io/lib/x:1@sha256:ab"
        );
    }

    #[test]
    fn engine_messages_are_short_single_lines() {
        assert_eq!(engine_message(br#"{"message":"No such image: x\n","cause":"y"}"#), "No such image: x");
        assert_eq!(engine_message(b"plain\r\ntext"), "plain  text");
        let long = engine_message("é".repeat(2000).as_bytes());
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    /// A containerd-store export: the image ID is an index digest, the config is two hops away.
    #[test]
    fn image_ids_may_name_an_index_leading_to_the_config() {
        let config = br#"{"rootfs":{"diff_ids":[]}}"#.to_vec();
        let config_digest = sha256_digest(&config);
        let manifest = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{config_digest}"}},"layers":[]}}"#);
        let manifest_digest = sha256_digest(manifest.as_bytes());
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{manifest_digest}"}}]}}"#);
        let index_digest = sha256_digest(index.as_bytes());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("save.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&file).unwrap());
        for bytes in [&config, manifest.as_bytes(), index.as_bytes()] {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            let name = format!("blobs/sha256/{}", &sha256_digest(bytes)[7..]);
            tar.append_data(&mut header, name, bytes).unwrap();
        }
        tar.finish().unwrap();

        assert!(id_leads_to_config(&file, &index_digest, &config_digest, 1 << 20).unwrap());
        assert!(id_leads_to_config(&file, &manifest_digest, &config_digest, 1 << 20).unwrap());
        let other = sha256_digest(b"other");
        assert!(!id_leads_to_config(&file, &index_digest, &other, 1 << 20).unwrap());
        assert!(!id_leads_to_config(&file, &other, &config_digest, 1 << 20).unwrap());
        // Too large to read under the cap: not trusted.
        assert!(!id_leads_to_config(&file, &index_digest, &config_digest, 8).unwrap());
    }
}
