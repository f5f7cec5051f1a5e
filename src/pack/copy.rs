//! Copying one member out of a data dir that etcd may be writing to.
//!
//! Order: the db first, then the `.snap` files, then the WAL segments. etcd appends an entry to
//! its WAL (and fsyncs it) before applying it to the db (`etcdserver/raft.go`: `Save` before
//! the apply channel), and saves a `.snap` before the WAL record naming it
//! (`etcdserver/storage.go: SaveSnap`), so copies made in this order never hold a db ahead of
//! the WAL or a WAL snapshot record whose `.snap` was written before the copy started without
//! the `.snap`. Each file's length and mtime are taken before and after its copy: a file that
//! changed is named, so a reader finding in it can be told apart from damage in the data. A db
//! that changed while copied and does not read back clean is copied again (bbolt rewrites pages
//! in place once a transaction frees them). `.snap` or `.wal` files that vanish between the
//! listing and the copy were purged by etcd (`--max-snapshots`, `--max-wals`) and are skipped.
//! The last segment's preallocated zero tail (`wal.go`: `fileutil.Preallocate` to 64 MB) is cut
//! at the 8-byte boundary after its last non-zero byte.

use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::PackError;
use crate::backend::DbReport;
use crate::fsio::ReadOnlyFs;
use crate::member::resolve;
use crate::wal::name::wal_segments;

/// How often a db that changed under the copy is copied again before giving up.
const DB_ATTEMPTS: usize = 5;

/// One member copied into the staging area as `<dir>/member/{wal,snap}`.
#[derive(Clone, Debug)]
pub struct CopiedMember {
    /// The member's name (its directory in the archive).
    pub name: String,
    /// The input as given.
    pub input: PathBuf,
    /// The copy's data dir.
    pub dir: PathBuf,
    /// Files (relative to `dir`) that changed while they were copied.
    pub changed: Vec<String>,
    /// Files listed but gone when copied (purged by etcd meanwhile).
    pub vanished: Vec<String>,
    /// The last segment's length before its zero tail was cut, and after.
    pub trimmed: Option<(String, u64, u64)>,
}

fn io_err(path: &Path, e: io::Error) -> PackError {
    PackError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Copies `src` to `dst` through `fs`; `Ok(None)` when `src` no longer exists, else whether it
/// changed during the copy.
fn copy_file(fs: &dyn ReadOnlyFs, src: &Path, dst: &Path) -> Result<Option<bool>, PackError> {
    let before = stamp(src);
    let (reader, _len) = match fs.open_read(src) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(src, e)),
    };
    let mut out = std::fs::File::create(dst).map_err(|e| io_err(dst, e))?;
    // The reader streams: memory does not grow with the file.
    let mut reader: Box<dyn Read + '_> = reader;
    io::copy(&mut reader, &mut out).map_err(|e| io_err(src, e))?;
    out.sync_all().map_err(|e| io_err(dst, e))?;
    Ok(Some(before.is_none() || stamp(src) != before))
}

/// Copies the member at `input` (data dir, `member/` dir or `wal/` dir) to `dest/member/`.
pub fn copy_member(
    fs: &dyn ReadOnlyFs,
    name: &str,
    input: &Path,
    dest: &Path,
) -> Result<CopiedMember, PackError> {
    let paths = resolve(fs, input).map_err(PackError::Input)?;
    let (wal_out, snap_out) = (dest.join("member/wal"), dest.join("member/snap"));
    for dir in [&wal_out, &snap_out] {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut copied = CopiedMember {
        name: name.to_string(),
        input: input.to_path_buf(),
        dir: dest.to_path_buf(),
        changed: Vec::new(),
        vanished: Vec::new(),
        trimmed: None,
    };
    if let Some(snap_dir) = &paths.snap_dir {
        copy_db(fs, &snap_dir.join("db"), &snap_out.join("db"), &mut copied)?;
        let mut names = fs.list_dir(snap_dir).map_err(|e| io_err(snap_dir, e))?;
        names.retain(|n| n.ends_with(".snap"));
        names.sort();
        for n in names {
            note(
                copy_file(fs, &snap_dir.join(&n), &snap_out.join(&n))?,
                format!("member/snap/{n}"),
                &mut copied,
            );
        }
    }
    let listed = fs
        .list_dir(&paths.wal_dir)
        .map_err(|e| io_err(&paths.wal_dir, e))?;
    let (segments, _ignored) = wal_segments(listed);
    for s in &segments {
        let n = &s.file_name;
        note(
            copy_file(fs, &paths.wal_dir.join(n), &wal_out.join(n))?,
            format!("member/wal/{n}"),
            &mut copied,
        );
    }
    if let Some(last) = segments
        .iter()
        .rev()
        .find(|s| wal_out.join(&s.file_name).exists())
    {
        let path = wal_out.join(&last.file_name);
        let (before, after) = trim_zero_tail(&path)?;
        copied.trimmed = Some((last.file_name.clone(), before, after));
    }
    Ok(copied)
}

fn note(outcome: Option<bool>, rel: String, copied: &mut CopiedMember) {
    match outcome {
        None => copied.vanished.push(rel),
        Some(true) => copied.changed.push(rel),
        Some(false) => {}
    }
}

/// Copies the db; a copy taken while the db changed is read back and copied again while the
/// reader finds damage in it.
fn copy_db(
    fs: &dyn ReadOnlyFs,
    src: &Path,
    dst: &Path,
    copied: &mut CopiedMember,
) -> Result<(), PackError> {
    for attempt in 1..=DB_ATTEMPTS {
        match copy_file(fs, src, dst)? {
            None => return Ok(()),
            Some(false) => return Ok(()),
            Some(true) => {
                let clean = DbReport::build(&crate::fsio::RealFs, dst, 0, Default::default())
                    .is_ok_and(|r| !r.has_damage());
                if clean {
                    copied.changed.push("member/snap/db".into());
                    return Ok(());
                }
                if attempt == DB_ATTEMPTS {
                    return Err(PackError::ChangedDuringCopy {
                        member: copied.name.clone(),
                        detail: format!(
                            "member/snap/db changed during each of {DB_ATTEMPTS} copies and no copy reads back clean"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Cuts the zero bytes at the end of `path` back to the 8-byte boundary after its last non-zero
/// byte (WAL frames are 8-byte aligned). Returns (length before, after).
fn trim_zero_tail(path: &Path) -> Result<(u64, u64), PackError> {
    const CHUNK: u64 = 1 << 20;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut last_nonzero = None;
    while end > 0 && last_nonzero.is_none() {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)
            .map_err(|e| io_err(path, e))?;
        last_nonzero = chunk
            .iter()
            .rposition(|b| *b != 0)
            .map(|i| start + i as u64);
        end = start;
    }
    let keep = last_nonzero.map_or(0, |i| (i + 1).div_ceil(8) * 8).min(len);
    if keep < len {
        file.set_len(keep).map_err(|e| io_err(path, e))?;
    }
    Ok((len, keep))
}
