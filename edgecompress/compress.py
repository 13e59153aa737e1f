"""``compress(model, profile, data)``: build the artifacts a device profile asks for.

The plan for one profile: load the model and the samples; check every requested artifact
against ``exporters.CAPABILITIES`` (before any work); apply the profile's and the caller's
passes; build each artifact through its exporter (intermediates in the content-addressed
cache, ``cache.py``); run it in its runtime on held-out samples and measure its fidelity
against the source model's FP32 output (``fidelity.py``); write ``OUT/<profile>/``.

* Files: ``OUT/<profile>/model.<precision>.<onnx|tflite>`` and ``manifest.json``
  (``manifest.Manifest``). The folder is built under a temporary name and renamed into
  place when complete, so a half-written folder is never read.
* One artifact failing marks that artifact ``failed`` with the reason; the rest are built.
* Samples are split once into calibration and evaluation sets (disjoint, deterministic).
  Without data, random calibration is used only when explicitly allowed (INT8 accuracy is
  then unknown; a warning says so).
* The fidelity reference is the model as given (before passes), so a pass's accuracy cost
  shows in every artifact's fidelity.
"""
from __future__ import annotations

import datetime
import gzip
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from ._version import __version__
from .cache import Cache, default_cache_dir
from .data import Dataset, check_fits, load_data, random_data
from .errors import DataError, UsageError
from .exporters import check_supported, find_capability, get_exporter
from .exporters.base import ExportContext
from .fidelity import judge
from .manifest import ArtifactRecord, Manifest, sha256_file
from .models import LoadedModel, load_model
from .profiles import ArtifactSpec, DeviceProfile, load_profile

log = logging.getLogger(__name__)
CALIB_SAMPLES = 100
EVAL_SAMPLES = 400
RANDOM_SAMPLES = 200
LOW_AGREEMENT = 0.9


class _Job:
    """What compressing one model shares between profiles: model, samples, reference, cache."""

    def __init__(self, model: LoadedModel, data, out, *, allow_random_calibration: bool, cache_dir, progress,
                 feedback=None, metric=None, quality=None):
        self.progress = progress or (lambda msg: log.info("%s", msg))
        self.model = model
        self.feedback = check_feedback(model, feedback)
        self.metric = metric
        self.quality = dict(quality or {})
        self.notes: list[str] = []
        self.dataset = self._dataset(data, allow_random_calibration)
        samples = self.dataset.samples(model)
        fixed = [t.name for t in model.inputs if t.name not in model.shapes]
        model.fix_shapes(samples)
        for name in fixed:
            if name in model.shapes:
                self.progress(f"input {name!r}: dims {list(model.shapes[name])} from --data "
                              f"(--input-shape {name}=... to set them)")
        self.calib, self.eval = self.dataset.split(CALIB_SAMPLES, EVAL_SAMPLES)
        self.progress(f"data: {len(self.dataset)} samples -> {len(self.calib)} calibration, {len(self.eval)} "
                      f"held-out evaluation{' (in order: --feedback)' if self.feedback else ''}")
        if self.feedback:
            self.calib = with_state(self.model, self.calib, self.feedback)
        self.out = Path(out)
        self.cache = Cache(cache_dir or default_cache_dir(out), self.progress)
        self._reference: dict = {}
        self._fidelity: dict[tuple, tuple] = {}
        self._passes: dict[str, tuple] = {}

    def _dataset(self, data, allow_random: bool) -> Dataset:
        if isinstance(data, Dataset):
            check_fits(data, self.model, data.source)
            if self.feedback:
                data.ordered = True
            return data
        if data is not None:
            return load_data(data, self.model, ordered=bool(self.feedback))
        if not allow_random:
            raise DataError("no calibration data: give samples with --data (.npz keyed by input names, .npy, or an "
                            "image folder), or allow random calibration explicitly with --random-calibration")
        self.progress("WARNING: no --data: calibrating on random samples; INT8 accuracy is unknown")
        log.warning("calibrating on random samples: INT8 accuracy is unknown")
        ds = random_data(self.model, RANDOM_SAMPLES)
        ds.ordered = bool(self.feedback)
        return ds

    def reference_of(self, model: LoadedModel) -> dict:
        """{output name: FP32 outputs on the held-out samples} of ``model`` (the source or a passed one)."""
        key = id(model)
        if key not in self._reference:
            self._reference[key] = (model, model.run(self.eval.samples(self.model), self.feedback))
        return self._reference[key][1]

    @property
    def reference(self) -> dict:
        return self.reference_of(self.model)

    def passes_for(self, specs: list[dict]) -> tuple[LoadedModel, list[dict]]:
        if not specs:
            return self.model, []
        import json

        key = json.dumps(specs, sort_keys=True, default=str)
        if key not in self._passes:
            from .passes import apply_passes

            self.progress(f"passes: {', '.join(s['pass'] for s in specs)} ...")
            self._passes[key] = apply_passes(self.model, specs, self.dataset, eval_data=self.eval)
        return self._passes[key]

    def measure(self, path: Path, sha: str, layout: str, model: LoadedModel) -> tuple:
        """(fidelity, inputs, outputs) of one artifact file, memoized by its content."""
        key = (sha, layout, id(model))
        if key not in self._fidelity:
            from .exporters.execute import run_mapped
            from .fidelity import apply_metric, compare_all

            ref = self.reference_of(model)
            outputs, ins, outs, notes = run_mapped(path, layout=layout, model=self.model, reference=ref,
                                                   samples=self.eval.samples(self.model), feedback=self.feedback)
            fid = compare_all(ref, outputs, self.eval.y)
            if model is not self.model and fid.accuracy is not None:     # task quality against the source
                src = compare_all(self.reference, outputs, self.eval.y)
                fid.reference_accuracy = src.reference_accuracy
            if self.metric is not None:
                fid.metric = apply_metric(self.metric, ref, outputs, self.eval.y)
            self._fidelity[key] = (fid, ins, outs, notes)
        return self._fidelity[key]


