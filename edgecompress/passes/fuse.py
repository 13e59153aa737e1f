"""``fuse``: fold BatchNorm into the Conv / Linear layer before it (PyTorch).

The model is traced with ``torch.fx``; every ``Conv{1,2,3}d → BatchNorm`` and
``Linear → BatchNorm1d`` pair whose first output feeds only the BatchNorm is replaced by one
layer with folded weights (``torch.nn.utils.fusion``), and the pairs are reported. Outputs are
unchanged up to float rounding (the largest difference on the held-out data is reported).

ONNX and Keras sources are folded at export (the ONNX exporter's graph optimisation, the
TFLite converter): the pass reports that and leaves the model as it is.
"""
from __future__ import annotations

import numpy as np

from ..errors import PassError
from .base import PassContext, replace_model
from .specs import FuseSpec, settings


def fuse_torch(model):
    """A copy of ``model`` (eval) with Conv/Linear+BN folded; returns (model', [(layer, bn), ...])."""
    import copy

    import torch.fx as fx
    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    model = copy.deepcopy(model).eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - torch.fx raises many kinds
        raise PassError(f"fuse: torch.fx cannot trace this model ({type(e).__name__}: {e}); "
                        f"drop the fuse pass (BatchNorm is folded at ONNX export anyway)") from e
    mods = dict(gm.named_modules())
    pairs = [((nn.Conv1d, nn.Conv2d, nn.Conv3d), nn.modules.batchnorm._BatchNorm, fuse_conv_bn_eval),
             ((nn.Linear,), nn.BatchNorm1d, fuse_linear_bn_eval)]
    folded = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.modules.batchnorm._BatchNorm):
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        layer, bn = mods[prev.target], mods[node.target]
        for layer_types, bn_type, fold in pairs:
            if isinstance(layer, layer_types) and isinstance(bn, bn_type) and bn.track_running_stats:
                _set_module(gm, prev.target, fold(layer, bn))
                node.replace_all_uses_with(prev)
                gm.graph.erase_node(node)
                folded.append([prev.target, node.target])
                break
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm, folded


def _set_module(root, dotted: str, new) -> None:
    parent, _, leaf = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def run(model, spec: FuseSpec, ctx: PassContext):
    if model.kind == "onnx":
        bns = [n.name or f"node{i}" for i, n in enumerate(model.obj.graph.node) if n.op_type == "BatchNormalization"]
        return model, {"folded": [], "batchnorm_at_export": bns,
                       "note": "onnx model: BatchNormalization nodes are folded at export by the ONNX "
                               "exporter's graph optimisation; nothing changed here"}
    if model.kind == "keras":
        bns = [l.name for l in model.obj.layers if "BatchNormalization" in type(l).__name__]
        return model, {"folded": [], "batchnorm_at_export": bns,
                       "note": "keras model: BatchNormalization layers are folded at export by the TFLite "
                               "converter (and tf2onnx); nothing changed here"}
    if model.kind != "torch":
        raise PassError(f"fuse: unknown model kind {model.kind!r}; valid: torch, onnx, keras")
    from . import _torch as T

    fused, folded = fuse_torch(model.obj)
    measured = {"folded": folded, "params_before": T.count_params(model.obj),
                "params_after": T.count_params(fused)}
    x = ctx.eval_x if ctx.eval_x is not None else ctx.train_x
    if x is not None:
        x = x[:256]
        measured["max_abs_diff"] = float(np.abs(T.predict(model.obj, x) - T.predict(fused, x)).max())
    if ctx.can_eval:
        measured["accuracy_after"] = T.accuracy(fused, ctx.eval_x, ctx.eval_y)
    return replace_model(model, fused, settings(spec)), measured
