//! The 8-byte frame header: little-endian length word, low 56 bits = record length, top byte
//! `0x80|pad` when the record is padded to a multiple of 8.

pub const FRAME_HEADER_BYTES: u64 = 8;

/// `(record_len, pad_len)` as etcd's `decodeFrameSize`: the pad is read only when bit 63 is set,
/// and bits 56–62 are otherwise ignored (bug-compatible: no other top byte is rejected).
pub fn decode_frame_size(length_word: u64) -> (u64, u64) {
    let record_len = length_word & 0x00FF_FFFF_FFFF_FFFF;
    let pad_len = if (length_word as i64) < 0 {
        (length_word >> 56) & 0x7
    } else {
        0
    };
    (record_len, pad_len)
}

/// etcd's `encodeFrameSize`.
pub fn encode_frame_size(record_len: u64) -> (u64, u64) {
    debug_assert!(record_len <= 0x00FF_FFFF_FFFF_FFFF);
    let pad_len = (8 - record_len % 8) % 8;
    let mut length_word = record_len;
    if pad_len != 0 {
        length_word |= (0x80 | pad_len) << 56;
    }
    (length_word, pad_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_size_matches_etcd_examples() {
        // First-segment crc record: 4 bytes, pad 4 → 04 00 00 00 00 00 00 84.
        assert_eq!(encode_frame_size(4), (0x8400_0000_0000_0004, 4));
        assert_eq!(encode_frame_size(16), (16, 0));
        assert_eq!(decode_frame_size(0x8700_0000_0000_0011), (0x11, 7));
        // Bit 63 clear: bits 56–62 ignored, no pad.
        assert_eq!(decode_frame_size(0x0500_0000_0000_0010), (16, 0));
        for len in 0..64 {
            let (word, pad) = encode_frame_size(len);
            assert_eq!(decode_frame_size(word), (len, pad));
            assert_eq!((len + pad) % 8, 0);
        }
    }
}
