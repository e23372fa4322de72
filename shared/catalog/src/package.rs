//! The package model shared by every cataloger, and the naming rules that turn
//! a cataloged package into an OSV ecosystem and a package URL.
//!
//! Catalogers fill in what their format records (name, version, source, arch,
//! …). The ecosystem and purl of OS packages depend on the distribution, which
//! is only known once the whole image has been walked, so they are assigned
//! afterwards by [`Package::assign_identity`].

use crate::distro::Distro;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Serialize};

/// The packaging format a package was found in; decides its ecosystem family and purl type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageType {
    /// Debian package from a dpkg database.
    Deb,
    /// Alpine (or Wolfi) package from an apk database.
    Apk,
    /// RPM package from an rpm database.
    Rpm,
    /// Python distribution (wheel METADATA or egg PKG-INFO).
    Python,
    /// npm package (package-lock.json or node_modules).
    Npm,
    /// Java archive identified by Maven coordinates.
    Maven,
    /// Go module compiled into a binary.
    Go,
    /// Rust crate (Cargo.lock or cargo-auditable binary).
    Cargo,
    /// Ruby gem (gemspec).
    Gem,
    /// PHP package (composer.lock).
    Composer,
}

impl PackageType {
    /// True for packages managed by the distribution's package manager.
    pub fn is_os(self) -> bool {
        matches!(self, PackageType::Deb | PackageType::Apk | PackageType::Rpm)
    }

    /// The purl type (`pkg:<type>/…`) for this package format.
    pub fn purl_type(self) -> &'static str {
        match self {
            PackageType::Deb => "deb",
            PackageType::Apk => "apk",
            PackageType::Rpm => "rpm",
            PackageType::Python => "pypi",
            PackageType::Npm => "npm",
            PackageType::Maven => "maven",
            PackageType::Go => "golang",
            PackageType::Cargo => "cargo",
            PackageType::Gem => "gem",
            PackageType::Composer => "composer",
        }
    }

    /// The OSV ecosystem of a language package (OS packages depend on the distro).
    pub fn language_ecosystem(self) -> Option<&'static str> {
        match self {
            PackageType::Python => Some("PyPI"),
            PackageType::Npm => Some("npm"),
            PackageType::Maven => Some("Maven"),
            PackageType::Go => Some("Go"),
            PackageType::Cargo => Some("crates.io"),
            PackageType::Gem => Some("RubyGems"),
            PackageType::Composer => Some("Packagist"),
            PackageType::Deb | PackageType::Apk | PackageType::Rpm => None,
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Packaging format.
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// Name as the format records it (Maven: `group:artifact`, Go: module path).
    pub name: String,
    /// Full version as the ecosystem writes it (rpm: `[E:]V-R`, deb: `[E:]U-R`).
    pub version: String,
    /// RPM epoch, when the database records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// RPM release, when the format has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// CPU architecture recorded by the package manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Source package name (dpkg Source, apk origin, rpm source rpm name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// Source package version, when it differs from or adds to `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Declared licenses, as written by the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
    /// OSV ecosystem, e.g. `Debian:12` or `PyPI`; empty until assigned.
    #[serde(default)]
    pub ecosystem: String,
    /// Package URL; empty until assigned.
    #[serde(default)]
    pub purl: String,
    /// Path (inside the image, without leading `/`) of the file that records the package.
    pub path: String,
    /// Digest of the layer that introduced this package; `None` for non-layered sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

impl Package {
    /// A package with the mandatory fields set and everything else empty.
    pub fn new(kind: PackageType, name: impl Into<String>, version: impl Into<String>) -> Self {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            epoch: None,
            release: None,
            arch: None,
            source_name: None,
            source_version: None,
            licenses: Vec::new(),
            ecosystem: String::new(),
            purl: String::new(),
            path: String::new(),
            layer: None,
        }
    }

    /// The name an advisory database files this package under: the source
    /// package for Debian/Ubuntu and Alpine (advisories are per source), the
    /// binary name otherwise.
    pub fn advisory_name(&self) -> &str {
        match self.kind {
            PackageType::Deb | PackageType::Apk => self.source_name.as_deref().unwrap_or(&self.name),
            _ => &self.name,
        }
    }

    /// Sets `ecosystem` and `purl` from the package and the image's distribution.
    pub fn assign_identity(&mut self, distro: Option<&Distro>) {
        self.ecosystem = match self.kind.language_ecosystem() {
            Some(eco) => eco.to_string(),
            None => distro.and_then(|d| d.osv_ecosystem()).unwrap_or_default(),
        };
        self.purl = self.build_purl(distro);
    }

    fn build_purl(&self, distro: Option<&Distro>) -> String {
        let (namespace, name) = self.purl_namespace_and_name(distro);
        let mut purl = format!("pkg:{}/", self.kind.purl_type());
        if let Some(ns) = namespace {
            for segment in ns.split('/') {
                purl.push_str(&encode(segment));
                purl.push('/');
            }
        }
        purl.push_str(&encode(&name));
        let version = match self.kind {
            // The purl spec keeps the rpm epoch out of the version, in a qualifier.
            PackageType::Rpm => strip_epoch(&self.version).to_string(),
            _ => self.version.clone(),
        };
        if !version.is_empty() {
            purl.push('@');
            purl.push_str(&encode(&version));
        }
        let mut qualifiers: Vec<(&str, String)> = Vec::new();
        if let Some(arch) = &self.arch {
            qualifiers.push(("arch", arch.clone()));
        }
        if self.kind.is_os() {
            if let Some(d) = distro {
                if let Some(q) = d.purl_distro() {
                    qualifiers.push(("distro", q));
                }
            }
        }
        if self.kind == PackageType::Rpm {
            if let Some(e) = self.epoch {
                qualifiers.push(("epoch", e.to_string()));
            }
        }
        if self.kind.is_os() {
            if let Some(src) = &self.source_name {
                let differs_in_version =
                    self.kind == PackageType::Deb && self.source_version.as_deref().is_some_and(|v| v != self.version);
                if src != &self.name || differs_in_version {
                    let upstream = match &self.source_version {
                        Some(v) if differs_in_version => format!("{src}@{v}"),
                        _ => src.clone(),
                    };
                    qualifiers.push(("upstream", upstream));
                }
            }
        }
        qualifiers.sort_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in qualifiers.iter().enumerate() {
            purl.push(if i == 0 { '?' } else { '&' });
            purl.push_str(k);
            purl.push('=');
            purl.push_str(&encode(v));
        }
        purl
    }

    fn purl_namespace_and_name(&self, distro: Option<&Distro>) -> (Option<String>, String) {
        match self.kind {
            PackageType::Deb | PackageType::Apk | PackageType::Rpm => {
                let ns = distro.map(|d| d.id.clone()).filter(|s| !s.is_empty()).or_else(|| {
                    Some(
                        match self.kind {
                            PackageType::Deb => "debian",
                            PackageType::Apk => "alpine",
                            _ => "redhat",
                        }
                        .to_string(),
                    )
                });
                (ns, self.name.clone())
            }
            PackageType::Maven => match self.name.split_once(':') {
                Some((group, artifact)) => (Some(group.to_string()), artifact.to_string()),
                None => (None, self.name.clone()),
            },
            PackageType::Npm => match self.name.strip_prefix('@').and_then(|n| n.split_once('/')) {
                Some((scope, name)) => (Some(format!("@{scope}")), name.to_string()),
                None => (None, self.name.clone()),
            },
            PackageType::Composer => match self.name.split_once('/') {
                Some((vendor, name)) => (Some(vendor.to_string()), name.to_string()),
                None => (None, self.name.clone()),
            },
            PackageType::Go => match self.name.rsplit_once('/') {
                Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
                None => (None, self.name.clone()),
            },
            PackageType::Python => (None, normalize_python_name(&self.name)),
            PackageType::Cargo | PackageType::Gem => (None, self.name.clone()),
        }
    }
}

