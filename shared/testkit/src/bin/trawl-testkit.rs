//! `trawl-testkit`: runs test-kit fixtures from the shell, for the demo and
//! benchmarks.
//!
//! `trawl-testkit sample-registry` starts a real `docker-registry` on a free
//! loopback port, pushes the sample images, prints `REGISTRY <host>` and one
//! `IMAGE <reference>` line per image, then serves until its standard input
//! closes (or it is killed) and removes the registry.
//!
//! `trawl-testkit sample-advisories DIR` writes OSV advisories matching the
//! sample images, for `trawl-updater build --source DIR`.

use anyhow::{bail, Context, Result};
use std::io::Write;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sample-registry") => sample_registry(),
        Some("sample-advisories") => match args.get(1) {
            Some(dir) => sample_advisories(std::path::Path::new(dir)),
            None => bail!("usage: trawl-testkit sample-advisories DIR"),
        },
        _ => bail!("usage: trawl-testkit sample-registry | sample-advisories DIR"),
    }
}

/// Writes the demo's OSV advisories as one JSON file each into `dir`.
fn sample_advisories(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (id, record) in trawl_testkit::sample_advisories() {
        std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec_pretty(&record)?)?;
    }
    Ok(())
}

fn sample_registry() -> Result<()> {
    let registry = trawl_testkit::Registry::start().context("start docker-registry (run scripts/setup)")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "REGISTRY {}", registry.host())?;
    for sample in trawl_testkit::sample_images()? {
        runtime.block_on(trawl_testkit::push(&registry, sample.repo, sample.tag, &sample.image, None))?;
        writeln!(out, "IMAGE {}/{}:{}", registry.host(), sample.repo, sample.tag)?;
    }
    writeln!(out, "READY")?;
    out.flush()?;
    drop(out);
    // The registry dies with us.
    trawl_testkit::serve_until_stdin_closes();
    Ok(())
}
