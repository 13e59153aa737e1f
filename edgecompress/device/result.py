"""One benchmark result: :class:`BenchmarkResult`, the same type on the device and on the host.

Standard library only: the runner builds it on the device, the native agent and the host's
failure path build it too, and the results store, the report and the command line read it.
``to_dict()`` gives the JSON of ``DESIGN.md`` (field names are stable; fields may be added,
none renamed); ``from_dict()`` reads it back and checks it: a ``protocol`` this version does
not speak, a ``status`` other than ``ok``/``degraded``/``failed`` or a block that is not an object is a
:class:`ResultError` naming the field and what is valid.

Blocks (``artifact``, ``device``, ``latency_ms``, ``memory_mb``, ``energy``, ``thermal``) are
small dataclasses with the DESIGN.md fields typed and anything else kept in ``extra`` (e.g.
``latency_ms.import``, ``energy.idle_power_w``), so a producer may add keys without a change
here. New top-level fields: add them as ``Optional`` with a ``None`` default; they are written
only when set (``_OPTIONAL``), so older readers never see a ``null`` they did not know.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

#: the version of the runner's JSON protocol (``runner.py``) and of this result's shape
PROTOCOL = 1
SUPPORTED_PROTOCOLS = (1,)
STATUSES = ("ok", "degraded", "failed")   # degraded: runs, but below the quality floor


class ResultError(ValueError):
    """A benchmark result that cannot be read (wrong protocol, bad field)."""


def _num_or_none(where: str, name: str, v: Any) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise ResultError(f"{where}.{name} must be a number or null, got {v!r}")


@dataclass
class _Block:
    """Typed fields plus ``extra`` for the keys a producer adds."""

    extra: Dict[str, Any] = field(default_factory=dict)
    _NUMBERS = ()                       # fields checked to be numbers (or null) on reading

    @classmethod
    def from_dict(cls, d: Optional[dict], where: str = "result"):
        if d is None:
            return None
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise ResultError(f"{where} must be an object or null, got {type(d).__name__}")
        names = {f.name for f in fields(cls)} - {"extra"}
        for n in cls._NUMBERS:
            _num_or_none(where, n, d.get(n))
        obj = cls(**{k: v for k, v in d.items() if k in names})
        obj.extra = {k: v for k, v in d.items() if k not in names}
        return obj

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def get(self, key: str, default=None):
        """A field or an extra key by its JSON name (``latency_ms.get("import")``)."""
        if key != "extra" and key in {f.name for f in fields(self)}:
            return getattr(self, key)
        return self.extra.get(key, default)


@dataclass
class ArtifactInfo(_Block):
    sha256: Optional[str] = None
    format: Optional[str] = None
    precision: Optional[str] = None
    layout: Optional[str] = None
    path: Optional[str] = None
    size_bytes: Optional[int] = None

    @property
    def key(self) -> str:
        """``precision.format``, e.g. ``int8.tflite``."""
        return f"{self.precision}.{self.format}"


@dataclass
class DeviceInfo(_Block):
    arch: Optional[str] = None
    os: Optional[str] = None
    python: Optional[str] = None
    runtime: Optional[str] = None
    threads: Optional[int] = None


@dataclass
class Latency(_Block):
    """Milliseconds. ``samples``: every timed inference (``None`` where the agent gives aggregates only)."""

    load: Optional[float] = None
    first: Optional[float] = None
    mean: Optional[float] = None
    p50: Optional[float] = None
    p90: Optional[float] = None
    p99: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    samples: Optional[List[float]] = None
    cv: Optional[float] = None                  # std / mean of the samples
    p50_ci: Optional[List[float]] = None        # 95 % CI of the median [low, high] (order statistics)
    _NUMBERS = ("load", "first", "mean", "p50", "p90", "p99", "std", "min", "max", "cv")

    def to_dict(self) -> dict:
        d = super().to_dict()
        for k in ("cv", "p50_ci"):          # written only when known (agents with aggregates only lack them)
            if d.get(k) is None:
                d.pop(k, None)
        return d


@dataclass
class Memory(_Block):
    """Megabytes of resident memory."""

    baseline_rss: Optional[float] = None
    peak_rss: Optional[float] = None
    delta: Optional[float] = None
    _NUMBERS = ("baseline_rss", "peak_rss", "delta")


ENERGY_METHODS = ("measured", "estimated", "unavailable")


@dataclass
class Energy(_Block):
    method: Optional[str] = None        # measured | estimated | unavailable
    source: Optional[str] = None
    avg_power_w: Optional[float] = None
    mj_per_inference: Optional[float] = None
    _NUMBERS = ("avg_power_w", "mj_per_inference")

    @classmethod
    def from_dict(cls, d, where="result"):
        obj = super().from_dict(d, where)
        if obj is not None and obj.method is not None and obj.method not in ENERGY_METHODS:
            raise ResultError(f"{where}.method {obj.method!r} is not one of {', '.join(ENERGY_METHODS)}")
        return obj


@dataclass
class Thermal(_Block):
    temp_c_before: Optional[float] = None
    temp_c_after: Optional[float] = None
    throttled: Optional[bool] = None
    _NUMBERS = ("temp_c_before", "temp_c_after")


_BLOCKS = {"artifact": ArtifactInfo, "device": DeviceInfo, "latency_ms": Latency, "memory_mb": Memory,
           "energy": Energy, "thermal": Thermal}
#: top-level fields written only when set (not part of DESIGN.md's fixed shape)
_OPTIONAL = ("mode", "step", "warmup", "cpu", "inputs", "outputs_written", "fidelity", "emulated", "stable",
             "stability", "valid", "validity", "ops")


@dataclass
class BenchmarkResult:
    """One artifact measured on one target (DESIGN.md "One benchmark result")."""

    target: Optional[str] = None
    artifact: Optional[ArtifactInfo] = None
    device: Optional[DeviceInfo] = None
    latency_ms: Optional[Latency] = None
    memory_mb: Optional[Memory] = None
    energy: Optional[Energy] = None
    thermal: Optional[Thermal] = None
    runs: Optional[int] = None
    status: str = "ok"
    error: Optional[str] = None
    protocol: int = PROTOCOL
    notes: List[str] = field(default_factory=list)   # what this result cannot say, and why
    mode: Optional[str] = None                       # the agent: python | native
    step: Optional[str] = None                       # the runner's last step (where a failure happened)
    warmup: Optional[int] = None
    cpu: Optional[dict] = None                       # ms_per_inference, utilization
    inputs: Optional[list] = None                    # the model's inputs as the runtime sees them
    outputs_written: Optional[bool] = None
    fidelity: Optional[dict] = None                  # device outputs vs the host reference (run)
    stable: Optional[bool] = None                    # device/stats.py: no drift, no throttling, CPU not taken
    stability: Optional[dict] = None                 # why not: reasons, drift_pct, cpu_share, cpu_quota
    valid: Optional[bool] = None                     # minimum runs AND minimum duration met (MLPerf-style)
    validity: Optional[dict] = None                  # runs, seconds, minimums, mlperf_minimums
    ops: Optional[list] = None                       # per-op profile [{name, op_type, ms, where}] (device/ops.py)
    emulated: Optional[bool] = None                  # measured on an emulated CPU (the lab's qemu aarch64
    #                                                  device): timings and energy never compared or used
    extra: Dict[str, Any] = field(default_factory=dict)   # agent-specific keys (command, op_profile, ...)
    outputs: Any = field(default=None, repr=False, compare=False)   # device outputs (host only, never JSON)

    # -- building -------------------------------------------------------------------------
    @classmethod
    def failed(cls, target: Optional[str], artifact: Optional[ArtifactInfo], error: str, **kw) -> "BenchmarkResult":
        """A result that says what failed (same keys as a good one, values null)."""
        return cls(target=target, artifact=artifact, runs=0, status="failed", error=error, **kw)

    def add_note(self, text: Optional[str]) -> None:
        if text and text not in self.notes:
            self.notes.append(text)

    def fail(self, error: str) -> None:
        self.status, self.error = "failed", error

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> str:
        """The artifact's ``precision.format``."""
        return self.artifact.key if self.artifact else "None.None"

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d: Dict[str, Any] = {"protocol": self.protocol, "target": self.target}
        for name in _BLOCKS:
            block = getattr(self, name)
            d[name] = None if block is None else block.to_dict()
        d.update(runs=self.runs, status=self.status, error=self.error, notes=list(self.notes))
        for name in _OPTIONAL:
            v = getattr(self, name)
            if v is not None:
                d[name] = v
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "benchmark result", require_protocol: bool = False
                  ) -> "BenchmarkResult":
        """Read and check a result (the runner's JSON, a stored one). ``require_protocol``: a
        document without ``protocol`` is an error (what the runner sends always has it)."""
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise ResultError(f"{where}: expected a JSON object, got {type(d).__name__}")
        proto = d.get("protocol")
        if proto is None and require_protocol:
            raise ResultError(f"{where}: no 'protocol' field; this edgecompress speaks protocol "
                              f"{PROTOCOL} (an old or foreign runner?)")
        if proto is not None and proto not in SUPPORTED_PROTOCOLS:
            raise ResultError(f"{where}: protocol {proto!r} is not supported by this edgecompress (it speaks "
                              f"{', '.join(map(str, SUPPORTED_PROTOCOLS))}); use the same edgecompress version "
                              f"on both sides")
        status = d.get("status", "ok")
        if status not in STATUSES:
            raise ResultError(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
        runs = d.get("runs")
        if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int)):
            raise ResultError(f"{where}: runs must be an integer or null, got {runs!r}")
        notes = d.get("notes") or []
        if isinstance(notes, str):
            notes = [notes]
        if d.get("note"):                      # results stored before notes was a list
            notes = [d["note"], *notes]
        known = {f.name for f in fields(cls)} - {"extra", "outputs"}
        kw = {k: v for k, v in d.items() if k in known and k not in _BLOCKS and k != "notes"}
        for name, block in _BLOCKS.items():
            kw[name] = block.from_dict(d.get(name), f"{where}: {name}")
        res = cls(**{**kw, "protocol": PROTOCOL if proto is None else proto, "status": status,
                     "notes": [str(n) for n in notes]})
        res.extra = {k: v for k, v in d.items() if k not in known and k != "note"}
        return res
