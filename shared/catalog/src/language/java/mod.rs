//! Java archives (`.jar`, `.war`, `.ear`, and Jenkins' `.jpi`/`.hpi`),
//! identified by Maven coordinates the way Syft and Trivy identify them.
//!
//! * Every `pom.properties` under `META-INF/` is a package. Maven writes one
//!   per artifact at `META-INF/maven/<group>/<artifact>/pom.properties`, and
//!   shading plugins copy those of every bundled artifact, so a fat jar
//!   reports everything it bundles. (Trivy accepts the file anywhere; Syft
//!   only under `META-INF/maven/`; `META-INF/` keeps what Trivy finds in
//!   hand-made archives without picking up resources that merely share the name.)
//! * Nested archives (`WEB-INF/lib/*.jar`, `BOOT-INF/lib/*.jar`, an ear's
//!   modules, any `*.jar` inside) are opened recursively. Their packages get
//!   the path `outer.war:WEB-INF/lib/inner.jar`, Syft's convention.
//! * An archive none of whose `pom.properties` describes the archive itself
//!   — none matches the artifact in its file name or its manifest, nor the
//!   manifest's version — is also reported under the coordinates its
//!   `META-INF/MANIFEST.MF` implies, or else its file name
//!   (`name-1.2.3.jar`), as Trivy does; see `meta::manifest_coordinates`.
//!   Manifest licenses (`Bundle-License`) go to the package that describes
//!   the archive itself.
//!
//! Deliberate differences from Syft (1.18), found by comparing the two on
//! Debian's `/usr/share/java` and on the corpus: a package needs a version
//! (Syft also reports `UNKNOWN` ones); no group is invented when nothing
//! declares one (Syft consults a list of well-known artifacts); an archive
//! described by one of its poms is not reported a second time under its file
//! name (Syft does, e.g. `maven3-core` next to `org.apache.maven:maven-core`
//! for Debian's renamed jar); licenses come from the manifest only (Syft also
//! reads embedded `pom.xml` files and license texts).
//!
//! Archives are read as a stream (see the `zip` submodule): the walker hands us a tar
//! entry, and a war of a few hundred megabytes must not be buffered, nor each
//! jar inside it. Everything read is bounded by [`JavaLimits`], shared by the
//! file and all archives nested in it.

mod meta;
mod zip;

use crate::cataloger::{read_text_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use meta::{Coordinates, Manifest};
use std::collections::HashSet;
use std::io::Read;
use zip::{Budget, Stream, Visitor, ZipError};

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(JavaArchiveCataloger::default())]
}

/// Extensions of the archives this module reads, at the top level and nested.
const ARCHIVE_EXTENSIONS: &[&str] = &["jar", "war", "ear", "jpi", "hpi"];

/// At most this many warnings are kept per file; a hostile archive could
/// otherwise produce one per entry.
const MAX_WARNINGS: usize = 64;

/// Nested archives whose path (`outer.war:WEB-INF/lib/x.jar:…`) would be
/// longer are not opened: every package found inside carries that path.
const MAX_NESTED_PATH: usize = 4096;

/// Bounds on the work done for one cataloged file, nested archives included,
/// so that hostile input costs bounded time, memory and scratch space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JavaLimits {
    /// Largest file accepted (Cataloger::max_size); streaming keeps memory flat, so this only bounds time.
    pub max_file_size: u64,
    /// Deepest nested archive opened; the file itself is depth 0.
    pub max_depth: u32,
    /// Zip entries walked, over the file and everything nested in it.
    pub max_entries: u64,
    /// Nested archives opened.
    pub max_nested: u64,
    /// Bytes read from one `MANIFEST.MF` or `pom.properties`.
    pub max_metadata: u64,
    /// Decompressed bytes produced in total: inflating is the one cost a
    /// small input can multiply.
    pub max_inflated: u64,
    /// Compression ratio above which an entry is refused as a bomb…
    pub max_ratio: u64,
    /// …once it has produced this many bytes (small entries compress unevenly).
    pub ratio_floor: u64,
    /// Packages reported.
    pub max_packages: usize,
}

impl Default for JavaLimits {
    fn default() -> Self {
        JavaLimits {
            max_file_size: 2 << 30,
            max_depth: 8,
            max_entries: 2_000_000,
            max_nested: 10_000,
            max_metadata: 1 << 20,
            // Archives written by `jar` (data descriptors) must be inflated
            // entry by entry to be walked, so this is of the order of the
            // uncompressed size of a large ear.
            max_inflated: 4 << 30,
            // Deflate tops out near 1032:1; class files and nested jars are a
            // few to one, text resources tens to one.
            max_ratio: 200,
            ratio_floor: 16 << 20,
            max_packages: 50_000,
        }
    }
}

