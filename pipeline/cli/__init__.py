"""The ``photopipe`` command.

Its commands live by what they serve: :mod:`~pipeline.cli.local` (the embedded default:
process, show, filters, preview), :mod:`~pipeline.cli.service` (the production path: submit,
worker, relay, sweep, status, db), :mod:`~pipeline.cli.reprocess` (reprocess, gc),
:mod:`~pipeline.cli.observe` (health, exporter, and the worker's metrics endpoint),
:mod:`~pipeline.cli.shards` (shards init, list, move), :mod:`~pipeline.cli.web` (serve, ticket).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline.cli import local, observe, reprocess, service, shards, web
from pipeline.core.startup import configure
from pipeline.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``photopipe`` console script; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 2
    configure(settings.limits)
    code: int = args.run(args, settings)
    return code


def parser() -> argparse.ArgumentParser:
    """The command line, every command registered by its module."""
    top = argparse.ArgumentParser(prog="photopipe", description="photopipe: safe, filtered, "
                                  "ready-to-serve thumbnails")
    commands = top.add_subparsers(required=True, metavar="COMMAND")
    for module in (local, service, reprocess, observe, shards, web):
        module.add_commands(commands)
    return top
