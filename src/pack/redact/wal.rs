//! A member's WAL, redacted: every record decoded as etcd's reader decodes it, its entry's
//! values replaced in place, and the record re-encoded by the etcd-exact writer with the CRC
//! chain recomputed (`wal/encoder.go`: the record's `Crc` is the running CRC-32C after its
//! data; a crc record stores the running value). The record's data keeps its length, but the
//! record may not: `walpb.Record.crc` is a varint (1 to 5 bytes), so a segment can end up a few
//! bytes longer or shorter; segment names (sequence, first index) and the records in each
//! segment stay as they were.

use std::path::Path;

use prost::Message;

use super::wire::{fields, WireError};
use super::{Msg, RedactError, Redactor};
use crate::fsio::RealFs;
use crate::member::MemberFiles;
use crate::proto::payload::{decode_payload, Payload};
use crate::proto::raftpb::Entry;
use crate::proto::walpb::{CRC_TYPE, ENTRY_TYPE};
use crate::wal::decoder::DecodeEnd;
use crate::wal::writer::encode_record;
use crate::wal::DecoderMode;

/// Redacts the WAL of the member copy at `member` into the directory `out` (created), segment
/// for segment (while the redactor collects keys: only reads). The decode must end where etcd's does without an error, or on a torn last
/// record (a live member's tail: dropped, with everything after it); anything else is refused,
/// since a re-encoded copy would not keep the damage.
pub fn redact_wal(member: &Path, out: &Path, redactor: &mut Redactor) -> Result<(), RedactError> {
    let fs = RealFs;
    let files = MemberFiles::open(&fs, member).map_err(|e| RedactError::Wal(e.to_string()))?;
    let names: Vec<String> = files.segments.iter().map(|s| s.file_name.clone()).collect();
    let write = !redactor.collecting();
    if write {
        std::fs::create_dir_all(out).map_err(|e| RedactError::io(out, e))?;
    }
    let mut decoder = files.decoder(0, DecoderMode::Strict);
    let mut crc = 0u32;
    let mut first = true;
    let mut current: Option<(usize, Vec<u8>)> = None;
    let flush = |seg: Option<(usize, Vec<u8>)>| -> Result<(), RedactError> {
        if let Some((index, bytes)) = seg.filter(|_| write) {
            let path = out.join(&names[index]);
            std::fs::write(&path, bytes).map_err(|e| RedactError::io(&path, e))?;
        }
        Ok(())
    };
    loop {
        let decoded = match decoder.next_record() {
            Ok(decoded) => decoded,
            Err(DecodeEnd::Eof) | Err(DecodeEnd::UnexpectedEof { in_last_segment: true, .. }) => {
                break
            }
            Err(DecodeEnd::UnexpectedEof { error, .. }) | Err(DecodeEnd::Fatal(error)) => {
                return Err(RedactError::Wal(format!(
                    "{error}: a damaged WAL cannot be redacted (re-encoding would not keep the damage)"
                )))
            }
        };
        if current.as_ref().map(|(i, _)| *i) != Some(decoded.segment_index) {
            flush(current.take())?;
            current = Some((decoded.segment_index, Vec::new()));
        }
        let record = decoded.record;
        if record.r#type == CRC_TYPE {
            // etcd's ReadAll: a crc record must match a non-zero running CRC, then re-seeds
            // it. The chain before the first segment copied is not here to recompute (purged
            // segments): its value seeds ours.
            let running = decoder.running_crc();
            if running != 0 && running != record.crc {
                return Err(RedactError::Wal(format!(
                    "crc record at {} offset {} does not match the chain: a damaged WAL cannot be redacted",
                    names[decoded.segment_index], decoded.offset
                )));
            }
            decoder.reseed(record.crc);
            if first {
                crc = record.crc;
            }
        }
        first = false;
        let mut data = record.data.map(|d| d.to_vec());
        if record.r#type == ENTRY_TYPE {
            if let Some(data) = data.as_mut() {
                redact_entry(redactor, data).map_err(|source| RedactError::Wire {
                    file: names[decoded.segment_index].clone(),
                    offset: decoded.offset,
                    source,
                })?;
            }
        }
        if write {
            let frame = encode_record(&mut crc, record.r#type, data.as_deref());
            if let Some((_, bytes)) = current.as_mut() {
                bytes.extend_from_slice(&frame);
            }
            redactor.stats.wal_records += 1;
        }
    }
    flush(current.take())
}

/// Redacts an `Entry`'s data in place: an `InternalRaftRequest` or a v2 `Request`, told apart
/// as etcd's apply loop tells them apart ([`decode_payload`]); conf changes and no-ops are kept.
pub fn redact_entry(redactor: &mut Redactor, data: &mut [u8]) -> Result<(), WireError> {
    let entry = Entry::decode(&data[..]).map_err(|_| WireError("entry does not decode"))?;
    let msg = match decode_payload(&entry) {
        Payload::Internal(_) => Msg::Internal,
        Payload::V2(_) => Msg::V2,
        _ => return Ok(()),
    };
    let field = fields(data)?
        .into_iter()
        .rfind(|f| f.number == 4 && f.wire == 2);
    match field {
        Some(f) => redactor.redact(&mut data[f.start..f.end], msg),
        None => Ok(()),
    }
}
