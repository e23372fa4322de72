//! Just enough ELF to find a named section in a file read once, front to back.
//!
//! The ELF header sits at the start of the file but the section header table
//! (and the section-name table it points to) is written at the end, after the
//! section data. A forward-only reader therefore keeps the header from the
//! start and a bounded [`TailRing`] of the last bytes; at end of file
//! [`find_section`] looks the section up in that retained tail. Sections whose
//! data lies before the tail cannot be read, and say so.
//!
//! Everything here treats the file as hostile: every offset and length read
//! from it is bounds-checked against the retained bytes with checked
//! arithmetic, and nothing is allocated from a length the file declares.

use std::fmt;

/// `\x7fELF`, the first four bytes of every ELF file.
pub const MAGIC: &[u8; 4] = b"\x7fELF";
/// Size of the ELF64 file header; the ELF32 one (52 bytes) fits inside it.
pub const HEADER_LEN: usize = 64;

/// Section type of a section that occupies no bytes in the file (`.bss`).
const SHT_NOBITS: u32 = 8;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;

/// Word size of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 32-bit (`ELFCLASS32`).
    Elf32,
    /// 64-bit (`ELFCLASS64`).
    Elf64,
}

/// Byte order of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// The fields of the ELF file header needed to locate sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfHeader {
    /// 32- or 64-bit.
    pub class: Class,
    /// Byte order.
    pub endian: Endian,
    /// File offset of the section header table (0: none).
    pub shoff: u64,
    /// Size of one section header entry.
    pub shentsize: u16,
    /// Number of section headers (0 with a table: the count is in section 0).
    pub shnum: u16,
    /// Index of the section-name string table.
    pub shstrndx: u16,
}

impl ElfHeader {
    /// Parses the file header from the first bytes of a file; `None` if they
    /// are not a (complete) ELF header of a known class and byte order.
    pub fn parse(head: &[u8]) -> Option<ElfHeader> {
        if !head.starts_with(MAGIC) {
            return None;
        }
        let class = match head.get(4)? {
            1 => Class::Elf32,
            2 => Class::Elf64,
            _ => return None,
        };
        let endian = match head.get(5)? {
            1 => Endian::Little,
            2 => Endian::Big,
            _ => return None,
        };
        let r = Fields { bytes: head, endian };
        let header = match class {
            Class::Elf32 => ElfHeader {
                class,
                endian,
                shoff: u64::from(r.u32(32)?),
                shentsize: r.u16(46)?,
                shnum: r.u16(48)?,
                shstrndx: r.u16(50)?,
            },
            Class::Elf64 => ElfHeader {
                class,
                endian,
                shoff: r.u64(40)?,
                shentsize: r.u16(58)?,
                shnum: r.u16(60)?,
                shstrndx: r.u16(62)?,
            },
        };
        Some(header)
    }

    /// Bytes of a section header entry this parser reads (the smallest valid `e_shentsize`).
    fn min_shentsize(&self) -> u64 {
        match self.class {
            Class::Elf32 => 40,
            Class::Elf64 => 64,
        }
    }

    /// Reads section header `index` from the retained tail.
    fn section_header(&self, tail: &Tail, index: u64) -> Result<SectionHeader, ElfError> {
        let offset = index
            .checked_mul(u64::from(self.shentsize))
            .and_then(|o| o.checked_add(self.shoff))
            .ok_or_else(|| ElfError::Malformed("section header offset overflows".into()))?;
        let raw = tail.slice(offset, self.min_shentsize()).ok_or(ElfError::TableOutsideTail)?;
        let r = Fields { bytes: raw, endian: self.endian };
        let malformed = || ElfError::Malformed("short section header".into());
        Ok(match self.class {
            Class::Elf32 => SectionHeader {
                name: r.u32(0).ok_or_else(malformed)?,
                kind: r.u32(4).ok_or_else(malformed)?,
                offset: u64::from(r.u32(16).ok_or_else(malformed)?),
                size: u64::from(r.u32(20).ok_or_else(malformed)?),
                link: r.u32(24).ok_or_else(malformed)?,
            },
            Class::Elf64 => SectionHeader {
                name: r.u32(0).ok_or_else(malformed)?,
                kind: r.u32(4).ok_or_else(malformed)?,
                offset: r.u64(24).ok_or_else(malformed)?,
                size: r.u64(32).ok_or_else(malformed)?,
                link: r.u32(40).ok_or_else(malformed)?,
            },
        })
    }
}

