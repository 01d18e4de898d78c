"""A CMAP listener counting one client's connections, for warm-up and ``status()``."""

from __future__ import annotations

import threading

from pymongo import monitoring

from pool.telemetry.cmap import CmapSink

__all__ = ["ConnectionMonitor"]


class ConnectionMonitor(monitoring.ConnectionPoolListener):
    """A CMAP listener counting one client's connections.

    Thread-safe: Motor publishes events from its worker threads. ``ready`` is
    the number of connections currently open and authenticated; ``in_use``
    the number checked out by operations right now.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: set[int] = set()
        self.created = 0
        self.closed = 0
        self.in_use = 0
        self.peak_in_use = 0
        self.pending = 0  # operations waiting for a connection (check-out started, not ended)
        self.sink: CmapSink | None = None  # durations to the telemetry, once bound

    @property
    def ready(self) -> int:
        """Connections open and authenticated at this instant (monitoring ones excluded)."""
        return len(self._ready)

    def snapshot(self) -> dict[str, int]:
        """The counters as a plain dict (for ``status()``)."""
        with self._lock:
            return {
                "open": len(self._ready),
                "in_use": self.in_use,
                "peak_in_use": self.peak_in_use,
                "created": self.created,
                "closed": self.closed,
                "pending": self.pending,
            }

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        with self._lock:
            self.created += 1

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        with self._lock:
            self._ready.add(event.connection_id)
        if (sink := self.sink) is not None:
            sink.connection_ready(event.duration)

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        with self._lock:
            self.closed += 1
            self._ready.discard(event.connection_id)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        with self._lock:
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            self.pending -= 1
        if (sink := self.sink) is not None:
            sink.checked_out(event.duration)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        with self._lock:
            self.in_use -= 1

    # The remaining CMAP events carry nothing the pool needs.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        with self._lock:
            self.pending += 1

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        with self._lock:
            self.pending -= 1
