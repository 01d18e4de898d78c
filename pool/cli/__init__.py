"""The command line: ``python -m pool {emulate,demo,bench,check}`` (or ``mongodb-aws-pool``).

Each command lives in its own module and is imported only when chosen, so
``--help`` stays fast and a command never pays for another's imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

COMMANDS = {
    "emulate": "Run the stand-ins (AWS credential endpoints + an Atlas-like MongoDB) on loopback",
    "demo": "Rotate credentials under load in every AWS environment, on the stand-ins",
    "bench": "Handshake, fetch and rotation benchmarks, side by side with the alternatives",
    "check": "Check a real deployment: source detection, fetch, connect, authenticate, ping",
}


def invoked_name(argv0: str | None = None) -> str:
    """How the user ran us: ``python -m pool``, or the console script's own name."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    if name in ("", "__main__.py", "-c", "-m") or name.startswith("python"):
        return "python -m pool"
    return name.removesuffix(".exe")


def version_text() -> str:
    """``mongodb-aws-pool X (PyMongo Y, Motor Z, Python W)``; reads metadata, imports nothing."""
    from importlib.metadata import PackageNotFoundError, version

    from pool import __version__

    parts = []
    for dist, label in (("pymongo", "PyMongo"), ("motor", "Motor")):
        try:
            parts.append(f"{label} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{label} not installed")
    python = ".".join(map(str, sys.version_info[:3]))
    return f"mongodb-aws-pool {__version__} ({', '.join(parts)}, Python {python})"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or invoked_name(),
        description="MongoDB with AWS IAM credentials that rotate unnoticed.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"pool.cli.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    from pool.cli.log_setup import configure

    configure(args.verbose)
    module = importlib.import_module(f"pool.cli.{args.command}")
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
