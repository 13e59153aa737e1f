"""Device agents: what measures on a device, one per target ``mode``.

A :class:`DeviceAgent` is chosen through the registry (:data:`edgecompress.registry.AGENTS`) by
the target's ``mode`` and used by :class:`~edgecompress.deploy.session.DeviceSession`, which
stays the same for every mode: it connects, syncs files by hash, holds the device lock, retries
and times out; the agent says which device-side commands do each of those things and runs the
measurement itself. The lock helper is one for every mode (``scripts/lock.sh``), so hosts that
reach one device in different modes still never measure it at once.

- ``python`` (:class:`PythonAgent`): the edgecompress runner zipapp (``device/``), needing
  Python >= 3.8, numpy and one runtime on the device. Raw samples, outputs for fidelity.
- ``native`` (:class:`~edgecompress.deploy.native.NativeAgent`): LiteRT's ``benchmark_model``
  and a few ``sh`` scripts, for phones without Python.

Device-side scripts are files (``device/blobs.py``, ``deploy/scripts/*.sh``) sent as the
argument of ``python3 -c`` / ``sh -c``, never strings built in host modules.
"""
from __future__ import annotations

import json
import re
import secrets
import tempfile
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..device.result import BenchmarkResult, ResultError
from ..errors import BenchmarkError, EdgeCompressError