def _calib_count(data: Dataset) -> int:
    """Calibration samples compress will take from ``data`` (its split)."""
    n = len(data)
    if n < 2:
        return n
    return min(n - 1, max(1, round(n * CALIB_SAMPLES / (CALIB_SAMPLES + EVAL_SAMPLES)))) \
        if n < CALIB_SAMPLES + EVAL_SAMPLES else CALIB_SAMPLES


def with_state(model: LoadedModel, ds: Dataset, feedback: dict) -> Dataset:
    """``ds`` (ordered) with the recurrent state inputs the FP32 model really feeds back on it: what
    calibration and per-layer sensitivity see, as the device will."""
    fed: dict = {}
    model.run(ds.samples(model), feedback, record=fed)
    return Dataset(None, ds.y, ds.source, ds.preprocessing + "; state inputs fed back from the FP32 model",
                   {k: np.asarray(v) for k, v in fed.items()}, True)


def check_feedback(model: LoadedModel, feedback) -> dict:
    """``{OUTPUT: INPUT}`` checked against the model's names (UsageError naming the valid ones)."""
    fb = dict(feedback or {})
    outs, ins = [t.name for t in model.outputs], [t.name for t in model.inputs]
    for o, i in fb.items():
        if o not in outs:
            raise UsageError(f"--feedback {o}={i}: the model has no output {o!r}; outputs: {', '.join(outs)}")
        if i not in ins:
            raise UsageError(f"--feedback {o}={i}: the model has no input {i!r}; inputs: {', '.join(ins)}")
    return fb


def parse_feedback(texts) -> dict:
    out = {}
    for t in texts or []:
        o, sep, i = str(t).partition("=")
        if not sep or not o or not i:
            raise UsageError(f"--feedback {t!r}: expected OUTPUT=INPUT (an output fed back as the next sample's input)")
        out[o] = i
    return out


def compress(model, profile, data=None, out: str | Path = "out", *, passes: Optional[list[dict]] = None,
             allow_random_calibration: bool = False, cache_dir=None,
             progress: Optional[Callable[[str], None]] = None, feedback=None, metric=None,
             quality=None) -> Manifest:
    """Build ``profile``'s artifacts for ``model`` into ``OUT/<profile>/``; return the manifest.

    ``model``: a LoadedModel or a MODEL spec (``models.load_model``); ``profile``: a
    DeviceProfile, a name or a YAML path; ``data``: a Dataset, a path or None; ``passes``:
    extra pass specs appended to the profile's. Bad input raises before any work (exit 2).
    """
    return compress_many(model, [profile], data, out, passes=passes,
                         allow_random_calibration=allow_random_calibration, cache_dir=cache_dir,
                         progress=progress, feedback=feedback, metric=metric, quality=quality)[_name(profile)]


