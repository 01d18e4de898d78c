"""Rotation under load (warmed swap against naive rotation, both drivers), for the bench.

The measurement is ``run_benchmark()`` of :mod:`pool.cli._rotation_bench`
(``benchmarks/bench_rotation.py`` is its command-line wrapper).
"""

from __future__ import annotations

from typing import Any

__all__ = ["R_KEYS", "bench_rotation"]

DRIVERS = ("motor", "pymongo")
MODES = ("warmed", "naive")
#: The ``R`` of the JSON shape; the rotation benchmark reports more, which is dropped here.
R_KEYS = ("ops", "failed", "lost", "rotations", "p99_steady_ms", "p99_rotation_ms")
QUICK_SECONDS = 8.0
FULL_SECONDS = 20.0

Figures = dict[str, dict[str, dict[str, Any] | None]]


def _shape(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {key: int(figures[key]) if key in R_KEYS[:4] else float(figures[key]) for key in R_KEYS}


async def bench_rotation(
    *, quick: bool, seconds: float | None = None
) -> tuple[Figures, str | None]:
    """``({driver: {mode: R | None}}, note)``; the note explains anything not measured.

    ``seconds`` is the length of each of the four runs (default 8 with
    ``quick``, else 20); credentials rotate every ``min(2, seconds / 3)`` s.
    Starts its own stand-ins (``python -m pool emulate``).
    """
    from . import _rotation_bench as module

    length = seconds or (QUICK_SECONDS if quick else FULL_SECONDS)
    settings = module.Settings(seconds=length, rotate_every=min(2.0, length / 3))
    raw = await module.run_benchmark(DRIVERS, MODES, settings)
    shaped: Figures = {d: {m: _shape(raw.get(d, {}).get(m)) for m in MODES} for d in DRIVERS}
    return shaped, (
        f"{length:g} s per run, credentials rotating every {settings.rotate_every:g} s, "
        f"{settings.workers} workers (pool.cli._rotation_bench)"
    )
