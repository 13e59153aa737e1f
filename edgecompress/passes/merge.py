"""``merge``: fuse several checkpoints of one architecture into one model by weight averaging.

``uniform`` averages all of them. ``greedy`` is the greedy "model soup" (Wortsman et al.,
2022): rank the checkpoints by accuracy on labelled selection data, start from the best, and
add each next one only if the averaged model's selection accuracy does not drop. Selection
uses the training part of the data (nothing is trained here), so the reported accuracy on the
held-out part is not the one that chose the soup.

Checkpoints: PyTorch state-dict files (``torch.save(model.state_dict())``, also nested under
``state_dict``/``model``) or TorchScript files; Keras model files (``.keras``/``.h5``) or
weight files (``.weights.h5``). BatchNorm statistics are averaged like weights; integer
buffers are taken from the first checkpoint.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import PassError
from .base import PassContext, replace_model, unsupported
from .specs import MergeSpec, settings


# ---------------------------------------------------------------- PyTorch
def load_state_dict(path: str | Path) -> dict:
    """A state dict from a ``torch.save`` file or a TorchScript file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise PassError(f"merge: checkpoint {path}: file not found")
    try:
        with warnings.catch_warnings():          # a TorchScript archive: torch.load hands it on itself
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - try TorchScript next
        try:
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001
            raise PassError(f"merge: checkpoint {path}: not a state-dict or TorchScript file "
                            f"({type(first).__name__}: {first})") from e
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise PassError(f"merge: checkpoint {path}: holds no tensors (expected a state dict)")
    return obj


def average_state_dicts(states: list[dict]) -> dict:
    """Mean of floating tensors, first checkpoint's value for the rest (e.g. BN step counters)."""
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = sum(s[k].float() for s in states).div(len(states)).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def _torch_model_with(template, state: dict, name: str):
    import copy

    net = copy.deepcopy(template).eval()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PassError(f"merge: checkpoint {name} does not fit the model's architecture: "
                        f"{str(e).splitlines()[0]} (all checkpoints must be of the same model)") from e
    return net


# ---------------------------------------------------------------- Keras
def _keras_weights(template, path: str) -> list:
    import keras

    p = Path(path)
    if not p.exists():
        raise PassError(f"merge: checkpoint {p}: file not found")
    from . import _keras as K

    lib = K.tf_keras() if K.is_tf_keras(template) else keras
    try:
        if p.name.endswith(".weights.h5"):
            m = lib.models.clone_model(template)
            m.load_weights(str(p))
        else:
            m = lib.models.load_model(str(p), compile=False)
        return [np.asarray(w) for w in m.get_weights()]
    except Exception as e:  # noqa: BLE001 - keras raises many kinds
        raise PassError(f"merge: checkpoint {p}: cannot load as a Keras model or weights "
                        f"({type(e).__name__}: {e})") from e


def _average_arrays(weight_lists: list[list]) -> list:
    return [np.mean(ws, axis=0).astype(ws[0].dtype) if np.issubdtype(ws[0].dtype, np.floating) else ws[0]
            for ws in zip(*weight_lists)]


# ---------------------------------------------------------------- both
def soup(ingredients: list, average, build, score) -> tuple[object, list[int], list[float], float]:
    """Greedy soup over ``ingredients`` (weights).

    Returns (model, chosen indices, each ingredient's score, the soup's score); by construction
    the soup's score is at least the best single one's.
    """
    singles = [score(build(w)) for w in ingredients]
    order = sorted(range(len(ingredients)), key=lambda i: -singles[i])
    chosen = [order[0]]
    best = singles[order[0]]
    for i in order[1:]:
        trial = score(build(average([ingredients[j] for j in chosen + [i]])))
        if trial >= best:
            chosen.append(i)
            best = trial
    return build(average([ingredients[j] for j in chosen])), chosen, singles, best


def run(model, spec: MergeSpec, ctx: PassContext):
    if model.kind == "torch":
        from . import _torch as T

        template = model.obj
        ingredients = [load_state_dict(p) for p in spec.checkpoints]
        for p, s in zip(spec.checkpoints, ingredients):   # check fit early, naming the file
            _torch_model_with(template, s, p)
        if spec.include_input:
            ingredients.insert(0, {k: v.detach().clone() for k, v in template.state_dict().items()})
        average = average_state_dicts
        build = (lambda w: _torch_model_with(template, w, "average"))
        acc = T.accuracy
    elif model.kind == "keras":
        from . import _keras as K

        template = model.obj
        ingredients = [_keras_weights(template, p) for p in spec.checkpoints]
        base = [np.asarray(w) for w in template.get_weights()]
        for p, ws in zip(spec.checkpoints, ingredients):
            if [w.shape for w in ws] != [w.shape for w in base]:
                raise PassError(f"merge: checkpoint {p} does not fit the model's architecture "
                                f"(weight shapes differ); all checkpoints must be of the same model")
        if spec.include_input:
            ingredients.insert(0, base)
        average = _average_arrays

        def build(ws):
            import keras

            m = keras.models.clone_model(template) if not K.is_tf_keras(template) else \
                K.tf_keras().models.clone_model(template)
            m.set_weights(ws)
            return m
        acc = K.accuracy
    else:
        raise unsupported("merge", model.kind, "PyTorch and Keras models")
    names = (["(input model)"] if spec.include_input else []) + list(spec.checkpoints)
    if len(ingredients) < 2:
        raise PassError("merge: needs at least two models to average (checkpoints, plus the input "
                        "model unless include_input is false)")
    measured: dict = {"ingredients": names}
    if spec.method == "greedy":
        sel_x, sel_y = (ctx.train_x, ctx.train_y) if ctx.can_train else (ctx.eval_x, ctx.eval_y)
        if sel_y is None:
            raise PassError("merge: method 'greedy' (model soup) ranks checkpoints by accuracy, so it "
                            "needs labelled data (--data with x and y); use method 'uniform' without labels")
        net, chosen, singles, best = soup(ingredients, average, build, lambda m: acc(m, sel_x, sel_y))
        measured.update({"chosen": [names[i] for i in chosen],
                         "selection_accuracy": dict(zip(names, singles)),
                         "selection_accuracy_soup": best,
                         "selection_samples": int(len(sel_x)),
                         "selection_data": "train part" if ctx.can_train else "held-out part (no train part)"})
    else:
        net = build(average(ingredients))
        measured["chosen"] = names
    if ctx.can_eval:
        measured["accuracy_single"] = {n: acc(build(w), ctx.eval_x, ctx.eval_y)
                                       for n, w in zip(names, ingredients)}
        measured["accuracy_after"] = acc(net, ctx.eval_x, ctx.eval_y)
    from ..manifest import sha256_file

    files = {p: sha256_file(p) for p in spec.checkpoints}     # the new hash follows the files' content
    return replace_model(model, net, {**settings(spec), "checkpoint_sha256": files}, ctx), measured
