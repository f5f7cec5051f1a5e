//! Segment file names `%016x-%016x.wal` (sequence, raft index expected next) and etcd's rules
//! for listing, sorting and selecting them.

/// A parsed segment name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentName {
    pub file_name: String,
    pub seq: u64,
    /// The raft index expected next when the segment was created (not its first entry).
    pub raft_index: u64,
}

pub fn wal_name(seq: u64, raft_index: u64) -> String {
    format!("{seq:016x}-{raft_index:016x}.wal")
}

/// Go `fmt.Sscanf("%016x")`: optional leading spaces, up to 16 hex digits, either case.
fn scan_hex(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start_matches(' ');
    let digits = s.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    if digits > 16 {
        // Sscanf stops after 16 digits; the 17th then fails to match the '-' or '.wal' literal.
        return None;
    }
    let value = u64::from_str_radix(&s[..digits], 16).ok()?;
    Some((value, &s[digits..]))
}

/// etcd's `parseWALName`: suffix `.wal` required, then a lenient `%016x-%016x.wal` scan whose
/// trailing input is ignored (so `…wal.wal` parses).
pub fn parse_wal_name(file_name: &str) -> Option<SegmentName> {
    if !file_name.ends_with(".wal") {
        return None;
    }
    let (seq, rest) = scan_hex(file_name)?;
    let rest = rest.strip_prefix('-')?;
    let (raft_index, rest) = scan_hex(rest)?;
    rest.strip_prefix(".wal")?;
    Some(SegmentName {
        file_name: file_name.to_string(),
        seq,
        raft_index,
    })
}

/// The directory listing as etcd sees it: byte-wise sorted, unparseable names dropped.
/// Returns the segments and the names that were ignored (`.tmp` ignored silently by etcd).
pub fn wal_segments(mut names: Vec<String>) -> (Vec<SegmentName>, Vec<String>) {
    names.sort();
    let mut segments = Vec::new();
    let mut ignored = Vec::new();
    for name in names {
        match parse_wal_name(&name) {
            Some(segment) => segments.push(segment),
            None => {
                if !name.ends_with(".tmp") {
                    ignored.push(name);
                }
            }
        }
    }
    (segments, ignored)
}

/// etcd's `searchIndex`: scanning from the end, the last segment whose name index ≤ `raft_index`.
pub fn search_index(segments: &[SegmentName], raft_index: u64) -> Option<usize> {
    (0..segments.len())
        .rev()
        .find(|&i| raft_index >= segments[i].raft_index)
}

/// etcd's `isValidSeq`, quirk included: a gap directly after sequence 0 passes (the CRC chain
/// catches it later).
pub fn is_valid_seq(segments: &[SegmentName]) -> bool {
    let mut last_seq = 0u64;
    for segment in segments {
        if last_seq != 0 && last_seq.wrapping_add(1) != segment.seq {
            return false;
        }
        last_seq = segment.seq;
    }
    true
}

/// The first sequence gap, for reporting (etcd's check above misses one after seq 0).
pub fn first_seq_gap(segments: &[SegmentName]) -> Option<(usize, u64, u64)> {
    segments.windows(2).enumerate().find_map(|(i, w)| {
        (w[0].seq.checked_add(1) != Some(w[1].seq)).then_some((i + 1, w[0].seq, w[1].seq))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go_sscanf() {
        let ok = |n: &str| parse_wal_name(n).map(|s| (s.seq, s.raft_index));
        assert_eq!(ok("0000000000000000-0000000000000000.wal"), Some((0, 0)));
        assert_eq!(ok("00000000000000AB-0000000000000001.wal"), Some((171, 1)));
        assert_eq!(ok("0-1.wal"), Some((0, 1)));
        assert_eq!(ok(" 1-2.wal"), Some((1, 2)));
        assert_eq!(
            ok("0000000000000001-0000000000000002.wal.wal"),
            Some((1, 2))
        );
        for bad in [
            "00000000000000001-2.wal",
            "+1-2.wal",
            "0x1-2.wal",
            "1-2-x.wal",
            "1-2.snap",
            "1-2.wal.tmp",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }

    #[test]
    fn sort_is_bytewise_and_seq_quirk_holds() {
        let names = vec![
            wal_name(1, 0x28),
            "1-28.wal".into(),
            wal_name(0, 0),
            "0.tmp".into(),
            "x".into(),
        ];
        let (segments, ignored) = wal_segments(names);
        assert_eq!(segments[0].file_name, wal_name(0, 0));
        assert_eq!(segments[2].file_name, "1-28.wal"); // sorts after canonical names
        assert_eq!(ignored, vec!["x".to_string()]);
        assert!(!is_valid_seq(&segments));
        let gap_after_zero = wal_segments(vec![wal_name(0, 0), wal_name(2, 5), wal_name(3, 9)]).0;
        assert!(is_valid_seq(&gap_after_zero));
        assert_eq!(first_seq_gap(&gap_after_zero), Some((1, 0, 2)));
    }

    #[test]
    fn search_index_takes_last_file_at_or_below() {
        let segments = wal_segments(vec![wal_name(0, 0), wal_name(1, 10), wal_name(2, 20)]).0;
        assert_eq!(search_index(&segments, 0), Some(0));
        assert_eq!(search_index(&segments, 15), Some(1));
        assert_eq!(search_index(&segments, 20), Some(2));
        let later = wal_segments(vec![wal_name(3, 30)]).0;
        assert_eq!(search_index(&later, 5), None);
    }
}
