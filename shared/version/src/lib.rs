//! Version ordering for every ecosystem Trawl matches OSV affected ranges in.
//!
//! # What
//!
//! An OSV `ECOSYSTEM` or `SEMVER` range is a list of events (`introduced`, `fixed`, `last_affected`) whose
//! versions are only meaningful under the ordering of the package manager that produced them. Deciding whether
//! an installed package is affected therefore means comparing two version strings *exactly* the way that
//! package manager does: a wrong answer is a missed or a false vulnerability. This crate implements those
//! orderings, one [`Scheme`] per package-manager family, each a faithful port of the reference implementation:
//!
//! | scheme | reference | module |
//! |---|---|---|
//! | [`Scheme::Dpkg`] | dpkg's `verrevcmp` / deb-version(7) | [`dpkg`] |
//! | [`Scheme::Apk`] | apk-tools `src/version.c` (current token-state version) | [`apk`] |
//! | [`Scheme::Rpm`] | rpm ≥ 4.15 `rpmvercmp` and EVR comparison | [`rpm`] |
//! | [`Scheme::Semver`] | SemVer 2.0.0 precedence (npm, crates.io) | [`semver`] |
//! | [`Scheme::Go`] | `golang.org/x/mod/semver`, `go/version` for toolchains | [`go`] |
//! | [`Scheme::Pep440`] | PEP 440 as implemented by Python's `packaging` ≥ 22 | [`pep440`] |
//! | [`Scheme::Maven`] | Maven 3.9 `ComparableVersion` | [`maven`] |
//! | [`Scheme::RubyGems`] | `Gem::Version` | [`rubygems`] |
//! | [`Scheme::Composer`] | composer/semver `VersionParser::normalize` + PHP `version_compare` | [`composer`] |
//! | [`Scheme::NuGet`] | NuGet.Versioning `NuGetVersion` | [`nuget`] |
//!
//! # Why this shape
//!
//! The matcher parses each installed version once and compares it against many range events, so a
//! [`Version`] is parsed once into a compact form and [`Version::cmp_to`] does no allocation. Every scheme's
//! comparison is a total order consistent with its equality (`cmp_to` returning `Equal` is exactly "these are
//! the same version", e.g. `1.0` and `1.0.0` under PEP 440). Where a reference implementation is itself not a
//! total order, or silently orders garbage, the module documents the one deliberate divergence; everywhere
//! else the test suite checks us against the real tool (dpkg, rpm, `packaging`, apk-tools' own vectors).
//!
//! Input that the reference rejects is rejected here with a [`VersionError`] naming the scheme and the reason,
//! instead of being guessed at: a scanner that cannot order a version must say so rather than silently call it
//! fixed. Inputs are bounded ([`MAX_VERSION_LEN`]) and no input makes parsing or comparison panic.
//!
//! ```
//! use std::cmp::Ordering;
//! use trawl_version::{compare, scheme_for_ecosystem, Scheme, Version};
//!
//! assert_eq!(scheme_for_ecosystem("Debian:12"), Some(Scheme::Dpkg));
//! assert_eq!(compare(Scheme::Dpkg, "1.0~rc1-1", "1.0-1").unwrap(), Ordering::Less);
//! let installed = Version::parse(Scheme::Pep440, "2.0.0").unwrap();
//! let fixed = Version::parse(Scheme::Pep440, "2.0.1rc1").unwrap();
//! assert_eq!(installed.cmp_to(&fixed), Some(Ordering::Less));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::cmp::Ordering;
use std::fmt;

#[macro_use]
mod num;

pub mod apk;
pub mod composer;
pub mod dpkg;
pub mod go;
pub mod maven;
pub mod nuget;
pub mod pep440;
pub mod rpm;
pub mod rubygems;
pub mod semver;

/// Longest version string accepted, in bytes; real versions are far shorter, and the bound caps allocation.
pub const MAX_VERSION_LEN: usize = 512;

