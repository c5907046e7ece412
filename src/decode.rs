//! Audio files in, mono f32 blocks at the file's own rate out.
//!
//! Containers and codecs: WAV, AIFF, FLAC, MP3, Ogg (Vorbis, Opus, FLAC), MP4/M4A (AAC, ALAC)
//! and WebM/Matroska (Opus, Vorbis, AAC, FLAC, PCM) are demuxed and decoded by symphonia, except
//! Opus, which libopus decodes (`decode::opus`, through the `opus` crate).
//!
//! Decoding streams packet by packet, so a long file never sits in memory whole; channels are
//! mixed down with `engine::downmix_interleaved`, the same arithmetic as the plugin's.
//!
//! What is wrong with a file is said in its terms: an empty file is empty, a file in a format
//! Moodscope does not decode is named by what it is ("Monkey's Audio", "an MP4 file with AC-3
//! audio"), and a file that ends early or has damaged stretches is decoded as far as it goes and
//! reported by `AudioReader::damage` (the seconds decoded and the decoder's words).

mod opus;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{CodecRegistry, CodecType, Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::engine;

/// What Moodscope decodes, for messages.
pub const SUPPORTED: &str = "WAV, AIFF, FLAC, MP3, Ogg Vorbis/Opus/FLAC, MP4/M4A with AAC or \
                             ALAC, WebM/Matroska with Opus/Vorbis/AAC/FLAC";

/// File name extensions of the audio files a folder scan picks up (lower case).
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "aif", "aiff", "aifc", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "m4b",
    "aac", "alac", "webm", "mka", "mkv",
];

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("is a folder, not a file")]
    Folder,
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("not a supported audio file: {0} (Moodscope decodes {SUPPORTED})")]
    UnknownFormat(String),
    #[error("is truncated: {0}")]
    Truncated(String),
    #[error("holds no audio track ({0})")]
    NoTrack(String),
    #[error("unsupported codec: {0} (Moodscope decodes {SUPPORTED})")]
    UnsupportedCodec(String),
    #[error("does not say its sample rate")]
    NoSampleRate,
    #[error("unreadable audio data: {0}")]
    Corrupt(String),
}

/// How much of a file could not be decoded: a file that ends early, or damaged stretches that
/// were skipped. Its audio up to there (and around the damage) is still decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Damage {
    /// Seconds of audio decoded.
    pub decoded_seconds: f64,
    /// Seconds the file says it holds, when it says.
    pub expected_seconds: Option<f64>,
    /// What the decoder said (the first error when there were several).
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decoded {:.1} s", self.decoded_seconds)?;
        if let Some(expected) = self.expected_seconds {
            write!(f, " of {expected:.1} s")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A file's container as its first bytes say, for messages and the end-of-stream check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Wav,
    Aiff,
    Flac,
    Mp3,
    Ogg,
    Mp4,
    Matroska,
    Other,
}

/// An open audio file, decoded on demand.
pub struct AudioReader {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    sample_rate: u32,
    channels: usize,
    /// Length in frames at `sample_rate`, when the container says it.
    frames: Option<u64>,
    container: Container,
    /// Whether the codec decodes to exactly the declared length (PCM, FLAC, ALAC).
    exact_length: bool,
    /// What the file is, in words ("Ogg Opus"), for messages.
    description: String,
    buffer: Option<(SignalSpec, SampleBuffer<f32>)>,
    /// Frames decoded so far.
    decoded_frames: u64,
    /// Packets that failed to decode and were skipped (damaged spots in an otherwise good file),
    /// with the first one's time and error.
    skipped_packets: u64,
    first_skip: Option<(f64, String)>,
    /// The error that stopped decoding before the end, if one did.
    stopped_by: Option<String>,
    finished: bool,
}

