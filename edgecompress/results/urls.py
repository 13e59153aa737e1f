"""Where the results store lives: a URL (``sqlite:///path`` or ``postgresql://user@host/db``) or a path.

``resolve(db)`` -> the SQLAlchemy URL to connect with; ``masked(url)`` -> the same URL with any
password replaced by ``***``, the only form that is ever printed, logged, stored or reported.
A URL given with a password is remembered in this process only (``_SECRETS``), so the masked
form a run reports (``RunResult.db``) opens the same database again here; passwords are better
kept out of URLs altogether (``PGPASSWORD`` or ``~/.pgpass``, read by libpq).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UsageError

ENV_DB = "EDGECOMPRESS_DB"
SCHEMES = ("sqlite", "postgresql")
_SECRETS: dict[str, str] = {}          # masked URL -> real URL, this process only


def default_db_path() -> Path:
    env = os.environ.get(ENV_DB)
    if env and "://" not in env:
        return Path(env).expanduser()
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "edgecompress" / "results.db"


def default_db() -> str:
    """``$EDGECOMPRESS_DB`` (a URL or a path), else the SQLite file under the user data folder."""
    env = os.environ.get(ENV_DB)
    return env if env and "://" in env else str(default_db_path())


def _url_obj(text: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(text)
    except ArgumentError as e:
        raise UsageError(f"results database {mask_text(text)!r} is not a valid URL; valid: sqlite:///PATH, "
                         f"postgresql://USER@HOST[:PORT]/DB, or a file path") from e


def resolve(db=None):
    """(SQLAlchemy URL object to connect with, display string without password, sqlite Path | None)."""
    text = str(db) if db is not None else default_db()
    text = _SECRETS.get(text, text)
    if "://" not in text:
        path = Path(text).expanduser().absolute()
        return _url_obj(f"sqlite:///{path}"), str(path), path
    url = _url_obj(text)
    backend = url.get_backend_name()
    if backend not in SCHEMES:
        raise UsageError(f"results database {masked(url)!r}: unknown kind {backend!r}; valid: sqlite:///PATH, "
                         f"postgresql://USER@HOST[:PORT]/DB")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UsageError(f"results database {text!r}: give a file, e.g. sqlite:///results.db")
        path = Path(url.database).expanduser().absolute()
        return url.set(database=str(path)), str(path), path
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")       # psycopg 3
    shown = masked(url)
    if url.password:
        _SECRETS[shown] = url.render_as_string(hide_password=False)
    return url, shown, None


def masked(url) -> str:
    """The URL as text with its password (if any) shown as ``***``; the driver name as the user wrote it."""
    if isinstance(url, str):
        url = _url_obj(url)
    if url.drivername == "postgresql+psycopg":
        url = url.set(drivername="postgresql")
    return url.render_as_string(hide_password=True)


_PW = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")


def mask_text(text: str) -> str:
    """Any ``scheme://user:password@`` inside ``text`` with the password as ``***``."""
    return _PW.sub(r"\1***\3", str(text))
