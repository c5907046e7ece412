//! TFRecord framing: the bytes of a `.tfrecord` file in, its records (or what is wrong with
//! each one) out.
//!
//! Each record is `u64 length (LE) | u32 masked CRC32C of the length bytes | data |
//! u32 masked CRC32C of the data`, with TensorFlow's mask `((crc >> 15) | (crc << 17)) +
//! 0xa282ead8`. Both checksums are verified. A record whose data checksum fails is reported and
//! skipped (its length is trustworthy, so reading goes on at the next record). A record whose
//! length checksum fails cannot be stepped over by its length: the reader searches forward for
//! the next position where a complete, checksummed record starts, reports the bytes it had to
//! skip, and goes on from there. A file that ends inside a record is reported as truncated.

use std::fmt;

const HEADER_BYTES: usize = 12;
const FOOTER_BYTES: usize = 4;
const MASK_DELTA: u32 = 0xa282_ead8;

/// TensorFlow's masked CRC32C (Castagnoli), as stored in TFRecord files.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// One well-formed record: its position in the file and its payload.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// 0-based position among the records found in the file, corrupt ones included.
    pub index: usize,
    /// Byte offset of the record's header in the file.
    pub offset: u64,
    pub data: &'a [u8],
}

/// What is wrong with one stretch of a TFRecord file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameProblem {
    /// The record's length field does not match its checksum; `skipped` bytes were passed over
    /// to reach the next intact record (or the end of the file).
    LengthCorrupt { skipped: u64, resumed: bool },
    /// The record's data does not match its checksum; the record was skipped.
    DataCorrupt {
        length: u64,
        stored: u32,
        computed: u32,
    },
    /// The file ends inside this record.
    Truncated { needed: u64, available: u64 },
}

/// A framing problem at a place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// 0-based index the record would have had.
    pub index: usize,
    /// Byte offset where the problem starts.
    pub offset: u64,
    pub problem: FrameProblem,
}

impl fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameProblem::LengthCorrupt {
                skipped,
                resumed: true,
            } => write!(
                f,
                "length checksum mismatch (corrupt header); skipped {skipped} bytes to the next \
                 intact record"
            ),
            FrameProblem::LengthCorrupt {
                skipped,
                resumed: false,
            } => write!(
                f,
                "length checksum mismatch (corrupt header); no intact record follows, the last \
                 {skipped} bytes of the file were skipped"
            ),
            FrameProblem::DataCorrupt {
                length,
                stored,
                computed,
            } => write!(
                f,
                "data checksum mismatch over {length} bytes (stored {stored:#010x}, computed \
                 {computed:#010x}); record skipped"
            ),
            FrameProblem::Truncated { needed, available } => {
                write!(
                    f,
                    "file is truncated ({needed} bytes needed, {available} left)"
                )
            }
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} at byte {}: {}",
            self.index, self.offset, self.problem
        )
    }
}

impl std::error::Error for FrameError {}

/// The records of a TFRecord file's bytes, in order: `Ok` for each intact record, `Err` for each
/// corrupt stretch. Never panics, whatever the bytes.
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records {
        bytes,
        pos: 0,
        index: 0,
    }
}

/// Iterator returned by [`records`].
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    index: usize,
}

/// A record header at `pos` whose length checksum holds: the data length.
fn intact_header(bytes: &[u8], pos: usize) -> Option<u64> {
    let header = bytes.get(pos..pos.checked_add(HEADER_BYTES)?)?;
    let (len_bytes, crc_bytes) = header.split_at(8);
    let stored = u32::from_le_bytes(crc_bytes.try_into().ok()?);
    (masked_crc32c(len_bytes) == stored)
        .then(|| u64::from_le_bytes(len_bytes.try_into().unwrap_or_default()))
}

