//! `raft-replay pack` on the bundled corpus and on a live etcd: the packed capture verifies as
//! the original (same findings, same entries), `--redact` leaves no original value in any byte
//! and records the HashKV our `hashkv` computes on the redacted members, inputs stay untouched,
//! and bad input is exit 2 with a clear message.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use raft_replay::fsio::RealFs;
use raft_replay::member::MemberFiles;
use raft_replay::proto::etcdserverpb::{request_op, TxnRequest};
use raft_replay::proto::payload::{decode_payload, Payload};
use raft_replay::proto::walpb::ENTRY_TYPE;
use raft_replay::wal::DecoderMode;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs `pack` on `members` into a fresh `DIR`; returns (exit code, stdout, stderr, DIR's
/// tempdir, DIR).
fn pack(members: &[PathBuf], extra: &[&str]) -> (i32, String, String, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let mut args = vec!["pack"];
    args.extend(members.iter().map(|p| path_str(p)));
    args.extend(["--out", path_str(&out)]);
    args.extend(extra);
    let (code, stdout, stderr) = common::run_cli(&args);
    (code, stdout, stderr, dir, out)
}

/// The capture's data.tar.gz unpacked next to it: each member's data dir, sorted by name.
fn unpack(capture: &Path) -> Vec<PathBuf> {
    let target = capture.join("unpacked");
    let file = std::fs::File::open(capture.join("data.tar.gz")).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&target)
        .unwrap();
    let mut members: Vec<PathBuf> = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("member/wal").is_dir())
        .collect();
    members.sort();
    members
}

fn manifest(capture: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(capture.join("manifest.json")).unwrap()).unwrap()
}

/// `verify --format json`: (exit code, per member the findings as (kind, severity, segment,
/// raft index), sorted).
fn verify(members: &[PathBuf]) -> (i32, Vec<Vec<String>>) {
    let mut args = vec!["verify", "--format", "json"];
    args.extend(members.iter().map(|p| path_str(p)));
    let (code, stdout, stderr) = common::run_cli(&args);
    assert!(code == 0 || code == 1, "verify: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let per_member = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut f: Vec<String> = m["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{} {} segment={} index={}",
                        f["kind"], f["severity"], f["segment"], f["raft_index"]
                    )
                })
                .collect();
            f.sort();
            f
        })
        .collect();
    (code, per_member)
}

/// `dump --format json`: every entry's (index, term, type).
fn entries(member: &Path) -> Vec<(u64, u64, String)> {
    let (code, out, stderr) = common::run_cli(&["dump", path_str(member), "--format", "json"]);
    assert!(
        code == 0 || code == 1,
        "dump {}: {stderr}",
        member.display()
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["index"].is_u64())
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["term"].as_u64().unwrap_or(0),
                e["type"].to_string(),
            )
        })
        .collect()
}

/// Packed verifies as original: the same findings per member, the same entries.
fn assert_same_verdict(capture: &str, original: &[PathBuf], packed: &[PathBuf]) {
    assert_eq!(original.len(), packed.len(), "{capture}: member count");
    for (o, p) in original.iter().zip(packed) {
        assert_eq!(o.file_name(), p.file_name(), "{capture}: member names");
    }
    let (code_o, findings_o) = verify(original);
    let (code_p, findings_p) = verify(packed);
    assert_eq!(code_o, code_p, "{capture}: verify exit code");
    assert_eq!(findings_o, findings_p, "{capture}: findings");
    for (o, p) in original.iter().zip(packed) {
        let (eo, ep) = (entries(o), entries(p));
        assert!(!eo.is_empty(), "{}: no entries read", o.display());
        assert_eq!(
            eo,
            ep,
            "{capture} {}: entries (index, term, type)",
            o.display()
        );
    }
}

/// The put values of a txn (nested txns included) into `values`, every key into `keys`.
fn txn_values(txn: &TxnRequest, values: &mut HashSet<Vec<u8>>, keys: &mut Vec<Vec<u8>>) {
    keys.extend(txn.compare.iter().map(|c| c.key.to_vec()));
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                values.insert(p.value.to_vec());
                keys.push(p.key.to_vec());
            }
            Some(request_op::Request::RequestDeleteRange(d)) => keys.push(d.key.to_vec()),
            Some(request_op::Request::RequestRange(r)) => keys.push(r.key.to_vec()),
            Some(request_op::Request::RequestTxn(t)) => txn_values(t, values, keys),
            None => {}
        }
    }
}

/// Every v3 put value (puts and txn puts) of every WAL record of the members, ≥ 4 bytes, less
/// those that occur inside a key (keys are kept: a value "isted" is found in the key
/// "never-existed").
fn original_values(members: &[PathBuf]) -> HashSet<Vec<u8>> {
    original_values_and_keys(members).0
}

