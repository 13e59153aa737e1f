"""Helpers shared by the command modules: JSON output and plain tables."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table (rich); numbers right-aligned."""
    from ..report.tables import text_table

    return text_table(headers, rows)


def add_targets_file_arg(p) -> None:
    p.add_argument("--targets", dest="targets_file", metavar="FILE",
                   help="target inventory YAML (default: $EDGECOMPRESS_TARGETS or "
                        "~/.config/edgecompress/targets.yaml; 'local' always exists)")


def ops_lines(result: dict, top: int = 8) -> list[str]:
    """The top ops of one result (by ms, else in graph order) as indented lines."""
    a = result.get("artifact") or {}
    ops = list(result.get("ops") or [])
    timed = sorted([o for o in ops if o.get("ms") is not None], key=lambda o: -o["ms"])
    shown = (timed or ops)[:top]
    total = sum(o["ms"] for o in timed) or None
    lines = [f"  top ops of {a.get('precision')}.{a.get('format')} ({len(ops)} executed nodes):"]
    for o in shown:
        ms = "" if o.get("ms") is None else f"{o['ms']:.4f} ms" + (f" ({o['ms'] / total:.0%})" if total else "")
        lines.append(f"    {o['name'][:48]:48} {o['op_type'] or '?':22} {ms:18} {o.get('where') or ''}")
    return lines


def add_budget_args(p) -> None:
    """--objective and the quality budget (defaults: the target profile's ``budget:``)."""
    g = p.add_argument_group("recommendation")
    g.add_argument("--objective", choices=["p50", "p90", "energy", "size", "peak_rss"],
                   help="what the recommended artifact is best at (default: the profile's budget, p50)")
    g.add_argument("--max-accuracy-drop", type=float, metavar="PTS",
                   help="most accuracy (points) an artifact may lose against the source model (profile default 1)")
    g.add_argument("--min-agreement", type=float, metavar="FRACTION",
                   help="least top-1 agreement with the source model, e.g. 0.98 (profile default 0.97)")
    g.add_argument("--min-cosine", type=float, metavar="C", help="least output cosine (profile default 0.99)")
    g.add_argument("--max-memory-mb", type=float, metavar="MB",
                   help="peak RSS limit (default: the device's memory or cgroup limit)")


def budget_kwargs(args) -> dict:
    return {"objective": args.objective, "max_accuracy_drop": args.max_accuracy_drop,
            "min_agreement": args.min_agreement, "min_cosine": args.min_cosine, "max_memory_mb": args.max_memory_mb}
