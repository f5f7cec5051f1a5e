//! CRC-32C of a concatenation from the CRCs of its parts: `crc32c(A‖B)` from `crc32c(A)`,
//! `crc32c(B)` and the length of `B`, as zlib's `crc32_combine` (1.2.12+: multiplication by
//! `x^(8·len)` modulo the polynomial), with the multiplier cached per length. The `crc32c`
//! crate's own `crc32c_combine` squares 32×32 matrices on every call (microseconds); this is a
//! 32-step multiplication when the length was seen before, which is what lets the db reader
//! hash an entry once and place it in two CRCs (`snapshot status` and HashKV).

/// CRC-32C's polynomial, reflected (bit 31 is `x^0`).
const POLY: u32 = 0x82F6_3B78;

/// `a·b` modulo the polynomial, both reflected.
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// Concatenates CRC-32Cs (see the module documentation).
#[derive(Clone, Debug)]
pub struct CrcConcat {
    /// `x^(2^k)` modulo the polynomial, k = 0..67 (lengths up to 2^64 bytes, times 8 bits).
    x2n: [u32; 67],
    /// A direct-mapped cache: `(len, x^(8·len))` at `len % 256`.
    cache: Box<[(usize, u32); 256]>,
}

impl Default for CrcConcat {
    fn default() -> Self {
        let mut x2n = [0u32; 67];
        let mut p = 1u32 << 30; // x^1
        for slot in x2n.iter_mut() {
            *slot = p;
            p = multmodp(p, p);
        }
        // Length 0 multiplies by x^0, and every empty slot holds it.
        CrcConcat {
            x2n,
            cache: Box::new([(0, 1u32 << 31); 256]),
        }
    }
}

impl CrcConcat {
    /// `x^(8·len)` modulo the polynomial.
    fn shift(&mut self, len: usize) -> u32 {
        let slot = &mut self.cache[len % 256];
        if slot.0 == len {
            return slot.1;
        }
        let mut p = 1u32 << 31; // x^0
        let mut n = len as u64;
        let mut k = 3; // 8 = 2^3 bits per byte
        while n != 0 {
            if n & 1 != 0 {
                p = multmodp(self.x2n[k], p);
            }
            n >>= 1;
            k += 1;
        }
        *slot = (len, p);
        p
    }

    /// `crc32c(A‖B)` from `crc_a = crc32c(A)`, `crc_b = crc32c(B)` and `len_b = |B|`.
    pub fn concat(&mut self, crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
        multmodp(self.shift(len_b), crc_a) ^ crc_b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_is_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let mut c = CrcConcat::default();
        for split in [0, 1, 2, 17, 255, 256, 257, 1000, 4096, 4999, 5000] {
            for end in [split, split + 1, 5000] {
                let end = end.min(5000);
                let (a, b) = (&data[..split], &data[split..end]);
                let want = crc32c::crc32c(&data[..end]);
                let got = c.concat(crc32c::crc32c(a), crc32c::crc32c(b), b.len());
                assert_eq!(got, want, "split {split} end {end}");
                assert_eq!(
                    got,
                    crc32c::crc32c_combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len())
                );
            }
        }
        // Lengths that share a cache slot, and lengths beyond any cache.
        for len in [3usize, 259, 515, 1 << 20, (1 << 33) + 3] {
            assert_eq!(
                c.concat(0x1234_5678, 0, len),
                crc32c::crc32c_combine(0x1234_5678, 0, len)
            );
        }
    }
}
