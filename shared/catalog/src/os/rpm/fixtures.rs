//! Test fixtures: builders for header blobs and minimal but structurally
//! faithful sqlite, Berkeley DB hash and ndb package databases, so the
//! parsers can be tested without shipping binary files.

use super::header::{TAG_ARCH, TAG_EPOCH, TAG_LICENSE, TAG_NAME, TAG_RELEASE, TAG_SOURCERPM, TAG_VERSION};
use std::path::Path;

/// A value for one header entry.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// `STRING`.
    Str(&'a str),
    /// `STRING_ARRAY`.
    StrArray(&'a [&'a str]),
    /// `INT16`, count 1.
    Int16(u16),
    /// `INT32`, count 1.
    Int32(u32),
    /// `INT64`, count 1.
    Int64(u64),
    /// `BIN`.
    Bin(&'a [u8]),
}

const TAG_HEADERIMMUTABLE: u32 = 63;
const TYPE_BIN: u32 = 7;

/// Appends one value to the data store (aligned as rpm aligns it) and returns its index entry.
fn push_value(data: &mut Vec<u8>, tag: u32, value: Value<'_>) -> [u32; 4] {
    let align = |data: &mut Vec<u8>, n: usize| data.resize(data.len().next_multiple_of(n), 0);
    let (kind, count) = match value {
        Value::Str(s) => {
            let off = data.len();
            data.extend_from_slice(s.as_bytes());
            data.push(0);
            return [tag, 6, off as u32, 1];
        }
        Value::StrArray(items) => {
            let off = data.len();
            for s in items {
                data.extend_from_slice(s.as_bytes());
                data.push(0);
            }
            return [tag, 8, off as u32, items.len() as u32];
        }
        Value::Int16(v) => {
            align(data, 2);
            let off = data.len();
            data.extend_from_slice(&v.to_be_bytes());
            return [tag, 3, off as u32, 1];
        }
        Value::Int32(v) => {
            align(data, 4);
            (4, v.to_be_bytes().to_vec())
        }
        Value::Int64(v) => {
            align(data, 8);
            (5, v.to_be_bytes().to_vec())
        }
        Value::Bin(b) => (TYPE_BIN, b.to_vec()),
    };
    let off = data.len();
    let n = if kind == TYPE_BIN { count.len() } else { 1 };
    data.extend_from_slice(&count);
    [tag, kind, off as u32, n as u32]
}

fn assemble(index: &[[u32; 4]], data: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for entry in index {
        for field in entry {
            blob.extend_from_slice(&field.to_be_bytes());
        }
    }
    blob.extend_from_slice(data);
    blob
}

/// A header blob holding exactly `entries`, in order, with no region.
pub fn header(entries: &[(u32, Value<'_>)]) -> Vec<u8> {
    let mut data = Vec::new();
    let index: Vec<_> = entries.iter().map(|&(tag, v)| push_value(&mut data, tag, v)).collect();
    assemble(&index, &data)
}

/// A header laid out as rpm stores installed packages: an immutable region
/// (entry 63 plus its trailer) holding `region`, then `dribbles` after it.
pub fn header_with_region(region: &[(u32, Value<'_>)], dribbles: &[(u32, Value<'_>)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut index = vec![[0u32; 4]];
    index.extend(region.iter().map(|&(tag, v)| push_value(&mut data, tag, v)));
    // The trailer is an index entry whose negative offset gives the region size.
    let region_entries = index.len() as i32;
    let trailer_off = data.len() as u32;
    let trailer = [TAG_HEADERIMMUTABLE, TYPE_BIN, (-(region_entries * 16)) as u32, 16];
    for field in trailer {
        data.extend_from_slice(&field.to_be_bytes());
    }
    index[0] = [TAG_HEADERIMMUTABLE, TYPE_BIN, trailer_off, 16];
    index.extend(dribbles.iter().map(|&(tag, v)| push_value(&mut data, tag, v)));
    assemble(&index, &data)
}

/// A realistic installed-package header.
pub fn package_blob(
    name: &str,
    epoch: Option<u32>,
    version: &str,
    release: &str,
    arch: Option<&str>,
    source_rpm: Option<&str>,
) -> Vec<u8> {
    let mut region = vec![
        (TAG_NAME, Value::Str(name)),
        (TAG_VERSION, Value::Str(version)),
        (TAG_RELEASE, Value::Str(release)),
        (1004, Value::StrArray(&["A summary", "Eine Zusammenfassung"])),
        (TAG_LICENSE, Value::Str("GPLv3+")),
        (1009, Value::Int32(12345)),
    ];
    if let Some(e) = epoch {
        region.push((TAG_EPOCH, Value::Int32(e)));
    }
    if let Some(a) = arch {
        region.push((TAG_ARCH, Value::Str(a)));
    }
    if let Some(s) = source_rpm {
        region.push((TAG_SOURCERPM, Value::Str(s)));
    }
    // Install time and transaction id are added as dribbles at install.
    header_with_region(&region, &[(1008, Value::Int32(1_700_000_000)), (1128, Value::Int32(1))])
}

/// Writes an rpm-style sqlite database holding `blobs` to `path`.
pub fn sqlite_db(path: &Path, blobs: &[Vec<u8>]) {
    let conn = rusqlite::Connection::open(path).expect("create sqlite db");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
         CREATE TABLE 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL);",
    )
    .expect("schema");
    for blob in blobs {
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob]).expect("insert");
    }
}

