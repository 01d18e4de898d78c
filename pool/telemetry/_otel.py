"""The OpenTelemetry API when it is installed, stand-ins that do nothing when it is not.

``opentelemetry-api`` is an optional extra (``pip install mongodb-aws-pool[otel]``):
the core install must import and run without it. Everything here is looked up
once; nothing is called on the lease hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DURATION_BUCKETS", "NULL_INSTRUMENT", "NULL_SPAN", "api"]


class _Api:
    """``opentelemetry.metrics`` and ``opentelemetry.trace``, imported on first use.

    ``available`` is False when ``opentelemetry-api`` is not installed. Not
    imported with ``pool``: the Lambda cold-start path stays cheap.
    """

    def __init__(self) -> None:
        self._loaded = False
        self.available = False
        self.metrics: Any = None
        self.trace: Any = None

    def load(self) -> bool:
        if not self._loaded:
            self._loaded = True
            try:
                import opentelemetry.metrics as metrics
                import opentelemetry.trace as trace
            except ImportError:  # the core install: no opentelemetry-api
                return False
            self.metrics, self.trace, self.available = metrics, trace, True
        return self.available


api = _Api()


class NullInstrument:
    """A counter, histogram or observable instrument that records nothing."""

    __slots__ = ()

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Do nothing."""

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Do nothing."""


class NullSpan:
    """A span that records nothing (OpenTelemetry's API is absent or tracing is disabled)."""

    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        """Do nothing."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Do nothing."""

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Do nothing."""

    def set_status(self, status: Any, description: str | None = None) -> None:
        """Do nothing."""

    def end(self, end_time: int | None = None) -> None:
        """Do nothing."""


NULL_INSTRUMENT = NullInstrument()
NULL_SPAN = NullSpan()

# Buckets for durations in seconds (the API's default buckets are sized for
# milliseconds): from a 5 ms loopback fetch to a 30 s warm-up timeout.
DURATION_BUCKETS: Sequence[float] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
)  # fmt: skip
