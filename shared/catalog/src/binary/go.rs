//! Go build information, read from a compiled Go binary in one forward pass.
//!
//! Since Go 1.18 the linker writes a 32-byte header starting with the magic
//! `\xff Go buildinf:` at a 16-byte aligned position of the data segment
//! (the `.go.buildinfo` section), followed inline by two varint-length-prefixed
//! strings: the toolchain version (`go1.21.3`) and the module information that
//! `go version -m` prints. [`GoScanner`] recognises that header while the file
//! streams past — no seeking and no section table needed — and
//! [`BuildInfo::parse`] reads the module information.
//!
//! **Go < 1.18** binaries store two pointers instead of the strings. Following
//! them needs random access (the strings may sit before the header in the
//! file), which a single forward pass over a tar entry cannot give, so such
//! binaries yield the warning [`OLD_FORMAT_WARNING`] and no packages.
//!
//! Packages are reported as Syft does: one per `dep` line, using the `=>`
//! replacement's module and version when there is one; the main module (`mod`)
//! unless its version is `(devel)` or empty; and the toolchain as `stdlib` with
//! its version as written (`go1.21.3`). A dependency replaced by a local
//! directory (`=> ../fork`) has no module version to match advisories against
//! and is left out.
//!
//! The magic string also appears as a literal inside binaries that link Go's
//! `debug/buildinfo` package, so a match only counts when it is aligned and
//! what follows decodes as plausible build information; otherwise the scan
//! goes on.

use crate::package::{Package, PackageType};

/// The 14 bytes that start a build-info header.
const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// The header is aligned to this many bytes (a power of two).
const ALIGN: u64 = 16;
/// Header size; the inline strings follow it.
const HEADER_LEN: usize = 32;
/// Flag bit: version and module info are inline varint-prefixed strings (Go ≥ 1.18).
const FLAG_INLINE: u8 = 0x2;
/// Longest accepted toolchain version string (real ones are under 100 bytes).
const MAX_VERSION_LEN: u64 = 256;
/// Longest accepted module-info blob; real binaries carry tens of KiB.
pub const MAX_MODINFO_LEN: u64 = 1 << 20;
/// Length of each of the two sentinels the linker puts around the module info.
const SENTINEL_LEN: usize = 16;
/// Longest varint Go writes (a 64-bit value).
const MAX_VARINT_LEN: usize = 10;
/// Warnings kept per binary; the rest are counted.
const MAX_WARNINGS: usize = 10;

/// Warning for binaries built by Go < 1.18, whose build info this cataloger cannot read.
pub const OLD_FORMAT_WARNING: &str = "Go < 1.18 build info not read";
/// The `main` module version of a build from a working tree without a tag.
const DEVEL: &str = "(devel)";

/// The two strings of a build-info blob, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBuildInfo {
    /// Toolchain version, e.g. `go1.21.3`.
    pub go_version: String,
    /// Module information text with the sentinels removed (may be empty).
    pub modinfo: String,
}

/// What the bytes at an aligned magic turned out to be.
#[derive(Debug)]
enum Candidate {
    /// Not enough bytes yet; `plausible` once a valid Go version has been read.
    NeedMore { plausible: bool },
    /// Not build info (e.g. the magic quoted as a string literal).
    NotBuildInfo,
    /// A Go < 1.18 pointer-based header.
    OldFormat,
    /// Looked like build info but could not be decoded.
    Rejected(String),
    /// Decoded.
    Found(RawBuildInfo),
}

/// Finds and decodes Go build info in a byte stream fed in arbitrary pieces.
///
/// Memory stays bounded: between pieces it keeps at most the 13 bytes that
/// could begin a split magic, or one candidate blob (≤ ~1 MiB plus one piece).
#[derive(Debug, Default)]
pub struct GoScanner {
    /// Bytes not yet ruled out: a possible magic prefix or a pending candidate.
    window: Vec<u8>,
    /// File offset of `window[0]`.
    window_start: u64,
    found: Option<RawBuildInfo>,
    old_format: bool,
    rejected: Option<String>,
}

/// What a [`GoScanner`] found once the stream ended (or it stopped early).
#[derive(Debug, Default)]
pub struct GoScan {
    /// The build info, if a Go ≥ 1.18 header was found.
    pub raw: Option<RawBuildInfo>,
    /// Problems worth reporting (old format, undecodable or truncated build info).
    pub warnings: Vec<String>,
}

