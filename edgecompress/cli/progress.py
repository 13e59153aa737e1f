"""Live progress of a run, per target, drawn by rich: bars on a terminal, plain lines otherwise.

``RunProgress(targets, stream)`` is the ``progress(target, event, info)`` callback of
:func:`edgecompress.runs.run` (called from worker threads; rich's ``Progress`` is thread-safe).
Use it as a context manager (``with RunProgress(...) as p: run(..., progress=p)``).

- On a terminal (``stream.isatty()``): one bar per target (artifacts measured of those to measure,
  with the rate and the time left) and a line for compression, redrawn in place by rich.
- Otherwise: one time-stamped plain line per event (no escape codes), which logs and CI read.
"""
from __future__ import annotations

import sys
import time


def describe(event: str, info: dict) -> str:
    """One event as plain text."""
    if event == "compress":
        return f"compressing for {', '.join(info.get('profiles', []))}"
    if event == "compressed":
        parts = [f"{name}: {sum(a.status == 'ok' for a in m.artifacts)}/{len(m.artifacts)} artifacts ok"
                 for name, m in (info.get("manifests") or {}).items()]
        return "compressed: " + "; ".join(parts)
    if event == "compress_step":
        return f"compressing: {info.get('text')}"
    if event == "compress_failed":
        return f"compress FAILED: {info.get('error')}"
    if event == "connect":
        return f"connecting ({info.get('transport')})"
    if event == "connected":
        d = info.get("device") or {}
        rts = ", ".join(f"{k} {v}" for k, v in sorted((d.get("runtimes") or {}).items()) if v)
        return f"connected: {d.get('arch', '?')} python {d.get('python', '?')}" + (f", {rts}" if rts else "")
    if event == "waiting":
        return "waiting for the artifacts"
    if event == "sync":
        return f"syncing {info.get('n')} artifact(s)"
    if event == "bench":
        return f"[{info.get('i')}/{info.get('n')}] benchmarking {info.get('artifact')}"
    if event == "result":
        r = info["result"]
        if not r.ok:
            return f"[{info.get('i')}/{info.get('n')}] {info.get('artifact')} FAILED: {r.error}"
        p50 = r.latency_ms.p50 if r.latency_ms else None
        fid = r.fidelity or {}
        q = ""
        if fid.get("accuracy") is not None:
            q = f", accuracy {fid['accuracy'] * 100:.1f}%"
        elif fid.get("top1_agreement") is not None:
            q = f", agreement {fid['top1_agreement'] * 100:.1f}%"
        emu = " (emulated CPU)" if r.emulated else ""
        return f"[{info.get('i')}/{info.get('n')}] {info.get('artifact')}: p50 {p50 or 0:.3g} ms{emu}{q}"
    if event == "done":
        tail = f" ({info.get('error')})" if info.get("error") else ""
        return f"done: {info.get('ok')}/{info.get('total')} artifacts ok{tail}"
    if event == "failed":
        return f"FAILED: {info.get('error')}"
    return event


class RunProgress:
    def __init__(self, targets: list[str], stream=None, tty: bool | None = None, width: int | None = None):
        from rich.console import Console

        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.console = Console(file=self.stream, force_terminal=self.tty, color_system="auto" if self.tty else None,
                               highlight=False, markup=False, emoji=False, soft_wrap=not self.tty, width=width)
        self.names = ["*"] + list(targets)
        self.t0 = time.monotonic()
        self.bar = None
        self.tasks: dict[str, int] = {}
        if self.tty:
            self._bars()

    def _bars(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(TextColumn("{task.fields[label]}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                            TaskProgressColumn(show_speed=True), TimeElapsedColumn(), TimeRemainingColumn(),
                            TextColumn("{task.description}"), console=self.console, transient=False,
                            refresh_per_second=8)
        width = max(len(n) for n in self.names + ["compress"])
        for n in self.names:
            label = "compress" if n == "*" else n
            self.tasks[n] = self.bar.add_task("starting" if n == "*" else "waiting", total=None,
                                              label=label.ljust(width))
        self.bar.start()

    def __enter__(self) -> "RunProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __call__(self, target: str, event: str, info: dict) -> None:
        text = describe(event, info)
        if self.bar is None:
            label = "compress" if target == "*" else target
            self.console.print(f"[{time.monotonic() - self.t0:6.1f}s] {label}: {text}")
            return
        task = self.tasks.get(target)
        if task is None:
            return
        update: dict = {"description": text}
        if event in ("sync", "bench", "result") and info.get("n"):
            update["total"] = info["n"]
        if event == "result":
            update["completed"] = info.get("i")
        if event == "compressed":
            update.update(total=1, completed=1)
        if event in ("done", "failed"):
            t = self.bar.tasks[task]
            update["total"] = t.total or 1
            update["completed"] = t.total or 1
        self.bar.update(task, **update)