/// One entry of the section header table (only the fields used here).
#[derive(Debug, Clone, Copy)]
struct SectionHeader {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

/// Fixed-width integer reads at byte offsets, in the file's byte order.
struct Fields<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.array::<2>(at)?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.array::<4>(at)?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64(&self, at: usize) -> Option<u64> {
        let b = self.array::<8>(at)?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }
}

/// Why a section could not be looked up or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// The file has no section header table.
    NoSectionTable,
    /// The section header table or the section-name table is not inside the
    /// retained tail (or points past the end of the file).
    TableOutsideTail,
    /// The section exists but its data starts before the retained tail.
    DataOutsideTail {
        /// File offset of the section data.
        offset: u64,
        /// Size of the section data.
        size: u64,
        /// How many bytes at the end of the file were retained.
        retained: u64,
    },
    /// The headers are inconsistent.
    Malformed(String),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NoSectionTable => write!(f, "no section header table"),
            ElfError::TableOutsideTail => write!(f, "section header table is not within the end of the file"),
            ElfError::DataOutsideTail { offset, size, retained } => write!(
                f,
                "section data ({size} bytes at offset {offset}) is not within the last {retained} bytes of the file, \
                 the part kept for reading sections"
            ),
            ElfError::Malformed(m) => write!(f, "malformed ELF: {m}"),
        }
    }
}

/// Finds the section called `name` and returns its data, or `Ok(None)` when
/// the file has no such section.
pub fn find_section<'t>(header: &ElfHeader, tail: &'t Tail, name: &[u8]) -> Result<Option<&'t [u8]>, ElfError> {
    if header.shoff == 0 {
        return Err(ElfError::NoSectionTable);
    }
    if u64::from(header.shentsize) < header.min_shentsize() {
        return Err(ElfError::Malformed(format!("section header size {} too small", header.shentsize)));
    }
    // Extended numbering: counts that do not fit the 16-bit header fields
    // live in the otherwise unused section 0.
    let (count, strndx) = if header.shnum == 0 || header.shstrndx == SHN_XINDEX {
        let zero = header.section_header(tail, 0)?;
        let count = if header.shnum == 0 { zero.size } else { u64::from(header.shnum) };
        let strndx = if header.shstrndx == SHN_XINDEX { u64::from(zero.link) } else { u64::from(header.shstrndx) };
        (count, strndx)
    } else {
        (u64::from(header.shnum), u64::from(header.shstrndx))
    };
    if count == 0 {
        return Err(ElfError::NoSectionTable);
    }
    // The whole table must be retained; this also bounds the loop below by
    // the tail size, whatever count the file claims.
    let table_len = count
        .checked_mul(u64::from(header.shentsize))
        .ok_or_else(|| ElfError::Malformed("section header table size overflows".into()))?;
    if tail.slice(header.shoff, table_len).is_none() {
        return Err(ElfError::TableOutsideTail);
    }
    if strndx >= count {
        return Err(ElfError::Malformed(format!("section name table index {strndx} out of {count} sections")));
    }
    let strtab_header = header.section_header(tail, strndx)?;
    let strtab = tail.slice(strtab_header.offset, strtab_header.size).ok_or(ElfError::TableOutsideTail)?;

    for index in 1..count {
        let section = header.section_header(tail, index)?;
        if section_name(strtab, section.name) != Some(name) {
            continue;
        }
        if section.kind == SHT_NOBITS {
            return Err(ElfError::Malformed("section has no data in the file".into()));
        }
        let end = section
            .offset
            .checked_add(section.size)
            .ok_or_else(|| ElfError::Malformed("section extends past the addressable range".into()))?;
        if end > tail.end() {
            return Err(ElfError::Malformed(format!("section ends at {end}, past the end of the file")));
        }
        return match tail.slice(section.offset, section.size) {
            Some(data) => Ok(Some(data)),
            None => Err(ElfError::DataOutsideTail {
                offset: section.offset,
                size: section.size,
                retained: tail.end() - tail.start(),
            }),
        };
    }
    Ok(None)
}

/// The NUL-terminated name at `offset` in a string table.
fn section_name(strtab: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = strtab.get(usize::try_from(offset).ok()?..)?;
    let len = memchr::memchr(0, rest)?;
    rest.get(..len)
}

/// The last bytes of a file, with their position in it.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    bytes: Vec<u8>,
    start: u64,
}

impl Tail {
    /// File offset of the first retained byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// File offset just past the last byte (the file size).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.bytes.len() as u64)
    }

    /// The file bytes `[offset, offset + len)`, if all of them were retained.
    pub fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(from..to)
    }
}

