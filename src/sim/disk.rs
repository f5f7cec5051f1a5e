//! A node's disk: the etcd WAL writer plus what survives a crash.
//!
//! The writer knows, per segment, every byte written, the bytes handed to the OS (`os_len`: a
//! process crash keeps them) and the bytes fsynced (`synced_len`: a power loss keeps them). The
//! disk keeps its own copy of those two numbers — the *view* — so that the injected persistence
//! bugs can make durability lag behind what raft is told. Crash images are built from the view:
//!
//! * process crash (`crash`): every segment up to `os_len`;
//! * power loss (`lose-unsynced`): up to `synced_len`;
//! * torn write (`tear`): up to `synced_len`, plus an arbitrary subset of the 512-byte sectors
//!   between `synced_len` and `os_len` (a sector is written entirely or not at all; synced bytes
//!   are never damaged — the fault atlas).
//!
//! The tail segment is preallocated with zeros to the segment size, as etcd leaves it.
//!
//! Recovery is etcd's boot through the same code `verify` uses: [`crate::member::read_member`]
//! on an in-memory file system, `Repair` of a torn tail (truncate at the last good record, zero
//! to the end), and the writer resumed at the end of the valid data with the running CRC.

use std::path::PathBuf;

use bytes::Bytes;

use crate::fsio::MemFs;
use crate::member::{read_member, MemberFiles};
use crate::proto::raftpb::{Entry, HardState};
use crate::proto::walpb::CRC_TYPE;
use crate::wal::decoder::{Decoder, DecoderMode, Segment};
use crate::wal::name::parse_wal_name;
use crate::wal::writer::{SaveOutcome, WalWriter};
use crate::wal::{WalErrorKind, MIN_SECTOR_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// kill -9: bytes handed to the OS survive, the page writer's buffer does not.
    Process,
    /// Power loss: only fsynced bytes survive.
    PowerLoss,
    /// Power loss with a torn write: fsynced bytes plus the unsynced sectors whose bit (sector
    /// number mod 64) is set in the mask.
    Tear(u64),
}

#[derive(Clone, Debug)]
pub struct Disk {
    pub writer: WalWriter,
    /// Per segment: (bytes a process crash keeps, bytes a power loss keeps).
    view: Vec<(u64, u64)>,
    pub segment_size: u64,
}

impl Disk {
    pub fn create(metadata: &[u8], segment_size: u64) -> Disk {
        let writer = WalWriter::create_with_segment_size(metadata, segment_size);
        Disk::from_writer(writer, segment_size)
    }

    pub fn from_writer(writer: WalWriter, segment_size: u64) -> Disk {
        let mut disk = Disk {
            writer,
            view: Vec::new(),
            segment_size,
        };
        disk.refresh();
        disk
    }

    /// The view catches up with the writer: every fsync the writer made now counts.
    pub fn refresh(&mut self) {
        self.view = self
            .writer
            .segments()
            .iter()
            .map(|s| (s.os_len, s.synced_len))
            .collect();
    }

    /// etcd's `Save`. With `defer_sync` the writes happen but the fsync does not (yet): the
    /// view stays where it was, unless the save cut a segment (a cut always syncs).
    pub fn save(&mut self, hs: &HardState, entries: &[Entry], defer_sync: bool) -> SaveOutcome {
        let outcome = self.writer.save(hs, entries);
        if !defer_sync || outcome.cut {
            self.refresh();
        }
        outcome
    }

    /// A save whose fsync is interrupted by a power failure: the bytes reach the OS (a torn
    /// write can keep any sector of them), nothing more becomes durable. A save that cut a
    /// segment counts as completed (the cut's own syncs). Returns the bytes written.
    pub fn save_interrupted(&mut self, hs: &HardState, entries: &[Entry]) -> u64 {
        let before: u64 = self
            .writer
            .segments()
            .iter()
            .map(|s| s.bytes.len() as u64)
            .sum();
        let outcome = self.writer.save(hs, entries);
        if outcome.cut {
            self.refresh();
        } else {
            for (view, segment) in self.view.iter_mut().zip(self.writer.segments()) {
                view.0 = segment.bytes.len() as u64;
            }
        }
        self.writer
            .segments()
            .iter()
            .map(|s| s.bytes.len() as u64)
            .sum::<u64>()
            - before
    }

