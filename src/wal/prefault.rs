//! Backing memory the read is about to fill with pages in one call, instead of one page fault
//! per page as it is first touched. Each fault is a trap into the kernel (≈3 µs on the 2-core VMs
//! this runs on, a third of it the trap itself); a young member's whole read is a few hundred of
//! them (docs/perf.md §11).
//!
//! Only memory already allocated is touched, and never more than the caller is about to write:
//! nothing here sizes an allocation or changes a byte.

use std::mem::MaybeUninit;

/// The most populated ahead of a writer at a time.
pub const STEP_BYTES: usize = 64 * 1024;

/// Asks the kernel to back the whole pages inside `region` now (`MADV_POPULATE_WRITE`, Linux
/// 5.14+). The contents do not change (the pages are the process's own, fresh or already
/// there); on an older kernel or another system the call fails or is absent and the pages
/// fault in as they are touched, as without it.
pub fn populate<T>(region: &mut [MaybeUninit<T>]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = region.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(region);
        let (first, last) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
        if last > first {
            // SAFETY: [first, last) lies inside `region`, memory this process owns and may
            // write; MADV_POPULATE_WRITE only maps pages for it (as a write fault would) and
            // never changes their contents or the mapping's permissions.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = region;
}

/// [`populate`] of the first `bytes` bytes (at most) of `vec`'s spare capacity.
pub fn populate_spare<T>(vec: &mut Vec<T>, bytes: usize) {
    let size = std::mem::size_of::<T>().max(1);
    let spare = vec.spare_capacity_mut();
    let count = (bytes / size).min(spare.len());
    populate(&mut spare[..count]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populating_changes_no_byte() {
        let mut vec: Vec<u8> = Vec::with_capacity(1 << 20);
        vec.extend((0..5000u32).map(|i| i as u8));
        let before = vec.clone();
        populate_spare(&mut vec, STEP_BYTES);
        populate_spare(&mut vec, usize::MAX);
        assert_eq!(vec, before);
        vec.extend(std::iter::repeat_n(7u8, 100_000));
        assert_eq!(&vec[..5000], &before[..]);
        assert!(vec[5000..].iter().all(|b| *b == 7));
        // A region smaller than a page, and an empty one.
        let mut small: Vec<u64> = Vec::with_capacity(3);
        populate_spare(&mut small, 24);
        populate(&mut small.spare_capacity_mut()[..0]);
        assert!(small.is_empty());
    }
}
