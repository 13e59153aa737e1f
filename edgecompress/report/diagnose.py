"""Why is it slow: one diagnosis line per artifact slower than its FP32 twin.

The twin is the FP32 artifact of the same format on the same run x target (else the FP32
ONNX). An artifact at least :data:`SLOWER` times the twin's p50 gets a line built from its
per-op profile (``ops``, :mod:`edgecompress.device.ops`), e.g.
``int8.tflite: 3 delegate partitions; PRELU x2 outside XNNPACK; 1.8x fp32.tflite`` or
``int8.onnx: QuantizeLinear/DequantizeLinear x4 take 31% of op time; top QLinearConv 40%;
1.3x fp32.onnx``. Without a profile the line says so (``--ops`` makes one).
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

SLOWER = 1.05
_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def summarize_ops(ops: list, fmt: Optional[str]) -> str:
    if not ops:
        return "no per-op profile (measure with --ops)"
    parts = []
    outside = Counter(o["op_type"] for o in ops if str(o.get("where") or "").startswith("TFLite CPU"))
    partitions = {o["where"] for o in ops if "partition" in str(o.get("where") or "")}
    if fmt == "tflite" or partitions or outside:
        parts.append(f"{len(partitions)} delegate partition{'s' if len(partitions) != 1 else ''}")
        if outside:
            parts.append(", ".join(f"{k} x{v}" for k, v in outside.most_common(3)) + " outside XNNPACK")
        else:
            parts.append("every op inside XNNPACK")
    timed = [o for o in ops if o.get("ms") is not None]
    total = sum(o["ms"] for o in timed)
    if timed and total > 0:
        by_type: Counter = Counter()
        for o in timed:
            by_type[o["op_type"]] += o["ms"]
        qdq = [o for o in timed if o["op_type"] in _QDQ]
        if qdq:
            share = sum(o["ms"] for o in qdq) / total
            parts.append(f"QuantizeLinear/DequantizeLinear x{len(qdq)} take {share:.0%} of op time")
        top, ms = by_type.most_common(1)[0]
        parts.append(f"top {top} {ms / total:.0%}")
    return "; ".join(parts)


def _twin(row, group: list):
    same = [r for r in group if r.precision == "fp32" and r.format == row.format and r.ok and r.p50_ms]
    if same:
        return same[0]
    onnx = [r for r in group if r.precision == "fp32" and r.format == "onnx" and r.ok and r.p50_ms]
    return onnx[0] if onnx else None


def diagnose_rows(rows: list) -> None:
    """Set ``diagnosis`` on every ok row at least SLOWER times its FP32 twin's p50."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.run_id, r.target), []).append(r)
    for group in groups.values():
        for r in group:
            r.diagnosis = None
            if not r.ok or r.p50_ms is None or r.precision == "fp32" or r.emulated:
                continue
            twin = _twin(r, group)
            if twin is None or twin.emulated:
                continue
            ratio = r.p50_ms / twin.p50_ms
            if ratio >= SLOWER:
                r.diagnosis = f"{r.artifact}: {summarize_ops(r.ops, r.format)}; {ratio:.1f}x {twin.artifact}"
