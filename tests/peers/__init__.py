"""Comparisons with the frameworks poolkit follows, one file per framework: every expected value
comes from the framework itself (PyTorch, TensorFlow, Keras, ONNX / ONNX Runtime)."""