def compress_many(model, profiles: Iterable, data=None, out: str | Path = "out", *,
                  passes: Optional[list[dict]] = None, allow_random_calibration: bool = False,
                  cache_dir=None, progress=None, feedback=None, metric=None, quality=None) -> dict[str, Manifest]:
    """``compress`` for several profiles; model, samples, reference and cached steps are shared.

    ``feedback``: ``{OUTPUT: INPUT}`` recurrent state; ``metric``: ``module:function`` (or a
    callable) scoring (reference, outputs) by name; ``quality``: overrides of the profiles'
    ``quality:`` floor (``min_cosine``, ``min_sqnr_db``, ``min_top1_agreement``, ``max_accuracy_drop``).
    """
    profiles = [load_profile(p) for p in profiles]
    if not profiles:
        raise UsageError("no profile given")
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise UsageError(f"profile names must differ (each gets its own folder): {', '.join(names)}")
    passes = list(passes or [])
    if passes:
        from .passes import validate_pass_specs

        validate_pass_specs(passes, source="command line", error=UsageError)
    model = model if isinstance(model, LoadedModel) else load_model(model)
    plans = [(p, check_supported(model.kind, p.artifacts, f"profile {p.name}")) for p in profiles]
    if isinstance(metric, str):
        from .fidelity import user_metric

        try:
            metric = user_metric(metric)
        except ValueError as e:
            raise UsageError(str(e)) from e
    bad = set(quality or {}) - {"min_cosine", "min_sqnr_db", "min_top1_agreement", "max_accuracy_drop"}
    if bad:
        raise UsageError(f"unknown quality setting(s) {sorted(bad)}; valid: min_cosine, min_sqnr_db, "
                         f"min_top1_agreement, max_accuracy_drop")
    job = _Job(model, data, out, allow_random_calibration=allow_random_calibration, cache_dir=cache_dir,
               progress=progress, feedback=feedback, metric=metric, quality=quality)
    return {p.name: _compress_one(job, p, caps, [*p.passes, *passes]) for p, caps in plans}


def _name(profile) -> str:
    return profile.name if isinstance(profile, DeviceProfile) else load_profile(profile).name


