//! Nested cross-validation: no outer-test clip takes part in any choice (checked twice: by
//! recording every clip each training run sees, and by scrambling an outer fold's embeddings and
//! finding that fold's choice unchanged while other folds' choices see the change), the ship
//! rule, and a short real run.

mod common;

use std::sync::Mutex;

use moodscope_train::dataset::stratified_folds;
use moodscope_train::experiment::{ship_decision, Role, Row};
use moodscope_train::nested::{
    nested_cross_validate, select, CandleLearner, Family, FamilyReport, Learner, NestedOptions,
    Predictions, Purpose, StreamCounts,
};
use moodscope_train::{Dataset, HeadSpec, TrainError};

/// Nearest class centroid of the clip-mean embeddings, the centroids shrunk towards the overall
/// mean by the candidate's `l2` (so candidates differ); records every call.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

/// Why, which candidate, the ids trained on, the ids predicted.
type Call = (Purpose, String, Vec<String>, Vec<String>);

fn clip_mean(e: &[Vec<f32>]) -> Vec<f32> {
    let mut m = vec![0.0; e[0].len()];
    for w in e {
        for (a, b) in m.iter_mut().zip(w) {
            *a += b / e.len() as f32;
        }
    }
    m
}

impl Learner for Recorder {
    fn fit_predict(
        &self,
        purpose: Purpose,
        spec: &HeadSpec,
        train: &Dataset,
        test: &Dataset,
        _seed: u64,
    ) -> Result<Predictions, TrainError> {
        self.calls.lock().unwrap().push((
            purpose,
            spec.name.clone(),
            train.items.iter().map(|s| s.id.clone()).collect(),
            test.items.iter().map(|s| s.id.clone()).collect(),
        ));
        let dim = train.items[0].embeddings[0].len();
        let k = train.labels.len();
        let all = clip_mean(
            &train
                .items
                .iter()
                .map(|s| clip_mean(&s.embeddings))
                .collect::<Vec<_>>(),
        );
        let mut centroids = vec![vec![0.0f32; dim]; k];
        let counts = train.counts();
        for s in &train.items {
            for (c, v) in centroids[s.label].iter_mut().zip(clip_mean(&s.embeddings)) {
                *c += v / counts[s.label] as f32;
            }
        }
        let shrink = spec.l2 as f32;
        for c in &mut centroids {
            for (v, m) in c.iter_mut().zip(&all) {
                *v = (1.0 - shrink) * *v + shrink * m;
            }
        }
        let probabilities = test
            .items
            .iter()
            .map(|s| {
                let x = clip_mean(&s.embeddings);
                let d: Vec<f32> = centroids
                    .iter()
                    .map(|c| -c.iter().zip(&x).map(|(a, b)| (a - b).powi(2)).sum::<f32>())
                    .collect();
                let max = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = d.iter().map(|v| (v - max).exp()).collect();
                let sum: f32 = e.iter().sum();
                e.iter().map(|v| v / sum).collect()
            })
            .collect();
        Ok(Predictions {
            probabilities,
            stream: matches!(purpose, Purpose::Measure { .. }).then(StreamCounts::default),
        })
    }
}

fn family(name: &str, shrinks: &[f64]) -> Family {
    Family {
        name: name.into(),
        description: String::new(),
        candidates: shrinks
            .iter()
            .map(|&l2| HeadSpec {
                name: format!("{name}-{l2}"),
                l2,
                ..HeadSpec::clip_mean_logistic()
            })
            .collect(),
    }
}

fn options() -> NestedOptions {
    NestedOptions {
        outer_folds: 5,
        inner_folds: 4,
        seeds: vec![1, 2],
        final_selection: true,
    }
}