    /// etcd's `Sync`.
    pub fn sync(&mut self) {
        self.writer.sync_now();
        self.refresh();
    }

    /// Bytes written that a power loss would lose right now.
    pub fn unsynced_bytes(&self) -> u64 {
        self.writer
            .segments()
            .iter()
            .zip(self.view.iter().chain(std::iter::repeat(&(0, 0))))
            .map(|(s, (_, synced))| s.bytes.len() as u64 - synced.min(&(s.bytes.len() as u64)))
            .sum()
    }

    /// The files as a clean shutdown leaves them (everything written, tail preallocated).
    pub fn files(&self) -> Vec<(String, Bytes)> {
        self.writer.files(true)
    }

    /// The files a crash of this kind leaves behind.
    pub fn crash_files(&self, mode: CrashMode) -> Vec<(String, Bytes)> {
        let segments = self.writer.segments();
        let last = segments.len() - 1;
        segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (os, synced) = self.view.get(i).copied().unwrap_or((0, 0));
                let len = s.bytes.len() as u64;
                let (os, synced) = (os.min(len), synced.min(len));
                let mut bytes = match mode {
                    CrashMode::Process => s.bytes[..os as usize].to_vec(),
                    CrashMode::PowerLoss => s.bytes[..synced as usize].to_vec(),
                    CrashMode::Tear(mask) => {
                        let mut out = s.bytes[..os as usize].to_vec();
                        let mut at = synced;
                        while at < os {
                            let sector = at / MIN_SECTOR_SIZE;
                            let end = ((sector + 1) * MIN_SECTOR_SIZE).min(os);
                            if mask & (1u64 << (sector % 64)) == 0 {
                                out[at as usize..end as usize].fill(0);
                            }
                            at = end;
                        }
                        out
                    }
                };
                if i == last && (bytes.len() as u64) < self.segment_size {
                    bytes.resize(self.segment_size as usize, 0);
                }
                (s.name.clone(), Bytes::from(bytes))
            })
            .collect()
    }
}

/// What a node restarts from.
pub struct Recovered {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
    pub disk: Disk,
    /// Where etcd's Repair cut a torn tail: (segment, offset).
    pub repaired_at: Option<(String, u64)>,
}