/// Reads Maven coordinates out of Java archives, nested archives included.
#[derive(Debug, Clone, Default)]
pub struct JavaArchiveCataloger {
    limits: JavaLimits,
}

impl JavaArchiveCataloger {
    /// A cataloger enforcing `limits` instead of the defaults.
    pub fn with_limits(limits: JavaLimits) -> Self {
        JavaArchiveCataloger { limits }
    }
}

/// True for a file name with one of the [`ARCHIVE_EXTENSIONS`].
fn is_archive_name(file_name: &str) -> bool {
    match file_name.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && ARCHIVE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)),
        None => false,
    }
}

impl Cataloger for JavaArchiveCataloger {
    fn name(&self) -> &'static str {
        "java-archive"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        is_archive_name(file.file_name())
    }

    fn max_size(&self) -> u64 {
        self.limits.max_file_size
    }

    fn catalog(
        &self,
        file: &FileMeta<'_>,
        content: &mut dyn Read,
        ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let budget = Budget::new(self.limits);
        let mut found = Found::default();
        let mut archive = Archive::new(ctx, &budget, &mut found, file.path.to_string(), file.file_name(), 0);
        let mut stream = Stream::new(content);
        let result = zip::walk_stream(&mut stream, ctx, &budget, &mut archive);
        let anything = archive.entries > 0;
        match result {
            Ok(()) => archive.finish(),
            Err(ZipError::Io(e)) => return Err(CatalogError::Io(e)),
            // Nothing readable at all: not an archive, or cut off at once.
            Err(ZipError::Spill(e)) if !anything => return Err(e),
            Err(e) if !anything => return Err(CatalogError::Malformed(e.to_string())),
            // Partial: report what was read, and why the rest was not.
            Err(e) => {
                archive.warn(e.to_string());
                archive.finish();
            }
        }
        Ok(found)
    }
}

/// What kind of entry an archive member is, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Manifest,
    PomProperties,
    Archive,
    Other,
}

fn classify(name: &str) -> Kind {
    if name.ends_with('/') {
        return Kind::Other;
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
        Kind::Manifest
    } else if base == "pom.properties" && name.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("META-INF/")) {
        Kind::PomProperties
    } else if is_archive_name(base) {
        Kind::Archive
    } else {
        Kind::Other
    }
}

/// The state of one archive being walked (the file, or one nested in it).
struct Archive<'a> {
    ctx: &'a CatalogContext,
    budget: &'a Budget,
    found: &'a mut Found,
    /// `outer.war:WEB-INF/lib/inner.jar`.
    path: String,
    /// The last component of the innermost name, e.g. `inner.jar`.
    file_name: String,
    depth: u32,
    /// Entries seen, to tell a partial archive from no archive at all.
    entries: u64,
    manifest: Option<Manifest>,
    /// Distinct `pom.properties` coordinates, in archive order.
    poms: Vec<Coordinates>,
    seen_poms: HashSet<Coordinates>,
    /// Where this archive's own packages go in `found.packages`, ahead of
    /// those of the archives nested in it.
    first_package: usize,
}

impl<'a> Archive<'a> {
    fn new(
        ctx: &'a CatalogContext,
        budget: &'a Budget,
        found: &'a mut Found,
        path: String,
        file_name: &str,
        depth: u32,
    ) -> Self {
        let first_package = found.packages.len();
        Archive {
            ctx,
            budget,
            found,
            path,
            file_name: file_name.to_string(),
            depth,
            entries: 0,
            manifest: None,
            poms: Vec::new(),
            seen_poms: HashSet::new(),
            first_package,
        }
    }

    /// Reads a small metadata entry, turning problems with it into warnings.
    fn read_metadata(&mut self, name: &str, data: &mut dyn Read) -> Result<Option<String>, ZipError> {
        match read_text_capped(data, self.budget.limits().max_metadata) {
            Ok(text) => Ok(Some(text)),
            Err(e) => match ZipError::from(e) {
                e @ (ZipError::Limit(_) | ZipError::Io(_)) => Err(e),
                e => {
                    self.warn(format!("{name}: {e}"));
                    Ok(None)
                }
            },
        }
    }

