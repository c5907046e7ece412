//! TensorFlow 1 checkpoint reading.
//!
//! In: the path of a checkpoint. Out: its variables (name, type, shape) and, on request, the
//! values of a float32 variable; or an error that says what is wrong with the file (not a
//! checkpoint, truncated, corrupt, unsupported).
//!
//! Two formats are read:
//! - **V1** (`tf.train.Saver(write_version=SaverDef.V1)`, the format of the official
//!   `vggish_model.ckpt`): one file, a table (see [`table`]) written by TensorFlow's
//!   `TensorSliceWriter`. The entry with the empty key holds a `SavedTensorSlices` whose `meta`
//!   lists every tensor with its shape, type and slices; every other entry holds a
//!   `SavedTensorSlices` whose `data` is one slice of one tensor (`float_val` for float32). Its
//!   blocks are never compressed.
//! - **V2** (the default since TensorFlow 1.2): `PREFIX.index`, a table whose empty key holds a
//!   `BundleHeaderProto` and whose other keys are tensor names holding `BundleEntryProto`s, and
//!   `PREFIX.data-NNNNN-of-MMMMM` shards holding the raw little-endian values, each tensor
//!   with its own masked CRC32C.

mod proto;
pub mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

pub use table::TableError;

/// `tensorflow.DataType` values this reader names.
const DT_FLOAT: i32 = 1;

/// What is wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Table { path: PathBuf, source: TableError },
    #[error("{}: the file is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    Unsupported { path: PathBuf, detail: String },
    #[error("the checkpoint has no variable `{0}`")]
    NoSuchVariable(String),
    #[error("variable `{name}` is {dtype}, not float32")]
    NotFloat { name: String, dtype: DataType },
}

/// Which of TensorFlow's checkpoint formats a checkpoint is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// One file of `SavedTensorSlices` (TensorFlow's `TensorSliceWriter`).
    V1,
    /// `PREFIX.index` + `PREFIX.data-*` (TensorFlow's tensor bundle).
    V2,
}

/// A `tensorflow.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataType(pub i32);

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "float32",
            2 => "float64",
            3 => "int32",
            4 => "uint8",
            5 => "int16",
            6 => "int8",
            7 => "string",
            9 => "int64",
            10 => "bool",
            14 => "bfloat16",
            19 => "float16",
            other => return write!(f, "data type {other}"),
        };
        f.write_str(name)
    }
}

/// One variable of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<usize>,
}

/// An opened checkpoint: its table of contents, checksums verified.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    format: CheckpointFormat,
    variables: BTreeMap<String, Variable>,
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    /// The whole V1 file, and for each tensor the byte ranges of its slices' entries.
    V1 {
        bytes: Vec<u8>,
        slices: BTreeMap<String, Vec<Range<usize>>>,
    },
    V2 {
        entries: BTreeMap<String, proto::BundleEntryProto>,
        shards: Vec<PathBuf>,
    },
}

