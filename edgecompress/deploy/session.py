"""One connection to one device: :class:`DeviceSession` (the same for every target mode).

A session is one connection to one target. On the device, under the target's ``workdir``::

    blobs/<sha256><.onnx|.tflite|.pyz>   artifacts and the runner, stored by content
    tmp/                                 uploads in progress (``*.part``), never used as is
    io/                                  inputs/outputs of one benchmark, removed after it
    lock...                              the device lock (held by the agent's lock helper)

An upload goes to ``tmp/<name>.<random>.part``, its sha256 is checked ON the device, then it
is renamed into ``blobs/``; a file already in ``blobs/`` is never sent again (its name is its
hash and only verified files get there). Uploads and connects are retried with bounded
backoff. While the session is open it holds the device lock, so two benchmarks never run on
one device at once; a lock left by a dead process is released by the kernel (flock) and the
next session says it recovered it. Every step has a time-out and failures name the step.

A connection lost while measuring (:class:`~edgecompress.errors.ConnectionLost`) is retried
with bounded backoff: the transport reconnects (killing what the lost connection left
running), the session takes the device lock again, and the artifact is measured again from
the start, so a number is never pieced together from two connections. An upload that fails
on a full disk is not retried: its temporary file is removed and the error says how much
space is free and how much the file needs.
"""
from __future__ import annotations

import getpass
import logging
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Optional, Union

from ..device.result import BenchmarkResult, Energy
from ..errors import BenchmarkError, ConnectionLost, EdgeCompressError, TransportError
from ..manifest import ArtifactRecord
from ..profiles import Measure, Power, load_profile
from ..targets import Target, load_target
from ..transports import open_transport
from .artifacts import artifact_info, file_sha256, record_for_file

log = logging.getLogger(__name__)

UPLOAD_ATTEMPTS = 3
BENCH_ATTEMPTS = 3
BACKOFF_S = (0.5, 1.0, 2.0)
STEP_TIMEOUT_S = 60.0


def failed_result(target: str, rec: Optional[ArtifactRecord], error: str) -> BenchmarkResult:
    """A benchmark result that says what failed (same keys as a good one, values null)."""
    return BenchmarkResult.failed(target, artifact_info(rec) if rec else None, error)


EMULATED_NOTE = ("measured on an emulated CPU (qemu): timings mean nothing for a real device and are never "
                 "compared with one; outputs and fidelity are real")


def mark_emulated(result: BenchmarkResult) -> BenchmarkResult:
    """Mark a result measured on an emulated target: ``emulated: true``, energy unavailable."""
    result.emulated = True
    result.energy = Energy(method="unavailable", extra={"reason": "emulated", "note": "no energy on an emulated CPU"})
    if result.device is not None:
        result.device.extra["emulated"] = True
    result.add_note(EMULATED_NOTE)
    return result


