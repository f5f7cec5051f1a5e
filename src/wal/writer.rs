//! A WAL writer producing etcd's exact bytes, in memory, with etcd's durability behaviour made
//! explicit: what was handed to the OS, what was fsynced, and where segments were cut.
//!
//! etcd buffers writes in a `PageWriter` (4 KiB pages, 128 KiB watermark) and decides a cut
//! from the *OS* file offset, which excludes bytes still buffered — so the cut lands at the first
//! Save after the flushed data crossed the segment size. We model the buffer to match.

use bytes::Bytes;
use prost::Message;

use super::frame::encode_frame_size;
use super::name::wal_name;
use super::SEGMENT_SIZE_BYTES;
use crate::proto::raftpb::{Entry, HardState};
use crate::proto::walpb::{
    Record, WalSnapshot, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE,
};

/// `walPageBytes = 8 * minSectorSize`.
const PAGE_BYTES: u64 = 4096;
/// `defaultBufferBytes = 128 * 1024`.
const BUFFER_WATERMARK_BYTES: u64 = 128 * 1024;

#[derive(Clone, Debug)]
pub struct WriterSegment {
    pub name: String,
    /// Every byte written to this segment, buffered or not.
    pub bytes: Vec<u8>,
    /// Bytes handed to the OS (a process crash keeps these; a power failure may not).
    pub os_len: u64,
    /// Bytes made durable by fdatasync (a power failure keeps these).
    pub synced_len: u64,
}

/// A point where etcd fsyncs: everything up to it survives a power failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPoint {
    pub segment_index: usize,
    /// Durable bytes of that segment; earlier segments are durable entirely.
    pub durable_len: u64,
    pub last_raft_index: u64,
    pub hard_state: HardState,
    pub reason: SyncReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncReason {
    Create,
    /// `raft.MustSync`: entries, or a term or vote change.
    MustSync,
    Cut,
    SaveSnapshot,
    Explicit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveOutcome {
    pub synced: bool,
    pub cut: bool,
}

/// The PageWriter's bookkeeping (contents live in the segment's `bytes`).
#[derive(Clone, Copy, Debug, Default)]
struct PageBuffer {
    page_offset: u64,
    buffered: u64,
}

#[derive(Clone, Debug)]
pub struct WalWriter {
    segment_size: u64,
    segments: Vec<WriterSegment>,
    crc: u32,
    metadata: Vec<u8>,
    /// The last non-empty HardState saved by this process (`w.state`).
    state: HardState,
    /// The index of the last entry saved (`w.enti`).
    last_raft_index: u64,
    page: PageBuffer,
    sync_points: Vec<SyncPoint>,
}

/// One frame as etcd's encoder makes it: the CRC chained over `data` into `crc` (a crc record
/// stores the running value and leaves it unchanged), length word, record, zero padding.
pub fn encode_record(crc: &mut u32, record_type: i64, data: Option<&[u8]>) -> Vec<u8> {
    if let Some(d) = data {
        *crc = crc32c::crc32c_append(*crc, d);
    }
    let record = Record {
        r#type: record_type,
        crc: *crc,
        data: data.map(Bytes::copy_from_slice),
    };
    let body_len = record.encoded_len() as u64;
    let (length_word, pad_len) = encode_frame_size(body_len);
    let mut frame = Vec::with_capacity((8 + body_len + pad_len) as usize);
    frame.extend_from_slice(&length_word.to_le_bytes());
    record.encode(&mut frame).expect("Vec grows as needed");
    frame.resize(frame.len() + pad_len as usize, 0);
    frame
}

/// Frames a sequence of `(type, data)` records as one stretch of a segment, chaining the CRC from
/// `crc` (a crc record stores the running value). Used to build or re-encode segments with a
/// valid chain, e.g. a real capture with one record changed.
pub fn encode_records<'a>(
    crc: &mut u32,
    records: impl IntoIterator<Item = (i64, Option<&'a [u8]>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (record_type, data) in records {
        out.extend_from_slice(&encode_record(crc, record_type, data));
    }
    out
}

/// etcd's `raft.MustSync`.
pub fn must_sync(state: &HardState, previous: &HardState, entry_count: usize) -> bool {
    entry_count != 0 || state.vote != previous.vote || state.term != previous.term
}

impl WalWriter {
    /// etcd's `wal.Create`: crc(0), metadata, snapshot{0,0}, fsync.
    pub fn create(metadata: &[u8]) -> WalWriter {
        WalWriter::create_with_segment_size(metadata, SEGMENT_SIZE_BYTES)
    }

