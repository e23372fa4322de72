//! Deterministic choice of real host files for benchmark images.
//!
//! Synthetic layers (random bytes, repeated text) neither compress nor catalog
//! like real ones, so the benchmark images are filled with files from this
//! machine. The choice must be reproducible on the same machine — the same
//! files in the same order, hence the same digests — so every directory is
//! read in sorted (byte-wise) order, and the source roots are interleaved by
//! bytes taken so that each layer gets a realistic mix (binaries, shared
//! libraries, data files, Python packages) rather than one directory each.

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A regular host file chosen for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// Where it is on this machine.
    pub host: PathBuf,
    /// Its size when it was chosen.
    pub size: u64,
}

impl HostFile {
    /// The path inside the image: the host path without its leading `/`.
    pub fn image_path(&self) -> String {
        image_path(&self.host)
    }
}

/// `path` as a relative in-image path (`/usr/bin/ls` → `usr/bin/ls`).
pub fn image_path(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

/// The default source roots, grouped: each group is one interleaving stream,
/// so the nine pyenv installations count as one source, not nine.
pub fn default_source_groups() -> Vec<Vec<PathBuf>> {
    let mut groups: Vec<Vec<PathBuf>> =
        ["/usr/lib", "/usr/share", "/usr/bin", "/usr/local/lib"].iter().map(|p| vec![PathBuf::from(p)]).collect();
    let mut pyenv: Vec<PathBuf> = fs::read_dir("/root/.pyenv/versions")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("lib")).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    pyenv.sort();
    groups.push(pyenv);
    groups.retain(|g| g.iter().any(|p| p.is_dir()));
    groups
}

/// Depth-first walk of one or more roots yielding regular, readable files of
/// at most `max_size` bytes, each directory in sorted order. Symlinks are
/// neither followed nor yielded; unreadable entries are skipped.
pub struct SortedWalk {
    /// Pending entries per open directory, in reverse order (pop = next).
    stack: Vec<Vec<PathBuf>>,
    max_size: u64,
}

impl SortedWalk {
    /// A walk over `roots`, in the order given.
    pub fn new(roots: &[PathBuf], max_size: u64) -> Self {
        let mut top: Vec<PathBuf> = roots.to_vec();
        top.reverse();
        SortedWalk { stack: vec![top], max_size }
    }
}

impl Iterator for SortedWalk {
    type Item = HostFile;

    fn next(&mut self) -> Option<HostFile> {
        loop {
            let level = self.stack.last_mut()?;
            let Some(path) = level.pop() else {
                self.stack.pop();
                continue;
            };
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                let Ok(rd) = fs::read_dir(&path) else { continue };
                let mut children: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                // Byte-wise, not locale order: the same on every machine.
                children.sort_by(|a, b| b.as_os_str().as_bytes().cmp(a.as_os_str().as_bytes()));
                self.stack.push(children);
            } else if meta.is_file() && meta.len() <= self.max_size && File::open(&path).is_ok() {
                return Some(HostFile { host: path, size: meta.len() });
            }
        }
    }
}

/// Merges several file streams, always taking the next file from the stream
/// that has contributed the fewest bytes so far (ties: the earlier stream).
pub struct Interleave<I: Iterator<Item = HostFile>> {
    sources: Vec<(std::iter::Peekable<I>, u64)>,
}

impl<I: Iterator<Item = HostFile>> Interleave<I> {
    /// Interleaves `sources` by bytes taken.
    pub fn new(sources: impl IntoIterator<Item = I>) -> Self {
        Interleave { sources: sources.into_iter().map(|s| (s.peekable(), 0)).collect() }
    }
}

impl<I: Iterator<Item = HostFile>> Iterator for Interleave<I> {
    type Item = HostFile;

    fn next(&mut self) -> Option<HostFile> {
        loop {
            let (index, _) = self
                .sources
                .iter_mut()
                .enumerate()
                .filter_map(|(i, (s, taken))| s.peek().map(|_| (i, *taken)))
                .min_by_key(|&(i, taken)| (taken, i))?;
            let (source, taken) = &mut self.sources[index];
            if let Some(file) = source.next() {
                *taken += file.size;
                return Some(file);
            }
        }
    }
}

