//! One test case per capture of `corpus/` (datatest-stable's harness on libtest-mimic: `cargo
//! test --test etcd_corpus -- cluster-c` runs one, `cargo nextest run --partition hash:k/n`
//! spreads them over runners), through the public entry point a user's own tests use:
//! [`raft_replay::Capture`]. Each capture's report is an insta snapshot
//! (`tests/snapshots/etcd_corpus__<capture>.snap`): a change in any member's log range, applied
//! index, revision, HashKV or finding shows as a diff. Every capture's members must verify
//! together, and the HashKV of every member etcd reported at its applied index must be etcd's.

use std::path::Path;

fn verify_capture(manifest: &Path) -> datatest_stable::Result<()> {
    let dir = manifest
        .parent()
        .ok_or("manifest.json has a capture directory")?;
    let report = raft_replay::Capture::open(dir)?.verify()?;
    insta::assert_snapshot!(report.name.clone(), report.to_text());
    report.assert_holds();
    // The bundled captures end at a checkpoint: at least one member's HashKV is compared with
    // etcd's own (a capture whose manifest never matched would hold vacuously).
    let compared = report
        .members
        .iter()
        .filter(|m| m.recorded.is_some())
        .count();
    if compared == 0 {
        return Err(format!("{}: no member's HashKV compared with etcd's", report.name).into());
    }
    Ok(())
}

datatest_stable::harness! {
    { test = verify_capture, root = "corpus", pattern = r"^[^/]+/manifest\.json$" },
}
