"""PyTorch helpers shared by the passes: training loop, accuracy, sizes, sparsity, MACs.

Imported only when a PyTorch pass runs (torch is imported here at module level).
"""
from __future__ import annotations

import contextlib
import gzip
import io
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

#: layer types whose weights the passes prune / cluster
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


#: below this many parameters, one intra-op thread is faster (measured: a 24 k-parameter CNN
#: trains 5x faster on 1 thread than on 2 on a 2-core host; thread hand-offs cost more than
#: these small convolutions)
SMALL_MODEL_PARAMS = 2_000_000


@contextlib.contextmanager
def threads_for(model: nn.Module):
    """Run small models on one intra-op thread; the previous setting is restored afterwards."""
    before = torch.get_num_threads()
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """First output of ``model`` on ``x`` (eval mode, no grad), as float32 numpy."""
    model.eval()
    outs = []
    with torch.no_grad(), threads_for(model):
        for i in range(0, len(x), batch):
            out = model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)))
            if isinstance(out, (tuple, list)):
                out = out[0]
            outs.append(out.float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on labelled data."""
    return float((predict(model, x).argmax(-1) == y).mean())


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float,
          batch_size: int = 64, seed: int = 0,
          loss_fn: Optional[Callable] = None,
          after_step: Optional[Callable[[], None]] = None) -> nn.Module:
    """Train ``model`` in place (Adam, cosine decay); returns it in eval mode.

    ``loss_fn(logits, x_batch, index_batch, y_batch)`` replaces cross-entropy (distillation);
    ``after_step()`` runs after each optimizer step (e.g. to keep weights clustered).
    """
    if epochs <= 0 or len(x) == 0:
        return model.eval()
    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y).astype(np.int64))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    steps = epochs * ((len(xt) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    ce = nn.CrossEntropyLoss()
    model.train()
    with threads_for(model):
        _epochs(model, xt, yt, epochs, batch_size, gen, opt, sched, ce, loss_fn, after_step)
    return model.eval()


def _epochs(model, xt, yt, epochs, batch_size, gen, opt, sched, ce, loss_fn, after_step) -> None:
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
                continue                                   # BatchNorm cannot train on one sample
            opt.zero_grad()
            logits = model(xt[idx])
            loss = ce(logits, yt[idx]) if loss_fn is None else loss_fn(logits, xt[idx], idx, yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step()


def state_bytes(model: nn.Module) -> bytes:
    """The model's weights as ``torch.save(state_dict)`` bytes (the dense file a user would ship)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().contiguous() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def sizes(model: nn.Module) -> dict:
    """Dense weight-file size and its gzip size (what zeros / shared values actually buy)."""
    raw = state_bytes(model)
    return {"dense_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9))}


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def sparsity(model: nn.Module) -> dict:
    """Zero fraction of each Conv/Linear weight and over all of them."""
    layers, zeros, total = {}, 0, 0
    for name, m in weight_layers(model):
        w = m.weight.detach()
        z, n = int((w == 0).sum()), w.numel()
        layers[name] = round(z / n, 4)
        zeros, total = zeros + z, total + n
    return {"overall": round(zeros / max(total, 1), 4), "layers": layers}


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def macs_params(model: nn.Module, example: torch.Tensor) -> tuple[int | None, int]:
    """(MACs, parameters) for one forward pass on ``example`` (Torch-Pruning's counter).

    MACs are ``None`` for a TorchScript module (the counter needs forward hooks).
    """
    import torch_pruning as tp

    if isinstance(model, torch.jit.ScriptModule):
        return None, count_params(model)
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example)
    model.train(was_training)
    return int(macs), int(params)


def require_eager(model: nn.Module, pass_name: str) -> None:
    """PassError for a TorchScript module: passes that change layers need the Python model."""
    from ..errors import PassError

    if isinstance(model, torch.jit.ScriptModule):
        raise PassError(f"pass {pass_name!r} changes layers, which a TorchScript model does not allow; "
                        f"give the model as file.py:factory with --weights STATE_DICT instead")


def example_input(shape, batch: int = 1) -> torch.Tensor:
    shape = [int(d) if isinstance(d, int) and d > 0 else 1 for d in shape]
    return torch.randn([batch] + shape[1:])


def classifier_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The weight layers whose output is the model's output (found by tracing one forward)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for _, m in weight_layers(model)]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return order[-1:] if order else []
