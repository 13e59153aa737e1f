"""``qat``: quantization-aware training of a Keras model (tfmot ``quantize_model``).

The model (rebuilt in tf_keras when it is a Keras 3 chain of layers) gets fake-quantization
nodes (8-bit, per-channel weights; Conv+BN+ReLU folded as TFLite will run them) and is trained
on the labelled data so the weights adapt to INT8. A profile's ``{format: tflite, precision:
int8}`` artifact (TFLiteConverter, full integer) then keeps the trained quantization ranges.
"""
from __future__ import annotations

import numpy as np

from ..errors import PassError
from .base import PassContext, replace_model, unsupported
from .specs import QatSpec, settings


def qat_keras(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 2, lr: float = 1e-4,
              batch_size: int = 64):
    """A quantization-aware copy of ``model`` trained on ``x``/``y`` (tf_keras)."""
    from . import _keras as K

    tfmot = K.tfmot()
    base = K.to_tf_keras(model)
    try:
        q = tfmot.quantization.keras.quantize_model(base)
    except Exception as e:  # noqa: BLE001 - tfmot raises plain RuntimeError/ValueError
        raise PassError(f"qat: tfmot cannot quantize this model ({type(e).__name__}: {e})") from e
    K.compile_classifier(q, lr, K.steps(len(x), epochs, batch_size))
    q.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return q


def run(model, spec: QatSpec, ctx: PassContext):
    if model.kind != "keras":
        raise unsupported("qat", model.kind, "Keras models (through tfmot)",
                          "For PyTorch and ONNX sources use a profile's int8 artifacts "
                          "(post-training quantization with calibration)")
    ctx.need_training_data("qat", "trains with fake quantization")
    from . import _keras as K

    measured: dict = {}
    if ctx.can_eval:
        measured["accuracy_before"] = K.accuracy(model.obj, ctx.eval_x, ctx.eval_y)
    q = qat_keras(model.obj, ctx.train_x, ctx.train_y, epochs=spec.epochs, lr=spec.lr,
                  batch_size=spec.batch_size)
    if ctx.can_eval:
        measured["accuracy_after"] = K.accuracy(q, ctx.eval_x, ctx.eval_y)   # fake-quantized
    measured["training"] = {"epochs": spec.epochs, "lr": spec.lr, **ctx.data_summary()}
    measured["note"] = "accuracy_after is the fake-quantized model; export it as tflite int8"
    return replace_model(model, q, settings(spec), ctx), measured
