//! The sqlite rpm database (`rpmdb.sqlite`, rpm ≥ 4.16): header blobs are
//! rows of the `Packages(hnum, blob)` table.
//!
//! The scratch copy is opened read-only with `immutable=1`: rpm leaves its
//! database in WAL mode, and without that flag sqlite would want to create
//! `-wal`/`-shm` files beside it or take locks. The schema comes from the
//! image and sqlite computes some values on read, so `Packages` must be an
//! ordinary table — not a view or virtual table, without generated columns —
//! and untrusted schema functions are disabled.

use super::RecordSink;
use crate::cataloger::CatalogError;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// The first 16 bytes of every sqlite 3 database.
pub const MAGIC: &[u8] = b"SQLite format 3\0";

/// Characters that would end or alter the path part of a sqlite URI.
const URI_PATH: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'?').add(b'#').add(b'"');

fn malformed(what: &str, e: rusqlite::Error) -> CatalogError {
    CatalogError::malformed(format!("sqlite rpm database: {what}: {e}"))
}

/// Delivers every blob of the `Packages` table in `path` to `sink`.
pub fn read(path: &Path, sink: &mut dyn RecordSink) -> Result<(), CatalogError> {
    let path = path.to_str().ok_or_else(|| CatalogError::malformed("scratch path is not UTF-8"))?;
    let uri = format!("file:{}?immutable=1", utf8_percent_encode(path, URI_PATH));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags).map_err(|e| malformed("cannot open", e))?;
    conn.pragma_update(None, "trusted_schema", false).map_err(|e| malformed("cannot configure", e))?;

    // The first real read of the file: a corrupt or non-sqlite file fails here.
    let sql: Option<String> = conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'Packages'", [], |r| r.get(0))
        .optional()
        .map_err(|e| malformed("cannot read the schema", e))?;
    let Some(sql) = sql else {
        return Err(CatalogError::malformed("sqlite database has no Packages table: not an rpm database"));
    };
    // Virtual tables and generated columns compute their values on read;
    // rpm never creates them, and a hostile image could make them expensive.
    let computed: i64 = conn
        .query_row("SELECT count(*) FROM pragma_table_xinfo('Packages') WHERE hidden != 0", [], |r| r.get(0))
        .map_err(|e| malformed("cannot read the Packages columns", e))?;
    if computed > 0 || sql.trim_start().get(..14).is_some_and(|s| s.eq_ignore_ascii_case("CREATE VIRTUAL")) {
        return Err(CatalogError::malformed(
            "sqlite Packages table is virtual or has computed columns: not an rpm database",
        ));
    }
    let mut stmt =
        conn.prepare("SELECT hnum, blob FROM Packages").map_err(|e| malformed("unexpected Packages table", e))?;
    let mut rows = stmt.query([]).map_err(|e| malformed("cannot read Packages", e))?;
    let mut read = 0usize;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) if read == 0 => return Err(malformed("cannot read Packages", e)),
            Err(e) => {
                // A corrupt page part-way through: keep what was read.
                sink.warn(format!("sqlite rpm database: stopped after {read} records: {e}"));
                break;
            }
        };
        read += 1;
        let hnum = match row.get_ref(0) {
            Ok(ValueRef::Integer(n)) => n.to_string(),
            _ => format!("row {read}"),
        };
        let origin = format_args!("hnum {hnum}");
        match row.get_ref(1) {
            Ok(ValueRef::Blob(blob)) => sink.header(&origin, blob),
            Ok(other) => {
                sink.warn(format!("rpm header at {origin} skipped: stored as {:?}, not a blob", other.data_type()))
            }
            Err(e) => sink.warn(format!("rpm header at {origin} skipped: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::rpm::fixtures::{package_blob, sqlite_db};
    use std::fmt::Display;

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

    #[test]
    fn reads_blobs_in_hnum_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rpm db?#%.sqlite");
        let blobs = vec![
            package_blob("a", None, "1", "1", Some("noarch"), None),
            package_blob("b", Some(1), "2", "1", Some("x86_64"), None),
        ];
        sqlite_db(&path, &blobs);
        let mut sink = Collect::default();
        read(&path, &mut sink).expect("read");
        assert!(sink.warnings.is_empty());
        assert_eq!(
            sink.blobs,
            vec![("hnum 1".to_string(), blobs[0].clone()), ("hnum 2".to_string(), blobs[1].clone())]
        );
        // Reading must not leave WAL side files behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn non_blob_values_are_warnings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rpmdb.sqlite");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob); INSERT INTO Packages VALUES (7, 'text');",
        )
        .expect("schema");
        drop(conn);
        let mut sink = Collect::default();
        read(&path, &mut sink).expect("read");
        assert!(sink.blobs.is_empty());
        assert_eq!(sink.warnings.len(), 1);
        assert!(sink.warnings[0].contains("hnum 7"), "{:?}", sink.warnings);
    }

    #[test]
    fn missing_table_or_view_is_malformed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rpmdb.sqlite");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch("CREATE TABLE Other (x); CREATE VIEW Packages AS SELECT 1 AS hnum, zeroblob(10) AS blob;")
            .expect("schema");
        drop(conn);
        let err = read(&path, &mut Collect::default()).expect_err("view is not a table");
        assert!(err.to_string().contains("no Packages table"), "{err}");
    }

    #[test]
    fn computed_columns_and_virtual_tables_are_refused() {
        let schemas = [
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob AS (zeroblob(100000000)) VIRTUAL);",
            "CREATE VIRTUAL TABLE Packages USING fts5(hnum, blob);",
        ];
        for (i, schema) in schemas.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("rpmdb.sqlite");
            let conn = Connection::open(&path).expect("create");
            if let Err(e) = conn.execute_batch(schema) {
                // This sqlite build lacks the feature, so no image can use it on us either.
                eprintln!("schema {i} not supported here: {e}");
                continue;
            }
            drop(conn);
            let err = read(&path, &mut Collect::default()).expect_err("computed values");
            assert!(err.to_string().contains("virtual or has computed columns"), "{i}: {err}");
        }
    }

    #[test]
    fn garbage_after_the_magic_is_malformed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rpmdb.sqlite");
        let mut bytes = MAGIC.to_vec();
        bytes.extend(std::iter::repeat_n(0xA5u8, 8192));
        std::fs::write(&path, bytes).expect("write");
        let err = read(&path, &mut Collect::default()).expect_err("corrupt");
        assert!(matches!(err, CatalogError::Malformed(_)), "{err}");
    }

    #[test]
    fn corrupted_databases_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.sqlite");
        let blobs: Vec<_> = (0..20).map(|i| package_blob(&format!("p{i}"), None, "1", "1", None, None)).collect();
        sqlite_db(&good, &blobs);
        let bytes = std::fs::read(&good).expect("read");
        let mut m = crate::os::rpm::fixtures::Mutator::new(7);
        for i in 0..100 {
            let path = dir.path().join(format!("m{i}.sqlite"));
            std::fs::write(&path, m.mutate(&bytes)).expect("write");
            let _ = read(&path, &mut Collect::default());
        }
    }
}