impl Checkpoint {
    /// Opens the checkpoint at `path`: a V1 file, a V2 prefix (`model.ckpt` beside
    /// `model.ckpt.index`) or a V2 index file. Every block checksum of the (index) table is
    /// verified here; V2 tensor checksums when a tensor is read.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let as_str = path.as_os_str().to_string_lossy();
        if let Some(prefix) = as_str.strip_suffix(".index") {
            return Self::open_v2(Path::new(prefix));
        }
        let index = PathBuf::from(format!("{as_str}.index"));
        if !path.exists() && index.is_file() {
            return Self::open_v2(path);
        }
        Self::open_v1(path)
    }

    /// The checkpoint's format.
    pub fn format(&self) -> CheckpointFormat {
        self.format
    }

    /// Every variable, by name.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.variables.values()
    }

    /// The variable called `name`, if any.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name)
    }

    /// The values of the float32 variable `name`, in its shape.
    pub fn read_f32(&self, name: &str) -> Result<ArrayD<f32>, CheckpointError> {
        let variable = self
            .variables
            .get(name)
            .ok_or_else(|| CheckpointError::NoSuchVariable(name.to_string()))?;
        if variable.dtype.0 != DT_FLOAT {
            return Err(CheckpointError::NotFloat {
                name: name.to_string(),
                dtype: variable.dtype,
            });
        }
        let values = match &self.storage {
            Storage::V1 { bytes, slices } => {
                let ranges = slices.get(name).map(Vec::as_slice).unwrap_or_default();
                self.read_v1_slices(variable, bytes, ranges)?
            }
            Storage::V2 { entries, shards } => {
                let entry = entries
                    .get(name)
                    .ok_or_else(|| CheckpointError::NoSuchVariable(name.to_string()))?;
                self.read_v2_tensor(variable, entry, shards)?
            }
        };
        ArrayD::from_shape_vec(IxDyn(&variable.shape), values).map_err(|e| self.corrupt(e))
    }

    fn corrupt(&self, detail: impl fmt::Display) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    fn open_v1(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let table_error = |source| CheckpointError::Table {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |detail: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let entries = table::read_entries(&bytes).map_err(table_error)?;
        let first = entries
            .first()
            .ok_or_else(|| corrupt("the table is empty".into()))?;
        if !first.key.is_empty() {
            return Err(corrupt(
                "the table does not start with the checkpoint's table of contents (the entry \
                 with the empty key); is this a V2 checkpoint's data file? Pass the prefix or \
                 the .index file instead"
                    .into(),
            ));
        }
        let meta = proto::SavedTensorSlices::decode(&bytes[first.value.clone()])
            .ok()
            .and_then(|s| s.meta)
            .ok_or_else(|| {
                corrupt(
                    "the first entry is not a SavedTensorSliceMeta (this table is not a V1 \
                     checkpoint)"
                        .into(),
                )
            })?;

        let mut variables = BTreeMap::new();
        for tensor in &meta.tensor {
            let shape = shape_of(tensor.shape.as_ref())
                .map_err(|e| corrupt(format!("tensor `{}`: {e}", tensor.name)))?;
            variables.insert(
                tensor.name.clone(),
                Variable {
                    name: tensor.name.clone(),
                    dtype: DataType(tensor.r#type),
                    shape,
                },
            );
        }
        let mut slices: BTreeMap<String, Vec<Range<usize>>> = BTreeMap::new();
        for entry in &entries[1..] {
            let header = proto::SavedTensorSlicesHeader::decode(&bytes[entry.value.clone()])
                .map_err(|e| corrupt(format!("undecodable tensor slice entry: {e}")))?;
            let name = header
                .data
                .map(|d| d.name)
                .ok_or_else(|| corrupt("a table entry holds no tensor slice".into()))?;
            if !variables.contains_key(&name) {
                return Err(corrupt(format!(
                    "values of `{name}`, which the table of contents does not list"
                )));
            }
            slices.entry(name).or_default().push(entry.value.clone());
        }
        for tensor in &meta.tensor {
            let saved = slices.get(&tensor.name).map_or(0, Vec::len);
            if saved != tensor.slice.len() {
                return Err(corrupt(format!(
                    "tensor `{}` should have {} slice(s) but {saved} are stored",
                    tensor.name,
                    tensor.slice.len()
                )));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            format: CheckpointFormat::V1,
            variables,
            storage: Storage::V1 { bytes, slices },
        })
    }

    fn read_v1_slices(
        &self,
        variable: &Variable,
        bytes: &[u8],
        ranges: &[Range<usize>],
    ) -> Result<Vec<f32>, CheckpointError> {
        let total: usize = variable.shape.iter().product();
        let mut values = vec![0f32; total];
        let mut covered = 0usize;
        for range in ranges {
            let saved = proto::SavedTensorSlices::decode(&bytes[range.clone()])
                .map_err(|e| self.corrupt(format!("`{}`: {e}", variable.name)))?
                .data
                .ok_or_else(|| self.corrupt(format!("`{}`: empty slice", variable.name)))?;
            let extents = slice_extents(saved.slice.as_ref(), &variable.shape)
                .map_err(|e| self.corrupt(format!("`{}`: {e}", variable.name)))?;
            let data = saved
                .data
                .ok_or_else(|| self.corrupt(format!("`{}`: slice without data", variable.name)))?;
            let slice_values = float_values(data)
                .map_err(|e| self.corrupt(format!("`{}`: {e}", variable.name)))?;
            let slice_len: usize = extents.iter().map(|e| e.len()).product();
            if slice_values.len() != slice_len {
                return Err(self.corrupt(format!(
                    "`{}`: a slice holds {} values, its extents {} values",
                    variable.name,
                    slice_values.len(),
                    slice_len
                )));
            }
            if ranges.len() == 1 && slice_len == total {
                // The common case: the whole tensor in one slice.
                return Ok(slice_values);
            }
            copy_slice(&slice_values, &extents, &variable.shape, &mut values);
            covered += slice_len;
        }
        if covered != total {
            return Err(self.corrupt(format!(
                "`{}`: its slices hold {covered} of its {total} values",
                variable.name
            )));
        }
        Ok(values)
    }

    fn open_v2(prefix: &Path) -> Result<Self, CheckpointError> {
        let index_path = PathBuf::from(format!("{}.index", prefix.display()));
        let bytes = std::fs::read(&index_path).map_err(|source| CheckpointError::Io {
            path: index_path.clone(),
            source,
        })?;
        let corrupt = |detail: String| CheckpointError::Corrupt {
            path: index_path.clone(),
            detail,
        };
        let entries = table::read_entries(&bytes).map_err(|source| CheckpointError::Table {
            path: index_path.clone(),
            source,
        })?;
        let first = entries
            .first()
            .filter(|e| e.key.is_empty())
            .ok_or_else(|| corrupt("the index has no bundle header".into()))?;
        let header = proto::BundleHeaderProto::decode(&bytes[first.value.clone()])
            .map_err(|e| corrupt(format!("undecodable bundle header: {e}")))?;
        if header.endianness != 0 {
            return Err(CheckpointError::Unsupported {
                path: index_path,
                detail: "big-endian checkpoints are not supported".into(),
            });
        }
        let num_shards = usize::try_from(header.num_shards)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| corrupt(format!("bad shard count {}", header.num_shards)))?;
        let shards = (0..num_shards)
            .map(|i| {
                PathBuf::from(format!(
                    "{}.data-{i:05}-of-{num_shards:05}",
                    prefix.display()
                ))
            })
            .collect();

        let mut variables = BTreeMap::new();
        let mut bundle_entries = BTreeMap::new();
        for entry in &entries[1..] {
            let name = String::from_utf8(entry.key.clone())
                .map_err(|_| corrupt("a tensor name is not UTF-8".into()))?;
            let bundle = proto::BundleEntryProto::decode(&bytes[entry.value.clone()])
                .map_err(|e| corrupt(format!("`{name}`: undecodable entry: {e}")))?;
            if !bundle.slices.is_empty() {
                return Err(CheckpointError::Unsupported {
                    path: index_path.clone(),
                    detail: format!(
                        "`{name}` is a partitioned variable; partitioned V2 variables are not \
                         supported"
                    ),
                });
            }
            let shape = shape_of(bundle.shape.as_ref())
                .map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
            variables.insert(
                name.clone(),
                Variable {
                    name: name.clone(),
                    dtype: DataType(bundle.dtype),
                    shape,
                },
            );
            bundle_entries.insert(name, bundle);
        }
        Ok(Self {
            path: index_path,
            format: CheckpointFormat::V2,
            variables,
            storage: Storage::V2 {
                entries: bundle_entries,
                shards,
            },
        })
    }

    fn read_v2_tensor(
        &self,
        variable: &Variable,
        entry: &proto::BundleEntryProto,
        shards: &[PathBuf],
    ) -> Result<Vec<f32>, CheckpointError> {
        let name = &variable.name;
        let shard = usize::try_from(entry.shard_id)
            .ok()
            .and_then(|i| shards.get(i))
            .ok_or_else(|| self.corrupt(format!("`{name}`: bad shard {}", entry.shard_id)))?;
        let count: usize = variable.shape.iter().product();
        let size = usize::try_from(entry.size)
            .ok()
            .filter(|&s| s == count * 4)
            .ok_or_else(|| {
                self.corrupt(format!(
                    "`{name}`: {} bytes stored for {count} float32 values",
                    entry.size
                ))
            })?;
        let offset = u64::try_from(entry.offset)
            .map_err(|_| self.corrupt(format!("`{name}`: negative offset")))?;
        let io = |source| CheckpointError::Io {
            path: shard.clone(),
            source,
        };
        let mut file = File::open(shard).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if offset + size as u64 > file_len {
            return Err(CheckpointError::Table {
                path: shard.clone(),
                source: TableError::Truncated(format!(
                    "`{name}` ends at byte {}, the file has {file_len}",
                    offset + size as u64
                )),
            });
        }
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut raw = vec![0u8; size];
        file.read_exact(&mut raw).map_err(io)?;
        let actual = crc32c::crc32c(&raw);
        if table::unmask_crc(entry.crc32c) != actual {
            return Err(CheckpointError::Corrupt {
                path: shard.clone(),
                detail: format!("checksum mismatch in the values of `{name}`"),
            });
        }
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// A shape from a `TensorShapeProto` (a scalar when absent).
fn shape_of(shape: Option<&proto::TensorShapeProto>) -> Result<Vec<usize>, String> {
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err("unknown rank".into());
    }
    shape
        .dim
        .iter()
        .map(|d| usize::try_from(d.size).map_err(|_| format!("dimension of size {}", d.size)))
        .collect()
}

/// The index range a slice covers in each dimension of a tensor of `shape`.
fn slice_extents(
    slice: Option<&proto::TensorSliceProto>,
    shape: &[usize],
) -> Result<Vec<Range<usize>>, String> {
    let extents = slice.map(|s| s.extent.as_slice()).unwrap_or_default();
    // A slice that lists no extents covers the whole tensor.
    if extents.is_empty() {
        return Ok(shape.iter().map(|&d| 0..d).collect());
    }
    if extents.len() != shape.len() {
        return Err(format!(
            "a slice has {} extents for a tensor of rank {}",
            extents.len(),
            shape.len()
        ));
    }
    extents
        .iter()
        .zip(shape)
        .map(|(extent, &dim)| {
            let start = usize::try_from(extent.start).map_err(|_| "negative slice start")?;
            let end = match extent.has_length {
                Some(proto::HasLength::Length(len)) => usize::try_from(len)
                    .ok()
                    .and_then(|len| start.checked_add(len))
                    .ok_or("bad slice length")?,
                None => dim,
            };
            if start > end || end > dim {
                return Err(format!("slice {start}..{end} outside a dimension of {dim}"));
            }
            Ok(start..end)
        })
        .collect::<Result<_, String>>()
}

/// The float32 values of a `TensorProto`, from `float_val` or `tensor_content`.
fn float_values(tensor: proto::TensorProto) -> Result<Vec<f32>, String> {
    if tensor.dtype != 0 && tensor.dtype != DT_FLOAT {
        return Err(format!(
            "values stored as {}, not float32",
            DataType(tensor.dtype)
        ));
    }
    if !tensor.tensor_content.is_empty() {
        if !tensor.tensor_content.len().is_multiple_of(4) {
            return Err("tensor content is not a whole number of float32 values".into());
        }
        return Ok(tensor
            .tensor_content
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect());
    }
    Ok(tensor.float_val)
}

/// Copies the values of one slice (row-major over `extents`) into `dest`, a row-major tensor of
/// `shape`.
fn copy_slice(values: &[f32], extents: &[Range<usize>], shape: &[usize], dest: &mut [f32]) {
    if extents
        .iter()
        .zip(shape)
        .all(|(e, &d)| e.start == 0 && e.end == d)
    {
        dest.copy_from_slice(values);
        return;
    }
    if values.is_empty() {
        return;
    }
    // Row-major strides of the full tensor.
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let rank = extents.len();
    // Copy contiguous runs along the last dimension.
    let run = extents.last().map_or(1, |e| e.len());
    let mut index: Vec<usize> = extents.iter().map(|e| e.start).collect();
    for chunk in values.chunks(run) {
        let offset: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        dest[offset..offset + chunk.len()].copy_from_slice(chunk);
        // Advance the index over every dimension but the last.
        for d in (0..rank.saturating_sub(1)).rev() {
            index[d] += 1;
            if index[d] < extents[d].end {
                break;
            }
            index[d] = extents[d].start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_assembled_in_place() {
        // A 3x4 tensor saved as rows 0..1 and rows 1..3 of columns 0..4, then as two column
        // blocks.
        let full: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let shape = [3, 4];
        let mut dest = vec![-1.0; 12];
        copy_slice(&full[..4], &[0..1, 0..4], &shape, &mut dest);
        copy_slice(&full[4..], &[1..3, 0..4], &shape, &mut dest);
        assert_eq!(dest, full);

        let mut dest = vec![-1.0; 12];
        let left: Vec<f32> = [0, 1, 4, 5, 8, 9].iter().map(|&v| v as f32).collect();
        let right: Vec<f32> = [2, 3, 6, 7, 10, 11].iter().map(|&v| v as f32).collect();
        copy_slice(&left, &[0..3, 0..2], &shape, &mut dest);
        copy_slice(&right, &[0..3, 2..4], &shape, &mut dest);
        assert_eq!(dest, full);
    }

    #[test]
    fn extents_default_to_the_full_dimension() {
        let slice = proto::TensorSliceProto {
            extent: vec![
                proto::Extent {
                    start: 0,
                    has_length: None,
                },
                proto::Extent {
                    start: 2,
                    has_length: Some(proto::HasLength::Length(3)),
                },
            ],
        };
        assert_eq!(
            slice_extents(Some(&slice), &[4, 5]).unwrap(),
            vec![0..4, 2..5]
        );
        assert_eq!(slice_extents(None, &[4, 5]).unwrap(), vec![0..4, 0..5]);
        let too_long = proto::TensorSliceProto {
            extent: vec![proto::Extent {
                start: 2,
                has_length: Some(proto::HasLength::Length(9)),
            }],
        };
        assert!(slice_extents(Some(&too_long), &[4]).is_err());
    }
}
