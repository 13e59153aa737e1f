"""The results store by URL (SQLite file by default, PostgreSQL for a team); see :mod:`.store`."""
from .store import (ENV_DB, HEAD, SCHEMA_VERSION, ResultsStore, RunInfo, default_db_path, host_facts, migrate,
                    new_run_id, result_key)
from .urls import default_db, mask_text, masked, resolve

__all__ = ["ResultsStore", "RunInfo", "default_db_path", "default_db", "new_run_id", "host_facts", "migrate",
           "result_key", "masked", "mask_text", "resolve", "ENV_DB", "SCHEMA_VERSION", "HEAD"]
