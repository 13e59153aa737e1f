"""A content-addressed cache of intermediate results (exports, calibrations, converter runs).

A step's result is a folder ``ROOT/<step>-<key>`` where the key is the sha256 of everything
the result depends on: the model's content hash, the step's options, the calibration data's
hash and the versions of the tools that made it. A folder is built under a temporary name and
renamed into place only when complete, so a crashed or failed step leaves nothing that a later
run would pick up. Every lookup is recorded in ``events`` (step, key, cached, seconds).

Default root: ``$EDGECOMPRESS_CACHE_DIR`` if set, else ``OUT/.cache``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

ENV_CACHE = "EDGECOMPRESS_CACHE_DIR"
_DONE = ".complete.json"


def tool_versions(*dists: str) -> dict[str, str]:
    """Installed versions of the named distributions (without importing them)."""
    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def default_cache_dir(out: str | Path) -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path(out) / ".cache")


class Cache:
    def __init__(self, root: str | Path, progress: Optional[Callable[[str], None]] = None):
        self.root = Path(root)
        self.progress = progress or (lambda msg: None)
        self.events: list[dict[str, Any]] = []
        self._failed: dict[str, Exception] = {}    # failures are not stored, but not retried in one run

    def step(self, name: str, parts: dict[str, Any], build: Callable[[Path], None],
             label: str = "") -> Path:
        """The folder holding step ``name``'s result for ``parts``; ``build(folder)`` makes it if missing."""
        key = cache_key({"step": name, **parts})
        folder = self.root / f"{name}-{key[:24]}"
        what = f"{name}{' ' + label if label else ''}"
        if (folder / _DONE).exists():
            self.events.append({"step": name, "key": key, "cached": True, "seconds": 0.0})
            self.progress(f"{what}: cached")
            return folder
        if key in self._failed:
            raise self._failed[key]
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{name}-", suffix=".tmp"))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        self.progress(f"{what}: running ...")
        t0 = time.perf_counter()
        try:
            try:
                build(tmp)
            except Exception as e:
                self._failed[key] = e
                self.progress(f"{what}: failed after {time.perf_counter() - t0:.1f} s")
                raise
            (tmp / _DONE).write_text(json.dumps({"step": name, **parts}, indent=1, sort_keys=True, default=str))
            try:
                os.rename(tmp, folder)
            except OSError:            # another process finished the same step first: use theirs
                if not (folder / _DONE).exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        seconds = time.perf_counter() - t0
        self.events.append({"step": name, "key": key, "cached": False, "seconds": round(seconds, 3)})
        self.progress(f"{what}: done in {seconds:.1f} s")
        return folder
