//! bbolt's on-disk structures read from byte slices (etcd-io/bbolt `page.go`, `db.go: meta`),
//! every field access bounds-checked. Integers are little-endian (bbolt writes host order; etcd
//! runs on little-endian hosts).

use super::error::{Damage, DbError, MetaProblem};

/// Page header size (`pageHeaderSize`): id u64, flags u16, count u16, overflow u32.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of a branch or leaf element (`branchPageElementSize`, `leafPageElementSize`).
pub const ELEMENT_SIZE: usize = 16;
/// Sub-bucket value header (`bucketHeaderSize`): root page id u64, sequence u64.
pub const BUCKET_HEADER_SIZE: usize = 16;
/// `magic` in `db.go`.
pub const MAGIC: u32 = 0xED0C_DAED;
/// File format `version` in `db.go`.
pub const VERSION: u32 = 2;
/// Branch page flag.
pub const BRANCH_PAGE: u16 = 0x01;
/// Leaf page flag.
pub const LEAF_PAGE: u16 = 0x02;
/// Meta page flag.
pub const META_PAGE: u16 = 0x04;
/// Freelist page flag.
pub const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag of a sub-bucket (`bucketLeafFlag`).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;
/// Freelist page id of a db that does not persist its freelist (`NoFreelistSync`).
pub const NO_FREELIST: u64 = u64::MAX;
/// Smallest page size accepted.
pub const MIN_PAGE_SIZE: u32 = 1024;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 64 * 1024;

/// Little-endian u16 at `at`, if inside `b`.
pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Little-endian u32 at `at`, if inside `b`.
pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Little-endian u64 at `at`, if inside `b`.
pub fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// FNV-1a 64 (`hash/fnv.New64a`), as `meta.sum64` uses it over the meta's first 56 bytes.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A decoded meta page (`db.go: meta`), with the validation outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Meta {
    /// `magic`.
    pub magic: u32,
    /// `version`.
    pub version: u32,
    /// `pageSize`.
    pub page_size: u32,
    /// `flags`.
    pub flags: u32,
    /// Root bucket's root page id.
    pub root: u64,
    /// Root bucket's sequence.
    pub sequence: u64,
    /// Freelist page id, [`NO_FREELIST`] when none is persisted.
    pub freelist: u64,
    /// High-water mark: first page id never allocated.
    pub hwm: u64,
    /// Transaction id.
    pub txid: u64,
    /// Stored checksum.
    pub checksum: u64,
}

/// Meta fields start after the page header.
const META_LEN: usize = 64;

impl Meta {
    /// Parses the meta in a page image (`page` starts at the page header). `None` if too short.
    pub fn parse(page: &[u8]) -> Option<Meta> {
        let m = page.get(PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_LEN)?;
        Some(Meta {
            magic: le32(m, 0)?,
            version: le32(m, 4)?,
            page_size: le32(m, 8)?,
            flags: le32(m, 12)?,
            root: le64(m, 16)?,
            sequence: le64(m, 24)?,
            freelist: le64(m, 32)?,
            hwm: le64(m, 40)?,
            txid: le64(m, 48)?,
            checksum: le64(m, 56)?,
        })
    }

    /// `meta.validate` (bbolt 1.3.7+: a zero checksum is no exemption) plus a page-size sanity
    /// check bbolt does not make (it would mmap with any size).
    pub fn validate(page: &[u8]) -> Result<Meta, MetaProblem> {
        let meta = Meta::parse(page).ok_or(MetaProblem::Missing)?;
        if meta.magic != MAGIC {
            return Err(MetaProblem::BadMagic);
        }
        if meta.version != VERSION {
            return Err(MetaProblem::BadVersion);
        }
        let sum = fnv1a64(&page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + 56]);
        if meta.checksum != sum {
            return Err(MetaProblem::BadChecksum);
        }
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&meta.page_size)
            || !meta.page_size.is_power_of_two()
        {
            return Err(MetaProblem::BadPageSize);
        }
        Ok(meta)
    }
}

/// A page image: a tree page read from the file (with its overflow pages), or an inline bucket's
/// embedded leaf. `page` and `file_offset` locate it for error reports.
#[derive(Clone, Copy, Debug)]
pub struct PageImage<'a> {
    /// The page id errors are reported against.
    pub page: u64,
    /// Absolute file offset of `bytes[0]`.
    pub file_offset: u64,
    /// The bytes, starting at the page header.
    pub bytes: &'a [u8],
}

/// One leaf element (`leafPageElement`): flags, key, value.
#[derive(Clone, Copy, Debug)]
pub struct LeafElement<'a> {
    /// Element flags ([`BUCKET_LEAF_FLAG`] for a sub-bucket).
    pub flags: u32,
    /// The key.
    pub key: &'a [u8],
    /// The value (a sub-bucket's header and inline image for a bucket).
    pub value: &'a [u8],
    /// Absolute file offset of the element header.
    pub offset: u64,
}

