//! RPM packages: the rpm database in any of its three on-disk formats.
//!
//! rpm keeps one header blob per installed package in a "Packages" database
//! whose container changed over the years: a Berkeley DB hash file
//! (`Packages`, RHEL ≤ 8, CentOS, Amazon Linux 2), rpm's own ndb format
//! (`Packages.db`, SUSE) and sqlite (`rpmdb.sqlite`, RHEL 9, Fedora ≥ 33,
//! CBL-Mariner). All three may sit under `var/lib/rpm/` or, on newer
//! systems, `usr/lib/sysimage/rpm/`. The format is detected from the
//! content's magic, not the file name, because images rename and symlink
//! these files freely.
//!
//! All three formats need random access, so the content is first copied to
//! a private scratch file ([`CatalogContext::spill`]); nothing else touches
//! the disk. The container readers ([`sqlite`], [`bdb`], [`ndb`]) only
//! extract header blobs; [`header`] turns a blob into name, epoch, version,
//! release, arch, license and source rpm. Everything is treated as hostile
//! input: a record that cannot be read is skipped with a warning, and only
//! a database whose structure cannot be read at all is an error.
//!
//! Every header is reported, `gpg-pubkey` entries (imported signing keys)
//! included, because that is what `rpm -qa` lists; they have no arch and no
//! source rpm.

pub mod bdb;
pub mod header;
pub mod ndb;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod fixtures;

use crate::cataloger::{CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use header::PackageHeader;
use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Parses rpm package databases (sqlite, Berkeley DB hash and ndb).
pub struct RpmCataloger;

/// rpm databases of large images run to a few hundred MiB; the content only
/// goes to a scratch file, never to memory.
const MAX_SIZE: u64 = 1 << 30;

/// The database files rpm has used, in both of its database directories.
const WANTED: [&str; 6] = [
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// At most this many warnings are kept per database; a corrupt file could
/// otherwise produce one per slot or page.
const MAX_WARNINGS: usize = 50;

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(RpmCataloger)]
}

impl Cataloger for RpmCataloger {
    fn name(&self) -> &'static str {
        "rpm"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        WANTED.contains(&file.path)
    }

    fn max_size(&self) -> u64 {
        MAX_SIZE
    }

    fn catalog(
        &self,
        _file: &FileMeta<'_>,
        content: &mut dyn Read,
        ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let scratch = ctx.spill(content)?;
        read_database(scratch.path())
    }
}

/// The container formats rpm has used for its package database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFormat {
    /// `rpmdb.sqlite`.
    Sqlite,
    /// Berkeley DB hash `Packages`.
    BerkeleyDb,
    /// rpm's ndb `Packages.db`.
    Ndb,
}

/// Identifies a database format from the first bytes of a file (16 are enough).
pub fn detect_format(prefix: &[u8]) -> Option<DbFormat> {
    if prefix.starts_with(sqlite::MAGIC) {
        Some(DbFormat::Sqlite)
    } else if prefix.starts_with(ndb::MAGIC) {
        Some(DbFormat::Ndb)
    } else if bdb::is_hash_db(prefix) {
        Some(DbFormat::BerkeleyDb)
    } else {
        None
    }
}

/// Reads the rpm database at `path`, whatever its format.
pub fn read_database(path: &Path) -> Result<Found, CatalogError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        // An empty placeholder (left by image build tools) lists no packages.
        return Ok(Found::default());
    }
    let mut prefix = Vec::with_capacity(16);
    (&mut file).take(16).read_to_end(&mut prefix)?;
    file.seek(SeekFrom::Start(0))?;
    let mut collector = Collector::default();
    match detect_format(&prefix) {
        Some(DbFormat::Sqlite) => sqlite::read(path, &mut collector)?,
        // Unbuffered: every page or blob read is preceded by a seek anyway.
        Some(DbFormat::BerkeleyDb) => bdb::read(&mut file, len, &mut collector)?,
        Some(DbFormat::Ndb) => ndb::read(&mut file, len, &mut collector)?,
        None if bdb::is_btree_db(&prefix) => {
            return Err(CatalogError::malformed(
                "Berkeley DB btree file: rpm's Packages database is a hash database, this is not one",
            ))
        }
        None => {
            return Err(CatalogError::malformed(
                "not an rpm database: neither sqlite, Berkeley DB hash nor ndb (unrecognised magic)",
            ))
        }
    }
    Ok(collector.finish())
}

/// Where container readers deliver what they extract.
pub trait RecordSink {
    /// One header blob; `origin` says where it came from, for warnings.
    fn header(&mut self, origin: &dyn Display, blob: &[u8]);
    /// A record or structure that could not be read.
    fn warn(&mut self, message: String);
}

