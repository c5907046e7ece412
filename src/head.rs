//! Heads: one backbone output per window in, mood probabilities out.
//!
//! Two kinds behind one trait:
//! - `YamnetReadout`: YAMNet's own AudioSet mood classes (Happy, Sad, Angry, Scary music: rows
//!   271, 272, 275, 276 of the class map), a softmax over their logits, and music presence from
//!   row 132 (Music). Needs no training.
//! - `TrainedHead`: a head trained by `moodscope train` (or the AudioSet heads committed under
//!   `models/heads/`), an ONNX graph run by tract. An LSTM head carries its state (`h`, `c`) from
//!   window to window, so it reads a stream rather than isolated windows.
//!
//! Trained-head files: `NAME.onnx` beside `NAME.json` (see `HeadMetadata`). ONNX inputs:
//! `embedding` f32 [1, D] and, for LSTM heads, `h_in`/`c_in` f32 [layers, 1, hidden]; outputs:
//! `probabilities` f32 [1, K] and, for LSTM heads, `h_out`/`c_out` of the input state's shape.
//! Input normalisation is inside the graph.

/// The four moods of the study, in the order the AudioSet heads output them.
pub const MOODS: [&str; 4] = ["Happy", "Sad", "Angry", "Scary"];
