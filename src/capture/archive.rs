//! A capture's `data.tar.gz` unpacked into a private temp dir: regular files and directories
//! only, every path inside the destination (the `tar` crate's `unpack_in` refuses `..` and
//! absolute names), nothing written anywhere else.

use std::path::{Path, PathBuf};

use tar::EntryType;

use super::CaptureError;

/// Unpacks `archive` (gzip'd tar) into a new temp dir, which is removed when dropped.
pub(crate) fn unpack(archive: &Path) -> Result<tempfile::TempDir, CaptureError> {
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
