//! File access at the edge. Everything that reads the user's files goes through [`ReadOnlyFs`],
//! which only has read operations: the tool cannot write into its input by construction, and
//! tests substitute a faulty or in-memory implementation.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Read-only file access. `Sync`: the verify pipeline reads several members at once.
pub trait ReadOnlyFs: Sync {
    /// Names (not paths) of the regular files and directories in `dir`, unsorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Bytes>;
    fn is_dir(&self, path: &Path) -> bool;
    /// The size of a file in bytes.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// A reader over a file, with the file's size, for reading only as much as needed.
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + '_>, u64)>;
    /// Exactly `len` bytes of a file from byte `offset` (a positioned read: no seek state, no
    /// lock, the file is opened read-only). A range that does not lie wholly inside the file is
    /// an `UnexpectedEof` error, never a short read; callers bounds-check against
    /// [`ReadOnlyFs::len`] first so that the size of `len` is never taken from untrusted input.
    ///
    /// The default reads through [`ReadOnlyFs::open_read`], skipping to `offset`; both
    /// implementations here override it with a direct positioned read.
    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let (mut reader, file_len) = self.open_read(path)?;
        if !range_inside(offset, len, file_len) {
            return Err(range_error(path, offset, len, file_len));
        }
        io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        let mut buf = vec![0u8; len];
        reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// The whole of a regular file of at most `max_len` bytes, mapped read-only instead of read,
    /// or `None` (this file system does not map, or the file cannot be mapped): then read it.
    /// Only for a file nothing writes or truncates any more (see [`RealFs`]'s). The default
    /// maps nothing.
    fn map_read(&self, _path: &Path, _max_len: u64) -> Option<Bytes> {
        None
    }

    /// Positioned reads of one file, for a reader that reads it in many small ranges (the db
    /// reader: one range per page). The default calls [`ReadOnlyFs::read_range`] on every read,
    /// so a test double sees (and can fault) each one; [`RealFs`] opens the file once instead of
    /// once per range.
    fn open_ranges<'a>(&'a self, path: &Path) -> io::Result<Box<dyn RangeReader + 'a>> {
        Ok(Box::new(PathRanges {
            fs: self,
            path: path.to_path_buf(),
        }))
    }
}

/// Positioned reads of one file (see [`ReadOnlyFs::open_ranges`]): no seek state, no lock,
/// read-only.
pub trait RangeReader {
    /// Exactly `len` bytes from byte `offset`, with [`ReadOnlyFs::read_range`]'s contract: a
    /// range not wholly inside the file is an `UnexpectedEof` error, never a short read.
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// The default [`RangeReader`]: every read goes through the file system's `read_range`.
struct PathRanges<'a, F: ?Sized> {
    fs: &'a F,
    path: PathBuf,
}

impl<F: ReadOnlyFs + ?Sized> RangeReader for PathRanges<'_, F> {
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.fs.read_range(&self.path, offset, len)
    }
}

/// [`RealFs`]'s [`RangeReader`]: the file opened once (read-only, unlocked) and read with
/// positioned reads (`pread`), so a range costs no open, seek or `fstat`. Ranges are checked
/// against the length the file had when opened (buffers are never sized beyond it); a file that
/// shrank since is an `UnexpectedEof` error, as with [`RealFs::read_range`].
///
/// Reads ahead adaptively, as the kernel's readahead does: a range that starts where the last one
/// ended (or just after it) doubles a window, up to [`READ_AHEAD_MAX`], which is read in one
/// `pread` and serves the following ranges; a jump elsewhere drops it back to a plain read of the
/// range. A bbolt tree walked in key order reads its pages mostly in file order (an etcd db: 96%
/// of the page reads start where the previous ended), so this turns one system call per 4 KiB
/// page into one per window; a fragmented file costs at most one wasted window per jump. Memory:
/// one window, at most [`READ_AHEAD_MAX`] bytes.
struct FileRanges {
    file: std::fs::File,
    path: PathBuf,
    len: u64,
    window: std::cell::RefCell<Window>,
}

/// Largest read-ahead window of `FileRanges`.
pub const READ_AHEAD_MAX: usize = 64 * 1024;
/// First read-ahead window after a sequential read.
const READ_AHEAD_MIN: usize = 16 * 1024;

#[derive(Default)]
struct Window {
    /// File offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
    /// Where the last range ended.
    last_end: u64,
    /// The next read-ahead size (0: none).
    ahead: usize,
}

