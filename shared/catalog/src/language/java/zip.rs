//! A small zip reader for untrusted, non-seekable input.
//!
//! Layer files reach catalogers as a tar entry being streamed, so an archive
//! is read front to back through its *local* file headers, the way
//! `java.util.zip.ZipInputStream` reads it, and nested archives are read the
//! same way straight out of their parent's entry stream. Memory is a fixed
//! buffer plus one inflater per nesting level, whatever the archive's size.
//!
//! A local header does not always say where its data ends: with the
//! "data descriptor" flag the sizes come *after* the data. A deflate stream
//! marks its own end, so those entries are inflated to find it; a STORED or
//! otherwise-compressed entry gives no such clue. Those — and archives that do
//! not start with a local header (a launch script prepended to a Spring Boot
//! jar) — are copied to a scratch file with [`CatalogContext::spill`] and the
//! rest is read through the central directory instead.
//!
//! Every decompressed byte is charged to a [`Budget`] shared by the whole walk
//! (the outer file and everything nested in it), which also counts entries and
//! nested archives and judges the compression ratio of each entry, so a zip
//! bomb costs a bounded amount of work before it is refused.

use super::JavaLimits;
use crate::cataloger::{CatalogContext, CatalogError};
use flate2::bufread::DeflateDecoder;
use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Take};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;

const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
const ZIP64_EXTRA_ID: u16 = 0x0001;

const LOCAL_HEADER_LEN: usize = 30;
const CENTRAL_HEADER_LEN: usize = 46;
const EOCD_LEN: usize = 22;
const ZIP64_EOCD_LEN: usize = 56;
const ZIP64_LOCATOR_LEN: usize = 20;
/// The end record plus the longest comment it may carry.
const MAX_EOCD_SEARCH: u64 = EOCD_LEN as u64 + u16::MAX as u64;

/// Read buffer of one [`Stream`]; local headers and data descriptors are
/// parsed from it, so it must hold the largest of those we peek at (28 bytes).
const STREAM_BUF: usize = 64 << 10;

/// Why an archive could not be read (completely).
#[derive(Debug, thiserror::Error)]
pub(super) enum ZipError {
    /// The archive is corrupt or truncated; what was read before still counts.
    #[error("{0}")]
    Malformed(String),
    /// A [`Budget`] limit was hit; the whole walk stops.
    #[error("{0}")]
    Limit(String),
    /// Reading the underlying content failed.
    #[error("read failed: {0}")]
    Io(io::Error),
    /// The archive could not be copied to scratch space.
    #[error("{0}")]
    Spill(CatalogError),
}

impl From<io::Error> for ZipError {
    fn from(e: io::Error) -> Self {
        // Limit hits travel up through readers (inflaters, `Take`, nested
        // streams) as io errors; recognise them again here.
        if let Some(hit) = e.get_ref().and_then(|inner| inner.downcast_ref::<LimitHit>()) {
            return ZipError::Limit(hit.0.clone());
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof => ZipError::Malformed("truncated archive".into()),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => ZipError::Malformed(e.to_string()),
            _ => ZipError::Io(e),
        }
    }
}

impl From<CatalogError> for ZipError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Io(io) => ZipError::from(io),
            CatalogError::Malformed(m) => ZipError::Malformed(m),
            other => ZipError::Spill(other),
        }
    }
}

fn malformed(msg: impl Into<String>) -> ZipError {
    ZipError::Malformed(msg.into())
}

/// Payload of the io error that carries a limit hit through reader layers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LimitHit(String);

/// Work done so far for one cataloged file, against its [`JavaLimits`].
#[derive(Debug)]
pub(super) struct Budget {
    limits: JavaLimits,
    entries: Cell<u64>,
    nested: Cell<u64>,
    inflated: Cell<u64>,
}

impl Budget {
    /// A fresh budget.
    pub(super) fn new(limits: JavaLimits) -> Self {
        Budget { limits, entries: Cell::new(0), nested: Cell::new(0), inflated: Cell::new(0) }
    }

    /// The limits this budget enforces.
    pub(super) fn limits(&self) -> &JavaLimits {
        &self.limits
    }

    fn count_entry(&self) -> Result<(), ZipError> {
        let n = self.entries.get() + 1;
        self.entries.set(n);
        if n > self.limits.max_entries {
            return Err(ZipError::Limit(format!("more than {} zip entries", self.limits.max_entries)));
        }
        Ok(())
    }

