"""The transport interface: run a command on a device, copy files to and from it.

A transport connects lazily, runs an argv list (every argument quoted for the remote
shell by the transport, never by callers), always collects the exit status, and
reports a process killed by a signal as killed (``signal`` set, ``exit_code`` None).
Remote paths are POSIX strings; ``~`` is expanded by :meth:`Transport.home`.
"""
from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence


@dataclass
class CommandResult:
    argv: list[str]
    exit_code: Optional[int]
    stdout: str
    stderr: str
    duration_s: float
    signal: Optional[str] = None      # e.g. "SIGKILL" when killed by a signal
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.signal is None

    def describe(self) -> str:
        if self.timed_out:
            how = f"timed out after {self.duration_s:.1f} s"
        elif self.signal:
            how = f"killed by {self.signal}"
        else:
            how = f"exit status {self.exit_code}"
        tail = self.stderr.strip().splitlines()[-5:]
        return f"`{shlex.join(self.argv)[:200]}` {how}" + (": " + " | ".join(tail) if tail else "")


@dataclass
class TransferResult:
    local: str
    remote: str
    bytes: int
    seconds: float = 0.0


class Process(ABC):
    """A process started by :meth:`Transport.spawn`: read its output lines, then close it."""

    @abstractmethod
    def readline(self, timeout: float) -> Optional[str]:
        """The next stdout line (without newline); None at end of output or after ``timeout`` s."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether the process is still running."""

    @abstractmethod
    def close(self) -> None:
        """Close its stdin and let it end (killed if it does not end within a few seconds)."""


def quote_argv(argv: Sequence[str]) -> str:
    """One shell command line with every argument quoted (``~/`` prefixes kept expandable)."""
    parts = []
    for a in argv:
        a = str(a)
        if a == "~" or a.startswith("~/"):
            parts.append('"$HOME"' + shlex.quote(a[1:]) if len(a) > 1 else '"$HOME"')
        else:
            parts.append(shlex.quote(a))
    return " ".join(parts)


class Transport(ABC):
    """One device connection. Use as a context manager; ``close()`` is idempotent."""

    name: str = "base"

    @abstractmethod
    def run(self, argv: Sequence[str], *, timeout: Optional[float] = None,
            stdin: Optional[bytes] = None, env: Optional[dict[str, str]] = None) -> CommandResult:
        """Run ``argv`` on the device and wait for it; never raises for a non-zero exit."""

    @abstractmethod
    def put(self, local: Path, remote: str) -> TransferResult:
        """Copy a local file to ``remote`` (an absolute path)."""

    @abstractmethod
    def get(self, remote: str, local: Path) -> TransferResult:
        """Copy ``remote`` to a local file."""

    def spawn(self, argv: Sequence[str]) -> "Process":
        """Start ``argv`` on the device and return at once; the process reads our stdin.

        Closing the returned :class:`Process` closes its stdin (and the channel), so a
        device-side helper that waits for end-of-input (the device lock) exits even when
        this host process dies. Transports that cannot do this raise NotImplementedError.
        """
        raise NotImplementedError(f"{self.name} transport cannot start background processes")

    def home(self) -> str:
        res = self.run(["sh", "-c", 'printf %s "$HOME"'])
        return res.stdout.strip() or "/tmp"

    def expand(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            return self.home() + path[1:]
        return path

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
