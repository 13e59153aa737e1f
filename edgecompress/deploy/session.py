"""Deploying to a device and measuring there: :class:`DeviceSession` and :func:`benchmark`.

A session is one connection to one target. On the device, under the target's ``workdir``::

    blobs/<sha256><.onnx|.tflite|.pyz>   artifacts and the runner, stored by content
    tmp/                                 uploads in progress (``*.part``), never used as is
    io/                                  inputs/outputs of one benchmark, removed after it
    lock, lock.owner                     the device lock (flock held by the runner's ``lock``)

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

import copy
import getpass
import json
import logging
import os
import re
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from ..device.result import ArtifactInfo, BenchmarkResult, ResultError
from ..errors import BenchmarkError, ConnectionLost, EdgeCompressError, TransportError, UsageError
from ..manifest import ArtifactRecord, Manifest, sha256_file
from ..profiles import Measure, Power, load_profile
from ..registry import suggest
from ..targets import Target, load_target
from ..transports import open_transport

log = logging.getLogger(__name__)

UPLOAD_ATTEMPTS = 3
BENCH_ATTEMPTS = 3
BACKOFF_S = (0.5, 1.0, 2.0)
STEP_TIMEOUT_S = 60.0
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
# verify sha256 of each uploaded temp file on the device, then rename it into place
_INSTALL_PY = r"""
import hashlib, os, sys
a = sys.argv[1:]
bad = []
for tmp, want, final in zip(a[0::3], a[1::3], a[2::3]):
    h = hashlib.sha256()
    with open(tmp, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    if h.hexdigest() != want:
        os.unlink(tmp)
        bad.append(tmp + ': sha256 ' + h.hexdigest() + ', expected ' + want + ' (partial or corrupt; removed)')
    else:
        os.replace(tmp, final)
print('\n'.join('bad ' + b for b in bad), file=sys.stderr) if bad else print('ok')
sys.exit(1 if bad else 0)
"""
_FREE_PY = "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_bavail*s.f_frsize)"
_LIST_PY = "import os,sys; os.makedirs(sys.argv[1], exist_ok=True); print('\\n'.join(os.listdir(sys.argv[1])))"

_HASHES: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def record_for_file(path: Path) -> ArtifactRecord:
    """An :class:`ArtifactRecord` for a bare ``.onnx``/``.tflite`` file (precision from ``*.int8.tflite``)."""
    fmt = path.suffix.lstrip(".").lower()
    parts = path.name.split(".")
    precision = parts[-2] if len(parts) >= 3 and parts[-2] in PRECISIONS else None
    return ArtifactRecord(path=str(path.resolve()), format=fmt, precision=precision,
                          layout="NHWC" if fmt == "tflite" else "NCHW", size_bytes=path.stat().st_size,
                          sha256=file_sha256(path))


def expand_artifacts(specs: Sequence[Union[str, Path, ArtifactRecord]]) -> list[ArtifactRecord]:
    """Artifact records (absolute paths) from files, manifests, manifest folders or records.

    A manifest contributes its ``ok`` artifacts. A missing file or an unknown kind is a
    :class:`~edgecompress.errors.UsageError` (exit 2) naming it and what is valid.
    """
    out: list[ArtifactRecord] = []
    for spec in specs:
        if isinstance(spec, ArtifactRecord):
            out.append(spec)
            continue
        p = Path(spec)
        if p.is_dir():
            p = p / "manifest.json"
        if not p.exists():
            raise UsageError(f"{spec}: not found; give a .onnx/.tflite file, a manifest.json or its folder")
        if p.suffix == ".json":
            try:
                m = Manifest.read(p)
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"{p}: not a readable manifest: {e}") from e
            for rec in m.ok_artifacts():
                rec = copy.deepcopy(rec)
                rec.path = str((p.parent / rec.path).resolve())
                out.append(rec)
        elif p.suffix.lower() in (".onnx", ".tflite"):
            out.append(record_for_file(p))
        else:
            raise UsageError(f"{spec}: unknown artifact kind {p.suffix!r}; valid: .onnx, .tflite, manifest.json "
                             f"or a folder holding one")
    return out


def artifact_info(rec: ArtifactRecord) -> ArtifactInfo:
    """The result's ``artifact`` block for a record (what the host knows of the file)."""
    return ArtifactInfo(sha256=rec.sha256, format=rec.format, precision=rec.precision, layout=rec.layout,
                        path=rec.path, size_bytes=rec.size_bytes)


def failed_result(target: str, rec: Optional[ArtifactRecord], error: str) -> BenchmarkResult:
    """A benchmark result that says what failed (same keys as a good one, values null)."""
    return BenchmarkResult.failed(target, artifact_info(rec) if rec else None, error)


class DeviceSession:
    """One connection to one target: runner installed, device lock held. Use ``with``."""

    def __init__(self, target: Union[str, Target], *, targets_file=None, trust_new_host: bool = False,
                 lock_timeout_s: float = 600, step_timeout_s: float = STEP_TIMEOUT_S, lock: bool = True):
        self.target = load_target(target, targets_file)
        self.profile = load_profile(self.target.profile)
        self.trust_new_host = trust_new_host
        self.lock_timeout_s = lock_timeout_s
        self.take_lock = lock
        self.step_timeout_s = step_timeout_s
        self.transport = None
        self.workdir = ""
        self.python = self.target.python
        if self.target.transport == "local" and self.python == "python3":
            self.python = sys.executable  # this machine: the interpreter we run in
        self.runner = ""
        self.lock_message: Optional[str] = None
        self._lock = None
        self._blobs: Optional[set[str]] = None
        self.bytes_sent = 0
        self.native = None      # native.NativeBench when the target has `mode: native` (no Python there)

    # -- open / close -------------------------------------------------------------------
    def __enter__(self) -> "DeviceSession":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        from ..device.package import build_runner

        self.transport = open_transport(self.target, trust_new_host=self.trust_new_host)
        try:
            self.workdir = self.transport.expand(self.target.workdir).rstrip("/")
            if self.target.mode == "native":            # LiteRT benchmark_model, shell only
                from .native import NativeBench

                self.native = NativeBench(self.transport, self.target, self.profile, workdir=self.workdir)
                self.native.prepare()
                if self.take_lock:
                    self._acquire_lock()
                return
            self._step("check python", [self.python, "-c", "import sys; assert sys.version_info >= (3, 8)"],
                       hint=f"install Python 3.8+ on the device or set 'python' in the target "
                            f"(now {self.python!r})")
            runner = build_runner()
            self.sync([runner])
            self.runner = self._blob_path(runner)
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

    def _step(self, step: str, argv, *, timeout: Optional[float] = None, hint: str = "", stdin=None):
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
        if self.native is not None:
            from .native import shell_lock_argv

            proc = self.transport.spawn(shell_lock_argv(f"{self.workdir}/lock", owner, self.lock_timeout_s))
        else:
            proc = self.transport.spawn([self.python, self.runner, "lock", "--path", f"{self.workdir}/lock",
                                         "--owner", owner, "--timeout", str(self.lock_timeout_s)])
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

    def _blob_path(self, path: Path) -> str:
        return f"{self.workdir}/blobs/{self._blob_name(Path(path))}"

    def sync(self, paths: list[Path]) -> dict:
        """Upload what the device lacks (by sha256). -> bytes_sent, files_sent, files_skipped."""
        if self.native is not None:
            stats = self.native.sync(paths)
            self.bytes_sent += stats["bytes_sent"]
            return stats
        stats = {"bytes_sent": 0, "files_sent": 0, "files_skipped": 0}
        if self._blobs is None:
            res = self._step("list blobs", [self.python, "-c", _LIST_PY, f"{self.workdir}/blobs"])
            self._blobs = set(res.stdout.split())
            self._step("prepare workdir", ["mkdir", "-p", f"{self.workdir}/tmp", f"{self.workdir}/io"])
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
                self._step("verify upload", [self.python, "-c", _INSTALL_PY, tmp, want,
                                             f"{self.workdir}/blobs/{name}"])
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
        res = self.transport.run([self.python, "-c", _FREE_PY, f"{self.workdir}/tmp"], timeout=self.step_timeout_s)
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
        if self.native is not None:
            return self.native.facts()
        res = self._step("facts", [self.python, self.runner, "facts", "--sysfs-root", self.target.sysfs_root,
                                   "--path", self.workdir])
        return json.loads(res.stdout)

    def bench(self, artifact: Union[ArtifactRecord, Path, str], *, measure: Optional[Measure] = None,
              inputs=None, power: Optional[Power] = None, input_layout: str = "NCHW",
              delegate: Optional[str] = None, op_profiling: bool = False, ops: bool = False) -> BenchmarkResult:
        """Benchmark one artifact; never raises for a device-side failure (status "failed").

        ``ops``: also a per-operator profile (``result["ops"]``, :mod:`edgecompress.device.ops`;
        in native mode from benchmark_model's op profiling).

        ``delegate`` and ``op_profiling`` reach LiteRT's benchmark_model (targets with
        ``mode: native``); the Python runner uses the runtime's default CPU path (XNNPACK for
        TFLite) and says so in the result's ``note`` when they were asked for.
        """
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
                    if self.native is not None:
                        result = self.native.bench(rec, measure=m, delegate=delegate,
                                                   op_profiling=op_profiling or ops)
                        if result.extra.get("op_profile"):
                            from ..device.ops import from_node_type_table

                            result.ops = from_node_type_table(result.extra["op_profile"], delegate)
                    else:
                        result = self._bench(rec, path, m, p, inputs, input_layout, ops)
                        if delegate or op_profiling:
                            result.add_note("delegate / op profiling apply to native mode (benchmark_model); the "
                                            "Python runner measured the runtime's default CPU path")
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

    def _bench(self, rec, path, m: Measure, p: Power, inputs, input_layout, ops: bool = False) -> dict:
        meter = self.target.energy or self.profile.energy.meter
        command = self.target.energy_command or self.profile.energy.command
        argv = [self.python, self.runner, "bench", "--model", self._blob_path(path), "--runs", m.runs,
                "--warmup", m.warmup, "--min-seconds", m.min_seconds, "--threads", m.threads,
                "--cooldown", m.cooldown_s, "--energy", meter, "--sysfs-root", self.target.sysfs_root,
                "--idle-w", p.idle_w, "--load-w", p.load_w, "--input-layout", input_layout]
        if rec.layout in ("NCHW", "NHWC"):
            argv += ["--layout", rec.layout]
        if command:
            argv += ["--energy-command", command]
        if ops:
            argv += ["--ops"]
        io_in = io_out = None
        if inputs is not None:
            import numpy as np

            tag = secrets.token_hex(4)
            io_in, io_out = f"{self.workdir}/io/in-{tag}.npy", f"{self.workdir}/io/out-{tag}.npy"
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "in.npy"
                np.save(local, np.ascontiguousarray(inputs, dtype=np.float32))
                self.transport.put(local, io_in)
            argv += ["--inputs", io_in, "--outputs", io_out]
        try:
            res = self.transport.run([str(a) for a in argv], timeout=m.timeout_s)
            result = self._parse(res, m)
            if io_out and result.ok:
                import numpy as np

                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / "out.npy"
                    self.transport.get(io_out, local)
                    result.outputs = np.load(local)
            return result
        finally:
            if io_in:
                try:
                    self.transport.run(["rm", "-f", io_in, io_out, io_out + ".part.npy"],
                                       timeout=self.step_timeout_s)
                except EdgeCompressError as e:
                    log.warning("%s: could not remove %s: %s", self.target.name, io_in, e)

    def _parse(self, res, m: Measure) -> BenchmarkResult:
        steps = re.findall(r"^step: (\S+)", res.stderr, re.M)
        step = steps[-1] if steps else "start"
        if res.timed_out:
            raise BenchmarkError(f"step 'bench/{step}' timed out after {m.timeout_s:.0f} s "
                                 f"(measure.timeout_s); the runner's process group was killed")
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            hint = ("; a SIGKILL edgecompress did not send is usually the device running out of memory (the "
                    "kernel's OOM killer): check free memory or the memory limit there") if res.signal == "SIGKILL" else ""
            raise BenchmarkError(f"step 'bench/{step}': the runner gave no result: {res.describe()}{hint}")
        try:
            result = BenchmarkResult.from_dict(json.loads(lines[-1]), where="the runner's result",
                                               require_protocol=True)
        except (json.JSONDecodeError, ResultError) as e:
            raise BenchmarkError(f"step 'bench/{step}': unreadable runner output: {e}") from e
        if not result.ok and not result.error:
            result.error = res.describe()
        return result


def benchmark(target, artifacts, *, targets_file=None, runs: Optional[int] = None, warmup: Optional[int] = None,
              threads: Optional[int] = None, min_seconds: Optional[float] = None, inputs=None,
              trust_new_host: bool = False, lock_timeout_s: float = 600, delegate: Optional[str] = None,
              op_profiling: bool = False, ops: bool = False) -> list[BenchmarkResult]:
    """Deploy ``artifacts`` (files, manifests or records) to ``target`` and measure each.

    One connection, one lock; artifacts are synced first. A failure to reach the device
    marks every artifact failed (with the reason); one artifact failing leaves the others.
    ``delegate`` must be one of the target profile's ``delegates`` (or ``cpu``).
    """
    records = expand_artifacts(artifacts if isinstance(artifacts, (list, tuple)) else [artifacts])
    tgt = load_target(target, targets_file)
    profile = load_profile(tgt.profile)
    if delegate is not None and delegate != "cpu" and delegate not in profile.delegates:
        valid = ", ".join(["cpu", *profile.delegates])
        raise UsageError(f"delegate {delegate!r} is not in profile {profile.name!r}'s delegates"
                         f"{suggest(delegate, ['cpu', *profile.delegates])}; valid: {valid}")
    measure = profile.measure.model_copy()
    for key, value in (("runs", runs), ("warmup", warmup), ("threads", threads), ("min_seconds", min_seconds)):
        if value is not None:
            setattr(measure, key, value)
    try:
        with DeviceSession(tgt, trust_new_host=trust_new_host, lock_timeout_s=lock_timeout_s) as s:
            try:
                s.sync([Path(r.path) for r in records if Path(r.path).exists()])
            except EdgeCompressError as e:
                log.warning("%s: bulk upload failed (%s); trying one by one", tgt.name, e)
            return [s.bench(r, measure=measure, inputs=inputs, delegate=delegate, op_profiling=op_profiling,
                            ops=ops) for r in records]
    except EdgeCompressError as e:
        return [failed_result(tgt.name, r, str(e)) for r in records]
