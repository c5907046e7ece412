//! The TFRecord reader on AudioSet's real released file: counts, and corrupt or truncated copies
//! of it (each bad record reported, every other record still read).

use std::path::{Path, PathBuf};

use moodscope_train::audioset::{self, ClassLabels, ReadError};
use moodscope_train::{tfrecord, MoodSet};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/audioset")
}

fn file_bytes() -> Vec<u8> {
    let path = data_dir().join("audioset_moods_bal_train.tfrecord");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared data must sit beside the checkout)",
            path.display()
        )
    })
}

fn classes() -> ClassLabels {
    ClassLabels::read(&data_dir().join("class_labels_indices.csv")).expect("class list")
}

/// Byte offsets of every record in the intact file.
fn offsets(bytes: &[u8]) -> Vec<usize> {
    tfrecord::records(bytes)
        .map(|r| r.expect("intact file").offset as usize)
        .collect()
}

#[test]
fn reads_every_record_of_the_released_file() {
    let read =
        audioset::read_tfrecord(&data_dir().join("audioset_moods_bal_train.tfrecord")).unwrap();
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    assert_eq!(read.records(), 411);
    assert_eq!(read.clips.len(), 411);
    for clip in &read.clips {
        assert_eq!(clip.video_id.len(), 11, "{}", clip.video_id);
        assert!(clip.end_seconds > clip.start_seconds);
        assert!(!clip.labels.is_empty());
        assert!(!clip.embeddings.is_empty() && clip.embeddings.len() <= 10);
        for e in &clip.embeddings {
            assert_eq!(e.len(), 128);
            assert!(e.iter().all(|v| (-2.0..=2.0).contains(v)));
        }
    }
    let task = audioset::mood_task(&read.clips, &classes()).unwrap();
    assert_eq!(task.labels, vec!["Happy", "Sad", "Angry", "Scary"]);
    assert_eq!(task.items.len(), 233);
    assert_eq!(task.counts(), vec![55, 58, 60, 60]);
    assert_eq!(task.check(), Ok(128));
}

#[test]
fn six_moods_leave_out_funny_and_clips_with_two_moods() {
    let read =
        audioset::read_tfrecord(&data_dir().join("audioset_moods_bal_train.tfrecord")).unwrap();
    let classes = classes();
    let six = audioset::mood_set_task(&read.clips, &classes, MoodSet::Six).unwrap();
    assert_eq!(
        six.labels,
        vec!["Happy", "Sad", "Angry", "Scary", "Calm", "Exciting"]
    );
    assert_eq!(six.counts(), vec![55, 58, 60, 60, 55, 55]);
    assert_eq!(six.items.len(), 343);
    // Every clip carries exactly one of the seven mood labels, and it is not Funny.
    let moods: Vec<i64> = audioset::MOOD_CLASSES
        .iter()
        .map(|c| classes.index_of(c).unwrap())
        .collect();
    let funny = classes.index_of("Funny music").unwrap();
    let tender = classes.index_of("Tender music").unwrap();
    let by_id: std::collections::HashMap<String, &audioset::Clip> =
        read.clips.iter().map(|c| (c.id(), c)).collect();
    for item in &six.items {
        let clip = by_id[&item.id];
        let carried: Vec<i64> = clip
            .labels
            .iter()
            .copied()
            .filter(|l| moods.contains(l))
            .collect();
        assert_eq!(carried.len(), 1, "{}", item.id);
        assert_ne!(carried[0], funny);
        assert_eq!(carried[0] == tender, six.labels[item.label] == "Calm");
    }
    // The four-mood task is the six-mood task's first four labels.
    let four = audioset::mood_task(&read.clips, &classes).unwrap();
    let first_four: Vec<String> = six
        .items
        .iter()
        .filter(|s| s.label < 4)
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(
        four.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        first_four
    );
    assert_eq!(MoodSet::Six.classes()[4], "Tender music");
    assert_eq!(MoodSet::from_count(6), Some(MoodSet::Six));
    assert_eq!(MoodSet::from_count(5), None);
}

#[test]
fn a_flipped_data_byte_loses_only_its_record() {
    let mut bytes = file_bytes();
    let at = offsets(&bytes);
    // A byte in the middle of record 100's payload.
    let target = (at[100] + at[101]) / 2;
    bytes[target] ^= 0x20;
    let read = audioset::parse_tfrecord_bytes(&bytes, Path::new("flipped.tfrecord"));
    assert_eq!(read.clips.len(), 410);
    assert_eq!(read.errors.len(), 1, "{:?}", read.errors);
    let e = &read.errors[0];
    assert_eq!((e.index, e.offset), (100, at[100] as u64));
    let message = e.to_string();
    assert!(
        message.contains("flipped.tfrecord: record 100 at byte"),
        "{message}"
    );
    assert!(message.contains("data checksum mismatch"), "{message}");
}

#[test]
fn a_flipped_length_byte_is_stepped_over() {
    let mut bytes = file_bytes();
    let at = offsets(&bytes);
    bytes[at[7] + 2] ^= 0x01;
    let read = audioset::parse_tfrecord_bytes(&bytes, Path::new("header.tfrecord"));
    assert_eq!(read.clips.len(), 410);
    assert_eq!(read.errors.len(), 1, "{:?}", read.errors);
    assert!(
        read.errors[0].reason.contains("length checksum mismatch"),
        "{}",
        read.errors[0]
    );
    assert!(
        read.errors[0]
            .reason
            .contains(&format!("skipped {} bytes", at[8] - at[7])),
        "{}",
        read.errors[0]
    );
}

#[test]
fn a_truncated_file_keeps_what_came_before() {
    let bytes = file_bytes();
    let at = offsets(&bytes);
    let cut = at[200] + 50;
    let read = audioset::parse_tfrecord_bytes(&bytes[..cut], Path::new("cut.tfrecord"));
    assert_eq!(read.clips.len(), 200);
    assert_eq!(read.errors.len(), 1);
    assert!(
        read.errors[0].reason.contains("truncated"),
        "{}",
        read.errors[0]
    );
    assert_eq!(read.errors[0].index, 200);
}

#[test]
fn a_folder_of_shards_is_read_in_name_order() {
    let bytes = file_bytes();
    let at = offsets(&bytes);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.tfrecord"), &bytes[at[300]..]).unwrap();
    std::fs::write(dir.path().join("a.tfrecord"), &bytes[..at[300]]).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a shard").unwrap();
    let read = audioset::read_tfrecord(dir.path()).unwrap();
    assert_eq!(read.clips.len(), 411);
    assert_eq!(read.files.len(), 2);
    let whole = audioset::parse_tfrecord_bytes(&bytes, Path::new("x"));
    assert_eq!(read.clips, whole.clips);

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        audioset::read_tfrecord(empty.path()),
        Err(ReadError::EmptyFolder(_))
    ));
    let missing = audioset::read_tfrecord(&dir.path().join("missing.tfrecord")).unwrap_err();
    assert!(
        missing.to_string().contains("missing.tfrecord"),
        "{missing}"
    );
}

#[test]
fn a_record_that_is_not_an_audioset_clip_is_reported() {
    let bytes = tfrecord::write_records([&b"\x0a\x03abc"[..], b"\xff\xff"]);
    let read = audioset::parse_tfrecord_bytes(&bytes, Path::new("odd.tfrecord"));
    assert!(read.clips.is_empty());
    assert_eq!(read.errors.len(), 2);
    for e in &read.errors {
        assert!(
            e.reason.contains("video_id") || e.reason.contains("SequenceExample"),
            "{e}"
        );
    }
}
