//! File access at the edge. Everything that reads the user's files goes through [`ReadOnlyFs`],
//! which only has read operations: the tool cannot write into its input by construction, and
//! tests substitute a faulty or in-memory implementation.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

pub trait ReadOnlyFs {
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
