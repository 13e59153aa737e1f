"""Command-line layer: thin wrappers over the verbs, one module per command group.

Each module in ``COMMANDS`` has ``add(subparsers)``, which registers its sub-command(s)
and sets ``func(args) -> int`` on the parser. Errors derived from
:class:`~edgecompress.errors.EdgeCompressError` print one clear message and exit with
their ``exit_code`` (2 bad input, 1 failed work).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .._version import __version__
from ..errors import EdgeCompressError

COMMANDS = [
    "profiles_cmd",
    "compare_cmd",
    "run_cmd",
    "compress_cmd",
    "targets_cmd",
    "bench_cmd",
    "tune_cmd",
    "lab_cmd",
    "farm_cmd",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2, like argparse, with the usage line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgecompress",
                     description="Compress a trained model for edge devices and measure it there.")
    parser.add_argument("--version", action="version", version=f"edgecompress {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except EdgeCompressError as e:
        print(f"edgecompress: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgecompress: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
