//! The record CRC: CRC-32C (Castagnoli) of a record's data appended to the running value
//! (etcd `wal/decoder.go`: `d.crc.Write(rec.Data)`, `crc.New(prevCrc, crcTable)` with
//! `crc32.MakeTable(crc32.Castagnoli)`).
//!
//! Most records of a WAL are a few dozen bytes (HardStates, small entries). For those the
//! `crc32c` crate's general routine (alignment split, two three-way interleaved passes, the
//! combination tables) costs several times the CRC instructions themselves, so short data goes
//! through the CPU's CRC-32C instruction directly, 8 bytes a step; longer data through the
//! crate. Same function, held equal to the crate's by a proptest.

/// Data up to this length takes the short path.
const SHORT_BYTES: usize = 256;

/// `crc32c::crc32c_append(crc, data)`.
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() <= SHORT_BYTES && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU supports SSE4.2, checked just above.
        return unsafe { short_sse42(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn short_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let mut words = data.chunks_exact(8);
    let mut running = u64::from(!crc);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        running = _mm_crc32_u64(running, word);
    }
    // The instruction leaves the CRC in the low 32 bits. The tail (0–7 bytes) in at most three
    // steps, little-endian as the byte order the CRC consumes.
    let mut running = running as u32;
    let mut tail = words.remainder();
    if let Some((four, rest)) = tail.split_first_chunk::<4>() {
        running = _mm_crc32_u32(running, u32::from_le_bytes(*four));
        tail = rest;
    }
    if let Some((two, rest)) = tail.split_first_chunk::<2>() {
        running = _mm_crc32_u16(running, u16::from_le_bytes(*two));
        tail = rest;
    }
    if let Some(byte) = tail.first() {
        running = _mm_crc32_u8(running, *byte);
    }
    !running
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equals_the_crate(
            crc in any::<u32>(),
            data in proptest::collection::vec(any::<u8>(), 0..600),
            skip in 0usize..8,
        ) {
            let data = &data[skip.min(data.len())..];
            prop_assert_eq!(super::crc32c_append(crc, data), crc32c::crc32c_append(crc, data));
        }
    }

    #[test]
    fn known_value() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(super::crc32c_append(0, &[0u8; 32]), 0x8a91_36aa);
    }
}
