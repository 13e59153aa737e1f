"""``distill``: knowledge distillation of one or more teachers into a small student (PyTorch).

Loss (Hinton et al., 2015):  alpha · KL(softmax(t/T) ‖ softmax(s/T)) · T²  +  (1 − alpha) · CE(s, y),
where ``t`` are the teachers' logits — with several teachers their temperature-softened
probabilities are averaged, which fuses an ensemble into one small model.

Who is who (settings of :class:`~edgecompress.passes.specs.DistillSpec`):
- teachers: ``teachers`` (model specs, loaded like the MODEL argument) or, when none, the input model;
- student: ``student`` (``file.py:factory``, optional ``student_weights``); else, when ``teachers``
  are given, the input model; else the input model shrunk by structured pruning (``shrink`` of
  its channels removed, keeping the teacher's strongest filters as the starting point).
Training needs labelled data; teacher targets are computed once on the training inputs.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import PassError
from .base import PassContext, replace_model, unsupported
from .specs import DistillSpec, settings


def soft_targets(teachers: list, x: np.ndarray, temperature: float) -> np.ndarray:
    """Mean over teachers of softmax(logits / T) on ``x`` (float32, shape (N, classes))."""
    from . import _torch as T

    probs = []
    for t in teachers:
        logits = T.predict(t, x).astype(np.float64) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs.append(e / e.sum(axis=1, keepdims=True))
    return np.mean(probs, axis=0).astype(np.float32)


def distill_torch(student, teachers: list, x: np.ndarray, y: np.ndarray, *, temperature: float = 4.0,
                  alpha: float = 0.7, epochs: int = 8, lr: float = 3e-3, batch_size: int = 64,
                  seed: int = 0):
    """Train ``student`` in place on the teachers' soft targets plus the labels; returns it (eval)."""
    import torch
    import torch.nn.functional as F

    from . import _torch as T

    target = torch.from_numpy(soft_targets(teachers, x, temperature))
    out_dim = T.predict(student, x[:1]).shape[-1]
    if out_dim != target.shape[1]:
        raise PassError(f"distill: the student has {out_dim} outputs but the teachers have "
                        f"{target.shape[1]}; they must predict the same classes")

    def loss_fn(logits, xb, idx, yb):
        soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), target[idx],
                        reduction="batchmean") * temperature ** 2
        return alpha * soft + (1 - alpha) * F.cross_entropy(logits, yb)

    return T.train(student, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, loss_fn=loss_fn)


def _load(spec: str, shape, weights=None):
    from ..models import load_model

    return load_model(spec, weights=weights, input_shape=tuple(shape))


def run(model, spec: DistillSpec, ctx: PassContext):
    if model.kind != "torch":
        raise unsupported("distill", model.kind, "PyTorch models",
                          "Distil the PyTorch source, or give a PyTorch student and teachers")
    ctx.need_training_data("distill", "trains the student")
    from . import _torch as T
    from .prune import prune_structured_torch

    shape = model.inputs[0].shape
    example = T.example_input(shape)
    if spec.teachers:
        loaded = [_load(t, shape) for t in spec.teachers]
        bad = [t.source for t in loaded if t.kind != "torch"]
        if bad:
            raise PassError(f"distill: teachers must be PyTorch models; not: {bad}")
        teachers = [t.obj.eval() for t in loaded]
        hashes = [t.sha256 for t in loaded]
    else:
        teachers = [model.obj.eval()]
        hashes = []
    measured: dict = {}
    if spec.student:
        student_model = _load(spec.student, shape, spec.student_weights)
        if student_model.kind != "torch":
            raise PassError(f"distill: student {spec.student!r} must be a PyTorch model, "
                            f"got a {student_model.kind} model")
        student, origin = copy.deepcopy(student_model.obj), f"factory {spec.student}"
        hashes.append(student_model.sha256)
    elif spec.teachers:
        T.require_eager(model.obj, "distill")
        student, origin = copy.deepcopy(model.obj), "the input model"
    else:
        T.require_eager(teachers[0], "distill")
        student = copy.deepcopy(teachers[0]).eval()
        prune_structured_torch(student, example, amount=spec.shrink)
        origin = f"the teacher with {spec.shrink:.0%} of its channels removed (structured pruning)"
    t_macs, t_params = T.macs_params(teachers[0], example)
    s_macs, s_params = T.macs_params(student, example)
    measured.update({"student": origin, "teachers": spec.teachers or ["(input model)"],
                     "teacher_params": t_params, "student_params": s_params,
                     "params_ratio": round(s_params / t_params, 4),
                     "teacher_macs": t_macs, "student_macs": s_macs,
                     "macs_ratio": round(s_macs / t_macs, 4) if t_macs and s_macs else None})
    if ctx.can_eval:
        measured["teacher_accuracy"] = [T.accuracy(t, ctx.eval_x, ctx.eval_y) for t in teachers]
        measured["accuracy_before"] = T.accuracy(student, ctx.eval_x, ctx.eval_y)
    distill_torch(student, teachers, ctx.train_x, ctx.train_y, temperature=spec.temperature,
                  alpha=spec.alpha, epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                  seed=spec.seed)
    if ctx.can_eval:
        measured["accuracy_after"] = T.accuracy(student, ctx.eval_x, ctx.eval_y)
    measured["size_after"] = T.sizes(student)
    measured["training"] = {"epochs": spec.epochs, "lr": spec.lr, **ctx.data_summary()}
    return replace_model(model, student, {**settings(spec), "models_sha256": hashes}, ctx), measured
