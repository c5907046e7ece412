//! Shared by the integration tests: the study's task on AudioSet's real released embeddings.

use std::path::{Path, PathBuf};

use moodscope_train::audioset::{self, ClassLabels};
use moodscope_train::Dataset;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/audioset")
}

/// The 233 single-mood clips (Happy 55, Sad 58, Angry 60, Scary 60).
pub fn mood_task() -> Dataset {
    let dir = data_dir();
    let read = audioset::read_tfrecord(&dir.join("audioset_moods_bal_train.tfrecord"))
        .unwrap_or_else(|e| panic!("{e} (the shared data must sit beside the checkout)"));
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    let classes = ClassLabels::read(&dir.join("class_labels_indices.csv")).expect("class list");
    audioset::mood_task(&read.clips, &classes).expect("mood task")
}
