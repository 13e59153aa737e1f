"""How closely an artifact's outputs follow the reference, PER OUTPUT, and the quality floor.

For every output (by the model's name), over ALL its held-out samples at once:

* ``max_abs`` / ``mean_abs``: largest / mean absolute difference;
* ``cosine``: cosine similarity of the whole output (all samples flattened together: a
  per-sample cosine averaged over samples is noise where an output is near zero for some);
* ``sqnr_db``: 10·log10(Σref² / Σ(ref−out)²), capped at ``SQNR_CAP_DB`` when identical;
* ``top1_agreement`` (and ``accuracy`` / ``reference_accuracy`` with labels) for outputs that
  are class scores: float, (N, C) with C > 1 (or (N, 1, C)).

The aggregate is the worst output's value of each (``worst_output`` names the lowest cosine).
``judge`` applies the quality floor (profile ``quality:`` and flags) -> ``ok`` | ``degraded``
with the reasons. ``user_metric`` loads ``--metric module:function``; it is called with
(reference, outputs) dicts by output name (and labels) and returns a number or a dict of numbers.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable, Optional

import numpy as np

from .manifest import Fidelity, OutputFidelity

SQNR_CAP_DB = 200.0


def is_class_scores(a: np.ndarray) -> bool:
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return False
    if a.ndim == 3 and a.shape[1] == 1:
        a = a[:, 0]
    return a.ndim == 2 and a.shape[1] > 1


def _scores(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, 0] if a.ndim == 3 else a


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((_scores(outputs).argmax(1) == np.asarray(labels)).mean())


def compare_output(name: str, reference, outputs, labels=None) -> OutputFidelity:
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(outputs, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"output {name!r}: shape {list(out.shape)} differs from the reference's {list(ref.shape)}")
    diff = np.abs(ref - out)
    denom = float(np.linalg.norm(ref) * np.linalg.norm(out))
    if denom > 0:
        cos = float(ref.ravel() @ out.ravel() / denom)
    else:
        cos = 1.0 if not diff.size or diff.max() == 0 else 0.0
    noise, signal = float((diff ** 2).sum()), float((ref ** 2).sum())
    sqnr = SQNR_CAP_DB if noise == 0 else min(SQNR_CAP_DB, 10 * np.log10(max(signal, 1e-300) / noise))
    f = OutputFidelity(name=name, max_abs=float(diff.max()) if diff.size else 0.0,
                       mean_abs=float(diff.mean()) if diff.size else 0.0, cosine=cos, sqnr_db=float(sqnr))
    if is_class_scores(reference):
        f.top1_agreement = float((_scores(ref).argmax(1) == _scores(out).argmax(1)).mean())
        if labels is not None and len(labels) == len(_scores(ref)):
            f.accuracy = accuracy(out, labels)
            f.reference_accuracy = accuracy(ref, labels)
    return f


def compare_all(reference: dict, outputs: dict, labels=None, label_output: Optional[str] = None) -> Fidelity:
    """Per-output fidelity of ``outputs`` against ``reference`` (both by model output name)."""
    missing = [k for k in reference if k not in outputs]
    if missing:
        raise ValueError(f"the artifact gave no output for {', '.join(missing)} (it gave: {', '.join(outputs)})")
    per = []
    class_outs = [k for k in reference if is_class_scores(reference[k])]
    lab_out = label_output or (class_outs[0] if class_outs else None)
    for k in reference:
        per.append(compare_output(k, reference[k], outputs[k], labels if k == lab_out else None))
    return aggregate(per, n=_samples(reference))


def _samples(reference: dict) -> int:
    return max((len(v) for v in reference.values() if np.ndim(v)), default=0)


def aggregate(per: list, n: int = 0) -> Fidelity:
    def worst(attr, fn):
        vals = [getattr(o, attr) for o in per if getattr(o, attr) is not None]
        return fn(vals) if vals else None

    f = Fidelity(max_abs=worst("max_abs", max), mean_abs=worst("mean_abs", max), cosine=worst("cosine", min),
                 sqnr_db=worst("sqnr_db", min), top1_agreement=worst("top1_agreement", min), samples=int(n),
                 outputs=per)
    acc = [o for o in per if o.accuracy is not None]
    if acc:
        f.accuracy, f.reference_accuracy = acc[0].accuracy, acc[0].reference_accuracy
    if per:
        f.worst_output = min(per, key=lambda o: o.cosine if o.cosine is not None else 2).name
    return f


def compare(reference, outputs, labels=None) -> Fidelity:
    """One output (arrays) or several (dicts by name)."""
    if isinstance(reference, dict):
        return compare_all(reference, outputs, labels)
    return compare_all({"output": reference}, {"output": outputs}, labels)


def judge(f: Fidelity, quality, task_reference: Optional[float] = None) -> tuple[str, list[str]]:
    """(``ok`` | ``degraded``, reasons) for fidelity ``f`` under the floor ``quality`` (profiles.Quality).

    ``task_reference``: the source model's accuracy where passes changed the model on purpose
    (accuracy is then judged against the source; closeness against the changed model).
    """
    reasons = []
    for o in f.outputs:
        q = quality.outputs.get(o.name)
        min_cos = q.min_cosine if q is not None and q.min_cosine is not None else quality.min_cosine
        min_sqnr = q.min_sqnr_db if q is not None and q.min_sqnr_db is not None else quality.min_sqnr_db
        min_top1 = q.min_top1_agreement if q is not None and q.min_top1_agreement is not None \
            else quality.min_top1_agreement
        if o.cosine is not None and o.cosine < min_cos:
            reasons.append(f"output {o.name!r}: cosine {o.cosine:.4f} < {min_cos:g}")
        if min_sqnr is not None and o.sqnr_db is not None and o.sqnr_db < min_sqnr:
            reasons.append(f"output {o.name!r}: SQNR {o.sqnr_db:.1f} dB < {min_sqnr:g} dB")
        if o.top1_agreement is not None and o.top1_agreement < min_top1:
            reasons.append(f"output {o.name!r}: top-1 agreement {o.top1_agreement:.1%} < {min_top1:.0%}")
        ref_acc = task_reference if task_reference is not None else o.reference_accuracy
        if o.accuracy is not None and ref_acc is not None and (ref_acc - o.accuracy) * 100 > quality.max_accuracy_drop:
            reasons.append(f"output {o.name!r}: accuracy {o.accuracy:.1%} is {(ref_acc - o.accuracy) * 100:.1f} "
                           f"points below the source's {ref_acc:.1%} (max drop {quality.max_accuracy_drop:g})")
    return ("degraded" if reasons else "ok"), reasons


def user_metric(spec: str) -> Callable:
    """``module:function`` or ``file.py:function`` -> the callable; ValueError naming what is wrong."""
    target, _, attr = str(spec).rpartition(":")
    if not target or not attr:
        raise ValueError(f"--metric {spec!r}: expected module:function or file.py:function")
    try:
        if target.endswith(".py"):
            sp = importlib.util.spec_from_file_location(f"_ec_metric_{abs(hash(target))}", target)
            mod = importlib.util.module_from_spec(sp)
            sp.loader.exec_module(mod)
        else:
            mod = importlib.import_module(target)
    except Exception as e:
        raise ValueError(f"--metric {spec!r}: cannot import {target} ({type(e).__name__}: {e})") from e
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ValueError(f"--metric {spec!r}: {target} has no function {attr!r}")
    return fn


def apply_metric(fn: Callable, reference: dict, outputs: dict, labels=None) -> dict:
    """Call a user metric; its result as ``{name: float}`` (a plain number becomes ``{"value": x}``)."""
    try:
        got = fn(reference, outputs, labels) if labels is not None else fn(reference, outputs)
    except TypeError:
        got = fn(reference, outputs)
    if isinstance(got, dict):
        return {str(k): float(v) for k, v in got.items()}
    return {"value": float(got)}
