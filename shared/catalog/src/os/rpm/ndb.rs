//! rpm's own "ndb" package database (`Packages.db`, SUSE since 15.x).
//!
//! All integers are little-endian. The file starts with `slot_pages` 4 KiB
//! pages of 16-byte slots; the first two slots' worth of space is the file
//! header (`RpmP` magic, format version 0, generation, slot page count, next
//! package index). Each slot is `Slot` magic, package index, block offset
//! and block count, in 16-byte blocks; a zero offset marks a free slot. A
//! slot points at a blob: a 16-byte head (`BlbS`, package index, timestamp,
//! length), the header blob, padding, and a 12-byte tail (checksum, length,
//! `BlbE`). Blobs are checked against their slot the way rpm checks them
//! on read (magics, index, lengths); the checksum is not, as rpm does not
//! check it on read either. Packages are listed in block-offset order, as
//! `rpm -qa` lists them.

use super::RecordSink;
use crate::cataloger::CatalogError;
use std::io::{Read, Seek, SeekFrom};

/// The first four bytes of an ndb package database.
pub const MAGIC: &[u8] = b"RpmP";
const SLOT_MAGIC: &[u8] = b"Slot";
const BLOB_HEAD_MAGIC: &[u8] = b"BlbS";
const BLOB_TAIL_MAGIC: &[u8] = b"BlbE";

const PAGE_SIZE: u64 = 4096;
const SLOT_SIZE: usize = 16;
const BLOCK_SIZE: u64 = 16;
const FILE_HEADER: usize = 32;
const BLOB_HEAD: u64 = 16;
const BLOB_TAIL: u64 = 12;

/// One used slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    pkgidx: u32,
    blkoff: u32,
    blkcnt: u32,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn malformed(msg: impl std::fmt::Display) -> CatalogError {
    CatalogError::malformed(format!("ndb rpm database: {msg}"))
}

/// Delivers every package blob of the ndb database in `file` (`len` bytes) to `sink`.
pub fn read<R: Read + Seek>(file: &mut R, len: u64, sink: &mut dyn RecordSink) -> Result<(), CatalogError> {
    let mut header = [0u8; FILE_HEADER];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut header).map_err(|_| malformed("file header is truncated"))?;
    if !header.starts_with(MAGIC) {
        return Err(malformed("bad magic"));
    }
    let version = le_u32(&header, 4).unwrap_or_default();
    if version != 0 {
        return Err(malformed(format_args!("unsupported format version {version}")));
    }
    let slot_pages = le_u32(&header, 12).unwrap_or_default();
    if slot_pages == 0 || u64::from(slot_pages) * PAGE_SIZE > len {
        return Err(malformed(format_args!("{slot_pages} slot pages do not fit in a {len}-byte file")));
    }
    let file_blocks = len / BLOCK_SIZE;
    // Blobs start after the slot pages.
    let first_block = u64::from(slot_pages) * (PAGE_SIZE / BLOCK_SIZE);

    let mut slots = Vec::new();
    let mut page = vec![0u8; PAGE_SIZE as usize];
    file.seek(SeekFrom::Start(0))?;
    for page_no in 0..slot_pages {
        file.read_exact(&mut page)?;
        let start = if page_no == 0 { FILE_HEADER } else { 0 };
        for (i, raw) in page.get(start..).unwrap_or_default().chunks_exact(SLOT_SIZE).enumerate() {
            let slot_no = u64::from(page_no) * (PAGE_SIZE / SLOT_SIZE as u64) + (start / SLOT_SIZE + i) as u64;
            if !raw.starts_with(SLOT_MAGIC) {
                sink.warn(format!("ndb slot {slot_no} has a bad magic; skipped"));
                continue;
            }
            let (Some(pkgidx), Some(blkoff), Some(blkcnt)) = (le_u32(raw, 4), le_u32(raw, 8), le_u32(raw, 12)) else {
                continue;
            };
            if blkoff == 0 {
                continue;
            }
            let end = u64::from(blkoff) + u64::from(blkcnt);
            if pkgidx == 0 || blkcnt == 0 || u64::from(blkoff) < first_block || end > file_blocks {
                sink.warn(format!("ndb slot {slot_no} (package index {pkgidx}) points outside the blob area; skipped"));
                continue;
            }
            slots.push(Slot { pkgidx, blkoff, blkcnt });
        }
    }
    slots.sort_by_key(|s| s.blkoff);

    // Overlapping slots could make a small file expand into many reads;
    // valid slots never overlap, so the total is bounded by the file size.
    let mut budget = len;
    for slot in slots {
        let origin = format_args!("ndb package index {}", slot.pkgidx);
        let size = u64::from(slot.blkcnt) * BLOCK_SIZE;
        if size > budget {
            sink.warn(format!("rpm header at {origin} skipped: slots overlap"));
            continue;
        }
        budget -= size;
        match read_blob(file, slot)? {
            Ok(blob) => sink.header(&origin, &blob),
            Err(msg) => sink.warn(format!("rpm header at {origin} skipped: {msg}")),
        }
    }
    Ok(())
}

