//! The shipped streaming head's recipe, held out: for each of 5 stratified folds a head is
//! trained on the other four, exported, loaded into tract and run as the plugin runs it. Played
//! back to back as one long stream, its per-window accuracy from the third window of each clip
//! on stays within 0.05 of its clip-level accuracy (the state does not get stuck on an earlier
//! clip).

mod common;

use moodscope_train::dataset::stratified_folds;
use moodscope_train::{evaluate, export_head, train, EmbeddingSource, HeadSpec, StreamingHead};

#[test]
fn back_to_back_clips_do_not_confuse_the_state() {
    let data = common::mood_task();
    let labels: Vec<usize> = data.items.iter().map(|s| s.label).collect();
    let spec = HeadSpec::streaming_lstm();
    let dir = tempfile::tempdir().unwrap();
    let (mut clips, mut clips_correct, mut windows, mut windows_correct) = (0, 0.0, 0, 0.0);
    for (fold, validation) in stratified_folds(&labels, 5, 1).into_iter().enumerate() {
        let training: Vec<usize> = (0..data.items.len())
            .filter(|i| !validation.contains(i))
            .collect();
        let head = train(&data.subset(&training), &spec, &mut |_| {}).unwrap();
        let name = format!("fold-{fold}");
        let json = export_head(
            &head,
            dir.path(),
            &name,
            &EmbeddingSource::audioset_vggish(),
            serde_json::Value::Null,
        )
        .unwrap();
        let mut streaming = StreamingHead::load(&json).unwrap();
        let report = evaluate(&mut streaming, &data.subset(&validation)).unwrap();
        println!("fold {fold}: {report}");
        clips += report.clips;
        clips_correct += report.accuracy.value * report.clips as f64;
        windows += report.stream_windows;
        windows_correct += report.stream_accuracy * report.stream_windows as f64;
    }
    let clip_accuracy = clips_correct / clips as f64;
    let window_accuracy = windows_correct / windows as f64;
    println!("held out: clip-level {clip_accuracy:.3}, streamed per-window from window 3 {window_accuracy:.3}");
    assert_eq!(clips, 233);
    assert_eq!(windows, 233 * 8);
    assert!(
        clip_accuracy > 0.8,
        "clip-level accuracy {clip_accuracy:.3}"
    );
    assert!(
        (window_accuracy - clip_accuracy).abs() <= 0.05,
        "streamed per-window accuracy {window_accuracy:.3} vs clip-level {clip_accuracy:.3}"
    );
}
