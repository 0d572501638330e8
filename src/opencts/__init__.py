"""OpenCTS: a self-hosted Cloud Trace Service."""

__version__ = "0.1.0"
__all__ = ["__version__"]
