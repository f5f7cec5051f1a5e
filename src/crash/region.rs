//! Decoding a damaged stretch of a segment with the real decoder, without re-reading everything
//! before it.
//!
//! Everything before the stretch is known good (it is a prefix of the history), so only the
//! stretch is decoded — by etcd's decoder port itself, not a model of it. Two things make that
//! exact: torn-write detection looks at 512-byte sectors of the *file* offset, so the stretch is
//! placed at the same offset modulo 512 behind filler crc records (which the decoder does not
//! check); and the chain is re-seeded to the value it has before the stretch. A stretch in a
//! segment that is not the last is followed by an empty segment, so the decoder applies the
//! middle-segment rules (no torn-write excuse).

use bytes::Bytes;

use crate::wal::decoder::{DecodeEnd, Decoder, DecoderMode, Segment};
use crate::wal::name::SegmentName;
use crate::wal::WalError;

#[derive(Clone, Debug)]
pub enum RegionEnd {
    /// Every byte of the stretch decoded; reading continues after it as in the original.
    Complete,
    /// A zero length word or the end of the file: the segment ends here as far as etcd knows.
    SegmentEnd,
    /// `io.ErrUnexpectedEOF`: a torn record (all-zero sector) or a short frame. In the last
    /// segment Repair truncates here; in a middle segment it is fatal.
    Torn(WalError),
    /// A CRC mismatch, protobuf error or size limit: etcd refuses the WAL.
    Fatal(WalError),
}

#[derive(Clone, Debug)]
pub struct RegionResult {
    /// Records decoded before the end.
    pub decoded: usize,
    pub end: RegionEnd,
    /// Whether each decoded record is byte-identical (type, crc, data) to what `expect` says.
    pub altered: Option<usize>,
}

/// One frame of a crc record with an unknown field, `frame_len` ∈ {16, 24}. The decoder does not
/// check crc records and prost skips unknown fields.
fn filler_frame(frame_len: usize) -> Vec<u8> {
    let body: &[u8] = if frame_len == 16 {
        &[0x08, 0x04, 0x10, 0x00]
    } else {
        &[0x08, 0x04, 0x10, 0x00, 0x22, 0x05, 0, 0, 0, 0, 0]
    };
    let pad = (8 - body.len() % 8) % 8;
    let length_word = (body.len() as u64) | (((0x80 | pad) as u64) << 56);
    let mut frame = length_word.to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame.resize(frame_len, 0);
    frame
}

/// Filler frames totalling `len` bytes (a multiple of 8, ≥ 16 unless 0).
fn filler(len: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(len);
    let mut count = 0;
    let mut left = len;
    if left % 16 == 8 {
        out.extend(filler_frame(24));
        left -= 24;
        count += 1;
    }
    while left > 0 {
        out.extend(filler_frame(16));
        left -= 16;
        count += 1;
    }
    (out, count)
}

fn lead_for(offset: u64) -> usize {
    let mut lead = (offset % 512) as usize;
    if lead > 0 && lead < 24 && lead % 16 == 8 {
        lead += 512;
    }
    lead
}

/// A buffer for a stretch at `offset`: the filler is already in it; append the stretch's
/// bytes (`capacity` of them) after it and hand it to [`decode_region`].
pub fn region_buffer(offset: u64, capacity: usize) -> Vec<u8> {
    let lead = lead_for(offset);
    let mut buf = Vec::with_capacity(lead + capacity);
    buf.extend_from_slice(&filler(lead).0);
    buf
}

/// Decodes the stretch in `buf` (from [`region_buffer`]) as it lies at `offset` in segment
/// `name`, with the chain at `crc_before`. `expect` gives the original `(type, crc, data)` of
/// the records the stretch should hold: the stretch is `Complete` once that many records
/// decoded, and a decoded record that differs from its original is reported in `altered`
/// (possible only in fields the CRC does not cover). The stretch may run past those records
/// (the zeros of a preallocated tail).
pub fn decode_region(
    name: &SegmentName,
    offset: u64,
    buf: Vec<u8>,
    crc_before: u32,
    is_last_segment: bool,
    expect: &[(i64, u32, Option<Bytes>)],
) -> RegionResult {
    debug_assert_eq!(offset % 8, 0, "frames start 8-aligned");
    let lead = lead_for(offset);
    let filler_count = filler(lead).1;
    debug_assert!(buf.len() >= lead);
    let mut segments = vec![Segment {
        name: name.clone(),
        bytes: Bytes::from(buf),
    }];
    if !is_last_segment {
        let mut next = name.clone();
        next.seq += 1;
        next.file_name = format!("{}.next", name.file_name);
        segments.push(Segment {
            name: next,
            bytes: Bytes::new(),
        });
    }
    let mut decoder = Decoder::from_segments(segments, DecoderMode::Strict);
    for _ in 0..filler_count {
        match decoder.next_record() {
            Ok(_) => {}
            Err(e) => panic!("filler frames always decode: {e:?}"),
        }
    }
    decoder.reseed(crc_before);
    let mut decoded = 0usize;
    let mut altered = None;
    loop {
        match decoder.next_record() {
            Ok(d) => {
                if d.segment_index != 0 {
                    // Into the empty follower segment: the stretch ended cleanly.
                    return RegionResult {
                        decoded,
                        end: RegionEnd::SegmentEnd,
                        altered,
                    };
                }
                if let Some((t, c, data)) = expect.get(decoded) {
                    let same =
                        d.record.r#type == *t && d.record.crc == *c && d.record.data == *data;
                    if !same && altered.is_none() {
                        altered = Some(decoded);
                    }
                } else if altered.is_none() {
                    altered = Some(decoded);
                }
                if d.record.r#type == 4 {
                    // ReadAll's chain check and re-seed.
                    let running = decoder.running_crc();
                    if running != 0 && d.record.crc != running {
                        return RegionResult {
                            decoded,
                            end: RegionEnd::Fatal(WalError::new(
                                crate::wal::WalErrorKind::ChainCrcMismatch {
                                    stored: d.record.crc,
                                    computed: running,
                                },
                                Default::default(),
                            )),
                            altered,
                        };
                    }
                    decoder.reseed(d.record.crc);
                }
                decoded += 1;
                if decoded >= expect.len() {
                    return RegionResult {
                        decoded,
                        end: RegionEnd::Complete,
                        altered,
                    };
                }
            }
            Err(DecodeEnd::Eof) => {
                return RegionResult {
                    decoded,
                    end: RegionEnd::SegmentEnd,
                    altered,
                }
            }
            Err(DecodeEnd::UnexpectedEof { error, .. }) => {
                return RegionResult {
                    decoded,
                    end: RegionEnd::Torn(error),
                    altered,
                }
            }
            Err(DecodeEnd::Fatal(error)) => {
                return RegionResult {
                    decoded,
                    end: RegionEnd::Fatal(error),
                    altered,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_reaches_every_alignment() {
        for lead in (0..512).step_by(8) {
            let mut l = lead;
            if l > 0 && l < 24 && l % 16 == 8 {
                l += 512;
            }
            let (bytes, count) = filler(l);
            assert_eq!(bytes.len(), l);
            assert_eq!(bytes.len() % 512, lead);
            let mut decoder = Decoder::from_segments(
                vec![Segment {
                    name: crate::wal::name::parse_wal_name("0-0.wal").unwrap(),
                    bytes: Bytes::from(bytes),
                }],
                DecoderMode::Strict,
            );
            for _ in 0..count {
                assert_eq!(decoder.next_record().unwrap().record.r#type, 4);
            }
            assert!(matches!(decoder.next_record(), Err(DecodeEnd::Eof)));
        }
    }
}
