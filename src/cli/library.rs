//! The library database: analyses in, kept; kept analyses out, without re-analysing.
//!
//! SQLite (rusqlite, compiled in), one row per (file content, model version): the content is the
//! sha256 of the file's bytes, so a renamed or copied file is found again and a changed one is
//! analysed again; the model version names the backbone, head and model files, so another
//! analysis never serves stale moods. Each row holds the window timeline (so `analyze` prints the
//! same output from the database as from the audio) and the track's moods (`TrackMoods`) in
//! columns that `library export` and `library query` read. Each file's row is committed when it
//! is done (WAL journal), so a stopped scan resumes where it stopped and a crash loses nothing
//! already written. A second table remembers each path's size, modification time and hash, so an
//! unchanged file is not read again to be hashed.
//!
//! `moodscope library export|query`: the database in, one summary row per track out (CSV, JSON,
//! or paths).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::moods::TrackMoods;
use super::Outcome;
use crate::engine::WindowReading;

/// `$XDG_DATA_HOME/moodscope/library.sqlite`, or `~/.local/share/moodscope/library.sqlite`.
pub fn default_path() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("moodscope").join("library.sqlite")
}

/// The sha256 of a file's bytes, in hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and modification time (ns since the epoch) of a file, the key of the hash cache.
pub fn file_stamp(path: &Path) -> std::io::Result<(u64, i64)> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Ok((meta.len(), mtime))
}

/// One file's analysis as the database keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub sample_rate: u32,
    pub labels: Vec<String>,
    pub readings: Vec<WindowReading>,
    /// What kept the file from decoding whole (it was analysed as far as it decoded).
    pub damage: Option<String>,
    /// Anything else wrong that was reported (NaN samples analysed as silence, ...).
    pub problem: Option<String>,
}

/// An open library database.
pub struct Library {
    conn: Connection,
}

