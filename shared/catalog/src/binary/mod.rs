//! Catalogers that read compiled executables: Go build info and cargo-auditable data.
//!
//! [`BinaryCataloger`] is offered every executable regular file of an image
//! (any execute bit, at least 1 KiB). It reads the file once, front to back,
//! as the layer tar streams past, in bounded memory whatever the file size:
//!
//! * the first bytes decide: anything but ELF is left at once (the walker
//!   drains the rest without our help);
//! * every byte goes through a [`go::GoScanner`] looking for the Go ≥ 1.18
//!   build-info header, and reading stops as soon as it is decoded;
//! * otherwise the last [`TAIL_BYTES`] are kept in a ring buffer so that at end
//!   of file the section header table — written at the end of an ELF file —
//!   can locate the `.dep-v0` section of `cargo auditable` builds
//!   ([`rust_audit`]).
//!
//! Peak memory per file is one 64 KiB read buffer, the tail (at most
//! [`TAIL_BYTES`], and no more than the file), and, only while a Go header is
//! being decoded, one build-info blob (≤ ~1 MiB). Decompressed cargo-auditable
//! JSON is parsed as a stream and capped at [`MAX_AUDIT_JSON`].
//!
//! Known limits, each reported as a warning on the file rather than guessed
//! around: Go < 1.18 binaries (pointer-based build info, see [`go`]); a
//! `.dep-v0` section lying before the retained tail (binaries with more than
//! [`TAIL_BYTES`] of symbols or debug info after it). Not read at all: non-ELF
//! executables (Mach-O, PE) and packed (e.g. UPX) binaries.

pub mod elf;
pub mod go;
#[cfg(test)]
mod real_binaries;
pub mod rust_audit;
#[cfg(test)]
mod testutil;

use crate::cataloger::{CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use elf::{ElfError, ElfHeader, TailRing};
use std::io::{self, Read};

/// Smallest file offered: anything shorter cannot be a useful ELF binary.
pub const MIN_SIZE: u64 = 1024;
/// Largest file read. The file is streamed, so this bounds time, not memory.
pub const MAX_SIZE: u64 = 2 << 30;
/// Bytes kept from the end of each ELF file to find sections in. Enough for
/// the section table and `.dep-v0` of stripped or symbol-only release builds;
/// kept small because several layers are walked at once and this is the
/// largest per-file allocation (measured in docs/benchmarks.md).
pub const TAIL_BYTES: usize = 2 << 20;
/// Most bytes of cargo-auditable JSON decompressed per file.
pub const MAX_AUDIT_JSON: u64 = 8 << 20;
/// Size of each read from the content stream.
const CHUNK: usize = 64 << 10;

/// Memory limits of one binary scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes kept from the end of the file for section lookup.
    pub tail_bytes: usize,
    /// Most bytes of cargo-auditable JSON decompressed.
    pub max_audit_json: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { tail_bytes: TAIL_BYTES, max_audit_json: MAX_AUDIT_JSON }
    }
}

/// Reads Go module and Rust crate lists out of ELF executables.
#[derive(Debug, Default, Clone, Copy)]
pub struct BinaryCataloger {
    limits: Limits,
}

impl BinaryCataloger {
    /// A cataloger with non-default memory limits.
    pub fn with_limits(limits: Limits) -> Self {
        BinaryCataloger { limits }
    }
}

impl Cataloger for BinaryCataloger {
    fn name(&self) -> &'static str {
        "binary"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        file.is_executable() && file.size >= MIN_SIZE
    }

    fn max_size(&self) -> u64 {
        MAX_SIZE
    }

    fn catalog(
        &self,
        file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        scan(content, file.size, &self.limits)
    }
}

/// The binary catalogers, in the order they are offered each file.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(BinaryCataloger::default())]
}

/// Reads one executable from `content` (whose length is expected to be
/// `size_hint`) and returns the Go modules or Rust crates it records.
pub fn scan(content: &mut dyn Read, size_hint: u64, limits: &Limits) -> Result<Found, CatalogError> {
    let mut head = [0u8; elf::HEADER_LEN];
    let head_len = read_full(content, &mut head)?;
    let head = head.get(..head_len).unwrap_or_default();
    if !head.starts_with(elf::MAGIC) {
        return Ok(Found::default());
    }
    let Some(header) = ElfHeader::parse(head) else {
        return Ok(Found::default());
    };

    let mut go = go::GoScanner::new();
    let mut tail = TailRing::new(limits.tail_bytes, size_hint);
    let mut buf = vec![0u8; CHUNK];
    let mut piece = head;
    loop {
        if go.feed(piece) {
            // A Go binary carries no cargo-auditable data: stop reading here.
            return Ok(go_found(go.finish()));
        }
        tail.push(piece);
        let n = loop {
            match content.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            break;
        }
        piece = buf.get(..n).ok_or_else(|| CatalogError::Io(io::Error::other("reader returned an invalid length")))?;
    }

    let mut found = go_found(go.finish());
    let tail = tail.into_tail();
    match elf::find_section(&header, &tail, rust_audit::SECTION) {
        Ok(Some(data)) => match rust_audit::decode(data, limits.max_audit_json) {
            Ok(packages) => found.packages.extend(packages),
            Err(e) if found.warnings.is_empty() => return Err(e),
            Err(e) => found.warnings.push(e.to_string()),
        },
        Ok(None) => {}
        Err(e @ ElfError::DataOutsideTail { .. }) => found.warnings.push(format!("cargo-auditable data not read: {e}")),
        // Without a readable section table there is no telling whether the
        // file has audit data; most such files simply are not Rust binaries.
        Err(e) => tracing::debug!(error = %e, "no ELF sections read"),
    }
    Ok(found)
}

