"""Live progress of a run, per target: a redrawn block on a terminal, plain lines otherwise.

``RunProgress(targets, stream)`` is the ``progress(target, event, info)`` callback of
:func:`edgecompress.runs.run`; it is called from the worker threads (guarded by a lock).
On a terminal (``stream.isatty()``) it redraws one line per target in place (ANSI cursor-up
and erase-line); otherwise it writes one timestamped line per event, which logs and CI read.
"""
from __future__ import annotations

import sys
import threading
import time


def describe(event: str, info: dict) -> str:
    if event == "compress":
        return f"compressing for {', '.join(info.get('profiles', []))}"
    if event == "compressed":
        ms = info.get("manifests") or {}
        parts = []
        for name, m in ms.items():
            ok = sum(a.status == "ok" for a in m.artifacts)
            parts.append(f"{name}: {ok}/{len(m.artifacts)} artifacts ok")
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
        return f"[{info.get('i')}/{info.get('n')}] {info.get('artifact')}: p50 {p50 or 0:.3g} ms{q}"
    if event == "done":
        tail = f" ({info.get('error')})" if info.get("error") else ""
        return f"done: {info.get('ok')}/{info.get('total')} artifacts ok{tail}"
    if event == "failed":
        return f"FAILED: {info.get('error')}"
    return event


class RunProgress:
    def __init__(self, targets: list[str], stream=None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.names = ["*"] + list(targets)
        self.lines = {n: "waiting" for n in self.names}
        self.lines["*"] = "starting"
        self.width = max(len(n) for n in self.names + ["compress"])
        self.drawn = 0
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def __call__(self, target: str, event: str, info: dict) -> None:
        text = describe(event, info)
        with self.lock:
            self.lines[target] = text
            if self.tty:
                self._redraw()
            else:
                label = "compress" if target == "*" else target
                self.stream.write(f"[{time.monotonic() - self.t0:6.1f}s] {label}: {text}\n")
                self.stream.flush()

    def _redraw(self) -> None:
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}F")
        import shutil

        cols = max(20, shutil.get_terminal_size((120, 24)).columns - 1)   # a wrapped line breaks the redraw
        for n in self.names:
            label = "compress" if n == "*" else n
            out.append("\x1b[2K" + f"{label.ljust(self.width)}  {self.lines[n]}"[:cols] + "\n")
        self.drawn = len(self.names)
        self.stream.write("".join(out))
        self.stream.flush()
