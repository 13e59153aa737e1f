"""The farm's artifact store by sha256 (in the results database or a folder) and the worker's cache."""
from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest

from edgecompress.errors import ResultsError
from edgecompress.farm.artifacts import ArtifactMismatch, ArtifactStore
from edgecompress.farm.execute import dump_arrays, load_arrays
from edgecompress.results import ResultsStore


@pytest.mark.parametrize("where", ["db", "folder"])
def test_put_fetch_round_trip_cache_and_tamper_checks(where, tmp_path, digits_npz):
    data = digits_npz.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with ResultsStore(tmp_path / "r.db") as db:
        store = ArtifactStore("db" if where == "db" else f"file://{tmp_path / 'shared'}", db=db)
        assert store.put(data) == sha and store.put(data) == sha            # content-addressed: once
        cache = tmp_path / "cache"
        got = store.fetch(sha, ".npz", cache)
        assert got == cache / f"{sha}.npz" and got.read_bytes() == data
        got.write_bytes(b"changed on the worker's disk")                     # a cached copy that changed
        assert store.fetch(sha, ".npz", cache).read_bytes() == data          # is fetched again, verified
        # the store's copy tampered with: refused, and nothing lands in the cache
        (cache / f"{sha}.npz").unlink()
        if where == "db":
            conn = sqlite3.connect(tmp_path / "r.db")
            conn.execute("UPDATE blobs SET data=? WHERE sha256=?", (b"evil", sha))
            conn.commit()
            conn.close()
        else:
            (tmp_path / "shared" / sha).write_bytes(b"evil")
        with pytest.raises(ArtifactMismatch, match="refused"):
            store.fetch(sha, ".npz", cache)
        assert not list(cache.glob(sha + "*"))
        with pytest.raises(ResultsError, match="differs"):
            db.put_blob("0" * 64, b"x")                                      # a wrong name is refused too


def test_arrays_travel_with_dtype_and_names(mnist):
    x = mnist[2][:5]
    back = load_arrays(dump_arrays({"image": x}))
    assert list(back) == ["image"] and back["image"].dtype == x.dtype and np.array_equal(back["image"], x)
    named = load_arrays(dump_arrays({"ids": np.arange(4, dtype=np.int64), "mask": np.ones((2, 2), bool)}))
    assert named["ids"].dtype == np.int64 and named["mask"].dtype == bool
    assert np.array_equal(named["ids"], np.arange(4))


def test_a_database_from_a_newer_edgecompress_is_refused(tmp_path):
    db = tmp_path / "r.db"
    ResultsStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num='0099'")
    conn.commit()
    conn.close()
    with pytest.raises(ResultsError, match="newer than this edgecompress"):
        ResultsStore(db)
