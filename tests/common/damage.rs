//! Damaged copies of real captured members, one builder per damage class. Shared by
//! `tests/reader_outcomes.rs` (what we report) and `tests/diff_etcd.rs` (what etcd does with the
//! same bytes), so both judge exactly the same damage.

use std::path::{Path, PathBuf};

use raft_replay::proto::walpb::Record;
use raft_replay::wal::frame::decode_frame_size;
use raft_replay::wal::writer::encode_records;

/// A record as found in a segment file.
#[derive(Clone, Debug)]
pub struct RawRecord {
    pub offset: usize,
    pub frame_len: usize,
    pub record: Record,
}

/// Walks the frames of a segment up to the first zero length word.
pub fn records_of(bytes: &[u8]) -> Vec<RawRecord> {
    use prost::Message;
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
        if word == 0 {
            break;
        }
        let (len, pad) = decode_frame_size(word);
        let record = Record::decode(&bytes[offset + 8..offset + 8 + len as usize]).unwrap();
        let frame_len = 8 + (len + pad) as usize;
        out.push(RawRecord {
            offset,
            frame_len,
            record,
        });
        offset += frame_len;
    }
    out
}

pub fn entry_index(record: &Record) -> Option<u64> {
    use prost::Message;
    (record.r#type == 2).then(|| {
        raft_replay::proto::raftpb::Entry::decode(record.data.clone().unwrap())
            .unwrap()
            .index
    })
}

/// A member of a capture by its directory name.
pub fn member(capture: &str, name: &str) -> PathBuf {
    super::members(capture)
        .into_iter()
        .find(|m| m.ends_with(name))
        .unwrap_or_else(|| panic!("{capture}/{name}"))
}

/// A member to read: a damaged private copy, or a corpus member itself (never written to).
pub struct Damaged {
    copy: Option<tempfile::TempDir>,
    path: PathBuf,
    /// The damaged (or renamed) file, by name.
    pub file: Option<String>,
    /// Where the damage starts in that file.
    pub offset: Option<u64>,
    /// The raft index the damage is reported at.
    pub raft_index: Option<u64>,
}

impl Damaged {
    fn copy(copy: tempfile::TempDir) -> Damaged {
        Damaged {
            path: copy.path().to_path_buf(),
            copy: Some(copy),
            file: None,
            offset: None,
            raft_index: None,
        }
    }