impl GoScanner {
    /// A scanner at file offset 0.
    pub fn new() -> Self {
        GoScanner::default()
    }

    /// True once build info has been found; later bytes are not needed.
    pub fn is_done(&self) -> bool {
        self.found.is_some()
    }

    /// Feeds the next bytes of the file; returns [`is_done`](Self::is_done).
    pub fn feed(&mut self, data: &[u8]) -> bool {
        if self.is_done() {
            return true;
        }
        self.window.extend_from_slice(data);
        let mut from = 0;
        loop {
            let Some(rel) = self.window.get(from..).and_then(|w| memchr::memmem::find(w, MAGIC)) else {
                // Keep only what could be the start of a magic split across pieces.
                let keep_from = from.max(self.window.len().saturating_sub(MAGIC.len() - 1));
                self.drop_front(keep_from);
                return false;
            };
            let at = from + rel;
            if (self.window_start + at as u64) & (ALIGN - 1) != 0 {
                from = at + 1;
                continue;
            }
            match decode(self.window.get(at..).unwrap_or_default()) {
                Candidate::NeedMore { .. } => {
                    self.drop_front(at);
                    return false;
                }
                Candidate::Found(raw) => {
                    self.found = Some(raw);
                    self.window = Vec::new();
                    return true;
                }
                Candidate::OldFormat => self.old_format = true,
                Candidate::Rejected(why) => self.rejected = Some(why),
                Candidate::NotBuildInfo => {}
            }
            from = at + 1;
        }
    }

    fn drop_front(&mut self, n: usize) {
        let n = n.min(self.window.len());
        self.window.drain(..n);
        self.window_start += n as u64;
    }

    /// Ends the scan at end of file.
    pub fn finish(self) -> GoScan {
        if let Some(raw) = self.found {
            return GoScan { raw: Some(raw), warnings: Vec::new() };
        }
        let mut warnings = Vec::new();
        // A candidate still waiting for bytes was cut off by the end of file.
        if let Some(rel) = memchr::memmem::find(&self.window, MAGIC) {
            if let Candidate::NeedMore { plausible: true } = decode(self.window.get(rel..).unwrap_or_default()) {
                warnings.push("Go build info truncated at end of file".to_string());
            }
        }
        if let Some(why) = self.rejected {
            warnings.push(format!("Go build info not decoded: {why}"));
        }
        if self.old_format {
            warnings.push(OLD_FORMAT_WARNING.to_string());
        }
        GoScan { raw: None, warnings }
    }
}

/// Decodes the bytes starting at an aligned magic.
fn decode(buf: &[u8]) -> Candidate {
    let Some(&[ptr_size, flags]) = buf.get(MAGIC.len()..MAGIC.len() + 2) else {
        return Candidate::NeedMore { plausible: false };
    };
    if ptr_size != 4 && ptr_size != 8 {
        return Candidate::NotBuildInfo;
    }
    if flags & FLAG_INLINE == 0 {
        return Candidate::OldFormat;
    }
    let mut pos = HEADER_LEN;
    let version = match read_string(buf, &mut pos, MAX_VERSION_LEN) {
        Ok(Some(v)) => v,
        Ok(None) => return Candidate::NeedMore { plausible: false },
        Err(_) => return Candidate::NotBuildInfo,
    };
    let Some(go_version) = plausible_version(version) else {
        return Candidate::NotBuildInfo;
    };
    let modinfo = match read_string(buf, &mut pos, MAX_MODINFO_LEN) {
        Ok(Some(m)) => m,
        Ok(None) => return Candidate::NeedMore { plausible: true },
        Err(why) => return Candidate::Rejected(format!("module info {why}")),
    };
    // As Go's debug/buildinfo does: the text sits between two 16-byte
    // sentinels and ends with a newline; anything else means "no modules".
    let text = match modinfo.len().checked_sub(SENTINEL_LEN + 1).and_then(|i| modinfo.get(i)) {
        Some(b'\n') if modinfo.len() > 2 * SENTINEL_LEN => {
            modinfo.get(SENTINEL_LEN..modinfo.len() - SENTINEL_LEN).unwrap_or_default()
        }
        _ => &[],
    };
    Candidate::Found(RawBuildInfo { go_version, modinfo: String::from_utf8_lossy(text).into_owned() })
}

