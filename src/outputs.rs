//! The outputs sent from the worker thread (never the audio thread): OSC over UDP and the
//! plain-words status of the MIDI and OSC settings. (The mood read-out parameters are written
//! as each mood is published: `MoodscopeParams::mirror`, called by `plugin::worker::Session`.)
//!
//! In: the published mood (`Published::read`, after each publication: the worker calls
//! `Outputs::poll` after every look at the ring, and every few milliseconds when idle, e.g.
//! during an offline render), the label names of the head in use, and the settings
//! (`MoodscopeParams`: OSC on/off, host, port, prefix; the MIDI CC settings, checked here only to
//! explain them, since `process()` sends the CCs itself, see `plugin::realtime::MidiOut`).
//!
//! Out:
//! - with OSC on, one UDP datagram per message to `host:port`, at each new mood:
//!   `PREFIX/<label>` (float 0–1, one per label: `/moodscope/happy`, `/moodscope/sad`, …; the
//!   label lowercased, anything but `a-z 0-9 _ -` replaced by `_`, so a trained head's own labels
//!   get their own addresses), `PREFIX/dominant` (string: the dominant label as in its address,
//!   or `none` when there is no music or the verdict is uncertain), `PREFIX/confidence` (float
//!   0–1), `PREFIX/presence` (float 0–1), `PREFIX/valence` and `PREFIX/arousal` (floats −1..1,
//!   when the head reads them) and `PREFIX/state` (string: `mood`, `uncertain` or `no-music`);
//! - `Published::set_outputs_status`: what is wrong with the settings, one problem per line
//!   ("" when nothing is), for the editor. A bad setting turns off only what it concerns: a
//!   malformed prefix or a host that cannot be found stops OSC (audio, analysis and MIDI go on),
//!   overlapping CC numbers silence only the CCs that lose the overlap.
//!
//! The host name is resolved on a short-lived thread of its own (a DNS lookup can take seconds;
//! the analysis must not wait for it), again every `RETRY` while it fails. The socket is bound
//! to an ephemeral local port (so it cannot meet a port in use; a failure to bind is reported)
//! and connected, so that the kernel reports an unreachable network or a refused port (ICMP) as
//! a send error, shown while it lasts. Sending never blocks.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};

use crate::plugin::params::{MidiSettings, MoodscopeParams, OscSettings, MOOD_CCS};
use crate::plugin::realtime::{
    cc_plan, CcRoute, AROUSAL_SLOT, DOMINANT_SLOT, PRESENCE_SLOT, VALENCE_SLOT,
};
use crate::plugin::shared::{MoodSnapshot, Published};

/// Wait before trying again a host that could not be resolved.
pub const RETRY: Duration = Duration::from_secs(5);
/// How long a send error stays in the status after the last one.
const ERROR_SHOWN_FOR: Duration = Duration::from_secs(5);

/// The worker's outputs.
#[derive(Default)]
pub struct Outputs {
    osc: OscOut,
    /// Sequence of the last mood sent.
    sequence: u64,
}

impl Outputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// One look: applies setting changes, sends the latest mood if it is new, and updates the
    /// outputs' status line.
    pub fn poll(&mut self, params: &MoodscopeParams, published: &Published) {
        let osc = params.osc_settings();
        self.osc.configure(&osc);
        if published.sequence() != self.sequence {
            if let Some(snapshot) = published.read() {
                self.sequence = snapshot.sequence;
                if osc.enabled {
                    self.osc.send(&snapshot, &published.label_names());
                }
            }
        }
        let mut problems = Vec::new();
        let midi = params.midi_settings();
        if midi.enabled {
            problems.extend(midi_problems(&midi, &published.label_names()));
        }
        if let Some(problem) = self.osc.problem() {
            problems.push(problem);
        }
        published.set_outputs_status(&problems.join("\n"));
    }
}

