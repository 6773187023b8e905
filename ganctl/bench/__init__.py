"""Benchmarks: ganctl's training step and sampling against a plain eager baseline."""
