//! TensorFlow's immutable sorted table (the LevelDB "SSTable" format of
//! `tensorflow/core/lib/io/table*`), read from bytes in memory.
//!
//! In: the bytes of a whole table file. Out: its entries (key, value) in key order, every block's
//! checksum (masked CRC32C over the block and its compression-type byte) verified, or an error
//! saying where the file is corrupt or truncated.
//!
//! Layout: data blocks, a meta-index block, an index block (one entry per data block, whose value
//! is the data block's handle), then a 48-byte footer (meta-index handle, index handle, padding,
//! magic number 0xdb4775248b80fb57). Every block is followed by a 5-byte trailer: compression type
//! (0 = none, 1 = Snappy) and the masked CRC32C. A block is a run of prefix-compressed entries
//! (shared key length, unshared key length, value length as varints, key suffix, value) followed
//! by the restart offsets (`u32` each) and their count.

use std::ops::Range;

/// `kTableMagicNumber` of `tensorflow/core/lib/io/format.h`.
const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Two varint-encoded block handles padded to 40 bytes, then the magic number.
const FOOTER_LEN: usize = 48;
/// Compression type byte + masked CRC32C.
const BLOCK_TRAILER_LEN: usize = 5;
const NO_COMPRESSION: u8 = 0;
const SNAPPY_COMPRESSION: u8 = 1;
const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// What is wrong with a table file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(
        "the file is not a TensorFlow table, or is truncated: {0} (a table ends with a 48-byte \
         footer and the magic number 0xdb4775248b80fb57)"
    )]
    NotATable(String),
    #[error("the file is truncated: {0}")]
    Truncated(String),
    #[error("the file is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
}

/// One entry of a table: its key and where its value lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    /// Byte range of the value in the table's bytes.
    pub value: Range<usize>,
}

/// Where a block lies in the file (without its trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHandle {
    offset: u64,
    size: u64,
}

/// Reads every entry of the table in `file`, verifying every block's checksum.
pub fn read_entries(file: &[u8]) -> Result<Vec<Entry>, TableError> {
    if file.len() < FOOTER_LEN {
        return Err(TableError::NotATable(format!(
            "it is only {} bytes long",
            file.len()
        )));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..48].try_into().expect("8 bytes"));
    if magic != TABLE_MAGIC {
        return Err(TableError::NotATable(format!(
            "its last 8 bytes are {magic:#018x}, not the table magic number"
        )));
    }
    let mut handles = &footer[..40];
    let meta_index = decode_handle(&mut handles)
        .map_err(|e| TableError::Corrupt(format!("bad meta-index handle in the footer: {e}")))?;
    let index = decode_handle(&mut handles)
        .map_err(|e| TableError::Corrupt(format!("bad index handle in the footer: {e}")))?;

    // The meta-index block holds nothing TensorFlow reads, but its checksum is checked too.
    read_block(file, meta_index, "meta-index block")?;
    let index_block = read_block(file, index, "index block")?;
    let index_base = range_of(file, index_block).start;
    let mut entries = Vec::new();
    for index_entry in parse_block(index_block, "index block")? {
        let mut value = &file[offset_range(&index_entry.value, index_base)];
        let handle = decode_handle(&mut value).map_err(|e| {
            TableError::Corrupt(format!("bad data block handle in the index block: {e}"))
        })?;
        let what = format!("data block at byte {}", handle.offset);
        let block = read_block(file, handle, &what)?;
        let base = range_of(file, block).start;
        for entry in parse_block(block, &what)? {
            entries.push(Entry {
                key: entry.key,
                value: offset_range(&entry.value, base),
            });
        }
    }
    Ok(entries)
}