/// How [`bdb`] lays out a Berkeley DB hash database.
#[derive(Debug, Clone, Copy)]
pub struct BdbLayout {
    /// Page size in bytes.
    pub page_size: usize,
    /// Write big-endian page structures (as a big-endian host would).
    pub big_endian: bool,
    /// Values up to this many bytes are stored on the hash page, larger ones on overflow pages.
    pub inline_max: usize,
    /// Set the checksum flag: page headers then take 32 bytes instead of 26.
    pub checksums: bool,
}

impl Default for BdbLayout {
    fn default() -> Self {
        BdbLayout { page_size: 4096, big_endian: false, inline_max: 0, checksums: false }
    }
}

/// Builds a Berkeley DB hash database holding `(key, value)` records, the
/// way rpm's `Packages` file stores header instance → header blob.
pub fn bdb(records: &[(u32, Vec<u8>)], layout: BdbLayout) -> Vec<u8> {
    let ps = layout.page_size;
    let overhead = if layout.checksums { 32 } else { 26 };
    let u16b = |v: u16| if layout.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let u32b = |v: u32| if layout.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let set_header = |page: &mut Vec<u8>, pgno: u32, next: u32, entries: u16, hf: u16, kind: u8| {
        page[8..12].copy_from_slice(&u32b(pgno));
        page[16..20].copy_from_slice(&u32b(next));
        page[20..22].copy_from_slice(&u16b(entries));
        page[22..24].copy_from_slice(&u16b(hf));
        page[25] = kind;
    };

    let mut pages: Vec<Vec<u8>> = vec![vec![0; ps]];
    let mut hash = 1usize;
    pages.push(vec![0; ps]);
    let (mut entries, mut top) = (0usize, ps);
    for (key, value) in records {
        let mut key_item = vec![1u8];
        key_item.extend_from_slice(&u32b(*key));
        let val_item = if value.len() <= layout.inline_max {
            let mut item = vec![1u8];
            item.extend_from_slice(value);
            item
        } else {
            let chunk = ps - overhead;
            let first = pages.len() as u32;
            let parts: Vec<&[u8]> = value.chunks(chunk).collect();
            for (i, part) in parts.iter().enumerate() {
                let pgno = pages.len() as u32;
                let next = if i + 1 < parts.len() { pgno + 1 } else { 0 };
                let mut page = vec![0; ps];
                set_header(&mut page, pgno, next, 1, part.len() as u16, 7);
                page[overhead..overhead + part.len()].copy_from_slice(part);
                pages.push(page);
            }
            let mut item = vec![3u8, 0, 0, 0];
            item.extend_from_slice(&u32b(first));
            item.extend_from_slice(&u32b(value.len() as u32));
            item
        };
        if overhead + 2 * (entries + 2) + key_item.len() + val_item.len() > top {
            // Page full: chain a new page onto this bucket.
            let next = pages.len();
            pages[hash][16..20].copy_from_slice(&u32b(next as u32));
            pages.push(vec![0; ps]);
            hash = next;
            (entries, top) = (0, ps);
        }
        for item in [key_item, val_item] {
            top -= item.len();
            pages[hash][top..top + item.len()].copy_from_slice(&item);
            let at = overhead + 2 * entries;
            pages[hash][at..at + 2].copy_from_slice(&u16b(top as u16));
            entries += 1;
        }
        // Only a full page gets a successor, after its last update here.
        set_header(&mut pages[hash], hash as u32, 0, entries as u16, top as u16, 13);
    }
    if records.is_empty() {
        set_header(&mut pages[1], 1, 0, 0, ps as u16, 13);
    }

    let last = (pages.len() - 1) as u32;
    let meta = &mut pages[0];
    meta[12..16].copy_from_slice(&u32b(0x0006_1561));
    meta[16..20].copy_from_slice(&u32b(9));
    meta[20..24].copy_from_slice(&u32b(ps as u32));
    meta[25] = 8;
    meta[26] = u8::from(layout.checksums);
    meta[32..36].copy_from_slice(&u32b(last));
    meta[72..76].copy_from_slice(&u32b(0)); // max_bucket
    meta[88..92].copy_from_slice(&u32b(records.len() as u32));
    pages.concat()
}

