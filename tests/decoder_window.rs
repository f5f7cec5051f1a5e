//! The decoder reads file-backed segments through a window (≈1 MB plus the frame being decoded),
//! not whole: it must hold no more than that, and decode exactly as over whole segments in
//! memory — records, ends, forensic damage and resynchronisation, `last_offset` — on damaged
//! multi-MB WALs, and on files shorter than the file system says.

mod common;

use bytes::Bytes;
use proptest::prelude::*;
use raft_replay::fsio::{MemFs, ReadOnlyFs};
use raft_replay::wal::decoder::{DecodeEnd, DecodedRecord, Decoder, DecoderMode, SegmentSource};
use raft_replay::wal::error::WalError;
use raft_replay::wal::name::SegmentName;

use common::LARGE_SEGMENT as SEGMENT;

/// Everything a read observes.
#[derive(Debug, PartialEq)]
struct Outcome {
    records: Vec<(usize, u64, u64, bool, raft_replay::proto::walpb::Record)>,
    end: DecodeEnd,
    damage: Vec<WalError>,
    last_offset: u64,
    segment_at_end: Option<usize>,
}

fn run(mut decoder: Decoder<'_>) -> (Outcome, u64) {
    let mut records = Vec::new();
    let end = loop {
        match decoder.next_record() {
            Ok(DecodedRecord {
                record,
                segment_index,
                offset,
                frame_len,
                crc_valid,
            }) => {
                if record.r#type == raft_replay::proto::walpb::CRC_TYPE {
                    decoder.reseed(record.crc);
                }
                records.push((segment_index, offset, frame_len, crc_valid, record));
            }
            Err(end) => break end,
        }
    };
    let outcome = Outcome {
        records,
        end,
        damage: std::mem::take(&mut decoder.damage),
        last_offset: decoder.last_offset(),
        segment_at_end: decoder.current_segment_index(),
    };
    (outcome, decoder.max_buffered_bytes())
}

fn in_memory(names: &[SegmentName], bytes: &[Bytes], mode: DecoderMode) -> (Outcome, u64) {
    let segments = common::memory_segments(names, bytes);
    run(Decoder::from_segments(segments, mode))
}

fn from_files(fs: &dyn ReadOnlyFs, names: &[SegmentName], mode: DecoderMode) -> (Outcome, u64) {
    run(Decoder::new(
        names.to_vec(),
        move |name: &SegmentName| {
            let (reader, len) =
                fs.open_read(&std::path::Path::new("/wal").join(&name.file_name))?;
            Ok(SegmentSource {
                reader,
                len,
                whole: None,
            })
        },
        mode,
    ))
}

fn mem_fs(names: &[SegmentName], bytes: &[Bytes]) -> MemFs {
    let mut fs = MemFs::default();
    for (name, b) in names.iter().zip(bytes) {
        fs.insert(
            std::path::Path::new("/wal").join(&name.file_name),
            b.clone(),
        );
    }
    fs
}

/// File-backed reads hold about one read plus the frame being decoded, not a segment: on cut
/// segments and on the preallocated last one, in both modes, with the in-memory result.
#[test]
fn decoder_buffers_a_window_not_a_segment() {
    let (names, bytes) = common::large_wal();
    let fs = mem_fs(&names, &bytes);
    for from in [0, names.len() - 1] {
        let (names, bytes) = (&names[from..], &bytes[from..]);
        for mode in [DecoderMode::Strict, DecoderMode::Forensic] {
            let (expected, whole) = in_memory(names, bytes, mode);
            assert_eq!(expected.end, DecodeEnd::Eof);
            assert!(expected.damage.is_empty());
            assert!(whole >= SEGMENT);
            let (outcome, held) = from_files(&fs, names, mode);
            assert_eq!(outcome, expected, "from segment {from}, {mode:?}");
            let largest_frame = expected.records.iter().map(|r| r.2).max().unwrap();
            assert!(largest_frame > 2_000_000);
            assert!(
                held <= 1024 * 1024 + largest_frame,
                "from segment {from}, {mode:?}: held {held} bytes"
            );
        }
    }
}