/// What is wrong with MIDI CC settings, in plain words (nothing when they are fine).
pub fn midi_problems(settings: &MidiSettings, labels: &[String]) -> Vec<String> {
    let name = |slot: usize| match slot {
        DOMINANT_SLOT => "the dominant mood".to_owned(),
        PRESENCE_SLOT => "music presence".to_owned(),
        VALENCE_SLOT => "valence".to_owned(),
        AROUSAL_SLOT => "arousal".to_owned(),
        mood => labels
            .get(mood)
            .cloned()
            .unwrap_or_else(|| format!("mood {}", mood + 1)),
    };
    let mut problems = Vec::new();
    for (slot, route) in cc_plan(settings).into_iter().enumerate() {
        match route {
            CcRoute::Cc(_) => {}
            CcRoute::NotAnMsb(cc) => problems.push(format!(
                "MIDI: 14-bit CCs need numbers 0–31 (the fine half goes on CC n + 32): {} on \
                 CC {cc} is not sent",
                name(slot)
            )),
            CcRoute::Clash { cc, with } => {
                let pair = if settings.fourteen_bit {
                    format!(" (with its pair CC {})", cc + 32)
                } else {
                    String::new()
                };
                problems.push(format!(
                    "MIDI: CC {cc}{pair} is set for both {} and {}: only {} is sent on it",
                    name(with),
                    name(slot),
                    name(with)
                ));
            }
        }
    }
    if labels.len() > MOOD_CCS {
        problems.push(format!(
            "MIDI: this head has {} moods; only the first {MOOD_CCS} have a CC",
            labels.len()
        ));
    }
    problems
}

/// The address segment of a label: lowercased, anything but `a-z 0-9 _ -` replaced by `_`.
pub fn address_name(label: &str, index: usize) -> String {
    let name: String = label
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        format!("mood{}", index + 1)
    } else if RESERVED_ADDRESSES.contains(&name.as_str()) {
        // A label may not take the address of the other values.
        format!("mood_{name}")
    } else {
        name
    }
}

/// Checks an OSC address prefix; returns it without a trailing `/` (so `/` is the root).
pub fn check_prefix(prefix: &str) -> Result<String, String> {
    let prefix = prefix.trim();
    if !prefix.starts_with('/') {
        return Err(format!(
            "OSC is off: the address prefix \"{prefix}\" must start with \"/\" (for example \
             /moodscope)"
        ));
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !c.is_ascii_graphic() || " #*,?[]{}".contains(*c))
    {
        let what = if bad == ' ' {
            "a space".to_owned()
        } else if !bad.is_ascii_graphic() {
            format!(
                "\"{}\" (OSC addresses are plain ASCII)",
                bad.escape_default()
            )
        } else {
            format!("\"{bad}\"")
        };
        return Err(format!(
            "OSC is off: the address prefix \"{prefix}\" contains {what}; OSC addresses may not \
             contain spaces or any of # * , ? [ ] {{ }}"
        ));
    }
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.contains("//") {
        return Err(format!(
            "OSC is off: the address prefix \"{prefix}\" has an empty part (\"//\")"
        ));
    }
    Ok(trimmed.to_owned())
}

/// Addresses of the values that are not moods; a label may not take them.
const RESERVED_ADDRESSES: [&str; 6] = [
    "dominant",
    "confidence",
    "presence",
    "valence",
    "arousal",
    "state",
];

/// The OSC messages for one mood.
pub fn osc_messages(prefix: &str, snapshot: &MoodSnapshot, labels: &[String]) -> Vec<OscMessage> {
    let names: Vec<String> = (0..snapshot.labels)
        .map(|i| address_name(labels.get(i).map_or("", String::as_str), i))
        .collect();
    let mut messages: Vec<OscMessage> = names
        .iter()
        .zip(snapshot.probabilities())
        .map(|(name, &p)| OscMessage {
            addr: format!("{prefix}/{name}"),
            args: vec![OscType::Float(p)],
        })
        .collect();
    let dominant = snapshot
        .dominant
        .and_then(|d| names.get(d).cloned())
        .unwrap_or_else(|| "none".to_owned());
    messages.push(OscMessage {
        addr: format!("{prefix}/dominant"),
        args: vec![OscType::String(dominant)],
    });
    messages.push(OscMessage {
        addr: format!("{prefix}/confidence"),
        args: vec![OscType::Float(snapshot.confidence)],
    });
    messages.push(OscMessage {
        addr: format!("{prefix}/presence"),
        args: vec![OscType::Float(snapshot.presence)],
    });
    for (name, value) in [("valence", snapshot.valence), ("arousal", snapshot.arousal)] {
        if let Some(value) = value {
            messages.push(OscMessage {
                addr: format!("{prefix}/{name}"),
                args: vec![OscType::Float(value)],
            });
        }
    }
    let state = match (snapshot.dominant, snapshot.uncertain) {
        (Some(_), _) => "mood",
        (None, true) => "uncertain",
        (None, false) => "no-music",
    };
    messages.push(OscMessage {
        addr: format!("{prefix}/state"),
        args: vec![OscType::String(state.to_owned())],
    });
    messages
}

