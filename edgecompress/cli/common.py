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
