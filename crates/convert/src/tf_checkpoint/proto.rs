//! The TensorFlow protocol buffer messages a checkpoint is made of, as prost types.
//!
//! In: nothing. Out: message types mirroring (a subset of the fields of)
//! `tensorflow/core/framework/{tensor,tensor_shape,tensor_slice,versions}.proto`,
//! `tensorflow/core/util/saved_tensor_slice.proto` (V1 checkpoints) and
//! `tensorflow/core/protobuf/tensor_bundle.proto` (V2 checkpoints). Field numbers are those of
//! the official `.proto` files; fields this crate never reads are left out (prost skips them).
//! Enumerations are declared as `int32`, which has the same wire encoding.

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
    #[prost(string, tag = "2")]
    pub name: String,
}

/// `tensorflow.TensorSliceProto`: one extent per dimension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorSliceProto {
    #[prost(message, repeated, tag = "1")]
    pub extent: Vec<Extent>,
}

/// `tensorflow.TensorSliceProto.Extent`: `start` and, unless the extent is the full
/// dimension, `length`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Extent {
    #[prost(int64, tag = "1")]
    pub start: i64,
    #[prost(oneof = "HasLength", tags = "2")]
    pub has_length: Option<HasLength>,
}

/// `tensorflow.TensorSliceProto.Extent.has_length`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HasLength {
    #[prost(int64, tag = "2")]
    Length(i64),
}

/// `tensorflow.TensorProto` (the value fields a checkpoint writer uses for numbers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `tensorflow.DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
}

/// `tensorflow.VersionDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionDef {
    #[prost(int32, tag = "1")]
    pub producer: i32,
    #[prost(int32, tag = "2")]
    pub min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    pub bad_consumers: Vec<i32>,
}

/// `tensorflow.SavedSliceMeta`: one tensor of a V1 checkpoint, and the slices it is saved as.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedSliceMeta {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    /// `tensorflow.DataType`.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "4")]
    pub slice: Vec<TensorSliceProto>,
}

/// `tensorflow.SavedTensorSliceMeta`: the table of contents of a V1 checkpoint.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedTensorSliceMeta {
    #[prost(message, repeated, tag = "1")]
    pub tensor: Vec<SavedSliceMeta>,
    #[prost(message, optional, tag = "2")]
    pub versions: Option<VersionDef>,
}

/// `tensorflow.SavedSlice`: the values of one slice of one tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedSlice {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub slice: Option<TensorSliceProto>,
    #[prost(message, optional, tag = "3")]
    pub data: Option<TensorProto>,
}

/// `tensorflow.SavedTensorSlices`: the value of every entry of a V1 checkpoint's table (the
/// entry with the empty key holds `meta`, every other entry `data`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedTensorSlices {
    #[prost(message, optional, tag = "1")]
    pub meta: Option<SavedTensorSliceMeta>,
    #[prost(message, optional, tag = "2")]
    pub data: Option<SavedSlice>,
}

/// `SavedTensorSlices` read without its values: `data.data` (field 3 of `SavedSlice`) is
/// skipped, so indexing a checkpoint does not decode its numbers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedTensorSlicesHeader {
    #[prost(message, optional, tag = "2")]
    pub data: Option<SavedSliceHeader>,
}

/// `SavedSlice` without field 3 (`data`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedSliceHeader {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub slice: Option<TensorSliceProto>,
}

/// `tensorflow.BundleHeaderProto`: the entry with the empty key of a V2 checkpoint's index.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    /// `LITTLE` = 0, `BIG` = 1.
    #[prost(int32, tag = "2")]
    pub endianness: i32,
    #[prost(message, optional, tag = "3")]
    pub version: Option<VersionDef>,
}

/// `tensorflow.BundleEntryProto`: where one tensor of a V2 checkpoint lives in the data shards.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleEntryProto {
    /// `tensorflow.DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub size: i64,
    /// Masked CRC32C of the tensor's bytes.
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    #[prost(message, repeated, tag = "7")]
    pub slices: Vec<TensorSliceProto>,
}