#[test]
fn no_outer_test_clip_is_seen_by_any_choice() {
    let data = common::mood_task();
    let families = [
        family("centroid", &[0.0, 0.3, 0.6, 0.9]),
        family("single", &[0.0]),
    ];
    let options = options();
    let recorder = Recorder::default();
    let report = nested_cross_validate(&data, &families, &options, &recorder, &mut |_| {}).unwrap();
    let calls = recorder.calls.into_inner().unwrap();
    let truth: Vec<usize> = data.items.iter().map(|s| s.label).collect();
    let ids: Vec<String> = data.items.iter().map(|s| s.id.clone()).collect();
    // The outer folds, dealt independently of the code under test.
    let outer = |seed: u64, fold: usize| -> Vec<String> {
        stratified_folds(&truth, 5, seed)[fold]
            .iter()
            .map(|&i| ids[i].clone())
            .collect()
    };
    let (mut selects, mut finals, mut measures) = (0, 0, 0);
    for (purpose, name, train, test) in &calls {
        assert!(
            test.iter().all(|t| !train.contains(t)),
            "{purpose:?} {name}: a clip both trained on and predicted"
        );
        match *purpose {
            Purpose::Select {
                seed,
                outer: Some(fold),
                ..
            } => {
                selects += 1;
                let held_out = outer(seed, fold);
                for id in train.iter().chain(test) {
                    assert!(
                        !held_out.contains(id),
                        "choice for seed {seed} outer fold {fold} ({name}) used outer-test clip {id}"
                    );
                }
                // The inner split covers exactly the outer-training clips.
                assert_eq!(train.len() + test.len(), data.items.len() - held_out.len());
            }
            Purpose::Select { outer: None, .. } => {
                finals += 1;
                assert_eq!(train.len() + test.len(), data.items.len());
            }
            Purpose::Measure { seed, outer: fold } => {
                measures += 1;
                assert_eq!(test, &outer(seed, fold));
                assert_eq!(train.len() + test.len(), data.items.len());
            }
        }
    }
    // Only the family with several candidates chooses: 2 seeds x 5 outer x 4 inner x 4.
    assert_eq!(selects, 2 * 5 * 4 * 4);
    assert_eq!(finals, 4 * 4);
    assert_eq!(measures, 2 * 2 * 5);
    // The report names the same outer folds, and every clip is measured once per seed.
    for f in &report.families {
        for r in &f.repeats {
            for choice in &r.folds {
                let named: Vec<String> = choice.test.iter().map(|&i| ids[i].clone()).collect();
                assert_eq!(named, outer(r.seed, choice.outer));
            }
            let mut all: Vec<usize> = r.folds.iter().flat_map(|c| c.test.clone()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..data.items.len()).collect::<Vec<_>>());
        }
    }
    assert!(
        report.families[0].accuracy.value > 0.5,
        "{}",
        report.families[0]
    );
    assert!(report.families[1].final_selection.is_none());
    assert_eq!(report.families[1].mean_inner_accuracy_of_chosen, None);
}

#[test]
fn scrambling_an_outer_fold_leaves_its_choice_unchanged() {
    let data = common::mood_task();
    let families = [family("centroid", &[0.0, 0.2, 0.5, 0.8, 0.95])];
    let options = NestedOptions {
        seeds: vec![3],
        ..options()
    };
    let before = nested_cross_validate(
        &data,
        &families,
        &options,
        &Recorder::default(),
        &mut |_| {},
    )
    .unwrap();
    let truth: Vec<usize> = data.items.iter().map(|s| s.label).collect();
    let fold = 2;
    let held_out = &stratified_folds(&truth, 5, 3)[fold];
    // Every held-out clip's embeddings swapped for another label's (labels, hence folds, kept).
    let mut scrambled = data.clone();
    for &i in held_out {
        let donor = data
            .items
            .iter()
            .find(|s| s.label == (data.items[i].label + 1) % 4)
            .unwrap();
        scrambled.items[i].embeddings = donor
            .embeddings
            .iter()
            .map(|w| w.iter().map(|v| -3.0 * v + 1.0).collect())
            .collect();
    }
    let after = nested_cross_validate(
        &scrambled,
        &families,
        &options,
        &Recorder::default(),
        &mut |_| {},
    )
    .unwrap();
    let choice = |r: &FamilyReport, f: usize| {
        r.repeats[0]
            .folds
            .iter()
            .find(|c| c.outer == f)
            .unwrap()
            .selection
            .clone()
            .unwrap()
    };
    // The scrambled fold's own choice saw none of it: the same scores, to the bit.
    assert_eq!(
        choice(&before.families[0], fold),
        choice(&after.families[0], fold)
    );
    // The other folds train on the scrambled clips, and their inner scores move: the check
    // above would catch a leak.
    let moved = (0..5)
        .filter(|&f| f != fold)
        .filter(|&f| choice(&before.families[0], f) != choice(&after.families[0], f))
        .count();
    assert_eq!(moved, 4);
    // The scrambled clips are measured, and now mostly wrong.
    let wrong = |r: &FamilyReport| {
        held_out
            .iter()
            .filter(|&&i| r.repeats[0].predicted[i] != truth[i])
            .count()
    };
    assert!(wrong(&after.families[0]) > wrong(&before.families[0]) + 10);
    // The final selection uses every clip, so it moves too.
    assert_ne!(
        before.families[0].final_selection,
        after.families[0].final_selection
    );
}

/// Right on every clip but those whose id hash is a multiple of the candidate's `epochs`.
struct Fixed;

