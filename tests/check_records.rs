//! The invariant scan walks records with its own zero-copy framing (`check::records`). It must
//! yield exactly the records etcd's reader yields — `wal::Decoder` plus ReadAll's stops (a crc
//! record breaking the chain, an unknown record type) — on real captures and on damaged WALs.

mod check_support;
mod common;

use bytes::Bytes;
use proptest::prelude::*;
use raft_replay::check::records::{RawRecord, RecordWalk, SegmentBytes};
use raft_replay::proto::raftpb::{Entry, HardState};
use raft_replay::proto::walpb::{WalSnapshot, CRC_TYPE, SNAPSHOT_TYPE};
use raft_replay::wal::decoder::{Decoder, DecoderMode};
use raft_replay::wal::name::{parse_wal_name, SegmentName};
use raft_replay::wal::writer::WalWriter;

fn reference(names: &[SegmentName], bytes: &[Bytes]) -> Vec<RawRecord> {
    let segments = common::memory_segments(names, bytes);
    let mut decoder = Decoder::from_segments(segments, DecoderMode::Strict);
    let mut out = Vec::new();
    while let Ok(d) = decoder.next_record() {
        let t = d.record.r#type;
        if t == CRC_TYPE {
            let running = decoder.running_crc();
            if running != 0 && d.record.crc != running {
                break;
            }
            decoder.reseed(d.record.crc);
        } else if !(1..=SNAPSHOT_TYPE).contains(&t) {
            break;
        }
        out.push(RawRecord {
            record_type: t,
            crc: d.record.crc,
            data: d.record.data.clone().unwrap_or_default(),
            segment: d.segment_index as u32,
            offset: d.offset,
            known_entry: None,
        });
    }
    out
}

fn walk(names: &[SegmentName], bytes: &[Bytes]) -> Vec<RawRecord> {
    RecordWalk::new(names.to_vec(), SegmentBytes::Memory(bytes.to_vec())).collect()
}

fn load(member: &std::path::Path) -> (Vec<SegmentName>, Vec<Bytes>) {
    let wal = member.join("member/wal");
    let mut names: Vec<String> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    let bytes = names
        .iter()
        .map(|n| Bytes::from(std::fs::read(wal.join(n)).unwrap()))
        .collect();
    (
        names.iter().map(|n| parse_wal_name(n).unwrap()).collect(),
        bytes,
    )
}

#[test]
fn same_records_as_the_decoder_on_every_corpus_member() {
    for capture in common::captures() {
        for member in check_support::corpus_members(&capture) {
            let (names, bytes) = load(&member);
            let expected = reference(&names, &bytes);
            assert!(!expected.is_empty());
            assert_eq!(
                walk(&names, &bytes),
                expected,
                "{capture} {}",
                member.display()
            );
        }
    }
}

/// A WAL of small segments: entries with payloads, states, a snapshot record, two cuts or more.
fn small_wal() -> (Vec<SegmentName>, Vec<Vec<u8>>) {
    let mut writer = WalWriter::create_with_segment_size(b"meta", 4096);
    for i in 1..=60u64 {
        let entry = Entry {
            r#type: 0,
            term: if i > 40 { 3 } else { 1 + i / 20 },
            index: i,
            data: Some(Bytes::from(vec![(i % 251) as u8; (i * 7 % 200) as usize])),
        };
        writer.save(
            &HardState {
                term: if i > 40 { 3 } else { 1 + i / 20 },
                vote: if i > 40 { 2 } else { 1 },
                commit: i - 1,
            },
            &[entry],
        );
        if i == 40 {
            // A new leader overwrites the uncommitted tail 39..=40: the first versions are in the
            // file but not in the resolved log.
            let rewrite: Vec<Entry> = (39..=40)
                .map(|j| Entry {
                    r#type: 0,
                    term: 3,
                    index: j,
                    data: Some(Bytes::from(vec![0xee; 33])),
                })
                .collect();
            writer.save(
                &HardState {
                    term: 3,
                    vote: 2,
                    commit: 38,
                },
                &rewrite,
            );
        }
        if i == 30 {
            writer.save_snapshot(&WalSnapshot {
                index: 29,
                term: 2,
                conf_state: None,
            });
        }
    }
    let files = writer.files(true);
    assert!(files.len() >= 3, "small segments are cut");
    (
        files
            .iter()
            .map(|(n, _)| parse_wal_name(n).unwrap())
            .collect(),
        files.into_iter().map(|(_, b)| b.to_vec()).collect(),
    )
}

