//! `raft-replay profile` on a real capture: the flame graph, the pprof protobuf and the folded
//! stacks are written into --out, are non-trivial, and name this crate's functions; the input is
//! left byte-identical. (One file of its own: one CPU profiler per process.)

mod common;

use std::io::Read;
use std::path::Path;

/// The parts of pprof's `profile.proto` the test looks at.
mod pprof_proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
    }
}

fn m1() -> std::path::PathBuf {
    common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .expect("cluster-a has m1")
}

fn check_outputs(out: &Path) {
    // Folded stacks: `frame;frame;… count`, through the three measured steps.
    let folded = std::fs::read_to_string(out.join("stacks.folded")).unwrap();
    let mut samples = 0u64;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("stack and count");
        assert!(!stack.is_empty());
        samples += count.parse::<u64>().expect("count");
    }
    // CPU-time sampling: on a loaded CI machine the process may get few CPU-seconds, so the
    // count is only required to be positive; the phases must all show once there are enough.
    assert!(samples >= 1, "no samples\n{folded}");
    if samples >= 200 {
        assert!(folded.contains("raft_replay::profile::workload::phase_decode"));
    }
    assert!(folded.contains("raft_replay::"), "{folded}");

    // SVG: inferno's flame graph, with our frames in it.
    let svg = std::fs::read_to_string(out.join("flamegraph.svg")).unwrap();
    assert!(svg.starts_with("<?xml"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("raft_replay::"));
    assert!(
        svg.len() > 10_000,
        "a flame graph of a real replay is not tiny"
    );

    // pprof: gzip'd profile.proto with samples and raft_replay function names.
    let gz = std::fs::read(out.join("profile.pb")).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let profile: pprof_proto::Profile = prost::Message::decode(&raw[..]).unwrap();
    assert_eq!(
        profile.sample_type.len(),
        2,
        "samples/count and cpu/nanoseconds"
    );
    assert!(!profile.sample.is_empty());
    let total: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(
        total as u64, samples,
        "the .pb and the folded stacks hold the same samples"
    );
    assert!(profile.period > 0);
    let names: Vec<&str> = profile
        .function
        .iter()
        .map(|f| profile.string_table[f.name as usize].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("raft_replay::replay::")),
        "{names:?}"
    );

    // The phase table and the metadata sidecar.
    let phases = std::fs::read_to_string(out.join("phases.txt")).unwrap();
    for phase in [
        "read",
        "CRC",
        "protobuf decode",
        "raft-rs",
        "MVCC apply",
        "checks",
    ] {
        assert!(phases.contains(phase), "{phase}: {phases}");
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("profile.json")).unwrap()).unwrap();
    assert_eq!(meta["samples"].as_u64(), Some(samples));
}

#[test]
fn profile_writes_svg_pprof_and_folded_stacks_and_leaves_the_input_alone() {
    let member = m1();
    let root = common::unpacked("cluster-a");
    let before = common::fingerprint(root);
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("prof");
    let (code, stdout, stderr) = common::run_cli(&[
        "profile",
        &member.display().to_string(),
        "--out",
        &out_dir.display().to_string(),
        "--seconds",
        "3",
        "--frequency",
        "199",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("samples per CPU-second achieved"),
        "{stdout}"
    );
    assert!(stdout.contains("MVCC apply"), "{stdout}");
    check_outputs(&out_dir);
    assert_eq!(common::fingerprint(root), before, "the input changed");

    // `go tool pprof` reads it, when Go is installed (`make test` installs it, so CI checks this).
    let go = std::process::Command::new("go")
        .args(["tool", "pprof", "-top"])
        .arg(out_dir.join("profile.pb"))
        .output();
    match go {
        Ok(output) => {
            let top = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "go tool pprof failed: {top}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(top.contains("raft_replay::"), "{top}");
        }
        Err(e) => eprintln!("go not found ({e}): `go tool pprof` not checked"),
    }
}

#[test]
fn profile_refuses_an_output_dir_inside_the_input() {
    let copy = common::copy_member(&m1());
    let before = common::fingerprint(copy.path());
    let inside = copy.path().join("member").join("profile-out");
    let (code, _, stderr) = common::run_cli(&[
        "profile",
        &copy.path().display().to_string(),
        "--out",
        &inside.display().to_string(),
        "--repeat",
        "1",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inside the input"), "{stderr}");
    assert!(!inside.exists());
    assert_eq!(common::fingerprint(copy.path()), before);
}