    pub fn create_with_segment_size(metadata: &[u8], segment_size: u64) -> WalWriter {
        assert!(
            segment_size >= PAGE_BYTES,
            "segment size below a page makes no sense"
        );
        let mut writer = WalWriter {
            segment_size,
            segments: vec![WriterSegment {
                name: wal_name(0, 0),
                bytes: Vec::new(),
                os_len: 0,
                synced_len: 0,
            }],
            crc: 0,
            metadata: metadata.to_vec(),
            state: HardState::default(),
            last_raft_index: 0,
            page: PageBuffer::default(),
            sync_points: Vec::new(),
        };
        writer.encode(CRC_TYPE, None);
        writer.encode(METADATA_TYPE, Some(metadata.to_vec()));
        writer.encode(SNAPSHOT_TYPE, Some(WalSnapshot::default().encode_to_vec()));
        writer.sync(SyncReason::Create);
        writer
    }

    /// Continue an existing WAL as etcd does after `Open` + `ReadAll` in write mode: appends go
    /// to the end of the last segment's valid data, the chain continues from `crc`, and `state`
    /// starts empty (ReadAll does not fill it, so the first Save syncs if it has any vote/term).
    pub fn resume(
        segments: Vec<(String, Vec<u8>)>,
        crc: u32,
        metadata: &[u8],
        last_raft_index: u64,
        segment_size: u64,
    ) -> WalWriter {
        assert!(!segments.is_empty(), "resume needs at least one segment");
        let segments: Vec<WriterSegment> = segments
            .into_iter()
            .map(|(name, bytes)| {
                let len = bytes.len() as u64;
                WriterSegment {
                    name,
                    bytes,
                    os_len: len,
                    synced_len: len,
                }
            })
            .collect();
        let tail_len = segments.last().map(|s| s.bytes.len() as u64).unwrap_or(0);
        WalWriter {
            segment_size,
            segments,
            crc,
            metadata: metadata.to_vec(),
            state: HardState::default(),
            last_raft_index,
            page: PageBuffer {
                page_offset: tail_len,
                buffered: 0,
            },
            sync_points: Vec::new(),
        }
    }

    pub fn segments(&self) -> &[WriterSegment] {
        &self.segments
    }

    pub fn sync_points(&self) -> &[SyncPoint] {
        &self.sync_points
    }

    pub fn running_crc(&self) -> u32 {
        self.crc
    }

    pub fn last_raft_index(&self) -> u64 {
        self.last_raft_index
    }

    /// etcd's `Save`: entries, then the state, then either a sync (MustSync), nothing, or a cut.
    pub fn save(&mut self, state: &HardState, entries: &[Entry]) -> SaveOutcome {
        if state.is_empty() && entries.is_empty() {
            return SaveOutcome {
                synced: false,
                cut: false,
            };
        }
        let sync_needed = must_sync(state, &self.state, entries.len());
        for entry in entries {
            self.encode(ENTRY_TYPE, Some(entry.encode_to_vec()));
            self.last_raft_index = entry.index;
        }
        self.save_state(state);
        if self.tail().os_len < self.segment_size {
            if sync_needed {
                self.sync(SyncReason::MustSync);
            }
            return SaveOutcome {
                synced: sync_needed,
                cut: false,
            };
        }
        self.cut();
        SaveOutcome {
            synced: true,
            cut: true,
        }
    }

    /// etcd's `SaveSnapshot`: the record, `enti` raised to the snapshot index, always a sync.
    pub fn save_snapshot(&mut self, snapshot: &WalSnapshot) {
        self.encode(SNAPSHOT_TYPE, Some(snapshot.encode_to_vec()));
        self.last_raft_index = self.last_raft_index.max(snapshot.index);
        self.sync(SyncReason::SaveSnapshot);
    }

    /// etcd's `Sync` (called by the server after saving a snapshot).
    pub fn sync_now(&mut self) {
        self.sync(SyncReason::Explicit);
    }

    /// The segment files as etcd leaves them: closed segments end at their last record, the
    /// tail is preallocated with zeros to the segment size when `preallocate_tail` is set.
    pub fn files(&self, preallocate_tail: bool) -> Vec<(String, Bytes)> {
        let last = self.segments.len() - 1;
        self.segments
            .iter()
            .enumerate()
            .map(|(i, segment)| {
                let mut bytes = segment.bytes.clone();
                if i == last && preallocate_tail && (bytes.len() as u64) < self.segment_size {
                    bytes.resize(self.segment_size as usize, 0);
                }
                (segment.name.clone(), Bytes::from(bytes))
            })
            .collect()
    }

    fn tail(&self) -> &WriterSegment {
        self.segments.last().expect("a WAL always has a segment")
    }

    fn save_state(&mut self, state: &HardState) {
        if state.is_empty() {
            return;
        }
        self.state = *state;
        self.encode(STATE_TYPE, Some(state.encode_to_vec()));
    }

    /// etcd's `encoder.encode`, written as etcd writes it: length word, then body, separately.
    fn encode(&mut self, record_type: i64, data: Option<Vec<u8>>) {
        let frame = encode_record(&mut self.crc, record_type, data.as_deref());
        self.write(&frame[..8]);
        self.write(&frame[8..]);
    }