/// Raised when the `analyses` table changes.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS analyses (
    content_hash   TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    path           TEXT NOT NULL,
    seconds        REAL NOT NULL,
    sample_rate    INTEGER NOT NULL,
    labels         TEXT NOT NULL,
    dominant       TEXT,
    shares         TEXT NOT NULL,
    uncertain_share REAL NOT NULL,
    no_music_share REAL NOT NULL,
    valence        REAL,
    arousal        REAL,
    confidence     REAL NOT NULL,
    damage         TEXT,
    problem        TEXT,
    readings       BLOB NOT NULL,
    analysed_at    INTEGER NOT NULL,
    PRIMARY KEY (content_hash, model_version)
);
CREATE TABLE IF NOT EXISTS paths (
    path         TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    seen_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS paths_by_hash ON paths (content_hash);
";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Library {
    /// Opens (creating it and its folder when needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let fail = |e: rusqlite::Error| format!("library database {}: {e}", path.display());
        let conn = Connection::open(path).map_err(fail)?;
        // Several scan workers write to one database: wait for each other instead of failing.
        conn.busy_timeout(Duration::from_secs(60)).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        // A database written by an older Moodscope keeps its paths; its analyses, in an older
        // layout, are dropped (they are redone at the next scan).
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(fail)?;
        if version != SCHEMA_VERSION {
            conn.execute_batch("DROP TABLE IF EXISTS analyses")
                .map_err(fail)?;
        }
        conn.execute_batch(SCHEMA).map_err(fail)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(fail)?;
        Ok(Self { conn })
    }

    /// The hash remembered for `path` when its size and modification time are unchanged.
    pub fn cached_hash(&self, path: &Path, size: u64, mtime_ns: i64) -> Option<String> {
        self.conn
            .query_row(
                "SELECT content_hash FROM paths WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3",
                params![path_text(path), size as i64, mtime_ns],
                |row| row.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }

    /// Remembers what `path` holds now.
    pub fn remember_path(
        &self,
        path: &Path,
        size: u64,
        mtime_ns: i64,
        hash: &str,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO paths (path, size, mtime_ns, content_hash, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (path) DO UPDATE SET size = ?2, mtime_ns = ?3, content_hash = ?4, seen_at = ?5",
            params![path_text(path), size as i64, mtime_ns, hash, now()],
        )?;
        Ok(())
    }

    /// The stored analysis of this content by this model version.
    pub fn lookup(&self, hash: &str, model_version: &str) -> Result<Option<Stored>, String> {
        let row = self
            .conn
            .query_row(
                "SELECT sample_rate, labels, readings, damage, problem FROM analyses
                 WHERE content_hash = ?1 AND model_version = ?2",
                params![hash, model_version],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| e.to_string())?;
        let Some((sample_rate, labels, readings, damage, problem)) = row else {
            return Ok(None);
        };
        let labels: Vec<String> = serde_json::from_str(&labels).map_err(|e| e.to_string())?;
        // A row that cannot be read back (written by another version) is analysed again.
        let Some(readings) = decode_readings(&readings, labels.len()) else {
            return Ok(None);
        };
        Ok(Some(Stored {
            sample_rate: sample_rate as u32,
            labels,
            readings,
            damage,
            problem,
        }))
    }

    /// Keeps one file's analysis (committed at once).
    pub fn store(
        &self,
        hash: &str,
        model_version: &str,
        path: &Path,
        stored: &Stored,
        moods: &TrackMoods,
    ) -> rusqlite::Result<()> {
        let shares: Vec<f32> = moods.shares.iter().map(|(_, s)| *s).collect();
        self.conn.execute(
            "INSERT OR REPLACE INTO analyses (content_hash, model_version, path, seconds,
                sample_rate, labels, dominant, shares, uncertain_share, no_music_share, valence,
                arousal, confidence, damage, problem, readings, analysed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                hash,
                model_version,
                path_text(path),
                moods.seconds,
                stored.sample_rate,
                serde_json::to_string(&stored.labels).unwrap_or_default(),
                moods.dominant,
                serde_json::to_string(&shares).unwrap_or_default(),
                moods.uncertain_share,
                moods.no_music_share,
                moods.valence,
                moods.arousal,
                moods.confidence,
                stored.damage,
                stored.problem,
                encode_readings(&stored.readings),
                now(),
            ],
        )?;
        Ok(())
    }

    /// The same audio now has another content hash (its tags were rewritten): keep its analysis
    /// under the new hash too, so that the next scan finds it unchanged.
    pub fn alias(
        &self,
        old_hash: &str,
        new_hash: &str,
        model_version: &str,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO analyses (content_hash, model_version, path, seconds,
                sample_rate, labels, dominant, shares, uncertain_share, no_music_share, valence,
                arousal, confidence, damage, problem, readings, analysed_at)
             SELECT ?2, model_version, path, seconds, sample_rate, labels, dominant, shares,
                uncertain_share, no_music_share, valence, arousal, confidence, damage, problem,
                readings, analysed_at
             FROM analyses WHERE content_hash = ?1 AND model_version = ?3",
            params![old_hash, new_hash, model_version],
        )?;
        Ok(())
    }

    /// One summary row per known path (its latest analysis), in path order.
    pub fn tracks(&self) -> rusqlite::Result<Vec<TrackRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT p.path, a.model_version, a.labels, a.dominant, a.shares, a.no_music_share,
                    a.valence, a.arousal, a.confidence, a.seconds, a.damage, a.uncertain_share
             FROM paths p JOIN analyses a ON a.content_hash = p.content_hash
             WHERE a.analysed_at = (SELECT MAX(b.analysed_at) FROM analyses b
                                    WHERE b.content_hash = p.content_hash)
             GROUP BY p.path
             ORDER BY p.path",
        )?;
        let rows = stmt.query_map([], |row| {
            let labels: String = row.get(2)?;
            let shares: String = row.get(4)?;
            let labels: Vec<String> = serde_json::from_str(&labels).unwrap_or_default();
            let shares: Vec<f32> = serde_json::from_str(&shares).unwrap_or_default();
            Ok(TrackRow {
                path: row.get(0)?,
                model_version: row.get(1)?,
                moods: TrackMoods {
                    shares: labels.iter().cloned().zip(shares).collect(),
                    labels,
                    dominant: row.get(3)?,
                    uncertain_share: row.get(11)?,
                    no_music_share: row.get(5)?,
                    valence: row.get(6)?,
                    arousal: row.get(7)?,
                    confidence: row.get(8)?,
                    seconds: row.get(9)?,
                },
                partial: row.get::<_, Option<String>>(10)?.is_some(),
            })
        })?;
        rows.collect()
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Version of the timeline encoding in the `readings` column.
const READINGS_FORMAT: u8 = 2;