impl Learner for Fixed {
    fn fit_predict(
        &self,
        _purpose: Purpose,
        spec: &HeadSpec,
        _train: &Dataset,
        test: &Dataset,
        _seed: u64,
    ) -> Result<Predictions, TrainError> {
        let k = test.labels.len();
        let probabilities = test
            .items
            .iter()
            .map(|s| {
                let h =
                    s.id.bytes()
                        .fold(7u64, |h, b| h.wrapping_mul(31) + b as u64);
                let wrong = h % spec.epochs as u64 == 0;
                let label = if wrong { (s.label + 1) % k } else { s.label };
                (0..k)
                    .map(|j| {
                        if j == label {
                            0.9
                        } else {
                            0.1 / (k - 1) as f32
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Predictions {
            probabilities,
            stream: None,
        })
    }
}

fn rows(report: Vec<FamilyReport>, roles: &[Role]) -> Vec<Row> {
    let baseline = report[0].clone();
    report
        .into_iter()
        .zip(roles)
        .map(|(r, &role)| Row {
            role,
            study_accuracy: None,
            versus_baseline: (role != Role::Baseline).then(|| r.paired(&baseline).unwrap()),
            report: r,
            exported: None,
        })
        .collect()
}

#[test]
fn the_simpler_head_ships_unless_beaten_significantly() {
    let data = common::mood_task();
    let fixed = |name: &str, every: usize| Family {
        name: name.into(),
        description: String::new(),
        candidates: vec![HeadSpec {
            name: name.into(),
            epochs: every,
            ..HeadSpec::clip_mean_logistic()
        }],
    };
    let options = NestedOptions {
        final_selection: false,
        ..options()
    };
    // Baseline wrong on every 5th clip (by id hash); a contender wrong on every 6th (a lead of
    // a few points at most: not significant on 233 clips); another right on all but every
    // 1000th.
    let families = [
        fixed("baseline", 5),
        fixed("close", 6),
        fixed("study-perfect", 1000),
        fixed("far", 1000),
    ];
    let report = nested_cross_validate(&data, &families, &options, &Fixed, &mut |_| {}).unwrap();
    let close = report.families[1].paired(&report.families[0]).unwrap();
    assert!(!close.significantly_better(), "{close}");
    let far = report.families[3].paired(&report.families[0]).unwrap();
    assert!(far.significantly_better(), "{far}");
    assert!(far.mcnemar.iter().all(|&(b, c, p)| b > c && p < 0.001));

    // Only the close contender: the baseline ships. A study head never ships, however good.
    let r = rows(
        report.families[..3].to_vec(),
        &[Role::Baseline, Role::Contender, Role::Study],
    );
    let (shipped, why) = ship_decision(&r).unwrap();
    assert_eq!(shipped, 0, "{why}");
    assert!(why.contains("no more complex head"), "{why}");
    // With the far contender: it ships.
    let mut with_far = report.families.clone();
    with_far.remove(2);
    let r = rows(
        with_far,
        &[Role::Baseline, Role::Contender, Role::Contender],
    );
    let (shipped, why) = ship_decision(&r).unwrap();
    assert_eq!(shipped, 2, "{why}");
}

#[test]
fn a_short_real_nested_run_measures_and_chooses() {
    let data = common::mood_task();
    let quick = |name: &str, learning_rate: f64| HeadSpec {
        name: name.into(),
        epochs: 30,
        l2: 0.1,
        learning_rate,
        ..HeadSpec::clip_mean_logistic()
    };
    // The second candidate barely moves from its random initial weights.
    let families = [Family {
        name: "lr".into(),
        description: String::new(),
        candidates: vec![quick("trained", 3e-3), quick("untrained", 1e-9)],
    }];
    let options = NestedOptions {
        outer_folds: 3,
        inner_folds: 3,
        seeds: vec![1],
        final_selection: true,
    };
    let learner = CandleLearner { hop_seconds: 0.96 };
    let mut progress = 0;
    let report = nested_cross_validate(&data, &families, &options, &learner, &mut |p| {
        progress = p.done;
        assert!(p.done <= p.jobs);
    })
    .unwrap();
    assert_eq!(progress, 3 * 3 * 2 + 3 * 2 + 3);
    let r = &report.families[0];
    println!("{r}");
    assert!(r.accuracy.value > 0.75, "{r}");
    assert!(
        r.accuracy_bootstrap.low < r.accuracy.value && r.accuracy.value < r.accuracy_bootstrap.high
    );
    assert_eq!(r.confusion.total(), 233);
    // Every outer clip streamed, windows from the third on.
    assert_eq!(r.stream.windows, 233 * 8);
    assert!(
        r.stream_raw().unwrap() > 0.6 && r.stream_smoothed().unwrap() > 0.6,
        "{r}"
    );
    // The untrained candidate never wins; the final selection is the same procedure as `select`.
    assert_eq!(r.chosen_counts, vec![3, 0]);
    let final_selection = r.final_selection.clone().unwrap();
    assert_eq!(final_selection.chosen, 0);
    assert_eq!(
        final_selection,
        select(&data, &families[0], 3, 1, &learner).unwrap()
    );
    // A head compared with itself: no difference.
    let same = r.paired(r).unwrap();
    assert_eq!(
        (
            same.difference.value,
            same.difference.low,
            same.difference.high
        ),
        (0.0, 0.0, 0.0)
    );
    let json = r.figures_json();
    assert_eq!(json["clips"], 233);
    assert_eq!(json["times_chosen"], serde_json::json!([3, 0]));
}