    /// etcd's `PageWriter.Write`, tracking only how many bytes reach the OS.
    fn write(&mut self, mut p: &[u8]) {
        let tail = self
            .segments
            .last_mut()
            .expect("a WAL always has a segment");
        tail.bytes.extend_from_slice(p);
        loop {
            let len = p.len() as u64;
            if len + self.page.buffered <= BUFFER_WATERMARK_BYTES {
                self.page.buffered += len;
                return;
            }
            let slack = PAGE_BYTES - (self.page.page_offset + self.page.buffered) % PAGE_BYTES;
            if slack != PAGE_BYTES {
                if slack > len {
                    self.page.buffered += len;
                    return;
                }
                self.page.buffered += slack;
                p = &p[slack as usize..];
            }
            self.flush();
            let len = p.len() as u64;
            if len > PAGE_BYTES {
                let direct = len / PAGE_BYTES * PAGE_BYTES;
                self.segments.last_mut().expect("tail").os_len += direct;
                p = &p[direct as usize..];
            }
        }
    }

    fn flush(&mut self) {
        let tail = self
            .segments
            .last_mut()
            .expect("a WAL always has a segment");
        tail.os_len += self.page.buffered;
        self.page.page_offset = (self.page.page_offset + self.page.buffered) % PAGE_BYTES;
        self.page.buffered = 0;
    }

    fn sync(&mut self, reason: SyncReason) {
        self.flush();
        let segment_index = self.segments.len() - 1;
        let tail = &mut self.segments[segment_index];
        // Not in `flush`: a write crossing the watermark flushes with the rest of its bytes
        // still to come (they go out as direct pages or into the emptied buffer).
        debug_assert_eq!(
            tail.os_len,
            tail.bytes.len() as u64,
            "a sync hands every written byte to the OS"
        );
        tail.synced_len = tail.os_len;
        self.sync_points.push(SyncPoint {
            segment_index,
            durable_len: tail.synced_len,
            last_raft_index: self.last_raft_index,
            hard_state: self.state,
            reason,
        });
    }

    /// etcd's `cut`: close the tail at its data, start `seq+1` named after `enti+1` with
    /// crc(prev) → metadata → state (if any), sync.
    fn cut(&mut self) {
        self.sync(SyncReason::Cut);
        let seq = self.segments.len() as u64;
        let name = wal_name(seq, self.last_raft_index + 1);
        self.segments.push(WriterSegment {
            name,
            bytes: Vec::new(),
            os_len: 0,
            synced_len: 0,
        });
        self.page = PageBuffer::default();
        self.encode(CRC_TYPE, None);
        let metadata = self.metadata.clone();
        self.encode(METADATA_TYPE, Some(metadata));
        let state = self.state;
        if !state.is_empty() {
            self.encode(STATE_TYPE, Some(state.encode_to_vec()));
        }
        self.sync(SyncReason::Cut);
        // etcd reopens the renamed file and starts a new encoder at the header's end.
        self.page = PageBuffer {
            page_offset: self.tail().os_len,
            buffered: 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::Metadata;
    use crate::proto::raftpb::ConfChange;

    /// A WAL written by etcd 3.4.23's own `wal` package (`wal.Create`, `Save`, `SaveSnapshot`).
    #[test]
    fn reproduces_etcd_reference_bytes() {
        let metadata = Metadata {
            node_id: 0x1234,
            cluster_id: 0xabcd,
        }
        .encode_to_vec();
        let mut writer = WalWriter::create(&metadata);
        let cc = ConfChange {
            id: 0,
            r#type: 0,
            node_id: 0x1234,
            context: Some(b"ctx".to_vec()),
        };
        let entries = vec![
            Entry {
                r#type: 1,
                term: 1,
                index: 1,
                data: Some(cc.encode_to_vec().into()),
            },
            Entry {
                r#type: 0,
                term: 2,
                index: 2,
                data: None,
            },
            Entry {
                r#type: 0,
                term: 2,
                index: 3,
                data: Some(Bytes::from_static(b"hello")),
            },
        ];
        writer.save(
            &HardState {
                term: 2,
                vote: 0x1234,
                commit: 3,
            },
            &entries,
        );
        writer.save_snapshot(&WalSnapshot {
            index: 3,
            term: 2,
            conf_state: None,
        });
        let expected = hex::decode(
            concat!(
                "0400000000000084",
                "08041000",
                "00000000",
                "1100000000000087",
                "08011083 80d09a0e 1a07 08b42410cdd702",
                "00000000000000",
                "0e00000000000082",
                "080510aebaf1ef09 1a04 08001000",
                "0000",
                "1d00000000000083",
                "08021088edf24c 1a14 0801100118012 20c0800100018b42422 03637478",
                "000000",
                "1000000000000000",
                "080210be98faf906 1a06 080010021802",
                "1600000000000082",
                "080210b18f933d 1a0d 08001002180322 0568656c6c6f",
                "0000",
                "1100000000000087",
                "080310d1f08ae005 1a07 080210b4241803",
                "00000000000000",
                "0d00000000000083",
                "080510b38f9f66 1a04 08031002",
                "000000",
            )
            .replace(' ', ""),
        )
        .unwrap();
        let files = writer.files(false);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "0000000000000000-0000000000000000.wal");
        assert_eq!(hex::encode(&files[0].1), hex::encode(&expected));
        let reasons: Vec<SyncReason> = writer.sync_points().iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            vec![
                SyncReason::Create,
                SyncReason::MustSync,
                SyncReason::SaveSnapshot
            ]
        );
    }

