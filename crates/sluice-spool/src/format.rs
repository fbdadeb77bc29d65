//! The on-disk record frame.
//!
//! ```text
//! magic u32 | payload length u32 | crc32 u32 | seq u64 | timestamp_ms i64 | payload
//! ```
//! All integers little-endian. The CRC-32 covers seq, timestamp and payload, so a torn
//! or corrupted record is detected and never replayed.

/// Marks the start of every record ("SLSP").
pub const MAGIC: u32 = 0x534C_5350;
/// Bytes before the payload.
pub const HEADER: usize = 4 + 4 + 4 + 8 + 8;
/// Largest payload accepted (a Kafka record is far smaller).
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Append one framed record to `out`.
pub fn encode(seq: u64, timestamp_ms: i64, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(&timestamp_ms.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The size of a framed record.
pub fn framed_len(payload_len: usize) -> usize {
    HEADER + payload_len
}

/// What is at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record taking `len` bytes.
    Record {
        /// Sequence number.
        seq: u64,
        /// Timestamp (ms since the epoch).
        timestamp_ms: i64,
        /// The payload.
        payload: &'a [u8],
        /// Frame length.
        len: usize,
    },
    /// The buffer ends inside a record (more bytes may follow).
    Incomplete,
    /// Not a valid record.
    Corrupt,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decode the record at the start of `b`.
pub fn decode(b: &[u8]) -> Decoded<'_> {
    if b.len() < HEADER {
        return if b.len() >= 4 && u32_at(b, 0) != MAGIC {
            Decoded::Corrupt
        } else {
            Decoded::Incomplete
        };
    }
    if u32_at(b, 0) != MAGIC {
        return Decoded::Corrupt;
    }
    let len = u32_at(b, 4) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Corrupt;
    }
    if b.len() < HEADER + len {
        return Decoded::Incomplete;
    }
    let payload = &b[HEADER..HEADER + len];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[12..HEADER]);
    crc.update(payload);
    if crc.finalize() != u32_at(b, 8) {
        return Decoded::Corrupt;
    }
    Decoded::Record {
        seq: u64_at(b, 12),
        timestamp_ms: u64_at(b, 20) as i64,
        payload,
        len: HEADER + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detection() {
        let mut b = Vec::new();
        encode(7, -3, b"hello", &mut b);
        assert_eq!(b.len(), framed_len(5));
        assert_eq!(
            decode(&b),
            Decoded::Record {
                seq: 7,
                timestamp_ms: -3,
                payload: b"hello",
                len: b.len()
            }
        );
        assert_eq!(decode(&b[..b.len() - 1]), Decoded::Incomplete);
        assert_eq!(decode(&b[..3]), Decoded::Incomplete);
        let mut flipped = b.clone();
        flipped[HEADER + 1] ^= 0x40;
        assert_eq!(decode(&flipped), Decoded::Corrupt);
        assert_eq!(
            decode(b"garbage garbage garbage garbage!"),
            Decoded::Corrupt
        );
    }
}