class DeviceSession:
    """One connection to one target: its agent installed, device lock held. Use ``with``.

    The same for every target ``mode``: what differs (the device-side lock helper, file helper,
    facts and the measurement) is the :class:`~edgecompress.deploy.agents.DeviceAgent` the
    registry gives for the mode (``self.agent``). ``profile``: the target's profile when the
    caller has already loaded it (else loaded here).
    """

    def __init__(self, target: Union[str, Target], *, targets_file=None, trust_new_host: bool = False,
                 lock_timeout_s: float = 600, step_timeout_s: float = STEP_TIMEOUT_S, lock: bool = True,
                 profile=None):
        self.target = load_target(target, targets_file)
        self.profile = profile if profile is not None else load_profile(self.target.profile)
        self.trust_new_host = trust_new_host
        self.lock_timeout_s = lock_timeout_s
        self.take_lock = lock
        self.step_timeout_s = step_timeout_s
        self.transport = None
        self.workdir = ""
        self.python = self.target.python
        if self.target.transport == "local" and self.python == "python3":
            self.python = sys.executable  # this machine: the interpreter we run in
        self.agent = None       # the DeviceAgent of the target's mode (set by open)
        self.lock_message: Optional[str] = None
        self._lock = None
        self._blobs: Optional[set[str]] = None
        self.bytes_sent = 0

    # -- open / close -------------------------------------------------------------------
    def __enter__(self) -> "DeviceSession":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        from .agents import agent_for

        self.transport = open_transport(self.target, trust_new_host=self.trust_new_host)
        try:
            self.workdir = self.transport.expand(self.target.workdir).rstrip("/")
            self.agent = agent_for(self)
            self.agent.prepare()
            if self.take_lock:
                self._acquire_lock()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def step(self, step: str, argv, *, timeout: Optional[float] = None, hint: str = "", stdin=None):
        """Run one named device command; a failure or time-out names the step."""
        try:
            res = self.transport.run(argv, timeout=timeout or self.step_timeout_s, stdin=stdin)
        except TransportError as e:  # keep the type (ConnectionLost is retried), name the step
            raise type(e)(f"{self.target.name}: step '{step}' failed: {e}") from e
        if not res.ok:
            raise BenchmarkError(f"{self.target.name}: step '{step}' failed: {res.describe()}"
                                 + (f"; {hint}" if hint else ""))
        return res

    def _acquire_lock(self) -> None:
        owner = (f"pid {os.getpid()} on {socket.gethostname()} (user {getpass.getuser()}) "
                 f"since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        proc = self.transport.spawn(self.agent.lock_argv(f"{self.workdir}/lock", owner, self.lock_timeout_s))
        deadline = time.monotonic() + self.lock_timeout_s + self.step_timeout_s
        while True:
            line = proc.readline(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                proc.close()
                raise BenchmarkError(f"{self.target.name}: step 'lock' failed: the lock helper ended or "
                                     f"did not answer within {self.lock_timeout_s + self.step_timeout_s:.0f} s")
            if line.startswith("waiting "):
                msg = (f"{self.target.name} is busy: device lock held by {line[8:]}; "
                       f"waiting up to {self.lock_timeout_s:.0f} s")
                log.warning(msg)
                print(f"edgecompress: {msg}", file=sys.stderr)
            elif line.startswith("stale "):
                log.warning("%s: %s", self.target.name, line[6:])
            elif line.startswith("recovered "):
                self.lock_message = f"recovered a stale device lock left by {line[10:]}"
                log.warning("%s: %s", self.target.name, self.lock_message)
            elif line.startswith("timeout "):
                proc.close()
                raise BenchmarkError(f"{self.target.name}: step 'lock' timed out after {self.lock_timeout_s:.0f} s: "
                                     f"device lock held by {line[8:]}")
            elif line == "locked":
                self._lock = proc
                return

    def _ensure_lock(self) -> None:
        """Take the device lock again if it went with a lost connection."""
        if self._lock is None or self._lock.alive():
            return
        log.warning("%s: the device lock was released with a lost connection; taking it again", self.target.name)
        try:
            self._lock.close()
        except Exception:  # noqa: BLE001 - its connection is already gone
            pass
        self._lock = None
        self._acquire_lock()

    # -- files --------------------------------------------------------------------------
    def _blob_name(self, path: Path) -> str:
        return file_sha256(path) + path.suffix.lower()

    def blob_path(self, path: Path) -> str:
        """Where ``path`` is stored on the device (by its sha256)."""
        return f"{self.workdir}/blobs/{self._blob_name(Path(path))}"

    def remove(self, paths: list[str]) -> None:
        """``rm -f`` device files (a failure is logged, never raised)."""
        try:
            self.transport.run(["rm", "-f", *paths], timeout=self.step_timeout_s)
        except EdgeCompressError as e:
            log.warning("%s: could not remove %s: %s", self.target.name, paths[0], e)

    def sync(self, paths: list[Path]) -> dict:
        """Upload what the device lacks (by sha256). -> bytes_sent, files_sent, files_skipped."""
        stats = {"bytes_sent": 0, "files_sent": 0, "files_skipped": 0}
        if self._blobs is None:
            res = self.step("list blobs", self.agent.files_argv("list", f"{self.workdir}/blobs"))
            self._blobs = set(res.stdout.split())
            self.step("prepare workdir", ["mkdir", "-p", f"{self.workdir}/tmp", f"{self.workdir}/io"])
        for path in dict.fromkeys(Path(p) for p in paths):
            name = self._blob_name(path)
            if name in self._blobs:
                stats["files_skipped"] += 1
                continue
            stats["bytes_sent"] += self._upload(path, name)
            stats["files_sent"] += 1
            self._blobs.add(name)
        self.bytes_sent += stats["bytes_sent"]
        return stats

    def _upload(self, path: Path, name: str) -> int:
        want = file_sha256(path)
        last: Optional[Exception] = None
        for attempt in range(UPLOAD_ATTEMPTS):
            tmp = f"{self.workdir}/tmp/{name}.{secrets.token_hex(4)}.part"
            try:
                sent = self.transport.put(path, tmp).bytes
                self.step("verify upload", self.agent.files_argv("install", tmp, want,
                                                                 f"{self.workdir}/blobs/{name}"))
                return sent
            except EdgeCompressError as e:
                last = e
                try:
                    self.transport.run(["rm", "-f", tmp], timeout=self.step_timeout_s)
                    full = self._disk_full(path)
                except EdgeCompressError:
                    full = None     # the device is unreachable now; the next attempt reconnects
                if full:
                    raise TransportError(full) from e
                if attempt + 1 < UPLOAD_ATTEMPTS:
                    log.info("upload of %s failed (%s); retrying in %.1f s", path, e, BACKOFF_S[attempt])
                    time.sleep(BACKOFF_S[attempt])
        raise TransportError(f"{self.target.name}: step 'upload' of {path.name} failed after "
                             f"{UPLOAD_ATTEMPTS} attempts: {last}") from last

    def _disk_full(self, path: Path) -> Optional[str]:
        """A message when the device's workdir has no room for ``path``, else None."""
        res = self.transport.run(self.agent.files_argv("free", f"{self.workdir}/tmp"), timeout=self.step_timeout_s)
        if not res.ok or not res.stdout.strip().isdigit():
            return None
        free, need = int(res.stdout.strip()), path.stat().st_size
        if free >= need + (64 << 10):
            return None
        return (f"{self.target.name}: step 'upload' of {path.name} failed: the device's disk is full: "
                f"{free / 1e6:.2f} MB free in {self.workdir}, the file needs {need / 1e6:.2f} MB; free space "
                f"there or set the target's workdir to a bigger disk (the partial upload was removed)")

    # -- measuring ----------------------------------------------------------------------
    def facts(self) -> dict:
        facts = self.agent.facts()
        if self.target.emulated:
            facts["emulated"] = True
            facts["resources_note"] = (f"memory_mb ({facts.get('memory_mb')}) and cpu_count "
                                       f"({facts.get('cpu_count')}) are the host's: qemu-user runs the "
                                       f"device's programs on the host, no board has them")
        return facts

    def bench(self, artifact: Union[ArtifactRecord, Path, str], **kw) -> BenchmarkResult:
        """Benchmark one artifact; never raises for a device-side failure (status "failed").

        Keywords: ``measure``, ``inputs``, ``power``, ``input_layout``, ``delegate``, ``op_profiling``,
        ``ops`` (a per-operator profile too: ``result.ops``, :mod:`edgecompress.device.ops`; in native
        mode from benchmark_model's op profiling).
        ``delegate`` and ``op_profiling`` reach LiteRT's benchmark_model (targets with
        ``mode: native``); the Python runner uses the runtime's default CPU path (XNNPACK for
        TFLite) and says so in the result's ``notes`` when they were asked for. On an emulated
        target (``emulated: true``) the result says ``emulated: true`` and its energy is
        unavailable (reason ``emulated``): only its outputs mean something for a real board.
        """
        result = self._bench_one(artifact, **kw)
        return mark_emulated(result) if self.target.emulated else result

    def _bench_one(self, artifact: Union[ArtifactRecord, Path, str], *, measure: Optional[Measure] = None,
                   inputs=None, power: Optional[Power] = None, input_layout: str = "NCHW",
                   delegate: Optional[str] = None, op_profiling: bool = False, ops: bool = False) -> BenchmarkResult:
        rec = artifact if isinstance(artifact, ArtifactRecord) else record_for_file(Path(artifact))
        path = Path(rec.path)
        m = measure or self.profile.measure
        p = power or self.profile.power
        try:
            if not path.exists():
                raise BenchmarkError(f"artifact {path} not found")
            if rec.sha256 is None:
                rec.sha256 = file_sha256(path)
            last: Optional[ConnectionLost] = None
            for attempt in range(BENCH_ATTEMPTS):
                try:
                    self.sync([path])
                    self._ensure_lock()
                    result = self.agent.bench(rec, measure=m, power=p, inputs=inputs, input_layout=input_layout,
                                              delegate=delegate, op_profiling=op_profiling, ops=ops)
                    result.target, result.artifact = self.target.name, artifact_info(rec)
                    result.add_note(self.lock_message)
                    if attempt:
                        result.add_note(f"measured again after the connection was lost {attempt} time(s): {last}")
                    return result
                except TransportError as e:
                    if not isinstance(e, ConnectionLost):
                        if last is None:
                            raise
                        raise BenchmarkError(f"{self.target.name}: step 'bench' of {path.name} failed: the "
                                             f"connection was lost ({last}) and could not be made again: {e}") from e
                    last = e
                    if attempt + 1 < BENCH_ATTEMPTS:
                        log.warning("%s: %s; measuring %s again in %.1f s", self.target.name, e, path.name,
                                    BACKOFF_S[attempt])
                        time.sleep(BACKOFF_S[attempt])
            raise BenchmarkError(f"{self.target.name}: step 'bench' of {path.name} failed: the connection was "
                                 f"lost {BENCH_ATTEMPTS} times: {last}") from last
        except EdgeCompressError as e:
            return failed_result(self.target.name, rec, str(e))
