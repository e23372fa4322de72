//! The Berkeley DB hash database rpm used until 4.16 (`Packages`): read
//! directly from its pages, without libdb.
//!
//! Page 0 is the hash metadata page (magic, version, page size, last page
//! number, flags). Every `P_HASH` page holds an index of 16-bit item offsets,
//! paired key/value; items are packed from the end of the page downwards,
//! so an item runs up to the start of the one indexed before it. rpm's keys
//! are 4-byte header instance numbers; values are header blobs, almost always
//! too large for the page and therefore `H_OFFPAGE` references to a chain
//! of overflow pages, each holding `hf_offset` bytes of data.
//!
//! Like go-rpmdb, all pages up to the last one are scanned and every hash
//! page is read, rather than walking buckets: freed pages are re-typed as
//! invalid by libdb, so this sees exactly the live records and does not
//! depend on the bucket arithmetic being intact. Files are written in the
//! byte order of the host that created them; the magic tells which. Page
//! fields are bounds-checked before use, overflow chains are bounded by the
//! page count and by a read budget of the file size (every overflow page
//! belongs to one record, so a valid file never exceeds it).

use super::RecordSink;
use crate::cataloger::CatalogError;
use std::io::{self, Read, Seek, SeekFrom};

const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;

/// Page types (`db_page.h`).
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;

/// Hash item types (`db_page.h`).
const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;

/// Size of a page header; with checksums a 6-byte checksum area follows it.
const PAGE_HEADER: usize = 26;
const PAGE_HEADER_CHECKSUMMED: usize = 32;
/// `DBMETA_CHKSUM` in the metadata flags byte.
const META_CHECKSUM: u8 = 0x01;
/// An `H_OFFPAGE` item: type, 3 unused bytes, first page, total length.
const OFFPAGE_ITEM: usize = 12;

/// True when `prefix` (16 bytes or more) starts a Berkeley DB hash database.
pub fn is_hash_db(prefix: &[u8]) -> bool {
    magic(prefix).is_some_and(|(m, _)| m == HASH_MAGIC)
}

/// True when `prefix` starts a Berkeley DB btree database (not an rpm Packages file).
pub fn is_btree_db(prefix: &[u8]) -> bool {
    magic(prefix).is_some_and(|(m, _)| m == BTREE_MAGIC)
}

/// The magic and the byte order it was written in.
fn magic(prefix: &[u8]) -> Option<(u32, Endian)> {
    let bytes: [u8; 4] = prefix.get(12..16)?.try_into().ok()?;
    let le = u32::from_le_bytes(bytes);
    let be = u32::from_be_bytes(bytes);
    [HASH_MAGIC, BTREE_MAGIC].into_iter().find_map(|m| {
        if le == m {
            Some((m, Endian::Little))
        } else if be == m {
            Some((m, Endian::Big))
        } else {
            None
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(bytes),
            Endian::Big => u16::from_be_bytes(bytes),
        })
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        })
    }
}

/// What the metadata page says about the file.
#[derive(Debug, Clone, Copy)]
struct Meta {
    endian: Endian,
    page_size: usize,
    /// Offset of the item index (and of overflow data) within a page.
    overhead: usize,
    /// Pages to scan: `last_pgno + 1`, capped at what the file holds.
    pages: u32,
}

fn malformed(msg: impl std::fmt::Display) -> CatalogError {
    CatalogError::malformed(format!("Berkeley DB rpm database: {msg}"))
}

fn read_meta(prefix: &[u8], len: u64, sink: &mut dyn RecordSink) -> Result<Meta, CatalogError> {
    let (endian, field) = match magic(prefix) {
        Some((HASH_MAGIC, endian)) => (endian, move |at| endian.u32(prefix, at)),
        _ => return Err(malformed("not a hash database")),
    };
    let short = || malformed("metadata page is truncated");
    let version = field(16).ok_or_else(short)?;
    // Hash format versions of libdb 4.x–6.x, the ones rpm's own reader accepts.
    if !(8..=10).contains(&version) {
        return Err(malformed(format_args!("unsupported hash version {version}")));
    }
    let page_size = field(20).ok_or_else(short)?;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(malformed(format_args!("invalid page size {page_size}")));
    }
    let encrypted = *prefix.get(24).ok_or_else(short)?;
    if encrypted != 0 {
        return Err(malformed("encrypted databases are not supported"));
    }
    let kind = *prefix.get(25).ok_or_else(short)?;
    if kind != P_HASHMETA {
        return Err(malformed(format_args!("page 0 has type {kind}, not hash metadata")));
    }
    let flags = *prefix.get(26).ok_or_else(short)?;
    let last_pgno = field(32).ok_or_else(short)?;
    let in_file = len / u64::from(page_size);
    let claimed = u64::from(last_pgno) + 1;
    if claimed > in_file {
        sink.warn(format!(
            "Berkeley DB rpm database is truncated: metadata names {claimed} pages of {page_size} bytes, the file holds {in_file}"
        ));
    }
    let pages = u32::try_from(claimed.min(in_file)).map_err(|_| malformed("too many pages"))?;
    let overhead = if flags & META_CHECKSUM != 0 { PAGE_HEADER_CHECKSUMMED } else { PAGE_HEADER };
    Ok(Meta { endian, page_size: page_size as usize, overhead, pages })
}

