//! The launcher reports the child's own peak RSS and failures, whatever the
//! size of the process that asked for the measurement.

use std::process::{Command, Stdio};
use std::time::Duration;
use trawl_loadtest::measure::Meter;

fn meter() -> Meter {
    Meter::with_launcher(env!("CARGO_BIN_EXE_trawl-loadtest"))
}

#[test]
fn peak_rss_is_the_childs_not_the_parents() {
    // A parent with 256 MiB resident: a child forked from it directly would
    // report at least that much as its ru_maxrss.
    let ballast = vec![1u8; 256 << 20];
    let run = meter().run(&Command::new("true"), Stdio::null(), Duration::from_secs(30)).unwrap();
    assert!(run.max_rss_kib > 0);
    assert!(run.rss_mib() < 32.0, "`true` reported {:.1} MiB", run.rss_mib());
    std::hint::black_box(&ballast);
}

#[test]
fn failures_and_timeouts_are_reported() {
    let mut failing = Command::new("sh");
    failing.args(["-c", "echo boom >&2; exit 3"]);
    let err = meter().run(&failing, Stdio::null(), Duration::from_secs(30)).unwrap_err();
    assert!(format!("{err:#}").contains("boom"), "{err:#}");

    let mut slow = Command::new("sleep");
    slow.arg("30");
    let err = meter().run(&slow, Stdio::null(), Duration::from_millis(200)).unwrap_err();
    assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
}
