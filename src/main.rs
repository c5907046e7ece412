//! `moodscope`: analyse audio files for mood, dump front-end features, train and evaluate heads.
//! See `moodscope --help`; the work is in `moodscope::cli`.

fn main() -> std::process::ExitCode {
    moodscope::cli::main()
}
