//! The image's Linux distribution, and how it names OSV ecosystems and purl
//! `distro` qualifiers.
//!
//! OSV files distro advisories under release-specific ecosystems
//! (`Debian:12`, `Alpine:v3.18`, `Ubuntu:22.04:LTS`, `AlmaLinux:9`), so the
//! mapping from os-release fields to those names lives here, in one place.

use serde::{Deserialize, Serialize};

/// The distribution identified from `os-release` (or a fallback release file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// `ID`, lowercase (e.g. `debian`, `alpine`, `almalinux`).
    pub id: String,
    /// `VERSION_ID` (e.g. `12`, `3.18.4`, `22.04`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// `VERSION_CODENAME` (e.g. `bookworm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    /// `PRETTY_NAME`, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// `ID_LIKE` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_like: Vec<String>,
    /// `VERSION` (e.g. `22.04.3 LTS (Jammy Jellyfish)`), used to tell LTS releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Distro {
    /// Parses an `os-release` file. Returns `None` when it names no distribution.
    pub fn from_os_release(text: &str) -> Option<Distro> {
        let mut d = Distro::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            let value = unquote(value.trim());
            if value.is_empty() {
                continue;
            }
            match key.trim() {
                "ID" => d.id = value.to_ascii_lowercase(),
                "VERSION_ID" => d.version_id = Some(value),
                "VERSION_CODENAME" => d.codename = Some(value),
                "PRETTY_NAME" => d.pretty_name = Some(value),
                "VERSION" => d.version = Some(value),
                "ID_LIKE" => d.id_like = value.split_whitespace().map(|s| s.to_ascii_lowercase()).collect(),
                _ => {}
            }
        }
        if d.id.is_empty() {
            // Some images ship an os-release without ID (it defaults to "linux"
            // per the spec); a bare "linux" identifies nothing useful.
            if d.pretty_name.is_none() && d.version_id.is_none() {
                return None;
            }
            d.id = "linux".into();
        }
        Some(d)
    }

    /// Builds a distro from `etc/alpine-release` (e.g. `3.18.4`).
    pub fn from_alpine_release(text: &str) -> Option<Distro> {
        let v = text.lines().next()?.trim();
        (!v.is_empty()).then(|| Distro { id: "alpine".into(), version_id: Some(v.to_string()), ..Default::default() })
    }

    /// Builds a distro from `etc/debian_version` (e.g. `12.4` or `trixie/sid`).
    pub fn from_debian_version(text: &str) -> Option<Distro> {
        let v = text.lines().next()?.trim();
        if v.is_empty() {
            return None;
        }
        let major = v.split('.').next().unwrap_or(v);
        let version_id = if major.bytes().all(|b| b.is_ascii_digit()) {
            Some(major.to_string())
        } else {
            // "bookworm/sid" names the release under development.
            let codename = v.split('/').next().unwrap_or(v);
            debian_major_for_codename(codename).map(str::to_string)
        };
        Some(Distro { id: "debian".into(), version_id, ..Default::default() })
    }

    /// The version's first component (`3.18.4` → `3`).
    fn major(&self) -> Option<&str> {
        self.version_id.as_deref().map(|v| v.split('.').next().unwrap_or(v))
    }

    /// `major.minor` (`3.18.4` → `3.18`).
    fn major_minor(&self) -> Option<String> {
        let v = self.version_id.as_deref()?;
        let mut parts = v.split('.');
        let major = parts.next()?;
        match parts.next() {
            Some(minor) => Some(format!("{major}.{minor}")),
            None => Some(major.to_string()),
        }
    }

    /// The OSV ecosystem that advisories for this distribution's packages use,
    /// or `None` when OSV has no such ecosystem or the release is unknown.
    pub fn osv_ecosystem(&self) -> Option<String> {
        let id = self.id.as_str();
        match id {
            "debian" => {
                let major = self
                    .major()
                    .map(str::to_string)
                    .or_else(|| self.codename.as_deref().and_then(debian_major_for_codename).map(str::to_string))?;
                Some(format!("Debian:{major}"))
            }
            "ubuntu" => {
                let v = self.major_minor()?;
                let lts = self.version.as_deref().is_some_and(|s| s.contains("LTS"))
                    || self.pretty_name.as_deref().is_some_and(|s| s.contains("LTS"));
                Some(if lts { format!("Ubuntu:{v}:LTS") } else { format!("Ubuntu:{v}") })
            }
            "alpine" => {
                let mm = self.major_minor()?;
                // Pre-release strings like "3.19_alpha20230901" keep only digits.
                let mm: String = mm.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                Some(format!("Alpine:v{mm}"))
            }
            "almalinux" => Some(format!("AlmaLinux:{}", self.major()?)),
            "rocky" => Some(format!("Rocky Linux:{}", self.major()?)),
            "rhel" => Some(format!("Red Hat:enterprise_linux:{}", self.major()?)),
            "mariner" => Some(format!("Mariner:{}", self.major_minor()?)),
            "azurelinux" => Some(format!("Azure Linux:{}", self.major_minor()?)),
            "opensuse-leap" => Some(format!("openSUSE:Leap {}", self.version_id.as_deref()?)),
            "opensuse-tumbleweed" => Some("openSUSE:Tumbleweed".to_string()),
            "sles" | "sle-micro" | "sles_sap" => {
                let v = self.version_id.as_deref()?;
                let (major, sp) = match v.split_once('.') {
                    Some((m, s)) if s != "0" => (m, Some(s)),
                    Some((m, _)) => (m, None),
                    None => (v, None),
                };
                let product =
                    if id == "sle-micro" { "SUSE Linux Enterprise Micro" } else { "SUSE:Linux Enterprise Server" };
                Some(match sp {
                    Some(sp) => format!("{product} {major} SP{sp}"),
                    None => format!("{product} {major}"),
                })
            }
            "wolfi" => Some("Wolfi".to_string()),
            "chainguard" => Some("Chainguard".to_string()),
            "photon" => Some(format!("Photon OS:{}", self.major_minor()?)),
            "openeuler" => Some(format!("openEuler:{}", self.version_id.as_deref()?)),
            _ => None,
        }
    }

    /// The purl `distro` qualifier (`debian-12`, `alpine-3.18.4`).
    pub fn purl_distro(&self) -> Option<String> {
        let v = self.version_id.as_deref()?;
        Some(format!("{}-{}", self.id, v))
    }
}

