//! The crash states of each fault class, planned from a member's history.
//!
//! A state is named by a [`Spec`] (printable, parseable: the `--only` argument that reproduces
//! it). States that damage bytes are decoded here, with the real decoder over just the damaged
//! stretch, and reduce to an [`Effect`]: etcd recovers the first `stop` records, or refuses.

use std::fmt;

use bytes::Bytes;

use crate::proto::walpb::Record;
use crate::wal::frame::decode_frame_size;

use super::history::{History, RecKind};
use super::region::{decode_region, region_buffer, RegionEnd};
use super::{spread, FaultClass, Options};

/// Which sectors of a write did not persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectorSet {
    /// These sectors were lost, every other one persisted.
    Lost(Vec<u32>),
    /// Only this sector persisted.
    OnlyPersisted(u32),
}

impl SectorSet {
    fn render(&self) -> String {
        match self {
            SectorSet::Lost(list) => list
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(","),
            SectorSet::OnlyPersisted(i) => format!("only{i}"),
        }
    }

    fn parse(text: &str) -> Option<SectorSet> {
        if let Some(i) = text.strip_prefix("only") {
            return Some(SectorSet::OnlyPersisted(i.parse().ok()?));
        }
        Some(SectorSet::Lost(
            text.split(',')
                .map(|s| s.parse().ok())
                .collect::<Option<Vec<u32>>>()?,
        ))
    }

    fn persisted(&self, sector: u32) -> bool {
        match self {
            SectorSet::Lost(list) => !list.contains(&sector),
            SectorSet::OnlyPersisted(i) => *i == sector,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// (a)/(b): the first `k` records persisted, nothing after.
    Cut { k: usize },
    /// (c): `written` records handed to the OS; segment `seg` persisted through byte `at`
    /// (sectors in order), zeros after.
    Torn { written: usize, seg: usize, at: u64 },
    /// (d): `durable` records fsynced, `written` written; only the durable ones persist.
    Lost { durable: usize, written: usize },
    /// (e): the write `durable..written` persisted in part: sectors numbered from the one
    /// holding the write's first byte.
    Sectors {
        durable: usize,
        written: usize,
        lost: SectorSet,
    },
    /// (f): the 512-byte sector at `at` in segment `seg` zeroed.
    Zeroed { seg: usize, at: u64 },
    /// (g): bit `bit` of byte `at` in segment `seg` flipped.
    Flip { seg: usize, at: u64, bit: u8 },
    /// (h): the newest `.snap` truncated to half its length, or missing.
    Snap { missing: bool },
    /// (i): the last segment missing.
    DropLastSegment,
}

impl Spec {
    pub fn render(&self, class: FaultClass) -> String {
        let l = class.letter();
        match self {
            Spec::Cut { k } => format!("{l}:{k}"),
            Spec::Torn { written, seg, at } => format!("{l}:{written}:{seg}:{at}"),
            Spec::Lost { durable, written } => format!("{l}:{durable}:{written}"),
            Spec::Sectors {
                durable,
                written,
                lost,
            } => format!("{l}:{durable}:{written}:{}", lost.render()),
            Spec::Zeroed { seg, at } => format!("{l}:{seg}:{at}"),
            Spec::Flip { seg, at, bit } => format!("{l}:{seg}:{at}:{bit}"),
            Spec::Snap { missing } => {
                format!("{l}:{}", if *missing { "missing" } else { "truncated" })
            }
            Spec::DropLastSegment => format!("{l}"),
        }
    }

    pub fn parse(text: &str) -> Option<(FaultClass, Spec)> {
        let mut parts = text.split(':');
        let class = FaultClass::from_letter(parts.next()?.chars().next()?)?;
        let rest: Vec<&str> = parts.collect();
        let n = |i: usize| -> Option<u64> { rest.get(i)?.parse().ok() };
        let spec = match class {
            FaultClass::FsyncPoint | FaultClass::RecordBoundary => Spec::Cut { k: n(0)? as usize },
            FaultClass::TornSector => Spec::Torn {
                written: n(0)? as usize,
                seg: n(1)? as usize,
                at: n(2)?,
            },
            FaultClass::LostUnsynced => Spec::Lost {
                durable: n(0)? as usize,
                written: n(1)? as usize,
            },
            FaultClass::ReorderedSectors => Spec::Sectors {
                durable: n(0)? as usize,
                written: n(1)? as usize,
                lost: SectorSet::parse(rest.get(2)?)?,
            },
            FaultClass::ZeroedSector => Spec::Zeroed {
                seg: n(0)? as usize,
                at: n(1)?,
            },
            FaultClass::BitFlip => Spec::Flip {
                seg: n(0)? as usize,
                at: n(1)?,
                bit: n(2)? as u8,
            },
            FaultClass::SnapFile => Spec::Snap {
                missing: match *rest.first()? {
                    "missing" => true,
                    "truncated" => false,
                    _ => return None,
                },
            },
            FaultClass::LastSegmentMissing => Spec::DropLastSegment,
        };
        Some((class, spec))
    }
}

/// What a state's recovery reduces to.
#[derive(Clone, Debug)]
pub enum Effect {
    /// etcd recovers the first `stop` records (after Repair truncated a torn tail if
    /// `repaired`). `altered`: a record was accepted whose bytes differ from what was written.
    Prefix {
        stop: usize,
        repaired: bool,
        altered: bool,
    },
    /// etcd refuses to start.
    Refused(String),
    /// Evaluated on the real path (different files than a prefix: `.snap` faults, a missing
    /// segment).
    Real,
}

#[derive(Clone, Debug)]
pub struct Planned {
    pub class: FaultClass,
    pub spec: Spec,
    /// Records written (handed to the OS) when the crash happened.
    pub written: usize,
    /// Records fsynced when the crash happened.
    pub durable: usize,
    pub effect: Effect,
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.spec.render(self.class))
    }
}

