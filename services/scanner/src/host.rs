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

/// Where the host's root filesystem is seen from this process. Inside a
/// container started with the host's PID namespace (NeuVector's
/// `docker run --privileged --pid=host … -n`), `/` is the container's own
/// filesystem and the host's is `/proc/1/root`; elsewhere it is `/`.
pub fn default_root() -> PathBuf {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    root_for(ns("self"), ns("1"))
}

/// [`default_root`]'s decision: init's root when init lives in another mount
/// namespace that we can see (we are a container sharing the host's PIDs).
fn root_for(own_mount_ns: Option<PathBuf>, init_mount_ns: Option<PathBuf>) -> PathBuf {
    match (own_mount_ns, init_mount_ns) {
        (Some(own), Some(init)) if own != init => PathBuf::from("/proc/1/root"),
        _ => PathBuf::from("/"),
    }
}

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
    fn a_container_sharing_the_hosts_pids_scans_init_s_root() {
        let ns = |s: &str| Some(PathBuf::from(s));
        assert_eq!(root_for(ns("mnt:[1]"), ns("mnt:[2]")), PathBuf::from("/proc/1/root"));
        assert_eq!(root_for(ns("mnt:[1]"), ns("mnt:[1]")), PathBuf::from("/"));
        // Init's namespace hidden from us (an ordinary container, or no privileges): our own `/`.
        assert_eq!(root_for(ns("mnt:[1]"), None), PathBuf::from("/"));
        assert!(default_root().is_absolute());
    }

    #[test]
    fn host_name_is_never_empty() {
        assert!(!host_name().is_empty());
    }
}