/// PEP 503 name normalisation: lowercase, runs of `-_.` become one `-`.
pub fn normalize_python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.extend(c.to_lowercase());
            last_sep = false;
        }
    }
    out
}

fn strip_epoch(v: &str) -> &str {
    match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => v,
    }
}

/// Characters the purl spec requires to be percent-encoded in names, versions and qualifier values.
const PURL_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'@')
    .add(b'&')
    .add(b'=')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'+')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, PURL_ENCODE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian12() -> Distro {
        Distro { id: "debian".into(), version_id: Some("12".into()), ..Default::default() }
    }

    #[test]
    fn deb_purl_carries_arch_distro_and_source() {
        let mut p = Package::new(PackageType::Deb, "libssl3", "3.0.11-1~deb12u2");
        p.arch = Some("amd64".into());
        p.source_name = Some("openssl".into());
        p.assign_identity(Some(&debian12()));
        assert_eq!(p.ecosystem, "Debian:12");
        assert_eq!(p.purl, "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl");
        assert_eq!(p.advisory_name(), "openssl");
    }

    #[test]
    fn rpm_purl_moves_epoch_to_qualifier() {
        let mut p = Package::new(PackageType::Rpm, "vim-minimal", "2:8.2.2637-20.el9_1");
        p.epoch = Some(2);
        p.arch = Some("x86_64".into());
        let d = Distro { id: "almalinux".into(), version_id: Some("9.2".into()), ..Default::default() };
        p.assign_identity(Some(&d));
        assert_eq!(p.ecosystem, "AlmaLinux:9");
        assert_eq!(p.purl, "pkg:rpm/almalinux/vim-minimal@8.2.2637-20.el9_1?arch=x86_64&distro=almalinux-9.2&epoch=2");
    }

    #[test]
    fn language_purls() {
        let mut p = Package::new(PackageType::Npm, "@babel/core", "7.22.0");
        p.assign_identity(None);
        assert_eq!(p.purl, "pkg:npm/%40babel/core@7.22.0");
        assert_eq!(p.ecosystem, "npm");
        let mut p = Package::new(PackageType::Maven, "com.google.guava:guava", "31.1-jre");
        p.assign_identity(None);
        assert_eq!(p.purl, "pkg:maven/com.google.guava/guava@31.1-jre");
        let mut p = Package::new(PackageType::Go, "github.com/nats-io/nats.go", "v1.31.0");
        p.assign_identity(None);
        assert_eq!(p.purl, "pkg:golang/github.com/nats-io/nats.go@v1.31.0");
        let mut p = Package::new(PackageType::Python, "Zope.Interface", "6.0");
        p.assign_identity(None);
        assert_eq!(p.purl, "pkg:pypi/zope-interface@6.0");
        assert_eq!(p.ecosystem, "PyPI");
    }
}
