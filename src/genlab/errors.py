"""The library's error types for bad inputs, in one small module: stage entry points catch
them to print one clear line, and importing them pulls in no data or checkpoint code."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file is missing, truncated, corrupt or fails its checksum."""


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not fit the model it is loaded into."""
