"""``tune(model, ["local", ...])``: search, per target, for the artifact to ship — measured there.

The search space per target (:mod:`edgecompress.tune.space`): format and precision (what the
model kind can be built as and the profile's runtimes can run), the static INT8 ONNX settings
(per-channel or per-tensor weights, calibration method, activation and weight types, QDQ or
operator form) and **mixed precision** — the k layers most sensitive to quantization
(:mod:`edgecompress.tune.sensitivity`: one layer quantized at a time, ranked by output SQNR)
kept in float — the passes labelled data allows (structured pruning with fine-tuning,
clustering) and the runtime's threads.

Optuna (multi-objective TPE: minimise p50 latency, maximise quality, minimise size) proposes
candidates; each is built by the same exporters ``compress`` uses and **measured on the
target** (``DeviceSession.bench``) with the held-out samples as inputs, so quality is the
device's own (accuracy with labels, else top-1 agreement with the source model); with
``feedback`` the samples run in order and the device feeds the recurrent state back as
``compress`` and ``run`` do.
Measurements are cached by artifact sha256 (:mod:`edgecompress.tune.store`): the same bytes
are never measured twice. A candidate is dropped early, after a short measurement, when a
measured candidate is at least as small, at least as good as the source model, and faster
than the low end of its latency CI (it is dominated). The search runs all ``trials`` (or
until ``time_budget_s``) — it does not stop at the first candidate within budget — and is
stored as an Optuna study with the results (:mod:`edgecompress.tune.store`: in a PostgreSQL
results database itself, schema ``optuna``; beside a SQLite one): the same command run again
goes on from where a killed one stopped (``trials`` is the study's total).

The end: the Pareto set (latency x quality x size) and the recommendation — the best by the
objective among candidates within the quality budget and the device's memory (the same rule
as ``compare``: :mod:`edgecompress.report.recommend`). ``apply`` writes the chosen artifact and
a profile that rebuilds it (``compress --profile DIR/TARGET/profile.yaml``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    number: int
    settings: dict
    status: str                          # ok | failed | dropped (dominated after a short measurement)
    label: str = ""
    p50_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    size_bytes: Optional[int] = None
    accuracy: Optional[float] = None
    reference_accuracy: Optional[float] = None
    delta_accuracy: Optional[float] = None
    top1_agreement: Optional[float] = None
    cosine: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    sha256: Optional[str] = None
    path: Optional[str] = None
    cached: bool = False
    stable: Optional[bool] = None
    error: Optional[str] = None
    pareto: bool = False
    samples: list = field(default_factory=list, repr=False)

    @property
    def quality(self) -> Optional[float]:
        return self.accuracy if self.accuracy is not None else self.top1_agreement

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("samples")
        return d


@dataclass
class TargetTune:
    target: str
    study: str
    objective: str
    candidates: list[Candidate]
    recommended: Optional[Candidate]
    reason: str
    sensitivity: list = field(default_factory=list)
    seconds: float = 0.0
    measured: int = 0                    # candidates measured by this call (not from the cache)
    applied: Optional[str] = None

    def to_dict(self) -> dict:
        return {"target": self.target, "study": self.study, "objective": self.objective,
                "candidates": [c.to_dict() for c in self.candidates],
                "recommended": self.recommended.to_dict() if self.recommended else None, "reason": self.reason,
                "pareto": [c.number for c in self.candidates if c.pareto], "sensitivity": self.sensitivity,
                "trials": len(self.candidates), "seconds": self.seconds, "measured": self.measured,
                "applied": self.applied}


@dataclass
class TuneResult:
    storage: str
    targets: dict[str, TargetTune]

    @property
    def exit_code(self) -> int:
        return 0 if all(t.recommended for t in self.targets.values()) else 1

    def to_dict(self) -> dict:
        return {"storage": self.storage, "targets": {n: t.to_dict() for n, t in self.targets.items()}}


def tune(model, targets: list, *, targets_file=None, data=None, trials: int = 20,
         time_budget_s: Optional[float] = None, objective: Optional[str] = None,
         max_accuracy_drop: Optional[float] = None, min_agreement: Optional[float] = None,
         min_cosine: Optional[float] = None, max_memory_mb: Optional[float] = None,
         artifacts: Optional[list[str]] = None, passes: bool = True, db=None, out: str | Path = "tune-out",
         cache_dir=None, apply: Optional[str | Path] = None, seed: int = 0, measure: Optional[dict] = None,
         eval_samples: int = 200, input_shape=None, weights=None, trust_new_host: bool = False,
         feedback: Optional[dict] = None, progress: Optional[Callable[[str], None]] = None) -> TuneResult:
    """Search each target's space with Optuna, every candidate measured on the target (see module doc).

    ``feedback`` ({OUTPUT: INPUT}, recurrent state): samples run in order with each output fed back
    as the next sample's input — for calibration, sensitivity, the reference and device fidelity;
    passes are not searched then (their fine-tuning does not feed state back)."""
    from ..errors import UsageError
    from ..models import load_model
    from ..report.recommend import Budget
    from ..runs import _resolve_targets
    from .space import Space, Tuner
    from .store import Measurements, study_storage

    if trials < 1:
        raise UsageError(f"--trials {trials}: must be >= 1")
    if eval_samples < 1:
        raise UsageError(f"--eval-samples {eval_samples}: must be >= 1")
    if time_budget_s is not None and time_budget_s <= 0:
        raise UsageError(f"--time-budget {time_budget_s}: must be > 0 seconds")
    if data is None:
        raise UsageError("tune needs --data (samples, with labels y for accuracy): quality is what it trades")
    say = progress or (lambda msg: log.info("%s", msg))
    chosen = _resolve_targets(list(targets or []), targets_file)
    loaded = model if hasattr(model, "predict") else load_model(str(model), weights=weights, input_shape=input_shape)
    storage = study_storage(db)
    cache = Measurements(storage)
    result = TuneResult(storage=storage.shown, targets={})
    try:
        for item in chosen:                         # runs._resolve_targets: [(Target, DeviceProfile)]
            t, profile = item if isinstance(item, tuple) else (item, None)
            if profile is None:
                from ..profiles import load_profile

                profile = load_profile(t.profile)
            budget = Budget.for_profile(t.profile, objective=objective, max_accuracy_drop=max_accuracy_drop,
                                        min_agreement=min_agreement, min_cosine=min_cosine,
                                        max_memory_mb=max_memory_mb)
            if feedback and passes:
                say(f"[{t.name}] --feedback: pruning/clustering passes not searched (their fine-tuning does "
                    f"not feed the state back)")
            space = Space.for_target(loaded, profile, artifacts=artifacts, passes=passes and not feedback, data=data)
            tuner = Tuner(loaded, t, profile, space, budget, data=data, out=Path(out), cache=cache,
                          cache_dir=cache_dir, targets_file=targets_file, measure=measure or {},
                          eval_samples=eval_samples, trust_new_host=trust_new_host, say=say, seed=seed,
                          feedback=feedback)
            t0 = time.monotonic()
            res = tuner.run(storage, trials, time_budget_s)
            res.seconds = time.monotonic() - t0
            if apply and res.recommended:
                res.applied = str(tuner.apply(res.recommended, Path(apply)))
            result.targets[t.name] = res
    finally:
        cache.close()
    return result