/// [`original_values`], and every key of the log.
fn original_values_and_keys(members: &[PathBuf]) -> (HashSet<Vec<u8>>, Vec<Vec<u8>>) {
    let fs = RealFs;
    let mut values = HashSet::new();
    let mut keys = Vec::new();
    for member in members {
        let files = MemberFiles::open(&fs, member).unwrap();
        let mut decoder = files.decoder(0, DecoderMode::Forensic);
        while let Ok(record) = decoder.next_record() {
            if record.record.r#type != ENTRY_TYPE {
                continue;
            }
            let Some(entry) = record.record.data.as_deref().and_then(|d| {
                <raft_replay::proto::raftpb::Entry as prost::Message>::decode(d).ok()
            }) else {
                continue;
            };
            if let Payload::Internal(request) = decode_payload(&entry) {
                if let Some(put) = &request.put {
                    values.insert(put.value.to_vec());
                    keys.push(put.key.to_vec());
                }
                if let Some(delete) = &request.delete_range {
                    keys.push(delete.key.to_vec());
                }
                if let Some(txn) = &request.txn {
                    txn_values(txn, &mut values, &mut keys);
                }
            }
        }
    }
    let mut in_keys: HashSet<&[u8]> = HashSet::new();
    for key in &keys {
        for start in 0..key.len() {
            for end in start + 4..=key.len() {
                in_keys.insert(&key[start..end]);
            }
        }
    }
    values.retain(|v| v.len() >= 4 && !in_keys.contains(v.as_slice()));
    (values, keys)
}

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The original values found in any byte of any file below `dir`: at every position the
/// 4 bytes there select the lengths of the values starting with them, and each is looked up.
fn values_found_in(dir: &Path, values: &HashSet<Vec<u8>>) -> Vec<(PathBuf, usize, usize)> {
    let mut lengths: HashMap<[u8; 4], Vec<usize>> = HashMap::new();
    for v in values {
        let l = lengths.entry(v[..4].try_into().unwrap()).or_default();
        if !l.contains(&v.len()) {
            l.push(v.len());
        }
    }
    let mut found = Vec::new();
    for file in files_below(dir) {
        let bytes = std::fs::read(&file).unwrap();
        for (at, window) in bytes.windows(4).enumerate() {
            let Some(ls) = lengths.get(<&[u8; 4]>::try_from(window).unwrap()) else {
                continue;
            };
            for &l in ls {
                if bytes.len() - at >= l && values.contains(&bytes[at..at + l]) {
                    found.push((file.clone(), at, l));
                }
            }
        }
    }
    found
}

