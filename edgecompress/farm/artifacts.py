"""The content-addressed artifact store of the farm, and the worker's verified cache.

``db``: the ``blobs`` table of the results database (the default: every worker reaches it).
``file:///FOLDER``: a folder every worker can read (NFS, SMB, ...), files named by sha256.
``put(path|bytes) -> sha256`` on the submitter; ``fetch(sha256, suffix) -> Path`` on a worker:
from its cache (``~/.cache/edgecompress/farm``) when there, else from the store; the bytes
are checked against the sha256 both when they arrive and before each use — a file whose
content differs never reaches a device (:class:`ArtifactMismatch`).
"""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Optional

from ..errors import EdgeCompressError


class ArtifactMismatch(EdgeCompressError):
    """Bytes that are not what their sha256 says."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgecompress" / "farm"


class ArtifactStore:
    def __init__(self, where: str = "db", *, db=None):
        self.where = where
        self.db = db                                   # a ResultsStore when where == "db"
        self.folder: Optional[Path] = None
        if where.startswith("file://"):
            self.folder = Path(where[len("file://"):])
        elif where != "db":
            from ..errors import UsageError

            raise UsageError(f"--artifact-store {where!r}: valid: db (the results database) or file:///FOLDER")

    def put(self, data: bytes | Path) -> str:
        raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else data
        sha = _sha(raw)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            final = self.folder / sha
            if not final.exists():
                tmp = self.folder / f".{sha}.{secrets.token_hex(4)}.part"
                tmp.write_bytes(raw)
                os.replace(tmp, final)
        else:
            self.db.put_blob(sha, raw)
        return sha

    def _get(self, sha: str) -> bytes:
        if self.folder is not None:
            p = self.folder / sha
            if not p.exists():
                raise EdgeCompressError(f"artifact {sha[:12]} not in the artifact store {self.where}")
            return p.read_bytes()
        data = self.db.get_blob(sha)
        if data is None:
            raise EdgeCompressError(f"artifact {sha[:12]} not in the results database's artifact store")
        return data

    def fetch(self, sha: str, suffix: str = "", cache: Optional[Path] = None) -> Path:
        """The verified local copy of blob ``sha`` (cached; checked again before it is returned)."""
        cache = cache or default_cache()
        cache.mkdir(parents=True, exist_ok=True)
        final = cache / f"{sha}{suffix}"
        if final.exists() and sha256_of(final) == sha:
            return final
        if final.exists():
            final.unlink()                             # a cached copy that changed: fetched again
        data = self._get(sha)
        got = _sha(data)
        if got != sha:
            raise ArtifactMismatch(f"artifact store {self.where}: blob {sha[:12]} has sha256 {got[:12]}; refused "
                                   f"(corrupt or tampered), nothing sent to the device")
        tmp = cache / f".{sha}.{secrets.token_hex(4)}.part"
        tmp.write_bytes(data)
        os.replace(tmp, final)
        return final