/// Where OSC goes, as far as it is known.
#[derive(Default)]
enum Target {
    #[default]
    Off,
    /// A setting makes sending impossible (the message says which).
    Bad(String),
    /// The host name is being looked up.
    Resolving(Receiver<io::Result<Vec<SocketAddr>>>),
    /// The host could not be found: retry at this time.
    Unresolved {
        message: String,
        retry_at: Instant,
    },
    Ready {
        socket: UdpSocket,
        addr: SocketAddr,
    },
}

/// The OSC sender.
#[derive(Default)]
struct OscOut {
    /// The settings `target` was made for.
    settings: Option<OscSettings>,
    prefix: String,
    target: Target,
    /// The last send error and when it happened.
    error: Option<(String, Instant)>,
}

impl OscOut {
    fn configure(&mut self, settings: &OscSettings) {
        if self.settings.as_ref() != Some(settings) {
            self.settings = Some(settings.clone());
            self.error = None;
            self.target = Target::Off;
            if !settings.enabled {
                return;
            }
            match check_prefix(&settings.prefix) {
                Ok(prefix) => self.prefix = prefix,
                Err(message) => {
                    self.target = Target::Bad(message);
                    return;
                }
            }
            if settings.host.trim().is_empty() {
                self.target = Target::Bad("OSC is off: no host is set to send to".to_owned());
                return;
            }
            self.target = resolve(settings);
        }
        let Some(settings) = &self.settings else {
            return;
        };
        match &self.target {
            Target::Resolving(answer) => match answer.try_recv() {
                Ok(Ok(addrs)) => self.target = connect(settings, &addrs),
                Ok(Err(e)) => {
                    self.target = Target::Unresolved {
                        message: format!(
                            "OSC is off: the host \"{}\" could not be found ({e}); trying again \
                             every {} s",
                            settings.host.trim(),
                            RETRY.as_secs()
                        ),
                        retry_at: Instant::now() + RETRY,
                    }
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    self.target = Target::Unresolved {
                        message: format!(
                            "OSC is off: looking up the host \"{}\" failed",
                            settings.host.trim()
                        ),
                        retry_at: Instant::now() + RETRY,
                    }
                }
            },
            Target::Unresolved { retry_at, .. } if Instant::now() >= *retry_at => {
                // Keep the message up while the new lookup runs.
                let message = self.problem();
                self.target = resolve(settings);
                if let Some(message) = message {
                    self.error = Some((message, Instant::now()));
                }
            }
            _ => {}
        }
    }

    fn send(&mut self, snapshot: &MoodSnapshot, labels: &[String]) {
        let Target::Ready { socket, addr } = &self.target else {
            return;
        };
        for message in osc_messages(&self.prefix, snapshot, labels) {
            let packet = match rosc::encoder::encode(&OscPacket::Message(message)) {
                Ok(packet) => packet,
                Err(e) => {
                    self.error = Some((
                        format!("OSC: a message could not be encoded ({e})"),
                        Instant::now(),
                    ));
                    continue;
                }
            };
            if let Err(e) = socket.send(&packet) {
                let host = self.settings.as_ref().map_or("", |s| s.host.trim());
                let message = match e.kind() {
                    io::ErrorKind::ConnectionRefused => format!(
                        "OSC: nothing is listening at {host} port {} (the messages are refused); \
                         still sending",
                        addr.port()
                    ),
                    io::ErrorKind::WouldBlock => {
                        "OSC: the network is not taking messages as fast as they come; some \
                         were dropped"
                            .to_owned()
                    }
                    _ => format!(
                        "OSC: the host {host} ({addr}) cannot be reached ({e}); still trying"
                    ),
                };
                self.error = Some((message, Instant::now()));
                // One report per mood is enough.
                break;
            }
        }
    }

