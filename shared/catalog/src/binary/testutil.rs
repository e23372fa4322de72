//! Test fixtures generated in code: Go build-info blobs, hand-assembled ELF
//! files, and readers that hand out content a few bytes at a time.

use std::io::{self, Read};

/// A small deterministic pseudo-random generator (no dependency, stable across runs).
pub struct Lcg(u64);

impl Lcg {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
    }

    /// The next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 17
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() as usize) % (hi - lo + 1)
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A reader over `data` that returns between `min` and `max` bytes per call.
pub struct Trickle<'a> {
    data: &'a [u8],
    rng: Lcg,
    min: usize,
    max: usize,
}

impl<'a> Trickle<'a> {
    /// Hands out 1–7 bytes per read.
    pub fn new(data: &'a [u8], seed: u64) -> Self {
        Trickle::sized(data, seed, 1, 7)
    }

    /// Hands out `min..=max` bytes per read.
    pub fn sized(data: &'a [u8], seed: u64, min: usize, max: usize) -> Self {
        Trickle { data, rng: Lcg::new(seed), min, max }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.rng.range(self.min, self.max).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Counts the bytes read through it.
pub struct Counting<R> {
    /// The wrapped reader.
    pub inner: R,
    /// Bytes read so far.
    pub read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Go's unsigned varint encoding.
pub fn uvarint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// The 16 bytes the Go linker writes before the module info text.
pub const MODINFO_START: [u8; 16] = *b"\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6";
/// The 16 bytes the Go linker writes after the module info text.
pub const MODINFO_END: [u8; 16] = *b"\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2";

/// A Go ≥ 1.18 build-info blob (header + inline strings) as the linker writes it.
pub fn go_blob(version: &str, modinfo: &str, ptr_size: u8) -> Vec<u8> {
    let mut wrapped = Vec::new();
    if !modinfo.is_empty() {
        wrapped.extend_from_slice(&MODINFO_START);
        wrapped.extend_from_slice(modinfo.as_bytes());
        wrapped.extend_from_slice(&MODINFO_END);
    }
    let mut blob = b"\xff Go buildinf:".to_vec();
    blob.push(ptr_size);
    blob.push(0x2);
    blob.resize(32, 0);
    blob.extend(uvarint(version.len() as u64));
    blob.extend_from_slice(version.as_bytes());
    blob.extend(uvarint(wrapped.len() as u64));
    blob.extend(wrapped);
    blob
}

/// A Go < 1.18 build-info header: two pointers instead of inline strings.
pub fn go_old_blob() -> Vec<u8> {
    let mut blob = b"\xff Go buildinf:".to_vec();
    blob.push(8);
    blob.push(0);
    blob.extend_from_slice(&0x0040_1000u64.to_le_bytes());
    blob.extend_from_slice(&0x0040_2000u64.to_le_bytes());
    blob
}

/// A minimal ELF64 little-endian header (no sections), as the start of a file.
pub fn elf_prefix() -> Vec<u8> {
    ElfBuilder::new(true, false).header_only()
}

/// `prefix`, then pseudo-random filler, with `blob` placed at `offset`, `len` bytes in all.
pub fn embed(prefix: &[u8], blob: &[u8], offset: usize, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Lcg::new(seed);
    let mut out = prefix.to_vec();
    out.extend(rng.bytes(len.saturating_sub(prefix.len())));
    out.resize(len.max(offset + blob.len()), 0);
    out[offset..offset + blob.len()].copy_from_slice(blob);
    out
}

/// A typical modinfo text, as `go version -m` prints it.
pub const MODINFO: &str = "path\texample.com/app/cmd/app\n\
mod\texample.com/app\tv1.4.0\th1:abc=\n\
dep\tgithub.com/pkg/errors\tv0.9.1\th1:def=\n\
dep\tgolang.org/x/net\tv0.17.0\n\
=>\tgolang.org/x/net\tv0.23.0\th1:xyz=\n\
dep\texample.com/local\tv0.0.0-00010101000000-000000000000\n\
=>\t../local\t\n\
build\t-buildmode=exe\n\
build\t-ldflags=\"-s -w -X main.version=1.4.0\"\n\
build\tCGO_ENABLED=0\n\
build\tGOARCH=amd64\n";

/// Builds an ELF file: header, optional filler, section data, a gap, the
/// section-name table, then the section header table at the very end.
pub struct ElfBuilder {
    class64: bool,
    big: bool,
    sections: Vec<(String, u32, Vec<u8>)>,
    gap: usize,
}

impl ElfBuilder {
    /// An empty ELF32/ELF64 file in the given byte order.
    pub fn new(class64: bool, big: bool) -> Self {
        ElfBuilder { class64, big, sections: Vec::new(), gap: 0 }
    }

    /// Adds a section of type `kind` holding `data`.
    pub fn section(mut self, name: &str, kind: u32, data: Vec<u8>) -> Self {
        self.sections.push((name.to_string(), kind, data));
        self
    }

    /// Adds `n` filler bytes between the section data and the tables.
    pub fn gap(mut self, n: usize) -> Self {
        self.gap = n;
        self
    }

    fn put(&self, out: &mut [u8], at: usize, value: u64, width: usize) {
        let bytes = if self.big { value.to_be_bytes() } else { value.to_le_bytes() };
        let src = if self.big { &bytes[8 - width..] } else { &bytes[..width] };
        out[at..at + width].copy_from_slice(src);
    }

    fn header_only(&self) -> Vec<u8> {
        let mut out = vec![0u8; if self.class64 { 64 } else { 52 }];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = if self.class64 { 2 } else { 1 };
        out[5] = if self.big { 2 } else { 1 };
        out[6] = 1;
        self.put(&mut out, 16, 2, 2); // ET_EXEC
        self.put(&mut out, 18, 62, 2); // EM_X86_64
        self.put(&mut out, 20, 1, 4);
        out
    }

    /// The file bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = self.header_only();
        let mut strtab = vec![0u8];
        let mut entries = Vec::new(); // (name offset, type, file offset, size)
        for (name, kind, data) in &self.sections {
            entries.push((strtab.len(), *kind, out.len(), data.len()));
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            out.extend_from_slice(data);
        }
        out.resize(out.len() + self.gap, 0xa5);
        let shstrtab_name = strtab.len();
        strtab.extend_from_slice(b".shstrtab\0");
        entries.push((shstrtab_name, 3, out.len(), strtab.len()));
        out.extend_from_slice(&strtab);
        out.resize(out.len().next_multiple_of(8), 0);

        let shoff = out.len();
        let entsize = if self.class64 { 64 } else { 40 };
        out.resize(shoff + entsize * (entries.len() + 1), 0);
        for (i, (name, kind, offset, size)) in entries.iter().enumerate() {
            let at = shoff + entsize * (i + 1);
            self.put(&mut out, at, *name as u64, 4);
            self.put(&mut out, at + 4, u64::from(*kind), 4);
            if self.class64 {
                self.put(&mut out, at + 24, *offset as u64, 8);
                self.put(&mut out, at + 32, *size as u64, 8);
            } else {
                self.put(&mut out, at + 16, *offset as u64, 4);
                self.put(&mut out, at + 20, *size as u64, 4);
            }
        }
        let shnum = (entries.len() + 1) as u64;
        if self.class64 {
            self.put(&mut out, 40, shoff as u64, 8);
            self.put(&mut out, 52, 64, 2);
            self.put(&mut out, 58, 64, 2);
            self.put(&mut out, 60, shnum, 2);
            self.put(&mut out, 62, shnum - 1, 2);
        } else {
            self.put(&mut out, 32, shoff as u64, 4);
            self.put(&mut out, 40, 52, 2);
            self.put(&mut out, 46, 40, 2);
            self.put(&mut out, 48, shnum, 2);
            self.put(&mut out, 50, shnum - 1, 2);
        }
        out
    }
}

/// zlib-compresses `data`.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}
