//! OSC out (issue 5, part 3): the release CLAP bundle in the test host plays real music in real
//! time with OSC on; a local UDP socket receives and decodes (rosc) what the worker sends, and
//! every mood received is checked against the moods the plugin published (its window log).
//!
//! Needs `cargo xtask bundle moodscope --release`, the models and Debian's `hyperrogue-music`.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rosc::{OscMessage, OscPacket, OscType};

#[test]
fn the_worker_sends_each_published_mood_over_osc() {
    let dir = tempfile::Builder::new()
        .prefix("moodscope-osc-")
        .tempdir()
        .unwrap();
    let (wav, _) = excerpt(dir.path(), MUSIC, 30.0, 10.0, None, 2);
    let log = dir.path().join("windows.csv");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut messages = Vec::new();
            let mut buffer = [0u8; 2048];
            while !done.load(Ordering::SeqCst) {
                if let Ok(len) = socket.recv(&mut buffer) {
                    match rosc::decoder::decode_udp(&buffer[..len]) {
                        Ok((_, OscPacket::Message(m))) => messages.push(m),
                        other => panic!("not an OSC message: {other:?}"),
                    }
                }
            }
            messages
        })
    };
    // Default host (127.0.0.1) and prefix (/moodscope); the port is ours.
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--block",
            "512",
            "--rate",
            "48000",
            "--speed",
            "2",
            "--preroll",
            "3",
            "--linger",
            "1",
        ])
        .args(["--set", "OSC out=On", "--set", &format!("OSC port={port}")])
        .window_log(&log)
        .run()
        .report();
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::SeqCst);
    let messages = receiver.join().unwrap();
    assert_clean_passes(&report, "OSC out");
    let log = read_log(&log);
    assert_sane_moods(&log, "OSC out");

    // One mood is 11 messages, in this order: the default readout's five moods, the verdict,
    // valence and arousal, and the state last.
    let names = ["happy", "sad", "calm", "angry", "scary"];
    assert_eq!(
        log.labels,
        ["Happy", "Sad", "Calm", "Angry", "Scary"],
        "the default readout"
    );
    let mut addresses: Vec<String> = names.iter().map(|n| format!("/moodscope/{n}")).collect();
    for value in [
        "dominant",
        "confidence",
        "presence",
        "valence",
        "arousal",
        "state",
    ] {
        addresses.push(format!("/moodscope/{value}"));
    }
    let per_mood = addresses.len();
    assert!(
        messages.len() % per_mood == 0 && !messages.is_empty(),
        "{} messages",
        messages.len()
    );
    let float = |m: &OscMessage| match m.args.as_slice() {
        [OscType::Float(v)] => *v,
        other => panic!("{}: not one float: {other:?}", m.addr),
    };
    let string = |m: &OscMessage| match m.args.as_slice() {
        [OscType::String(s)] => s.clone(),
        other => panic!("{}: not one string: {other:?}", m.addr),
    };
    let k = names.len();
    let mut row = 0;
    let mut states = std::collections::BTreeMap::new();
    for mood in messages.chunks(per_mood) {
        let got: Vec<&str> = mood.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(got, addresses);
        let probabilities: Vec<f32> = mood[..k].iter().map(float).collect();
        let dominant = string(&mood[k]);
        let (confidence, presence) = (float(&mood[k + 1]), float(&mood[k + 2]));
        let (valence, arousal) = (float(&mood[k + 3]), float(&mood[k + 4]));
        let state = string(&mood[k + 5]);
        *states.entry(state.clone()).or_insert(0) += 1;
        // The mood of a published window, at or after the previous one received.
        let found = log.rows[row..]
            .iter()
            .position(|r| {
                let expected_state = match (r.dominant, r.uncertain) {
                    (Some(_), _) => "mood",
                    (None, true) => "uncertain",
                    (None, false) => "no-music",
                };
                r.probabilities == probabilities
                    && r.presence == presence
                    && r.confidence == confidence
                    && r.valence == Some(valence)
                    && r.arousal == Some(arousal)
                    && r.dominant.map_or("none", |d| names[d]) == dominant
                    && expected_state == state
            })
            .unwrap_or_else(|| {
                panic!(
                    "received {probabilities:?} {dominant} {confidence} {presence} {valence} \
                     {arousal} {state}: no published mood from window {} on",
                    log.rows[row].window
                )
            });
        row += found;
    }
    eprintln!("states received: {states:?}");
    let received = messages.len() / per_mood;
    assert!(
        received * 10 >= log.rows.len() * 8,
        "{received} moods received of {} published",
        log.rows.len()
    );
    assert_eq!(row, log.rows.len() - 1, "the last published mood was sent");
}