thread_local! {
    /// Set while this thread runs demuxer or decoder code (see `guarded`).
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs demuxer or decoder code, turning a panic in it (symphonia 0.5.5's Matroska reader panics
/// on some truncated files) into an error, without the panic message on stderr.
fn guarded<T>(f: impl FnOnce() -> Result<T, SymphoniaError>) -> Result<T, SymphoniaError> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODER.with(|d| d.get()) {
                previous(info);
            }
        }));
    });
    IN_DECODER.with(|d| d.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_DECODER.with(|d| d.set(false));
    result.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(SymphoniaError::IoError(std::io::Error::other(format!(
            "the decoder failed on this file ({what})"
        ))))
    })
}

/// symphonia's codecs plus the libopus decoder.
fn codecs() -> &'static CodecRegistry {
    static CODECS: OnceLock<CodecRegistry> = OnceLock::new();
    CODECS.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_all::<opus::OpusDecoder>();
        registry
    })
}

impl AudioReader {
    /// Opens and probes `path`; fails with a reason a user can act on.
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let mut file = File::open(path).map_err(DecodeError::Open)?;
        let meta = file.metadata().map_err(DecodeError::Open)?;
        if meta.is_dir() {
            return Err(DecodeError::Folder);
        }
        if meta.len() == 0 {
            return Err(DecodeError::Empty);
        }
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut file)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(DecodeError::Open)?;
        let sniffed = sniff(&head);
        let file = File::open(path).map_err(DecodeError::Open)?;
        let stream = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format_options = FormatOptions {
            // Encoder delay and padding (MP3, AAC, Opus pre-skip) are cut, so that a window's time
            // is the same in every format of the same music.
            enable_gapless: true,
            ..Default::default()
        };
        let probed = guarded(|| {
            symphonia::default::get_probe().format(
                &hint,
                stream,
                &format_options,
                &MetadataOptions::default(),
            )
        })
        .map_err(|e| probe_error(e, &sniffed, meta.len()))?;
        let format = probed.format;
        let Some(track) = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        else {
            return Err(match format.tracks().first() {
                Some(_) => DecodeError::UnsupportedCodec(format!(
                    "{} whose audio codec Moodscope does not know",
                    sniffed.what
                )),
                None => DecodeError::NoTrack(sniffed.what.clone()),
            });
        };
        let params = track.codec_params.clone();
        let decoder = codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(what) if codecs().get_codec(params.codec).is_some() => {
                    DecodeError::UnsupportedCodec(format!(
                        "{} in {}: {what}",
                        codec_name(params.codec),
                        sniffed.what
                    ))
                }
                SymphoniaError::Unsupported(_) => DecodeError::UnsupportedCodec(format!(
                    "{} in {}",
                    codec_name(params.codec),
                    sniffed.what
                )),
                other => DecodeError::Corrupt(other.to_string()),
            })?;
        let sample_rate = params
            .sample_rate
            .filter(|&r| r > 0)
            .ok_or(DecodeError::NoSampleRate)?;
        // The declared length, in frames at the sample rate (Matroska counts in its own time base).
        let frames = params.n_frames.map(|n| match params.time_base {
            Some(tb) if !(tb.numer == 1 && tb.denom == sample_rate) => {
                let time = tb.calc_time(n);
                ((time.seconds as f64 + time.frac) * sample_rate as f64).round() as u64
            }
            _ => n,
        });
        // A WAV streamed by a writer that did not know its length says "4 GiB": no length.
        let frames = sniffed
            .declared_frames
            .or(frames)
            .filter(|_| !sniffed.unknown_length);
        let description = match codecs().get_codec(params.codec) {
            Some(_) if sniffed.container == Container::Other => codec_name(params.codec),
            _ => sniffed.what.clone(),
        };
        Ok(Self {
            track_id: track.id,
            format,
            decoder,
            sample_rate,
            channels: params.channels.map_or(0, |c| c.count()),
            frames,
            container: sniffed.container,
            exact_length: {
                use symphonia::core::codecs::{CODEC_TYPE_ALAC, CODEC_TYPE_FLAC};
                let c = params.codec;
                c == CODEC_TYPE_FLAC || c == CODEC_TYPE_ALAC || codec_name(c).starts_with("PCM")
            },
            description,
            buffer: None,
            decoded_frames: 0,
            skipped_packets: 0,
            first_skip: None,
            stopped_by: None,
            finished: false,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channel count, when the container says it up front.
    pub fn channels(&self) -> Option<usize> {
        (self.channels > 0).then_some(self.channels)
    }

    /// Length in frames, when the container says it up front.
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }

    /// What the file is, in words: "Ogg Opus", "MP4 (M4A)", ...
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Damaged packets skipped so far.
    pub fn skipped_packets(&self) -> u64 {
        self.skipped_packets
    }

    /// Seconds decoded so far.
    pub fn decoded_seconds(&self) -> f64 {
        self.decoded_frames as f64 / self.sample_rate as f64
    }

    /// Decodes the next packet and appends its mono mixdown to `mono`. Returns `false` at the
    /// end of the stream. An error means decoding cannot go on; what was decoded stands.
    pub fn read_mono(&mut self, mono: &mut Vec<f32>) -> Result<bool, DecodeError> {
        if self.finished {
            return Ok(false);
        }
        loop {
            let packet = match guarded(|| self.format.next_packet()) {
                Ok(packet) => packet,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    self.finished = true;
                    return Ok(false);
                }
                Err(SymphoniaError::ResetRequired) => {
                    self.finished = true;
                    return Ok(false);
                }
                Err(e) => {
                    self.finished = true;
                    self.stopped_by = Some(e.to_string());
                    return Err(DecodeError::Corrupt(e.to_string()));
                }
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoder = &mut self.decoder;
            // A damaged packet: skip it and carry on, as players do, but count it. (symphonia's
            // decoders say "damaged" as a decode error, or as an I/O error of their bit reader.)
            let decoded = match guarded(|| decoder.decode(&packet).map(|_| ())) {
                Ok(()) => self.decoder.last_decoded(),
                Err(SymphoniaError::ResetRequired) => {
                    self.finished = true;
                    return Ok(false);
                }
                Err(e) => {
                    self.skipped_packets += 1;
                    if self.first_skip.is_none() {
                        let at = self.decoded_frames as f64 / self.sample_rate as f64;
                        self.first_skip = Some((at, e.to_string()));
                    }
                    continue;
                }
            };
            let spec = *decoded.spec();
            let needed = decoded.capacity() as u64;
            let buffer = match &mut self.buffer {
                Some((s, b))
                    if *s == spec
                        && b.capacity() as u64 >= needed * spec.channels.count() as u64 =>
                {
                    b
                }
                slot => &mut slot.insert((spec, SampleBuffer::new(needed, spec))).1,
            };
            buffer.copy_interleaved_ref(decoded);
            self.channels = spec.channels.count();
            let before = mono.len();
            engine::downmix_interleaved(buffer.samples(), self.channels, mono);
            self.decoded_frames += (mono.len() - before) as u64;
            // A lossless stream ends at its declared length: symphonia 0.5.5's AIFF reader goes
            // on into the chunks after the sound data (an ID3 tag), which are not audio.
            if let Some(n) = self.frames.filter(|_| self.exact_length) {
                if self.decoded_frames > n {
                    let excess = (self.decoded_frames - n) as usize;
                    mono.truncate(mono.len() - excess.min(mono.len() - before));
                    self.decoded_frames = n;
                    self.finished = true;
                }
            }
            return Ok(true);
        }
    }

    /// After the end of the stream (`read_mono` returned `false` or an error): what kept the
    /// file from decoding whole, or `None` when it decoded whole. A file ends early when it
    /// stops before the length its header declares (WAV, AIFF, FLAC, MP4, MP3 with a Xing/Info
    /// header, Matroska), when an Ogg stream has no end-of-stream page, or when its last packet
    /// is cut short.
    pub fn damage(&self) -> Option<Damage> {
        let decoded_seconds = self.decoded_seconds();
        let expected_seconds = self.frames.map(|n| n as f64 / self.sample_rate as f64);
        let mut reasons = Vec::new();
        if let Some(e) = &self.stopped_by {
            reasons.push(format!("decoding stopped: {e}"));
        }
        if let Some(expected) = expected_seconds {
            // Lossless codecs decode to exactly their declared length; lossy ones may differ by
            // frame-size rounding and encoder padding, well under 0.2 s.
            let tolerance = if self.exact_length {
                1e-3
            } else {
                (expected * 1e-3).max(0.2)
            };
            if decoded_seconds + tolerance < expected {
                reasons.push(format!(
                    "the file is truncated or damaged: it ends before the length its header \
                     declares ({})",
                    self.description
                ));
            }
        } else if self.container == Container::Ogg {
            // symphonia finds the length of an Ogg stream on its end-of-stream page.
            reasons.push(format!(
                "the file is truncated: its Ogg stream has no end-of-stream page ({})",
                self.description
            ));
        }
        if self.skipped_packets > 0 {
            let (at, first) = self.first_skip.clone().unwrap_or_default();
            reasons.push(format!(
                "{} damaged packet{} skipped (the first at {at:.1} s: {first})",
                self.skipped_packets,
                if self.skipped_packets == 1 { "" } else { "s" }
            ));
        }
        if reasons.is_empty() {
            return None;
        }
        Some(Damage {
            decoded_seconds,
            expected_seconds,
            reason: reasons.join("; "),
        })
    }
}

