//! Inputs the fuzz targets (`fuzz/`, `make fuzz`) failed on, minimised, as plain tests: each
//! asserts the property the target checks, on the input that broke it.

mod common;

use std::path::Path;

use raft_replay::backend::error::{Damage, DbError};
use raft_replay::backend::DbReport;
use raft_replay::mvcc::EtcdVersion;
use raft_replay::sim::script::{parse_script, render_script, Block};
use raft_replay::MemFs;

/// What `render_script` writes, `parse_script` reads back as the same blocks (fuzz target
/// `scenario`): the writer `REWRITE=1` uses must not change a script it did not run.
fn assert_render_round_trips(text: &str) -> Vec<Block> {
    let blocks = parse_script(text).expect("the script parses");
    let rendered = render_script(&blocks);
    let again = parse_script(&rendered)
        .unwrap_or_else(|e| panic!("rendered script does not parse ({e}): {rendered:?}"));
    let strip = |b: &[Block]| -> Vec<(Vec<String>, String, String)> {
        b.iter()
            .map(|b| (b.comments.clone(), b.command.clone(), b.expected.clone()))
            .collect()
    };
    assert_eq!(strip(&again), strip(&blocks), "rendered: {rendered:?}");
    blocks
}

#[test]
fn an_expected_line_ending_in_a_carriage_return_renders_back_unchanged() {
    // `str::lines` drops one `\r` before each `\n`: "x\r\r\n" is the line "x\r".
    let blocks =
        assert_render_round_trips("stabilize\n----\nn1: leader\r\r\n# c\r\r\n\nnext\r\n----\n");
    assert_eq!(blocks[0].expected, "n1: leader\r\n# c\r");
    assert_eq!(blocks[1].command, "next");
}

#[test]
fn a_comment_line_ending_in_a_carriage_return_renders_back_unchanged() {
    let blocks = assert_render_round_trips("# header\r\r\nstabilize\n----\n");
    assert_eq!(blocks[0].comments, vec!["# header\r".to_string()]);
}

#[test]
fn an_indented_hash_line_is_a_comment_not_a_command() {
    // The command is the line trimmed: an indented `#…` line would be the command `#…`, which
    // renders at the start of a line — a comment when read back.
    let blocks = assert_render_round_trips("  # indented note\nstabilize\n----\nok\n");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].command, "stabilize");
    assert_eq!(blocks[0].comments, vec!["  # indented note".to_string()]);
}

/// Fuzz target `bbolt`: page damage is located inside the file. An element whose key position
/// points past its page was located at the end of the page (the next page's first byte; for the
/// last page of a file, a byte past its end) instead of at the element header whose field is
/// wrong.
#[test]
fn a_key_outside_its_page_is_located_at_its_element_header() {
    let member = common::damage::member("cluster-a", "m3");
    let mut bytes = std::fs::read(member.join("member/snap/db")).unwrap();
    // Page 4 of cluster-a/m3's db: a leaf of the `key` bucket, reachable.
    let page = 4;
    let base = page * 4096;
    assert_eq!(bytes[base + 8], 0x02, "page 4 is a leaf");
    let count = u16::from_le_bytes([bytes[base + 10], bytes[base + 11]]) as usize;
    let header = base + 16 + (count - 1) * 16;
    bytes[header + 4..header + 8].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let len = bytes.len() as u64;
    let mut fs = MemFs::default();
    fs.insert("/db", bytes);
    let report = DbReport::build(&fs, Path::new("/db"), 0, EtcdVersion::default()).unwrap();
    let located: Vec<(u64, u64)> = report
        .findings
        .iter()
        .filter_map(|f| match &f.damage {
            Some(DbError::Damage {
                page,
                offset,
                damage: Damage::ElementOutOfPage { what: "key", .. },
            }) => Some((*page, *offset)),
            _ => None,
        })
        .collect();
    assert_eq!(
        located,
        vec![(page as u64, header as u64)],
        "{:?}",
        report.findings
    );
    assert!(located.iter().all(|(_, offset)| *offset < len));
}

/// Fuzz target `bbolt`: a bucket value of 8 to 15 bytes whose root field is 0 (an inline bucket)
/// was sliced past its end (a panic); it is `BadBucket` damage at its element.
#[test]
fn a_bucket_value_shorter_than_its_header_is_damage_not_a_panic() {
    let member = common::damage::member("cluster-a", "m3");
    let mut bytes = std::fs::read(member.join("member/snap/db")).unwrap();
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    // The meta in use (higher txid) names the root bucket's page: a leaf of bucket elements.
    let meta = if le64(&bytes, 4096 + 64) > le64(&bytes, 64) {
        4096
    } else {
        0
    };
    let root = le64(&bytes, meta + 32) as usize * 4096;
    assert_eq!(bytes[root + 8], 0x02, "the root bucket's page is a leaf");
    let header = root + 16;
    assert_eq!(le32(&bytes, header) & 1, 1, "element 0 is a bucket");
    let value = header + le32(&bytes, header + 4) + le32(&bytes, header + 8);
    bytes[header + 12..header + 16].copy_from_slice(&12u32.to_le_bytes());
    bytes[value..value + 8].fill(0);
    let mut fs = MemFs::default();
    fs.insert("/db", bytes);
    let report = DbReport::build(&fs, Path::new("/db"), 0, EtcdVersion::default()).unwrap();
    assert!(
        report.findings.iter().any(|f| matches!(
            &f.damage,
            Some(DbError::Damage { offset, damage: Damage::BadBucket { index: 0, .. }, .. })
                if *offset == header as u64
        )),
        "{:?}",
        report.findings
    );
}
