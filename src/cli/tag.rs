//! Mood tags: a track's moods (`TrackMoods`) in, the file's own tags out, in each format's native
//! place, written by lofty:
//!
//! | format | dominant mood | Moodscope's numbers | `--comment` |
//! | --- | --- | --- | --- |
//! | MP3, WAV, AIFF (ID3v2) | `TMOO` | `TXXX:MOODSCOPE_*` | `COMM` |
//! | FLAC, Ogg Vorbis, Opus (Vorbis comments) | `MOOD` | `MOODSCOPE_*` | `COMMENT` |
//! | MP4/M4A (ilst) | `----:com.apple.iTunes:MOOD` | `----:com.apple.iTunes:MOODSCOPE_*` | `©cmt` |
//!
//! `MOODSCOPE_*` are `MOODSCOPE_MOOD` (the track's mood, or `none`), `MOODSCOPE_SHARE_<LABEL>`
//! (share of the track's windows that read that mood, 0–1), `MOODSCOPE_UNCERTAIN` and
//! `MOODSCOPE_NO_MUSIC` (the shares that read uncertain and no music), `MOODSCOPE_CONFIDENCE`,
//! `MOODSCOPE_VALENCE` and `MOODSCOPE_AROUSAL` (when the analysis gives them) and
//! `MOODSCOPE_MODEL` (the model version). Earlier `MOODSCOPE_*` values are replaced as a whole.
//! Other tags are kept.
//!
//! The file is never rewritten in place: the tags are written into a copy beside it, which then
//! replaces it (a rename), so a crash leaves either the old file or the new one, and lofty
//! rewrites only the tag (the audio bytes are copied as they are).

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use lofty::config::{ParseOptions, WriteOptions};
use lofty::file::{AudioFile, FileType};
use lofty::flac::FlacFile;
use lofty::id3::v2::{
    CommentFrame, ExtendedTextFrame, Frame, FrameId, Id3v2Tag, Id3v2Version, TextInformationFrame,
};
use lofty::iff::aiff::AiffFile;
use lofty::iff::wav::WavFile;
use lofty::mp4::{Atom, AtomData, AtomIdent, Ilst, Mp4File};
use lofty::mpeg::MpegFile;
use lofty::ogg::tag::VorbisComments;
use lofty::ogg::{OpusFile, VorbisFile};
use lofty::tag::TagExt;
use lofty::TextEncoding;

use clap::Args;
use std::io::Write;

use super::library::{self, Library};
use super::moods::TrackMoods;
use super::scan::{self, AnalysisArgs, Setup};
use super::{report_error, Outcome};
use crate::models::ModelDir;

/// Prefix of Moodscope's own keys.
pub const PREFIX: &str = "MOODSCOPE_";
/// Start of the mood text in a comment.
const COMMENT_MARK: &str = "Moodscope: ";
const ITUNES: &str = "com.apple.iTunes";

/// What to write, format-neutral: the dominant mood (`None`: leave `MOOD` as it is), Moodscope's
/// keys and values, and the comment text when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct TagPlan {
    pub mood: Option<String>,
    pub fields: Vec<(String, String)>,
    pub comment: Option<String>,
}

