//! `cargo xtask bundle moodscope --release` (nice-plug-xtask) and the project's own tasks.

fn main() -> nice_plug_xtask::Result<()> {
    nice_plug_xtask::main()
}