/// Reads a varint-length-prefixed string at `*pos`: `Ok(None)` when more bytes are needed.
fn read_string<'b>(buf: &'b [u8], pos: &mut usize, max: u64) -> Result<Option<&'b [u8]>, String> {
    let rest = buf.get(*pos..).unwrap_or_default();
    let (len, used) = match read_uvarint(rest) {
        Varint::NeedMore => return Ok(None),
        Varint::Invalid => return Err("length is not a valid varint".into()),
        Varint::Value(len, used) => (len, used),
    };
    if len > max {
        return Err(format!("length {len} exceeds the {max}-byte limit"));
    }
    // `len <= max` fits in usize on every supported target.
    let len = usize::try_from(len).map_err(|_| "length does not fit in memory".to_string())?;
    let start = *pos + used;
    let Some(s) = start.checked_add(len).and_then(|end| buf.get(start..end)) else {
        return Ok(None);
    };
    *pos = start + len;
    Ok(Some(s))
}

/// Outcome of decoding an unsigned varint.
enum Varint {
    NeedMore,
    Invalid,
    /// The value and the number of bytes it used.
    Value(u64, usize),
}

/// Decodes Go's unsigned varint (`encoding/binary.Uvarint`).
fn read_uvarint(buf: &[u8]) -> Varint {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Varint::Invalid; // overflows 64 bits
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Varint::Value(value, i + 1);
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        Varint::Invalid
    } else {
        Varint::NeedMore
    }
}

/// The toolchain version if the bytes look like one (`go1.x…` or `devel …`).
fn plausible_version(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    let ok = (s.starts_with("go") || s.starts_with("devel")) && !s.chars().any(char::is_control);
    ok.then(|| s.to_string())
}

/// One module recorded in the build info.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// Module path, e.g. `golang.org/x/net` (or a directory for local replacements).
    pub path: String,
    /// Version as written, e.g. `v0.17.0`; empty for local replacements.
    pub version: String,
    /// `h1:` checksum, when recorded.
    pub sum: String,
    /// The `=>` replacement, if the module was replaced.
    pub replace: Option<Box<Module>>,
}

impl Module {
    /// The module actually compiled in: the replacement if there is one.
    pub fn effective(&self) -> &Module {
        self.replace.as_deref().unwrap_or(self)
    }
}

/// The decoded build information of one Go binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfo {
    /// Toolchain version as written, e.g. `go1.21.3`.
    pub go_version: String,
    /// Main package path (`path` line).
    pub path: String,
    /// Main module (`mod` line).
    pub main: Option<Module>,
    /// Dependencies (`dep` lines), in file order.
    pub deps: Vec<Module>,
    /// Build settings (`build` lines) as key/value pairs, unquoted.
    pub settings: Vec<(String, String)>,
}

/// Which module the next `=>` line replaces.
enum Last {
    None,
    Main,
    Dep,
}

impl BuildInfo {
    /// Parses module-info text (sentinels removed) of a binary built by `go_version`,
    /// adding a warning for each line it cannot read.
    pub fn parse(go_version: &str, modinfo: &str, warnings: &mut Vec<String>) -> BuildInfo {
        let mut info = BuildInfo { go_version: go_version.to_string(), ..Default::default() };
        let mut problems = Vec::new();
        let mut last = Last::None;
        for (n, line) in modinfo.lines().enumerate() {
            let line_no = n + 1;
            let (key, rest) = line.split_once('\t').unwrap_or((line, ""));
            match key {
                "path" => info.path = rest.to_string(),
                "mod" => match parse_module(rest) {
                    Some(m) => {
                        info.main = Some(m);
                        last = Last::Main;
                    }
                    None => problems.push(format!("line {line_no}: malformed mod line")),
                },
                "dep" => match parse_module(rest) {
                    Some(m) => {
                        info.deps.push(m);
                        last = Last::Dep;
                    }
                    None => {
                        problems.push(format!("line {line_no}: malformed dep line"));
                        last = Last::None;
                    }
                },
                "=>" => {
                    let replaced = match last {
                        Last::Main => info.main.as_mut(),
                        Last::Dep => info.deps.last_mut(),
                        Last::None => None,
                    };
                    match (replaced, parse_module(rest)) {
                        (Some(m), Some(r)) if m.replace.is_none() => m.replace = Some(Box::new(r)),
                        _ => problems.push(format!("line {line_no}: replacement without a module to replace")),
                    }
                    last = Last::None;
                }
                "build" => match parse_setting(rest) {
                    Some(kv) => info.settings.push(kv),
                    None => problems.push(format!("line {line_no}: malformed build setting")),
                },
                // Blank lines, `go` (written by newer `go version -m` output)
                // and keys added by future toolchains carry no modules.
                _ => {}
            }
        }
        let extra = problems.len().saturating_sub(MAX_WARNINGS);
        warnings.extend(problems.into_iter().take(MAX_WARNINGS).map(|p| format!("Go build info {p}")));
        if extra > 0 {
            warnings.push(format!("Go build info: {extra} more malformed lines"));
        }
        info
    }

