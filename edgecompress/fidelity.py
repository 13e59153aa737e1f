"""How closely an artifact's outputs follow the FP32 reference (pure numpy).

* ``max_abs``: largest absolute difference over all outputs.
* ``cosine``: mean over samples of the cosine similarity of the flattened outputs.
* ``sqnr_db``: signal-to-quantization-noise ratio, 10·log10(Σref² / Σ(ref−out)²), capped at
  ``SQNR_CAP_DB`` when outputs are identical.
* ``top1_agreement``: share of samples whose arg-max class equals the reference's
  (classification outputs only: shape (N, C) with C > 1).
* ``accuracy`` / ``reference_accuracy``: share of samples whose arg-max equals the label
  (only when labels are given).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .manifest import Fidelity

SQNR_CAP_DB = 200.0


def _is_classification(a: np.ndarray) -> bool:
    return a.ndim == 2 and a.shape[1] > 1


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(outputs).argmax(1) == np.asarray(labels)).mean())


def compare(reference: np.ndarray, outputs: np.ndarray, labels: Optional[np.ndarray] = None) -> Fidelity:
    """Fidelity of ``outputs`` against ``reference`` (same shape (N, ...))."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(outputs, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"output shape {list(out.shape)} differs from the reference's {list(ref.shape)}")
    n = len(ref)
    r2, o2 = ref.reshape(n, -1), out.reshape(n, -1)
    denom = np.linalg.norm(r2, axis=1) * np.linalg.norm(o2, axis=1)
    cos = np.where(denom > 0, (r2 * o2).sum(1) / np.where(denom > 0, denom, 1), 1.0)
    noise = float(((ref - out) ** 2).sum())
    signal = float((ref ** 2).sum())
    sqnr = SQNR_CAP_DB if noise == 0 else min(SQNR_CAP_DB, 10 * np.log10(max(signal, 1e-300) / noise))
    fid = Fidelity(max_abs=float(np.abs(ref - out).max()) if ref.size else 0.0,
                   cosine=float(cos.mean()), sqnr_db=float(sqnr), samples=int(n))
    if _is_classification(ref):
        fid.top1_agreement = float((ref.argmax(1) == out.argmax(1)).mean())
        if labels is not None:
            fid.accuracy = accuracy(out, labels)
            fid.reference_accuracy = accuracy(ref, labels)
    return fid