    /// An undamaged corpus member, read as it is.
    pub fn untouched(member: &Path) -> Damaged {
        Damaged {
            copy: None,
            path: member.to_path_buf(),
            file: None,
            offset: None,
            raft_index: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a private copy (which a reader may modify, as etcd's boot does).
    pub fn is_copy(&self) -> bool {
        self.copy.is_some()
    }

    fn file(mut self, file: impl Into<String>) -> Damaged {
        self.file = Some(file.into());
        self
    }

    fn offset(mut self, offset: usize) -> Damaged {
        self.offset = Some(offset as u64);
        self
    }

    fn raft_index(mut self, index: u64) -> Damaged {
        self.raft_index = Some(index);
        self
    }
}

/// A damaged copy: `damage` gets the bytes of segment `segment_pos` (0 = first, -1 = last).
pub fn damaged(member: &Path, segment_pos: isize, damage: impl FnOnce(&mut Vec<u8>)) -> Damaged {
    let copy = super::copy_member(member);
    let segments = super::segments(copy.path());
    let index = if segment_pos < 0 {
        segments.len() as isize + segment_pos
    } else {
        segment_pos
    } as usize;
    let path = &segments[index];
    let mut bytes = std::fs::read(path).unwrap();
    damage(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    Damaged::copy(copy).file(name)
}

fn first_segment_records(member: &Path) -> Vec<RawRecord> {
    records_of(&std::fs::read(&super::segments(member)[0]).unwrap())
}

/// cluster-a/m1 (one segment, the last): a bit flipped inside the data of its 3001st entry
/// record. etcd: `walpb: crc mismatch` (not torn: no all-zero sector).
pub fn flipped_entry_bit() -> Damaged {
    let m1 = member("cluster-a", "m1");
    let target = first_segment_records(&m1)
        .into_iter()
        .filter(|r| r.record.r#type == 2)
        .nth(3000)
        .unwrap();
    let index = entry_index(&target.record).unwrap();
    damaged(&m1, -1, |b| b[target.offset + target.frame_len - 9] ^= 0x04)
        .offset(target.offset)
        .raft_index(index)
}

/// cluster-a/m1: the last record's length word reached the disk, its body did not (zero from
/// there to the record's end). etcd: `unexpected EOF`, which `wal.Repair` mends at boot.
pub fn torn_last_record() -> Damaged {
    let m1 = member("cluster-a", "m1");
    let last = first_segment_records(&m1).pop().unwrap();
    let end = last.offset + last.frame_len;
    damaged(&m1, -1, |b| b[last.offset + 8..end].fill(0)).offset(last.offset)
}

/// cluster-b/b1: a 512-byte sector in the middle of its first (non-last) segment zeroed.
pub fn zeroed_sector_in_non_last_segment() -> Damaged {
    let b1 = member("cluster-b", "b1");
    damaged(&b1, 0, |b| {
        let at = b.len() / 2 / 512 * 512;
        b[at..at + 512].fill(0);
    })
}

/// cluster-b/b1: the length word of a record in the middle of the first (non-last) segment
/// zeroed. etcd's decoder takes it for the end of the segment and moves on; the next segment's
/// crc record then disagrees (`wal: crc mismatch`).
pub fn zero_length_word_in_non_last_segment() -> Damaged {
    let b1 = member("cluster-b", "b1");
    let records = first_segment_records(&b1);
    let victim = records[records.len() / 2].clone();
    damaged(&b1, 0, |b| b[victim.offset..victim.offset + 8].fill(0)).offset(victim.offset)
}

/// cluster-b/b1: a zero length word and 504 non-zero bytes appended to the first (non-last)
/// segment, whose records are all intact: etcd's decoder ends the segment at the zero word and
/// the CRC chain holds, so etcd reads every entry.
pub fn garbage_after_zero_word_in_non_last_segment() -> Damaged {
    let b1 = member("cluster-b", "b1");
    let len = std::fs::metadata(&super::segments(&b1)[0]).unwrap().len() as usize;
    damaged(&b1, 0, |b| {
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[0xab; 504]);
    })
    .offset(len)
}

/// cluster-b/b1: a bit flipped a third of the way into the first (non-last) segment.
pub fn bit_flip_in_non_last_segment() -> Damaged {
    let b1 = member("cluster-b", "b1");
    damaged(&b1, 0, |b| {
        let at = b.len() / 3;
        b[at] ^= 0x01;
    })
}

/// cluster-b/b1: the first (non-last) segment loses its last 100 bytes. etcd: `unexpected EOF`,
/// which `wal.Repair` cannot mend (it only repairs the last segment).
pub fn truncated_middle_segment() -> Damaged {
    let b1 = member("cluster-b", "b1");
    damaged(&b1, 0, |b| {
        let keep = b.len() - 100;
        b.truncate(keep);
    })
}

fn data_end_of_last_segment(member: &Path) -> usize {
    let segments = super::segments(member);
    let last = records_of(&std::fs::read(segments.last().unwrap()).unwrap())
        .pop()
        .unwrap();
    last.offset + last.frame_len
}

/// cluster-a/m1: a 20 MiB length word right after the last record. etcd 3.4.10+:
/// `wal: max entry size limit exceeded`.
pub fn oversized_length_word() -> Damaged {
    let m1 = member("cluster-a", "m1");
    let end = data_end_of_last_segment(&m1);
    damaged(&m1, -1, |b| {
        b[end..end + 8].copy_from_slice(&(20u64 << 20).to_le_bytes())
    })
    .offset(end)
}

/// cluster-a/m1: non-zero bytes after the zero length word that ends the data of the last
/// segment. etcd stops at the zero word (and zeroes the rest when it opens the WAL to write).
pub fn garbage_after_end_of_data() -> Damaged {
    let m1 = member("cluster-a", "m1");
    let end = data_end_of_last_segment(&m1);
    damaged(&m1, -1, |b| b[end + 8..end + 4096].fill(0xab)).offset(end + 8)
}

/// cluster-b/b1 without its first segment. Its snapshot records all sit in that segment: etcd
/// finds no snapshot to start from and no segment starting at index 0 (`wal: file not found`).
pub fn missing_first_segment() -> Damaged {
    let b1 = member("cluster-b", "b1");
    let copy = super::copy_member(&b1);
    let first = super::segments(copy.path())[0].clone();
    std::fs::remove_file(&first).unwrap();
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    Damaged::copy(copy).file(name)
}

fn rename_seq(segment: &Path, seq: u64) -> (String, u64) {
    let name = segment.file_name().unwrap().to_str().unwrap();
    let (_, index_hex) = name.trim_end_matches(".wal").split_once('-').unwrap();
    let first_index = u64::from_str_radix(index_hex, 16).unwrap();
    let renamed = format!("{seq:016x}-{index_hex}.wal");
    std::fs::rename(segment, segment.with_file_name(&renamed)).unwrap();
    (renamed, first_index)
}

/// cluster-b/b1 with its second segment (sequence 1) renamed to sequence 2. etcd 3.4's
/// `isValidSeq` treats a last sequence of 0 as unset: etcd reads every entry and boots.
/// `file` is the renamed segment, `raft_index` the index its name carries.
pub fn sequence_gap_after_zero() -> Damaged {
    let b1 = member("cluster-b", "b1");
    let copy = super::copy_member(&b1);
    let segments = super::segments(copy.path());
    assert!(segments[1]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("0000000000000001-"));
    let (renamed, first_index) = rename_seq(&segments[1], 2);
    Damaged::copy(copy).file(renamed).raft_index(first_index)
}

/// cluster-b/b1 with its segments renamed to sequences 1 and 3 (sequence 0 gone, 2 missing):
/// `selectWALFiles` picks the first segment for index 0 and `isValidSeq` sees 1 → 3
/// (`wal: file not found`). `file` is the segment after the gap.
pub fn sequence_gap_elsewhere() -> Damaged {
    let b1 = member("cluster-b", "b1");
    let copy = super::copy_member(&b1);
    let segments = super::segments(copy.path());
    assert_eq!(segments.len(), 2);
    // The later one first, so no two names ever collide.
    let (after_gap, first_index) = rename_seq(&segments[1], 3);
    rename_seq(&segments[0], 1);
    Damaged::copy(copy).file(after_gap).raft_index(first_index)
}

/// The `.snap` files of a member dir, sorted by name (oldest first).
pub fn snap_files(member: &Path) -> Vec<PathBuf> {
    let snap_dir = member.join("member").join("snap");
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    snaps.sort();
    snaps
}

/// The newest `.snap` of `capture/name` cut to half its length: `snap.Read` fails on it, etcd's
/// `LoadNewestAvailable` renames it `.broken` and takes the next older one that matches.
pub fn truncated_newest_snap(capture: &str, name: &str) -> Damaged {
    let copy = super::copy_member(&member(capture, name));
    let newest = snap_files(copy.path()).pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    file.set_len(len / 2).unwrap();
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    Damaged::copy(copy).file(name)
}

/// Re-encode the last segment from its middle record on, with `edit` applied to the list of
/// (record type, data), keeping a valid CRC chain.
pub fn reencoded(member: &Path, edit: impl FnOnce(&mut Vec<(i64, Option<Vec<u8>>)>)) -> Damaged {
    damaged(member, -1, |b| {
        let records = records_of(b);
        let from = records.len() / 2;
        // The chain value before record `from` is the stored CRC of the record before it.
        let mut crc = records[from - 1].record.crc;
        let mut list: Vec<(i64, Option<Vec<u8>>)> = records[from..]
            .iter()
            .map(|r| (r.record.r#type, r.record.data.as_ref().map(|d| d.to_vec())))
            .collect();
        edit(&mut list);
        let encoded = encode_records(&mut crc, list.iter().map(|(t, d)| (*t, d.as_deref())));
        let start = records[from].offset;
        let old_end = records.last().map(|r| r.offset + r.frame_len).unwrap();
        b[start..old_end.max(start + encoded.len())].fill(0);
        b[start..start + encoded.len()].copy_from_slice(&encoded);
    })
}

/// cluster-a/m1: a record of type 9 (valid CRC). etcd: `unexpected block type 9`.
pub fn unknown_record_type() -> Damaged {
    reencoded(&member("cluster-a", "m1"), |list| list[2].0 = 9)
}

/// cluster-a/m1: an entry record (valid CRC) whose payload is not a raftpb.Entry. etcd panics in
/// `pbutil.MustUnmarshal` ("unmarshal should never fail").
pub fn undecodable_entry_payload() -> Damaged {
    reencoded(&member("cluster-a", "m1"), |list| {
        let i = list.iter().position(|(t, _)| *t == 2).unwrap();
        list[i].1 = Some(vec![0xff; 7]);
    })
}

/// cluster-a/m1: one entry record dropped (chain re-encoded). `raft_index` is the entry after
/// the gap. etcd's ReadAll from before it: `wal: slice bounds out of range`.
pub fn entry_index_gap() -> Damaged {
    use prost::Message;
    let mut removed_index = 0;
    let damaged = reencoded(&member("cluster-a", "m1"), |list| {
        let i = list.iter().position(|(t, _)| *t == 2).unwrap();
        removed_index = raft_replay::proto::raftpb::Entry::decode(&list[i].1.clone().unwrap()[..])
            .unwrap()
            .index;
        list.remove(i);
    });
    damaged.raft_index(removed_index + 1)
}

/// cluster-a/m1: a second metadata record with other bytes. etcd:
/// `wal: conflicting metadata found`.
pub fn metadata_conflict() -> Damaged {
    reencoded(&member("cluster-a", "m1"), |list| {
        list.insert(1, (1, Some(b"other metadata".to_vec())))
    })
}

/// cluster-a/m1: the first byte of a mid-log entry record's protobuf set to 0x0f (field 1 with
/// the invalid wire type 7). etcd: `proto: wrong wireType = 7 for field Type`.
pub fn record_not_protobuf() -> Damaged {
    let m1 = member("cluster-a", "m1");
    let target = first_segment_records(&m1)
        .into_iter()
        .filter(|r| r.record.r#type == 2)
        .nth(2000)
        .unwrap();
    damaged(&m1, -1, |b| b[target.offset + 8] = 0x0f).offset(target.offset)
}

/// cluster-a/m1: a mid-log record replaced by a 2-byte record whose protobuf ends inside a
/// varint (`08 82`). etcd's generated `Unmarshal` returns `io.ErrUnexpectedEOF` for it, and in
/// the last segment `wal.Repair` truncates the segment there and etcd boots without the rest.
pub fn record_ending_inside_a_varint() -> Damaged {
    let m1 = member("cluster-a", "m1");
    let records = first_segment_records(&m1);
    let target = records[records.len() / 2].clone();
    assert!(target.frame_len >= 16);
    damaged(&m1, -1, |b| {
        let word = 2u64 | (1 << 63) | (6 << 56);
        b[target.offset..target.offset + 8].copy_from_slice(&word.to_le_bytes());
        b[target.offset + 8..target.offset + 16].copy_from_slice(&[0x08, 0x82, 0, 0, 0, 0, 0, 0]);
    })
    .offset(target.offset)
}

/// cluster-a/m3 (no `.snap` files) with a directory named like a segment after its last one:
/// every reader lists it and fails to read it ("is a directory").
pub fn directory_as_segment() -> Damaged {
    let copy = super::copy_member(&member("cluster-a", "m3"));
    let name = "0000000000000001-00000000ffffffff.wal";
    std::fs::create_dir(copy.path().join("member").join("wal").join(name)).unwrap();
    Damaged::copy(copy).file(name)
}

/// cluster-a/m3 with every `.wal` file removed (an empty wal dir).
pub fn no_wal_files() -> Damaged {
    let copy = super::copy_member(&member("cluster-a", "m3"));
    for segment in super::segments(copy.path()) {
        std::fs::remove_file(segment).unwrap();
    }
    Damaged::copy(copy)
}