    /// Counts one nested archive about to be opened.
    pub(super) fn count_nested(&self) -> Result<(), ZipError> {
        let n = self.nested.get() + 1;
        self.nested.set(n);
        if n > self.limits.max_nested {
            return Err(ZipError::Limit(format!("more than {} nested archives", self.limits.max_nested)));
        }
        Ok(())
    }

    /// Charges `n` freshly inflated bytes of an entry that has produced
    /// `entry_out` bytes from `entry_in` compressed ones so far.
    fn charge_inflated(&self, n: u64, entry_out: u64, entry_in: u64) -> io::Result<()> {
        let total = self.inflated.get().saturating_add(n);
        self.inflated.set(total);
        if total > self.limits.max_inflated {
            return Err(limit_hit(format!("more than {} bytes decompressed", self.limits.max_inflated)));
        }
        if entry_out > self.limits.ratio_floor && entry_out / entry_in.max(1) > self.limits.max_ratio {
            return Err(limit_hit(format!("entry decompresses more than {}:1 (zip bomb?)", self.limits.max_ratio)));
        }
        Ok(())
    }
}

fn limit_hit(msg: String) -> io::Error {
    io::Error::other(LimitHit(msg))
}

/// What the zip walk reports to: decides which entries to read and reads them.
pub(super) trait Visitor {
    /// Cheap test on an entry name: is its content needed? Called once per
    /// entry (again for entries seen first while streaming and then in the
    /// central directory after a fallback).
    fn wants(&mut self, name: &str) -> bool;

    /// Reads one wanted entry. Problems with the entry itself belong in
    /// [`Visitor::warn`]; an error returned here ends the walk.
    fn visit(&mut self, name: &str, data: &mut dyn Read) -> Result<(), ZipError>;

    /// Records a non-fatal problem.
    fn warn(&mut self, msg: String);
}

/// A forward-only reader with a small look-ahead buffer, counting the bytes
/// consumed so that entry offsets are known.
pub(super) struct Stream<'a> {
    inner: &'a mut dyn Read,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    offset: u64,
    eof: bool,
}

impl<'a> Stream<'a> {
    /// Wraps a reader positioned at the start of an archive.
    pub(super) fn new(inner: &'a mut dyn Read) -> Self {
        Stream { inner, buf: vec![0; STREAM_BUF].into_boxed_slice(), pos: 0, end: 0, offset: 0, eof: false }
    }

    /// Returns at least `n` buffered bytes without consuming them, or fewer at
    /// the end of input.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(self.buf.len());
        if self.end - self.pos < n {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            while self.end < n && !self.eof {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl BufRead for Stream<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end && !self.eof {
            self.pos = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(0) => self.eof = true,
                    Ok(k) => self.end = k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                break;
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.pos);
        self.pos += amt;
        self.offset += amt as u64;
    }
}

impl Read for Stream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(s) => u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
        None => 0,
    }
}

fn is_record_sig(sig: u32) -> bool {
    matches!(sig, LOCAL_SIG | CENTRAL_SIG | EOCD_SIG | ZIP64_EOCD_SIG)
}

