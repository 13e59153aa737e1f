"""``benchmark(target, artifacts)``: the Python verb behind ``edgecompress bench``.

    m = compress("model.onnx", "raspberry-pi-4", data="digits.npz")
    res = benchmark("local", m)          # a Manifest, ArtifactRecord(s), paths, manifest folders
    compare()                            # shows res: it was stored as a run

Arguments are checked here, before any work (:class:`~edgecompress.errors.UsageError`, exit 2).
One connection, one lock; artifacts are synced first. A failure to reach the device marks every
artifact failed (with the reason); one artifact failing leaves the others.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..device.result import BenchmarkResult
from ..errors import EdgeCompressError, UsageError
from ..manifest import Manifest
from ..registry import suggest
from .artifacts import expand_artifacts
from .session import DeviceSession, failed_result

log = logging.getLogger(__name__)


class BenchResults(list):
    """The benchmark results (a list of :class:`BenchmarkResult`) and the ``run_id`` they were stored under."""

    run_id: Optional[str] = None
    db: Optional[str] = None

    @property
    def failed(self) -> list[BenchmarkResult]:
        return [r for r in self if not r.ok]


def measure_with(base, overrides: Optional[dict] = None):
    """``base`` (a profile's :class:`~edgecompress.profiles.Measure`) with ``overrides`` (None values
    ignored); an unknown key or a value out of range is a UsageError naming it and what is valid."""
    from pydantic import ValidationError

    from ..profiles import Measure

    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    bad = sorted(set(over) - set(Measure.model_fields))
    if bad:
        raise UsageError(f"unknown measure setting(s) {bad}{suggest(bad[0], Measure.model_fields)}; "
                         f"valid: {', '.join(Measure.model_fields)}")
    try:
        return Measure(**{**base.model_dump(), **over})
    except ValidationError as e:
        msgs = [f"{'.'.join(map(str, err['loc']))} {err.get('input')!r}: {err['msg'].lower()}" for err in e.errors()]
        raise UsageError("bad measure setting: " + "; ".join(msgs)) from None


def check_delegate(profile, delegate: Optional[str]) -> None:
    """``delegate`` (None, ``cpu`` or one of the profile's ``delegates``), else a UsageError naming the valid ones."""
    if delegate is not None and delegate != "cpu" and delegate not in profile.delegates:
        valid = ", ".join(["cpu", *profile.delegates])
        raise UsageError(f"delegate {delegate!r} is not in profile {profile.name!r}'s delegates"
                         f"{suggest(delegate, ['cpu', *profile.delegates])}; valid: {valid}")


def _bench_record(s, r, measure, inputs, delegate, op_profiling, ops=False):
    """A manifest's failed artifact is listed as failed (never run); a degraded one is measured and stays so."""
    if r.status == "failed":
        return failed_result(s.target.name, r, f"compress: {r.error}")
    res = s.bench(r, measure=measure, inputs=inputs, delegate=delegate, op_profiling=op_profiling, ops=ops)
    if r.status == "degraded" and res.ok:
        res.status = "degraded"
        res.error = "below the quality floor at compress: " + "; ".join(r.fidelity.reasons)
    return res


def benchmark(target, artifacts, *, targets_file=None, runs: Optional[int] = None, warmup: Optional[int] = None,
              threads: Optional[int] = None, min_seconds: Optional[float] = None, inputs=None,
              trust_new_host: bool = False, lock_timeout_s: float = 600, delegate: Optional[str] = None,
              op_profiling: bool = False, store: bool = True, db=None, ops: bool = False,
              input_shapes: Optional[list] = None) -> BenchResults:
    """Deploy ``artifacts`` to ``target`` and measure each; returns the :class:`BenchmarkResult` list.

    ``artifacts``: a :class:`~edgecompress.manifest.Manifest`, artifact records, ``.onnx``/``.tflite``
    paths, ``manifest.json`` files or their folders (or a list of these). ``delegate`` must be one of
    the target profile's ``delegates`` (or ``cpu``). Unless ``store=False`` the results are stored as a
    run in the results store (``db``, default :func:`edgecompress.results.default_db_path`), so
    ``compare()`` shows them; the run id is ``.run_id`` of what is returned.
    """
    from ..profiles import load_profile
    from ..targets import load_target

    tgt = load_target(target, targets_file)
    profile = load_profile(tgt.profile)
    measure = measure_with(profile.measure, {"runs": runs, "warmup": warmup, "threads": threads,
                                             "min_seconds": min_seconds})
    if not lock_timeout_s > 0:
        raise UsageError(f"lock_timeout_s must be > 0, got {lock_timeout_s!r}")
    check_delegate(profile, delegate)
    records = expand_artifacts(artifacts)
    if not records:
        raise UsageError(f"nothing to benchmark: {artifacts!r} holds no ok artifact")
    out, device = BenchResults(), {}
    try:
        with DeviceSession(tgt, trust_new_host=trust_new_host, lock_timeout_s=lock_timeout_s, profile=profile) as s:
            try:
                s.sync([Path(r.path) for r in records if Path(r.path).exists()])
            except EdgeCompressError as e:
                log.warning("%s: bulk upload failed (%s); trying one by one", tgt.name, e)
            try:
                device = s.facts()
            except EdgeCompressError as e:
                log.warning("%s: no device facts: %s", tgt.name, e)
            s.input_shapes = list(input_shapes or [])          # --input-shape for raw files' dynamic dims
            out += [_bench_record(s, r, measure, inputs, delegate, op_profiling, ops) for r in records]
    except EdgeCompressError as e:
        out += [failed_result(tgt.name, r, str(e)) for r in records]
    if store:
        _store(out, artifacts, records, tgt, profile, device, measure, db)
    return out


def _store(out: BenchResults, artifacts, records, tgt, profile, device: dict, measure, db) -> None:
    """Store the results as one run (model from the manifest when one was given)."""
    from ..results import ResultsStore

    manifests = [artifacts] if isinstance(artifacts, Manifest) else \
        [a for a in artifacts if isinstance(a, Manifest)] if isinstance(artifacts, (list, tuple)) else []
    model = manifests[0].model if manifests else {}
    with ResultsStore(db) as st:
        run_id = st.start_run(model_source=model.get("source"), model_sha256=model.get("sha256"),
                              targets=[tgt.name], options={"verb": "benchmark", "measure": measure.model_dump()})
        st.set_target(run_id, tgt.name, status="running", profile=profile.name, transport=tgt.transport,
                      device=device or None)
        st.add_artifacts(run_id, profile.name, records)
        for r in out:
            st.add_result(run_id, r, profile=profile.name)
        n_ok = sum(r.ok for r in out)
        status = "ok" if n_ok == len(out) else ("partial" if n_ok else "failed")
        errors = "; ".join(f"{r.key}: {r.error}" for r in out if not r.ok)[:2000] or None
        st.set_target(run_id, tgt.name, status=status, error=errors)
        st.finish_run(run_id, status, {"succeeded": [tgt.name] if n_ok else [], "failed": [] if n_ok else [tgt.name]})
        out.run_id, out.db = run_id, str(st.path)