/// Why one record could not be read: a record problem is a warning, an I/O
/// error on the scratch file ends the read.
enum Problem {
    Record(String),
    Io(io::Error),
}

impl From<io::Error> for Problem {
    fn from(e: io::Error) -> Self {
        Problem::Io(e)
    }
}

struct Reader<'r, R> {
    file: &'r mut R,
    meta: Meta,
    /// Overflow bytes that may still be read; see the module docs.
    budget: u64,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn read_page(&mut self, pgno: u32, buf: &mut [u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(u64::from(pgno) * self.meta.page_size as u64))?;
        self.file.read_exact(buf)
    }

    /// Follows an overflow chain and returns its `total` bytes.
    fn overflow(&mut self, first: u32, total: u32, page: &mut [u8]) -> Result<Vec<u8>, Problem> {
        let bad = |msg: String| Err(Problem::Record(msg));
        let total = total as usize;
        if total == 0 {
            return bad("zero-length overflow item".into());
        }
        let room = self.meta.page_size - self.meta.overhead;
        // A chain can use each page at most once.
        let fits = (self.meta.pages as usize).saturating_mul(room);
        if total > fits || total as u64 > self.budget {
            return bad(format!("overflow item of {total} bytes is larger than the database could hold"));
        }
        self.budget -= total as u64;
        let mut value = Vec::with_capacity(total);
        let mut pgno = first;
        for _ in 0..self.meta.pages {
            if pgno == 0 || pgno >= self.meta.pages {
                return bad(format!("overflow chain points at page {pgno}, outside the database"));
            }
            self.read_page(pgno, page)?;
            let e = self.meta.endian;
            let (Some(own), Some(next), Some(used)) = (e.u32(page, 8), e.u32(page, 16), e.u16(page, 22)) else {
                return bad(format!("overflow page {pgno} is truncated"));
            };
            let kind = page.get(25).copied().unwrap_or_default();
            if own != pgno || kind != P_OVERFLOW {
                return bad(format!("page {pgno} in an overflow chain is not an overflow page"));
            }
            let used = usize::from(used);
            let remaining = total - value.len();
            if used > room || used > remaining {
                return bad(format!("overflow page {pgno} claims {used} bytes, more than fits"));
            }
            let Some(data) = page.get(self.meta.overhead..self.meta.overhead + used) else {
                return bad(format!("overflow page {pgno} is truncated"));
            };
            value.extend_from_slice(data);
            if value.len() == total {
                return Ok(value);
            }
            pgno = next;
        }
        bad("overflow chain loops".into())
    }
}

