//! A capture's `data.tar.gz` unpacked into a private temp dir: regular files and directories
//! only, every path inside the destination (the `tar` crate's `unpack_in` refuses `..` and
//! absolute names), nothing written anywhere else, and never more bytes than the temp dir's
//! filesystem has free: the sizes the tar headers declare are summed before each entry is
//! written, so an archive that would fill the disk (a few MB of gzip can declare terabytes) is
//! refused at the header that crosses the limit, having written nothing of that entry.

use std::path::{Path, PathBuf};

use tar::EntryType;

use super::CaptureError;

/// Free bytes kept on the temp dir's filesystem after unpacking: the verify that follows
/// writes its own spill files there.
const RESERVE_BYTES: u64 = 256 << 20;

/// Unpacks `archive` (gzip'd tar) into a new temp dir, which is removed when dropped.
pub(crate) fn unpack(archive: &Path) -> Result<tempfile::TempDir, CaptureError> {
    unpack_within(archive, None)
}

/// [`unpack`], refusing the archive once the sizes its entries declare exceed `limit`, or by
/// default the temp dir filesystem's free bytes less [`RESERVE_BYTES`].
fn unpack_within(archive: &Path, limit: Option<u64>) -> Result<tempfile::TempDir, CaptureError> {
    let failed = |message: String| CaptureError::Archive {
        archive: archive.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(|e| CaptureError::Io {
        path: archive.to_path_buf(),
        source: e,
    })?;
    let dest = tempfile::Builder::new()
        .prefix("raft-replay-capture-")
        .tempdir()
        .map_err(|e| failed(format!("cannot make a temp dir: {e}")))?;
    let limit = match limit {
        Some(limit) => limit,
        None => free_bytes(dest.path())
            .map_err(|e| failed(format!("cannot read the free space of the temp dir: {e}")))?
            .saturating_sub(RESERVE_BYTES),
    };
    let mut declared: u64 = 0;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    tar.set_overwrite(false);
    let entries = tar.entries().map_err(|e| failed(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| failed(e.to_string()))?;
        let name: PathBuf = entry
            .path()
            .map_err(|e| failed(e.to_string()))?
            .into_owned();
        let kind = entry.header().entry_type();
        if !matches!(kind, EntryType::Regular | EntryType::Directory) {
            return Err(failed(format!(
                "{}: a {kind:?} entry (a capture holds regular files and directories only)",
                name.display()
            )));
        }
        let size = entry.header().size().map_err(|e| failed(e.to_string()))?;
        declared = declared.saturating_add(size);
        if declared > limit {
            return Err(failed(format!(
                "{}: unpacking would need more than {limit} bytes (the entries so far declare \
                 {declared}), more than the temp dir {} can take; set TMPDIR to a larger filesystem",
                name.display(),
                dest.path().parent().unwrap_or(dest.path()).display()
            )));
        }
        match entry.unpack_in(dest.path()) {
            Ok(true) => {}
            Ok(false) => {
                return Err(failed(format!(
                    "{}: the name leads outside the archive's root",
                    name.display()
                )))
            }
            Err(e) => return Err(failed(format!("{}: {e}", name.display()))),
        }
    }
    Ok(dest)
}

/// The bytes an unprivileged process may still write on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stat` a buffer of the type statvfs fills;
    // it is read only after statvfs reports success.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat.assume_init()
    };
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip'd tar whose one entry declares `declared` bytes but carries only `carried`.
    fn archive(dir: &Path, declared: u64, carried: usize) -> std::path::PathBuf {
        let mut header = tar::Header::new_ustar();
        header
            .set_path("m1/member/wal/0000000000000000-0000000000000000.wal")
            .unwrap();
        header.set_size(declared);
        header.set_mode(0o600);
        header.set_entry_type(EntryType::Regular);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend(std::iter::repeat(0u8).take(carried));
        let path = dir.join("data.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        gz.finish().unwrap();
        path
    }

    #[test]
    fn an_entry_declaring_more_than_the_disk_holds_is_refused_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = archive(dir.path(), 1 << 50, 512);
        let err = unpack(&path).unwrap_err().to_string();
        assert!(err.contains("unpacking would need more than"), "{err}");
        assert!(err.contains("declare 1125899906842624"), "{err}");
    }

    #[test]
    fn the_limit_counts_every_declared_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = archive(dir.path(), 1024, 1024);
        let unpacked = unpack_within(&path, Some(1024)).unwrap();
        let wal = unpacked
            .path()
            .join("m1/member/wal/0000000000000000-0000000000000000.wal");
        assert_eq!(std::fs::metadata(wal).unwrap().len(), 1024);
        let err = unpack_within(&path, Some(1023)).unwrap_err().to_string();
        assert!(err.contains("more than 1023 bytes"), "{err}");
    }
}