/// A version-ordering family: all ecosystems that share one comparison algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Debian and Ubuntu packages (dpkg).
    Dpkg,
    /// Alpine, Wolfi and Chainguard packages (apk-tools).
    Apk,
    /// RPM-based distributions (rpm EVR).
    Rpm,
    /// SemVer 2.0.0 packages: npm and crates.io.
    Semver,
    /// Go modules and the Go toolchain/standard library.
    Go,
    /// Python packages (PEP 440).
    Pep440,
    /// Maven artifacts.
    Maven,
    /// Ruby gems.
    RubyGems,
    /// PHP packages from Packagist (Composer).
    Composer,
    /// .NET packages (NuGet).
    NuGet,
}

impl Scheme {
    /// Every scheme, in declaration order.
    pub const ALL: [Scheme; 10] = [
        Scheme::Dpkg,
        Scheme::Apk,
        Scheme::Rpm,
        Scheme::Semver,
        Scheme::Go,
        Scheme::Pep440,
        Scheme::Maven,
        Scheme::RubyGems,
        Scheme::Composer,
        Scheme::NuGet,
    ];

    /// A short lowercase name, as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Dpkg => "dpkg",
            Scheme::Apk => "apk",
            Scheme::Rpm => "rpm",
            Scheme::Semver => "semver",
            Scheme::Go => "go",
            Scheme::Pep440 => "pep440",
            Scheme::Maven => "maven",
            Scheme::RubyGems => "rubygems",
            Scheme::Composer => "composer",
            Scheme::NuGet => "nuget",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scheme that orders versions of an OSV ecosystem (`affected[].package.ecosystem`), if Trawl knows it.
///
/// OSV ecosystem names may carry a `:suffix` (`Debian:12`, `Alpine:v3.18`, `Ubuntu:22.04:LTS`); the part
/// before the first `:` decides. Names are case-sensitive, as in the OSV schema.
pub fn scheme_for_ecosystem(ecosystem: &str) -> Option<Scheme> {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    let scheme = match base {
        "Debian" | "Ubuntu" => Scheme::Dpkg,
        "Alpine" | "Wolfi" | "Chainguard" => Scheme::Apk,
        "AlmaLinux" | "Rocky Linux" | "Mariner" | "Azure Linux" | "Photon OS" | "openEuler" => Scheme::Rpm,
        "npm" | "crates.io" => Scheme::Semver,
        "Go" => Scheme::Go,
        "PyPI" => Scheme::Pep440,
        "Maven" => Scheme::Maven,
        "RubyGems" => Scheme::RubyGems,
        "Packagist" => Scheme::Composer,
        "NuGet" => Scheme::NuGet,
        _ if base.starts_with("Red Hat") || base.starts_with("SUSE") || base.starts_with("openSUSE") => Scheme::Rpm,
        _ => return None,
    };
    Some(scheme)
}

/// Why a version string could not be parsed under a scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The string is empty (or only whitespace).
    #[error("empty {scheme} version")]
    Empty {
        /// The scheme the string was parsed under.
        scheme: Scheme,
    },
    /// The string is longer than [`MAX_VERSION_LEN`].
    #[error("{scheme} version is {len} bytes long; at most {max} are accepted")]
    TooLong {
        /// The scheme the string was parsed under.
        scheme: Scheme,
        /// The string's length in bytes.
        len: usize,
        /// The limit, [`MAX_VERSION_LEN`].
        max: usize,
    },
    /// The string is not a version under the scheme.
    #[error("invalid {scheme} version {input:?}: {reason}")]
    Invalid {
        /// The scheme the string was parsed under.
        scheme: Scheme,
        /// The offending string, cut to at most 64 characters.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl VersionError {
    /// The scheme the failing string was parsed under.
    pub fn scheme(&self) -> Scheme {
        match self {
            VersionError::Empty { scheme }
            | VersionError::TooLong { scheme, .. }
            | VersionError::Invalid { scheme, .. } => *scheme,
        }
    }

    pub(crate) fn invalid(scheme: Scheme, input: &str, reason: &'static str) -> Self {
        let input: String = input.chars().take(64).collect();
        VersionError::Invalid { scheme, input, reason }
    }
}

/// Checks the bounds every scheme shares: not too long. Emptiness is left to each scheme (some trim first).
pub(crate) fn check_len(scheme: Scheme, input: &str) -> Result<(), VersionError> {
    if input.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong { scheme, len: input.len(), max: MAX_VERSION_LEN });
    }
    Ok(())
}