/// One branch element (`branchPageElement`): the first key of a child and its page id.
#[derive(Clone, Copy, Debug)]
pub struct BranchElement<'a> {
    /// The child's first key.
    pub key: &'a [u8],
    /// The child page id.
    pub child: u64,
    /// Absolute file offset of the element header.
    pub offset: u64,
}

impl<'a> PageImage<'a> {
    fn damage(&self, rel: u64, damage: Damage) -> DbError {
        DbError::damage(self.page, self.file_offset.saturating_add(rel), damage)
    }

    /// Page flags (`page.flags`).
    pub fn flags(&self) -> Result<u16, DbError> {
        le16(self.bytes, 8).ok_or_else(|| self.short(10))
    }

    /// Element count (`page.count`).
    pub fn count(&self) -> Result<u16, DbError> {
        le16(self.bytes, 10).ok_or_else(|| self.short(12))
    }

    fn short(&self, end: u64) -> DbError {
        self.damage(
            0,
            Damage::ElementOutOfPage {
                index: 0,
                what: "page header",
                end,
                span: self.bytes.len() as u64,
            },
        )
    }

    /// Element `index`'s header slice, bounds-checked.
    fn element(&self, index: u16) -> Result<(usize, &'a [u8]), DbError> {
        let start = PAGE_HEADER_SIZE + usize::from(index) * ELEMENT_SIZE;
        let end = start + ELEMENT_SIZE;
        match self.bytes.get(start..end) {
            Some(e) => Ok((start, e)),
            // The page's element count claims more headers than it holds: the count is the
            // damaged field (the header itself lies outside the page, maybe outside the file).
            None => Err(self.damage(
                10,
                Damage::ElementOutOfPage {
                    index: u32::from(index),
                    what: "element header",
                    end: end as u64,
                    span: self.bytes.len() as u64,
                },
            )),
        }
    }

    /// `len` bytes at `start` (relative to the page) for the element whose header is at `header`
    /// (relative to the page). Out of the page, the damage is located at that header: its
    /// position and size fields are what is wrong, the bytes they name are not in the page.
    fn span(
        &self,
        index: u16,
        what: &'static str,
        header: usize,
        start: u64,
        len: u64,
    ) -> Result<&'a [u8], DbError> {
        let end = start.saturating_add(len);
        let ok = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| self.bytes.get(s..e));
        ok.ok_or_else(|| {
            self.damage(
                header as u64,
                Damage::ElementOutOfPage {
                    index: u32::from(index),
                    what,
                    end,
                    span: self.bytes.len() as u64,
                },
            )
        })
    }

    /// Leaf element `index` (`page.leafPageElement` + `key()` / `value()`).
    pub fn leaf(&self, index: u16) -> Result<LeafElement<'a>, DbError> {
        let (at, e) = self.element(index)?;
        let flags = le32(e, 0).unwrap_or(0);
        let pos = u64::from(le32(e, 4).unwrap_or(0));
        let ksize = u64::from(le32(e, 8).unwrap_or(0));
        let vsize = u64::from(le32(e, 12).unwrap_or(0));
        let key_start = at as u64 + pos;
        let key = self.span(index, "key", at, key_start, ksize)?;
        let value = self.span(index, "value", at, key_start + ksize, vsize)?;
        Ok(LeafElement {
            flags,
            key,
            value,
            offset: self.file_offset.saturating_add(at as u64),
        })
    }

    /// Branch element `index` (`page.branchPageElement` + `key()`).
    pub fn branch(&self, index: u16) -> Result<BranchElement<'a>, DbError> {
        let (at, e) = self.element(index)?;
        let pos = u64::from(le32(e, 0).unwrap_or(0));
        let ksize = u64::from(le32(e, 4).unwrap_or(0));
        let child = le64(e, 8).unwrap_or(0);
        let key = self.span(index, "key", at, at as u64 + pos, ksize)?;
        Ok(BranchElement {
            key,
            child,
            offset: self.file_offset.saturating_add(at as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn elements_outside_the_page_are_damage() {
        let mut page = vec![0u8; 64];
        page[8] = LEAF_PAGE as u8;
        page[10] = 3; // three elements claim 48 bytes after the header: only 48 are there
                      // element 0: pos 1000 → outside
        page[16 + 4] = 0xe8;
        page[16 + 5] = 0x03;
        page[16 + 8] = 1;
        let img = PageImage {
            page: 7,
            file_offset: 7 * 4096,
            bytes: &page,
        };
        let err = img.leaf(0).unwrap_err();
        assert!(matches!(
            err.kind(),
            Some(Damage::ElementOutOfPage { what: "key", .. })
        ));
        // Located at the element header whose position field is wrong, inside the page.
        assert!(matches!(err, DbError::Damage { offset, .. } if offset == 7 * 4096 + 16));
        assert!(img.leaf(2).is_ok());
        // A fourth header is past the page: located at the page's element count.
        let err = img.leaf(3).unwrap_err();
        assert!(matches!(err, DbError::Damage { offset, .. } if offset == 7 * 4096 + 10));
    }
}
