"""What every pass gets and gives back.

A pass is ``run(model, spec, ctx) -> (model', measured)``: ``model`` is a
``models.LoadedModel`` (any dataclass with ``kind``, ``obj``, ``sha256``, ``inputs``),
``spec`` its validated settings (``specs.py``), ``ctx`` the data it may train and measure on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import PassError


@dataclass
class PassContext:
    """Labelled data for the passes: ``train_*`` to fine-tune / distil on, ``eval_*`` held out
    to measure accuracy before and after. Any of them may be ``None``."""

    train_x: Optional[np.ndarray] = None
    train_y: Optional[np.ndarray] = None
    eval_x: Optional[np.ndarray] = None
    eval_y: Optional[np.ndarray] = None
    data_note: str = "no data"

    @property
    def can_train(self) -> bool:
        return self.train_x is not None and self.train_y is not None and len(self.train_x) > 0

    @property
    def can_eval(self) -> bool:
        return self.eval_x is not None and self.eval_y is not None and len(self.eval_x) > 0

    def need_training_data(self, pass_name: str, why: str) -> None:
        """Raise :class:`PassError` unless labelled training data is present."""
        if not self.can_train:
            raise PassError(f"pass {pass_name!r} {why}, so it needs labelled training data: give "
                            f"--data (or --train-data) with x and y (an .npz with 'x' and 'y', or an "
                            f"image folder with one sub-folder per class); got: {self.data_note}")

    def fingerprint(self) -> str:
        """Content hash of the data the passes train and measure on (part of the new model hash)."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256()
            for a in (self.train_x, self.train_y, self.eval_x, self.eval_y):
                h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes() + str(a.shape).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def data_summary(self) -> dict:
        return {"train_samples": 0 if not self.can_train else int(len(self.train_x)),
                "eval_samples": 0 if not self.can_eval else int(len(self.eval_x)),
                "data": self.data_note}

    @classmethod
    def excluding(cls, x, y, eval_x, eval_y, note: str = "") -> "PassContext":
        """Evaluate on ``eval_x``/``eval_y``; train on the rows of ``x``/``y`` that are not among them
        (rows are matched by content, so samples that are evaluated are never trained on)."""
        seen = {np.ascontiguousarray(r).tobytes() for r in eval_x}
        keep = np.array([np.ascontiguousarray(r).tobytes() not in seen for r in x], dtype=bool)
        if y is None or not keep.any():
            return cls(None, None, eval_x, eval_y, note or f"{len(eval_x)} eval samples, none left to train on")
        return cls(x[keep], y[keep], eval_x, eval_y,
                   note or f"{int(keep.sum())} train / {len(eval_x)} eval samples (the eval samples "
                           f"are the ones compress measures fidelity on; never trained on)")

    @classmethod
    def from_arrays(cls, x=None, y=None, *, train_x=None, train_y=None, holdout: float = 0.2,
                    note: str = "") -> "PassContext":
        """Build from evaluation data (``x``, ``y``) and optional separate training data.

        Without separate training data, labelled ``x``/``y`` are split deterministically:
        the last ``holdout`` fraction is held out for measuring, the rest is trained on.
        """
        if train_x is not None:
            return cls(train_x, train_y, x, y, note or f"{len(train_x)} train / "
                       f"{0 if x is None else len(x)} eval samples (separate sets)")
        if x is None:
            return cls(data_note=note or "no data")
        if y is None:
            return cls(None, None, x, None, note or f"{len(x)} unlabelled samples")
        n_eval = max(1, int(round(len(x) * holdout)))
        if len(x) - n_eval < 1:
            return cls(None, None, x, y, note or f"{len(x)} labelled samples (too few to split)")
        return cls(x[:-n_eval], y[:-n_eval], x[-n_eval:], y[-n_eval:],
                   note or f"{len(x)} labelled samples split {len(x) - n_eval} train / {n_eval} "
                           f"held out (last {holdout:.0%})")


def training_requested(spec, field: str = "epochs") -> bool:
    """True when the user set ``field`` explicitly to a positive value."""
    return field in spec.model_fields_set and getattr(spec, field) > 0


def replace_model(model, obj, spec_settings: dict[str, Any], ctx: Optional[PassContext] = None, **changes):
    """A copy of ``model`` holding ``obj``; its sha256 hashes the old one, the pass settings and
    (for passes that learn from data) the data's fingerprint — it keys compress's cache."""
    h = hashlib.sha256()
    h.update(str(getattr(model, "sha256", "")).encode())
    h.update(json.dumps(spec_settings, sort_keys=True, default=str).encode())
    if ctx is not None:
        h.update(ctx.fingerprint().encode())
    return dataclasses.replace(model, obj=obj, sha256=h.hexdigest(), **changes)


def unsupported(pass_name: str, kind: str, supported: str, hint: str = "") -> PassError:
    return PassError(f"pass {pass_name!r} does not support {kind} models; it works on {supported}"
                     + (f". {hint}" if hint else ""))
