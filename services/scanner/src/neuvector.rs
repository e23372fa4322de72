//! NeuVector's standalone-scanner environment, mapped onto Trawl's options so
//! the NeuVector guide's `docker run … -e SCANNER_REPOSITORY=ubuntu -e
//! SCANNER_TAG=16.04 -e SCANNER_ON_DEMAND=true … neuvector/scanner` works
//! unchanged with Trawl's image.
//!
//! NeuVector builds the image from three variables: with `SCANNER_REGISTRY`
//! the image is pulled from that registry, without it the image is a local
//! one, read from the Docker socket. The registry is a URL, and its scheme
//! says whether to use TLS.

/// Where NeuVector's standalone scanner leaves its results (a mounted volume).
pub const RESULTS_DIR: &str = "/var/neuvector";
/// The results file name inside [`RESULTS_DIR`].
pub const RESULTS_FILE: &str = "scan_result.json";

/// The image a NeuVector-style environment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeuVectorImage {
    /// A Trawl image reference (`host/repo:tag` or `docker:repo:tag`).
    pub reference: String,
    /// The registry URL said `http://`.
    pub plain_http: bool,
}

/// Builds the reference from `SCANNER_REGISTRY`, `SCANNER_REPOSITORY` and
/// `SCANNER_TAG` (default `latest`; a `sha256:` digest is accepted too).
pub fn image_from_env(registry: Option<&str>, repository: &str, tag: Option<&str>) -> Result<NeuVectorImage, String> {
    let repository = repository.trim().trim_matches('/');
    if repository.is_empty() {
        return Err("SCANNER_REPOSITORY is empty: set it to the repository to scan (e.g. library/ubuntu)".into());
    }
    let tag = tag.map(str::trim).filter(|t| !t.is_empty()).unwrap_or("latest");
    let suffix = if tag.starts_with("sha256:") { format!("@{tag}") } else { format!(":{tag}") };
    let Some(registry) = registry.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(NeuVectorImage { reference: format!("docker:{repository}{suffix}"), plain_http: false });
    };
    let (plain_http, rest) = if let Some(rest) = registry.strip_prefix("http://") {
        (true, rest)
    } else {
        (false, registry.strip_prefix("https://").unwrap_or(registry))
    };
    // A registry URL may carry a path (`https://host/v2/`); only the authority names the registry.
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!(
            "SCANNER_REGISTRY {registry:?} is not a registry URL (e.g. https://registry.example.com/)"
        ));
    }
    let host = trawl_report::imageref::canonical_registry(host);
    Ok(NeuVectorImage { reference: format!("{host}/{repository}{suffix}"), plain_http })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(r: Option<&str>, repo: &str, tag: Option<&str>) -> NeuVectorImage {
        image_from_env(r, repo, tag).unwrap()
    }

    #[test]
    fn without_a_registry_the_image_is_local() {
        assert_eq!(image(None, "ubuntu", Some("16.04")).reference, "docker:ubuntu:16.04");
        assert_eq!(image(None, "ubuntu", None).reference, "docker:ubuntu:latest");
    }

    #[test]
    fn registry_urls_become_hosts() {
        let i = image(Some("https://registry.example.com:5443/"), "team/app", Some("1.4"));
        assert_eq!(i, NeuVectorImage { reference: "registry.example.com:5443/team/app:1.4".into(), plain_http: false });
        let i = image(Some("http://127.0.0.1:5000"), "/library/debian/", Some("12"));
        assert_eq!(i, NeuVectorImage { reference: "127.0.0.1:5000/library/debian:12".into(), plain_http: true });
        assert_eq!(
            image(Some("https://registry.hub.docker.com/"), "library/nginx", None).reference,
            "docker.io/library/nginx:latest"
        );
        assert_eq!(image(Some("registry.local/v2/"), "a", Some("sha256:abc")).reference, "registry.local/a@sha256:abc");
    }

    #[test]
    fn bad_values_explain_themselves() {
        assert!(image_from_env(None, " ", None).unwrap_err().contains("SCANNER_REPOSITORY"));
        assert!(image_from_env(Some("https:///x"), "a", None).unwrap_err().contains("SCANNER_REGISTRY"));
    }
}
