"""A CMAP listener counting one client's connections, for warm-up, closing and ``status()``."""

from __future__ import annotations

import asyncio
import threading

from pymongo import monitoring

from pool.client_pool.status import ConnectionCounts

__all__ = ["ConnectionMonitor"]


class ConnectionMonitor(monitoring.ConnectionPoolListener):
    """A CMAP listener counting one client's connections.

    Thread-safe: Motor publishes events from its worker threads. ``ready`` is
    the number of connections currently open and authenticated; ``pending``
    the number being opened (created, neither ready nor closed yet);
    ``in_use`` the number checked out by operations right now.
    :meth:`wait_change` lets a coroutine sleep until the next event instead
    of polling.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: set[int] = set()
        self._pending: set[int] = set()
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.created = 0
        self.closed = 0
        self.in_use = 0
        self.peak_in_use = 0

    @property
    def ready(self) -> int:
        """Connections open and authenticated at this instant (monitoring ones excluded)."""
        return len(self._ready)

    @property
    def pending(self) -> int:
        """Connections being opened at this instant (TCP, handshake or authentication)."""
        return len(self._pending)

    def snapshot(self) -> ConnectionCounts:
        """The counters at this instant (for ``status()``)."""
        with self._lock:
            return ConnectionCounts(
                open=len(self._ready),
                in_use=self.in_use,
                peak_in_use=self.peak_in_use,
                pending=len(self._pending),
                created=self.created,
                closed=self.closed,
            )

    async def wait_change(self, limit: float | None = None) -> None:
        """Return at the next connection event, or after ``limit`` real seconds.

        Real time on purpose: it bounds a wait on real I/O.
        """
        event = asyncio.Event()
        watcher = (asyncio.get_running_loop(), event)
        with self._lock:
            self._watchers.add(watcher)
        try:
            async with asyncio.timeout(limit):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._watchers.discard(watcher)

    def _changed(self) -> None:
        # Called with the lock held, from the loop's thread or Motor's.
        for loop, event in self._watchers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        with self._lock:
            self.created += 1
            self._pending.add(event.connection_id)
            self._changed()

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        with self._lock:
            self._pending.discard(event.connection_id)
            self._ready.add(event.connection_id)
            self._changed()

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        with self._lock:
            self.closed += 1
            self._pending.discard(event.connection_id)
            self._ready.discard(event.connection_id)
            self._changed()

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        with self._lock:
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)

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
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        pass