impl FileRanges {
    fn shrank(&self, offset: u64, len: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: range {offset}+{len} is outside the file (it shrank below {} bytes)",
                self.path.display(),
                self.len
            ),
        )
    }

    /// Reads from `offset` into `buf` until it is full or the file ends; at least `min` bytes.
    fn read_at_least(&self, buf: &mut [u8], offset: u64, min: usize) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match read_at(&self.file, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled < min {
            return Err(self.shrank(offset, min));
        }
        Ok(filled)
    }
}

impl RangeReader for FileRanges {
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if !range_inside(offset, len, self.len) {
            return Err(range_error(&self.path, offset, len, self.len));
        }
        let mut w = self.window.borrow_mut();
        let end = offset + len as u64;
        let held_end = w.start + w.bytes.len() as u64;
        if offset >= w.start && end <= held_end {
            w.last_end = end;
            let at = (offset - w.start) as usize;
            return Ok(w.bytes[at..at + len].to_vec());
        }
        // Sequential: starts where the last range ended, or a little past it.
        let sequential = offset >= w.last_end && offset - w.last_end <= READ_AHEAD_MAX as u64;
        w.ahead = if sequential {
            (w.ahead * 2).clamp(READ_AHEAD_MIN, READ_AHEAD_MAX)
        } else {
            0
        };
        w.last_end = end;
        if w.ahead <= len {
            // No read-ahead (a jump, or a range as large as the window): read just the range.
            let mut buf = vec![0u8; len];
            self.read_at_least(&mut buf, offset, len)?;
            return Ok(buf);
        }
        // Bounded by the window and by the file's length at open.
        let want = (w.ahead as u64).min(self.len - offset) as usize;
        let mut bytes = std::mem::take(&mut w.bytes);
        bytes.resize(want, 0);
        let got = match self.read_at_least(&mut bytes, offset, len) {
            Ok(got) => got,
            Err(e) => {
                w.start = 0;
                return Err(e);
            }
        };
        bytes.truncate(got);
        let out = bytes[..len].to_vec();
        w.start = offset;
        w.bytes = bytes;
        Ok(out)
    }
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    // No positioned read in std here: seek the handle (`&File` is Read + Seek); ranges are
    // read one at a time, so the seek position is never shared.
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read(buf)
}

/// Whether `offset..offset + len` lies inside a file of `file_len` bytes (no overflow).
fn range_inside(offset: u64, len: usize, file_len: u64) -> bool {
    offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= file_len)
}

/// The error of a range that does not lie inside a file of `file_len` bytes.
fn range_error(path: &Path, offset: u64, len: usize, file_len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "{}: range {offset}+{len} is outside the file ({file_len} bytes)",
            path.display()
        ),
    )
}

/// The real file system, opened read-only.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl ReadOnlyFs for RealFs {
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        use std::io::Read;
        // O_RDONLY: std's File::open never creates, truncates or locks.
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        // Capacity comes from the file's real size, never from a length field inside it.
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + '_>, u64)> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok((Box::new(file), len))
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(path)?;
        let file_len = file.metadata()?.len();
        if !range_inside(offset, len, file_len) {
            return Err(range_error(path, offset, len, file_len));
        }
        // The buffer is allocated only after the range was checked against the real file size.
        let mut buf = vec![0u8; len];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// A private read-only mapping (`PROT_READ`, `MAP_PRIVATE`, populated at once): the bytes
    /// are the page cache's, neither copied nor zero-filled first. Any failure (not a regular
    /// file, empty, too long, the open or the `mmap` refused) is `None`, so that the caller's
    /// read reports it as it would without mapping.
    fn map_read(&self, path: &Path, max_len: u64) -> Option<Bytes> {
        let file = std::fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() == 0 || meta.len() > max_len {
            return None;
        }
        // SAFETY: the mapping is read-only and private, so nothing here writes through it; its
        // bytes could change (or fault, past a shortened end) only if another process wrote or
        // truncated the file while it is mapped. Callers map only files nothing writes again:
        // a cut WAL segment, which etcd never reopens for writing (it deletes it when purging,
        // which leaves a mapping valid).
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()?;
        Some(Bytes::from_owner(map))
    }

    fn open_ranges<'a>(&'a self, path: &Path) -> io::Result<Box<dyn RangeReader + 'a>> {
        // O_RDONLY, no lock: a db a running etcd holds open (flock'd) can be read.
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(FileRanges {
            file,
            path: path.to_path_buf(),
            len,
            window: Default::default(),
        }))
    }
}

/// An in-memory file system for tests and for the crash enumerator's derived states.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    pub files: BTreeMap<PathBuf, Bytes>,
    /// Paths whose reads fail, to fault the edge.
    pub failing: Vec<PathBuf>,
}