/// Entry names are UTF-8 in every archive a JVM tool writes; anything else is
/// only ever compared against ASCII names, so lossy decoding is enough.
fn decode_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// The data of extra field `id`, if present.
fn find_extra(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let field = le16(extra, 0);
        let len = usize::from(le16(extra, 2));
        let data = extra.get(4..4 + len)?;
        if field == id {
            return Some(data);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// Replaces saturated 32-bit fields by their zip64 values, which the zip64
/// extra field lists in a fixed order, each only when saturated.
fn apply_zip64(extra: &[u8], fields: &mut [&mut u64]) {
    let Some(mut data) = find_extra(extra, ZIP64_EXTRA_ID) else { return };
    for field in fields.iter_mut() {
        if **field == u64::from(u32::MAX) {
            if data.len() < 8 {
                return;
            }
            **field = le64(data, 0);
            data = &data[8..];
        }
    }
}

/// The fields of a local file header that matter here.
struct LocalHeader {
    flags: u16,
    method: u16,
    csize: u64,
    name: String,
    /// The entry carries a zip64 extra field, so its data descriptor (if any)
    /// has 8-byte sizes.
    zip64: bool,
    /// The header as read, for replay into a scratch copy.
    raw: Vec<u8>,
}

fn read_local_header(src: &mut dyn Read) -> Result<LocalHeader, ZipError> {
    let mut raw = vec![0u8; LOCAL_HEADER_LEN];
    src.read_exact(&mut raw)?;
    if le32(&raw, 0) != LOCAL_SIG {
        return Err(malformed("bad local file header"));
    }
    let name_len = usize::from(le16(&raw, 26));
    let extra_len = usize::from(le16(&raw, 28));
    raw.resize(LOCAL_HEADER_LEN + name_len + extra_len, 0);
    src.read_exact(&mut raw[LOCAL_HEADER_LEN..])?;
    let name = decode_name(&raw[LOCAL_HEADER_LEN..LOCAL_HEADER_LEN + name_len]);
    let extra = &raw[LOCAL_HEADER_LEN + name_len..];
    let mut csize = u64::from(le32(&raw, 18));
    let zip64 = find_extra(extra, ZIP64_EXTRA_ID);
    if let Some(data) = zip64 {
        if csize == u64::from(u32::MAX) {
            // In a local header the zip64 field must hold both sizes,
            // original size first (APPNOTE 4.5.3); some writers include only
            // the saturated ones.
            let usize_saturated = le32(&raw, 22) == u32::MAX;
            let at = if data.len() >= 16 || usize_saturated { 8 } else { 0 };
            if data.len() >= at + 8 {
                csize = le64(data, at);
            }
        }
    }
    Ok(LocalHeader { flags: le16(&raw, 6), method: le16(&raw, 8), csize, name, zip64: zip64.is_some(), raw })
}

/// How an entry's data is read.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Stored, of this size.
    Stored(u64),
    /// Deflated, this many compressed bytes.
    Deflated(u64),
    /// Deflated, size unknown until the deflate stream ends.
    DeflatedToEnd,
    /// Not decodable here (encrypted or an unsupported method): skip this many bytes.
    Skip(u64, &'static str),
}

/// Decides how to read an entry from a stream, or `None` when its end cannot
/// be found without the central directory.
fn stream_plan(hdr: &LocalHeader, src: &mut Stream<'_>) -> io::Result<Option<Plan>> {
    let descriptor = hdr.flags & FLAG_DESCRIPTOR != 0;
    if hdr.flags & FLAG_ENCRYPTED != 0 {
        return Ok((!descriptor).then_some(Plan::Skip(hdr.csize, "encrypted")));
    }
    match hdr.method {
        METHOD_DEFLATED if descriptor => Ok(Some(Plan::DeflatedToEnd)),
        METHOD_DEFLATED => Ok(Some(Plan::Deflated(hdr.csize))),
        METHOD_STORED if !descriptor => Ok(Some(Plan::Stored(hdr.csize))),
        // A stored entry with a descriptor is only streamable when it is
        // empty, which shows as a descriptor of zeros right after the header
        // (directories written by streaming zip writers look like this).
        METHOD_STORED => {
            let b = src.peek(16)?;
            let zeros = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(|&x| x == 0));
            let empty = (le32(b, 0) == DESCRIPTOR_SIG && zeros(4..16))
                || (zeros(0..12) && b.len() >= 16 && is_record_sig(le32(b, 12)));
            Ok(empty.then_some(Plan::Stored(0)))
        }
        _ if descriptor => Ok(None),
        _ => Ok(Some(Plan::Skip(hdr.csize, "unsupported compression method"))),
    }
}

enum Data<R: BufRead> {
    Stored { take: Take<R>, size: u64 },
    Deflated { decoder: DeflateDecoder<Take<R>>, csize: u64 },
    DeflatedToEnd(DeflateDecoder<R>),
}

/// The decompressed data of one entry, metered against the [`Budget`].
struct EntryReader<'b, R: BufRead> {
    data: Data<R>,
    out: u64,
    budget: &'b Budget,
}

impl<'b, R: BufRead> EntryReader<'b, R> {
    /// `plan` must not be [`Plan::Skip`].
    fn new(src: R, plan: Plan, budget: &'b Budget) -> Self {
        let data = match plan {
            Plan::Stored(size) | Plan::Skip(size, _) => Data::Stored { take: src.take(size), size },
            Plan::Deflated(csize) => Data::Deflated { decoder: DeflateDecoder::new(src.take(csize)), csize },
            Plan::DeflatedToEnd => Data::DeflatedToEnd(DeflateDecoder::new(src)),
        };
        EntryReader { data, out: 0, budget }
    }

