//! TensorFlow's `tf.train` example messages (`tensorflow/core/example/{feature,example}.proto`),
//! as prost types: the bytes of one TFRecord record in, a `SequenceExample` out.
//!
//! Only the messages AudioSet's released features use are declared; unknown fields are skipped
//! by prost, so records written by newer TensorFlow versions still decode.

use std::collections::HashMap;

/// `repeated bytes value = 1;`
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `repeated float value = 1 [packed = true];`
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    #[prost(float, repeated, tag = "1")]
    pub value: Vec<f32>,
}

/// `repeated int64 value = 1 [packed = true];`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    pub value: Vec<i64>,
}

/// One feature: a list of bytes, floats or int64s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    #[prost(oneof = "feature::Kind", tags = "1, 2, 3")]
    pub kind: Option<feature::Kind>,
}

pub mod feature {
    /// `oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; }`
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        BytesList(super::BytesList),
        #[prost(message, tag = "2")]
        FloatList(super::FloatList),
        #[prost(message, tag = "3")]
        Int64List(super::Int64List),
    }
}

/// `map<string, Feature> feature = 1;`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    #[prost(map = "string, message", tag = "1")]
    pub feature: HashMap<String, Feature>,
}

/// `repeated Feature feature = 1;` — one feature per time step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureList {
    #[prost(message, repeated, tag = "1")]
    pub feature: Vec<Feature>,
}

/// `map<string, FeatureList> feature_list = 1;`
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureLists {
    #[prost(map = "string, message", tag = "1")]
    pub feature_list: HashMap<String, FeatureList>,
}

/// `Features context = 1; FeatureLists feature_lists = 2;`
#[derive(Clone, PartialEq, prost::Message)]
pub struct SequenceExample {
    #[prost(message, optional, tag = "1")]
    pub context: Option<Features>,
    #[prost(message, optional, tag = "2")]
    pub feature_lists: Option<FeatureLists>,
}
