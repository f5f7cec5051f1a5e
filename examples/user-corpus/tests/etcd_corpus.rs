//! The README's ten-line harness, run on a directory of captures: here this repository's
//! `corpus/` (a user's would be e.g. `captures/`, each capture made by `raft-replay pack`). The
//! snapshots are the repository's own (`tests/snapshots/etcd_corpus__<capture>.snap`): the same
//! captures through the public API give the same reports.
use std::path::Path;

fn verify_capture(manifest: &Path) -> datatest_stable::Result<()> {
    let report = raft_replay::Capture::open(manifest.parent().unwrap())?.verify()?;
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../../tests/snapshots");
    settings.bind(|| insta::assert_snapshot!(report.name.clone(), report.to_text()));
    report.assert_holds();
    Ok(())
}

datatest_stable::harness! { { test = verify_capture, root = "../../corpus", pattern = r"^[^/]+/manifest\.json$" } }
