//! RPM header blobs: the tag/value records every rpm database backend stores,
//! one per installed package.
//!
//! A blob is two big-endian `u32` counts, `il` and `dl`, then `il` 16-byte
//! index entries (tag, type, offset, count — all big-endian) and a `dl`-byte
//! data store the offsets point into. When rpm installs a package it appends
//! "dribble" entries after the package's signed (immutable) region; they
//! replace region entries with the same tag, so the last entry for a tag wins.
//!
//! Blobs come from untrusted images, so nothing here trusts a count or an
//! offset: the index must fit in the blob before it is looked at, every value
//! is read through bounds-checked slices, and only the first element of an
//! array is ever read, so a huge `count` costs nothing.

use memchr::memchr;

/// `RPMTAG_NAME`.
pub const TAG_NAME: u32 = 1000;
/// `RPMTAG_VERSION`.
pub const TAG_VERSION: u32 = 1001;
/// `RPMTAG_RELEASE`.
pub const TAG_RELEASE: u32 = 1002;
/// `RPMTAG_EPOCH`.
pub const TAG_EPOCH: u32 = 1003;
/// `RPMTAG_LICENSE`.
pub const TAG_LICENSE: u32 = 1014;
/// `RPMTAG_ARCH`.
pub const TAG_ARCH: u32 = 1022;
/// `RPMTAG_SOURCERPM`.
pub const TAG_SOURCERPM: u32 = 1044;

const TYPE_CHAR: u32 = 1;
const TYPE_INT8: u32 = 2;
const TYPE_INT16: u32 = 3;
const TYPE_INT32: u32 = 4;
const TYPE_INT64: u32 = 5;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// Most index entries rpm itself accepts in one header (`HEADER_TAGS_MAX`).
pub const MAX_ENTRIES: u32 = 0xffff;
/// Largest data store rpm itself accepts in one header (`HEADER_DATA_MAX`).
pub const MAX_DATA: u32 = 0x0fff_ffff;

const PREAMBLE: usize = 8;
const ENTRY_SIZE: usize = 16;

/// Why a header blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not even the two counts fit.
    #[error("header blob is {0} bytes, shorter than its 8-byte preamble")]
    TooShort(usize),
    /// More index entries than rpm allows.
    #[error("header claims {0} index entries (rpm allows at most {MAX_ENTRIES})")]
    TooManyEntries(u32),
    /// A larger data store than rpm allows.
    #[error("header claims a {0}-byte data store (rpm allows at most {MAX_DATA})")]
    DataTooLarge(u32),
    /// The index and data store do not fit in the blob.
    #[error("header needs {needed} bytes for {entries} index entries and {data} data bytes, but the blob has {len}")]
    Truncated {
        /// Index entries claimed.
        entries: u32,
        /// Data store bytes claimed.
        data: u32,
        /// Bytes those claims need.
        needed: u64,
        /// Bytes the blob has.
        len: usize,
    },
    /// An entry for a tag we read is unusable.
    #[error("tag {tag}: {reason}")]
    BadEntry {
        /// The tag.
        tag: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tag every package has is absent.
    #[error("no {0} tag")]
    Missing(&'static str),
}

/// One index entry, as stored.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: u32,
    count: u32,
}

/// A header blob whose index and data store have been checked to fit.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    index: &'a [u8],
    data: &'a [u8],
}

impl<'a> Header<'a> {
    /// Checks the preamble of `blob` and splits it into index and data store.
    /// Bytes after the data store are ignored.
    pub fn parse(blob: &'a [u8]) -> Result<Self, HeaderError> {
        let (il, dl) = match (be_u32(blob, 0), be_u32(blob, 4)) {
            (Some(il), Some(dl)) => (il, dl),
            _ => return Err(HeaderError::TooShort(blob.len())),
        };
        if il > MAX_ENTRIES {
            return Err(HeaderError::TooManyEntries(il));
        }
        if dl > MAX_DATA {
            return Err(HeaderError::DataTooLarge(dl));
        }
        // Both counts are capped above, so this cannot overflow a u64.
        let index_len = u64::from(il) * ENTRY_SIZE as u64;
        let needed = PREAMBLE as u64 + index_len + u64::from(dl);
        let truncated = HeaderError::Truncated { entries: il, data: dl, needed, len: blob.len() };
        if needed > blob.len() as u64 {
            return Err(truncated);
        }
        let index_end = PREAMBLE + il as usize * ENTRY_SIZE;
        let index = blob.get(PREAMBLE..index_end).ok_or_else(|| truncated.clone())?;
        let data = blob.get(index_end..index_end + dl as usize).ok_or(truncated)?;
        Ok(Header { index, data })
    }

    /// Number of index entries.
    pub fn len(&self) -> usize {
        self.index.len() / ENTRY_SIZE
    }

