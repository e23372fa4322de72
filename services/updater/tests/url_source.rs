//! `trawl-updater build --source http://…/all.zip`: an OSV archive served over
//! HTTP (by a small loopback server in this test, shaped like the OSV
//! bucket) is downloaded and compiled; a missing URL is one clear error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// A zip with one valid and one malformed OSV record.
fn osv_zip() -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("PYSEC-2099-1.json", opts).unwrap();
        zip.write_all(
            br#"{"id":"PYSEC-2099-1","affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.31.0"}]}]}]}"#,
        )
        .unwrap();
        zip.start_file("broken.json", opts).unwrap();
        zip.write_all(b"{\"id\": ").unwrap();
        zip.finish().unwrap();
    }
    buf.into_inner()
}

/// Serves `body` at `/PyPI/all.zip` (404 elsewhere) for `requests` connections.
fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let request = String::from_utf8_lossy(&head);
            let response = if request.starts_with("GET /PyPI/all.zip ") {
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                r.extend_from_slice(&body);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&response);
        }
    });
    (base, handle)
}

#[test]
fn builds_from_an_http_all_zip_and_reports_bad_urls() {
    let (base, server) = serve(osv_zip(), 2);
    let dir = tempfile::tempdir().unwrap();
    let out_db = dir.path().join("trawl.db");
    let out = Command::new(env!("CARGO_BIN_EXE_trawl-updater"))
        .args(["build", "--source", &format!("{base}/PyPI/all.zip"), "--out"])
        .arg(&out_db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 advisories") && stderr.contains("1 malformed skipped"), "{stderr}");
    assert!(stderr.contains("broken.json"), "the skipped record is named: {stderr}");

    let info =
        Command::new(env!("CARGO_BIN_EXE_trawl-updater")).args(["info", "--json"]).arg(&out_db).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["counts"]["advisories"], 1);
    assert_eq!(info["sources"][0]["name"], format!("{base}/PyPI/all.zip"));
    assert_eq!(info["sources"][0]["sha256"].as_str().unwrap().len(), 64);

    let out = Command::new(env!("CARGO_BIN_EXE_trawl-updater"))
        .args(["build", "--source", &format!("{base}/Nope/all.zip"), "--out"])
        .arg(dir.path().join("other.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("404"), "{stderr}");
    assert!(!dir.path().join("other.db").exists());
    server.join().unwrap();
}
