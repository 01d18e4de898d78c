"""The drivers' CMAP events to the database client semantic conventions' histograms.

PyMongo (4.7+) gives :class:`pymongo.monitoring.ConnectionReadyEvent` and
:class:`~pymongo.monitoring.ConnectionCheckedOutEvent` a ``duration`` in
seconds (read in pymongo 4.20.1 ``_telemetry.py``: ``time.monotonic()`` since
the connection's creation, resp. since the check-out started; None on older
versions). The pool's :class:`pool.client_pool.monitor.ConnectionMonitor`
hands them here once the generation is known; the counts (open, used,
pending) stay in the monitor and are read by observable instruments.
Called from Motor's worker threads too: OpenTelemetry's SDK instruments are
thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CmapSink"]


class CmapSink:
    """Records connection set-up and check-out durations for one client (one generation)."""

    __slots__ = ("_attributes", "_create", "_wait", "max_size")

    def __init__(
        self, create: Any, wait: Any, attributes: Mapping[str, Any], max_size: int
    ) -> None:
        self._create, self._wait, self._attributes = create, wait, attributes
        self.max_size = max_size

    def connection_ready(self, duration: float | None) -> None:
        """A connection finished its handshake and authentication after ``duration`` s."""
        if duration is not None:
            self._create.record(duration, self._attributes)

    def checked_out(self, duration: float | None) -> None:
        """An operation obtained a connection after waiting ``duration`` s."""
        if duration is not None:
            self._wait.record(duration, self._attributes)
