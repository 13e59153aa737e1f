"""Helpers shared by the command modules: JSON output and plain tables."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_num(r[i]) for r in cells if r[i]) and any(r[i] for r in cells)
               for i in range(len(headers))]

    def fmt(row):
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric)).rstrip()

    lines = [fmt(list(headers)), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells]
    return "\n".join(lines)


def _is_num(s: str) -> bool:
    try:
        float(s.rstrip("%x×"))
        return True
    except ValueError:
        return False


def add_targets_file_arg(p) -> None:
    p.add_argument("--targets", dest="targets_file", metavar="FILE",
                   help="target inventory YAML (default: $EDGECOMPRESS_TARGETS or "
                        "~/.config/edgecompress/targets.yaml; 'local' always exists)")