/// Turns a finished Go scan into packages and warnings.
fn go_found(scan: go::GoScan) -> Found {
    let mut found = Found { warnings: scan.warnings, ..Default::default() };
    if let Some(raw) = scan.raw {
        let info = go::BuildInfo::parse(&raw.go_version, &raw.modinfo, &mut found.warnings);
        found.packages = info.packages();
    }
    found
}

/// Fills `buf` from `r` unless the stream ends first; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|b| !b.is_empty()) {
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n.min(rest.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::testutil::{elf_prefix, embed, go_blob, go_old_blob, zlib, Counting, ElfBuilder, Trickle, MODINFO};
    use super::*;
    use crate::package::PackageType;

    const AUDIT: &str = r#"{"packages":[{"name":"app","version":"0.1.0","source":"local","dependencies":[1],"root":true},{"name":"itoa","version":"1.0.19","source":"crates.io"}],"format":1}"#;

    fn ctx() -> CatalogContext {
        CatalogContext::new(1 << 20).unwrap()
    }

    fn run(data: &[u8], seed: u64) -> Result<Found, CatalogError> {
        let meta = FileMeta { path: "usr/bin/app", size: data.len() as u64, mode: 0o755 };
        BinaryCataloger::default().catalog(&meta, &mut Trickle::new(data, seed), &ctx())
    }

    fn pairs(found: &Found) -> Vec<(PackageType, &str, &str)> {
        found.packages.iter().map(|p| (p.kind, p.name.as_str(), p.version.as_str())).collect()
    }

    #[test]
    fn wants_executables_of_a_useful_size() {
        let w = |size, mode| BinaryCataloger::default().wants(&FileMeta { path: "usr/bin/x", size, mode });
        assert!(w(4096, 0o755));
        assert!(w(1024, 0o100));
        assert!(w(4096, 0o001));
        assert!(!w(4096, 0o644));
        assert!(!w(1023, 0o755));
        assert_eq!(BinaryCataloger::default().name(), "binary");
        assert!(BinaryCataloger::default().max_size() >= 2 << 30);
    }

    #[test]
    fn go_binary_through_the_cataloger() {
        let blob = go_blob("go1.21.3", MODINFO, 8);
        for (seed, offset) in [(1u64, 64usize), (2, 4096 + 16), (3, 65536 - 16), (4, 131072 + 48)] {
            let data = embed(&elf_prefix(), &blob, offset, 200_000, seed);
            let found = run(&data, seed).unwrap();
            assert!(found.warnings.is_empty(), "{:?}", found.warnings);
            assert_eq!(
                pairs(&found),
                vec![
                    (PackageType::Go, "example.com/app", "v1.4.0"),
                    (PackageType::Go, "github.com/pkg/errors", "v0.9.1"),
                    (PackageType::Go, "golang.org/x/net", "v0.23.0"),
                    (PackageType::Go, "stdlib", "go1.21.3"),
                ]
            );
        }
    }

    #[test]
    fn go_scan_stops_reading_once_found() {
        let data = embed(&elf_prefix(), &go_blob("go1.22.0", "", 8), 1 << 16, 8 << 20, 5);
        let mut counting = Counting { inner: &data[..], read: 0 };
        let found = scan(&mut counting, data.len() as u64, &Limits::default()).unwrap();
        assert_eq!(pairs(&found), vec![(PackageType::Go, "stdlib", "go1.22.0")]);
        assert!(counting.read < 1 << 18, "read {} bytes", counting.read);
    }

    #[test]
    fn non_elf_files_are_left_after_the_first_bytes() {
        let script = format!("#!/bin/sh\n{}", "echo hi\n".repeat(10_000));
        let mut counting = Counting { inner: script.as_bytes(), read: 0 };
        let found = scan(&mut counting, script.len() as u64, &Limits::default()).unwrap();
        assert!(found.packages.is_empty() && found.warnings.is_empty());
        assert!(counting.read <= elf::HEADER_LEN as u64);
        // Shorter than an ELF header, or ELF magic with an unknown class.
        assert!(run(b"\x7fEL", 1).unwrap().packages.is_empty());
        assert!(run(b"\x7fELF\x09\x01\x01", 1).unwrap().packages.is_empty());
    }

    #[test]
    fn old_go_is_a_warning() {
        let data = embed(&elf_prefix(), &go_old_blob(), 1024, 10_000, 6);
        let found = run(&data, 6).unwrap();
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings, vec![go::OLD_FORMAT_WARNING.to_string()]);
    }

    #[test]
    fn cargo_auditable_in_every_elf_flavour() {
        for class64 in [false, true] {
            for big in [false, true] {
                let elf = ElfBuilder::new(class64, big)
                    .section(".text", 1, vec![0xc3; 3000])
                    .section(".dep-v0", 1, zlib(AUDIT.as_bytes()))
                    .section(".symtab", 2, vec![0; 500])
                    .build();
                let found = run(&elf, 7).unwrap_or_else(|e| panic!("{class64} {big}: {e}"));
                assert_eq!(pairs(&found), vec![(PackageType::Cargo, "itoa", "1.0.19")], "{class64} {big}");
                assert!(found.warnings.is_empty());
            }
        }
    }

    #[test]
    fn elf_without_audit_data_is_empty() {
        let elf = ElfBuilder::new(true, false).section(".text", 1, vec![0xc3; 3000]).build();
        let found = run(&elf, 8).unwrap();
        assert!(found.packages.is_empty() && found.warnings.is_empty());
    }

    #[test]
    fn audit_data_before_the_tail_is_a_warning() {
        let elf = ElfBuilder::new(true, false).section(".dep-v0", 1, zlib(AUDIT.as_bytes())).gap(100_000).build();
        let limits = Limits { tail_bytes: 64 << 10, ..Limits::default() };
        let found = scan(&mut Trickle::sized(&elf, 9, 1, 5000), elf.len() as u64, &limits).unwrap();
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings.len(), 1);
        assert!(found.warnings[0].starts_with("cargo-auditable data not read"), "{:?}", found.warnings);
        // With the default tail it is read.
        assert_eq!(run(&elf, 9).unwrap().packages.len(), 1);
    }

    #[test]
    fn corrupt_audit_data_is_malformed() {
        let elf = ElfBuilder::new(true, false).section(".dep-v0", 1, b"\x78\x9cgarbage".to_vec()).build();
        assert!(matches!(run(&elf, 10), Err(CatalogError::Malformed(_))));
        let bomb = zlib(&vec![b' '; 1 << 20]);
        let elf = ElfBuilder::new(true, false).section(".dep-v0", 1, bomb).build();
        let limits = Limits { max_audit_json: 4096, ..Limits::default() };
        let err = scan(&mut &elf[..], elf.len() as u64, &limits).unwrap_err();
        assert!(err.to_string().contains("more than 4096 bytes"), "{err}");
    }

    #[test]
    fn mutated_elf_files_never_panic() {
        let base = ElfBuilder::new(true, false)
            .section(".text", 1, vec![0xc3; 100])
            .section(".dep-v0", 1, zlib(AUDIT.as_bytes()))
            .build();
        let mut rng = testutil::Lcg::new(11);
        for round in 0..3000u64 {
            let mut elf = base.clone();
            for _ in 0..rng.range(1, 6) {
                // Mostly the header and the section table, sometimes anywhere.
                let i = match rng.range(0, 2) {
                    0 => rng.range(0, 63),
                    1 => rng.range(elf.len() - 4 * 64, elf.len() - 1),
                    _ => rng.range(0, elf.len() - 1),
                };
                elf[i] = rng.next_u64() as u8;
            }
            if round % 7 == 0 {
                elf.truncate(rng.range(0, elf.len()));
            }
            let _ = run(&elf, round);
        }
    }

    #[test]
    fn read_errors_propagate() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("stream broke"))
            }
        }
        assert!(matches!(scan(&mut Broken, 4096, &Limits::default()), Err(CatalogError::Io(_))));
    }

    #[test]
    fn walker_fills_paths_for_binaries_in_a_layer() {
        let data = embed(&elf_prefix(), &go_blob("go1.21.3", MODINFO, 8), 4096, 20_000, 12);
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, mode: u32, body: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(mode);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            builder.append_data(&mut h, path, body).unwrap();
        };
        add("usr/local/bin/app", 0o755, &data);
        add("usr/share/doc/app.bin", 0o644, &data);
        add("usr/bin/script", 0o755, &b"#!/bin/sh\n".repeat(200));
        let layer = builder.into_inner().unwrap();
        let set = crate::walker::CatalogerSet::new(catalogers());
        let ctx = ctx();
        let inv = crate::walker::LayerWalker::new(&set, &ctx).walk(&layer[..]).unwrap();
        let paths: Vec<&str> = inv.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["usr/local/bin/app", "usr/bin/script"]);
        match &inv.files[0].outcome {
            crate::walker::FileOutcome::Found { packages, .. } => {
                assert_eq!(packages.len(), 4);
                assert!(packages.iter().all(|p| p.path == "usr/local/bin/app"));
            }
            other => panic!("{other:?}"),
        }
    }
}
