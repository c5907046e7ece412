//! Shared by the integration tests: the study's task on AudioSet's real released embeddings.

use std::path::{Path, PathBuf};

use moodscope_train::audioset::{self, ClassLabels};
use moodscope_train::{Dataset, MoodSet};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/audioset")
}

/// The 233 single-mood clips (Happy 55, Sad 58, Angry 60, Scary 60).
pub fn mood_task() -> Dataset {
    mood_set_task(MoodSet::Four)
}

/// The clips of a mood set (six moods: 343 clips).
pub fn mood_set_task(set: MoodSet) -> Dataset {
    let dir = data_dir();
    let read = audioset::read_tfrecord(&dir.join("audioset_moods_bal_train.tfrecord"))
        .unwrap_or_else(|e| panic!("{e} (the shared data must sit beside the checkout)"));
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    let classes = ClassLabels::read(&dir.join("class_labels_indices.csv")).expect("class list");
    audioset::mood_set_task(&read.clips, &classes, set).expect("mood task")
}