    /// Moves the source past the entry's data and returns its compressed and
    /// uncompressed sizes (the latter only exact for stored and
    /// read-to-the-end entries, the ones whose data descriptor is checked).
    fn finish(mut self) -> io::Result<(u64, u64)> {
        if let Data::DeflatedToEnd(_) = self.data {
            // The only way to find the end is to inflate the rest.
            let mut sink = [0u8; 8 << 10];
            while self.read(&mut sink)? != 0 {}
        }
        match self.data {
            Data::Stored { mut take, size } => {
                skip_all(&mut take)?;
                Ok((size, size))
            }
            Data::Deflated { decoder, csize } => {
                // Whatever was not read need not be inflated: skip the raw bytes.
                skip_all(&mut decoder.into_inner())?;
                Ok((csize, self.out))
            }
            Data::DeflatedToEnd(decoder) => Ok((decoder.total_in(), self.out)),
        }
    }
}

impl<R: BufRead> Read for EntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, total_in) = match &mut self.data {
            Data::Stored { take, .. } => {
                let expecting = !buf.is_empty() && take.limit() > 0;
                let n = take.read(buf)?;
                if n == 0 && expecting {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "entry data cut short"));
                }
                self.out += n as u64;
                return Ok(n);
            }
            Data::Deflated { decoder, .. } => (decoder.read(buf)?, decoder.total_in()),
            Data::DeflatedToEnd(decoder) => (decoder.read(buf)?, decoder.total_in()),
        };
        self.out += n as u64;
        self.budget.charge_inflated(n as u64, self.out, total_in)?;
        Ok(n)
    }
}

/// Consumes a `Take` to its limit, failing if the source ends first.
fn skip_all<R: BufRead>(take: &mut Take<R>) -> io::Result<()> {
    loop {
        let n = take.fill_buf()?.len();
        if n == 0 {
            break;
        }
        take.consume(n);
    }
    if take.limit() > 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "entry data cut short"));
    }
    Ok(())
}

/// Consumes the data descriptor that follows an entry whose sizes were not in
/// its local header. Its signature is optional and its sizes are 4 or 8
/// bytes wide; the layout that matches the sizes actually read (and is
/// followed by another record) wins.
fn read_descriptor(src: &mut Stream<'_>, csize: u64, usize: u64, zip64: bool) -> Result<(), ZipError> {
    let b = src.peek(28)?;
    let off = if le32(b, 0) == DESCRIPTOR_SIG { 4 } else { 0 };
    let fits = |wide: bool| {
        if wide {
            b.len() >= off + 20 && le64(b, off + 4) == csize && le64(b, off + 12) == usize
        } else {
            b.len() >= off + 12
                && u64::from(le32(b, off + 4)) == csize & 0xffff_ffff
                && u64::from(le32(b, off + 8)) == usize & 0xffff_ffff
        }
    };
    let len = |wide: bool| off + if wide { 20 } else { 12 };
    let followed = |wide: bool| b.len() < len(wide) + 4 || is_record_sig(le32(b, len(wide)));
    let order = if zip64 { [true, false] } else { [false, true] };
    let Some(wide) =
        order.iter().copied().find(|&w| fits(w) && followed(w)).or_else(|| order.iter().copied().find(|&w| fits(w)))
    else {
        return Err(malformed(format!("data descriptor at offset {} does not match its entry", src.offset)));
    };
    src.consume(len(wide));
    Ok(())
}