/// The whole record at `pos` when both checksums hold: its total size in bytes.
fn intact_record(bytes: &[u8], pos: usize) -> Option<usize> {
    let length = usize::try_from(intact_header(bytes, pos)?).ok()?;
    let data_start = pos + HEADER_BYTES;
    let data_end = data_start.checked_add(length)?;
    let data = bytes.get(data_start..data_end)?;
    let crc = bytes.get(data_end..data_end.checked_add(FOOTER_BYTES)?)?;
    let stored = u32::from_le_bytes(crc.try_into().ok()?);
    (masked_crc32c(data) == stored).then_some(HEADER_BYTES + length + FOOTER_BYTES)
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.bytes;
        let pos = self.pos;
        if pos >= bytes.len() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let offset = pos as u64;
        let left = (bytes.len() - pos) as u64;
        let fail = |problem| {
            Some(Err(FrameError {
                index,
                offset,
                problem,
            }))
        };
        if bytes.len() - pos < HEADER_BYTES {
            self.pos = bytes.len();
            return fail(FrameProblem::Truncated {
                needed: HEADER_BYTES as u64,
                available: left,
            });
        }
        let Some(length) = intact_header(bytes, pos) else {
            // The length cannot be trusted: look for the next complete, checksummed record.
            let next = (pos + 1..bytes.len()).find(|&p| intact_record(bytes, p).is_some());
            let resume = next.unwrap_or(bytes.len());
            self.pos = resume;
            return fail(FrameProblem::LengthCorrupt {
                skipped: (resume - pos) as u64,
                resumed: next.is_some(),
            });
        };
        let needed = (HEADER_BYTES + FOOTER_BYTES) as u64 + length;
        if needed > left {
            self.pos = bytes.len();
            return fail(FrameProblem::Truncated {
                needed,
                available: left,
            });
        }
        // `needed <= left`, so these fit in usize.
        let data_start = pos + HEADER_BYTES;
        let data_end = data_start + length as usize;
        self.pos = data_end + FOOTER_BYTES;
        let data = &bytes[data_start..data_end];
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[data_end..data_end + FOOTER_BYTES]);
        let stored = u32::from_le_bytes(crc);
        let computed = masked_crc32c(data);
        if stored != computed {
            return fail(FrameProblem::DataCorrupt {
                length,
                stored,
                computed,
            });
        }
        Some(Ok(Record {
            index,
            offset,
            data,
        }))
    }
}

/// Frames `payloads` as a TFRecord file (used by tests and tools that write small files).
pub fn write_records<'p>(payloads: impl IntoIterator<Item = &'p [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for data in payloads {
        let len = (data.len() as u64).to_le_bytes();
        out.extend_from_slice(&len);
        out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Vec<u8> {
        write_records([&b"first"[..], b"second record", b"third"])
    }

    fn payloads(bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameProblem>> {
        records(bytes)
            .map(|r| r.map(|r| r.data.to_vec()).map_err(|e| e.problem))
            .collect()
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // TensorFlow's crc32c_test: Value("a", 1) == 0xc1d04330; Mask(c) = rotr15(c) + 0xa282ead8.
        assert_eq!(crc32c::crc32c(b"a"), 0xc1d0_4330);
        assert_eq!(
            masked_crc32c(b"a"),
            0xc1d0_4330u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn reads_intact_records() {
        let got = payloads(&file());
        assert_eq!(
            got,
            vec![
                Ok(b"first".to_vec()),
                Ok(b"second record".to_vec()),
                Ok(b"third".to_vec())
            ]
        );
    }

    #[test]
    fn a_flipped_data_byte_loses_only_that_record() {
        let mut bytes = file();
        let second_data = 12 + 5 + 4 + 12;
        bytes[second_data + 3] ^= 0x40;
        let got = payloads(&bytes);
        assert_eq!(got.len(), 3);
        assert!(matches!(
            got[1],
            Err(FrameProblem::DataCorrupt { length: 13, .. })
        ));
        assert_eq!(got[0], Ok(b"first".to_vec()));
        assert_eq!(got[2], Ok(b"third".to_vec()));
    }

    #[test]
    fn a_flipped_length_byte_resynchronises_on_the_next_record() {
        let mut bytes = file();
        let second = 12 + 5 + 4;
        bytes[second] ^= 0x01;
        let got = payloads(&bytes);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[1],
            Err(FrameProblem::LengthCorrupt {
                skipped: 12 + 13 + 4,
                resumed: true
            })
        );
        assert_eq!(got[2], Ok(b"third".to_vec()));
    }

    #[test]
    fn truncation_is_reported_once() {
        let bytes = file();
        for cut in 1..bytes.len() {
            let got = payloads(&bytes[..cut]);
            let errors = got.iter().filter(|r| r.is_err()).count();
            let ends_on_record = [21, 21 + 29].contains(&cut);
            assert_eq!(
                errors,
                usize::from(!ends_on_record),
                "cut at {cut}: {got:?}"
            );
            assert!(matches!(
                got.last(),
                Some(Ok(_)) | Some(Err(FrameProblem::Truncated { .. }))
            ));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678u32;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            for r in records(&bytes) {
                assert!(r.is_err());
            }
        }
    }
}
