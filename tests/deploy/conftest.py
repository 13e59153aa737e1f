"""Fixtures for the deploy tests that need a phone: captured ``benchmark_model`` outputs and a
stand-in ``benchmark_model`` (the stand-in phone and adb client are :mod:`edgecompress.testing`;
their fixtures ``fake_adb`` / ``fake_phone`` are in tests/conftest.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "benchmark_model"


def capture(name: str) -> str:
    """The captured benchmark_model output in fixture ``name`` (its source header removed)."""
    text = (FIXTURES / name).read_text()
    return text.split("# --- capture ---\n", 1)[1]


def stand_in_benchmark_model(fixture: str, *, sleep_s: float = 0.4, exit_code: int = 0,
                             argv_log: bool = True, load: tuple[Path, int] | None = None) -> str:
    """Text of a STAND-IN ``benchmark_model`` executable: it records its argv next to itself,
    sleeps ``sleep_s`` (so the battery loop samples a run) and prints the real captured output
    ``fixture``. It is a stand-in for LiteRT's binary, which no wheel ships for this machine.

    ``load = (battery folder, current_now)``: the stand-in also plays the phone's load step — it
    writes that ``current_now`` into the stand-in battery as it starts and restores the old value
    when done (a shell wrapper, so the step comes within a millisecond of its start and end)."""
    out = capture(fixture)
    me = "sys.argv[1]" if load else "sys.argv[0]"
    args = "sys.argv[2:]" if load else "sys.argv[1:]"
    body = ("import sys, time, os, json\n"
            + (f"open(os.path.join(os.path.dirname(os.path.abspath({me})), 'last_argv.json'), 'w')"
               f".write(json.dumps({args}))\n" if argv_log else "")
            + f"time.sleep({sleep_s})\nsys.stdout.write({out!r})\nsys.exit({exit_code})\n")
    if load is None:
        return f"#!{sys.executable}\n{body}"
    cur = Path(load[0]) / "current_now"
    return (f"#!/bin/sh\nOLD=$(cat {cur})\nprintf '%s\\n' {int(load[1])} > {cur}\n"
            f"{sys.executable} - \"$0\" \"$@\" <<'PYEOF'\n{body}PYEOF\n"
            f"RC=$?\nprintf '%s\\n' \"$OLD\" > {cur}\nexit $RC\n")
