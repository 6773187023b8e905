"""Generators in and out of ganctl: ONNX export, a Hugging Face-style model folder, import of Keras generators."""
