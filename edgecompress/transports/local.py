"""The ``local`` transport: this machine, through ``subprocess`` (no SSH).

Commands run in their own process group (``start_new_session``) so a time-out kills the
whole group (SIGTERM, then SIGKILL after a grace period). Arguments are passed as an
argv list, never through a shell; a leading ``~`` is expanded like a shell would.
"""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import TransportError
from .base import CommandResult, Process, TransferResult, Transport

KILL_GRACE_S = 2.0


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def kill_group(pgid: int, grace_s: float = KILL_GRACE_S, proc: Optional[subprocess.Popen] = None) -> None:
    """SIGTERM the process group, then SIGKILL it if ``proc`` is still alive after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if proc is None:
            continue
        try:
            proc.wait(timeout=grace_s)
            # the leader is gone; make sure no straggler of its group survives
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            return
        except subprocess.TimeoutExpired:
            continue


def _expand(arg: str) -> str:
    arg = str(arg)
    return os.path.expanduser(arg) if arg == "~" or arg.startswith("~/") else arg


class LocalProcess(Process):
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:  # type: ignore[union-attr]
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def readline(self, timeout: float) -> Optional[str]:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid, proc=self.proc)


class LocalTransport(Transport):
    """Run commands and copy files on this machine."""

    name = "local"

    def __init__(self, target=None):
        self.target = target

    @classmethod
    def from_target(cls, target, **_options) -> "LocalTransport":
        return cls(target)

    def run(self, argv: Sequence[str], *, timeout: Optional[float] = None,
            stdin: Optional[bytes] = None, env: Optional[dict[str, str]] = None) -> CommandResult:
        argv = [_expand(a) for a in argv]
        full_env = {**os.environ, **(env or {})}
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                                    start_new_session=True)
        except OSError as e:
            return CommandResult(list(argv), 127, "", f"cannot start {argv[0]!r}: {e}",
                                 time.perf_counter() - start)
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc.pid, proc=proc)
            out, err = proc.communicate()
        duration = time.perf_counter() - start
        code: Optional[int] = proc.returncode
        sig = None
        if code is not None and code < 0:
            sig, code = signal_name(-code), None
        if timed_out:
            code = None
        return CommandResult(list(argv), code, out.decode(errors="replace"), err.decode(errors="replace"),
                             duration, signal=sig, timed_out=timed_out)

    def spawn(self, argv: Sequence[str]) -> LocalProcess:
        argv = [_expand(a) for a in argv]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise TransportError(f"cannot start {argv[0]!r}: {e}") from e
        return LocalProcess(proc)

    def put(self, local: Path, remote: str) -> TransferResult:
        return self._copy(Path(local), Path(_expand(remote)), local, remote)

    def get(self, remote: str, local: Path) -> TransferResult:
        return self._copy(Path(_expand(remote)), Path(local), local, remote)

    @staticmethod
    def _copy(src: Path, dst: Path, local, remote) -> TransferResult:
        start = time.perf_counter()
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        except OSError as e:
            raise TransportError(f"copy {src} -> {dst} failed: {e}") from e
        return TransferResult(str(local), str(remote), dst.stat().st_size, time.perf_counter() - start)

    def home(self) -> str:
        return str(Path.home())
