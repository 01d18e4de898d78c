"""Fakes shared by several test folders."""

from __future__ import annotations

import time

__all__ = ["FakeWallClock"]


class FakeWallClock:
    """Epoch seconds that start at the real time (botocore's signatures stay unskewed).

    They move only when the test calls :meth:`advance`.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
