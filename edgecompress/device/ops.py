"""Per-operator profiles on the device (numpy + one runtime; nothing else).

Every profile is a list of ``{"name", "op_type", "ms", "where"}``: ``ms`` is the mean time per
inference (``None`` where the runtime cannot time single ops), ``where`` is the execution
provider or delegate that ran it.

* ONNX Runtime: its own profiler (``SessionOptions.enable_profiling``) on a second session
  with the benchmark's settings; the JSON trace's ``Node`` ``*_kernel_time`` events summed
  per node and divided by the number of inferences. The nodes are those ORT executes after
  its graph optimizations (fused ones renamed, e.g. ``/0/Conv_token_17``); :func:`onnx_coverage`
  maps every node of the model to the executed node that ran it, or lists it as fused/folded.
* TFLite: the interpreter's node list (``_get_ops_details``) after the default delegate
  (XNNPACK) was applied. Each ``DELEGATE`` node is one delegate partition; an original op is
  inside a partition when it lies between the partition's inputs and outputs, else it ran
  on TFLite's own CPU kernels ("outside XNNPACK"). Single-op times come only from LiteRT's
  native ``benchmark_model --enable_op_profiling`` (:func:`from_node_type_table`).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Optional

DELEGATE_NAME = "XNNPACK"


# -- ONNX Runtime --------------------------------------------------------------------------
def profile_onnx(path: str, feed: dict, *, threads: int = 1, runs: int = 20, optimization: str = "all") -> list:
    """ORT's profiler on ``path``; ``optimization`` "all" (as benchmarked) or "none" (the model's own nodes)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if optimization == "none":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    folder = tempfile.mkdtemp(prefix="ec-ops-")
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(folder, "ort")
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    sess.run(None, feed)                       # first run (allocations) is profiled too: drop it below
    for _ in range(runs):
        sess.run(None, feed)
    trace = sess.end_profiling()
    try:
        with open(trace) as f:
            events = json.load(f)
    finally:
        try:
            os.unlink(trace)
            os.rmdir(folder)
        except OSError:
            pass
    return parse_ort_trace(events, runs + 1, skip_first=True)


def parse_ort_trace(events: list, inferences: int, skip_first: bool = False) -> list:
    """{name, op_type, ms, where} per executed node, ``ms`` = mean kernel time per inference."""
    per: dict = {}
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first_end = None
    if skip_first and runs:
        first = min(runs, key=lambda e: e["ts"])
        first_end = first["ts"] + first["dur"]
    counted = inferences - (1 if first_end is not None else 0)
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if first_end is not None and e["ts"] <= first_end:
            continue
        name = e["name"][: -len("_kernel_time")]
        args = e.get("args") or {}
        d = per.setdefault(name, {"name": name, "op_type": args.get("op_name"), "us": 0.0,
                                  "where": args.get("provider")})
        d["us"] += float(e.get("dur") or 0)
    out = [{"name": d["name"], "op_type": d["op_type"], "ms": d["us"] / 1000.0 / max(1, counted),
            "where": d["where"]} for d in per.values()]
    out.sort(key=lambda d: -d["ms"])
    return out


def onnx_coverage(model_nodes: list, ops: list) -> dict:
    """Which executed node ran each model node: {node name: executed name | None (folded away)}.

    ``model_nodes``: ``[(name, op_type, [outputs], [inputs])]``. A node is matched by its own
    name, by its name with ORT's ``_token_N`` suffix, or by an output tensor name an executed
    node carries (``/2/Relu_output_0_nchwc``: the Conv+ReLU ORT fused ran the ReLU). A node
    still unmatched whose outputs all feed nodes that ran inside one executed node X was fused
    into X (the Conv of that Conv+ReLU; a weight's DequantizeLinear inside QLinearConv).
    """
    executed = [o["name"] for o in ops]
    exact = set(executed)
    out = {}
    for node in model_nodes:
        name, outputs = node[0], node[2]
        hit = name if name in exact else None
        if hit is None:
            hit = next((x for x in executed if x.startswith(name + "_token_")), None)
        if hit is None:
            hit = next((x for x in executed for t in outputs if t and (x == t or x.startswith(t + "_"))), None)
        out[name] = hit
    consumers: dict = {}
    for node in model_nodes:
        for t in (node[3] if len(node) > 3 else []):
            consumers.setdefault(t, []).append(node[0])
    changed = True
    while changed:
        changed = False
        for node in model_nodes:
            if out[node[0]] is not None:
                continue
            users = [u for t in node[2] for u in consumers.get(t, [])]
            ran = {out[u] for u in users}
            if users and len(ran) == 1 and None not in ran:
                out[node[0]] = ran.pop()
                changed = True
    return out


# -- TFLite --------------------------------------------------------------------------------
def tflite_ops(interp) -> list:
    """The interpreter's nodes, each original op placed in its delegate partition or outside it."""
    details = interp._get_ops_details()
    delegates = [d for d in details if d["op_name"] == "DELEGATE"]
    originals = [d for d in details if d["op_name"] != "DELEGATE"]
    producer = {}
    for d in originals:
        for t in d["outputs"]:
            producer[int(t)] = d
    where: dict = {}
    for k, dnode in enumerate(delegates):
        stop = {int(t) for t in dnode["inputs"]}
        stack = [int(t) for t in dnode["outputs"]]
        seen = set()
        while stack:
            t = stack.pop()
            if t in seen or t in stop:
                continue
            seen.add(t)
            op = producer.get(t)
            if op is None:
                continue
            where[op["index"]] = f"{DELEGATE_NAME} partition {k}"
            stack += [int(x) for x in op["inputs"] if int(x) >= 0]
    out = []
    for d in originals:
        out.append({"name": f"{d['op_name']}:{d['index']}", "op_type": d["op_name"], "ms": None,
                    "where": where.get(d["index"], "TFLite CPU (outside " + DELEGATE_NAME + ")")})
    return out


def tflite_partitions(ops: list) -> int:
    return len({o["where"] for o in ops if o["where"] and o["where"].startswith(DELEGATE_NAME + " partition")})


# -- benchmark_model -----------------------------------------------------------------------
def from_node_type_table(rows: Optional[list], delegate: Optional[str] = None) -> list:
    """``ops`` from benchmark_model's "Summary by node type" rows (one entry per node type)."""
    out = []
    for r in rows or []:
        kind = r.get("node_type") or "?"
        out.append({"name": kind, "op_type": kind, "ms": r.get("avg_ms"), "count": r.get("count"),
                    "where": "TfLiteXNNPackDelegate" if "Delegate" in kind or "NHWC" in kind or
                    "XNNPACK" in kind.upper() else (delegate or "TFLite CPU")})
    return out


def profile(model, path: str, threads: int, runs: int = 20) -> tuple[list, dict]:
    """(ops, extra) for a loaded runtimes.Model: ORT's profiler, or TFLite's partitions."""
    t0 = time.perf_counter()
    if path.lower().endswith(".onnx"):
        feed = {t.name: a for t, a in zip(model.inputs, model.random_inputs())}
        ops = profile_onnx(path, feed, threads=threads, runs=runs)
        extra = {"ops_source": "onnxruntime profiler", "ops_runs": runs}
    else:
        ops = tflite_ops(model.interp)
        extra = {"ops_source": "tflite interpreter nodes (no per-op times without benchmark_model)",
                 "delegate_partitions": tflite_partitions(ops),
                 "outside_delegate": sum(1 for o in ops if o["where"].startswith("TFLite CPU"))}
    extra["ops_seconds"] = time.perf_counter() - t0
    return ops, extra