/// Large frames back to back, then small ones, then large ones again: each large frame is read
/// exactly (a probe read after one), with the in-memory result, in both modes.
#[test]
fn runs_of_large_frames_decode_as_in_memory() {
    use raft_replay::proto::raftpb::{Entry, HardState};
    let mut writer =
        raft_replay::wal::writer::WalWriter::create_with_segment_size(b"meta", SEGMENT);
    let sizes = [
        700_000, 1_100_000, 520_000, 3_000, 100, 900_000, 2_000_000, 10, 600_000, 40_000,
    ];
    for (i, size) in sizes.iter().cycle().take(40).enumerate() {
        let index = i as u64 + 1;
        let entry = Entry {
            r#type: 0,
            term: 1,
            index,
            data: Some(Bytes::from(vec![(index % 251) as u8; *size])),
        };
        let state = HardState {
            term: 1,
            vote: 1,
            commit: index - 1,
        };
        writer.save(&state, &[entry]);
    }
    let files = writer.files(true);
    let names: Vec<SegmentName> = files
        .iter()
        .map(|(name, _)| raft_replay::wal::name::parse_wal_name(name).unwrap())
        .collect();
    let bytes: Vec<Bytes> = files.iter().map(|(_, b)| b.clone()).collect();
    assert!(names.len() >= 2, "the log crosses a cut");
    let fs = mem_fs(&names, &bytes);
    for mode in [DecoderMode::Strict, DecoderMode::Forensic] {
        let (expected, _) = in_memory(&names, &bytes, mode);
        assert_eq!(expected.end, DecodeEnd::Eof);
        let entries = expected
            .records
            .iter()
            .filter(|r| r.4.r#type == raft_replay::proto::walpb::ENTRY_TYPE)
            .count();
        assert_eq!(entries, 40);
        let (outcome, held) = from_files(&fs, &names, mode);
        assert_eq!(outcome, expected, "{mode:?}");
        assert!(
            held <= 1024 * 1024 + 2_100_000,
            "{mode:?}: held {held} bytes"
        );
    }
}

#[derive(Clone, Debug)]
enum Damage {
    Flip {
        segment: usize,
        at: usize,
        bit: u8,
    },
    ZeroSector {
        segment: usize,
        at: usize,
    },
    /// Zeroes from the start of a clean frame: a zero length word, then skipped bytes.
    ZeroFrame {
        frame: usize,
        len: usize,
    },
    Truncate {
        segment: usize,
        keep: usize,
    },
    Garbage {
        segment: usize,
        at: usize,
        byte: u8,
        len: usize,
    },
    /// A length word claiming a frame of `len` bytes at the start of a clean frame.
    Length {
        frame: usize,
        len: u64,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..3, any::<usize>(), 0u8..8).prop_map(|(segment, at, bit)| Damage::Flip {
            segment,
            at,
            bit
        }),
        (0usize..3, any::<usize>()).prop_map(|(segment, at)| Damage::ZeroSector { segment, at }),
        (any::<usize>(), 8usize..30_000).prop_map(|(frame, len)| Damage::ZeroFrame { frame, len }),
        (0usize..3, any::<usize>()).prop_map(|(segment, keep)| Damage::Truncate { segment, keep }),
        (0usize..3, any::<usize>(), any::<u8>(), 1usize..2_000).prop_map(
            |(segment, at, byte, len)| Damage::Garbage {
                segment,
                at,
                byte,
                len
            }
        ),
        (
            any::<usize>(),
            prop_oneof![1u64..20_000, 900_000u64..12_000_000, any::<u64>()]
        )
            .prop_map(|(frame, len)| Damage::Length { frame, len }),
    ]
}

fn apply(segments: &mut [Vec<u8>], frames: &[(usize, u64)], d: Damage) {
    let n = segments.len();
    match d {
        Damage::Flip { segment, at, bit } => common::flip_bit(&mut segments[segment % n], at, bit),
        Damage::ZeroSector { segment, at } => {
            let s = &mut segments[segment % n];
            let from = (at % (s.len() + 1)) / 512 * 512;
            common::zero_sector_from(s, from)
        }
        Damage::ZeroFrame { frame, len } => {
            let (segment, offset) = frames[frame % frames.len()];
            let s = &mut segments[segment];
            let from = (offset as usize).min(s.len());
            let to = (from + len).min(s.len());
            s[from..to].fill(0);
        }
        Damage::Truncate { segment, keep } => {
            common::truncate_wrapping(&mut segments[segment % n], keep)
        }
        Damage::Garbage {
            segment,
            at,
            byte,
            len,
        } => {
            let s = &mut segments[segment % n];
            if !s.is_empty() {
                let from = at % s.len();
                let to = (from + len).min(s.len());
                s[from..to].fill(byte);
            }
        }
        Damage::Length { frame, len } => {
            let (segment, offset) = frames[frame % frames.len()];
            let s = &mut segments[segment];
            let at = offset as usize;
            if at + 8 <= s.len() {
                s[at..at + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// Over damaged multi-MB segments, and files shorter than the file system says, windowed
    /// file-backed reads give what reads over whole segments give, in strict and forensic mode.
    #[test]
    fn file_windows_match_whole_segments_on_damaged_wals(
        damages in prop::collection::vec(damage(), 1..4),
        extra in prop_oneof![Just(0u64), 1u64..9, 1u64..3_000_000],
    ) {
        type Large = (Vec<SegmentName>, Vec<Bytes>, Vec<(usize, u64)>);
        static LARGE: std::sync::OnceLock<Large> = std::sync::OnceLock::new();
        let (names, bytes, frames) = LARGE.get_or_init(|| {
            let (names, bytes) = common::large_wal();
            let frames = in_memory(&names, &bytes, DecoderMode::Strict)
                .0
                .records
                .iter()
                .map(|r| (r.0, r.1))
                .collect();
            (names, bytes, frames)
        });
        let mut segments: Vec<Vec<u8>> = bytes.iter().map(|b| b.to_vec()).collect();
        for d in damages {
            apply(&mut segments, frames, d);
        }
        let bytes: Vec<Bytes> = segments.into_iter().map(Bytes::from).collect();
        let fs = common::ShrunkFs { inner: mem_fs(names, &bytes), extra };
        for mode in [DecoderMode::Strict, DecoderMode::Forensic] {
            let (expected, _) = in_memory(names, &bytes, mode);
            let (outcome, held) = from_files(&fs, names, mode);
            prop_assert_eq!(&outcome, &expected, "{:?}", mode);
            prop_assert!(held <= 1024 * 1024 + 12_000_000, "held {}", held);
        }
    }
}