#[derive(Clone, Debug)]
enum Damage {
    Flip { segment: usize, at: usize, bit: u8 },
    ZeroSector { segment: usize, sector: usize },
    Truncate { segment: usize, keep: usize },
    Garbage { segment: usize, at: usize, byte: u8 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..8, any::<usize>(), 0u8..8).prop_map(|(segment, at, bit)| Damage::Flip {
            segment,
            at,
            bit
        }),
        (0usize..8, 0usize..16)
            .prop_map(|(segment, sector)| Damage::ZeroSector { segment, sector }),
        (0usize..8, any::<usize>()).prop_map(|(segment, keep)| Damage::Truncate { segment, keep }),
        (0usize..8, any::<usize>(), any::<u8>()).prop_map(|(segment, at, byte)| Damage::Garbage {
            segment,
            at,
            byte
        }),
    ]
}

fn apply(segments: &mut [Vec<u8>], d: Damage) {
    let n = segments.len();
    match d {
        Damage::Flip { segment, at, bit } => common::flip_bit(&mut segments[segment % n], at, bit),
        Damage::ZeroSector { segment, sector } => {
            common::zero_sector_from(&mut segments[segment % n], sector.saturating_mul(512))
        }
        Damage::Truncate { segment, keep } => {
            common::truncate_wrapping(&mut segments[segment % n], keep)
        }
        Damage::Garbage { segment, at, byte } => {
            let s = &mut segments[segment % n];
            if !s.is_empty() {
                let i = at % s.len();
                s[i] = byte;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn same_records_as_the_decoder_on_damaged_wals(damages in prop::collection::vec(damage(), 1..4)) {
        let (names, mut segments) = small_wal();
        for d in damages {
            apply(&mut segments, d);
        }
        let bytes: Vec<Bytes> = segments.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(walk(&names, &bytes), reference(&names, &bytes));
    }
}

/// The scan trusting etcd's boot read (no CRC recomputation, ending where the read ended) finds
/// exactly what the scan validating every record finds.
fn same_scan(fs: &dyn raft_replay::fsio::ReadOnlyFs, path: &std::path::Path) -> Result<(), String> {
    use raft_replay::check::scan::{scan_member, scan_member_after};
    use raft_replay::member::{read_member, MemberFiles};
    let Ok(files) = MemberFiles::open(fs, path) else {
        return Ok(());
    };
    let read = read_member(&files, DecoderMode::Strict);
    let trusted = scan_member_after("m", &files, Some(&read));
    let full = scan_member("m", &files);
    let key = |s: &raft_replay::check::MemberScan| {
        (
            s.record_count,
            s.entry_records,
            s.log.base_index,
            s.log.digests(),
            s.hard_state,
            s.commit,
            s.findings.clone(),
        )
    };
    if key(&trusted) == key(&full) {
        Ok(())
    } else {
        Err(format!(
            "trusted scan: {} records, {:?}\nfull scan: {} records, {:?}",
            trusted.record_count, trusted.findings, full.record_count, full.findings
        ))
    }
}

#[test]
fn trusting_the_boot_read_changes_nothing_on_the_corpus() {
    for capture in common::captures() {
        for member in check_support::corpus_members(&capture) {
            same_scan(&raft_replay::fsio::RealFs, &member).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn trusting_the_boot_read_changes_nothing_on_damaged_wals(
        damages in prop::collection::vec(damage(), 0..3)
    ) {
        let (names, mut segments) = small_wal();
        for d in damages {
            apply(&mut segments, d);
        }
        let mut fs = raft_replay::fsio::MemFs::default();
        for (name, bytes) in names.iter().zip(segments) {
            fs.insert(std::path::Path::new("/m/member/wal").join(&name.file_name), bytes);
        }
        prop_assert_eq!(same_scan(&fs, std::path::Path::new("/m")), Ok(()));
    }
}

/// `RealFs`, counting the bytes read through `open_read`.
struct CountingFs {
    bytes_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

struct CountingReader<'a> {
    inner: Box<dyn std::io::Read + 'a>,
    bytes_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes_read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl raft_replay::fsio::ReadOnlyFs for CountingFs {
    fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        raft_replay::fsio::RealFs.list_dir(dir)
    }
    fn read(&self, path: &std::path::Path) -> std::io::Result<Bytes> {
        let bytes = raft_replay::fsio::RealFs.read(path)?;
        self.bytes_read
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(bytes)
    }
    fn is_dir(&self, path: &std::path::Path) -> bool {
        raft_replay::fsio::RealFs.is_dir(path)
    }
    fn len(&self, path: &std::path::Path) -> std::io::Result<u64> {
        raft_replay::fsio::RealFs.len(path)
    }
    fn open_read(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<(Box<dyn std::io::Read + '_>, u64)> {
        let (inner, len) = raft_replay::fsio::RealFs.open_read(path)?;
        let reader = CountingReader {
            inner,
            bytes_read: self.bytes_read.clone(),
        };
        Ok((Box::new(reader), len))
    }
}

/// The walk over files reads segments on demand: the same records as over whole segments in
/// memory, but the preallocated tail of the last segment is not read (at most the first 1 MB
/// read, or twice what the records span).
#[test]
fn file_walk_reads_only_the_written_part_of_the_last_segment() {
    for capture in common::captures() {
        for member in check_support::corpus_members(&capture) {
            let (names, bytes) = load(&member);
            let in_memory = walk(&names, &bytes);
            let fs = CountingFs {
                bytes_read: Default::default(),
            };
            let from_files: Vec<RawRecord> = RecordWalk::new(
                names.clone(),
                SegmentBytes::Files {
                    fs: &fs,
                    wal_dir: member.join("member/wal"),
                },
            )
            .collect();
            assert_eq!(from_files, in_memory, "{capture} {}", member.display());
            let before_last: u64 = bytes[..bytes.len() - 1]
                .iter()
                .map(|b| b.len() as u64)
                .sum();
            let last_end = in_memory
                .iter()
                .filter(|r| r.segment as usize == names.len() - 1)
                .map(|r| r.offset + 8 + r.data.len() as u64 + 64)
                .max()
                .unwrap_or(0);
            let bound = before_last + (2 * last_end).max(1024 * 1024);
            let read = fs.bytes_read.load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                read <= bound,
                "{capture} {}: read {read} bytes, the records need {bound}",
                member.display()
            );
            let total: u64 = bytes.iter().map(|b| b.len() as u64).sum();
            if total > bound {
                assert!(read < total, "{capture} {}", member.display());
            }
        }
    }
}

/// The file walk holds a window of about one read plus the frame being framed, not a whole
/// segment: on cut segments and on the (preallocated) last one, with the same records as the
/// walk over whole segments in memory.
#[test]
fn file_walk_buffers_a_window_not_a_segment() {
    let (names, bytes) = common::large_wal();
    let mut fs = raft_replay::fsio::MemFs::default();
    for (name, b) in names.iter().zip(&bytes) {
        fs.insert(
            std::path::Path::new("/wal").join(&name.file_name),
            b.clone(),
        );
    }
    // All segments (two cut, then the last), and the last one alone.
    for from in [0, names.len() - 1] {
        let (names, bytes) = (&names[from..], &bytes[from..]);
        let in_memory = walk(names, bytes);
        assert_eq!(in_memory, reference(names, bytes));
        let mut file_walk = RecordWalk::new(
            names.to_vec(),
            SegmentBytes::Files {
                fs: &fs,
                wal_dir: "/wal".into(),
            },
        );
        let from_files: Vec<RawRecord> = file_walk.by_ref().collect();
        assert_eq!(from_files, in_memory, "from segment {from}");
        assert_eq!(file_walk.stopped, None);
        let largest_frame = in_memory
            .iter()
            .map(|r| 8 + r.data.len() as u64 + 64)
            .max()
            .unwrap();
        assert!(largest_frame > 2_000_000);
        let held = file_walk.max_buffered_bytes();
        assert!(
            held <= 1024 * 1024 + largest_frame,
            "from segment {from}: held {held} bytes, segments of {:?}",
            bytes.iter().map(|b| b.len()).collect::<Vec<_>>()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Over damaged multi-MB segments, and files shorter than the file system says, the file
    /// walk's windows yield what the walk over whole segments yields, with the same stop.
    #[test]
    fn file_walk_windows_match_whole_segments_on_damaged_wals(
        damages in prop::collection::vec(damage(), 0..3),
        extra in prop_oneof![Just(0u64), 1u64..9, 1u64..3_000_000],
    ) {
        static LARGE: std::sync::OnceLock<(Vec<SegmentName>, Vec<Bytes>)> =
            std::sync::OnceLock::new();
        let (names, bytes) = LARGE.get_or_init(common::large_wal);
        let mut segments: Vec<Vec<u8>> = bytes.iter().map(|b| b.to_vec()).collect();
        for d in damages {
            apply(&mut segments, d);
        }
        let bytes: Vec<Bytes> = segments.into_iter().map(Bytes::from).collect();
        let mut memory = RecordWalk::new(names.clone(), SegmentBytes::Memory(bytes.clone()));
        let in_memory: Vec<RawRecord> = memory.by_ref().collect();
        let mut fs = common::ShrunkFs { inner: raft_replay::fsio::MemFs::default(), extra };
        for (name, b) in names.iter().zip(&bytes) {
            fs.inner.insert(std::path::Path::new("/wal").join(&name.file_name), b.clone());
        }
        let mut files = RecordWalk::new(
            names.clone(),
            SegmentBytes::Files { fs: &fs, wal_dir: "/wal".into() },
        );
        let from_files: Vec<RawRecord> = files.by_ref().collect();
        prop_assert_eq!(from_files, in_memory);
        prop_assert_eq!(files.stopped, memory.stopped);
    }
}