/// A timeline as bytes: a format byte, the window count, then per window its index, start and
/// end (f64) and its probabilities, presence, valence and arousal (f32, NaN for a readout without
/// valence and arousal), little-endian. Exact: a timeline read back prints the same CSV as the one
/// analysed. (When `WindowReading` gains fields, add them here and in `decode_readings`, and raise
/// `READINGS_FORMAT`: older rows are then analysed again.)
pub fn encode_readings(readings: &[WindowReading]) -> Vec<u8> {
    let labels = readings.first().map_or(0, |r| r.probabilities.len());
    let mut out = Vec::with_capacity(5 + readings.len() * (24 + 4 * (labels + 3)));
    out.push(READINGS_FORMAT);
    out.extend((readings.len() as u32).to_le_bytes());
    for r in readings {
        out.extend(r.index.to_le_bytes());
        out.extend(r.start_seconds.to_le_bytes());
        out.extend(r.end_seconds.to_le_bytes());
        for p in &r.probabilities {
            out.extend(p.to_le_bytes());
        }
        out.extend(r.presence.to_le_bytes());
        out.extend(r.valence.unwrap_or(f32::NAN).to_le_bytes());
        out.extend(r.arousal.unwrap_or(f32::NAN).to_le_bytes());
    }
    out
}

pub fn decode_readings(bytes: &[u8], labels: usize) -> Option<Vec<WindowReading>> {
    let (&format, rest) = bytes.split_first()?;
    if format != READINGS_FORMAT {
        return None;
    }
    let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let window = 24 + 4 * (labels + 3);
    let body = rest.get(4..)?;
    if body.len() != count * window {
        return None;
    }
    let f32_at = |b: &[u8], i: usize| f32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let f64_at = |b: &[u8], i: usize| f64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    Some(
        body.chunks_exact(window)
            .map(|w| WindowReading {
                index: u64::from_le_bytes(w[..8].try_into().unwrap()),
                start_seconds: f64_at(w, 8),
                end_seconds: f64_at(w, 16),
                probabilities: (0..labels).map(|i| f32_at(w, 24 + 4 * i)).collect(),
                presence: f32_at(w, 24 + 4 * labels),
                valence: Some(f32_at(w, 28 + 4 * labels)).filter(|v| !v.is_nan()),
                arousal: Some(f32_at(w, 32 + 4 * labels)).filter(|v| !v.is_nan()),
            })
            .collect(),
    )
}

/// One track as `library export` and `analyze --summary` write it.
#[derive(Clone, Debug)]
pub struct TrackRow {
    pub path: String,
    pub model_version: String,
    pub moods: TrackMoods,
    /// Analysed as far as it decoded.
    pub partial: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Csv,
    Json,
}