/// One fsync interval: records `durable..written` written after the fsync at `durable`.
#[derive(Clone, Copy, Debug)]
struct Write {
    durable: usize,
    written: usize,
    seg: usize,
    start: u64,
    end: u64,
}

fn writes(h: &History) -> Vec<Write> {
    let first = h.first_cut();
    let mut out = Vec::new();
    let syncs: Vec<usize> = h.syncs.iter().copied().filter(|s| *s >= first).collect();
    for pair in syncs.windows(2) {
        let (d, w) = (pair[0], pair[1]);
        if w <= d {
            continue;
        }
        let seg = h.records[d].segment;
        if h.records[w - 1].segment != seg {
            continue;
        }
        // A new segment's header: the file gets its name only after this fsync.
        if d == h.segments[seg].first_record && w == h.segments[seg].header_end && seg > 0 {
            continue;
        }
        out.push(Write {
            durable: d,
            written: w,
            seg,
            start: h.records[d].offset,
            end: h.records[w - 1].end(),
        });
    }
    // Trailing writes never fsynced (e.g. a final commit-only HardState).
    if let Some(&last) = syncs.last() {
        let n = h.records.len();
        if n > last && h.records[n - 1].segment == h.records[last].segment {
            out.push(Write {
                durable: last,
                written: n,
                seg: h.records[last].segment,
                start: h.records[last].offset,
                end: h.records[n - 1].end(),
            });
        }
    }
    out
}