/// A version parsed under one [`Scheme`], ready to be compared many times.
#[derive(Clone)]
pub struct Version {
    original: Box<str>,
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    Dpkg(dpkg::DpkgVersion),
    Apk(apk::ApkVersion),
    Rpm(rpm::RpmVersion),
    Semver(semver::SemverVersion),
    Go(go::GoVersion),
    Pep440(pep440::Pep440Version),
    Maven(maven::MavenVersion),
    RubyGems(rubygems::GemVersion),
    Composer(composer::ComposerVersion),
    NuGet(nuget::NuGetVersion),
}

impl Version {
    /// Parses `input` under `scheme`, or says why it is not a version there.
    pub fn parse(scheme: Scheme, input: &str) -> Result<Version, VersionError> {
        check_len(scheme, input)?;
        let repr = match scheme {
            Scheme::Dpkg => Repr::Dpkg(dpkg::DpkgVersion::parse(input)?),
            Scheme::Apk => Repr::Apk(apk::ApkVersion::parse(input)?),
            Scheme::Rpm => Repr::Rpm(rpm::RpmVersion::parse(input)?),
            Scheme::Semver => Repr::Semver(semver::SemverVersion::parse(input)?),
            Scheme::Go => Repr::Go(go::GoVersion::parse(input)?),
            Scheme::Pep440 => Repr::Pep440(pep440::Pep440Version::parse(input)?),
            Scheme::Maven => Repr::Maven(maven::MavenVersion::parse(input)?),
            Scheme::RubyGems => Repr::RubyGems(rubygems::GemVersion::parse(input)?),
            Scheme::Composer => Repr::Composer(composer::ComposerVersion::parse(input)?),
            Scheme::NuGet => Repr::NuGet(nuget::NuGetVersion::parse(input)?),
        };
        Ok(Version { original: input.into(), repr })
    }

    /// The scheme this version was parsed under.
    pub fn scheme(&self) -> Scheme {
        match self.repr {
            Repr::Dpkg(_) => Scheme::Dpkg,
            Repr::Apk(_) => Scheme::Apk,
            Repr::Rpm(_) => Scheme::Rpm,
            Repr::Semver(_) => Scheme::Semver,
            Repr::Go(_) => Scheme::Go,
            Repr::Pep440(_) => Scheme::Pep440,
            Repr::Maven(_) => Scheme::Maven,
            Repr::RubyGems(_) => Scheme::RubyGems,
            Repr::Composer(_) => Scheme::Composer,
            Repr::NuGet(_) => Scheme::NuGet,
        }
    }

    /// The string this version was parsed from, unchanged.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// Orders `self` against `other` under their scheme; `None` when the two were parsed under different schemes.
    pub fn cmp_to(&self, other: &Version) -> Option<Ordering> {
        Some(match (&self.repr, &other.repr) {
            (Repr::Dpkg(a), Repr::Dpkg(b)) => a.cmp(b),
            (Repr::Apk(a), Repr::Apk(b)) => a.cmp(b),
            (Repr::Rpm(a), Repr::Rpm(b)) => a.cmp(b),
            (Repr::Semver(a), Repr::Semver(b)) => a.cmp(b),
            (Repr::Go(a), Repr::Go(b)) => a.cmp(b),
            (Repr::Pep440(a), Repr::Pep440(b)) => a.cmp(b),
            (Repr::Maven(a), Repr::Maven(b)) => a.cmp(b),
            (Repr::RubyGems(a), Repr::RubyGems(b)) => a.cmp(b),
            (Repr::Composer(a), Repr::Composer(b)) => a.cmp(b),
            (Repr::NuGet(a), Repr::NuGet(b)) => a.cmp(b),
            _ => return None,
        })
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({}:{:?})", self.scheme(), self.original)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// Equality is the scheme's: `1.0 == 1.0.0` under PEP 440; versions of different schemes are never equal.
impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp_to(other) == Some(Ordering::Equal)
    }
}