    /// The problem to show, if any.
    fn problem(&self) -> Option<String> {
        match &self.target {
            Target::Bad(message) | Target::Unresolved { message, .. } => Some(message.clone()),
            _ => self
                .error
                .as_ref()
                .filter(|(_, at)| at.elapsed() < ERROR_SHOWN_FOR)
                .map(|(message, _)| message.clone()),
        }
    }
}

/// Starts looking up the host on a thread of its own.
fn resolve(settings: &OscSettings) -> Target {
    let (tx, rx) = mpsc::channel();
    let host = settings.host.trim().to_owned();
    let port = settings.port;
    let spawned = std::thread::Builder::new()
        .name("moodscope-osc-lookup".into())
        .spawn(move || {
            let _ = tx.send((host.as_str(), port).to_socket_addrs().map(|a| a.collect()));
        });
    match spawned {
        Ok(_) => Target::Resolving(rx),
        Err(e) => Target::Unresolved {
            message: format!("OSC is off: could not start the host lookup ({e})"),
            retry_at: Instant::now() + RETRY,
        },
    }
}

/// A non-blocking UDP socket on an ephemeral port, connected to the first address that works.
fn connect(settings: &OscSettings, addrs: &[SocketAddr]) -> Target {
    let mut last_error = None;
    // IPv4 first: "localhost" may resolve to ::1 first where a receiver listens on 127.0.0.1.
    let mut ordered: Vec<SocketAddr> = addrs.iter().copied().filter(|a| a.is_ipv4()).collect();
    ordered.extend(addrs.iter().copied().filter(|a| a.is_ipv6()));
    for addr in ordered {
        let local: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let made = UdpSocket::bind(local).and_then(|socket| {
            socket.connect(addr)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        });
        match made {
            Ok(socket) => return Target::Ready { socket, addr },
            Err(e) => last_error = Some((addr, e)),
        }
    }
    let host = settings.host.trim();
    Target::Unresolved {
        message: match last_error {
            Some((addr, e)) if e.kind() == io::ErrorKind::AddrInUse => format!(
                "OSC is off: no local UDP port is free to send to {host} ({addr}) from ({e})"
            ),
            Some((addr, e)) => format!(
                "OSC is off: cannot send to {host} ({addr}): {e}; trying again every {} s",
                RETRY.as_secs()
            ),
            None => format!("OSC is off: the host \"{host}\" has no address"),
        },
        retry_at: Instant::now() + RETRY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::shared::{LabelSet, MoodUpdate};

    fn labels() -> Vec<String> {
        ["Happy", "Sad", "Angry", "Scary"]
            .map(String::from)
            .to_vec()
    }

    fn decode(bytes: &[u8]) -> OscMessage {
        match rosc::decoder::decode_udp(bytes).expect("an OSC packet").1 {
            OscPacket::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    /// Receives datagrams until `n` arrived or a second passed.
    fn receive(socket: &UdpSocket, n: usize) -> Vec<OscMessage> {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut out = Vec::new();
        let until = Instant::now() + Duration::from_secs(2);
        let mut buffer = [0u8; 1536];
        while out.len() < n && Instant::now() < until {
            if let Ok(len) = socket.recv(&mut buffer) {
                out.push(decode(&buffer[..len]));
            }
        }
        out
    }

    fn settings_for(params: &MoodscopeParams, port: u16, host: &str, prefix: &str) {
        use nice_plug::params::InternalParamMut;
        unsafe {
            params.osc_out._internal_set_plain_value(true);
            params.osc_port._internal_set_plain_value(port as i32);
        }
        *params.osc_host.write().unwrap() = host.to_owned();
        *params.osc_prefix.write().unwrap() = prefix.to_owned();
    }

    /// Polls until the status settles (the host lookup runs on its own thread).
    fn poll_until(
        outputs: &mut Outputs,
        params: &MoodscopeParams,
        published: &Published,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            outputs.poll(params, published);
            let status = published.outputs_status();
            if ok(&status) || Instant::now() > until {
                return status;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn each_new_mood_goes_out_as_osc_messages() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let params = MoodscopeParams::default();
        settings_for(&params, port, "localhost", "/moodscope/");
        let published = Published::default();
        published.set_label_set(LabelSet::ungrouped(labels().into()));
        let mut outputs = Outputs::new();
        // Let the lookup finish; nothing published yet, so nothing is sent.
        let until = Instant::now() + Duration::from_secs(5);
        while !matches!(outputs.osc.target, Target::Ready { .. }) && Instant::now() < until {
            outputs.poll(&params, &published);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            matches!(outputs.osc.target, Target::Ready { .. }),
            "{}",
            published.outputs_status()
        );
        assert_eq!(published.outputs_status(), "");

        for (window, (p, dominant, uncertain)) in [
            ([0.1f32, 0.6, 0.2, 0.1], Some(1), false),
            ([0.7, 0.1, 0.1, 0.1], Some(0), false),
            ([0.25, 0.25, 0.25, 0.25], None, false),
            ([0.3, 0.28, 0.22, 0.2], None, true),
        ]
        .into_iter()
        .enumerate()
        {
            published.publish(&MoodUpdate {
                probabilities: &p,
                dominant,
                uncertain,
                confidence: dominant.map_or(0.0, |d| p[d]),
                valence: Some(0.5 - window as f32 * 0.25),
                arousal: Some(-0.5),
                presence: 0.3 + window as f32 * 0.1,
                window: window as u64,
                audio_end_seconds: 0.0,
            });
            outputs.poll(&params, &published);
            outputs.poll(&params, &published); // nothing new: nothing sent
            let got = receive(&receiver, 11);
            let snapshot = published.read().unwrap();
            let expected = osc_messages("/moodscope", &snapshot, &labels());
            assert_eq!(got, expected);
            let addrs: Vec<&str> = got.iter().map(|m| m.addr.as_str()).collect();
            assert_eq!(
                addrs,
                [
                    "/moodscope/happy",
                    "/moodscope/sad",
                    "/moodscope/angry",
                    "/moodscope/scary",
                    "/moodscope/dominant",
                    "/moodscope/confidence",
                    "/moodscope/presence",
                    "/moodscope/valence",
                    "/moodscope/arousal",
                    "/moodscope/state"
                ]
            );
            for (m, &v) in got.iter().zip(&p) {
                assert_eq!(m.args, [OscType::Float(v)]);
            }
            let dominant_name = ["happy", "sad", "angry", "scary"]
                .get(dominant.unwrap_or(9))
                .copied()
                .unwrap_or("none");
            assert_eq!(got[4].args, [OscType::String(dominant_name.to_owned())]);
            assert_eq!(got[6].args, [OscType::Float(snapshot.presence)]);
            assert_eq!(got[7].args, [OscType::Float(0.5 - window as f32 * 0.25)]);
            assert_eq!(got[8].args, [OscType::Float(-0.5)]);
            let state = match (dominant, uncertain) {
                (Some(_), _) => "mood",
                (None, true) => "uncertain",
                (None, false) => "no-music",
            };
            assert_eq!(got[9].args, [OscType::String(state.to_owned())]);
        }
        assert!(
            receive(&receiver, 1).is_empty(),
            "nothing more was published"
        );
    }

    #[test]
    fn trained_heads_labels_get_their_own_addresses() {
        assert_eq!(address_name("Happy", 0), "happy");
        assert_eq!(address_name("Dark Ambient #2", 1), "dark_ambient__2");
        assert_eq!(address_name("", 2), "mood3");
        assert_eq!(address_name("Presence", 3), "mood_presence");
        assert_eq!(address_name("Valence", 4), "mood_valence");
        assert_eq!(address_name("state", 5), "mood_state");
    }

    #[test]
    fn malformed_prefixes_are_explained() {
        assert_eq!(check_prefix("/moodscope").unwrap(), "/moodscope");
        assert_eq!(check_prefix(" /a/b/ ").unwrap(), "/a/b");
        assert_eq!(check_prefix("/").unwrap(), "");
        for (bad, says) in [
            ("moodscope", "must start with \"/\""),
            ("", "must start with \"/\""),
            ("/mood scope", "contains a space"),
            ("/mood*", "contains \"*\""),
            ("/a{b}", "contains \"{\""),
            ("/a//b", "empty part"),
            ("/héllo", "plain ASCII"),
        ] {
            let e = check_prefix(bad).unwrap_err();
            assert!(
                e.contains(says) && e.starts_with("OSC is off"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bad_osc_settings_give_a_message_and_leave_the_rest_working() {
        let params = MoodscopeParams::default();
        let published = Published::default();
        published.set_label_set(LabelSet::ungrouped(labels().into()));
        let mut outputs = Outputs::new();
        outputs.poll(&params, &published);
        assert_eq!(published.outputs_status(), "", "all off by default");

        settings_for(&params, 9000, "127.0.0.1", "/mood scope");
        let status = poll_until(&mut outputs, &params, &published, |s| !s.is_empty());
        assert!(status.contains("contains a space"), "{status}");

        settings_for(&params, 9000, "no-such-host.invalid", "/moodscope");
        let status = poll_until(&mut outputs, &params, &published, |s| {
            s.contains("could not be found")
        });
        assert!(
            status.starts_with("OSC is off: the host \"no-such-host.invalid\" could not be found"),
            "{status}"
        );

        // Nothing listens on this port: the kernel refuses the messages, which is reported, and
        // the sender keeps going.
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        settings_for(&params, port, "127.0.0.1", "/moodscope");
        poll_until(&mut outputs, &params, &published, |s| s.is_empty());
        for window in 0..3 {
            published.publish(&MoodUpdate {
                probabilities: &[0.1, 0.6, 0.2, 0.1],
                dominant: Some(1),
                uncertain: false,
                confidence: 0.6,
                valence: None,
                arousal: None,
                presence: 0.9,
                window,
                audio_end_seconds: 0.0,
            });
            outputs.poll(&params, &published);
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = published.outputs_status();
        assert!(
            status.contains("nothing is listening at 127.0.0.1"),
            "{status}"
        );

        // A network that cannot be reached (a TEST-NET-1 address with no route, or a
        // refusal from a firewall): reported either way, never a hang.
        settings_for(&params, 9, "192.0.2.1", "/moodscope");
        outputs.poll(&params, &published);
    }

    #[test]
    fn overlapping_ccs_are_explained_by_name() {
        use nice_plug::params::InternalParamMut;
        let params = MoodscopeParams::default();
        unsafe {
            params.midi_out._internal_set_plain_value(true);
            params.cc_mood_3._internal_set_plain_value(20);
            params.cc_presence._internal_set_plain_value(24);
        }
        let published = Published::default();
        published.set_label_set(LabelSet::ungrouped(labels().into()));
        let mut outputs = Outputs::new();
        outputs.poll(&params, &published);
        assert_eq!(
            published.outputs_status(),
            "MIDI: CC 20 is set for both Happy and Angry: only Happy is sent on it\n\
             MIDI: CC 24 is set for both the dominant mood and music presence: only the \
             dominant mood is sent on it"
        );
        unsafe {
            params
                .midi_resolution
                ._internal_set_plain_value(crate::plugin::params::MidiResolution::FourteenBit);
            params.cc_mood_3._internal_set_plain_value(22);
            params.cc_presence._internal_set_plain_value(40);
        }
        outputs.poll(&params, &published);
        assert_eq!(
            published.outputs_status(),
            "MIDI: 14-bit CCs need numbers 0–31 (the fine half goes on CC n + 32): music \
             presence on CC 40 is not sent"
        );
    }
}