/// No original value of 8 bytes or more in any byte below `dir`; values of 4 to 7 bytes no more
/// often than chance puts them in that many pseudo-random bytes (a 4-byte value turns up about
/// once in 4 GiB of random output: cluster-f's redacted 1 MiB values make ≈ 400 MB of it), with
/// a margin — a value left in place would show up in every member's WAL and db.
fn assert_no_leak(capture: &str, dir: &Path, values: &HashSet<Vec<u8>>) {
    let leaked = values_found_in(dir, values);
    let scanned: u64 = files_below(dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let chance: f64 = values
        .iter()
        .filter(|v| v.len() < 8)
        .map(|v| scanned as f64 / 256f64.powi(v.len() as i32))
        .sum();
    let describe = |hits: &[&(PathBuf, usize, usize)]| -> Vec<String> {
        hits.iter()
            .take(5)
            .map(|(f, at, l)| {
                let bytes = std::fs::read(f).unwrap();
                format!(
                    "{}@{at}: {:?}",
                    f.display(),
                    String::from_utf8_lossy(&bytes[*at..at + l])
                )
            })
            .collect()
    };
    let long: Vec<_> = leaked.iter().filter(|(_, _, l)| *l >= 8).collect();
    assert!(
        long.is_empty(),
        "{capture}: {} original value(s) found: {:?}",
        long.len(),
        describe(&long)
    );
    let short: Vec<_> = leaked.iter().filter(|(_, _, l)| *l < 8).collect();
    eprintln!(
        "{capture}: {} short value hit(s) in {scanned} bytes, {chance:.1} expected by chance",
        short.len()
    );
    assert!(
        (short.len() as f64) <= 4.0 * chance + 3.0,
        "{capture}: {} hits of 4-7 byte values, chance predicts {chance:.1}: {:?}",
        short.len(),
        describe(&short)
    );
}

/// A bundled capture packed with `extra` flags: the pack exits 0 or 1, leaves the input
/// byte-identical, and the unpacked result verifies as the original.
struct Packed {
    members: Vec<PathBuf>,
    summary: serde_json::Value,
    out: PathBuf,
    packed: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

fn pack_capture(capture: &str, extra: &[&str]) -> Packed {
    let members = common::members(capture);
    let root = common::unpacked(capture);
    let before = common::fingerprint(root);
    let (code, stdout, stderr, dir, out) = pack(&members, extra);
    assert!(
        code == 0 || code == 1,
        "{capture}: pack {extra:?} exit {code}: {stderr}"
    );
    assert_eq!(
        common::fingerprint(root),
        before,
        "{capture}: input changed"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["redacted"], extra.contains(&"--redact"));
    let packed = unpack(&out);
    assert_same_verdict(capture, &members, &packed);
    Packed {
        members,
        summary,
        out,
        packed,
        _dir: dir,
    }
}

#[test]
fn packed_captures_verify_like_the_originals_and_match_etcds_hashkv() {
    let mut total = 0;
    for capture in common::captures() {
        let Packed { out, _dir, .. } = pack_capture(&capture, &[]);
        // The replay's HashKV of each packed member equals etcd's own at the capture's last
        // checkpoint, wherever both are at the same applied index.
        let ours = manifest(&out);
        let etcd = common::manifest(&capture);
        let last = etcd["checkpoints"].as_array().unwrap().last().unwrap();
        let mut compared = 0;
        for m in ours["checkpoints"][0]["members"].as_array().unwrap() {
            let theirs = last["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == m["name"]);
            if let Some(t) = theirs.filter(|t| {
                t["raft_applied_index"] == m["raft_applied_index"] && !t["hash"].is_null()
            }) {
                assert_eq!(m["hash"], t["hash"], "{capture} {}: HashKV", m["name"]);
                compared += 1;
            }
        }
        eprintln!("{capture}: {compared} member(s) HashKV-compared with etcd's report");
        total += compared;
        let text = std::fs::read_to_string(out.join("manifest.json")).unwrap();
        assert!(
            !text.contains("raft-replay-pack-"),
            "{capture}: the manifest names the staging dir"
        );
        let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(readme.contains("data.tar.gz"), "{capture}: README");
    }
    assert!(total > 0, "no member's HashKV compared with etcd's");
}

#[test]
fn redacted_captures_verify_alike_and_hold_no_original_value() {
    for capture in common::captures() {
        let Packed {
            members,
            summary,
            out,
            packed,
            _dir,
        } = pack_capture(&capture, &["--redact"]);

        let values = original_values(&members);
        assert!(
            !values.is_empty(),
            "{capture}: the log has put values to look for"
        );
        assert!(
            summary["redaction"]["wal_values"].as_u64().unwrap() >= values.len() as u64,
            "{capture}: {}",
            summary["redaction"]
        );
        assert_no_leak(&capture, &out.join("unpacked"), &values);

        // The HashKV the manifest records is what `hashkv` computes on the redacted member.
        let m = manifest(&out);
        let mut hashed = 0;
        for (member, entry) in packed.iter().zip(m["members"].as_array().unwrap()) {
            let Some(recorded) = entry["hashkv"]["hashkv"].as_u64() else {
                continue;
            };
            let (code, out, stderr) = common::run_cli(&["hashkv", path_str(member)]);
            assert_eq!(code, 0, "hashkv {}: {stderr}", member.display());
            let ours: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                ours["hash"].as_u64(),
                Some(recorded),
                "{capture} {}",
                member.display()
            );
            hashed += 1;
        }
        assert!(hashed > 0, "{capture}: no member's HashKV compared");
    }
}

#[test]
fn redacted_keys_keep_the_verdict_and_leave_no_original_key() {
    for capture in common::captures() {
        let Packed {
            members,
            summary,
            out,
            _dir,
            ..
        } = pack_capture(&capture, &["--redact", "--redact-keys"]);
        assert!(
            summary["redaction"]["keys"].as_u64().unwrap() > 0,
            "{capture}: {}",
            summary["redaction"]
        );
        let (values, keys) = original_values_and_keys(&members);
        let mut keys: HashSet<Vec<u8>> = keys.into_iter().filter(|k| k.len() >= 6).collect();
        keys.extend(values);
        assert!(!keys.is_empty(), "{capture}: keys to look for");
        assert_no_leak(&capture, &out.join("unpacked"), &keys);
    }
}

/// etcdctl puts of secret-looking values while `pack` copies the member.
#[test]
fn packing_a_live_etcd_while_it_serves_writes() {
    let Some((etcd, etcdctl)) = common::etcd_34() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("live1");
    let live = common::LiveEtcd::start(&etcd, &etcdctl, &data);
    for i in 0..50 {
        live.ctl(&[
            "put",
            &format!("warmup/{i}"),
            &format!("live-secret-{i:04}"),
        ])
        .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let (url, ctl) = (live.client_url.clone(), etcdctl.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new(&ctl)
                    .env("ETCDCTL_API", "3")
                    .args(["--endpoints", &url, "put", &format!("busy/{}", i % 64)])
                    .arg(format!("busy-secret-{i:06}"))
                    .output();
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let members = vec![data.clone()];
    let (code, _, stderr, _tmp, out) = pack(&members, &[]);
    let (code_r, _, stderr_r, _tmp_r, out_r) = pack(&members, &["--redact"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    live.stop();
    assert!(writes > 0, "the writer ran");
    assert_eq!(code, 0, "pack of a live etcd: {stderr}");
    assert_eq!(code_r, 0, "pack --redact of a live etcd: {stderr_r}");
    for out in [&out, &out_r] {
        let packed = unpack(out);
        let (code, findings) = verify(&packed);
        assert_eq!(code, 0, "the packed live capture verifies: {findings:?}");
        assert!(entries(&packed[0]).len() > 50);
    }
    let values = original_values(&members);
    assert_no_leak("live", &out_r.join("unpacked"), &values);
}

#[test]
fn bad_input_is_exit_2_with_a_message_and_nothing_written() {
    let members = common::members("cluster-d");
    let root = common::unpacked("cluster-d");
    let before = common::fingerprint(root);
    let no_panic = |stderr: &str| {
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("raft-replay pack:"), "{stderr}");
    };

    let missing = PathBuf::from("/nonexistent/raft-replay-pack-input");
    let (code, _, stderr, _d, out) = pack(&[missing], &[]);
    assert_eq!(code, 2, "{stderr}");
    no_panic(&stderr);
    assert!(!out.exists(), "nothing written for a missing input");

    let (code, _, stderr, _d, out) = pack(&[members[0].clone(), members[0].clone()], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("named"), "{stderr}");
    assert!(!out.exists());

    let busy = tempfile::tempdir().unwrap();
    std::fs::write(busy.path().join("keep"), b"x").unwrap();
    let mut args = vec!["pack", path_str(&members[0]), "--out"];
    args.push(path_str(busy.path()));
    let (code, _, stderr) = common::run_cli(&args);
    assert_eq!(code, 2, "{stderr}");
    no_panic(&stderr);
    assert!(stderr.contains("not empty"), "{stderr}");

    let inside = members[0].join("packed-here");
    let (code, _, stderr) =
        common::run_cli(&["pack", path_str(&members[0]), "--out", path_str(&inside)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inside the input"), "{stderr}");
    assert!(!inside.exists());
    assert_eq!(common::fingerprint(root), before, "input changed");

    // A CRC-damaged WAL packs (its findings are the point of sharing it) but cannot be redacted:
    // a re-encoded copy would not keep the damage.
    let damaged = common::copy_member(&members[0]);
    let segment = common::segments(damaged.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4096] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let (code, _, stderr, _d, _out) = pack(&[damaged.path().to_path_buf()], &[]);
    assert_eq!(code, 1, "damage is a finding, packed: {stderr}");
    let (code, _, stderr, _d, out) = pack(&[damaged.path().to_path_buf()], &["--redact"]);
    assert_eq!(code, 2, "{stderr}");
    no_panic(&stderr);
    assert!(stderr.contains("cannot redact"), "{stderr}");
    assert!(!out.exists());
}

/// etcd itself reads a redacted capture: etcd 3.5.30 boots each member's copy (`gate
/// --rehearse`) and serves the HashKV the manifest records for it (values and keys redacted).
#[test]
fn etcd_boots_a_redacted_capture_and_serves_the_recorded_hashkv() {
    let Some(etcd) = common::etcd_35() else {
        return;
    };
    let Packed {
        out, packed, _dir, ..
    } = pack_capture("cluster-d", &["--redact", "--redact-keys"]);
    let mut args = vec!["gate"];
    args.extend(packed.iter().map(|p| path_str(p)));
    args.extend(["--target", "3.5.30", "--rehearse", path_str(&etcd)]);
    let (code, stdout, stderr) = common::run_cli(&args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let m = manifest(&out);
    let mut served = 0;
    for member in m["checkpoints"][0]["members"].as_array().unwrap() {
        let name = member["name"].as_str().unwrap();
        let Some(line) = stdout.lines().find(|l| {
            l.trim_start()
                .starts_with(&format!("ok       {name}: etcd 3.5.30"))
        }) else {
            continue;
        };
        let hash = format!("HashKV {:#010x}", member["hash"].as_u64().unwrap());
        assert!(
            line.contains(&hash) && line.contains("equals the replay's"),
            "{line} vs {hash}"
        );
        served += 1;
    }
    assert_eq!(served, 3, "d1, d2, d4 serve (d3 was removed):\n{stdout}");
}