/// Reads and checks one blob; the inner error is a record problem, the outer an I/O failure.
fn read_blob<R: Read + Seek>(file: &mut R, slot: Slot) -> Result<Result<Vec<u8>, String>, CatalogError> {
    let offset = u64::from(slot.blkoff) * BLOCK_SIZE;
    let span = u64::from(slot.blkcnt) * BLOCK_SIZE;
    let mut head = [0u8; BLOB_HEAD as usize];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut head)?;
    if !head.starts_with(BLOB_HEAD_MAGIC) {
        return Ok(Err("blob has a bad magic".into()));
    }
    if le_u32(&head, 4) != Some(slot.pkgidx) {
        return Ok(Err("blob belongs to another package index".into()));
    }
    let blob_len = u64::from(le_u32(&head, 12).unwrap_or_default());
    let needed = (BLOB_HEAD + blob_len + BLOB_TAIL).div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
    if needed != span {
        return Ok(Err(format!("blob of {blob_len} bytes does not match its {span}-byte slot")));
    }
    // Bounded by the slot, which was checked against the file size.
    let mut blob = vec![0u8; blob_len as usize];
    file.read_exact(&mut blob)?;
    let mut tail = [0u8; BLOB_TAIL as usize];
    file.seek(SeekFrom::Start(offset + span - BLOB_TAIL))?;
    file.read_exact(&mut tail)?;
    if u64::from(le_u32(&tail, 4).unwrap_or_default()) != blob_len || !tail.ends_with(BLOB_TAIL_MAGIC) {
        return Ok(Err("blob trailer does not match its head".into()));
    }
    Ok(Ok(blob))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::rpm::fixtures::{ndb, package_blob, Mutator};
    use std::fmt::Display;
    use std::io::Cursor;

    #[derive(Default)]
    struct Collect {
        blobs: Vec<(String, Vec<u8>)>,
        warnings: Vec<String>,
    }

    impl RecordSink for Collect {
        fn header(&mut self, origin: &dyn Display, blob: &[u8]) {
            self.blobs.push((origin.to_string(), blob.to_vec()));
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

    fn blobs(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| package_blob(&format!("p{i}"), None, "1", &i.to_string(), Some("noarch"), None)).collect()
    }

    /// Byte offset of slot `i` (0-based among the package slots).
    fn slot_at(i: usize) -> usize {
        FILE_HEADER + SLOT_SIZE * i
    }

    #[test]
    fn reads_blobs_in_block_order() {
        let input = blobs(3);
        let mut bytes = ndb(&input);
        // Swap the first two slots: order comes from block offsets, not slot numbers.
        let (a, b) = (slot_at(0), slot_at(1));
        let first: Vec<u8> = bytes[a..a + 16].to_vec();
        bytes.copy_within(b..b + 16, a);
        bytes[b..b + 16].copy_from_slice(&first);
        let got = run(&bytes).expect("read");
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let names: Vec<_> = got.blobs.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(names, ["ndb package index 1", "ndb package index 2", "ndb package index 3"]);
        assert_eq!(got.blobs.into_iter().map(|(_, b)| b).collect::<Vec<_>>(), input);
    }

    #[test]
    fn free_slots_are_ignored() {
        let mut bytes = ndb(&blobs(2));
        let s = slot_at(0);
        bytes[s + 4..s + 16].fill(0);
        let got = run(&bytes).expect("read");
        assert_eq!(got.blobs.len(), 1);
        assert!(got.warnings.is_empty());
    }

    #[test]
    fn bad_file_headers_are_malformed() {
        let good = ndb(&blobs(1));
        let mut version = good.clone();
        version[4] = 1;
        let mut no_pages = good.clone();
        no_pages[12..16].fill(0);
        let mut many_pages = good.clone();
        many_pages[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        for (what, bytes) in [("version", version), ("slot pages", no_pages.clone()), ("slot pages", many_pages)] {
            let err = run(&bytes).err().unwrap_or_else(|| panic!("{what} accepted"));
            assert!(err.to_string().contains(what), "{err}");
        }
        assert!(run(&good[..20]).is_err());
    }

    #[test]
    fn bad_slots_and_blobs_are_warnings() {
        let good = ndb(&blobs(2));
        let s = slot_at(0);
        let blob0 = u32::from_le_bytes(good[s + 8..s + 12].try_into().expect("4 bytes")) as usize * 16;
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut c = good.clone();
        c[s] = b'X';
        cases.push(("slot magic", c));
        let mut c = good.clone();
        c[s + 8..s + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("offset beyond file", c));
        let mut c = good.clone();
        c[s + 8..s + 12].copy_from_slice(&1u32.to_le_bytes());
        cases.push(("offset inside slot pages", c));
        let mut c = good.clone();
        c[s + 12..s + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("huge count", c));
        let mut c = good.clone();
        c[blob0] = b'X';
        cases.push(("blob magic", c));
        let mut c = good.clone();
        c[blob0 + 4] = 9;
        cases.push(("blob index", c));
        let mut c = good.clone();
        c[blob0 + 12..blob0 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("blob length", c));
        let mut c = good.clone();
        let tail = blob0 + u32::from_le_bytes(good[s + 12..s + 16].try_into().expect("4 bytes")) as usize * 16 - 1;
        c[tail] = b'X';
        cases.push(("tail magic", c));
        for (what, bytes) in cases {
            let got = run(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got.blobs.len(), 1, "{what}");
            assert_eq!(got.warnings.len(), 1, "{what}: {:?}", got.warnings);
        }
    }

    #[test]
    fn overlapping_slots_are_bounded() {
        let mut bytes = ndb(&blobs(1));
        let first: Vec<u8> = bytes[slot_at(0)..slot_at(0) + 16].to_vec();
        // 200 slots all pointing at the one blob.
        for i in 1..200 {
            bytes[slot_at(i)..slot_at(i) + 16].copy_from_slice(&first);
        }
        let got = run(&bytes).expect("read");
        let blob_span = bytes.len() - 4096;
        assert!(got.blobs.len() * blob_span <= bytes.len(), "{} reads", got.blobs.len());
        assert!(got.warnings.iter().all(|w| w.contains("overlap")));
    }

    #[test]
    fn mutated_databases_never_panic() {
        let good = ndb(&blobs(5));
        let mut m = Mutator::new(9);
        for _ in 0..3000 {
            let _ = run(&m.mutate(&good));
        }
        // Mutations aimed at the header and first slots.
        for _ in 0..3000 {
            let mut bytes = good.clone();
            let head = m.mutate(&bytes[..96]);
            bytes[..96].copy_from_slice(&head);
            let _ = run(&bytes);
        }
    }
}
