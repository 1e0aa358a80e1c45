"""The engine version: pinned on every execution this engine starts."""

__version__ = "0.1.0"