/// Splits `files` into consecutive layers of about `targets[i]` content bytes
/// each. A file that would overshoot a layer's target is still added if that
/// leaves the layer nearer its target than stopping short would; otherwise it
/// opens the next layer (so one 60 MiB file cannot turn a 50 MiB layer into
/// 110 MiB). Paths in `skip` (e.g. files added to a layer explicitly) are left
/// out. Layers come out short only if the files run out.
pub fn plan_layers(
    files: impl Iterator<Item = HostFile>,
    targets: &[u64],
    skip: &HashSet<PathBuf>,
) -> Vec<Vec<HostFile>> {
    let mut files = files.filter(|f| !skip.contains(&f.host)).peekable();
    let mut layers = Vec::with_capacity(targets.len());
    for &target in targets {
        let mut layer = Vec::new();
        let mut bytes = 0;
        while bytes < target {
            let Some(next) = files.peek() else { break };
            let overshoot = (bytes + next.size).saturating_sub(target);
            if !layer.is_empty() && overshoot > target - bytes {
                break;
            }
            bytes += next.size;
            layer.extend(files.next());
        }
        layers.push(layer);
    }
    layers
}

/// The directories (`a/`, `a/b/`) an archive must create before `path`, in order.
pub fn parent_dirs(path: &str) -> impl Iterator<Item = String> + '_ {
    path.match_indices('/').map(move |(i, _)| path[..=i].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> HostFile {
        HostFile { host: PathBuf::from(name), size }
    }

    #[test]
    fn sorted_walk_is_deterministic_and_skips_links_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/sub")).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("b/sub/z"), b"zz").unwrap();
        fs::write(root.join("b/B"), b"B").unwrap();
        fs::write(root.join("a/x"), b"xxx").unwrap();
        fs::write(root.join("big"), vec![0u8; 100]).unwrap();
        std::os::unix::fs::symlink(root.join("a/x"), root.join("a/link")).unwrap();
        let names = |w: SortedWalk| {
            w.map(|f| f.host.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>()
        };
        let first = names(SortedWalk::new(&[root.to_path_buf()], 10));
        assert_eq!(first, ["a/x", "b/B", "b/sub/z"]);
        assert_eq!(names(SortedWalk::new(&[root.to_path_buf()], 10)), first);
        assert_eq!(names(SortedWalk::new(&[root.join("b"), root.join("a")], 10)), ["b/B", "b/sub/z", "a/x"]);
    }

    #[test]
    fn interleave_balances_bytes_and_plan_fills_targets() {
        let a = vec![file("a1", 50), file("a2", 50), file("a3", 50)];
        let b = vec![file("b1", 10), file("b2", 10), file("b3", 10), file("b4", 10)];
        let merged: Vec<String> =
            Interleave::new([a.into_iter(), b.into_iter()]).map(|f| f.host.to_string_lossy().into_owned()).collect();
        assert_eq!(merged, ["a1", "b1", "b2", "b3", "b4", "a2", "a3"]);

        let files = (0..10).map(|i| file(&format!("f{i}"), 30));
        let skip = HashSet::from([PathBuf::from("f1")]);
        let layers = plan_layers(files, &[50, 100, 1000], &skip);
        let sizes: Vec<usize> = layers.iter().map(Vec::len).collect();
        // 60 is nearer 50 than 30 is; 90 is nearer 100 than 120; then what is left.
        assert_eq!(sizes, [2, 3, 4]);
        assert_eq!(layers[0][1].host, PathBuf::from("f2"));

        // A big file that would overshoot a lot waits for the next layer.
        let files = [file("s", 40), file("big", 100), file("t", 5)].into_iter();
        let layers = plan_layers(files, &[50, 50], &HashSet::new());
        assert_eq!(layers.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(layers[1][0].host, PathBuf::from("big"));
    }

    #[test]
    fn parents_and_image_paths() {
        assert_eq!(parent_dirs("usr/lib/x.so").collect::<Vec<_>>(), ["usr/", "usr/lib/"]);
        assert_eq!(parent_dirs("x").count(), 0);
        assert_eq!(image_path(Path::new("/usr/bin/ls")), "usr/bin/ls");
    }
}
