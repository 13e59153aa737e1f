"""Build the runner zipapp: ``runner-<sha256[:16]>.pyz``, byte-for-byte reproducible.

The device modules are copied into a package ``ecdevice`` (so nothing of ``edgecompress``
is imported on the device) with fixed file times, then packed with :mod:`zipapp`; the same
sources always give the same bytes, so the hash names the content and an unchanged runner
is never uploaded twice.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipapp
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("__init__.py", "__main__.py", "blobs.py", "execute.py", "meters.py", "ops.py", "result.py", "runner.py",
           "runtimes.py",
           "stats.py", "thermal.py")
FIXED_TIME = 946684800  # 2000-01-01, so zip entries do not depend on file mtimes
MAIN = "import sys\nfrom ecdevice.runner import main\nsys.exit(main())\n"


def _source_digest() -> str:
    h = hashlib.sha256()
    for name in MODULES:
        h.update(name.encode() + b"\0" + (HERE / name).read_bytes())
    return h.hexdigest()[:16]


def build_runner(cache_dir: str | Path | None = None) -> Path:
    """The runner zipapp for the current sources (built once per source version, cached)."""
    cache = Path(cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgecompress"
                 / "runner")
    cache.mkdir(parents=True, exist_ok=True)
    marker = cache / f"src-{_source_digest()}.name"
    if marker.exists():
        built = cache / marker.read_text().strip()
        if built.exists():
            return built
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        pkg = src / "ecdevice"
        pkg.mkdir(parents=True)
        for name in MODULES:
            shutil.copyfile(HERE / name, pkg / name)
        (src / "__main__.py").write_text(MAIN)
        for p in [src, pkg, *src.rglob("*")]:
            os.utime(p, (FIXED_TIME, FIXED_TIME))
        out = Path(tmp) / "runner.pyz"
        zipapp.create_archive(src, out, interpreter="/usr/bin/env python3", compressed=True,
                              filter=lambda p: p.suffix == ".py")
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        final = cache / f"runner-{digest[:16]}.pyz"
        if not final.exists():
            tmp_final = cache / f".{final.name}.{os.getpid()}.tmp"
            shutil.copyfile(out, tmp_final)
            os.replace(tmp_final, final)
    tmp_marker = cache / f".{marker.name}.{os.getpid()}"
    tmp_marker.write_text(final.name)
    os.replace(tmp_marker, marker)
    return final