fn expect(h: &History, from: usize, to: usize) -> Vec<(i64, u32, Option<Bytes>)> {
    h.records[from..to]
        .iter()
        .map(|r| {
            let seg = &h.segments[r.segment];
            let word = u64::from_le_bytes(
                seg.bytes[r.offset as usize..r.offset as usize + 8]
                    .try_into()
                    .expect("8 bytes"),
            );
            let (len, _) = decode_frame_size(word);
            let body = seg
                .bytes
                .slice(r.offset as usize + 8..(r.offset + 8 + len) as usize);
            let rec = <Record as prost::Message>::decode(body).expect("decoded before");
            (rec.r#type, rec.crc, rec.data)
        })
        .collect()
}

/// Decodes the stretch of segment `seg` starting at record `from` (holding records
/// `from..to` originally), as `bytes` now reads, and maps the end to an effect.
fn decode_stretch(
    h: &History,
    seg: usize,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
    is_last_segment: bool,
) -> (Effect, usize) {
    let expected = expect(h, from, to);
    let result = decode_region(
        &h.segments[seg].name,
        h.records[from].offset,
        bytes,
        h.crc_before(from),
        is_last_segment,
        &expected,
    );
    let stop = from + result.decoded;
    let altered = result.altered.is_some_and(|a| a < result.decoded);
    let effect = match result.end {
        RegionEnd::Complete => Effect::Prefix {
            stop: to,
            repaired: false,
            altered,
        },
        RegionEnd::SegmentEnd => Effect::Prefix {
            stop,
            repaired: false,
            altered,
        },
        RegionEnd::Torn(_) if is_last_segment => Effect::Prefix {
            stop,
            repaired: true,
            altered,
        },
        RegionEnd::Torn(e) => Effect::Refused(format!(
            "{e} in a segment that is not the last: fatal in write mode (Repair only looks at the last segment)"
        )),
        RegionEnd::Fatal(e) => Effect::Refused(e.to_string()),
    };
    (effect, stop)
}

/// Plans every state of the wanted classes except (h) and (i)'s real-path work.
pub fn plan(h: &History, opts: &Options) -> Vec<Planned> {
    let mut out = Vec::new();
    let n = h.records.len();
    let first = h.first_cut();
    if n == 0 || n < first || h.segments.is_empty() {
        return out;
    }
    if opts.wants(FaultClass::FsyncPoint) {
        for &s in h.syncs.iter().filter(|s| **s >= first) {
            out.push(Planned {
                class: FaultClass::FsyncPoint,
                spec: Spec::Cut { k: s },
                written: s,
                durable: s,
                effect: Effect::Prefix {
                    stop: s,
                    repaired: false,
                    altered: false,
                },
            });
        }
    }
    if opts.wants(FaultClass::RecordBoundary) {
        for k in first..=n {
            out.push(Planned {
                class: FaultClass::RecordBoundary,
                spec: Spec::Cut { k },
                written: k,
                durable: k,
                effect: Effect::Prefix {
                    stop: k,
                    repaired: false,
                    altered: false,
                },
            });
        }
    }
    let writes = writes(h);
    if opts.wants(FaultClass::LostUnsynced) {
        for w in &writes {
            out.push(Planned {
                class: FaultClass::LostUnsynced,
                spec: Spec::Lost {
                    durable: w.durable,
                    written: w.written,
                },
                written: w.written,
                durable: w.durable,
                effect: Effect::Prefix {
                    stop: w.durable,
                    repaired: false,
                    altered: false,
                },
            });
        }
    }
    if opts.wants(FaultClass::TornSector) {
        for w in &writes {
            let boundaries: Vec<u64> = ((w.start / 512 + 1) * 512..w.end).step_by(512).collect();
            for t in spread(&boundaries, opts.cap(opts.max_torn_per_write)) {
                out.push(plan_torn(h, w, t));
            }
        }
    }
    if opts.wants(FaultClass::ReorderedSectors) {
        for w in &writes {
            let first_sector = w.start / 512;
            let m = ((w.end - 1) / 512 - first_sector + 1) as u32;
            if m < 2 {
                continue;
            }
            let mut sets: Vec<SectorSet> = Vec::new();
            if m <= 4 {
                for mask in 1u32..(1 << m) - 1 {
                    let lost: Vec<u32> = (0..m).filter(|i| mask & (1 << i) != 0).collect();
                    // A lost suffix is an in-order tear (class c).
                    let suffix = lost
                        .iter()
                        .enumerate()
                        .all(|(j, s)| *s == m - lost.len() as u32 + j as u32);
                    if !suffix {
                        sets.push(SectorSet::Lost(lost));
                    }
                }
            } else {
                // Everything persisted but sector i; only sector i persisted (2m − 2 states,
                // picked by position so that huge writes cost nothing to plan).
                let count = 2 * (m as usize) - 2;
                let picks: Vec<usize> = (0..count).collect();
                for pick in spread(&picks, opts.cap(opts.max_subsets_per_write)) {
                    let set = if pick < m as usize - 1 {
                        SectorSet::Lost(vec![pick as u32])
                    } else {
                        SectorSet::OnlyPersisted((pick - (m as usize - 1) + 1) as u32)
                    };
                    sets.push(set);
                }
            }
            for lost in spread(&sets, opts.cap(opts.max_subsets_per_write)) {
                out.push(plan_sectors(h, w, lost));
            }
        }
    }
    let last_seg = h.segments.len() - 1;
    let durable_end = h.durable_at(n);
    if opts.wants(FaultClass::ZeroedSector) {
        for seg in 0..h.segments.len() {
            let len = h.segments[seg].data_len;
            let sectors: Vec<u64> = (0..len.div_ceil(512)).map(|s| s * 512).collect();
            for at in spread(&sectors, opts.cap(opts.max_zeroed_per_segment)) {
                if let Some(p) = plan_zeroed(h, seg, at, seg == last_seg, durable_end) {
                    out.push(p);
                }
            }
        }
    }
    if opts.wants(FaultClass::BitFlip) {
        for seg in 0..h.segments.len() {
            let records: Vec<usize> = (h.segments[seg].first_record..h.segment_end_record(seg))
                .filter(|r| !matches!(h.records[*r].kind, RecKind::Crc(_)))
                .collect();
            for r in spread(&records, opts.cap(opts.max_flips_per_segment)) {
                if let Some(p) = plan_flip(h, r, seg == last_seg, durable_end) {
                    out.push(p);
                }
                if opts.flip_unprotected {
                    // The record's type value: the byte after the `08` tag.
                    let at = h.records[r].offset + 8 + 1;
                    if let Some(p) = flip_at(h, r, at, 0, seg == last_seg, durable_end) {
                        out.push(p);
                    }
                }
            }
        }
    }
    if opts.wants(FaultClass::SnapFile) && !h.snaps.is_empty() {
        for missing in [false, true] {
            out.push(Planned {
                class: FaultClass::SnapFile,
                spec: Spec::Snap { missing },
                written: n,
                durable: durable_end,
                effect: Effect::Real,
            });
        }
    }
    if opts.wants(FaultClass::LastSegmentMissing) {
        out.push(Planned {
            class: FaultClass::LastSegmentMissing,
            spec: Spec::DropLastSegment,
            written: n,
            durable: durable_end,
            effect: Effect::Real,
        });
    }
    out
}

fn plan_torn(h: &History, w: &Write, t: u64) -> Planned {
    let spec = Spec::Torn {
        written: w.written,
        seg: w.seg,
        at: t,
    };
    let r = (w.durable..w.written)
        .find(|r| h.records[*r].end() > t)
        .expect("t lies inside the write");
    let effect = if h.records[r].offset >= t {
        Effect::Prefix {
            stop: r,
            repaired: false,
            altered: false,
        }
    } else {
        let seg = &h.segments[w.seg];
        // Zeros after t; the decoder stops at the torn record (or at the zero length word
        // after it when only padding was lost), so nothing past it is needed.
        let rec = &h.records[r];
        let mut bytes = region_buffer(rec.offset, (rec.frame_len + 8) as usize);
        let base = bytes.len();
        bytes.extend_from_slice(&seg.bytes[rec.offset as usize..t as usize]);
        bytes.resize(base + (rec.frame_len + 8) as usize, 0);
        decode_stretch(h, w.seg, r, w.written, bytes, true).0
    };
    Planned {
        class: FaultClass::TornSector,
        spec,
        written: w.written,
        durable: w.durable,
        effect,
    }
}

fn plan_sectors(h: &History, w: &Write, lost: SectorSet) -> Planned {
    let seg = &h.segments[w.seg];
    let first_sector = w.start / 512;
    let last_sector = (w.end - 1) / 512;
    let len = (w.end - w.start) as usize;
    let mut bytes = region_buffer(w.start, len + 8);
    let base = bytes.len();
    bytes.resize(base + len + 8, 0);
    for s in first_sector..=last_sector {
        if lost.persisted((s - first_sector) as u32) {
            let lo = (s * 512).max(w.start);
            let hi = ((s + 1) * 512).min(w.end);
            bytes[base + (lo - w.start) as usize..base + (hi - w.start) as usize]
                .copy_from_slice(&seg.bytes[lo as usize..hi as usize]);
        }
    }
    let (effect, _) = decode_stretch(h, w.seg, w.durable, w.written, bytes, true);
    Planned {
        class: FaultClass::ReorderedSectors,
        spec: Spec::Sectors {
            durable: w.durable,
            written: w.written,
            lost,
        },
        written: w.written,
        durable: w.durable,
        effect,
    }
}

/// What the chain check at the next segment says after a segment ended early at record `stop`.
fn after_early_segment_end(h: &History, seg: usize, stop: usize) -> Effect {
    let n = h.records.len();
    let end = h.segment_end_record(seg);
    if stop >= end {
        return Effect::Prefix {
            stop: n,
            repaired: false,
            altered: false,
        };
    }
    let running = h.crc_before(stop);
    match h.segments.get(seg + 1).map(|s| &h.records[s.first_record].kind) {
        Some(RecKind::Crc(stored)) if running != 0 && *stored != running => Effect::Refused(format!(
            "wal: crc mismatch (segment {} ends early at offset {}; the next segment's crc record {:#010x} does not match the chain {:#010x})",
            h.segments[seg].name.file_name,
            h.records[stop].offset,
            stored,
            running
        )),
        _ => Effect::Prefix {
            stop: n,
            repaired: false,
            altered: false,
        },
    }
}

fn plan_zeroed(
    h: &History,
    seg: usize,
    at: u64,
    is_last: bool,
    durable_end: usize,
) -> Option<Planned> {
    let info = &h.segments[seg];
    let first = info.first_record;
    let end = h.segment_end_record(seg);
    let r0 = first + h.records[first..end].partition_point(|r| r.end() <= at);
    if r0 >= end {
        return None;
    }
    let r_last = first + h.records[first..end].partition_point(|r| r.offset < at + 512) - 1;
    let start = h.records[r0].offset;
    let stop_byte = h.records[r_last].end();
    let mut bytes = region_buffer(start, (stop_byte - start + 8) as usize);
    let base = bytes.len();
    bytes.extend_from_slice(&info.bytes[start as usize..stop_byte as usize]);
    let lo = at.max(start);
    let hi = (at + 512).min(stop_byte);
    bytes[base + (lo - start) as usize..base + (hi - start) as usize].fill(0);
    if is_last && r_last + 1 == end {
        bytes.resize(bytes.len() + 8, 0);
    }
    let (effect, stop) = decode_stretch(h, seg, r0, r_last + 1, bytes, is_last);
    let effect = match effect {
        Effect::Prefix { stop: s, .. } if s == r_last + 1 => Effect::Prefix {
            stop: h.records.len(),
            repaired: false,
            altered: false,
        },
        Effect::Prefix {
            repaired: false, ..
        } if !is_last => after_early_segment_end(h, seg, stop),
        other => other,
    };
    Some(Planned {
        class: FaultClass::ZeroedSector,
        spec: Spec::Zeroed { seg, at },
        written: h.records.len(),
        durable: durable_end,
        effect,
    })
}

fn plan_flip(h: &History, r: usize, is_last: bool, durable_end: usize) -> Option<Planned> {
    let rec = &h.records[r];
    let info = &h.segments[rec.segment];
    let (_, _, data) = expect(h, r, r + 1).pop()?;
    let data = data.filter(|d| !d.is_empty())?;
    let word = u64::from_le_bytes(
        info.bytes[rec.offset as usize..rec.offset as usize + 8]
            .try_into()
            .ok()?,
    );
    let (record_len, _) = decode_frame_size(word);
    let data_start = rec.offset + 8 + record_len - data.len() as u64;
    if info.bytes[data_start as usize..(data_start as usize + data.len())] != data[..] {
        return None; // data is not the last field: not etcd's layout
    }
    // The middle byte of the CRC-covered data, a bit that varies along the log.
    let at = data_start + data.len() as u64 / 2;
    flip_at(h, r, at, (r % 8) as u8, is_last, durable_end)
}

fn flip_at(
    h: &History,
    r: usize,
    at: u64,
    bit: u8,
    is_last: bool,
    durable_end: usize,
) -> Option<Planned> {
    let rec = &h.records[r];
    let seg = rec.segment;
    let info = &h.segments[seg];
    if at < rec.offset || at >= rec.end() || bit > 7 {
        return None;
    }
    let mut bytes = region_buffer(rec.offset, (rec.frame_len + 8) as usize);
    let base = bytes.len();
    bytes.extend_from_slice(&info.bytes[rec.offset as usize..rec.end() as usize]);
    bytes[base + (at - rec.offset) as usize] ^= 1 << bit;
    let end = h.segment_end_record(seg);
    if is_last && r + 1 == end {
        bytes.resize(bytes.len() + 8, 0);
    }
    let (effect, stop) = decode_stretch(h, seg, r, r + 1, bytes, is_last);
    let effect = match effect {
        Effect::Prefix {
            stop: s, altered, ..
        } if s == r + 1 => Effect::Prefix {
            stop: h.records.len(),
            repaired: false,
            altered,
        },
        Effect::Prefix {
            repaired: false, ..
        } if !is_last => after_early_segment_end(h, seg, stop),
        other => other,
    };
    Some(Planned {
        class: FaultClass::BitFlip,
        spec: Spec::Flip { seg, at, bit },
        written: h.records.len(),
        durable: durable_end,
        effect,
    })
}

/// The one state `spec` names (for `--only`), if it exists in this member.
pub fn plan_only(h: &History, class: FaultClass, spec: &Spec) -> Option<Planned> {
    let n = h.records.len();
    let first = h.first_cut();
    let last_seg = h.segments.len().checked_sub(1)?;
    let durable_end = h.durable_at(n);
    let write_of = |durable: Option<usize>, written: usize| -> Option<Write> {
        writes(h)
            .into_iter()
            .find(|w| w.written == written && durable.map_or(true, |d| d == w.durable))
    };
    let planned = match (class, spec) {
        (FaultClass::FsyncPoint, Spec::Cut { k }) if h.syncs.contains(k) && *k >= first => {
            Planned {
                class,
                spec: spec.clone(),
                written: *k,
                durable: *k,
                effect: Effect::Prefix {
                    stop: *k,
                    repaired: false,
                    altered: false,
                },
            }
        }
        (FaultClass::RecordBoundary, Spec::Cut { k }) if *k >= first && *k <= n => Planned {
            class,
            spec: spec.clone(),
            written: *k,
            durable: *k,
            effect: Effect::Prefix {
                stop: *k,
                repaired: false,
                altered: false,
            },
        },
        (FaultClass::LostUnsynced, Spec::Lost { durable, written }) => {
            let w = write_of(Some(*durable), *written)?;
            Planned {
                class,
                spec: spec.clone(),
                written: w.written,
                durable: w.durable,
                effect: Effect::Prefix {
                    stop: w.durable,
                    repaired: false,
                    altered: false,
                },
            }
        }
        (FaultClass::TornSector, Spec::Torn { written, seg, at }) => {
            let w = write_of(None, *written)
                .filter(|w| w.seg == *seg && *at > w.start && *at < w.end)?;
            plan_torn(h, &w, *at)
        }
        (
            FaultClass::ReorderedSectors,
            Spec::Sectors {
                durable,
                written,
                lost,
            },
        ) => {
            let w = write_of(Some(*durable), *written)?;
            plan_sectors(h, &w, lost.clone())
        }
        (FaultClass::ZeroedSector, Spec::Zeroed { seg, at }) if *seg <= last_seg => {
            plan_zeroed(h, *seg, *at, *seg == last_seg, durable_end)?
        }
        (FaultClass::BitFlip, Spec::Flip { seg, at, bit }) if *seg <= last_seg => {
            let first_r = h.segments[*seg].first_record;
            let end = h.segment_end_record(*seg);
            let r = first_r + h.records[first_r..end].partition_point(|r| r.end() <= *at);
            if r >= end {
                return None;
            }
            flip_at(h, r, *at, *bit, *seg == last_seg, durable_end)?
        }
        (FaultClass::SnapFile, Spec::Snap { .. }) if !h.snaps.is_empty() => Planned {
            class,
            spec: spec.clone(),
            written: n,
            durable: durable_end,
            effect: Effect::Real,
        },
        (FaultClass::LastSegmentMissing, Spec::DropLastSegment) => Planned {
            class,
            spec: spec.clone(),
            written: n,
            durable: durable_end,
            effect: Effect::Real,
        },
        _ => return None,
    };
    Some(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_render_and_parse_back() {
        let cases = [
            (FaultClass::FsyncPoint, Spec::Cut { k: 7 }),
            (FaultClass::RecordBoundary, Spec::Cut { k: 0 }),
            (
                FaultClass::TornSector,
                Spec::Torn {
                    written: 9,
                    seg: 1,
                    at: 4096,
                },
            ),
            (
                FaultClass::LostUnsynced,
                Spec::Lost {
                    durable: 3,
                    written: 5,
                },
            ),
            (
                FaultClass::ReorderedSectors,
                Spec::Sectors {
                    durable: 3,
                    written: 5,
                    lost: SectorSet::Lost(vec![0, 2]),
                },
            ),
            (
                FaultClass::ReorderedSectors,
                Spec::Sectors {
                    durable: 3,
                    written: 5,
                    lost: SectorSet::OnlyPersisted(4),
                },
            ),
            (FaultClass::ZeroedSector, Spec::Zeroed { seg: 0, at: 512 }),
            (
                FaultClass::BitFlip,
                Spec::Flip {
                    seg: 2,
                    at: 77,
                    bit: 6,
                },
            ),
            (FaultClass::SnapFile, Spec::Snap { missing: true }),
            (FaultClass::SnapFile, Spec::Snap { missing: false }),
            (FaultClass::LastSegmentMissing, Spec::DropLastSegment),
        ];
        for (class, spec) in cases {
            let text = spec.render(class);
            assert_eq!(Spec::parse(&text), Some((class, spec)), "{text}");
        }
        assert_eq!(Spec::parse("z:1"), None);
        assert_eq!(Spec::parse("b:x"), None);
    }
}