impl MemFs {
    pub fn insert(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Bytes>) {
        self.files.insert(path.into(), bytes.into());
    }
}

impl ReadOnlyFs for MemFs {
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for path in self.files.keys() {
            if let Ok(rest) = path.strip_prefix(dir) {
                if let Some(first) = rest.components().next() {
                    let name = first.as_os_str().to_string_lossy().into_owned();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        if names.is_empty() && !self.is_dir(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            ));
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        if self.failing.iter().any(|p| p == path) {
            return Err(io::Error::other(format!(
                "{}: injected read fault",
                path.display()
            )));
        }
        self.files.get(path).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )
        })
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|p| p.starts_with(path) && p != path)
    }

    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + '_>, u64)> {
        let bytes = self.read(path)?;
        let len = bytes.len() as u64;
        Ok((Box::new(io::Cursor::new(bytes)), len))
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.read(path)?;
        let start = usize::try_from(offset).ok();
        match start.and_then(|s| Some(s..s.checked_add(len)?)) {
            Some(range) if range.end <= bytes.len() => Ok(bytes[range].to_vec()),
            _ => Err(range_error(path, offset, len, bytes.len() as u64)),
        }
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        self.files.get(path).map(|b| b.len() as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        (dir, path, bytes)
    }

    /// Every access pattern the db reader makes (sequential pages, jumps back and forward,
    /// overflow runs larger than the window, the last bytes) reads what `read_range` reads.
    #[test]
    fn file_ranges_read_what_read_range_reads() {
        let (_dir, path, bytes) = file_of(3 * READ_AHEAD_MAX + 1024 * 1024 + 1234);
        let ranges = RealFs.open_ranges(&path).unwrap();
        let len = bytes.len() as u64;
        let mut offsets: Vec<(u64, usize)> = (0..200).map(|i| (i * 4096, 4096)).collect();
        offsets.extend([
            (0, 64),
            (4096 * 150, 4096),
            (4096 * 3, 4096),
            (8000, 3 * 4096),
            (100, 2 * READ_AHEAD_MAX + 5),
            (len - 4096, 4096),
            (len - 1, 1),
            (len, 0),
            (17, 0),
        ]);
        for (offset, n) in offsets {
            let got = ranges.read_range(offset, n).unwrap();
            assert_eq!(got, RealFs.read_range(&path, offset, n).unwrap());
            assert_eq!(got, &bytes[offset as usize..offset as usize + n]);
        }
    }

    #[test]
    fn file_ranges_refuse_ranges_outside_the_file() {
        let (_dir, path, bytes) = file_of(10_000);
        let ranges = RealFs.open_ranges(&path).unwrap();
        let len = bytes.len() as u64;
        for (offset, n) in [(len, 1), (len - 10, 11), (u64::MAX, 2), (0, usize::MAX)] {
            let e = ranges.read_range(offset, n).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    /// A file that shrinks after it was opened (a db being rewritten): ranges past the new end
    /// are `UnexpectedEof` errors, never short or stale reads; ranges before it still read.
    #[test]
    fn file_ranges_notice_a_file_that_shrank() {
        let (_dir, path, bytes) = file_of(200_000);
        let ranges = RealFs.open_ranges(&path).unwrap();
        assert_eq!(ranges.read_range(0, 100).unwrap(), &bytes[..100]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(50_000)
            .unwrap();
        // Read-ahead windows reaching past the new end still serve the ranges before it.
        for offset in (100..49_000).step_by(4096) {
            assert_eq!(
                ranges.read_range(offset, 1000).unwrap(),
                &bytes[offset as usize..offset as usize + 1000]
            );
        }
        let e = ranges.read_range(49_000, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = ranges.read_range(150_000, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// The default `open_ranges` goes through `read_range` on every read: MemFs's injected
    /// faults hit each one.
    #[test]
    fn default_ranges_go_through_read_range() {
        let mut fs = MemFs::default();
        fs.insert("/a", vec![1u8, 2, 3, 4]);
        let ranges = fs.open_ranges(Path::new("/a")).unwrap();
        assert_eq!(ranges.read_range(1, 2).unwrap(), vec![2, 3]);
        assert!(ranges.read_range(3, 2).is_err());
        drop(ranges);
        fs.failing.push(PathBuf::from("/a"));
        let ranges = fs.open_ranges(Path::new("/a")).unwrap();
        assert!(ranges.read_range(0, 1).is_err());
    }
}
