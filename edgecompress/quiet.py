"""Frameworks' start-up noise off, unless ``-v`` (:func:`quiet_frameworks`, called by the commands).

TensorFlow (under Keras, tf2onnx and the TFLite converter too) and LiteRT write to the process's
stderr from C++. Some of it obeys environment variables, read once when TensorFlow is imported
(``TF_CPP_MIN_LOG_LEVEL``, ``TF_ENABLE_ONEDNN_OPTS``, ``CUDA_VISIBLE_DEVICES``): those are set
here, before any import. The rest is written before any setting can apply -- absl's "All log
messages before absl::InitializeLog()", the CUDA probe's "Could not find cuda drivers", the
converter's "fully_quantize: 0, ...", LiteRT's "Created TensorFlow Lite XNNPACK delegate" -- so
:func:`native_stderr` filters file descriptor 2 while TensorFlow is imported
(:func:`import_quietly`) and while a converter or interpreter starts: those lines are dropped,
anything else is written back to ``sys.stderr`` when the block ends. Without
:func:`quiet_frameworks` (``-v``, or the Python API) nothing is changed.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
import threading

ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1", "TF_ENABLE_ONEDNN_OPTS": "0",
       "GRPC_VERBOSITY": "ERROR", "ABSL_MIN_LOG_LEVEL": "3"}

#: lines the frameworks write natively that say nothing a user can act on
NOISE = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\]"                  # absl INFO / WARNING lines
    r"|E\d{4} [\d:.]+ +\d+ \S*cuda\S*:\d+\]"                # the CUDA probe's errors
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate"
    r"|fully_quantize: \d+, inference_type"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|This TensorFlow binary is optimized)")

_state = {"quiet": False, "depth": 0, "saved": None, "file": None}
_lock = threading.Lock()


def quiet_frameworks(verbose: bool = False) -> None:
    """Unless ``verbose``: set the frameworks' log settings (where the user has not) and filter their
    native stderr from now on (see the module docstring)."""
    if verbose:
        return
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    _state["quiet"] = True


def is_quiet() -> bool:
    return _state["quiet"]


@contextlib.contextmanager
def native_stderr():
    """Inside: file descriptor 2 goes to a temporary file; at the end, its lines that are not
    :data:`NOISE` are written to ``sys.stderr``. Nested and concurrent blocks share one capture
    (the last to leave restores fd 2). A no-op unless :func:`quiet_frameworks` was called."""
    if not _state["quiet"] or not _enter():
        yield
        return
    try:
        yield
    finally:
        _leave()


def _enter() -> bool:
    with _lock:
        if _state["depth"] == 0:
            _flush()
            try:
                saved = os.dup(2)
            except OSError:              # no stderr to filter (closed)
                return False
            f = tempfile.TemporaryFile()
            _state["saved"], _state["file"] = saved, f
            os.dup2(f.fileno(), 2)
        _state["depth"] += 1
        return True


def _leave() -> None:
    with _lock:
        _state["depth"] -= 1
        if _state["depth"] > 0:
            return
        _flush()
        saved, f = _state["saved"], _state["file"]
        os.dup2(saved, 2)
        os.close(saved)
        f.seek(0)
        text = f.read().decode("utf-8", "replace")
        f.close()
    kept = [ln for ln in text.splitlines() if ln.strip() and not NOISE.match(ln.strip())]
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def import_quietly(name: str):
    """``importlib.import_module(name)`` inside :func:`native_stderr` (TensorFlow's start-up lines)."""
    if name in sys.modules:
        return sys.modules[name]
    with native_stderr():
        return importlib.import_module(name)