/// Decodes a whole file to mono; returns the samples and their rate. A file that ends early
/// gives the audio it holds (`AudioReader::damage` says what is missing).
pub fn read_mono_file(path: &Path) -> Result<(Vec<f32>, u32), DecodeError> {
    let mut reader = AudioReader::open(path)?;
    let mut mono = Vec::with_capacity(reader.frames().unwrap_or(0).min(1 << 28) as usize);
    while reader.read_mono(&mut mono)? {}
    Ok((mono, reader.sample_rate()))
}

/// Bytes read to tell what a file is.
const SNIFF_BYTES: usize = 4096;

/// What a file's first bytes say it is.
#[derive(Clone, Debug)]
struct Sniffed {
    container: Container,
    /// In words, for messages: "an Ogg Opus file", "a PDF document".
    what: String,
    /// Whether the container's length fields say "unknown" (a WAV streamed to a pipe).
    unknown_length: bool,
    /// Whether Moodscope has a decoder for what this is (a truncated header, then, not an
    /// unsupported format).
    decodable: bool,
    /// The length in frames the header declares, where symphonia 0.5.5 misreads it (AIFF: it
    /// counts the sound chunk's 8-byte offset/block-size header as 2 frames of audio).
    declared_frames: Option<u64>,
}

fn sniff(head: &[u8]) -> Sniffed {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let known = |container, what: &str| Sniffed {
        container,
        what: what.to_string(),
        unknown_length: false,
        decodable: true,
        declared_frames: None,
    };
    let foreign = |what: &str| Sniffed {
        container: Container::Other,
        what: what.to_string(),
        unknown_length: false,
        decodable: false,
        declared_frames: None,
    };
    if at(0, b"RIFF") && at(8, b"WAVE") {
        let size = head
            .get(4..8)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        return Sniffed {
            unknown_length: matches!(size, Some(0 | u32::MAX)),
            ..known(Container::Wav, "a WAV file")
        };
    }
    if at(0, b"RF64") || at(0, b"BW64") {
        return foreign("an RF64/BW64 (large WAV) file");
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        let mut s = known(Container::Aiff, "an AIFF file");
        s.declared_frames = aiff_frames(head);
        if at(8, b"AIFC") {
            // AIFF-C names its compression in the COMM chunk; symphonia reads NONE/sowt/fl32/...
            s.what = "an AIFF-C file".into();
        }
        return s;
    }
    if at(0, b"fLaC") {
        return known(Container::Flac, "a FLAC file");
    }
    if at(0, b"OggS") {
        let codec = if find(head, b"OpusHead").is_some() {
            "Opus"
        } else if find(head, b"\x01vorbis").is_some() {
            "Vorbis"
        } else if find(head, b"\x7fFLAC").is_some() {
            "FLAC"
        } else if find(head, b"Speex   ").is_some() {
            return Sniffed {
                container: Container::Ogg,
                ..foreign("an Ogg Speex file")
            };
        } else if find(head, b"\x80theora").is_some() {
            return Sniffed {
                container: Container::Ogg,
                ..foreign("an Ogg Theora (video) file")
            };
        } else {
            "audio"
        };
        return known(Container::Ogg, &format!("an Ogg {codec} file"));
    }
    if at(4, b"ftyp") {
        let brand = head
            .get(8..12)
            .map(|b| String::from_utf8_lossy(b).trim().to_string())
            .unwrap_or_default();
        let what = match brand.as_str() {
            "qt" => "a QuickTime (.mov) file".to_string(),
            "M4A" | "M4B" | "M4P" => format!("an MP4 audio file ({brand})"),
            _ => format!("an MP4 file (brand {brand})"),
        };
        return known(Container::Mp4, &what);
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        let what = if find(head, b"webm").is_some() {
            "a WebM file"
        } else {
            "a Matroska file"
        };
        return known(Container::Matroska, what);
    }
    if at(0, b"ID3") {
        // ID3v2 precedes MP3 (and sometimes AAC ADTS or FLAC) audio.
        return known(Container::Mp3, "an MP3 file");
    }
    if head.len() >= 2 && head[0] == 0xFF {
        if head[1] & 0xF6 == 0xF0 {
            return foreign(
                "raw AAC (ADTS) audio; put it in an M4A with `ffmpeg -i IN -c copy OUT.m4a`",
            );
        }
        if head[1] & 0xE0 == 0xE0 {
            return known(Container::Mp3, "an MPEG audio (MP3) file");
        }
    }
    let others: &[(usize, &[u8], &str)] = &[
        (0, b"caff", "a Core Audio (CAF) file"),
        (0, b"wvpk", "a WavPack file"),
        (0, b"MAC ", "a Monkey's Audio (APE) file"),
        (0, b"TTA1", "a TTA file"),
        (0, b"MPCK", "a Musepack file"),
        (0, b"MP+", "a Musepack file"),
        (0, b".snd", "a Sun/NeXT (.au) file"),
        (0, b"#!AMR", "an AMR file"),
        (0, b"MThd", "a MIDI file (notes, not audio)"),
        (0, b"DSD ", "a DSD (DSF) file"),
        (0, b"FRM8", "a DSD (DFF) file"),
        (
            0,
            &[0x30, 0x26, 0xB2, 0x75],
            "a Windows Media (WMA/ASF) file",
        ),
        (0, b".RMF", "a RealMedia file"),
        (0, b"%PDF", "a PDF document"),
        (0, &[0x89, b'P', b'N', b'G'], "a PNG image"),
        (0, &[0xFF, 0xD8, 0xFF], "a JPEG image"),
        (0, b"GIF8", "a GIF image"),
        (0, b"PK\x03\x04", "a ZIP archive"),
        (0, &[0x1F, 0x8B], "a gzip archive"),
        (0, b"7z\xBC\xAF", "a 7-Zip archive"),
        (0, b"Rar!", "a RAR archive"),
        (0, &[0x7F, b'E', b'L', b'F'], "a program (ELF)"),
        (0, b"SQLite format 3", "an SQLite database"),
    ];
    for (offset, magic, what) in others {
        if at(*offset, magic) {
            return foreign(what);
        }
    }
    if at(0, b"RIFF") {
        let kind = head
            .get(8..12)
            .map(|b| String::from_utf8_lossy(b).trim().to_string())
            .unwrap_or_default();
        return foreign(&format!("a RIFF file of type {kind:?}, not WAVE"));
    }
    if at(0, b"FORM") {
        return foreign("an IFF file that is not AIFF");
    }
    let text = head
        .iter()
        .take(512)
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace() || b >= 0x80)
        && std::str::from_utf8(&head[..head.len().min(512)]).is_ok();
    if text {
        return foreign("it holds text");
    }
    foreign("no audio format Moodscope knows was found")
}