    /// Writes crossing PageWriter's 128 KiB watermark — one entry larger than it, and a batch
    /// of page-sized entries — flush mid-write; every byte still reaches the OS by the sync
    /// and the log reads back.
    #[test]
    fn writes_past_the_watermark_flush_and_read_back() {
        let mut writer = WalWriter::create(b"m");
        let big = Entry {
            r#type: 0,
            term: 1,
            index: 1,
            data: Some(Bytes::from(vec![0xab; 300 * 1024 + 17])),
        };
        let state = |commit| HardState {
            term: 1,
            vote: 1,
            commit,
        };
        assert!(writer.save(&state(0), &[big]).synced);
        let batch: Vec<Entry> = (2..=60)
            .map(|index| Entry {
                r#type: 0,
                term: 1,
                index,
                data: Some(Bytes::from(vec![index as u8; 4000])),
            })
            .collect();
        assert!(writer.save(&state(1), &batch).synced);
        let tail = writer.tail();
        assert_eq!(tail.os_len, tail.bytes.len() as u64);
        assert_eq!(tail.synced_len, tail.bytes.len() as u64);
        let segments = writer
            .files(false)
            .into_iter()
            .map(|(name, bytes)| crate::wal::decoder::Segment {
                name: crate::wal::name::parse_wal_name(&name).unwrap(),
                bytes,
            })
            .collect();
        let contents = crate::wal::read_all::read_all(
            crate::wal::decoder::Decoder::from_segments(
                segments,
                crate::wal::decoder::DecoderMode::Strict,
            ),
            Default::default(),
        );
        assert!(contents.errors.is_empty(), "{:?}", contents.errors);
        assert_eq!(contents.entries.len(), 60);
        assert_eq!(contents.entries[0].data_bytes().len(), 300 * 1024 + 17);
        assert_eq!(contents.hard_state, state(1));
    }

    #[test]
    fn commit_only_state_is_not_synced_but_term_change_is() {
        let mut writer = WalWriter::create_with_segment_size(b"m", 4096);
        let e = |i| Entry {
            r#type: 0,
            term: 1,
            index: i,
            data: None,
        };
        assert!(
            writer
                .save(
                    &HardState {
                        term: 1,
                        vote: 1,
                        commit: 0
                    },
                    &[e(1)]
                )
                .synced
        );
        assert!(
            !writer
                .save(
                    &HardState {
                        term: 1,
                        vote: 1,
                        commit: 1
                    },
                    &[]
                )
                .synced
        );
        assert!(
            writer
                .save(
                    &HardState {
                        term: 2,
                        vote: 1,
                        commit: 1
                    },
                    &[]
                )
                .synced
        );
        assert!(
            writer
                .save(
                    &HardState {
                        term: 2,
                        vote: 3,
                        commit: 1
                    },
                    &[]
                )
                .synced
        );
    }

    #[test]
    fn cut_writes_crc_metadata_state_header_and_names_next_index() {
        let mut writer = WalWriter::create_with_segment_size(b"meta", 4096);
        let mut cuts = 0;
        for i in 1..=400u64 {
            let entry = Entry {
                r#type: 0,
                term: 1,
                index: i,
                data: Some(Bytes::from(vec![b'x'; 100])),
            };
            cuts += writer
                .save(
                    &HardState {
                        term: 1,
                        vote: 1,
                        commit: i - 1,
                    },
                    &[entry],
                )
                .cut as u32;
        }
        assert!(cuts >= 2, "small segments must be cut");
        let files = writer.files(true);
        for (seq, (name, bytes)) in files.iter().enumerate() {
            let parsed = super::super::name::parse_wal_name(name).unwrap();
            assert_eq!(parsed.seq, seq as u64);
            if seq + 1 < files.len() {
                assert!(
                    bytes.len() as u64 >= 4096,
                    "a cut segment ends past the segment size"
                );
            } else {
                assert_eq!(bytes.len(), 4096, "the tail is preallocated");
            }
        }
    }
}