/// Turns header blobs into packages and keeps a bounded list of warnings.
#[derive(Debug, Default)]
struct Collector {
    found: Found,
    suppressed: usize,
}

impl RecordSink for Collector {
    fn header(&mut self, origin: &dyn Display, blob: &[u8]) {
        match PackageHeader::from_blob(blob) {
            Ok(h) => self.found.packages.push(to_package(h)),
            Err(e) => self.warn(format!("rpm header at {origin} skipped: {e}")),
        }
    }

    fn warn(&mut self, message: String) {
        if self.found.warnings.len() < MAX_WARNINGS {
            self.found.warnings.push(message);
        } else {
            self.suppressed += 1;
        }
    }
}

impl Collector {
    fn finish(mut self) -> Found {
        if self.suppressed > 0 {
            self.found.warnings.push(format!("{} further problems in this database not listed", self.suppressed));
        }
        self.found
    }
}

/// Builds the package model from a parsed header.
fn to_package(h: PackageHeader) -> Package {
    let version = match h.epoch {
        Some(e) => format!("{e}:{}-{}", h.version, h.release),
        None => format!("{}-{}", h.version, h.release),
    };
    let mut p = Package::new(PackageType::Rpm, h.name, version);
    p.epoch = h.epoch;
    p.release = Some(h.release);
    p.arch = h.arch.filter(|a| !a.is_empty());
    if let Some((name, version)) = h.source_rpm.as_deref().and_then(parse_source_rpm) {
        p.source_name = Some(name.to_string());
        p.source_version = Some(version.to_string());
    }
    p.licenses = h.license.filter(|l| !l.is_empty()).into_iter().collect();
    p
}

