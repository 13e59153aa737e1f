"""THE executor: feed an artifact (or the source model) samples by input NAME, read outputs by NAME.

Used by host fidelity (``compress``), by the host reference run and by the device runner, so
host and device feed inputs and read outputs with the same code. numpy + one runtime only.

Samples: ``{input name: array}`` with one sample per leading index; each sample is a whole
tensor of the model's input (batch dim included, usually 1) -- see :func:`samples_from`.

* Inputs are matched to the artifact's by name (exact, then normalised: ``serving_default_``,
  ``:0`` and punctuation dropped), then by the only input left of a fitting shape. Never by position.
* 4-D inputs are transposed NCHW<->NHWC when the artifact's shape is the transpose (the layout
  breaks ties); outputs are transposed back when that is what fits the model's output.
* dtypes are kept: a float sample for an int8/uint8 input with a scale is quantized with the
  artifact's own scale/zero-point; integer data for an integer input is fed as integers (int64 ->
  int32 only where the artifact takes int32, range-checked); bool as bool; never a float cast
  of integer data unless the artifact itself takes float there (said in ``notes``).
* Outputs with a scale are dequantized; integer/bool outputs without one are kept as they are.
* Outputs are mapped to the model's output names by an explicit ``output_map`` (the manifest's),
  else by name, else by the only unmapped output of the same shape; :func:`resolve_by_values`
  settles the rest by closeness to a reference (compress records the result in the manifest).
* ``feedback`` ``{OUTPUT: INPUT}`` runs samples in order, feeding each sample's OUTPUT as the
  next sample's INPUT (recurrent state); the first sample takes the data's value.
* Batches: samples are concatenated along axis 0 where every input's leading dim is dynamic in
  the artifact and there is no feedback; where the artifact fixes it at B > 1 (a profile's
  ``batch:``), B samples go in each call, the last call padded with copies of its last sample
  (their outputs dropped); otherwise one sample per call.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

import numpy as np

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
BATCH = 64


class IOError_(ValueError):
    """Inputs or outputs that cannot be matched or fed; the message names the tensor."""


def norm(name: str) -> str:
    n = str(name)
    n = re.sub(r"^serving_default_", "", n)
    n = re.sub(r":\d+$", "", n)
    return re.sub(r"[^0-9a-z]", "", n.lower())


def dims_fit(shape, want) -> bool:
    """``shape`` (concrete) fits ``want`` (ints; None/str/-1/0 = any)."""
    if len(shape) != len(want):
        return False
    return all(not isinstance(w, int) or w <= 0 or int(s) == w for s, w in zip(shape, want))


def _fixed(d) -> bool:
    return isinstance(d, (int, np.integer)) and d > 0


def samples_from(arrays: dict, n: Optional[int] = None) -> tuple[dict, int]:
    """Check every array has the same number of samples (or one, broadcast); -> (arrays, n)."""
    counts = {k: len(v) for k, v in arrays.items() if np.ndim(v) > 0 and len(v) != 1}
    if len(set(counts.values())) > 1:
        raise IOError_("inputs have different numbers of samples: "
                       + ", ".join(f"{k}: {c}" for k, c in counts.items()))
    n = n or (next(iter(counts.values())) if counts else 1)
    return {k: (np.repeat(v, n, axis=0) if len(v) == 1 and n > 1 else v) for k, v in arrays.items()}, n


def combine(per_sample: list) -> np.ndarray:
    """Per-sample outputs -> one array: concatenated on the batch axis when each has a leading 1, else stacked."""
    if all(np.ndim(a) >= 1 and np.shape(a)[0] == 1 for a in per_sample):
        return np.concatenate(per_sample, axis=0)
    return np.stack(per_sample)


def split_back(arr: np.ndarray, n: int, sample_shape) -> list:
    """Inverse of :func:`combine` for ``n`` samples of ``sample_shape``."""
    if len(sample_shape) >= 1 and sample_shape[0] == 1 and len(arr) == n and arr.ndim == len(sample_shape):
        return [arr[i:i + 1] for i in range(n)]
    return [arr[i] for i in range(n)]


def run_samples(call: Callable[[dict], dict], inputs: dict, *, feedback: Optional[dict] = None,
                batchable: bool = False, batch: int = BATCH, pad: bool = False,
                record: Optional[dict] = None) -> dict:
    """``call({name: one batch})`` -> ``{name: array}`` over all samples; see the module docstring.

    ``pad``: every call takes exactly ``batch`` samples (a fixed batch dim), the last one padded.
    ``record``: a dict that receives ``{input name: (N, ...) what was fed}`` (the fed-back state
    included) -- how calibration gets the states a recurrent model really sees."""
    inputs, n = samples_from(dict(inputs))
    feedback = dict(feedback or {})
    outs: dict[str, list] = {}
    one_each = all(np.ndim(v) >= 2 and np.shape(v)[1] == 1 for v in inputs.values())
    if pad and (feedback or not one_each):
        raise IOError_(f"the artifact fixes its batch at {batch}: it takes samples of batch 1 without --feedback "
                       "(build it without the profile's batch: for this model)")
    if (batchable or pad) and not feedback and one_each:
        for i in range(0, n, max(1, batch)):
            k_n = min(batch, n - i)
            take = list(range(i, i + k_n)) + [i + k_n - 1] * ((batch - k_n) if pad else 0)
            got = call({k: np.concatenate([v[j] for j in take], axis=0) for k, v in inputs.items()})
            for k, y in got.items():
                y = np.asarray(y)
                outs.setdefault(k, []).extend([y[j:j + 1] for j in range(k_n)] if y.ndim >= 1 and len(y) == len(take)
                                              else [y] * k_n)
        return {k: combine(v) for k, v in outs.items()}
    state: dict = {}
    for i in range(n):
        feed = {k: (state[k] if k in state else v[i]) for k, v in inputs.items()}
        if record is not None:
            for k, v in feed.items():
                record.setdefault(k, []).append(np.asarray(v))
        got = call(feed)
        for out_name, in_name in feedback.items():
            if out_name not in got:
                raise IOError_(f"--feedback {out_name}={in_name}: no output {out_name!r}; outputs: {', '.join(got)}")
            state[in_name] = np.asarray(got[out_name]).reshape(np.shape(v_of(inputs, in_name)[0]))
        for k, y in got.items():
            outs.setdefault(k, []).append(np.asarray(y))
    if record is not None:
        for k in list(record):
            record[k] = np.stack(record[k])
    return {k: combine(v) for k, v in outs.items()}


def v_of(inputs: dict, name: str):
    if name not in inputs:
        raise IOError_(f"--feedback: no input {name!r}; inputs: {', '.join(inputs)}")
    return inputs[name]


class Executor:
    """Run one loaded artifact (``runtimes.Model``) on named samples; outputs by model name.

    ``model_inputs`` / ``model_outputs``: ``[{name, shape, dtype}]`` of the source model (the
    manifest's); ``input_map`` / ``output_map``: artifact tensor name -> model tensor name;
    ``source_layout``: layout of the samples (NCHW for torch/ONNX sources).
    """

    def __init__(self, model, *, model_inputs=None, model_outputs=None, input_map=None, output_map=None,
                 source_layout: str = "NCHW"):
        self.model = model
        self.source_layout = source_layout
        self.model_inputs = list(model_inputs or [])
        self.model_outputs = list(model_outputs or [])
        self.input_map = dict(input_map or {})
        self.output_map = dict(output_map or {})
        self.notes: list[str] = []
        self._perms: dict = {}

    # -- matching ------------------------------------------------------------------------
    def match_inputs(self, names: list, samples: dict) -> dict:
        """artifact input name -> data/model input name."""
        m, left = {}, list(names)
        for t in self.model.inputs:
            want = self.input_map.get(t.name)
            if want is None:
                want = next((n for n in left if n == t.name), None) or \
                    next((n for n in left if norm(n) == norm(t.name)), None)
            if want is None:
                fits = [n for n in left if n in samples and self._fits(np.asarray(samples[n][0]), t)]
                want = fits[0] if len(fits) == 1 else None
            if want is None or want not in left:
                raise IOError_(f"artifact input {t.name!r} {t.shape} {t.dtype.name}: no data for it "
                               f"(data has: {', '.join(map(str, left)) or 'nothing left'})")
            m[t.name] = want
            left.remove(want)
        return m

    def _fits(self, x, t) -> bool:
        try:
            self._perm(x, t)
            return True
        except IOError_:
            return False

    def _perm(self, x: np.ndarray, t) -> Optional[tuple]:
        want = t.full_shape if hasattr(t, "full_shape") else t.shape
        same = dims_fit(x.shape, want)
        if x.ndim == 4:
            for perm, src, dst in ((TO_NHWC, "NCHW", "NHWC"), (TO_NCHW, "NHWC", "NCHW")):
                if dims_fit(x.transpose(perm).shape, want) and (not same or (self.source_layout == src
                                                                             and self.model.layout == dst)):
                    return perm
        if same:
            return None
        sig = getattr(t, "resizable", None)
        if sig is not None and hasattr(self.model, "set_shape"):      # a TFLite dim that is dynamic
            for perm in ((TO_NHWC,) if x.ndim == 4 and self.model.layout == "NHWC" else ()) + (None,):
                shape = x.transpose(perm).shape if perm else x.shape
                if dims_fit(shape, sig):
                    self.model.set_shape(t.name, list(shape))
                    t.full_shape = list(shape)
                    return perm
        raise IOError_(f"input {t.name!r}: a sample of shape {list(x.shape)} does not fit the artifact's input "
                       f"{list(want)} (neither as is nor NCHW<->NHWC transposed)")

    def adapt(self, x, t) -> np.ndarray:
        x = np.asarray(x)
        perm = self._perms.get(t.name)
        if perm is None and t.name not in self._perms:
            perm = self._perms[t.name] = self._perm(x, t)
        if perm:
            x = x.transpose(perm)
        want = t.dtype
        if want.kind in "iu" and x.dtype.kind == "f":
            if not t.quantized:
                raise IOError_(f"input {t.name!r} takes {want.name} (no quantization parameters) but the "
                               f"data is {x.dtype.name}: give {want.name} data")
            info = np.iinfo(want)
            x = np.clip(np.round(x / t.scale + t.zero_point), info.min, info.max)
        elif want.kind in "iu" and x.dtype.kind in "iu" and x.dtype != want:
            info = np.iinfo(want)
            if x.size and (x.min() < info.min or x.max() > info.max):
                raise IOError_(f"input {t.name!r}: values {x.min()}..{x.max()} do not fit the artifact's {want.name}")
        elif want.kind == "f" and x.dtype.kind in "iub":
            note = f"input {t.name!r}: the artifact takes {want.name}; {x.dtype.name} data fed as {want.name}"
            if note not in self.notes:
                self.notes.append(note)
        elif want.kind == "b" and x.dtype.kind != "b":
            raise IOError_(f"input {t.name!r} takes bool; the data is {x.dtype.name}")
        return np.ascontiguousarray(x, dtype=want)

    def restore(self, y, t, want_shape=None) -> np.ndarray:
        y = np.asarray(y)
        if t.quantized:
            y = (y.astype(np.float32) - t.zero_point) * t.scale
        if want_shape is not None and y.ndim == 4 and not dims_fit(y.shape, want_shape):
            for perm in (TO_NCHW, TO_NHWC):
                if dims_fit(y.transpose(perm).shape, want_shape):
                    return y.transpose(perm)
        elif want_shape is None and y.ndim == 4 and self.model.layout != self.source_layout:
            y = y.transpose(TO_NCHW if self.model.layout == "NHWC" else TO_NHWC)
        return y

    def _out_spec(self, name):
        return next((o for o in self.model_outputs if o["name"] == name), None)

    def map_outputs(self) -> dict:
        """artifact output name -> model output name, for every output that name or shape settles."""
        m = {k: v for k, v in self.output_map.items()}
        if not self.model_outputs:
            return {t.name: self.output_map.get(t.name, t.name) for t in self.model.outputs}
        names = [o["name"] for o in self.model_outputs]
        left = [n for n in names if n not in m.values()]
        for t in self.model.outputs:
            if t.name in m:
                continue
            hit = next((n for n in left if n == t.name), None) or next((n for n in left if norm(n) == norm(t.name)),
                                                                       None)
            if hit:
                m[t.name] = hit
                left.remove(hit)
        for t in self.model.outputs:
            if t.name in m:
                continue
            cands = [n for n in left if _shape_match(t.shape, self._out_spec(n)["shape"])]
            same = [u for u in self.model.outputs if u.name not in m
                    and any(_shape_match(u.shape, self._out_spec(n)["shape"]) for n in cands)]
            if len(cands) == 1 and len(same) == 1:
                m[t.name] = cands[0]
                left.remove(cands[0])
        return m

    # -- running -------------------------------------------------------------------------
    def _call(self, feeds: dict, in_map: dict) -> dict:
        self.model.feed([self.adapt(feeds[in_map[t.name]], t) for t in self.model.inputs])
        self.model.invoke()
        got = {}
        for t, y in zip(self.model.outputs, self.model.results()):
            spec = self._out_spec(self.output_map.get(t.name))
            got[t.name] = self.restore(y, t, spec["shape"] if spec else None)
        return got

    def run_raw(self, samples: dict, feedback: Optional[dict] = None) -> dict:
        """{artifact output name: combined array}; feedback is by MODEL names (mapped here)."""
        samples, _ = samples_from(dict(samples))
        in_map = self.input_map_used = self.match_inputs(list(samples), samples)
        fb = {}
        if feedback:
            self.output_map = self.map_outputs()
            inv = {v: k for k, v in self.output_map.items()}
            for o, i in feedback.items():
                if o not in inv:
                    raise IOError_(f"--feedback {o}={i}: the artifact's output for {o!r} is not known "
                                   f"(artifact outputs: {', '.join(t.name for t in self.model.outputs)})")
                fb[inv[o]] = i
        lead = _leading_dims(self.model)
        b = fixed_batch(self.model)
        if b:
            return run_samples(lambda f: self._call(f, in_map), samples, feedback=fb, batch=b, pad=True)
        batchable = getattr(self.model, "batches", False) and bool(lead) and not any(_fixed(d) for d in lead)
        return run_samples(lambda f: self._call(f, in_map), samples, feedback=fb, batchable=batchable)

    def first_feed(self, samples: dict, in_map: dict) -> list:
        """The inputs of one call on the first sample(s): B of them where the artifact fixes batch B."""
        b = fixed_batch(self.model)

        def first(v):
            return np.concatenate([v[min(j, len(v) - 1)] for j in range(b)]) if b else v[0]
        return [self.adapt(first(samples[in_map[t.name]]), t) for t in self.model.inputs]

    def run(self, samples: dict, feedback: Optional[dict] = None) -> dict:
        """{model output name: combined array}; ValueError if an output cannot be told apart."""
        raw = self.run_raw(samples, feedback)
        m = self.map_outputs()
        missing = [t.name for t in self.model.outputs if t.name not in m]
        if missing:
            raise IOError_(f"artifact output(s) {', '.join(missing)} cannot be matched to the model's outputs by name "
                           f"or shape; give the artifact's output map (the manifest's outputs[].model_name)")
        self.output_map = m
        return {m[k]: v for k, v in raw.items()}


def _leading_dims(model) -> list:
    return [t.full_shape[0] if hasattr(t, "full_shape") else t.shape[0] for t in model.inputs if len(t.shape)]


def fixed_batch(model) -> Optional[int]:
    """B where every input of the artifact fixes its leading (batch) dim at the same B > 1, else None."""
    lead = _leading_dims(model)
    fixed = {int(d) for d in lead if _fixed(d)}
    if len(fixed) == 1 and len(lead) == len(model.inputs) == sum(_fixed(d) for d in lead) and fixed != {1}:
        return fixed.pop()
    return None


def _shape_match(a, b) -> bool:
    """Two shapes that may be the same tensor (symbolic dims match anything; NHWC transpose allowed)."""
    if len(a) != len(b):
        return False
    if dims_fit([d if _fixed(d) else 1 for d in a], [d if _fixed(d) else 0 for d in b]):
        return True
    if len(a) == 4:
        t = [a[i] for i in TO_NCHW]
        return dims_fit([d if _fixed(d) else 1 for d in t], [d if _fixed(d) else 0 for d in b])
    return False


def resolve_by_values(raw: dict, reference: dict, known: dict) -> dict:
    """Complete ``known`` (artifact -> model output) by pairing the rest by cosine to the reference."""
    m = dict(known)
    left_a = [k for k in raw if k not in m]
    left_m = [k for k in reference if k not in m.values()]
    scored = []
    for a in left_a:
        for r in left_m:
            x, y = np.asarray(raw[a], np.float64), np.asarray(reference[r], np.float64)
            if x.size != y.size:
                continue
            if x.shape != y.shape:
                continue
            d = np.linalg.norm(x) * np.linalg.norm(y)
            scored.append(((x.ravel() @ y.ravel()) / d if d else 0.0, a, r))
    for _, a, r in sorted(scored, reverse=True):
        if a not in m and r not in m.values():
            m[a] = r
    return m


def pack_inputs(inputs: dict) -> dict:
    """Arrays for an .npz: the samples by name, ``__io__`` (a dict) as JSON bytes."""
    import json

    out = {k: np.ascontiguousarray(v) for k, v in inputs.items() if k != "__io__"}
    if "__io__" in inputs:
        out["__io__"] = np.frombuffer(json.dumps(inputs["__io__"]).encode(), dtype=np.uint8)
    return out


def io_spec(model: dict, artifact) -> dict:
    """The ``__io__`` map for one artifact from its manifest (``model`` block and artifact record)."""
    def tensors(key):
        return [dict(t) if isinstance(t, dict) else {k: getattr(t, k) for k in ("name", "shape", "dtype", "model_name")}
                for t in (artifact.get(key) if isinstance(artifact, dict) else getattr(artifact, key)) or []]

    ins, outs = tensors("inputs"), tensors("outputs")
    return {"model_inputs": model.get("inputs") or [], "model_outputs": model.get("outputs") or [],
            "input_map": {t["name"]: t["model_name"] for t in ins if t.get("model_name")},
            "output_map": {t["name"]: t["model_name"] for t in outs if t.get("model_name")},
            "source_layout": model.get("layout") or "NCHW", "feedback": model.get("feedback") or {}}
