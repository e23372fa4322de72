//! What a Java archive says about itself: `pom.properties` files (written by
//! Maven, one per artifact that went into the archive), the JAR manifest, and
//! the archive's file name, plus the rules that turn them into Maven
//! coordinates.

/// Longest value accepted as a group, artifact, version or license. Real ones
/// are short; anything longer is junk (or hostile) and would only bloat reports.
const MAX_FIELD: usize = 256;

/// At most this many licenses are taken from one manifest.
const MAX_LICENSES: usize = 16;

/// Trims a value and accepts it if it is a plausible single-line field.
fn clean(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= MAX_FIELD && !s.chars().any(char::is_control)).then(|| s.to_string())
}

/// Maven coordinates: from a `pom.properties`, a manifest or a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Coordinates {
    /// `groupId`; empty when unknown.
    pub group: String,
    /// `artifactId`.
    pub artifact: String,
    /// `version`.
    pub version: String,
}

impl Coordinates {
    /// The package name: `group:artifact`, or the artifact alone without a group.
    pub fn name(&self) -> String {
        if self.group.is_empty() {
            self.artifact.clone()
        } else {
            format!("{}:{}", self.group, self.artifact)
        }
    }
}

/// Reads the coordinates from a `pom.properties`; `Err` says what is missing.
pub(super) fn parse_pom_properties(text: &str) -> Result<Coordinates, &'static str> {
    let props = parse_properties(text);
    // As in java.util.Properties, a later definition of a key wins.
    let get = |key: &str| props.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| clean(v));
    Ok(Coordinates {
        group: get("groupId").unwrap_or_default(),
        artifact: get("artifactId").ok_or("no artifactId")?,
        version: get("version").ok_or("no version")?,
    })
}

/// Parses the `java.util.Properties` text format: `key=value`, `key: value`
/// or `key value` lines, `#`/`!` comments, backslash continuations and escapes.
fn parse_properties(text: &str) -> Vec<(String, String)> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    let mut logical = String::new();
    for line in text.split('\n') {
        let piece = line.trim_start_matches([' ', '\t', '\x0c']);
        if logical.is_empty() && (piece.is_empty() || piece.starts_with('#') || piece.starts_with('!')) {
            continue;
        }
        let trailing = piece.bytes().rev().take_while(|&b| b == b'\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&piece[..piece.len() - 1]);
            continue;
        }
        logical.push_str(piece);
        out.push(split_property(&logical));
        logical.clear();
    }
    if !logical.is_empty() {
        out.push(split_property(&logical));
    }
    out
}

/// Splits one logical properties line into key and value.
fn split_property(line: &str) -> (String, String) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while i < bytes.len() {
        let b = bytes[i];
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if matches!(b, b'=' | b':' | b' ' | b'\t' | b'\x0c') {
            break;
        }
        i += 1;
    }
    // `i` stops at an ASCII byte or the end, so both slices are on char boundaries.
    let (key, rest) = line.split_at(i);
    let rest = rest.trim_start_matches([' ', '\t', '\x0c']);
    let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
    (unescape(key), unescape(rest.trim_start_matches([' ', '\t', '\x0c'])))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The main section of a `META-INF/MANIFEST.MF`.
#[derive(Debug, Default, Clone)]
pub(super) struct Manifest {
    main: Vec<(String, String)>,
}

impl Manifest {
    /// Parses the main section: `Name: value` lines, continuation lines
    /// starting with one space, ending at the first blank line.
    pub fn parse(text: &str) -> Manifest {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut main: Vec<(String, String)> = Vec::new();
        for line in text.split('\n') {
            if line.is_empty() {
                if main.is_empty() {
                    continue;
                }
                break;
            }
            if let Some(cont) = line.strip_prefix(' ') {
                if let Some(last) = main.last_mut() {
                    last.1.push_str(cont);
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                main.push((k.trim().to_string(), v.to_string()));
            }
        }
        Manifest { main }
    }

    /// A main attribute (names are case-insensitive), trimmed; `None` when empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.main.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// Declared licenses: the OSGi `Bundle-License` clauses (parameters
    /// dropped) and a Jenkins plugin's `Plugin-License-Name`.
    pub fn licenses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(v) = self.get("Bundle-License") {
            for clause in split_outside_quotes(v, ',') {
                let name = split_outside_quotes(clause, ';').next().unwrap_or_default();
                let name = name.trim().trim_matches('"');
                // `<<EXTERNAL>>` is OSGi for "see the license files".
                if name == "<<EXTERNAL>>" {
                    continue;
                }
                if let Some(name) = clean(name) {
                    out.push(name);
                }
            }
        }
        if let Some(name) = self.get("Plugin-License-Name").and_then(clean) {
            out.push(name);
        }
        out.dedup();
        out.truncate(MAX_LICENSES);
        out
    }
}

