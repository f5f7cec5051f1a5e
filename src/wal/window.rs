//! The read window of a segment file: the bytes still needed from the last read, followed by the
//! next read. The decoder, the invariant scan's record walk and the streaming replay's entry
//! reads (`replay::stream`) read segments this way.
//!
//! A window is refilled in its own allocation when nothing else shares it (no held entry, no
//! record slice): the pages it touched stay mapped and warm in the caches, instead of every read
//! faulting in fresh ones (a 1 MB window per read cost a 192 MB log ≈ 47,000 page faults).

use std::io::{self, Read};

use bytes::{Buf, Bytes};

/// The least read from a segment file at a time: small enough that a log of a few hundred KB
/// (a young member) touches few pages, large enough that a read is mostly copying.
pub const LEAST_READ_BYTES: u64 = 128 * 1024;

/// Makes `window` its bytes from `keep` on, followed by up to `read` bytes from `reader`.
///
/// The bytes from `keep` on are moved to the front of the window's own allocation when the
/// window is not shared, else copied into a new one; `read` is never more than the file system
/// says remains of the file. On a read error the window holds what was read before it.
pub fn refill<R: Read + ?Sized>(
    window: &mut Bytes,
    keep: usize,
    read: u64,
    reader: &mut R,
) -> io::Result<()> {
    let mut kept = std::mem::take(window);
    kept.advance(keep.min(kept.len()));
    let read_bytes = usize::try_from(read).unwrap_or(usize::MAX);
    let reused = kept.is_unique();
    let mut grown = if reused {
        Vec::from(kept)
    } else {
        let mut copy = Vec::with_capacity(kept.len().saturating_add(read_bytes));
        copy.extend_from_slice(&kept);
        copy
    };
    let capacity = grown.capacity();
    grown.reserve_exact(read_bytes);
    if !reused || grown.capacity() != capacity {
        // Fresh pages: mapped in one call. A reused window's pages are mapped already.
        super::prefault::populate_spare(&mut grown, read_bytes);
    }
    let result = (&mut *reader).take(read).read_to_end(&mut grown);
    *window = Bytes::from(grown);
    result.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(range: std::ops::Range<u8>) -> Vec<u8> {
        range.collect()
    }

    #[test]
    fn keeps_the_tail_then_appends_the_read() {
        let mut window = Bytes::from(bytes(0..10));
        let mut reader = io::Cursor::new(bytes(10..40));
        refill(&mut window, 6, 8, &mut reader).unwrap();
        assert_eq!(&window[..], &bytes(6..18)[..]);
        // The rest of the reader is still there.
        refill(&mut window, 12, 100, &mut reader).unwrap();
        assert_eq!(&window[..], &bytes(18..40)[..]);
    }

    #[test]
    fn an_unshared_window_reuses_its_allocation() {
        let mut window = Bytes::from(bytes(0..64));
        let before = window.as_ptr();
        let mut reader = io::Cursor::new(bytes(64..96));
        refill(&mut window, 48, 32, &mut reader).unwrap();
        assert_eq!(&window[..], &bytes(48..96)[..]);
        assert_eq!(window.as_ptr(), before, "refilled in place");
    }

    #[test]
    fn a_shared_window_is_left_intact() {
        let mut window = Bytes::from(bytes(0..64));
        let held = window.slice(40..50);
        let mut reader = io::Cursor::new(bytes(64..96));
        refill(&mut window, 48, 32, &mut reader).unwrap();
        assert_eq!(&window[..], &bytes(48..96)[..]);
        assert_eq!(&held[..], &bytes(40..50)[..], "a held slice never changes");
    }

    #[test]
    fn keep_past_the_end_keeps_nothing() {
        let mut window = Bytes::from(bytes(0..8));
        let mut reader = io::Cursor::new(bytes(8..12));
        refill(&mut window, 20, 4, &mut reader).unwrap();
        assert_eq!(&window[..], &bytes(8..12)[..]);
    }

    #[test]
    fn a_read_error_keeps_what_was_read_before_it() {
        struct Failing(u8);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("device gone"));
                }
                self.0 -= 1;
                buf[0] = 7;
                Ok(1)
            }
        }
        let mut window = Bytes::from(bytes(0..4));
        let error = refill(&mut window, 2, 10, &mut Failing(3)).unwrap_err();
        assert_eq!(error.to_string(), "device gone");
        assert_eq!(&window[..], &[2, 3, 7, 7, 7][..]);
    }
}