/// Splits a source rpm file name into source package name and `version-release`:
/// `bash-5.1.8-6.el9.src.rpm` → (`bash`, `5.1.8-6.el9`).
pub fn parse_source_rpm(file_name: &str) -> Option<(&str, &str)> {
    let stem = file_name.strip_suffix(".src.rpm").or_else(|| file_name.strip_suffix(".nosrc.rpm"))?;
    let (name_version, release) = stem.rsplit_once('-')?;
    let (name, version) = name_version.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    // The source version is everything after the name and its dash.
    Some((name, stem.get(name.len() + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::fixtures::{self, package_blob, BdbLayout};
    use super::*;
    use std::path::PathBuf;

    fn catalog_bytes(path: &str, bytes: &[u8]) -> Result<Found, CatalogError> {
        let ctx = CatalogContext::new(MAX_SIZE).expect("scratch dir");
        let meta = FileMeta { path, size: bytes.len() as u64, mode: 0o644 };
        RpmCataloger.catalog(&meta, &mut &bytes[..], &ctx)
    }

    fn sample_blobs() -> Vec<Vec<u8>> {
        vec![
            package_blob("bash", None, "5.1.8", "6.el9", Some("x86_64"), Some("bash-5.1.8-6.el9.src.rpm")),
            package_blob(
                "vim-minimal",
                Some(2),
                "8.2.2637",
                "20.el9_1",
                Some("x86_64"),
                Some("vim-8.2.2637-20.el9_1.src.rpm"),
            ),
            package_blob("tzdata", None, "2023c", "1.el9", Some("noarch"), Some("tzdata-2023c-1.el9.src.rpm")),
        ]
    }

    fn summary(found: &Found) -> Vec<String> {
        let mut out: Vec<String> = found
            .packages
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {}",
                    p.name,
                    p.version,
                    p.arch.as_deref().unwrap_or("-"),
                    p.source_name.as_deref().unwrap_or("-"),
                    p.source_version.as_deref().unwrap_or("-")
                )
            })
            .collect();
        out.sort();
        out
    }

    const SAMPLE_SUMMARY: [&str; 3] = [
        "bash 5.1.8-6.el9 x86_64 bash 5.1.8-6.el9",
        "tzdata 2023c-1.el9 noarch tzdata 2023c-1.el9",
        "vim-minimal 2:8.2.2637-20.el9_1 x86_64 vim 8.2.2637-20.el9_1",
    ];

    #[test]
    fn wants_the_six_database_paths_only() {
        let w = |p: &str| RpmCataloger.wants(&FileMeta { path: p, size: 1, mode: 0o644 });
        for p in WANTED {
            assert!(w(p), "{p}");
        }
        assert!(!w("var/lib/rpm/Name"));
        assert!(!w("var/lib/rpm/rpmdb.sqlite-shm"));
        assert!(!w("usr/lib/sysimage/rpm/Basenames"));
        assert!(!w("opt/var/lib/rpm/Packages"));
        assert!(RpmCataloger.max_size() >= 1 << 30);
    }

    #[test]
    fn package_fields_follow_rpm_conventions() {
        let found = catalog_bytes("var/lib/rpm/Packages.db", &fixtures::ndb(&sample_blobs())).expect("ndb");
        assert!(found.warnings.is_empty(), "{:?}", found.warnings);
        let vim = found.packages.iter().find(|p| p.name == "vim-minimal").expect("vim");
        assert_eq!(vim.kind, PackageType::Rpm);
        assert_eq!(vim.version, "2:8.2.2637-20.el9_1");
        assert_eq!(vim.epoch, Some(2));
        assert_eq!(vim.release.as_deref(), Some("20.el9_1"));
        assert_eq!(vim.arch.as_deref(), Some("x86_64"));
        assert_eq!(vim.licenses, vec!["GPLv3+".to_string()]);
        assert_eq!(vim.source_name.as_deref(), Some("vim"));
        assert_eq!(vim.source_version.as_deref(), Some("8.2.2637-20.el9_1"));
        let bash = found.packages.iter().find(|p| p.name == "bash").expect("bash");
        assert_eq!((bash.version.as_str(), bash.epoch), ("5.1.8-6.el9", None));
    }

    #[test]
    fn all_three_formats_are_detected_by_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite_path = dir.path().join("rpmdb.sqlite");
        fixtures::sqlite_db(&sqlite_path, &sample_blobs());
        let sqlite_bytes = std::fs::read(&sqlite_path).expect("read sqlite");
        let databases = [
            ("sqlite", sqlite_bytes),
            ("bdb", fixtures::bdb(&numbered(sample_blobs()), BdbLayout::default())),
            ("ndb", fixtures::ndb(&sample_blobs())),
        ];
        for (what, bytes) in databases {
            // Deliberately under the "wrong" name: the content decides.
            let found = catalog_bytes("var/lib/rpm/Packages", &bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(found.warnings.is_empty(), "{what}: {:?}", found.warnings);
            assert_eq!(summary(&found), SAMPLE_SUMMARY, "{what}");
        }
    }

    fn numbered(blobs: Vec<Vec<u8>>) -> Vec<(u32, Vec<u8>)> {
        blobs.into_iter().enumerate().map(|(i, b)| (i as u32 + 1, b)).collect()
    }

    #[test]
    fn unrecognised_content_is_malformed() {
        for bytes in [&b"hello world, not a database at all"[..], &[0u8; 4096][..], b"RpmX"] {
            let err = catalog_bytes("var/lib/rpm/Packages", bytes).expect_err("garbage");
            assert!(matches!(err, CatalogError::Malformed(_)), "{err}");
        }
        let mut btree = vec![0u8; 4096];
        btree[12..16].copy_from_slice(&0x0005_3162u32.to_le_bytes());
        let err = catalog_bytes("var/lib/rpm/Packages", &btree).expect_err("btree");
        assert!(err.to_string().contains("btree"), "{err}");
    }

    #[test]
    fn empty_file_lists_nothing() {
        let found = catalog_bytes("var/lib/rpm/rpmdb.sqlite", b"").expect("empty");
        assert!(found.packages.is_empty() && found.warnings.is_empty());
    }

    #[test]
    fn bad_records_become_warnings() {
        let mut blobs = sample_blobs();
        blobs.insert(1, vec![0, 0, 0, 9, 0, 0, 0, 0]);
        blobs.push(fixtures::header(&[(header::TAG_NAME, fixtures::Value::Str("noversion"))]));
        let found = catalog_bytes("var/lib/rpm/Packages.db", &fixtures::ndb(&blobs)).expect("ndb");
        assert_eq!(summary(&found), SAMPLE_SUMMARY);
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
        assert!(found.warnings[0].contains("package index 2"), "{:?}", found.warnings);
        assert!(found.warnings[1].contains("no VERSION tag"), "{:?}", found.warnings);
    }

    #[test]
    fn warnings_are_capped() {
        let blobs = vec![vec![1, 2, 3]; 200];
        let found = catalog_bytes("var/lib/rpm/Packages.db", &fixtures::ndb(&blobs)).expect("ndb");
        assert_eq!(found.warnings.len(), MAX_WARNINGS + 1);
        assert!(found.warnings[MAX_WARNINGS].starts_with("150 further problems"));
    }

    #[test]
    fn gpg_pubkey_entries_are_listed_like_rpm_qa() {
        let key = fixtures::header(&[
            (header::TAG_NAME, fixtures::Value::Str("gpg-pubkey")),
            (header::TAG_VERSION, fixtures::Value::Str("fd431d51")),
            (header::TAG_RELEASE, fixtures::Value::Str("4ae0493b")),
            (header::TAG_LICENSE, fixtures::Value::Str("pubkey")),
        ]);
        let found = catalog_bytes("var/lib/rpm/Packages.db", &fixtures::ndb(&[key])).expect("ndb");
        let p = &found.packages[0];
        assert_eq!((p.name.as_str(), p.version.as_str()), ("gpg-pubkey", "fd431d51-4ae0493b"));
        assert_eq!((p.arch.as_deref(), p.source_name.as_deref()), (None, None));
    }

    #[test]
    fn source_rpm_names() {
        assert_eq!(parse_source_rpm("bash-5.1.8-6.el9.src.rpm"), Some(("bash", "5.1.8-6.el9")));
        assert_eq!(parse_source_rpm("util-linux-2.32.1-42.el8_8.src.rpm"), Some(("util-linux", "2.32.1-42.el8_8")));
        assert_eq!(parse_source_rpm("gcc11-11.2.1+git610-1.3.9.src.rpm"), Some(("gcc11", "11.2.1+git610-1.3.9")));
        assert_eq!(parse_source_rpm("foo-1-2.nosrc.rpm"), Some(("foo", "1-2")));
        assert_eq!(parse_source_rpm("foo-1.src.rpm"), None);
        assert_eq!(parse_source_rpm("-1-2.src.rpm"), None);
        assert_eq!(parse_source_rpm("bash-5.1.8-6.el9.x86_64.rpm"), None);
        assert_eq!(parse_source_rpm(""), None);
    }

    /// The real-data corpus, when it is checked out beside the repository.
    fn corpus_dir() -> Option<PathBuf> {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/pkgdb/rpm"));
        dir.is_dir().then_some(dir)
    }

    /// `name, epoch, version, release, arch, source rpm` as `rpm -qa` prints them.
    type Row = (String, String, String, String, String, String);

    fn expected_rows(tsv: &str) -> Vec<Row> {
        let none = |s: &str| if s == "(none)" { String::new() } else { s.to_string() };
        let mut rows: Vec<Row> = tsv
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 6, "bad expected line {l:?}");
                (none(f[0]), none(f[1]), none(f[2]), none(f[3]), none(f[4]), none(f[5]))
            })
            .collect();
        rows.sort();
        rows
    }

    fn actual_rows(found: &Found) -> Vec<Row> {
        let mut rows: Vec<Row> = found
            .packages
            .iter()
            .map(|p| {
                let release = p.release.clone().unwrap_or_default();
                let epoch = p.epoch.map(|e| e.to_string()).unwrap_or_default();
                // Recover V from the full version and check the full form on the way.
                let evr =
                    p.version.strip_prefix(&format!("{epoch}:")).filter(|_| p.epoch.is_some()).unwrap_or(&p.version);
                let version = evr.strip_suffix(&format!("-{release}")).unwrap_or_else(|| panic!("{}: {evr}", p.name));
                let source = match (&p.source_name, &p.source_version) {
                    (Some(n), Some(v)) => format!("{n}-{v}.src.rpm"),
                    _ => String::new(),
                };
                (p.name.clone(), epoch, version.to_string(), release, p.arch.clone().unwrap_or_default(), source)
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn corpus_databases_match_rpm_qa() {
        let Some(dir) = corpus_dir() else {
            eprintln!("skipping rpm corpus test: shared/corpus/pkgdb/rpm not found beside the repository");
            return;
        };
        let mut checked = 0;
        let mut entries: Vec<_> =
            std::fs::read_dir(&dir).expect("read corpus dir").flatten().map(|e| e.path()).collect();
        entries.sort();
        for db in entries {
            let name = db.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.ends_with(".expected.tsv") {
                continue;
            }
            let tsv = std::fs::read_to_string(dir.join(format!("{name}.expected.tsv"))).expect("expected list");
            let bytes = std::fs::read(&db).expect("read database");
            let found = catalog_bytes("var/lib/rpm/Packages", &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(found.warnings.is_empty(), "{name}: {:?}", found.warnings);
            let expected = expected_rows(&tsv);
            assert!(!expected.is_empty(), "{name}: empty expected list");
            assert_eq!(actual_rows(&found), expected, "{name}");
            assert!(found.packages.iter().all(|p| !p.licenses.is_empty()), "{name}: license missing");
            eprintln!("{name}: {} packages match", expected.len());
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} corpus databases found");
    }
}
