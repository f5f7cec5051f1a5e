//! `data.tar.gz` in the corpus layout: `<name>/member/{wal,snap}/…`, ustar, entries sorted by
//! name, owner 0, mode 0600 (files) / 0700 (dirs), mtime 0 — the same bytes for the same files.

use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::PackError;

fn io_err(path: &Path, e: std::io::Error) -> PackError {
    PackError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Every file below `root`, as paths relative to it, sorted.
fn files_below(root: &Path) -> Result<Vec<(std::path::PathBuf, bool)>, PackError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().map_err(|e| io_err(&path, e))?.is_dir();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if is_dir {
                stack.push(path);
            }
            out.push((rel, is_dir));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes `root`'s tree as a gzipped ustar archive to `archive`.
pub fn write_archive(root: &Path, archive: &Path) -> Result<(), PackError> {
    let file = std::fs::File::create(archive).map_err(|e| io_err(archive, e))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    for (rel, is_dir) in files_below(root)? {
        let path = root.join(&rel);
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o700);
            header.set_size(0);
            tar.append_data(&mut header, &rel, std::io::empty())
                .map_err(|e| io_err(&path, e))?;
        } else {
            let f = std::fs::File::open(&path).map_err(|e| io_err(&path, e))?;
            let len = f.metadata().map_err(|e| io_err(&path, e))?.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o600);
            header.set_size(len);
            tar.append_data(&mut header, &rel, f)
                .map_err(|e| io_err(&path, e))?;
        }
    }
    let gz = tar.into_inner().map_err(|e| io_err(archive, e))?;
    let file = gz.finish().map_err(|e| io_err(archive, e))?;
    file.sync_all().map_err(|e| io_err(archive, e))
}