/// Writes tracks as a table: CSV (`path,mood,<share per label…>,uncertain,no_music,valence,arousal,
/// confidence,seconds,partial,model_version`, one share column per label met, in the order met)
/// or a JSON array of objects.
pub fn write_tracks(
    out: &mut dyn Write,
    format: TableFormat,
    rows: &[TrackRow],
) -> std::io::Result<()> {
    let mut labels: Vec<&str> = Vec::new();
    for row in rows {
        for label in &row.moods.labels {
            if !labels.contains(&label.as_str()) {
                labels.push(label);
            }
        }
    }
    let share = |row: &TrackRow, label: &str| {
        row.moods
            .shares
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| *s)
    };
    let opt = |v: Option<f32>| v.map_or(String::new(), |v| format!("{v:.4}"));
    match format {
        TableFormat::Csv => {
            let share_columns: Vec<String> = labels
                .iter()
                .map(|l| csv_field(&format!("share_{}", l.to_lowercase())))
                .collect();
            let mut header = vec!["path".to_string(), "mood".to_string()];
            header.extend(share_columns);
            header.extend(
                [
                    "uncertain",
                    "no_music",
                    "valence",
                    "arousal",
                    "confidence",
                    "seconds",
                    "partial",
                    "model_version",
                ]
                .map(String::from),
            );
            writeln!(out, "{}", header.join(","))?;
            for row in rows {
                let mut fields = vec![
                    csv_field(&row.path),
                    csv_field(row.moods.dominant.as_deref().unwrap_or("none")),
                ];
                fields.extend(labels.iter().map(|l| opt(share(row, l))));
                fields.extend([
                    format!("{:.4}", row.moods.uncertain_share),
                    format!("{:.4}", row.moods.no_music_share),
                    opt(row.moods.valence),
                    opt(row.moods.arousal),
                    format!("{:.4}", row.moods.confidence),
                    format!("{:.2}", row.moods.seconds),
                    row.partial.to_string(),
                    csv_field(&row.model_version),
                ]);
                writeln!(out, "{}", fields.join(","))?;
            }
        }
        TableFormat::Json => {
            let docs: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    let shares: serde_json::Map<String, serde_json::Value> = row
                        .moods
                        .shares
                        .iter()
                        .map(|(l, s)| (l.clone(), serde_json::json!(s)))
                        .collect();
                    serde_json::json!({
                        "path": row.path,
                        "mood": row.moods.dominant,
                        "shares": shares,
                        "uncertain": row.moods.uncertain_share,
                        "no_music": row.moods.no_music_share,
                        "valence": row.moods.valence,
                        "arousal": row.moods.arousal,
                        "confidence": row.moods.confidence,
                        "seconds": row.moods.seconds,
                        "partial": row.partial,
                        "model_version": row.model_version,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &docs)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(Debug, Subcommand)]
pub enum LibraryCommand {
    /// Print one summary row per track in the library: path, dominant mood, share of time per
    /// mood, mean valence/arousal when the analysis gives them, seconds, model version.
    Export(ExportArgs),
    /// List the tracks whose stored moods match, without analysing anything again.
    Query(QueryArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// The library database (default: $XDG_DATA_HOME/moodscope/library.sqlite or
    /// ~/.local/share/moodscope/library.sqlite).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
    format: TableFormat,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Tracks whose dominant mood is this label (any case).
    #[arg(long, value_name = "LABEL")]
    mood: Option<String>,
    /// Tracks whose mean valence is above this (−1..1).
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    valence_above: Option<f32>,
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    valence_below: Option<f32>,
    /// Tracks whose mean arousal is above this (−1..1).
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    arousal_above: Option<f32>,
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    arousal_below: Option<f32>,
    /// Print the matching rows as a table instead of their paths, one a line.
    #[arg(long, value_enum)]
    format: Option<TableFormat>,
}

fn open_existing(db: &DbArgs) -> Result<Library, String> {
    let path = db.db.clone().unwrap_or_else(default_path);
    if !path.is_file() {
        return Err(format!(
            "no library database at {}: `moodscope analyze FOLDER` makes one",
            path.display()
        ));
    }
    Library::open(&path)
}

pub fn run(command: LibraryCommand) -> Outcome {
    let result = match command {
        LibraryCommand::Export(args) => export(&args),
        LibraryCommand::Query(args) => query(&args),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("moodscope: {e}");
            Outcome::Failed
        }
    }
}

fn export(args: &ExportArgs) -> Result<Outcome, String> {
    let library = open_existing(&args.db)?;
    let rows = library.tracks().map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write_tracks(&mut out, args.format, &rows)
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write the output: {e}"))?;
    Ok(Outcome::Done)
}

fn query(args: &QueryArgs) -> Result<Outcome, String> {
    let library = open_existing(&args.db)?;
    let rows = library.tracks().map_err(|e| e.to_string())?;
    let wants_valence = args.valence_above.is_some() || args.valence_below.is_some();
    let wants_arousal = args.arousal_above.is_some() || args.arousal_below.is_some();
    if wants_valence && rows.iter().all(|r| r.moods.valence.is_none()) {
        eprintln!("moodscope: no track in the library has a valence (the analysis used does not give one)");
    }
    if wants_arousal && rows.iter().all(|r| r.moods.arousal.is_none()) {
        eprintln!("moodscope: no track in the library has an arousal (the analysis used does not give one)");
    }
    let above = |v: Option<f32>, bound: Option<f32>| bound.is_none_or(|b| v.is_some_and(|v| v > b));
    let below = |v: Option<f32>, bound: Option<f32>| bound.is_none_or(|b| v.is_some_and(|v| v < b));
    let matching: Vec<TrackRow> = rows
        .into_iter()
        .filter(|r| {
            args.mood.as_ref().is_none_or(|m| {
                r.moods
                    .dominant
                    .as_ref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(m))
            }) && above(r.moods.valence, args.valence_above)
                && below(r.moods.valence, args.valence_below)
                && above(r.moods.arousal, args.arousal_above)
                && below(r.moods.arousal, args.arousal_below)
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        Some(format) => write_tracks(&mut out, format, &matching),
        None => matching
            .iter()
            .try_for_each(|r| writeln!(out, "{}", r.path)),
    };
    written
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write the output: {e}"))?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::report::Summary;

    #[test]
    fn a_timeline_reads_back_exactly() {
        let readings: Vec<WindowReading> = (0..5)
            .map(|i| WindowReading {
                index: i,
                start_seconds: i as f64 * 0.48,
                end_seconds: i as f64 * 0.48 + 0.975,
                probabilities: vec![0.1, 0.2, 0.3 + i as f32 * 1e-7, 0.4 - i as f32 * 1e-7, 0.0],
                presence: 0.9,
                // A readout with valence and arousal, and windows without (a trained head).
                valence: (i % 2 == 0).then_some(-0.3 + i as f32 * 1e-7),
                arousal: (i % 2 == 0).then_some(0.6),
            })
            .collect();
        let bytes = encode_readings(&readings);
        assert_eq!(decode_readings(&bytes, 5), Some(readings));
        assert_eq!(decode_readings(&bytes, 4), None, "wrong label count");
        assert_eq!(
            decode_readings(&bytes[..bytes.len() - 1], 5),
            None,
            "cut short"
        );
    }

    #[test]
    fn rows_survive_a_reopen_and_an_alias() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/library.sqlite");
        let stored = Stored {
            sample_rate: 44_100,
            labels: vec!["Calm".into(), "Sad".into()],
            readings: vec![WindowReading {
                index: 0,
                start_seconds: 0.0,
                end_seconds: 0.975,
                probabilities: vec![0.7, 0.3],
                presence: 0.9,
                valence: Some(0.25),
                arousal: Some(-0.5),
            }],
            damage: None,
            problem: None,
        };
        {
            let lib = Library::open(&path).unwrap();
            let summary = Summary {
                windows: 1,
                seconds: 0.975,
                mood: Some("Calm".into()),
                mood_lead: 0.4,
                dominant_share: vec![1.0, 0.0],
                uncertain_share: 0.0,
                no_music_share: 0.0,
                mean_probabilities: vec![0.7, 0.3],
                valence: Some(0.25),
                arousal: Some(-0.5),
                mean_presence: 0.9,
            };
            let moods = TrackMoods::from_summary(&summary, &stored.labels);
            lib.store("aa", "v1", Path::new("/music/a.flac"), &stored, &moods)
                .unwrap();
            lib.remember_path(Path::new("/music/a.flac"), 10, 5, "aa")
                .unwrap();
        }
        let lib = Library::open(&path).unwrap();
        assert_eq!(lib.lookup("aa", "v1").unwrap(), Some(stored.clone()));
        assert_eq!(lib.lookup("aa", "v2").unwrap(), None);
        assert_eq!(
            lib.cached_hash(Path::new("/music/a.flac"), 10, 5)
                .as_deref(),
            Some("aa")
        );
        assert_eq!(lib.cached_hash(Path::new("/music/a.flac"), 11, 5), None);
        lib.alias("aa", "bb", "v1").unwrap();
        assert_eq!(lib.lookup("bb", "v1").unwrap(), Some(stored));
        let tracks = lib.tracks().unwrap();
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].moods.dominant.as_deref(), Some("Calm"));
    }
}
