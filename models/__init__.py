"""Training, ONNX export and the model registry."""
