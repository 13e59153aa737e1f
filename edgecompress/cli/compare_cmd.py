"""``edgecompress compare [RUN_ID ...]`` and ``edgecompress history``.

compare: the comparison table of one or more runs (latest by default), optionally as
Markdown, JSON or a self-contained HTML report; ``--fail-on METRIC:+PCT%`` (repeatable)
checks the run against a baseline (``--baseline RUN_ID``, default the previous run of the
same model) and exits 1 on a regression.
history: the runs in the results database, newest first.
"""
from __future__ import annotations

import time

from .common import add_budget_args, budget_kwargs, print_json, table


def add_db_arg(p) -> None:
    p.add_argument("--db", metavar="URL|PATH",
                   help="results database: sqlite:///PATH, postgresql://USER@HOST/DB or a file (default: "
                        "$EDGECOMPRESS_DB or $XDG_DATA_HOME/edgecompress/results.db)")


def add(sub) -> None:
    p = sub.add_parser("compare", help="compare runs: table, Markdown, JSON, HTML report, regression checks")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to compare (unique prefixes work; "
                                                                "default: the latest run)")
    add_db_arg(p)
    p.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report to FILE")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table (e.g. for a PR comment)")
    fmt.add_argument("--json", action="store_true", help="print rows, runs, checks and recommendations as JSON")
    fmt.add_argument("--csv", action="store_true", help="print the rows as CSV")
    p.add_argument("--ops", action="store_true", help="also print each artifact's top ops (from results "
                                                      "measured with --ops)")
    p.add_argument("--samples", action="store_true", help="with --json: include raw latency samples")
    p.add_argument("--fail-on", action="append", default=[], metavar="METRIC:+PCT%",
                   help="exit 1 when METRIC regressed by more than PCT against the baseline; repeatable; "
                        "metrics: p50 p90 mean peak_rss energy size (increase, %%), accuracy (drop, points)")
    p.add_argument("--baseline", metavar="RUN_ID", help="baseline for --fail-on (default: the previous run of "
                                                         "the same model)")
    add_budget_args(p)
    p.set_defaults(func=_compare)

    h = sub.add_parser("history", help="list the runs in the results database, newest first")
    add_db_arg(h)
    h.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default 20; 0 = all)")
    h.add_argument("--model", metavar="SHA256", help="only runs of this model (hash prefix)")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_history)


def _compare(args) -> int:
    from ..report import compare, parse_fail_on, render_markdown, render_table, write_html
    from ..report.tables import render_csv

    rules = [parse_fail_on(f) for f in args.fail_on]   # bad rules are usage errors before any work
    comp = compare(args.run_ids or None, args.db, fail_on=rules, baseline=args.baseline, **budget_kwargs(args))
    html_path = write_html(comp, args.html) if args.html else None
    if args.json:
        d = comp.to_dict(samples=args.samples)
        d["html"] = str(html_path) if html_path else None
        d["exit_code"] = comp.exit_code
        print_json(d)
    elif args.csv:
        print(render_csv(comp), end="")
    elif args.markdown:
        print(render_markdown(comp))
    else:
        print(render_table(comp))
        if args.ops:
            from .common import ops_lines

            for r in comp.rows:
                if r.ops:
                    print("\n".join(ops_lines({"artifact": {"precision": r.precision, "format": r.format},
                                                "ops": r.ops})).replace("  top ops of", f"  {r.target}: top ops of"))
    if html_path and not args.json:
        print(f"report: {html_path}")
    return comp.exit_code


def _history(args) -> int:
    from ..results import ResultsStore

    with ResultsStore(args.db) as store:
        runs = store.runs(limit=args.limit or None, model_sha256=args.model)
    if args.json:
        print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print(f"no runs in {store.path}")
        return 0
    rows = []
    for r in runs:
        took = "" if r.finished_at is None else f"{r.finished_at - r.started_at:.0f}"
        rows.append((r.id, time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.started_at)), r.state, took,
                     (r.model_sha256 or "")[:12], r.model_source or "", ",".join(r.targets),
                     f"{r.n_results - r.n_failed}/{r.n_results}"))
    print(table(["run", "started_utc", "state", "seconds", "model", "source", "targets", "ok_results"], rows))
    return 0
