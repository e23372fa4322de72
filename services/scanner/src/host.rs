//! Host scanning (`trawl-scanner scan --host`, NeuVector's `-n`): the
//! machine's own root filesystem, or one mounted elsewhere (`--root /host`
//! inside a container), walked in place for OS and language packages.
//!
//! Kernel pseudo-filesystems are skipped because they are not packages and
//! reading some of their files blocks or costs real work; container storage
//! is skipped because the images kept there are not installed on the host
//! (scan them as images instead). Anything the walk cannot read — the usual
//! case without root — is listed in the report's `issues`, never hidden.

use crate::analyze::{AnalyzeError, Analyzer, ImageAnalysis};
use std::path::{Path, PathBuf};

/// Paths under the root that are never walked: pseudo-filesystems and
/// container engines' storage.
pub const SKIPPED_PATHS: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "run",
    "var/run",
    "var/lib/docker",
    "var/lib/containers",
    "var/lib/containerd",
    "var/lib/kubelet/pods",
];

/// The absolute paths skipped when scanning `root`.
pub fn skip_list(root: &Path) -> Vec<PathBuf> {
    SKIPPED_PATHS.iter().map(|p| root.join(p)).collect()
}

/// This machine's host name, for labelling host scans.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Scans the root filesystem at `root` as a host, leaving out [`SKIPPED_PATHS`]
/// and the absolute paths in `also_skip`. The walk is blocking file I/O, so it
/// runs on a blocking thread.
pub async fn analyze_host(
    analyzer: &Analyzer,
    root: &Path,
    also_skip: &[PathBuf],
) -> Result<ImageAnalysis, AnalyzeError> {
    let label =
        if root == Path::new("/") { format!("host:{}", host_name()) } else { format!("host:{}", root.display()) };
    let analyzer = analyzer.clone();
    let root = root.to_path_buf();
    let mut skip = skip_list(&root);
    skip.extend(also_skip.iter().cloned());
    let mut analysis = tokio::task::spawn_blocking(move || analyzer.analyze_dir(&label, &root, &skip))
        .await
        .map_err(|e| AnalyzeError::Io(std::io::Error::other(e)))??;
    analysis.identity.source = "host".into();
    Ok(analysis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_list_is_under_the_root() {
        let skips = skip_list(Path::new("/host"));
        assert!(skips.contains(&PathBuf::from("/host/proc")));
        assert!(skips.iter().all(|p| p.starts_with("/host")));
    }

    #[test]
    fn host_name_is_never_empty() {
        assert!(!host_name().is_empty());
    }
}
