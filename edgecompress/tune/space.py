"""The search space of one target and the trial loop (see :mod:`edgecompress.tune`)."""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import Candidate, TargetTune

log = logging.getLogger(__name__)
#: static INT8 ONNX settings searched; "types" is activation x weight type as ORT supports them (S8S8,
#: U8S8, U8U8; S8 activations with U8 weights is not a format ORT has)
INT8_OPTIONS = {"per_channel": [True, False], "calibration": ["minmax", "entropy", "percentile"],
                "types": ["s8s8", "u8s8", "u8u8"], "quant_format": ["qdq", "qoperator"]}
_TYPES = {"s8": "int8", "u8": "uint8"}
PASS_CHOICES = ["none", "prune:0.25", "prune:0.5", "cluster:16"]
MAX_KEEP_FLOAT = 3
FINETUNE_EPOCHS = 2


@dataclass
class Space:
    artifacts: list[str]                 # precision.format choices
    keep_max: int = 0                    # mixed precision: up to this many sensitive layers in float
    passes: list[str] = field(default_factory=lambda: ["none"])
    threads: int = 1                     # 1..threads

    @classmethod
    def for_target(cls, model, profile, *, artifacts=None, passes=True, data=None) -> "Space":
        from ..errors import UsageError
        from ..exporters import CAPABILITIES
        from ..profiles import RUNTIME_OF_FORMAT

        possible = sorted(f"{c.precision}.{c.format}" for c in CAPABILITIES if c.source == model.kind
                          and RUNTIME_OF_FORMAT[c.format] in profile.runtimes)
        chosen = possible if not artifacts else list(artifacts)
        bad = [a for a in chosen if a not in possible]
        if bad:
            raise UsageError(f"--artifacts {','.join(bad)}: not buildable from a {model.kind} model for profile "
                             f"{profile.name}; valid: {', '.join(possible)}")
        labelled = data is not None and len(model.inputs) == 1     # the passes train single-input models
        kinds = {"torch": PASS_CHOICES, "keras": ["none", "cluster:16"]}
        return cls(artifacts=chosen, keep_max=MAX_KEEP_FLOAT if "int8.onnx" in chosen else 0,
                   passes=kinds.get(model.kind, ["none"]) if passes and labelled else ["none"],
                   threads=max(1, min(profile.hardware.cores, 4)))

    def key(self) -> dict:
        return {"artifacts": self.artifacts, "keep_max": self.keep_max, "passes": self.passes,
                "threads": self.threads, "int8": INT8_OPTIONS}


def label(s: dict) -> str:
    parts = [s["artifact"]]
    if s["artifact"] == "int8.onnx":
        parts.append(f"{'pc' if s.get('per_channel', True) else 'pt'}/{s.get('calibration', 'minmax')}/"
                     f"{s.get('types', 's8s8')}/{s.get('quant_format', 'qdq')}")
        if s.get("keep_float"):
            parts.append(f"keep{s['keep_float']}")
    if s.get("pass", "none") != "none":
        parts.append(s["pass"])
    parts.append(f"t{s.get('threads', 1)}")
    return " ".join(parts)


def _pass_spec(name: str) -> list[dict]:
    if name == "none":
        return []
    kind, value = name.split(":")
    if kind == "prune":
        return [{"pass": "prune", "method": "structured", "amount": float(value), "epochs": FINETUNE_EPOCHS}]
    return [{"pass": "cluster", "clusters": int(value)}]


