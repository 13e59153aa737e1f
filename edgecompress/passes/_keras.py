"""Keras helpers shared by the passes: tf_keras / tfmot access, Keras 3 → tf_keras, accuracy, sizes.

tfmot 0.8.1 accepts only tf_keras (Keras 2) models. A Keras 3 model made of standard layers
in a chain (``Sequential``, or a functional model that is one) is rebuilt in tf_keras from its
config with the same weights, and the copy is checked to give the same outputs.
"""
from __future__ import annotations

import gzip
import io
import os

import numpy as np

from ..errors import PassError


def tf_keras():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as tfk

    return tfk


def tfmot():
    tf_keras()
    import tensorflow_model_optimization as mot

    return mot


def is_tf_keras(model) -> bool:
    return isinstance(model, tf_keras().Model)


def is_weight_layer(layer) -> bool:
    tfk = tf_keras()
    return isinstance(layer, (tfk.layers.Conv1D, tfk.layers.Conv2D, tfk.layers.Conv3D,
                              tfk.layers.DepthwiseConv2D, tfk.layers.Dense))


_KERAS3_ONLY = ("optional", "lora_rank", "lora_alpha", "quantization_config")


def _legacy_config(obj):
    """A Keras 3 config translated to what tf_keras accepts (weights are copied separately)."""
    if isinstance(obj, list):
        return [_legacy_config(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in obj:
        return obj["config"]["name"]
    if obj.get("module") in ("keras.initializers", "keras.regularizers", "keras.constraints"):
        return {"class_name": obj["class_name"], "config": {}}
    out = {}
    for k, v in obj.items():
        if k in _KERAS3_ONLY or v is None:
            continue
        out["batch_input_shape" if k == "batch_shape" else k] = _legacy_config(v)
    return out


def to_tf_keras(model):
    """A new tf_keras model with ``model``'s architecture and weights (``model`` is left as is)."""
    tfk = tf_keras()
    if is_tf_keras(model):
        copy = tfk.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy
    try:
        layers = [l for l in model.layers if l.__class__.__name__ != "InputLayer"]
        shape = tuple(model.inputs[0].shape[1:])
        seq = tfk.Sequential([tfk.Input(shape, name=getattr(model.inputs[0], "name", None) or "x")] + [
            tfk.layers.deserialize({"class_name": l.__class__.__name__, "config": _legacy_config(l.get_config())})
            for l in layers])
        seq.set_weights(model.get_weights())
        x = np.random.default_rng(0).random((2,) + shape).astype(np.float32)
        same = np.allclose(np.asarray(seq(x)), np.asarray(model(x)), atol=1e-4)
    except Exception as e:  # noqa: BLE001 - any failure means "cannot translate"
        raise PassError(f"this pass uses tfmot, which needs a tf_keras (Keras 2) model; rebuilding the "
                        f"Keras 3 model in tf_keras failed ({type(e).__name__}: {e}). Save the model "
                        f"with tf_keras (import tf_keras; model.save('m.h5')) and give that file") from e
    if not same:
        raise PassError("this pass uses tfmot, which needs a tf_keras (Keras 2) model; the Keras 3 model "
                        "is not a plain chain of layers, so it cannot be rebuilt automatically. Save it "
                        "with tf_keras (import tf_keras; model.save('m.h5')) and give that file")
    return seq


def like(original, trained):
    """``trained`` (tf_keras, plain layers) in the framework of ``original``: a Keras 3 input gets a
    Keras 3 clone with the trained weights, so every exporter takes it as it took the input."""
    if is_tf_keras(original):
        return trained
    import keras

    back = keras.models.clone_model(original)
    weights = trained.get_weights()
    if [tuple(w.shape) for w in back.get_weights()] != [tuple(w.shape) for w in weights]:
        return trained
    back.set_weights(weights)
    return back


def compile_classifier(model, lr: float, steps: int = 0) -> None:
    """Compile for integer labels: Adam at ``lr``, cosine-decayed over ``steps`` when given."""
    tfk = tf_keras()
    rate = tfk.optimizers.schedules.CosineDecay(lr, steps) if steps > 0 else lr
    model.compile(optimizer=tfk.optimizers.Adam(rate),
                  loss=tfk.losses.SparseCategoricalCrossentropy(from_logits=_emits_logits(model)),
                  metrics=["accuracy"])


def _emits_logits(model) -> bool:
    act = getattr(model.layers[-1], "activation", None)
    return getattr(act, "__name__", "linear") != "softmax"


def steps(n: int, epochs: int, batch_size: int) -> int:
    return epochs * -(-n // batch_size)


def predict(model, x: np.ndarray, batch: int = 512) -> np.ndarray:
    outs = [np.asarray(model(x[i:i + batch], training=False)) for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x).argmax(-1) == y).mean())


def weights_bytes(model) -> bytes:
    """The model's weights, as an ``.npz`` of its weight arrays (dense)."""
    buf = io.BytesIO()
    np.savez(buf, *[np.asarray(w) for w in model.get_weights()])
    return buf.getvalue()


def sizes(model) -> dict:
    raw = weights_bytes(model)
    return {"dense_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9))}


def kernels(model) -> list[tuple[str, np.ndarray]]:
    """(layer name, kernel) for each Conv/Dense layer (Keras 3 or tf_keras)."""
    out = []
    for l in model.layers:
        k = getattr(l, "kernel", None)
        if k is not None:
            out.append((l.name, np.asarray(k)))
    return out


def sparsity(model) -> dict:
    layers, zeros, total = {}, 0, 0
    for name, w in kernels(model):
        z = int((w == 0).sum())
        layers[name] = round(z / w.size, 4)
        zeros, total = zeros + z, total + w.size
    return {"overall": round(zeros / max(total, 1), 4), "layers": layers}
