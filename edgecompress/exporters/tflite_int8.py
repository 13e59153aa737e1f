"""Child process: full-integer INT8 TFLite from onnx2tf's SavedModel, calibrated on samples BY NAME.

    python tflite_int8.py SAVED_MODEL_DIR CALIB.npz OUT.tflite

``CALIB.npz`` holds ``{model input name: (N, *whole input tensor)}`` in the source layout and
dtypes. Each is matched to the SavedModel's signature input by name (normalised), transposed to
its NHWC shape where that is what fits, and fed in its own dtype -- integer inputs stay integers
(onnx2tf's own calibration casts every input to float32). Float inputs and outputs become int8;
ops without an INT8 kernel fall back to float (said on stdout as ``FLOAT_FALLBACK``).
Runs as a plain script (numpy + TensorFlow), so it needs nothing of edgecompress.
"""
import re
import sys

import numpy as np


def _norm(name):
    n = re.sub(r"^serving_default_", "", str(name))
    n = re.sub(r":\d+$", "", n)
    return re.sub(r"[^0-9a-z]", "", n.lower())


def _fit(x, shape):
    want = [d if d is not None else -1 for d in shape]

    def ok(s):
        return len(s) == len(want) and all(w < 0 or w == d for d, w in zip(s, want))
    if ok(x.shape):
        return x
    if x.ndim == 4 and ok(x.transpose(0, 2, 3, 1).shape):
        return x.transpose(0, 2, 3, 1)
    raise ValueError(f"calibration sample of shape {list(x.shape)} does not fit the TFLite input {shape}")


def main(argv=None):
    src, calib, out = (argv or sys.argv[1:])[:3]
    import tensorflow as tf

    data = np.load(calib)
    sig = tf.saved_model.load(src).signatures["serving_default"].structured_input_signature[1]
    specs = {name: (list(spec.shape), spec.dtype.as_numpy_dtype) for name, spec in sig.items()}
    pairs = {}
    for key in data.files:
        hit = next((s for s in specs if s == key), None) or next((s for s in specs if _norm(s) == _norm(key)), None)
        if hit is None:
            raise SystemExit(f"no SavedModel input for model input {key!r}; SavedModel inputs: {', '.join(specs)}")
        pairs[hit] = key
    n = max(len(data[k]) for k in data.files)

    def representative():
        for i in range(n):
            feed = {}
            for s, k in pairs.items():
                v = data[k]
                x = v[i if len(v) > 1 else 0]
                feed[s] = _fit(np.asarray(x), specs[s][0]).astype(specs[s][1])
            yield feed

    def convert(ops):
        conv = tf.lite.TFLiteConverter.from_saved_model(src)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = ops
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()

    try:
        blob = convert([tf.lite.OpsSet.TFLITE_BUILTINS_INT8])
    except Exception as e:  # noqa: BLE001 - some op has no INT8 kernel: keep it in float
        print(f"FLOAT_FALLBACK {type(e).__name__}: {str(e)[:300]}", flush=True)
        blob = convert([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
    with open(out, "wb") as f:
        f.write(blob)


if __name__ == "__main__":
    main()
