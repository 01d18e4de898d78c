"""Rotation under load: warmed swap (``ClientPool``) against naive rotation, both drivers.

A thin command-line wrapper: the measurement lives in
:mod:`pool.cli.bench.rotation` (also used by ``python -m pool bench``).
Run: ``python benchmarks/bench_rotation.py [--seconds 12] [--workers 40] ...``.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict

import structlog

from pool.cli.bench.rotation import DRIVERS, MODES, Settings, format_table, run_benchmark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Settings()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--drivers", default=",".join(DRIVERS))
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    settings = Settings(**{k: getattr(args, k) for k in asdict(defaults)})
    results = asyncio.run(
        run_benchmark(tuple(args.drivers.split(",")), tuple(args.modes.split(",")), settings)
    )
    print(format_table(results))


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    main()
