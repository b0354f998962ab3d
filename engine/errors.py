"""Engine errors that light modules (CLI error handling, status, manifest) raise or catch without importing the
actors package (torch, Ray)."""

from __future__ import annotations


class ConfigChangedError(RuntimeError):
    """The run directory was started with a different config; resuming it with this one would mix results."""