/// Ordering is [`Version::cmp_to`]: total within a scheme, `None` across schemes.
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        self.cmp_to(other)
    }
}

/// Parses both strings under `scheme` and orders them; fails if either is not a version there.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    let a = Version::parse(scheme, a)?;
    let b = Version::parse(scheme, b)?;
    // Both were parsed under `scheme`, so the comparison is always defined.
    Ok(a.cmp_to(&b).unwrap_or(Ordering::Equal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems() {
        for (eco, scheme) in [
            ("Debian", Some(Scheme::Dpkg)),
            ("Debian:12", Some(Scheme::Dpkg)),
            ("Ubuntu:22.04:LTS", Some(Scheme::Dpkg)),
            ("Ubuntu:Pro:18.04:LTS", Some(Scheme::Dpkg)),
            ("Alpine:v3.18", Some(Scheme::Apk)),
            ("Wolfi", Some(Scheme::Apk)),
            ("Chainguard", Some(Scheme::Apk)),
            ("AlmaLinux:9", Some(Scheme::Rpm)),
            ("Rocky Linux:8", Some(Scheme::Rpm)),
            ("Red Hat:enterprise_linux:9::appstream", Some(Scheme::Rpm)),
            ("SUSE:Linux Enterprise Server 15 SP5", Some(Scheme::Rpm)),
            ("openSUSE:Tumbleweed", Some(Scheme::Rpm)),
            ("Mariner:2.0", Some(Scheme::Rpm)),
            ("Azure Linux:3.0", Some(Scheme::Rpm)),
            ("Photon OS:5.0", Some(Scheme::Rpm)),
            ("openEuler:22.03-LTS", Some(Scheme::Rpm)),
            ("npm", Some(Scheme::Semver)),
            ("crates.io", Some(Scheme::Semver)),
            ("Go", Some(Scheme::Go)),
            ("PyPI", Some(Scheme::Pep440)),
            ("Maven", Some(Scheme::Maven)),
            ("Maven:https://repo.example", Some(Scheme::Maven)),
            ("RubyGems", Some(Scheme::RubyGems)),
            ("Packagist", Some(Scheme::Composer)),
            ("NuGet", Some(Scheme::NuGet)),
            ("pypi", None),
            ("Hex", None),
            ("", None),
            ("GIT", None),
        ] {
            assert_eq!(scheme_for_ecosystem(eco), scheme, "{eco:?}");
        }
    }

    #[test]
    fn version_api() {
        let a = Version::parse(Scheme::Pep440, "1.0").unwrap();
        let b = Version::parse(Scheme::Pep440, "1.0.0").unwrap();
        let c = Version::parse(Scheme::Semver, "1.0.0").unwrap();
        assert_eq!(a, b, "scheme equality, not string equality");
        assert_eq!(a.as_str(), "1.0");
        assert_eq!(a.to_string(), "1.0");
        assert_eq!(a.scheme(), Scheme::Pep440);
        assert_eq!(a.cmp_to(&c), None, "different schemes do not compare");
        assert_ne!(a, c);
        assert!(a.partial_cmp(&c).is_none());
        assert!(Version::parse(Scheme::Pep440, "1.1").unwrap() > a);
        assert_eq!(format!("{a:?}"), "Version(pep440:\"1.0\")");
        assert_eq!(compare(Scheme::Dpkg, "1:1.0", "2.0").unwrap(), Ordering::Greater);
        let err = compare(Scheme::Semver, "1.0.0", "x").unwrap_err();
        assert_eq!(err.scheme(), Scheme::Semver);
        assert!(matches!(err, VersionError::Invalid { .. }));
        for scheme in Scheme::ALL {
            assert_eq!(scheme.to_string(), scheme.name());
        }
    }
}