class Tuner:
    """One target's study: build, measure, record; Pareto set and recommendation at the end."""

    def __init__(self, model, target, profile, space: Space, budget, *, data, out: Path, cache, cache_dir,
                 targets_file, measure: dict, eval_samples: int, trust_new_host: bool, say, seed: int,
                 feedback: Optional[dict] = None):
        from ..cache import Cache, default_cache_dir
        from ..compress import CALIB_SAMPLES, EVAL_SAMPLES, check_feedback, with_state
        from ..data import load_data

        self.model, self.target, self.profile, self.space, self.budget = model, target, profile, space, budget
        self.out, self.cache, self.say, self.seed = out, cache, say, seed
        self.targets_file, self.trust_new_host = targets_file, trust_new_host
        self.files = Cache(cache_dir or default_cache_dir(out), lambda m: None)
        # --feedback: samples in order, each output fed back as the next sample's input (as compress)
        self.feedback = check_feedback(model, feedback)
        self.dataset = data if hasattr(data, "samples") else load_data(data, model, ordered=bool(self.feedback))
        if self.feedback:
            self.dataset.ordered = True
        self.calib, evalset = self.dataset.split(CALIB_SAMPLES, EVAL_SAMPLES)   # as compress splits it
        self.held = evalset.subset(slice(0, min(len(evalset), eval_samples)))
        self.samples = self.held.samples(model)                               # by input name, any dtype
        model.fix_shapes(self.samples)
        if self.feedback:
            self.calib = with_state(model, self.calib, self.feedback)
        fed: dict = {}
        self.reference = model.run(self.samples, self.feedback, record=fed)  # by output name
        self.fed = {k: np.asarray(v) for k, v in fed.items()} if self.feedback else self.samples
        # a cached fidelity is for these samples (and this feedback) only
        self.held_key = _digest(self.samples, self.held.y, json.dumps(self.feedback, sort_keys=True)
                                if self.feedback else "")
        self.model_block = {"inputs": [asdict(t) for t in model.inputs], "layout": model.layout,
                            "outputs": [asdict(t) for t in model.outputs], "feedback": dict(self.feedback)}
        m = profile.measure.model_dump()
        m.update({k: v for k, v in measure.items() if v is not None})
        self.measure = m
        self.variants: dict = {}
        self.sensitivity: list = []
        self.session = None
        self.measured = 0

    # -- building ---------------------------------------------------------------------------
    def _variant(self, pass_name: str):
        """(model after the pass, its ExportContext), memoized."""
        from ..exporters.base import ExportContext

        if pass_name not in self.variants:
            model = self.model
            if pass_name != "none":
                from ..passes import apply_passes

                self.say(f"[{self.target.name}] pass {pass_name} ...")
                model, _ = apply_passes(self.model, _pass_spec(pass_name), self.dataset, eval_data=self.held)
            self.variants[pass_name] = ExportContext(model, self.files, self.calib, lambda m: None)
        return self.variants[pass_name]

    def spec(self, s: dict):
        from ..profiles import ArtifactSpec

        precision, fmt = s["artifact"].split(".")
        kw = {}
        if s["artifact"] == "int8.onnx":
            kw = {k: s[k] for k in ("per_channel", "calibration", "quant_format") if k in s}
            types = s.get("types", "s8s8")
            kw.update(activation_type=_TYPES[types[:2]], weight_type=_TYPES[types[2:]])
            if s.get("keep_float"):
                kw["keep_float"] = [d["node"] for d in self.sensitivity[: s["keep_float"]]]
        return ArtifactSpec(format=fmt, precision=precision, **kw)

    def build(self, s: dict):
        from ..exporters import find_capability, get_exporter
        from ..exporters.execute import run_mapped
        from ..manifest import ArtifactRecord, sha256_file

        ctx = self._variant(s.get("pass", "none"))
        spec = self.spec(s)
        cap = find_capability(ctx.model.kind, spec.format, spec.precision)
        built = get_exporter(cap.exporter).export(ctx, spec)
        # the artifact's tensors mapped to the model's, as compress records them (the device reads them)
        _, ins, outs, _ = run_mapped(built.path, layout=built.layout, model=self.model, samples=self.samples,
                                     reference=self.reference, feedback=self.feedback)
        return ArtifactRecord(path=str(built.path), format=spec.format, precision=spec.precision,
                              layout=built.layout, size_bytes=built.path.stat().st_size,
                              sha256=sha256_file(built.path), calibration=built.calibration, inputs=ins, outputs=outs)

    def analyse(self) -> None:
        """Per-layer sensitivity of the static INT8 ONNX artifact (once per model)."""
        if not self.space.keep_max:
            return
        from ..exporters.onnx import calibrate, export_fp32
        from .sensitivity import layer_sensitivity

        ctx = self._variant("none")
        cal = calibrate(ctx, export_fp32(ctx), "minmax")
        # the state inputs the FP32 model fed back (with --feedback): what each layer sees on the device
        self.sensitivity = layer_sensitivity(cal, {k: v[:100] for k, v in self.fed.items()}, self.model)
        self.space.keep_max = min(self.space.keep_max, len(self.sensitivity))
        top = ", ".join(f"{d['node']} ({d['op_type']}) {d['sqnr_db']:.1f} dB" for d in self.sensitivity[:3])
        self.say(f"[{self.target.name}] most quantization-sensitive layers: {top}")

    # -- measuring --------------------------------------------------------------------------
    def _key(self, threads: int) -> str:
        m = self.measure
        return self.cache.key(threads, {**{k: m[k] for k in ("runs", "warmup", "min_seconds")},
                                        "held_out": self.held_key})

    def _cached(self, rec, threads: int) -> Optional[dict]:
        """The full measurement of these bytes on this target with these settings, if one was made."""
        hit = self.cache.get(self.target.name, rec.sha256, self._key(threads))
        if hit is not None:
            hit["cached"] = True
        return hit

    def _bench(self, rec, threads: int, *, quick: bool) -> dict:
        from ..device.execute import io_spec
        from ..profiles import Measure
        from ..runs import _fidelity

        m = dict(self.measure, threads=threads)
        if quick:              # a short look, for dropping dominated candidates; never cached
            m.update(runs=max(10, int(m["runs"]) // 3), min_seconds=0.0)
        key = self._key(threads)
        hit = None if quick else self._cached(rec, threads)
        if hit is not None:
            return hit
        inputs = None if quick else {**self.samples, "__io__": io_spec(self.model_block, rec)}
        res = self.session.bench(rec, measure=Measure(**m), inputs=inputs,
                                 power=self.profile.power, input_layout=self.model.layout)
        d = res.to_dict()
        if res.ok and not quick and res.outputs is not None:
            try:
                d["fidelity"] = _fidelity(res.outputs, self.reference, self.held.y)
            except Exception as e:  # noqa: BLE001 - kept as a failed candidate
                d["status"], d["error"] = "failed", f"fidelity: {type(e).__name__}: {e}"
        if d.get("status") == "ok" and not quick:
            self.cache.put(self.target.name, rec.sha256, key, d)
        self.measured += 0 if quick else 1
        d["cached"] = False
        return d

    def _dominated(self, study, quick: dict, size: int) -> Optional[int]:
        """The number of a measured trial that dominates this candidate whatever its quality."""
        lat = quick.get("latency_ms") or {}
        low = (lat.get("p50_ci") or [lat.get("p50")])[0]
        if low is None:
            return None
        first = next(iter(self.reference.values())) if isinstance(self.reference, dict) else self.reference
        ref = float((np.asarray(first).argmax(-1) == self.held.y).mean()) if self.held.y is not None else 1.0
        for t in study.get_trials(deepcopy=False):
            if t.state.name != "COMPLETE" or t.values is None:
                continue
            p50, q, sz = t.values
            if p50 < low and sz <= size and q >= ref - 1e-12:
                return t.number
        return None

    def objective(self, trial):
        import optuna

        s = {"artifact": trial.suggest_categorical("artifact", self.space.artifacts)}
        if s["artifact"] == "int8.onnx":
            for k, choices in INT8_OPTIONS.items():
                s[k] = trial.suggest_categorical(k, choices)
            s["keep_float"] = trial.suggest_int("keep_float", 0, self.space.keep_max) if self.space.keep_max else 0
        s["threads"] = trial.suggest_int("threads", 1, self.space.threads)
        s["pass"] = trial.suggest_categorical("pass", self.space.passes)
        trial.set_user_attr("settings", s)
        trial.set_user_attr("label", label(s))
        for t in trial.study.get_trials(deepcopy=False):
            if t.number != trial.number and t.state.is_finished() and t.user_attrs.get("settings") == s:
                trial.set_user_attr("status", "duplicate")
                trial.set_user_attr("error", f"same settings as #{t.number}")
                raise optuna.TrialPruned()
        try:
            rec = self.build(s)
        except Exception as e:  # noqa: BLE001 - a candidate that cannot be built is recorded, the search goes on
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", f"build: {type(e).__name__}: {str(e)[:300]}")
            self.say(f"[{self.target.name}] #{trial.number} {label(s)}: build failed: {str(e)[:120]}")
            raise optuna.TrialPruned() from e
        trial.set_user_attr("sha256", rec.sha256)
        trial.set_user_attr("size_bytes", rec.size_bytes)
        trial.set_user_attr("path", rec.path)
        quick = None if self._cached(rec, s["threads"]) else self._bench(rec, s["threads"], quick=True)
        if quick is not None and quick.get("status") == "ok":
            by = self._dominated(trial.study, quick, rec.size_bytes)
            if by is not None:
                trial.set_user_attr("status", "dropped")
                trial.set_user_attr("error", f"dominated by #{by} after a short measurement")
                trial.set_user_attr("p50_ms", (quick.get("latency_ms") or {}).get("p50"))
                self.say(f"[{self.target.name}] #{trial.number} {label(s)}: dropped early (dominated by #{by})")
                raise optuna.TrialPruned()
        d = self._bench(rec, s["threads"], quick=False)
        if d.get("status") != "ok":
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", (d.get("error") or "?")[:300])
            raise optuna.TrialPruned()
        lat, fid, mem = d.get("latency_ms") or {}, d.get("fidelity") or {}, d.get("memory_mb") or {}
        q = fid.get("accuracy") if fid.get("accuracy") is not None else fid.get("top1_agreement")
        attrs = {"status": "ok", "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "samples": lat.get("samples"),
                 "accuracy": fid.get("accuracy"), "reference_accuracy": fid.get("reference_accuracy"),
                 "top1_agreement": fid.get("top1_agreement"), "cosine": fid.get("cosine"),
                 "peak_rss_mb": mem.get("peak_rss"), "cached": d.get("cached", False), "stable": d.get("stable")}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        qtext = "" if q is None else f", {'accuracy' if fid.get('accuracy') is not None else 'agreement'} {q:.1%}"
        self.say(f"[{self.target.name}] #{trial.number} {label(s)}: p50 {lat.get('p50'):.4g} ms{qtext}, "
                 f"{rec.size_bytes / 1024:.1f} KB" + (" (cached)" if d.get("cached") else ""))
        return float(lat["p50"]), float(q if q is not None else 0.0), float(rec.size_bytes)

    # -- the study --------------------------------------------------------------------------
    def _seeds(self) -> list[dict]:
        """The profile's usual artifacts first (and INT8 with the most sensitive layers in float)."""
        seeds = [{"artifact": a, "threads": 1, "pass": "none"} for a in self.space.artifacts]
        for s in seeds:
            if s["artifact"] == "int8.onnx":
                s.update({k: v[0] for k, v in INT8_OPTIONS.items()}, keep_float=0)
        if self.space.keep_max:
            base = next(s for s in seeds if s["artifact"] == "int8.onnx")
            seeds += [dict(base, keep_float=k) for k in range(1, min(2, self.space.keep_max) + 1)]
        return seeds

    def run(self, storage, trials: int, time_budget_s: Optional[float]) -> TargetTune:
        """``storage``: a :class:`edgecompress.tune.store.StudyStorage`."""
        import optuna

        from ..deploy import DeviceSession
        from .store import study_name

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.analyse()
        name = study_name(self.model.sha256, self.target.name, {**self.space.key(), "measure": self.measure,
                                                               "seed": self.seed})
        study = optuna.create_study(study_name=name, storage=storage.optuna(), load_if_exists=True,
                                    directions=["minimize", "maximize", "minimize"],
                                    sampler=optuna.samplers.TPESampler(seed=self.seed,
                                                                       n_startup_trials=max(10, trials // 2)))
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        for t in study.get_trials(deepcopy=False):        # a trial killed mid-way: mark it failed, redo
            if t.state.name == "RUNNING":
                study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if not study.get_trials(deepcopy=False):
            for s in self._seeds()[:trials]:
                params = {k: v for k, v in s.items() if k in ("artifact", "threads", "pass", "keep_float",
                                                               *INT8_OPTIONS)}
                study.enqueue_trial(params)
        remaining = trials - len(finished)
        if remaining > 0:
            self.say(f"[{self.target.name}] study {name}: {len(finished)} trial(s) done, {remaining} to go")
            with DeviceSession(self.target, targets_file=self.targets_file,
                               trust_new_host=self.trust_new_host) as session:
                self.session = session
                self.facts = session.facts()
                study.optimize(self.objective, n_trials=remaining, timeout=time_budget_s, catch=(Exception,),
                               gc_after_trial=False)
                self.session = None
        else:
            self.facts = {}
        return self.summarize(study, name)

    def summarize(self, study, name: str) -> TargetTune:
        from ..device.stats import median_ci
        from ..report import Row
        from ..report.pareto import Point, front
        from ..report.recommend import recommend

        cands = []
        for t in study.get_trials(deepcopy=False):
            if not t.state.is_finished() or t.user_attrs.get("status") == "duplicate":
                continue
            u = t.user_attrs
            c = Candidate(number=t.number, settings=u.get("settings") or dict(t.params),
                          status=u.get("status") or ("failed" if t.state.name == "FAIL" else "?"),
                          label=u.get("label") or "", size_bytes=u.get("size_bytes"), p50_ms=u.get("p50_ms"),
                          p90_ms=u.get("p90_ms"), accuracy=u.get("accuracy"),
                          reference_accuracy=u.get("reference_accuracy"), top1_agreement=u.get("top1_agreement"),
                          cosine=u.get("cosine"), peak_rss_mb=u.get("peak_rss_mb"), sha256=u.get("sha256"),
                          path=u.get("path"), cached=bool(u.get("cached")), stable=u.get("stable"),
                          error=u.get("error"), samples=list(u.get("samples") or []))
            if c.accuracy is not None and c.reference_accuracy is not None:
                c.delta_accuracy = c.accuracy - c.reference_accuracy
            cands.append(c)
        ok = [c for c in cands if c.status == "ok"]
        use_quality = all(c.quality is not None for c in ok)
        points = [Point(c.p50_ms, c.size_bytes, c.quality, median_ci(c.samples) if c.samples else None) for c in ok]
        for c, m in zip(ok, front(points, use_quality)):
            c.pareto = m
        rows = [Row(run_id=name, target=self.target.name, profile=self.profile.name, artifact=f"#{c.number}",
                    format=c.settings.get("artifact", ".").split(".")[1], precision=c.settings.get("artifact",
                                                                                                 ".").split(".")[0],
                    size_bytes=c.size_bytes, p50_ms=c.p50_ms, p90_ms=c.p90_ms, peak_rss_mb=c.peak_rss_mb,
                    accuracy=c.accuracy, reference_accuracy=c.reference_accuracy, top1_agreement=c.top1_agreement,
                    cosine=c.cosine, samples=c.samples, stable=c.stable) for c in ok]
        rec = recommend(rows, self.budget, {"target": self.target.name, "device": getattr(self, "facts", {})})
        chosen = next((c for c in ok if f"#{c.number}" == rec.artifact), None)
        import re

        labels = {f"#{c.number}": f"#{c.number} {c.label}" for c in cands}
        reason = re.sub(r"#\d+(?=[: ])", lambda m: labels.get(m.group(0), m.group(0)), rec.reason)
        return TargetTune(target=self.target.name, study=name, objective=self.budget.objective, candidates=cands,
                          recommended=chosen, reason=reason, sensitivity=self.sensitivity, measured=self.measured)

    def apply(self, c: Candidate, folder: Path) -> Path:
        """Copy the chosen artifact to FOLDER/TARGET/ with a profile.yaml that rebuilds it."""
        import yaml

        dst = folder / self.target.name
        dst.mkdir(parents=True, exist_ok=True)
        s = c.settings
        spec = self.spec(s)
        art = dst / f"model.{spec.precision}.{spec.format}"
        shutil.copyfile(c.path, art)
        prof = json.loads(self.profile.model_dump_json())
        prof["name"] = f"{self.profile.name}-tuned"
        prof["description"] = f"tuned by edgecompress tune for {self.target.name}: {c.label}"
        prof["artifacts"] = [{"format": spec.format, "precision": spec.precision, "calibration": spec.calibration,
                              **spec.quant_settings()}]
        prof["passes"] = _pass_spec(s.get("pass", "none"))
        prof["measure"]["threads"] = s.get("threads", 1)
        (dst / "profile.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
        (dst / "tuned.json").write_text(json.dumps(c.to_dict(), indent=2, default=str))
        return dst


def _digest(samples: dict, labels, extra: str = "") -> str:
    import hashlib

    h = hashlib.sha256(extra.encode())
    for name in sorted(samples):
        a = np.ascontiguousarray(samples[name])
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    if labels is not None:
        h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()[:16]