def _compress_one(job: _Job, profile: DeviceProfile, caps, pass_specs: list[dict]) -> Manifest:
    model, reports = job.passes_for(pass_specs)
    ctx = ExportContext(model, job.cache, job.calib, job.progress, batch=profile.batch)
    quality = profile.quality.model_copy(update={k: v for k, v in job.quality.items() if v is not None})
    notes = list(job.notes)
    if any(s.precision == "int8" for s in profile.artifacts) and len(job.calib) < CALIB_SAMPLES:
        note = (f"only {len(job.calib)} calibration samples for static INT8 (fewer than {CALIB_SAMPLES}): "
                f"activation ranges may not cover real inputs; give more --data")
        notes.append(note)
        job.progress(f"WARNING: {note}")
    job.out.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=job.out, prefix=f".{profile.name}.building-"))
    os.chmod(build, 0o777 & ~_umask())
    first_event = len(job.cache.events)
    try:
        records = []
        for spec, cap in zip(profile.artifacts, caps):
            job.progress(f"[{profile.name}] {spec.precision}.{spec.format} ...")
            records.append(_build_artifact(job, ctx, spec, cap, build, reports, quality))
        manifest = Manifest(
            model={"source": job.model.source, "sha256": job.model.sha256, "kind": job.model.kind,
                   "layout": job.model.layout, "inputs": [asdict(t) for t in job.model.inputs],
                   "outputs": [asdict(t) for t in job.model.outputs],
                   "shapes": {k: list(v) for k, v in job.model.shapes.items()},
                   "shape_source": dict(job.model.shape_source), "opset": job.model.opset,
                   "feedback": job.feedback, "fp32_size_bytes": _fp32_sizes(ctx, profile, records)},
            profile=profile.name, artifacts=records, data=_data_record(job),
            edgecompress_version=__version__,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            steps=job.cache.events[first_event:], notes=notes, quality=quality.model_dump())
        manifest.write(build / "manifest.json")
        final = job.out / profile.name
        _replace_dir(build, final)
        manifest.path = final / "manifest.json"
        return manifest
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _build_artifact(job: _Job, ctx: ExportContext, spec: ArtifactSpec, cap, build: Path,
                    reports: list[dict], quality) -> ArtifactRecord:
    rec = ArtifactRecord(path=f"model.{spec.precision}.{spec.format}", format=spec.format,
                         precision=spec.precision, layout=ctx.model.layout, passes=reports)
    dst = build / rec.path
    t0 = time.perf_counter()
    try:
        built = get_exporter(cap.exporter).export(ctx, spec)
        rec.layout, rec.tools, rec.calibration = built.layout, built.tools, built.calibration
        rec.notes, rec.float_ops, rec.opset = list(built.notes), list(built.float_ops), built.opset
        shutil.copyfile(built.path, dst)
        os.chmod(dst, 0o666 & ~_umask())
        data = dst.read_bytes()
        rec.size_bytes, rec.sha256 = len(data), sha256_file(dst)
        rec.gzip_size_bytes = len(gzip.compress(data, 9))
        rec.fidelity, rec.inputs, rec.outputs, run_notes = job.measure(dst, rec.sha256, rec.layout, ctx.model)
        rec.notes += run_notes
        task_ref = None
        if ctx.model is not job.model and rec.fidelity.reference_accuracy is not None:
            task_ref = rec.fidelity.reference_accuracy
        rec.status, rec.fidelity.reasons = judge(rec.fidelity, quality, task_ref)
        if rec.status == "degraded":
            job.progress(f"DEGRADED {rec.path}: {'; '.join(rec.fidelity.reasons)}")
    except Exception as e:  # one artifact failing never loses the others
        log.debug("artifact %s failed", rec.path, exc_info=True)
        rec.status, rec.error = "failed", _reason(e)
        rec.size_bytes, rec.sha256, rec.gzip_size_bytes = 0, None, None
        dst.unlink(missing_ok=True)
        job.progress(f"FAILED {rec.path}: {rec.error}")
    rec.seconds = round(time.perf_counter() - t0, 3)
    return rec


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(e: Exception) -> str:
    from .errors import EdgeCompressError

    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, EdgeCompressError) else f"{type(e).__name__}: {text}"[:1000]


def _fp32_sizes(ctx: ExportContext, profile: DeviceProfile, records: list[ArtifactRecord]) -> dict[str, int]:
    """FP32 file size per format in this profile (built in the cache if the profile lacks it)."""
    sizes = {r.format: r.size_bytes for r in records if r.precision == "fp32" and r.status != "failed"}
    for fmt in sorted({s.format for s in profile.artifacts} - set(sizes)):
        cap = find_capability(ctx.model.kind, fmt, "fp32")
        try:
            sizes[fmt] = get_exporter(cap.exporter).export(ctx, ArtifactSpec(format=fmt, precision="fp32")
                                                            ).path.stat().st_size
        except Exception as e:
            log.debug("no FP32 %s size: %s", fmt, e)
    return sizes


def _data_record(job: _Job) -> dict[str, Any]:
    d = job.dataset
    return {"source": d.source, "preprocessing": d.preprocessing, "sha256": d.sha256,
            "random": d.source == "random", "labels": d.y is not None,
            "calibration_samples": len(job.calib), "evaluation_samples": len(job.eval)}


def _replace_dir(src: Path, dst: Path) -> None:
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dst, old)
    os.rename(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def size_ratio(manifest: Manifest, rec: ArtifactRecord) -> Optional[float]:
    """``rec``'s size over the FP32 file of the same format (None if unknown)."""
    ref = (manifest.model.get("fp32_size_bytes") or {}).get(rec.format)
    return rec.size_bytes / ref if ref and rec.status != "failed" else None

