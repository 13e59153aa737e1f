"""``cluster``: weight sharing — k-means per layer to N centroids (Deep Compression).

PyTorch: each Conv/Linear weight with at least ``min_params`` values is clustered with a 1-D
k-means (numpy; ``linear`` init spreads the centroids evenly between the smallest and largest
weight, as Deep Compression recommends; ``density`` uses quantiles; ``random`` samples weights)
and replaced by its centroid values. With labelled data, ``epochs`` of fine-tuning update the
shared centroids: after each step every weight is set back to the mean of its cluster, so a
layer never holds more than N distinct values.
Keras (tf_keras): ``tfmot.clustering.keras.cluster_weights`` on Conv/Dense layers, fine-tuned
when labelled data is given, then ``strip_clustering``.

The weight file stays dense; what sharing buys shows in the gzip size, and in ``coded_bytes``:
the size of N-entry codebooks plus log2(N)-bit indices (an estimate of an index-coded file).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import PassError
from .base import PassContext, replace_model, training_requested, unsupported
from .specs import ClusterSpec, settings


def kmeans_1d(values: np.ndarray, k: int, init: str = "linear", iters: int = 50,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (sorted, float32), label per value) of a 1-D k-means on ``values``."""
    w = np.asarray(values, dtype=np.float64).ravel()
    k = min(k, len(np.unique(w)))
    if init == "linear":
        c = np.linspace(w.min(), w.max(), k)
    elif init == "density":
        c = np.quantile(w, np.linspace(0, 1, k))
    else:
        c = np.random.default_rng(seed).choice(w, size=k, replace=False)
    labels = np.zeros(len(w), dtype=np.int64)
    for _ in range(iters):
        c = np.sort(c)
        labels = np.searchsorted((c[1:] + c[:-1]) / 2, w)
        counts = np.bincount(labels, minlength=k)
        sums = np.bincount(labels, weights=w, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.allclose(new, c, rtol=0, atol=1e-12):
            break
        c = new
    c = np.sort(c)
    labels = np.searchsorted((c[1:] + c[:-1]) / 2, w)
    return c.astype(np.float32), labels


def coded_bytes(n_values: int, k: int) -> int:
    """Bytes of an index-coded layer: k float32 centroids + n indices of ceil(log2 k) bits."""
    return 4 * k + math.ceil(n_values * max(1, math.ceil(math.log2(max(k, 2)))) / 8)


def cluster_torch(model, k: int, *, init: str = "linear", min_params: int = 64, ctx: PassContext = None,
                  epochs: int = 0, lr: float = 1e-4, batch_size: int = 64, seed: int = 0) -> dict:
    """Cluster ``model``'s Conv/Linear weights in place; optionally fine-tune the centroids."""
    import torch

    from . import _torch as T

    clustered = {}                                    # name -> (module, labels tensor, k)
    other_bytes = 0
    for name, m in T.weight_layers(model):
        w = m.weight.detach()
        if w.numel() < min_params:
            other_bytes += 4 * w.numel()
            continue
        c, labels = kmeans_1d(w.numpy(), k, init=init, seed=seed)
        lab = torch.from_numpy(labels).reshape(w.shape)
        m.weight.data.copy_(torch.from_numpy(c)[lab])
        clustered[name] = (m, lab, len(c))
    if not clustered:
        raise PassError(f"cluster: no Conv/Linear layer has >= min_params={min_params} weights")

    def snap():                                       # every weight back to its cluster's mean
        for m, lab, kk in clustered.values():
            flat, idx = m.weight.data.view(-1), lab.view(-1)
            sums = torch.zeros(kk, dtype=flat.dtype).index_add_(0, idx, flat)
            counts = torch.bincount(idx, minlength=kk).clamp(min=1).to(flat.dtype)
            flat.copy_((sums / counts)[idx])

    if epochs > 0 and ctx is not None and ctx.can_train:
        T.train(model, ctx.train_x, ctx.train_y, epochs=epochs, lr=lr, batch_size=batch_size,
                seed=seed, after_step=snap)
    distinct = {n: int(torch.unique(m.weight.detach()).numel()) for n, (m, _, _) in clustered.items()}
    weights_coded = sum(coded_bytes(m.weight.numel(), kk) for m, _, kk in clustered.values())
    rest = sum(4 * p.numel() for n, p in model.named_parameters()
               if not any(n == f"{ln}.weight" for ln in clustered))
    return {"layers": sorted(clustered), "distinct_values": distinct,
            "coded_bytes": weights_coded + rest}


def cluster_keras(model, k: int, x=None, y=None, *, init: str = "linear", min_params: int = 64,
                  epochs: int = 0, lr: float = 1e-4, batch_size: int = 64):
    """tfmot clustering of a tf_keras model's Conv/Dense layers; returns the stripped model."""
    from . import _keras as K

    tfk, tfmot = K.tf_keras(), K.tfmot()
    model = K.to_tf_keras(model)
    CI = tfmot.clustering.keras.CentroidInitialization
    inits = {"linear": CI.LINEAR, "density": CI.KMEANS_PLUS_PLUS, "random": CI.RANDOM}
    chosen = {l.name for l in model.layers if K.is_weight_layer(l) and l.get_weights()[0].size >= min_params}
    if not chosen:
        raise PassError(f"cluster: no Conv/Dense layer has >= min_params={min_params} weights")

    def wrap(layer):
        if layer.name in chosen:
            return tfmot.clustering.keras.cluster_weights(layer, number_of_clusters=k,
                                                          cluster_centroids_init=inits[init])
        return layer                        # ``model`` is already a private copy: share its layers

    wrapped = tfk.models.clone_model(model, clone_function=wrap)
    if epochs > 0 and x is not None:
        K.compile_classifier(wrapped, lr, K.steps(len(x), epochs, batch_size))
        wrapped.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return tfmot.clustering.keras.strip_clustering(wrapped), sorted(chosen)


def run(model, spec: ClusterSpec, ctx: PassContext):
    if training_requested(spec) and not ctx.can_train:
        ctx.need_training_data("cluster", f"was asked to fine-tune for {spec.epochs} epochs")
    finetune = spec.epochs > 0 and ctx.can_train
    measured: dict = {}
    if model.kind == "torch":
        import copy

        from . import _torch as T

        T.require_eager(model.obj, 'cluster')
        net = copy.deepcopy(model.obj).eval()
        if ctx.can_eval:
            measured["accuracy_before"] = T.accuracy(net, ctx.eval_x, ctx.eval_y)
        measured["size_before"] = T.sizes(net)
        measured.update(cluster_torch(net, spec.clusters, init=spec.init, min_params=spec.min_params,
                                      ctx=ctx, epochs=spec.epochs if finetune else 0, lr=spec.lr,
                                      batch_size=spec.batch_size, seed=spec.seed))
        measured["size_after"] = T.sizes(net)
        acc = (lambda m: T.accuracy(m, ctx.eval_x, ctx.eval_y))
    elif model.kind == "keras":
        from . import _keras as K

        if ctx.can_eval:
            measured["accuracy_before"] = K.accuracy(model.obj, ctx.eval_x, ctx.eval_y)
        measured["size_before"] = K.sizes(model.obj)
        net, layers = cluster_keras(model.obj, spec.clusters,
                                    ctx.train_x if finetune else None, ctx.train_y,
                                    init=spec.init, min_params=spec.min_params,
                                    epochs=spec.epochs if finetune else 0, lr=spec.lr,
                                    batch_size=spec.batch_size)
        net = K.like(model.obj, net)
        measured["layers"] = layers
        measured["distinct_values"] = {n: int(np.unique(w).size) for n, w in K.kernels(net) if n in layers}
        measured["size_after"] = K.sizes(net)
        acc = (lambda m: K.accuracy(m, ctx.eval_x, ctx.eval_y))
    else:
        raise unsupported("cluster", model.kind, "PyTorch and Keras models")
    if ctx.can_eval:
        measured["accuracy_after"] = acc(net)
    measured["finetune"] = ({"epochs": spec.epochs, "lr": spec.lr, **ctx.data_summary()} if finetune
                            else {"epochs": 0, "skipped": "epochs is 0" if spec.epochs == 0
                                  else "no labelled data"})
    return replace_model(model, net, settings(spec), ctx), measured