/// The block `handle` points at, after checking its trailer. The returned slice borrows `file`.
fn read_block<'a>(file: &'a [u8], handle: BlockHandle, what: &str) -> Result<&'a [u8], TableError> {
    let end = handle
        .offset
        .checked_add(handle.size)
        .and_then(|e| e.checked_add(BLOCK_TRAILER_LEN as u64))
        .ok_or_else(|| TableError::Corrupt(format!("{what}: impossible block size")))?;
    // The table's own blocks end where the footer starts.
    let body_len = (file.len() - FOOTER_LEN) as u64;
    if end > body_len {
        return Err(TableError::Truncated(format!(
            "the {what} ({} bytes) ends at byte {end}, past the end of the data ({body_len} bytes)",
            handle.size
        )));
    }
    let start = handle.offset as usize;
    let size = handle.size as usize;
    let contents = &file[start..start + size + 1];
    let stored = u32::from_le_bytes(
        file[start + size + 1..start + size + BLOCK_TRAILER_LEN]
            .try_into()
            .expect("4 bytes"),
    );
    let actual = crc32c::crc32c(contents);
    if unmask_crc(stored) != actual {
        return Err(TableError::Corrupt(format!(
            "checksum mismatch in the {what} (bytes {start}..{}): the stored CRC32C is {:#010x}, \
             the data's is {actual:#010x}",
            start + size,
            unmask_crc(stored)
        )));
    }
    match contents[size] {
        NO_COMPRESSION => Ok(&file[start..start + size]),
        SNAPPY_COMPRESSION => Err(TableError::Unsupported(format!(
            "the {what} is Snappy-compressed; TensorFlow's checkpoint writers never compress, \
             so this file was written by something else"
        ))),
        other => Err(TableError::Corrupt(format!(
            "the {what} has an unknown compression type {other}"
        ))),
    }
}

/// Splits a block into its entries (values as ranges relative to the block's start).
fn parse_block(block: &[u8], what: &str) -> Result<Vec<Entry>, TableError> {
    let corrupt = |detail: &str| TableError::Corrupt(format!("{what}: {detail}"));
    if block.len() < 4 {
        return Err(corrupt("shorter than its restart count"));
    }
    let restarts =
        u32::from_le_bytes(block[block.len() - 4..].try_into().expect("4 bytes")) as usize;
    let entries_end = restarts
        .checked_mul(4)
        .and_then(|r| block.len().checked_sub(4 + r))
        .ok_or_else(|| corrupt("restart count larger than the block"))?;
    let mut entries = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    while pos < entries_end {
        let mut rest = &block[pos..entries_end];
        let before = rest.len();
        let shared = read_varint(&mut rest).map_err(|e| corrupt(&e))?;
        let unshared = read_varint(&mut rest).map_err(|e| corrupt(&e))?;
        let value_len = read_varint(&mut rest).map_err(|e| corrupt(&e))?;
        pos += before - rest.len();
        if shared > key.len() {
            return Err(corrupt(
                "an entry shares more of its key than the previous key has",
            ));
        }
        let key_end = pos
            .checked_add(unshared)
            .filter(|&e| e <= entries_end)
            .ok_or_else(|| corrupt("an entry's key runs past the end of the block"))?;
        let value_end = key_end
            .checked_add(value_len)
            .filter(|&e| e <= entries_end)
            .ok_or_else(|| corrupt("an entry's value runs past the end of the block"))?;
        key.truncate(shared);
        key.extend_from_slice(&block[pos..key_end]);
        entries.push(Entry {
            key: key.clone(),
            value: key_end..value_end,
        });
        pos = value_end;
    }
    Ok(entries)
}

fn decode_handle(input: &mut &[u8]) -> Result<BlockHandle, String> {
    let offset = prost::encoding::decode_varint(input).map_err(|e| e.to_string())?;
    let size = prost::encoding::decode_varint(input).map_err(|e| e.to_string())?;
    Ok(BlockHandle { offset, size })
}

fn read_varint(input: &mut &[u8]) -> Result<usize, String> {
    let value = prost::encoding::decode_varint(input).map_err(|e| format!("bad varint ({e})"))?;
    usize::try_from(value).map_err(|_| "varint too large".to_string())
}

/// `crc32c::Unmask` of `tensorflow/core/lib/hash/crc32c.h`.
pub fn unmask_crc(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(CRC_MASK_DELTA);
    rot.rotate_left(15)
}

/// The range `block` occupies in `file` (`block` must borrow from `file`).
fn range_of(file: &[u8], block: &[u8]) -> Range<usize> {
    let start = block.as_ptr() as usize - file.as_ptr() as usize;
    start..start + block.len()
}