/// Splits on `sep` where it is not inside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut in_quotes = false;
    s.split(move |c: char| {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        c == sep && !in_quotes
    })
}

/// `artifact-version.jar`, as Maven names what it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileName {
    /// The name without its extension.
    pub stem: String,
    /// The name part; the whole stem when there is no version.
    pub artifact: String,
    /// The version part, when the name has one.
    pub version: Option<String>,
}

/// Version qualifiers that may stand alone between dashes in a version
/// (`1.0-rc-1`, `2.0-beta-3`), as opposed to name words (`log4j-1.2-api-2.17.1`).
const QUALIFIERS: &[&str] = &[
    "alpha",
    "beta",
    "rc",
    "cr",
    "m",
    "milestone",
    "snapshot",
    "final",
    "release",
    "ga",
    "sp",
    "jre",
    "android",
    "incubating",
    "preview",
    "ea",
    "build",
    "nightly",
    "dev",
    "patch",
];

/// Splits an archive file name into artifact and version. The version starts
/// at a `-` followed by a digit: the first such one, unless a word that is not
/// a version qualifier follows it and another version-looking part follows
/// that word (`log4j-1.2-api-2.17.1.jar` is `log4j-1.2-api` version `2.17.1`).
pub(super) fn parse_file_name(file_name: &str) -> Option<FileName> {
    let stem = match file_name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file_name,
    };
    let segments: Vec<&str> = stem.split('-').collect();
    let starts_version = |s: &str| s.as_bytes().first().is_some_and(u8::is_ascii_digit);
    let is_name_word = |s: &str| {
        s.len() >= 2
            && s.bytes().all(|b| b.is_ascii_alphabetic())
            && !QUALIFIERS.iter().any(|q| q.eq_ignore_ascii_case(s))
    };
    let split = (1..segments.len()).find(|&i| {
        starts_version(segments[i]) && {
            let rest = &segments[i + 1..];
            !rest.iter().enumerate().any(|(j, s)| is_name_word(s) && rest[j + 1..].iter().any(|t| starts_version(t)))
        }
    });
    let (artifact, version) = match split {
        Some(i) => (segments[..i].join("-"), Some(segments[i..].join("-"))),
        None => (stem.to_string(), None),
    };
    Some(FileName { stem: clean(stem)?, artifact: clean(&artifact)?, version: version.and_then(|v| clean(&v)) })
}

/// Lowercase, with `.` and `_` read as `-`: packagers rename artifacts that
/// way (Debian ships `geronimo-interceptor_3.0_spec` as
/// `geronimo-interceptor-3.0-spec.jar`).
fn loose_name(s: &str) -> String {
    s.chars().map(|c| if matches!(c, '.' | '_') { '-' } else { c.to_ascii_lowercase() }).collect()
}

/// True when two artifact names differ at most in case and `-`/`.`/`_`.
pub(super) fn same_artifact(a: &str, b: &str) -> bool {
    loose_name(a) == loose_name(b)
}

/// True when two versions differ at most in case, separators and trailing
/// zero components: OSGi writes Maven's `1.3` as `1.3.0` and `2.0-SNAPSHOT`
/// as `2.0.0.SNAPSHOT`.
pub(super) fn same_version(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> Vec<String> {
        let mut p: Vec<String> = v.split(['.', '-', '_']).map(str::to_ascii_lowercase).collect();
        // Zeros are trimmed before a trailing qualifier as well as at the end.
        let qualifier = p.last().filter(|s| !s.bytes().all(|b| b.is_ascii_digit())).cloned();
        if qualifier.is_some() {
            p.pop();
        }
        while p.len() > 1 && p.last().is_some_and(|s| s == "0") {
            p.pop();
        }
        p.extend(qualifier);
        p
    }
    parts(a) == parts(b)
}

impl FileName {
    /// Whether this file name is that of `c`'s artifact, possibly renamed.
    pub fn names(&self, c: &Coordinates) -> bool {
        same_artifact(&self.artifact, &c.artifact)
            || same_artifact(&self.stem, &c.artifact)
            || same_artifact(&self.stem, &format!("{}-{}", c.artifact, c.version))
    }
}

/// A title that could be an artifact id: one word, not a display name.
fn machine_name(s: &str) -> Option<String> {
    clean(s).filter(|s| !s.contains(char::is_whitespace))
}

