//! Model conversion: the official YAMNet `.tflite` and VGGish TensorFlow 1 checkpoint in,
//! ONNX graphs for tract out (written with `tract_onnx::pb`).
