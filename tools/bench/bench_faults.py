"""Run the fault matrix (tests/faults/) and print one line per case: expected outcome, observed
outcome, data lost (must be "none").

    python tools/bench/bench_faults.py [-m "not slow"] [-k EXPR]

Each case is a test in tests/faults/ that records what it expected and what it saw
(``record_property``); this script runs them once with pytest against the real lab devices and
reads those records back from pytest's JUnit XML, so the table and the tests are the same code.
A case that fails shows its failure as the observed outcome and "UNKNOWN" as data lost; a
skipped case (not root, no namespaces) shows why. Exit status: pytest's (0 when every case held).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cases(junit: Path) -> list[dict]:
    rows = []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        name = tc.get("name")
        module = (tc.get("classname") or "").rsplit(".", 1)[-1].removeprefix("test_")
        row = {"case": f"{module}: {name.removeprefix('test_')}", "seconds": float(tc.get("time") or 0),
               "expected": props.get("expected", ""), "observed": props.get("observed", ""),
               "data_lost": props.get("data_lost", "")}
        bad = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
        skipped = tc.find("skipped")
        if bad is not None:
            row.update(observed="FAILED: " + (bad.get("message") or "").splitlines()[0][:100], data_lost="UNKNOWN")
        elif skipped is not None:
            row.update(observed="skipped: " + (skipped.get("message") or "")[:100], data_lost="-")
        rows.append(row)
    return rows


def render(rows: list[dict], width: int = 48) -> str:
    head = ("case", "expected", "observed", "data lost", "s")
    table = [head] + [(r["case"], r["expected"], r["observed"], r["data_lost"], f"{r['seconds']:.1f}") for r in rows]
    wrapped = [[textwrap.wrap(c, width) or [""] for c in row] for row in table]
    widths = [min(width, max(len(line) for row in wrapped for line in row[i])) for i in range(len(head))]
    out = []
    for n, row in enumerate(wrapped):
        for k in range(max(len(c) for c in row)):
            out.append("  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", dest="markers", default=None, help="pytest -m expression (default: every case)")
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "faults.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "faults"),
               f"--junitxml={junit}", "-o", "junit_family=xunit1", "-o", "junit_logging=no"]
        if args.markers:
            cmd += ["-m", args.markers]
        if args.keyword:
            cmd += ["-k", args.keyword]
        t0 = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
        wall = time.monotonic() - t0
        if not junit.exists():
            print(f"bench_faults: pytest wrote no report (exit {rc})", file=sys.stderr)
            return rc or 1
        rows = cases(junit)
    print(render(rows))
    lost = [r for r in rows if r["data_lost"] not in ("none", "-")]
    held = sum(r["observed"] and not r["observed"].startswith(("FAILED", "skipped")) for r in rows)
    print(f"\n{held}/{len(rows)} cases held, {len(lost)} with data lost or unknown; wall {wall:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