/// A label as a key: upper case, anything but letters and digits as `_`.
fn key_of(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl TagPlan {
    pub fn new(moods: &TrackMoods, model_version: &str, comment: bool) -> Self {
        let mut fields = vec![(
            format!("{PREFIX}MOOD"),
            moods.dominant.clone().unwrap_or_else(|| "none".into()),
        )];
        for (label, share) in &moods.shares {
            fields.push((
                format!("{PREFIX}SHARE_{}", key_of(label)),
                format!("{share:.3}"),
            ));
        }
        fields.push((
            format!("{PREFIX}UNCERTAIN"),
            format!("{:.3}", moods.uncertain_share),
        ));
        fields.push((
            format!("{PREFIX}NO_MUSIC"),
            format!("{:.3}", moods.no_music_share),
        ));
        fields.push((
            format!("{PREFIX}CONFIDENCE"),
            format!("{:.3}", moods.confidence),
        ));
        if let Some(v) = moods.valence {
            fields.push((format!("{PREFIX}VALENCE"), format!("{v:.3}")));
        }
        if let Some(a) = moods.arousal {
            fields.push((format!("{PREFIX}AROUSAL"), format!("{a:.3}")));
        }
        fields.push((format!("{PREFIX}MODEL"), model_version.to_string()));
        Self {
            mood: moods.dominant.clone(),
            fields,
            comment: comment.then(|| format!("{COMMENT_MARK}{}", moods.short_text())),
        }
    }
}

/// An existing comment with Moodscope's text put in (replacing an earlier one; the user's own
/// text is kept before it).
fn merged_comment(existing: Option<&str>, ours: &str) -> String {
    let own = existing.map_or("", |c| {
        let cut = c
            .find(&format!(" | {COMMENT_MARK}"))
            .or_else(|| c.starts_with(COMMENT_MARK).then_some(0))
            .unwrap_or(c.len());
        c[..cut].trim_end()
    });
    if own.is_empty() {
        ours.to_string()
    } else {
        format!("{own} | {ours}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("is read-only (its permissions forbid writing); not tagged")]
    ReadOnly,
    #[error("cannot be tagged: {0}")]
    Unsupported(String),
    #[error("cannot read its tags: {0}")]
    Read(String),
    #[error("cannot write its tags: {0}")]
    Write(String),
}

/// Which native tag a file gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Native {
    Id3v2,
    Vorbis,
    Mp4,
}

fn file_type(path: &Path) -> Result<FileType, TagError> {
    // Matroska first, by its magic: lofty has no Matroska support, and where it recognises no
    // header it searches the whole file for an MPEG frame sync, which a WebM file's bytes may
    // happen to hold ("failed to parse Mpeg file").
    let mut head = [0u8; 4];
    let matroska = File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && head == [0x1A, 0x45, 0xDF, 0xA3];
    if matroska {
        return Err(TagError::Unsupported(
            "WebM/Matroska files have no tag writer here (lofty does not write Matroska tags)"
                .into(),
        ));
    }
    let probe = lofty::probe::Probe::open(path)
        .and_then(|p| p.guess_file_type().map_err(Into::into))
        .map_err(|e| TagError::Read(e.to_string()))?;
    probe.file_type().ok_or_else(|| {
        TagError::Unsupported(
            "not a format whose tags Moodscope writes (MP3, WAV, AIFF, FLAC, Ogg Vorbis, Opus, MP4/M4A)"
                .into(),
        )
    })
}

fn native(file_type: FileType) -> Result<Native, TagError> {
    match file_type {
        FileType::Mpeg | FileType::Wav | FileType::Aiff => Ok(Native::Id3v2),
        FileType::Flac | FileType::Vorbis | FileType::Opus => Ok(Native::Vorbis),
        FileType::Mp4 => Ok(Native::Mp4),
        other => Err(TagError::Unsupported(format!(
            "Moodscope does not write {other:?} tags"
        ))),
    }
}

/// The plan as the file's own keys, one `KEY=value` per entry (for `--dry-run`).
pub fn describe(path: &Path, plan: &TagPlan) -> Result<Vec<String>, TagError> {
    let native = native(file_type(path)?)?;
    let (mood_key, prefix, comment_key) = match native {
        Native::Id3v2 => ("TMOO", "TXXX:", "COMM"),
        Native::Vorbis => ("MOOD", "", "COMMENT"),
        Native::Mp4 => (
            "----:com.apple.iTunes:MOOD",
            "----:com.apple.iTunes:",
            "©cmt",
        ),
    };
    let mut lines = Vec::new();
    if let Some(mood) = &plan.mood {
        lines.push(format!("{mood_key}={mood}"));
    }
    for (k, v) in &plan.fields {
        lines.push(format!("{prefix}{k}={v}"));
    }
    if let Some(comment) = &plan.comment {
        lines.push(format!(
            "{comment_key}={comment} (after the existing comment, if any)"
        ));
    }
    Ok(lines)
}

/// Writes `plan` into the file's tags. The file is replaced by a tagged copy of itself.
pub fn write(path: &Path, plan: &TagPlan) -> Result<(), TagError> {
    let meta = std::fs::metadata(path).map_err(|e| TagError::Read(e.to_string()))?;
    // Root may write anything: honour the file's permissions all the same.
    if meta.permissions().readonly() {
        return Err(TagError::ReadOnly);
    }
    let file_type = file_type(path)?;
    let native = native(file_type)?;
    let temp = temp_path(path);
    let result = (|| {
        std::fs::copy(path, &temp).map_err(|e| {
            TagError::Write(format!(
                "cannot write a copy beside it ({}): {e}",
                temp.display()
            ))
        })?;
        write_into(&temp, file_type, native, plan)?;
        File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| TagError::Write(e.to_string()))?;
        std::fs::set_permissions(&temp, meta.permissions())
            .map_err(|e| TagError::Write(e.to_string()))?;
        std::fs::rename(&temp, path).map_err(|e| TagError::Write(e.to_string()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A hidden file beside `path` (folder scans skip hidden files).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "track".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.moodscope-{}.tmp", std::process::id()))
}

fn write_into(
    path: &Path,
    file_type: FileType,
    native: Native,
    plan: &TagPlan,
) -> Result<(), TagError> {
    let read_err = |e: lofty::error::FileParseError| TagError::Read(e.to_string());
    let mut file = File::open(path).map_err(|e| TagError::Read(e.to_string()))?;
    let options = ParseOptions::new();
    let mut write_options = WriteOptions::default();
    match native {
        Native::Id3v2 => {
            let existing = match file_type {
                FileType::Mpeg => MpegFile::read_from(&mut file, options)
                    .map_err(read_err)?
                    .id3v2()
                    .cloned(),
                FileType::Wav => WavFile::read_from(&mut file, options)
                    .map_err(read_err)?
                    .id3v2()
                    .cloned(),
                FileType::Aiff => AiffFile::read_from(&mut file, options)
                    .map_err(read_err)?
                    .id3v2()
                    .cloned(),
                _ => unreachable!("native() maps only these to ID3v2"),
            };
            let mut tag = existing.unwrap_or_default();
            // Keep an ID3v2.3 tag at 2.3 (what older DJ software reads).
            if tag.original_version() == Id3v2Version::V3 {
                write_options = write_options.use_id3v23(true);
            }
            apply_id3v2(&mut tag, plan);
            drop(file);
            tag.save_to_path(path, write_options)
                .map_err(|e| TagError::Write(e.to_string()))
        }
        Native::Vorbis => {
            let existing = match file_type {
                FileType::Flac => FlacFile::read_from(&mut file, options)
                    .map_err(read_err)?
                    .vorbis_comments()
                    .cloned(),
                FileType::Vorbis => Some(
                    VorbisFile::read_from(&mut file, options)
                        .map_err(read_err)?
                        .vorbis_comments()
                        .clone(),
                ),
                FileType::Opus => Some(
                    OpusFile::read_from(&mut file, options)
                        .map_err(read_err)?
                        .vorbis_comments()
                        .clone(),
                ),
                _ => unreachable!("native() maps only these to Vorbis comments"),
            };
            let mut tag = existing.unwrap_or_default();
            apply_vorbis(&mut tag, plan);
            drop(file);
            tag.save_to_path(path, write_options)
                .map_err(|e| TagError::Write(e.to_string()))
        }
        Native::Mp4 => {
            let mut tag = Mp4File::read_from(&mut file, options)
                .map_err(read_err)?
                .ilst()
                .cloned()
                .unwrap_or_default();
            apply_mp4(&mut tag, plan);
            drop(file);
            tag.save_to_path(path, write_options)
                .map_err(|e| TagError::Write(e.to_string()))
        }
    }
}

fn apply_id3v2(tag: &mut Id3v2Tag, plan: &TagPlan) {
    tag.retain(|f| !matches!(f, Frame::UserText(t) if t.description.starts_with(PREFIX)));
    if let Some(mood) = &plan.mood {
        tag.insert(Frame::Text(TextInformationFrame::new(
            FrameId::Valid(Cow::Borrowed("TMOO")),
            TextEncoding::UTF8,
            mood.clone(),
        )));
    }
    for (k, v) in &plan.fields {
        tag.insert(Frame::UserText(ExtendedTextFrame::new(
            TextEncoding::UTF8,
            k.clone(),
            v.clone(),
        )));
    }
    if let Some(ours) = &plan.comment {
        let existing = tag
            .comments()
            .find(|c| c.description.is_empty())
            .map(|c| c.content.to_string());
        let text = merged_comment(existing.as_deref(), ours);
        tag.retain(|f| !matches!(f, Frame::Comment(c) if c.description.is_empty()));
        tag.insert(Frame::Comment(CommentFrame::new(
            TextEncoding::UTF8,
            *b"eng",
            String::new(),
            text,
        )));
    }
}

fn apply_vorbis(tag: &mut VorbisComments, plan: &TagPlan) {
    let ours: Vec<String> = tag
        .items()
        .map(|(k, _)| k.to_string())
        .filter(|k| k.to_ascii_uppercase().starts_with(PREFIX))
        .collect();
    for key in ours {
        let _ = tag.remove(&key).count();
    }
    if let Some(mood) = &plan.mood {
        tag.insert("MOOD".into(), mood.clone());
    }
    for (k, v) in &plan.fields {
        tag.insert(k.clone(), v.clone());
    }
    if let Some(ours) = &plan.comment {
        let existing = tag.get("COMMENT").map(str::to_string);
        tag.insert("COMMENT".into(), merged_comment(existing.as_deref(), ours));
    }
}

fn freeform(name: &str) -> AtomIdent<'static> {
    AtomIdent::Freeform {
        mean: Cow::Borrowed(ITUNES),
        name: Cow::Owned(name.to_string()),
    }
}

fn apply_mp4(tag: &mut Ilst, plan: &TagPlan) {
    tag.retain(|atom| {
        !matches!(atom.ident(), AtomIdent::Freeform { name, .. } if name.starts_with(PREFIX))
    });
    if let Some(mood) = &plan.mood {
        tag.replace_atom(Atom::new(freeform("MOOD"), AtomData::UTF8(mood.clone())));
    }
    for (k, v) in &plan.fields {
        tag.replace_atom(Atom::new(freeform(k), AtomData::UTF8(v.clone())));
    }
    if let Some(ours) = &plan.comment {
        let ident = AtomIdent::Fourcc(*b"\xa9cmt");
        let existing = tag.get(&ident).and_then(|a| {
            a.data().find_map(|d| match d {
                AtomData::UTF8(s) => Some(s.clone()),
                _ => None,
            })
        });
        tag.replace_atom(Atom::new(
            ident,
            AtomData::UTF8(merged_comment(existing.as_deref(), ours)),
        ));
    }
}

/// Tags one analysed file; with a library, the tagged file's new content hash is recorded as the
/// same analysis (its audio is unchanged), so the next scan finds it unchanged.
pub fn tag_file(
    path: &Path,
    moods: &TrackMoods,
    model_version: &str,
    comment: bool,
    library: Option<(&Library, &str)>,
) -> Result<(), TagError> {
    let plan = TagPlan::new(moods, model_version, comment);
    write(path, &plan)?;
    if let Some((library, old_hash)) = library {
        let kept = library::file_stamp(path)
            .and_then(|stamp| Ok((stamp, library::hash_file(path)?)))
            .map_err(|e| e.to_string())
            .and_then(|((size, mtime), hash)| {
                library
                    .alias(old_hash, &hash, model_version)
                    .and_then(|_| library.remember_path(path, size, mtime, &hash))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = kept {
            eprintln!(
                "moodscope: {}: tagged, but the library database did not record it ({e}); the next scan analyses it again",
                path.display()
            );
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Audio files, or folders: their audio files are tagged, recursively.
    #[arg(required = true, value_name = "FILE|FOLDER")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    analysis: AnalysisArgs,
    /// Also put a short mood text in the comment field (DJ software shows it); a comment of your
    /// own is kept, with Moodscope's text after it.
    #[arg(long)]
    comment: bool,
    /// Print what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `moodscope tag FILE|FOLDER...`: analyses (or takes from the library) each file's moods and
/// writes them into its tags; one line per file saying what was written, one line per file that
/// could not be tagged and why.
pub fn run(args: TagArgs, models: &ModelDir) -> Outcome {
    let setup = match Setup::new(&args.analysis, models) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    let files = scan::expand(&args.files);
    if files.is_empty() {
        eprintln!("moodscope: no audio files found");
        return Outcome::Failed;
    }
    let library = setup.db.as_ref().and_then(|path| {
        Library::open(path)
            .map_err(|e| eprintln!("moodscope: {e}"))
            .ok()
    });
    let mut failed = false;
    let mut stdout = std::io::stdout().lock();
    let counts = scan::run(&setup, &files, |path, result, bar| {
        let track = match result {
            Ok(track) => track,
            Err(e) => {
                bar.suspend(|| report_error(path, e));
                failed = true;
                return;
            }
        };
        if let Some(damage) = &track.damage {
            bar.suspend(|| {
                super::analyze::report_partial(path, damage, args.analysis.accept_partial)
            });
            if !args.analysis.accept_partial {
                // Tags from part of a track would describe the wrong music.
                failed = true;
                return;
            }
        }
        if let Some(problem) = &track.problem {
            bar.suspend(|| report_error(path, problem));
            failed = true;
        }
        let moods = TrackMoods::from_summary(&setup.summarise(&track.readings).1, &setup.labels);
        if args.dry_run {
            let plan = TagPlan::new(&moods, &setup.model_version, args.comment);
            match describe(path, &plan) {
                Ok(lines) => bar.suspend(|| {
                    let _ = writeln!(
                        stdout,
                        "{}: would write {}",
                        path.display(),
                        lines.join("; ")
                    );
                }),
                Err(e) => {
                    bar.suspend(|| report_error(path, e));
                    failed = true;
                }
            }
            return;
        }
        let written = tag_file(
            path,
            &moods,
            &setup.model_version,
            args.comment,
            library.as_ref().zip(track.hash.as_deref()),
        );
        match written {
            Ok(()) => bar.suspend(|| {
                let _ = writeln!(stdout, "{}: {}", path.display(), moods.short_text());
            }),
            Err(e) => {
                bar.suspend(|| report_error(path, e));
                failed = true;
            }
        }
    });
    if files.len() > 1 || counts.unchanged > 0 {
        eprintln!("{}", counts.line(files.len()));
    }
    if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_keys_and_comments_keep_the_users_text() {
        assert_eq!(key_of("Calm"), "CALM");
        assert_eq!(key_of("Tender/Sad"), "TENDER_SAD");
        let ours = "Moodscope: Calm 60%";
        assert_eq!(merged_comment(None, ours), ours);
        assert_eq!(merged_comment(Some("Moodscope: Sad 50%"), ours), ours);
        assert_eq!(
            merged_comment(Some("great intro"), ours),
            "great intro | Moodscope: Calm 60%"
        );
        assert_eq!(
            merged_comment(Some("great intro | Moodscope: Sad 50%"), ours),
            "great intro | Moodscope: Calm 60%"
        );
    }
}