    /// Walks an archive nested in this one, straight from its entry stream.
    fn visit_nested(&mut self, name: &str, data: &mut dyn Read) -> Result<(), ZipError> {
        let path = format!("{}:{}", self.path, name);
        if path.len() > MAX_NESTED_PATH {
            self.warn(format!("{name}: nested archive path longer than {MAX_NESTED_PATH} bytes; not opened"));
            return Ok(());
        }
        if self.depth >= self.budget.limits().max_depth {
            self.warn(format!("{path}: nested more than {} archives deep; not opened", self.budget.limits().max_depth));
            return Ok(());
        }
        self.budget.count_nested()?;
        let file_name = name.rsplit('/').next().unwrap_or(name);
        let mut child = Archive::new(self.ctx, self.budget, &mut *self.found, path, file_name, self.depth + 1);
        let mut stream = Stream::new(data);
        let result = zip::walk_stream(&mut stream, self.ctx, self.budget, &mut child);
        let anything = child.entries > 0;
        match result {
            Ok(()) => {
                child.finish();
                Ok(())
            }
            Err(e @ (ZipError::Limit(_) | ZipError::Io(_))) => {
                if anything {
                    child.finish();
                }
                Err(e)
            }
            // A broken nested archive is a warning: the outer one goes on
            // (and notices itself if the breakage was really its own).
            Err(e) => {
                child.warn(e.to_string());
                if anything {
                    child.finish();
                }
                Ok(())
            }
        }
    }

    /// Records a warning about this archive, up to [`MAX_WARNINGS`] per file.
    fn warn(&mut self, msg: String) {
        let warnings = &mut self.found.warnings;
        if warnings.len() < MAX_WARNINGS {
            warnings.push(format!("{}: {msg}", self.path));
        } else if warnings.len() == MAX_WARNINGS {
            warnings.push("further warnings suppressed".into());
        }
    }

    /// Decides this archive's own packages (see the module docs) and puts
    /// them ahead of those of its nested archives.
    fn finish(mut self) {
        let file = meta::parse_file_name(&self.file_name);
        let fallback = self
            .manifest
            .as_ref()
            .and_then(|m| meta::manifest_coordinates(m, file.as_ref()))
            .or_else(|| file.as_ref().and_then(meta::file_coordinates));
        let poms = std::mem::take(&mut self.poms);
        // The pom that describes the archive itself: the one its file name
        // names, else the one matching its manifest/file-name coordinates.
        let own = file.as_ref().and_then(|f| poms.iter().position(|p| f.names(p))).or_else(|| {
            let f = fallback.as_ref()?;
            poms.iter()
                .position(|p| meta::same_artifact(&p.artifact, &f.artifact))
                .or_else(|| poms.iter().position(|p| meta::same_version(&p.version, &f.version)))
        });
        let licenses = self.manifest.as_ref().map(Manifest::licenses).unwrap_or_default();

        let mut packages: Vec<Package> = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut push = |c: &Coordinates, licenses: &[String]| {
            let name = c.name();
            if seen.insert((name.clone(), c.version.clone())) {
                let mut p = Package::new(PackageType::Maven, name, c.version.clone());
                p.licenses = licenses.to_vec();
                p.path = self.path.clone();
                packages.push(p);
            }
        };
        for (i, pom) in poms.iter().enumerate() {
            push(pom, if own == Some(i) { &licenses } else { &[] });
        }
        if own.is_none() {
            if let Some(c) = &fallback {
                push(c, &licenses);
            }
        }

        let room = self.budget.limits().max_packages.saturating_sub(self.found.packages.len());
        if packages.len() > room {
            packages.truncate(room);
            let msg = format!("more than {} packages; the rest are not reported", self.budget.limits().max_packages);
            self.warn(msg);
        }
        let at = self.first_package.min(self.found.packages.len());
        self.found.packages.splice(at..at, packages);
    }
}

impl Visitor for Archive<'_> {
    fn wants(&mut self, name: &str) -> bool {
        self.entries += 1;
        classify(name) != Kind::Other
    }

    fn visit(&mut self, name: &str, data: &mut dyn Read) -> Result<(), ZipError> {
        match classify(name) {
            // The first manifest is the one the JVM reads.
            Kind::Manifest if self.manifest.is_none() => {
                if let Some(text) = self.read_metadata(name, data)? {
                    self.manifest = Some(Manifest::parse(&text));
                }
            }
            Kind::PomProperties => {
                if let Some(text) = self.read_metadata(name, data)? {
                    match meta::parse_pom_properties(&text) {
                        // Relocated copies of one artifact count once; and no
                        // more are kept than could ever be reported.
                        Ok(c) if self.seen_poms.len() < self.budget.limits().max_packages => {
                            if self.seen_poms.insert(c.clone()) {
                                self.poms.push(c);
                            }
                        }
                        Ok(_) => {}
                        Err(why) => self.warn(format!("{name}: {why}")),
                    }
                }
            }
            Kind::Archive => self.visit_nested(name, data)?,
            Kind::Manifest | Kind::Other => {}
        }
        Ok(())
    }

    fn warn(&mut self, msg: String) {
        Archive::warn(self, msg);
    }
}

#[cfg(test)]
mod tests;