if TYPE_CHECKING:
    from ..manifest import ArtifactRecord
    from ..profiles import Measure, Power
    from .session import DeviceSession

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def script(name: str) -> str:
    """The text of a device-side script shipped with edgecompress (``blobs.py``, ``lock.sh``, ...).

    Shell scripts are sent without their comment lines (the file documents, the device runs)."""
    path = _HERE.parent / "device" / name if name.endswith(".py") else _HERE / "scripts" / name
    text = path.read_text()
    if name.endswith(".sh"):
        text = "\n".join(ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")) + "\n"
    return text


class DeviceAgent(ABC):
    """What measures on one device; the session gives it the connection (``session.transport``)."""

    mode: str = ""
    #: delegates this agent can apply when asked (``benchmark(..., delegate=)``); profiles may list only
    #: delegates some agent has (registry.agent_delegates)
    delegates: tuple = ()

    def __init__(self, session: "DeviceSession"):
        self.session = session

    @property
    def target(self):
        return self.session.target

    # -- set-up ---------------------------------------------------------------------------
    @abstractmethod
    def prepare(self) -> None:
        """Check what the device needs and install the agent's program (``session.sync``)."""

    def lock_argv(self, path: str, owner: str, timeout_s: float) -> list[str]:
        """argv of THE device lock helper, the same for every mode (``scripts/lock.sh``: its protocol
        is in its header), so hosts measuring one device in different modes exclude each other."""
        return ["sh", "-c", script("lock.sh"), "ec-lock", path, owner, str(max(1, int(round(timeout_s))))]

    @abstractmethod
    def files_argv(self, *args: str) -> list[str]:
        """argv of the device's file helper: ``list DIR``, ``free DIR``, ``install TMP SHA FINAL ...``."""

    # -- measuring ------------------------------------------------------------------------
    @abstractmethod
    def facts(self) -> dict:
        """What the device is (arch, OS, runtimes, ...)."""

    @abstractmethod
    def bench(self, rec: "ArtifactRecord", *, measure: "Measure", power: "Power", inputs=None,
              input_layout: str = "NCHW", delegate: Optional[str] = None,
              op_profiling: bool = False, ops: bool = False) -> BenchmarkResult:
        """Measure one artifact already synced (``session.blob_path``). Raises for a lost
        connection (the session measures again) and for failures the session turns into a failed
        result; a failure the agent can describe may also come back as ``status: failed``."""


class PythonAgent(DeviceAgent):
    """The edgecompress runner (``runner.pyz``) on a device with Python."""

    mode = "python"

    def __init__(self, session):
        super().__init__(session)
        self.python = session.python
        self.runner = ""

    def prepare(self) -> None:
        from ..device.package import build_runner

        self.session.step("check python", [self.python, "-c", "import sys; assert sys.version_info >= (3, 8)"],
                          hint=f"install Python 3.8+ on the device or set 'python' in the target "
                               f"(now {self.python!r})")
        runner = build_runner()
        self.session.sync([runner])
        self.runner = self.session.blob_path(runner)

    def files_argv(self, *args):
        return [self.python, "-c", script("blobs.py"), *args]

    def facts(self) -> dict:
        s = self.session
        res = s.step("facts", [self.python, self.runner, "facts", "--sysfs-root", self.target.sysfs_root,
                               "--path", s.workdir])
        return json.loads(res.stdout)

    def bench(self, rec, *, measure, power, inputs=None, input_layout="NCHW", delegate=None,
              op_profiling=False, ops=False) -> BenchmarkResult:
        s, m = self.session, measure
        profile = s.profile
        meter = "none" if self.target.emulated else (self.target.energy or profile.energy.meter)
        command = self.target.energy_command or profile.energy.command
        argv = [self.python, self.runner, "bench", "--model", s.blob_path(Path(rec.path)), "--runs", m.runs,
                "--warmup", m.warmup, "--min-seconds", m.min_seconds, "--threads", m.threads,
                "--cooldown", m.cooldown_s, "--energy", meter, "--sysfs-root", self.target.sysfs_root,
                "--idle-w", power.idle_w, "--load-w", power.load_w, "--input-layout", input_layout]
        if rec.layout in ("NCHW", "NHWC"):
            argv += ["--layout", rec.layout]
        for spec in getattr(s, "input_shapes", None) or []:
            argv += ["--input-shape", spec]
        if command:
            argv += ["--energy-command", command]
        if ops:
            argv += ["--ops"]                      # per-op profile after the timed runs (device/ops.py)
        io_in = io_out = None
        if inputs is not None:
            import numpy as np

            tag = secrets.token_hex(4)
            ext = "npz" if isinstance(inputs, dict) else "npy"
            io_in, io_out = f"{s.workdir}/io/in-{tag}.{ext}", f"{s.workdir}/io/out-{tag}.{ext}"
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / f"in.{ext}"
                if isinstance(inputs, dict):      # by input name (+ "__io__": the artifact's I/O map)
                    from ..device.execute import pack_inputs

                    with open(local, "wb") as f:
                        np.savez(f, **pack_inputs(inputs))
                else:
                    np.save(local, np.ascontiguousarray(inputs, dtype=np.float32))
                s.transport.put(local, io_in)
            argv += ["--inputs", io_in, "--outputs", io_out]
        try:
            res = s.transport.run([str(a) for a in argv], timeout=m.timeout_s)
            result = _parse(res, m)
            if io_out and result.ok:
                import numpy as np

                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / "out.npy"
                    s.transport.get(io_out, local)
                    got = np.load(local)
                    result.outputs = {k: got[k] for k in got.files} if hasattr(got, "files") else got
            if delegate or op_profiling:
                result.add_note("delegate / op profiling apply to native mode (benchmark_model); the "
                                "Python runner measured the runtime's default CPU path")
            return result
        finally:
            if io_in:
                s.remove([io_in, io_out, io_out + ".part"])


def _parse(res, m) -> BenchmarkResult:
    """The runner's one JSON line -> a checked :class:`BenchmarkResult` (or a BenchmarkError naming the step)."""
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
        result = BenchmarkResult.from_dict(json.loads(lines[-1]), where="the runner's result", require_protocol=True)
    except (json.JSONDecodeError, ResultError) as e:
        raise BenchmarkError(f"step 'bench/{step}': unreadable runner output: {e}") from e
    if not result.ok and not result.error:
        result.error = res.describe()
    return result


def agent_for(session) -> DeviceAgent:
    """The agent of the session's target ``mode``, from the registry."""
    from ..registry import AGENTS

    try:
        cls = AGENTS.get(session.target.mode)
    except EdgeCompressError as e:
        raise EdgeCompressError(f"target {session.target.name!r}: {e}") from e
    return cls(session)
