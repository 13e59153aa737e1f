"""``qat``: quantization-aware training of a Keras model (tfmot ``quantize_model``).

The model (rebuilt in tf_keras when it is a Keras 3 chain of layers) gets fake-quantization
nodes (8-bit, per-channel weights; Conv+BN+ReLU folded as TFLite will run them) and is trained
on the labelled data so the weights adapt to INT8. Its full-integer TFLite conversion
(:func:`to_int8_tflite`, what a profile's ``{format: tflite, precision: int8}`` artifact is)
then keeps the trained quantization ranges.
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


def to_int8_tflite(model, calib_x: np.ndarray, n_calib: int = 200) -> bytes:
    """Full-integer TFLite (int8 input and output) of a tf_keras / QAT model."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for i in range(min(n_calib, len(calib_x))):
            yield [calib_x[i:i + 1].astype(np.float32)]

    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def tflite_predict(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Run a (possibly int8-I/O) TFLite model on float ``x``, one sample at a time; float outputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for i in range(len(x)):
        xi = x[i:i + 1].astype(np.float32)
        if inp["dtype"] != np.float32:
            s, z = inp["quantization"]
            xi = np.clip(np.round(xi / s + z), np.iinfo(inp["dtype"]).min,
                         np.iinfo(inp["dtype"]).max).astype(inp["dtype"])
        it.set_tensor(inp["index"], xi)
        it.invoke()
        o = it.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            s, z = out["quantization"]
            o = (o.astype(np.float32) - z) * s
        res.append(o[0])
    return np.stack(res)


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
