//! Splitting a registry image reference (`host[:port]/repo/path:tag@digest`)
//! into its parts, with Docker's rules for short names: no host means Docker
//! Hub, and a one-component Docker Hub name lives under `library/`.
//!
//! Reports keep the reference as the user gave it; formats whose consumers
//! want the parts separately (NeuVector's `registry`/`repository`/`tag`, the
//! image's `pkg:oci` purl) split it here so they all agree.

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// Registry host names that all mean Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 4] =
    ["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// A registry host with Docker Hub's aliases folded into [`DOCKER_HUB`].
pub fn canonical_registry(host: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB
    } else {
        host
    }
}

/// Prefixes of Trawl's other image sources (skopeo syntax): never registry names.
const OTHER_TRANSPORTS: [&str; 6] = ["oci:", "oci-archive:", "docker-archive:", "docker-daemon:", "docker:", "dir:"];

/// The parts of a registry image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// Registry host (and port); [`DOCKER_HUB`] for Docker Hub, whichever alias was written.
    pub registry: String,
    /// Repository path inside the registry (`library/debian`, `team/app`).
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Manifest digest (`sha256:…`), when given.
    pub digest: Option<String>,
}

impl ImageName {
    /// Parses a registry reference; `docker://` and `registry:` prefixes are
    /// accepted. Returns `None` for anything that is not one (an `oci:`
    /// layout, a `dir:` path, a malformed name).
    pub fn parse(reference: &str) -> Option<ImageName> {
        let s =
            reference.strip_prefix("docker://").or_else(|| reference.strip_prefix("registry:")).unwrap_or(reference);
        if OTHER_TRANSPORTS.iter().any(|t| s.starts_with(t)) {
            return None;
        }
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let (algo, hex) = d.split_once(':')?;
            if algo.is_empty() || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
        }
        // The first component is a registry host when it looks like one (Docker's rule).
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                if !valid_host(first) {
                    return None;
                }
                (first.to_string(), path)
            }
            _ => (DOCKER_HUB.to_string(), rest),
        };
        let registry = canonical_registry(&registry).to_string();
        // A ':' after the last '/' starts the tag.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (path, None),
        };
        if !valid_repository(repository) || tag.is_some_and(|t| !valid_tag(t)) {
            return None;
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        Some(ImageName { registry, repository, tag: tag.map(str::to_string), digest: digest.map(str::to_string) })
    }

    /// True when the registry is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }
}

/// `host[:port]` with a DNS name, IPv4 address or bracketed IPv6 address.
fn valid_host(s: &str) -> bool {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        match inner.split_once(']') {
            Some((v6, rest)) => {
                if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                (None, rest.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// Path components of lower-case letters and digits joined by `.`, `_`, `__` or `-` runs.
fn valid_repository(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

/// Up to 128 word characters, dots and dashes, not starting with either.
fn valid_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Option<(String, String, Option<String>, Option<String>)> {
        ImageName::parse(s).map(|n| (n.registry, n.repository, n.tag, n.digest))
    }

    fn some(
        r: &str,
        repo: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Option<(String, String, Option<String>, Option<String>)> {
        Some((r.into(), repo.into(), tag.map(Into::into), digest.map(Into::into)))
    }

    #[test]
    fn docker_hub_short_names() {
        assert_eq!(parts("debian"), some("docker.io", "library/debian", None, None));
        assert_eq!(parts("debian:12"), some("docker.io", "library/debian", Some("12"), None));
        assert_eq!(parts("bitnami/redis:7.2"), some("docker.io", "bitnami/redis", Some("7.2"), None));
        assert_eq!(parts("docker.io/alpine:3.19"), some("docker.io", "library/alpine", Some("3.19"), None));
        assert_eq!(parts("index.docker.io/library/alpine"), some("docker.io", "library/alpine", None, None));
        assert_eq!(parts("docker://nginx:1.25"), some("docker.io", "library/nginx", Some("1.25"), None));
    }

    #[test]
    fn hosts_ports_and_digests() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            parts("127.0.0.1:5000/library/debian:12"),
            some("127.0.0.1:5000", "library/debian", Some("12"), None)
        );
        assert_eq!(parts("localhost/app"), some("localhost", "app", None, None));
        assert_eq!(
            parts(&format!("ghcr.io/org/team/app:1.4@{d}")),
            some("ghcr.io", "org/team/app", Some("1.4"), Some(d))
        );
        assert_eq!(parts(&format!("registry.example.com/app@{d}")), some("registry.example.com", "app", None, Some(d)));
        assert_eq!(parts("[::1]:5000/app:v1"), some("[::1]:5000", "app", Some("v1"), None));
    }

    #[test]
    fn rejects_what_is_not_a_registry_reference() {
        for bad in [
            "",
            "oci:./layout:v1",
            "oci-archive:image.tar",
            "docker-archive:saved.tar:myapp:latest",
            "dir:/srv/rootfs",
            "dir:rootfs",
            "docker:app",
            "Upper/Case",
            "app:bad/tag",
            "app@sha256:short",
            "host:port/app",
            "has space",
            "a//b",
        ] {
            assert_eq!(ImageName::parse(bad), None, "{bad}");
        }
    }
}