    /// True when the header has no index entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn entries(&self) -> impl DoubleEndedIterator<Item = Entry> + 'a {
        self.index.chunks_exact(ENTRY_SIZE).filter_map(|e| {
            Some(Entry { tag: be_u32(e, 0)?, kind: be_u32(e, 4)?, offset: be_u32(e, 8)?, count: be_u32(e, 12)? })
        })
    }

    /// The entry rpm would use for `tag`: dribbles follow the region and
    /// replace its entries, so the last one wins.
    fn find(&self, tag: u32) -> Option<Entry> {
        self.entries().rev().find(|e| e.tag == tag)
    }

    /// The value of a string tag (the first element of an array or i18n
    /// string), or `None` when the tag is absent. Invalid UTF-8 (old
    /// Latin-1 packages) is replaced rather than rejected.
    pub fn string(&self, tag: u32) -> Result<Option<String>, HeaderError> {
        let Some(entry) = self.find(tag) else { return Ok(None) };
        let bad = |reason| HeaderError::BadEntry { tag, reason };
        if !matches!(entry.kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(bad("not a string"));
        }
        if entry.count == 0 {
            return Err(bad("string entry with a zero count"));
        }
        let rest = usize::try_from(entry.offset)
            .ok()
            .and_then(|start| self.data.get(start..))
            .filter(|rest| !rest.is_empty())
            .ok_or_else(|| bad("offset outside the data store"))?;
        let end = memchr(0, rest).ok_or_else(|| bad("string not terminated within the data store"))?;
        let bytes = rest.get(..end).ok_or_else(|| bad("string not terminated within the data store"))?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// The value of an integer tag (the first element of an array), or `None`
    /// when the tag is absent.
    pub fn integer(&self, tag: u32) -> Result<Option<u64>, HeaderError> {
        let Some(entry) = self.find(tag) else { return Ok(None) };
        let bad = |reason| HeaderError::BadEntry { tag, reason };
        let width = match entry.kind {
            TYPE_CHAR | TYPE_INT8 => 1,
            TYPE_INT16 => 2,
            TYPE_INT32 => 4,
            TYPE_INT64 => 8,
            _ => return Err(bad("not an integer")),
        };
        if entry.count == 0 {
            return Err(bad("integer entry with a zero count"));
        }
        let bytes = usize::try_from(entry.offset)
            .ok()
            .and_then(|start| self.data.get(start..start.checked_add(width)?))
            .ok_or_else(|| bad("value outside the data store"))?;
        Ok(Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))))
    }
}

/// The fields Trawl reads from an installed package's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageHeader {
    /// `NAME`.
    pub name: String,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `EPOCH`, when the package has one.
    pub epoch: Option<u64>,
    /// `ARCH`; absent for `gpg-pubkey` entries.
    pub arch: Option<String>,
    /// `LICENSE`.
    pub license: Option<String>,
    /// `SOURCERPM`, e.g. `bash-5.1.8-6.el9.src.rpm`; absent for `gpg-pubkey` entries.
    pub source_rpm: Option<String>,
}

impl PackageHeader {
    /// Reads the package fields from a header blob. Name, version and
    /// release are required; every rpm-installed package has them.
    pub fn from_blob(blob: &[u8]) -> Result<Self, HeaderError> {
        let h = Header::parse(blob)?;
        let required = |tag, what| h.string(tag)?.ok_or(HeaderError::Missing(what));
        let name = required(TAG_NAME, "NAME")?;
        if name.is_empty() {
            return Err(HeaderError::BadEntry { tag: TAG_NAME, reason: "empty package name" });
        }
        Ok(PackageHeader {
            version: required(TAG_VERSION, "VERSION")?,
            release: required(TAG_RELEASE, "RELEASE")?,
            epoch: h.integer(TAG_EPOCH)?,
            arch: h.string(TAG_ARCH)?,
            license: h.string(TAG_LICENSE)?,
            source_rpm: h.string(TAG_SOURCERPM)?,
            name,
        })
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::rpm::fixtures::{header, package_blob, Value};

    #[test]
    fn reads_package_fields() {
        let blob = package_blob("bash", Some(2), "5.1.8", "6.el9", Some("x86_64"), Some("bash-5.1.8-6.el9.src.rpm"));
        let p = PackageHeader::from_blob(&blob).expect("valid header");
        assert_eq!(p.name, "bash");
        assert_eq!(p.version, "5.1.8");
        assert_eq!(p.release, "6.el9");
        assert_eq!(p.epoch, Some(2));
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.license.as_deref(), Some("GPLv3+"));
        assert_eq!(p.source_rpm.as_deref(), Some("bash-5.1.8-6.el9.src.rpm"));
    }

    #[test]
    fn optional_tags_may_be_absent() {
        let blob = header(&[
            (TAG_NAME, Value::Str("gpg-pubkey")),
            (TAG_VERSION, Value::Str("fd431d51")),
            (TAG_RELEASE, Value::Str("4ae0493b")),
        ]);
        let p = PackageHeader::from_blob(&blob).expect("valid header");
        assert_eq!((p.epoch, p.arch, p.license, p.source_rpm), (None, None, None, None));
    }

