//! Mood heads: sequences of embeddings with labels in; trained heads, their cross-validated
//! figures and their streaming ONNX export out.