fn offset_range(range: &Range<usize>, base: usize) -> Range<usize> {
    range.start + base..range.end + base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_crc(crc: u32) -> u32 {
        crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
    }

    fn put_varint(out: &mut Vec<u8>, v: u64) {
        prost::encoding::encode_varint(v, out);
    }

    /// A block holding `entries` with one restart point per entry and full keys (TensorFlow
    /// prefix-compresses; `parse_block` is tested on that below).
    fn block(entries: &[(&[u8], &[u8])], shared: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev: &[u8] = b"";
        for ((key, value), &s) in entries.iter().zip(shared) {
            assert!(key.starts_with(&prev[..s]));
            put_varint(&mut out, s as u64);
            put_varint(&mut out, (key.len() - s) as u64);
            put_varint(&mut out, value.len() as u64);
            out.extend_from_slice(&key[s..]);
            out.extend_from_slice(value);
            prev = key;
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out
    }

    fn push_block(file: &mut Vec<u8>, contents: &[u8]) -> BlockHandle {
        let handle = BlockHandle {
            offset: file.len() as u64,
            size: contents.len() as u64,
        };
        file.extend_from_slice(contents);
        file.push(NO_COMPRESSION);
        let mut with_type = contents.to_vec();
        with_type.push(NO_COMPRESSION);
        file.extend_from_slice(&mask_crc(crc32c::crc32c(&with_type)).to_le_bytes());
        handle
    }

    fn encode_handle(h: BlockHandle) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, h.offset);
        put_varint(&mut out, h.size);
        out
    }

    fn table() -> Vec<u8> {
        let mut file = Vec::new();
        let data = push_block(
            &mut file,
            &block(
                &[(b"", b"meta"), (b"vggish/a", b"one"), (b"vggish/b", b"two")],
                &[0, 0, 7],
            ),
        );
        let meta_index = push_block(&mut file, &block(&[], &[]));
        let index = push_block(
            &mut file,
            &block(&[(b"vggish/c", &encode_handle(data))], &[0]),
        );
        let mut footer = encode_handle(meta_index);
        footer.extend(encode_handle(index));
        footer.resize(40, 0);
        footer.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        file.extend(footer);
        file
    }

    #[test]
    fn reads_prefix_compressed_entries_in_order() {
        let file = table();
        let entries = read_entries(&file).unwrap();
        let read: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.key.clone(), file[e.value.clone()].to_vec()))
            .collect();
        assert_eq!(
            read,
            vec![
                (b"".to_vec(), b"meta".to_vec()),
                (b"vggish/a".to_vec(), b"one".to_vec()),
                (b"vggish/b".to_vec(), b"two".to_vec()),
            ]
        );
    }

    #[test]
    fn crc_masking_matches_tensorflow() {
        // crc32c_test.cc: Unmask(Mask(crc)) == crc, and Mask(crc) != crc.
        for crc in [0u32, 1, 0xdead_beef, 0xffff_ffff] {
            assert_eq!(unmask_crc(mask_crc(crc)), crc);
            assert_ne!(mask_crc(crc), crc);
        }
        // The CRC32C check value ("123456789" -> 0xe3069283).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let file = table();
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x20;
            // Padding bytes of the footer are ignored by TensorFlow too.
            let in_footer_padding = {
                let footer_start = file.len() - FOOTER_LEN;
                let handles_len = {
                    let mut h = &file[footer_start..footer_start + 40];
                    let before = h.len();
                    decode_handle(&mut h).unwrap();
                    decode_handle(&mut h).unwrap();
                    before - h.len()
                };
                i >= footer_start + handles_len && i < footer_start + 40
            };
            if in_footer_padding {
                continue;
            }
            assert!(
                read_entries(&bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_is_reported() {
        let file = table();
        for len in [0, 10, file.len() - 1, file.len() - FOOTER_LEN] {
            let err = read_entries(&file[..len]).unwrap_err();
            assert!(
                matches!(err, TableError::NotATable(_)),
                "{len} bytes: {err}"
            );
        }
        // A footer that survived while data went missing (bytes cut from the middle).
        let mut cut = file[..4].to_vec();
        cut.extend_from_slice(&file[file.len() - FOOTER_LEN..]);
        let err = read_entries(&cut).unwrap_err();
        assert!(matches!(err, TableError::Truncated(_)), "{err}");
    }
}
