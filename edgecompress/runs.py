"""``run``: compress for every target's profile, deploy, measure, check fidelity, store, compare.

    run(model, ["local", "pi4-desk"], data="digits.npz") -> RunResult

What happens, in order:

1. Bad input stops the run before any work (exit 2): unknown target, bad profile, model or data.
2. A run row is written to the results store (:mod:`edgecompress.results`) at once.
3. One worker thread per target starts connecting to its device (``DeviceSession``: connect,
   runner, lock, facts) while the host compresses for all the targets' profiles in one
   ``compress_many`` call (steps shared between profiles are done once).
4. Each worker then syncs its profile's artifacts, benchmarks each one with the held-out
   samples as inputs (``DeviceSession.bench(inputs=...)``), compares the device's outputs with
   the host reference (:mod:`edgecompress.fidelity`: agreement, and accuracy when the data has
   labels) and commits the result to the store as soon as it arrives.
5. A target that cannot be reached, or fails, is marked failed with the reason; the other
   targets go on. With ``target_timeout_s`` a target still busy after that long (counted from
   the end of compression) is marked failed and left behind.
6. The run is finished in the store (ok | partial | failed) and the HTML report is written.

The held-out samples are disjoint from the calibration samples: ``data`` is split once here
(``eval_samples`` for fidelity, the rest for calibration). Without data, random calibration
must be allowed explicitly and fidelity is top-1 agreement on random inputs.

``progress(target, event, info)`` is called from worker threads; events: ``compress``
(target ``"*"``), ``connect``, ``connected``, ``waiting``, ``sync``, ``bench``, ``result``,
``done``, ``failed``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .device.result import BenchmarkResult
from .errors import EdgeCompressError, TargetError, UsageError

log = logging.getLogger(__name__)

Progress = Callable[[str, str, dict], None]


@dataclass
class TargetOutcome:
    name: str
    profile: str
    status: str = "pending"            # pending | running | ok | partial | failed
    error: Optional[str] = None
    device: dict = field(default_factory=dict)
    results: list[BenchmarkResult] = field(default_factory=list)

    @property
    def failed_artifacts(self) -> list[BenchmarkResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict:
        return {"name": self.name, "profile": self.profile, "status": self.status, "error": self.error,
                "device": self.device, "results": [r.to_dict() for r in self.results]}


@dataclass
class RunResult:
    run_id: str
    db: str
    out: str
    targets: dict[str, TargetOutcome]
    manifests: dict[str, Any] = field(default_factory=dict)   # profile name -> Manifest
    report: Optional[str] = None                               # the HTML report's path
    status: str = "ok"

    @property
    def succeeded(self) -> list[str]:
        return [n for n, t in self.targets.items() if t.status == "ok"]

    @property
    def failed(self) -> list[str]:
        return [n for n, t in self.targets.items() if t.status != "ok"]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "ok" else 1

    def to_dict(self) -> dict:
        arts = {p: [{"path": a.path, "format": a.format, "precision": a.precision, "status": a.status,
                     "error": a.error} for a in m.artifacts] for p, m in self.manifests.items()}
        return {"run_id": self.run_id, "status": self.status, "db": self.db, "out": self.out,
                "report": self.report, "succeeded": self.succeeded, "failed": self.failed,
                "artifacts": arts, "targets": {n: t.to_dict() for n, t in self.targets.items()}}


def _say(progress: Optional[Progress], target: str, event: str, **info) -> None:
    if progress is not None:
        try:
            progress(target, event, info)
        except Exception:  # noqa: BLE001 - a display problem never stops a run
            log.debug("progress callback failed", exc_info=True)


def _resolve_targets(names: list[str], targets_file) -> list:
    from .profiles import load_profile
    from .targets import load_targets

    inventory = load_targets(targets_file)
    if not names:
        names = [n for n in inventory if n != "local"] if targets_file else ["local"]
    if len(set(names)) != len(names):
        raise UsageError(f"a target is named twice: {', '.join(names)}")
    chosen = []
    for n in names:
        if isinstance(n, str) and n not in inventory:
            from .targets import load_target

            load_target(n, targets_file)        # raises TargetError with the valid names
        t = inventory[n] if isinstance(n, str) else n
        try:
            profile = load_profile(t.profile)
        except EdgeCompressError as e:
            raise TargetError(f"target {t.name!r}: {e}") from e
        chosen.append((t, profile))
    return chosen


def _split(model, data, eval_samples: int, allow_random: bool, ordered: bool = False):
    """(calibration Dataset | None, held-out Dataset) — disjoint."""
    from .data import load_data, random_data

    if data is None:
        if not allow_random:
            raise UsageError("no --data given: pass --data PATH (.npz keyed by input names, .npy or an image folder) "
                             "for calibration and accuracy, or --random-calibration to calibrate on random inputs "
                             "(fidelity is then agreement with the source model on random inputs only)")
        held = random_data(model, n=min(eval_samples, 64), seed=1)
        held.ordered = ordered
        return None, held
    ds = data if hasattr(data, "samples") else load_data(data, model, ordered=ordered)
    n = len(ds)
    n_eval = min(eval_samples, n // 2)
    if n_eval < 1:
        raise UsageError(f"{getattr(ds, 'source', data)}: {n} samples are too few to hold some out for the "
                         "device fidelity check; give at least 2")
    return ds.split(n - n_eval, n_eval)


def _held_out(loaded, data, eval_samples: int, allow_random: bool, feedback):
    """(checked feedback, calibration, held-out Dataset, the host's reference outputs by name) for a run:
    the held-out samples by input name (in order with feedback), run once through the source model."""
    from .compress import check_feedback

    feedback = check_feedback(loaded, feedback)
    calib, held = _split(loaded, data, eval_samples, allow_random, ordered=bool(feedback))
    loaded.fix_shapes(held.samples(loaded))
    return feedback, calib, held, loaded.run(held.samples(loaded), feedback)


def _fidelity(outputs, reference, labels, quality=None) -> dict:
    """Device fidelity per output (by model name), the same comparison compress makes on the host."""
    from dataclasses import asdict

    from . import fidelity

    if not isinstance(outputs, dict):
        outputs = {next(iter(reference)): np.asarray(outputs)}
    fid = fidelity.compare_all(reference, outputs, labels)
    if quality is not None:
        status, fid.reasons = fidelity.judge(fid, quality)
    return asdict(fid)


class _Runner:
    """The state shared by the worker threads of one run."""

    def __init__(self, store, run_id, targets, *, targets_file, trust_new_host, measure, held, reference,
                 progress):
        self.store, self.run_id, self.targets_file = store, run_id, targets_file
        self.trust_new_host, self.measure, self.held, self.reference = trust_new_host, measure, held, reference
        self.progress = progress
        self.layout = "NCHW"
        self.manifests: dict = {}
        self.compress_error: Optional[str] = None
        self.compressed = threading.Event()
        self.outcomes = {t.name: TargetOutcome(t.name, t.profile) for t in targets}
        self.done: dict = {}     # (target, artifact sha256) -> result kept from the run being resumed
        self.ops = False         # per-operator profiles too

    def worker(self, target, profile) -> None:
        out = self.outcomes[target.name]
        out.status = "running"
        try:
            self._work(target, profile, out)
        except BaseException as e:  # noqa: BLE001 - one target failing never loses the others
            out.error = f"{type(e).__name__}: {e}"
            out.status = "partial" if any(r.ok for r in out.results) else "failed"
            log.debug("target %s failed", target.name, exc_info=True)
        try:
            self.store.set_target(self.run_id, target.name, status=out.status, error=out.error)
        except Exception:  # noqa: BLE001 - the run gave up on this target and closed the store
            log.debug("could not record the end of target %s", target.name, exc_info=True)
            return
        if out.status == "failed":
            _say(self.progress, target.name, "failed", error=out.error)
        else:
            _say(self.progress, target.name, "done", status=out.status, error=out.error,
                 ok=sum(r.ok for r in out.results), total=len(out.results))

    def _work(self, target, profile, out: TargetOutcome) -> None:
        from .deploy import DeviceSession
        from .deploy.artifacts import manifest_artifacts

        self.store.set_target(self.run_id, target.name, status="running", profile=profile.name,
                              transport=target.transport)
        _say(self.progress, target.name, "connect", transport=target.transport)
        with DeviceSession(target, trust_new_host=self.trust_new_host, profile=profile) as s:
            out.device = s.facts()
            self.store.set_target(self.run_id, target.name, status="running", device=out.device)
            _say(self.progress, target.name, "connected", device=out.device)
            if not self.compressed.is_set():
                _say(self.progress, target.name, "waiting")
            self.compressed.wait()
            if self.compress_error:
                raise EdgeCompressError(f"nothing to deploy: compress failed: {self.compress_error}")
            manifest = self.manifests[profile.name]
            arts = manifest_artifacts(manifest)
            if not arts:
                raise EdgeCompressError(f"nothing to deploy: every artifact for profile {profile.name} failed "
                                        "to build (see the compare table)")
            _say(self.progress, target.name, "sync", n=len(arts))
            s.sync([Path(a.path) for a in arts])
            measure = self.measure(profile)
            for i, a in enumerate(arts, 1):
                key = f"{a.precision}.{a.format}"
                prior = self.done.get((target.name, a.sha256))
                if prior is not None:             # --resume: measured in the run being resumed
                    out.results.append(prior)
                    _say(self.progress, target.name, "result", artifact=key, i=i, n=len(arts), result=prior)
                    continue
                _say(self.progress, target.name, "bench", artifact=key, i=i, n=len(arts))
                from .device.execute import io_spec

                inputs = {**self.held.samples(self.loaded), "__io__": io_spec(manifest.model, a)}
                res = s.bench(a, measure=measure, inputs=inputs,
                              power=profile.power, input_layout=self.layout, ops=self.ops)
                outputs, res.outputs = res.outputs, None
                if res.ok and outputs is not None:
                    try:
                        res.fidelity = _fidelity(outputs, self.reference, self.held.y, profile.quality)
                    except Exception as e:  # noqa: BLE001 - kept as a failed check on this result
                        res.fidelity = {"error": f"{type(e).__name__}: {e}"}
                _mark_degraded(res, a, res.fidelity)
                self.store.add_result(self.run_id, res, profile=profile.name, size_bytes=a.size_bytes)
                out.results.append(res)
                _say(self.progress, target.name, "result", artifact=key, i=i, n=len(arts), result=res)
        n_ok = sum(r.ok for r in out.results)
        out.status = "ok" if n_ok == len(out.results) else ("partial" if n_ok else "failed")
        if out.status != "ok":
            bad = [f"{r.key}: {r.error}" for r in out.failed_artifacts]
            out.error = "; ".join(bad)[:2000]


def load_for_run(model, out, *, as_is: bool = False, weights=None, input_shape=None):
    """The model a run measures: a given file as it is (``as_is``, or any ``.tflite``), else loaded to compress."""
    if as_is or str(model).endswith(".tflite"):
        from .given import as_is_model

        return as_is_model(model, out, input_shape)
    if hasattr(model, "predict"):
        return model
    from .models import load_model

    return load_model(str(model), weights=weights, input_shape=input_shape)


def build_manifests(loaded, profiles: list, held, feedback, say, **compress_kw) -> dict:
    """{profile name: Manifest}: the given file as its one artifact (as-is), else ``compress_many``."""
    if getattr(loaded, "as_is", None) is not None:
        return {p.name: loaded.as_is(p, held, feedback, say) for p in profiles}
    from .compress import compress_many

    return compress_many(loaded, profiles, progress=say, feedback=feedback, **compress_kw)


def _calibration_notes(calib, profiles: dict) -> list[str]:
    from .compress import CALIB_SAMPLES

    if calib is None or not any(s.precision == "int8" for p in profiles.values() for s in p.artifacts):
        return []
    from .compress import _calib_count

    n = _calib_count(calib)
    if n >= CALIB_SAMPLES:
        return []
    return [f"only {n} calibration samples for static INT8 (fewer than {CALIB_SAMPLES}): activation ranges may "
            f"not cover real inputs; give more --data"]


def _mark_degraded(res, artifact, fid: Optional[dict]) -> None:
    """A result below the quality floor (on the host when built, or on the device) is ``degraded``."""
    reasons = list(artifact.fidelity.reasons or []) if artifact.status == "degraded" else []
    reasons += [f"device: {r}" for r in (fid or {}).get("reasons") or []]
    if res.fidelity is not None:
        res.fidelity["host"] = {"cosine": artifact.fidelity.cosine, "status": artifact.status}
    if res.ok and reasons:
        res.status = "degraded"
        res.error = "below the quality floor: " + "; ".join(reasons)


@dataclass
class RunConfig:
    """Everything :func:`run` takes besides the model and the targets; checked when made
    (a bad value is a :class:`~edgecompress.errors.UsageError` naming it), so a run never starts
    on a bad setting.

    ``measure``: overrides of the profiles' measure settings (``runs``, ``warmup``, ``min_seconds``,
    ``threads``, ``cooldown_s``, ``timeout_s``). ``html``: True writes ``OUT/report-<run id>.html``,
    a path writes there, False/None none. ``resume``: the id of an earlier run of the same model and
    measure settings (killed, or with failures) to continue: its ok results are kept and not measured
    again (matched by target and artifact sha256), its failed ones are dropped and redone, and it ends
    under the same id. ``progress(target, event, info)``: see the module docstring.
    """

    targets_file: Optional[str | Path] = None
    data: Any = None
    out: str | Path = "out"
    db: Any = None
    input_shape: Optional[tuple] = None
    weights: Optional[str] = None
    passes: Optional[list] = None
    allow_random_calibration: bool = False
    trust_new_host: bool = False
    measure: Optional[dict] = None
    eval_samples: int = 200
    target_timeout_s: Optional[float] = None
    html: Any = True
    cache_dir: Optional[str | Path] = None
    progress: Optional[Progress] = None
    resume: Optional[str] = None
    ops: bool = False                 # per-operator profiles on the device too (result.ops)
    feedback: Optional[dict] = None   # {OUTPUT: INPUT}: recurrent state fed back, samples in order
    metric: Any = None                # module:function task metric (compress)
    quality: Optional[dict] = None    # overrides of the profiles' quality floor
    as_is: bool = False               # measure the given .onnx as it is (a .tflite always is)

    def __post_init__(self) -> None:
        from .deploy.bench import measure_with
        from .profiles import Measure

        if isinstance(self.eval_samples, bool) or not isinstance(self.eval_samples, int) or self.eval_samples < 1:
            raise UsageError(f"eval_samples must be an integer >= 1, got {self.eval_samples!r}")
        if self.target_timeout_s is not None and not (isinstance(self.target_timeout_s, (int, float))
                                                      and self.target_timeout_s > 0):
            raise UsageError(f"target_timeout_s must be a number > 0 (or None), got {self.target_timeout_s!r}")
        self.measure = {k: v for k, v in (self.measure or {}).items() if v is not None}
        measure_with(Measure(), self.measure)          # unknown keys, values out of range
        if self.passes is not None and not isinstance(self.passes, (list, tuple)):
            raise UsageError(f"passes must be a list of pass specs, got {type(self.passes).__name__}")
        if self.progress is not None and not callable(self.progress):
            raise UsageError("progress must be a callable progress(target, event, info)")
        if self.input_shape is not None and not isinstance(self.input_shape, (tuple, list, dict)):
            raise UsageError(f"input_shape must be a tuple of dims, got {self.input_shape!r}")


def run(model, targets: list, config: Optional[RunConfig] = None, **options) -> RunResult:
    """Compress ``model`` for each target's profile, measure every artifact on every target, store it all.

    ``targets``: target names (or Target objects); empty means ``local`` (or, with a
    ``targets_file``, every target in it). ``config``: a :class:`RunConfig`; keyword ``options``
    are its fields (a thin convenience: ``run(m, ["local"], data="d.npz", measure={"runs": 20})``).
    Raises for bad input (exit 2) before any work; device and artifact failures are in the result.
    """
    import dataclasses

    try:
        cfg = dataclasses.replace(config, **options) if config is not None else RunConfig(**options)
    except TypeError as e:
        valid = ", ".join(f.name for f in dataclasses.fields(RunConfig))
        raise UsageError(f"run(): {e}; valid options: {valid}") from None
    targets_file, data, out, db = cfg.targets_file, cfg.data, cfg.out, cfg.db
    input_shape, weights, passes = cfg.input_shape, cfg.weights, cfg.passes
    allow_random_calibration, trust_new_host = cfg.allow_random_calibration, cfg.trust_new_host
    eval_samples, target_timeout_s, html = cfg.eval_samples, cfg.target_timeout_s, cfg.html
    cache_dir, progress, resume = cfg.cache_dir, cfg.progress, cfg.resume
    from .deploy.bench import measure_with
    from .results import ResultsStore

    resolved = _resolve_targets(list(targets or []), targets_file)     # [(Target, DeviceProfile)], once
    chosen = [t for t, _ in resolved]
    target_profile = {t.name: p for t, p in resolved}
    profiles = {}
    for p in target_profile.values():
        profiles.setdefault(p.name, p)
    overrides = cfg.measure
    feedback, metric, quality = cfg.feedback, cfg.metric, cfg.quality
    loaded = load_for_run(model, out, as_is=cfg.as_is, weights=weights, input_shape=input_shape)
    feedback, calib, held, reference = _held_out(loaded, data, eval_samples, allow_random_calibration, feedback)

    def measure_for(profile):
        return measure_with(profile.measure, overrides)

    out = Path(out)
    store = ResultsStore(db)
    done: dict = {}
    if resume:
        try:
            run_id, done = _resume(store, resume, loaded, overrides)
        except BaseException:
            store.close()
            raise
    else:
        run_id = store.start_run(model_source=loaded.source, model_sha256=loaded.sha256,
                                 targets=[t.name for t in chosen],
                                 options={"profiles": {t.name: target_profile[t.name].name for t in chosen},
                                          "data": None if data is None else str(getattr(data, "source", data)),
                                          "eval_samples": len(held), "labels": held.y is not None,
                                          "measure": overrides, "out": str(out), "passes": passes or [],
                                          "notes": _calibration_notes(calib, profiles)})
    runner = _Runner(store, run_id, chosen, targets_file=targets_file, trust_new_host=trust_new_host,
                     measure=measure_for, held=held, reference=reference, progress=progress)
    runner.done = done
    runner.layout = loaded.layout
    runner.loaded = loaded
    runner.ops = cfg.ops
    result = RunResult(run_id=run_id, db=str(store.path), out=str(out), targets=runner.outcomes)
    threads = []
    try:
        for t in chosen:
            th = threading.Thread(target=runner.worker, args=(t, target_profile[t.name]),
                                  name=f"edgecompress-{t.name}", daemon=True)
            th.start()
            threads.append(th)
        _say(progress, "*", "compress", profiles=sorted(profiles))
        try:
            say = (lambda msg: _say(progress, "*", "compress_step", text=msg))
            runner.manifests = build_manifests(loaded, list(profiles.values()), held, feedback, say, data=calib,
                                               out=out, passes=passes, cache_dir=cache_dir, metric=metric,
                                               allow_random_calibration=allow_random_calibration, quality=quality)
            for name, m in runner.manifests.items():
                store.add_artifacts(run_id, name, m.artifacts, folder=m.folder)
            result.manifests = runner.manifests
            _say(progress, "*", "compressed", manifests=runner.manifests)
        except EdgeCompressError as e:
            runner.compress_error = f"{type(e).__name__}: {e}"
            if e.exit_code == 2:          # bad input found while compressing: stop, after recording it
                runner.compressed.set()
                store.finish_run(run_id, "failed", {"error": runner.compress_error})
                raise
            _say(progress, "*", "compress_failed", error=runner.compress_error)
        except Exception as e:            # a bug, not a device or input problem: record it, then raise
            runner.compress_error = f"{type(e).__name__}: {e}"
            runner.compressed.set()
            store.finish_run(run_id, "failed", {"error": runner.compress_error})
            raise
        finally:
            runner.compressed.set()
        deadline = None if target_timeout_s is None else time.monotonic() + target_timeout_s
        for t, th in zip(chosen, threads):
            th.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if th.is_alive():
                o = runner.outcomes[t.name]
                o.status, o.error = "failed", f"timed out: still busy {target_timeout_s:g} s after compression"
                store.set_target(run_id, t.name, status="failed", error=o.error)
                _say(progress, t.name, "failed", error=o.error)
        result.status = "ok" if all(o.status == "ok" for o in runner.outcomes.values()) and not \
            runner.compress_error and not _any_artifact_failed(runner.manifests) else (
            "failed" if not any(o.status in ("ok", "partial") for o in runner.outcomes.values()) else "partial")
        store.finish_run(run_id, result.status, {
            "succeeded": result.succeeded, "failed": result.failed, "compress_error": runner.compress_error})
        if html:
            from .report import compare, write_html

            path = out / f"report-{run_id}.html" if html is True else Path(html)
            result.report = str(write_html(compare([run_id], store), path))
        return result
    except KeyboardInterrupt:
        store.finish_run(run_id, "interrupted", {"error": "interrupted"})
        raise
    finally:
        store.close()


def run_farm(model, targets: list, *, farm: str, **kw) -> RunResult:
    """:func:`run` with the measuring done by farm workers (``--farm URL``, :mod:`edgecompress.farm.submit`):
    the same arguments plus ``farm`` (the Redis broker), ``artifact_store``, ``worker_wait_s``."""
    from .farm.submit import run_on_farm

    return run_on_farm(model, targets, farm=farm, **kw)


def _resume(store, run_id: str, loaded, overrides: dict) -> tuple[str, dict]:
    """Reopen run ``run_id`` (same model and measure settings, else UsageError) ->
    (its id, {(target, artifact sha256): its ok result})."""
    old = store.run(run_id)
    if old.model_sha256 != loaded.sha256:
        raise UsageError(f"cannot resume run {old.id}: it measured model {old.model_source} "
                         f"(sha256 {str(old.model_sha256)[:12]}), not {loaded.source} (sha256 {loaded.sha256[:12]}); "
                         f"resume with the same model or start a new run without --resume")
    if (old.options.get("measure") or {}) != overrides:
        raise UsageError(f"cannot resume run {old.id}: it used measure settings {old.options.get('measure') or {}}, "
                         f"this command {overrides}; give the same --runs/--warmup/--min-seconds/--threads "
                         f"or start a new run without --resume")
    done = {(r["target"], r["artifact_sha256"]): r["result"] for r in store.results(old.id) if r["status"] == "ok"}
    store.reopen_run(old.id)
    log.info("resuming run %s: %d result(s) kept", old.id, len(done))
    return old.id, done


def _any_artifact_failed(manifests: dict) -> bool:
    """Failed or degraded artifacts make a run partial (exit 1)."""
    return any(a.status != "ok" for m in manifests.values() for a in m.artifacts)
