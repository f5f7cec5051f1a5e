//! The protobuf wire format, read only as far as redaction needs: the fields of a message with
//! the byte range of each length-delimited payload, so that a value is overwritten in place
//! (same length: every length prefix and the message's size stay as they are).

/// One field: its number, wire type and payload range within the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field number.
    pub number: u64,
    /// The wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    pub wire: u8,
    /// Start of the payload (after the length for wire type 2).
    pub start: usize,
    /// End of the payload.
    pub end: usize,
}

/// Why a message could not be walked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protobuf: {0}")]
pub struct WireError(pub &'static str);

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).ok_or(WireError("varint runs past the end"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError("varint longer than 10 bytes"))
}

/// The fields of `buf` in wire order; every range lies inside `buf` (checked).
pub fn fields(buf: &[u8]) -> Result<Vec<Field>, WireError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        let mut start = at;
        let end = match wire {
            0 => {
                varint(buf, &mut at)?;
                Some(at)
            }
            1 => start.checked_add(8),
            2 => {
                let len = varint(buf, &mut at)?;
                start = at;
                usize::try_from(len).ok().and_then(|l| start.checked_add(l))
            }
            5 => start.checked_add(4),
            _ => return Err(WireError("group or unknown wire type")),
        };
        let end = end
            .filter(|e| *e <= buf.len())
            .ok_or(WireError("field runs past the end"))?;
        out.push(Field {
            number,
            wire,
            start,
            end,
        });
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn finds_the_ranges_prost_encodes() {
        let put = crate::proto::etcdserverpb::PutRequest {
            key: bytes::Bytes::from_static(b"k1"),
            value: bytes::Bytes::from(vec![7u8; 300]),
            lease: 5,
            ..Default::default()
        };
        let buf = put.encode_to_vec();
        let f = fields(&buf).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].number, &buf[f[0].start..f[0].end]), (1, &b"k1"[..]));
        assert_eq!((f[1].number, f[1].end - f[1].start), (2, 300));
        assert!(buf[f[1].start..f[1].end].iter().all(|b| *b == 7));
        assert_eq!((f[2].number, f[2].wire), (3, 0));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let buf = [0x12, 0x05, b'a'];
        assert!(fields(&buf).is_err());
        assert!(fields(&[0x80]).is_err());
        assert!(fields(&[0x0b]).is_err());
    }
}