    /// The packages this binary contains: dependencies, the main module and `stdlib`.
    pub fn packages(&self) -> Vec<Package> {
        let mut out = Vec::new();
        if let Some(main) = &self.main {
            let m = main.effective();
            if !m.path.is_empty() && !m.version.is_empty() && m.version != DEVEL {
                out.push(Package::new(PackageType::Go, &m.path, &m.version));
            }
        }
        for dep in &self.deps {
            let m = dep.effective();
            // A directory replacement has no version: nothing to match.
            if !m.path.is_empty() && !m.version.is_empty() {
                out.push(Package::new(PackageType::Go, &m.path, &m.version));
            }
        }
        if !self.go_version.is_empty() {
            out.push(Package::new(PackageType::Go, "stdlib", &self.go_version));
        }
        out
    }
}

/// Parses `path\tversion[\tsum]`.
fn parse_module(fields: &str) -> Option<Module> {
    let mut it = fields.split('\t');
    let path = it.next().filter(|p| !p.is_empty())?;
    let version = it.next().unwrap_or_default();
    let sum = it.next().unwrap_or_default();
    Some(Module { path: path.to_string(), version: version.to_string(), sum: sum.to_string(), replace: None })
}

/// Parses `key=value`, where either side may be a Go-quoted string.
fn parse_setting(s: &str) -> Option<(String, String)> {
    let (key, rest) = if s.starts_with('"') {
        let (k, rest) = unquote_prefix(s)?;
        (k, rest.strip_prefix('=')?)
    } else {
        let (k, v) = s.split_once('=')?;
        (k.to_string(), v)
    };
    if key.is_empty() {
        return None;
    }
    let value = if rest.starts_with('"') {
        match unquote_prefix(rest)? {
            (v, "") => v,
            _ => return None,
        }
    } else {
        rest.to_string()
    };
    Some((key, value))
}