/// Delivers every record of the hash database in `file` (`len` bytes) to `sink`.
pub fn read<R: Read + Seek>(file: &mut R, len: u64, sink: &mut dyn RecordSink) -> Result<(), CatalogError> {
    let mut prefix = Vec::with_capacity(512);
    file.seek(SeekFrom::Start(0))?;
    (&mut *file).take(512).read_to_end(&mut prefix)?;
    let meta = read_meta(&prefix, len, sink)?;
    let mut reader = Reader { file, meta, budget: len };
    let mut page = vec![0u8; meta.page_size];
    let mut overflow_page = vec![0u8; meta.page_size];
    for pgno in 1..meta.pages {
        reader.read_page(pgno, &mut page)?;
        let kind = page.get(25).copied().unwrap_or_default();
        if kind != P_HASH && kind != P_HASH_UNSORTED {
            continue;
        }
        let e = meta.endian;
        if e.u32(&page, 8) != Some(pgno) {
            sink.warn(format!("Berkeley DB page {pgno} has the wrong page number; skipped"));
            continue;
        }
        let entries = usize::from(e.u16(&page, 20).unwrap_or_default());
        let index_end = meta.overhead + 2 * entries;
        if index_end > meta.page_size {
            sink.warn(format!("Berkeley DB page {pgno} claims {entries} items, more than fit; skipped"));
            continue;
        }
        if entries & 1 == 1 {
            sink.warn(format!("Berkeley DB page {pgno} has an unpaired item; ignored"));
        }
        // Items run from their offset up to the previous item's offset (or the page end).
        let item = |j: usize| -> Option<&[u8]> {
            let start = usize::from(e.u16(&page, meta.overhead + 2 * j)?);
            let end = if j == 0 { meta.page_size } else { usize::from(e.u16(&page, meta.overhead + 2 * (j - 1))?) };
            if start < index_end || start >= end {
                return None;
            }
            page.get(start..end)
        };
        for pair in 0..entries / 2 {
            let origin = format_args!("Berkeley DB page {pgno} item {}", 2 * pair + 1);
            let (Some(key), Some(value)) = (item(2 * pair), item(2 * pair + 1)) else {
                sink.warn(format!("rpm header at {origin} skipped: item offsets out of order or outside the page"));
                continue;
            };
            match value.first().copied() {
                Some(H_KEYDATA) => {
                    // Key 0 is rpm's counter of header instances, not a package.
                    if key.get(1..) == Some(&[0u8; 4][..]) {
                        continue;
                    }
                    sink.header(&origin, value.get(1..).unwrap_or_default());
                }
                Some(H_OFFPAGE) => {
                    let (Some(first), Some(total)) = (e.u32(value, 4), e.u32(value, 8)) else {
                        sink.warn(format!("rpm header at {origin} skipped: overflow reference is truncated"));
                        continue;
                    };
                    if value.len() != OFFPAGE_ITEM {
                        sink.warn(format!("rpm header at {origin} skipped: overflow reference has the wrong size"));
                        continue;
                    }
                    match reader.overflow(first, total, &mut overflow_page) {
                        Ok(blob) => sink.header(&origin, &blob),
                        Err(Problem::Record(msg)) => sink.warn(format!("rpm header at {origin} skipped: {msg}")),
                        Err(Problem::Io(e)) => return Err(e.into()),
                    }
                }
                Some(H_DUPLICATE | H_OFFDUP) => {
                    sink.warn(format!("rpm header at {origin} skipped: duplicate-key items are not used by rpm"))
                }
                other => sink.warn(format!("rpm header at {origin} skipped: unknown item type {other:?}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::rpm::fixtures::{bdb, package_blob, BdbLayout, Mutator};
    use std::fmt::Display;
    use std::io::Cursor;

    #[derive(Default)]
    struct Collect {
        blobs: Vec<Vec<u8>>,
        warnings: Vec<String>,
    }

    impl RecordSink for Collect {
        fn header(&mut self, _origin: &dyn Display, blob: &[u8]) {
            self.blobs.push(blob.to_vec());
        }
        fn warn(&mut self, message: String) {
            self.warnings.push(message);
        }
    }

    fn run(bytes: &[u8]) -> Result<Collect, CatalogError> {
        let mut sink = Collect::default();
        read(&mut Cursor::new(bytes), bytes.len() as u64, &mut sink)?;
        Ok(sink)
    }

    fn records(n: usize) -> Vec<(u32, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let name = format!("package-{i}");
                let mut blob = package_blob(&name, None, "1.0", "1", Some("x86_64"), Some("src-1.0-1.src.rpm"));
                // Vary sizes so some values span several overflow pages.
                blob.extend(std::iter::repeat_n(0u8, i * 700));
                (i as u32 + 1, blob)
            })
            .collect()
    }

    #[test]
    fn reads_every_layout() {
        let recs = records(12);
        let values: Vec<_> = recs.iter().map(|(_, v)| v.clone()).collect();
        for page_size in [512, 1024, 4096, 8192, 65536] {
            for big_endian in [false, true] {
                for checksums in [false, true] {
                    let layout = BdbLayout { page_size, big_endian, inline_max: 0, checksums };
                    let got = run(&bdb(&recs, layout)).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
                    assert!(got.warnings.is_empty(), "{layout:?}: {:?}", got.warnings);
                    assert_eq!(got.blobs, values, "{layout:?}");
                }
            }
        }
    }

    #[test]
    fn inline_values_are_read_and_the_instance_counter_skipped() {
        let mut recs = records(3);
        recs.insert(0, (0, 4u32.to_le_bytes().to_vec()));
        let layout = BdbLayout { inline_max: 1000, ..BdbLayout::default() };
        let got = run(&bdb(&recs, layout)).expect("read");
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.blobs.len(), 3);
    }

    #[test]
    fn empty_database() {
        let got = run(&bdb(&[], BdbLayout::default())).expect("read");
        assert!(got.blobs.is_empty() && got.warnings.is_empty());
    }

    #[test]
    fn bad_metadata_is_malformed() {
        let good = bdb(&records(1), BdbLayout::default());
        let cases: [(usize, &[u8], &str); 5] = [
            (16, &[99, 0, 0, 0], "version"),
            (20, &[0, 3, 0, 0], "page size"),
            (20, &[0, 0, 0, 0], "page size"),
            (24, &[1], "encrypted"),
            (25, &[9], "type"),
        ];
        for (at, bytes, what) in cases {
            let mut bad = good.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            let err = run(&bad).err().unwrap_or_else(|| panic!("{what} accepted"));
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
        assert!(run(&good[..20]).is_err());
    }

    #[test]
    fn truncated_file_reads_what_is_there() {
        let recs = records(3);
        let bytes = bdb(&recs, BdbLayout::default());
        // Drop the last overflow page: the record it belongs to is lost, with a warning.
        let got = run(&bytes[..bytes.len() - 4096]).expect("read");
        assert!(got.warnings.iter().any(|w| w.contains("truncated")), "{:?}", got.warnings);
        assert_eq!(got.blobs.len(), 2);
        assert!(got.warnings.iter().any(|w| w.contains("outside the database")), "{:?}", got.warnings);
    }

    /// Page and item offsets in a default-layout file with one small record.
    fn single() -> (Vec<u8>, usize) {
        let bytes = bdb(&records(1), BdbLayout::default());
        // Page 1 is the hash page; its second index entry is the value item.
        let value_off = u16::from_le_bytes([bytes[4096 + 28], bytes[4096 + 29]]) as usize;
        (bytes, 4096 + value_off)
    }

    #[test]
    fn overflow_loops_and_huge_lengths_are_warnings() {
        let (good, item) = single();
        // The overflow page points back at itself.
        let mut looped = good.clone();
        looped[2 * 4096 + 16..2 * 4096 + 20].copy_from_slice(&2u32.to_le_bytes());
        looped[2 * 4096 + 22..2 * 4096 + 24].copy_from_slice(&10u16.to_le_bytes());
        // A length larger than the file.
        let mut huge = good.clone();
        huge[item + 8..item + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        // First page beyond the file, and page 0.
        let mut outside = good.clone();
        outside[item + 4..item + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let mut zero = good.clone();
        zero[item + 4..item + 8].copy_from_slice(&0u32.to_le_bytes());
        for (what, bytes) in [("loop", looped), ("huge", huge), ("outside", outside), ("zero", zero)] {
            let got = run(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(got.blobs.is_empty(), "{what}");
            assert_eq!(got.warnings.len(), 1, "{what}: {:?}", got.warnings);
        }
    }

    #[test]
    fn shared_overflow_chains_are_bounded_by_the_budget() {
        // Many items all pointing at the same long chain would be quadratic
        // work; the budget stops it at about one file's worth of reads.
        let recs = records(1);
        let mut bytes = bdb(&recs, BdbLayout { page_size: 512, ..BdbLayout::default() });
        let value_off = u16::from_le_bytes([bytes[512 + 28], bytes[512 + 29]]) as usize;
        let offpage: Vec<u8> = bytes[512 + value_off..512 + value_off + 12].to_vec();
        let page = &mut bytes[512..1024];
        // Rebuild page 1 as 20 pairs that all share the chain.
        page[26..].fill(0);
        let mut top = 512;
        for j in 0..20u16 {
            for item in [&[1u8, j as u8 + 1, 0, 0, 0][..], &offpage[..]] {
                top -= item.len();
                page[top..top + item.len()].copy_from_slice(item);
                let idx = 26 + 2 * (2 * j as usize + usize::from(item.len() == 12));
                page[idx..idx + 2].copy_from_slice(&(top as u16).to_le_bytes());
            }
        }
        page[20..22].copy_from_slice(&40u16.to_le_bytes());
        let got = run(&bytes).expect("read");
        let size = recs[0].1.len();
        assert!(got.blobs.len() * size <= bytes.len(), "{} blobs of {size}", got.blobs.len());
        assert!(!got.warnings.is_empty());
    }

    #[test]
    fn bad_item_offsets_are_warnings() {
        let (mut bytes, _) = single();
        // Value offset pointing into the index area.
        bytes[4096 + 28..4096 + 30].copy_from_slice(&10u16.to_le_bytes());
        let got = run(&bytes).expect("read");
        assert!(got.blobs.is_empty());
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        // An absurd item count.
        let (mut bytes, _) = single();
        bytes[4096 + 20..4096 + 22].copy_from_slice(&u16::MAX.to_le_bytes());
        let got = run(&bytes).expect("read");
        assert!(got.warnings[0].contains("more than fit"), "{:?}", got.warnings);
    }

    #[test]
    fn mutated_databases_never_panic() {
        let mut m = Mutator::new(42);
        for layout in [BdbLayout::default(), BdbLayout { page_size: 512, big_endian: true, ..BdbLayout::default() }] {
            let good = bdb(&records(6), layout);
            for _ in 0..2000 {
                let _ = run(&m.mutate(&good));
            }
        }
    }
}
