"""Exponential backoff with jitter: the library's one retry-delay helper."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    initial: float,
    cap: float,
    rng: random.Random | None = None,
    *,
    floor: float = 0.0,
) -> float:
    """The pause before retry number ``attempt``: exponential backoff with jitter.

    The library's one backoff helper (the cache, the HTTP sources' retries and
    the client pool's rotation retries all use it). The bound doubles per
    attempt, ``min(cap, initial * 2**(attempt - 1))``, and the pause is uniform
    in ``[floor * bound, bound]``. ``floor=0`` is "full jitter", AWS's
    recommendation, which spreads a fleet's retries the most; ``floor=0.5``
    ("equal jitter") keeps at least half the bound. ``attempt`` counts from 1
    (the first retry after the first failure); values below 1 count as 1.
    ``rng`` defaults to the :mod:`random` module's shared generator; pass a
    seeded :class:`random.Random` for reproducible tests. Pure: no clock, no state.
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be between 0 and 1; got {floor}")
    exponent = min(max(attempt, 1) - 1, 62)  # 2**62 already exceeds any cap
    bound = max(0.0, min(cap, initial * 2.0**exponent))
    uniform = rng.uniform if rng is not None else random.uniform
    return uniform(floor * bound, bound)