/// Walks an archive from a stream, local header by local header.
pub(super) fn walk_stream(
    src: &mut Stream<'_>,
    ctx: &CatalogContext,
    budget: &Budget,
    v: &mut dyn Visitor,
) -> Result<(), ZipError> {
    let mut entries = 0u64;
    loop {
        let head = src.peek(4)?;
        if head.len() < 4 {
            return Err(malformed(if entries == 0 && head.is_empty() {
                "empty file"
            } else {
                "truncated archive: no central directory"
            }));
        }
        match le32(head, 0) {
            LOCAL_SIG => {}
            // The local entries are over; the central directory repeats them.
            CENTRAL_SIG | EOCD_SIG | ZIP64_EOCD_SIG => return Ok(()),
            // Something precedes the archive (a launch script, a self-extractor
            // stub): the central directory knows where the entries are.
            _ if entries == 0 => return walk_spilled(src, Vec::new(), 0, ctx, budget, v),
            sig => return Err(malformed(format!("unexpected signature {sig:#010x} at offset {}", src.offset))),
        }
        let header_offset = src.offset;
        let hdr = read_local_header(src)?;
        budget.count_entry()?;
        entries += 1;
        let Some(plan) = stream_plan(&hdr, src)? else {
            tracing::debug!(entry = %hdr.name, "zip entry end unknown; falling back to the central directory");
            return walk_spilled(src, hdr.raw, header_offset, ctx, budget, v);
        };
        let wanted = v.wants(&hdr.name);
        if let Plan::Skip(_, why) = plan {
            if wanted {
                v.warn(format!("{}: {why}; not read", hdr.name));
            }
        }
        let mut reader = EntryReader::new(&mut *src, plan, budget);
        if wanted && !matches!(plan, Plan::Skip(..)) {
            v.visit(&hdr.name, &mut reader)?;
        }
        let (csize, usize) = reader.finish()?;
        if hdr.flags & FLAG_DESCRIPTOR != 0 {
            read_descriptor(src, csize, usize, hdr.zip64)?;
        }
    }
}

/// Copies the rest of the archive to scratch space — `head` (bytes already
/// consumed, starting at archive offset `base`) then whatever `src` still
/// holds — and finishes the walk through the central directory.
fn walk_spilled(
    src: &mut Stream<'_>,
    head: Vec<u8>,
    base: u64,
    ctx: &CatalogContext,
    budget: &Budget,
    v: &mut dyn Visitor,
) -> Result<(), ZipError> {
    let mut rest = io::Cursor::new(head).chain(src);
    let scratch = ctx.spill(&mut rest)?;
    walk_file(scratch.as_file(), base, budget, v)
}

/// A reader at its own position in a shared file, so that the central
/// directory and the entries it points to can be read alternately.
struct At<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut file = self.file;
        file.seek(SeekFrom::Start(self.pos))?;
        let n = file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_at(file: &File, pos: u64, buf: &mut [u8]) -> io::Result<()> {
    At { file, pos }.read_exact(buf)
}

/// Where the central directory is, in file coordinates, and how far the
/// offsets it records are off (bytes prepended to the archive).
struct CentralDirectory {
    start: u64,
    size: u64,
    /// Add to a recorded archive offset to get the real archive offset.
    shift: i128,
}

fn locate_central_directory(file: &File, len: u64, base: u64) -> Result<CentralDirectory, ZipError> {
    let tail_len = len.min(MAX_EOCD_SEARCH);
    let tail_start = len - tail_len;
    let mut tail = vec![0u8; tail_len as usize];
    read_at(file, tail_start, &mut tail)?;
    // The last end record whose comment fits in the file.
    let eocd = (0..=tail.len().saturating_sub(EOCD_LEN))
        .rev()
        .find(|&i| le32(&tail, i) == EOCD_SIG && i + EOCD_LEN + usize::from(le16(&tail, i + 20)) <= tail.len())
        .filter(|_| tail.len() >= EOCD_LEN)
        .ok_or_else(|| malformed("not a zip archive (no end of central directory)"))?;
    let mut size = u64::from(le32(&tail, eocd + 12));
    let mut recorded = u64::from(le32(&tail, eocd + 16));
    // The central directory ends where the end record (or the zip64 one) starts.
    let mut end = tail_start + eocd as u64;
    let saturated =
        le16(&tail, eocd + 10) == u16::MAX || size == u64::from(u32::MAX) || recorded == u64::from(u32::MAX);
    if saturated && eocd >= ZIP64_LOCATOR_LEN && le32(&tail, eocd - ZIP64_LOCATOR_LEN) == ZIP64_LOCATOR_SIG {
        let recorded_z64 = le64(&tail, eocd - ZIP64_LOCATOR_LEN + 8);
        // Normally right before the locator; else where the locator says.
        let candidates = [end.checked_sub((ZIP64_LOCATOR_LEN + ZIP64_EOCD_LEN) as u64), recorded_z64.checked_sub(base)];
        let mut found = false;
        for pos in candidates.into_iter().flatten() {
            let mut rec = [0u8; ZIP64_EOCD_LEN];
            if pos.saturating_add(ZIP64_EOCD_LEN as u64) > len || read_at(file, pos, &mut rec).is_err() {
                continue;
            }
            if le32(&rec, 0) == ZIP64_EOCD_SIG {
                size = le64(&rec, 40);
                recorded = le64(&rec, 48);
                end = pos;
                found = true;
                break;
            }
        }
        if !found {
            return Err(malformed("zip64 end of central directory record missing"));
        }
    }
    let start = end.checked_sub(size).ok_or_else(|| malformed("central directory larger than the archive"))?;
    let shift = i128::from(start) + i128::from(base) - i128::from(recorded);
    Ok(CentralDirectory { start, size, shift })
}

