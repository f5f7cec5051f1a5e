//! A member's backend db, redacted in place (the file is `pack`'s own copy).
//!
//! bbolt stores a leaf value as raw bytes inside its page (`page.go: leafPageElement`), and has
//! no page checksum: only the meta pages carry one (FNV-1a over the meta, `meta.validate`). A
//! `mvccpb.KeyValue` whose value is replaced by bytes of the same length marshals to the same
//! length, so each value is overwritten where it lies and no page, element header or meta
//! changes. Pages no longer reachable from the meta in use (bbolt's free pages: the copies an
//! earlier transaction left behind, old values included) are zeroed — bbolt rebuilds its free
//! list from reachability when, as etcd on Linux does, it persists none (`NoFreelistSync`), and
//! never reads a free page's content.

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Msg, RedactError, Redactor};
use crate::backend::reader::{check_pages, PageSet};
use crate::backend::{Db, Item, Walker};
use crate::fsio::RealFs;

/// The buckets whose values are redacted, and as which message.
fn bucket_msg(name: &[u8]) -> Option<Msg> {
    match name {
        b"key" => Some(Msg::KeyValue),
        b"authUsers" => Some(Msg::User),
        b"authRoles" => Some(Msg::Role),
        _ => None,
    }
}

/// Redacts the db file at `path` in place (while the redactor collects keys: only reads).
pub fn redact_db(path: &Path, redactor: &mut Redactor) -> Result<(), RedactError> {
    let fs = RealFs;
    let db = Db::open(&fs, path).map_err(|e| RedactError::Db(e.to_string()))?;
    let write = !redactor.collecting();
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| RedactError::io(path, e))?;
    let mut write_error = None;
    let mut walker = Walker::new(&db, true);
    walker
        .for_each(&db.root_bucket(), &mut |w, name, item| {
            let Item::Bucket(bucket) = item else {
                return Ok(());
            };
            let Some(msg) = bucket_msg(name) else {
                return w.mark_all(&bucket);
            };
            w.for_each(&bucket, &mut |w, _key, item| {
                let value = match item {
                    Item::Bucket(sub) => return w.mark_all(&sub),
                    Item::Value(value) => value,
                };
                let mut new = value.to_vec();
                if let Err(e) = redactor.redact(&mut new, msg) {
                    write_error.get_or_insert(RedactError::Wire {
                        file: path.display().to_string(),
                        offset: w.value_offset(),
                        source: e,
                    });
                    return Ok(());
                }
                if write && new != value {
                    if msg == Msg::KeyValue {
                        redactor.stats.db_values += 1;
                    }
                    if let Err(e) = out.write_all_at(&new, w.value_offset()) {
                        write_error.get_or_insert(RedactError::io(path, e));
                    }
                }
                Ok(())
            })
        })
        .map_err(|e| RedactError::Db(e.to_string()))?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if !write {
        return Ok(());
    }
    let mut reached = walker
        .reached
        .take()
        .unwrap_or_else(|| PageSet::new(db.page_limit()));
    check_pages(&db, &mut reached, 0);
    redactor.stats.db_pages_zeroed += zero_unreachable(&db, &reached, &out, path)?;
    out.sync_all().map_err(|e| RedactError::io(path, e))
}

/// Zeroes every page of the file that the meta in use does not reach (metas and a persisted
/// freelist count as reached). Returns the number of pages zeroed.
fn zero_unreachable(
    db: &Db<'_>,
    reached: &PageSet,
    out: &std::fs::File,
    path: &Path,
) -> Result<u64, RedactError> {
    let ps = u64::from(db.page_size);
    let zeros = vec![0u8; ps as usize];
    let pages = db.file_len / ps;
    let mut zeroed = 0;
    for id in 2..pages {
        if reached.contains(id) {
            continue;
        }
        out.write_all_at(&zeros, id * ps)
            .map_err(|e| RedactError::io(path, e))?;
        zeroed += 1;
    }
    let tail = db.file_len % ps;
    if tail > 0 {
        out.write_all_at(&zeros[..tail as usize], pages * ps)
            .map_err(|e| RedactError::io(path, e))?;
    }
    Ok(zeroed)
}
