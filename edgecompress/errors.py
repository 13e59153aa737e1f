"""One root error and its children.

Every error a user can cause or meet derives from :class:`EdgeCompressError`.
``exit_code`` is what the command line exits with when the error stops a command:
2 for bad input (usage, profile, target file, model, data), 1 for a failure while
doing the work (an export, a device, a benchmark).
"""
from __future__ import annotations


class EdgeCompressError(Exception):
    """Root of all edgecompress errors."""

    exit_code = 1


class UsageError(EdgeCompressError):
    """A command-line option or verb argument is wrong."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name looked up in a registry does not exist (message lists valid names)."""


class ConfigError(EdgeCompressError):
    """A YAML file (profile, targets) is malformed or does not validate."""

    exit_code = 2


class ProfileError(ConfigError):
    """A device profile is missing or invalid."""


class TargetError(ConfigError):
    """A target inventory is missing or invalid, or a target name is unknown."""


class ModelError(EdgeCompressError):
    """A model file cannot be found, read or understood."""

    exit_code = 2


class DataError(EdgeCompressError):
    """Calibration / evaluation data is missing, unreadable or does not fit the model."""

    exit_code = 2


class PassError(EdgeCompressError):
    """A compression pass is misconfigured (exit 2) or failed while running."""

    exit_code = 2


class ExportError(EdgeCompressError):
    """Converting a model to one artifact failed (that artifact is marked failed)."""


class TransportError(EdgeCompressError):
    """Reaching a device failed: connect, authenticate, copy."""


class ConnectionLost(TransportError):
    """The connection dropped while a command ran: its outcome is unknown (retry it)."""


class HostKeyError(TransportError):
    """The device's host key is unknown or has changed; nothing was sent."""


class RemoteCommandError(TransportError):
    """A command on the device exited non-zero, was killed, or timed out."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class BenchmarkError(EdgeCompressError):
    """The on-device runner failed or returned something unusable."""


class ResultsError(EdgeCompressError):
    """The results database cannot be opened or a run id is unknown."""

    exit_code = 2