    #[test]
    fn dribble_entries_replace_region_entries() {
        let blob = header(&[
            (TAG_NAME, Value::Str("a")),
            (TAG_VERSION, Value::Str("1")),
            (TAG_RELEASE, Value::Str("old")),
            (TAG_RELEASE, Value::Str("new")),
        ]);
        assert_eq!(PackageHeader::from_blob(&blob).map(|p| p.release), Ok("new".to_string()));
    }

    #[test]
    fn integer_widths_and_arrays() {
        let blob = header(&[
            (1, Value::Int16(7)),
            (2, Value::Int64(1 << 40)),
            (3, Value::StrArray(&["first", "second"])),
            (4, Value::Int32(9)),
            (6, Value::Bin(&[1, 2, 3])),
        ]);
        let h = Header::parse(&blob).expect("valid header");
        assert_eq!(h.len(), 5);
        assert_eq!(h.integer(1), Ok(Some(7)));
        assert_eq!(h.integer(2), Ok(Some(1 << 40)));
        assert_eq!(h.string(3), Ok(Some("first".into())));
        assert_eq!(h.integer(4), Ok(Some(9)));
        assert_eq!(h.integer(5), Ok(None));
        assert!(matches!(h.string(4), Err(HeaderError::BadEntry { tag: 4, .. })));
        assert!(matches!(h.integer(3), Err(HeaderError::BadEntry { tag: 3, .. })));
        assert!(matches!(h.string(6), Err(HeaderError::BadEntry { tag: 6, .. })));
    }

    #[test]
    fn missing_required_tag_is_an_error() {
        let blob = header(&[(TAG_NAME, Value::Str("a")), (TAG_VERSION, Value::Str("1"))]);
        assert_eq!(PackageHeader::from_blob(&blob), Err(HeaderError::Missing("RELEASE")));
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let blob = package_blob("bash", Some(1), "5.1", "1", Some("x86_64"), Some("bash-5.1-1.src.rpm"));
        for cut in 0..blob.len() {
            assert!(PackageHeader::from_blob(&blob[..cut]).is_err(), "prefix of {cut} bytes parsed");
        }
        assert!(PackageHeader::from_blob(&blob).is_ok());
    }

    #[test]
    fn hostile_counts_are_rejected_without_allocating() {
        let mut blob = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(Header::parse(&blob).err(), Some(HeaderError::TooManyEntries(u32::MAX)));
        blob[..4].copy_from_slice(&1u32.to_be_bytes());
        blob[4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Header::parse(&blob).err(), Some(HeaderError::DataTooLarge(u32::MAX)));
        blob[..4].copy_from_slice(&MAX_ENTRIES.to_be_bytes());
        blob[4..].copy_from_slice(&MAX_DATA.to_be_bytes());
        assert!(matches!(Header::parse(&blob), Err(HeaderError::Truncated { .. })));
        assert_eq!(Header::parse(&[1, 2, 3]).err(), Some(HeaderError::TooShort(3)));
    }

    /// Rewrites the offset or count of the first index entry.
    fn with_entry(mut blob: Vec<u8>, field: usize, value: u32) -> Vec<u8> {
        let at = PREAMBLE + field;
        blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
        blob
    }

    #[test]
    fn hostile_offsets_and_counts_are_rejected() {
        let base = header(&[(TAG_NAME, Value::Str("a")), (TAG_EPOCH, Value::Int32(1))]);
        for offset in [u32::MAX, i32::MAX as u32, 0x8000_0000, base.len() as u32, 1 << 20] {
            let blob = with_entry(base.clone(), 8, offset);
            let h = Header::parse(&blob).expect("preamble intact");
            assert!(matches!(h.string(TAG_NAME), Err(HeaderError::BadEntry { .. })), "offset {offset:#x}");
        }
        // A huge count is harmless: only the first element is read.
        let blob = with_entry(base.clone(), 12, u32::MAX);
        assert_eq!(Header::parse(&blob).and_then(|h| h.string(TAG_NAME)), Ok(Some("a".into())));
        let blob = with_entry(base, 12, 0);
        assert!(Header::parse(&blob).and_then(|h| h.string(TAG_NAME)).is_err());
    }

    #[test]
    fn unterminated_string_is_rejected() {
        // NAME "abc" with its NUL removed from the end of the data store.
        let mut blob = header(&[(TAG_NAME, Value::Str("abc"))]);
        blob.pop();
        let dl = (blob.len() - PREAMBLE - ENTRY_SIZE) as u32;
        blob[4..8].copy_from_slice(&dl.to_be_bytes());
        let h = Header::parse(&blob).expect("preamble intact");
        assert!(matches!(h.string(TAG_NAME), Err(HeaderError::BadEntry { .. })));
    }

    #[test]
    fn integer_straddling_the_data_end_is_rejected() {
        let blob = header(&[(TAG_EPOCH, Value::Int32(1))]);
        let h = Header::parse(&blob).expect("valid");
        assert_eq!(h.integer(TAG_EPOCH), Ok(Some(1)));
        let blob = with_entry(blob, 8, 2);
        let h = Header::parse(&blob).expect("preamble intact");
        assert!(h.integer(TAG_EPOCH).is_err());
    }
}
