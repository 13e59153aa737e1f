"""``prune``: magnitude pruning.

- PyTorch, unstructured (``global`` across all Conv/Linear weights, or ``local`` per layer):
  ``torch.nn.utils.prune`` L1 masks, fine-tuned with the masks in place when labelled data is
  given, then made permanent (``prune.remove``). The weight file stays dense; zeros buy size
  only once compressed, so both the dense and the gzip size are reported.
- PyTorch, ``structured``: Torch-Pruning's dependency graph removes whole channels
  (``tp.pruner.MetaPruner`` with L1 magnitude importance), by ``amount`` or iteratively down to
  ``macs_target`` × the original MACs; the classifier is never pruned. MACs and parameters are
  counted before and after (``tp.utils.count_ops_and_params``).
- Keras (tf_keras): tfmot ``prune_low_magnitude`` with a constant or polynomial schedule,
  trained on the labelled data, then ``strip_pruning``. ``global`` turns one magnitude threshold
  over all layers into per-layer targets.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import PassError
from .base import PassContext, replace_model, training_requested, unsupported
from .specs import PruneSpec, settings


# ---------------------------------------------------------------- PyTorch, unstructured
def prune_unstructured_torch(model, method: str, amount: float, *, ignore=(), ctx: PassContext = None,
                             epochs: int = 0, lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> dict:
    """Prune ``model`` in place (``global`` or ``local`` L1), optionally fine-tune, make permanent."""
    import torch.nn.utils.prune as tprune

    from . import _torch as T

    layers = [(n, m) for n, m in T.weight_layers(model) if n not in set(ignore)]
    if not layers:
        raise PassError("prune: no Conv/Linear layers left to prune after 'ignore'")
    if method == "global":
        tprune.global_unstructured([(m, "weight") for _, m in layers],
                                   pruning_method=tprune.L1Unstructured, amount=amount)
    else:
        for _, m in layers:
            tprune.l1_unstructured(m, "weight", amount=amount)
    measured = {}
    if ctx is not None and ctx.can_eval:
        measured["accuracy_pruned"] = T.accuracy(model, ctx.eval_x, ctx.eval_y)
    if epochs > 0 and ctx is not None and ctx.can_train:       # masks stay applied while training
        T.train(model, ctx.train_x, ctx.train_y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    for _, m in layers:
        tprune.remove(m, "weight")
    return measured


# ---------------------------------------------------------------- PyTorch, structured
def prune_structured_torch(model, example, *, amount: Optional[float] = None,
                           macs_target: Optional[float] = None, ignore=(), max_ratio: float = 0.9,
                           steps: int = 18) -> dict:
    """Remove channels from ``model`` in place; returns MACs/params before and after.

    With ``macs_target``, channels are removed in ``steps`` growing rounds (up to ``max_ratio``)
    until MACs ≤ ``macs_target`` × the original.
    """
    import torch_pruning as tp

    from . import _torch as T

    names = dict(model.named_modules())
    missing = [n for n in ignore if n not in names]
    if missing:
        valid = ", ".join(n for n, _ in T.weight_layers(model))
        raise PassError(f"prune: ignore: no module named {missing}; weight layers: {valid}")
    ignored = T.classifier_layers(model, example) + [names[n] for n in ignore]
    macs0, params0 = T.macs_params(model, example)
    imp = tp.importance.MagnitudeImportance(p=1)
    model.eval()
    if macs_target is None:
        pruner = tp.pruner.MetaPruner(model, example, importance=imp, pruning_ratio=amount,
                                      ignored_layers=ignored)
        pruner.step()
        rounds = 1
    else:
        pruner = tp.pruner.MetaPruner(model, example, importance=imp, pruning_ratio=max_ratio,
                                      iterative_steps=steps, ignored_layers=ignored)
        rounds = 0
        for _ in range(steps):
            pruner.step()
            rounds += 1
            if T.macs_params(model, example)[0] <= macs_target * macs0:
                break
    macs1, params1 = T.macs_params(model, example)
    if macs_target is not None and macs1 > macs_target * macs0:
        raise PassError(f"prune: could not reach macs_target {macs_target} (got {macs1 / macs0:.3f} "
                        f"of the MACs at the {max_ratio:.0%} channel limit); ask for a larger target")
    return {"macs_before": macs0, "macs_after": macs1, "macs_ratio": round(macs1 / macs0, 4),
            "params_before": params0, "params_after": params1,
            "params_ratio": round(params1 / params0, 4), "rounds": rounds,
            "ignored_layers": [n for n, m in model.named_modules() if any(m is i for i in ignored)]}


def _run_torch(model, spec: PruneSpec, ctx: PassContext) -> tuple[object, dict]:
    import copy

    from . import _torch as T

    T.require_eager(model.obj, 'prune')
    net = copy.deepcopy(model.obj).eval()
    measured: dict = {}
    if ctx.can_eval:
        measured["accuracy_before"] = T.accuracy(net, ctx.eval_x, ctx.eval_y)
    measured["size_before"] = T.sizes(net)
    finetune = spec.epochs > 0 and ctx.can_train
    if spec.method == "structured":
        example = T.example_input(model.inputs[0].shape)
        measured.update(prune_structured_torch(net, example, amount=spec.amount,
                                               macs_target=spec.macs_target, ignore=spec.ignore))
        if ctx.can_eval:
            measured["accuracy_pruned"] = T.accuracy(net, ctx.eval_x, ctx.eval_y)
        if finetune:
            T.train(net, ctx.train_x, ctx.train_y, epochs=spec.epochs, lr=spec.lr,
                    batch_size=spec.batch_size, seed=spec.seed)
    else:
        measured.update(prune_unstructured_torch(
            net, spec.method, spec.amount, ignore=spec.ignore, ctx=ctx, epochs=spec.epochs if finetune else 0,
            lr=spec.lr, batch_size=spec.batch_size, seed=spec.seed))
    measured["sparsity"] = T.sparsity(net)
    measured["size_after"] = T.sizes(net)
    measured["params_after"] = T.count_params(net)
    if ctx.can_eval:
        measured["accuracy_after"] = T.accuracy(net, ctx.eval_x, ctx.eval_y)
    measured["finetune"] = _finetune_note(spec, ctx, finetune)
    return net, measured


def _finetune_note(spec, ctx: PassContext, done: bool) -> dict:
    if done:
        return {"epochs": spec.epochs, "lr": spec.lr, **ctx.data_summary()}
    return {"epochs": 0, "skipped": "epochs is 0" if spec.epochs == 0 else "no labelled data"}


# ---------------------------------------------------------------- Keras (tfmot)
def prune_keras(model, method: str, amount: float, x, y, *, schedule: str = "polynomial",
                initial_sparsity: float = 0.0, ignore=(), epochs: int = 2, lr: float = 1e-3,
                batch_size: int = 64):
    """tfmot magnitude pruning of a tf_keras model, trained on ``x``/``y``, stripped.

    Returns ``(stripped tf_keras model, {layer: target sparsity})``.
    """
    from . import _keras as K

    tfk, tfmot = K.tf_keras(), K.tfmot()
    model = K.to_tf_keras(model)
    prunable = [l for l in model.layers if K.is_weight_layer(l) and l.name not in set(ignore)]
    if not prunable:
        raise PassError("prune: no Conv/Dense layers to prune in the Keras model")
    targets = {l.name: amount for l in prunable}
    if method == "global":
        mags = np.concatenate([np.abs(l.get_weights()[0]).ravel() for l in prunable])
        threshold = np.quantile(mags, amount)
        targets = {l.name: float(min(0.99, (np.abs(l.get_weights()[0]) <= threshold).mean()))
                   for l in prunable}
    steps = epochs * int(np.ceil(len(x) / batch_size))
    end = max(1, int(steps * 0.8))
    freq = max(1, end // 10)

    def sched(target):
        if schedule == "constant":
            return tfmot.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=freq)
        return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=min(initial_sparsity, target),
                                                    final_sparsity=target, begin_step=0,
                                                    end_step=end, frequency=freq)

    def wrap(layer):
        if layer.name in targets:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sched(targets[layer.name]))
        return layer                        # ``model`` is already a private copy: share its layers

    pruned = tfk.models.clone_model(model, clone_function=wrap)
    K.compile_classifier(pruned, lr, K.steps(len(x), epochs, batch_size))
    pruned.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned), targets


def _run_keras(model, spec: PruneSpec, ctx: PassContext):
    from . import _keras as K

    if spec.method == "structured":
        raise PassError("prune: method 'structured' (channel removal) works on PyTorch models "
                        "(Torch-Pruning); for Keras use method 'global' or 'local'")
    ctx.need_training_data("prune", "on Keras trains with the tfmot pruning schedule")
    if spec.epochs < 1:
        raise PassError("prune: Keras pruning trains with the schedule: epochs must be >= 1")
    measured: dict = {}
    if ctx.can_eval:
        measured["accuracy_before"] = K.accuracy(model.obj, ctx.eval_x, ctx.eval_y)
    measured["size_before"] = K.sizes(model.obj)
    net, targets = prune_keras(model.obj, spec.method, spec.amount, ctx.train_x, ctx.train_y,
                               schedule=spec.schedule, initial_sparsity=spec.initial_sparsity,
                               ignore=spec.ignore, epochs=spec.epochs, lr=spec.lr,
                               batch_size=spec.batch_size)
    net = K.like(model.obj, net)
    measured["target_sparsity"] = targets
    measured["sparsity"] = K.sparsity(net)
    measured["size_after"] = K.sizes(net)
    if ctx.can_eval:
        measured["accuracy_after"] = K.accuracy(net, ctx.eval_x, ctx.eval_y)
    measured["finetune"] = _finetune_note(spec, ctx, True)
    return net, measured


def run(model, spec: PruneSpec, ctx: PassContext):
    """Apply ``spec`` to a LoadedModel; returns (LoadedModel', measured)."""
    if model.kind == "torch":
        if training_requested(spec) and not ctx.can_train:
            ctx.need_training_data("prune", f"was asked to fine-tune for {spec.epochs} epochs")
        net, measured = _run_torch(model, spec, ctx)
    elif model.kind == "keras":
        net, measured = _run_keras(model, spec, ctx)
    else:
        raise unsupported("prune", model.kind, "PyTorch and Keras models",
                          "Prune the PyTorch or Keras source, then export")
    return replace_model(model, net, settings(spec), ctx), measured