/// Debian release codenames to major versions, for testing/sid images whose
/// os-release has no VERSION_ID.
fn debian_major_for_codename(codename: &str) -> Option<&'static str> {
    Some(match codename {
        "jessie" => "8",
        "stretch" => "9",
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        "duke" => "15",
        _ => return None,
    })
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let inner =
        if v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\''))) {
            &v[1..v.len() - 1]
        } else {
            v
        };
    // os-release allows shell-style backslash escapes inside double quotes.
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems_follow_osv_names() {
        let ubuntu = Distro::from_os_release(
            "NAME=\"Ubuntu\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n",
        )
        .unwrap();
        assert_eq!(ubuntu.osv_ecosystem().as_deref(), Some("Ubuntu:22.04:LTS"));
        let alpine = Distro::from_os_release("ID=alpine\nVERSION_ID=3.18.4\n").unwrap();
        assert_eq!(alpine.osv_ecosystem().as_deref(), Some("Alpine:v3.18"));
        let debian = Distro::from_os_release("ID=debian\nVERSION_CODENAME=trixie\n").unwrap();
        assert_eq!(debian.osv_ecosystem().as_deref(), Some("Debian:13"));
        let sles = Distro::from_os_release("ID=\"sles\"\nVERSION_ID=\"15.5\"\n").unwrap();
        assert_eq!(sles.osv_ecosystem().as_deref(), Some("SUSE:Linux Enterprise Server 15 SP5"));
        assert_eq!(Distro::from_os_release("# nothing\n"), None);
    }

    #[test]
    fn fallback_release_files() {
        assert_eq!(Distro::from_debian_version("10.13\n").unwrap().osv_ecosystem().as_deref(), Some("Debian:10"));
        assert_eq!(
            Distro::from_debian_version("bookworm/sid\n").unwrap().osv_ecosystem().as_deref(),
            Some("Debian:12")
        );
        assert_eq!(Distro::from_alpine_release("3.16.2\n").unwrap().osv_ecosystem().as_deref(), Some("Alpine:v3.16"));
    }
}