/// `numSampleFrames` of an AIFF's COMM chunk, when it is in `head`.
fn aiff_frames(head: &[u8]) -> Option<u64> {
    let mut at = 12;
    while at + 8 <= head.len() {
        let size = u32::from_be_bytes(head[at + 4..at + 8].try_into().ok()?) as usize;
        if &head[at..at + 4] == b"COMM" {
            let frames = head.get(at + 10..at + 14)?;
            return Some(u32::from_be_bytes(frames.try_into().ok()?) as u64);
        }
        at = at.checked_add(8 + size + size % 2)?;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A probe failure in the file's terms.
fn probe_error(error: SymphoniaError, sniffed: &Sniffed, len: u64) -> DecodeError {
    let eof = matches!(&error, SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof);
    match (sniffed.decodable, eof) {
        (true, true) => DecodeError::Truncated(format!(
            "{} whose headers are missing or cut short ({len} bytes)",
            sniffed.what
        )),
        (true, false) => DecodeError::Corrupt(format!("{}: {error}", sniffed.what)),
        (false, _) => DecodeError::UnknownFormat(sniffed.what.clone()),
    }
}

/// A codec's name, including codecs Moodscope has no decoder for.
fn codec_name(codec: CodecType) -> String {
    use symphonia::core::codecs::*;
    if let Some(d) = codecs().get_codec(codec) {
        return d.long_name.to_string();
    }
    let known: &[(CodecType, &str)] = &[
        (CODEC_TYPE_OPUS, "Opus"),
        (CODEC_TYPE_SPEEX, "Speex"),
        (CODEC_TYPE_MUSEPACK, "Musepack"),
        (CODEC_TYPE_ATRAC1, "ATRAC1"),
        (CODEC_TYPE_ATRAC3, "ATRAC3"),
        (CODEC_TYPE_ATRAC3PLUS, "ATRAC3plus"),
        (CODEC_TYPE_ATRAC9, "ATRAC9"),
        (CODEC_TYPE_EAC3, "E-AC-3"),
        (CODEC_TYPE_AC4, "AC-4"),
        (CODEC_TYPE_DCA, "DTS"),
        (CODEC_TYPE_WMA, "Windows Media Audio"),
        (CODEC_TYPE_WAVPACK, "WavPack"),
        (CODEC_TYPE_MONKEYS_AUDIO, "Monkey's Audio"),
        (CODEC_TYPE_TTA, "TTA"),
        (CODEC_TYPE_MP1, "MPEG-1 Layer I"),
        (CODEC_TYPE_MP2, "MPEG-1 Layer II"),
    ];
    known
        .iter()
        .find(|(c, _)| *c == codec)
        .map_or_else(|| format!("codec {codec}"), |(_, n)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_names_what_it_finds() {
        assert_eq!(sniff(b"fLaC\0\0\0\x22").container, Container::Flac);
        let m4a = sniff(b"\0\0\0\x20ftypM4A \0\0\x02\0");
        assert_eq!(m4a.container, Container::Mp4);
        assert!(m4a.what.contains("M4A"), "{m4a:?}");
        assert_eq!(sniff(b"wvpk\0\0\0\0").what, "a WavPack file");
        assert_eq!(sniff(b"these are words\n").what, "it holds text");
        let streamed = sniff(b"RIFF\xff\xff\xff\xffWAVEfmt ");
        assert!(streamed.unknown_length && streamed.decodable);
        let ogg = sniff(b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead");
        assert_eq!(ogg.what, "an Ogg Opus file");
    }
}
