"""Alembic migrations of the results store (run by :func:`edgecompress.results.store.migrate`).

``0001`` is the schema of the SQLite-only store (``PRAGMA user_version`` 1): an existing file
of that version is stamped ``0001`` and upgraded in place. ``0002`` adds ``results.result_key``
and the ``blobs`` table for the farm.
"""
