//! Progress on a terminal: a spinner for each stage (resolving, walking,
//! matching) and a byte bar per layer while it downloads, drawn on stderr
//! with indicatif. Only used when stderr is a terminal and the user did not
//! ask for `--quiet`, so piped output and CI logs carry nothing but the report.

use crate::analyze::AnalysisObserver;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use trawl_image::blob::BlobProgress;
use trawl_image::{LayerDescriptor, ResolvedImage};

/// How often bars redraw and pick up byte counts.
const TICK: Duration = Duration::from_millis(100);

/// Draws an analysis's progress on stderr.
pub struct TerminalProgress {
    multi: MultiProgress,
    stage: Mutex<Option<ProgressBar>>,
    layer_count: AtomicUsize,
    /// Bars of layers in flight, by layer index.
    layers: Mutex<HashMap<usize, ProgressBar>>,
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {prefix:.bold} [{bar:28.cyan/blue}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl TerminalProgress {
    /// A progress display on stderr.
    pub fn new() -> Arc<TerminalProgress> {
        Arc::new(TerminalProgress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            stage: Mutex::new(None),
            layer_count: AtomicUsize::new(0),
            layers: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a new stage spinner ("Resolving alpine:3.19"), ending the previous one.
    pub fn stage(&self, message: impl Into<String>) {
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(spinner_style()).with_message(message.into()));
        // Draw now: a stage shorter than one tick would otherwise never be seen.
        bar.tick();
        bar.enable_steady_tick(TICK);
        if let Some(old) = self.lock_stage().replace(bar) {
            old.finish_and_clear();
        }
    }

    /// Ends the current stage, leaving `message` on screen as a done line.
    pub fn done(&self, message: impl Into<String>) {
        if let Some(bar) = self.lock_stage().take() {
            bar.finish_and_clear();
        }
        self.keep(format!("✔ {}", message.into()));
    }

    /// Prints a permanent line above the bars (finished bars would be wiped
    /// by the next log record's suspend-and-redraw).
    fn keep(&self, line: String) {
        let _ = self.multi.println(line);
    }

    /// Removes every bar still running (before printing the report or an
    /// error); the done lines stay, like `docker pull`'s.
    pub fn clear(&self) {
        if let Some(bar) = self.lock_stage().take() {
            bar.finish_and_clear();
        }
        for (_, bar) in lock(&self.layers).drain() {
            bar.finish_and_clear();
        }
    }

    /// A log writer that lifts the bars out of the way for each record, so
    /// warnings printed mid-scan are not drawn over.
    pub fn log_writer(&self) -> BarSafeWriter {
        BarSafeWriter { multi: self.multi.clone() }
    }

    fn lock_stage(&self) -> MutexGuard<'_, Option<ProgressBar>> {
        lock(&self.stage)
    }
}

/// Makes one [`BarSafeLine`] per log record (a `tracing_subscriber` writer).
#[derive(Clone)]
pub struct BarSafeWriter {
    multi: MultiProgress,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BarSafeWriter {
    type Writer = BarSafeLine;

    fn make_writer(&'a self) -> BarSafeLine {
        BarSafeLine { multi: self.multi.clone(), buf: Vec::new() }
    }
}

/// One log record, collected and then written to stderr while the bars are suspended.
pub struct BarSafeLine {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl std::io::Write for BarSafeLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BarSafeLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // Nowhere to report a failed write to stderr.
        self.multi.suspend(|| {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf);
        });
    }
}

/// Locks a display mutex; a panic while drawing must not take the scan down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AnalysisObserver for TerminalProgress {
    fn resolved(&self, image: &ResolvedImage) {
        let total: u64 = image.layers.iter().map(|l| l.size).sum();
        self.layer_count.store(image.layers.len(), Ordering::Relaxed);
        self.done(format!("Resolved {} ({} layers, {})", image.reference, image.layers.len(), HumanBytes(total)));
        self.stage("Pulling and walking layers");
    }

    fn layer_started(&self, index: usize, layer: &LayerDescriptor, progress: Arc<BlobProgress>) {
        let count = self.layer_count.load(Ordering::Relaxed);
        let short = layer.digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        let bar = self.multi.add(
            ProgressBar::new(layer.size)
                .with_style(bar_style())
                .with_prefix(format!("layer {}/{count} {short}", index + 1)),
        );
        lock(&self.layers).insert(index, bar.clone());
        // The byte counter is an atomic the download task bumps; copy it into the bar until the layer ends.
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            while !bar.is_finished() {
                ticker.tick().await;
                bar.set_position(progress.received.load(Ordering::Relaxed));
            }
        });
    }

    fn layer_finished(&self, index: usize, _layer: &LayerDescriptor) {
        if let Some(bar) = lock(&self.layers).remove(&index) {
            bar.finish_and_clear();
            self.keep(format!("  {} {} done", bar.prefix(), HumanBytes(bar.length().unwrap_or(0))));
        }
    }
}