/// The coordinates a manifest implies, helped by the file name:
///
/// * version: `Implementation-Version`, `Bundle-Version`, the file name's,
///   then `Specification-Version` (the version of the *specification*
///   implemented, so only a last resort);
/// * artifact: the file name's when it carries that same version (Maven's
///   `artifactId-version.jar`), else a one-word `Implementation-Title`, the
///   `Bundle-SymbolicName` minus the `Implementation-Vendor-Id`, a one-word
///   `Bundle-Name` or `Specification-Title`, else the file name's;
/// * group: `Implementation-Vendor-Id`, else derived from the
///   `Bundle-SymbolicName` (see [`symbolic_group`]).
///
/// `None` without a version.
pub(super) fn manifest_coordinates(m: &Manifest, file: Option<&FileName>) -> Option<Coordinates> {
    let version = ["Implementation-Version", "Bundle-Version"]
        .iter()
        .find_map(|k| m.get(k).and_then(clean))
        .or_else(|| file.and_then(|f| f.version.clone()))
        .or_else(|| m.get("Specification-Version").and_then(clean))?;
    let symbolic = m.get("Bundle-SymbolicName").and_then(|s| s.split(';').next()).and_then(clean);
    let vendor_id = m.get("Implementation-Vendor-Id").and_then(clean);
    let artifact = file
        .filter(|f| f.version.as_deref().is_some_and(|v| same_version(v, &version)))
        .map(|f| f.artifact.clone())
        .or_else(|| m.get("Implementation-Title").and_then(machine_name))
        .or_else(|| {
            let (symbolic, group) = (symbolic.as_deref()?, vendor_id.as_deref()?);
            clean(symbolic.strip_prefix(group)?.strip_prefix('.')?)
        })
        .or_else(|| m.get("Bundle-Name").and_then(machine_name))
        .or_else(|| m.get("Specification-Title").and_then(machine_name))
        .or_else(|| file.map(|f| f.artifact.clone()))?;
    let group =
        vendor_id.or_else(|| symbolic.as_deref().and_then(|s| symbolic_group(s, &artifact))).unwrap_or_default();
    Some(Coordinates { group, artifact, version })
}

/// The group a `Bundle-SymbolicName` implies for `artifact`. The Maven bundle
/// plugin builds symbolic names as `group.artifact` (`org.apache.httpcomponents.httpclient`),
/// or `group.suffix` when the artifact starts with the group's last part
/// (`org.apache.maven.core` for `maven-core`); a symbolic name unrelated to
/// the artifact (`com.google.inject` for `guice`) is taken to be the group.
/// Guava's `com.google.guava` is ambiguous and read as `group.artifact`, as Trivy does.
fn symbolic_group(symbolic: &str, artifact: &str) -> Option<String> {
    if let Some(group) = symbolic.strip_suffix(artifact).and_then(|g| g.strip_suffix('.')) {
        return clean(group);
    }
    let (prefix, last) = symbolic.rsplit_once('.')?;
    let artifact = loose_name(artifact);
    let last = loose_name(last);
    if artifact == last || artifact.ends_with(&format!("-{last}")) {
        return clean(prefix);
    }
    clean(symbolic)
}