/// Reads the Go (`strconv.Quote`) string literal at the start of `s`; returns it and the text after it.
fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, body.get(i + 1..)?)),
            '\\' => {
                let (_, e) = chars.next()?;
                let hex = |n: usize, chars: &mut std::str::CharIndices<'_>| -> Option<u32> {
                    let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                    (digits.len() == n).then(|| u32::from_str_radix(&digits, 16).ok()).flatten()
                };
                match e {
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\x0b'),
                    '\\' | '"' | '\'' => out.push(e),
                    // \xHH escapes a single byte that is not valid UTF-8 on its own.
                    'x' => out.push(char::from_u32(hex(2, &mut chars)?).unwrap_or(char::REPLACEMENT_CHARACTER)),
                    'u' => out.push(char::from_u32(hex(4, &mut chars)?).unwrap_or(char::REPLACEMENT_CHARACTER)),
                    'U' => out.push(char::from_u32(hex(8, &mut chars)?).unwrap_or(char::REPLACEMENT_CHARACTER)),
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::testutil::{embed, go_blob, go_old_blob, uvarint, Lcg, MODINFO};

    /// Feeds `data` in pieces of pseudo-random size `1..=max_piece`.
    fn scan_in_pieces(data: &[u8], max_piece: usize, seed: u64) -> GoScan {
        let mut scanner = GoScanner::new();
        let mut rng = Lcg::new(seed);
        let mut rest = data;
        while !rest.is_empty() {
            let n = rng.range(1, max_piece).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            if scanner.feed(piece) {
                break;
            }
            rest = tail;
        }
        scanner.finish()
    }

    fn names(info: &BuildInfo) -> Vec<(String, String)> {
        info.packages().into_iter().map(|p| (p.name, p.version)).collect()
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20, u64::MAX] {
            match read_uvarint(&uvarint(v)) {
                Varint::Value(got, used) => assert_eq!((got, used), (v, uvarint(v).len())),
                _ => panic!("{v}"),
            }
        }
        assert!(matches!(read_uvarint(&[0x80, 0x80]), Varint::NeedMore));
        assert!(matches!(read_uvarint(&[0xff; 10]), Varint::Invalid));
        assert!(matches!(read_uvarint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), Varint::Invalid));
    }

    #[test]
    fn parses_modinfo_like_syft() {
        let mut warnings = Vec::new();
        let info = BuildInfo::parse("go1.21.3", MODINFO, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(info.path, "example.com/app/cmd/app");
        assert_eq!(info.deps.len(), 3);
        assert_eq!(info.deps[1].effective().version, "v0.23.0");
        assert_eq!(
            info.settings.iter().find(|(k, _)| k == "-ldflags").map(|(_, v)| v.as_str()),
            Some("-s -w -X main.version=1.4.0")
        );
        assert_eq!(
            names(&info),
            vec![
                ("example.com/app".to_string(), "v1.4.0".to_string()),
                ("github.com/pkg/errors".to_string(), "v0.9.1".to_string()),
                ("golang.org/x/net".to_string(), "v0.23.0".to_string()),
                ("stdlib".to_string(), "go1.21.3".to_string()),
            ]
        );
        assert!(info.packages().iter().all(|p| p.kind == PackageType::Go));
    }

    #[test]
    fn devel_main_module_is_not_a_package() {
        let mut w = Vec::new();
        let info = BuildInfo::parse("go1.22.0", "path\tx/cmd\nmod\tx\t(devel)\t\ndep\ty\tv1.0.0\th1:a=\n", &mut w);
        assert_eq!(names(&info), vec![("y".into(), "v1.0.0".into()), ("stdlib".into(), "go1.22.0".into())]);
        let info = BuildInfo::parse("go1.22.0", "", &mut w);
        assert_eq!(names(&info), vec![("stdlib".into(), "go1.22.0".into())]);
        assert!(w.is_empty());
    }

    #[test]
    fn malformed_lines_are_warnings() {
        let mut w = Vec::new();
        let text = "dep\t\tv1\n=>\tz\tv2\nmod\nbuild\tnoequals\nbuild\t\"unterminated=1\n=>\ta\tb\ndep\tok\tv1.0.0\n";
        let info = BuildInfo::parse("go1.22.0", text, &mut w);
        assert_eq!(names(&info), vec![("ok".into(), "v1.0.0".into()), ("stdlib".into(), "go1.22.0".into())]);
        assert_eq!(w.len(), 6, "{w:?}");
        let many = "dep\n".repeat(100);
        let mut w = Vec::new();
        BuildInfo::parse("go1.22.0", &many, &mut w);
        assert_eq!(w.len(), MAX_WARNINGS + 1);
    }

    #[test]
    fn quoted_build_settings() {
        assert_eq!(parse_setting("GOARCH=amd64"), Some(("GOARCH".into(), "amd64".into())));
        assert_eq!(parse_setting(r#""a=b"="x\ty\u00e9\x41\"""#), Some(("a=b".into(), "x\tyéA\"".into())));
        assert_eq!(parse_setting(r#"k="v"junk"#), None);
        assert_eq!(parse_setting(r#"k="\q""#), None);
        assert_eq!(parse_setting(r#"k="\u12"#), None);
        assert_eq!(parse_setting("=v"), None);
    }

    #[test]
    fn finds_the_blob_at_any_aligned_offset_in_any_pieces() {
        let blob = go_blob("go1.21.3", MODINFO, 8);
        for (i, offset) in [0usize, 16, 48, 4096, 65536 - 16, 65536, 65536 + 32].into_iter().enumerate() {
            let data = embed(&[], &blob, offset, offset + blob.len() + 1000, i as u64);
            for (max_piece, seed) in [(7usize, 1u64), (3, 2), (64, 3), (70_000, 4), (1 << 20, 5)] {
                let scan = scan_in_pieces(&data, max_piece, seed);
                let raw = scan.raw.unwrap_or_else(|| panic!("offset {offset} piece {max_piece}"));
                assert_eq!(raw.go_version, "go1.21.3");
                assert_eq!(raw.modinfo, MODINFO);
                assert!(scan.warnings.is_empty());
            }
        }
    }

    #[test]
    fn blob_at_the_very_end_of_the_file() {
        let blob = go_blob("go1.22.1", "path\tp\n", 4);
        let data = embed(&[], &blob, 160, 160, 9);
        assert_eq!(data.len(), 160 + blob.len());
        assert_eq!(scan_in_pieces(&data, 5, 1).raw.map(|r| r.modinfo), Some("path\tp\n".to_string()));
    }

    #[test]
    fn unaligned_and_literal_magics_are_skipped() {
        let real = go_blob("go1.21.3", MODINFO, 8);
        let mut data = embed(&[], &real, 4096, 8192, 3);
        // An unaligned copy of a whole valid blob: ignored.
        let unaligned = go_blob("go1.0.0", "dep\tevil\tv6.6.6\th1:x=\n", 8);
        data[1001..1001 + unaligned.len()].copy_from_slice(&unaligned);
        // Aligned literals followed by junk, as in binaries linking debug/buildinfo.
        data[2048..2048 + 16].copy_from_slice(b"\xff Go buildinf:\x08\x02");
        data[2064..2080].fill(0);
        data[2080] = 5;
        data[2081..2086].copy_from_slice(b"hello");
        data[3072..3072 + 16].copy_from_slice(b"\xff Go buildinf:\x03\x02");
        let scan = scan_in_pieces(&data, 7, 4);
        assert_eq!(scan.raw.map(|r| r.go_version), Some("go1.21.3".to_string()));
    }

    #[test]
    fn old_format_is_a_warning() {
        let data = embed(&[], &go_old_blob(), 512, 2048, 5);
        let scan = scan_in_pieces(&data, 7, 6);
        assert!(scan.raw.is_none());
        assert_eq!(scan.warnings, vec![OLD_FORMAT_WARNING.to_string()]);
    }

    #[test]
    fn oversized_and_truncated_blobs_are_warnings() {
        // A module-info length beyond the cap.
        let mut blob = b"\xff Go buildinf:\x08\x02".to_vec();
        blob.resize(32, 0);
        blob.extend(uvarint(8));
        blob.extend_from_slice(b"go1.21.3");
        blob.extend(uvarint(MAX_MODINFO_LEN + 1));
        let data = embed(&[], &blob, 64, 4096, 7);
        let scan = scan_in_pieces(&data, 7, 8);
        assert!(scan.raw.is_none());
        assert_eq!(scan.warnings.len(), 1);
        assert!(scan.warnings[0].contains("exceeds"), "{:?}", scan.warnings);

        // Cut off by the end of the file.
        let blob = go_blob("go1.21.3", MODINFO, 8);
        let scan = scan_in_pieces(&blob[..blob.len() - 3], 7, 9);
        assert!(scan.raw.is_none());
        assert_eq!(scan.warnings, vec!["Go build info truncated at end of file".to_string()]);
        // Truncated inside the version: could be anything, so no noise.
        assert!(scan_in_pieces(&blob[..36], 7, 9).warnings.is_empty());
    }

    #[test]
    fn every_truncation_and_mutation_is_handled() {
        let blob = go_blob("go1.21.3", MODINFO, 8);
        for cut in 0..blob.len() {
            let scan = scan_in_pieces(&blob[..cut], 3, cut as u64);
            assert!(scan.raw.is_none());
        }
        let mut rng = Lcg::new(42);
        for round in 0..3000 {
            let mut b = blob.clone();
            for _ in 0..rng.range(1, 4) {
                let i = rng.range(14, 60.min(b.len() - 1));
                b[i] = rng.next_u64() as u8;
            }
            let scan = scan_in_pieces(&b, 9, round);
            if let Some(raw) = scan.raw {
                let mut w = Vec::new();
                let _ = BuildInfo::parse(&raw.go_version, &raw.modinfo, &mut w).packages();
            }
        }
    }

    #[test]
    fn memory_stays_bounded_while_searching() {
        let mut scanner = GoScanner::new();
        let junk = Lcg::new(1).bytes(1 << 16);
        for _ in 0..64 {
            scanner.feed(&junk);
            assert!(scanner.window.len() < MAGIC.len());
        }
        assert!(scanner.finish().raw.is_none());
    }
}