/// Walks the entries of a seekable archive copy through its central
/// directory. The file holds the archive from offset `base` on; entries
/// before that were already streamed and are skipped.
pub(super) fn walk_file(file: &File, base: u64, budget: &Budget, v: &mut dyn Visitor) -> Result<(), ZipError> {
    let len = file.metadata()?.len();
    let cd = locate_central_directory(file, len, base)?;
    let mut dir = BufReader::new(At { file, pos: cd.start });
    let mut consumed = 0u64;
    // Overlapping entries (several names for the same bytes) are a known
    // zip-bomb construction; each local header is read at most once.
    let mut seen: HashSet<u64> = HashSet::new();
    while consumed + CENTRAL_HEADER_LEN as u64 <= cd.size {
        let mut fixed = [0u8; CENTRAL_HEADER_LEN];
        dir.read_exact(&mut fixed)?;
        if le32(&fixed, 0) != CENTRAL_SIG {
            return Err(malformed("bad central directory entry"));
        }
        budget.count_entry()?;
        let flags = le16(&fixed, 8);
        let method = le16(&fixed, 10);
        let mut csize = u64::from(le32(&fixed, 20));
        let mut usize = u64::from(le32(&fixed, 24));
        let name_len = usize::from(le16(&fixed, 28));
        let extra_len = usize::from(le16(&fixed, 30));
        let comment_len = u64::from(le16(&fixed, 32));
        let mut offset = u64::from(le32(&fixed, 42));
        let mut var = vec![0u8; name_len + extra_len];
        dir.read_exact(&mut var)?;
        io::copy(&mut (&mut dir).take(comment_len), &mut io::sink())?;
        consumed += (CENTRAL_HEADER_LEN + name_len + extra_len) as u64 + comment_len;
        let name = decode_name(&var[..name_len]);
        apply_zip64(&var[name_len..], &mut [&mut usize, &mut csize, &mut offset]);
        if !v.wants(&name) {
            continue;
        }
        let pos = i128::from(offset) + cd.shift - i128::from(base);
        if pos < 0 {
            // Streamed before the fallback (or pointing before the archive).
            continue;
        }
        let Ok(pos) = u64::try_from(pos) else { continue };
        if !seen.insert(pos) {
            v.warn(format!("{name}: shares its data with another entry; read once"));
            continue;
        }
        let mut local = [0u8; LOCAL_HEADER_LEN];
        if pos.saturating_add(LOCAL_HEADER_LEN as u64) > len
            || read_at(file, pos, &mut local).is_err()
            || le32(&local, 0) != LOCAL_SIG
        {
            v.warn(format!("{name}: local header missing; not read"));
            continue;
        }
        let data_pos = pos + (LOCAL_HEADER_LEN + usize::from(le16(&local, 26)) + usize::from(le16(&local, 28))) as u64;
        if data_pos.saturating_add(csize) > len {
            v.warn(format!("{name}: data runs past the end of the archive; not read"));
            continue;
        }
        let plan = match method {
            _ if flags & FLAG_ENCRYPTED != 0 => Plan::Skip(csize, "encrypted"),
            METHOD_STORED => Plan::Stored(csize),
            METHOD_DEFLATED => Plan::Deflated(csize),
            _ => Plan::Skip(csize, "unsupported compression method"),
        };
        if let Plan::Skip(_, why) = plan {
            v.warn(format!("{name}: {why}; not read"));
            continue;
        }
        let mut reader = EntryReader::new(BufReader::new(At { file, pos: data_pos }), plan, budget);
        v.visit(&name, &mut reader)?;
    }
    Ok(())
}