/// Adler-32 as rpm's ndb computes it for blob trailers.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Builds an ndb `Packages.db` holding `blobs` as package indexes 1, 2, …
pub fn ndb(blobs: &[Vec<u8>]) -> Vec<u8> {
    let le = |v: u32| v.to_le_bytes();
    let mut file = vec![0u8; 4096];
    file[0..4].copy_from_slice(b"RpmP");
    file[8..12].copy_from_slice(&le(1)); // generation
    file[12..16].copy_from_slice(&le(1)); // slot pages
    file[16..20].copy_from_slice(&le(blobs.len() as u32 + 1)); // next package index
    for slot in (32..4096).step_by(16) {
        file[slot..slot + 4].copy_from_slice(b"Slot");
    }
    for (i, blob) in blobs.iter().enumerate() {
        let pkgidx = i as u32 + 1;
        let blkoff = (file.len() / 16) as u32;
        let mut record = Vec::new();
        record.extend_from_slice(b"BlbS");
        record.extend_from_slice(&le(pkgidx));
        record.extend_from_slice(&le(1_700_000_000));
        record.extend_from_slice(&le(blob.len() as u32));
        record.extend_from_slice(blob);
        record.resize((record.len() + 12).next_multiple_of(16) - 12, 0);
        let adler = adler32(&record);
        record.extend_from_slice(&le(adler));
        record.extend_from_slice(&le(blob.len() as u32));
        record.extend_from_slice(b"BlbE");
        let slot = 32 + 16 * i;
        file[slot + 4..slot + 8].copy_from_slice(&le(pkgidx));
        file[slot + 8..slot + 12].copy_from_slice(&le(blkoff));
        file[slot + 12..slot + 16].copy_from_slice(&le((record.len() / 16) as u32));
        file.extend_from_slice(&record);
    }
    file
}

/// A deterministic byte-mutation generator for robustness tests.
pub struct Mutator(u64);

impl Mutator {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Self {
        Mutator(seed | 1)
    }

    /// The next pseudo-random number (xorshift64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A copy of `data` with a few bytes overwritten at random positions.
    pub fn mutate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        if out.is_empty() {
            return out;
        }
        let n = 1 + self.next_u64() % 4;
        for _ in 0..n {
            let at = (self.next_u64() % out.len() as u64) as usize;
            out[at] = match self.next_u64() % 4 {
                0 => 0,
                1 => 0xff,
                _ => self.next_u64() as u8,
            };
        }
        out
    }
}
