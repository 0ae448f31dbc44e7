"""The package version, read by setup.py without importing TensorFlow."""

__version__ = "0.1.0"