/// The coordinates a file name alone implies; `None` without a version.
pub(super) fn file_coordinates(file: &FileName) -> Option<Coordinates> {
    Some(Coordinates { group: String::new(), artifact: file.artifact.clone(), version: file.version.clone()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> (String, Option<String>) {
        let f = parse_file_name(name).expect("parses");
        (f.artifact, f.version)
    }

    #[test]
    fn file_names_split_at_the_version() {
        let v = |a: &str, v: &str| (a.to_string(), Some(v.to_string()));
        assert_eq!(file("guava-31.1-jre.jar"), v("guava", "31.1-jre"));
        assert_eq!(file("spring-core-5.3.4-SNAPSHOT.jar"), v("spring-core", "5.3.4-SNAPSHOT"));
        assert_eq!(file("log4j-1.2-api-2.17.1.jar"), v("log4j-1.2-api", "2.17.1"));
        assert_eq!(file("kotlin-stdlib-jdk8-1.8.0.jar"), v("kotlin-stdlib-jdk8", "1.8.0"));
        assert_eq!(file("foo-1.0-rc-1.jar"), v("foo", "1.0-rc-1"));
        assert_eq!(file("netty-codec-http2-4.1.100.Final.jar"), v("netty-codec-http2", "4.1.100.Final"));
        assert_eq!(
            file("listenablefuture-9999.0-empty-to-avoid-conflict-with-guava.jar"),
            v("listenablefuture", "9999.0-empty-to-avoid-conflict-with-guava")
        );
        assert_eq!(file("app.jar"), ("app".to_string(), None));
        assert_eq!(file("1.2.jar"), ("1.2".to_string(), None));
    }

    #[test]
    fn properties_format() {
        let text = "#Created by Maven\r\n! other comment\n  groupId = org.example\nartifactId:demo\\\n    -core\nversion 1.0\\u002D1\nversion=2.0\n";
        let c = parse_pom_properties(text).expect("valid");
        assert_eq!(c, Coordinates { group: "org.example".into(), artifact: "demo-core".into(), version: "2.0".into() });
        assert_eq!(parse_pom_properties("groupId=a\nartifactId=b\n"), Err("no version"));
        assert_eq!(parse_pom_properties("version=1\n"), Err("no artifactId"));
        assert_eq!(parse_properties("k\\=x=v")[0], ("k=x".to_string(), "v".to_string()));
    }

    #[test]
    fn manifest_main_section_and_continuations() {
        let m = Manifest::parse(
            "Manifest-Version: 1.0\r\nImplementation-URL: https://example.org/a\r\n b/c\r\nbundle-license: \"Apache-2.0\";link=\"x,y\", EPL-2.0\r\n\r\nName: a/b\r\nImplementation-Title: other\r\n",
        );
        assert_eq!(m.get("Implementation-URL"), Some("https://example.org/ab/c"));
        assert_eq!(m.get("Implementation-Title"), None);
        assert_eq!(m.licenses(), vec!["Apache-2.0".to_string(), "EPL-2.0".to_string()]);
    }

    #[test]
    fn manifest_coordinates_prefer_maven_like_names() {
        let m = Manifest::parse(
            "Implementation-Title: Apache Hadoop shaded Guava\nImplementation-Version: 1.1.0\nImplementation-Vendor-Id: org.apache.hadoop.thirdparty\n",
        );
        let f = parse_file_name("hadoop-shaded-guava-1.1.0.jar");
        let c = manifest_coordinates(&m, f.as_ref()).expect("coordinates");
        assert_eq!(c.name(), "org.apache.hadoop.thirdparty:hadoop-shaded-guava");
        // Renamed, with a display name for a title: the file name is the best guess.
        let c = manifest_coordinates(&m, parse_file_name("app.jar").as_ref()).expect("coordinates");
        assert_eq!(c.name(), "org.apache.hadoop.thirdparty:app");

        let osgi = Manifest::parse(
            "Bundle-SymbolicName: com.fasterxml.jackson.core.jackson-databind;singleton:=true\nBundle-Version: 2.13.0\nBundle-Name: Jackson-databind\n",
        );
        let c =
            manifest_coordinates(&osgi, parse_file_name("jackson-databind-2.13.0.jar").as_ref()).expect("coordinates");
        assert_eq!((c.name().as_str(), c.version.as_str()), ("com.fasterxml.jackson.core:jackson-databind", "2.13.0"));

        // Debian's guice: no pom of its own, an OSGi manifest, an unversioned file name.
        let guice =
            Manifest::parse("Bundle-Name: guice\nBundle-SymbolicName: com.google.inject\nBundle-Version: 4.2.3\n");
        let c = manifest_coordinates(&guice, parse_file_name("guice.jar").as_ref()).expect("coordinates");
        assert_eq!((c.name().as_str(), c.version.as_str()), ("com.google.inject:guice", "4.2.3"));

        assert_eq!(manifest_coordinates(&Manifest::parse("Manifest-Version: 1.0\n"), None), None);
    }

    #[test]
    fn symbolic_names_to_groups() {
        let g = |s: &str, a: &str| symbolic_group(s, a);
        assert_eq!(
            g("org.apache.httpcomponents.httpclient", "httpclient").as_deref(),
            Some("org.apache.httpcomponents")
        );
        assert_eq!(g("org.apache.maven.core", "maven-core").as_deref(), Some("org.apache.maven"));
        assert_eq!(g("org.eclipse.jetty.util", "jetty-util").as_deref(), Some("org.eclipse.jetty"));
        assert_eq!(g("com.google.inject", "guice").as_deref(), Some("com.google.inject"));
        assert_eq!(g("snakeyaml", "other"), None);
    }

    #[test]
    fn loose_comparisons() {
        assert!(same_version("1.3", "1.3.0"));
        assert!(same_version("2.0-SNAPSHOT", "2.0.0.SNAPSHOT"));
        assert!(!same_version("1.3", "1.3.1"));
        assert!(!same_version("10", "1"));
        let f = parse_file_name("geronimo-interceptor-3.0-spec.jar").expect("parses");
        let pom = Coordinates {
            group: "org.apache.geronimo.specs".into(),
            artifact: "geronimo-interceptor_3.0_spec".into(),
            version: "1.0.1".into(),
        };
        assert!(f.names(&pom));
        assert!(parse_file_name("geronimo-interceptor_3.0_spec-1.0.1.jar").expect("parses").names(&pom));
        assert!(!parse_file_name("guava-testlib-31.1.jar").expect("parses").names(&Coordinates {
            group: String::new(),
            artifact: "guava".into(),
            version: "31.1".into()
        }));
    }
}
