"""Run the command line in-process and capture what it prints."""
from __future__ import annotations

import contextlib
import io

from edgecompress.cli import main


def cli(*argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``edgecompress ARGV...``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()
