"""Backends: one module per runtime, and the registry (`registry.py`) that lists them."""