/// etcd's boot from `files`: ReadAll (through `member::read_member`, as `verify` reads), Repair
/// of a torn tail, and a writer that continues the WAL.
pub fn recover(
    node_id: u64,
    files: &[(String, Bytes)],
    segment_size: u64,
) -> Result<Recovered, String> {
    let root = PathBuf::from(format!("/n{node_id}"));
    let mut fs = MemFs::default();
    for (name, bytes) in files {
        fs.insert(root.join("member").join("wal").join(name), bytes.clone());
    }
    let member_files = MemberFiles::open(&fs, &root).map_err(|e| e.to_string())?;
    let read = read_member(&member_files, DecoderMode::Strict);
    let contents = read.contents;
    if let Some(error) = contents.errors.first() {
        return Err(format!("etcd refuses to boot: {error}"));
    }
    if read.start.index != 0 {
        return Err(format!(
            "boot from snapshot {} is not simulated",
            read.start.index
        ));
    }
    let torn = contents
        .warnings
        .iter()
        .any(|w| matches!(w.kind, WalErrorKind::UnexpectedEof { .. }));
    let metadata = contents.metadata.clone().unwrap_or_default();
    let mut names: Vec<&(String, Bytes)> = files.iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let last = names.len() - 1;
    let mut repaired_at = None;
    let mut segments = Vec::with_capacity(names.len());
    for (i, (name, bytes)) in names.into_iter().enumerate() {
        if i == last {
            // ReadAll in write mode: seek to the end of the last good record and zero the rest
            // (after Repair truncated a torn record).
            let end = contents.last_good_offset as usize;
            if torn {
                repaired_at = Some((name.clone(), end as u64));
            }
            segments.push((name.clone(), bytes[..end.min(bytes.len())].to_vec()));
        } else {
            segments.push((name.clone(), bytes.to_vec()));
        }
    }
    let crc = {
        let (name, bytes) = segments.last().expect("a WAL has a segment");
        let segment = Segment {
            name: parse_wal_name(name).ok_or_else(|| format!("bad segment name {name}"))?,
            bytes: Bytes::from(bytes.clone()),
        };
        let mut decoder = Decoder::from_segments(vec![segment], DecoderMode::Strict);
        while let Ok(decoded) = decoder.next_record() {
            if decoded.record.r#type == CRC_TYPE {
                decoder.reseed(decoded.record.crc);
            }
        }
        decoder.running_crc()
    };
    let last_index = contents.last_index().unwrap_or(contents.start_index);
    let writer = WalWriter::resume(segments, crc, &metadata, last_index, segment_size);
    Ok(Recovered {
        hard_state: contents.hard_state,
        entries: contents.entries,
        disk: Disk::from_writer(writer, segment_size),
        repaired_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> Entry {
        Entry {
            r#type: 0,
            term: 1,
            index,
            data: Some(Bytes::from(vec![b'x'; 300])),
        }
    }

    #[test]
    fn crash_modes_keep_what_they_should_and_recovery_continues_the_chain() {
        let mut disk = Disk::create(b"meta", 64 * 1024);
        let hs = |commit| HardState {
            term: 1,
            vote: 1,
            commit,
        };
        disk.save(&hs(0), &[entry(1), entry(2)], false);
        // Commit-only: written to the page writer's buffer, not synced.
        disk.save(&hs(2), &[], false);
        let process = recover(1, &disk.crash_files(CrashMode::Process), 64 * 1024).unwrap();
        assert_eq!(process.entries.len(), 2);
        assert_eq!(
            process.hard_state.commit, 0,
            "the commit-only state was buffered"
        );
        // Deferred sync: entries written, nothing durable.
        disk.save(&hs(2), &[entry(3)], true);
        let lost = recover(1, &disk.crash_files(CrashMode::PowerLoss), 64 * 1024).unwrap();
        assert_eq!(lost.entries.len(), 2);
        // A recovered WAL continues with a valid chain.
        let mut again = lost.disk;
        again.save(&hs(2), &[entry(3), entry(4)], false);
        let reread = recover(1, &again.files(), 64 * 1024).unwrap();
        assert_eq!(reread.entries.len(), 4);
        assert_eq!(reread.hard_state.commit, 2);
    }

    #[test]
    fn a_torn_tail_is_repaired() {
        let mut disk = Disk::create(b"meta", 64 * 1024);
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 0,
        };
        disk.save(&hs, &[entry(1)], false);
        disk.save(&hs, &[entry(2), entry(3), entry(4)], true);
        // Keep the last unsynced sector only: the records before it are zeros (a hole).
        for mask in [0u64, u64::MAX, 0b1010_1010, 0x5555] {
            let r = recover(1, &disk.crash_files(CrashMode::Tear(mask)), 64 * 1024).unwrap();
            assert!((1..=4).contains(&r.entries.len()), "{mask:x}");
            let mut d = r.disk;
            let next = r.entries.len() as u64 + 1;
            d.save(&hs, &[entry(next)], false);
            let again = recover(1, &d.files(), 64 * 1024).unwrap();
            assert_eq!(again.entries.len() as u64, next);
        }
    }
}
