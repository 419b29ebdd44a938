"""The library's error types for bad inputs, in one small module: stage entry points catch
them to print one clear line, and importing them pulls in no data or checkpoint code."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file is missing, truncated, corrupt or fails its checksum."""


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not fit the model it is loaded into."""


class TrainingError(RuntimeError):
    """Training diverged (too many consecutive non-finite steps) or produced non-finite
    weights; nothing is published and the last good checkpoint stays in place."""


class OutputError(OSError):
    """An output folder of a stage cannot be written (checked before any work starts)."""