/// Retains the last `capacity` bytes of a stream in a ring buffer, never
/// allocating more than `capacity` bytes whatever the stream length.
#[derive(Debug)]
pub struct TailRing {
    buf: Vec<u8>,
    capacity: usize,
    /// Where the next byte goes once `buf` is full (it is then the oldest byte).
    next: usize,
    total: u64,
}

impl TailRing {
    /// A ring keeping `capacity` bytes; `size_hint` (the expected stream
    /// length) sizes the first allocation so small files stay small.
    pub fn new(capacity: usize, size_hint: u64) -> Self {
        let initial = usize::try_from(size_hint).unwrap_or(usize::MAX).min(capacity);
        TailRing { buf: Vec::with_capacity(initial), capacity, next: 0, total: 0 }
    }

    /// Appends bytes, dropping the oldest ones beyond the capacity.
    pub fn push(&mut self, mut data: &[u8]) {
        self.total = self.total.saturating_add(data.len() as u64);
        if self.capacity == 0 {
            return;
        }
        if data.len() >= self.capacity {
            // Only the newest `capacity` bytes survive anyway.
            let newest = data.get(data.len() - self.capacity..).unwrap_or_default();
            self.buf.clear();
            self.reserve_to(self.capacity);
            self.buf.extend_from_slice(newest);
            self.next = 0;
            return;
        }
        if self.buf.len() < self.capacity {
            let take = data.len().min(self.capacity - self.buf.len());
            let (now, rest) = data.split_at(take);
            self.reserve_to(self.buf.len() + take);
            self.buf.extend_from_slice(now);
            data = rest;
        }
        while !data.is_empty() {
            // Full: overwrite the oldest bytes, wrapping at the end.
            let room = self.capacity - self.next;
            let take = data.len().min(room);
            let (now, rest) = data.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.next..self.next + take) {
                dst.copy_from_slice(now);
            }
            self.next = (self.next + take) % self.capacity;
            data = rest;
        }
    }

    /// Grows the buffer to hold `needed` bytes, doubling but never past the capacity.
    fn reserve_to(&mut self, needed: usize) {
        if self.buf.capacity() < needed {
            let target = needed.max(self.buf.capacity().saturating_mul(2)).min(self.capacity);
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    /// Bytes currently allocated (for tests of the memory bound).
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The retained bytes in file order.
    pub fn into_tail(mut self) -> Tail {
        if self.buf.len() == self.capacity {
            self.buf.rotate_left(self.next);
        }
        let start = self.total - self.buf.len() as u64;
        Tail { bytes: self.buf, start }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::testutil::ElfBuilder;

    fn whole(bytes: &[u8]) -> Tail {
        let mut ring = TailRing::new(bytes.len().max(1), 0);
        ring.push(bytes);
        ring.into_tail()
    }

    #[test]
    fn ring_keeps_the_last_bytes_in_order() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for chunk in [1usize, 3, 7, 100, 999, 1000, 1001, 5000] {
            let mut ring = TailRing::new(1000, 0);
            for c in data.chunks(chunk) {
                ring.push(c);
                assert!(ring.allocated() <= 1000);
            }
            let tail = ring.into_tail();
            assert_eq!(tail.start(), 9000);
            assert_eq!(tail.end(), 10_000);
            assert_eq!(tail.slice(9000, 1000), Some(&data[9000..]), "chunk {chunk}");
            assert_eq!(tail.slice(8999, 2), None);
            assert_eq!(tail.slice(9999, 2), None);
            assert_eq!(tail.slice(u64::MAX, 1), None);
        }
    }

    #[test]
    fn ring_shorter_than_capacity_and_lying_size_hint() {
        let mut ring = TailRing::new(1 << 20, u64::MAX);
        assert!(ring.allocated() <= 1 << 20);
        ring.push(b"hello");
        let tail = ring.into_tail();
        assert_eq!((tail.start(), tail.end()), (0, 5));
        assert_eq!(tail.slice(1, 3), Some(&b"ell"[..]));
        let mut ring = TailRing::new(0, 10);
        ring.push(b"abc");
        assert_eq!(ring.into_tail().end(), 3);
    }

    #[test]
    fn finds_sections_in_every_class_and_byte_order() {
        for class64 in [false, true] {
            for big in [false, true] {
                let elf = ElfBuilder::new(class64, big)
                    .section(".text", 1, vec![0x90; 33])
                    .section(".dep-v0", 1, b"payload".to_vec())
                    .build();
                let header = ElfHeader::parse(&elf).expect("header");
                assert_eq!(header.class, if class64 { Class::Elf64 } else { Class::Elf32 });
                assert_eq!(header.endian, if big { Endian::Big } else { Endian::Little });
                let tail = whole(&elf);
                assert_eq!(find_section(&header, &tail, b".dep-v0"), Ok(Some(&b"payload"[..])));
                assert_eq!(find_section(&header, &tail, b".text").map(|s| s.map(<[u8]>::len)), Ok(Some(33)));
                assert_eq!(find_section(&header, &tail, b".nope"), Ok(None));
                assert_eq!(find_section(&header, &tail, b".dep"), Ok(None));
            }
        }
    }

    #[test]
    fn rejects_non_elf_and_unknown_classes() {
        assert_eq!(ElfHeader::parse(b"MZ\x90\x00"), None);
        assert_eq!(ElfHeader::parse(b"\x7fELF\x02\x01"), None, "truncated header");
        let mut elf = ElfBuilder::new(true, false).build();
        elf[4] = 3;
        assert_eq!(ElfHeader::parse(&elf), None);
        elf[4] = 2;
        elf[5] = 0;
        assert_eq!(ElfHeader::parse(&elf), None);
    }

    #[test]
    fn data_before_the_tail_is_reported() {
        let elf = ElfBuilder::new(true, false).section(".dep-v0", 1, vec![7; 100]).gap(5000).build();
        let header = ElfHeader::parse(&elf).unwrap();
        let mut ring = TailRing::new(4096, elf.len() as u64);
        ring.push(&elf);
        let tail = ring.into_tail();
        match find_section(&header, &tail, b".dep-v0") {
            Err(ElfError::DataOutsideTail { offset, size: 100, .. }) => assert_eq!(offset, HEADER_LEN as u64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extended_section_numbering() {
        let mut elf = ElfBuilder::new(true, false).section(".dep-v0", 1, b"x".to_vec()).build();
        let header = ElfHeader::parse(&elf).unwrap();
        let (shnum, strndx) = (u64::from(header.shnum), u32::from(header.shstrndx));
        // Move the counts into section 0 as linkers do past 0xff00 sections.
        let s0 = header.shoff as usize;
        elf[s0 + 32..s0 + 40].copy_from_slice(&shnum.to_le_bytes());
        elf[s0 + 40..s0 + 44].copy_from_slice(&strndx.to_le_bytes());
        elf[60..62].copy_from_slice(&0u16.to_le_bytes());
        elf[62..64].copy_from_slice(&SHN_XINDEX.to_le_bytes());
        let header = ElfHeader::parse(&elf).unwrap();
        assert_eq!(find_section(&header, &whole(&elf), b".dep-v0"), Ok(Some(&b"x"[..])));
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        let base = ElfBuilder::new(true, false).section(".dep-v0", 1, b"data".to_vec()).build();
        let header = ElfHeader::parse(&base).unwrap();
        let tail = whole(&base);
        let with = |f: &dyn Fn(&mut ElfHeader)| {
            let mut h = header;
            f(&mut h);
            find_section(&h, &tail, b".dep-v0")
        };
        assert_eq!(with(&|h| h.shoff = 0), Err(ElfError::NoSectionTable));
        assert_eq!(with(&|h| h.shoff = u64::MAX - 3), Err(ElfError::TableOutsideTail));
        assert_eq!(with(&|h| h.shnum = u16::MAX), Err(ElfError::TableOutsideTail));
        assert!(matches!(with(&|h| h.shentsize = 12), Err(ElfError::Malformed(_))));
        assert!(matches!(with(&|h| h.shstrndx = 200), Err(ElfError::Malformed(_)) | Err(ElfError::TableOutsideTail)));

        // Section fields pointing anywhere.
        let s = header.shoff as usize + 64; // section 1 is .dep-v0
        for (field, value) in [(24usize, u64::MAX), (32, u64::MAX), (24, 1 << 40), (32, 1 << 40)] {
            let mut elf = base.clone();
            elf[s + field..s + field + 8].copy_from_slice(&value.to_le_bytes());
            let tail = whole(&elf);
            let r = find_section(&header, &tail, b".dep-v0");
            assert!(matches!(r, Err(ElfError::Malformed(_))), "{field} {value}: {r:?}");
        }
        // A name offset past the string table just does not match.
        let mut elf = base.clone();
        elf[s..s + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_section(&header, &whole(&elf), b".dep-v0"), Ok(None));
        // NOBITS.
        let mut elf = base.clone();
        elf[s + 4..s + 8].copy_from_slice(&SHT_NOBITS.to_le_bytes());
        assert!(matches!(find_section(&header, &whole(&elf), b".dep-v0"), Err(ElfError::Malformed(_))));
    }
}
